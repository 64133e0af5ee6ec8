// Load-balancing micro benchmarks (core/upstream/lb.h): the cost of one pick per policy, and
// the cost of building the consistent-hash tables, which the main thread pays on every host
// set change.
//
// Hosts are "10.0.x.y:8080" with key = hash64(address), as the cluster manager makes them.
// Picks that take a request key cycle through 1024 pre-built 10-byte keys ("user-NNNNN"), so
// the figures include hashing the key and are not one branch-predicted lookup repeated.
#include <cstdint>
#include <string>
#include <vector>

#include "benchmarks/micro/micro.h"
#include "core/upstream/lb.h"

namespace lb = ferry::core::upstream::lb;

namespace {

constexpr size_t kKeys = 1024;  // a power of two: the index is masked

std::vector<lb::WeightedHost> makeHosts(size_t n, bool weighted) {
  std::vector<lb::WeightedHost> hosts;
  for (size_t i = 0; i < n; ++i) {
    std::string addr = "10.0.";
    addr += std::to_string(i / 250);
    addr += '.';
    addr += std::to_string(i % 250 + 1);
    addr += ":8080";
    hosts.push_back({weighted ? static_cast<uint32_t>(i % 5 + 1) : 1, lb::hash64(addr)});
  }
  return hosts;
}

std::vector<std::string> makeKeys() {
  std::vector<std::string> keys;
  for (size_t i = 0; i < kKeys; ++i) {
    std::string k = std::to_string(10000 + i * 7919 % 90000);  // 5 digits
    keys.push_back("user-" + k);                               // 10 bytes
  }
  return keys;
}

std::string label(const char* what, size_t hosts, bool weighted) {
  std::string s = what;
  s += ": ";
  s += std::to_string(hosts);
  s += weighted ? " hosts, weights 1..5" : " hosts, equal weights";
  return s;
}

}  // namespace

TEST_CASE("lb: pick", "[micro][lb]") {
  const std::vector<std::string> keys = makeKeys();

  for (size_t n : {size_t{3}, size_t{100}}) {
    for (bool weighted : {false, true}) {
      const auto hosts = makeHosts(n, weighted);
      std::vector<int64_t> current;
      // Sanity: over one period every host gets exactly its weight.
      uint64_t total = 0;
      for (const auto& h : hosts) total += h.weight;
      std::vector<uint64_t> picks(n, 0);
      for (uint64_t k = 0; k < total; ++k) ++picks[lb::pickSmoothWrr(hosts, current)];
      for (size_t i = 0; i < n; ++i) REQUIRE(picks[i] == hosts[i].weight);
      BENCHMARK(label("round_robin (smooth WRR)", n, weighted)) { return lb::pickSmoothWrr(hosts, current); };
    }
  }

  for (size_t n : {size_t{3}, size_t{100}}) {
    const auto hosts = makeHosts(n, true);
    const lb::WeightedRandom wr(hosts);
    lb::Rng rng(1);
    BENCHMARK(label("random (weighted)", n, true)) { return wr.pick(rng.next()); };
  }

  {
    // In-flight counts that change as picks land, so the comparison is not constant.
    const auto hosts = makeHosts(100, false);
    const lb::WeightedRandom wr(hosts);
    lb::Rng rng(2);
    std::vector<uint32_t> active(hosts.size(), 0);
    auto inFlight = [&active](size_t i) { return active[i]; };
    uint64_t n = 0;
    BENCHMARK("least_request, 2 choices: 100 hosts, equal weights") {
      const size_t h = lb::pickLeastRequest(hosts, wr, true, 2, rng, inFlight);
      ++active[h];
      if ((++n & 15) == 0) active[h] = 0;  // completions
      return h;
    };
    const auto whosts = makeHosts(100, true);
    const lb::WeightedRandom wwr(whosts);
    BENCHMARK("least_request, 2 choices: 100 hosts, weights 1..5") {
      const size_t h = lb::pickLeastRequest(whosts, wwr, false, 2, rng, inFlight);
      ++active[h];
      if ((++n & 15) == 0) active[h] = 0;
      return h;
    };
  }

  for (size_t n : {size_t{3}, size_t{100}}) {
    const auto hosts = makeHosts(n, false);
    const lb::RingHash ring(hosts, 1024);
    size_t i = 0;
    BENCHMARK("ring_hash: hash 10-byte key + lookup, " + std::to_string(n) + " hosts, " + std::to_string(ring.size()) +
              " points") {
      return ring.pick(lb::hash64(keys[i++ & (kKeys - 1)]));
    };
  }

  for (size_t n : {size_t{3}, size_t{100}}) {
    const auto hosts = makeHosts(n, false);
    const lb::Maglev maglev(hosts);
    size_t i = 0;
    BENCHMARK("maglev: hash 10-byte key + lookup, " + std::to_string(n) + " hosts, " + std::to_string(maglev.size()) +
              " slots") {
      return maglev.pick(lb::hash64(keys[i++ & (kKeys - 1)]));
    };
  }

  // The key hash alone, to read the lookups above net of it.
  size_t i = 0;
  BENCHMARK("hash64 of a 10-byte key") { return lb::hash64(keys[i++ & (kKeys - 1)]); };
}

TEST_CASE("lb: table build", "[micro][lb]") {
  const auto hosts = makeHosts(10, false);
  const auto weighted = makeHosts(10, true);
  BENCHMARK("ring_hash build: 10 hosts, min 1024 points") { return lb::RingHash(hosts, 1024).size(); };
  BENCHMARK("ring_hash build: 10 hosts weights 1..5, min 1024 points") { return lb::RingHash(weighted, 1024).size(); };
  BENCHMARK("maglev build: 10 hosts, 65537 slots") { return lb::Maglev(hosts).size(); };
  BENCHMARK("maglev build: 10 hosts weights 1..5, 65537 slots") { return lb::Maglev(weighted).size(); };
}
