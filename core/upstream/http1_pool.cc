// The HTTP/1.1 stream pool: one stream per connection. Keep-alive reuse (most recently used
// first), bounded idle connections, idle timeout, max requests per connection, and
// stale-connection detection (an idle connection that reads anything or closes is dropped at
// once). Circuit breakers: a request that needs a new connection holds one of the cluster's
// pending requests until it connects, and one of its connections while it lives.
#include <algorithm>
#include <list>
#include <vector>

#include "core/event/timer.h"
#include "core/http/http1/connection.h"
#include "core/log.h"
#include "core/net/connection.h"
#include "core/net/proxy_protocol.h"
#include "core/net/socket_util.h"
#include "core/upstream/pool_connection.h"
#include "core/upstream/stream_pool.h"

namespace ferry::core::upstream {
namespace {

using net::ConnectionEvent;

class Http1Pool;

// One upstream connection with its codec. Worker-local; owned by its pool.
class ActiveClient final : public PoolConnection {
 public:
  ActiveClient(Http1Pool& pool, std::shared_ptr<net::Connection> conn) : PoolConnection(std::move(conn)), pool_(pool) {
    codec_ = http::http1::makeClientConnection(*this, *this);
  }

  // net::ConnectionCallbacks
  void onData(Buffer& data, bool end_stream) override;
  void onEvent(ConnectionEvent event) override;
  // http::ClientConnectionCallbacks
  void onStreamEnd() override;

  Http1Pool& pool_;
  uint32_t requests_ = 0;
  bool idle_ = false;
  bool connected_ = false;  // until then it holds one of the cluster's max_pending_requests
  std::unique_ptr<Timer> idle_timer_;
  std::list<std::unique_ptr<ActiveClient>>::iterator self_;
};

class Http1Pool final : public StreamPool {
 public:
  Http1Pool(PoolManager& manager, std::shared_ptr<const Cluster> cluster, HostPtr host, std::string proxy_header)
      : manager_(manager),
        ctx_(manager.ctx()),
        cluster_(std::move(cluster)),
        host_(std::move(host)),
        proxy_header_(std::move(proxy_header)),
        graveyard_(*ctx_.io) {}
  ~Http1Pool() override {
    idle_.clear();
    pending_.clear();
    clients_.clear();
  }

  uint64_t newStream(http::ResponseDecoder& decoder, http::StreamCallbacks& stream_cb,
                     StreamPoolCallbacks& cb) override {
    while (!idle_.empty()) {
      ActiveClient* c = idle_.back();  // most recently used: warmest, least likely stale
      idle_.pop_back();
      c->idle_ = false;
      if (c->idle_timer_) c->idle_timer_->disable();
      if (c->conn_->closed()) {
        destroy(*c);
        continue;
      }
      ++c->requests_;
      attach(*c, decoder, stream_cb, cb, true);
      return 0;
    }
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
    auto conn = connectUpstream(ctx_, *cluster_, *host_, proxy_header_);
    if (!conn) {
      cluster_->releasePending();
      cluster_->releaseConnection();
      cb.onPoolFailure(PoolFailure::kConnectFailure, "cannot create a socket");
      return 0;
    }
    clients_.push_front(std::make_unique<ActiveClient>(*this, std::move(conn)));
    ActiveClient* c = clients_.front().get();
    c->self_ = clients_.begin();
    uint64_t ticket = next_ticket_++;
    pending_.push_back(Pending{ticket, &decoder, &stream_cb, &cb, c});
    return ticket;
  }

  void cancel(uint64_t ticket) override {
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->ticket != ticket) continue;
      ActiveClient* c = it->client;
      pending_.erase(it);
      // Nobody waits for it any more: close it (HTTP/1 connections are cheap to redo).
      c->conn_->close(net::Connection::CloseType::kNoFlush);
      return;
    }
  }

  const Host& host() const override { return *host_; }
  const Cluster& cluster() const override { return *cluster_; }
  void setCluster(std::shared_ptr<const Cluster> cluster) override { cluster_ = std::move(cluster); }
  bool unused() const override { return clients_.empty() && pending_.empty(); }
  void closeIdle() override {
    std::vector<ActiveClient*> idle = idle_;  // each close edits idle_ (onClosed)
    for (ActiveClient* c : idle) c->conn_->close(net::Connection::CloseType::kNoFlush);
  }

  void onConnected(ActiveClient& c) {
    cluster_->releasePending();
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->client != &c) continue;
      Pending p = *it;
      pending_.erase(it);
      ++c.requests_;
      attach(c, *p.decoder, *p.stream_cb, *p.cb, false);
      return;
    }
    // Connected after its waiter went away: keep it as an idle connection.
    release(c);
  }

  void onConnectFailed(ActiveClient& c, bool timeout) {
    ctx_.stats->inc(cluster_->stats().connect_failures);
    ctx_.stats->inc(host_->stats.connect_failures);
    cluster_->countError(*ctx_.stats, *host_, UpstreamError::kConnectFailure);
    std::string reason = c.conn_->closeReason();
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->client != &c) continue;
      StreamPoolCallbacks* cb = it->cb;
      pending_.erase(it);
      destroy(c);
      cb->onPoolFailure(timeout ? PoolFailure::kConnectTimeout : PoolFailure::kConnectFailure, reason);
      return;
    }
    destroy(c);
  }

  void onClosed(ActiveClient& c) {
    if (c.idle_) {
      idle_.erase(std::remove(idle_.begin(), idle_.end(), &c), idle_.end());
      c.idle_ = false;
    }
    destroy(c);
  }

  // The stream on `c` ended: keep the connection for the next request, or close it.
  void release(ActiveClient& c) {
    const uint32_t max_requests = cluster_->maxRequestsPerConnection();
    bool keep = !host_->removed.load(std::memory_order_relaxed) && !c.conn_->closed() && !c.conn_->closing() &&
                c.codec_->activeStreams() == 0 && c.codec_->reusable() &&
                idle_.size() < cluster_->maxIdleConnections() && (max_requests == 0 || c.requests_ < max_requests);
    if (!keep) {
      c.conn_->close(net::Connection::CloseType::kNoFlush);  // raises kLocalClose -> onClosed
      return;
    }
    c.idle_ = true;
    idle_.push_back(&c);
    if (cluster_->poolIdleTimeout().count() > 0) {
      if (!c.idle_timer_) {  // made once per connection, re-armed on every release
        ActiveClient* pc = &c;
        c.idle_timer_ = std::make_unique<Timer>(*ctx_.io, [pc] {
          pc->conn_->close(net::Connection::CloseType::kNoFlush);
        });
      }
      c.idle_timer_->enable(cluster_->poolIdleTimeout());
    }
  }

 private:
  struct Pending {
    uint64_t ticket;
    http::ResponseDecoder* decoder;
    http::StreamCallbacks* stream_cb;
    StreamPoolCallbacks* cb;
    ActiveClient* client;
  };

  void attach(ActiveClient& c, http::ResponseDecoder& decoder, http::StreamCallbacks& stream_cb,
              StreamPoolCallbacks& cb, bool reused) {
    http::RequestEncoder& encoder = c.codec_->newStream(decoder);
    encoder.setStreamCallbacks(&stream_cb);
    cb.onPoolReady(encoder, reused);
  }

  void destroy(ActiveClient& c) {
    if (c.self_ == clients_.end()) return;
    ctx_.stats->dec(cluster_->stats().cx_active);
    ctx_.stats->dec(host_->stats.cx_active);
    if (!c.connected_) cluster_->releasePending();  // it never connected: still a pending request
    cluster_->releaseConnection();
    c.idle_timer_.reset();
    std::unique_ptr<ActiveClient> dying = std::move(*c.self_);
    clients_.erase(c.self_);
    dying->self_ = clients_.end();
    graveyard_.add(std::move(dying));
    if (unused()) manager_.onPoolUnused(*this);
  }

  PoolManager& manager_;
  WorkerContext& ctx_;
  std::shared_ptr<const Cluster> cluster_;
  HostPtr host_;  // keeps a host that left the cluster alive while its connections finish
  std::string proxy_header_;
  std::list<std::unique_ptr<ActiveClient>> clients_;  // every live connection
  std::vector<ActiveClient*> idle_;                   // back = most recently used
  std::list<Pending> pending_;
  DeferredDeleter<ActiveClient> graveyard_;
  uint64_t next_ticket_ = 1;
};

void ActiveClient::onData(Buffer& data, bool end_stream) {
  if (idle_ || codec_->activeStreams() == 0) {
    // Anything arriving on an idle keep-alive connection (bytes or FIN) means the upstream is
    // done with it: drop it now rather than hand it to the next request.
    data.clear();
    conn_->close(net::Connection::CloseType::kNoFlush);
    return;
  }
  codec_->dispatch(data, end_stream);
  if (end_stream && !conn_->closed()) conn_->close(net::Connection::CloseType::kNoFlush);
}

void ActiveClient::onEvent(ConnectionEvent event) {
  switch (event) {
    case ConnectionEvent::kConnected:
      connected_ = true;
      pool_.onConnected(*this);
      return;
    case ConnectionEvent::kConnectFailed:
      pool_.onConnectFailed(*this, conn_->closeReason().rfind("connect timeout", 0) == 0);
      return;
    case ConnectionEvent::kRemoteClose:
    case ConnectionEvent::kLocalClose:
      // A stream still on it loses its connection (a local close has already ended it).
      codec_->onConnectionClosed(conn_->closeReason());
      pool_.onClosed(*this);
      return;
  }
}

void ActiveClient::onStreamEnd() {
  if (conn_->closed()) return;  // the close that ended it disposes of the connection
  pool_.release(*this);
}

}  // namespace

std::unique_ptr<StreamPool> makeHttp1Pool(PoolManager& manager, std::shared_ptr<const Cluster> cluster, HostPtr host,
                                          std::string proxy_header) {
  return std::make_unique<Http1Pool>(manager, std::move(cluster), std::move(host), std::move(proxy_header));
}

std::shared_ptr<net::Connection> connectUpstream(WorkerContext& ctx, const Cluster& cluster, const Host& host,
                                                 const std::string& proxy_header) {
  auto transport = cluster.newTransport(host);
  auto conn = transport ? net::Connection::connect(*ctx.io, host.addr, cluster.connectTimeout(), ctx.acct,
                                                   std::move(transport))
                        : nullptr;
  if (!conn) return nullptr;
  if (!proxy_header.empty()) {
    Buffer header;
    header.add(proxy_header);
    conn->writeRaw(header);  // before anything the transport sends
  }
  ctx.stats->inc(cluster.stats().cx_total);
  ctx.stats->inc(cluster.stats().cx_active);
  ctx.stats->inc(host.stats.cx_total);
  ctx.stats->inc(host.stats.cx_active);
  return conn;
}

std::unique_ptr<StreamPool> makePool(PoolManager& manager, std::shared_ptr<const Cluster> cluster, HostPtr host,
                                     std::string proxy_header) {
  if (cluster->config().protocol == "http2")
    return makeHttp2Pool(manager, std::move(cluster), std::move(host), std::move(proxy_header));
  return makeHttp1Pool(manager, std::move(cluster), std::move(host), std::move(proxy_header));
}

StreamPool& PoolManager::pool(const Cluster& cluster, const HostPtr& host, const net::ConnectionInfo* downstream) {
  if (cluster.sendProxyProtocol() != 0 && downstream != nullptr) {
    // Connections that carry a client's PROXY header belong to that client.
    PrivateKey key{host->id, net::formatSockaddr(downstream->remote) + " " + net::formatSockaddr(downstream->local)};
    auto it = private_pools_.find(key);
    if (it == private_pools_.end()) {
      std::string header = cluster.sendProxyProtocol() == 1 ? net::encodeProxyV1(downstream->remote, downstream->local)
                                                           : net::encodeProxyV2(downstream->remote, downstream->local);
      auto p = makePool(*this, cluster.shared_from_this(), host, std::move(header));
      ctx_.stats->inc(cluster.stats().pools);
      it = private_pools_.emplace(std::move(key), std::move(p)).first;
    } else if (&it->second->cluster() != &cluster) {
      if (cluster.sameConnectionsAs(it->second->cluster())) {
        it->second->setCluster(cluster.shared_from_this());
      } else {
        auto old = std::move(it->second);
        private_pools_.erase(it);
        dropOutdated(std::move(old));
        return pool(cluster, host, downstream);
      }
    }
    return *it->second;
  }
  auto it = pools_.find(host->id);
  if (it != pools_.end()) {
    if (&it->second->cluster() == &cluster) return *it->second;
    if (cluster.sameConnectionsAs(it->second->cluster())) {
      it->second->setCluster(cluster.shared_from_this());
      return *it->second;
    }
    auto old = std::move(it->second);
    pools_.erase(it);
    dropOutdated(std::move(old));
  }
  auto p = makePool(*this, cluster.shared_from_this(), host, "");
  ctx_.stats->inc(cluster.stats().pools);
  auto& ref = *p;
  pools_.emplace(host->id, std::move(p));
  return ref;
}

void PoolManager::dropRemovedHosts() {
  std::vector<StreamPool*> gone;
  for (auto& [id, p] : pools_)
    if (p->host().removed.load(std::memory_order_relaxed)) gone.push_back(p.get());
  for (auto& [key, p] : private_pools_)
    if (p->host().removed.load(std::memory_order_relaxed)) gone.push_back(p.get());
  for (StreamPool* p : gone) {
    if (p->unused()) {
      retire(*p);
    } else {
      p->closeIdle();  // the last connection's end retires the pool (onPoolUnused)
    }
  }
}

void PoolManager::onPoolUnused(StreamPool& pool) {
  // A shared pool stays while its host does; a private one (one client's PROXY header) goes
  // once it has no connection left.
  auto it = pools_.find(pool.host().id);
  const bool shared = it != pools_.end() && it->second.get() == &pool;
  if (!shared || pool.host().removed.load(std::memory_order_relaxed)) retire(pool);
}

void PoolManager::dropOutdated(std::unique_ptr<StreamPool> pool) {
  FERRY_LOG(kDebug, "cluster ", pool->cluster().name(), ": connection settings changed; pool of ",
            pool->host().address, " replaced");
  StreamPool& p = *pool;
  outdated_.push_back(std::move(pool));
  if (p.unused()) {
    retire(p);
  } else {
    p.closeIdle();  // its last connection's end retires it (onPoolUnused)
  }
}

void PoolManager::retire(StreamPool& pool) {
  for (auto oit = outdated_.begin(); oit != outdated_.end(); ++oit) {
    if (oit->get() != &pool) continue;
    ctx_.stats->dec(pool.cluster().stats().pools);
    graveyard_.add(std::move(*oit));
    outdated_.erase(oit);
    return;
  }
  auto it = pools_.find(pool.host().id);
  if (it != pools_.end() && it->second.get() == &pool) {
    ctx_.stats->dec(pool.cluster().stats().pools);
    graveyard_.add(std::move(it->second));
    pools_.erase(it);
    return;
  }
  for (auto pit = private_pools_.begin(); pit != private_pools_.end(); ++pit) {
    if (pit->second.get() != &pool) continue;
    ctx_.stats->dec(pool.cluster().stats().pools);
    graveyard_.add(std::move(pit->second));
    private_pools_.erase(pit);
    return;
  }
}

}  // namespace ferry::core::upstream
