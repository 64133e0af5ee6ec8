#include "filters/network/http_connection_manager/hcm.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "core/log.h"
#include "core/net/socket_util.h"
#include "core/http/http1/connection.h"
#include "core/http/http2/codec.h"
#include "filters/network/http_connection_manager/connection_manager.h"

namespace ferry::filters::network {
using core::Buffer;
using core::net::Connection;
using core::net::FilterStatus;

namespace {

core::http::http1::CodecLimits limitsOf(const config::HttpConfig& h) {
  core::http::http1::CodecLimits l;
  l.max_header_bytes = static_cast<size_t>(h.max_request_headers_kb) * 1024;
  l.max_headers = h.max_headers;
  return l;
}

// http.tracing: the sample rate, and the OTLP exporter's settings and counters.
std::shared_ptr<const core::tracing::TracerConfig> buildTracing(const config::TracingConfig& t, const BuildContext& ctx) {
  namespace tr = core::tracing;
  auto out = std::make_shared<tr::TracerConfig>();
  out->sample_rate = t.sample_rate;
  if (!t.otlp) return out;
  auto e = std::make_shared<tr::ExportConfig>();
  const auto& o = *t.otlp;
  e->listener = ctx.listener.name;
  e->cluster = ctx.clusters ? ctx.clusters(o.cluster) : nullptr;  // the loader checked the name
  e->path = o.path;
  e->authority = o.cluster;
  e->timeout = o.timeout;
  e->flush_interval = o.flush_interval;
  e->max_batch = o.max_batch;
  e->max_queue = o.max_queue;
  e->setServiceName(t.service_name);
  auto& stats = ctx.stats;
  const std::string& l = ctx.listener.name;
  e->exported = stats.counter("ferry_tracing_spans_exported_total", {{"listener", l}},
                              "Spans the OTLP collector accepted (2xx).");
  const std::string dropped_help = "Sampled spans not exported: the worker's queue was full, or their batch failed.";
  e->dropped_queue_full =
      stats.counter("ferry_tracing_spans_dropped_total", {{"listener", l}, {"reason", "queue_full"}}, dropped_help);
  e->dropped_export =
      stats.counter("ferry_tracing_spans_dropped_total", {{"listener", l}, {"reason", "export_failed"}}, dropped_help);
  for (size_t k = 0; k < static_cast<size_t>(tr::ExportFailure::kCount); ++k)
    e->failures[k] = stats.counter("ferry_tracing_export_failures_total",
                                   {{"listener", l}, {"reason", tr::exportFailureName(static_cast<tr::ExportFailure>(k))}},
                                   "OTLP export POSTs that failed, by reason.");
  out->exporter = std::move(e);
  return out;
}

}  // namespace

// The HTTP state of a connection while a request is under way (see connection_manager.h).
// Pooled per thread: what the pool keeps is the HTTP/1 codec and its grown memory; everything
// bound to one connection is dropped when a session goes back.
class HttpConnectionManager::Session final : public http::ServerConnectionCallbacks,
                                             public http::CodecIo,
                                             private core::DeferredAction {
 public:
  static Session* take(HttpConnectionManager& hcm);
  static void give(Session* s);
  static size_t pooled();

  // ServerConnectionCallbacks
  http::RequestDecoder& newStream(http::ResponseEncoder& encoder) override { return hcm->newStream(encoder); }
  void onCodecError(int status, http::ResponseFlag flag, std::string_view detail) override {
    hcm->onCodecError(status, flag, detail);
  }
  void onStreamRejected(int status, http::ResponseFlag flag, std::string_view detail) override {
    hcm->onStreamRejected(status, flag, detail);
  }
  bool responseFlagsHeader() const override { return hcm->config_->http.response_flags_header; }

  // CodecIo
  void write(Buffer& data, bool end_stream) override { hcm->callbacks_->writeDownstream(data, end_stream); }
  void closeConnection(bool flush) override { hcm->closeConnection(flush); }
  void readDisable(bool disable) override { hcm->readDisable(disable); }
  core::Poller* poller() override { return &hcm->worker().poller(); }

  // afterStreams() from the loop: after the current event (no timer, no syscall), or else on
  // a zero-delay timer.
  void scheduleSweep() {
    if (sweep_queued) return;
    sweep_queued = true;
    auto& w = hcm->worker();
    core::Poller& p = w.poller();
    if (p.dispatching()) {
      p.defer(this);
      return;
    }
    if (!sweep_timer) sweep_timer.emplace(w.timers(), [this] {
      sweep_queued = false;
      hcm->afterStreams();  // may give this session back: nothing touches it after
    });
    sweep_timer->enable(std::chrono::milliseconds(0));
  }
  void cancelSweep() {
    if (!sweep_queued) return;
    sweep_queued = false;
    hcm->worker().poller().cancelDeferred(this);
    if (sweep_timer) sweep_timer->disable();
  }
  void destroyFinished() {
    while (finished != nullptr) {
      ActiveStream* s = finished;
      finished = s->next_;
      s->next_ = nullptr;
      delete s;
    }
  }

  HttpConnectionManager* hcm = nullptr;
  // The HTTP/1 codec, bound to this session for good (reset for each use).
  std::unique_ptr<http::http1::ReusableServerConnection> h1;
  // HTTP/2, or a test's codec: this connection's only (the session is then pinned).
  std::unique_ptr<http::ServerConnection> other;
  http::ServerConnection* codec = nullptr;  // the one in use; null until the protocol is known
  ActiveStream* streams = nullptr;   // open streams, an intrusive list; owned (released unique_ptrs)
  ActiveStream* finished = nullptr;  // ended streams, destroyed from the loop (linked by next_)
  std::optional<core::Timer> sweep_timer;
  bool sweep_queued = false;
  bool pinned = false;       // kept for the connection's lifetime (HTTP/2, a test's codec)
  bool mid_request = false;  // bytes of a request head arrived and its stream has not started
  std::string remote_ip;
  Buffer first_bytes;  // bytes read before the protocol is known (a preface prefix)
  http::http2::Stats h2_stats;

 private:
  void runDeferred() override {
    sweep_queued = false;
    hcm->afterStreams();  // may give this session back: nothing touches it after
  }
};

namespace {
// Sessions given back on this thread, ready for the next connection that needs one.
struct SessionPool {
  std::vector<HttpConnectionManager::Session*> free;
  ~SessionPool();
  static inline thread_local bool gone = false;  // trivially destructible: readable after
};
thread_local SessionPool tl_sessions;
constexpr size_t kMaxPooledSessions = 64;
}  // namespace

SessionPool::~SessionPool() {
  gone = true;
  for (auto* s : free) delete s;
}

HttpConnectionManager::Session* HttpConnectionManager::Session::take(HttpConnectionManager& hcm) {
  Session* s;
  if (!SessionPool::gone && !tl_sessions.free.empty()) {
    s = tl_sessions.free.back();
    tl_sessions.free.pop_back();
  } else {
    s = new Session;
  }
  s->hcm = &hcm;
  return s;
}

void HttpConnectionManager::Session::give(Session* s) {
  s->cancelSweep();
  s->destroyFinished();
  s->sweep_timer.reset();
  s->other.reset();
  s->codec = nullptr;
  s->streams = nullptr;
  s->pinned = false;
  s->mid_request = false;
  s->remote_ip.clear();
  s->first_bytes.clear();
  s->h2_stats = {};
  s->hcm = nullptr;
  if (SessionPool::gone || tl_sessions.free.size() >= kMaxPooledSessions) {
    delete s;
    return;
  }
  tl_sessions.free.push_back(s);
}

size_t HttpConnectionManager::Session::pooled() { return SessionPool::gone ? 0 : tl_sessions.free.size(); }
size_t HttpConnectionManager::pooledSessions() { return Session::pooled(); }

HttpConnectionManager::HttpConnectionManager(std::shared_ptr<const HcmConfig> config) : config_(config.get()) {}

HttpConnectionManager::~HttpConnectionManager() {
  dead_ = true;
  if (session_ != nullptr) {
    while (session_->streams != nullptr) {
      ActiveStream& s = *session_->streams;
      s.destroyFilters();
      onStreamDone(s);
    }
    releaseSession();
  }
  disarm();
}

HttpConnectionManager::Session& HttpConnectionManager::session() {
  if (session_ == nullptr) session_ = Session::take(*this);
  return *session_;
}

void HttpConnectionManager::releaseSession() {
  Session* s = session_;
  session_ = nullptr;
  if (s != nullptr) Session::give(s);
}

FilterStatus HttpConnectionManager::onNewConnection() {
  if (config_->codec) {
    Session& s = session();
    s.other = config_->codec(s, s);
    s.codec = s.other.get();
    s.pinned = true;
  } else if (config_->http.http2.enabled && callbacks_->info().tls() && callbacks_->info().tls()->alpn == "h2") {
    makeCodec(true);
  }
  // The first request's head must arrive within request_headers_timeout.
  if (!http2_ && config_->http.request_headers_timeout.count() > 0)
    arm(Wait::kHeaders, config_->http.request_headers_timeout);
  return FilterStatus::kStopIteration;
}

void HttpConnectionManager::makeCodec(bool http2) {
  Session& s = session();
  if (http2) {
    http2_ = true;
    auto& w = callbacks_->worker();
    s.h2_stats.shard = w.stats;
    s.h2_stats.violations = config_->stats.h2_violations;
    w.stats->inc(config_->stats.h2_connections);
    disarm();  // HTTP/2 streams are bounded by the idle and drain timeouts
    s.other = core::http::http2::makeServerConnection(s, s, config_->h2, &s.h2_stats);
    s.codec = s.other.get();
    s.pinned = true;
    // Runs while no stream is open (newStream stops it, the last stream's end restarts it):
    // a connection that opens none is closed like an idle keep-alive one.
    armIdleTimer();
  } else {
    if (s.h1) {
      s.h1->reset(limitsOf(config_->http));
    } else {
      s.h1 = core::http::http1::makeServerConnection(s, s, limitsOf(config_->http));
    }
    s.codec = s.h1.get();
  }
  if (drain_pending_) s.codec->drainNotice();
}

FilterStatus HttpConnectionManager::onData(Buffer& data, bool end_stream) {
  if (dead_) {
    data.clear();
    return FilterStatus::kStopIteration;
  }
  Session& s = session();  // the request's first byte: the HTTP state comes back
  if (!s.codec) {
    // The protocol comes from the first bytes: the HTTP/2 client preface, or HTTP/1.1 (a
    // connection that starts HTTP/1.1 stays HTTP/1.1).
    s.first_bytes.move(data);
    auto m = config_->http.http2.enabled && requests_ == 0 ? core::http::http2::matchPreface(s.first_bytes)
                                                          : core::http::http2::PrefaceMatch::kNo;
    if (m == core::http::http2::PrefaceMatch::kNeedMore && !end_stream) return FilterStatus::kStopIteration;
    makeCodec(m == core::http::http2::PrefaceMatch::kYes);
    data.move(s.first_bytes);
  }
  // HTTP/1: any bytes start the next request. HTTP/2: only a stream stops the idle timer;
  // control frames (SETTINGS and PING acknowledgements, WINDOW_UPDATE, PING) do not keep a
  // connection without streams alive.
  if (!data.empty() && !http2_) {
    if (s.streams == nullptr) {
      s.mid_request = true;
      // The first bytes of a new request: its head must be complete in time (slowloris).
      if (wait_ != Wait::kHeaders) {
        if (config_->http.request_headers_timeout.count() > 0) {
          arm(Wait::kHeaders, config_->http.request_headers_timeout);
        } else {
          disarm();
        }
      }
    } else if (wait_ == Wait::kIdle) {
      disarm();
    }
  }
  s.codec->dispatch(data, end_stream);
  return FilterStatus::kStopIteration;
}

http::RequestDecoder& HttpConnectionManager::newStream(http::ResponseEncoder& encoder) {
  disarm();  // neither the head timeout nor the idle timeout runs while a stream is open
  Session& s = *session_;
  s.mid_request = false;
  auto& w = callbacks_->worker();
  ++requests_;
  if ((config_->http.max_requests_per_connection > 0 && requests_ >= config_->http.max_requests_per_connection) ||
      draining())
    s.codec->drainNotice();
  w.stats->inc(config_->stats.rq_total);
  w.stats->inc(config_->stats.rq_active);
  ActiveStream* st = std::make_unique<ActiveStream>(*this, encoder).release();  // owned by the list
  st->next_ = s.streams;
  if (s.streams != nullptr) s.streams->prev_ = st;
  s.streams = st;
  st->listed_ = true;
  return *st;
}

void HttpConnectionManager::onCodecError(int status, http::ResponseFlag flag, std::string_view detail) {
  FERRY_LOG(kDebug, "http: ", config_->listener_name, ": ", status, " before any stream: ", core::log::sv(detail));
  dead_ = true;
  disarm();
  http::StreamInfo info;
  info.start_us = core::monotonicUs();
  info.response_code = status;
  info.flag = flag;
  callbacks_->worker().stats->inc(config_->stats.rq_total);
  recordRequest(info);
  http::LogContext ctx;
  ctx.info = &info;
  ctx.end_us = info.start_us;
  logRequest(ctx);
}

void HttpConnectionManager::onStreamRejected(int status, http::ResponseFlag flag, std::string_view detail) {
  FERRY_LOG(kDebug, "http: ", config_->listener_name, ": ", status, " on a stream: ", core::log::sv(detail));
  http::StreamInfo info;
  info.start_us = core::monotonicUs();
  info.response_code = status;
  info.flag = flag;
  callbacks_->worker().stats->inc(config_->stats.rq_total);
  recordRequest(info);
  http::LogContext ctx;
  ctx.info = &info;
  ctx.end_us = info.start_us;
  logRequest(ctx);
}

void HttpConnectionManager::arm(Wait what, std::chrono::milliseconds d) {
  wait_ = what;
  enableTimer(worker().timers(), d);
}

void HttpConnectionManager::disarm() {
  wait_ = Wait::kNone;
  if (timerEnabled()) disableTimer(worker().timers());
}

void HttpConnectionManager::onTimer() {
  const Wait what = wait_;
  wait_ = Wait::kNone;
  if (what == Wait::kHeaders) {
    onHeadersTimeout();
  } else if (what == Wait::kIdle) {
    onIdleTimeout();
  }
}

void HttpConnectionManager::onHeadersTimeout() {
  if (dead_ || http2_ || (session_ != nullptr && session_->streams != nullptr)) return;
  Session& s = session();
  if (!s.codec) makeCodec(false);  // a few bytes of nothing in particular: answered as HTTP/1.1
  FERRY_LOG(kDebug, "http: ", config_->listener_name, ": request headers timeout");
  worker().stats->inc(config_->stats.timeout_headers);
  onCodecError(408, http::ResponseFlag::kRequestTimeout, "request headers timeout");
  s.codec->sendConnectionError(408, "request timeout\n", http::ResponseFlag::kRequestTimeout);
}

void HttpConnectionManager::armIdleTimer() {
  if (config_->http.idle_timeout.count() > 0) {
    arm(Wait::kIdle, config_->http.idle_timeout);
  } else {
    disarm();
  }
}

void HttpConnectionManager::onIdleTimeout() {
  if (dead_ || (session_ != nullptr && session_->streams != nullptr)) return;
  FERRY_LOG(kDebug, "http: ", config_->listener_name, ": idle timeout");
  if (http2_) {
    // GOAWAY NO_ERROR with the last stream id, then close.
    session_->codec->sendConnectionError(0, "", http::ResponseFlag::kNone);
    return;
  }
  closeConnection(true);
}

void HttpConnectionManager::drainNotice() {
  if (session_ != nullptr && session_->codec) session_->codec->drainNotice();
}

void HttpConnectionManager::onDrain() {
  if (dead_) return;
  Session* s = session_;
  if (s == nullptr || !s->codec) {
    if (requests_ == 0) {
      // Not a byte of the first request yet: it is likely on its way (or already in the
      // socket buffer), so it is served, with Connection: close. The drain timeout bounds a
      // connection that never sends.
      drain_pending_ = true;
      return;
    }
    // Idle between requests (its HTTP state given back): closed below.
  } else if (http2_) {
    s->codec->drainNotice();  // the two-step GOAWAY; the codec closes once its streams are done
    return;
  } else if (s->streams != nullptr || s->mid_request || requests_ == 0 || s->codec->pendingInput()) {
    s->codec->drainNotice();  // the response under way (or the next one) closes the connection
    return;
  }
  // Idle between requests: nothing is lost by closing now (a client that sends on a kept-alive
  // connection as it closes retries, RFC 9112 section 9.3.1).
  FERRY_LOG(kDebug, "http: ", config_->listener_name, ": drain: closing an idle connection");
  closeConnection(true);
}

void HttpConnectionManager::onStreamDone(ActiveStream& stream) {
  if (!stream.listed_) return;  // already gone
  Session& s = *session_;       // a listed stream is in the session
  auto& w = callbacks_->worker();
  w.stats->dec(config_->stats.rq_active);
  stream.listed_ = false;
  if (stream.prev_ != nullptr) stream.prev_->next_ = stream.next_;
  if (stream.next_ != nullptr) stream.next_->prev_ = stream.prev_;
  if (s.streams == &stream) s.streams = stream.next_;
  stream.prev_ = nullptr;
  // Destroyed once the call stack unwinds.
  stream.next_ = s.finished;
  s.finished = &stream;
  s.scheduleSweep();
  if (dead_ || s.streams != nullptr || !s.codec) return;
  if (!s.codec->pendingInput()) {
    armIdleTimer();  // the usual keep-alive case: the next bytes dispatch by themselves
    return;
  }
  // A pipelined request (or the client's EOF) waits: its head must come in time, and it is
  // parsed from the loop (afterStreams), not from inside the finished stream's call stack.
  if (config_->http.request_headers_timeout.count() > 0) {
    arm(Wait::kHeaders, config_->http.request_headers_timeout);
  } else {
    disarm();
  }
}

void HttpConnectionManager::afterStreams() {
  Session* s = session_;
  if (s == nullptr) return;
  s->destroyFinished();
  if (dead_ || s->streams != nullptr || !s->codec) return;
  if (s->codec->pendingInput()) {
    Buffer none;
    s->codec->dispatch(none, false);
    if (dead_ || session_ != s || s->streams != nullptr || s->codec->pendingInput()) return;
    armIdleTimer();
  }
  // Idle: an HTTP/1 connection gives its HTTP state back until its next byte.
  if (s->pinned || http2_ || s->codec != s->h1.get() || !s->h1->idle()) return;
  releaseSession();
}

const std::string& HttpConnectionManager::remoteIp() {
  Session& s = session();
  if (s.remote_ip.empty()) s.remote_ip = core::net::formatIp(connectionInfo().remote);
  return s.remote_ip;
}

void HttpConnectionManager::closeConnection(bool flush) {
  dead_ = true;
  disarm();
  if (callbacks_->connection().closed()) return;
  callbacks_->connection().close(flush ? Connection::CloseType::kFlushWrite : Connection::CloseType::kNoFlush,
                                 config_->http.close_flush_timeout);
}

void HttpConnectionManager::readDisable(bool disable) {
  if (callbacks_->connection().closed()) return;
  callbacks_->connection().readDisable(disable);
}

void HttpConnectionManager::onDownstreamEvent(core::net::ConnectionEvent) {
  dead_ = true;
  disarm();
  if (session_ == nullptr) return;
  // Every stream still open loses its connection.
  while (session_->streams != nullptr) {
    ActiveStream& s = *session_->streams;
    s.onResetStream(http::StreamResetReason::kConnectionTermination, "downstream connection closed");
    onStreamDone(s);  // a no-op if the reset already took it out
  }
}

void HttpConnectionManager::onDownstreamAboveWriteHighWatermark() {
  if (session_ != nullptr && session_->codec) session_->codec->onConnectionWatermark(true);
}

void HttpConnectionManager::onDownstreamBelowWriteLowWatermark() {
  if (session_ != nullptr && session_->codec) session_->codec->onConnectionWatermark(false);
}

void HttpConnectionManager::recordRequest(const http::StreamInfo& info, const core::router::Route* route) {
  auto& s = *callbacks_->worker().stats;
  int cls = info.response_code / 100;
  if (cls >= 1 && cls <= 5) s.inc(config_->stats.rq_by_class[cls]);
  if (info.flag != http::ResponseFlag::kNone) s.inc(config_->stats.flags[static_cast<size_t>(info.flag)]);
  int64_t micros = core::monotonicUs() - info.start_us;
  if (micros < 0) micros = 0;
  s.observe(config_->stats.duration, micros);
  s.observe(config_->stats.response_size, static_cast<int64_t>(info.response_body_bytes));
  if (route != nullptr && route->stats.enabled) {
    if (cls >= 1 && cls <= 5) s.inc(route->stats.rq_by_class[cls]);
    s.observe(route->stats.duration, micros);
  }
}

std::shared_ptr<const HcmConfig> buildHcmConfig(const BuildContext& ctx, std::string* error) {
  const auto& listener = ctx.listener;
  auto& stats = ctx.stats;
  auto c = std::make_shared<HcmConfig>();
  c->listener_name = listener.name;
  c->http = *listener.http;
  auto rc = std::make_shared<http::HttpRouteConfig>();
  rc->routes = core::router::RouteTable::build(c->http, error, ctx.clusters, &ctx.stats, listener.name);
  if (!rc->routes) return nullptr;
  const HttpBuildContext filter_ctx{listener.name, &ctx.stats, ctx.workers, ctx.config_dir};
  auto buildFilter = [&](const config::HttpFilterConfig& f) -> http::HttpFilterFactory {
    const auto* builder = ctx.registry.http(f.name);
    if (!builder) {
      *error = "unknown HTTP filter '" + f.name + "'";
      return {};
    }
    config::NodeReader reader;
    auto factory = (*builder)(f, reader, filter_ctx);
    if (!factory) {
      const auto& e = reader.errors();
      *error = e.empty() ? "HTTP filter '" + f.name + "' cannot be built"
                         : std::to_string(e[0].mark.line) + ":" + std::to_string(e[0].mark.col) + ": " + e[0].message;
    }
    return factory;
  };
  for (const auto& f : c->http.filters) {
    auto factory = buildFilter(f);
    if (!factory) return nullptr;
    rc->filters.push_back(std::move(factory));
  }
  // Per-route overrides, keyed by the route table's own copy of each route.
  for (const auto& vh : rc->routes->config().virtual_hosts)
    for (const auto& r : vh.routes) {
      if (r.filter_overrides.empty()) continue;
      auto& list = rc->overrides[&r];
      for (const auto& o : r.filter_overrides) {
        http::RouteFilterOverride ov;
        const auto& fs = c->http.filters;
        ov.index = static_cast<size_t>(
            std::find_if(fs.begin(), fs.end(), [&](const config::HttpFilterConfig& f) { return f.name == o.name; }) -
            fs.begin());
        if (ov.index >= fs.size()) {
          *error = "route override of filter '" + o.name + "', which the listener does not have";
          return nullptr;
        }
        if (o.config) {
          ov.make = buildFilter(config::HttpFilterConfig{o.name, o.name_mark, o.config, o.mark});
          if (!ov.make) return nullptr;
        }
        list.push_back(std::move(ov));
      }
    }
  // The provider outlives snapshots (it is part of the listener's state); this snapshot's
  // route config goes into each worker's slot when the snapshot is installed there.
  if (!ctx.state.http_routes) ctx.state.http_routes = std::make_shared<http::RouteConfigProvider>(ctx.workers);
  c->routes = ctx.state.http_routes;
  ctx.worker_setup.push_back([provider = ctx.state.http_routes, rc](size_t worker) { provider->set(worker, rc); });
  const std::vector<std::pair<std::string, std::string>> l = {{"listener", listener.name}};
  c->stats.rq_total = stats.counter("ferry_downstream_requests_received_total", l, "HTTP requests received.");
  c->stats.rq_active = stats.gauge("ferry_downstream_requests_active", l, "HTTP requests in flight.");
  for (int cls = 1; cls <= 5; ++cls) {
    c->stats.rq_by_class[cls] =
        stats.counter("ferry_downstream_requests_total", {{"listener", listener.name}, {"code", std::to_string(cls) + "xx"}},
                      "HTTP responses sent, by status class.");
  }
  for (int f = 1; f < static_cast<int>(http::ResponseFlag::kCount); ++f) {
    c->stats.flags[f] = stats.counter(
        "ferry_downstream_response_flags_total",
        {{"listener", listener.name}, {"flag", http::responseFlagName(static_cast<http::ResponseFlag>(f))}},
        "Responses by response flag (locally generated or otherwise marked).");
  }
  for (size_t k = 0; k < c->stats.h2_violations.size(); ++k) {
    c->stats.h2_violations[k] = stats.counter(
        "ferry_http2_violations_total",
        {{"listener", listener.name}, {"kind", http::http2::violationName(static_cast<http::http2::Violation>(k))}},
        "HTTP/2 connections or streams ended by an edge defence (flood, rapid reset, limits), by kind.");
  }
  c->stats.h2_connections = stats.counter("ferry_http2_connections_total", l, "HTTP/2 connections accepted.");
  {
    const char* help = "Requests ended by a downstream timeout, by timeout.";
    auto timeout = [&](const char* name) {
      return stats.counter("ferry_downstream_timeouts_total", {{"listener", listener.name}, {"timeout", name}}, help);
    };
    c->stats.timeout_headers = timeout("request_headers");
    c->stats.timeout_request = timeout("request");
    c->stats.timeout_stream_idle = timeout("stream_idle");
  }
  {
    const auto& h2 = c->http.http2;
    auto& o = c->h2;
    o.max_concurrent_streams = h2.max_concurrent_streams;
    o.initial_stream_window_size = h2.initial_stream_window_size;
    o.initial_connection_window_size = h2.initial_connection_window_size;
    o.hpack_table_size = h2.hpack_table_size;
    o.max_header_list_bytes = c->http.max_request_headers_kb * 1024;
    o.max_headers = c->http.max_headers;
    o.max_outbound_control_frames = h2.max_outbound_control_frames;
    o.max_consecutive_empty_frames = h2.max_consecutive_empty_frames;
    o.max_continuations = h2.max_continuations;
    o.max_resets_per_second = h2.max_resets_per_second;
    o.max_resets_burst = h2.max_resets_burst;
  }
  if (c->http.tracing) c->tracing = buildTracing(*c->http.tracing, ctx);
  c->stats.duration = stats.histogram("ferry_downstream_request_duration_seconds", l,
                                      core::latencyBounds(),
                                      "Time from the request head to the end of the response.");
  c->stats.response_size = stats.histogram(
      "ferry_downstream_response_size_bytes", l,
      {100, 1000, 10000, 100000, 1e6, 1e7, 1e8, 1e9}, "Response body bytes sent to clients.", 1.0);
  for (const auto& a : c->http.access_log) {
    auto log = http::AccessLog::create(a, ctx.workers, stats, error);
    if (!log) return nullptr;
    c->access_logs.push_back(std::move(log));
  }
  return c;
}

Registry::NetworkBuilder httpConnectionManagerBuilder() {
  return [](const BuildContext& ctx, std::string* error) -> core::net::NetworkFilterFactory {
    auto cfg = buildHcmConfig(ctx, error);
    if (!cfg) {
      *error = "listener '" + ctx.listener.name + "': " + *error;
      return {};
    }
    return [cfg]() -> std::unique_ptr<core::net::NetworkFilter> { return std::make_unique<HttpConnectionManager>(cfg); };
  };
}

}  // namespace ferry::filters::network
