#include "core/buffer.h"

#include <sys/uio.h>

#include <algorithm>
#include <cstring>

#include "core/asan.h"

namespace ferry::core {
namespace {

// Per-thread free list: slices are reused instead of going back to malloc on every read. The
// free slices are linked through their own first bytes, so taking and giving one back is a
// pointer swap with nothing to grow (a std::vector here made both calls save and restore six
// registers for its reallocation path).
struct SlicePool {
  uint8_t* head = nullptr;
  size_t free = 0;
  size_t live_bytes = 0;
  // A free slice is poisoned under AddressSanitizer (a read or write of a slice after it
  // was given back is reported), so its link is read with the slice unpoisoned.
  uint8_t* pop() {
    uint8_t* m = head;
    if (m == nullptr) return nullptr;
    asanUnpoison(m, Buffer::kSliceSize);
    std::memcpy(&head, m, sizeof head);
    --free;
    return m;
  }
  void give(uint8_t* m) {
    std::memcpy(m, &head, sizeof head);
    asanPoison(m, Buffer::kSliceSize);
    head = m;
    ++free;
  }
  ~SlicePool() {
    while (uint8_t* m = pop()) delete[] m;
  }
};
constexpr size_t kMaxFreeSlices = 256;
thread_local SlicePool tl_pool;

// Per-thread free list of buffer blocks (ring and counts): taking one is a pointer pop.
// Bounded: a burst beyond kMaxFreeReps goes back to malloc.
constexpr size_t kMaxFreeReps = 256;

}  // namespace

struct BufferRepPool {
  Buffer::Rep* head = nullptr;
  size_t free = 0;
  size_t live = 0;
  ~BufferRepPool();
  static inline thread_local bool gone = false;  // trivially destructible: readable after
};
namespace {
thread_local BufferRepPool tl_reps;
}

BufferRepPool::~BufferRepPool() {
  gone = true;
  while (head != nullptr) {
    Buffer::Rep* r = head;
    head = r->next_free;
    delete r;
  }
}

Buffer::Rep* Buffer::takeRep() {
  if (BufferRepPool::gone) return new Rep;
  BufferRepPool& p = tl_reps;
  ++p.live;
  if (p.head == nullptr) return new Rep;
  Rep* r = p.head;
  p.head = r->next_free;
  --p.free;
  r->next_free = nullptr;
  return r;
}

void Buffer::giveRep(Rep* r) {
  if (BufferRepPool::gone) {
    delete r;
    return;
  }
  BufferRepPool& p = tl_reps;
  --p.live;
  if (p.free >= kMaxFreeReps) {
    delete r;
    return;
  }
  r->slices.shrink();
  r->length = 0;
  r->reserved_from = 0;
  r->next_free = p.head;
  p.head = r;
  ++p.free;
}

size_t Buffer::threadLiveBlocks() { return BufferRepPool::gone ? 0 : tl_reps.live; }

uint8_t* Buffer::allocSlice() {
  SlicePool& p = tl_pool;
  p.live_bytes += kSliceSize;
  if (uint8_t* m = p.pop()) return m;
  return new uint8_t[kSliceSize];
}

void Buffer::freeSlice(uint8_t* mem) {
  SlicePool& p = tl_pool;
  p.live_bytes -= kSliceSize;
  if (p.free < kMaxFreeSlices) {
    p.give(mem);
  } else {
    delete[] mem;
  }
}

size_t Buffer::threadSliceBytes() { return tl_pool.live_bytes; }

void Buffer::SliceRing::grow() {
  uint32_t cap = cap_ * 2;
  auto* data = new Slice[cap];
  for (uint32_t i = 0; i < size_; ++i) data[i] = (*this)[i];
  if (data_ != inline_) delete[] data_;
  data_ = data;
  cap_ = cap;
  head_ = 0;
}

Buffer::Buffer(Buffer&& other) noexcept : rep_(other.rep_) { other.rep_ = nullptr; }

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    if (rep_ != nullptr) clear();
    rep_ = other.rep_;
    other.rep_ = nullptr;
  }
  return *this;
}

void Buffer::add(const void* data, size_t n) {
  if (n == 0) return;
  Rep& r = rep();
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    if (r.slices.empty() || r.slices.back().end == kSliceSize) {
      r.slices.push_back(Slice{allocSlice(), 0, 0});
    }
    Slice& s = r.slices.back();
    size_t take = std::min<size_t>(n, kSliceSize - s.end);
    std::memcpy(s.mem + s.end, p, take);
    s.end += take;
    p += take;
    n -= take;
    r.length += take;
  }
}

size_t Buffer::reserve(iovec* iov, size_t max_iov) {
  if (max_iov == 0) return 0;
  Rep& r = rep();
  size_t count = 0;
  r.reserved_from = r.slices.size();
  // Use the free tail of the last slice first, then fresh slices.
  if (!r.slices.empty() && r.slices.back().end < kSliceSize) {
    Slice& s = r.slices.back();
    r.reserved_from = r.slices.size() - 1;
    iov[count].iov_base = s.mem + s.end;
    iov[count].iov_len = kSliceSize - s.end;
    ++count;
  }
  while (count < max_iov) {
    r.slices.push_back(Slice{allocSlice(), 0, 0});
    iov[count].iov_base = r.slices.back().mem;
    iov[count].iov_len = kSliceSize;
    ++count;
  }
  return count;
}

uint8_t* Buffer::reserveContiguous(size_t n) {
  Rep& r = rep();
  if (r.slices.empty() || kSliceSize - r.slices.back().end < n) r.slices.push_back(Slice{allocSlice(), 0, 0});
  r.reserved_from = r.slices.size() - 1;
  Slice& s = r.slices.back();
  return s.mem + s.end;
}

void Buffer::commitContiguous(size_t n) {
  Rep& r = *rep_;
  Slice& s = r.slices.back();
  s.end += static_cast<uint32_t>(n);
  r.length += n;
  if (s.end == s.start) {  // a fresh slice left unused
    freeSlice(s.mem);
    r.slices.pop_back();
    releaseIfEmpty();
  }
}

void Buffer::commit(size_t n) {
  if (rep_ == nullptr) return;
  Rep& r = *rep_;
  // Walk the slices that reserve() exposed, in order; unused empty trailing slices go back.
  size_t i = r.reserved_from;
  for (; i < r.slices.size() && n > 0; ++i) {
    Slice& s = r.slices[i];
    size_t take = std::min<size_t>(n, kSliceSize - s.end);
    s.end += take;
    n -= take;
    r.length += take;
  }
  while (!r.slices.empty() && r.slices.back().end == r.slices.back().start) {
    freeSlice(r.slices.back().mem);
    r.slices.pop_back();
  }
  releaseIfEmpty();
}

void Buffer::drain(size_t n) {
  if (rep_ == nullptr) return;
  Rep& r = *rep_;
  n = std::min(n, r.length);
  r.length -= n;
  while (n > 0) {
    Slice& s = r.slices.front();
    size_t avail = s.end - s.start;
    if (n < avail) {
      s.start += n;
      return;
    }
    n -= avail;
    freeSlice(s.mem);
    r.slices.pop_front();
  }
  if (r.length == 0) clear();  // no byte left: the block goes back (with any empty slice)
}

void Buffer::move(Buffer& other) {
  if (other.rep_ == nullptr || &other == this) return;
  if (rep_ == nullptr || rep_->slices.empty()) {
    // Hand the block over: no slice is touched.
    if (rep_ != nullptr) giveRep(rep_);
    rep_ = other.rep_;
    other.rep_ = nullptr;
    return;
  }
  Rep& o = *other.rep_;
  Rep& r = *rep_;
  for (size_t i = 0; i < o.slices.size(); ++i) {
    const Slice s = o.slices[i];
    const uint32_t len = s.end - s.start;
    // A small slice (an HTTP/2 frame, a short chunk) is copied into the free tail of the last
    // slice, as add() would, and its slice goes back to the pool: a write buffer fed many small
    // pieces keeps few slices (fewer iovecs, no ring growth). Large slices move as they are.
    if (len <= kCoalesceMax) {
      Slice& t = r.slices.back();
      if (kSliceSize - t.end >= len) {
        std::memcpy(t.mem + t.end, s.mem + s.start, len);
        t.end += len;
        freeSlice(s.mem);
        continue;
      }
    }
    r.slices.push_back(s);
  }
  r.length += o.length;
  o.slices.clear();
  o.length = 0;
  other.releaseIfEmpty();
}

void Buffer::move(Buffer& other, size_t n) {
  if (other.rep_ == nullptr) return;
  n = std::min(n, other.rep_->length);
  if (n == other.rep_->length) {
    move(other);
    return;
  }
  Rep& o = *other.rep_;
  while (n > 0) {
    Slice& s = o.slices.front();
    size_t avail = s.end - s.start;
    if (n >= avail) {
      Rep& r = rep();
      r.slices.push_back(s);
      o.slices.pop_front();
      r.length += avail;
      o.length -= avail;
      n -= avail;
    } else {
      // Partial slice: copy the bytes (a slice has one owner).
      add(s.mem + s.start, n);
      s.start += n;
      o.length -= n;
      n = 0;
    }
  }
}

size_t Buffer::gather(iovec* iov, size_t max_iov) const {
  if (rep_ == nullptr) return 0;
  const SliceRing& slices = rep_->slices;
  size_t count = 0;
  for (size_t i = 0; i < slices.size(); ++i) {
    const Slice& s = slices[i];
    if (count == max_iov) break;
    if (s.end == s.start) continue;
    iov[count].iov_base = s.mem + s.start;
    iov[count].iov_len = s.end - s.start;
    ++count;
  }
  return count;
}

void Buffer::copyOut(size_t offset, size_t n, void* out) const {
  if (rep_ == nullptr) return;
  const SliceRing& slices = rep_->slices;
  auto* o = static_cast<uint8_t*>(out);
  for (size_t i = 0; i < slices.size(); ++i) {
    const Slice& s = slices[i];
    if (n == 0) break;
    size_t avail = s.end - s.start;
    if (offset >= avail) {
      offset -= avail;
      continue;
    }
    size_t take = std::min(n, avail - offset);
    std::memcpy(o, s.mem + s.start + offset, take);
    o += take;
    n -= take;
    offset = 0;
  }
}

std::string Buffer::toString() const {
  std::string out(length(), '\0');
  copyOut(0, out.size(), out.data());
  return out;
}

void Buffer::clear() {
  if (rep_ == nullptr) return;
  SliceRing& slices = rep_->slices;
  for (size_t i = 0; i < slices.size(); ++i) freeSlice(slices[i].mem);
  slices.clear();
  giveRep(rep_);
  rep_ = nullptr;
}

}  // namespace ferry::core
