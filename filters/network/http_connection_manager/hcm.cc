#include "filters/network/http_connection_manager/hcm.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "core/log.h"
#include "core/net/socket_util.h"
#include "core/http/http1/connection.h"
#include "core/http/http2/codec.h"
#include "filters/network/http_connection_manager/connection_manager.h"

namespace ferry::filters::network {
namespace asio = boost::asio;
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

HttpConnectionManager::HttpConnectionManager(std::shared_ptr<const HcmConfig> config) : config_(std::move(config)) {}

HttpConnectionManager::~HttpConnectionManager() {
  *alive_ = false;
  while (streams_ != nullptr) {
    ActiveStream& s = *streams_;
    s.destroyFilters();
    onStreamDone(s);
  }
}

FilterStatus HttpConnectionManager::onNewConnection() {
  auto& w = callbacks_->worker();
  finished_ = std::make_unique<core::DeferredDeleter<ActiveStream>>(*w.io);
  idle_timer_ = std::make_unique<core::Timer>(*w.io, [this] { onIdleTimeout(); });
  headers_timer_ = std::make_unique<core::Timer>(*w.io, [this] { onHeadersTimeout(); });
  if (config_->codec) {
    codec_ = config_->codec(*this, *this);
  } else if (config_->http.http2.enabled && callbacks_->info().tls && callbacks_->info().tls->alpn == "h2") {
    makeCodec(true);
  }
  // The first request's head must arrive within request_headers_timeout.
  if (!http2_ && config_->http.request_headers_timeout.count() > 0)
    headers_timer_->enable(config_->http.request_headers_timeout);
  return FilterStatus::kStopIteration;
}

void HttpConnectionManager::makeCodec(bool http2) {
  if (http2) {
    http2_ = true;
    auto& w = callbacks_->worker();
    h2_stats_.shard = w.stats;
    h2_stats_.violations = config_->stats.h2_violations;
    w.stats->inc(config_->stats.h2_connections);
    headers_timer_->disable();  // HTTP/2 streams are bounded by the idle and drain timeouts
    codec_ = core::http::http2::makeServerConnection(*this, *this, config_->h2, &h2_stats_);
    // Runs while no stream is open (newStream stops it, the last stream's end restarts it):
    // a connection that opens none is closed like an idle keep-alive one.
    armIdleTimer();
  } else {
    codec_ = core::http::http1::makeServerConnection(*this, *this, limitsOf(config_->http));
  }
  if (drain_pending_) codec_->drainNotice();
}

FilterStatus HttpConnectionManager::onData(Buffer& data, bool end_stream) {
  if (dead_) {
    data.clear();
    return FilterStatus::kStopIteration;
  }
  if (!codec_) {
    // The protocol comes from the first bytes: the HTTP/2 client preface, or HTTP/1.1.
    first_bytes_.move(data);
    auto m = config_->http.http2.enabled ? core::http::http2::matchPreface(first_bytes_)
                                         : core::http::http2::PrefaceMatch::kNo;
    if (m == core::http::http2::PrefaceMatch::kNeedMore && !end_stream) return FilterStatus::kStopIteration;
    makeCodec(m == core::http::http2::PrefaceMatch::kYes);
    data.move(first_bytes_);
  }
  // HTTP/1: any bytes start the next request. HTTP/2: only a stream stops the idle timer;
  // control frames (SETTINGS and PING acknowledgements, WINDOW_UPDATE, PING) do not keep a
  // connection without streams alive.
  if (!data.empty() && !http2_) {
    idle_timer_->disable();
    if (streams_ == nullptr) mid_request_ = true;
    if (streams_ == nullptr && !headers_timer_->enabled() && config_->http.request_headers_timeout.count() > 0) {
      // The first bytes of a new request: its head must be complete in time (slowloris).
      headers_timer_->enable(config_->http.request_headers_timeout);
    }
  }
  codec_->dispatch(data, end_stream);
  return FilterStatus::kStopIteration;
}

http::RequestDecoder& HttpConnectionManager::newStream(http::ResponseEncoder& encoder) {
  headers_timer_->disable();
  idle_timer_->disable();
  mid_request_ = false;
  auto& w = callbacks_->worker();
  ++requests_;
  if ((config_->http.max_requests_per_connection > 0 && requests_ >= config_->http.max_requests_per_connection) ||
      draining())
    codec_->drainNotice();
  w.stats->inc(config_->stats.rq_total);
  w.stats->inc(config_->stats.rq_active);
  ActiveStream* s = std::make_unique<ActiveStream>(*this, encoder).release();  // owned by the list
  s->next_ = streams_;
  if (streams_ != nullptr) streams_->prev_ = s;
  streams_ = s;
  s->listed_ = true;
  return *s;
}

void HttpConnectionManager::onCodecError(int status, http::ResponseFlag flag, std::string_view detail) {
  FERRY_LOG(kDebug, "http: ", config_->listener_name, ": ", status, " before any stream: ", core::log::sv(detail));
  dead_ = true;
  headers_timer_->disable();
  idle_timer_->disable();
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

void HttpConnectionManager::onHeadersTimeout() {
  if (streams_ != nullptr || dead_ || http2_) return;
  if (!codec_) makeCodec(false);  // a few bytes of nothing in particular: answered as HTTP/1.1
  FERRY_LOG(kDebug, "http: ", config_->listener_name, ": request headers timeout");
  worker().stats->inc(config_->stats.timeout_headers);
  onCodecError(408, http::ResponseFlag::kRequestTimeout, "request headers timeout");
  codec_->sendConnectionError(408, "request timeout\n", http::ResponseFlag::kRequestTimeout);
}

void HttpConnectionManager::armIdleTimer() {
  if (config_->http.idle_timeout.count() > 0 && idle_timer_) idle_timer_->enable(config_->http.idle_timeout);
}

void HttpConnectionManager::onIdleTimeout() {
  if (streams_ != nullptr || dead_) return;
  FERRY_LOG(kDebug, "http: ", config_->listener_name, ": idle timeout");
  if (http2_) {
    codec_->sendConnectionError(0, "", http::ResponseFlag::kNone);  // GOAWAY NO_ERROR with the last stream id, then close
    return;
  }
  closeConnection(true);
}

void HttpConnectionManager::onDrain() {
  if (dead_) return;
  if (!codec_) {
    drain_pending_ = true;
    return;
  }
  if (http2_) {
    codec_->drainNotice();  // the two-step GOAWAY; the codec closes once its streams are done
    return;
  }
  // A connection that has not sent its first request yet was just accepted: its request is
  // likely on its way (or already in the socket buffer), so it is served, with Connection:
  // close. The drain timeout bounds one that never sends.
  if (streams_ != nullptr || mid_request_ || requests_ == 0 || codec_->pendingInput()) {
    codec_->drainNotice();  // the response under way (or the next one) closes the connection
    return;
  }
  // Idle between requests: nothing is lost by closing now (a client that sends on a kept-alive
  // connection as it closes retries, RFC 9112 section 9.3.1).
  FERRY_LOG(kDebug, "http: ", config_->listener_name, ": drain: closing an idle connection");
  closeConnection(true);
}

void HttpConnectionManager::onStreamDone(ActiveStream& stream) {
  if (!stream.listed_) return;  // already gone
  auto& w = callbacks_->worker();
  w.stats->dec(config_->stats.rq_active);
  stream.listed_ = false;
  if (stream.prev_ != nullptr) stream.prev_->next_ = stream.next_;
  if (stream.next_ != nullptr) stream.next_->prev_ = stream.prev_;
  if (streams_ == &stream) streams_ = stream.next_;
  stream.prev_ = stream.next_ = nullptr;
  std::unique_ptr<ActiveStream> dying(&stream);  // destroyed once the call stack unwinds
  if (finished_) {
    finished_->add(std::move(dying));
  } else {
    dying.reset();
  }
  if (dead_ || streams_ != nullptr || !codec_) return;
  if (!codec_->pendingInput()) {
    armIdleTimer();  // the usual keep-alive case: the next bytes dispatch by themselves
    return;
  }
  // A pipelined request (or the client's EOF) waits: its head must come in time, and it is
  // parsed from the loop, not from inside the finished stream's call stack.
  if (config_->http.request_headers_timeout.count() > 0) headers_timer_->enable(config_->http.request_headers_timeout);
  asio::post(*w.io, [this, alive = alive_] {
    if (*alive) dispatchPending();
  });
}

void HttpConnectionManager::dispatchPending() {
  if (dead_ || streams_ != nullptr) return;
  Buffer none;
  codec_->dispatch(none, false);
  if (streams_ == nullptr && !dead_ && !codec_->pendingInput()) armIdleTimer();
}

const std::string& HttpConnectionManager::remoteIp() {
  if (remote_ip_.empty()) remote_ip_ = core::net::formatIp(connectionInfo().remote);
  return remote_ip_;
}

void HttpConnectionManager::closeConnection(bool flush) {
  dead_ = true;
  if (idle_timer_) idle_timer_->disable();
  if (headers_timer_) headers_timer_->disable();
  if (callbacks_->connection().closed()) return;
  callbacks_->connection().close(flush ? Connection::CloseType::kFlushWrite : Connection::CloseType::kNoFlush);
}

void HttpConnectionManager::readDisable(bool disable) {
  if (callbacks_->connection().closed()) return;
  callbacks_->connection().readDisable(disable);
}

void HttpConnectionManager::onDownstreamEvent(core::net::ConnectionEvent) {
  dead_ = true;
  if (idle_timer_) idle_timer_->disable();
  if (headers_timer_) headers_timer_->disable();
  // Every stream still open loses its connection.
  while (streams_ != nullptr) {
    ActiveStream& s = *streams_;
    s.onResetStream(http::StreamResetReason::kConnectionTermination, "downstream connection closed");
    onStreamDone(s);  // a no-op if the reset already took it out
  }
}

void HttpConnectionManager::onDownstreamAboveWriteHighWatermark() {
  if (codec_) codec_->onConnectionWatermark(true);
}

void HttpConnectionManager::onDownstreamBelowWriteLowWatermark() {
  if (codec_) codec_->onConnectionWatermark(false);
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
