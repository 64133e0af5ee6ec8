// The cluster manager: the process-wide, main-thread owner of every cluster's hosts and their
// health. It runs the active health checks (once per process), resolves DNS endpoints,
// ejects outliers reported by the workers, ramps recovered hosts' weights (slow start), and
// after every change rebuilds the cluster's immutable LbState and publishes it to the
// workers. Workers never wait on it: they keep picking from the table they have until the
// new one arrives. Main-thread only, except onOutlier (any thread).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/stats.h"
#include "core/upstream/cluster.h"

namespace boost::asio {
class io_context;
}

namespace ferry::core::upstream {

class ClusterManager : public OutlierSink {
 public:
  using Publish = std::function<void(size_t cluster_index, std::shared_ptr<const LbState> state)>;

  ClusterManager(boost::asio::io_context& io, const std::vector<std::shared_ptr<const Cluster>>& clusters,
                 StatsStore& stats);
  ~ClusterManager() override;

  // The current table of a cluster (for a worker's initial copy).
  std::shared_ptr<const LbState> state(size_t cluster_index) const;
  // Starts health checks, DNS resolution and timers; every later change goes to `publish`.
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
