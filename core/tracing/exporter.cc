#include "core/tracing/exporter.h"

#include <charconv>

#include "core/buffer.h"
#include "core/event/deferred_deleter.h"
#include "core/event/timer.h"
#include "core/http/codec.h"
#include "core/log.h"
#include "core/upstream/cluster.h"
#include "core/upstream/stream_pool.h"

namespace ferry::core::tracing {
namespace {

constexpr std::string_view kBodySuffix = "]}]}]}";

// A JSON string literal. Bytes outside printable ASCII are escaped as \u00XX (read as
// Latin-1), so the body is valid UTF-8 whatever a client sent in its headers.
void appendString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t run = 0;  // start of the plain run not copied yet
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

void appendInt(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void appendHex(std::string& out, const uint8_t* p, size_t n) {
  const size_t at = out.size();
  out.resize(at + 2 * n + 2);
  out[at] = '"';
  toHex(p, n, out.data() + at + 1);
  out[at + 2 * n + 1] = '"';
}

void stringAttr(std::string& out, bool& first, std::string_view key, std::string_view value) {
  if (value.empty()) return;
  out += first ? "{\"key\":\"" : ",{\"key\":\"";
  first = false;
  out += key;
  out += "\",\"value\":{\"stringValue\":";
  appendString(out, value);
  out += "}}";
}

}  // namespace

const char* exportFailureName(ExportFailure f) {
  switch (f) {
    case ExportFailure::kConnect: return "connect";
    case ExportFailure::kStatus: return "status";
    case ExportFailure::kTimeout: return "timeout";
    case ExportFailure::kReset: return "reset";
    default: return "unknown";
  }
}

void ExportConfig::setServiceName(std::string_view service_name) {
  body_prefix = "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":";
  appendString(body_prefix, service_name);
  body_prefix += "}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"ferry\"},\"spans\":[";
}

void appendSpanJson(std::string& out, const SpanRecord& s) {
  const TraceContext& t = *s.trace;
  out += "{\"traceId\":";
  appendHex(out, t.trace_id, 16);
  out += ",\"spanId\":";
  appendHex(out, t.span_id, 8);
  if (t.has_parent) {
    out += ",\"parentSpanId\":";
    appendHex(out, t.parent_id, 8);
  }
  out += ",\"name\":";
  appendString(out, s.method);
  out += ",\"kind\":2,\"startTimeUnixNano\":\"";
  appendInt(out, s.start_unix_ns);
  out += "\",\"endTimeUnixNano\":\"";
  appendInt(out, s.end_unix_ns);
  out += "\",\"attributes\":[";
  bool first = true;
  stringAttr(out, first, "http.request.method", s.method);
  stringAttr(out, first, "url.path", s.path);
  stringAttr(out, first, "url.scheme", s.scheme);
  stringAttr(out, first, "server.address", s.server_address);
  stringAttr(out, first, "network.protocol.version", s.protocol_version);
  if (s.status != 0) {
    out += first ? "{" : ",{";
    first = false;
    out += "\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"";
    appendInt(out, s.status);
    out += "\"}}";
  }
  stringAttr(out, first, "user_agent.original", s.user_agent);
  stringAttr(out, first, "client.address", s.client_address);
  if (!s.request_id.empty()) {  // semantic conventions: request headers are string arrays
    out += first ? "{" : ",{";
    first = false;
    out += "\"key\":\"http.request.header.x-request-id\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":";
    appendString(out, s.request_id);
    out += "}]}}}";
  }
  stringAttr(out, first, "ferry.response_flags", s.response_flags);
  stringAttr(out, first, "ferry.upstream_cluster", s.upstream_cluster);
  out += ']';
  // 5xx, or no response at all (the stream was reset): STATUS_CODE_ERROR. Otherwise unset,
  // as the HTTP semantic conventions ask of server spans (4xx is the client's error).
  if (s.status == 0 || s.status >= 500) out += ",\"status\":{\"code\":2}";
  out += '}';
}

// ---- one POST of one batch

class SpanExporter::Export final : public http::ResponseDecoder,
                                   public http::StreamCallbacks,
                                   public upstream::StreamPoolCallbacks {
 public:
  Export(SpanExporter& owner, Batch batch) : owner_(owner), batch_(std::move(batch)) {}
  ~Export() override {
    timer_.reset();
    finished_ = true;  // a reset the abandon causes is not retried, nor reported
    abandon();
  }

  void start(upstream::StreamPool& pool) {
    pool_ = &pool;
    timer_ = std::make_unique<Timer>(*owner_.ctx_.io, [this] {
      done(false, ExportFailure::kTimeout);  // first: the reset below is then not retried
      abandon();  // still alive: done() hands it to the graveyard, which frees it later
    });
    timer_->enable(batch_.cfg->timeout);
    request();
  }
  uint32_t spans() const { return batch_.spans; }
  std::string takeBody() { return std::move(batch_.body); }
  std::list<std::unique_ptr<Export>>::iterator self;

  // StreamPoolCallbacks
  void onPoolReady(http::RequestEncoder& encoder, bool reused) override {
    ticket_ = 0;
    encoder_ = &encoder;
    reused_ = reused;
    http::RequestHeaders h;
    h.method = "POST";
    h.path = batch_.cfg->path;
    h.authority = batch_.cfg->authority;
    h.scheme = batch_.cfg->cluster->config().tls ? "https" : "http";
    h.headers.add("content-type", "application/json");
    h.headers.add("content-length", std::to_string(batch_.body.size()));
    const uint32_t attempt = attempt_;
    encoder.encodeHeaders(h, false);
    if (encoder_ != &encoder || attempt != attempt_) return;  // the write ended the stream
    Buffer body;
    body.add(batch_.body);
    encoder.encodeData(body, true);
  }
  void onPoolFailure(upstream::PoolFailure, std::string_view detail) override {
    ticket_ = 0;
    FERRY_LOG(kDebug, "tracing: ", batch_.cfg->listener, ": export: ", log::sv(detail));
    done(false, ExportFailure::kConnect);
  }
  // ResponseDecoder
  void decode1xxHeaders(http::ResponseHeadersPtr) override {}
  void decodeHeaders(http::ResponseHeadersPtr headers, bool end_stream) override {
    status_ = headers->status;
    if (end_stream) finished();
  }
  void decodeData(Buffer& data, bool end_stream) override {
    data.clear();
    if (end_stream) finished();
  }
  void decodeTrailers(http::HeaderMap) override { finished(); }
  // StreamCallbacks
  void onResetStream(http::StreamResetReason, std::string_view detail) override {
    encoder_ = nullptr;
    if (finished_) return;
    // A kept-alive connection the collector closed just before the POST: once more, on a
    // new stream (nothing of the response arrived, so nothing is sent twice to a reader).
    if (reused_ && status_ == 0 && !retried_) {
      retried_ = true;
      request();
      return;
    }
    FERRY_LOG(kDebug, "tracing: ", batch_.cfg->listener, ": export stream reset: ", log::sv(detail));
    done(false, ExportFailure::kReset);
  }
  void onAboveWriteBufferHighWatermark() override {}
  void onBelowWriteBufferLowWatermark() override {}

 private:
  void request() {
    ++attempt_;
    const uint64_t ticket = pool_->newStream(*this, *this, *this);
    if (ticket != 0) ticket_ = ticket;
  }
  void finished() {
    encoder_ = nullptr;  // the stream belongs to the pool again
    const bool ok = status_ >= 200 && status_ < 300;
    if (!ok) FERRY_LOG(kDebug, "tracing: ", batch_.cfg->listener, ": collector answered ", status_);
    done(ok, ExportFailure::kStatus);
  }
  // Withdraws a waiting request or resets the stream in progress.
  void abandon() {
    if (ticket_ != 0) {
      const uint64_t t = ticket_;
      ticket_ = 0;
      pool_->cancel(t);
    }
    if (encoder_ != nullptr) {
      http::RequestEncoder* e = encoder_;
      encoder_ = nullptr;
      e->resetStream(http::StreamResetReason::kLocalReset);
    }
  }
  void done(bool ok, ExportFailure why) {
    if (finished_) return;
    finished_ = true;
    if (timer_) timer_->disable();
    owner_.onExportDone(*this, ok, why);
  }

  SpanExporter& owner_;
  Batch batch_;
  upstream::StreamPool* pool_ = nullptr;
  std::unique_ptr<Timer> timer_;
  uint64_t ticket_ = 0;
  http::RequestEncoder* encoder_ = nullptr;
  int status_ = 0;
  uint32_t attempt_ = 0;
  bool reused_ = false;
  bool retried_ = false;
  bool finished_ = false;
};

// ---- the exporter

class SpanExporter::FlushTimer {
 public:
  FlushTimer(boost::asio::io_context& io, std::function<void()> cb) : timer(io, std::move(cb)), graveyard(io) {}
  Timer timer;
  DeferredDeleter<Export> graveyard;
};

SpanExporter::SpanExporter(WorkerContext& ctx, std::shared_ptr<const ExportConfig> cfg)
    : ctx_(ctx), cfg_(std::move(cfg)) {
  flush_ = std::make_unique<FlushTimer>(*ctx_.io, [this] {
    closeOpen();
    sendReady();
  });
}

SpanExporter::~SpanExporter() {
  alive_ = false;
  in_flight_.clear();  // resets their streams; no callback reaches us any more
}

void SpanExporter::setConfig(std::shared_ptr<const ExportConfig> cfg) {
  closeOpen();  // spans of the old config go out with its settings
  cfg_ = std::move(cfg);
  sendReady();
}

bool SpanExporter::add(const SpanRecord& span) {
  if (queued_ >= cfg_->max_queue) {
    ctx_.stats->inc(cfg_->dropped_queue_full);
    return false;
  }
  if (!open_) {
    open_.emplace();
    open_->cfg = cfg_;
    open_->body.swap(spare_);
    open_->body.clear();
    open_->body += cfg_->body_prefix;
    // A batch waits at most flush_interval for more spans.
    flush_->timer.enable(cfg_->flush_interval);
  } else {
    open_->body += ',';
  }
  appendSpanJson(open_->body, span);
  ++open_->spans;
  ++queued_;
  if (open_->spans >= open_->cfg->max_batch) {
    closeOpen();
    sendReady();
  }
  return true;
}

void SpanExporter::closeOpen() {
  if (!open_) return;
  ready_.push_back(std::move(*open_));
  open_.reset();
}

void SpanExporter::sendReady() {
  if (sending_) return;  // a failure inside send(): the loop below goes on by itself
  sending_ = true;
  while (!ready_.empty() && in_flight_.size() < kMaxInFlight) {
    Batch b = std::move(ready_.front());
    ready_.pop_front();
    queued_ -= b.spans;
    send(std::move(b));
  }
  sending_ = false;
}

void SpanExporter::send(Batch batch) {
  batch.body += kBodySuffix;
  const upstream::Cluster* cluster = batch.cfg->cluster.get();
  const upstream::HostPtr* host = cluster != nullptr && ctx_.lb != nullptr ? ctx_.lb->pick(*cluster, {}) : nullptr;
  auto e = std::make_unique<Export>(*this, std::move(batch));
  Export& ref = *e;
  in_flight_.push_back(std::move(e));
  ref.self = std::prev(in_flight_.end());
  if (host == nullptr || ctx_.pools == nullptr) {
    FERRY_LOG(kDebug, "tracing: ", cfg_->listener, ": export: no healthy collector");
    onExportDone(ref, false, ExportFailure::kConnect);
    return;
  }
  ref.start(ctx_.pools->pool(*cluster, *host));  // may finish (and retire) it right here
}

void SpanExporter::onExportDone(Export& e, bool ok, ExportFailure why) {
  if (!alive_) return;
  const auto& cfg = *cfg_;
  if (ok) {
    ctx_.stats->add(cfg.exported, e.spans());
  } else {
    ctx_.stats->inc(cfg.failures[static_cast<size_t>(why)]);
    ctx_.stats->add(cfg.dropped_export, e.spans());
  }
  if (spare_.capacity() == 0) spare_ = e.takeBody();
  std::unique_ptr<Export> dying = std::move(*e.self);
  in_flight_.erase(e.self);
  flush_->graveyard.add(std::move(dying));  // it is on the call stack
  sendReady();
}

// ---- per worker

WorkerTracing::~WorkerTracing() = default;

SpanExporter& WorkerTracing::exporter(const std::shared_ptr<const ExportConfig>& cfg) {
  auto it = exporters_.find(cfg->listener);
  if (it == exporters_.end()) {
    it = exporters_.emplace(cfg->listener, std::make_unique<SpanExporter>(ctx_, cfg)).first;
  } else if (it->second->config() != cfg) {
    it->second->setConfig(cfg);
  }
  return *it->second;
}

}  // namespace ferry::core::tracing
