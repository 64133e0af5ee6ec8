// local_rate_limit: the lock-free token bucket table (refill math, sharing between threads,
// eviction) and the filter's config.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "filters/http/local_rate_limit/local_rate_limit.h"
#include "filters/http/local_rate_limit/token_bucket.h"
#include "tests/unit/config/loader_test_util.h"

using ferry::filters::http::LocalRateLimitConfig;
using ferry::filters::http::TokenBucketTable;
using namespace ferry::config;
using namespace ferry::config::test;

namespace {

constexpr int64_t kStart = 1'000'000'000;  // an arbitrary monotonic origin (µs)
constexpr int64_t kFill = 100'000;         // 100 ms

int allowedOf(TokenBucketTable& t, uint64_t key, int64_t now, int n) {
  int allowed = 0;
  for (int i = 0; i < n; ++i) allowed += t.take(key, now).allowed ? 1 : 0;
  return allowed;
}

}  // namespace

TEST_CASE("token bucket: a burst, then tokens per fill interval, capped at max_tokens", "[rate_limit][unit]") {
  TokenBucketTable t(5, 2, kFill, 1, kStart);
  // A fresh bucket is full: exactly max_tokens pass.
  for (uint32_t i = 0; i < 5; ++i) {
    auto r = t.take(7, kStart + 10);
    REQUIRE(r.allowed);
    CHECK(r.remaining == 4 - i);
  }
  auto r = t.take(7, kStart + 10);
  CHECK_FALSE(r.allowed);
  CHECK(r.remaining == 0);
  CHECK(r.next_fill_us == kFill - 10);  // the next fill is at the end of the first interval
  // Still within the interval: nothing.
  CHECK_FALSE(t.take(7, kStart + kFill - 1).allowed);
  // One interval on: tokens_per_fill arrive.
  CHECK(allowedOf(t, 7, kStart + kFill, 10) == 2);
  // Three intervals later: 6 would arrive, the bucket holds 5.
  CHECK(allowedOf(t, 7, kStart + 4 * kFill + 5, 10) == 5);
  // A clock reading behind what is stored (another worker's older timestamp) refills nothing.
  CHECK(allowedOf(t, 7, kStart + 2 * kFill, 10) == 0);
  CHECK(allowedOf(t, 7, kStart + 5 * kFill, 10) == 2);
}

TEST_CASE("token bucket: keys have their own buckets", "[rate_limit][unit]") {
  TokenBucketTable t(3, 1, kFill, 100, kStart);
  CHECK(allowedOf(t, 1, kStart, 10) == 3);
  CHECK(allowedOf(t, 2, kStart, 10) == 3);
  CHECK(allowedOf(t, 1, kStart, 10) == 0);
  CHECK(t.keysInUse() == 2);
}

TEST_CASE("token bucket: two threads hammering one bucket get exactly max_tokens", "[rate_limit][unit]") {
  constexpr uint32_t kTokens = 200'000;
  TokenBucketTable t(kTokens, 1, 3600LL * 1'000'000, 1, kStart);
  std::atomic<bool> go{false};
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&] {
      while (!go.load()) {
      }
      int mine = 0;
      for (uint32_t n = 0; n < kTokens; ++n) mine += t.take(42, kStart + n).allowed ? 1 : 0;
      allowed += mine;
    });
  go = true;
  for (auto& th : threads) th.join();
  CHECK(allowed.load() == static_cast<int>(kTokens));
}

TEST_CASE("token bucket: two threads over many keys stay exact per key", "[rate_limit][unit]") {
  constexpr int kKeys = 64;
  TokenBucketTable t(10, 1, 3600LL * 1'000'000, 1000, kStart);
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&] {
      int mine = 0;
      for (int round = 0; round < 50; ++round)
        for (int k = 1; k <= kKeys; ++k) mine += t.take(static_cast<uint64_t>(k) * 0x9e3779b97f4a7c15ULL, kStart).allowed;
      allowed += mine;
    });
  for (auto& th : threads) th.join();
  CHECK(allowed.load() == kKeys * 10);
}

TEST_CASE("token bucket: a full table evicts refilled buckets first, never more than max_keys", "[rate_limit][unit]") {
  // 8 slots = one probe window: every key competes for the same slots.
  TokenBucketTable t(2, 1, kFill, 8, kStart);
  for (uint64_t k = 100; k < 107; ++k) CHECK(t.take(k, kStart).allowed);  // 7 keys, 1 token left each
  CHECK(allowedOf(t, 1, kStart + 5 * kFill, 5) == 2);                  // key 1 drained at epoch 5
  CHECK(t.keysInUse() == 8);
  // By epoch 5 the 7 others have refilled: new keys take their slots, not key 1's.
  for (uint64_t k = 200; k < 207; ++k) CHECK(t.take(k, kStart + 5 * kFill).allowed);
  CHECK(t.keysInUse() == 8);
  CHECK_FALSE(t.take(1, kStart + 5 * kFill).allowed);
  // Nothing has refilled now: the least recently refilled bucket goes (key 1's, epoch 5, is
  // as old as the others; one of them is evicted, and the newcomer gets a full bucket).
  CHECK(allowedOf(t, 300, kStart + 5 * kFill, 5) == 2);
  CHECK(t.keysInUse() == 8);
}

namespace {
// Lines 1-4 are the listener head; filters start on line 6, a filter's keys at column 11.
std::string withFilter(const std::string& filter) {
  return "listeners:\n"
         "  - name: web\n"
         "    address: 0.0.0.0:8080\n"
         "    http:\n"
         "      filters:\n" +
         filter +
         "      virtual_hosts:\n"
         "        - {name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: api}}]}\n"
         "clusters:\n"
         "  - {name: api, endpoints: [{address: 127.0.0.1:9000}]}\n";
}
LocalRateLimitConfig rlOf(const std::string& config_line) {
  const Config c = ok(load(withFilter("        - name: local_rate_limit\n          config: " + config_line + "\n")));
  NodeReader r;
  auto parsed = ferry::filters::http::parseLocalRateLimitConfig(c.listeners[0].http->filters.at(0), r);
  REQUIRE(parsed);
  return *parsed;
}
}  // namespace

TEST_CASE("local_rate_limit config: defaults, keys and errors", "[rate_limit][config]") {
  auto c = rlOf("{max_tokens: 10, fill_interval: 1s}");
  CHECK(c.max_tokens == 10);
  CHECK(c.tokens_per_fill == 1);
  CHECK(c.fill_interval == std::chrono::seconds(1));
  CHECK(c.key == LocalRateLimitConfig::Key::kNone);
  CHECK(c.max_keys == 100000);
  CHECK_FALSE(c.shadow);
  CHECK_FALSE(c.response_headers);
  c = rlOf("{max_tokens: 10, tokens_per_fill: 5, fill_interval: 50ms, key: 'header:X-Api-Key', max_keys: 10, "
           "shadow: true, response_headers: true}");
  CHECK(c.key == LocalRateLimitConfig::Key::kHeader);
  CHECK(c.header == "x-api-key");
  CHECK(c.tokens_per_fill == 5);
  CHECK(c.max_keys == 10);
  CHECK(c.shadow);
  CHECK(c.response_headers);
  CHECK(rlOf("{max_tokens: 1, fill_interval: 1s, key: client_ip}").key == LocalRateLimitConfig::Key::kClientIp);

  auto err = [](const std::string& config_line) {
    return onlyError(withFilter("        - name: local_rate_limit\n          config: " + config_line + "\n"));
  };
  CHECK(onlyError(withFilter("        - name: local_rate_limit\n")) ==
        "t.yaml:6:11: missing required key 'config' in filter");
  CHECK(err("{fill_interval: 1s}") == "t.yaml:7:19: missing required key 'max_tokens' in local_rate_limit config");
  CHECK(err("{max_tokens: 1}") == "t.yaml:7:19: missing required key 'fill_interval' in local_rate_limit config");
  CHECK(err("{max_tokens: 0, fill_interval: 1s}") == "t.yaml:7:32: 'max_tokens' must be between 1 and 1048575, got 0");
  CHECK(err("{max_tokens: 5, fill_interval: 10ms}") == "t.yaml:7:50: fill_interval must be at least 50ms");
  CHECK(err("{max_tokens: 5, fill_interval: 1s, key: ip}") ==
        "t.yaml:7:59: key must be none, client_ip or header:NAME, not 'ip'");
  CHECK(err("{max_tokens: 5, tokens_per_fill: 6, fill_interval: 1s}") ==
        "t.yaml:7:52: tokens_per_fill is larger than max_tokens");
  CHECK(err("{max_tokens: 5, fill_interval: 1s, max_keys: 0}") ==
        "t.yaml:7:64: 'max_keys' must be between 1 and 10000000, got 0");
  CHECK(err("{max_tokens: 5, fill_interval: 1s, burst: 3}") ==
        "t.yaml:7:54: unknown key 'burst' in local_rate_limit config");
}
