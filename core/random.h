// A fast PRNG for the data path: xoshiro256**. Not thread-safe: one per thread (or worker).
#pragma once

#include <cstdint>

namespace ferry::core {

class Rng {
 public:
  // State expanded from `seed` with splitmix64 (any seed, zero included, gives a good state).
  explicit Rng(uint64_t seed);
  // State given whole (e.g. 256 bits from getrandom); an all-zero state is replaced.
  explicit Rng(const uint64_t (&state)[4]);
  uint64_t next();
  // Uniform in [0, n); n > 0.
  uint64_t below(uint64_t n);

 private:
  uint64_t s_[4];
};

}  // namespace ferry::core
