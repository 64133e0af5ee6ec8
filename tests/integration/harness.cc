// Integration harness, shared pieces: SIGPIPE, waitUntil, randomBytes. The rest is in
// harness_process.cc, harness_net.cc and harness_http.cc (harness.h is the interface of all).
#include <poll.h>
#include <signal.h>

#include "tests/integration/harness.h"
#include "tests/integration/harness_internal.h"

namespace ferry::testing {

using namespace detail;

namespace {

// Ignore SIGPIPE in the test process: writes to a closed peer return EPIPE instead of killing it.
const bool kSigpipeIgnored = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

}  // namespace

// ---------------------------------------------------------------------------------------------
// waitUntil

bool waitUntil(const std::function<bool()>& pred, ms timeout, ms every) {
  const TimePoint deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() >= deadline) return false;
    ::poll(nullptr, 0, static_cast<int>(every.count()));
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// randomBytes

std::string randomBytes(size_t n, uint32_t seed) {
  std::string out(n, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ull ^ seed;
  size_t i = 0;
  while (i < n) {
    // splitmix64
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    for (int k = 0; k < 8 && i < n; ++k, ++i) out[i] = static_cast<char>((z >> (8 * k)) & 0xFF);
  }
  return out;
}

}  // namespace ferry::testing
