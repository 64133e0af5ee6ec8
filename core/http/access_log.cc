#include "core/http/access_log.h"

#include <arpa/inet.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "config/values.h"
#include "core/event/timer.h"
#include "core/event/worker_context.h"
#include "core/log.h"
#include "core/reopenable_file.h"
#include "core/stats.h"

namespace ferry::core::http {

namespace {

using Kind = config::LogCommand::Kind;

constexpr size_t kHandOverBytes = 64 * 1024;  // a worker's buffer goes to the writer past this
constexpr size_t kRingSlots = 64;             // buffers in flight per worker and file
constexpr size_t kKeepCapacity = 256 * 1024;  // larger emptied buffers are shrunk
constexpr std::chrono::milliseconds kFlushInterval{100};  // the oldest line waits at most this

// Single producer (a worker), single consumer (the writer). Slots are swapped, not copied:
// the producer gets back the emptied string the consumer left in the slot.
class Ring {
 public:
  bool push(std::string& s) {
    const uint32_t t = tail_.load(std::memory_order_relaxed);
    if (t - head_.load(std::memory_order_acquire) == kRingSlots) return false;
    slots_[t % kRingSlots].swap(s);
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }
  // `s` must be empty; it goes into the slot for the producer to reuse.
  bool pop(std::string& s) {
    const uint32_t h = head_.load(std::memory_order_relaxed);
    if (h == tail_.load(std::memory_order_acquire)) return false;
    slots_[h % kRingSlots].swap(s);
    head_.store(h + 1, std::memory_order_release);
    return true;
  }

 private:
  std::array<std::string, kRingSlots> slots_;
  alignas(64) std::atomic<uint32_t> head_{0};
  alignas(64) std::atomic<uint32_t> tail_{0};
};

void appendInt(std::string& out, int64_t v) {
  char buf[24];
  int n = std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  out.append(buf, static_cast<size_t>(n));
}

void appendIp(std::string& out, const sockaddr_storage& sa, bool with_port) {
  char buf[INET6_ADDRSTRLEN + 8];
  if (sa.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(sa);
    inet_ntop(AF_INET, &in.sin_addr, buf, sizeof buf);
    out += buf;
    if (with_port) {
      out += ':';
      appendInt(out, ntohs(in.sin_port));
    }
  } else if (sa.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(sa);
    inet_ntop(AF_INET6, &in6.sin6_addr, buf, sizeof buf);
    if (with_port) out += '[';
    out += buf;
    if (with_port) {
      out += "]:";
      appendInt(out, ntohs(in6.sin6_port));
    }
  } else {
    out += '-';
  }
}

// ISO 8601 UTC with milliseconds; the seconds part is cached per thread.
void appendTime(std::string& out, int64_t unix_ms) {
  thread_local int64_t cached_sec = -1;
  thread_local char cached[24];
  const int64_t sec = unix_ms / 1000;
  if (sec != cached_sec) {
    time_t t = static_cast<time_t>(sec);
    tm parts{};
    gmtime_r(&t, &parts);
    std::snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d", parts.tm_year + 1900, parts.tm_mon + 1,
                  parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec);
    cached_sec = sec;
  }
  out.append(cached, 19);
  char ms[8];
  std::snprintf(ms, sizeof ms, ".%03dZ", static_cast<int>(unix_ms % 1000));
  out += ms;
}

const std::string* requestHeader(const RequestHeaders& r, const std::string& name) {
  if (!name.empty() && name[0] == ':') {
    if (name == ":method") return &r.method;
    if (name == ":path") return &r.path;
    if (name == ":authority") return &r.authority;
    if (name == ":scheme") return &r.scheme;
    return nullptr;
  }
  if (name == "host") return &r.authority;
  return r.headers.get(name);
}

// Appends `v`, at most max_len bytes of it (0 = all).
void appendValue(std::string& out, std::string_view v, uint32_t max_len) {
  if (max_len != 0 && v.size() > max_len) v = v.substr(0, max_len);
  out.append(v.data(), v.size());
}

bool isNumeric(Kind k) {
  switch (k) {
    case Kind::kDuration:
    case Kind::kResponseDuration:
    case Kind::kUpstreamServiceTime:
    case Kind::kResponseCode:
    case Kind::kBytesReceived:
    case Kind::kBytesSent: return true;
    default: return false;
  }
}

// The trace id of a W3C traceparent ("00-<32 hex>-<16 hex>-<2 hex>"), or empty.
std::string_view traceId(const RequestHeaders* r) {
  if (r == nullptr) return {};
  const std::string* tp = r->headers.get("traceparent");
  if (tp == nullptr || tp->size() < 55 || (*tp)[2] != '-' || (*tp)[35] != '-') return {};
  return std::string_view(*tp).substr(3, 32);
}

}  // namespace

void formatLogCommand(const config::LogCommand& cmd, const LogContext& ctx, std::string& out) {
  const StreamInfo* info = ctx.info;
  const size_t before = out.size();
  auto ms = [&](int64_t v) {
    if (v >= 0) appendInt(out, v);
  };
  switch (cmd.kind) {
    case Kind::kLiteral: out += cmd.text; return;
    case Kind::kStartTime:
      if (info != nullptr) {
        timespec now{};
        clock_gettime(CLOCK_REALTIME, &now);
        const int64_t now_ms = static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
        appendTime(out, now_ms - (ctx.end_us - info->start_us) / 1000);
      }
      break;
    case Kind::kDuration:
      if (info != nullptr) ms((ctx.end_us - info->start_us) / 1000);
      break;
    case Kind::kResponseDuration:
      if (info != nullptr && info->response_start_us != 0) ms((info->response_start_us - info->start_us) / 1000);
      break;
    case Kind::kUpstreamServiceTime:
      if (info != nullptr && info->upstream_service_us >= 0) ms(info->upstream_service_us / 1000);
      break;
    case Kind::kResponseCode:
      if (info != nullptr) appendInt(out, info->response_code);
      break;
    case Kind::kResponseFlags:
      if (info != nullptr && info->flag != ResponseFlag::kNone) out += responseFlagName(info->flag);
      break;
    case Kind::kResponseCodeDetails:
      if (info != nullptr) {
        if (info->flag != ResponseFlag::kNone) out += responseFlagDetails(info->flag);
        else if (info->details != nullptr) out += info->details;
        else if (!info->upstream_host.empty() && info->response_code != 0) out += "via_upstream";
      }
      break;
    case Kind::kBytesReceived:
      if (info != nullptr) appendInt(out, static_cast<int64_t>(info->request_body_bytes));
      break;
    case Kind::kBytesSent:
      if (info != nullptr) appendInt(out, static_cast<int64_t>(info->response_body_bytes));
      break;
    case Kind::kProtocol:
      if (ctx.request != nullptr) {
        const auto& r = *ctx.request;
        out += r.version_major == 2 ? "HTTP/2" : r.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
      }
      break;
    case Kind::kUpstreamHost:
      if (info != nullptr) appendValue(out, info->upstream_host, cmd.max_len);
      break;
    case Kind::kUpstreamCluster:
      if (info != nullptr) appendValue(out, info->upstream_cluster, cmd.max_len);
      break;
    case Kind::kDownstreamRemoteAddress:
    case Kind::kDownstreamRemoteAddressWithoutPort:
      if (ctx.connection != nullptr)
        appendIp(out, ctx.connection->remote, cmd.kind == Kind::kDownstreamRemoteAddress);
      break;
    case Kind::kDownstreamLocalAddress:
      if (ctx.connection != nullptr) appendIp(out, ctx.connection->local, true);
      break;
    case Kind::kRouteName: appendValue(out, ctx.route_name, cmd.max_len); break;
    case Kind::kListenerName: out += ctx.listener; break;
    case Kind::kTraceId:
      if (info != nullptr && info->trace.active) {
        char hex[32];
        tracing::toHex(info->trace.trace_id, 16, hex);
        out.append(hex, sizeof hex);
      } else {
        out += traceId(ctx.request);
      }
      break;
    case Kind::kReq:
      if (ctx.request != nullptr) {
        const std::string* v = requestHeader(*ctx.request, cmd.text);
        if (v == nullptr && !cmd.alt.empty()) v = requestHeader(*ctx.request, cmd.alt);
        if (v != nullptr) appendValue(out, *v, cmd.max_len);
      }
      break;
    case Kind::kResp:
      if (ctx.response != nullptr) {
        const std::string* v = ctx.response->headers.get(cmd.text);
        if (v == nullptr && !cmd.alt.empty()) v = ctx.response->headers.get(cmd.alt);
        if (v != nullptr) appendValue(out, *v, cmd.max_len);
      }
      break;
    case Kind::kTrailer:
      if (ctx.response_trailers != nullptr) {
        const std::string* v = ctx.response_trailers->get(cmd.text);
        if (v == nullptr && !cmd.alt.empty()) v = ctx.response_trailers->get(cmd.alt);
        if (v != nullptr) appendValue(out, *v, cmd.max_len);
      }
      break;
  }
  if (out.size() == before) out += '-';
}

// ---- the file and its writer

class AccessLogFile {
 public:
  AccessLogFile(std::unique_ptr<ReopenableFile> file, size_t workers, StatHandle dropped)
      : file_(std::move(file)), channels_(workers + 1), dropped_(dropped) {
    for (auto& c : channels_) c.owner = this;
    writer_ = std::thread([this] { run(); });
  }
  ~AccessLogFile() { stop(); }

  const std::string& path() const { return file_->path(); }

  // Worker side: the buffer the line is appended to; handed over at the end of the batch.
  std::string& begin(WorkerContext& w) {
    Channel& c = channels_[w.worker_index < channels_.size() ? w.worker_index : 0];
    if (!c.flush_timer) {
      c.stats = w.stats;
      c.flush_timer = std::make_unique<Timer>(*w.io, [this, &c] { handOver(c); });
    }
    return c.buf;
  }
  void end(WorkerContext& w) {
    Channel& c = channels_[w.worker_index < channels_.size() ? w.worker_index : 0];
    if (++c.lines == 1) c.flush_timer->enable(kFlushInterval);
    if (c.buf.size() >= kHandOverBytes) handOver(c);
  }

  // After the workers have stopped: what they still hold goes out, then the writer ends.
  void stop() {
    if (!writer_.joinable()) return;
    for (auto& c : channels_) {
      if (c.buf.empty()) continue;
      if (!c.ring.push(c.buf)) file_->write(c.buf);
      c.buf.clear();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    writer_.join();
  }

 private:
  // One worker's side of the file. Lines collect in `buf` until it holds 64 KiB or the first
  // of them is kFlushInterval old, then go to the writer in one hand-over (one wake-up of the
  // writer per hand-over, not per line or per event-loop turn).
  struct Channel {
    AccessLogFile* owner = nullptr;
    StatsShard* stats = nullptr;
    std::unique_ptr<Timer> flush_timer;  // made on the worker, on its first line
    std::string buf;
    uint64_t lines = 0;  // in buf
    Ring ring;
  };

  void handOver(Channel& c) {
    c.flush_timer->disable();
    if (c.buf.empty()) return;
    if (!c.ring.push(c.buf)) {
      if (c.stats != nullptr) c.stats->add(dropped_, static_cast<int64_t>(c.lines));
      c.buf.clear();
    }
    c.lines = 0;
    if (c.buf.capacity() == 0) c.buf.reserve(kHandOverBytes + 4096);
    // A notify without the lock: at worst the writer sees it on its next 100 ms tick.
    pending_.store(true, std::memory_order_release);
    cv_.notify_one();
  }

  void run() {
    std::vector<std::string> taken;
    std::vector<iovec> iov;
    taken.reserve(kRingSlots);
    for (;;) {
      bool stopping;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(100),
                     [&] { return stopping_ || pending_.load(std::memory_order_acquire); });
        stopping = stopping_;
      }
      pending_.store(false, std::memory_order_relaxed);
      drain(taken, iov);
      if (stopping) {
        drain(taken, iov);
        return;
      }
    }
  }

  // Writes everything queued, IOV_MAX-ish buffers per writev.
  void drain(std::vector<std::string>& taken, std::vector<iovec>& iov) {
    for (auto& c : channels_) {
      for (;;) {
        taken.clear();
        iov.clear();
        for (size_t n = 0; n < kRingSlots; ++n) {
          std::string s;
          if (spare_.empty()) {
            if (!c.ring.pop(s)) break;
          } else {
            s.swap(spare_.back());
            spare_.pop_back();
            if (!c.ring.pop(s)) {
              spare_.push_back(std::move(s));
              break;
            }
          }
          taken.push_back(std::move(s));
        }
        if (taken.empty()) break;
        for (auto& s : taken) iov.push_back(iovec{s.data(), s.size()});
        writeAll(iov);
        for (auto& s : taken) {
          s.clear();
          if (s.capacity() > kKeepCapacity) s.shrink_to_fit();
          spare_.push_back(std::move(s));
        }
      }
    }
  }

  void writeAll(std::vector<iovec>& iov) {
    size_t i = 0;
    while (i < iov.size()) {
      const int n = static_cast<int>(std::min<size_t>(iov.size() - i, 1024));
      ssize_t w = ::writev(file_->fd(), &iov[i], n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return;  // a full disk: the lines are lost (nothing else to do with them)
      size_t left = static_cast<size_t>(w);
      while (i < iov.size() && left >= iov[i].iov_len) left -= iov[i++].iov_len;
      if (left > 0) {
        iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
        iov[i].iov_len -= left;
      }
    }
  }

  std::unique_ptr<ReopenableFile> file_;
  std::vector<Channel> channels_;  // [worker index]; 0 = the main thread
  StatHandle dropped_;
  std::vector<std::string> spare_;  // writer: emptied buffers to put back into rings
  std::mutex mu_;                   // writer's sleep only; workers never take it
  std::condition_variable cv_;
  std::atomic<bool> pending_{false};
  bool stopping_ = false;
  std::thread writer_;
};

namespace {

// Open files by path, for the life of the process (main thread). A path a reload drops stays
// open (and idle) until the process ends.
std::map<std::string, std::shared_ptr<AccessLogFile>>& files() {
  static auto* f = new std::map<std::string, std::shared_ptr<AccessLogFile>>();
  return *f;
}

}  // namespace

std::shared_ptr<const AccessLog> AccessLog::create(const config::AccessLogConfig& cfg, size_t workers,
                                                    StatsStore& stats, std::string* error) {
  auto& all = files();
  auto it = all.find(cfg.path);
  std::shared_ptr<AccessLogFile> file;
  if (it != all.end()) {
    file = it->second;
  } else {
    auto f = ReopenableFile::open(cfg.path, 0644, error);
    if (!f) {
      *error = "access log " + cfg.path + ": " + *error;
      return nullptr;
    }
    auto dropped = stats.counter("ferry_access_log_dropped_lines_total", {{"path", cfg.path}},
                                 "Access log lines dropped because the writer fell behind.");
    file = std::make_shared<AccessLogFile>(std::move(f), workers, dropped);
    all.emplace(cfg.path, file);
  }
  return std::shared_ptr<const AccessLog>(new AccessLog(cfg, std::move(file)));
}

AccessLog::AccessLog(const config::AccessLogConfig& cfg, std::shared_ptr<AccessLogFile> file)
    : cfg_(cfg), file_(std::move(file)) {
  for (const auto& [key, fmt] : cfg_.json) {
    std::string k;
    config::appendJsonString(k, key);
    json_keys_.push_back(k + ':');
  }
  const double r = cfg.sample_rate;
  sample_threshold_ = r >= 1.0 ? UINT64_MAX : static_cast<uint64_t>(r * 18446744073709551616.0);
}

AccessLog::~AccessLog() = default;

void AccessLog::format(const LogContext& ctx, std::string& out) const {
  if (cfg_.format == config::AccessLogConfig::Format::kText) {
    for (const auto& c : cfg_.text) formatLogCommand(c, ctx, out);
    return;
  }
  // Values are formatted straight into the line; the rare one that needs escaping is escaped
  // afterwards (no per-line allocation otherwise).
  out += '{';
  for (size_t i = 0; i < cfg_.json.size(); ++i) {
    if (i != 0) out += ',';
    out += json_keys_[i];
    const auto& fmt = cfg_.json[i].second;
    const bool single = fmt.size() == 1 && fmt[0].kind != Kind::kLiteral;
    const size_t at = out.size();
    if (single && isNumeric(fmt[0].kind)) {
      formatLogCommand(fmt[0], ctx, out);
      if (out.size() == at + 1 && out[at] == '-') {
        out.resize(at);
        out += "null";
      }
      continue;
    }
    out += '"';
    for (const auto& c : fmt) formatLogCommand(c, ctx, out);
    if (single && out.size() == at + 2 && out[at + 1] == '-') {
      out.resize(at);
      out += "null";
      continue;
    }
    bool plain = true;
    for (size_t j = at + 1; j < out.size() && plain; ++j) {
      const auto ch = static_cast<unsigned char>(out[j]);
      plain = ch != '"' && ch != '\\' && ch >= 0x20 && ch != 0x7f;
    }
    if (plain) {
      out += '"';
    } else {
      std::string raw = out.substr(at + 1);
      out.resize(at);
      config::appendJsonString(out, raw);
    }
  }
  out += '}';
}

void AccessLog::log(WorkerContext& worker, const LogContext& ctx) const {
  const int status = ctx.info != nullptr ? ctx.info->response_code : 0;
  if (status < static_cast<int>(cfg_.min_status) || status > static_cast<int>(cfg_.max_status)) return;
  if (cfg_.flagged_only && (ctx.info == nullptr || ctx.info->flag == ResponseFlag::kNone)) return;
  if (sample_threshold_ != UINT64_MAX && tracing::IdGenerator::local().next() >= sample_threshold_) return;
  std::string& buf = file_->begin(worker);
  format(ctx, buf);
  buf += '\n';
  file_->end(worker);
}

void shutdownAccessLogs() {
  for (auto& [path, f] : files()) f->stop();
}

}  // namespace ferry::core::http
