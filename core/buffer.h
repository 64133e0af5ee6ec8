// Buffer: a chain of fixed-size slices. Reserve/commit for reads, gather for writev,
// move between buffers without copying bytes. Concrete and non-virtual.
// An empty Buffer is one null pointer and holds no heap memory: the slice ring and the
// counts live in a small block taken from a per-thread pool when the first byte (or
// reservation) arrives and given back when the buffer is empty again, so the many buffers
// of an idle connection cost 8 bytes each. Moving a whole buffer into an empty one hands
// the block over.
// Thread affinity: a Buffer belongs to one worker; slices and blocks are recycled through
// per-thread free lists, so one freed on another thread just goes to that thread's list.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

struct iovec;

namespace ferry::core {

class Buffer {
 public:
  static constexpr uint32_t kSliceSize = 16384;
  // move() copies a slice of at most this many bytes into the tail of the last slice (when it
  // fits) instead of appending the slice.
  static constexpr uint32_t kCoalesceMax = 1024;

  Buffer() = default;
  ~Buffer() {
    if (rep_ != nullptr) clear();
  }
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  size_t length() const { return rep_ != nullptr ? rep_->length : 0; }
  bool empty() const { return rep_ == nullptr || rep_->length == 0; }

  // Appends a copy of the bytes.
  void add(const void* data, size_t n);
  void add(std::string_view s) { add(s.data(), s.size()); }

  // Makes room for up to `max_iov` slices of writable space at the tail (at least one
  // full or partly free slice) and fills `iov`; returns the number of entries. Bytes
  // written there become part of the buffer only through commit().
  size_t reserve(iovec* iov, size_t max_iov);
  // Marks `n` bytes of the last reserve() as written (in order across its iovecs).
  void commit(size_t n);
  // Makes room for `n` contiguous bytes (at most kSliceSize) at the tail: the free tail of the
  // last slice when it is large enough, else a fresh slice. The bytes written there (at most
  // n) become part of the buffer only through commitContiguous() (or commit()), which must
  // come before anything else changes this buffer.
  uint8_t* reserveContiguous(size_t n);
  // commit() for the one slice reserveContiguous() exposed.
  void commitContiguous(size_t n);

  // Removes `n` bytes (at most length()) from the front.
  void drain(size_t n);
  // Moves all of `other` to the end of this buffer, leaving `other` empty. Slices move without
  // copying their bytes, except a small one (kCoalesceMax) that fits in this buffer's tail.
  void move(Buffer& other);
  // Moves the first `n` bytes of `other` (at most its length) to the end of this buffer.
  void move(Buffer& other, size_t n);

  // Fills up to `max_iov` iovecs with the readable bytes from the front; returns the count.
  size_t gather(iovec* iov, size_t max_iov) const;

  // Copies `n` bytes starting at `offset` into `out` (caller checks bounds).
  void copyOut(size_t offset, size_t n, void* out) const;
  std::string toString() const;
  void clear();

  // Bytes of slice memory held by this thread's buffers and free list (diagnostics).
  static size_t threadSliceBytes();
  // Blocks (ring and counts) held by this thread's non-empty buffers (diagnostics, tests).
  static size_t threadLiveBlocks();

 private:
  friend struct BufferRepPool;
  struct Slice {
    uint8_t* mem;
    uint32_t start;  // first readable byte
    uint32_t end;    // one past the last readable byte
  };
  static uint8_t* allocSlice();
  static void freeSlice(uint8_t* mem);

  // A ring of slices that lives inline up to kInline entries (most buffers hold one or two
  // slices), so creating, moving and destroying a Buffer allocates nothing.
  class SliceRing {
   public:
    SliceRing() = default;
    ~SliceRing() {
      if (data_ != inline_) delete[] data_;
    }
    SliceRing(const SliceRing&) = delete;
    SliceRing& operator=(const SliceRing&) = delete;
    bool empty() const { return size_ == 0; }
    size_t size() const { return size_; }
    Slice& operator[](size_t i) { return data_[(head_ + i) & (cap_ - 1)]; }
    const Slice& operator[](size_t i) const { return data_[(head_ + i) & (cap_ - 1)]; }
    Slice& front() { return data_[head_]; }
    Slice& back() { return (*this)[size_ - 1]; }
    void push_back(const Slice& s) {
      if (size_ == cap_) grow();
      (*this)[size_++] = s;
    }
    void pop_back() { --size_; }
    void pop_front() {
      head_ = (head_ + 1) & (cap_ - 1);
      if (--size_ == 0) head_ = 0;
    }
    void clear() { size_ = head_ = 0; }
    // Back to the inline storage (a pooled block keeps no grown array).
    void shrink() {
      if (data_ != inline_) {
        delete[] data_;
        data_ = inline_;
        cap_ = kInline;
      }
      size_ = head_ = 0;
    }

   private:
    static constexpr uint32_t kInline = 4;  // power of two
    void grow();
    Slice inline_[kInline];
    Slice* data_ = inline_;
    uint32_t head_ = 0, size_ = 0, cap_ = kInline;
  };

  // The state of a non-empty buffer, from the per-thread pool.
  struct Rep {
    SliceRing slices;
    size_t length = 0;
    size_t reserved_from = 0;  // index of the first slice exposed by reserve()
    Rep* next_free = nullptr;  // on the pool's free list
  };
  static Rep* takeRep();
  static void giveRep(Rep* rep);
  Rep& rep() {
    if (rep_ == nullptr) rep_ = takeRep();
    return *rep_;
  }
  // Gives the block back once no slice is left.
  void releaseIfEmpty() {
    if (rep_ != nullptr && rep_->slices.empty()) {
      giveRep(rep_);
      rep_ = nullptr;
    }
  }

  Rep* rep_ = nullptr;
};

static_assert(sizeof(Buffer) == sizeof(void*), "an empty Buffer is one pointer");

}  // namespace ferry::core
