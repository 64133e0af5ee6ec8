#include "core/random.h"

#include <bit>

namespace ferry::core {

namespace {
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
}  // namespace

// xoshiro256**, state expanded from the seed with splitmix64 (as its authors recommend).
Rng::Rng(uint64_t seed) {
  for (uint64_t& s : s_) s = splitmix64(seed);
}

Rng::Rng(const uint64_t (&state)[4]) {
  for (int i = 0; i < 4; ++i) s_[i] = state[i];
  if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) *this = Rng(uint64_t{0});
}

uint64_t Rng::next() {
  const uint64_t result = std::rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = std::rotl(s_[3], 45);
  return result;
}

// Lemire's multiply-shift with his rejection step: exactly uniform, and the rejection branch
// (one division) is only taken with probability n / 2^64.
uint64_t Rng::below(uint64_t n) {
  using u128 = unsigned __int128;
  u128 m = static_cast<u128>(next()) * n;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < n) {
    const uint64_t threshold = -n % n;
    while (low < threshold) {
      m = static_cast<u128>(next()) * n;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

}  // namespace ferry::core
