// Upstream clusters as the data path sees them.
//
// - Host: one endpoint (address, weight, priority). Made on the main thread (at startup or when
//   DNS finds a new address) and shared by pointer; its process-wide counters (requests in
//   flight, consecutive failures for outlier detection) are relaxed atomics any worker updates.
// - Cluster: the immutable settings of one cluster plus its process-wide circuit-breaker
//   counters (relaxed atomics: limits may be shared by workers, docs/architecture.md). The
//   ClusterManager keys clusters by name: a changed config makes a new Cluster object with
//   the same index and the same counters (ClusterCounters), so limits survive the change.
// - LbState: an immutable selection table (per priority level: the usable hosts and the tables
//   of the cluster's policy, plus the priority load). The ClusterManager rebuilds it on the main
//   thread when hosts, health or weights change and posts it to every worker.
// - ClusterLb: a worker's copy of every cluster's LbState with its worker-local cursors (round
//   robin state, RNG). Picking takes no lock and shares no written memory between workers.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/model.h"
#include "core/net/transport.h"
#include "core/stats.h"
#include "core/upstream/lb.h"

namespace ferry::core::tls {
class ClientContext;
}

namespace ferry::core::upstream {

// Why an upstream attempt failed without a response (for the error counters).
enum class UpstreamError { kConnectFailure, kReset, kTimeout, kProtocol };
inline constexpr int kUpstreamErrorKinds = 4;

// What a finished upstream attempt tells outlier detection.
enum class UpstreamResult { kSuccess, k5xx, kGatewayError, kLocalOriginFailure };

struct HostStats {
  StatHandle cx_total;
  StatHandle cx_active;
  StatHandle connect_failures;
  StatHandle rq_active;
  StatHandle rq_by_class[6];  // [1..5]
  StatHandle errors;          // connect failures, resets, timeouts, protocol errors
  StatHandle healthy;         // gauge 1/0 (main thread's shard)
  StatHandle ejections;
  StatHandle hc_failures;
  StatHandle health_transitions;
};

struct Host {
  uint64_t id = 0;  // unique in the process
  sockaddr_storage addr{};
  std::string address;   // "ip:port"
  std::string hostname;  // the DNS name it came from; empty for a configured IP
  uint32_t weight = 1;
  uint32_t priority = 0;
  HostStats stats;
  // Process-wide, written by any worker (relaxed). rq_active is kept for least_request only.
  mutable std::atomic<int64_t> rq_active{0};
  mutable std::atomic<uint32_t> consecutive_5xx{0};
  mutable std::atomic<uint32_t> consecutive_gateway{0};
  // Set by the main thread when DNS no longer returns the address: workers close its idle
  // connections and drop its pool once the last connection is gone.
  mutable std::atomic<bool> removed{false};
};
using HostPtr = std::shared_ptr<const Host>;

struct ClusterStats {
  StatHandle cx_total;
  StatHandle cx_active;
  StatHandle connect_failures;
  StatHandle bytes_sent;      // toward the upstream
  StatHandle bytes_received;  // from the upstream
  StatHandle rq_by_class[6];  // [1..5]: HTTP responses from (or on behalf of) the cluster
  StatHandle rq_active;
  StatHandle rq_retry;
  StatHandle rq_retry_overflow;  // retries refused by max_retries or the retry budget
  StatHandle rq_per_try_timeout;
  StatHandle overflow_connections;  // circuit breakers
  StatHandle overflow_pending;
  StatHandle overflow_requests;
  StatHandle no_healthy;  // requests answered 503 UH
  StatHandle healthy;     // gauge: usable endpoints (healthy, not ejected)
  StatHandle ejected;     // gauge
  StatHandle ejections;   // counter
  StatHandle hc_success;
  StatHandle hc_failure;
  StatHandle health_transitions;
  StatHandle dns_success;
  StatHandle dns_failure;
  StatHandle panic;  // requests balanced in panic mode
  StatHandle errors[kUpstreamErrorKinds];  // by UpstreamError
  StatHandle pools;  // gauge: upstream connection pools (one per host per worker that used it)
  HistogramHandle rq_time;  // request sent -> response head (upstream service time)
};

// Receives a worker's report that a host crossed an outlier-detection threshold. Implemented
// by the ClusterManager, which moves the report to the main thread.
class OutlierSink {
 public:
  virtual ~OutlierSink() = default;
  virtual void onOutlier(size_t cluster_index, uint64_t host_id, bool gateway) const = 0;
};

// Process-wide counts of one cluster that outlive its config (circuit breakers). Relaxed
// atomics written by every worker.
struct ClusterCounters {
  std::atomic<int64_t> rq_active{0};
  std::atomic<int64_t> pending{0};
  std::atomic<int64_t> connections{0};
  std::atomic<int64_t> retries{0};
};

class Cluster : public std::enable_shared_from_this<Cluster> {
 public:
  // `counters`: the counts of the cluster this one replaces (same name), or null for new ones.
  Cluster(const config::ClusterConfig& cfg, size_t index, StatsStore& stats,
          std::shared_ptr<ClusterCounters> counters = nullptr);

  const std::string& name() const { return name_; }
  size_t index() const { return index_; }
  const config::ClusterConfig& config() const { return cfg_; }
  config::LbPolicy lbPolicy() const { return cfg_.lb_policy; }
  std::chrono::milliseconds connectTimeout() const { return cfg_.connect_timeout; }
  int sendProxyProtocol() const { return cfg_.send_proxy_protocol; }
  // The transport of a new upstream connection to an endpoint (plain; TLS where the cluster
  // asks for it). hostname: the endpoint's DNS name ("" for an IP): the default SNI and the
  // name verified; address: "ip:port". Null when the cluster's TLS context did not build.
  std::unique_ptr<net::TransportSocket> newTransport(const std::string& hostname, const std::string& address) const;
  std::unique_ptr<net::TransportSocket> newTransport(const Host& host) const {
    return newTransport(host.hostname, host.address);
  }
  // Why the cluster's TLS context did not build ("" when it did, or there is no TLS).
  const std::string& tlsError() const { return tls_error_; }
  uint32_t maxRequestsPerConnection() const { return cfg_.max_requests_per_connection; }
  uint32_t maxIdleConnections() const { return cfg_.max_idle_connections; }
  std::chrono::milliseconds poolIdleTimeout() const { return cfg_.idle_timeout; }
  const ClusterStats& stats() const { return stats_; }
  bool usesHash() const {
    return cfg_.lb_policy == config::LbPolicy::kRingHash || cfg_.lb_policy == config::LbPolicy::kMaglev;
  }

  // Circuit breakers: process-wide counts. tryAcquire* return false (and count nothing) when
  // the limit is reached.
  bool tryAcquireRequest() const { return tryAcquire(c_->rq_active, cfg_.circuit_breakers.max_requests); }
  void releaseRequest() const { c_->rq_active.fetch_sub(1, std::memory_order_relaxed); }
  bool tryAcquirePending() const { return tryAcquire(c_->pending, cfg_.circuit_breakers.max_pending_requests); }
  void releasePending() const { c_->pending.fetch_sub(1, std::memory_order_relaxed); }
  bool tryAcquireConnection() const { return tryAcquire(c_->connections, cfg_.circuit_breakers.max_connections); }
  void releaseConnection() const { c_->connections.fetch_sub(1, std::memory_order_relaxed); }
  // A retry: under max_retries, or under the retry budget when one is configured.
  bool tryAcquireRetry() const;
  void releaseRetry() const { c_->retries.fetch_sub(1, std::memory_order_relaxed); }
  int64_t activeRequests() const { return c_->rq_active.load(std::memory_order_relaxed); }
  int64_t activeRetries() const { return c_->retries.load(std::memory_order_relaxed); }
  int64_t pendingRequests() const { return c_->pending.load(std::memory_order_relaxed); }
  const std::shared_ptr<ClusterCounters>& counters() const { return c_; }

  // Counts a failed attempt on the cluster (by kind) and on the host.
  void countError(StatsShard& shard, const Host& host, UpstreamError kind) const {
    shard.inc(stats_.errors[static_cast<int>(kind)]);
    shard.inc(host.stats.errors);
  }

  // Outlier detection: a worker reports the result of one attempt on a host.
  void reportResult(const Host& host, UpstreamResult result) const;
  // Set once, before workers use the cluster.
  void setOutlierSink(const OutlierSink* sink) const { sink_ = sink; }
  // A digest of the files the cluster's TLS settings name (CA, client certificate and key),
  // as the config that made it read them: a change of their content is a change of the
  // cluster's connection settings. Set once by the cluster manager, before workers use it.
  void setFilesFingerprint(std::string f) { files_fingerprint_ = std::move(f); }
  const std::string& filesFingerprint() const { return files_fingerprint_; }
  // True when connections made for `other` (an earlier version of this cluster) can serve
  // this one: same TLS settings and files, protocol and PROXY protocol. A reload that changes
  // any of these drops the pools (their open requests finish first).
  bool sameConnectionsAs(const Cluster& other) const {
    return cfg_.tls == other.cfg_.tls && cfg_.protocol == other.cfg_.protocol &&
           cfg_.send_proxy_protocol == other.cfg_.send_proxy_protocol &&
           files_fingerprint_ == other.files_fingerprint_;
  }
  const OutlierSink* outlierSink() const { return sink_; }

 private:
  static bool tryAcquire(std::atomic<int64_t>& n, uint32_t limit) {
    if (n.fetch_add(1, std::memory_order_relaxed) >= static_cast<int64_t>(limit)) {
      n.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }

  config::ClusterConfig cfg_;
  std::string name_;
  size_t index_;
  ClusterStats stats_;
  mutable const OutlierSink* sink_ = nullptr;
  std::shared_ptr<ClusterCounters> c_;
  std::shared_ptr<const tls::ClientContext> tls_;
  std::string files_fingerprint_;
  std::string tls_error_;
};

// One priority level's usable hosts with the policy's tables.
struct LbLevel {
  uint32_t priority = 0;
  std::vector<HostPtr> hosts;
  std::vector<lb::WeightedHost> weighted;
  bool equal_weights = true;
  lb::WeightedRandom random;  // random, least_request (unequal weights)
  lb::RingHash ring;          // ring_hash
  lb::Maglev maglev;          // maglev
  // Hash policies with some hosts of the level unusable: the table of every host of the level
  // is tried first and a key landing on an unusable host falls back to the table above, so
  // the keys of usable hosts never move when another host goes away.
  bool has_full = false;
  lb::RingHash full_ring;
  lb::Maglev full_maglev;
  std::vector<int32_t> full_to_usable;  // position in the full table -> in `hosts`, or -1
};

// Immutable; built by the ClusterManager, shared by the workers.
struct LbState {
  std::vector<LbLevel> levels;  // levels that get traffic, in priority order
  std::vector<uint32_t> load;   // percent per level, sums to 100 (empty: no usable host)
  bool panic = false;           // below panic_threshold: every host is usable
  size_t host_count = 0;        // all hosts, usable or not
};

// What a pick may use: a hash of the request's key (ring_hash/maglev) and a host to avoid (a
// retry prefers another host).
struct PickContext {
  std::optional<uint64_t> hash;
  const Host* avoid = nullptr;
};

// Worker-local LB state for every cluster.
class ClusterLb {
 public:
  explicit ClusterLb(size_t clusters, uint64_t seed);
  // Installs a new table for a cluster (on the worker's thread). Round-robin cursors restart.
  void setState(size_t cluster_index, std::shared_ptr<const LbState> state);
  const LbState* state(size_t cluster_index) const { return slots_[cluster_index].state.get(); }
  // A host of the cluster, or null when none is usable (503 UH).
  const HostPtr* pick(const Cluster& cluster, const PickContext& ctx);
  lb::Rng& rng() { return rng_; }

 private:
  size_t pickInLevel(const Cluster& cluster, size_t level, const PickContext& ctx);
  struct Slot {
    std::shared_ptr<const LbState> state;
    std::vector<std::vector<int64_t>> rr;  // per level
  };
  std::vector<Slot> slots_;
  lb::Rng rng_;
};

}  // namespace ferry::core::upstream
