// HTTP/1.1 upstream connection pools: per worker, per (cluster, host). Keep-alive reuse
// (most recently used first), bounded idle connections, idle timeout, max requests per
// connection, and stale-connection detection (an idle connection that reads anything or
// closes is dropped at once). Worker-local: no locks.
#pragma once

#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/buffer.h"
#include "core/event/deferred_deleter.h"
#include "core/event/worker_context.h"
#include "core/http/http1/codec.h"
#include "core/net/connection.h"
#include "core/upstream/cluster.h"

namespace ferry::core {
class Timer;
}

namespace ferry::core::upstream {

class HttpPool;

// What the user of a pooled connection (the router's upstream request) receives.
class UpstreamStreamCallbacks : public http::http1::ClientCodecCallbacks {
 public:
  // The connection ended while attached (reset, error, or EOF the codec could not use).
  virtual void onUpstreamClosed() = 0;
  virtual void onUpstreamAboveWriteHighWatermark() {}
  virtual void onUpstreamBelowWriteLowWatermark() {}
  // Raw bytes after an upgrade (101): the connection is a tunnel.
  virtual void onUpstreamTunnelData(Buffer& data, bool end_stream) {}
};

class PooledConnection : public net::ConnectionCallbacks, public http::http1::ClientCodecCallbacks {
 public:
  PooledConnection(HttpPool& pool, std::shared_ptr<net::Connection> conn);
  ~PooledConnection() override;

  net::Connection& connection() { return *conn_; }
  http::http1::ClientCodec& codec() { return codec_; }
  void attach(UpstreamStreamCallbacks* user) { user_ = user; }
  const Host& host() const;
  uint32_t requests() const { return requests_; }
  void countRequest() { ++requests_; }
  bool reused() const { return requests_ > 1; }
  // Sends bytes upstream.
  void write(Buffer& data, bool end_stream) { conn_->write(data, end_stream); }

  // net::ConnectionCallbacks
  void onData(Buffer& data, bool end_stream) override;
  void onEvent(net::ConnectionEvent event) override;
  void onAboveWriteHighWatermark() override;
  void onBelowWriteLowWatermark() override;
  // ClientCodecCallbacks: forwarded to the attached user.
  void onResponseHeaders(http::ResponseHeadersPtr headers, bool end_stream) override;
  void onInformational(http::ResponseHeadersPtr headers) override;
  void onResponseData(Buffer& data, bool end_stream) override;
  void onResponseTrailers(http::HeaderMap trailers) override;
  void onProtocolError(std::string_view detail) override;

 private:
  friend class HttpPool;
  HttpPool& pool_;
  std::shared_ptr<net::Connection> conn_;
  http::http1::ClientCodec codec_;
  UpstreamStreamCallbacks* user_ = nullptr;
  uint32_t requests_ = 0;
  bool idle_ = false;
  bool connected_ = false;  // until then it holds one of the cluster's max_pending_requests
  std::unique_ptr<Timer> idle_timer_;
  std::list<std::unique_ptr<PooledConnection>>::iterator self_;
};

enum class PoolFailure { kConnectFailure, kConnectTimeout, kOverflow };

class PoolCallbacks {
 public:
  virtual ~PoolCallbacks() = default;
  // A connection is ready for one request; it is attached to nobody yet. `reused` = it has
  // served requests before (it may have been closed by the upstream meanwhile).
  virtual void onPoolReady(PooledConnection& conn, bool reused) = 0;
  virtual void onPoolFailure(PoolFailure reason, std::string_view detail) = 0;
};

// One (cluster, host) pool on one worker.
class HttpPool {
 public:
  HttpPool(WorkerContext& ctx, std::shared_ptr<const Cluster> cluster, HostPtr host);
  ~HttpPool();

  // Either calls cb.onPoolReady synchronously (an idle connection) and returns 0, or starts a
  // connect and returns a ticket for cancel(). cb must outlive the ticket.
  uint64_t newStream(PoolCallbacks& cb);
  void cancel(uint64_t ticket);
  // The user is done with the connection. reusable: the response was fully read and both
  // sides allow keep-alive.
  void release(PooledConnection& conn, bool reusable);

  const Cluster& cluster() const { return *cluster_; }
  void setCluster(std::shared_ptr<const Cluster> cluster) { cluster_ = std::move(cluster); }
  const Host& host() const { return *host_; }
  WorkerContext& ctx() { return ctx_; }
  size_t idleCount() const { return idle_.size(); }
  // No connection at all (none connecting, busy or idle).
  bool unused() const { return conns_.empty() && pending_.empty(); }
  // Closes every idle connection (a host DNS removed).
  void closeIdle();

 private:
  friend class PooledConnection;
  struct Pending {
    uint64_t ticket;
    PoolCallbacks* cb;
    PooledConnection* conn;
  };
  void onConnected(PooledConnection& c);
  void onConnectFailed(PooledConnection& c, bool timeout);
  void onClosed(PooledConnection& c);
  void destroy(PooledConnection& c);

  WorkerContext& ctx_;
  std::shared_ptr<const Cluster> cluster_;
  HostPtr host_;  // keeps a host DNS removed alive while its connections finish
  std::list<std::unique_ptr<PooledConnection>> conns_;  // every live connection
  std::vector<PooledConnection*> idle_;                 // back = most recently used
  std::list<Pending> pending_;
  DeferredDeleter<PooledConnection> graveyard_;
  uint64_t next_ticket_ = 1;
};

// All pools of one worker, keyed by host identity (Host::id: a host keeps it, and so its pool
// and idle connections, across config snapshots and cluster updates; a host belongs to one
// cluster).
class PoolManager {
 public:
  explicit PoolManager(WorkerContext& ctx) : ctx_(ctx), graveyard_(*ctx.io) {}
  // The pool of `host`, made on first use. A pool made under an older version of the cluster
  // moves to `cluster` (the current settings; the same counters and stats).
  HttpPool& pool(const Cluster& cluster, const HostPtr& host);
  size_t size() const { return pools_.size(); }
  // After a new table: the pools of hosts DNS removed close their idle connections, and go
  // away once they have no connection left (see HttpPool::destroy).
  void dropRemovedHosts();
  // Destroys `pool` a moment later (it may be on the call stack). It must be unused.
  void retire(HttpPool& pool);

 private:
  WorkerContext& ctx_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<HttpPool>> pools_;  // by Host::id
  DeferredDeleter<HttpPool> graveyard_;
};

}  // namespace ferry::core::upstream
