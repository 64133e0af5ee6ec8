// Cluster: an immutable set of upstream hosts with their settings and stat handles, built
// once per config snapshot and shared read-only by all workers. ClusterLb holds the
// worker-local picking state (smooth weighted round robin), so picking takes no lock.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "config/model.h"
#include "core/stats.h"

namespace ferry::core::upstream {

struct Host {
  sockaddr_storage addr{};
  std::string address;  // as configured
  uint32_t weight = 1;
  StatHandle cx_total;
  StatHandle cx_active;
  StatHandle connect_failures;
};

struct ClusterStats {
  StatHandle cx_total;
  StatHandle cx_active;
  StatHandle connect_failures;
  StatHandle bytes_sent;      // toward the upstream
  StatHandle bytes_received;  // from the upstream
  StatHandle rq_by_class[6];  // [1..5]: HTTP responses from (or on behalf of) the cluster
};

class Cluster {
 public:
  Cluster(const config::ClusterConfig& cfg, size_t index, StatsStore& stats);

  const std::string& name() const { return name_; }
  size_t index() const { return index_; }
  const std::vector<Host>& hosts() const { return hosts_; }
  std::chrono::milliseconds connectTimeout() const { return connect_timeout_; }
  int sendProxyProtocol() const { return send_proxy_protocol_; }
  uint32_t maxRequestsPerConnection() const { return max_requests_per_connection_; }
  uint32_t maxIdleConnections() const { return max_idle_connections_; }
  std::chrono::milliseconds poolIdleTimeout() const { return pool_idle_timeout_; }
  const ClusterStats& stats() const { return stats_; }

 private:
  std::string name_;
  size_t index_;
  std::vector<Host> hosts_;
  std::chrono::milliseconds connect_timeout_;
  int send_proxy_protocol_;
  uint32_t max_requests_per_connection_;
  uint32_t max_idle_connections_;
  std::chrono::milliseconds pool_idle_timeout_;
  ClusterStats stats_;
};

// Worker-local LB state for every cluster of one snapshot.
class ClusterLb {
 public:
  explicit ClusterLb(size_t clusters) : rr_(clusters) {}
  // Smooth weighted round robin (nginx's): spreads a host's turns evenly, no bursts.
  // Returns an index into cluster.hosts(); the cluster must have at least one host.
  size_t pickRoundRobin(const Cluster& cluster);

 private:
  std::vector<std::vector<int64_t>> rr_;  // per cluster, per host current weight
};

}  // namespace ferry::core::upstream
