#include "core/buffer.h"

#include <sys/uio.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace ferry::core {
namespace {

// Per-thread free list: slices are reused instead of going back to malloc on every read.
struct SlicePool {
  std::vector<uint8_t*> free;
  size_t live_bytes = 0;
  ~SlicePool() {
    for (uint8_t* m : free) delete[] m;
  }
};
constexpr size_t kMaxFreeSlices = 64;
thread_local SlicePool tl_pool;

}  // namespace

uint8_t* Buffer::allocSlice() {
  tl_pool.live_bytes += kSliceSize;
  if (!tl_pool.free.empty()) {
    uint8_t* m = tl_pool.free.back();
    tl_pool.free.pop_back();
    return m;
  }
  return new uint8_t[kSliceSize];
}

void Buffer::freeSlice(uint8_t* mem) {
  tl_pool.live_bytes -= kSliceSize;
  if (tl_pool.free.size() < kMaxFreeSlices) {
    tl_pool.free.push_back(mem);
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

void Buffer::SliceRing::take(SliceRing& other) noexcept {
  if (data_ != inline_) delete[] data_;
  if (other.data_ != other.inline_) {
    data_ = other.data_;
    cap_ = other.cap_;
    head_ = other.head_;
    size_ = other.size_;
    other.data_ = other.inline_;
    other.cap_ = kInline;
  } else {
    data_ = inline_;
    cap_ = kInline;
    for (uint32_t i = 0; i < other.size_; ++i) inline_[i] = other[i];
    head_ = 0;
    size_ = other.size_;
  }
  other.head_ = other.size_ = 0;
}

Buffer::Buffer(Buffer&& other) noexcept : length_(other.length_) {
  slices_.take(other.slices_);
  other.length_ = 0;
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    clear();
    slices_.take(other.slices_);
    length_ = other.length_;
    other.length_ = 0;
  }
  return *this;
}

void Buffer::add(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    if (slices_.empty() || slices_.back().end == kSliceSize) {
      slices_.push_back(Slice{allocSlice(), 0, 0});
    }
    Slice& s = slices_.back();
    size_t take = std::min<size_t>(n, kSliceSize - s.end);
    std::memcpy(s.mem + s.end, p, take);
    s.end += take;
    p += take;
    n -= take;
    length_ += take;
  }
}

size_t Buffer::reserve(iovec* iov, size_t max_iov) {
  size_t count = 0;
  reserved_from_ = slices_.size();
  // Use the free tail of the last slice first, then fresh slices.
  if (!slices_.empty() && slices_.back().end < kSliceSize && max_iov > 0) {
    Slice& s = slices_.back();
    reserved_from_ = slices_.size() - 1;
    iov[count].iov_base = s.mem + s.end;
    iov[count].iov_len = kSliceSize - s.end;
    ++count;
  }
  while (count < max_iov) {
    slices_.push_back(Slice{allocSlice(), 0, 0});
    iov[count].iov_base = slices_.back().mem;
    iov[count].iov_len = kSliceSize;
    ++count;
  }
  return count;
}

void Buffer::commit(size_t n) {
  // Walk the slices that reserve() exposed, in order; unused empty trailing slices go back.
  size_t i = reserved_from_;
  for (; i < slices_.size() && n > 0; ++i) {
    Slice& s = slices_[i];
    size_t take = std::min<size_t>(n, kSliceSize - s.end);
    s.end += take;
    n -= take;
    length_ += take;
  }
  while (!slices_.empty() && slices_.back().end == slices_.back().start) {
    freeSlice(slices_.back().mem);
    slices_.pop_back();
  }
}

void Buffer::drain(size_t n) {
  n = std::min(n, length_);
  length_ -= n;
  while (n > 0) {
    Slice& s = slices_.front();
    size_t avail = s.end - s.start;
    if (n < avail) {
      s.start += n;
      return;
    }
    n -= avail;
    freeSlice(s.mem);
    slices_.pop_front();
  }
  // Release a fully-drained front slice only when it is empty (handled above).
}

void Buffer::move(Buffer& other) {
  if (other.slices_.empty()) return;
  if (slices_.empty()) {
    slices_.take(other.slices_);
    length_ = other.length_;
    other.length_ = 0;
    return;
  }
  for (size_t i = 0; i < other.slices_.size(); ++i) slices_.push_back(other.slices_[i]);
  length_ += other.length_;
  other.slices_.clear();
  other.length_ = 0;
}

void Buffer::move(Buffer& other, size_t n) {
  n = std::min(n, other.length_);
  if (n == other.length_) {
    move(other);
    return;
  }
  while (n > 0) {
    Slice& s = other.slices_.front();
    size_t avail = s.end - s.start;
    if (n >= avail) {
      slices_.push_back(s);
      other.slices_.pop_front();
      length_ += avail;
      other.length_ -= avail;
      n -= avail;
    } else {
      // Partial slice: copy the bytes (a slice has one owner).
      add(s.mem + s.start, n);
      s.start += n;
      other.length_ -= n;
      n = 0;
    }
  }
}

size_t Buffer::gather(iovec* iov, size_t max_iov) const {
  size_t count = 0;
  for (size_t i = 0; i < slices_.size(); ++i) {
    const Slice& s = slices_[i];
    if (count == max_iov) break;
    if (s.end == s.start) continue;
    iov[count].iov_base = s.mem + s.start;
    iov[count].iov_len = s.end - s.start;
    ++count;
  }
  return count;
}

void Buffer::copyOut(size_t offset, size_t n, void* out) const {
  auto* o = static_cast<uint8_t*>(out);
  for (size_t i = 0; i < slices_.size(); ++i) {
    const Slice& s = slices_[i];
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
  std::string out(length_, '\0');
  copyOut(0, length_, out.data());
  return out;
}

void Buffer::clear() {
  for (size_t i = 0; i < slices_.size(); ++i) freeSlice(slices_[i].mem);
  slices_.clear();
  length_ = 0;
}

}  // namespace ferry::core
