#include "core/stats.h"

#include <atomic>
#include <chrono>
#include <catch2/catch.hpp>
#include <cstdint>
#include <optional>
#include <thread>
#include <utility>

using ferry::core::StatsStore;

TEST_CASE("Stats sum shards and render Prometheus and plain text", "[stats]") {
  StatsStore s(3);
  auto c = s.counter("ferry_x_total", {{"listener", "web"}}, "x things");
  auto g = s.gauge("ferry_y", {{"listener", "web"}});
  REQUIRE(s.counter("ferry_x_total", {{"listener", "web"}}).idx == c.idx);  // same slot again
  auto c2 = s.counter("ferry_x_total", {{"listener", "db"}});
  REQUIRE(c2.idx != c.idx);
  s.shard(0).add(c, 2);
  s.shard(1).inc(c);
  s.shard(2).add(c, 10);
  s.shard(1).inc(g);
  s.shard(1).inc(g);
  s.shard(2).dec(g);
  REQUIRE(s.value(c) == 13);
  REQUIRE(s.value(g) == 1);
  std::string prom = s.prometheus();
  REQUIRE(prom.find("# HELP ferry_x_total x things\n") != std::string::npos);
  REQUIRE(prom.find("# TYPE ferry_x_total counter\n") != std::string::npos);
  REQUIRE(prom.find("ferry_x_total{listener=\"web\"} 13\n") != std::string::npos);
  REQUIRE(prom.find("ferry_x_total{listener=\"db\"} 0\n") != std::string::npos);
  REQUIRE(prom.find("# TYPE ferry_y gauge\n") != std::string::npos);
  // One TYPE line per family, even with two label sets.
  REQUIRE(prom.find("# TYPE ferry_x_total") == prom.rfind("# TYPE ferry_x_total"));
  REQUIRE(s.plain().find("ferry_y{listener=\"web\"}: 1\n") != std::string::npos);
}

TEST_CASE("Stats label values are escaped", "[stats]") {
  StatsStore s(1);
  s.counter("ferry_z_total", {{"k", "a\"b\\c"}});
  REQUIRE(s.prometheus().find("ferry_z_total{k=\"a\\\"b\\\\c\"} 0") != std::string::npos);
}

TEST_CASE("Stats shards have one writer each and are read concurrently", "[stats]") {
  // Run under TSan: writers on their own shards, a reader summing, no data race. Each shard only
  // grows and the reader sums them one after the other, so its successive reads never go down.
  constexpr int64_t kPerWriter = 100000;
  StatsStore s(3);
  auto c = s.counter("ferry_race_total");
  // Halfway through, each writer waits until the reader has seen the halfway sum: at least one
  // read certainly lands while the writers are under way (not only before or after them).
  std::atomic<int> at_half{0};
  std::atomic<bool> half_seen{false};
  std::atomic<int> writing{2};
  auto writer = [&](size_t shard) {
    for (int64_t i = 0; i < kPerWriter; ++i) {
      if (i == kPerWriter / 2) {
        at_half.fetch_add(1);
        while (!half_seen.load()) std::this_thread::yield();  // the reader sets it (it never waits)
      }
      s.shard(shard).inc(c);
    }
    writing.fetch_sub(1);
  };
  std::thread w1(writer, 1);
  std::thread w2(writer, 2);
  // Reads until both writers are done. What goes wrong is recorded and asserted after the
  // joins: a failing REQUIRE here would throw past joinable threads.
  int64_t reads = 0, last = 0, between = 0;  // between: reads that saw the writers under way
  std::optional<int64_t> out_of_range;
  std::optional<std::pair<int64_t, int64_t>> went_down;  // (earlier read, later read)
  while (writing.load() > 0) {
    const bool both_at_half = at_half.load() == 2;
    const int64_t v = s.value(c);
    ++reads;
    if (v > 0 && v < 2 * kPerWriter) ++between;
    if ((v < 0 || v > 2 * kPerWriter) && !out_of_range) out_of_range = v;
    if (v < last && !went_down) went_down = std::make_pair(last, v);
    last = v;
    if (both_at_half) half_seen = true;  // v was read while both writers waited at the half
  }
  w1.join();
  w2.join();
  INFO(reads << " reads, " << between << " of them while the writers were under way");
  if (out_of_range) FAIL_CHECK("a read out of [0, " << 2 * kPerWriter << "]: " << *out_of_range);
  if (went_down) FAIL_CHECK("the counter went down between two reads: " << went_down->first << " then " << went_down->second);
  CHECK(between >= 1);
  REQUIRE(s.value(c) == 2 * kPerWriter);
}

TEST_CASE("Stats histograms render cumulative buckets, sum and count", "[stats]") {
  StatsStore s(2);
  auto h = s.histogram("ferry_d_seconds", {{"listener", "web"}}, {0.001, 0.01, 0.1});
  s.shard(0).observe(h, 500);     // 0.5 ms
  s.shard(1).observe(h, 5000);    // 5 ms
  s.shard(1).observe(h, 2000000); // 2 s: only +Inf
  std::string p = s.prometheus();
  INFO(p);
  REQUIRE(p.find("# TYPE ferry_d_seconds histogram\n") != std::string::npos);
  REQUIRE(p.find("ferry_d_seconds_bucket{listener=\"web\",le=\"0.001\"} 1\n") != std::string::npos);
  REQUIRE(p.find("ferry_d_seconds_bucket{listener=\"web\",le=\"0.01\"} 2\n") != std::string::npos);
  REQUIRE(p.find("ferry_d_seconds_bucket{listener=\"web\",le=\"0.1\"} 2\n") != std::string::npos);
  REQUIRE(p.find("ferry_d_seconds_bucket{listener=\"web\",le=\"+Inf\"} 3\n") != std::string::npos);
  REQUIRE(p.find("ferry_d_seconds_sum{listener=\"web\"} 2.005500\n") != std::string::npos);
  REQUIRE(p.find("ferry_d_seconds_count{listener=\"web\"} 3\n") != std::string::npos);
}

TEST_CASE("Stats histograms stay consistent while a worker observes during the render", "[stats]") {
  // The dashboard's p99 read as 60 s when /stats caught a worker between a bucket and the count:
  // +Inf (the count) came out above the last finite bucket although every value was 1 µs.
  StatsStore s(2);
  auto h = s.histogram("ferry_r_seconds", {}, {0.001, 0.01});
  std::atomic<bool> stop{false};
  std::atomic<int64_t> observed{0};
  std::thread writer([&] {
    for (int64_t i = 0; i < 2'000'000'000 && !stop.load(std::memory_order_relaxed); ++i) {
      s.shard(1).observe(h, 1);
      observed.store(i + 1, std::memory_order_relaxed);
    }
  });
  auto sample = [](const std::string& p, const std::string& key) -> int64_t {
    const size_t at = p.find(key + " ");
    return at == std::string::npos ? -1 : std::stoll(p.substr(at + key.size() + 1));
  };
  // Renders until 200 of them overlapped the writer (bounded by count and time: on a loaded
  // machine the writer thread may start late or be descheduled for a while).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (observed.load() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  int renders = 0, during = 0;
  std::optional<std::string> torn;
  while (during < 200 && renders < 1'000'000 && std::chrono::steady_clock::now() < deadline) {
    const int64_t before = observed.load();
    const std::string p = s.prometheus();
    const int64_t after = observed.load();
    ++renders;
    if (after > before) ++during;
    const int64_t b1 = sample(p, "ferry_r_seconds_bucket{le=\"0.001\"}");
    const int64_t b2 = sample(p, "ferry_r_seconds_bucket{le=\"0.01\"}");
    const int64_t inf = sample(p, "ferry_r_seconds_bucket{le=\"+Inf\"}");
    const int64_t count = sample(p, "ferry_r_seconds_count");
    if (!torn && !(b1 == b2 && b2 == inf && inf == count && b1 >= 0)) torn = p;
  }
  stop = true;
  writer.join();
  INFO(renders << " renders, " << during << " of them while the worker observed");
  CHECK(during > 0);
  if (torn) FAIL_CHECK("inconsistent histogram:\n" << *torn);
}
