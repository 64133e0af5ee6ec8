#include "core/router/route_table.h"

#include <catch2/catch.hpp>
#include <re2/re2.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

using ferry::config::HeaderMatcherConfig;
using ferry::config::HttpConfig;
using ferry::config::RouteActionConfig;
using ferry::config::RouteConfig;
using ferry::config::RouteMatchConfig;
using ferry::config::VirtualHostConfig;
using ferry::config::WeightedClusterConfig;
using ferry::core::http::HeaderMap;
using ferry::core::router::canonicalHost;
using ferry::core::router::pickWeighted;
using ferry::core::router::RouteTable;

namespace {

using Kind = RouteMatchConfig::Kind;
using HKind = HeaderMatcherConfig::Kind;

RouteConfig route(Kind kind, std::string value, std::string cluster,
                  std::vector<HeaderMatcherConfig> headers = {},
                  std::vector<std::string> methods = {}) {
  RouteConfig r;
  r.match.kind = kind;
  r.match.value = std::move(value);
  r.match.headers = std::move(headers);
  r.match.methods = std::move(methods);
  r.route.emplace();
  r.route->cluster = std::move(cluster);
  return r;
}

HeaderMatcherConfig header(std::string name, HKind kind, std::string value = "") {
  HeaderMatcherConfig h;
  h.name = std::move(name);
  h.kind = kind;
  h.value = std::move(value);
  return h;
}

VirtualHostConfig vhost(std::string name, std::vector<std::string> domains,
                        std::vector<RouteConfig> routes = {}) {
  VirtualHostConfig v;
  v.name = std::move(name);
  v.domains = std::move(domains);
  v.routes = std::move(routes);
  return v;
}

std::shared_ptr<const RouteTable> mustBuild(const HttpConfig& http) {
  std::string err;
  auto t = RouteTable::build(http, &err);
  INFO(err);
  REQUIRE(t);
  return t;
}

// Cluster of the matched route, or "" for none.
std::string clusterOf(const RouteTable& t, std::string_view host, std::string_view method,
                      std::string_view path, const HeaderMap& h = {}) {
  const RouteConfig* r = t.match(host, method, path, h);
  return r ? r->route->cluster : std::string();
}

std::string vhostOf(const RouteTable& t, std::string_view host) {
  const VirtualHostConfig* v = t.matchVirtualHost(host);
  return v ? v->name : std::string("<none>");
}

}  // namespace

TEST_CASE("virtual host precedence: exact > longest suffix > prefix > *", "[router]") {
  HttpConfig http;
  http.virtual_hosts = {
      vhost("star", {"*"}),
      vhost("wild", {"*.example.com"}),
      vhost("deep", {"*.api.example.com"}),
      vhost("exact", {"api.example.com", "Other.Test"}),
      vhost("v6", {"[::1]", "127.0.0.1"}),
      vhost("pfx", {"internal.*"}),
      vhost("dash", {"*-staging.example.com"}),
  };
  auto t = mustBuild(http);
  CHECK(vhostOf(*t, "api.example.com") == "exact");
  CHECK(vhostOf(*t, "API.Example.COM") == "exact");
  CHECK(vhostOf(*t, "api.example.com:8080") == "exact");
  CHECK(vhostOf(*t, "api.example.com.") == "exact");  // trailing dot
  CHECK(vhostOf(*t, "other.test") == "exact");        // domains lower-cased too
  CHECK(vhostOf(*t, "www.example.com") == "wild");
  CHECK(vhostOf(*t, "a.b.c.example.com:443") == "wild");  // any depth
  CHECK(vhostOf(*t, "v1.api.example.com") == "deep");    // longest suffix
  CHECK(vhostOf(*t, "x.v1.API.example.com") == "deep");
  CHECK(vhostOf(*t, "web-staging.example.com") == "dash");  // longer suffix than *.example.com
  CHECK(vhostOf(*t, "example.com") == "star");             // *.example.com needs a label
  CHECK(vhostOf(*t, ".example.com") == "star");            // '*' stands for >= 1 char
  CHECK(vhostOf(*t, "notexample.com") == "star");
  CHECK(vhostOf(*t, "[::1]:9000") == "v6");
  CHECK(vhostOf(*t, "[::1]") == "v6");
  CHECK(vhostOf(*t, "127.0.0.1:80") == "v6");
  CHECK(vhostOf(*t, "internal.svc") == "pfx");
  CHECK(vhostOf(*t, "internal.") == "star");  // prefix wildcard also needs >= 1 char
  CHECK(vhostOf(*t, "") == "star");
  CHECK(vhostOf(*t, "unknown.org") == "star");

  HttpConfig no_default;
  no_default.virtual_hosts = {vhost("a", {"a.com", "*.a.com"})};
  auto t2 = mustBuild(no_default);
  CHECK(vhostOf(*t2, "b.com") == "<none>");
  CHECK(vhostOf(*t2, "") == "<none>");
  CHECK(vhostOf(*t2, "a.com.evil.org") == "<none>");
  CHECK(t2->match("b.com", "GET", "/", {}) == nullptr);
  auto m = t2->find("b.com", "GET", "/", {});
  CHECK(m.virtual_host == nullptr);
  CHECK(m.route == nullptr);
}

TEST_CASE("virtual host: a domain listed twice goes to the first virtual host", "[router]") {
  HttpConfig http;
  http.virtual_hosts = {vhost("first", {"a.com", "*.b.com", "*"}),
                        vhost("second", {"a.com", "*.b.com", "*"})};
  auto t = mustBuild(http);
  CHECK(vhostOf(*t, "a.com") == "first");
  CHECK(vhostOf(*t, "x.b.com") == "first");
  CHECK(vhostOf(*t, "zzz") == "first");
}

TEST_CASE("canonicalHost", "[router]") {
  CHECK(canonicalHost("Example.COM:8080") == "example.com");
  CHECK(canonicalHost("[::1]:8080") == "[::1]");
  CHECK(canonicalHost("[FE80::1]") == "[fe80::1]");
  CHECK(canonicalHost("a.b.") == "a.b");
  CHECK(canonicalHost("a.b.:80") == "a.b");
  CHECK(canonicalHost("::1") == "::1");  // bare v6 (invalid Host) is left alone
  CHECK(canonicalHost("") == "");
}

TEST_CASE("host longer than the stack buffer", "[router]") {
  std::string longhost(300, 'a');
  HttpConfig http;
  http.virtual_hosts = {vhost("long", {longhost}), vhost("star", {"*"})};
  auto t = mustBuild(http);
  std::string upper(300, 'A');
  CHECK(vhostOf(*t, upper + ":1") == "long");
  CHECK(vhostOf(*t, upper + "B") == "star");
}

TEST_CASE("route kinds: prefix, exact path, regex", "[router]") {
  HttpConfig http;
  http.virtual_hosts = {vhost("v", {"*"},
                              {
                                  route(Kind::kPath, "/healthz", "health"),
                                  route(Kind::kRegex, "/u/[0-9]+", "user"),
                                  route(Kind::kPrefix, "/v1/", "v1"),
                                  route(Kind::kPrefix, "/v1", "v1-noslash"),
                                  route(Kind::kPath, "/v1/exact", "shadowed"),  // after /v1/
                                  route(Kind::kPrefix, "/", "root"),
                              })};
  auto t = mustBuild(http);
  CHECK(clusterOf(*t, "h", "GET", "/healthz") == "health");
  CHECK(clusterOf(*t, "h", "GET", "/healthz/") == "root");
  CHECK(clusterOf(*t, "h", "GET", "/HEALTHZ") == "root");  // case-sensitive
  CHECK(clusterOf(*t, "h", "GET", "/u/123") == "user");
  CHECK(clusterOf(*t, "h", "GET", "/u/123/x") == "root");  // full match only
  CHECK(clusterOf(*t, "h", "GET", "/x/u/123") == "root");
  CHECK(clusterOf(*t, "h", "GET", "/v1/") == "v1");
  CHECK(clusterOf(*t, "h", "GET", "/v1/exact") == "v1");  // first match wins
  CHECK(clusterOf(*t, "h", "GET", "/v1") == "v1-noslash");
  CHECK(clusterOf(*t, "h", "GET", "/v1x") == "v1-noslash");  // plain string prefix
  CHECK(clusterOf(*t, "h", "GET", "/") == "root");

  HttpConfig none;
  none.virtual_hosts = {vhost("v", {"*"}, {route(Kind::kPrefix, "/api/", "api")})};
  auto t2 = mustBuild(none);
  CHECK(clusterOf(*t2, "h", "GET", "/api") == "");
  CHECK(clusterOf(*t2, "h", "GET", "/ap") == "");
  auto m = t2->find("h", "GET", "/other", {});
  REQUIRE(m.virtual_host != nullptr);
  CHECK(m.virtual_host->name == "v");
  CHECK(m.route == nullptr);
}

TEST_CASE("empty prefix matches everything; routes point into the table's own copy",
          "[router]") {
  std::shared_ptr<const RouteTable> t;
  {
    HttpConfig http;
    http.virtual_hosts = {vhost("v", {"*"}, {route(Kind::kPrefix, "", "all")})};
    t = mustBuild(http);
  }  // the original config is gone
  const RouteConfig* r = t->match("h", "GET", "/anything", {});
  REQUIRE(r != nullptr);
  CHECK(r->route->cluster == "all");
  CHECK(r == &t->config().virtual_hosts[0].routes[0]);
}

TEST_CASE("prefix trie splits and overlapping prefixes", "[router]") {
  HttpConfig http;
  http.virtual_hosts = {vhost("v", {"*"},
                              {
                                  route(Kind::kPrefix, "/abcdef", "abcdef"),
                                  route(Kind::kPrefix, "/abcxyz", "abcxyz"),
                                  route(Kind::kPrefix, "/abc", "abc"),
                                  route(Kind::kPrefix, "/ab", "ab"),
                                  route(Kind::kPrefix, "/abcdefgh", "never"),  // shadowed
                                  route(Kind::kPrefix, "/b", "b"),
                              })};
  auto t = mustBuild(http);
  CHECK(clusterOf(*t, "h", "GET", "/abcdefgh") == "abcdef");
  CHECK(clusterOf(*t, "h", "GET", "/abcdeX") == "abc");
  CHECK(clusterOf(*t, "h", "GET", "/abcxyz") == "abcxyz");
  CHECK(clusterOf(*t, "h", "GET", "/abcx") == "abc");
  CHECK(clusterOf(*t, "h", "GET", "/abd") == "ab");
  CHECK(clusterOf(*t, "h", "GET", "/a") == "");
  CHECK(clusterOf(*t, "h", "GET", "/bz") == "b");
  CHECK(clusterOf(*t, "h", "GET", "") == "");
}

TEST_CASE("methods", "[router]") {
  HttpConfig http;
  http.virtual_hosts = {vhost("v", {"*"},
                              {
                                  route(Kind::kPrefix, "/", "read", {}, {"GET", "HEAD"}),
                                  route(Kind::kPrefix, "/", "write", {}, {"POST"}),
                                  route(Kind::kPrefix, "/", "other"),
                              })};
  auto t = mustBuild(http);
  CHECK(clusterOf(*t, "h", "GET", "/x") == "read");
  CHECK(clusterOf(*t, "h", "HEAD", "/x") == "read");
  CHECK(clusterOf(*t, "h", "POST", "/x") == "write");
  CHECK(clusterOf(*t, "h", "post", "/x") == "other");  // methods are case-sensitive
  CHECK(clusterOf(*t, "h", "DELETE", "/x") == "other");
}

TEST_CASE("header matchers", "[router]") {
  HttpConfig http;
  http.virtual_hosts = {vhost(
      "v", {"*"},
      {
          route(Kind::kPrefix, "/", "exact", {header("x-env", HKind::kExact, "prod")}),
          route(Kind::kPrefix, "/", "prefix", {header("X-Env", HKind::kPrefix, "stag")}),
          route(Kind::kPrefix, "/", "regex", {header("x-env", HKind::kRegex, "dev[0-9]+")}),
          route(Kind::kPrefix, "/", "both",
                {header("x-a", HKind::kPresent), header("x-b", HKind::kPresent)}),
          route(Kind::kPrefix, "/", "present", {header("x-env", HKind::kPresent)}),
          route(Kind::kPrefix, "/", "host", {header("host", HKind::kExact, "h.test:8080")}),
          route(Kind::kPrefix, "/", "authority", {header(":authority", HKind::kPrefix, "auth")}),
          route(Kind::kPrefix, "/", "method", {header(":method", HKind::kRegex, "P.*")}),
          route(Kind::kPrefix, "/", "none"),
      })};
  auto t = mustBuild(http);
  auto with = [](std::vector<std::pair<std::string, std::string>> hs) {
    HeaderMap m;
    for (auto& [k, v] : hs) m.add(k, v);
    return m;
  };
  CHECK(clusterOf(*t, "h", "GET", "/", with({{"x-env", "prod"}})) == "exact");
  CHECK(clusterOf(*t, "h", "GET", "/", with({{"X-ENV", "prod"}})) == "exact");
  CHECK(clusterOf(*t, "h", "GET", "/", with({{"x-env", "staging"}})) == "prefix");
  CHECK(clusterOf(*t, "h", "GET", "/", with({{"x-env", "dev42"}})) == "regex");
  CHECK(clusterOf(*t, "h", "GET", "/", with({{"x-env", "dev42x"}})) == "present");  // full match
  CHECK(clusterOf(*t, "h", "GET", "/", with({{"x-env", ""}})) == "present");
  CHECK(clusterOf(*t, "h", "GET", "/", with({{"x-env", "Prod"}})) == "present");  // value case
  CHECK(clusterOf(*t, "h", "GET", "/", with({{"x-a", "1"}})) == "none");
  CHECK(clusterOf(*t, "h", "GET", "/", with({{"x-b", "1"}, {"x-a", ""}})) == "both");
  // Repeated headers are matched as their values joined with ",".
  CHECK(clusterOf(*t, "h", "GET", "/", with({{"x-env", "prod"}, {"x-env", "prod"}})) ==
        "present");
  CHECK(clusterOf(*t, "h", "GET", "/", with({{"x-env", "stag"}, {"x-env", "prod"}})) ==
        "prefix");
  CHECK(clusterOf(*t, "h", "GET", "/", with({{"x-env", "dev1"}, {"x-env", "2"}})) == "present");
  // Pseudo-headers: host/:authority look at the host argument (with port), :method the method.
  CHECK(clusterOf(*t, "h.test:8080", "GET", "/") == "host");
  CHECK(clusterOf(*t, "h.test", "GET", "/") == "none");
  CHECK(clusterOf(*t, "authority.test", "GET", "/") == "authority");
  CHECK(clusterOf(*t, "h", "PUT", "/") == "method");
  CHECK(clusterOf(*t, "h", "GET", "/") == "none");
}

TEST_CASE("bad regexes fail the build with a message, without crashing", "[router]") {
  HttpConfig http;
  http.virtual_hosts = {vhost(
      "api", {"*"},
      {route(Kind::kPrefix, "/", "ok"), route(Kind::kRegex, "/(", "bad"),
       route(Kind::kPrefix, "/", "bad2", {header("x", HKind::kRegex, "[z-a]")})})};
  std::string err;
  auto t = RouteTable::build(http, &err);
  CHECK(t == nullptr);
  CHECK_THAT(err, Catch::Contains("virtual host 'api' route 2") && Catch::Contains("'/('"));
  CHECK_THAT(err, Catch::Contains("route 3") && Catch::Contains("header 'x'"));
  CHECK(RouteTable::build(http, nullptr) == nullptr);  // error may be null
}

TEST_CASE("an empty config builds and matches nothing", "[router]") {
  auto t = mustBuild(HttpConfig{});
  CHECK(t->matchVirtualHost("a") == nullptr);
  CHECK(t->match("a", "GET", "/", {}) == nullptr);
}

// ---- property test: the indexed matcher equals a naive linear scan ------------------------

namespace {

bool naiveHeader(const HeaderMatcherConfig& m, const HeaderMap& h) {
  std::vector<std::string> vals;
  for (const auto& e : h.entries())
    if (e.name == m.name) vals.push_back(e.value);
  if (vals.empty()) return false;
  std::string v;
  for (size_t i = 0; i < vals.size(); ++i) v += (i ? "," : "") + vals[i];
  switch (m.kind) {
    case HKind::kPresent: return true;
    case HKind::kExact: return v == m.value;
    case HKind::kPrefix: return v.rfind(m.value, 0) == 0;
    case HKind::kRegex: return RE2::FullMatch(v, m.value);
  }
  return false;
}

const RouteConfig* naiveMatch(const VirtualHostConfig& vh, const std::string& method,
                              const std::string& path, const HeaderMap& h) {
  for (const auto& r : vh.routes) {
    bool ok = false;
    switch (r.match.kind) {
      case Kind::kPrefix: ok = path.rfind(r.match.value, 0) == 0; break;
      case Kind::kPath: ok = path == r.match.value; break;
      case Kind::kRegex: ok = RE2::FullMatch(path, r.match.value); break;
    }
    if (!ok) continue;
    if (!r.match.methods.empty()) {
      bool any = false;
      for (const auto& m : r.match.methods) any = any || m == method;
      if (!any) continue;
    }
    bool all = true;
    for (const auto& hm : r.match.headers) all = all && naiveHeader(hm, h);
    if (all) return &r;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("first match wins: indexed lookup equals a naive linear scan", "[router]") {
  std::mt19937_64 rng(20240611);
  auto pick = [&](const auto& v) { return v[rng() % v.size()]; };
  const std::vector<std::string> segs = {"a", "b", "ab", "v1", "v2", "api", "x", "users", "7", ""};
  auto randomPath = [&] {
    std::string p;
    size_t n = 1 + rng() % 4;
    for (size_t i = 0; i < n; ++i) p += "/" + pick(segs);
    if (rng() % 4 == 0) p += "/";
    return p;
  };
  const std::vector<std::string> regexes = {"/a/.*",     "/[ab]+/[0-9]+", "/v[0-9]/[^/]*",
                                            ".*x/7.*",   "/api(/.*)?",    "/",
                                            "/a/b/?",    "/users/[0-9]+", "/(v1|v2)/users/.*"};
  const std::vector<std::string> methods = {"GET", "POST", "PUT"};
  const std::vector<std::string> envs = {"prod", "pr", "stage", "e1", "e2", "e3", ""};

  int total_matched = 0;
  size_t total_distinct = 0;
  int by_kind[3] = {0, 0, 0};
  for (int round = 0; round < 5; ++round) {
    HttpConfig http;
    VirtualHostConfig vh = vhost("v", {"*"});
    int n_regex = 0;
    for (int i = 0; i < 200; ++i) {
      RouteConfig r;
      int kind = static_cast<int>(rng() % 10);
      if (kind < 5) {
        r.match.kind = Kind::kPrefix;
        std::string p = randomPath();
        // Also mid-segment prefixes; rarely a catch-all ("" or "/"), which gets a condition.
        r.match.value = rng() % 30 ? p.substr(0, std::min(p.size(), 2 + rng() % p.size()))
                                   : p.substr(0, rng() % 2);
        if (r.match.value.size() <= 1) r.match.methods.push_back(pick(methods));
      } else if (kind < 8) {
        r.match.kind = Kind::kPath;
        r.match.value = randomPath();
      } else if (round >= 2 || n_regex < 3) {
        // Rounds 0-1 keep to 3 regex routes (tried one by one); later rounds have ~40 (RE2::Set).
        r.match.kind = Kind::kRegex;
        r.match.value = pick(regexes);
        ++n_regex;
      } else {
        r.match.kind = Kind::kPath;
        r.match.value = randomPath();
      }
      // Most routes carry conditions, so that later routes get a chance too.
      if (rng() % 5 < 2) r.match.methods.push_back(pick(methods));
      if (rng() % 5 == 0) r.match.methods.push_back(pick(methods));
      if (rng() % 10 < 7) {
        HeaderMatcherConfig h;
        h.name = "x-env";
        h.kind = static_cast<HKind>(rng() % 4);
        if (h.kind == HKind::kPresent && rng() % 2) h.kind = HKind::kExact;
        h.value = h.kind == HKind::kRegex ? pick(std::vector<std::string>{"p.*", "e[12]", "e1,e.*"})
                                          : pick(envs);
        r.match.headers.push_back(h);
      }
      if (rng() % 8 == 0) r.match.headers.push_back(header("x-flag", HKind::kPresent));
      r.route.emplace();
      r.route->cluster = "c" + std::to_string(i);
      vh.routes.push_back(std::move(r));
    }
    http.virtual_hosts.push_back(vh);
    auto t = mustBuild(http);
    const auto& cvh = t->config().virtual_hosts[0];

    int matched = 0;
    std::set<const RouteConfig*> distinct;
    for (int i = 0; i < 1000; ++i) {
      std::string path = rng() % 20 ? randomPath() : "/";
      // Often aim at a configured path or prefix, so that exact routes get hits too.
      const auto& target = cvh.routes[rng() % cvh.routes.size()].match;
      if (target.kind != Kind::kRegex && rng() % 2) path = target.value;
      if (rng() % 4 == 0) path += pick(segs);  // paths not ending at a boundary
      std::string method = pick(methods);
      HeaderMap h;
      size_t nenv = rng() % 4 ? 1 : rng() % 3;
      for (size_t k = 0; k < nenv; ++k) h.add("x-env", pick(envs));
      if (rng() % 4 == 0) h.add("x-flag", "1");
      const RouteConfig* want = naiveMatch(cvh, method, path, h);
      const RouteConfig* got = t->match("any.host", method, path, h);
      INFO("round " << round << " request " << i << " " << method << " " << path);
      REQUIRE(got == want);
      if (got) ++matched;
      distinct.insert(got);
      if (got) ++by_kind[static_cast<int>(got->match.kind)];
    }
    total_matched += matched;
    total_distinct += distinct.size();
  }
  // The generator must exercise both outcomes, many routes, and every kind of route winning.
  CAPTURE(total_matched, total_distinct, by_kind[0], by_kind[1], by_kind[2]);
  CHECK(total_matched > 2000);
  CHECK(total_matched < 4900);
  CHECK(total_distinct > 150);
  CHECK(by_kind[static_cast<int>(Kind::kPrefix)] > 100);
  CHECK(by_kind[static_cast<int>(Kind::kPath)] > 100);
  CHECK(by_kind[static_cast<int>(Kind::kRegex)] > 50);
}

// ---- weighted clusters --------------------------------------------------------------------

TEST_CASE("pickWeighted", "[router]") {
  RouteActionConfig a;
  a.cluster = "single";
  CHECK(pickWeighted(a, 12345) == "single");

  auto wc = [](std::string name, uint32_t w) {
    WeightedClusterConfig c;
    c.cluster = std::move(name);
    c.weight = w;
    return c;
  };
  a.weighted_clusters = {wc("a", 90), wc("zero", 0), wc("b", 10)};
  CHECK(pickWeighted(a, 0) == "a");
  CHECK(pickWeighted(a, 89) == "a");
  CHECK(pickWeighted(a, 90) == "b");
  CHECK(pickWeighted(a, 99) == "b");
  CHECK(pickWeighted(a, 100) == "a");  // wraps modulo the total
  CHECK(pickWeighted(a, UINT64_MAX) == pickWeighted(a, UINT64_MAX % 100));

  // Every residue once: exact proportions.
  a.weighted_clusters = {wc("a", 1), wc("b", 2), wc("c", 7)};
  std::map<std::string, int> counts;
  for (uint64_t r = 0; r < 10 * 1000; ++r) counts[pickWeighted(a, r)]++;
  CHECK(counts["a"] == 1000);
  CHECK(counts["b"] == 2000);
  CHECK(counts["c"] == 7000);

  // A fixed-seed random stream lands within 2% of the weights.
  std::mt19937_64 rng(7);
  counts.clear();
  for (int i = 0; i < 100000; ++i) counts[pickWeighted(a, rng())]++;
  CHECK(counts["a"] == Approx(10000).epsilon(0.02 * 10));
  CHECK(counts["b"] == Approx(20000).epsilon(0.02 * 5));
  CHECK(counts["c"] == Approx(70000).epsilon(0.02));

  a.weighted_clusters = {wc("x", 0), wc("y", 0)};
  CHECK(pickWeighted(a, 5) == "x");
}
