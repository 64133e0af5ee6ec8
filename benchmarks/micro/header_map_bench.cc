// HeaderMap micro benchmarks: a typical request header set of 8 entries (what a browser or API
// client sends behind a proxy), built, copied, searched, edited and walked.
#include <string>
#include <utility>
#include <vector>

#include "benchmarks/micro/micro.h"
#include "core/http/header_map.h"

using ferry::core::http::HeaderMap;

namespace {

// Names as they arrive on the wire (mixed case: add() lower-cases them).
const std::vector<std::pair<std::string, std::string>> kHeaders = {
    {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0"},
    {"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
    {"Accept-Language", "en-US,en;q=0.5"},
    {"Accept-Encoding", "gzip, deflate, br"},
    {"Connection", "keep-alive"},
    {"Cookie", "session=3f2a9c1e5b7d4e8f; theme=dark"},
    {"X-Request-Id", "7f9c2ba4-e88f-11ea-adc1-0242ac120002"},
    {"X-Forwarded-For", "203.0.113.7"},
};

HeaderMap build() {
  HeaderMap m;
  for (const auto& [n, v] : kHeaders) m.add(n, v);
  return m;
}

}  // namespace

TEST_CASE("header map", "[micro][headers]") {
  const HeaderMap map = build();
  REQUIRE(map.size() == 8);
  // Lookup keys held in runtime strings so that nothing is folded at compile time.
  const std::string first = "user-agent", last = "x-forwarded-for", mixed = "X-Request-ID",
                    absent = "authorization", middle = "connection";
  REQUIRE(map.get(first) != nullptr);
  REQUIRE(map.get(last) != nullptr);
  REQUIRE(map.get(mixed) != nullptr);
  REQUIRE(map.get(absent) == nullptr);

  BENCHMARK("build: add 8 headers (+ destroy)") { return build().size(); };

  BENCHMARK("copy an 8-header map") {
    HeaderMap copy = map;
    return copy.size();
  };

  BENCHMARK("get: hit 1st header") { return map.get(first); };
  BENCHMARK("get: hit 8th header") { return map.get(last); };
  BENCHMARK("get: hit 7th, mixed-case name") { return map.get(mixed); };
  BENCHMARK("get: miss (scans all 8)") { return map.get(absent); };

  BENCHMARK("has x 4 (hop-by-hop checks: 1 hit, 3 misses)") {
    return static_cast<int>(map.has(middle)) + map.has("keep-alive") + map.has("te") +
           map.has("upgrade");
  };

  // remove() needs a header to remove: each run removes one and adds it back (both SSO-sized
  // strings, and the vector keeps its capacity, so the add allocates nothing).
  HeaderMap edit = map;
  const std::string conn_value = "keep-alive";
  BENCHMARK("remove 5th of 8 headers + add it back") {
    const size_t n = edit.remove(middle);
    edit.add(middle, conn_value);
    return n;
  };
  REQUIRE(edit.size() == 8);

  HeaderMap probe = map;  // nothing matches: stays as it is
  BENCHMARK("remove: absent header (scans all 8)") { return probe.remove(absent); };

  BENCHMARK_ADVANCED("set: replace an existing value")(Catch::Benchmark::Chronometer meter) {
    HeaderMap m = map;
    const std::string value = "10.0.0.1";
    meter.measure([&] {
      m.set(last, value);
      return m.size();
    });
  };

  BENCHMARK("iterate 8 entries (sum name+value sizes)") {
    size_t n = 0;
    for (const auto& e : map.entries()) n += e.name.size() + e.value.size();
    return n;
  };

  BENCHMARK("byteSize()") { return map.byteSize(); };

  CHECK(map.size() == 8);
}
