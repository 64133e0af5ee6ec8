// Slow clients over loopback: request_timeout (a request body trickled too slowly gets 408
// RQT), stream_idle_timeout (a stream with no bytes either way ends: 408 SI before the
// response, a reset after it, which releases what Ferry buffered for a client that stopped
// reading), the per-route stream_idle_timeout, and the same over HTTP/2.
#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <thread>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http2_support.h"
#include "tests/integration/http_upstream.h"

using namespace ferry::testing;
using Clock = std::chrono::steady_clock;

namespace {

std::string timeoutKey(const std::string& which) {
  return "ferry_downstream_timeouts_total{listener=\"web\",timeout=\"" + which + "\"}";
}
std::string flagKey(const std::string& flag) {
  return "ferry_downstream_response_flags_total{listener=\"web\",flag=\"" + flag + "\"}";
}
double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Sends a POST head announcing 100 body bytes, then one byte per `every` until a response or
// a close arrives (or 100 bytes went). Returns everything received until the close (10 s max).
std::string trickle(uint16_t port, ms every, double* elapsed) {
  auto c = TcpClient::connect(port);
  REQUIRE(c);
  const auto start = Clock::now();
  REQUIRE(c->sendAll("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"));
  std::string got;
  for (int i = 0; i < 100; ++i) {
    got += c->recvSome(every);  // paces the trickle: waits `every` unless something arrives
    if (!got.empty() || c->closedByPeer()) break;
    if (!c->sendAll("x", 1s)) break;
  }
  got += c->recvUntilClose(10s);
  *elapsed = secondsSince(start);
  CHECK(c->closedByPeer());
  return got;
}

// An upstream answering with an endless body (256 MiB announced), written until Ferry closes.
UpstreamAction endlessBody(const UpstreamRequest&) {
  UpstreamAction a;
  a.custom = [](int fd) {
    if (!FakeUpstream::writeAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 268435456\r\n\r\n")) return;
    const std::string chunk(64 * 1024, 'z');
    for (int i = 0; i < 4096; ++i)
      if (!FakeUpstream::writeAll(fd, chunk)) return;
  };
  return a;
}

UpstreamAction stall(const UpstreamRequest&) {
  UpstreamAction a;
  a.stall = true;
  return a;
}

}  // namespace

TEST_CASE("request_timeout: a body trickled slower than the whole request allows gets 408 RQT", "[slow_client]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.http_extra = "      request_timeout: 1s\n"
                                                         "      response_flags_header: true\n",
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  const uint16_t port = f->port("web");
  double elapsed = 0;
  // A byte every 200 ms keeps the stream busy (stream_idle_timeout is 300 s), but 100 bytes
  // take 20 s.
  HttpResponse r = parseHttpResponse(trickle(port, 200ms, &elapsed));
  CHECK(r.status == 408);
  CHECK(r.header("x-ferry-flags") == "RQT");
  CHECK(r.header("connection") == "close");
  CHECK(r.body == "request timeout\n");
  CHECK(elapsed >= 0.9);
  CHECK(elapsed < 5);
  CHECK(metricValue(*f, timeoutKey("request")) == 1);
  CHECK(metricValue(*f, timeoutKey("stream_idle")) == 0);
  CHECK(metricValue(*f, flagKey("RQT")) == 1);
  // A request that arrives in time is untouched.
  CHECK(httpRequest(port, "POST", "/fast", std::string(1000, 'b')).status == 200);
  CHECK(metricValue(*f, timeoutKey("request")) == 1);
}

TEST_CASE("stream_idle_timeout: bytes either way keep a stream alive; silence ends it with 408 SI",
          "[slow_client]") {
  HttpUpstream up([](const UpstreamRequest& rq) {
    return rq.target == "/stall" ? stall(rq) : HttpUpstream::ok("got " + std::to_string(rq.body.size()));
  });
  // 1.5 s: a gap between two trickled bytes has to stall 1.3 s past its 200 ms to end the
  // stream, which a loaded CI machine (sanitizers, two builds at once) does not do; 600 ms did.
  auto f = FerryProcess::start(FerryConfig{.http_extra = "      stream_idle_timeout: 1500ms\n"
                                                         "      response_flags_header: true\n",
                                           .routes = {{.match = "{prefix: /}", .cluster = "up", .action = "timeout: 0s"}},
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  const uint16_t port = f->port("web");

  SECTION("a body trickled a byte every 200 ms outlives the 1.5 s idle timeout") {
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    const auto start = Clock::now();
    REQUIRE(c->sendAll("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"));
    for (int i = 0; i < 10; ++i) {
      CHECK(c->recvSome(200ms).empty());  // nothing comes back meanwhile
      REQUIRE(c->sendAll("y", 1s));
    }
    CHECK(secondsSince(start) >= 1.5);  // the stream lived longer than one idle timeout
    HttpResponse r = readHttpResponse(*c);
    CHECK(r.status == 200);
    CHECK(r.body == "got 10");
    CHECK(metricValue(*f, timeoutKey("stream_idle")) == 0);
  }

  SECTION("a body that stops arriving gets 408 SI and the connection closes") {
    double elapsed = 0;
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    const auto start = Clock::now();
    REQUIRE(c->sendAll("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\nab"));
    HttpResponse r = parseHttpResponse(c->recvUntilClose(10s));
    elapsed = secondsSince(start);
    CHECK(c->closedByPeer());
    CHECK(r.status == 408);
    CHECK(r.header("x-ferry-flags") == "SI");
    CHECK(r.header("connection") == "close");
    CHECK(elapsed >= 1.4);
    CHECK(elapsed < 6);
    CHECK(metricValue(*f, timeoutKey("stream_idle")) == 1);
    CHECK(metricValue(*f, flagKey("SI")) == 1);
  }

  SECTION("an upstream that never answers (no route timeout) ends at the idle timeout too") {
    const auto start = Clock::now();
    HttpResponse r = httpRequest(port, "GET", "/stall");
    CHECK(r.status == 408);
    CHECK(r.header("x-ferry-flags") == "SI");
    CHECK(secondsSince(start) >= 1.4);
    CHECK(metricValue(*f, timeoutKey("stream_idle")) == 1);
  }
}

TEST_CASE("stream_idle_timeout: a client that stops reading is cut off and its buffered bytes are released",
          "[slow_client]") {
  HttpUpstream up(endlessBody);
  auto f = FerryProcess::start(FerryConfig{.http_extra = "      stream_idle_timeout: 1s\n",
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  const uint16_t port = f->port("web");
  const uint16_t admin = f->adminPort();
  auto c = TcpClient::connect(port, 5s, 4096);
  REQUIRE(c);
  REQUIRE(c->sendAll("GET /big HTTP/1.1\r\nHost: t\r\n\r\n"));
  const std::string head = c->recvSome(5s);
  REQUIRE(head.rfind("HTTP/1.1 200", 0) == 0);
  // The client reads no more: Ferry's write buffer for it fills up, then the upstream is
  // paused, then nothing moves.
  CHECK(waitUntil([&] { return metricValue(admin, "ferry_buffered_bytes") > 0; }, 5s));
  CHECK(waitMetric(admin, timeoutKey("stream_idle"), 1, 10s));
  // The response had started: the stream is reset (the connection closes), flagged SI, and
  // what was buffered for it is gone.
  CHECK(waitMetric(admin, "ferry_buffered_bytes", 0, 5s));
  CHECK(metricValue(admin, flagKey("SI")) == 1);
  CHECK(c->waitClosed(10s));
  // The upstream connection went with it (the upstream's writer stops).
  CHECK(waitMetric(admin, "ferry_upstream_connections_active{cluster=\"up\"}", 0, 5s));
}

TEST_CASE("stream_idle_timeout: a route's own value overrides the listener's", "[slow_client]") {
  HttpUpstream up(stall);
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = "      stream_idle_timeout: 30s\n"
                                "      response_flags_header: true\n",
                  .routes = {{.match = "{prefix: /short}", .cluster = "up",
                              .action = "timeout: 0s, stream_idle_timeout: 300ms"},
                             {.match = "{prefix: /off}", .cluster = "up",
                              .action = "timeout: 700ms, stream_idle_timeout: 0s"}},
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
  const uint16_t port = f->port("web");
  auto start = Clock::now();
  HttpResponse r = httpRequest(port, "GET", "/short");
  CHECK(r.status == 408);
  CHECK(r.header("x-ferry-flags") == "SI");
  CHECK(secondsSince(start) < 5);
  // Off on this route: the route's upstream timeout answers instead.
  start = Clock::now();
  r = httpRequest(port, "GET", "/off");
  CHECK(r.status == 504);
  CHECK(r.header("x-ferry-flags") == "UT");
  CHECK(secondsSince(start) >= 0.6);
  CHECK(metricValue(*f, timeoutKey("stream_idle")) == 1);
}

TEST_CASE("slow-client timeouts over HTTP/2: 408 on the stream, a reset once the response started; "
          "the connection lives on",
          "[slow_client][http2]") {
  using namespace ferry::testing::h2test;
  HttpUpstream up([](const UpstreamRequest& rq) {
    if (rq.target == "/big") return endlessBody(rq);
    return HttpUpstream::ok("ok");
  });
  auto f = FerryProcess::start(FerryConfig{.http_extra = "      stream_idle_timeout: 1s\n"
                                                         "      request_timeout: 1500ms\n"
                                                         "      response_flags_header: true\n",
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  const uint16_t port = f->port("web");

  SECTION("request_timeout") {
    Json j = runScript("slow_stream.py", port, {"--mode", "trickle"});
    CHECK(j["status"].num() == 408);
    CHECK(j["flags"].str() == "RQT");
    CHECK(j["elapsed"].num() >= 1.4);
    CHECK(truthy(j["connection_alive"]));
    CHECK(metricValue(*f, timeoutKey("request")) == 1);
  }
  SECTION("stream_idle_timeout on a stream whose reader stopped") {
    Json j = runScript("slow_stream.py", port, {"--mode", "stall", "--path", "/big"});
    CHECK(j["status"].num() == 200);
    CHECK(j["reset"].num() >= 0);  // RST_STREAM arrived
    CHECK(j["elapsed"].num() >= 0.9);
    CHECK(truthy(j["connection_alive"]));
    CHECK(metricValue(*f, timeoutKey("stream_idle")) == 1);
    CHECK(metricValue(*f, flagKey("SI")) == 1);
  }
}

namespace {

// An upstream answering with an 8 MiB body: under the listener's write-buffer limit (16 MiB
// below), so the stream completes at once, and more than the kernel's socket buffers take
// (4 MiB at most here), so most of it stays in Ferry's buffer for the client.
constexpr size_t kCloseBody = 8 * 1024 * 1024;
const std::string kCloseListener = "    per_connection_buffer_limit_kb: 16384\n";
UpstreamAction closeBody(const UpstreamRequest&) { return HttpUpstream::ok(std::string(kCloseBody, 'c')); }

// Ferry (close_flush_timeout: 1s) in front of that upstream, and a client with a 4 KiB
// receive buffer that asked for the body with `connection: close`: once the response is
// complete, Ferry closes the connection after sending it.
struct ClosingExchange {
  HttpUpstream up{closeBody};
  std::unique_ptr<FerryProcess> ferry;
  std::unique_ptr<TcpClient> client;
  bool start() {
    ferry = FerryProcess::start(FerryConfig{.listener_extra = kCloseListener,
                                            .http_extra = "      close_flush_timeout: 1s\n",
                                            .clusters = {{"up", {up.port()}}}}
                                    .yaml());
    client = TcpClient::connect(ferry->port("web"), 5s, 4096);
    return client && client->sendAll("GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") &&
           up.waitRequests(1);
  }
};

}  // namespace

TEST_CASE("close_flush_timeout: a client that reads nothing of a closing connection is reset, "
          "and what was buffered for it is released",
          "[slow_client]") {
  ClosingExchange x;
  REQUIRE(x.start());
  auto& c = x.client;
  const uint16_t admin = x.ferry->adminPort();
  const std::string active = "ferry_downstream_connections_active{listener=\"web\"}";
  // The client reads nothing: the response sits in Ferry's buffer, the connection is closing.
  CHECK(waitUntil([&] { return metricValue(admin, "ferry_buffered_bytes") > 0; }, 5s));
  CHECK(metricValue(admin, active) == 1);
  // No byte taken for 1s: the connection is reset and its buffer released.
  const auto start = Clock::now();
  CHECK(waitMetric(admin, active, 0, 10s));
  CHECK(secondsSince(start) < 5.0);
  CHECK(waitMetric(admin, "ferry_buffered_bytes", 0, 5s));
  CHECK(c->waitClosed(5s));
}

TEST_CASE("close_flush_timeout: a slow client that keeps taking bytes gets the whole response",
          "[slow_client]") {
  ClosingExchange x;
  REQUIRE(x.start());
  auto& c = x.client;
  // Reads at a pace that makes the whole flush take several times the timeout: each pause is
  // shorter than it, so the connection is never reset.
  const auto start = Clock::now();
  std::string got;
  while (!c->closedByPeer() && got.size() < kCloseBody + 200 && secondsSince(start) < 30) {
    got += c->recvExactly(std::min<size_t>(256 * 1024, kCloseBody + 200 - got.size()), 2s);
    std::this_thread::sleep_for(100ms);  // paces the reader (the behaviour under test), not a wait for Ferry
  }
  got += c->recvUntilClose(5s);
  CHECK(secondsSince(start) > 2.0);
  CHECK(c->sawEof());
  CHECK_FALSE(c->sawReset());
  const size_t body_at = got.find("\r\n\r\n");
  REQUIRE(body_at != std::string::npos);
  CHECK(got.size() - body_at - 4 == kCloseBody);
}
