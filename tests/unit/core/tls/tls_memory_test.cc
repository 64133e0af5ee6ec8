// The per-thread pool for OpenSSL's record buffers (core/tls/memory.h): blocks of the
// record size class come back to the thread that freed them, nothing else is kept, the lists
// are bounded, and realloc and the zero-size cases behave as OpenSSL's own functions do.
#include <malloc.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <thread>
#include <vector>

#include "core/tls/memory.h"

using namespace ferry::core::tls::detail;

namespace {
// Empties the calling thread's list (tests start from a known state).
void drainPool() {
  std::vector<void*> taken;
  while (pooledBlocks() > 0) taken.push_back(poolMalloc(kPooledBlock, __FILE__, __LINE__));
  for (void* p : taken) std::free(p);
}
}  // namespace

TEST_CASE("tls memory: a freed record buffer is handed out again on the same thread", "[tls][memory]") {
  drainPool();
  void* a = poolMalloc(16709, __FILE__, __LINE__);  // a read buffer's size in OpenSSL 3.0
  REQUIRE(a != nullptr);
  CHECK(malloc_usable_size(a) >= kPooledBlock);  // sized for every request of the class
  std::memset(a, 0x5a, kPooledBlock);
  poolFree(a, __FILE__, __LINE__);
  CHECK(pooledBlocks() == 1);
  void* b = poolMalloc(16469, __FILE__, __LINE__);  // another size of the same class
  CHECK(b == a);
  CHECK(pooledBlocks() == 0);
  std::memset(b, 0, kPooledBlock);  // the whole block is usable again (ASan: unpoisoned)
  poolFree(b, __FILE__, __LINE__);
  drainPool();
}

TEST_CASE("tls memory: other sizes go straight to malloc and free", "[tls][memory]") {
  drainPool();
  for (size_t n : {size_t{1}, size_t{64}, size_t{4096}, kPooledMin, size_t{64 * 1024}}) {
    void* p = poolMalloc(n, __FILE__, __LINE__);
    REQUIRE(p != nullptr);
    std::memset(p, 1, n);
    poolFree(p, __FILE__, __LINE__);
    CHECK(pooledBlocks() == 0);
  }
  CHECK(poolMalloc(0, __FILE__, __LINE__) == nullptr);  // as CRYPTO_malloc
  poolFree(nullptr, __FILE__, __LINE__);
  // A block from plain malloc that happens to be the class's size may join the list: it is
  // an ordinary malloc block like the pool's own.
  void* m = std::malloc(kPooledBlock);
  poolFree(m, __FILE__, __LINE__);
  CHECK(pooledBlocks() == 1);
  // A request above the class does not take it: the block could be too small.
  void* big = poolMalloc(kPooledBlock + 1, __FILE__, __LINE__);
  CHECK(big != m);
  CHECK(pooledBlocks() == 1);
  std::free(big);
  drainPool();
}

TEST_CASE("tls memory: a thread keeps at most kMaxPooled blocks", "[tls][memory]") {
  drainPool();
  std::vector<void*> blocks;
  for (size_t i = 0; i < kMaxPooled + 5; ++i) blocks.push_back(poolMalloc(17000, __FILE__, __LINE__));
  for (void* p : blocks) poolFree(p, __FILE__, __LINE__);
  CHECK(pooledBlocks() == kMaxPooled);
  drainPool();
}

TEST_CASE("tls memory: realloc keeps the bytes and handles OpenSSL's edge cases", "[tls][memory]") {
  drainPool();
  void* p = poolRealloc(nullptr, 17000, __FILE__, __LINE__);  // null: a malloc
  REQUIRE(p != nullptr);
  std::memset(p, 0x33, 17000);
  void* q = poolRealloc(p, 40000, __FILE__, __LINE__);  // grows out of the class
  REQUIRE(q != nullptr);
  CHECK(static_cast<unsigned char*>(q)[0] == 0x33);
  CHECK(static_cast<unsigned char*>(q)[16999] == 0x33);
  CHECK(poolRealloc(q, 0, __FILE__, __LINE__) == nullptr);  // zero: a free
  CHECK(pooledBlocks() == 0);  // 40 kB is not the class's size
  drainPool();
}

TEST_CASE("tls memory: blocks freed on another thread stay with that thread", "[tls][memory]") {
  drainPool();
  void* a = poolMalloc(17000, __FILE__, __LINE__);
  size_t there = 0, there_after_reuse = 0;
  std::thread t([&] {
    poolFree(a, __FILE__, __LINE__);
    there = pooledBlocks();
    void* b = poolMalloc(17000, __FILE__, __LINE__);
    there_after_reuse = pooledBlocks();
    poolFree(b, __FILE__, __LINE__);  // left on the list: freed when the thread ends
  });
  t.join();
  CHECK(there == 1);
  CHECK(there_after_reuse == 0);
  CHECK(pooledBlocks() == 0);  // this thread's list did not get it
}
