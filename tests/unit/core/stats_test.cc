#include "core/stats.h"

#include <catch2/catch.hpp>
#include <thread>

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
  // Run under TSan: writers on their own shards, a reader summing, no data race.
  StatsStore s(3);
  auto c = s.counter("ferry_race_total");
  std::thread w1([&] { for (int i = 0; i < 100000; ++i) s.shard(1).inc(c); });
  std::thread w2([&] { for (int i = 0; i < 100000; ++i) s.shard(2).inc(c); });
  int64_t last = 0;
  for (int i = 0; i < 1000; ++i) {
    int64_t v = s.value(c);
    REQUIRE(v >= 0);
    REQUIRE(v <= 200000);
    last = v;
  }
  w1.join();
  w2.join();
  REQUIRE(s.value(c) == 200000);
  (void)last;
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
