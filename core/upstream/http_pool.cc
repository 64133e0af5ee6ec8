#include "core/upstream/http_pool.h"

#include <algorithm>

#include "core/event/timer.h"
#include "core/log.h"

namespace ferry::core::upstream {
using net::ConnectionEvent;

PooledConnection::PooledConnection(HttpPool& pool, std::shared_ptr<net::Connection> conn)
    : pool_(pool), conn_(std::move(conn)), codec_(*this) {
  conn_->setCallbacks(this);
}

PooledConnection::~PooledConnection() {
  conn_->setCallbacks(nullptr);
  conn_->close(net::Connection::CloseType::kNoFlush);
}

const Host& PooledConnection::host() const { return pool_.host(); }

void PooledConnection::onData(Buffer& data, bool end_stream) {
  if (idle_ || !user_) {
    // Anything arriving on an idle keep-alive connection (bytes or FIN) means the upstream is
    // done with it: drop it now rather than hand it to the next request.
    data.clear();
    conn_->close(net::Connection::CloseType::kNoFlush);
    return;
  }
  if (codec_.upgraded()) {
    user_->onUpstreamTunnelData(data, end_stream);
    return;
  }
  codec_.dispatch(data);
  if (codec_.upgraded() && user_) {
    if (!data.empty() || end_stream) user_->onUpstreamTunnelData(data, end_stream);
    return;
  }
  data.clear();
  if (!end_stream) return;
  // The upstream closed: that may complete a close-delimited response; otherwise the
  // attached request lost its connection.
  if (user_) codec_.onEof();
  if (user_) {
    auto* u = user_;
    user_ = nullptr;
    u->onUpstreamClosed();
  }
  conn_->close(net::Connection::CloseType::kNoFlush);
}

void PooledConnection::onEvent(ConnectionEvent event) {
  switch (event) {
    case ConnectionEvent::kConnected:
      connected_ = true;
      pool_.onConnected(*this);
      return;
    case ConnectionEvent::kConnectFailed:
      pool_.onConnectFailed(*this, conn_->closeReason() == "connect timeout");
      return;
    case ConnectionEvent::kRemoteClose:
    case ConnectionEvent::kLocalClose: {
      auto* user = user_;
      user_ = nullptr;
      if (user && event == ConnectionEvent::kRemoteClose) user->onUpstreamClosed();
      pool_.onClosed(*this);
      return;
    }
  }
}

void PooledConnection::onAboveWriteHighWatermark() {
  if (user_) user_->onUpstreamAboveWriteHighWatermark();
}
void PooledConnection::onBelowWriteLowWatermark() {
  if (user_) user_->onUpstreamBelowWriteLowWatermark();
}
void PooledConnection::onResponseHeaders(http::ResponseHeadersPtr headers, bool end_stream) {
  if (user_) user_->onResponseHeaders(std::move(headers), end_stream);
}
void PooledConnection::onInformational(http::ResponseHeadersPtr headers) {
  if (user_) user_->onInformational(std::move(headers));
}
void PooledConnection::onResponseData(Buffer& data, bool end_stream) {
  if (user_) {
    user_->onResponseData(data, end_stream);
  } else {
    data.clear();
  }
}
void PooledConnection::onResponseTrailers(http::HeaderMap trailers) {
  if (user_) user_->onResponseTrailers(std::move(trailers));
}
void PooledConnection::onProtocolError(std::string_view detail) {
  if (user_) user_->onProtocolError(detail);
}

HttpPool::HttpPool(WorkerContext& ctx, std::shared_ptr<const Cluster> cluster, HostPtr host)
    : ctx_(ctx), cluster_(std::move(cluster)), host_(std::move(host)), graveyard_(*ctx.io) {}

HttpPool::~HttpPool() {
  idle_.clear();
  pending_.clear();
  conns_.clear();
}

uint64_t HttpPool::newStream(PoolCallbacks& cb) {
  while (!idle_.empty()) {
    PooledConnection* c = idle_.back();  // most recently used: warmest, least likely stale
    idle_.pop_back();
    c->idle_ = false;
    if (c->idle_timer_) c->idle_timer_->disable();
    if (c->conn_->closed()) {
      destroy(*c);
      continue;
    }
    c->countRequest();
    cb.onPoolReady(*c, true);
    return 0;
  }
  const Host& h = host();
  // Circuit breakers: a request that needs a new connection waits for it as a pending
  // request, and opens one of the cluster's connections.
  if (!cluster_->tryAcquirePending()) {
    ctx_.stats->inc(cluster_->stats().overflow_pending);
    cb.onPoolFailure(PoolFailure::kOverflow, "max_pending_requests reached");
    return 0;
  }
  if (!cluster_->tryAcquireConnection()) {
    cluster_->releasePending();
    ctx_.stats->inc(cluster_->stats().overflow_connections);
    cb.onPoolFailure(PoolFailure::kOverflow, "max_connections reached");
    return 0;
  }
  auto conn = net::Connection::connect(*ctx_.io, h.addr, cluster_->connectTimeout(), ctx_.acct, cluster_->newTransport());
  if (!conn) {
    cluster_->releasePending();
    cluster_->releaseConnection();
    cb.onPoolFailure(PoolFailure::kConnectFailure, "cannot create a socket");
    return 0;
  }
  ctx_.stats->inc(cluster_->stats().cx_total);
  ctx_.stats->inc(cluster_->stats().cx_active);
  ctx_.stats->inc(h.stats.cx_total);
  ctx_.stats->inc(h.stats.cx_active);
  conns_.push_front(std::make_unique<PooledConnection>(*this, std::move(conn)));
  PooledConnection* c = conns_.front().get();
  c->self_ = conns_.begin();  // a pending request of the cluster until it connects or dies
  uint64_t ticket = next_ticket_++;
  pending_.push_back(Pending{ticket, &cb, c});
  return ticket;
}

void HttpPool::cancel(uint64_t ticket) {
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->ticket != ticket) continue;
    PooledConnection* c = it->conn;
    pending_.erase(it);
    // Nobody waits for it any more: close it (HTTP/1 connections are cheap to redo).
    c->conn_->close(net::Connection::CloseType::kNoFlush);
    return;
  }
}

void HttpPool::onConnected(PooledConnection& c) {
  cluster_->releasePending();
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->conn != &c) continue;
    PoolCallbacks* cb = it->cb;
    pending_.erase(it);
    c.countRequest();
    cb->onPoolReady(c, false);
    return;
  }
  // Connected after its waiter went away: keep it as an idle connection.
  release(c, true);
}

void HttpPool::onConnectFailed(PooledConnection& c, bool timeout) {
  ctx_.stats->inc(cluster_->stats().connect_failures);
  ctx_.stats->inc(host().stats.connect_failures);
  cluster_->countError(*ctx_.stats, host(), UpstreamError::kConnectFailure);
  std::string reason = c.conn_->closeReason();
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->conn != &c) continue;
    PoolCallbacks* cb = it->cb;
    pending_.erase(it);
    destroy(c);
    cb->onPoolFailure(timeout ? PoolFailure::kConnectTimeout : PoolFailure::kConnectFailure, reason);
    return;
  }
  destroy(c);
}

void HttpPool::onClosed(PooledConnection& c) {
  if (c.idle_) {
    idle_.erase(std::remove(idle_.begin(), idle_.end(), &c), idle_.end());
    c.idle_ = false;
  }
  destroy(c);
}

void HttpPool::release(PooledConnection& c, bool reusable) {
  c.attach(nullptr);
  const uint32_t max_requests = cluster_->maxRequestsPerConnection();
  bool keep = reusable && !host_->removed.load(std::memory_order_relaxed) && !c.conn_->closed() &&
              !c.conn_->closing() && c.codec_.idle() && c.codec_.keepAlive() && !c.codec_.upgraded() && idle_.size() < cluster_->maxIdleConnections() &&
              (max_requests == 0 || c.requests_ < max_requests);
  if (!keep) {
    c.conn_->close(net::Connection::CloseType::kNoFlush);  // raises kLocalClose -> onClosed
    return;
  }
  c.idle_ = true;
  idle_.push_back(&c);
  if (cluster_->poolIdleTimeout().count() > 0) {
    if (!c.idle_timer_) {  // made once per connection, re-armed on every release
      PooledConnection* pc = &c;
      c.idle_timer_ = std::make_unique<Timer>(*ctx_.io, [pc] {
        pc->conn_->close(net::Connection::CloseType::kNoFlush);
      });
    }
    c.idle_timer_->enable(cluster_->poolIdleTimeout());
  }
}

void HttpPool::destroy(PooledConnection& c) {
  if (c.self_ == conns_.end()) return;
  ctx_.stats->dec(cluster_->stats().cx_active);
  ctx_.stats->dec(host().stats.cx_active);
  if (!c.connected_) cluster_->releasePending();  // it never connected: still a pending request
  cluster_->releaseConnection();
  c.idle_timer_.reset();
  std::unique_ptr<PooledConnection> dying = std::move(*c.self_);
  conns_.erase(c.self_);
  dying->self_ = conns_.end();
  graveyard_.add(std::move(dying));
  if (unused() && host_->removed.load(std::memory_order_relaxed) && ctx_.pools != nullptr) ctx_.pools->retire(*this);
}

void HttpPool::closeIdle() {
  std::vector<PooledConnection*> idle = idle_;  // each close edits idle_ (onClosed)
  for (PooledConnection* c : idle) c->conn_->close(net::Connection::CloseType::kNoFlush);
}

void PoolManager::dropRemovedHosts() {
  std::vector<HttpPool*> gone;
  for (auto& [id, p] : pools_)
    if (p->host().removed.load(std::memory_order_relaxed)) gone.push_back(p.get());
  for (HttpPool* p : gone) {
    if (p->unused()) {
      retire(*p);
    } else {
      p->closeIdle();  // the last connection's destroy() retires the pool
    }
  }
}

void PoolManager::retire(HttpPool& pool) {
  auto it = pools_.find(pool.host().id);
  if (it == pools_.end() || it->second.get() != &pool) return;
  ctx_.stats->dec(pool.cluster().stats().pools);
  graveyard_.add(std::move(it->second));
  pools_.erase(it);
}

HttpPool& PoolManager::pool(const Cluster& cluster, const HostPtr& host) {
  const uint64_t key = host->id;
  auto it = pools_.find(key);
  if (it != pools_.end()) {
    if (&it->second->cluster() != &cluster) it->second->setCluster(cluster.shared_from_this());
    return *it->second;
  }
  auto p = std::make_unique<HttpPool>(ctx_, cluster.shared_from_this(), host);
  ctx_.stats->inc(cluster.stats().pools);
  auto& ref = *p;
  pools_.emplace(key, std::move(p));
  return ref;
}

}  // namespace ferry::core::upstream
