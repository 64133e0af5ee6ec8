// Load-balancing algorithms as plain data structures, independent of hosts, health and
// threads. The cluster manager (main thread) builds immutable tables from the usable hosts of
// one priority level and publishes them; workers pick with worker-local cursors and RNGs.
// Every pick returns a position in the `WeightedHost` vector the table was built from. Pick only
// from a non-empty host set (Maglev::pick divides by the table size; the others return 0).
#pragma once

#include "core/random.h"
#include <cstdint>
#include <string_view>
#include <vector>

namespace ferry::core::upstream::lb {

// Stable 64-bit hash (same value in every process and run): request keys and host identities.
uint64_t hash64(std::string_view data, uint64_t seed = 0);

// The worker-local PRNG (core/random.h).
using core::Rng;

struct WeightedHost {
  uint32_t weight = 1;  // > 0
  uint64_t key = 0;     // stable identity for ring_hash / maglev (hash64 of the address)
};

// Smooth weighted round robin (nginx's): a host's turns are spread evenly, no bursts.
// `current` is the worker-local cursor state; it is resized (and reset) when its size differs.
size_t pickSmoothWrr(const std::vector<WeightedHost>& hosts, std::vector<int64_t>& current);

// Weighted random: prefix sums, binary search.
class WeightedRandom {
 public:
  WeightedRandom() = default;
  explicit WeightedRandom(const std::vector<WeightedHost>& hosts);
  size_t pick(uint64_t random) const;  // any 64-bit random value
  bool empty() const { return prefix_.empty(); }

 private:
  std::vector<uint64_t> prefix_;  // cumulative weights
};

// Least request, power of `choices` choices: draws `choices` hosts (weighted random when
// weights differ, uniform otherwise) and keeps the one with the lowest active/weight.
// `active(i)` = requests in flight on host i.
template <typename ActiveFn>
size_t pickLeastRequest(const std::vector<WeightedHost>& hosts, const WeightedRandom& wr, bool equal_weights,
                        uint32_t choices, Rng& rng, ActiveFn&& active) {
  size_t best = equal_weights ? rng.below(hosts.size()) : wr.pick(rng.next());
  for (uint32_t c = 1; c < choices; ++c) {
    size_t cand = equal_weights ? rng.below(hosts.size()) : wr.pick(rng.next());
    // active/weight compared without division: a_c * w_b < a_b * w_c
    uint64_t ac = static_cast<uint64_t>(active(cand)), ab = static_cast<uint64_t>(active(best));
    if (ac * hosts[best].weight < ab * hosts[cand].weight) best = cand;
  }
  return best;
}

// Ketama-style consistent hash ring: each host gets ring points in proportion to its weight
// (at least `min_size` points in total, at most `max_size`); a key maps to the first point
// clockwise. Removing a host moves only the keys that hashed to its points.
class RingHash {
 public:
  RingHash() = default;
  RingHash(const std::vector<WeightedHost>& hosts, uint32_t min_size, uint32_t max_size = 8 * 1024 * 1024);
  size_t pick(uint64_t hash) const;
  size_t size() const { return ring_.size(); }

 private:
  struct Point {
    uint64_t hash;
    uint32_t host;
  };
  std::vector<Point> ring_;  // sorted by hash
};

// Maglev (Google's, weighted as in Envoy): a lookup table of `table_size` (prime) entries
// filled from per-host permutations. Removing a host moves about its own share of keys.
class Maglev {
 public:
  static constexpr uint32_t kDefaultTableSize = 65537;
  Maglev() = default;
  Maglev(const std::vector<WeightedHost>& hosts, uint32_t table_size = kDefaultTableSize);
  size_t pick(uint64_t hash) const { return table_[hash % table_.size()]; }
  size_t size() const { return table_.size(); }

 private:
  std::vector<uint32_t> table_;
};

// Envoy's priority load. Per level: total weight and healthy weight (of usable hosts).
// health(level) = min(100, overprovisioning/100 * healthy_weight * 100 / total_weight); level 0
// takes min(100, health(0)) percent, level 1 the next min(rest, health(1)) and so on; when the
// total health is under 100 the loads are scaled so they sum to 100. Returns one percentage
// per level, summing to 100 (all zero when no level has healthy weight).
struct LevelWeights {
  uint64_t total = 0;
  uint64_t healthy = 0;
};
std::vector<uint32_t> priorityLoad(const std::vector<LevelWeights>& levels, uint32_t overprovisioning_percent = 140);
// The share (percent, 0-100) of healthy weight over all levels after overprovisioning:
// sum over levels of health(level), capped at 100. Panic mode applies below panic_threshold.
uint32_t normalizedHealth(const std::vector<LevelWeights>& levels, uint32_t overprovisioning_percent = 140);

// Slow start: a host's weight `elapsed` into a `window` of warm-up, Envoy's formula with
// aggression 1: weight * max(min_percent/100, elapsed/window); full weight at or after the
// window. Never below 1.
uint32_t slowStartWeight(uint32_t weight, int64_t elapsed_ms, int64_t window_ms, uint32_t min_percent = 10);

}  // namespace ferry::core::upstream::lb
