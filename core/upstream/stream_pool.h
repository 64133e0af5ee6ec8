// Upstream stream pools: the router asks a pool for a stream to one host and gets a
// RequestEncoder; the pool owns the connections and their codecs. HTTP/1 (http1_pool.cc) has
// one stream per connection and keeps idle keep-alive connections; an HTTP/2 pool multiplexes
// many streams per connection and handles GOAWAY behind the same interface. Per worker, per
// host: no locks. The PoolManager keys pools by host identity (Host::id), so they survive
// config snapshots and cluster updates.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "core/event/deferred_deleter.h"
#include "core/event/worker_context.h"
#include "core/http/codec.h"
#include "core/net/connection_info.h"
#include "core/upstream/cluster.h"

namespace ferry::core::net {
class Connection;
}

namespace ferry::core::upstream {

enum class PoolFailure { kConnectFailure, kConnectTimeout, kOverflow };

class StreamPoolCallbacks {
 public:
  virtual ~StreamPoolCallbacks() = default;
  // A stream is ready: send the request through `encoder` (valid until the stream ends or is
  // reset). reused: its connection carried streams before; the upstream may have closed it
  // meanwhile, which shows as a reset (kConnectionTermination) before any response byte.
  virtual void onPoolReady(http::RequestEncoder& encoder, bool reused) = 0;
  virtual void onPoolFailure(PoolFailure reason, std::string_view detail) = 0;
};

class StreamPool {
 public:
  virtual ~StreamPool() = default;
  // Asks for a stream whose response goes to `decoder` and whose events go to `stream_cb`.
  // Either `cb` is called before this returns (and it returns 0), or later, with the returned
  // ticket usable for cancel(). All three must outlive the stream (or the ticket).
  virtual uint64_t newStream(http::ResponseDecoder& decoder, http::StreamCallbacks& stream_cb,
                             StreamPoolCallbacks& cb) = 0;
  // Withdraws a waiting request (the connection it waited for is closed or kept idle).
  virtual void cancel(uint64_t ticket) = 0;

  virtual const Host& host() const = 0;
  virtual const Cluster& cluster() const = 0;
  // The cluster got new settings (a new Cluster object of the same name): use them from now on.
  virtual void setCluster(std::shared_ptr<const Cluster> cluster) = 0;
  // No connection at all (none connecting, busy or idle).
  virtual bool unused() const = 0;
  // Closes every idle connection (its host left the cluster).
  virtual void closeIdle() = 0;
};

// All pools of one worker. Worker-local; owned by the worker's runtime.
class PoolManager {
 public:
  explicit PoolManager(WorkerContext& ctx) : ctx_(ctx), graveyard_(*ctx.io) {}
  // The pool of `host`, made on first use (its cluster's protocol). A pool made under an older
  // version of the cluster moves to `cluster`. For a cluster that sends the PROXY protocol,
  // `downstream` (the client's connection) is part of the key: such connections carry one
  // client's header and are never shared with another client.
  StreamPool& pool(const Cluster& cluster, const HostPtr& host, const net::ConnectionInfo* downstream = nullptr);
  size_t size() const { return pools_.size() + private_pools_.size(); }
  // After a new table: the pools of hosts DNS or a config change removed close their idle
  // connections, and go away once they have no connection left.
  void dropRemovedHosts();
  // Called by a pool that has no connection left: it is destroyed a moment later if its host
  // is gone or it belongs to one client (PROXY protocol).
  void onPoolUnused(StreamPool& pool);
  WorkerContext& ctx() { return ctx_; }

 private:
  struct PrivateKey {
    uint64_t host;
    std::string client;  // remote and local address of the downstream connection
    bool operator==(const PrivateKey&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const PrivateKey& k) {
      return H::combine(std::move(h), k.host, k.client);
    }
  };
  void retire(StreamPool& pool);
  // A pool made for an earlier version of `cluster` whose connections cannot serve it (TLS,
  // protocol or PROXY protocol changed): it leaves its slot, closes its idle connections and
  // goes once its open requests finish.
  void dropOutdated(std::unique_ptr<StreamPool> pool);

  WorkerContext& ctx_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<StreamPool>> pools_;  // by Host::id
  absl::flat_hash_map<PrivateKey, std::unique_ptr<StreamPool>> private_pools_;
  DeferredDeleter<StreamPool> graveyard_;
  std::vector<std::unique_ptr<StreamPool>> outdated_;  // see dropOutdated
};

// The HTTP/1 pool (http1_pool.cc). `proxy_header`: raw bytes every new connection sends first
// (the PROXY protocol header of a private pool), or empty.
std::unique_ptr<StreamPool> makeHttp1Pool(PoolManager& manager, std::shared_ptr<const Cluster> cluster, HostPtr host,
                                          std::string proxy_header);
// The HTTP/2 pool (http2_pool.cc): many streams per connection.
std::unique_ptr<StreamPool> makeHttp2Pool(PoolManager& manager, std::shared_ptr<const Cluster> cluster, HostPtr host,
                                          std::string proxy_header);
// A new connection to `host` for a pool: the cluster's transport, connect timeout and buffer
// accounting, `proxy_header` (if any) sent first, counted in the cluster's and the host's
// connection stats. Null when no socket (or no transport) can be made; nothing is counted then.
std::shared_ptr<net::Connection> connectUpstream(WorkerContext& ctx, const Cluster& cluster, const Host& host,
                                                 const std::string& proxy_header);
// The pool of the cluster's protocol.
std::unique_ptr<StreamPool> makePool(PoolManager& manager, std::shared_ptr<const Cluster> cluster, HostPtr host,
                                     std::string proxy_header);

}  // namespace ferry::core::upstream
