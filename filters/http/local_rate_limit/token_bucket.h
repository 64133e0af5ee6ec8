// Token buckets shared by every worker of the process, without locks: a fixed-size table of
// slots, each two atomic words (the key's hash, and the bucket), updated with compare-exchange.
//
// A bucket is one 64-bit word: [tag 8 | tokens 20 | fill epoch 36]. The fill epoch is the
// number of whole fill intervals since the table was made (its low 36 bits: with the
// 50 ms minimum interval, half the range is 54 years); a take refills
// lazily from it (tokens += elapsed epochs * tokens_per_fill, capped at max_tokens), so
// tokens arrive at the same instants as with a refill timer, and nothing runs between
// requests. A take whose clock reading is older than the stored epoch (workers race) refills
// nothing and leaves the epoch as it is. The tag is 8 bits of the key's hash: a bucket whose tag is not its slot's key's
// is a fresh (full) bucket for that key.
//
// Keys: open addressing over `capacity` slots (max_keys), probing a window of 8 slots from
// the key's home slot. A key not in its window claims an empty slot, or evicts one: first a
// slot whose bucket has refilled to max_tokens (a full bucket is the same as a new one, so
// nothing is lost), else the one refilled longest ago (least recently used, approximately).
// Races between an eviction and a take of the evicted key can misattribute a token; nothing
// ever waits for another thread. Memory: 16 bytes per slot, allocated once.
//
// Made on the main thread (the filter's config); take() is called by any worker.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace ferry::filters::http {

class TokenBucketTable {
 public:
  static constexpr uint32_t kMaxTokens = (1u << 20) - 1;  // what a bucket can hold
  static constexpr int64_t kMinFillIntervalUs = 1000;     // the config allows >= 50 ms
  static constexpr unsigned kWindow = 8;                  // slots probed per key

  // now_us: a monotonic clock in microseconds (core::monotonicUs()); epochs count from
  // `start_us`.
  TokenBucketTable(uint32_t max_tokens, uint32_t tokens_per_fill, int64_t fill_interval_us, size_t capacity,
                   int64_t start_us);

  struct Result {
    bool allowed = false;
    uint32_t remaining = 0;  // tokens left after this take
    int64_t next_fill_us = 0;  // microseconds until the next tokens arrive (> 0)
  };
  // Takes one token from the bucket of the key with this hash, at `now_us` (>= start).
  Result take(uint64_t key_hash, int64_t now_us);

  uint32_t maxTokens() const { return max_tokens_; }
  size_t capacity() const { return capacity_; }
  int64_t fillIntervalUs() const { return fill_us_; }
  // Keys currently holding a slot (a scan; for tests).
  size_t keysInUse() const;

 private:
  static constexpr uint64_t kEpochBits = 36;
  static constexpr uint64_t kEpochMask = (uint64_t{1} << kEpochBits) - 1;
  static constexpr uint64_t kTokenBits = 20;
  static constexpr uint64_t kTokenMask = (uint64_t{1} << kTokenBits) - 1;

  struct alignas(16) Slot {
    std::atomic<uint64_t> key{0};     // the key's hash (never 0); 0 = empty
    std::atomic<uint64_t> bucket{0};  // [tag | tokens | epoch]
  };

  static uint64_t tagOf(uint64_t h) { return ((h >> 20) & 0xff) | 1; }  // never 0
  static uint64_t pack(uint64_t tag, uint64_t tokens, uint64_t epoch) {
    return (tag << (kTokenBits + kEpochBits)) | (tokens << kEpochBits) | (epoch & kEpochMask);
  }
  // The bucket's tokens at `epoch`; *store_epoch: the epoch to store with them.
  uint64_t tokensNow(uint64_t word, uint64_t tag, uint64_t epoch, uint64_t* store_epoch) const;
  Slot* find(uint64_t h, uint64_t epoch);
  Result takeFrom(Slot& s, uint64_t h, uint64_t epoch, int64_t now_us, bool* lost);

  const uint32_t max_tokens_;
  const uint32_t per_fill_;
  const int64_t fill_us_;
  const size_t capacity_;
  const int64_t start_us_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace ferry::filters::http
