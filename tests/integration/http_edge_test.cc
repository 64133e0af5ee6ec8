// Edge safety of the HTTP/1.1 listener over real loopback sockets: malformed, ambiguous and
// oversized requests are answered locally (400/431/408) and the connection is closed, with
// nothing reaching the upstream; slow clients and idle keep-alive connections are cut off;
// accepted requests are normalised (path, hop-by-hop headers, x-forwarded-*, x-request-id)
// before they are forwarded; a 404/5xx keeps the connection; gRPC clients get trailers-only
// errors. The expected behaviour is the one docs/http.md and docs/operations.md describe.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_upstream.h"

using namespace ferry::testing;
using namespace std::string_literals;

namespace {

using Clock = std::chrono::steady_clock;

long long elapsedMs(Clock::time_point since) {
  return std::chrono::duration_cast<ms>(Clock::now() - since).count();
}

const std::string kDpe = "ferry_downstream_response_flags_total{listener=\"web\",flag=\"DPE\"}";
const std::string kDrt = "ferry_downstream_response_flags_total{listener=\"web\",flag=\"DRT\"}";

// Polls metricValue until it equals `want` (bounded); returns the last value read (so a failed
// check shows it: kMetricAbsent, kMetricUnreadable or the wrong count).
double waitMetricEq(FerryProcess& f, const std::string& key, double want, ms timeout = 5s) {
  double v = metricValue(f, key);
  waitUntil([&] { return (v = metricValue(f, key)) == want; }, timeout, 20ms);
  return v;
}

// What ferry did with one raw request on a fresh connection.
struct Outcome {
  std::string raw;  // every byte received until ferry closed (or the deadline)
  HttpResponse resp;
  bool closed = false;  // ferry closed (FIN or RST) within the deadline
};

Outcome sendRaw(uint16_t port, const std::string& bytes, ms timeout = 5s) {
  Outcome o;
  auto c = TcpClient::connect(port);
  if (!c) {
    o.raw = "<connect failed>";
    return o;
  }
  c->sendAll(bytes, timeout);
  o.raw = c->recvUntilClose(timeout);
  o.closed = c->closedByPeer();
  o.resp = parseHttpResponse(o.raw, true);
  return o;
}

struct BadCase {
  std::string name;
  std::string bytes;
  std::set<int> statuses = {400};
};

// Sends each case on its own connection: each must get one of its statuses and be closed by
// ferry, and the upstream must see nothing (no request, no connection). Every case counts as
// one DPE response.
void expectRejected(const std::vector<BadCase>& cases, const std::string& http_extra = "") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.http_extra = http_extra, .clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t port = f->port("web");
  for (const auto& bc : cases) {
    INFO("case: " << bc.name);
    Outcome o = sendRaw(port, bc.bytes);
    INFO("received: " << o.raw);
    CHECK(bc.statuses.count(o.resp.status) == 1);
    CHECK(o.closed);
    CHECK(up.requestCount() == 0);
    CHECK(up.connections() == 0);
  }
  CHECK(waitMetricEq(*f, kDpe, static_cast<double>(cases.size())) == static_cast<double>(cases.size()));
  // Nothing reached the upstream late either.
  CHECK(up.requestCount() == 0);
  CHECK(up.connections() == 0);
  // The listener still serves well-formed requests.
  auto ok = httpRequest(port, "GET", "/still-ok");
  CHECK(ok.status == 200);
  CHECK(ok.body == "ok:/still-ok");
}

std::string get(const std::string& target, const std::string& headers = "Host: a\r\n") {
  return "GET " + target + " HTTP/1.1\r\n" + headers + "\r\n";
}

bool isUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return true;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// 400 + close, nothing forwarded

TEST_CASE("edge: ambiguous framing (Content-Length / Transfer-Encoding) is a 400 and closes", "[edge]") {
  const std::string post = "POST / HTTP/1.1\r\nHost: a\r\n";
  expectRejected({
      {"CL then TE", post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"TE then CL", post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
      {"two differing CL", post + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
      {"CL abc", post + "Content-Length: abc\r\n\r\n"},
      {"CL -1", post + "Content-Length: -1\r\n\r\n"},
      {"CL '1 2'", post + "Content-Length: 1 2\r\n\r\nab"},
      {"TE gzip, chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
      {"TE chunked, gzip", post + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"},
      {"TE identity", post + "Transfer-Encoding: identity\r\n\r\n"},
  });
}

TEST_CASE("edge: malformed header fields are a 400 and close", "[edge]") {
  expectRejected({
      {"obs-fold (space)", get("/", "Host: a\r\nX-A: 1\r\n  continued\r\n")},
      {"obs-fold (tab)", get("/", "Host: a\r\nX-A: 1\r\n\tcontinued\r\n")},
      {"whitespace before the colon", get("/", "Host : a\r\n")},
      {"whitespace before the colon (other header)", get("/", "Host: a\r\nX-A : 1\r\n")},
      {"space inside a header name", get("/", "Host: a\r\nX A: 1\r\n")},
      {"\\x01 in a value", get("/", "Host: a\r\nX-A: a\x01" "b\r\n")},
      {"\\x7f in a value", get("/", "Host: a\r\nX-A: a\x7f" "b\r\n")},
      {"NUL in a value", get("/", "Host: a\r\nX-A: a\0b\r\n"s)},
      {"bare LF line endings", "GET / HTTP/1.1\nHost: a\n\n"},
      {"bare LF in one header line", "GET / HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n"},
      {"missing Host (HTTP/1.1)", get("/", "")},
      {"two Host headers", get("/", "Host: a\r\nHost: b\r\n")},
  });
}

TEST_CASE("edge: malformed request lines are rejected and close", "[edge]") {
  expectRejected({
      {"invalid method G@T", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"target without a leading slash", "GET foo HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"HTTP/2.0 version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", {400, 505}},
      {"HTTP/1.2 version", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", {400, 505}},
  });
}

TEST_CASE("edge: paths above the root, %00 and fragments are a 400 and close", "[edge]") {
  expectRejected({
      {"/../etc/passwd", get("/../etc/passwd")},
      {"/a/../../b", get("/a/../../b")},
      {"/%2e%2e/x", get("/%2e%2e/x")},
      {"/%2E%2E/x", get("/%2E%2E/x")},
      {"/a%00b", get("/a%00b")},
      {"fragment", get("/a#frag")},
  });
}

TEST_CASE("edge: bad chunked framing is a 400 and closes; no request bytes reach the upstream",
          "[edge]") {
  // The head is valid here, so a streaming proxy may already have started an upstream
  // connection when the bad chunk line is parsed (same segment); no byte of the request may
  // reach the upstream. A raw sink records what arrives (a FakeUpstream, not HttpUpstream,
  // so nothing on the upstream side depends on the bytes being well-formed).
  auto rec = std::make_shared<Received>();
  FakeUpstream up(FakeUpstream::sink(rec));
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t port = f->port("web");
  const std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::vector<BadCase> cases = {
      {"chunk size overflow", head + "fffffffffffffffffff\r\nx\r\n0\r\n\r\n"},
      {"invalid chunk size chars", head + "zz\r\nx\r\n0\r\n\r\n"},
      {"chunk size with a sign", head + "-1\r\nx\r\n0\r\n\r\n"},
  };
  for (const auto& bc : cases) {
    INFO("case: " << bc.name);
    auto t0 = Clock::now();
    Outcome o = sendRaw(port, bc.bytes, 3s);
    INFO("received (closed=" << o.closed << " after " << elapsedMs(t0) << " ms): " << o.raw);
    CHECK(o.resp.status == 400);
    CHECK(o.closed);
  }
  CHECK(waitMetricEq(*f, kDpe, static_cast<double>(cases.size())) == static_cast<double>(cases.size()));
  INFO("upstream connections: " << up.accepted() << ", bytes: " << rec->data());
  CHECK(rec->size() == 0);
}

TEST_CASE("edge: a bad chunk after the head was forwarded: 400 + close, the upstream request is aborted",
          "[edge]") {
  auto rec = std::make_shared<Received>();
  FakeUpstream up(FakeUpstream::sink(rec));
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  REQUIRE(c->sendAll("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"));
  // Streaming: the head and the first chunk reach the upstream before the request is complete.
  REQUIRE(waitUntil([&] { return rec->data().find("hello") != std::string::npos; }, 5s));
  REQUIRE(c->sendAll("zz\r\nmore\r\n0\r\n\r\n"));
  auto t0 = Clock::now();
  std::string raw = c->recvUntilClose(3s);
  INFO("received (after " << elapsedMs(t0) << " ms): " << raw);
  CHECK(parseHttpResponse(raw, true).status == 400);
  CHECK(c->closedByPeer());
  // The upstream connection carrying the half request is closed, never completed or reused.
  CHECK(rec->waitEof(3s));
  INFO("upstream got: " << rec->data());
  CHECK(rec->data().find("more") == std::string::npos);
  CHECK(rec->data().find("\r\n0\r\n\r\n") == std::string::npos);
  CHECK(up.accepted() == 1);
  CHECK(waitMetricEq(*f, kDpe, 1) == 1);
}

// ---------------------------------------------------------------------------------------------
// 431 + close

TEST_CASE("edge: request headers over max_request_headers_kb are a 431 and close", "[edge]") {
  expectRejected({{"9 KiB header", get("/", "Host: a\r\nX-Big: " + std::string(9 * 1024, 'v') + "\r\n"), {431}}},
                 "      max_request_headers_kb: 8\n");
}

TEST_CASE("edge: more than 100 request headers is a 431 and closes", "[edge]") {
  std::string many = "Host: a\r\n";
  for (int i = 0; i < 101; ++i) many += "x-h" + std::to_string(i) + ": v\r\n";
  expectRejected({{"101 small headers", get("/", many), {431}}}, "      max_request_headers_kb: 8\n");
}

TEST_CASE("edge: 100 request headers in all are accepted", "[edge]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = "      max_request_headers_kb: 8\n", .clusters = {{"up", {up.port()}}}}.yaml());
  std::vector<std::string> hs;  // + Host + Connection (added by httpRequest) = 100
  for (int i = 0; i < 98; ++i) hs.push_back("x-h" + std::to_string(i) + ": v");
  auto r = httpRequest(f->port("web"), "GET", "/many", "", hs);
  REQUIRE(r.status == 200);
  REQUIRE(up.waitRequests(1));
  CHECK(up.requests()[0].header("x-h97") == "v");
}

// ---------------------------------------------------------------------------------------------
// 408 + close, idle close

TEST_CASE("edge: slowloris: an incomplete head gets a 408 and is closed", "[edge]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = "      request_headers_timeout: 300ms\n      idle_timeout: 10s\n",
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  auto t0 = Clock::now();
  REQUIRE(c->sendAll("GET / HTTP/1.1\r\nHost: a\r\n"));
  std::string raw = c->recvUntilClose(3s);
  auto took = elapsedMs(t0);
  INFO("received after " << took << " ms: " << raw);
  CHECK(c->closedByPeer());
  CHECK(took < 3000);
  CHECK(took >= 200);
  CHECK(parseHttpResponse(raw, true).status == 408);
  CHECK(waitMetricEq(*f, kDrt, 1) == 1);
  CHECK(up.requestCount() == 0);
  CHECK(up.connections() == 0);
}

TEST_CASE("edge: slowloris: trickling header bytes does not extend request_headers_timeout", "[edge]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = "      request_headers_timeout: 300ms\n      idle_timeout: 10s\n",
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  auto t0 = Clock::now();
  REQUIRE(c->sendAll("GET / HTTP/1.1\r\nHost: a\r\nX-Slow: "));
  // One byte per 100 ms (the wait for ferry's answer paces the bytes), for at most 3 s.
  std::string raw;
  while (elapsedMs(t0) < 3000 && !c->closedByPeer()) {
    raw += c->recvSome(100ms);
    if (!raw.empty() || c->closedByPeer()) break;
    if (!c->sendAll("v", 1s)) break;
  }
  raw += c->recvUntilClose(2s);
  auto took = elapsedMs(t0);
  INFO("received after " << took << " ms: " << raw);
  CHECK(c->closedByPeer());
  CHECK(took < 3000);
  CHECK(parseHttpResponse(raw, true).status == 408);
  CHECK(up.requestCount() == 0);
  CHECK(up.connections() == 0);
}

TEST_CASE("edge: a connection that sends nothing gets a 408 (or is closed) after request_headers_timeout",
          "[edge]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = "      request_headers_timeout: 300ms\n      idle_timeout: 10s\n",
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  auto t0 = Clock::now();
  std::string raw = c->recvUntilClose(3s);
  auto took = elapsedMs(t0);
  INFO("received after " << took << " ms: " << raw);
  REQUIRE(c->closedByPeer());
  CHECK(took < 3000);
  // Observed with this build: a 408 response ~300 ms after connect, then the close. A silent
  // close would be acceptable too.
  if (!raw.empty()) CHECK(parseHttpResponse(raw, true).status == 408);
  CHECK(up.connections() == 0);
}

TEST_CASE("edge: an idle keep-alive connection is closed after idle_timeout", "[edge]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = "      idle_timeout: 300ms\n      request_headers_timeout: 10s\n",
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  REQUIRE(c->sendAll(get("/first")));
  auto r = readHttpResponse(*c);
  REQUIRE(r.status == 200);
  REQUIRE(r.body == "ok:/first");
  REQUIRE_FALSE(lower(r.header("connection")) == "close");
  auto t0 = Clock::now();
  REQUIRE(c->peerClosedOrReset(3s));
  auto took = elapsedMs(t0);
  INFO("closed after " << took << " ms");
  CHECK(took < 3000);
  CHECK(took >= 200);
  CHECK(c->recvUntilClose(100ms).empty());  // closed silently: no 408 on an idle connection
}

// Between requests an HTTP/1 connection gives its HTTP state back (docs/architecture.md, "Idle
// connections") and takes a fresh one with the next byte: the next requests are served, and
// a later request's head is still bounded by request_headers_timeout.
TEST_CASE("edge: a kept-alive connection serves request after request and times out a slow later head",
          "[edge][idle]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = "      idle_timeout: 10s\n      request_headers_timeout: 300ms\n",
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  for (const char* path : {"/one", "/two", "/three"}) {
    REQUIRE(c->sendAll(get(path)));
    auto r = readHttpResponse(*c);
    REQUIRE(r.status == 200);
    REQUIRE(r.body == std::string("ok:") + path);
  }
  // Two pipelined requests in one write: answered in order.
  REQUIRE(c->sendAll(get("/p1") + get("/p2")));
  auto p1 = readHttpResponse(*c);
  auto p2 = readHttpResponse(*c);
  CHECK(p1.body == "ok:/p1");
  CHECK(p2.body == "ok:/p2");
  // A later head that never completes.
  auto t0 = Clock::now();
  REQUIRE(c->sendAll("GET /slow HTTP/1.1\r\nHost: a\r\n"));
  std::string raw = c->recvUntilClose(3s);
  const auto took = elapsedMs(t0);
  INFO("received after " << took << " ms: " << raw);
  CHECK(c->closedByPeer());
  CHECK(took >= 200);
  CHECK(took < 3000);
  CHECK(parseHttpResponse(raw, true).status == 408);
  CHECK(up.requestCount() == 5);
}

// ---------------------------------------------------------------------------------------------
// Accepted, normalised, forwarded

TEST_CASE("edge: paths are normalised before forwarding; %2F and the query stay as sent", "[edge]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t port = f->port("web");
  struct Norm {
    std::string sent, forwarded;
  };
  const std::vector<Norm> cases = {
      {"/a/./b/../c", "/a/c"},
      {"/%7Euser", "/~user"},
      {"/a%2Fb", "/a%2Fb"},
      {"/p?x=%41&y", "/p?x=%41&y"},
      {"/a/./b/../c?q=/../x", "/a/c?q=/../x"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO("sent " << cases[i].sent);
    auto r = httpRequest(port, "GET", cases[i].sent);
    CHECK(r.status == 200);
    REQUIRE(up.waitRequests(i + 1, 5s));
    CHECK(up.requests()[i].target == cases[i].forwarded);
    CHECK(r.body == "ok:" + cases[i].forwarded);
  }
}

TEST_CASE("edge: a Host with a port and mixed case routes via \"*\" and is forwarded as sent", "[edge]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  auto r = httpRequest(f->port("web"), "GET", "/h", "", {"Host: Example.COM:8080"});
  REQUIRE(r.status == 200);
  REQUIRE(up.waitRequests(1));
  CHECK(up.requests()[0].header("host") == "Example.COM:8080");
}

TEST_CASE("edge: a response's hop-by-hop headers and the ones its Connection names do not reach the client",
          "[edge]") {
  HttpUpstream up([](const UpstreamRequest&) {
    return UpstreamAction{HttpUpstream::response(
        200, "body", {"Connection: x-internal, Keep-Alive", "X-Internal: secret", "Keep-Alive: timeout=5",
                      "Proxy-Connection: keep-alive", "Trailer: x-t", "Upgrade: foo", "X-Public: yes"})};
  });
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  auto r = httpRequest(f->port("web"), "GET", "/");
  REQUIRE(r.status == 200);
  CHECK(r.body == "body");
  CHECK(r.header("x-public") == "yes");
  CHECK_FALSE(r.hasHeader("x-internal"));
  CHECK_FALSE(r.hasHeader("keep-alive"));
  CHECK_FALSE(r.hasHeader("proxy-connection"));
  CHECK_FALSE(r.hasHeader("trailer"));
  CHECK_FALSE(r.hasHeader("upgrade"));
  CHECK(lower(r.header("connection")).find("x-internal") == std::string::npos);
}

TEST_CASE("edge: TE reaches the upstream only as te: trailers", "[edge]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t port = f->port("web");
  REQUIRE(httpRequest(port, "POST", "/grpc", "x", {"TE: gzip, trailers", "Content-Type: application/grpc"})
              .status == 200);
  REQUIRE(httpRequest(port, "GET", "/gzip", "", {"TE: gzip"}).status == 200);
  REQUIRE(up.waitRequests(2));
  CHECK(up.requests()[0].header("te") == "trailers");
  CHECK_FALSE(up.requests()[1].hasHeader("te"));
}

TEST_CASE("edge: hop-by-hop headers and the ones named in Connection are not forwarded", "[edge]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t port = f->port("web");
  auto c = TcpClient::connect(port);
  REQUIRE(c);
  REQUIRE(c->sendAll(
      "GET /hop HTTP/1.1\r\nHost: a\r\nConnection: close, x-secret\r\nx-secret: 1\r\n"
      "Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: x\r\nx-kept: yes\r\n\r\n"));
  std::string raw = c->recvUntilClose(5s);
  INFO("received: " << raw);
  auto r = parseHttpResponse(raw, true);
  REQUIRE(r.status == 200);
  CHECK(c->closedByPeer());  // the client asked for close
  REQUIRE(up.waitRequests(1));
  auto req = up.requests()[0];
  INFO("upstream head: " << req.raw_head);
  CHECK_FALSE(req.hasHeader("x-secret"));
  CHECK_FALSE(req.hasHeader("keep-alive"));
  CHECK(req.header("te") == "trailers");  // gRPC upstreams need it: the one TE value passed on
  CHECK_FALSE(req.hasHeader("proxy-connection"));
  CHECK(lower(req.header("connection")).find("close") == std::string::npos);
  CHECK(lower(req.header("connection")).find("x-secret") == std::string::npos);
  CHECK(req.header("x-kept") == "yes");
  // The client's "close" did not close the upstream connection: the next request reuses it.
  auto r2 = httpRequest(port, "GET", "/again");
  REQUIRE(r2.status == 200);
  REQUIRE(up.waitRequests(2));
  CHECK(up.connections() == 1);
  CHECK(up.requests()[1].connection_index == 0);
}

TEST_CASE("edge: x-forwarded-for is appended, x-forwarded-proto overwritten, x-request-id generated or kept",
          "[edge]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t port = f->port("web");
  auto r = httpRequest(port, "GET", "/x", "", {"X-Forwarded-For: 1.2.3.4", "X-Forwarded-Proto: https"});
  REQUIRE(r.status == 200);
  auto r2 = httpRequest(port, "GET", "/y", "", {"X-Request-Id: my-id-123"});
  REQUIRE(r2.status == 200);
  REQUIRE(up.waitRequests(2));
  auto a = up.requests()[0];
  auto b = up.requests()[1];
  CHECK(a.header("x-forwarded-for") == "1.2.3.4, 127.0.0.1");
  CHECK(a.header("x-forwarded-proto") == "http");
  INFO("generated x-request-id: " << a.header("x-request-id"));
  CHECK(isUuid(a.header("x-request-id")));
  CHECK(b.header("x-request-id") == "my-id-123");
  CHECK(b.header("x-forwarded-for") == "127.0.0.1");
  CHECK(b.header("x-forwarded-proto") == "http");
  // Generated ids differ between requests.
  auto r3 = httpRequest(port, "GET", "/z");
  REQUIRE(r3.status == 200);
  REQUIRE(up.waitRequests(3));
  CHECK(isUuid(up.requests()[2].header("x-request-id")));
  CHECK(up.requests()[2].header("x-request-id") != a.header("x-request-id"));
}

// Repeated and empty forwarding fields: one x-forwarded-for joining them all, then the client;
// one x-forwarded-proto.
TEST_CASE("edge: repeated or empty x-forwarded-for and x-forwarded-proto come out as one field each", "[edge]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t port = f->port("web");
  REQUIRE(httpRequest(port, "GET", "/a", "",
                      {"X-Forwarded-For: 1.1.1.1", "X-Forwarded-Proto: https", "X-Forwarded-For: 2.2.2.2",
                       "X-Forwarded-Proto: ftp"})
              .status == 200);
  REQUIRE(httpRequest(port, "GET", "/b", "", {"X-Forwarded-For:", "X-Forwarded-Proto: https"}).status == 200);
  REQUIRE(httpRequest(port, "GET", "/c", "", {"X-Forwarded-Proto: https", "X-Forwarded-Proto: http"}).status ==
          200);
  REQUIRE(up.waitRequests(3));
  auto count = [](const auto& req, const std::string& name) {
    return std::count_if(req.headers.begin(), req.headers.end(), [&](const auto& h) { return h.first == name; });
  };
  const std::vector<std::string> xff = {"1.1.1.1, 2.2.2.2, 127.0.0.1", "127.0.0.1", "127.0.0.1"};
  const auto reqs = up.requests();
  for (size_t i = 0; i < 3; ++i) {
    const auto& req = reqs[i];
    INFO("request " << req.target);
    CHECK(count(req, "x-forwarded-for") == 1);
    CHECK(count(req, "x-forwarded-proto") == 1);
    CHECK(req.header("x-forwarded-for") == xff[i]);
    CHECK(req.header("x-forwarded-proto") == "http");
  }
}

TEST_CASE("edge: x-forwarded-proto from the client is kept with xff_trusted_hops: 1", "[edge]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = "      xff_trusted_hops: 1\n", .clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t port = f->port("web");
  auto r = httpRequest(port, "GET", "/x", "", {"X-Forwarded-For: 1.2.3.4", "X-Forwarded-Proto: https"});
  REQUIRE(r.status == 200);
  auto r2 = httpRequest(port, "GET", "/y");
  REQUIRE(r2.status == 200);
  REQUIRE(up.waitRequests(2));
  CHECK(up.requests()[0].header("x-forwarded-proto") == "https");
  CHECK(up.requests()[0].header("x-forwarded-for") == "1.2.3.4, 127.0.0.1");
  CHECK(up.requests()[1].header("x-forwarded-proto") == "http");
}

// ---------------------------------------------------------------------------------------------
// Keep-alive after 404 / 5xx; gRPC

TEST_CASE("edge: a 404 or a 503 keeps the connection alive for the next request", "[edge]") {
  HttpUpstream up;
  const RefusingPort refusing;  // cluster "dead": refuses connections until the test ends
  const uint16_t dead = refusing.port();
  auto f = FerryProcess::start(FerryConfig{.routes = {{"{path: /only}", "up"}, {"{path: /dead}", "dead"}},
                                           .clusters = {{"up", {up.port()}}, {"dead", {dead}}}}
                                   .yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  REQUIRE(c->sendAll(get("/nope")));
  auto r1 = readHttpResponse(*c);
  INFO("404 headers: " << r1.headers);
  REQUIRE(r1.status == 404);
  CHECK(lower(r1.header("connection")) != "close");
  REQUIRE(c->sendAll(get("/only")));
  auto r2 = readHttpResponse(*c);
  REQUIRE(r2.status == 200);
  CHECK(r2.body == "ok:/only");
  REQUIRE(c->sendAll(get("/dead")));
  auto r3 = readHttpResponse(*c);
  INFO("503 headers: " << r3.headers);
  REQUIRE(r3.status == 503);
  CHECK(lower(r3.header("connection")) != "close");
  REQUIRE(c->sendAll(get("/only")));
  auto r4 = readHttpResponse(*c);
  REQUIRE(r4.status == 200);
  CHECK(r4.body == "ok:/only");
  CHECK_FALSE(c->closedByPeer());
  CHECK(up.requestCount() == 2);
}

TEST_CASE("edge: a gRPC request with no route gets HTTP 200, grpc-status 12 and no body", "[edge]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.routes = {{"{path: /only}", "up"}}, .clusters = {{"up", {up.port()}}}}.yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  REQUIRE(c->sendAll(
      "POST /pkg.Service/Method HTTP/1.1\r\nHost: a\r\ncontent-type: application/grpc\r\n"
      "te: trailers\r\ncontent-length: 5\r\n\r\n\0\0\0\0\0"s));
  auto r = readHttpResponse(*c);
  INFO("headers: " << r.headers << " error: " << r.error);
  REQUIRE(r.status == 200);
  CHECK(r.header("grpc-status") == "12");
  CHECK(r.hasHeader("grpc-message"));
  CHECK(lower(r.header("content-type")).rfind("application/grpc", 0) == 0);
  CHECK(r.body.empty());
  CHECK(up.connections() == 0);
}
