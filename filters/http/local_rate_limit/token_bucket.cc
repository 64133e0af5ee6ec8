#include "filters/http/local_rate_limit/token_bucket.h"

#include <algorithm>

namespace ferry::filters::http {

TokenBucketTable::TokenBucketTable(uint32_t max_tokens, uint32_t tokens_per_fill, int64_t fill_interval_us,
                                   size_t capacity, int64_t start_us)
    : max_tokens_(std::clamp<uint32_t>(max_tokens, 1, kMaxTokens)),
      per_fill_(std::clamp<uint32_t>(tokens_per_fill, 1, kMaxTokens)),
      fill_us_(std::max(fill_interval_us, kMinFillIntervalUs)),
      capacity_(std::max<size_t>(capacity, 1)),
      start_us_(start_us),
      slots_(new Slot[capacity_]) {}

uint64_t TokenBucketTable::tokensNow(uint64_t word, uint64_t tag, uint64_t epoch, uint64_t* store_epoch) const {
  *store_epoch = epoch;
  if ((word >> (kTokenBits + kEpochBits)) != tag) return max_tokens_;  // a fresh bucket for this key
  const uint64_t tokens = (word >> kEpochBits) & kTokenMask;
  const uint64_t elapsed = (epoch - word) & kEpochMask;  // whole fill intervals since it was stored
  if (elapsed >= (kEpochMask >> 1)) {  // our clock reading is behind the stored one
    *store_epoch = word;
    return tokens;
  }
  return std::min<uint64_t>(max_tokens_, tokens + std::min<uint64_t>(elapsed, max_tokens_) * per_fill_);
}

TokenBucketTable::Slot* TokenBucketTable::find(uint64_t h, uint64_t epoch) {
  const size_t home = static_cast<size_t>((static_cast<unsigned __int128>(h) * capacity_) >> 64);
  const size_t window = std::min<size_t>(kWindow, capacity_);
  auto at = [&](size_t i) -> Slot& { return slots_[(home + i) % capacity_]; };
  // Slots are never emptied, only taken over: a key is in its window before the first empty slot.
  for (size_t i = 0; i < window; ++i) {
    Slot& s = at(i);
    uint64_t k = s.key.load(std::memory_order_acquire);
    if (k == h) return &s;
    if (k != 0) continue;
    if (s.key.compare_exchange_strong(k, h, std::memory_order_acq_rel)) return &s;
    return k == h ? &s : nullptr;  // another thread took it first: look again
  }
  // The window is full: evict a bucket that has refilled completely (nothing is lost), else
  // the one refilled longest ago.
  Slot* victim = nullptr;
  uint64_t victim_key = 0;
  uint64_t oldest = 0;
  for (size_t i = 0; i < window; ++i) {
    Slot& s = at(i);
    const uint64_t k = s.key.load(std::memory_order_acquire);
    const uint64_t b = s.bucket.load(std::memory_order_relaxed);
    if (k == h) return &s;
    uint64_t unused;
    if (tokensNow(b, tagOf(k), epoch, &unused) >= max_tokens_) {
      victim = &s;
      victim_key = k;
      break;
    }
    const uint64_t age = (epoch - b) & kEpochMask;
    if (victim == nullptr || age > oldest) {
      victim = &s;
      victim_key = k;
      oldest = age;
    }
  }
  if (!victim->key.compare_exchange_strong(victim_key, h, std::memory_order_acq_rel))
    return victim_key == h ? victim : nullptr;
  // The old key's bucket would pass for ours if the tags collide: start afresh.
  if (tagOf(victim_key) == tagOf(h)) victim->bucket.store(0, std::memory_order_relaxed);
  return victim;
}

TokenBucketTable::Result TokenBucketTable::takeFrom(Slot& s, uint64_t h, uint64_t epoch, int64_t now_us,
                                                    bool* lost) {
  const uint64_t tag = tagOf(h);
  Result r;
  r.next_fill_us = start_us_ + static_cast<int64_t>(epoch + 1) * fill_us_ - now_us;
  uint64_t word = s.bucket.load(std::memory_order_relaxed);
  for (;;) {
    if (s.key.load(std::memory_order_acquire) != h) {  // evicted meanwhile
      *lost = true;
      return r;
    }
    uint64_t store_epoch;
    const uint64_t avail = tokensNow(word, tag, epoch, &store_epoch);
    if (avail == 0) return r;  // refused; nothing to store (no fill interval has passed)
    if (s.bucket.compare_exchange_weak(word, pack(tag, avail - 1, store_epoch), std::memory_order_relaxed)) {
      r.allowed = true;
      r.remaining = static_cast<uint32_t>(avail - 1);
      return r;
    }
  }
}

TokenBucketTable::Result TokenBucketTable::take(uint64_t key_hash, int64_t now_us) {
  const uint64_t h = key_hash == 0 ? 1 : key_hash;
  const int64_t since = std::max<int64_t>(0, now_us - start_us_);
  const uint64_t epoch = static_cast<uint64_t>(since / fill_us_);
  now_us = start_us_ + since;
  for (int attempt = 0; attempt < 4; ++attempt) {
    Slot* s = find(h, epoch);
    if (s == nullptr) continue;
    bool lost = false;
    Result r = takeFrom(*s, h, epoch, now_us, &lost);
    if (!lost) return r;
  }
  // Keys kept stealing the slot from each other (a pathological race): let the request pass.
  Result r;
  r.allowed = true;
  r.remaining = max_tokens_;
  r.next_fill_us = start_us_ + static_cast<int64_t>(epoch + 1) * fill_us_ - now_us;
  return r;
}

size_t TokenBucketTable::keysInUse() const {
  size_t n = 0;
  for (size_t i = 0; i < capacity_; ++i)
    if (slots_[i].key.load(std::memory_order_relaxed) != 0) ++n;
  return n;
}

}  // namespace ferry::filters::http
