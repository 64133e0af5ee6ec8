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

std::string rateLimit(const std::string& config) {
  return "      response_flags_header: true\n"
         "      filters:\n"
         "        - name: local_rate_limit\n"
         "          config: " + config + "\n";
}

const std::string kRlFlags = "ferry_downstream_response_flags_total{listener=\"web\",flag=\"RL\"}";

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
