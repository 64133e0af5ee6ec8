// The runtime: turns configs into snapshots, and keeps the state a new snapshot must not lose,
// keyed by name: each listener's ListenerState (connection counts, stats, the HTTP route
// provider), the clusters (ClusterManager: hosts, health, outlier state, breaker counts; pools
// follow host identity), the process-wide connection count.
//
// Snapshot: the immutable, compiled form of one config: listener specs with their filter
// factories, the clusters the routes and filters resolved. Built on the main thread, then
// shared read-only with every worker (shared_ptr<const>); an old snapshot dies with its last
// user. Main thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/model.h"
#include "core/net/listener.h"
#include "core/stats.h"
#include "core/upstream/cluster.h"

namespace boost::asio {
class io_context;
}
namespace ferry::core::upstream {
class ClusterManager;
}
namespace ferry::filters {
class Registry;
}

namespace ferry::proxy {

struct Snapshot {
  config::Config config;
  uint64_t version = 0;
  std::string hash;          // hex digest of the YAML text
  int64_t loaded_at_ms = 0;  // unix time
  std::vector<std::shared_ptr<const core::net::ListenerSpec>> listeners;
  std::vector<std::shared_ptr<const core::upstream::Cluster>> clusters;

  std::shared_ptr<const core::upstream::Cluster> cluster(const std::string& name) const;
};

class Runtime {
 public:
  // `workers`: the worker count (per-worker slots are sized for it).
  Runtime(boost::asio::io_context& io, core::StatsStore& stats, const filters::Registry& registry, size_t workers);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Compiles `cfg`, reusing the state of every listener and cluster whose name it already
  // knows (an unchanged cluster is the same object; a changed one is updated in place, see
  // ClusterManager::addOrUpdate). Clusters the config no longer names are left alone: removing
  // them is a step of the reload that commits the new snapshot. Returns null and sets *error
  // if a filter cannot be built.
  std::shared_ptr<const Snapshot> build(config::Config cfg, std::string* error);

  core::upstream::ClusterManager& clusters() { return *clusters_; }
  const std::shared_ptr<core::net::ProcessConnections>& connections() const { return connections_; }
  core::StatHandle bufferedBytes() const { return buffered_bytes_; }

 private:
  core::StatsStore& stats_;
  const filters::Registry& registry_;
  size_t workers_;
  uint64_t versions_ = 0;
  std::unique_ptr<core::upstream::ClusterManager> clusters_;
  std::map<std::string, std::shared_ptr<core::net::ListenerState>> listeners_;
  std::shared_ptr<core::net::ProcessConnections> connections_ = std::make_shared<core::net::ProcessConnections>();
  core::StatHandle buffered_bytes_;
};

}  // namespace ferry::proxy
