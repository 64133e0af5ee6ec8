#include "core/upstream/lb.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <numeric>

namespace ferry::core::upstream::lb {

namespace {

using u128 = unsigned __int128;

// Little-endian loads, so a hash is the same on every host (stored ring positions, keys shared
// between processes).
uint64_t load64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}

uint32_t load32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  return v;
}

void store64(unsigned char* p, uint64_t v) {
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  std::memcpy(p, &v, sizeof v);
}

// xxHash64 (Yann Collet's XXH64, the published algorithm; values match the reference vectors).
constexpr uint64_t kP1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kP3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t kP5 = 0x27D4EB2F165667C5ULL;

uint64_t xxRound(uint64_t acc, uint64_t input) {
  acc += input * kP2;
  acc = std::rotl(acc, 31);
  return acc * kP1;
}

uint64_t xxMerge(uint64_t acc, uint64_t v) {
  acc ^= xxRound(0, v);
  return acc * kP1 + kP4;
}


// Ring point of replica `r` of the host whose identity is `key`: depends on (key, r) only, so a
// host keeps its points whatever the other hosts are and wherever it sits in the vector.
uint64_t pointHash(uint64_t key, uint64_t r) {
  unsigned char buf[16];
  store64(buf, key);
  store64(buf + 8, r);
  return hash64(std::string_view(reinterpret_cast<const char*>(buf), sizeof buf));
}

bool isPrime(uint32_t n) {
  if (n < 2) return false;
  for (uint32_t d = 2; static_cast<uint64_t>(d) * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

}  // namespace

uint64_t hash64(std::string_view data, uint64_t seed) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const size_t len = data.size();
  const unsigned char* const end = p + len;
  uint64_t h;
  if (len >= 32) {
    uint64_t v1 = seed + kP1 + kP2, v2 = seed + kP2, v3 = seed, v4 = seed - kP1;
    const unsigned char* const limit = end - 32;
    do {
      v1 = xxRound(v1, load64(p));
      v2 = xxRound(v2, load64(p + 8));
      v3 = xxRound(v3, load64(p + 16));
      v4 = xxRound(v4, load64(p + 24));
      p += 32;
    } while (p <= limit);
    h = std::rotl(v1, 1) + std::rotl(v2, 7) + std::rotl(v3, 12) + std::rotl(v4, 18);
    h = xxMerge(h, v1);
    h = xxMerge(h, v2);
    h = xxMerge(h, v3);
    h = xxMerge(h, v4);
  } else {
    h = seed + kP5;
  }
  h += len;
  for (; p + 8 <= end; p += 8) {
    h ^= xxRound(0, load64(p));
    h = std::rotl(h, 27) * kP1 + kP4;
  }
  if (p + 4 <= end) {
    h ^= static_cast<uint64_t>(load32(p)) * kP1;
    h = std::rotl(h, 23) * kP2 + kP3;
    p += 4;
  }
  for (; p < end; ++p) {
    h ^= *p * kP5;
    h = std::rotl(h, 11) * kP1;
  }
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

size_t pickSmoothWrr(const std::vector<WeightedHost>& hosts, std::vector<int64_t>& current) {
  const size_t n = hosts.size();
  if (n <= 1) return 0;
  if (current.size() != n) current.assign(n, 0);
  int64_t total = 0;
  size_t best = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t w = std::max<uint32_t>(hosts[i].weight, 1);  // 0 is out of contract: as 1, like the tables
    total += w;
    current[i] += w;
    // Strictly greater: ties go to the lowest position, as in nginx (a,a,b,a,c,a,a for 5,1,1).
    if (current[i] > current[best]) best = i;
  }
  current[best] -= total;
  return best;
}

WeightedRandom::WeightedRandom(const std::vector<WeightedHost>& hosts) {
  prefix_.reserve(hosts.size());
  uint64_t sum = 0;
  for (const WeightedHost& h : hosts) {
    sum += std::max<uint32_t>(h.weight, 1);  // a 0 would make the total 0 and pick() divide by it
    prefix_.push_back(sum);
  }
}

size_t WeightedRandom::pick(uint64_t random) const {
  if (prefix_.size() <= 1) return 0;
  // The modulo bias is total / 2^64: negligible for any realistic total weight.
  const uint64_t r = random % prefix_.back();
  // First cumulative weight above r: host i owns [prefix[i-1], prefix[i]).
  return static_cast<size_t>(std::upper_bound(prefix_.begin(), prefix_.end(), r) - prefix_.begin());
}

// Sizing as Envoy's ring_hash_lb: the ring is scaled so that the lightest host gets
// ceil(min_size * w_min / W) points, which makes at least min_size in total, capped at max_size,
// and every host gets points in proportion to its weight. Unlike Envoy, each host's count is
// rounded on its own (not from a running total in vector order), so a host's points depend on
// its key, its weight and the scale only, never on its position. Counts round up below the cap
// (the total stays >= min_size) and down at the cap (<= max_size), but are at least 1 so every
// host stays reachable: with more hosts than max_size the ring has one point per host.
RingHash::RingHash(const std::vector<WeightedHost>& hosts, uint32_t min_size, uint32_t max_size) {
  if (hosts.empty()) return;
  max_size = std::max<uint32_t>(max_size, 1);
  min_size = std::min(min_size, max_size);
  uint64_t total_weight = 0;
  uint64_t min_weight = UINT64_MAX;
  for (const WeightedHost& h : hosts) {
    const uint64_t w = std::max<uint32_t>(h.weight, 1);
    total_weight += w;
    min_weight = std::min(min_weight, w);
  }
  // Points of the lightest host, then scale = lightest_points * W / w_min; the cap applies when
  // that exceeds max_size. All in integers so the same hosts always give the same ring.
  const u128 lightest_points = (static_cast<u128>(min_size) * min_weight + total_weight - 1) / total_weight;
  const bool capped = lightest_points * total_weight > static_cast<u128>(max_size) * min_weight;
  auto pointsFor = [&](uint64_t w) -> uint64_t {
    const u128 num = capped ? static_cast<u128>(max_size) * w : lightest_points * w;
    const u128 den = capped ? total_weight : min_weight;
    const u128 points = capped ? num / den : (num + den - 1) / den;
    return std::max<uint64_t>(1, static_cast<uint64_t>(points));
  };

  uint64_t count = 0;
  for (const WeightedHost& h : hosts) count += pointsFor(std::max<uint32_t>(h.weight, 1));
  ring_.reserve(count);
  for (size_t i = 0; i < hosts.size(); ++i) {
    const uint64_t points = pointsFor(std::max<uint32_t>(hosts[i].weight, 1));
    for (uint64_t r = 0; r < points; ++r) ring_.push_back({pointHash(hosts[i].key, r), static_cast<uint32_t>(i)});
  }
  // Equal point hashes (vanishingly rare) are ordered by host identity, not position, so the
  // mapping does not depend on the order of the hosts.
  std::sort(ring_.begin(), ring_.end(), [&hosts](const Point& a, const Point& b) {
    if (a.hash != b.hash) return a.hash < b.hash;
    return hosts[a.host].key < hosts[b.host].key;
  });
}

size_t RingHash::pick(uint64_t hash) const {
  if (ring_.empty()) return 0;
  auto it = std::lower_bound(ring_.begin(), ring_.end(), hash, [](const Point& p, uint64_t h) { return p.hash < h; });
  if (it == ring_.end()) it = ring_.begin();  // past the last point: wrap to the first
  return it->host;
}

// Envoy's weighted Maglev: every host walks its own permutation of the table (offset, skip from
// two hashes of its identity) and claims the next free slot when it has a turn. In round
// `iteration` a host has a turn when iteration * w_i >= its target, which then grows by w_max:
// the heaviest host claims one slot per round, others w_i / w_max of one. Integer arithmetic
// instead of Envoy's normalized doubles gives the same turns without rounding. Hosts take turns
// in the order of their keys, so the table depends on the set of hosts, not on their positions.
Maglev::Maglev(const std::vector<WeightedHost>& hosts, uint32_t table_size) {
  if (hosts.empty()) return;
  // With a composite size some permutations cannot reach every slot and the fill below would
  // never end: round up to the next prime (size() tells the caller what it got).
  while (!isPrime(table_size)) ++table_size;

  struct Entry {
    uint32_t host;
    uint64_t weight;
    uint64_t next;  // current slot of the host's permutation
    uint64_t skip;
    uint64_t target;  // scaled: in units of weight * rounds
  };
  std::vector<Entry> entries;
  entries.reserve(hosts.size());
  uint64_t max_weight = 0;
  for (size_t i = 0; i < hosts.size(); ++i) {
    const uint64_t w = std::max<uint32_t>(hosts[i].weight, 1);
    max_weight = std::max(max_weight, w);
    unsigned char buf[8];
    store64(buf, hosts[i].key);
    const std::string_view key(reinterpret_cast<const char*>(buf), sizeof buf);
    const uint64_t offset = hash64(key, 0) % table_size;
    const uint64_t skip = hash64(key, 1) % (table_size - 1) + 1;
    entries.push_back({static_cast<uint32_t>(i), w, offset, skip, 0});
  }
  std::sort(entries.begin(), entries.end(), [&hosts](const Entry& a, const Entry& b) {
    const uint64_t ka = hosts[a.host].key, kb = hosts[b.host].key;
    return ka != kb ? ka < kb : a.host < b.host;
  });

  constexpr uint32_t kEmpty = UINT32_MAX;
  table_.assign(table_size, kEmpty);
  uint64_t filled = 0;
  for (uint64_t iteration = 1; filled < table_size; ++iteration) {
    for (Entry& e : entries) {
      if (iteration * e.weight < e.target) continue;
      e.target += max_weight;
      while (table_[e.next] != kEmpty) {
        e.next += e.skip;
        if (e.next >= table_size) e.next -= table_size;
      }
      table_[e.next] = e.host;
      if (++filled == table_size) break;
    }
  }
}

namespace {

// health(level) in percent: min(100, overprovisioning% * healthy / total).
uint32_t levelHealth(const LevelWeights& level, uint32_t overprovisioning_percent) {
  if (level.total == 0 || level.healthy == 0) return 0;
  const u128 health = static_cast<u128>(overprovisioning_percent) * std::min(level.healthy, level.total) / level.total;
  return static_cast<uint32_t>(std::min<u128>(100, health));
}

}  // namespace

uint32_t normalizedHealth(const std::vector<LevelWeights>& levels, uint32_t overprovisioning_percent) {
  uint64_t sum = 0;
  for (const LevelWeights& l : levels) sum += levelHealth(l, overprovisioning_percent);
  return static_cast<uint32_t>(std::min<uint64_t>(100, sum));
}

// Envoy's per-priority load: levels are served in order, each taking what its health allows of
// what is left; health below 100 in total is scaled up (health * 100 / normalized) so the loads
// still add up to 100. Integer division can leave a point or two over, which goes to the first
// level that has health, as Envoy does.
std::vector<uint32_t> priorityLoad(const std::vector<LevelWeights>& levels, uint32_t overprovisioning_percent) {
  std::vector<uint32_t> load(levels.size(), 0);
  std::vector<uint32_t> health(levels.size());
  uint64_t sum = 0;
  for (size_t i = 0; i < levels.size(); ++i) {
    health[i] = levelHealth(levels[i], overprovisioning_percent);
    sum += health[i];
  }
  const uint32_t normalized = static_cast<uint32_t>(std::min<uint64_t>(100, sum));
  if (normalized == 0) return load;
  uint32_t remaining = 100;
  size_t first_healthy = levels.size();
  for (size_t i = 0; i < levels.size(); ++i) {
    if (health[i] > 0 && first_healthy == levels.size()) first_healthy = i;
    load[i] = std::min(remaining, health[i] * 100 / normalized);
    remaining -= load[i];
  }
  load[first_healthy] += remaining;
  return load;
}

uint32_t slowStartWeight(uint32_t weight, int64_t elapsed_ms, int64_t window_ms, uint32_t min_percent) {
  if (weight == 0) return 1;
  if (window_ms <= 0 || elapsed_ms >= window_ms) return weight;
  // weight * max(min_percent / 100, elapsed / window), as one fraction over 100 * window.
  const u128 floor_num = static_cast<u128>(std::min<uint32_t>(min_percent, 100)) * static_cast<uint64_t>(window_ms);
  const u128 time_num = static_cast<u128>(std::max<int64_t>(elapsed_ms, 0)) * 100;
  const u128 scaled = static_cast<u128>(weight) * std::max(floor_num, time_num) / (static_cast<u128>(window_ms) * 100);
  return static_cast<uint32_t>(std::max<u128>(1, scaled));
}

}  // namespace ferry::core::upstream::lb
