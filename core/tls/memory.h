// OpenSSL's record buffers, recycled per thread.
//
// Ferry sets SSL_MODE_RELEASE_BUFFERS so that an idle TLS connection does not hold OpenSSL's
// two record buffers (about 16.5 kB each). The price is one malloc and one free of each per
// request: blocks that size miss glibc's per-thread cache and cost about 2,000 instructions
// a request together. installRecordBufferPool() routes OpenSSL's allocations through
// functions that keep a few blocks of that size class per thread; every other size goes to
// malloc, realloc and free as before.
//
// Every block, pooled or not, is an ordinary malloc block (no header of our own), so memory
// allocated by OpenSSL and released by anyone with free() stays correct, and a block freed
// on another thread joins that thread's list. A list keeps at most kMaxPooled blocks and is
// emptied when its thread ends. Under AddressSanitizer the pooled blocks are poisoned.
#pragma once

#include <cstddef>

namespace ferry::core::tls {

// Call first thing in main, before anything allocates through OpenSSL. Returns false when
// that is too late; OpenSSL then keeps its own malloc calls, which is only slower.
bool installRecordBufferPool();

namespace detail {
// The pooled size class: requests of more than kPooledMin and at most kPooledBlock bytes get
// a block of kPooledBlock bytes.
inline constexpr size_t kPooledMin = 16 * 1024;
inline constexpr size_t kPooledBlock = 18 * 1024;
inline constexpr size_t kMaxPooled = 8;

// The functions installRecordBufferPool() gives OpenSSL (exposed for tests).
void* poolMalloc(size_t n, const char* file, int line);
void* poolRealloc(void* p, size_t n, const char* file, int line);
void poolFree(void* p, const char* file, int line);
// Blocks on the calling thread's list.
size_t pooledBlocks();
}  // namespace detail

}  // namespace ferry::core::tls
