#include "filters/http/router/router.h"

#include <sys/uio.h>

#include <algorithm>
#include <optional>

#include "core/event/timer.h"
#include "core/log.h"
#include "core/router/route_table.h"
#include "core/upstream/cluster.h"
#include "core/upstream/stream_pool.h"
#include "filters/http/router/router_impl.h"

namespace ferry::filters::http {
using namespace core::http;
using core::Buffer;
namespace {

// grpc-timeout (gRPC over HTTP/2: at most 8 digits and a unit, H M S m u n), in milliseconds
// rounded up so a short deadline is not 0 (= no timeout); nullopt when malformed.
std::optional<std::chrono::milliseconds> grpcTimeout(std::string_view v) {
  if (v.size() < 2 || v.size() > 9) return std::nullopt;
  uint64_t n = 0;
  for (char c : v.substr(0, v.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  uint64_t ms;
  switch (v.back()) {
    case 'H': ms = n * 3600000; break;
    case 'M': ms = n * 60000; break;
    case 'S': ms = n * 1000; break;
    case 'm': ms = n; break;
    case 'u': ms = (n + 999) / 1000; break;
    case 'n': ms = (n + 999999) / 1000000; break;
    default: return std::nullopt;
  }
  return std::chrono::milliseconds(std::max<uint64_t>(ms, 1));
}


using core::upstream::PoolFailure;
using core::upstream::UpstreamResult;

constexpr size_t kBodyBufferLimit = 1024 * 1024;  // body held while the upstream connects

void applyHeaderOps(HeaderMap& h, const config::HeaderOpsConfig& ops) {
  for (const auto& name : ops.remove) h.remove(name);
  for (const auto& [k, v] : ops.set) h.set(k, v);
  for (const auto& [k, v] : ops.add) h.add(k, v);
}

// Appends a copy of `from` to `to` (bodies kept for a retry).
void appendCopy(Buffer& to, const Buffer& from) {
  iovec iov[64];
  size_t n = from.gather(iov, 64);
  size_t copied = 0;
  for (size_t i = 0; i < n; ++i) {
    to.add(iov[i].iov_base, iov[i].iov_len);
    copied += iov[i].iov_len;
  }
  if (copied < from.length()) {  // more slices than one gather takes
    std::string rest(from.length() - copied, '\0');
    from.copyOut(copied, rest.size(), rest.data());
    to.add(rest);
  }
}

// RFC 9110 idempotent methods: safe to send twice.
bool idempotent(const std::string& m) {
  return equals(m, "GET") || equals(m, "HEAD") || equals(m, "OPTIONS") || equals(m, "PUT") || equals(m, "DELETE") ||
         equals(m, "TRACE");
}

// The value of `name` in "a=1&b=2" (no percent-decoding: the key is hashed as sent).
std::optional<std::string_view> queryParam(std::string_view target, std::string_view name) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view part = rest.substr(0, amp);
    size_t eq = part.find('=');
    if (part.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

// The value of cookie `name` in the request's Cookie headers.
std::optional<std::string_view> cookieValue(const HeaderMap& h, std::string_view name) {
  for (const auto& e : h.entries()) {
    if (!core::http::equals(e.name, "cookie")) continue;
    std::string_view rest = e.value;
    while (!rest.empty()) {
      size_t semi = rest.find(';');
      std::string_view part = rest.substr(0, semi);
      while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
      size_t eq = part.find('=');
      if (eq != std::string_view::npos && part.substr(0, eq) == name) return part.substr(eq + 1);
      if (semi == std::string_view::npos) break;
      rest.remove_prefix(semi + 1);
    }
  }
  return std::nullopt;
}

// Splits "path?query" (already normalised by the connection manager).
std::pair<std::string, std::string> splitQuery(const std::string& target) {
  size_t q = target.find('?');
  if (q == std::string::npos) return {target, ""};
  return {target.substr(0, q), target.substr(q)};
}

// The path after a prefix_rewrite: the matched prefix replaced for prefix routes, the whole
// path otherwise.
std::string rewritePath(const config::RouteMatchConfig& m, const std::string& path, const std::string& rewrite) {
  if (m.kind == config::RouteMatchConfig::Kind::kPrefix && path.compare(0, m.value.size(), m.value) == 0)
    return rewrite + path.substr(m.value.size());
  return rewrite;
}

}  // namespace

FilterStatus Router::onRequestHeaders(RequestHeaders& h, bool end_stream) {
  request_end_ = end_stream;
  entry_ = callbacks_->route();
  route_ = entry_ ? entry_->config : nullptr;
  if (!route_) {
    callbacks_->sendLocalReply(404, "no route\n", ResponseFlag::kNoRoute);
    return FilterStatus::kStop;
  }
  if (route_->direct_response) {
    callbacks_->streamInfo().details = "direct_response";
    sendDirect(route_->direct_response->status, route_->direct_response->body, {});
    return FilterStatus::kStop;
  }
  if (route_->redirect) {
    callbacks_->streamInfo().details = "redirect";
    sendRedirect(h);
    return FilterStatus::kStop;
  }
  const auto& action = *route_->route;
  // Weighted clusters draw from the worker's LB random generator (no second PRNG).
  const uint64_t draw = action.weighted_clusters.empty() ? 0 : callbacks_->worker().lb->rng().next();
  cluster_ = entry_->pickCluster(draw);
  auto& info = callbacks_->streamInfo();
  info.upstream_cluster = action.weighted_clusters.empty() ? action.cluster : core::router::pickWeighted(action, draw);
  if (!cluster_) {
    callbacks_->sendLocalReply(503, "no healthy upstream\n", ResponseFlag::kNoHealthyUpstream);
    return FilterStatus::kStop;
  }
  auto& w = callbacks_->worker();
  // Circuit breaker: requests in flight, process-wide.
  if (!cluster_->tryAcquireRequest()) {
    w.stats->inc(cluster_->stats().overflow_requests);
    countUpstream(503);
    callbacks_->sendLocalReply(503, "upstream overflow\n", ResponseFlag::kUpstreamOverflow);
    return FilterStatus::kStop;
  }
  request_counted_ = true;
  w.stats->inc(cluster_->stats().rq_active);
  if (action.prefix_rewrite) {
    auto [path, query] = splitQuery(h.path);
    h.path = rewritePath(route_->match, path, *action.prefix_rewrite) + query;
  }
  if (action.host_rewrite) h.authority = *action.host_rewrite;
  applyHeaderOps(h.headers, route_->request_headers);
  if (action.retry) {
    retry_ = &*action.retry;
    retries_left_ = retry_->attempts;
    retain_ = retries_left_ > 0;
    idempotent_ = idempotent(h.method);
  }
  if (cluster_->usesHash()) hash_ = hashKey(h, action.hash_on ? *action.hash_on : cluster_->config().hash_on);
  std::chrono::milliseconds timeout = action.timeout;
  // A gRPC client's deadline (grpc-timeout) bounds the route timeout when it is shorter.
  if (callbacks_->streamInfo().grpc) {
    if (const std::string* gt = h.headers.get("grpc-timeout")) {
      if (auto d = grpcTimeout(*gt); d && (timeout.count() == 0 || *d < timeout)) timeout = *d;
    }
  }
  if (timeout.count() > 0) {
    timeout_.emplace(*w.io, [this] { onTimeout(); });  // in place: no allocation per request
    timeout_->enable(timeout);
  }
  startAttempt();
  return FilterStatus::kStop;
}

FilterStatus Router::onRequestBody(Buffer& data, bool end_stream) {
  if (end_stream) request_end_ = true;
  if (done_) {
    data.clear();
    return FilterStatus::kStop;
  }
  core::http::RequestEncoder* enc = upstream_ ? upstream_->encoder() : nullptr;
  if (enc != nullptr && headers_sent_) {
    if (!data.empty()) body_streamed_ = true;
    retainBody(data);
    if (end_stream) request_sent_ = true;
    enc->encodeData(data, end_stream);
    return FilterStatus::kStop;
  }
  body_.move(data);
  body_end_ = body_end_ || end_stream;
  if (body_.length() > kBodyBufferLimit && !held_downstream_) {
    held_downstream_ = true;
    callbacks_->setDownstreamReadDisabled(true);
  }
  return FilterStatus::kStop;
}

FilterStatus Router::onRequestTrailers(HeaderMap& t) {
  request_end_ = true;
  if (done_) return FilterStatus::kStop;
  if (retain_) kept_trailers_ = t;
  core::http::RequestEncoder* enc = upstream_ ? upstream_->encoder() : nullptr;
  if (enc != nullptr && headers_sent_) {
    request_sent_ = true;
    enc->encodeTrailers(t);
  } else {
    trailers_ = std::move(t);
  }
  return FilterStatus::kStop;
}

void Router::onDownstreamWatermark(bool above) {
  // Counted: the client's connection and a response held by a filter both pause the upstream.
  if (above) {
    ++downstream_full_;
  } else if (downstream_full_ > 0) {
    --downstream_full_;
  } else {
    return;
  }
  if (core::http::RequestEncoder* enc = upstream_ ? upstream_->encoder() : nullptr) enc->readDisable(above);
}

void Router::onDestroy() {
  if (destroyed_) return;
  destroyed_ = true;
  done_ = true;
  timeout_.reset();
  try_timeout_.reset();
  backoff_.reset();
  dropUpstream();
  endAttempt();
  if (request_counted_) {
    request_counted_ = false;
    cluster_->releaseRequest();
    callbacks_->worker().stats->dec(cluster_->stats().rq_active);
  }
}

void Router::onUpstreamReady() {
  if (done_) {
    dropUpstream();
    return;
  }
  core::http::RequestEncoder& enc = *upstream_->encoder();
  auto& h = callbacks_->requestHeaders();
  // A write can end the try at once (a dead connection resets the stream): check before each.
  const uint32_t attempt = attempt_id_;
  auto sending = [&] { return upstream_ && attempt_id_ == attempt && upstream_->encoder() == &enc; };
  // What the client cannot take is not read from the new stream either.
  for (int i = 0; i < downstream_full_; ++i) enc.readDisable(true);
  headers_sent_ = true;
  attempt_start_us_ = core::monotonicUs();
  if (request_end_) request_sent_ = true;
  if (attempts_ > 0 || stale_retry_) {
    // A retry: everything of the request sent before goes out again, then what arrived
    // while waiting.
    Buffer body;
    appendCopy(body, retained_);
    if (!body_.empty()) body_streamed_ = true;
    retainBody(body_);
    body.move(body_);
    if (trailers_ && !kept_trailers_) kept_trailers_ = std::move(trailers_);
    trailers_.reset();
    const bool end_now = request_end_ && body.empty() && !kept_trailers_;
    enc.encodeHeaders(h, end_now);
    if (!body.empty() && sending()) enc.encodeData(body, request_end_ && !kept_trailers_);
    if (kept_trailers_ && request_end_ && sending()) enc.encodeTrailers(*kept_trailers_);
  } else {
    const bool end_now = request_end_ && body_.empty() && !trailers_;
    enc.encodeHeaders(h, end_now);
    if ((!body_.empty() || (body_end_ && !end_now)) && sending()) {
      if (!body_.empty()) body_streamed_ = true;
      retainBody(body_);
      enc.encodeData(body_, body_end_ && !trailers_);
    }
    if (trailers_ && sending()) {
      enc.encodeTrailers(*trailers_);
      trailers_.reset();
    }
  }
  if (held_downstream_) {
    held_downstream_ = false;
    callbacks_->setDownstreamReadDisabled(false);
  }
}

void Router::onUpstreamFailure(PoolFailure reason, std::string_view detail) {
  if (done_) return;
  FERRY_LOG(kDebug, "router: upstream ", callbacks_->streamInfo().upstream_host, ": ", core::log::sv(detail));
  if (reason == PoolFailure::kOverflow) {
    fail(503, "upstream overflow\n", ResponseFlag::kUpstreamOverflow);
    return;
  }
  cluster_->reportResult(*host_, UpstreamResult::kLocalOriginFailure);
  if (maybeRetry(RetryOn::kConnectFailure, 0)) return;
  fail(503, "upstream connect error\n", ResponseFlag::kUpstreamConnectFailure);
}

void Router::onUpstream1xx(core::http::ResponseHeadersPtr headers) {
  if (done_ || response_started_) return;
  // 103 Early Hints and the like go to the client as they come (the codec drops a 100 the
  // client already got from us, and any 1xx an HTTP/1.0 client cannot take).
  callbacks_->encode1xxHeaders(std::move(headers));
}

void Router::onUpstreamHeaders(core::http::ResponseHeadersPtr h, bool end_stream) {
  if (done_) return;
  const int status = h->status;
  {
    auto& info = callbacks_->streamInfo();
    info.upstream_service_us = core::monotonicUs() - attempt_start_us_;
    callbacks_->worker().stats->observe(cluster_->stats().rq_time, info.upstream_service_us);
  }
  countUpstream(status);
  countHost(status);
  UpstreamResult result = UpstreamResult::kSuccess;
  if (status == 502 || status == 503 || status == 504) {
    result = UpstreamResult::kGatewayError;
  } else if (status >= 500) {
    result = UpstreamResult::k5xx;
  }
  cluster_->reportResult(*host_, result);
  if (status != 101 && maybeRetry(RetryOn::kStatus, status)) return;
  if (timeout_) timeout_->disable();
  if (try_timeout_) try_timeout_->disable();
  releaseRetrySlot();
  response_started_ = true;
  applyHeaderOps(h->headers, route_->response_headers);
  if (end_stream) finishUpstream();
  callbacks_->encodeHeaders(std::move(h), end_stream);
}

void Router::onUpstreamData(Buffer& data, bool end_stream) {
  if (done_ && !end_stream) {
    data.clear();
    return;
  }
  if (end_stream) finishUpstream();
  callbacks_->encodeData(data, end_stream);
}

void Router::onUpstreamTrailers(HeaderMap trailers) {
  if (done_) return;
  finishUpstream();
  callbacks_->encodeTrailers(std::move(trailers));
}

void Router::onUpstreamReset(core::http::StreamResetReason reason, std::string_view detail) {
  if (held_upstream_full_) {
    held_upstream_full_ = false;
    callbacks_->setDownstreamReadDisabled(false);
  }
  if (done_) return;
  auto& w = callbacks_->worker();
  FERRY_LOG(kDebug, "router: upstream ", callbacks_->streamInfo().upstream_host, ": stream ",
            core::http::resetReasonName(reason), ": ", core::log::sv(detail));
  if (reason == core::http::StreamResetReason::kProtocolError) {
    cluster_->countError(*w.stats, *host_, core::upstream::UpstreamError::kProtocol);
    if (response_started_) {
      done_ = true;
      endAttempt();
      callbacks_->resetStream();
      return;
    }
    cluster_->reportResult(*host_, UpstreamResult::k5xx);
    fail(502, "upstream protocol error\n", ResponseFlag::kUpstreamProtocolError);
    return;
  }
  if (response_started_) {
    done_ = true;
    endAttempt();
    callbacks_->resetStream();
    return;
  }
  // A reused keep-alive connection the upstream closed just before our request: try once
  // more on another connection of the same host, if nothing of a body is lost. Not a retry:
  // the request never reached the upstream's application.
  // The same for a stream an HTTP/2 upstream refused or left above its GOAWAY.
  const bool refused = reason == core::http::StreamResetReason::kRefusedStream;
  if (upstream_ && (upstream_->reused() || refused) && !stale_retry_ && (!body_streamed_ || retain_) && request_end_) {
    stale_retry_ = true;
    headers_sent_ = false;
    request_sent_ = false;
    core::upstream::StreamPool& pool = upstream_->pool();
    upstream_.reset();  // its stream is gone already
    upstream_.emplace(*this, pool);
    ++attempt_id_;
    upstream_->start();
    return;
  }
  cluster_->countError(*w.stats, *host_, core::upstream::UpstreamError::kReset);
  cluster_->reportResult(*host_, UpstreamResult::kGatewayError);
  if (maybeRetry(RetryOn::kReset, 0)) return;
  fail(502, "upstream connection closed\n", ResponseFlag::kUpstreamConnectionClosed);
}

void Router::onUpstreamWatermark(bool above) {
  // The upstream cannot take more of the request: stop reading the client meanwhile.
  if (above == held_upstream_full_) return;
  held_upstream_full_ = above;
  callbacks_->setDownstreamReadDisabled(above);
}

// Picks a host (another one than the last try's when there is a choice) and asks its pool for
// a stream.
void Router::startAttempt() {
  auto& w = callbacks_->worker();
  core::upstream::PickContext pc;
  pc.hash = hash_;
  pc.avoid = host_;
  const core::upstream::HostPtr* hp = w.lb->pick(*cluster_, pc);
  if (hp == nullptr) {
    w.stats->inc(cluster_->stats().no_healthy);
    fail(503, "no healthy upstream\n", ResponseFlag::kNoHealthyUpstream);
    return;
  }
  if (const auto* st = w.lb->state(cluster_->index()); st != nullptr && st->panic) w.stats->inc(cluster_->stats().panic);
  host_ = hp->get();
  callbacks_->streamInfo().upstream_host = host_->address;
  // The shared in-flight count only where a policy reads it: one less contended write.
  count_active_ = cluster_->lbPolicy() == config::LbPolicy::kLeastRequest;
  if (count_active_) host_->rq_active.fetch_add(1, std::memory_order_relaxed);
  w.stats->inc(host_->stats.rq_active);
  attempt_active_ = true;
  headers_sent_ = false;
  request_sent_ = false;
  stale_retry_ = false;
  if (retry_ && retry_->per_try_timeout.count() > 0) {
    if (!try_timeout_) try_timeout_.emplace(*w.io, [this] { onPerTryTimeout(); });
    try_timeout_->enable(retry_->per_try_timeout);
  }
  // The pool keeps the host alive from here on (the table holding *hp may be replaced). A
  // cluster that sends the PROXY protocol keeps each client's connections apart.
  const core::net::ConnectionInfo* client =
      cluster_->sendProxyProtocol() != 0 ? &callbacks_->downstreamConnection() : nullptr;
  core::upstream::StreamPool& pool = w.pools->pool(*cluster_, *hp, client);
  upstream_.emplace(*this, pool);
  ++attempt_id_;
  upstream_->start();  // may call onUpstreamReady/onUpstreamFailure right here
}

// The current try is over (answered, failed or abandoned).
void Router::endAttempt() {
  releaseRetrySlot();  // also when the request ends during a backoff (no try active)
  if (!attempt_active_) return;
  attempt_active_ = false;
  if (count_active_) host_->rq_active.fetch_sub(1, std::memory_order_relaxed);
  callbacks_->worker().stats->dec(host_->stats.rq_active);
  if (try_timeout_) try_timeout_->disable();
}

void Router::releaseRetrySlot() {
  if (!retry_slot_) return;
  retry_slot_ = false;
  cluster_->releaseRetry();
}

// Keeps a copy of the request body for a retry while it stays within the limit.
void Router::retainBody(const Buffer& data) {
  if (!retain_) return;
  if (retained_.length() + data.length() > retry_->buffer_limit_bytes) {
    retain_ = false;  // too long to send again: no retry once any of it went out
    retained_.clear();
    return;
  }
  appendCopy(retained_, data);
}

// Decides whether this failure is retried; if so, ends the try and schedules the next.
bool Router::maybeRetry(RetryOn why, int status) {
  if (retry_ == nullptr || retries_left_ == 0 || done_ || response_started_) return false;
  if (body_streamed_ && !retain_) return false;
  const auto& r = *retry_;
  const bool any_error = r.on_5xx || r.on_gateway_error;
  bool wanted = false;
  switch (why) {
    case RetryOn::kConnectFailure:
      wanted = r.on_connect_failure || any_error;
      break;
    case RetryOn::kReset:
    case RetryOn::kPerTryTimeout:
      wanted = r.on_reset || any_error;
      break;
    case RetryOn::kStatus:
      wanted = (r.on_5xx && status >= 500 && status <= 599) || (r.on_gateway_error && status >= 502 && status <= 504) ||
               (r.on_retriable_4xx && status == 409) ||
               std::find(r.statuses.begin(), r.statuses.end(), status) != r.statuses.end();
      break;
  }
  if (!wanted) return false;
  // A request that is not idempotent may have been acted on: only a failed connect is
  // known not to have reached the application.
  if (why != RetryOn::kConnectFailure && !idempotent_ && !r.retry_non_idempotent) return false;
  auto& w = callbacks_->worker();
  releaseRetrySlot();
  if (!cluster_->tryAcquireRetry()) {
    w.stats->inc(cluster_->stats().rq_retry_overflow);
    return false;
  }
  --retries_left_;
  ++attempts_;
  w.stats->inc(cluster_->stats().rq_retry);
  dropUpstream();
  endAttempt();
  retry_slot_ = true;  // held until the retry is answered
  // Exponential backoff with full jitter: 0..min(max, base * 2^(n-1)).
  int64_t cap = r.backoff_base.count() << std::min<uint32_t>(attempts_ - 1, 20);
  cap = std::min<int64_t>(cap, r.backoff_max.count());
  auto delay = std::chrono::milliseconds(static_cast<int64_t>(w.lb->rng().below(static_cast<uint64_t>(cap) + 1)));
  FERRY_LOG(kDebug, "router: retry ", attempts_, " of ", callbacks_->streamInfo().upstream_cluster, " in ",
            delay.count(), "ms");
  if (!backoff_) backoff_.emplace(*w.io, [this] {
    if (!done_) startAttempt();
  });
  backoff_->enable(delay);
  return true;
}

std::optional<uint64_t> Router::hashKey(const RequestHeaders& h, const config::HashOnConfig& on) {
  using Kind = config::HashOnConfig::Kind;
  std::optional<std::string_view> key;
  switch (on.kind) {
    case Kind::kNone:
      return std::nullopt;
    case Kind::kHeader:
      if (core::http::equals(on.name, "host")) {
        key = h.authority;
      } else if (const std::string* v = h.headers.get(on.name)) {
        key = *v;
      }
      break;
    case Kind::kCookie:
      key = cookieValue(h.headers, on.name);
      break;
    case Kind::kSourceIp:
      key = callbacks_->downstreamRemoteIp();
      break;
    case Kind::kQuery:
      key = queryParam(h.path, on.name);
      break;
  }
  if (!key) return std::nullopt;  // no key: the pick is random
  return core::upstream::lb::hash64(*key);
}

void Router::onTimeout() {
  if (done_ || response_started_) return;
  if (host_ != nullptr && attempt_active_) {
    cluster_->countError(*callbacks_->worker().stats, *host_, core::upstream::UpstreamError::kTimeout);
    cluster_->reportResult(*host_, UpstreamResult::kGatewayError);
  }
  fail(504, "upstream request timeout\n", ResponseFlag::kUpstreamTimeout);
}

void Router::onPerTryTimeout() {
  if (done_ || response_started_ || !attempt_active_) return;
  auto& w = callbacks_->worker();
  w.stats->inc(cluster_->stats().rq_per_try_timeout);
  cluster_->countError(*w.stats, *host_, core::upstream::UpstreamError::kTimeout);
  cluster_->reportResult(*host_, UpstreamResult::kGatewayError);
  if (maybeRetry(RetryOn::kPerTryTimeout, 0)) return;
  fail(504, "upstream request timeout\n", ResponseFlag::kUpstreamTimeout);
}

void Router::fail(int status, std::string_view body, ResponseFlag flag) {
  done_ = true;
  if (timeout_) timeout_->disable();
  if (backoff_) backoff_->disable();
  dropUpstream();
  endAttempt();
  if (flag != ResponseFlag::kUpstreamTimeout && flag != ResponseFlag::kNoHealthyUpstream) countUpstream(status);
  callbacks_->sendLocalReply(status, body, flag);
}

void Router::finishUpstream() {
  done_ = true;
  if (timeout_) timeout_->disable();
  endAttempt();
}

void Router::dropUpstream() {
  if (held_upstream_full_) {
    held_upstream_full_ = false;
    callbacks_->setDownstreamReadDisabled(false);
  }
  if (upstream_) upstream_.reset();  // withdraws or resets an unfinished try
}

void Router::countUpstream(int status) {
  if (!cluster_) return;
  int cls = status / 100;
  if (cls >= 1 && cls <= 5) callbacks_->worker().stats->inc(cluster_->stats().rq_by_class[cls]);
}

void Router::countHost(int status) {
  int cls = status / 100;
  if (cls >= 1 && cls <= 5) callbacks_->worker().stats->inc(host_->stats.rq_by_class[cls]);
}

void Router::sendDirect(int status, const std::string& body, const std::string& location) {
  auto r = core::http::makeResponseHeaders();
  r->status = status;
  if (!location.empty()) r->headers.add("location", location);
  if (!body.empty()) r->headers.add("content-type", "text/plain");
  r->headers.add("content-length", std::to_string(body.size()));
  applyHeaderOps(r->headers, route_->response_headers);
  done_ = true;
  if (body.empty()) {
    callbacks_->encodeHeaders(std::move(r), true);
    return;
  }
  callbacks_->encodeHeaders(std::move(r), false);
  Buffer b;
  b.add(body);
  callbacks_->encodeData(b, true);
}

void Router::sendRedirect(const RequestHeaders& h) {
  const auto& rd = *route_->redirect;
  auto [path, query] = splitQuery(h.path);
  std::string new_path = path;
  if (rd.path) {
    new_path = *rd.path;
  } else if (rd.prefix_rewrite) {
    new_path = rewritePath(route_->match, path, *rd.prefix_rewrite);
  }
  std::string scheme = rd.scheme ? *rd.scheme : (h.scheme.empty() ? "http" : h.scheme);
  std::string host = rd.host ? *rd.host : h.authority;
  sendDirect(rd.code, "", scheme + "://" + host + new_path + query);
}

std::unique_ptr<HttpFilter> makeRouter() { return std::make_unique<Router>(); }

}  // namespace ferry::filters::http
