// AddressSanitizer hooks for memory Ferry recycles itself (per-thread free lists): a block
// on a free list is poisoned, so a use after it was given back is still reported. Both are
// no-ops in builds without ASan.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define FERRY_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FERRY_ASAN 1
#endif
#endif
#ifdef FERRY_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace ferry::core {

inline void asanPoison(const volatile void* p, size_t n) {
#ifdef FERRY_ASAN
  ASAN_POISON_MEMORY_REGION(p, n);
#else
  (void)p, (void)n;
#endif
}

inline void asanUnpoison(const volatile void* p, size_t n) {
#ifdef FERRY_ASAN
  ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
  (void)p, (void)n;
#endif
}

}  // namespace ferry::core
