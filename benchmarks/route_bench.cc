// Route lookup micro-benchmark: RouteTable::match with 10 vs 10,000 routes, against a naive
// linear scan for reference. Not wired into meson; build with:
//
//   g++ -std=c++20 -O2 -DNDEBUG -I/work/main benchmarks/route_bench.cc
//       core/router/route_table.cc core/http/header_map.cc -lre2 -pthread -o /tmp/route_bench
//   /tmp/route_bench
//
// Routes (one virtual host "*", one exact domain in front): half "prefix: /svcN/", half
// "path: /svcN/item", each every 10th with a header condition, and in the "+regex" variant 1%
// of routes a "regex: /rxN/[0-9]+" spread through the table. Requests: uniformly random hits
// over all routes plus 10% misses, normalised paths, 3 request headers.
#include <re2/re2.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/router/route_table.h"

using namespace ferry;
using Kind = config::RouteMatchConfig::Kind;

namespace {

struct Request {
  std::string host, method, path;
  core::http::HeaderMap headers;
};

config::HttpConfig makeConfig(size_t n, bool with_regex) {
  config::HttpConfig http;
  config::VirtualHostConfig other;
  other.name = "other";
  other.domains = {"other.example.com"};
  http.virtual_hosts.push_back(other);
  config::VirtualHostConfig vh;
  vh.name = "main";
  vh.domains = {"*"};
  for (size_t i = 0; i < n; ++i) {
    config::RouteConfig r;
    if (with_regex && i % 100 == 50) {
      r.match.kind = Kind::kRegex;
      r.match.value = "/rx" + std::to_string(i) + "/[0-9]+";
    } else if (i % 2 == 0) {
      r.match.kind = Kind::kPrefix;
      r.match.value = "/svc" + std::to_string(i) + "/";
    } else {
      r.match.kind = Kind::kPath;
      r.match.value = "/svc" + std::to_string(i) + "/item";
    }
    if (i % 10 == 3) {
      config::HeaderMatcherConfig h;
      h.name = "x-env";
      h.kind = config::HeaderMatcherConfig::Kind::kExact;
      h.value = "prod";
      r.match.headers.push_back(h);
    }
    r.route.emplace();
    r.route->cluster = "c" + std::to_string(i);
    vh.routes.push_back(std::move(r));
  }
  http.virtual_hosts.push_back(std::move(vh));
  return http;
}

std::vector<Request> makeRequests(size_t n_routes, bool with_regex, size_t count) {
  std::mt19937_64 rng(1);
  std::vector<Request> out;
  for (size_t k = 0; k < count; ++k) {
    Request r;
    r.host = "www.example.com:8080";
    r.method = "GET";
    size_t i = rng() % n_routes;
    if (rng() % 10 == 0)
      r.path = "/missing/" + std::to_string(i);
    else if (with_regex && i % 100 == 50)
      r.path = "/rx" + std::to_string(i) + "/12345";
    else if (i % 2 == 0)
      r.path = "/svc" + std::to_string(i) + "/some/longer/path";
    else
      r.path = "/svc" + std::to_string(i) + "/item";
    r.headers.add("user-agent", "bench/1.0");
    r.headers.add("accept", "*/*");
    r.headers.add("x-env", "prod");
    out.push_back(std::move(r));
  }
  return out;
}

// The reference: every route in order.
const config::RouteConfig* naive(const config::VirtualHostConfig& vh,
                                 const std::vector<std::unique_ptr<re2::RE2>>& res,
                                 const Request& q) {
  for (size_t i = 0; i < vh.routes.size(); ++i) {
    const auto& m = vh.routes[i].match;
    bool ok = m.kind == Kind::kPrefix ? q.path.compare(0, m.value.size(), m.value) == 0
              : m.kind == Kind::kPath ? q.path == m.value
                                      : re2::RE2::FullMatch(q.path, *res[i]);
    if (!ok) continue;
    bool all = true;
    for (const auto& h : m.headers) {
      const std::string* v = q.headers.get(h.name);
      all = all && v && *v == h.value;
    }
    if (all) return &vh.routes[i];
  }
  return nullptr;
}

template <class F>
double nsPerOp(const std::vector<Request>& reqs, F&& f) {
  size_t hits = 0;
  // Warm-up, then enough rounds for >= ~0.1 s.
  for (const auto& q : reqs) hits += f(q) != nullptr;
  size_t rounds = 1;
  double ns = 0;
  while (true) {
    auto t0 = std::chrono::steady_clock::now();
    for (size_t r = 0; r < rounds; ++r)
      for (const auto& q : reqs) hits += f(q) != nullptr;
    auto t1 = std::chrono::steady_clock::now();
    ns = std::chrono::duration<double, std::nano>(t1 - t0).count();
    if (ns > 1e8 || rounds > (1u << 20)) break;
    rounds *= 2;
  }
  // Best of three such measurements (the machine may be busy).
  double best = ns / static_cast<double>(rounds * reqs.size());
  for (int k = 0; k < 2; ++k) {
    auto t0 = std::chrono::steady_clock::now();
    for (size_t r = 0; r < rounds; ++r)
      for (const auto& q : reqs) hits += f(q) != nullptr;
    auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::nano>(t1 - t0).count() /
                              static_cast<double>(rounds * reqs.size()));
  }
  static volatile size_t sink;
  sink = sink + hits;
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  // --table-only: skip the (slow) linear reference, e.g. for perf.
  bool table_only = argc > 1 && std::string(argv[1]) == "--table-only";
  // table: RouteTable::match (virtual host + route); linear: routes of the one virtual host
  // scanned in order (no host lookup); vhost: RouteTable::matchVirtualHost alone.
  std::printf("%-22s %8s %14s %14s %12s\n", "routes", "kind", "table ns/op", "linear ns/op",
              "vhost ns/op");
  for (bool with_regex : {false, true}) {
    for (size_t n : {10, 100, 1000, 10000}) {
      auto http = makeConfig(n, with_regex);
      std::string err;
      auto t0 = std::chrono::steady_clock::now();
      auto table = core::router::RouteTable::build(http, &err);
      auto t1 = std::chrono::steady_clock::now();
      if (!table) {
        std::fprintf(stderr, "build failed: %s\n", err.c_str());
        return 1;
      }
      const auto& vh = http.virtual_hosts[1];
      std::vector<std::unique_ptr<re2::RE2>> res;
      for (const auto& r : vh.routes)
        res.push_back(r.match.kind == Kind::kRegex ? std::make_unique<re2::RE2>(r.match.value)
                                                   : nullptr);
      auto reqs = makeRequests(n, with_regex, 4096);
      // Sanity: both agree.
      for (const auto& q : reqs) {
        auto a = table->match(q.host, q.method, q.path, q.headers);
        auto b = naive(vh, res, q);
        if ((a == nullptr) != (b == nullptr) ||
            (a && a->route->cluster != b->route->cluster)) {
          std::fprintf(stderr, "mismatch on %s\n", q.path.c_str());
          return 1;
        }
      }
      double t = nsPerOp(reqs, [&](const Request& q) {
        return table->match(q.host, q.method, q.path, q.headers);
      });
      double l = table_only ? 0 : nsPerOp(reqs, [&](const Request& q) { return naive(vh, res, q); });
      double v = nsPerOp(reqs, [&](const Request& q) { return table->matchVirtualHost(q.host); });
      std::printf("%6zu (build %6.1f ms) %8s %14.1f %14.1f %12.1f\n", n,
                  std::chrono::duration<double, std::milli>(t1 - t0).count(),
                  with_regex ? "+regex" : "plain", t, l, v);
    }
  }
  return 0;
}
