#include "filters/http/router/router.h"

#include <sys/uio.h>

#include <algorithm>
#include <optional>

#include "core/event/timer.h"
#include "core/log.h"
#include "core/router/route_table.h"
#include "core/upstream/cluster.h"
#include "core/upstream/http_pool.h"

namespace ferry::filters::http {
using namespace core::http;
using core::Buffer;
namespace {

using core::upstream::HttpPool;
using core::upstream::PoolFailure;
using core::upstream::PooledConnection;
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
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE" || m == "TRACE";
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
    if (e.name != "cookie") continue;
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

class Router : public HttpFilter, public core::upstream::PoolCallbacks, public core::upstream::UpstreamStreamCallbacks {
 public:
  // Both bases have response hooks with these names: the filter ones (unused: the router is
  // the response's source) and the upstream codec's.
  using HttpFilter::onResponseHeaders;
  using HttpFilter::onResponseTrailers;
  using UpstreamStreamCallbacks::onResponseHeaders;
  using UpstreamStreamCallbacks::onResponseTrailers;
  ~Router() override { onDestroy(); }

  FilterStatus onRequestHeaders(RequestHeaders& h, bool end_stream) override {
    request_end_ = end_stream;
    entry_ = callbacks_->route();
    route_ = entry_ ? entry_->config : nullptr;
    if (!route_) {
      callbacks_->sendLocalReply(404, "no route\n", ResponseFlag::kNoRoute);
      return FilterStatus::kStop;
    }
    if (route_->direct_response) {
      sendDirect(route_->direct_response->status, route_->direct_response->body, {});
      return FilterStatus::kStop;
    }
    if (route_->redirect) {
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
    if (action.timeout.count() > 0) {
      timeout_.emplace(*w.io, [this] { onTimeout(); });  // in place: no allocation per request
      timeout_->enable(action.timeout);
    }
    startAttempt();
    return FilterStatus::kStop;
  }

  FilterStatus onRequestBody(Buffer& data, bool end_stream) override {
    if (end_stream) request_end_ = true;
    if (done_) {
      data.clear();
      return FilterStatus::kStop;
    }
    if (tunnel_) {
      if (upstream_) {
        upstream_->write(data, end_stream);
      } else {
        data.clear();
      }
      return FilterStatus::kStop;
    }
    if (upstream_ && headers_sent_) {
      if (!data.empty()) body_streamed_ = true;
      retainBody(data);
      Buffer out;
      upstream_->codec().encodeData(data, end_stream, out);
      upstream_->write(out, false);
      if (end_stream) request_sent_ = true;
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

  FilterStatus onRequestTrailers(HeaderMap& t) override {
    request_end_ = true;
    if (done_) return FilterStatus::kStop;
    if (retain_) kept_trailers_ = t;
    if (upstream_ && headers_sent_) {
      Buffer out;
      upstream_->codec().encodeTrailers(t, out);
      upstream_->write(out, false);
      request_sent_ = true;
    } else {
      trailers_ = std::move(t);
    }
    return FilterStatus::kStop;
  }

  void onDownstreamWatermark(bool above) override {
    if (upstream_) upstream_->connection().readDisable(above);
  }

  void onDestroy() override {
    if (destroyed_) return;
    destroyed_ = true;
    done_ = true;
    timeout_.reset();
    try_timeout_.reset();
    backoff_.reset();
    if (ticket_ && pool_) pool_->cancel(ticket_);
    ticket_ = 0;
    releaseUpstream(false);
    endAttempt();
    if (request_counted_) {
      request_counted_ = false;
      cluster_->releaseRequest();
      callbacks_->worker().stats->dec(cluster_->stats().rq_active);
    }
  }

  // PoolCallbacks
  void onPoolReady(PooledConnection& c, bool reused) override {
    ticket_ = 0;
    if (done_) {
      pool_->release(c, true);
      return;
    }
    upstream_ = &c;
    reused_ = reused;
    c.attach(this);
    auto& h = callbacks_->requestHeaders();
    Buffer out;
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
      c.codec().encodeHeaders(h, end_now, out);
      if (!body.empty()) c.codec().encodeData(body, request_end_ && !kept_trailers_, out);
      if (kept_trailers_ && request_end_) c.codec().encodeTrailers(*kept_trailers_, out);
    } else {
      const bool end_now = request_end_ && body_.empty() && !trailers_;
      c.codec().encodeHeaders(h, end_now, out);
      if (!body_.empty() || (body_end_ && !end_now)) {
        if (!body_.empty()) body_streamed_ = true;
        retainBody(body_);
        c.codec().encodeData(body_, body_end_ && !trailers_, out);
      }
      if (trailers_) {
        c.codec().encodeTrailers(*trailers_, out);
        trailers_.reset();
      }
    }
    headers_sent_ = true;
    if (request_end_) request_sent_ = true;
    c.write(out, false);
    if (held_downstream_) {
      held_downstream_ = false;
      callbacks_->setDownstreamReadDisabled(false);
    }
  }

  void onPoolFailure(PoolFailure reason, std::string_view detail) override {
    ticket_ = 0;
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

  // UpstreamStreamCallbacks
  void onResponseHeaders(core::http::ResponseHeadersPtr h, bool end_stream) override {
    if (done_) return;
    const int status = h->status;
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
    if (status == 101) tunnel_ = true;
    if (end_stream) finishUpstream();
    callbacks_->encodeHeaders(std::move(h), end_stream);
  }

  void onInformational(core::http::ResponseHeadersPtr) override {
    // 100 Continue was already answered to the client by the connection manager.
  }

  void onResponseData(Buffer& data, bool end_stream) override {
    if (done_ && !end_stream) {
      data.clear();
      return;
    }
    if (end_stream) finishUpstream();
    callbacks_->encodeData(data, end_stream);
  }

  void onResponseTrailers(HeaderMap trailers) override {
    if (done_) return;
    finishUpstream();
    callbacks_->encodeTrailers(std::move(trailers));
  }

  void onProtocolError(std::string_view detail) override {
    if (done_) return;
    FERRY_LOG(kDebug, "router: malformed response from ", callbacks_->streamInfo().upstream_host, ": ",
              core::log::sv(detail));
    cluster_->countError(*callbacks_->worker().stats, *host_, core::upstream::UpstreamError::kProtocol);
    releaseUpstream(false);
    if (response_started_) {
      done_ = true;
      endAttempt();
      callbacks_->resetStream();
      return;
    }
    cluster_->reportResult(*host_, UpstreamResult::k5xx);
    fail(502, "upstream protocol error\n", ResponseFlag::kUpstreamProtocolError);
  }

  void onUpstreamClosed() override {
    upstream_ = nullptr;  // the pool disposes of it
    if (done_) return;
    if (tunnel_) {
      done_ = true;
      endAttempt();
      Buffer none;
      callbacks_->encodeData(none, true);
      return;
    }
    if (!response_started_) {
      // A reused keep-alive connection the upstream closed just before our request: try
      // once more on another connection, if nothing of a body went out. Not a retry: the
      // request never reached the upstream's application.
      if (reused_ && !stale_retry_ && (!body_streamed_ || retain_) && request_end_) {
        stale_retry_ = true;
        headers_sent_ = false;
        request_sent_ = false;
        ticket_ = pool_->newStream(*this);  // the same host's pool
        return;
      }
      cluster_->countError(*callbacks_->worker().stats, *host_, core::upstream::UpstreamError::kReset);
      cluster_->reportResult(*host_, UpstreamResult::kGatewayError);
      if (maybeRetry(RetryOn::kReset, 0)) return;
      fail(502, "upstream connection closed\n", ResponseFlag::kUpstreamConnectionClosed);
      return;
    }
    done_ = true;
    endAttempt();
    callbacks_->resetStream();
  }

  void onUpstreamAboveWriteHighWatermark() override {
    if (!held_upstream_full_) {
      held_upstream_full_ = true;
      callbacks_->setDownstreamReadDisabled(true);
    }
  }
  void onUpstreamBelowWriteLowWatermark() override {
    if (held_upstream_full_) {
      held_upstream_full_ = false;
      callbacks_->setDownstreamReadDisabled(false);
    }
  }
  void onUpstreamTunnelData(Buffer& data, bool end_stream) override {
    if (done_) {
      data.clear();
      return;
    }
    if (end_stream) {
      done_ = true;
      endAttempt();
    }
    callbacks_->encodeData(data, end_stream);
  }

 private:
  enum class RetryOn { kConnectFailure, kReset, kPerTryTimeout, kStatus };

  // Picks a host (another one than the last try's when there is a choice) and asks its pool
  // for a connection.
  void startAttempt() {
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
    if (const auto* st = w.lb->state(cluster_->index()); st != nullptr && st->panic)
      w.stats->inc(cluster_->stats().panic);
    host_ = hp->get();
    callbacks_->streamInfo().upstream_host = host_->address;
    // The shared in-flight count only where a policy reads it: one less contended write.
    count_active_ = cluster_->lbPolicy() == config::LbPolicy::kLeastRequest;
    if (count_active_) host_->rq_active.fetch_add(1, std::memory_order_relaxed);
    w.stats->inc(host_->stats.rq_active);
    attempt_active_ = true;
    headers_sent_ = false;
    request_sent_ = false;
    reused_ = false;
    stale_retry_ = false;
    if (retry_ && retry_->per_try_timeout.count() > 0) {
      if (!try_timeout_) try_timeout_.emplace(*w.io, [this] { onPerTryTimeout(); });
      try_timeout_->enable(retry_->per_try_timeout);
    }
    // The pool keeps the host alive from here on (the table holding *hp may be replaced).
    pool_ = &w.pools->pool(*cluster_, *hp);
    ticket_ = pool_->newStream(*this);  // may call onPoolReady/onPoolFailure right here
  }

  // The current try is over (answered, failed or abandoned).
  void endAttempt() {
    releaseRetrySlot();  // also when the request ends during a backoff (no try active)
    if (!attempt_active_) return;
    attempt_active_ = false;
    if (count_active_) host_->rq_active.fetch_sub(1, std::memory_order_relaxed);
    callbacks_->worker().stats->dec(host_->stats.rq_active);
    if (try_timeout_) try_timeout_->disable();
  }

  void releaseRetrySlot() {
    if (!retry_slot_) return;
    retry_slot_ = false;
    cluster_->releaseRetry();
  }

  // Keeps a copy of the request body for a retry while it stays within the limit.
  void retainBody(const Buffer& data) {
    if (!retain_) return;
    if (retained_.length() + data.length() > retry_->buffer_limit_bytes) {
      retain_ = false;  // too long to send again: no retry once any of it went out
      retained_.clear();
      return;
    }
    appendCopy(retained_, data);
  }

  // Decides whether this failure is retried; if so, ends the try and schedules the next.
  bool maybeRetry(RetryOn why, int status) {
    if (retry_ == nullptr || retries_left_ == 0 || done_ || response_started_ || tunnel_) return false;
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
        wanted = (r.on_5xx && status >= 500 && status <= 599) ||
                 (r.on_gateway_error && status >= 502 && status <= 504) || (r.on_retriable_4xx && status == 409) ||
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
    if (ticket_ && pool_) pool_->cancel(ticket_);
    ticket_ = 0;
    releaseUpstream(false);
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

  std::optional<uint64_t> hashKey(const RequestHeaders& h, const config::HashOnConfig& on) {
    using Kind = config::HashOnConfig::Kind;
    std::optional<std::string_view> key;
    switch (on.kind) {
      case Kind::kNone:
        return std::nullopt;
      case Kind::kHeader:
        if (on.name == "host") {
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

  void onTimeout() {
    if (done_ || response_started_) return;
    if (host_ != nullptr && attempt_active_) {
      cluster_->countError(*callbacks_->worker().stats, *host_, core::upstream::UpstreamError::kTimeout);
      cluster_->reportResult(*host_, UpstreamResult::kGatewayError);
    }
    fail(504, "upstream request timeout\n", ResponseFlag::kUpstreamTimeout);
  }

  void onPerTryTimeout() {
    if (done_ || response_started_ || !attempt_active_) return;
    auto& w = callbacks_->worker();
    w.stats->inc(cluster_->stats().rq_per_try_timeout);
    cluster_->countError(*w.stats, *host_, core::upstream::UpstreamError::kTimeout);
    cluster_->reportResult(*host_, UpstreamResult::kGatewayError);
    if (maybeRetry(RetryOn::kPerTryTimeout, 0)) return;
    fail(504, "upstream request timeout\n", ResponseFlag::kUpstreamTimeout);
  }

  void fail(int status, std::string_view body, ResponseFlag flag) {
    done_ = true;
    if (timeout_) timeout_->disable();
    if (backoff_) backoff_->disable();
    if (ticket_ && pool_) pool_->cancel(ticket_);
    ticket_ = 0;
    releaseUpstream(false);
    endAttempt();
    if (flag != ResponseFlag::kUpstreamTimeout && flag != ResponseFlag::kNoHealthyUpstream) countUpstream(status);
    callbacks_->sendLocalReply(status, body, flag);
  }

  void finishUpstream() {
    done_ = true;
    if (timeout_) timeout_->disable();
    releaseUpstream(request_sent_ && !tunnel_);
    endAttempt();
  }

  void releaseUpstream(bool reusable) {
    if (!upstream_) return;
    PooledConnection* c = upstream_;
    upstream_ = nullptr;
    if (held_upstream_full_) {
      held_upstream_full_ = false;
      callbacks_->setDownstreamReadDisabled(false);
    }
    pool_->release(*c, reusable);
  }

  void countUpstream(int status) {
    if (!cluster_) return;
    int cls = status / 100;
    if (cls >= 1 && cls <= 5) callbacks_->worker().stats->inc(cluster_->stats().rq_by_class[cls]);
  }

  void countHost(int status) {
    int cls = status / 100;
    if (cls >= 1 && cls <= 5) callbacks_->worker().stats->inc(host_->stats.rq_by_class[cls]);
  }

  void sendDirect(int status, const std::string& body, const std::string& location) {
    auto r = std::make_unique<core::http::ResponseHeaders>();
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

  void sendRedirect(const RequestHeaders& h) {
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

  const core::router::Route* entry_ = nullptr;  // held by the stream's route table
  const config::RouteConfig* route_ = nullptr;
  const core::upstream::Cluster* cluster_ = nullptr;  // held by the route
  const core::upstream::Host* host_ = nullptr;  // kept alive by its pool
  HttpPool* pool_ = nullptr;
  uint64_t ticket_ = 0;
  PooledConnection* upstream_ = nullptr;
  std::optional<core::Timer> timeout_;      // the route timeout, over all tries
  std::optional<core::Timer> try_timeout_;  // per_try_timeout
  std::optional<core::Timer> backoff_;      // until the next retry
  Buffer body_;
  bool body_end_ = false;
  std::optional<HeaderMap> trailers_;
  // Retries.
  const config::RetryConfig* retry_ = nullptr;
  uint32_t retries_left_ = 0;
  uint32_t attempts_ = 0;  // retries started
  Buffer retained_;        // the request body sent so far, for a retry
  std::optional<HeaderMap> kept_trailers_;
  std::optional<uint64_t> hash_;
  bool retain_ = false;
  bool idempotent_ = true;
  bool retry_slot_ = false;
  bool attempt_active_ = false;
  bool count_active_ = false;  // host_->rq_active was incremented
  bool request_counted_ = false;
  bool request_end_ = false;
  bool request_sent_ = false;
  bool headers_sent_ = false;
  bool response_started_ = false;
  bool done_ = false;
  bool destroyed_ = false;
  bool reused_ = false;
  bool stale_retry_ = false;
  bool body_streamed_ = false;
  bool tunnel_ = false;
  bool held_downstream_ = false;
  bool held_upstream_full_ = false;
};

}  // namespace

std::unique_ptr<HttpFilter> makeRouter() { return std::make_unique<Router>(); }

}  // namespace ferry::filters::http
