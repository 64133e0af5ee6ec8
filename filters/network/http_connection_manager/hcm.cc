#include "filters/network/http_connection_manager/hcm.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "core/log.h"
#include "core/net/socket_util.h"
#include "filters/http/router/router.h"
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

}  // namespace

HttpConnectionManager::HttpConnectionManager(std::shared_ptr<const HcmConfig> config)
    : config_(std::move(config)), codec_(*this, limitsOf(config_->http)) {}

HttpConnectionManager::~HttpConnectionManager() {
  *alive_ = false;
  if (stream_) {
    stream_->destroyFilters();
    if (auto* w = callbacks_ ? &callbacks_->worker() : nullptr) w->stats->dec(config_->stats.rq_active);
  }
  stream_.reset();
}

FilterStatus HttpConnectionManager::onNewConnection() {
  auto& w = callbacks_->worker();
  finished_ = std::make_unique<core::DeferredDeleter<ActiveStream>>(*w.io);
  idle_timer_ = std::make_unique<core::Timer>(*w.io, [this] { onIdleTimeout(); });
  headers_timer_ = std::make_unique<core::Timer>(*w.io, [this] { onHeadersTimeout(); });
  // The first request's head must arrive within request_headers_timeout.
  if (config_->http.request_headers_timeout.count() > 0) headers_timer_->enable(config_->http.request_headers_timeout);
  return FilterStatus::kStopIteration;
}

FilterStatus HttpConnectionManager::onData(Buffer& data, bool end_stream) {
  if (dead_) {
    data.clear();
    return FilterStatus::kStopIteration;
  }
  if (tunnel_) {
    if (stream_) stream_->decodeData(data, end_stream);
    data.clear();
    return FilterStatus::kStopIteration;
  }
  if (!data.empty() && !stream_ && !headers_timer_->enabled() && config_->http.request_headers_timeout.count() > 0) {
    // The first bytes of a new request: its head must be complete in time (slowloris).
    headers_timer_->enable(config_->http.request_headers_timeout);
  }
  if (!data.empty()) idle_timer_->disable();
  pending_.move(data);
  if (end_stream) eof_ = true;
  dispatch();
  return FilterStatus::kStopIteration;
}

void HttpConnectionManager::dispatch() {
  if (in_dispatch_) return;
  in_dispatch_ = true;
  while (!dead_ && !tunnel_) {
    if (codec_.paused()) {
      if (stream_) break;  // answer the current request first (pipelining keeps order)
      codec_.resume();
    }
    size_t before = pending_.length();
    if (before == 0) break;
    codec_.dispatch(pending_);
    if (dead_) break;
    if (codec_.upgraded()) break;  // the rest are tunnel bytes, sent once the upstream agrees
    if (pending_.length() == before && !codec_.paused()) break;  // needs more bytes
  }
  in_dispatch_ = false;
  if (dead_ || tunnel_) return;
  if (eof_ && pending_.empty()) {
    if (!stream_) {
      // The client is done and nothing is in flight.
      codec_.onEof();
      if (!dead_) closeConnection(true);
    } else if (!stream_->requestComplete() && !codec_.upgraded()) {
      codec_.onEof();  // mid-body: a protocol error (the stream is reset)
    }
  }
}

void HttpConnectionManager::onRequestHeaders(core::http::RequestHeadersPtr headers, bool end_stream) {
  headers_timer_->disable();
  idle_timer_->disable();
  auto& w = callbacks_->worker();
  ++requests_;
  if (!codec_.keepAlive()) close_after_response_ = true;
  if (config_->http.max_requests_per_connection > 0 && requests_ >= config_->http.max_requests_per_connection)
    close_after_response_ = true;
  if (w.draining && *w.draining) close_after_response_ = true;
  w.stats->inc(config_->stats.rq_total);
  w.stats->inc(config_->stats.rq_active);
  stream_ = std::make_unique<ActiveStream>(*this, std::move(headers));
  stream_->decodeHeaders(end_stream);
}

void HttpConnectionManager::onRequestData(Buffer& data, bool end_stream) {
  if (stream_) {
    stream_->decodeData(data, end_stream);
  } else {
    data.clear();
  }
}

void HttpConnectionManager::onRequestTrailers(core::http::HeaderMap trailers) {
  if (stream_) stream_->decodeTrailers(std::move(trailers));
}

void HttpConnectionManager::onProtocolError(int status, std::string_view detail) {
  FERRY_LOG(kDebug, "http: ", config_->listener_name, ": protocol error ", status, ": ", core::log::sv(detail));
  auto flag = http::ResponseFlag::kDownstreamProtocolError;
  if (stream_ && stream_->responseStarted()) {
    // Mid-response: the framing cannot be trusted any more.
    closeConnection(false);
    return;
  }
  if (stream_) {
    // Mid-request (e.g. a bad chunk): answer through the stream, then close.
    close_after_response_ = true;
    dead_ = true;
    stream_->sendLocalReply(status, status == 431 ? "request headers too large\n" : "bad request\n", flag);
    return;
  }
  sendRawErrorAndClose(status, status == 431 ? "request headers too large\n" : "bad request\n", flag);
}

void HttpConnectionManager::sendRawErrorAndClose(int status, std::string_view body, http::ResponseFlag flag) {
  dead_ = true;
  headers_timer_->disable();
  idle_timer_->disable();
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + core::http::reasonPhrase(status) +
                     "\r\ncontent-type: text/plain\r\ncontent-length: " + std::to_string(body.size()) +
                     "\r\nconnection: close\r\n\r\n";
  Buffer out;
  out.add(head);
  out.add(body);
  http::StreamInfo info;
  info.start_ms = core::monotonicMs();
  info.response_code = status;
  info.flag = flag;
  callbacks_->worker().stats->inc(config_->stats.rq_total);
  recordRequest(info);
  pending_.clear();
  callbacks_->writeDownstream(out, true);
  callbacks_->connection().close(Connection::CloseType::kFlushWrite);
}

void HttpConnectionManager::onHeadersTimeout() {
  if (stream_ || dead_) return;
  FERRY_LOG(kDebug, "http: ", config_->listener_name, ": request headers timeout");
  sendRawErrorAndClose(408, "request timeout\n", http::ResponseFlag::kRequestTimeout);
}

void HttpConnectionManager::armIdleTimer() {
  if (config_->http.idle_timeout.count() > 0 && idle_timer_) idle_timer_->enable(config_->http.idle_timeout);
}

void HttpConnectionManager::onIdleTimeout() {
  if (stream_ || dead_) return;
  FERRY_LOG(kDebug, "http: ", config_->listener_name, ": idle timeout");
  dead_ = true;
  callbacks_->connection().close(Connection::CloseType::kFlushWrite);
}

void HttpConnectionManager::onStreamComplete() {
  if (!stream_) return;
  auto& w = callbacks_->worker();
  w.stats->dec(config_->stats.rq_active);
  bool request_was_complete = stream_->requestComplete();
  retireStream();
  if (dead_ || close_after_response_ || !request_was_complete || tunnel_) {
    // A response sent before the whole request arrived ends the connection: what follows
    // on the wire cannot be told apart from a new request.
    closeConnection(true);
    return;
  }
  // Next request: a pipelined one may already be waiting.
  if (config_->http.request_headers_timeout.count() > 0 && !pending_.empty())
    headers_timer_->enable(config_->http.request_headers_timeout);
  if (pending_.empty()) armIdleTimer();
  // Nothing waiting (the usual keep-alive case): the next bytes dispatch by themselves.
  if (pending_.empty() && !eof_) return;
  // Not from inside the stream's call stack: post the next dispatch.
  asio::post(*w.io, [this, alive = alive_] {
    if (!*alive || dead_ || stream_) return;
    dispatch();
    if (!stream_ && pending_.empty() && !dead_ && !eof_) armIdleTimer();
  });
}

const std::string& HttpConnectionManager::remoteIp() {
  if (remote_ip_.empty()) remote_ip_ = core::net::formatIp(connectionInfo().remote);
  return remote_ip_;
}

void HttpConnectionManager::retireStream() {
  stream_->destroyFilters();
  finished_->add(std::move(stream_));
}

void HttpConnectionManager::closeConnection(bool flush) {
  if (dead_ && callbacks_->connection().closed()) return;
  dead_ = true;
  if (idle_timer_) idle_timer_->disable();
  if (headers_timer_) headers_timer_->disable();
  callbacks_->connection().close(flush ? Connection::CloseType::kFlushWrite : Connection::CloseType::kNoFlush);
}

void HttpConnectionManager::setReadDisabled(bool disabled) {
  if (callbacks_->connection().closed()) return;
  if (disabled) {
    ++read_disabled_;
    callbacks_->connection().readDisable(true);
  } else if (read_disabled_ > 0) {
    --read_disabled_;
    callbacks_->connection().readDisable(false);
  }
}

void HttpConnectionManager::enterTunnel() {
  tunnel_ = true;
  headers_timer_->disable();
  idle_timer_->disable();
  // Bytes the client sent after its upgrade request are the first tunnel bytes.
  if (!pending_.empty() && stream_) {
    Buffer first;
    first.move(pending_);
    stream_->decodeData(first, false);
  }
  if (eof_ && stream_) {
    Buffer none;
    stream_->decodeData(none, true);
  }
}

void HttpConnectionManager::onDownstreamEvent(core::net::ConnectionEvent) {
  dead_ = true;
  if (idle_timer_) idle_timer_->disable();
  if (headers_timer_) headers_timer_->disable();
  if (stream_) {
    callbacks_->worker().stats->dec(config_->stats.rq_active);
    retireStream();
  }
}

void HttpConnectionManager::onDownstreamAboveWriteHighWatermark() {
  downstream_above_high_ = true;
  if (stream_) stream_->onDownstreamWatermark(true);
}

void HttpConnectionManager::onDownstreamBelowWriteLowWatermark() {
  downstream_above_high_ = false;
  if (stream_) stream_->onDownstreamWatermark(false);
}

void HttpConnectionManager::recordRequest(const http::StreamInfo& info) {
  auto& s = *callbacks_->worker().stats;
  int cls = info.response_code / 100;
  if (cls >= 1 && cls <= 5) s.inc(config_->stats.rq_by_class[cls]);
  if (info.flag != http::ResponseFlag::kNone) s.inc(config_->stats.flags[static_cast<size_t>(info.flag)]);
  int64_t micros = (core::monotonicMs() - info.start_ms) * 1000;
  s.observe(config_->stats.duration, micros < 0 ? 0 : micros);
}

std::shared_ptr<const HcmConfig> buildHcmConfig(const BuildContext& ctx, std::string* error) {
  const auto& listener = ctx.listener;
  auto& stats = ctx.stats;
  auto c = std::make_shared<HcmConfig>();
  c->listener_name = listener.name;
  c->http = *listener.http;
  auto rc = std::make_shared<http::HttpRouteConfig>();
  rc->routes = core::router::RouteTable::build(c->http, error, ctx.clusters);
  if (!rc->routes) return nullptr;
  for (const auto& f : c->http.filters) {
    const auto* builder = ctx.registry.http(f.name);
    if (!builder) {
      *error = "unknown HTTP filter '" + f.name + "'";
      return nullptr;
    }
    auto factory = (*builder)(f, error);
    if (!factory) return nullptr;
    rc->filters.push_back(std::move(factory));
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
  for (int f = 1; f <= static_cast<int>(http::ResponseFlag::kDelayInjected); ++f) {
    c->stats.flags[f] = stats.counter(
        "ferry_downstream_response_flags_total",
        {{"listener", listener.name}, {"flag", http::responseFlagName(static_cast<http::ResponseFlag>(f))}},
        "Responses by response flag (locally generated or otherwise marked).");
  }
  c->stats.duration = stats.histogram(
      "ferry_downstream_request_duration_seconds", l,
      {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
      "Time from the request head to the end of the response.");
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
