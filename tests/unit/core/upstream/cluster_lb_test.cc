// ClusterLb: a worker's pick over a published LbState (priority load, rotation, retry
// avoidance, hash tables with some hosts unusable).
#include <catch2/catch.hpp>

#include <map>
#include <memory>

#include "core/stats.h"
#include "core/upstream/cluster.h"

using namespace ferry::core;
using namespace ferry::core::upstream;
namespace config = ferry::config;

namespace {

std::shared_ptr<Host> makeHost(uint64_t id) {
  auto h = std::make_shared<Host>();
  h->id = id;
  h->address = "10.0.0." + std::to_string(id) + ":80";
  return h;
}

LbLevel level(const std::vector<std::shared_ptr<Host>>& hosts, config::LbPolicy policy) {
  LbLevel lv;
  for (const auto& h : hosts) {
    lv.hosts.push_back(h);
    lv.weighted.push_back(lb::WeightedHost{h->weight, lb::hash64(h->address)});
  }
  for (const auto& w : lv.weighted) lv.equal_weights = lv.equal_weights && w.weight == lv.weighted[0].weight;
  lv.random = lb::WeightedRandom(lv.weighted);
  if (policy == config::LbPolicy::kRingHash) lv.ring = lb::RingHash(lv.weighted, 1024);
  if (policy == config::LbPolicy::kMaglev) lv.maglev = lb::Maglev(lv.weighted);
  return lv;
}

struct Fixture {
  explicit Fixture(config::LbPolicy policy) : stats(2) {
    cfg.name = "c";
    cfg.lb_policy = policy;
    cluster = std::make_unique<Cluster>(cfg, 0, stats);
  }
  config::ClusterConfig cfg;
  StatsStore stats;
  std::unique_ptr<Cluster> cluster;
  ClusterLb lb{1, 42};
};

}  // namespace

TEST_CASE("ClusterLb: no usable host picks nothing", "[lb][cluster_lb]") {
  Fixture f(config::LbPolicy::kRoundRobin);
  CHECK(f.lb.pick(*f.cluster, {}) == nullptr);
  f.lb.setState(0, std::make_shared<LbState>());
  CHECK(f.lb.pick(*f.cluster, {}) == nullptr);
}

TEST_CASE("ClusterLb: equal weights rotate exactly; a retry avoids the last host", "[lb][cluster_lb]") {
  Fixture f(config::LbPolicy::kRoundRobin);
  std::vector<std::shared_ptr<Host>> hosts = {makeHost(1), makeHost(2), makeHost(3)};
  auto st = std::make_shared<LbState>();
  st->levels.push_back(level(hosts, config::LbPolicy::kRoundRobin));
  st->load = {100};
  f.lb.setState(0, st);
  std::map<uint64_t, int> n;
  for (int i = 0; i < 300; ++i) ++n[(*f.lb.pick(*f.cluster, {}))->id];
  CHECK(n[1] == 100);
  CHECK(n[2] == 100);
  CHECK(n[3] == 100);
  for (int i = 0; i < 50; ++i) {
    PickContext ctx;
    ctx.avoid = hosts[1].get();
    CHECK((*f.lb.pick(*f.cluster, ctx))->id != 2);
  }
}

TEST_CASE("ClusterLb: priority load splits picks between levels", "[lb][cluster_lb]") {
  Fixture f(config::LbPolicy::kRandom);
  auto st = std::make_shared<LbState>();
  st->levels.push_back(level({makeHost(1)}, config::LbPolicy::kRandom));
  st->levels.push_back(level({makeHost(2)}, config::LbPolicy::kRandom));
  st->load = {70, 30};
  f.lb.setState(0, st);
  int first = 0;
  for (int i = 0; i < 10000; ++i) first += (*f.lb.pick(*f.cluster, {}))->id == 1 ? 1 : 0;
  CHECK(first > 6700);
  CHECK(first < 7300);
}

TEST_CASE("ClusterLb: hash policies with a host unusable keep every other key in place", "[lb][cluster_lb]") {
  for (auto policy : {config::LbPolicy::kRingHash, config::LbPolicy::kMaglev}) {
    Fixture f(policy);
    std::vector<std::shared_ptr<Host>> all = {makeHost(1), makeHost(2), makeHost(3), makeHost(4)};
    auto full = std::make_shared<LbState>();
    full->levels.push_back(level(all, policy));
    full->load = {100};
    f.lb.setState(0, full);
    std::map<int, uint64_t> before;
    for (int k = 0; k < 2000; ++k) {
      PickContext ctx;
      ctx.hash = lb::hash64("key-" + std::to_string(k));
      before[k] = (*f.lb.pick(*f.cluster, ctx))->id;
    }
    // Host 3 leaves: the level keeps the full table and maps its keys to the usable hosts.
    auto st = std::make_shared<LbState>();
    LbLevel lv = level({all[0], all[1], all[3]}, policy);
    LbLevel whole = level(all, policy);
    lv.has_full = true;
    lv.full_ring = whole.ring;
    lv.full_maglev = whole.maglev;
    lv.full_to_usable = {0, 1, -1, 2};
    st->levels.push_back(std::move(lv));
    st->load = {100};
    f.lb.setState(0, st);
    int moved_others = 0, moved = 0;
    for (int k = 0; k < 2000; ++k) {
      PickContext ctx;
      ctx.hash = lb::hash64("key-" + std::to_string(k));
      uint64_t now = (*f.lb.pick(*f.cluster, ctx))->id;
      CHECK(now != 3);
      if (before[k] == 3) ++moved;
      else moved_others += now != before[k] ? 1 : 0;
    }
    CHECK(moved_others == 0);
    CHECK(moved > 300);  // about a quarter of the keys were on host 3
  }
}
