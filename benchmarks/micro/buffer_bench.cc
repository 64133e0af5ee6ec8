// Buffer micro benchmarks: the operations of the read -> filter -> write path. Slices come from
// the per-thread free list (core/buffer.cc), which is warm here as it is in a busy worker.
#include <sys/uio.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "benchmarks/micro/micro.h"
#include "core/buffer.h"

using ferry::core::Buffer;

namespace {

constexpr size_t kReadIovecs = 4;    // as core/net/connection.cc
constexpr size_t kWriteIovecs = 64;  // as core/net/connection.cc
constexpr size_t kPacket = 1460;     // one TCP segment's payload

// What readv() would do: copies `n` bytes into the reserved iovecs, in order.
size_t fill(const iovec* iov, size_t count, const char* data, size_t n) {
  size_t done = 0;
  for (size_t k = 0; k < count && done < n; ++k) {
    const size_t take = std::min(n - done, iov[k].iov_len);
    std::memcpy(iov[k].iov_base, data + done, take);
    done += take;
  }
  return done;
}

// Appends kRefill bytes of slice space without writing it (contents are whatever the slices
// held before): a cheap way to give a benchmark bytes to consume.
constexpr size_t kRefill = 4 * Buffer::kSliceSize;
void refill(Buffer& b) {
  iovec iov[kReadIovecs];
  const size_t cnt = b.reserve(iov, kReadIovecs);
  size_t n = 0;
  for (size_t k = 0; k < cnt; ++k) n += iov[k].iov_len;
  b.commit(std::min(n, kRefill));
}

}  // namespace

TEST_CASE("buffer", "[micro][buffer]") {
  const std::string packet(kPacket, 'p');
  const std::string big(4 * Buffer::kSliceSize + 1000, 'b');  // 4 full slices + a partial one

  // Small header-sized strings, as an encoder appends them.
  const std::vector<std::string> pieces = [] {
    std::vector<std::string> v;
    for (int k = 0; k < 16; ++k) v.push_back("x-header-" + std::to_string(k) + ": value-abcd\r\n");
    return v;
  }();
  Buffer small;
  BENCHMARK("add 16 small strings (~24 B) + drain") {
    for (const auto& s : pieces) small.add(s);
    const size_t n = small.length();
    small.drain(n);
    return n;
  };

  Buffer a, b;
  a.add(big);
  BENCHMARK("move(all): 5-slice buffer there and back") {
    b.move(a);
    a.move(b);
    return a.length();
  };
  REQUIRE(a.length() == big.size());

  // Partial moves copy (a slice has one owner). The source is topped up with 64 KiB of
  // uninitialised slice space (reserve + commit, no byte copies) once per ~655 runs and the
  // destination emptied once per ~655 runs, so the bookkeeping is amortised and memory bounded
  // however many runs Catch2 asks for.
  Buffer src, dst;
  BENCHMARK("move(other, 100 B): partial slice, copies") {
    if (src.length() < 100) refill(src);
    dst.move(src, 100);
    if (dst.length() >= kRefill) dst.clear();
    return dst.length();
  };

  BENCHMARK("gather: 65 KiB (5 slices) into iovecs") {
    iovec iov[kWriteIovecs];
    return a.gather(iov, kWriteIovecs);
  };

  Buffer dr;
  BENCHMARK("drain 64 B from the front") {
    if (dr.empty()) refill(dr);
    dr.drain(64);
    return dr.length();
  };

  Buffer rd;
  // An empty read buffer (the consumer took everything): reserve() hands out 4 fresh slices,
  // commit() keeps the one written and returns the rest.
  BENCHMARK("read: reserve(4) + write 1460 B + commit + drain") {
    iovec iov[kReadIovecs];
    const size_t cnt = rd.reserve(iov, kReadIovecs);
    rd.commit(fill(iov, cnt, packet.data(), kPacket));
    const size_t n = rd.length();
    rd.drain(n);
    return n;
  };

  // The read that ends an edge-triggered loop with EAGAIN.
  BENCHMARK("read: reserve(4) + commit(0) (EAGAIN)") {
    iovec iov[kReadIovecs];
    const size_t cnt = rd.reserve(iov, kReadIovecs);
    rd.commit(0);
    return cnt;
  };
  REQUIRE(rd.empty());

  // tcp_proxy's hot loop: read a segment, hand it to the other side's write buffer, writev it.
  Buffer wr;
  BENCHMARK("proxy cycle: read 1460 B, move to write buffer, gather, drain") {
    iovec iov[kWriteIovecs];
    size_t cnt = rd.reserve(iov, kReadIovecs);
    rd.commit(fill(iov, cnt, packet.data(), kPacket));
    cnt = rd.reserve(iov, kReadIovecs);  // the next read: EAGAIN
    rd.commit(0);
    wr.move(rd);
    cnt = wr.gather(iov, kWriteIovecs);
    const size_t n = wr.length();
    wr.drain(n);  // writev() took it all
    return n + cnt;
  };
  CHECK(rd.empty());
  CHECK(wr.empty());
}
