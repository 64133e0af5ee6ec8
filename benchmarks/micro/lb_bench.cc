// ClusterLb::pickRoundRobin (smooth weighted round robin) over 3 and 100 endpoints, with equal
// and with unequal weights. The pick is O(endpoints): one pass adding weights and finding the
// largest current weight.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "benchmarks/micro/micro.h"
#include "config/model.h"
#include "core/stats.h"
#include "core/upstream/cluster.h"

using namespace ferry;

namespace {

config::ClusterConfig makeCluster(size_t endpoints, bool unequal) {
  config::ClusterConfig cfg;
  cfg.name = std::to_string(endpoints);
  cfg.name += unequal ? "-weighted" : "-equal";
  for (size_t i = 0; i < endpoints; ++i) {
    config::EndpointConfig ep;
    ep.address.host = "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
    ep.address.port = 8080;
    ep.address.text = ep.address.host + ":8080";
    ep.weight = unequal ? static_cast<uint32_t>(i % 5 + 1) : 1;  // 1..5
    cfg.endpoints.push_back(ep);
  }
  return cfg;
}

}  // namespace

TEST_CASE("lb: smooth weighted round robin", "[micro][lb]") {
  core::StatsStore stats(1);
  struct Case {
    size_t endpoints;
    bool unequal;
  };
  const Case cases[] = {{3, false}, {3, true}, {100, false}, {100, true}};
  for (const Case& c : cases) {
    const core::upstream::Cluster cluster(makeCluster(c.endpoints, c.unequal), 0, stats);
    REQUIRE(cluster.hosts().size() == c.endpoints);
    core::upstream::ClusterLb lb(1);

    // Sanity: over one period (the sum of the weights) every host gets exactly its weight.
    uint64_t total = 0;
    for (const auto& h : cluster.hosts()) total += h.weight;
    std::vector<uint64_t> picks(c.endpoints);
    for (uint64_t k = 0; k < total; ++k) ++picks[lb.pickRoundRobin(cluster)];
    for (size_t i = 0; i < c.endpoints; ++i) REQUIRE(picks[i] == cluster.hosts()[i].weight);

    const std::string name = std::to_string(c.endpoints) + " endpoints, " +
                             (c.unequal ? "weights 1..5" : "equal weights");
    BENCHMARK(std::string(name)) { return lb.pickRoundRobin(cluster); };
  }
}
