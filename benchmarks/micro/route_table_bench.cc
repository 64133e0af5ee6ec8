// RouteTable micro benchmarks: virtual host + route lookup with 10 and with 10,000 routes (the
// ideas of benchmarks/route_bench.cc, as Catch2 benchmarks).
//
// Table: max(2, N/100) named virtual hosts "hK.example.com" share the N routes evenly; route g
// is "prefix: /svcG/" for even g and "path: /svcG/item" for odd g, every 10th also requires
// "x-env: prod". Besides them a "*.example.net" virtual host and a "*" default, 2 routes each.
// Each lookup kind cycles through 1024 pre-built requests spread uniformly over the routes, so
// the 10,000-route figures include the cache misses of a big table.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "benchmarks/micro/micro.h"
#include "core/http/header_map.h"
#include "core/router/route_table.h"

using namespace ferry;
using Kind = config::RouteMatchConfig::Kind;

namespace {

constexpr size_t kRequests = 1024;  // a power of two: the index is masked

struct Req {
  std::string host, path, cluster;  // cluster: the expected one, empty for no route
  core::http::HeaderMap headers;
};

config::RouteConfig route(Kind kind, std::string value, std::string cluster) {
  config::RouteConfig r;
  r.match.kind = kind;
  r.match.value = std::move(value);
  r.route.emplace();
  r.route->cluster = std::move(cluster);
  return r;
}

// "<a><n><b>", built by appending (GCC 12 at -O3 warns falsely, -Wrestrict, on "lit" + string).
std::string str(std::string_view a, size_t n, std::string_view b = {}) {
  std::string s(a);
  s += std::to_string(n);
  s += b;
  return s;
}

size_t vhostCount(size_t n) { return std::max<size_t>(2, n / 100); }

config::HttpConfig makeConfig(size_t n) {
  config::HttpConfig http;
  const size_t nv = vhostCount(n);
  const size_t per = n / nv;
  for (size_t v = 0; v < nv; ++v) {
    config::VirtualHostConfig vh;
    vh.name = str("h", v);
    vh.domains = {str("h", v, ".example.com")};
    for (size_t g = v * per; g < (v + 1) * per; ++g) {
      const std::string svc = str("/svc", g);
      config::RouteConfig r = g % 2 == 0 ? route(Kind::kPrefix, svc + "/", str("c", g))
                                         : route(Kind::kPath, svc + "/item", str("c", g));
      if (g % 10 == 3) {
        config::HeaderMatcherConfig h;
        h.name = "x-env";
        h.kind = config::HeaderMatcherConfig::Kind::kExact;
        h.value = "prod";
        r.match.headers.push_back(h);
      }
      vh.routes.push_back(std::move(r));
    }
    http.virtual_hosts.push_back(std::move(vh));
  }
  config::VirtualHostConfig wild;
  wild.name = "wild";
  wild.domains = {"*.example.net"};
  wild.routes.push_back(route(Kind::kPath, "/healthz", "wild-health"));
  wild.routes.push_back(route(Kind::kPrefix, "/", "wild"));
  http.virtual_hosts.push_back(std::move(wild));
  config::VirtualHostConfig def;
  def.name = "default";
  def.domains = {"*"};
  def.routes.push_back(route(Kind::kPath, "/healthz", "default-health"));
  def.routes.push_back(route(Kind::kPrefix, "/", "default"));
  http.virtual_hosts.push_back(std::move(def));
  return http;
}

enum class Lookup { kExactHit, kPrefixHit, kPathMiss, kWildcardHost, kDefaultHost };

std::vector<Req> makeRequests(size_t n, Lookup kind) {
  std::mt19937_64 rng(n * 16 + static_cast<size_t>(kind));
  const size_t per = n / vhostCount(n);
  std::vector<Req> out;
  for (size_t k = 0; k < kRequests; ++k) {
    size_t g = rng() % n;
    Req q;
    q.host = str("h", g / per, ".example.com:8080");
    switch (kind) {
      case Lookup::kExactHit:
        g |= 1;  // odd: an exact-path route
        if (g >= n) g -= 2;
        q.host = str("h", g / per, ".example.com:8080");
        q.path = str("/svc", g, "/item");
        q.cluster = str("c", g);
        break;
      case Lookup::kPrefixHit:
        g &= ~size_t{1};  // even: a prefix route
        q.host = str("h", g / per, ".example.com:8080");
        q.path = str("/svc", g, "/some/longer/path");
        q.cluster = str("c", g);
        break;
      case Lookup::kPathMiss:
        q.path = str("/missing/", g, "/item");
        break;
      case Lookup::kWildcardHost:
        q.host = str("api", g, ".example.net");
        q.path = str("/v1/items/", g);
        q.cluster = "wild";
        break;
      case Lookup::kDefaultHost:
        q.host = str("unknown", g, ".test:80");
        q.path = "/index.html";
        q.cluster = "default";
        break;
    }
    q.headers.add("user-agent", "wrk/4.2.0");
    q.headers.add("accept", "*/*");
    q.headers.add("x-env", "prod");
    out.push_back(std::move(q));
  }
  return out;
}

void benchTable(size_t n) {
  std::string err;
  auto table = core::router::RouteTable::build(makeConfig(n), &err);
  REQUIRE(table != nullptr);
  const std::string prefix = std::to_string(n) + " routes: ";
  const std::pair<Lookup, const char*> kinds[] = {
      {Lookup::kExactHit, "exact path hit"},
      {Lookup::kPrefixHit, "prefix hit"},
      {Lookup::kPathMiss, "miss (known host, no route)"},
      {Lookup::kWildcardHost, "*.suffix host hit"},
      {Lookup::kDefaultHost, "unknown host -> \"*\" hit"},
  };
  for (const auto& [kind, label] : kinds) {
    const std::vector<Req> reqs = makeRequests(n, kind);
    // Sanity: every request gets the route it is meant to.
    for (const Req& q : reqs) {
      const auto* r = table->match(q.host, "GET", q.path, q.headers);
      INFO(q.host << q.path);
      if (q.cluster.empty()) {
        REQUIRE(r == nullptr);
      } else {
        REQUIRE(r != nullptr);
        REQUIRE(r->route->cluster == q.cluster);
      }
    }
    size_t i = 0;
    BENCHMARK(prefix + label) {
      const Req& q = reqs[i++ & (kRequests - 1)];
      return table->find(q.host, "GET", q.path, q.headers).route;
    };
  }
  const std::vector<Req> reqs = makeRequests(n, Lookup::kExactHit);
  size_t i = 0;
  BENCHMARK(prefix + "matchVirtualHost alone") {
    return table->matchVirtualHost(reqs[i++ & (kRequests - 1)].host);
  };
}

}  // namespace

TEST_CASE("route table: 10 routes", "[micro][route]") { benchTable(10); }

TEST_CASE("route table: 10,000 routes", "[micro][route]") { benchTable(10000); }
