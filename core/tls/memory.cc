// Per-thread recycling of OpenSSL's record buffers (core/tls/memory.h).
#include "core/tls/memory.h"

#include <malloc.h>
#include <openssl/crypto.h>

#include <cstdlib>

#include "core/asan.h"

namespace ferry::core::tls {
namespace detail {
namespace {

struct FreeNode {
  FreeNode* next;
};

// A block whose usable size is at least kPooledBlock serves any pooled request; one far
// larger is not kept (it would hold memory a pooled request cannot use).
bool poolable(void* p, size_t* usable) {
  *usable = malloc_usable_size(p);
  return *usable >= kPooledBlock && *usable < kPooledBlock + 1024;
}

// Under ASan a pooled block is poisoned whole; elsewhere nothing is done (and the size is
// not even asked for: malloc_usable_size is a call).
void unpoisonBlock(void* b) {
#ifdef FERRY_ASAN
  asanUnpoison(b, malloc_usable_size(b));
#else
  (void)b;
#endif
}

struct Pool {
  FreeNode* head = nullptr;
  size_t count = 0;
  ~Pool() {
    gone = true;
    while (head != nullptr) {
      FreeNode* n = head;
      unpoisonBlock(n);
      head = n->next;
      std::free(n);
    }
    count = 0;
  }
  // Set when this thread's list is destroyed (trivially destructible: readable after).
  static inline thread_local bool gone = false;
};
thread_local Pool tl_pool;

}  // namespace

void* poolMalloc(size_t n, const char*, int) {
  if (n == 0) return nullptr;  // as OpenSSL's own CRYPTO_malloc
  if (n <= kPooledMin || n > kPooledBlock || Pool::gone) return std::malloc(n);
  if (FreeNode* b = tl_pool.head; b != nullptr) {
    unpoisonBlock(b);
    tl_pool.head = b->next;
    --tl_pool.count;
    return b;
  }
  return std::malloc(kPooledBlock);
}

void poolFree(void* p, const char*, int) {
  if (p == nullptr) return;
  size_t usable = 0;
  if (Pool::gone || tl_pool.count >= kMaxPooled || !poolable(p, &usable)) {
    std::free(p);
    return;
  }
  auto* b = static_cast<FreeNode*>(p);
  b->next = tl_pool.head;
  tl_pool.head = b;
  ++tl_pool.count;
  asanPoison(p, usable);
}

void* poolRealloc(void* p, size_t n, const char* file, int line) {
  // OpenSSL's CRYPTO_realloc hands these two cases to the installed function as they are.
  if (p == nullptr) return poolMalloc(n, file, line);
  if (n == 0) {
    poolFree(p, file, line);
    return nullptr;
  }
  return std::realloc(p, n);  // every block is an ordinary malloc block
}

size_t pooledBlocks() { return Pool::gone ? 0 : tl_pool.count; }

}  // namespace detail

bool installRecordBufferPool() {
  return CRYPTO_set_mem_functions(detail::poolMalloc, detail::poolRealloc, detail::poolFree) == 1;
}

}  // namespace ferry::core::tls
