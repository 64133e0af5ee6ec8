// The HTTP/1.1 reverse proxy over real loopback sockets against fake upstreams: routing and
// route actions, keep-alive pooling, pipelining, 100-continue, bodies in both directions,
// the upstream error table, websocket tunnels, HTTP filters and metrics.
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <regex>
#include <thread>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_upstream.h"

using namespace ferry::testing;

namespace {

// True if the sending side `fd` of a TCP connection has bytes queued and none in flight: the
// peer's receive window is closed (its receive buffer is full: it is not reading). *acked: the
// bytes the peer has acknowledged so far (grows only when the peer takes more data).
bool sendWindowClosed(int fd, uint64_t* acked) {
  int queued = 0, unsent = 0;
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (::ioctl(fd, SIOCOUTQ, &queued) != 0 || ::ioctl(fd, SIOCOUTQNSD, &unsent) != 0 ||
      ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) {
    return false;
  }
  *acked = ti.tcpi_bytes_acked;
  return unsent > 0 && queued == unsent;
}

}  // namespace

TEST_CASE("http: a GET is proxied with forwarding headers and the response comes back", "[http]") {
  HttpUpstream up([](const UpstreamRequest& r) {
    return UpstreamAction{HttpUpstream::response(200, "hello " + r.target, {"x-up: 1", "server: fake"})};
  });
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  auto r = httpRequest(f->port("web"), "GET", "/a/b?x=1", "", {"Host: example.com", "x-request-id: abc"});
  REQUIRE(r.status == 200);
  REQUIRE(r.body == "hello /a/b?x=1");
  REQUIRE(r.header("x-up") == "1");
  REQUIRE(up.waitRequests(1));
  auto req = up.requests()[0];
  REQUIRE(req.method == "GET");
  REQUIRE(req.target == "/a/b?x=1");
  REQUIRE(req.header("host") == "example.com");
  REQUIRE(req.header("x-forwarded-for") == "127.0.0.1");
  REQUIRE(req.header("x-forwarded-proto") == "http");
  REQUIRE(req.header("x-request-id") == "abc");
  REQUIRE(metricValue(*f, "ferry_downstream_requests_total{listener=\"web\",code=\"2xx\"}") == 1);
  REQUIRE(metricValue(*f, "ferry_upstream_requests_total{cluster=\"up\",code=\"2xx\"}") == 1);
  REQUIRE(metricValue(*f, "ferry_downstream_request_duration_seconds_count{listener=\"web\"}") == 1);
}

TEST_CASE("http: routes pick virtual hosts and routes in order; actions rewrite", "[http][routing]") {
  HttpUpstream a([](const UpstreamRequest& r) { return HttpUpstream::ok("a:" + r.target + ":" + r.header("host")); });
  HttpUpstream b([](const UpstreamRequest& r) { return HttpUpstream::ok("b:" + r.target + ":" + r.header("x-env")); });
  std::string cfg =
      "runtime: {workers: 1}\n"
      "admin: {address: 127.0.0.1:0}\n"
      "listeners:\n"
      "  - name: web\n"
      "    address: 127.0.0.1:0\n"
      "    http:\n"
      "      virtual_hosts:\n"
      "        - name: api\n"
      "          domains: [\"api.example.com\"]\n"
      "          routes:\n"
      "            - match: {prefix: /v1/}\n"
      "              route: {cluster: b, prefix_rewrite: /internal/}\n"
      "              request_headers: {set: {x-env: prod}, remove: [x-debug]}\n"
      "              response_headers: {set: {x-served-by: ferry}, remove: [x-secret]}\n"
      "            - match: {prefix: /}\n"
      "              direct_response: {status: 403, body: \"api only\\n\"}\n"
      "        - name: wild\n"
      "          domains: [\"*.example.com\"]\n"
      "          routes:\n"
      "            - match: {path: /exact}\n"
      "              route: {cluster: a, host_rewrite: internal.a}\n"
      "            - match: {regex: \"^/u/[0-9]+$\"}\n"
      "              direct_response: {status: 200, body: \"user\\n\"}\n"
      "            - match: {prefix: /m, methods: [POST]}\n"
      "              direct_response: {status: 201, body: \"posted\\n\"}\n"
      "            - match: {prefix: /h, headers: [{name: x-canary, exact: \"yes\"}]}\n"
      "              direct_response: {status: 200, body: \"canary\\n\"}\n"
      "            - match: {prefix: /old/}\n"
      "              redirect: {prefix_rewrite: /new/, code: 302}\n"
      "        - name: rest\n"
      "          domains: [\"*\"]\n"
      "          routes:\n"
      "            - match: {path: /only}\n"
      "              direct_response: {status: 200}\n"
      "clusters:\n" +
      Cluster{"a", {a.port()}}.yaml() + Cluster{"b", {b.port()}}.yaml();
  auto f = FerryProcess::start(cfg);
  uint16_t p = f->port("web");
  auto get = [&](const std::string& host, const std::string& path, std::vector<std::string> extra = {},
                 const std::string& method = "GET") {
    extra.push_back("Host: " + host);
    return httpRequest(p, method, path, "", extra);
  };
  auto r = get("api.example.com", "/v1/users?id=7", {"x-debug: 1"});
  REQUIRE(r.status == 200);
  REQUIRE(r.body == "b:/internal/users?id=7:prod");
  REQUIRE(r.header("x-served-by") == "ferry");
  REQUIRE(b.waitRequests(1));
  REQUIRE_FALSE(b.requests()[0].hasHeader("x-debug"));
  REQUIRE(get("api.example.com", "/other").status == 403);
  // Exact host beats the suffix; the suffix matches any depth; host_rewrite sets Host.
  r = get("x.y.example.com", "/exact");
  REQUIRE(r.status == 200);
  REQUIRE(r.body == "a:/exact:internal.a");
  REQUIRE(get("Deep.Sub.EXAMPLE.com:8080", "/u/42").body == "user\n");
  REQUIRE(get("a.example.com", "/u/42x").status == 404);  // regex is a full match
  REQUIRE(get("a.example.com", "/m", {}, "GET").status == 404);
  REQUIRE(get("a.example.com", "/m", {}, "POST").status == 201);
  REQUIRE(get("a.example.com", "/h").status == 404);
  REQUIRE(get("a.example.com", "/h", {"x-canary: yes"}).body == "canary\n");
  // Redirects keep the query string.
  r = get("a.example.com", "/old/page?q=1");
  REQUIRE(r.status == 302);
  REQUIRE(r.header("location") == "http://a.example.com/new/page?q=1");
  // example.com itself is not *.example.com: it falls to "*".
  REQUIRE(get("example.com", "/exact").status == 404);
  REQUIRE(get("example.com", "/only").status == 200);
  REQUIRE(metricValue(*f, "ferry_downstream_response_flags_total{listener=\"web\",flag=\"NR\"}") == 4);
}

TEST_CASE("http: weighted clusters split traffic by weight", "[http][routing]") {
  HttpUpstream a, b;
  auto f = FerryProcess::start(
      FerryConfig{.routes = {{.extra = "              route: {weighted_clusters: [{cluster: a, weight: 80}, "
                                       "{cluster: b, weight: 20}]}\n"}},
                  .clusters = {{"a", {a.port()}}, {"b", {b.port()}}}}
          .yaml());
  uint16_t p = f->port("web");
  auto c = TcpClient::connect(p);
  REQUIRE(c);
  for (int i = 0; i < 500; ++i) {
    REQUIRE(c->sendAll("GET /w HTTP/1.1\r\nHost: x\r\n\r\n"));
    REQUIRE(readHttpResponse(*c).status == 200);
  }
  double share = static_cast<double>(a.requestCount()) / 500.0;
  INFO("a got " << a.requestCount() << ", b got " << b.requestCount());
  REQUIRE(a.requestCount() + b.requestCount() == 500);
  REQUIRE(share > 0.72);
  REQUIRE(share < 0.88);
}

TEST_CASE("http: keep-alive on both sides reuses one upstream connection", "[http][pool]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  for (int i = 0; i < 20; ++i) {
    REQUIRE(c->sendAll("GET /k" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto r = readHttpResponse(*c);
    REQUIRE(r.status == 200);
    REQUIRE(r.body == "ok:/k" + std::to_string(i));
  }
  REQUIRE(up.connections() == 1);
  REQUIRE_FALSE(c->closedByPeer());
}

TEST_CASE("http: a keep-alive connection's next request sees nothing of the one before", "[http][pool][reuse]") {
  // Streams, filters and request/response heads are recycled per worker (docs/performance.md):
  // over one client and one upstream connection, each request and response must carry only
  // its own target, headers, route rewrites, filter decisions and trailers.
  const std::string long_value(80, 'v');
  const std::string long_response_value(60, 'r');
  HttpUpstream up([&](const UpstreamRequest& r) {
    if (r.target.rfind("/api/", 0) == 0) {
      return UpstreamAction{HttpUpstream::response(
          200, "first", {"server: fake", "x-only-in-the-first-response: " + long_response_value})};
    }
    return HttpUpstream::ok("second");
  });
  FerryConfig c{.routes = {Route{.match = "{prefix: /api/}",
                                 .cluster = "up",
                                 .extra = "              request_headers: {set: {x-env: prod}}\n"
                                          "              response_headers: {remove: [server], set: {x-api: \"1\"}}\n"},
                           Route{.match = "{prefix: /}", .cluster = "up"}},
                .clusters = {{"up", {up.port()}}}};
  c.http_extra = httpFilterYaml("cors", "{allow_origins: [https://app.example.com]}");
  auto f = FerryProcess::start(c.yaml());
  auto conn = TcpClient::connect(f->port("web"));
  REQUIRE(conn);
  const std::string first_target = "/api/a/path/long/enough/for/the/heap?with=a&query=string";
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) {
    INFO("round " << round);
    // Many headers with long values, an Origin the cors filter answers, a route that rewrites
    // both ways, a chunked body with a trailer.
    std::string first = "POST " + first_target + " HTTP/1.1\r\nHost: first.example.com\r\n"
                        "Origin: https://app.example.com\r\nTransfer-Encoding: chunked\r\n";
    for (int i = 0; i < 24; ++i) first += "X-First-" + std::to_string(i) + ": " + long_value + "\r\n";
    first += "\r\n5\r\nhello\r\n0\r\nX-First-Trailer: t\r\n\r\n";
    REQUIRE(conn->sendAll(first));
    auto r1 = readHttpResponse(*conn);
    REQUIRE(r1.status == 200);
    CHECK(r1.body == "first");
    CHECK(r1.header("access-control-allow-origin") == "https://app.example.com");
    CHECK(r1.header("x-api") == "1");
    CHECK_FALSE(r1.hasHeader("server"));
    CHECK(r1.header("x-only-in-the-first-response") == long_response_value);
    // Then a bare GET on the same connection.
    REQUIRE(conn->sendAll("GET /b HTTP/1.1\r\nHost: h\r\n\r\n"));
    auto r2 = readHttpResponse(*conn);
    REQUIRE(r2.status == 200);
    CHECK(r2.body == "second");
    CHECK_FALSE(r2.hasHeader("access-control-allow-origin"));
    CHECK_FALSE(r2.hasHeader("x-api"));
    CHECK_FALSE(r2.hasHeader("x-only-in-the-first-response"));
  }
  REQUIRE_FALSE(conn->closedByPeer());
  REQUIRE(up.waitRequests(2 * kRounds));
  const auto reqs = up.requests();
  REQUIRE(reqs.size() == 2 * kRounds);
  CHECK(up.connections() == 1);
  for (size_t i = 0; i < reqs.size(); i += 2) {
    INFO("round " << i / 2);
    const UpstreamRequest& a = reqs[i];
    const UpstreamRequest& b = reqs[i + 1];
    CHECK(a.target == first_target);
    CHECK(a.header("host") == "first.example.com");
    CHECK(a.header("x-env") == "prod");
    CHECK(a.header("x-first-23") == long_value);
    CHECK(a.body == "hello");
    REQUIRE(a.trailers.size() == 1);
    CHECK(a.trailers[0].first == "x-first-trailer");
    CHECK(b.method == "GET");
    CHECK(b.target == "/b");
    CHECK(b.body.empty());
    CHECK_FALSE(b.chunked);
    CHECK(b.trailers.empty());
    std::vector<std::string> names;
    for (const auto& h : b.headers) names.push_back(h.first);
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"host", "x-forwarded-for", "x-forwarded-proto", "x-request-id"});
    CHECK(b.header("host") == "h");
    CHECK(b.header("x-forwarded-for") == "127.0.0.1");
    CHECK(b.header("x-request-id").size() == 36);
    CHECK(a.header("x-request-id") != b.header("x-request-id"));
    // A UUID version 4 (RFC 4122 variant), lower-case hex.
    const std::regex uuid4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
    CHECK(std::regex_match(a.header("x-request-id"), uuid4));
    CHECK(std::regex_match(b.header("x-request-id"), uuid4));
  }
}

TEST_CASE("http: pipelined requests are answered in order", "[http]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  REQUIRE(c->sendAll("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
                     "POST /3 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"));
  // The three responses may arrive in one read: collect them all, then check the order.
  std::string raw;
  REQUIRE(waitUntil([&] {
    raw += c->recvSome(100ms);
    return raw.find("ok:/3") != std::string::npos;
  }, 5s, 1ms));
  size_t p1 = raw.find("ok:/1"), p2 = raw.find("ok:/2"), p3 = raw.find("ok:/3");
  REQUIRE(p1 != std::string::npos);
  REQUIRE(p2 != std::string::npos);
  REQUIRE(p1 < p2);
  REQUIRE(p2 < p3);
  REQUIRE(up.waitRequests(3));
  REQUIRE(up.requests()[2].body == "abc");
}

// The harness itself: responses written in one go arrive in one read, and readHttpResponse
// must leave the later ones for the next call (a pipelining test once lost its second response).
TEST_CASE("harness: readHttpResponse keeps the bytes of the next pipelined response", "[http]") {
  FakeUpstream server(FakeUpstream::reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr1"
                                          "HTTP/1.1 100 Continue\r\n\r\n"
                                          "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                                          "2\r\nr2\r\n0\r\n\r\n"
                                          "HTTP/1.1 204 No Content\r\n\r\n"
                                          "HTTP/1.1 202 Accepted\r\n\r\nr4 up to the close"));
  auto c = TcpClient::connect(server.port());
  REQUIRE(c);
  REQUIRE(c->sendAll("GET / HTTP/1.1\r\n\r\n"));
  REQUIRE(c->peerClosedOrReset(5s));  // everything is in the client before the first read
  auto r1 = readHttpResponse(*c);
  auto r2 = readHttpResponse(*c);
  auto r3 = readHttpResponse(*c);
  auto r4 = readHttpResponse(*c);
  CHECK((r1.status == 200 && r1.body == "r1"));
  CHECK((r2.status == 201 && r2.body == "r2"));
  CHECK((r3.status == 204 && r3.body.empty()));
  CHECK((r4.status == 202 && r4.body == "r4 up to the close"));
  CHECK(readHttpResponse(*c, false, 200ms).status == 0);
}

TEST_CASE("http: Expect 100-continue gets a 100 before the body is sent", "[http]") {
  HttpUpstream up([](const UpstreamRequest& r) { return HttpUpstream::ok("got " + r.body); });
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  REQUIRE(c->sendAll("PUT /u HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  std::string interim = c->recvSome(3s);
  REQUIRE(interim.rfind("HTTP/1.1 100 Continue\r\n", 0) == 0);
  REQUIRE(c->sendAll("hello"));
  auto r = readHttpResponse(*c);
  REQUIRE(r.status == 200);
  REQUIRE(r.body == "got hello");
  REQUIRE_FALSE(up.requests()[0].hasHeader("expect"));
}

TEST_CASE("http: HEAD, 204 and 304 responses carry no body", "[http]") {
  HttpUpstream up([](const UpstreamRequest& r) {
    if (r.target == "/204") return UpstreamAction{HttpUpstream::response(204, "")};
    if (r.target == "/304") return UpstreamAction{HttpUpstream::response(304, "")};
    return UpstreamAction{HttpUpstream::response(200, r.method == "HEAD" ? "" : "twelve bytes", {"content-length: 12"})};
  });
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  REQUIRE(c->sendAll("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = readHttpResponse(*c, true);
  REQUIRE(r.status == 200);
  REQUIRE(r.header("content-length") == "12");
  REQUIRE(r.body.empty());
  for (std::string s : {"/204", "/304"}) {
    REQUIRE(c->sendAll("GET " + s + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    r = readHttpResponse(*c);
    REQUIRE(r.status == std::stoi(s.substr(1)));
    REQUIRE(r.body.empty());
  }
  // The connection is still in sync: a normal request works.
  REQUIRE(c->sendAll("GET /after HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(readHttpResponse(*c).body == "twelve bytes");
}

TEST_CASE("http: an HTTP/1.0 client gets its response and the connection closes", "[http]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  REQUIRE(c->sendAll("GET /old HTTP/1.0\r\n\r\n"));
  std::string raw = c->recvUntilClose(5s);
  auto r = parseHttpResponse(raw);
  REQUIRE(r.status == 200);
  REQUIRE(r.body == "ok:/old");
  REQUIRE(c->sawEof());
}

TEST_CASE("http: chunked request and response bodies stream through", "[http][body]") {
  HttpUpstream up([](const UpstreamRequest& r) {
    std::string resp = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    (void)r;
    return UpstreamAction{resp};
  });
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  REQUIRE(c->sendAll("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n"));
  auto r = readHttpResponse(*c);
  REQUIRE(r.status == 200);
  REQUIRE(r.body == "hello world");
  REQUIRE(up.waitRequests(1));
  REQUIRE(up.requests()[0].body == "abcdefg");
  REQUIRE(up.requests()[0].chunked);
}

TEST_CASE("http: a close-delimited upstream response reaches the client whole", "[http][body]") {
  HttpUpstream up([](const UpstreamRequest&) {
    return UpstreamAction{"HTTP/1.1 200 OK\r\n\r\nuntil the end", true};
  });
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  auto r = httpRequest(f->port("web"), "GET", "/cd");
  REQUIRE(r.status == 200);
  REQUIRE(r.body == "until the end");
}

TEST_CASE("http: upstream errors map to the error table and keep the client connection", "[http][errors]") {
  HttpUpstream garbage([](const UpstreamRequest&) { return UpstreamAction{"NOT HTTP AT ALL\r\n\r\n", true}; });
  HttpUpstream reset([](const UpstreamRequest&) {
    UpstreamAction a;
    a.reset = true;
    return a;
  });
  HttpUpstream stall([](const UpstreamRequest&) {
    UpstreamAction a;
    a.stall = true;
    return a;
  });
  const RefusingPort refusing;  // cluster "dead": refuses connections until the test ends
  const uint16_t dead = refusing.port();
  auto f = FerryProcess::start(FerryConfig{.routes = {{"{prefix: /garbage}", "garbage"},
                                                      {"{prefix: /reset}", "reset"},
                                                      {"{prefix: /stall}", "stall", "timeout: 300ms"},
                                                      {"{prefix: /dead}", "dead"}},
                                           .clusters = {{"garbage", {garbage.port()}},
                                                        {"reset", {reset.port()}},
                                                        {"stall", {stall.port()}},
                                                        {"dead", {dead}}}}
                                   .yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  struct Case {
    std::string path;
    int status;
    std::string flag;
  } cases[] = {{"/garbage", 502, "UPE"}, {"/reset", 502, "UC"}, {"/stall", 504, "UT"},
               {"/dead", 503, "UF"},     {"/nothing", 404, "NR"}};
  for (const auto& k : cases) {
    INFO(k.path);
    REQUIRE(c->sendAll("GET " + k.path + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto r = readHttpResponse(*c);
    REQUIRE(r.status == k.status);
    REQUIRE_FALSE(r.body.empty());
    REQUIRE_FALSE(c->closedByPeer());  // 404 and 5xx keep the connection
    REQUIRE(metricValue(*f, "ferry_downstream_response_flags_total{listener=\"web\",flag=\"" + k.flag + "\"}") == 1);
  }
}

TEST_CASE("http: a pooled connection the upstream closed is not a client-visible error", "[http][pool]") {
  // The upstream answers without announcing close, then closes: the idle pooled connection
  // is dead when the next request comes.
  HttpUpstream up([](const UpstreamRequest& r) {
    UpstreamAction a{HttpUpstream::response(200, "ok" + r.target)};
    a.close_after = true;
    return a;
  });
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(c->sendAll("GET /s" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto r = readHttpResponse(*c);
    INFO("request " << i);
    REQUIRE(r.status == 200);
  }
  REQUIRE(metricValue(*f, "ferry_downstream_requests_total{listener=\"web\",code=\"5xx\"}") <= 0);
}

TEST_CASE("http: websocket upgrade becomes a byte tunnel", "[http][websocket]") {
  HttpUpstream up([](const UpstreamRequest& r) {
    UpstreamAction a;
    std::string accept = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    a.custom = [accept](int fd) {
      FakeUpstream::writeAll(fd, accept);
      for (;;) {
        std::string s = FakeUpstream::readSome(fd);
        if (s.empty()) break;
        FakeUpstream::writeAll(fd, "echo:" + s);
      }
      ::shutdown(fd, SHUT_WR);
    };
    (void)r;
    return a;
  });
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  REQUIRE(c->sendAll("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  std::string head = c->recvSome(5s);
  while (head.find("\r\n\r\n") == std::string::npos) {
    std::string more = c->recvSome(5s);
    REQUIRE_FALSE(more.empty());
    head += more;
  }
  REQUIRE(head.rfind("HTTP/1.1 101", 0) == 0);
  REQUIRE(up.waitRequests(1));
  REQUIRE(up.requests()[0].header("upgrade") == "websocket");
  REQUIRE(c->sendAll("frame-1"));
  REQUIRE(c->recvExactly(12, 5s) == "echo:frame-1");
  REQUIRE(c->sendAll("frame-2"));
  REQUIRE(c->recvExactly(12, 5s) == "echo:frame-2");
  c->shutdownWrite();
  REQUIRE(c->waitClosed(5s));
}

namespace {
// The buffer filter at 1000 bytes, and an upstream that answers with the framing it got.
const std::string kBufferFilter =
    "      filters:\n"
    "        - name: buffer\n"
    "          config: {max_request_bytes: 1000}\n";
UpstreamAction reportFraming(const UpstreamRequest& r) {
  return HttpUpstream::ok("len=" + r.header("content-length") + " chunked=" + (r.chunked ? "1" : "0"));
}
}  // namespace

TEST_CASE("http: the buffer filter forwards whole bodies with a length and refuses big ones", "[http][filters]") {
  HttpUpstream up(reportFraming);
  auto f = FerryProcess::start(FerryConfig{.http_extra = kBufferFilter, .clusters = {{"up", {up.port()}}}}.yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  REQUIRE(c->sendAll("POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  auto r = readHttpResponse(*c);
  REQUIRE(r.status == 200);
  REQUIRE(r.body == "len=5 chunked=0");
  // Over the limit: 413 (declared length refused before the body is read).
  auto big = httpRequest(f->port("web"), "POST", "/b", std::string(2000, 'x'));
  REQUIRE(big.status == 413);
  REQUIRE(up.requestCount() == 1);
  REQUIRE(metricValue(*f, "ferry_downstream_response_flags_total{listener=\"web\",flag=\"DBL\"}") == 1);
}

TEST_CASE("http: the buffer filter holds the request until the whole body is here, on a warm pool too",
          "[http][filters][pool]") {
  HttpUpstream up(reportFraming);
  auto f = FerryProcess::start(FerryConfig{.http_extra = kBufferFilter, .clusters = {{"up", {up.port()}}}}.yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  // Warm the pool: the next request finds an idle upstream connection at once.
  REQUIRE(c->sendAll("GET /warm HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(readHttpResponse(*c).status == 200);
  REQUIRE(up.connections() == 1);
  // The body arrives in two parts; nothing of the request may leave before the second.
  REQUIRE(c->sendAll("POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"));
  REQUIRE(c->sendAll("2\r\nde\r\n0\r\n\r\n"));
  auto r = readHttpResponse(*c);
  REQUIRE(r.status == 200);
  CHECK(r.body == "len=5 chunked=0");
  CHECK(up.connections() == 1);  // it did use the warm connection
}

TEST_CASE("http: upstream 1xx responses reach HTTP/1.1 clients; a second 100 and HTTP/1.0 clients get none",
          "[http][1xx]") {
  HttpUpstream up([](const UpstreamRequest& r) {
    std::string early = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n";
    if (r.target == "/expect") early = "HTTP/1.1 100 Continue\r\n\r\n" + early;
    return UpstreamAction{early + HttpUpstream::response(200, "done")};
  });
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t port = f->port("web");
  {
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    REQUIRE(c->sendAll("GET /hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    std::string raw = c->recvUntilClose(5s);
    INFO(raw);
    REQUIRE(raw.rfind("HTTP/1.1 103 Early Hints\r\n", 0) == 0);
    CHECK(raw.find("link: </style.css>; rel=preload\r\n") != std::string::npos);
    CHECK(raw.find("HTTP/1.1 200 ") != std::string::npos);
    CHECK(raw.find("\r\n\r\ndone") != std::string::npos);
  }
  {
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    REQUIRE(c->sendAll("GET /hints HTTP/1.0\r\nHost: x\r\n\r\n"));
    std::string raw = c->recvUntilClose(5s);
    INFO(raw);
    CHECK(raw.rfind("HTTP/1.1 200 ", 0) == 0);  // no interim response for HTTP/1.0
    CHECK(raw.find(" 103 ") == std::string::npos);
  }
  {
    // Ferry answers Expect: 100-continue itself; the upstream's own 100 is not sent twice.
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    REQUIRE(c->sendAll("PUT /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
                       "Connection: close\r\n\r\n"));
    std::string interim = c->recvSome(3s);
    REQUIRE(interim.rfind("HTTP/1.1 100 Continue\r\n\r\n", 0) == 0);
    REQUIRE(c->sendAll("hello"));
    std::string rest = interim + c->recvUntilClose(5s);
    INFO(rest);
    size_t first = rest.find("100 Continue");
    CHECK(rest.find("100 Continue", first + 1) == std::string::npos);
    CHECK(rest.find("HTTP/1.1 103 Early Hints\r\n") != std::string::npos);
    CHECK(rest.find("HTTP/1.1 200 ") != std::string::npos);
  }
}

TEST_CASE("http: the fault filter delays then resumes, or aborts", "[http][filters]") {
  HttpUpstream up;
  std::string delay =
      "      filters:\n"
      "        - name: fault\n"
      "          config: {delay: {duration: 300ms, percentage: 100}}\n";
  auto f = FerryProcess::start(FerryConfig{.http_extra = delay, .clusters = {{"up", {up.port()}}}}.yaml());
  auto t0 = std::chrono::steady_clock::now();
  auto r = httpRequest(f->port("web"), "GET", "/slow");
  REQUIRE(r.status == 200);
  REQUIRE(r.body == "ok:/slow");
  REQUIRE(std::chrono::steady_clock::now() - t0 >= 280ms);

  std::string abort =
      "      filters:\n"
      "        - name: fault\n"
      "          config: {abort: {status: 503, percentage: 100}}\n";
  auto g = FerryProcess::start(FerryConfig{.http_extra = abort, .clusters = {{"up", {up.port()}}}}.yaml());
  REQUIRE(httpRequest(g->port("web"), "GET", "/x").status == 503);
  REQUIRE(up.requestCount() == 1);  // only the delayed one reached the upstream
}

TEST_CASE("http: large bodies stream both ways with bounded buffering", "[http][body][backpressure]") {
  // 64 MiB up and down (a 1 GB run is a benchmark: benchmarks/README.md).
  const size_t total = 64u << 20;
  const std::string payload = randomBytes(total, 11);
  std::atomic<size_t> received{0};
  std::atomic<bool> body_ok{false};
  std::atomic<int> big_fd{-1};  // the upstream's end of the connection carrying GET /big
  HttpUpstream up([&](const UpstreamRequest& r) {
    if (r.method == "POST") {
      received = r.body.size();
      body_ok = r.body == payload;
      return HttpUpstream::ok("stored");
    }
    if (r.target == "/ping") return HttpUpstream::ok("pong");
    big_fd = r.fd;
    return UpstreamAction{HttpUpstream::response(200, payload)};
  });
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  uint16_t p = f->port("web");
  long rss_before = f->rssKb();
  // Download with a client that reads slowly at first: buffering must stay bounded.
  auto c = TcpClient::connect(p, 5s, 64 * 1024);
  REQUIRE(c);
  REQUIRE(c->sendAll("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string first = c->recvSome(5s);
  REQUIRE_FALSE(first.empty());
  REQUIRE(big_fd.load() >= 0);  // the responder ran before the first bytes came
  // Ferry's buffering is at its peak once it has stopped reading from the upstream. Rather than
  // sample the metric for a while, wait for that: the upstream's socket has bytes queued and
  // none in flight (ferry's receive buffer is full), and it stays so across a request through
  // ferry's only worker (the event loop that would read from the upstream): no byte acked
  // meanwhile, so ferry did not read although data was waiting. Reads are disabled; what
  // ferry buffers now cannot grow while the client does not read.
  double peak = 0;
  bool stopped_reading = waitUntil([&] {
    peak = std::max(peak, metricValue(*f, "ferry_buffered_bytes"));
    uint64_t acked_before = 0, acked_after = 0;
    if (!sendWindowClosed(big_fd, &acked_before)) return false;
    if (httpRequest(p, "GET", "/ping").status != 200) return false;
    return sendWindowClosed(big_fd, &acked_after) && acked_after == acked_before;
  }, 30s, 5ms);
  peak = std::max(peak, metricValue(*f, "ferry_buffered_bytes"));
  INFO("peak buffered " << peak);
  REQUIRE(stopped_reading);
  REQUIRE(peak <= 4 * 1024 * 1024);
  std::string got = first;
  while (got.size() < total + 100) {
    std::string s = c->recvSome(10s);
    if (s.empty()) break;
    got += s;
    if (got.find("\r\n\r\n") != std::string::npos && got.size() - got.find("\r\n\r\n") - 4 >= total) break;
  }
  auto r = parseHttpResponse(got, false);
  REQUIRE(r.status == 200);
  REQUIRE(r.body.size() == total);
  REQUIRE(r.body == payload);
  // Upload 64 MiB with Content-Length.
  auto u = TcpClient::connect(p);
  REQUIRE(u);
  std::thread sender([&] {
    u->sendAll("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(total) + "\r\n\r\n", 10s);
    u->sendAll(payload, 60s);
  });
  auto resp = readHttpResponse(*u, false, 60s);
  sender.join();
  REQUIRE(resp.status == 200);
  REQUIRE(received == total);
  REQUIRE(body_ok);
  if (!sanitized()) {
    long rss_after = f->rssKb();
    INFO("rss before " << rss_before << " kB, after " << rss_after << " kB");
    REQUIRE(rss_after - rss_before < 32 * 1024);
  }
}

TEST_CASE("http: gRPC clients get trailers-only local replies", "[http][grpc]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.routes = {{"{path: /only}", "up"}}, .clusters = {{"up", {up.port()}}}}.yaml());
  auto r = httpRequest(f->port("web"), "POST", "/pkg.Service/Method", "\0\0\0\0\0",
                       {"content-type: application/grpc", "te: trailers"});
  REQUIRE(r.status == 200);
  REQUIRE(r.header("grpc-status") == "12");
  REQUIRE(r.body.empty());
}

TEST_CASE("http: during drain_delay responses say connection: close", "[http][lifecycle]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.workers = 1,
                                           .runtime_extra = "  drain_delay: 2s\n  drain_timeout: 5s\n",
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  uint16_t p = f->port("web");
  auto c = TcpClient::connect(p);
  REQUIRE(c);
  REQUIRE(c->sendAll("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = readHttpResponse(*c);
  REQUIRE(r.status == 200);
  REQUIRE(r.header("connection") != "close");
  f->signal(SIGTERM);
  REQUIRE(waitUntil([&] { return httpRequest(f->adminPort(), "GET", "/ready").status == 503; }, 2s));
  REQUIRE(c->sendAll("GET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
  r = readHttpResponse(*c);
  REQUIRE(r.status == 200);
  REQUIRE(r.header("connection") == "close");
  REQUIRE(c->waitClosed(3s));
  auto code = f->waitExit(10s);
  REQUIRE(code.has_value());
  REQUIRE(*code == 0);
}
