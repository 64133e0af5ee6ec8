#include "filters/http/router/router.h"

#include <optional>
#include <random>

#include "config/snapshot.h"
#include "core/event/timer.h"
#include "core/log.h"
#include "core/router/route_table.h"
#include "core/upstream/http_pool.h"

namespace ferry::filters::http {
namespace {

using core::upstream::HttpPool;
using core::upstream::PoolFailure;
using core::upstream::PooledConnection;

constexpr size_t kBodyBufferLimit = 1024 * 1024;  // body held while the upstream connects

void applyHeaderOps(HeaderMap& h, const config::HeaderOpsConfig& ops) {
  for (const auto& name : ops.remove) h.remove(name);
  for (const auto& [k, v] : ops.set) h.set(k, v);
  for (const auto& [k, v] : ops.add) h.add(k, v);
}

uint64_t randomU64() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
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
    route_ = callbacks_->route();
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
    const std::string& name = action.weighted_clusters.empty()
                                  ? action.cluster
                                  : core::router::pickWeighted(action, randomU64());
    auto& info = callbacks_->streamInfo();
    info.upstream_cluster = name;
    cluster_ = callbacks_->snapshot().clusterPtr(name);
    if (!cluster_ || cluster_->hosts().empty()) {
      callbacks_->sendLocalReply(503, "no healthy upstream\n", ResponseFlag::kNoHealthyUpstream);
      return FilterStatus::kStop;
    }
    if (action.prefix_rewrite) {
      auto [path, query] = splitQuery(h.path);
      h.path = rewritePath(route_->match, path, *action.prefix_rewrite) + query;
    }
    if (action.host_rewrite) h.authority = *action.host_rewrite;
    applyHeaderOps(h.headers, route_->request_headers);
    auto& w = callbacks_->worker();
    host_index_ = w.lb->pickRoundRobin(*cluster_);
    info.upstream_host = cluster_->hosts()[host_index_].address;
    if (action.timeout.count() > 0) {
      timeout_.emplace(*w.io, [this] { onTimeout(); });  // in place: no allocation per request
      timeout_->enable(action.timeout);
    }
    startUpstream();
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
    if (ticket_ && pool_) pool_->cancel(ticket_);
    ticket_ = 0;
    releaseUpstream(false);
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
    bool end_now = request_end_ && body_.empty() && !trailers_;
    Buffer out;
    c.codec().encodeHeaders(h, end_now, out);
    headers_sent_ = true;
    if (!body_.empty() || (body_end_ && !end_now)) {
      if (!body_.empty()) body_streamed_ = true;
      c.codec().encodeData(body_, body_end_ && !trailers_, out);
    }
    if (trailers_) {
      c.codec().encodeTrailers(*trailers_, out);
      trailers_.reset();
    }
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
    fail(503, reason == PoolFailure::kOverflow ? "upstream overflow\n" : "upstream connect error\n",
         reason == PoolFailure::kOverflow ? ResponseFlag::kUpstreamOverflow : ResponseFlag::kUpstreamConnectFailure);
  }

  // UpstreamStreamCallbacks
  void onResponseHeaders(core::http::ResponseHeadersPtr h, bool end_stream) override {
    if (done_) return;
    if (timeout_) timeout_->disable();
    response_started_ = true;
    applyHeaderOps(h->headers, route_->response_headers);
    countUpstream(h->status);
    if (h->status == 101) tunnel_ = true;
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
    releaseUpstream(false);
    if (response_started_) {
      done_ = true;
      callbacks_->resetStream();
      return;
    }
    fail(502, "upstream protocol error\n", ResponseFlag::kUpstreamProtocolError);
  }

  void onUpstreamClosed() override {
    upstream_ = nullptr;  // the pool disposes of it
    if (done_) return;
    if (tunnel_) {
      done_ = true;
      Buffer none;
      callbacks_->encodeData(none, true);
      return;
    }
    if (!response_started_) {
      // A reused keep-alive connection the upstream closed just before our request: try
      // once more on another connection, if nothing of a body went out.
      if (reused_ && !retried_ && !body_streamed_ && request_end_) {
        retried_ = true;
        headers_sent_ = false;
        request_sent_ = false;
        startUpstream();
        return;
      }
      fail(502, "upstream connection closed\n", ResponseFlag::kUpstreamConnectionClosed);
      return;
    }
    done_ = true;
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
    if (end_stream) done_ = true;
    callbacks_->encodeData(data, end_stream);
  }

 private:
  void startUpstream() {
    pool_ = &callbacks_->worker().pools->pool(cluster_, host_index_);
    ticket_ = pool_->newStream(*this);  // may call onPoolReady/onPoolFailure right here
  }

  void onTimeout() {
    if (done_ || response_started_) return;
    fail(504, "upstream request timeout\n", ResponseFlag::kUpstreamTimeout);
  }

  void fail(int status, std::string_view body, ResponseFlag flag) {
    done_ = true;
    if (timeout_) timeout_->disable();
    if (ticket_ && pool_) pool_->cancel(ticket_);
    ticket_ = 0;
    releaseUpstream(false);
    if (flag != ResponseFlag::kUpstreamTimeout && flag != ResponseFlag::kNoHealthyUpstream) countUpstream(status);
    callbacks_->sendLocalReply(status, body, flag);
  }

  void finishUpstream() {
    done_ = true;
    if (timeout_) timeout_->disable();
    releaseUpstream(request_sent_ && !tunnel_);
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

  const config::RouteConfig* route_ = nullptr;
  std::shared_ptr<const core::upstream::Cluster> cluster_;
  size_t host_index_ = 0;
  HttpPool* pool_ = nullptr;
  uint64_t ticket_ = 0;
  PooledConnection* upstream_ = nullptr;
  std::optional<core::Timer> timeout_;
  Buffer body_;
  bool body_end_ = false;
  std::optional<HeaderMap> trailers_;
  bool request_end_ = false;
  bool request_sent_ = false;
  bool headers_sent_ = false;
  bool response_started_ = false;
  bool done_ = false;
  bool destroyed_ = false;
  bool reused_ = false;
  bool retried_ = false;
  bool body_streamed_ = false;
  bool tunnel_ = false;
  bool held_downstream_ = false;
  bool held_upstream_full_ = false;
};

}  // namespace

std::unique_ptr<HttpFilter> makeRouter() { return std::make_unique<Router>(); }

}  // namespace ferry::filters::http
