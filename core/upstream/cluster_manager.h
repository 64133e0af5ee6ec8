// The cluster manager: the process-wide, main-thread owner of every cluster's hosts and their
// health, keyed by cluster name so that a new config snapshot reuses them. It runs the active health checks (once per process), resolves DNS endpoints,
// ejects outliers reported by the workers, ramps recovered hosts' weights (slow start), and
// after every change rebuilds the cluster's immutable LbState and publishes it to the
// workers. Workers never wait on it: they keep picking from the table they have until the
// new one arrives. Main-thread only, except onOutlier (any thread).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/model.h"
#include "core/stats.h"
#include "core/upstream/cluster.h"

namespace boost::asio {
class io_context;
}

namespace ferry::core::upstream {

class ClusterManager : public OutlierSink {
 public:
  using Publish = std::function<void(size_t cluster_index, std::shared_ptr<const LbState> state)>;

  ClusterManager(boost::asio::io_context& io, StatsStore& stats);
  ~ClusterManager() override;

  // Adds the cluster `cfg` names, or updates the one of that name, and returns it. The same
  // config as before returns the same object (nothing changes). A changed one returns a new
  // Cluster with the old one's index and circuit-breaker counters; hosts whose address (or DNS
  // name) is still configured keep their identity, health, outlier state and pools.
  // `files_fingerprint`: a digest of the content of the files the cluster's TLS settings name
  // (Cluster::setFilesFingerprint); a new digest with the same config is an update too.
  std::shared_ptr<const Cluster> addOrUpdate(const config::ClusterConfig& cfg, const std::string& files_fingerprint = "");
  // Removes a cluster: its checks and lookups stop, its hosts leave (workers free their pools
  // once idle) and workers get a null table for its index. Indices are never reused.
  void remove(const std::string& name);
  std::shared_ptr<const Cluster> find(const std::string& name) const;
  // Cluster indices handed out so far (removed ones included): the size of a worker's table.
  size_t slotCount() const;

  // The current table of a cluster (for a worker's initial copy); null for a removed one.
  std::shared_ptr<const LbState> state(size_t cluster_index) const;
  // Starts health checks, DNS resolution and timers; every later change goes to `publish`
  // (clusters added afterwards start at once).
  void start(Publish publish);
  // Stops everything (before the io_context goes away).
  void stop();
  // GET /clusters.
  std::string json() const;
  // True until every cluster with DNS endpoints has finished its first round of lookups
  // (answered or failed): /ready says STARTING meanwhile, as Envoy's cluster warming does.
  bool warming() const;

  // OutlierSink: from any worker.
  void onOutlier(size_t cluster_index, uint64_t host_id, bool gateway) const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::core::upstream
