// The whole per-request pick a worker makes (ClusterLb::pick over a published LbState): the
// table lookup of lb_bench.cc plus priority selection and the policy switch. One level, as
// the cluster manager publishes it; keys are hashed in the loop as the router does.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "benchmarks/micro/micro.h"
#include "core/stats.h"
#include "core/upstream/cluster.h"

namespace up = ferry::core::upstream;
namespace config = ferry::config;

namespace {

std::shared_ptr<const up::LbState> makeState(size_t n, bool weighted, config::LbPolicy policy) {
  up::LbLevel lv;
  for (size_t i = 0; i < n; ++i) {
    auto h = std::make_shared<up::Host>();
    h->id = i + 1;
    h->address = "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + ":8080";
    h->weight = weighted ? static_cast<uint32_t>(i % 5 + 1) : 1;
    lv.weighted.push_back({h->weight, up::lb::hash64(h->address)});
    lv.hosts.push_back(std::move(h));
  }
  lv.equal_weights = !weighted;
  lv.random = up::lb::WeightedRandom(lv.weighted);
  if (policy == config::LbPolicy::kRingHash) lv.ring = up::lb::RingHash(lv.weighted, 1024);
  if (policy == config::LbPolicy::kMaglev) lv.maglev = up::lb::Maglev(lv.weighted);
  auto st = std::make_shared<up::LbState>();
  st->levels.push_back(std::move(lv));
  st->load = {100};
  return st;
}

}  // namespace

TEST_CASE("cluster_lb: worker pick per policy", "[micro][lb][cluster_lb]") {
  const std::map<config::LbPolicy, const char*> names = {
      {config::LbPolicy::kRoundRobin, "round_robin"}, {config::LbPolicy::kLeastRequest, "least_request"},
      {config::LbPolicy::kRandom, "random"},          {config::LbPolicy::kRingHash, "ring_hash (key hashed)"},
      {config::LbPolicy::kMaglev, "maglev (key hashed)"}};
  std::vector<std::string> keys;
  for (int i = 0; i < 1024; ++i) keys.push_back("user-" + std::to_string(10000 + i * 7919 % 90000));
  ferry::core::StatsStore stats(2);
  for (const auto& [policy, name] : names) {
    for (size_t n : {size_t{3}, size_t{100}}) {
      for (bool weighted : {false, true}) {
        config::ClusterConfig cfg;
        cfg.name = "c";
        cfg.lb_policy = policy;
        up::Cluster cluster(cfg, 0, stats);
        up::ClusterLb lb(1, 7);
        lb.setState(0, makeState(n, weighted, policy));
        REQUIRE(lb.pick(cluster, {}) != nullptr);
        const bool hashed = cluster.usesHash();
        size_t k = 0;
        std::string label = std::string(name) + ": " + std::to_string(n) + (weighted ? " hosts, weights 1..5" : " hosts, equal");
        BENCHMARK(std::move(label)) {
          up::PickContext ctx;
          if (hashed) ctx.hash = up::lb::hash64(keys[k++ & 1023]);
          return lb.pick(cluster, ctx);
        };
      }
    }
  }
}
