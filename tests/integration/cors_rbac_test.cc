// The cors and rbac HTTP filters against the real binary over loopback, HTTP/1.1 and h2c (curl
// --http2-prior-knowledge): preflights answered by ferry and never forwarded, CORS headers on
// actual requests, exact and regex origins, credentials; rbac allow and deny rules on client
// CIDRs (IPv4, IPv6, after trusted x-forwarded-for hops and after PROXY protocol), paths,
// methods, headers and client-certificate SANs, refusals as 403 with flag RBAC (x-ferry-flags
// and ferry_downstream_response_flags_total), and shadow mode. Config parsing and matching
// details: tests/unit/filters/cors_rbac_test.cc.
#include <catch2/catch.hpp>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http2_support.h"
#include "tests/integration/http_upstream.h"
#include "tests/integration/tls_client.h"
#include "tests/integration/tls_test_support.h"

using namespace ferry::testing;
using namespace ferry::testing::tls_test;

namespace {

const std::string kRbacFlag = "ferry_downstream_response_flags_total{listener=\"web\",flag=\"RBAC\"}";

// curl (-D, -o, -w) with the response head: tests/integration/http2_support.h.
using Curl = h2test::CurlResult;
using h2test::curl;

// HTTP/1.1 and h2c (prior knowledge): the protocols every case runs over.
const std::vector<std::string> kProtocols = {"--http1.1", "--http2-prior-knowledge"};

// Ferry with the one filter `name` (config: block lines indented 12, or flow YAML) in front of
// `up`; `c` brings any other settings (its http_extra goes before filters:).
std::unique_ptr<FerryProcess> startWith(const HttpUpstream& up, const std::string& name, const std::string& config,
                                        FerryConfig c = {}, const std::vector<std::string>& args = {}) {
  c.http_extra = httpFilterYaml(name, config, true, c.http_extra);
  c.clusters = {{"up", {up.port()}}};
  return FerryProcess::start(c.yaml(), args);
}

// ferry_cors_requests_total{listener,result}: preflight_allowed, preflight_denied,
// origin_allowed, origin_denied, in that order.
Counts corsCounts(FerryProcess& f, const std::string& listener = "web") {
  return outcomeCounts(f, "ferry_cors_requests_total",
                       {"preflight_allowed", "preflight_denied", "origin_allowed", "origin_denied"}, listener);
}

// ferry_rbac_requests_total{listener,result}: allowed, denied, shadow_denied, in that order.
Counts rbacCounts(FerryProcess& f, const std::string& listener = "web") {
  return outcomeCounts(f, "ferry_rbac_requests_total", {"allowed", "denied", "shadow_denied"}, listener);
}

size_t countMethod(const HttpUpstream& up, const std::string& method) {
  size_t n = 0;
  for (const auto& r : up.requests()) n += r.method == method ? 1 : 0;
  return n;
}

const std::string kCorsConfig =
    "            allow_origins:\n"
    "              - https://app.example.com\n"
    "              - {regex: 'https://[a-z0-9-]+\\.preview\\.example\\.com'}\n"
    "            allow_methods: [GET, PUT, DELETE]\n"
    "            allow_headers: [content-type, x-token]\n"
    "            expose_headers: [x-request-id, x-total]\n"
    "            max_age: 10m\n";

}  // namespace

// ---- cors

TEST_CASE("cors: a preflight is answered by ferry (204 with the CORS headers) and never forwarded", "[cors]") {
  HttpUpstream up;
  auto f = startWith(up, "cors", kCorsConfig);
  const std::string base = "http://127.0.0.1:" + std::to_string(f->port("web"));
  TempDir dir;
  for (const auto& proto : kProtocols) {
    INFO(proto);
    for (const std::string origin : {"https://app.example.com", "https://pr-42.preview.example.com"}) {
      INFO(origin);
      Curl c = curl(dir, {proto, "-X", "OPTIONS", "-H", "Origin: " + origin, "-H", "Access-Control-Request-Method: PUT",
                          "-H", "Access-Control-Request-Headers: content-type,x-token", base + "/api/items"});
      INFO(c.err << c.headers);
      REQUIRE(c.exit_code == 0);
      CHECK(c.version == (proto == "--http1.1" ? "1.1" : "2"));
      CHECK(c.status == 204);
      CHECK(c.body.empty());
      CHECK(c.header("access-control-allow-origin") == origin);
      CHECK(c.header("access-control-allow-methods") == "GET, PUT, DELETE");
      CHECK(c.header("access-control-allow-headers") == "content-type, x-token");
      CHECK(c.header("access-control-max-age") == "600");
      CHECK(c.header("vary") == "Origin");
      CHECK_FALSE(c.has("access-control-allow-credentials"));
      CHECK_FALSE(c.has("access-control-expose-headers"));  // for actual responses only
      CHECK_FALSE(c.has("x-ferry-flags"));                  // not an error
    }
    // An origin that is not allowed: still answered here, without CORS headers (the browser
    // then fails the preflight and never sends the request).
    for (const std::string origin : {"https://evil.example.com", "https://app.example.com.evil.com",
                                     "https://x.preview.example.com.evil.com"}) {
      INFO(origin);
      Curl c = curl(dir, {proto, "-X", "OPTIONS", "-H", "Origin: " + origin, "-H", "Access-Control-Request-Method: PUT",
                          base + "/api/items"});
      REQUIRE(c.exit_code == 0);
      CHECK(c.status == 204);
      CHECK_FALSE(c.has("access-control-allow-origin"));
      CHECK_FALSE(c.has("access-control-allow-methods"));
      CHECK(c.header("vary") == "Origin");
    }
  }
  // The upstream saw no preflight at all.
  CHECK(up.requestCount() == 0);
  // An OPTIONS that is not a preflight (no Access-Control-Request-Method) is an ordinary
  // request: forwarded.
  HttpResponse plain = httpRequest(f->port("web"), "OPTIONS", "/api/items", "", {"Origin: https://app.example.com"});
  CHECK(plain.status == 200);
  REQUIRE(up.waitRequests(1));
  CHECK(countMethod(up, "OPTIONS") == 1);
  CHECK(plain.header("access-control-allow-origin") == "https://app.example.com");
  CHECK(up.requestCount() == 1);
  // Per protocol 2 allowed and 3 refused preflights; then one actual request.
  CHECK(corsCounts(*f) == Counts{4, 6, 1, 0});
}

TEST_CASE("cors: actual requests: an allowed origin gets the CORS headers, any other none, all are forwarded",
          "[cors]") {
  HttpUpstream up([](const UpstreamRequest& r) {
    if (r.target == "/vary")
      return UpstreamAction{HttpUpstream::response(200, "v", {"Vary: Accept-Encoding"})};
    return HttpUpstream::ok("ok:" + r.target);
  });
  auto f = startWith(up, "cors", kCorsConfig);
  const std::string base = "http://127.0.0.1:" + std::to_string(f->port("web"));
  TempDir dir;
  size_t forwarded = 0;
  for (const auto& proto : kProtocols) {
    INFO(proto);
    for (const std::string origin : {"https://app.example.com", "https://pr-7.preview.example.com"}) {
      Curl c = curl(dir, {proto, "-X", "PUT", "--data", "x", "-H", "Origin: " + origin, base + "/api/items"});
      INFO(c.err << c.headers);
      REQUIRE(c.exit_code == 0);
      CHECK(c.status == 200);
      CHECK(c.body == "ok:/api/items");
      CHECK(c.header("access-control-allow-origin") == origin);
      CHECK(c.header("access-control-expose-headers") == "x-request-id, x-total");
      CHECK(c.header("vary") == "Origin");
      CHECK_FALSE(c.has("access-control-allow-credentials"));
      CHECK_FALSE(c.has("access-control-allow-methods"));  // preflight only
      ++forwarded;
    }
    Curl bad = curl(dir, {proto, "-H", "Origin: https://evil.example.com", base + "/api/items"});
    INFO(bad.headers);
    CHECK(bad.status == 200);
    CHECK(bad.body == "ok:/api/items");
    CHECK_FALSE(bad.has("access-control-allow-origin"));
    CHECK_FALSE(bad.has("access-control-expose-headers"));
    CHECK(bad.header("vary") == "Origin");  // caches must not serve it to another origin
    ++forwarded;
    Curl none = curl(dir, {proto, base + "/api/items"});
    CHECK(none.status == 200);
    CHECK_FALSE(none.has("access-control-allow-origin"));
    ++forwarded;
    // The upstream's own Vary is extended, not replaced.
    Curl vary = curl(dir, {proto, "-H", "Origin: https://app.example.com", base + "/vary"});
    CHECK(vary.header("vary") == "Accept-Encoding, Origin");
    ++forwarded;
  }
  REQUIRE(up.waitRequests(forwarded));
  CHECK(up.requestCount() == forwarded);
  // The upstream got the Origin header as the client sent it.
  CHECK(up.requests().at(0).header("origin") == "https://app.example.com");
  // Per protocol 3 allowed origins and 1 other; no Origin at all is not counted.
  CHECK(corsCounts(*f) == Counts{0, 0, 6, 2});
}

TEST_CASE("cors: '*' answers '*', or echoes the origin with allow_credentials", "[cors]") {
  HttpUpstream up;
  TempDir dir;
  SECTION("without credentials: '*', no Vary") {
    auto f = startWith(up, "cors", "{allow_origins: ['*']}");
    const std::string base = "http://127.0.0.1:" + std::to_string(f->port("web"));
    for (const auto& proto : kProtocols) {
      Curl c = curl(dir, {proto, "-H", "Origin: https://any.example", base + "/x"});
      CHECK(c.status == 200);
      CHECK(c.header("access-control-allow-origin") == "*");
      CHECK_FALSE(c.has("vary"));
      Curl p = curl(dir, {proto, "-X", "OPTIONS", "-H", "Origin: https://any.example", "-H",
                          "Access-Control-Request-Method: GET", base + "/x"});
      CHECK(p.status == 204);
      CHECK(p.header("access-control-allow-origin") == "*");
      CHECK_FALSE(p.has("access-control-max-age"));  // not configured
    }
    CHECK(corsCounts(*f) == Counts{2, 0, 2, 0});
  }
  SECTION("with credentials: the origin itself, and Access-Control-Allow-Credentials") {
    auto f = startWith(up, "cors", "{allow_origins: ['*'], allow_credentials: true}");
    const std::string base = "http://127.0.0.1:" + std::to_string(f->port("web"));
    for (const auto& proto : kProtocols) {
      Curl c = curl(dir, {proto, "-H", "Origin: https://any.example", base + "/x"});
      CHECK(c.status == 200);
      CHECK(c.header("access-control-allow-origin") == "https://any.example");
      CHECK(c.header("access-control-allow-credentials") == "true");
      CHECK(c.header("vary") == "Origin");
      Curl p = curl(dir, {proto, "-X", "OPTIONS", "-H", "Origin: https://any.example", "-H",
                          "Access-Control-Request-Method: GET", base + "/x"});
      CHECK(p.status == 204);
      CHECK(p.header("access-control-allow-origin") == "https://any.example");
      CHECK(p.header("access-control-allow-credentials") == "true");
    }
    CHECK(corsCounts(*f) == Counts{2, 0, 2, 0});
  }
  CHECK(countMethod(up, "OPTIONS") == 0);
}

TEST_CASE("cors: forward_not_matching_preflights sends other origins' preflights upstream", "[cors]") {
  HttpUpstream up;
  auto f = startWith(up, "cors", "{allow_origins: [https://app.example.com], forward_not_matching_preflights: true}");
  const uint16_t port = f->port("web");
  HttpResponse mine = httpRequest(port, "OPTIONS", "/x", "",
                                  {"Origin: https://app.example.com", "Access-Control-Request-Method: GET"});
  CHECK(mine.status == 204);
  CHECK(mine.header("access-control-allow-origin") == "https://app.example.com");
  HttpResponse other = httpRequest(port, "OPTIONS", "/x", "",
                                   {"Origin: https://other.example.com", "Access-Control-Request-Method: GET"});
  CHECK(other.status == 200);
  CHECK(other.body == "ok:/x");
  CHECK_FALSE(other.hasHeader("access-control-allow-origin"));
  REQUIRE(up.waitRequests(1));
  CHECK(countMethod(up, "OPTIONS") == 1);
  CHECK(up.requests().at(0).header("origin") == "https://other.example.com");
  CHECK(corsCounts(*f) == Counts{1, 1, 0, 0});  // the forwarded one counts as denied
}

// ---- rbac

TEST_CASE("rbac: allow on client CIDR; a refusal is 403 RBAC, flagged and counted, never forwarded", "[rbac]") {
  HttpUpstream up;
  TempDir dir;
  SECTION("127.0.0.0/8 is allowed") {
    auto f = startWith(up, "rbac", "{action: allow, rules: [{client_cidrs: [10.0.0.0/8, 127.0.0.0/8]}]}");
    const std::string base = "http://127.0.0.1:" + std::to_string(f->port("web"));
    for (const auto& proto : kProtocols) {
      Curl c = curl(dir, {proto, base + "/in"});
      INFO(c.err);
      CHECK(c.status == 200);
      CHECK(c.body == "ok:/in");
      CHECK_FALSE(c.has("x-ferry-flags"));
    }
    CHECK(up.requestCount() == 2);
    CHECK(metricValue(*f, kRbacFlag) == 0);
    CHECK(rbacCounts(*f) == Counts{2, 0, 0});
  }
  SECTION("only 10.0.0.0/8 is allowed: loopback is refused") {
    auto f = startWith(up, "rbac", "{action: allow, rules: [{client_cidrs: [10.0.0.0/8]}]}");
    const std::string base = "http://127.0.0.1:" + std::to_string(f->port("web"));
    for (const auto& proto : kProtocols) {
      Curl c = curl(dir, {proto, base + "/out"});
      INFO(c.err);
      CHECK(c.status == 403);
      CHECK(c.body == "access denied\n");
      CHECK(c.header("x-ferry-flags") == "RBAC");
      CHECK(c.header("content-type") == "text/plain");
    }
    CHECK(metricValue(*f, kRbacFlag) == 2);
    CHECK(metricValue(*f, "ferry_downstream_requests_total{listener=\"web\",code=\"4xx\"}") == 2);
    // A refused request leaves the HTTP/1.1 connection usable (a 403 is not a protocol error).
    auto c = TcpClient::connect(f->port("web"));
    REQUIRE(c);
    REQUIRE(c->sendAll("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
    CHECK(readHttpResponse(*c).status == 403);
    REQUIRE(c->sendAll("GET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
    CHECK(readHttpResponse(*c).status == 403);
    CHECK(waitMetric(f->adminPort(), kRbacFlag, 4));
    CHECK(up.requestCount() == 0);
    CHECK(rbacCounts(*f) == Counts{0, 4, 0});
  }
}

TEST_CASE("rbac: deny rules on path prefix, method and headers", "[rbac]") {
  HttpUpstream up;
  auto f = startWith(up, "rbac",
                     "            action: deny\n"
                     "            rules:\n"
                     "              - path_prefix: /admin/\n"
                     "              - {methods: [DELETE], path_prefix: /api/}\n"
                     "              - headers: [{name: x-debug, present: true}]\n"
                     "              - headers: [{name: user-agent, regex: '.*sqlmap.*'}]\n"
                     "              - headers: [{name: host, exact: internal.example.com}]\n");
  const uint16_t port = f->port("web");
  struct Case {
    std::string method, path;
    std::vector<std::string> headers;
    int status;
  };
  const std::vector<Case> cases = {
      {"GET", "/admin/users", {}, 403},
      {"GET", "/admin", {}, 200},  // a prefix is a plain string prefix: "/admin/" needs the slash
      {"GET", "/public/admin/x", {}, 200},
      {"GET", "/admin/../public", {}, 200},   // normalised first: /public
      {"GET", "/public/../admin/x", {}, 403},  // normalised first: /admin/x
      {"GET", "/%61dmin/x", {}, 403},         // %61 = 'a', decoded before matching
      {"DELETE", "/api/items/1", {}, 403},
      {"DELETE", "/other/1", {}, 200},  // both conditions of the rule must hold
      {"GET", "/api/items/1", {}, 200},
      {"GET", "/api/items/1", {"X-Debug: 1"}, 403},
      {"GET", "/api/items/1", {"User-Agent: sqlmap/1.7"}, 403},
      {"GET", "/api/items/1", {"User-Agent: curl/8"}, 200},
      {"GET", "/api/items/1", {"Host: internal.example.com"}, 403},
      {"GET", "/api/items/1", {"Host: www.example.com"}, 200},
  };
  int refused = 0, passed = 0;
  for (const auto& c : cases) {
    INFO(c.method << " " << c.path);
    HttpResponse r = httpRequest(port, c.method, c.path, "", c.headers);
    CHECK(r.status == c.status);
    if (c.status == 403) {
      CHECK(r.body == "access denied\n");
      CHECK(r.header("x-ferry-flags") == "RBAC");
      ++refused;
    } else {
      CHECK_FALSE(r.hasHeader("x-ferry-flags"));
      ++passed;
    }
  }
  CHECK(metricValue(*f, kRbacFlag) == refused);
  CHECK(rbacCounts(*f) == Counts{static_cast<double>(passed), static_cast<double>(refused), 0});
  REQUIRE(up.waitRequests(passed));
  CHECK(up.requestCount() == static_cast<size_t>(passed));
  for (const auto& r : up.requests()) CHECK(r.target.rfind("/admin/", 0) != 0);
  // Over HTTP/2 the same.
  TempDir dir;
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  Curl h2 = curl(dir, {"--http2-prior-knowledge", "-X", "DELETE", base + "/api/items/1"});
  CHECK(h2.version == "2");
  CHECK(h2.status == 403);
  CHECK(h2.header("x-ferry-flags") == "RBAC");
  Curl ok = curl(dir, {"--http2-prior-knowledge", base + "/api/items/1"});
  CHECK(ok.status == 200);
  CHECK(metricValue(*f, kRbacFlag) == refused + 1);
  CHECK(rbacCounts(*f) == Counts{passed + 1.0, refused + 1.0, 0});
}

TEST_CASE("rbac: IPv6 client CIDRs", "[rbac]") {
  HttpUpstream up;
  auto f = startWith(up, "rbac",
                     "            action: allow\n"
                     "            rules:\n"
                     "              - {client_cidrs: ['::1/128'], path_prefix: /a/}\n"
                     "              - {client_cidrs: ['2001:db8::/32', 127.0.0.0/8], path_prefix: /b/}\n",
                     FerryConfig{.listener_address = "'[::1]:0'"});
  const std::string base = "http://[::1]:" + std::to_string(f->port("web"));
  TempDir dir;
  for (const auto& proto : kProtocols) {
    INFO(proto);
    Curl a = curl(dir, {proto, "-g", base + "/a/x"});
    INFO(a.err);
    CHECK(a.status == 200);
    Curl b = curl(dir, {proto, "-g", base + "/b/x"});
    CHECK(b.status == 403);
    CHECK(b.header("x-ferry-flags") == "RBAC");
  }
  CHECK(metricValue(*f, kRbacFlag) == 2);
  CHECK(up.requestCount() == 2);
  CHECK(rbacCounts(*f) == Counts{2, 2, 0});
}

TEST_CASE("rbac: the client address is the one after the trusted x-forwarded-for hops", "[rbac]") {
  HttpUpstream up;
  const std::string rules =
      "            action: allow\n"
      "            rules: [{client_cidrs: [203.0.113.0/24]}]\n";
  SECTION("xff_trusted_hops: 1: the rightmost address") {
    auto f = startWith(up, "rbac", rules, FerryConfig{.http_extra = "      xff_trusted_hops: 1\n"});
    const uint16_t port = f->port("web");
    CHECK(httpRequest(port, "GET", "/", "", {"X-Forwarded-For: 203.0.113.7"}).status == 200);
    CHECK(httpRequest(port, "GET", "/", "", {"X-Forwarded-For: 198.51.100.1, 203.0.113.7"}).status == 200);
    // The left entries are whatever the client wrote: not trusted.
    CHECK(httpRequest(port, "GET", "/", "", {"X-Forwarded-For: 203.0.113.7, 198.51.100.1"}).status == 403);
    // Repeated headers count as one list.
    CHECK(httpRequest(port, "GET", "/", "", {"X-Forwarded-For: 203.0.113.7", "X-Forwarded-For: 198.51.100.1"}).status ==
          403);
    CHECK(httpRequest(port, "GET", "/", "", {"X-Forwarded-For: 198.51.100.1", "X-Forwarded-For: 203.0.113.7"}).status ==
          200);
    // No header, or garbage in it: the connection's address (loopback) is the client.
    CHECK(httpRequest(port, "GET", "/").status == 403);
    CHECK(httpRequest(port, "GET", "/", "", {"X-Forwarded-For: 203.0.113.x"}).status == 403);
    CHECK(metricValue(*f, kRbacFlag) == 4);
    CHECK(rbacCounts(*f) == Counts{3, 4, 0});
    // Upstream still gets the whole chain plus the connection's address.
    REQUIRE(up.waitRequests(3));
    CHECK(up.requests().at(1).header("x-forwarded-for") == "198.51.100.1, 203.0.113.7, 127.0.0.1");
  }
  SECTION("xff_trusted_hops: 2: the second from the right") {
    auto f = startWith(up, "rbac", rules, FerryConfig{.http_extra = "      xff_trusted_hops: 2\n"});
    const uint16_t port = f->port("web");
    CHECK(httpRequest(port, "GET", "/", "", {"X-Forwarded-For: 203.0.113.7, 10.0.0.1"}).status == 200);
    CHECK(httpRequest(port, "GET", "/", "", {"X-Forwarded-For: 10.0.0.1, 203.0.113.7"}).status == 403);
    CHECK(httpRequest(port, "GET", "/", "", {"X-Forwarded-For: 203.0.113.7"}).status == 403);  // too few: loopback
  }
  SECTION("no trusted hops: x-forwarded-for is ignored") {
    auto f = startWith(up, "rbac", rules);
    CHECK(httpRequest(f->port("web"), "GET", "/", "", {"X-Forwarded-For: 203.0.113.7"}).status == 403);
  }
}

TEST_CASE("rbac: the client address is the PROXY protocol's source", "[rbac][proxy_protocol]") {
  HttpUpstream up;
  auto f = startWith(up, "rbac", "{action: deny, rules: [{client_cidrs: [198.51.100.0/24, '2001:db8:bad::/48']}]}",
                     FerryConfig{.listener_extra = "    proxy_protocol: true\n"});
  const uint16_t port = f->port("web");
  auto exchange = [&](const std::string& proxy_line) {
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    REQUIRE(c->sendAll(proxy_line + "GET /pp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    return readHttpResponse(*c);
  };
  CHECK(exchange("PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n").status == 200);
  HttpResponse denied = exchange("PROXY TCP4 198.51.100.9 127.0.0.1 5555 80\r\n");
  CHECK(denied.status == 403);
  CHECK(denied.header("x-ferry-flags") == "RBAC");
  CHECK(exchange("PROXY TCP6 2001:db8:bad::1 ::1 5555 80\r\n").status == 403);
  CHECK(exchange("PROXY TCP6 2001:db8:900d::1 ::1 5555 80\r\n").status == 200);
  CHECK(metricValue(*f, kRbacFlag) == 2);
  CHECK(up.requestCount() == 2);
  CHECK(rbacCounts(*f) == Counts{2, 2, 0});
}

TEST_CASE("rbac: client_cert_sans matches the verified client certificate", "[rbac][tls]") {
  Pki pki;
  Issued server = pki.server("a", "a", {"a.test"});
  Issued ops = pki.client("ops", "client-ops", {"spiffe://test/ops"});
  Issued dev = pki.client("dev", "client-dev", {"spiffe://test/dev"});
  HttpUpstream up;
  auto f = startWith(up, "rbac", "{action: allow, rules: [{client_cert_sans: ['spiffe://test/ops']}]}",
                     FerryConfig{.listener_extra = tlsBlock({server.files}, "      client_ca_file: " + pki.ca_file +
                                                                                "\n      client_cert: optional\n")});
  const uint16_t port = f->port("web");
  TlsClientOptions o = pki.verifying("a.test");
  o.cert_file = ops.files.cert;
  o.key_file = ops.files.key;
  HttpResponse r = httpsGet(port, "a.test", "/ops", o);
  INFO(r.error);
  CHECK(r.status == 200);
  o.cert_file = dev.files.cert;
  o.key_file = dev.files.key;
  HttpResponse d = httpsGet(port, "a.test", "/dev", o);
  CHECK(d.status == 403);
  CHECK(d.header("x-ferry-flags") == "RBAC");
  HttpResponse anon = httpsGet(port, "a.test", "/anon", pki.verifying("a.test"));
  CHECK(anon.status == 403);
  CHECK(metricValue(*f, kRbacFlag) == 2);
  CHECK(up.requestCount() == 1);
  CHECK(rbacCounts(*f) == Counts{1, 2, 0});
}

TEST_CASE("rbac: shadow mode forwards what it would refuse, without the flag, and logs it", "[rbac]") {
  HttpUpstream up;
  auto f = startWith(up, "rbac", "{action: deny, shadow: true, rules: [{path_prefix: /admin/}]}", {},
                     {"--log-level", "debug"});
  const uint16_t port = f->port("web");
  HttpResponse r = httpRequest(port, "GET", "/admin/users");
  CHECK(r.status == 200);
  CHECK(r.body == "ok:/admin/users");
  CHECK_FALSE(r.hasHeader("x-ferry-flags"));
  TempDir dir;
  Curl h2 = curl(dir, {"--http2-prior-knowledge", "http://127.0.0.1:" + std::to_string(port) + "/admin/h2"});
  CHECK(h2.status == 200);
  CHECK_FALSE(h2.has("x-ferry-flags"));
  CHECK(httpRequest(port, "GET", "/public").status == 200);
  CHECK(f->waitForLogCount("rbac: shadow denial: GET /admin/", 2));
  CHECK(f->countInLog("rbac: shadow denial") == 2);
  CHECK(metricValue(*f, kRbacFlag) == 0);
  CHECK(up.requestCount() == 3);
  CHECK(rbacCounts(*f) == Counts{1, 0, 2});  // counted, never enforced
}

// ---- per-route overrides (routes[].filter_overrides; overrideRoutes in config_builder.h)

TEST_CASE("cors: a route disables cors or allows another origin", "[cors][filter_override]") {
  HttpUpstream up;
  auto f = startWith(up, "cors", "{allow_origins: ['https://app.example.com']}",
                     FerryConfig{.listener = "edge",
                                 .routes = overrideRoutes("cors", "{allow_origins: ['https://other.example.com']}")});
  const std::string base = "http://127.0.0.1:" + std::to_string(f->port("edge"));
  TempDir dir;
  auto preflight = [&](const std::string& proto, const std::string& origin, const std::string& path) {
    return curl(dir, {proto, "-X", "OPTIONS", "-H", "Origin: " + origin, "-H", "Access-Control-Request-Method: GET",
                      base + path});
  };
  for (const auto& proto : kProtocols) {
    INFO(proto);
    // The listener's config.
    Curl c = preflight(proto, "https://app.example.com", "/x");
    INFO(c.err << c.headers);
    CHECK(c.version == (proto == "--http1.1" ? "1.1" : "2"));
    CHECK(c.status == 204);
    CHECK(c.header("access-control-allow-origin") == "https://app.example.com");
    // Disabled: the preflight is an ordinary request, forwarded; nothing CORS on the answer.
    c = preflight(proto, "https://app.example.com", "/off/x");
    CHECK(c.status == 200);
    CHECK(c.body == "ok:/off/x");
    CHECK_FALSE(c.has("access-control-allow-origin"));
    CHECK_FALSE(c.has("vary"));
    c = curl(dir, {proto, "-H", "Origin: https://app.example.com", base + "/off/y"});
    CHECK(c.status == 200);
    CHECK_FALSE(c.has("access-control-allow-origin"));
    // The route's config: the other origin only.
    c = preflight(proto, "https://app.example.com", "/alt/x");
    CHECK(c.status == 204);
    CHECK_FALSE(c.has("access-control-allow-origin"));
    c = preflight(proto, "https://other.example.com", "/alt/x");
    CHECK(c.status == 204);
    CHECK(c.header("access-control-allow-origin") == "https://other.example.com");
    c = curl(dir, {proto, "-H", "Origin: https://other.example.com", base + "/alt/y"});
    CHECK(c.status == 200);
    CHECK(c.body == "ok:/alt/y");
    CHECK(c.header("access-control-allow-origin") == "https://other.example.com");
  }
  CHECK(countMethod(up, "OPTIONS") == 2);  // the disabled route's preflights only
  // Both configs count into the listener's series; the disabled route counts nothing.
  CHECK(corsCounts(*f, "edge") == Counts{4, 2, 2, 0});
}

TEST_CASE("rbac: a route disables rbac or has its own rules", "[rbac][filter_override]") {
  HttpUpstream up;
  // The listener refuses loopback clients; the /alt route only refuses 10/8 and /alt/admin/.
  auto f = startWith(
      up, "rbac", "{action: deny, rules: [{client_cidrs: [127.0.0.0/8]}]}",
      FerryConfig{.listener = "edge",
                  .routes = overrideRoutes(
                      "rbac", "{action: deny, rules: [{client_cidrs: [10.0.0.0/8]}, {path_prefix: /alt/admin/}]}")});
  const std::string base = "http://127.0.0.1:" + std::to_string(f->port("edge"));
  TempDir dir;
  for (const auto& proto : kProtocols) {
    INFO(proto);
    Curl c = curl(dir, {proto, base + "/x"});
    INFO(c.err << c.headers);
    CHECK(c.version == (proto == "--http1.1" ? "1.1" : "2"));
    CHECK(c.status == 403);
    CHECK(c.header("x-ferry-flags") == "RBAC");
    c = curl(dir, {proto, base + "/off/x"});
    CHECK(c.status == 200);
    CHECK(c.body == "ok:/off/x");
    c = curl(dir, {proto, base + "/alt/x"});
    CHECK(c.status == 200);
    CHECK(c.body == "ok:/alt/x");
    c = curl(dir, {proto, base + "/alt/admin/x"});
    CHECK(c.status == 403);
    CHECK(c.header("x-ferry-flags") == "RBAC");
  }
  CHECK(up.requestCount() == 4);
  CHECK(rbacCounts(*f, "edge") == Counts{2, 4, 0});
  CHECK(metricValue(*f, "ferry_downstream_response_flags_total{listener=\"edge\",flag=\"RBAC\"}") == 4);
}
