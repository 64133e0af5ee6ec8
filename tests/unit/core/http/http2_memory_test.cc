// The memory functions nghttp2 sessions are made with (core/http/http2/session.cc): small
// blocks come back from a per-thread free list, realloc keeps a block that still fits and
// moves the contents of one that does not, calloc zeroes, large blocks work.
#include <nghttp2/nghttp2.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "core/http/http2/session.h"

using ferry::core::http::http2::detail::sessionMemory;

namespace {
void* alloc(size_t n) { return sessionMemory()->malloc(n, sessionMemory()->mem_user_data); }
void release(void* p) { sessionMemory()->free(p, sessionMemory()->mem_user_data); }
}  // namespace

TEST_CASE("http2 session memory: a freed small block is the next one of its size class", "[http2][memory]") {
  void* a = alloc(100);
  REQUIRE(a != nullptr);
  CHECK(reinterpret_cast<uintptr_t>(a) % 16 == 0);
  std::memset(a, 0xAB, 100);
  release(a);
  void* b = alloc(120);  // the same class (up to 128 bytes)
  CHECK(b == a);
  void* c = alloc(120);  // the list is empty now: a new block
  CHECK(c != b);
  release(b);
  release(c);
}

TEST_CASE("http2 session memory: realloc keeps a block that fits and moves one that does not", "[http2][memory]") {
  auto* p = static_cast<char*>(alloc(40));
  std::memcpy(p, "0123456789", 10);
  CHECK(sessionMemory()->realloc(p, 60, nullptr) == p);  // still within its 64 bytes
  auto* q = static_cast<char*>(sessionMemory()->realloc(p, 3000, nullptr));
  REQUIRE(q != nullptr);
  CHECK(std::memcmp(q, "0123456789", 10) == 0);
  q[2999] = 'z';
  auto* r = static_cast<char*>(sessionMemory()->realloc(q, 100000, nullptr));  // beyond the classes
  REQUIRE(r != nullptr);
  CHECK(std::memcmp(r, "0123456789", 10) == 0);
  CHECK(r[2999] == 'z');
  r[99999] = 'y';
  auto* s = static_cast<char*>(sessionMemory()->realloc(r, 200000, nullptr));
  REQUIRE(s != nullptr);
  CHECK(s[99999] == 'y');
  CHECK(sessionMemory()->realloc(s, 0, nullptr) == nullptr);  // freed
  void* fresh = sessionMemory()->realloc(nullptr, 10, nullptr);
  CHECK(fresh != nullptr);
  release(fresh);
}

TEST_CASE("http2 session memory: calloc zeroes a recycled block", "[http2][memory]") {
  auto* p = static_cast<unsigned char*>(alloc(200));
  std::memset(p, 0xFF, 200);
  release(p);
  auto* z = static_cast<unsigned char*>(sessionMemory()->calloc(10, 20, nullptr));
  REQUIRE(z == p);
  bool zero = true;
  for (int i = 0; i < 200; ++i) zero = zero && z[i] == 0;
  CHECK(zero);
  release(z);
  CHECK(sessionMemory()->calloc(SIZE_MAX / 2, 4, nullptr) == nullptr);  // overflow
}

TEST_CASE("http2 session memory: sessions made with it run a whole exchange", "[http2][memory]") {
  // Many blocks of every class taken and given back in a different order.
  std::vector<void*> blocks;
  for (size_t n : {1, 63, 64, 65, 500, 1024, 2047, 4096, 4097, 70000}) blocks.push_back(alloc(n));
  for (size_t i = 0; i < blocks.size(); i += 2) release(blocks[i]);
  for (size_t i = 1; i < blocks.size(); i += 2) release(blocks[i]);
  nghttp2_session_callbacks* cbs;
  REQUIRE(nghttp2_session_callbacks_new(&cbs) == 0);
  for (int round = 0; round < 3; ++round) {
    nghttp2_session* client;
    nghttp2_session* server;
    REQUIRE(nghttp2_session_client_new3(&client, cbs, nullptr, nullptr, sessionMemory()) == 0);
    REQUIRE(nghttp2_session_server_new3(&server, cbs, nullptr, nullptr, sessionMemory()) == 0);
    nghttp2_submit_settings(client, NGHTTP2_FLAG_NONE, nullptr, 0);
    const nghttp2_nv nv[] = {
        {(uint8_t*)":method", (uint8_t*)"GET", 7, 3, 0},
        {(uint8_t*)":path", (uint8_t*)"/x", 5, 2, 0},
        {(uint8_t*)":scheme", (uint8_t*)"http", 7, 4, 0},
        {(uint8_t*)":authority", (uint8_t*)"a", 10, 1, 0},
    };
    for (int i = 0; i < 20; ++i) REQUIRE(nghttp2_submit_request(client, nullptr, nv, 4, nullptr, nullptr) > 0);
    std::vector<uint8_t> wire;
    for (;;) {
      const uint8_t* data;
      ssize_t n = nghttp2_session_mem_send(client, &data);
      REQUIRE(n >= 0);
      if (n == 0) break;
      wire.insert(wire.end(), data, data + n);
    }
    CHECK(nghttp2_session_mem_recv(server, wire.data(), wire.size()) == static_cast<ssize_t>(wire.size()));
    nghttp2_session_del(server);
    nghttp2_session_del(client);
  }
  nghttp2_session_callbacks_del(cbs);
}
