#include "core/upstream/health_checker.h"

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <optional>
#include <random>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "core/event/timer.h"
#include "core/http/http2/codec.h"
#include "core/log.h"
#include "core/net/connection.h"

namespace ferry::core::upstream {
namespace asio = boost::asio;

namespace {

constexpr size_t kReadChunk = 4096;
// A status line longer than this is not one; stops a peer that streams bytes without a newline.
constexpr size_t kMaxStatusLine = 4096;
// The TCP check reads at most this much looking for cfg.expect.
constexpr size_t kMaxExpectRead = 64 * 1024;

// "HTTP/1.x NNN" followed by end of line or SP reason (which may be empty). Returns the
// status code, or -1 when the line is not a status line.
int parseStatusLine(std::string_view line) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || !digit(line[7]) || line[8] != ' ') return -1;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (!digit(line[i])) return -1;
    status = status * 10 + (line[i] - '0');
  }
  if (line.size() > 12 && line[12] != ' ') return -1;
  return status < 100 ? -1 : status;
}

// A short printable excerpt of what the peer sent, for the failure detail (debug log only).
std::string excerpt(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  return out;
}

}  // namespace

// One gRPC health check (grpc.health.v1.Health/Check) over an HTTP/2 client codec on the
// check's connection. It only records the verdict; the target acts on it once the codec call
// that produced it has returned.
class GrpcCheck final : public http::CodecIo,
                        public http::ClientConnectionCallbacks,
                        public http::ResponseDecoder,
                        public http::StreamCallbacks {
 public:
  explicit GrpcCheck(net::Connection& conn) : conn_(conn), codec_(http::http2::makeClientConnection(*this, *this)) {}

  void start(const std::string& authority, const std::string& service) {
    http::RequestHeaders h;
    h.method = "POST";
    h.scheme = "http";
    h.path = "/grpc.health.v1.Health/Check";
    h.authority = authority;
    h.headers.add("content-type", "application/grpc");
    h.headers.add("te", "trailers");
    h.headers.add("user-agent", "ferry-health-check");
    // HealthCheckRequest { string service = 1; } in a gRPC message frame.
    std::string msg;
    if (!service.empty()) {
      msg += '\x0a';
      size_t n = service.size();
      while (n >= 0x80) {
        msg += static_cast<char>((n & 0x7f) | 0x80);
        n >>= 7;
      }
      msg += static_cast<char>(n);
      msg += service;
    }
    std::string frame(5, '\0');
    frame[1] = static_cast<char>(msg.size() >> 24);
    frame[2] = static_cast<char>(msg.size() >> 16);
    frame[3] = static_cast<char>(msg.size() >> 8);
    frame[4] = static_cast<char>(msg.size());
    frame += msg;
    http::RequestEncoder& enc = codec_->newStream(*this);
    enc.setStreamCallbacks(this);
    enc.encodeHeaders(h, false);
    Buffer body;
    body.add(frame);
    enc.encodeData(body, true);
  }
  void dispatch(Buffer& data, bool eof) { codec_->dispatch(data, eof); }
  // The verdict, once there is one.
  std::optional<std::pair<bool, std::string>> result;

 private:
  // http::CodecIo
  void write(Buffer& data, bool end_stream) override { conn_.write(data, end_stream); }
  void closeConnection(bool) override { verdict(false, "HTTP/2 connection error"); }
  void readDisable(bool) override {}
  // http::ClientConnectionCallbacks
  void onStreamEnd() override {}
  // http::ResponseDecoder
  void decode1xxHeaders(http::ResponseHeadersPtr) override {}
  void decodeHeaders(http::ResponseHeadersPtr h, bool end_stream) override {
    if (h->status != 200) return verdict(false, "unexpected status " + std::to_string(h->status));
    if (end_stream) trailers(h->headers);  // Trailers-Only: grpc-status in the headers
  }
  void decodeData(Buffer& data, bool end_stream) override {
    const size_t take = std::min<size_t>(data.length(), 1024 - std::min<size_t>(body_.size(), 1024));
    const size_t old = body_.size();
    body_.resize(old + take);
    data.copyOut(0, take, body_.data() + old);
    data.clear();
    if (end_stream) verdict(false, "no grpc-status");
  }
  void decodeTrailers(http::HeaderMap t) override { trailers(t); }
  // http::StreamCallbacks
  void onResetStream(http::StreamResetReason r, std::string_view detail) override {
    verdict(false, std::string("stream ") + http::resetReasonName(r) + ": " + std::string(detail));
  }

  void trailers(const http::HeaderMap& t) {
    const std::string* st = t.get("grpc-status");
    if (st == nullptr) return verdict(false, "no grpc-status");
    if (*st != "0") {
      const std::string* m = t.get("grpc-message");
      return verdict(false, "grpc-status " + *st + (m != nullptr ? " " + *m : std::string()));
    }
    // HealthCheckResponse { ServingStatus status = 1; } with SERVING = 1, after the 5-byte
    // message prefix.
    if (body_.size() < 5) return verdict(false, "empty response");
    std::string_view m(body_.data() + 5, body_.size() - 5);
    int status = 0;  // UNKNOWN
    for (size_t i = 0; i + 1 < m.size(); ++i) {
      if (m[i] == '\x08') {
        status = static_cast<unsigned char>(m[i + 1]);
        break;
      }
    }
    if (status != 1) return verdict(false, "serving status " + std::to_string(status) + " (not SERVING)");
    verdict(true, "");
  }
  void verdict(bool ok, std::string detail) {
    if (!result) result.emplace(ok, std::move(detail));
  }

  net::Connection& conn_;
  std::unique_ptr<http::ClientConnection> codec_;
  std::string body_;
};

struct HealthChecker::Impl {
  // One checked host. Shared with nothing but the local references that keep it alive while
  // one of its own callbacks runs: a check's connection and timer belong to it, so removing
  // the host (or destroying the checker) cancels both, and no callback of theirs runs after.
  struct Target : net::ConnectionCallbacks, std::enable_shared_from_this<Target> {
    Target(Impl& i, uint64_t id_in, const sockaddr_storage& a, std::string text)
        : impl(&i), id(id_in), addr(a), address(std::move(text)), timer(i.io, [this] { onTimer(); }) {}
    ~Target() override { dropConnection(); }

    Impl* impl;  // null once removed or the checker is gone
    uint64_t id;
    sockaddr_storage addr;
    std::string address;
    Timer timer;  // the deadline while a check runs, else the wait for the next one
    bool checking = false;
    std::shared_ptr<net::Connection> conn;
    std::unique_ptr<GrpcCheck> grpc;  // a grpc check's codec, on `conn`
    std::string in;  // reply bytes received so far
    bool healthy = true;
    uint32_t passes = 0;  // consecutive, counted while unhealthy
    uint32_t fails = 0;   // consecutive, counted while healthy

    void dropConnection() {
      grpc.reset();
      if (!conn) return;
      conn->setCallbacks(nullptr);
      conn->close(net::Connection::CloseType::kNoFlush);
      conn.reset();
    }

    void start() {
      checking = true;
      in.clear();
      if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) {
        // Finished from the loop, not here: addTarget must not run callbacks re-entrantly.
        timer.enable(std::chrono::milliseconds(0));
        return;
      }
      auto transport = impl->transport ? impl->transport(id) : net::makePlainTransport();
      if (transport)
        conn = net::Connection::connect(impl->io, addr, impl->cfg.timeout, net::BufferAccounting{},
                                        std::move(transport));
      if (!conn) {
        timer.enable(std::chrono::milliseconds(0));  // no socket: fails from the loop
        return;
      }
      conn->setCallbacks(this);
      timer.enable(impl->cfg.timeout);
      const auto& cfg = impl->cfg;
      // Bytes to send go out once connected (the connection buffers them until then).
      Buffer out;
      if (cfg.type == config::HealthCheckConfig::Type::kGrpc) {
        grpc = std::make_unique<GrpcCheck>(*conn);
        grpc->start(impl->default_host, cfg.grpc_service);
      } else if (cfg.type == config::HealthCheckConfig::Type::kHttp) {
        out.add(impl->request);
      } else if (!cfg.send.empty()) {
        out.add(cfg.send);
      }
      if (!out.empty()) conn->write(out, false);
    }

    void onTimer() {
      if (!checking) {  // the wait between checks is over
        start();
        return;
      }
      if (!conn) return finish(false, addr.ss_family != AF_INET && addr.ss_family != AF_INET6
                                          ? "unsupported address family"
                                          : "cannot create a socket");
      finish(false, "timeout");
    }

    void onEvent(net::ConnectionEvent e) override {
      if (!checking) return;
      switch (e) {
        case net::ConnectionEvent::kConnected: {
          const auto& cfg = impl->cfg;
          // TCP: connect only, or send without expect, passes once connected.
          if (cfg.type == config::HealthCheckConfig::Type::kTcp && cfg.expect.empty()) finish(true, "");
          return;
        }
        case net::ConnectionEvent::kConnectFailed:
          return finish(false, conn->closeReason());  // "connect: ..." or "connect timeout"
        case net::ConnectionEvent::kRemoteClose:
        case net::ConnectionEvent::kLocalClose:
          return finish(false, "connection closed: " + conn->closeReason());
      }
    }

    void onData(Buffer& data, bool end_stream) override {
      if (!checking) return;
      auto keep = shared_from_this();
      const auto& cfg = impl->cfg;
      if (grpc) {
        grpc->dispatch(data, end_stream);
        if (grpc && grpc->result) {
          auto r = *grpc->result;
          return finish(r.first, r.second);
        }
        if (end_stream) return finish(false, "connection closed before the answer");
      } else if (cfg.type == config::HealthCheckConfig::Type::kHttp) {
        readStatus(data, end_stream);
      } else {
        readExpect(data, end_stream);
      }
    }

    // HTTP: reads until the status line is complete; the headers and body are not needed.
    void readStatus(Buffer& data, bool eof) {
      size_t scanned = in.size();
      size_t take = std::min(data.length(), kMaxStatusLine + 1 - std::min(in.size(), kMaxStatusLine + 1));
      in.resize(scanned + take);
      data.copyOut(0, take, in.data() + scanned);
      data.clear();
      size_t nl = in.find('\n', scanned);
      if (nl != std::string::npos) {
        std::string_view line(in.data(), nl);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        int status = parseStatusLine(line);
        if (status < 0) return finish(false, "malformed status line: " + excerpt(line));
        for (const auto& [lo, hi] : impl->cfg.expected_statuses)
          if (status >= lo && status <= hi) return finish(true, "");
        return finish(false, "unexpected status " + std::to_string(status));
      }
      if (in.size() > kMaxStatusLine) return finish(false, "malformed status line: too long");
      if (eof) return finish(false, in.empty() ? "closed before status line" : "malformed status line: " + excerpt(in));
    }

    // TCP: reads until the reply so far contains cfg.expect, up to kMaxExpectRead bytes.
    void readExpect(Buffer& data, bool eof) {
      const std::string& expect = impl->cfg.expect;
      // Search only the new bytes plus enough of the old ones for a match across reads.
      size_t from = in.size() >= expect.size() ? in.size() - expect.size() + 1 : 0;
      size_t take = std::min(data.length(), kMaxExpectRead - in.size());
      const size_t old = in.size();
      in.resize(old + take);
      data.copyOut(0, take, in.data() + old);
      data.clear();
      if (in.find(expect, from) != std::string::npos) return finish(true, "");
      if (in.size() >= kMaxExpectRead) return finish(false, "expected reply not in the first 64 KiB");
      if (eof) return finish(false, "closed before the expected reply");
    }

    // Ends the check in progress: closes the connection, applies the thresholds, runs the
    // callbacks and schedules the next check unless a callback removed the host or destroyed
    // the checker.
    void finish(bool passed, const std::string& detail) {
      auto keep = shared_from_this();
      checking = false;
      timer.disable();
      dropConnection();
      if (in.capacity() > kReadChunk) std::string().swap(in);  // don't keep 64 KiB per host between checks
      in.clear();
      Impl* checker = impl;
      bool changed = false;
      if (passed) {
        fails = 0;
        if (!healthy && ++passes >= std::max<uint32_t>(1, checker->cfg.healthy_threshold)) {
          healthy = true;
          passes = 0;
          changed = true;
        }
      } else {
        passes = 0;
        if (healthy && ++fails >= std::max<uint32_t>(1, checker->cfg.unhealthy_threshold)) {
          healthy = false;
          fails = 0;
          changed = true;
        }
      }
      if (changed) {
        FERRY_LOG(kDebug, "health check: host ", address, healthy ? " is healthy" : " is unhealthy",
                  detail.empty() ? "" : " (", detail, detail.empty() ? "" : ")");
      }
      std::shared_ptr<const Callbacks> cbs = checker->callbacks;
      const bool now_healthy = healthy;
      if (cbs->on_result) cbs->on_result(id, passed, detail);
      if (impl == nullptr) return;  // removed, re-added or the checker destroyed by the callback
      if (changed && cbs->on_change) cbs->on_change(id, now_healthy);
      if (impl == nullptr) return;
      config::Duration delay = impl->cfg.interval;
      if (impl->cfg.jitter.count() > 0)
        delay += config::Duration(std::uniform_int_distribution<config::Duration::rep>(0, impl->cfg.jitter.count())(impl->rng));
      timer.enable(delay);
    }
  };
  using TargetPtr = std::shared_ptr<Target>;

  // Held by shared_ptr so that a callback that destroys the checker does not destroy the
  // std::function that is running.
  struct Callbacks {
    OnChange on_change;
    OnResult on_result;
  };

  Impl(asio::io_context& io_in, const config::HealthCheckConfig& cfg_in, std::string default_host,
       OnChange on_change, OnResult on_result, TransportFor transport_in)
      : io(io_in),
        cfg(cfg_in),
        callbacks(std::make_shared<const Callbacks>(Callbacks{std::move(on_change), std::move(on_result)})),
        transport(std::move(transport_in)),
        rng(std::random_device{}()) {
    this->default_host = cfg.host.empty() ? default_host : cfg.host;
    if (cfg.type == config::HealthCheckConfig::Type::kHttp) {
      request = "GET " + (cfg.path.empty() ? std::string("/") : cfg.path) + " HTTP/1.1\r\nHost: " +
                (cfg.host.empty() ? default_host : cfg.host) +
                "\r\nUser-Agent: ferry-health-check\r\nConnection: close\r\n\r\n";
    }
  }

  ~Impl() {
    for (auto& [id, t] : targets) retire(*t);
  }

  static void retire(Target& t) {
    t.impl = nullptr;
    t.checking = false;
    t.timer.disable();
    t.dropConnection();
  }

  void add(uint64_t id, const sockaddr_storage& addr, const std::string& address, bool healthy) {
    remove(id);  // ids are unique by contract; a repeated add restarts the host cleanly
    auto t = std::make_shared<Target>(*this, id, addr, address);
    t->healthy = healthy;
    targets.emplace(id, t);
    t->start();
  }

  void remove(uint64_t id) {
    auto it = targets.find(id);
    if (it == targets.end()) return;
    retire(*it->second);
    targets.erase(it);
  }

  asio::io_context& io;
  config::HealthCheckConfig cfg;
  std::string request;  // HTTP: the whole request, the same for every check
  std::string default_host;  // Host (HTTP) or :authority (gRPC)
  std::shared_ptr<const Callbacks> callbacks;
  TransportFor transport;
  std::unordered_map<uint64_t, TargetPtr> targets;
  std::mt19937_64 rng;
};

HealthChecker::HealthChecker(asio::io_context& io, const config::HealthCheckConfig& cfg, std::string default_host,
                             OnChange on_change, OnResult on_result, TransportFor transport)
    : impl_(std::make_unique<Impl>(io, cfg, std::move(default_host), std::move(on_change), std::move(on_result),
                                   std::move(transport))) {}

HealthChecker::~HealthChecker() = default;

void HealthChecker::addTarget(uint64_t id, const sockaddr_storage& addr, const std::string& address, bool healthy) {
  impl_->add(id, addr, address, healthy);
}

void HealthChecker::removeTarget(uint64_t id) { impl_->remove(id); }

// A host that is not (or no longer) checked has no evidence against it: healthy.
bool HealthChecker::healthy(uint64_t id) const {
  auto it = impl_->targets.find(id);
  return it == impl_->targets.end() || it->second->healthy;
}

}  // namespace ferry::core::upstream
