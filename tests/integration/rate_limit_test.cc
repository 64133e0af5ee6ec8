// Edge limits over loopback: the local_rate_limit HTTP filter (token buckets shared by the
// workers, keys, 429 headers, shadow mode, HTTP/2) and listeners' max_connections_per_ip.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <thread>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_upstream.h"

using namespace ferry::testing;

namespace {

std::string rateLimit(const std::string& config) { return httpFilterYaml("local_rate_limit", config); }

const std::string kRlFlags = "ferry_downstream_response_flags_total{listener=\"web\",flag=\"RL\"}";

// ferry_local_rate_limit_requests_total{listener,result}: allowed, limited, shadow_limited,
// no_key, in that order.
Counts rlCounts(FerryProcess& f, const std::string& listener = "web") {
  return outcomeCounts(f, "ferry_local_rate_limit_requests_total", {"allowed", "limited", "shadow_limited", "no_key"},
                       listener);
}

// Statuses of n requests (each on its own connection), counted.
struct Tally {
  int ok = 0, limited = 0, other = 0;
};
Tally send(uint16_t port, int n, const std::vector<std::string>& headers = {}) {
  Tally t;
  for (int i = 0; i < n; ++i) {
    int s = httpRequest(port, "GET", "/r" + std::to_string(i), "", headers).status;
    (s == 200 ? t.ok : s == 429 ? t.limited : t.other)++;
  }
  return t;
}

long headerNumber(const HttpResponse& r, std::string_view name) {
  const std::string v = r.header(name);
  return v.empty() ? -1 : std::stol(v);
}

}  // namespace

TEST_CASE("local_rate_limit: a burst passes exactly max_tokens; the rest get 429 RL with retry-after",
          "[rate_limit]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.http_extra = rateLimit("{max_tokens: 5, fill_interval: 1h}"),
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  const uint16_t port = f->port("web");
  HttpResponse first = httpRequest(port, "GET", "/a");
  REQUIRE(first.status == 200);
  CHECK_FALSE(first.hasHeader("ratelimit-limit"));  // response_headers is off
  Tally t = send(port, 19);
  CHECK(t.ok == 4);
  CHECK(t.limited == 15);
  CHECK(t.other == 0);
  CHECK(up.requestCount() == 5);

  HttpResponse r = httpRequest(port, "GET", "/b");
  REQUIRE(r.status == 429);
  CHECK(r.body == "rate limited\n");
  CHECK(r.header("x-ferry-flags") == "RL");
  CHECK(r.header("content-type") == "text/plain");
  CHECK(headerNumber(r, "retry-after") >= 1);
  CHECK(headerNumber(r, "retry-after") <= 3600);
  CHECK(headerNumber(r, "ratelimit-limit") == 5);
  CHECK(headerNumber(r, "ratelimit-remaining") == 0);
  CHECK(headerNumber(r, "ratelimit-reset") == headerNumber(r, "retry-after"));
  CHECK(metricValue(*f, kRlFlags) == 16);
  CHECK(rlCounts(*f) == Counts{5, 16, 0, 0});
}

TEST_CASE("local_rate_limit: the bucket is shared by the workers", "[rate_limit]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.workers = 2,
                                           .http_extra = rateLimit("{max_tokens: 10, fill_interval: 1h}"),
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  const uint16_t port = f->port("web");
  // 40 connections from 4 threads at once: SO_REUSEPORT spreads them over both workers (all
  // on one has a chance of 2^-39). Buckets per worker would let more than 10 through.
  std::atomic<int> ok{0}, limited{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      for (int n = 0; n < 10; ++n) {
        int s = httpRequest(port, "GET", "/s").status;
        (s == 200 ? ok : s == 429 ? limited : other)++;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(ok.load() == 10);
  CHECK(limited.load() == 30);
  CHECK(other.load() == 0);
  CHECK(up.requestCount() == 10);
  CHECK(metricValue(*f, kRlFlags) == 30);
  CHECK(rlCounts(*f) == Counts{10, 30, 0, 0});  // one series per listener, both workers' counts
}

TEST_CASE("local_rate_limit: tokens come back after fill_interval", "[rate_limit]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = rateLimit("{max_tokens: 2, tokens_per_fill: 1, fill_interval: 300ms, "
                                          "response_headers: true}"),
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
  const uint16_t port = f->port("web");
  // Drain the bucket (a fill may land meanwhile: keep taking until refused).
  int taken = 0;
  HttpResponse r;
  while ((r = httpRequest(port, "GET", "/x")).status == 200 && taken < 50) ++taken;
  REQUIRE(r.status == 429);
  REQUIRE(taken >= 2);
  CHECK(headerNumber(r, "retry-after") == 1);  // under a second to the next fill, rounded up
  // Poll until a token has arrived (bounded).
  HttpResponse back;
  REQUIRE(waitUntil([&] { return (back = httpRequest(port, "GET", "/y")).status == 200; }, 5s, 20ms));
  CHECK(headerNumber(back, "ratelimit-limit") == 2);
  CHECK(headerNumber(back, "ratelimit-remaining") >= 0);
  CHECK(headerNumber(back, "ratelimit-remaining") <= 1);
  CHECK(headerNumber(back, "ratelimit-reset") == 1);
  const Counts c = rlCounts(*f);
  CHECK(c[0] == taken + 1);
  CHECK(c[1] >= 1);
  CHECK(c[2] == 0);
  CHECK(c[3] == 0);
}

TEST_CASE("local_rate_limit: key header:NAME has a bucket per value; requests without it pass",
          "[rate_limit]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = rateLimit("{max_tokens: 2, fill_interval: 1h, key: 'header:X-Api-Key'}"),
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
  const uint16_t port = f->port("web");
  Tally a = send(port, 4, {"X-Api-Key: alice"});
  CHECK(a.ok == 2);
  CHECK(a.limited == 2);
  Tally b = send(port, 3, {"x-api-key: bob"});
  CHECK(b.ok == 2);
  CHECK(b.limited == 1);
  Tally none = send(port, 5);
  CHECK(none.ok == 5);
  CHECK(metricValue(*f, kRlFlags) == 3);
  CHECK(rlCounts(*f) == Counts{4, 3, 0, 5});  // no key: counted as such, never limited
}

TEST_CASE("local_rate_limit: key client_ip uses the client's IP after PROXY protocol", "[rate_limit]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.listener_extra = "    proxy_protocol: true\n",
                                           .http_extra = rateLimit("{max_tokens: 3, fill_interval: 1h, key: client_ip}"),
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  const uint16_t port = f->port("web");
  auto from = [&](const std::string& ip) {
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    REQUIRE(c->sendAll("PROXY TCP4 " + ip + " 127.0.0.1 40000 80\r\nGET / HTTP/1.1\r\nHost: x\r\n"
                       "Connection: close\r\n\r\n"));
    return readHttpResponse(*c).status;
  };
  int ok_a = 0, ok_b = 0;
  for (int i = 0; i < 5; ++i) ok_a += from("192.0.2.10") == 200;
  for (int i = 0; i < 4; ++i) ok_b += from("192.0.2.11") == 200;
  CHECK(ok_a == 3);
  CHECK(ok_b == 3);
  CHECK(from("192.0.2.10") == 429);
  CHECK(metricValue(*f, kRlFlags) == 4);
  CHECK(rlCounts(*f) == Counts{6, 4, 0, 0});
}

TEST_CASE("local_rate_limit: shadow mode forwards everything and flags what it would refuse",
          "[rate_limit]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = rateLimit("{max_tokens: 2, fill_interval: 1h, shadow: true}"),
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
  const uint16_t port = f->port("web");
  int flagged = 0;
  for (int i = 0; i < 6; ++i) {
    HttpResponse r = httpRequest(port, "GET", "/s");
    CHECK(r.status == 200);
    CHECK_FALSE(r.hasHeader("retry-after"));
    flagged += r.header("x-ferry-flags") == "RL";
  }
  CHECK(flagged == 4);
  CHECK(up.requestCount() == 6);
  CHECK(metricValue(*f, kRlFlags) == 4);
  CHECK(rlCounts(*f) == Counts{2, 0, 4, 0});
}

TEST_CASE("local_rate_limit: HTTP/2 clients get the same 429 and headers", "[rate_limit][http2]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = rateLimit("{max_tokens: 3, fill_interval: 1h, response_headers: true}"),
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
  const std::string url = "http://127.0.0.1:" + std::to_string(f->port("web")) + "/h2";
  int ok = 0, limited = 0;
  std::string last;
  for (int i = 0; i < 5; ++i) {
    RunResult r = runProcess({"curl", "-sS", "-i", "--http2-prior-knowledge", "--max-time", "10", url});
    REQUIRE(r.exit_code == 0);
    if (r.out.rfind("HTTP/2 200", 0) == 0) {
      ++ok;
      CHECK(r.out.find("ratelimit-remaining: " + std::to_string(3 - ok)) != std::string::npos);
    } else if (r.out.rfind("HTTP/2 429", 0) == 0) {
      ++limited;
      last = r.out;
    }
  }
  CHECK(ok == 3);
  CHECK(limited == 2);
  INFO(last);
  CHECK(last.find("retry-after: ") != std::string::npos);
  CHECK(last.find("ratelimit-limit: 3") != std::string::npos);
  CHECK(last.find("ratelimit-remaining: 0") != std::string::npos);
  CHECK(last.find("x-ferry-flags: RL") != std::string::npos);
  CHECK(last.find("rate limited\n") != std::string::npos);
  CHECK(metricValue(*f, kRlFlags) == 2);
  CHECK(rlCounts(*f) == Counts{3, 2, 0, 0});
}

TEST_CASE("local_rate_limit: gRPC clients get UNAVAILABLE (429's gRPC mapping)", "[rate_limit][grpc]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.http_extra = rateLimit("{max_tokens: 1, fill_interval: 1h}"),
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  const uint16_t port = f->port("web");
  const std::vector<std::string> grpc = {"Content-Type: application/grpc", "TE: trailers"};
  REQUIRE(httpRequest(port, "POST", "/pkg.Svc/Call", "", grpc).status == 200);
  HttpResponse r = httpRequest(port, "POST", "/pkg.Svc/Call", "", grpc);
  CHECK(r.status == 200);
  CHECK(r.header("grpc-status") == "14");
  CHECK(r.header("grpc-message") == "rate limited");
  CHECK(r.hasHeader("retry-after"));
  CHECK(rlCounts(*f) == Counts{1, 1, 0, 0});
}

TEST_CASE("local_rate_limit: a route disables the limit or has a bucket of its own",
          "[rate_limit][filter_override]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.listener = "edge",
                                           .http_extra = rateLimit("{max_tokens: 3, fill_interval: 1h}"),
                                           .routes = overrideRoutes("local_rate_limit", "{max_tokens: 1, fill_interval: 1h}"),
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  const uint16_t port = f->port("edge");
  auto tally = [&](const std::string& path, int n) {
    Tally t;
    for (int i = 0; i < n; ++i) {
      int s = httpRequest(port, "GET", path).status;
      (s == 200 ? t.ok : s == 429 ? t.limited : t.other)++;
    }
    return t;
  };
  // Disabled: never limited, not counted, and the listener's bucket is untouched.
  Tally off = tally("/off/x", 6);
  CHECK(off.ok == 6);
  CHECK(rlCounts(*f, "edge") == Counts{0, 0, 0, 0});
  // The route's own config: a bucket of 1, separate from the listener's bucket of 3.
  Tally alt = tally("/alt/x", 3);
  CHECK(alt.ok == 1);
  CHECK(alt.limited == 2);
  Tally rest = tally("/x", 5);
  CHECK(rest.ok == 3);
  CHECK(rest.limited == 2);
  CHECK(tally("/off/y", 2).ok == 2);
  CHECK(up.requestCount() == 12);
  // Both configs count into the listener's series.
  CHECK(rlCounts(*f, "edge") == Counts{4, 4, 0, 0});
  CHECK(metricValue(*f, "ferry_downstream_response_flags_total{listener=\"edge\",flag=\"RL\"}") == 4);
  // The same over HTTP/2: the route's bucket stays empty, the disabled route passes.
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  RunResult a = runProcess({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                            "--http2-prior-knowledge", base + "/alt/h2"});
  CHECK(a.out == "2 429");
  RunResult o = runProcess({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                            "--http2-prior-knowledge", base + "/off/h2"});
  CHECK(o.out == "2 200");
  CHECK(rlCounts(*f, "edge") == Counts{4, 5, 0, 0});
}

namespace {

// A connection to 127.0.0.1:port from source address `src` (a loopback IP) that has done one
// echo round trip through ferry (so ferry surely accepted and counted it); -1 otherwise.
int echoFrom(const std::string& src, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, src.c_str(), &a.sin_addr);
  sockaddr_in d{};
  d.sin_family = AF_INET;
  d.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &d.sin_addr);
  char buf[2];
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&d), sizeof d) != 0 || ::send(fd, "hi", 2, MSG_NOSIGNAL) != 2 ||
      ::recv(fd, buf, 2, MSG_WAITALL) != 2) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

TEST_CASE("max_connections_per_ip: the connection past the limit is closed and counted; a freed slot is reused",
          "[rate_limit][limits]") {
  FakeUpstream up(FakeUpstream::echo());
  auto f = FerryProcess::start(FerryConfig{.workers = 2,
                                           .listener = "tcp",
                                           .listener_extra = "    max_connections_per_ip: 2\n",
                                           .tcp_cluster = "up",
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  const uint16_t port = f->port("tcp");
  const std::string overflow = "ferry_downstream_connections_per_ip_overflow_total{listener=\"tcp\"}";
  CHECK(metricValue(*f, overflow) == 0);
  int a = echoFrom("127.0.0.1", port);
  int b = echoFrom("127.0.0.1", port);
  REQUIRE(a >= 0);
  REQUIRE(b >= 0);
  // The third from the same IP: the kernel accepts it, ferry closes it at once (whichever
  // worker has it: the counts are process-wide).
  auto c = TcpClient::connect(port);
  REQUIRE(c);
  CHECK(c->waitClosed(3s));
  CHECK(metricValue(*f, overflow) == 1);
  CHECK(up.accepted() == 2);
  // Another client IP has its own count.
  int other = echoFrom("127.0.0.2", port);
  CHECK(other >= 0);
  // A closed connection frees its slot: poll until ferry has seen the close.
  ::close(a);
  int again = -1;
  REQUIRE(waitUntil([&] { return (again = echoFrom("127.0.0.1", port)) >= 0; }, 5s, 20ms));
  CHECK(metricValue(*f, "ferry_downstream_connections_active{listener=\"tcp\"}") == 3);
  for (int fd : {b, other, again})
    if (fd >= 0) ::close(fd);
}
