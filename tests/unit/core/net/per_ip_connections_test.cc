// max_connections_per_ip's table: counts per IP, the limit, freed slots, sharing between threads.
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <thread>
#include <vector>

#include "core/net/per_ip_connections.h"
#include "core/net/socket_util.h"

using ferry::core::net::PerIpConnections;

namespace {
uint64_t keyOf(const std::string& ip, uint16_t port) {
  sockaddr_storage sa{};
  REQUIRE(ferry::core::net::makeSockaddr(ip, port, &sa));
  return PerIpConnections::key(sa);
}
}  // namespace

TEST_CASE("per-IP connections: the port is not part of the key, the family is", "[per_ip][unit]") {
  CHECK(keyOf("10.0.0.1", 1) == keyOf("10.0.0.1", 2));
  CHECK(keyOf("10.0.0.1", 1) != keyOf("10.0.0.2", 1));
  CHECK(keyOf("::1", 1) == keyOf("::1", 9));
  CHECK(keyOf("::1", 1) != keyOf("127.0.0.1", 1));
  sockaddr_storage unix_sa{};
  unix_sa.ss_family = AF_UNIX;
  CHECK(PerIpConnections::key(unix_sa) == 0);
}

TEST_CASE("per-IP connections: the limit, release, and other IPs", "[per_ip][unit]") {
  PerIpConnections t;
  const uint64_t a = keyOf("192.0.2.1", 0), b = keyOf("192.0.2.2", 0);
  uint32_t s1 = t.acquire(a, 2), s2 = t.acquire(a, 2);
  REQUIRE(s1 < PerIpConnections::kSlots);
  REQUIRE(s2 == s1);
  CHECK(t.acquire(a, 2) == PerIpConnections::kOver);
  CHECK(t.count(a) == 2);
  CHECK(t.acquire(b, 2) < PerIpConnections::kSlots);
  t.release(s1);
  CHECK(t.count(a) == 1);
  uint32_t s3 = t.acquire(a, 2);
  CHECK(s3 == s1);
  CHECK(t.acquire(a, 2) == PerIpConnections::kOver);
  t.release(s2);
  t.release(s3);
  CHECK(t.count(a) == 0);
}

TEST_CASE("per-IP connections: keys colliding on one window share it, a full window is untracked",
          "[per_ip][unit]") {
  PerIpConnections t;
  // Keys with the same home slot and different tags.
  std::vector<uint32_t> slots;
  for (uint64_t i = 1; i <= PerIpConnections::kWindow; ++i) slots.push_back(t.acquire((i << 24) | 5, 1));
  for (auto s : slots) CHECK(s < PerIpConnections::kSlots);
  CHECK(t.acquire((uint64_t{99} << 24) | 5, 1) == PerIpConnections::kNoSlot);
  // A freed slot keeps its IP's place; another IP may take it over once it is empty.
  t.release(slots[3]);
  CHECK(t.acquire((uint64_t{99} << 24) | 5, 1) == slots[3]);
  CHECK(t.acquire((uint64_t{4} << 24) | 5, 1) == PerIpConnections::kNoSlot);
}

TEST_CASE("per-IP connections: two threads never hold more than the limit together", "[per_ip][unit]") {
  PerIpConnections t;
  const uint64_t k = keyOf("198.51.100.7", 0);
  // `held` rises after a successful acquire and falls before the release: it never exceeds
  // what the table counts, so its peak bounds the table's count from below.
  std::atomic<int> held{0}, peak{0}, refused{0}, untracked{0};  // Catch2's macros are not thread-safe
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&] {
      std::vector<uint32_t> mine;
      for (int n = 0; n < 100000; ++n) {
        if (n % 3 == 2 && !mine.empty()) {
          --held;
          t.release(mine.back());
          mine.pop_back();
          continue;
        }
        uint32_t s = t.acquire(k, 3);
        if (s == PerIpConnections::kOver) {
          ++refused;
          continue;
        }
        if (s >= PerIpConnections::kSlots) {
          ++untracked;
          continue;
        }
        mine.push_back(s);
        int h = ++held;
        int p = peak.load();
        while (h > p && !peak.compare_exchange_weak(p, h)) {
        }
      }
      for (uint32_t s : mine) {
        --held;
        t.release(s);
      }
    });
  for (auto& th : threads) th.join();
  CHECK(untracked.load() == 0);
  CHECK(peak.load() == 3);
  CHECK(refused.load() > 0);
  CHECK(t.count(k) == 0);
}
