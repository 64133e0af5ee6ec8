#include "core/net/per_ip_connections.h"

#include <netinet/in.h>

#include <absl/hash/hash.h>
#include <absl/strings/string_view.h>

namespace ferry::core::net {

uint64_t PerIpConnections::key(const sockaddr_storage& addr) {
  absl::string_view bytes;
  if (addr.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(addr).sin_addr;
    bytes = absl::string_view(reinterpret_cast<const char*>(&a), sizeof a);
  } else if (addr.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr;
    bytes = absl::string_view(reinterpret_cast<const char*>(&a), sizeof a);
  } else {
    return 0;
  }
  // Seeded per process (absl::Hash): clients cannot pick addresses that crowd one window.
  const uint64_t h = absl::Hash<absl::string_view>{}(bytes);
  return h == 0 ? 1 : h;
}

uint32_t PerIpConnections::acquire(uint64_t k, uint64_t limit) {
  const uint64_t tag = tagOf(k);
  const size_t home = static_cast<size_t>(k) & (kSlots - 1);
  for (int attempt = 0; attempt < 4; ++attempt) {
    size_t free_idx = kSlots;
    uint64_t free_word = 0;
    bool retry = false;
    for (size_t i = 0; i < kWindow && !retry; ++i) {
      const size_t idx = (home + i) & (kSlots - 1);
      std::atomic<uint64_t>& slot = slots_[idx];
      uint64_t w = slot.load(std::memory_order_relaxed);
      if ((w >> kCountBits) == tag) {
        for (;;) {
          if ((w & kCountMask) >= limit) return kOver;
          if (slot.compare_exchange_weak(w, w + 1, std::memory_order_relaxed)) return static_cast<uint32_t>(idx);
          if ((w >> kCountBits) != tag) {  // freed and taken over by another IP meanwhile
            retry = true;
            break;
          }
        }
        continue;
      }
      if ((w & kCountMask) == 0 && free_idx == kSlots) {
        free_idx = idx;
        free_word = w;
      }
      if (w == 0) break;  // never used: the IP is not further on
    }
    if (retry) continue;
    if (free_idx == kSlots) return kNoSlot;  // the window is full: accept uncounted
    if (limit == 0) return kOver;
    if (slots_[free_idx].compare_exchange_strong(free_word, (tag << kCountBits) | 1, std::memory_order_relaxed))
      return static_cast<uint32_t>(free_idx);
  }
  return kNoSlot;
}

void PerIpConnections::release(uint32_t slot) {
  if (slot >= kSlots) return;
  slots_[slot].fetch_sub(1, std::memory_order_relaxed);
}

uint64_t PerIpConnections::count(uint64_t k) const {
  const uint64_t tag = tagOf(k);
  const size_t home = static_cast<size_t>(k) & (kSlots - 1);
  for (size_t i = 0; i < kWindow; ++i) {
    const uint64_t w = slots_[(home + i) & (kSlots - 1)].load(std::memory_order_relaxed);
    if ((w >> kCountBits) == tag) return w & kCountMask;
  }
  return 0;
}

}  // namespace ferry::core::net
