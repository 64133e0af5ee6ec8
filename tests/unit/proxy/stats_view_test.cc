// proxy/admin/stats_view: GET /stats?filter=REGEX and ?format=json over the StatsStore's text.
#include "proxy/admin/stats_view.h"

#include <re2/re2.h>

#include <catch2/catch.hpp>

#include "core/stats.h"

using ferry::proxy::filterStatsLines;
using ferry::proxy::percentDecode;
using ferry::proxy::statsJson;

TEST_CASE("filterStatsLines keeps the lines whose metric name matches", "[admin][stats]") {
  const std::string plain =
      "ferry_a_total{listener=\"web\"}: 1\n"
      "ferry_b_total: 2\n"
      "ferry_c_seconds_count{listener=\"web\"}: 3\n";
  re2::RE2 re("b_tot");
  CHECK(filterStatsLines(plain, &re) == "ferry_b_total: 2\n");
  // The labels are not part of the name: "web" matches nothing.
  re2::RE2 web("web");
  CHECK(filterStatsLines(plain, &web).empty());
  re2::RE2 anchored("^ferry_(a|c)");
  CHECK(filterStatsLines(plain, &anchored) ==
        "ferry_a_total{listener=\"web\"}: 1\nferry_c_seconds_count{listener=\"web\"}: 3\n");
  CHECK(filterStatsLines(plain, nullptr) == plain);
}

TEST_CASE("statsJson renders counters, gauges and histograms from the store's text", "[admin][stats]") {
  ferry::core::StatsStore store(2);
  auto c = store.counter("ferry_x_total", {{"listener", "we\"b"}}, "x");
  auto g = store.gauge("ferry_y_active", {}, "y");
  auto h = store.histogram("ferry_z_seconds", {{"listener", "web"}}, {0.1, 1}, "z");
  store.shard(1).add(c, 5);
  store.shard(0).add(g, 2);
  store.shard(1).observe(h, 50'000);     // 0.05 s
  store.shard(1).observe(h, 500'000);    // 0.5 s
  store.shard(1).observe(h, 5'000'000);  // 5 s
  const std::string json = statsJson(store.prometheus(), nullptr, 1234);
  INFO(json);
  CHECK(json.rfind("{\"time_ms\":1234,\"stats\":[", 0) == 0);
  CHECK(json.find("{\"name\":\"ferry_x_total\",\"type\":\"counter\",\"labels\":{\"listener\":\"we\\\"b\"},\"value\":5}") !=
        std::string::npos);
  CHECK(json.find("{\"name\":\"ferry_y_active\",\"type\":\"gauge\",\"labels\":{},\"value\":2}") != std::string::npos);
  CHECK(json.find("{\"name\":\"ferry_z_seconds\",\"type\":\"histogram\",\"labels\":{\"listener\":\"web\"},"
                  "\"buckets\":[{\"le\":\"0.1\",\"count\":1},{\"le\":\"1\",\"count\":2},{\"le\":\"+Inf\",\"count\":3}],"
                  "\"sum\":5.550000,\"count\":3}") != std::string::npos);
  // The filter applies to a histogram's family name.
  re2::RE2 re("z_seconds$");
  const std::string only = statsJson(store.prometheus(), &re, 1);
  CHECK(only.find("ferry_z_seconds") != std::string::npos);
  CHECK(only.find("ferry_x_total") == std::string::npos);
}

TEST_CASE("percentDecode decodes %XX and keeps '+'", "[admin][stats]") {
  std::string out;
  CHECK(percentDecode("%5Eferry_(a%7Cb)+%24", &out));
  CHECK(out == "^ferry_(a|b)+$");
  CHECK_FALSE(percentDecode("abc%2", &out));
  CHECK_FALSE(percentDecode("%zz", &out));
}
