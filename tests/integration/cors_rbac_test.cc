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
#include "tests/integration/http_upstream.h"
#include "tests/integration/tls_client.h"
#include "tests/integration/tls_test_support.h"

using namespace ferry::testing;
using namespace ferry::testing::tls_test;

namespace {

const std::string kRbacFlag = "ferry_downstream_response_flags_total{listener=\"web\",flag=\"RBAC\"}";

// One curl exchange: status, response headers (the last response's), body.
struct Curl {
  int exit_code = -1;
  std::string version;
  int status = 0;
  std::string headers;  // raw, as curl's -D wrote them
  std::string body;
  std::string err;
  // The first value of a header (case-insensitive name), "" when absent.
  std::string header(const std::string& name) const {
    auto lower = [](std::string s) {
      for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return s;
    };
    const std::string want = lower(name) + ":";
    size_t pos = 0;
    while (pos < headers.size()) {
      size_t end = headers.find("\r\n", pos);
      if (end == std::string::npos) end = headers.size();
      const std::string line = headers.substr(pos, end - pos);
      if (lower(line).rfind(want, 0) == 0) {
        std::string v = line.substr(want.size());
        while (!v.empty() && v.front() == ' ') v.erase(0, 1);
        while (!v.empty() && (v.back() == ' ' || v.back() == '\r')) v.pop_back();
        return v;
      }
      pos = end + 2;
    }
    return "";
  }
  bool has(const std::string& name) const {
    const std::string h = "\n" + headers;
    std::string lower_h = h;
    for (char& c : lower_h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string n = name;
    for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return lower_h.find("\n" + n + ":") != std::string::npos;
  }
};

Curl curl(const TempDir& dir, const std::vector<std::string>& args) {
  const std::string body_file = dir.path() + "/curl-body";
  const std::string head_file = dir.path() + "/curl-headers";
  std::vector<std::string> argv{"curl", "-sS", "-o", body_file, "-D", head_file, "-w", "%{http_version} %{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = runProcess(argv, 10s);
  Curl c;
  c.exit_code = r.exit_code;
  c.err = r.err;
  const size_t sp = r.out.find(' ');
  if (sp != std::string::npos) {
    c.version = r.out.substr(0, sp);
    c.status = std::atoi(r.out.c_str() + sp + 1);
  }
  c.body = readFile(body_file);
  c.headers = readFile(head_file);
  return c;
}

// HTTP/1.1 and h2c (prior knowledge): the protocols every case runs over.
const std::vector<std::string> kProtocols = {"--http1.1", "--http2-prior-knowledge"};

std::string filterYaml(const std::string& name, const std::string& config_lines, const std::string& more_http = "") {
  return "      response_flags_header: true\n" + more_http +
         "      filters:\n"
         "        - name: " + name + "\n"
         "          config:\n" + config_lines;
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
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = filterYaml("cors", kCorsConfig), .clusters = {{"up", {up.port()}}}}.yaml());
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
}

TEST_CASE("cors: actual requests: an allowed origin gets the CORS headers, any other none, all are forwarded",
          "[cors]") {
  HttpUpstream up([](const UpstreamRequest& r) {
    if (r.target == "/vary")
      return UpstreamAction{HttpUpstream::response(200, "v", {"Vary: Accept-Encoding"})};
    return HttpUpstream::ok("ok:" + r.target);
  });
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = filterYaml("cors", kCorsConfig), .clusters = {{"up", {up.port()}}}}.yaml());
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
}

TEST_CASE("cors: '*' answers '*', or echoes the origin with allow_credentials", "[cors]") {
  HttpUpstream up;
  TempDir dir;
  SECTION("without credentials: '*', no Vary") {
    auto f = FerryProcess::start(FerryConfig{.http_extra = filterYaml("cors", "            allow_origins: ['*']\n"),
                                             .clusters = {{"up", {up.port()}}}}
                                     .yaml());
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
  }
  SECTION("with credentials: the origin itself, and Access-Control-Allow-Credentials") {
    auto f = FerryProcess::start(
        FerryConfig{.http_extra = filterYaml("cors", "            allow_origins: ['*']\n            allow_credentials: true\n"),
                    .clusters = {{"up", {up.port()}}}}
            .yaml());
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
  }
  CHECK(countMethod(up, "OPTIONS") == 0);
}

TEST_CASE("cors: forward_not_matching_preflights sends other origins' preflights upstream", "[cors]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = filterYaml("cors", "            allow_origins: [https://app.example.com]\n"
                                                   "            forward_not_matching_preflights: true\n"),
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
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
}

// ---- rbac

TEST_CASE("rbac: allow on client CIDR; a refusal is 403 RBAC, flagged and counted, never forwarded", "[rbac]") {
  HttpUpstream up;
  TempDir dir;
  SECTION("127.0.0.0/8 is allowed") {
    auto f = FerryProcess::start(
        FerryConfig{.http_extra = filterYaml("rbac", "            action: allow\n"
                                                     "            rules: [{client_cidrs: [10.0.0.0/8, 127.0.0.0/8]}]\n"),
                    .clusters = {{"up", {up.port()}}}}
            .yaml());
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
  }
  SECTION("only 10.0.0.0/8 is allowed: loopback is refused") {
    auto f = FerryProcess::start(
        FerryConfig{.http_extra = filterYaml("rbac", "            action: allow\n"
                                                     "            rules: [{client_cidrs: [10.0.0.0/8]}]\n"),
                    .clusters = {{"up", {up.port()}}}}
            .yaml());
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
  }
}

TEST_CASE("rbac: deny rules on path prefix, method and headers", "[rbac]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = filterYaml("rbac", "            action: deny\n"
                                                   "            rules:\n"
                                                   "              - path_prefix: /admin/\n"
                                                   "              - {methods: [DELETE], path_prefix: /api/}\n"
                                                   "              - headers: [{name: x-debug, present: true}]\n"
                                                   "              - headers: [{name: user-agent, regex: '.*sqlmap.*'}]\n"
                                                   "              - headers: [{name: host, exact: internal.example.com}]\n"),
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
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
}

TEST_CASE("rbac: IPv6 client CIDRs", "[rbac]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.listener_address = "'[::1]:0'",
                  .http_extra = filterYaml("rbac", "            action: allow\n"
                                                   "            rules:\n"
                                                   "              - {client_cidrs: ['::1/128'], path_prefix: /a/}\n"
                                                   "              - {client_cidrs: ['2001:db8::/32', 127.0.0.0/8], path_prefix: /b/}\n"),
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
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
}

TEST_CASE("rbac: the client address is the one after the trusted x-forwarded-for hops", "[rbac]") {
  HttpUpstream up;
  const std::string rules =
      "            action: allow\n"
      "            rules: [{client_cidrs: [203.0.113.0/24]}]\n";
  SECTION("xff_trusted_hops: 1: the rightmost address") {
    auto f = FerryProcess::start(FerryConfig{.http_extra = filterYaml("rbac", rules, "      xff_trusted_hops: 1\n"),
                                             .clusters = {{"up", {up.port()}}}}
                                     .yaml());
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
    // Upstream still gets the whole chain plus the connection's address.
    REQUIRE(up.waitRequests(3));
    CHECK(up.requests().at(1).header("x-forwarded-for") == "198.51.100.1, 203.0.113.7, 127.0.0.1");
  }
  SECTION("xff_trusted_hops: 2: the second from the right") {
    auto f = FerryProcess::start(FerryConfig{.http_extra = filterYaml("rbac", rules, "      xff_trusted_hops: 2\n"),
                                             .clusters = {{"up", {up.port()}}}}
                                     .yaml());
    const uint16_t port = f->port("web");
    CHECK(httpRequest(port, "GET", "/", "", {"X-Forwarded-For: 203.0.113.7, 10.0.0.1"}).status == 200);
    CHECK(httpRequest(port, "GET", "/", "", {"X-Forwarded-For: 10.0.0.1, 203.0.113.7"}).status == 403);
    CHECK(httpRequest(port, "GET", "/", "", {"X-Forwarded-For: 203.0.113.7"}).status == 403);  // too few: loopback
  }
  SECTION("no trusted hops: x-forwarded-for is ignored") {
    auto f = FerryProcess::start(
        FerryConfig{.http_extra = filterYaml("rbac", rules), .clusters = {{"up", {up.port()}}}}.yaml());
    CHECK(httpRequest(f->port("web"), "GET", "/", "", {"X-Forwarded-For: 203.0.113.7"}).status == 403);
  }
}

TEST_CASE("rbac: the client address is the PROXY protocol's source", "[rbac][proxy_protocol]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.listener_extra = "    proxy_protocol: true\n",
                  .http_extra = filterYaml("rbac", "            action: deny\n"
                                                   "            rules: [{client_cidrs: [198.51.100.0/24, '2001:db8:bad::/48']}]\n"),
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
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
}

TEST_CASE("rbac: client_cert_sans matches the verified client certificate", "[rbac][tls]") {
  Pki pki;
  Issued server = pki.server("a", "a", {"a.test"});
  Issued ops = pki.client("ops", "client-ops", {"spiffe://test/ops"});
  Issued dev = pki.client("dev", "client-dev", {"spiffe://test/dev"});
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{
      .listener_extra = tlsBlock({server.files}, "      client_ca_file: " + pki.ca_file + "\n      client_cert: optional\n"),
      .http_extra = filterYaml("rbac", "            action: allow\n"
                                       "            rules: [{client_cert_sans: [spiffe://test/ops]}]\n"),
      .clusters = {{"up", {up.port()}}}}.yaml());
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
}

TEST_CASE("rbac: shadow mode forwards what it would refuse, without the flag, and logs it", "[rbac]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = filterYaml("rbac", "            action: deny\n"
                                                   "            shadow: true\n"
                                                   "            rules: [{path_prefix: /admin/}]\n"),
                  .clusters = {{"up", {up.port()}}}}
          .yaml(),
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
}
