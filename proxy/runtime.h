// Snapshot: the immutable, compiled form of one config: listener specs with their filter
// factories, the clusters the routes and filters resolved. Built on the main thread, then
// shared read-only with every worker (shared_ptr<const>); an old snapshot dies with its last
// user.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/model.h"
#include "core/net/listener.h"
#include "core/stats.h"
#include "core/upstream/cluster.h"

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
  std::shared_ptr<core::net::ProcessConnections> connections;  // runtime.max_connections, drain
  core::StatHandle buffered_bytes;

  std::shared_ptr<const core::upstream::Cluster> cluster(const std::string& name) const;
};

// Compiles `cfg`. Registers stats on `stats` (same names reuse the same slots).
// Returns null and fills *error if a filter cannot be built.
std::shared_ptr<const Snapshot> buildSnapshot(config::Config cfg, uint64_t version, core::StatsStore& stats,
                                              const filters::Registry& registry, std::string* error);

}  // namespace ferry::proxy
