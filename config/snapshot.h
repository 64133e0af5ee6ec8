// Snapshot: the immutable, compiled form of one config: listener runtimes with their filter
// factories and stat handles, clusters with their hosts. Built on the main thread, then
// shared read-only with every worker (shared_ptr<const>): a connection pins its listener's
// info at accept, and an old snapshot dies with its last user.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/model.h"
#include "core/stats.h"
#include "core/upstream/cluster.h"
#include "filters/network_filter.h"

namespace ferry::filters {
class Registry;
}

namespace ferry::config {

struct ListenerStats {
  core::StatHandle cx_total;
  core::StatHandle cx_active;
  core::StatHandle cx_overflow;        // refused by max_connections (listener or runtime)
  core::StatHandle proxy_protocol_errors;
  core::StatHandle bytes_received;     // from downstream clients
  core::StatHandle bytes_sent;         // to downstream clients
};

struct ListenerInfo {
  ListenerConfig cfg;
  ListenerStats stats;
  // Process-wide count of this listener's open connections, for max_connections.
  // Relaxed atomics shared by workers (ARCHITECTURE.md allows it for limits).
  std::shared_ptr<std::atomic<int64_t>> active;
  std::vector<filters::NetworkFilterFactory> filter_factories;
};

struct Snapshot {
  Config config;
  uint64_t version = 0;
  std::string hash;          // hex digest of the YAML text
  int64_t loaded_at_ms = 0;  // unix time
  std::vector<std::shared_ptr<const ListenerInfo>> listeners;
  std::vector<std::shared_ptr<const core::upstream::Cluster>> clusters;
  std::shared_ptr<std::atomic<int64_t>> global_active;  // runtime.max_connections
  core::StatHandle buffered_bytes;

  const core::upstream::Cluster* cluster(const std::string& name) const;
  std::shared_ptr<const core::upstream::Cluster> clusterPtr(const std::string& name) const;
};

// Compiles `cfg`. Registers stats on `stats` (same names reuse the same slots).
// Returns null and fills *error if a filter cannot be built.
std::shared_ptr<const Snapshot> buildSnapshot(Config cfg, uint64_t version, core::StatsStore& stats,
                                              const filters::Registry& registry, std::string* error);

}  // namespace ferry::config
