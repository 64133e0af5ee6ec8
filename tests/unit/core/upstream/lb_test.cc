#include "core/upstream/lb.h"

#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace lb = ferry::core::upstream::lb;
using lb::WeightedHost;

namespace {

// Hosts identified as the cluster manager does: key = hash64 of the address.
std::vector<WeightedHost> makeHosts(const std::vector<uint32_t>& weights) {
  std::vector<WeightedHost> hosts;
  for (size_t i = 0; i < weights.size(); ++i) {
    hosts.push_back(
        {weights[i], lb::hash64("10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + ":8080")});
  }
  return hosts;
}

std::vector<WeightedHost> equalHosts(size_t n) { return makeHosts(std::vector<uint32_t>(n, 1)); }

uint64_t requestHash(int k) { return lb::hash64("session-" + std::to_string(k)); }

// Which host (by identity, not position) a table built from `hosts` gives each sample key.
template <typename Table>
std::vector<uint64_t> keyOwners(const Table& table, const std::vector<WeightedHost>& hosts, int samples) {
  std::vector<uint64_t> owners;
  owners.reserve(samples);
  for (int k = 0; k < samples; ++k) owners.push_back(hosts[table.pick(requestHash(k))].key);
  return owners;
}

struct Disruption {
  int moved = 0;          // keys whose host changed
  int survivor_keys = 0;  // keys whose host is still in the new set
  int survivor_kept = 0;  // of those, the ones still on the same host
};

Disruption compare(const std::vector<uint64_t>& before, const std::vector<uint64_t>& after, uint64_t removed_key) {
  Disruption d;
  for (size_t k = 0; k < before.size(); ++k) {
    if (before[k] != after[k]) ++d.moved;
    if (before[k] != removed_key) {
      ++d.survivor_keys;
      if (before[k] == after[k]) ++d.survivor_kept;
    }
  }
  return d;
}

}  // namespace

TEST_CASE("lb hash64 matches the xxHash64 reference vectors", "[lb]") {
  // Published XXH64 values: every length class (tail bytes, 4-byte, 8-byte words, 32-byte
  // stripes) and a seed. A change here changes every ring and Maglev table in production.
  CHECK(lb::hash64("") == 0xef46db3751d8e999ULL);
  CHECK(lb::hash64("a") == 0xd24ec4f1a98c6e5bULL);
  CHECK(lb::hash64("abc") == 0x44bc2cf5ad770999ULL);
  CHECK(lb::hash64("12345678") == 0xd2d02f08cf7cfd4aULL);
  CHECK(lb::hash64("1234567890123456789012345678901") == 0x8f367cb873a5376eULL);
  CHECK(lb::hash64("12345678901234567890123456789012") == 0x40fd1aa52d98274cULL);
  CHECK(lb::hash64("The quick brown fox jumps over the lazy dog") == 0x0b242d361fda71bcULL);
  CHECK(lb::hash64("abc", 5381) == 0x19d1c1b5c673451fULL);
  // Regression pins computed once by this implementation, for the inputs Ferry actually hashes.
  CHECK(lb::hash64("10.0.0.1:8080") == 0xcb972177068eb685ULL);
  CHECK(lb::hash64("ferry") == 0xb9c34be6b6376567ULL);
}

TEST_CASE("lb hash64 avalanches and does not collide on similar keys", "[lb]") {
  // Flipping any one input bit should flip each output bit about half the time.
  lb::Rng rng(7);
  constexpr int kInputs = 200;
  constexpr int kBits = 16 * 8;
  std::vector<int> flips(64 * kBits, 0);
  double total_flipped = 0;
  for (int n = 0; n < kInputs; ++n) {
    unsigned char buf[16];
    for (auto& b : buf) b = static_cast<unsigned char>(rng.next());
    const uint64_t base = lb::hash64(std::string_view(reinterpret_cast<char*>(buf), sizeof buf));
    for (int bit = 0; bit < kBits; ++bit) {
      buf[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
      const uint64_t diff = base ^ lb::hash64(std::string_view(reinterpret_cast<char*>(buf), sizeof buf));
      buf[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
      total_flipped += std::popcount(diff);
      for (int out = 0; out < 64; ++out) flips[bit * 64 + out] += (diff >> out) & 1;
    }
  }
  CHECK(total_flipped / (kInputs * kBits) == Approx(32.0).margin(0.5));
  // Every (input bit, output bit) pair: 200 trials, p = 0.5, so [60, 140] is > 5 sigma.
  const auto [lo, hi] = std::minmax_element(flips.begin(), flips.end());
  CHECK(*lo >= 60);
  CHECK(*hi <= 140);

  // Sequential keys (as session ids or addresses are) must not collide.
  std::vector<uint64_t> hashes;
  for (int k = 0; k < 100000; ++k) hashes.push_back(lb::hash64("key-" + std::to_string(k)));
  std::sort(hashes.begin(), hashes.end());
  CHECK(std::adjacent_find(hashes.begin(), hashes.end()) == hashes.end());
  // The seed gives an independent hash.
  CHECK(lb::hash64("key-1", 1) != lb::hash64("key-1", 0));
}

TEST_CASE("lb Rng is deterministic and below(n) is uniform", "[lb]") {
  lb::Rng a(42), b(42), c(43);
  bool all_same = true, any_differs_from_other_seed = false;
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.next();
    all_same = all_same && x == b.next();
    any_differs_from_other_seed = any_differs_from_other_seed || x != c.next();
  }
  CHECK(all_same);
  CHECK(any_differs_from_other_seed);
  // Seed 0 is fine (splitmix64 expansion): no all-zero xoshiro state.
  lb::Rng zero(0);
  CHECK((zero.next() | zero.next()) != 0);

  lb::Rng rng(1);
  for (int i = 0; i < 1000; ++i) REQUIRE(rng.below(1) == 0);
  constexpr int kBuckets = 10, kDraws = 100000;
  std::vector<int> counts(kBuckets, 0);
  for (int i = 0; i < kDraws; ++i) {
    const uint64_t v = rng.below(kBuckets);
    REQUIRE(v < kBuckets);
    ++counts[v];
  }
  for (int n : counts) CHECK(n == Approx(kDraws / kBuckets).epsilon(0.05));
  // A bound that is not a power of two and near 2^64 still stays in range.
  const uint64_t big = (UINT64_MAX / 3) * 2;
  for (int i = 0; i < 1000; ++i) REQUIRE(rng.below(big) < big);
}

TEST_CASE("lb smooth weighted round robin follows nginx's sequence", "[lb]") {
  const auto hosts = makeHosts({5, 1, 1});  // a, b, c
  std::vector<int64_t> current;
  std::string seq;
  for (int i = 0; i < 14; ++i) seq += static_cast<char>('a' + lb::pickSmoothWrr(hosts, current));
  // nginx's sequence, twice: the light hosts split the heavy one's turns, no burst of five.
  CHECK(seq == "aabacaaaabacaa");
  CHECK(current == std::vector<int64_t>{0, 0, 0});  // back to the start after each period

  // Smoothness for any weights: after every prefix of k picks each host has within one pick of
  // its exact share k * w / W (the heavy host is never ahead of its share by a whole pick).
  lb::Rng rng(3);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<uint32_t> weights(1 + rng.below(12));
    for (auto& w : weights) w = static_cast<uint32_t>(1 + rng.below(10));
    const auto hs = makeHosts(weights);
    uint64_t total = 0;
    for (uint32_t w : weights) total += w;
    std::vector<int64_t> cur;
    std::vector<uint64_t> picks(hs.size(), 0);
    double worst = 0;
    for (uint64_t k = 1; k <= 2 * total; ++k) {
      ++picks[lb::pickSmoothWrr(hs, cur)];
      for (size_t i = 0; i < hs.size(); ++i) {
        worst = std::max(worst, std::fabs(static_cast<double>(picks[i]) - static_cast<double>(k * weights[i]) / total));
      }
    }
    CHECK(worst < 1.0);
    // Over whole periods every host gets exactly its weight.
    for (size_t i = 0; i < hs.size(); ++i) CHECK(picks[i] == 2 * weights[i]);
  }
}

TEST_CASE("lb smooth weighted round robin: single host, cursor reset, 100 hosts", "[lb]") {
  std::vector<int64_t> current;
  CHECK(lb::pickSmoothWrr(makeHosts({7}), current) == 0);

  // A cursor from a different host set is reset, not misread.
  current = {100, -50, 3, 9};
  const auto hosts = makeHosts({1, 1, 1});
  std::vector<size_t> order;
  for (int i = 0; i < 3; ++i) order.push_back(lb::pickSmoothWrr(hosts, current));
  CHECK(order == std::vector<size_t>{0, 1, 2});

  std::vector<uint32_t> weights;
  for (uint32_t i = 0; i < 100; ++i) weights.push_back(i % 5 + 1);
  const auto many = makeHosts(weights);
  std::vector<int64_t> cur;
  std::vector<uint32_t> picks(many.size(), 0);
  for (int k = 0; k < 300; ++k) ++picks[lb::pickSmoothWrr(many, cur)];  // total weight 300
  CHECK(picks == weights);
}

TEST_CASE("lb weighted random follows the weights", "[lb]") {
  const auto hosts = makeHosts({1, 2, 7});
  const lb::WeightedRandom wr(hosts);
  REQUIRE_FALSE(wr.empty());
  CHECK(lb::WeightedRandom().empty());

  // Every random value below the total weight maps to exactly weight-many values per host, in
  // order; the mapping is random % total, so it repeats above.
  std::vector<size_t> exact;
  for (uint64_t r = 0; r < 10; ++r) exact.push_back(wr.pick(r));
  CHECK(exact == std::vector<size_t>{0, 1, 1, 2, 2, 2, 2, 2, 2, 2});
  CHECK(wr.pick(10) == 0);
  CHECK(wr.pick(UINT64_MAX) == 2);  // UINT64_MAX % 10 = 5, in host 2's values 3..9

  lb::Rng rng(11);
  constexpr int kPicks = 10000;
  std::vector<int> counts(3, 0);
  for (int i = 0; i < kPicks; ++i) ++counts[wr.pick(rng.next())];
  CHECK(counts[0] == Approx(kPicks * 0.1).epsilon(0.10));
  CHECK(counts[1] == Approx(kPicks * 0.2).epsilon(0.10));
  CHECK(counts[2] == Approx(kPicks * 0.7).epsilon(0.10));
}

TEST_CASE("lb least request prefers the less loaded host", "[lb]") {
  lb::Rng rng(5);
  const auto hosts = equalHosts(2);
  const lb::WeightedRandom wr(hosts);

  // Host 0 is busy: with two choices, host 1 loses only when both draws are host 0 (1/4).
  std::vector<uint64_t> active = {100, 0};
  auto inFlight = [&active](size_t i) { return active[i]; };
  int host1 = 0;
  for (int i = 0; i < 1000; ++i) host1 += lb::pickLeastRequest(hosts, wr, true, 2, rng, inFlight) == 1;
  CHECK(host1 >= 700);

  // Equal load: an even split.
  active = {5, 5};
  host1 = 0;
  for (int i = 0; i < 10000; ++i) host1 += lb::pickLeastRequest(hosts, wr, true, 2, rng, inFlight) == 1;
  CHECK(host1 == Approx(5000).epsilon(0.05));

  // One choice ignores load: a plain random pick.
  active = {100, 0};
  host1 = 0;
  for (int i = 0; i < 10000; ++i) host1 += lb::pickLeastRequest(hosts, wr, true, 1, rng, inFlight) == 1;
  CHECK(host1 == Approx(5000).epsilon(0.05));

  // Load is compared per unit of weight: 4 in flight on weight 4 beats 2 on weight 1.
  const auto weighted = makeHosts({1, 4});
  const lb::WeightedRandom wwr(weighted);
  active = {2, 4};
  int heavy = 0;
  for (int i = 0; i < 10000; ++i) heavy += lb::pickLeastRequest(weighted, wwr, false, 2, rng, inFlight) == 1;
  // Draws are weighted (4/5 host 1); host 0 wins only when drawn twice: 1/25.
  CHECK(heavy == Approx(10000 * 24 / 25).epsilon(0.02));
}

TEST_CASE("lb ring hash sizes the ring as Envoy does", "[lb]") {
  // Three equal hosts, min 1024: the lightest gets ceil(1024/3) = 342 points, so does each.
  CHECK(lb::RingHash(equalHosts(3), 1024).size() == 3 * 342);
  // Weights 1:2:3: the lightest gets ceil(1024/6) = 171, the others 342 and 513.
  CHECK(lb::RingHash(makeHosts({1, 2, 3}), 1024).size() == 171 + 342 + 513);
  // Capped at max_size (33.3 points each rounds down to 33).
  CHECK(lb::RingHash(equalHosts(3), 1024, 100).size() == 99);
  // A host too light for its share of max_size (0.001 point) still gets one, so it stays
  // reachable; the heavy one gets 999.999 rounded down.
  const auto skewed = makeHosts({1, 1000000});
  const lb::RingHash capped(skewed, 16, 1000);
  CHECK(capped.size() == 1000);
  // Weights 2:3 at min 10 want 4 + 6 points; 3:4 want 5 + 6.67, rounded up to stay >= min.
  CHECK(lb::RingHash(makeHosts({2, 3}), 10).size() == 10);
  CHECK(lb::RingHash(makeHosts({3, 4}), 10).size() == 12);
  bool light_reached = false;
  for (int k = 0; k < 200000 && !light_reached; ++k) light_reached = capped.pick(requestHash(k)) == 0;
  CHECK(light_reached);
  CHECK(lb::RingHash().size() == 0);
  CHECK(lb::RingHash({}, 1024).size() == 0);
}

TEST_CASE("lb ring hash is consistent and weighted", "[lb]") {
  const auto hosts = makeHosts({1, 2, 3});
  const lb::RingHash ring(hosts, 1024);
  constexpr int kKeys = 60000;
  const auto owners = keyOwners(ring, hosts, kKeys);
  // Same key, same host, in another table built from the same hosts...
  CHECK(keyOwners(lb::RingHash(hosts, 1024), hosts, kKeys) == owners);
  // ...and whatever their order in the vector: identity is the key, not the position.
  std::vector<WeightedHost> reversed(hosts.rbegin(), hosts.rend());
  CHECK(keyOwners(lb::RingHash(reversed, 1024), reversed, kKeys) == owners);

  std::vector<int> counts(hosts.size(), 0);
  for (int k = 0; k < kKeys; ++k) ++counts[ring.pick(requestHash(k))];
  CHECK(counts[0] == Approx(kKeys / 6.0).epsilon(0.10));
  CHECK(counts[1] == Approx(kKeys / 3.0).epsilon(0.10));
  CHECK(counts[2] == Approx(kKeys / 2.0).epsilon(0.10));

  // Keys just above the last point wrap to the first.
  CHECK(ring.pick(UINT64_MAX) == ring.pick(0));
}

TEST_CASE("lb ring hash: removing a host moves only its keys", "[lb]") {
  constexpr int kKeys = 10000;
  const auto hosts = equalHosts(10);
  for (size_t removed : {size_t{0}, size_t{3}, size_t{9}}) {
    auto rest = hosts;
    rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(removed));
    // A host's points depend only on its key and its point count. With min_size scaled to the
    // host count (100 points per host either way) every survivor keeps exactly its points, so a
    // key moves only if it was on the removed host: the ketama guarantee.
    const auto before = keyOwners(lb::RingHash(hosts, 100 * 10), hosts, kKeys);
    const auto after = keyOwners(lb::RingHash(rest, 100 * 9), rest, kKeys);
    const Disruption d = compare(before, after, hosts[removed].key);
    CHECK(d.survivor_kept == d.survivor_keys);
    CHECK(d.moved == kKeys - d.survivor_keys);
    CHECK(d.moved == Approx(kKeys / 10).epsilon(0.35));

    // With the same min_size the smaller set is scaled up to 1024 points again (Envoy does the
    // same): each survivor gains ~11 points, which take some keys from the other survivors.
    const auto after_fixed = keyOwners(lb::RingHash(rest, 1024), rest, kKeys);
    const Disruption f = compare(keyOwners(lb::RingHash(hosts, 1024), hosts, kKeys), after_fixed, hosts[removed].key);
    CHECK(f.survivor_kept >= f.survivor_keys * 88 / 100);
  }
}

TEST_CASE("lb maglev fills its table by weight", "[lb]") {
  const auto hosts = equalHosts(10);
  const lb::Maglev maglev(hosts);
  REQUIRE(maglev.size() == lb::Maglev::kDefaultTableSize);
  REQUIRE(maglev.size() == 65537);
  // Every slot holds a valid host, and equal hosts get slot counts within one of each other
  // (each round of the fill gives every host one slot).
  std::vector<int> slots(hosts.size(), 0);
  for (uint64_t s = 0; s < maglev.size(); ++s) {
    const size_t h = maglev.pick(s);
    REQUIRE(h < hosts.size());
    ++slots[h];
  }
  const auto [lo, hi] = std::minmax_element(slots.begin(), slots.end());
  CHECK(*hi - *lo <= 1);

  const auto weighted = makeHosts({1, 2, 3});
  const lb::Maglev wm(weighted);
  std::vector<int> wslots(3, 0);
  for (uint64_t s = 0; s < wm.size(); ++s) ++wslots[wm.pick(s)];
  CHECK(wslots[0] == Approx(65537 / 6.0).epsilon(0.01));
  CHECK(wslots[1] == Approx(65537 / 3.0).epsilon(0.01));
  CHECK(wslots[2] == Approx(65537 / 2.0).epsilon(0.01));

  // A composite size would never fill: it is rounded up to the next prime.
  CHECK(lb::Maglev(hosts, 100).size() == 101);
  // More hosts than slots: the table still fills, and only with valid hosts.
  const lb::Maglev tiny(equalHosts(20), 7);
  REQUIRE(tiny.size() == 7);
  for (uint64_t s = 0; s < 7; ++s) CHECK(tiny.pick(s) < 20);
  CHECK(lb::Maglev().size() == 0);
}

TEST_CASE("lb maglev is consistent and removing a host moves about its share", "[lb]") {
  constexpr int kKeys = 10000;
  const auto hosts = equalHosts(10);
  const auto before = keyOwners(lb::Maglev(hosts), hosts, kKeys);
  CHECK(keyOwners(lb::Maglev(hosts), hosts, kKeys) == before);
  std::vector<WeightedHost> reversed(hosts.rbegin(), hosts.rend());
  CHECK(keyOwners(lb::Maglev(reversed), reversed, kKeys) == before);

  for (size_t removed : {size_t{0}, size_t{4}, size_t{9}}) {
    auto rest = hosts;
    rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(removed));
    const Disruption d = compare(before, keyOwners(lb::Maglev(rest), rest, kKeys), hosts[removed].key);
    CHECK(d.moved < kKeys * 15 / 100);
    CHECK(d.survivor_kept >= d.survivor_keys * 95 / 100);
  }
}

TEST_CASE("lb priority load with overprovisioning", "[lb]") {
  using L = lb::LevelWeights;
  CHECK(lb::priorityLoad({L{10, 10}}) == std::vector<uint32_t>{100});
  // 50% healthy * 1.4 = 70 on level 0, the rest spills to level 1.
  CHECK(lb::priorityLoad({L{10, 5}, L{10, 10}}) == std::vector<uint32_t>{70, 30});
  CHECK(lb::priorityLoad({L{10, 0}, L{10, 10}}) == std::vector<uint32_t>{0, 100});
  CHECK(lb::priorityLoad({L{10, 5}, L{10, 5}}) == std::vector<uint32_t>{70, 30});
  // 28 + 28 = 56 < 100: scaled up to sum to 100.
  CHECK(lb::priorityLoad({L{10, 2}, L{10, 2}}) == std::vector<uint32_t>{50, 50});
  CHECK(lb::priorityLoad({L{10, 0}, L{10, 0}}) == std::vector<uint32_t>{0, 0});
  CHECK(lb::priorityLoad({}).empty());
  // 71.4% healthy: 1.4 * 71.4 >= 100, level 0 takes everything.
  CHECK(lb::priorityLoad({L{7, 5}, L{10, 10}}) == std::vector<uint32_t>{100, 0});
  // Weights, not host counts: one heavy unhealthy host outweighs many light healthy ones.
  CHECK(lb::priorityLoad({L{100, 25}, L{1, 1}}) == std::vector<uint32_t>{35, 65});
  // A level with no hosts at all is skipped.
  CHECK(lb::priorityLoad({L{0, 0}, L{4, 4}}) == std::vector<uint32_t>{0, 100});
  // Rounding leftovers go to the first level with health: 14 * 3 = 42 -> 33 each + 1.
  CHECK(lb::priorityLoad({L{10, 1}, L{10, 1}, L{10, 1}}) == std::vector<uint32_t>{34, 33, 33});
  // No overprovisioning: health is the healthy share itself.
  CHECK(lb::priorityLoad({L{10, 5}, L{10, 10}}, 100) == std::vector<uint32_t>{50, 50});

  CHECK(lb::normalizedHealth({L{10, 10}}) == 100);
  CHECK(lb::normalizedHealth({L{10, 5}, L{10, 10}}) == 100);
  CHECK(lb::normalizedHealth({L{10, 2}, L{10, 2}}) == 56);
  CHECK(lb::normalizedHealth({L{10, 2}}) == 28);
  CHECK(lb::normalizedHealth({L{10, 0}, L{10, 0}}) == 0);
  CHECK(lb::normalizedHealth({}) == 0);
}

TEST_CASE("lb slow start weight ramps from min_percent to full", "[lb]") {
  CHECK(lb::slowStartWeight(100, 0, 10000) == 10);    // floor: min_percent of the weight
  CHECK(lb::slowStartWeight(100, 500, 10000) == 10);  // 5% elapsed is under the 10% floor
  CHECK(lb::slowStartWeight(100, 5000, 10000) == 50);
  CHECK(lb::slowStartWeight(100, 9999, 10000) == 99);
  CHECK(lb::slowStartWeight(100, 10000, 10000) == 100);
  CHECK(lb::slowStartWeight(100, 60000, 10000) == 100);
  CHECK(lb::slowStartWeight(100, 0, 10000, 50) == 50);
  CHECK(lb::slowStartWeight(100, -5, 10000) == 10);  // clock skew: treated as just started
  CHECK(lb::slowStartWeight(100, 0, 0) == 100);      // no window: no warm-up
  // Never 0, even for tiny weights or a zero floor.
  CHECK(lb::slowStartWeight(1, 0, 10000) == 1);
  CHECK(lb::slowStartWeight(5, 0, 10000, 0) == 1);
  CHECK(lb::slowStartWeight(UINT32_MAX, 5000, 10000) == UINT32_MAX / 2);
}
