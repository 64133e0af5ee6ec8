#include "filters/network/http_connection_manager/active_stream.h"

#include <algorithm>
#include <array>
#include <random>

#include "core/http/path.h"
#include "core/log.h"
#include "core/net/cidr.h"
#include "core/net/socket_util.h"
#include "filters/http/router/router.h"
#include "filters/network/http_connection_manager/connection_manager.h"

namespace ferry::filters::network {
using core::Buffer;
using core::http::HeaderMap;

namespace {

// One x-forwarded-client-cert element for a verified client certificate (Envoy's format):
// Hash=<sha256 hex>;Subject="<RFC 2253>";URI=<uri>;DNS=<name>... Values with , ; = or " are
// quoted, with " and \ escaped.
std::string clientCertElement(const core::net::TlsSessionInfo& t) {
  auto value = [](std::string_view v, bool always_quote) {
    bool quote = always_quote || v.find_first_of(",;=\"") != std::string_view::npos;
    if (!quote) return std::string(v);
    std::string out = "\"";
    for (char c : v) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
    return out;
  };
  std::string e = "Hash=" + t.peer_hash + ";Subject=" + value(t.peer_subject, true);
  for (const auto& u : t.peer_uri) e += ";URI=" + value(u, false);
  for (const auto& d : t.peer_dns) e += ";DNS=" + value(d, false);
  return e;
}

void forwardClientCert(core::http::HeaderMap& headers, config::HttpConfig::ForwardClientCert mode,
                       const core::net::TlsSessionInfo* tls) {
  using F = config::HttpConfig::ForwardClientCert;
  constexpr std::string_view kName = "x-forwarded-client-cert";
  if (mode == F::kAlwaysForwardOnly) return;
  if (tls == nullptr || !tls->peer_verified) {  // not mTLS: a client cannot vouch for itself
    headers.remove(kName);
    return;
  }
  switch (mode) {
    case F::kForwardOnly:
      return;
    case F::kSanitize:
      headers.remove(kName);
      return;
    case F::kSanitizeSet:
      headers.set(kName, clientCertElement(*tls));
      return;
    case F::kAppendForward: {
      std::string prior = headers.getAll(kName);
      headers.set(kName, prior.empty() ? clientCertElement(*tls) : prior + "," + clientCertElement(*tls));
      return;
    }
    default:
      return;
  }
}


// Writes a fresh UUID v4 into `id` (36 bytes, no terminator).
void newRequestId(char (&id)[36]) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t a = rng(), b = rng();
  // RFC 4122 version 4 layout.
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  // 8-4-4-4-12 hex digits, formatted by hand (no printf on the request path), a byte (two
  // digits) per table load.
  static constexpr auto kHex2 = [] {
    std::array<char, 512> t{};
    constexpr char kHex[] = "0123456789abcdef";
    for (size_t i = 0; i < 256; ++i) {
      t[2 * i] = kHex[i >> 4];
      t[2 * i + 1] = kHex[i & 15];
    }
    return t;
  }();
  size_t pos = 0;
  auto put = [&](uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) {
      const size_t x = (v >> (8 * i)) & 0xff;
      id[pos] = kHex2[2 * x];
      id[pos + 1] = kHex2[2 * x + 1];
      pos += 2;
    }
  };
  put(a >> 32, 4);
  id[pos++] = '-';
  put(a >> 16, 2);
  id[pos++] = '-';
  put(a, 2);
  id[pos++] = '-';
  put(b >> 48, 2);
  id[pos++] = '-';
  put(b, 6);
}

// The Nth address from the right of an x-forwarded-for value (N >= 1), or "" when there are
// fewer than N or it is not an IP address.
std::string trustedXffHop(std::string_view xff, uint32_t n) {
  size_t end = xff.size();
  for (uint32_t i = 1;; ++i) {
    const size_t comma = end == 0 ? std::string_view::npos : xff.rfind(',', end - 1);
    const size_t begin = comma == std::string_view::npos ? 0 : comma + 1;
    if (i == n) {
      std::string_view v = xff.substr(begin, end - begin);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      if (!core::net::parseIpAddress(v)) return {};
      return std::string(v);
    }
    if (comma == std::string_view::npos) return {};
    end = comma;
  }
}

// What a route's `disabled` override puts in place of a filter: passes everything on.
class PassThroughFilter final : public http::HttpFilter, public core::PerThreadPooled<PassThroughFilter> {};

}  // namespace

// ---- FilterSlot: one filter's view of its stream

void FilterSlot::resume() { s_.resumeRequest(index_); }
void FilterSlot::resumeResponse() { s_.resumeResponse(index_); }
void FilterSlot::sendLocalReply(int status, std::string_view body, http::ResponseFlag flag) {
  s_.sendLocalReply(status, body, flag);
}
core::WorkerContext& FilterSlot::worker() { return s_.worker(); }
http::RequestHeaders& FilterSlot::requestHeaders() { return s_.requestHeaders(); }
const core::router::Route* FilterSlot::route() { return s_.route(); }
http::StreamInfo& FilterSlot::streamInfo() { return s_.streamInfo(); }
const std::string& FilterSlot::downstreamRemoteIp() { return s_.downstreamRemoteIp(); }
const core::net::ConnectionInfo& FilterSlot::downstreamConnection() { return s_.downstreamConnection(); }
const std::string& FilterSlot::trustedClientIp() { return s_.trustedClientIp(); }
void FilterSlot::encode1xxHeaders(http::ResponseHeadersPtr headers) { s_.encode1xxHeaders(std::move(headers)); }
void FilterSlot::encodeHeaders(http::ResponseHeadersPtr headers, bool end_stream) {
  s_.encodeHeaders(std::move(headers), end_stream);
}
void FilterSlot::encodeData(Buffer& data, bool end_stream) { s_.encodeData(data, end_stream); }
void FilterSlot::encodeTrailers(HeaderMap trailers) { s_.encodeTrailers(std::move(trailers)); }
void FilterSlot::setDownstreamReadDisabled(bool disabled) { s_.setDownstreamReadDisabled(disabled); }
void FilterSlot::resetStream() { s_.resetStream(); }
void FilterSlot::addResponseDataBeforeTrailers(Buffer& data) { s_.addResponseDataBeforeTrailers(index_, data); }

// ---- ActiveStream

ActiveStream::ActiveStream(HttpConnectionManager& hcm, http::ResponseEncoder& encoder)
    : hcm_(hcm), encoder_(&encoder), idle_timer_(hcm.timerQueue(), [this] { onStreamIdleTimeout(); }) {
  encoder.setStreamCallbacks(this);
}

ActiveStream::~ActiveStream() { destroyFilters(); }

core::WorkerContext& ActiveStream::worker() { return hcm_.worker(); }
const std::string& ActiveStream::downstreamRemoteIp() { return hcm_.remoteIp(); }
const core::net::ConnectionInfo& ActiveStream::downstreamConnection() { return hcm_.connectionInfo(); }
const std::string& ActiveStream::trustedClientIp() {
  return trusted_client_ip_.empty() ? hcm_.remoteIp() : trusted_client_ip_;
}

void ActiveStream::addFilter(std::unique_ptr<http::HttpFilter> filter) {
  filters_.emplace_back(*this, filters_.size(), std::move(filter));
  filters_.back().filter->setCallbacks(filters_.back().slot);
}

void ActiveStream::decodeHeaders(http::RequestHeadersPtr headers, bool end_stream) {
  request_headers_ = std::move(headers);
  auto& h = *request_headers_;
  const auto& cfg = hcm_.config();
  info_.start_us = core::monotonicUs();
  idle_ms_ = cfg.http.stream_idle_timeout;
  onActivity();
  if (!end_stream && cfg.http.request_timeout.count() > 0) {
    request_timer_.emplace(idle_timer_.queue(), [this] { onRequestTimeout(); });
    request_timer_->enable(cfg.http.request_timeout);
  }
  if (const auto* ct = h.headers.get("content-type")) grpc_ = ct->rfind("application/grpc", 0) == 0;
  info_.grpc = grpc_;
  if (end_stream) request_complete_ = true;

  // health_path: one comparison per request, and only when it is configured.
  if (!cfg.http.health_path.empty()) {
    const std::string_view target = h.path;
    if (target.substr(0, target.find('?')) == cfg.http.health_path) {
      answerHealthCheck(h.method);
      return;
    }
  }

  // The route table and filters are the ones current now (a keep-alive connection's next
  // request sees a newer snapshot's). Filters first, so even a rejected request runs through
  // a well-formed stream.
  route_config_ = cfg.routes->current(hcm_.worker().worker_index);
  filters_.reserve(route_config_->filters.size() + 1);  // slots are referenced by the filters: never moved
  for (const auto& make : route_config_->filters) addFilter(make());
  addFilter(route_config_->terminal ? route_config_->terminal() : filters::http::makeRouter());
  request_.setPositions(filters_.size());
  response_.setPositions(filters_.size());  // the filters in reverse, then the encoder

  if (core::http::equals(h.method, "CONNECT")) {
    sendLocalReply(405, "CONNECT is not supported\n", http::ResponseFlag::kNone);
    return;
  }
  // The normalised path and query go through this thread's scratch strings, which keep their
  // room (h.path keeps its own: the head is recycled).
  thread_local std::string path, query;
  if (core::http::normalizePath(h.path, cfg.http.merge_slashes, &path, &query) != core::http::PathResult::kOk) {
    sendLocalReply(400, "bad request path\n", http::ResponseFlag::kDownstreamProtocolError);
    return;
  }
  core::http::copyInto(h.path, path);
  h.path.append(query);
  const size_t path_size = path.size();
  const auto& conn = hcm_.connectionInfo();
  core::http::copyInto(h.scheme, conn.tls() ? "https" : "http");
  forwardClientCert(h.headers, cfg.http.forward_client_cert, conn.tls().get());

  // x-forwarded-for gets the client (the PROXY protocol's when present); x-forwarded-proto
  // is ours unless a trusted front proxy set it.
  const std::string& ip = hcm_.remoteIp();
  // One pass finds the three fields this adds to; most requests carry none of them, or one
  // of each (each one is then edited in place).
  static constexpr std::string_view kForwarding[] = {"x-forwarded-for", "x-forwarded-proto", "x-request-id"};
  HeaderMap::FieldRef f[3];
  h.headers.locate(kForwarding, f);
  const size_t n_xff = f[0].count, n_xfp = f[1].count;
  bool has_request_id = f[2].count > 0;
  const bool set_proto = cfg.http.xff_trusted_hops == 0 || n_xfp == 0;
  if (n_xff > 1 || n_xfp > 1) {
    // Repeated fields: joined (x-forwarded-for) or replaced as one.
    std::string xff = h.headers.getAll("x-forwarded-for");
    if (cfg.http.xff_trusted_hops > 0 && !xff.empty()) trusted_client_ip_ = trustedXffHop(xff, cfg.http.xff_trusted_hops);
    h.headers.set("x-forwarded-for", xff.empty() ? ip : xff + ", " + ip);
    if (set_proto) h.headers.set("x-forwarded-proto", h.scheme);
  } else {
    if (n_xff == 1) {
      std::string& xff = h.headers.mutableEntry(f[0].index).value;
      if (cfg.http.xff_trusted_hops > 0 && !xff.empty()) trusted_client_ip_ = trustedXffHop(xff, cfg.http.xff_trusted_hops);
      if (xff.empty()) {
        xff.assign(ip);
      } else {
        xff.append(", ").append(ip);
      }
    }
    if (set_proto && n_xfp == 1) h.headers.mutableEntry(f[1].index).value.assign(h.scheme);
    // Added last: an add may move the entries.
    if (n_xff == 0) h.headers.addMade("x-forwarded-for", ip);  // an address Ferry formatted
    if (set_proto && n_xfp == 0) h.headers.addLowerCase("x-forwarded-proto", h.scheme);
  }
  if (cfg.tracing) {
    trace_.start(*cfg.tracing, h, info_);  // traceparent; x-request-id from the trace id
    has_request_id = h.headers.has("x-request-id");
  }
  if (!has_request_id) {
    char id[36];
    newRequestId(id);
    h.headers.addMade("x-request-id", std::string_view(id, sizeof id));
  }

  std::string_view route_path(h.path.data(), path_size);
  route_ = route_config_->routes->find(h.authority, h.method, route_path, h.headers).route;
  if (route_ != nullptr && route_->config != nullptr && route_->config->route &&
      route_->config->route->stream_idle_timeout) {
    idle_ms_ = *route_->config->route->stream_idle_timeout;
    if (idle_ms_.count() > 0)
      onActivity();
    else
      idle_timer_.disable();
  }
  if (route_ != nullptr && !route_->config->filter_overrides.empty()) applyRouteOverrides();
  request_.headers(end_stream);
}

// The matched route changes its listener's chain: a disabled filter is swapped for one that
// passes everything on, an overridden one for an instance made from the route's config. No
// hook of the filters has run yet.
void ActiveStream::applyRouteOverrides() {
  auto it = route_config_->overrides.find(route_->config);
  if (it == route_config_->overrides.end()) return;
  for (const auto& o : it->second) {
    if (o.index + 1 >= filters_.size()) continue;  // never the router
    Entry& e = filters_[o.index];
    e.filter->onDestroy();
    e.filter = o.make ? o.make() : std::make_unique<PassThroughFilter>();
    e.filter->setCallbacks(e.slot);
  }
}

void ActiveStream::decodeData(Buffer& data, bool end_stream) {
  info_.request_body_bytes += data.length();
  onActivity();
  if (end_stream) {
    request_complete_ = true;
    if (request_timer_) request_timer_->disable();
  }
  if (local_reply_sent_ || destroyed_ || response_complete_ || filters_.empty()) {
    data.clear();
    return;
  }
  request_.data(data, end_stream);
}

void ActiveStream::decodeTrailers(HeaderMap trailers) {
  request_complete_ = true;
  onActivity();
  if (request_timer_) request_timer_->disable();
  if (local_reply_sent_ || destroyed_ || response_complete_ || filters_.empty()) return;
  request_trailers_ = std::move(trailers);
  request_.trailers();
}

void ActiveStream::onDecodeError(int status, std::string_view body, http::ResponseFlag flag) {
  sendLocalReply(status, body, flag);
}

void ActiveStream::onResetStream(http::StreamResetReason, std::string_view) {
  if (destroyed_) return;
  if (!response_complete_ && info_.flag == http::ResponseFlag::kNone)
    info_.flag = http::ResponseFlag::kDownstreamConnectionTermination;
  encoder_ = nullptr;
  destroyFilters();
  hcm_.onStreamDone(*this);
}

// ---- slow-client timeouts

void ActiveStream::onStreamIdleTimeout() {
  if (destroyed_) return;
  FERRY_LOG(kDebug, "http: ", hcm_.config().listener_name, ": stream idle timeout");
  worker().stats->inc(hcm_.config().stats.timeout_stream_idle);
  timedOut(http::ResponseFlag::kStreamIdleTimeout, "stream idle timeout\n");
}

void ActiveStream::onRequestTimeout() {
  if (destroyed_ || request_complete_) return;
  FERRY_LOG(kDebug, "http: ", hcm_.config().listener_name, ": request timeout");
  worker().stats->inc(hcm_.config().stats.timeout_request);
  timedOut(http::ResponseFlag::kRequestOverallTimeout, "request timeout\n");
}

// Before the response started: 408 (its connection closes when the request is incomplete).
// After: the stream is reset, which releases what is buffered for it.
void ActiveStream::timedOut(http::ResponseFlag flag, std::string_view body) {
  if (response_started_) {
    info_.flag = flag;
    resetStream();
    return;
  }
  sendLocalReply(408, body, flag);
}

// ---- request direction

http::FilterStatus ActiveStream::RequestHooks::iterHeaders(size_t pos, bool end_stream) {
  return s.filters_[pos].filter->onRequestHeaders(*s.request_headers_, end_stream);
}
http::FilterStatus ActiveStream::RequestHooks::iterData(size_t pos, Buffer& data, bool end_stream) {
  return s.filters_[pos].filter->onRequestBody(data, end_stream);
}
http::FilterStatus ActiveStream::RequestHooks::iterTrailers(size_t pos) {
  return s.filters_[pos].filter->onRequestTrailers(*s.request_trailers_);
}
void ActiveStream::RequestHooks::onHold(bool held) {
  // Request bytes wait at a filter: stop reading from the client meanwhile.
  if (held == s.downstream_held_) return;
  s.downstream_held_ = held;
  if (s.encoder_ != nullptr) s.encoder_->readDisable(held);
}

void ActiveStream::resumeRequest(size_t index) {
  if (local_reply_sent_ || destroyed_) return;
  request_.resume(index);
}

// ---- response direction

http::FilterStatus ActiveStream::ResponseHooks::iterHeaders(size_t pos, bool end_stream) {
  if (s.isResponseSink(pos)) {
    s.writeHeaders(end_stream);
    return http::FilterStatus::kContinue;
  }
  return s.responseFilter(pos).onResponseHeaders(*s.response_headers_, end_stream);
}
http::FilterStatus ActiveStream::ResponseHooks::iterData(size_t pos, Buffer& data, bool end_stream) {
  if (s.isResponseSink(pos)) {
    s.writeData(data, end_stream);
    return http::FilterStatus::kContinue;
  }
  return s.responseFilter(pos).onResponseBody(data, end_stream);
}
http::FilterStatus ActiveStream::ResponseHooks::iterTrailers(size_t pos) {
  if (s.isResponseSink(pos)) {
    s.writeTrailers();
    return http::FilterStatus::kContinue;
  }
  return s.responseFilter(pos).onResponseTrailers(*s.response_trailers_);
}
void ActiveStream::ResponseHooks::onHold(bool held) {
  // Response bytes wait at a filter: the router stops reading the upstream meanwhile, as it
  // does when the client's connection is full.
  if (held == s.upstream_held_ || s.destroyed_) return;
  s.upstream_held_ = held;
  s.onDownstreamWatermark(held);
}

void ActiveStream::resumeResponse(size_t index) {
  if (destroyed_ || response_replaced_ || index + 1 >= filters_.size()) return;
  response_.resume(responsePosition(index));
}

void ActiveStream::sendLocalReply(int status, std::string_view body, http::ResponseFlag flag) {
  if (destroyed_) return;
  if (response_started_) {
    resetStream();
    return;
  }
  local_reply_sent_ = true;
  info_.flag = flag;
  request_.reset();
  // A response already in the filters (held by one of them) is replaced, unfiltered: its
  // filters have run their hooks for the other response.
  const bool bypass = response_.started();
  if (bypass) {
    response_replaced_ = true;
    response_.reset();
  }
  auto h = core::http::makeResponseHeaders();
  info_.response_code = status;
  std::string_view out_body = body;
  if (grpc_) {
    // gRPC clients get a trailers-only response (the error table of docs/http.md).
    h->status = 200;
    h->headers.add("content-type", "application/grpc");
    h->headers.add("grpc-status", std::to_string(http::grpcStatusFor(flag, status)));
    std::string msg(body);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
    h->headers.add("grpc-message", msg);
    h->headers.add("content-length", "0");
    out_body = {};
  } else {
    h->status = status;
    h->headers.add("content-type", "text/plain");
    h->headers.add("content-length", std::to_string(body.size()));
  }
  // A protocol error ends the connection after the answer (HTTP/1 honours this; HTTP/2
  // ends just the stream).
  if (flag == http::ResponseFlag::kDownstreamProtocolError ||
      (!request_complete_ && (flag == http::ResponseFlag::kStreamIdleTimeout ||
                              flag == http::ResponseFlag::kRequestOverallTimeout)))
    h->headers.add("connection", "close");
  if (bypass) {
    response_headers_ = std::move(h);
    writeHeaders(out_body.empty());
    if (!out_body.empty() && !destroyed_ && encoder_ != nullptr) {
      Buffer b;
      b.add(out_body);
      writeData(b, true);
    }
    return;
  }
  encodeHeaders(std::move(h), out_body.empty());
  if (out_body.empty() || destroyed_) return;
  Buffer b;
  b.add(out_body);
  encodeData(b, true);
}

void ActiveStream::answerHealthCheck(const std::string& method) {
  local_reply_sent_ = true;  // a request body is read and dropped
  auto& w = hcm_.worker();
  int status = 200;
  std::string_view body = "ok\n";
  if (method != "GET" && method != "HEAD") {
    status = 405;
    body = "method not allowed\n";
  } else if ((w.draining != nullptr && *w.draining) ||
             (w.health_failed != nullptr && w.health_failed->load(std::memory_order_relaxed))) {
    status = 503;
    body = "draining\n";
  }
  auto h = core::http::makeResponseHeaders();
  h->status = status;
  h->headers.add("content-type", "text/plain");
  h->headers.add("content-length", std::to_string(body.size()));
  h->headers.add("cache-control", "no-store");
  if (status == 405) h->headers.add("allow", "GET, HEAD");
  info_.response_code = status;
  info_.details = "health_path";
  response_headers_ = std::move(h);
  writeHeaders(false);
  if (destroyed_ || encoder_ == nullptr) return;
  Buffer b;
  b.add(body);
  writeData(b, true);
}

void ActiveStream::encode1xxHeaders(http::ResponseHeadersPtr headers) {
  if (destroyed_ || encoder_ == nullptr || response_started_ || response_.started()) return;
  onActivity();
  encoder_->encode1xxHeaders(*headers);
}

void ActiveStream::encodeHeaders(http::ResponseHeadersPtr headers, bool end_stream) {
  if (destroyed_ || response_started_ || response_.started() || filters_.empty()) return;
  if (info_.response_code == 0 || !local_reply_sent_) info_.response_code = headers->status;
  response_headers_ = std::move(headers);
  response_.headers(end_stream);
}

void ActiveStream::encodeData(Buffer& data, bool end_stream) {
  if (destroyed_ || response_complete_ || response_replaced_ || !response_.started()) {
    data.clear();
    return;
  }
  info_.response_body_bytes += data.length();
  response_.data(data, end_stream);
}

void ActiveStream::encodeTrailers(HeaderMap trailers) {
  if (destroyed_ || response_complete_ || response_replaced_ || !response_.started()) return;
  response_trailers_ = std::move(trailers);
  response_.trailers();
}

// The sink of the response: the codec's encoder. Stats are recorded before the last bytes
// go out, so a client that has its response also sees it counted.
void ActiveStream::writeHeaders(bool end_stream) {
  if (encoder_ == nullptr) return;
  response_started_ = true;
  info_.response_start_us = core::monotonicUs();
  onActivity();
  if (info_.flag != http::ResponseFlag::kNone && hcm_.config().http.response_flags_header)
    response_headers_->headers.add("x-ferry-flags", http::responseFlagName(info_.flag));
  if (hcm_.draining()) hcm_.drainNotice();  // this response closes its connection
  if (end_stream) {
    response_complete_ = true;
    hcm_.recordRequest(info_, route_);
  }
  http::ResponseEncoder* encoder = encoder_;
  if (end_stream) complete();
  encoder->encodeHeaders(*response_headers_, end_stream);
}

void ActiveStream::writeData(Buffer& data, bool end_stream) {
  if (encoder_ == nullptr) {
    data.clear();
    return;
  }
  onActivity();
  if (end_stream) {
    response_complete_ = true;
    hcm_.recordRequest(info_, route_);
  }
  http::ResponseEncoder* encoder = encoder_;
  if (end_stream) complete();
  encoder->encodeData(data, end_stream);
}

void ActiveStream::writeTrailers() {
  if (encoder_ == nullptr) return;
  response_complete_ = true;
  hcm_.recordRequest(info_, route_);
  http::ResponseEncoder* encoder = encoder_;
  complete();
  encoder->encodeTrailers(*response_trailers_);
}

// The response is complete: the stream is done (the codec decides what that means for a
// request that is still arriving). Filters hear it, then the stream leaves the connection
// manager; it is destroyed once the call stack unwinds, so the final write that follows is
// safe.
void ActiveStream::complete() {
  for (auto& f : filters_) f.filter->onComplete(info_);
  destroyFilters();
  hcm_.onStreamDone(*this);
}

void ActiveStream::setDownstreamReadDisabled(bool disabled) {
  if (encoder_ != nullptr && !destroyed_) encoder_->readDisable(disabled);
}

void ActiveStream::resetStream() {
  if (destroyed_) return;
  if (info_.flag == http::ResponseFlag::kNone) info_.flag = http::ResponseFlag::kUpstreamResetAfterResponseStarted;
  http::ResponseEncoder* encoder = encoder_;
  encoder_ = nullptr;
  destroyFilters();
  hcm_.onStreamDone(*this);
  if (encoder != nullptr) encoder->resetStream(http::StreamResetReason::kLocalReset);
}

void ActiveStream::addResponseDataBeforeTrailers(size_t index, Buffer& data) {
  if (destroyed_ || response_replaced_ || response_complete_ || index + 1 >= filters_.size() || data.empty()) {
    data.clear();
    return;
  }
  response_.dataBeforeTrailers(responsePosition(index), data);
}

void ActiveStream::onDownstreamWatermark(bool above) {
  if (destroyed_) return;
  if (!above) onActivity();  // the client reads again
  for (auto& f : filters_) f.filter->onDownstreamWatermark(above);
}

void ActiveStream::destroyFilters() {
  if (destroyed_) return;
  destroyed_ = true;
  idle_timer_.disable();
  request_timer_.reset();
  // The exchange is over, one way or another: its access-log line. A stream the connection
  // lost before its response ended is the client's doing (DC).
  if (!response_complete_ && info_.flag == http::ResponseFlag::kNone)
    info_.flag = http::ResponseFlag::kDownstreamConnectionTermination;
  if (!response_complete_) hcm_.countFlag(info_.flag);
  if (!hcm_.config().access_logs.empty()) {
    http::LogContext ctx;
    ctx.info = &info_;
    ctx.request = request_headers_.get();
    ctx.response = response_started_ ? response_headers_.get() : nullptr;
    ctx.response_trailers = response_trailers_ ? &*response_trailers_ : nullptr;
    if (route_ != nullptr && route_->config != nullptr) ctx.route_name = route_->config->name;
    ctx.end_us = core::monotonicUs();
    hcm_.logRequest(ctx);
  }
  for (auto& f : filters_) f.filter->onDestroy();
  if (info_.trace.active) trace_.finish(*hcm_.config().tracing, *request_headers_, info_, hcm_.worker(), hcm_.remoteIp());
}

}  // namespace ferry::filters::network
