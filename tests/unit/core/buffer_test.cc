#include "core/buffer.h"

#include <sys/uio.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <string>

#include "core/asan.h"
#include "core/pooled.h"

using ferry::core::Buffer;

namespace {
std::string pattern(size_t n, uint32_t seed = 1) {
  std::string s(n, '\0');
  uint32_t x = seed;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}
}  // namespace

TEST_CASE("Buffer add, drain and toString across slices", "[buffer]") {
  Buffer b;
  std::string data = pattern(Buffer::kSliceSize * 3 + 123);
  b.add(data);
  REQUIRE(b.length() == data.size());
  REQUIRE(b.toString() == data);
  b.drain(Buffer::kSliceSize + 7);
  REQUIRE(b.toString() == data.substr(Buffer::kSliceSize + 7));
  b.drain(b.length() + 100);  // over-drain clamps
  REQUIRE(b.empty());
}

TEST_CASE("Buffer reserve/commit writes in place and releases unused slices", "[buffer]") {
  Buffer b;
  b.add("head");
  iovec iov[3];
  size_t n = b.reserve(iov, 3);
  REQUIRE(n == 3);
  REQUIRE(iov[0].iov_len == Buffer::kSliceSize - 4);  // tail of the existing slice first
  std::string payload = pattern(Buffer::kSliceSize + 10, 7);
  // Write the payload across the reserved iovecs as readv would.
  size_t off = 0;
  for (size_t i = 0; i < n && off < payload.size(); ++i) {
    size_t take = std::min(payload.size() - off, iov[i].iov_len);
    std::memcpy(iov[i].iov_base, payload.data() + off, take);
    off += take;
  }
  b.commit(payload.size());
  REQUIRE(b.toString() == "head" + payload);
  iovec g[8];
  REQUIRE(b.gather(g, 8) == 2);  // the third reserved slice was released

  // A zero commit releases everything reserved.
  Buffer e;
  e.reserve(iov, 2);
  e.commit(0);
  REQUIRE(e.empty());
  REQUIRE(e.gather(g, 8) == 0);
}

TEST_CASE("Buffer reserveContiguous uses the tail when it fits, else a fresh slice", "[buffer]") {
  Buffer b;
  b.add("head");
  iovec g[4];
  // Fits in the tail of the one slice.
  uint8_t* p = b.reserveContiguous(100);
  std::memcpy(p, "abc", 3);
  b.commit(3);
  REQUIRE(b.toString() == "headabc");
  REQUIRE(b.gather(g, 4) == 1);
  // Does not fit in what is left of the slice: a fresh one, contiguous for all n bytes.
  const std::string fill = pattern(Buffer::kSliceSize - 7 - 10, 3);
  b.add(fill);
  REQUIRE(b.gather(g, 4) == 1);
  const std::string big = pattern(Buffer::kSliceSize, 5);
  p = b.reserveContiguous(big.size());
  std::memcpy(p, big.data(), big.size());
  b.commit(big.size());
  REQUIRE(b.toString() == "headabc" + fill + big);
  REQUIRE(b.gather(g, 4) == 2);
  // A commit of nothing gives the fresh slice back; the buffer is unchanged. Both commits.
  for (bool contiguous : {false, true}) {
    b.reserveContiguous(64);
    contiguous ? b.commitContiguous(0) : b.commit(0);
    REQUIRE(b.gather(g, 4) == 2);
    REQUIRE(b.toString() == "headabc" + fill + big);
    // On an empty buffer, and then nothing committed: empty again, no block held.
    Buffer e;
    const size_t blocks = Buffer::threadLiveBlocks();
    e.reserveContiguous(10);
    contiguous ? e.commitContiguous(0) : e.commit(0);
    REQUIRE(e.empty());
    REQUIRE(e.gather(g, 4) == 0);
    REQUIRE(Buffer::threadLiveBlocks() == blocks);
  }
  // commitContiguous() of what was written, into the tail and into a fresh slice.
  Buffer c;
  c.add("x");
  std::memcpy(c.reserveContiguous(3), "yz!", 3);
  c.commitContiguous(2);
  REQUIRE(c.toString() == "xyz");
  const std::string whole = pattern(Buffer::kSliceSize, 9);
  std::memcpy(c.reserveContiguous(whole.size()), whole.data(), whole.size());
  c.commitContiguous(whole.size());
  REQUIRE(c.toString() == "xyz" + whole);
  REQUIRE(c.length() == 3 + whole.size());
}

TEST_CASE("Buffer reserve after a move of partial slices commits at the tail", "[buffer]") {
  Buffer a, b;
  a.add("abc");
  const std::string big = pattern(Buffer::kCoalesceMax + 1, 4);  // too big to be copied
  b.add(big);
  a.move(b);  // a now has two partly filled slices
  iovec probe[4];
  REQUIRE(a.gather(probe, 4) == 2);
  iovec iov[2];
  size_t n = a.reserve(iov, 2);
  REQUIRE(n == 2);
  std::memcpy(iov[0].iov_base, "12", 2);
  a.commit(2);
  REQUIRE(a.toString() == "abc" + big + "12");
}

// A write buffer fed many small buffers (HTTP/2 frames) keeps one slice, not one per piece:
// each small slice is copied into the tail and goes back to the pool.
TEST_CASE("Buffer move copies small slices into the tail; large ones move whole", "[buffer]") {
  const size_t before = Buffer::threadSliceBytes();
  Buffer out;
  out.add("head:");
  std::string expect = "head:";
  for (int i = 0; i < 20; ++i) {
    Buffer piece;
    const std::string p = pattern(100 + i, static_cast<uint32_t>(i));
    piece.add(p);
    expect += p;
    out.move(piece);
    REQUIRE(piece.empty());
  }
  iovec iov[8];
  CHECK(out.gather(iov, 8) == 1);
  CHECK(Buffer::threadSliceBytes() == before + Buffer::kSliceSize);  // the pieces' slices are back
  // A slice above kCoalesceMax moves as it is (no copy): its bytes stay where they were.
  Buffer large;
  large.add(pattern(Buffer::kCoalesceMax + 1, 99));
  iovec at[1];
  REQUIRE(large.gather(at, 1) == 1);
  expect += pattern(Buffer::kCoalesceMax + 1, 99);
  out.move(large);
  REQUIRE(out.gather(iov, 8) == 2);
  CHECK(iov[1].iov_base == at[0].iov_base);
  // A small slice that does not fit in a full tail is appended as well.
  Buffer full, small;
  full.add(pattern(Buffer::kSliceSize, 7));
  small.add("tail");
  full.move(small);
  CHECK(full.gather(iov, 8) == 2);
  CHECK(full.toString() == pattern(Buffer::kSliceSize, 7) + "tail");
  CHECK(out.toString() == expect);
}

TEST_CASE("Buffer move transfers without loss, full and partial", "[buffer]") {
  std::string data = pattern(Buffer::kSliceSize * 2 + 500, 3);
  Buffer src, dst;
  src.add(data);
  dst.add("prefix-");
  dst.move(src, Buffer::kSliceSize + 10);  // one whole slice + part of the next
  REQUIRE(dst.toString() == "prefix-" + data.substr(0, Buffer::kSliceSize + 10));
  REQUIRE(src.toString() == data.substr(Buffer::kSliceSize + 10));
  dst.move(src);
  REQUIRE(src.empty());
  REQUIRE(dst.toString() == "prefix-" + data);
}

TEST_CASE("Buffer gather covers every byte in order and respects max_iov", "[buffer]") {
  Buffer b;
  std::string data = pattern(Buffer::kSliceSize * 4, 5);
  b.add(data);
  iovec iov[2];
  REQUIRE(b.gather(iov, 2) == 2);
  REQUIRE(iov[0].iov_len + iov[1].iov_len == 2 * Buffer::kSliceSize);
  iovec all[16];
  size_t n = b.gather(all, 16);
  std::string joined;
  for (size_t i = 0; i < n; ++i) joined.append(static_cast<char*>(all[i].iov_base), all[i].iov_len);
  REQUIRE(joined == data);
}

TEST_CASE("Buffer copyOut at offsets spanning slices", "[buffer]") {
  Buffer b;
  std::string data = pattern(Buffer::kSliceSize * 2 + 50, 9);
  b.add(data);
  std::string out(100, '\0');
  b.copyOut(Buffer::kSliceSize - 50, 100, out.data());
  REQUIRE(out == data.substr(Buffer::kSliceSize - 50, 100));
}

TEST_CASE("Buffer slices are recycled and accounted", "[buffer]") {
  size_t before = Buffer::threadSliceBytes();
  {
    Buffer b;
    b.add(pattern(Buffer::kSliceSize * 3));
    REQUIRE(Buffer::threadSliceBytes() == before + 3 * Buffer::kSliceSize);
    Buffer moved(std::move(b));
    REQUIRE(b.empty());
    REQUIRE(moved.length() == Buffer::kSliceSize * 3);
  }
  REQUIRE(Buffer::threadSliceBytes() == before);
}

// The per-thread slice free list links free slices through their own first bytes: a slice
// given back is the next one handed out, and what is written into a reused slice is what
// reads back, past the list's bound (256) too.
TEST_CASE("Buffer: a freed slice is the next one reused, and reused slices hold what is written", "[buffer]") {
  const size_t before = Buffer::threadSliceBytes();
  const void* first = nullptr;
  {
    Buffer a;
    a.add(pattern(100, 3));
    iovec iov[1];
    REQUIRE(a.gather(iov, 1) == 1);
    first = iov[0].iov_base;
  }
#ifdef FERRY_ASAN
  // On the free list the slice is poisoned: a use after it was given back is reported.
  CHECK(__asan_address_is_poisoned(static_cast<const char*>(first) + 100));
#endif
  {
    Buffer b;
    b.add(pattern(100, 4));
    iovec iov[1];
    REQUIRE(b.gather(iov, 1) == 1);
    CHECK(iov[0].iov_base == first);
    CHECK(b.toString() == pattern(100, 4));
  }
  const size_t n = 300 * Buffer::kSliceSize;  // more slices than the free list keeps
  for (uint32_t round = 0; round < 3; ++round) {
    Buffer big;
    const std::string data = pattern(n, 10 + round);
    big.add(data);
    REQUIRE(Buffer::threadSliceBytes() == before + n);
    CHECK(big.toString() == data);
  }
  CHECK(Buffer::threadSliceBytes() == before);
}

// An idle connection has several empty buffers: each must hold no heap memory, and take
// its block only while bytes (or a reservation) are in it.
TEST_CASE("Buffer: an empty buffer holds no block; bytes take one, emptying gives it back", "[buffer][idle]") {
  const size_t base = Buffer::threadLiveBlocks();
  Buffer a, b;
  REQUIRE(Buffer::threadLiveBlocks() == base);
  a.add("hello");
  REQUIRE(Buffer::threadLiveBlocks() == base + 1);
  b.move(a);  // handed over: still one block
  REQUIRE(Buffer::threadLiveBlocks() == base + 1);
  REQUIRE(a.empty());
  REQUIRE(b.toString() == "hello");
  b.drain(5);
  REQUIRE(b.empty());
  REQUIRE(Buffer::threadLiveBlocks() == base);
  // A reservation that commits nothing leaves nothing behind.
  iovec iov[2];
  REQUIRE(a.reserve(iov, 2) == 2);
  REQUIRE(Buffer::threadLiveBlocks() == base + 1);
  a.commit(0);
  REQUIRE(Buffer::threadLiveBlocks() == base);
  // A partial move leaves both with bytes; moving the rest empties the source.
  a.add(pattern(Buffer::kSliceSize + 10));
  b.move(a, 100);
  REQUIRE(Buffer::threadLiveBlocks() == base + 2);
  b.move(a);
  REQUIRE(Buffer::threadLiveBlocks() == base + 1);
  REQUIRE(b.length() == Buffer::kSliceSize + 10);
  b.clear();
  REQUIRE(Buffer::threadLiveBlocks() == base);
}

// core/pooled.h, the other per-thread free list: memory is reused, state never is.
namespace {
struct PooledThing : ferry::core::PerThreadPooled<PooledThing> {
  virtual ~PooledThing() = default;
  int counter = 7;
  std::string text;
};
struct BiggerThing : PooledThing {
  char more[64] = {};
};
}  // namespace

TEST_CASE("PerThreadPooled recycles a block, and every object in it starts fresh", "[pooled]") {
  auto* a = new PooledThing;
  a->counter = 1;
  a->text = "a string long enough to live on the heap";
  void* block = a;
  delete a;
  auto* b = new PooledThing;
  CHECK(static_cast<void*>(b) == block);  // the same memory...
  CHECK(b->counter == 7);                 // ... and a newly constructed object in it
  CHECK(b->text.empty());
  // Through a base pointer and unique_ptr, as streams and filters are owned.
  std::unique_ptr<PooledThing> owned(b);
  owned.reset();
  std::unique_ptr<PooledThing> c(new PooledThing);
  CHECK(static_cast<void*>(c.get()) == block);
  // A derived class of another size does not take the pooled blocks (nor give its own).
  std::unique_ptr<PooledThing> big(new BiggerThing);
  CHECK(static_cast<void*>(big.get()) != block);
  big.reset();
  std::unique_ptr<PooledThing> d(new PooledThing);
  CHECK(static_cast<void*>(d.get()) != block);  // block is still c's
}
