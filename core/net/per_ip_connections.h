// Open connections per client IP for one listener (max_connections_per_ip), shared by every
// worker without locks: a fixed table of 64-bit atomic slots, [tag 40 | count 24], found by
// open addressing from the IP's hash (a window of 16 slots). A slot whose count falls to 0
// keeps its tag until another IP takes it over, so an IP is found again in its window before
// the first never-used slot. Counting is exact except in one race: two connections of a new
// IP accepted at the same instant by two workers while a slot in its window is being freed
// may land in two slots (the IP may then exceed its limit by one connection). When an IP's
// window has no free slot (more than the table's IPs are connected at once), its connection is
// accepted uncounted. Memory: 8 bytes a slot, 65536 slots (512 KiB) per listener that sets the
// limit. Made on the main thread; acquire/release from any worker.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>

namespace ferry::core::net {

class PerIpConnections {
 public:
  static constexpr size_t kSlots = 65536;
  static constexpr size_t kWindow = 16;
  static constexpr uint32_t kNoSlot = UINT32_MAX;

  PerIpConnections() : slots_(new std::atomic<uint64_t>[kSlots]) {
    for (size_t i = 0; i < kSlots; ++i) slots_[i].store(0, std::memory_order_relaxed);
  }

  // The IP of `addr` (port left out) as a table key; 0 for addresses that are not IP.
  static uint64_t key(const sockaddr_storage& addr);
  // One more connection from the IP with key `k` (non-zero). Returns the slot to release() it
  // with, kNoSlot when untracked (the table is full there), or nullopt-like kOver when the IP
  // already has `limit` connections (nothing is counted then).
  static constexpr uint32_t kOver = UINT32_MAX - 1;
  uint32_t acquire(uint64_t k, uint64_t limit);
  void release(uint32_t slot);
  // The count held for key k (a scan of its window; for tests).
  uint64_t count(uint64_t k) const;

 private:
  static constexpr uint64_t kCountBits = 24;
  static constexpr uint64_t kCountMask = (uint64_t{1} << kCountBits) - 1;
  static uint64_t tagOf(uint64_t k) { return (k >> kCountBits) | (uint64_t{1} << 39); }  // 40 bits, never 0
  std::unique_ptr<std::atomic<uint64_t>[]> slots_;
};

}  // namespace ferry::core::net
