// HealthChecker against real loopback servers that run on the same io_context: HTTP status
// checks and thresholds, TCP send/expect, refused connections, timeouts, and lifetime safety
// (removal and destruction with checks in flight, callbacks that remove or destroy). Bounded
// waits (runUntil, tests/support/event_loop.h); no sleeps. The lifetime cases keep running the
// io_context after the removal so that the aborted completions actually execute (ASan sees any
// use-after-free).
#include "core/upstream/health_checker.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/event_loop.h"

using ferry::config::HealthCheckConfig;
using ferry::core::upstream::HealthChecker;
using ferry::testing::runUntil;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

void runFor(asio::io_context& io, std::chrono::milliseconds d) {
  auto deadline = Clock::now() + d;
  while (Clock::now() < deadline) {
    io.run_one_until(deadline);
    if (io.stopped()) io.restart();
  }
}

sockaddr_storage toStorage(const tcp::endpoint& ep) {
  sockaddr_storage ss{};
  std::memcpy(&ss, ep.data(), ep.size());
  return ss;
}

// A loopback port that refuses connections for as long as this object lives: a socket bound
// to it (no SO_REUSEADDR) that never listens, so nothing else can take the port meanwhile.
struct RefusedAddr {
  RefusedAddr() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  }
  ~RefusedAddr() { ::close(fd); }
  RefusedAddr(const RefusedAddr&) = delete;
  RefusedAddr& operator=(const RefusedAddr&) = delete;
  int fd = -1;
  sockaddr_storage addr{};
};

// A server on the test's io_context. Each connection reads until `until` has arrived (at once
// when empty), records what it read, then writes `reply` and closes, or with `hold` keeps the
// connection open and never answers.
class TestServer {
 public:
  explicit TestServer(asio::io_context& io) : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
  }
  ~TestServer() {
    error_code ignored;
    acceptor_.close(ignored);
    for (auto& c : conns_) c->socket.close(ignored);
  }

  sockaddr_storage addr() const { return toStorage(acceptor_.local_endpoint()); }
  void setStatus(int status) {
    reply = "HTTP/1.1 " + std::to_string(status) + " Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  }

  std::string until = "\r\n\r\n";
  std::string reply;
  bool hold = false;
  int accepted = 0;
  std::vector<std::string> requests;

 private:
  using error_code = boost::system::error_code;
  struct Conn {
    explicit Conn(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    std::string in;
    std::string out;
    std::array<char, 1024> chunk{};
  };

  void accept() {
    acceptor_.async_accept([this](const error_code& ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;  // the server may be gone
      if (!ec) {
        ++accepted;
        auto c = std::make_shared<Conn>(std::move(s));
        conns_.push_back(c);
        if (until.empty()) answer(c);
        else read(c);
      }
      accept();
    });
  }

  void read(const std::shared_ptr<Conn>& c) {
    c->socket.async_read_some(asio::buffer(c->chunk), [this, c](const error_code& ec, size_t n) {
      if (ec == asio::error::operation_aborted) return;
      c->in.append(c->chunk.data(), n);
      if (c->in.find(until) != std::string::npos) {
        requests.push_back(c->in);
        return answer(c);
      }
      if (!ec) read(c);
    });
  }

  void answer(const std::shared_ptr<Conn>& c) {
    if (hold) return;
    c->out = reply;
    asio::async_write(c->socket, asio::buffer(c->out), [c](const error_code&, size_t) {
      error_code ignored;
      c->socket.shutdown(tcp::socket::shutdown_send, ignored);
      c->socket.close(ignored);
    });
  }

  tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<Conn>> conns_;
};

struct Result {
  uint64_t id;
  bool passed;
  std::string detail;
  Clock::time_point at;
};

struct Change {
  uint64_t id;
  bool healthy;
  size_t after_results;  // how many results had been reported when the change came
};

// Records every callback; the checker is created last so it is destroyed first.
struct Recorder {
  std::vector<Result> results;
  std::vector<Change> changes;
  HealthChecker::OnChange onChange() {
    return [this](uint64_t id, bool healthy) { changes.push_back({id, healthy, results.size()}); };
  }
  HealthChecker::OnResult onResult() {
    return [this](uint64_t id, bool passed, const std::string& detail) {
      results.push_back({id, passed, detail, Clock::now()});
    };
  }
};

HealthCheckConfig httpConfig() {
  HealthCheckConfig cfg;
  cfg.type = HealthCheckConfig::Type::kHttp;
  cfg.path = "/healthz";
  cfg.interval = 20ms;
  cfg.timeout = 1000ms;
  cfg.healthy_threshold = 2;
  cfg.unhealthy_threshold = 3;
  return cfg;
}

HealthCheckConfig tcpConfig() {
  HealthCheckConfig cfg = httpConfig();
  cfg.type = HealthCheckConfig::Type::kTcp;
  cfg.path.clear();
  return cfg;
}

}  // namespace

TEST_CASE("HTTP check against a 200 host passes repeatedly and sends the specified request", "[health]") {
  asio::io_context io;
  TestServer server(io);
  server.setStatus(200);
  Recorder rec;
  auto cfg = httpConfig();
  cfg.interval = 30ms;

  SECTION("cfg.host is the Host header") {
    cfg.host = "api.internal";
    HealthChecker hc(io, cfg, "cluster-a", rec.onChange(), rec.onResult());
    hc.addTarget(7, server.addr(), "127.0.0.1");
    REQUIRE(hc.healthy(7));
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 4; }));
    for (const auto& r : rec.results) {
      CHECK(r.id == 7);
      CHECK(r.passed);
      CHECK(r.detail.empty());
    }
    // Consecutive checks are at least the interval apart (no jitter configured).
    for (size_t i = 1; i < rec.results.size(); ++i) CHECK(rec.results[i].at - rec.results[i - 1].at >= cfg.interval);
    CHECK(rec.changes.empty());
    CHECK(hc.healthy(7));
    REQUIRE(!server.requests.empty());
    CHECK(server.requests[0] ==
          "GET /healthz HTTP/1.1\r\nHost: api.internal\r\nUser-Agent: ferry-health-check\r\nConnection: close\r\n\r\n");
  }

  SECTION("the default host when cfg.host is empty") {
    cfg.jitter = 20ms;
    HealthChecker hc(io, cfg, "cluster-a", rec.onChange(), rec.onResult());
    hc.addTarget(1, server.addr(), "127.0.0.1");
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 2; }));
    CHECK(rec.results[0].passed);
    CHECK(rec.results[1].at - rec.results[0].at >= cfg.interval);
    REQUIRE(!server.requests.empty());
    CHECK(server.requests[0] ==
          "GET /healthz HTTP/1.1\r\nHost: cluster-a\r\nUser-Agent: ferry-health-check\r\nConnection: close\r\n\r\n");
  }
}

TEST_CASE("HTTP check: unhealthy after unhealthy_threshold failures, healthy after healthy_threshold passes",
          "[health]") {
  asio::io_context io;
  TestServer server(io);
  server.setStatus(503);
  Recorder rec;
  HealthChecker hc(io, httpConfig(), "c", rec.onChange(), rec.onResult());
  hc.addTarget(3, server.addr(), "127.0.0.1");

  REQUIRE(runUntil(io, [&] { return rec.changes.size() == 1; }));
  CHECK(rec.changes[0].id == 3);
  CHECK_FALSE(rec.changes[0].healthy);
  CHECK(rec.changes[0].after_results == 3);  // exactly unhealthy_threshold
  CHECK_FALSE(hc.healthy(3));
  for (const auto& r : rec.results) {
    CHECK_FALSE(r.passed);
    CHECK(r.detail == "unexpected status 503");
  }

  // Further failures while unhealthy change nothing.
  REQUIRE(runUntil(io, [&] { return rec.results.size() == 5; }));
  CHECK(rec.changes.size() == 1);

  server.setStatus(200);
  REQUIRE(runUntil(io, [&] { return rec.changes.size() == 2; }));
  CHECK(rec.changes[1].healthy);
  CHECK(rec.changes[1].after_results == 7);  // exactly healthy_threshold passes
  CHECK(rec.results[5].passed);
  CHECK(rec.results[6].passed);
  CHECK(hc.healthy(3));

  // A single failure while healthy does not flip it, and a pass resets the count.
  server.setStatus(500);
  REQUIRE(runUntil(io, [&] { return rec.results.size() == 9; }));
  server.setStatus(200);
  REQUIRE(runUntil(io, [&] { return rec.results.size() == 10; }));
  server.setStatus(500);
  REQUIRE(runUntil(io, [&] { return rec.results.size() == 12; }));
  CHECK(rec.changes.size() == 2);
  CHECK(hc.healthy(3));
  REQUIRE(runUntil(io, [&] { return rec.results.size() == 13; }));
  REQUIRE(rec.changes.size() == 3);
  CHECK(rec.changes[2].after_results == 13);
}

TEST_CASE("HTTP check: expected_statuses ranges and malformed status lines", "[health]") {
  asio::io_context io;
  TestServer server(io);
  Recorder rec;
  auto cfg = httpConfig();
  cfg.expected_statuses = {{200, 299}, {418, 418}};
  cfg.unhealthy_threshold = 1;
  HealthChecker hc(io, cfg, "c", rec.onChange(), rec.onResult());

  SECTION("204 passes") {
    server.setStatus(204);
    hc.addTarget(1, server.addr(), "x");
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 2; }));
    CHECK(rec.results[0].passed);
    CHECK(rec.results[1].passed);
  }
  SECTION("418 in a second range passes") {
    server.setStatus(418);
    hc.addTarget(1, server.addr(), "x");
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 1; }));
    CHECK(rec.results[0].passed);
  }
  SECTION("404 fails") {
    server.setStatus(404);
    hc.addTarget(1, server.addr(), "x");
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 1; }));
    CHECK_FALSE(rec.results[0].passed);
    CHECK(rec.results[0].detail == "unexpected status 404");
    REQUIRE(rec.changes.size() == 1);
    CHECK_FALSE(hc.healthy(1));
  }
  SECTION("300 just past the range fails") {
    server.setStatus(300);
    hc.addTarget(1, server.addr(), "x");
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 1; }));
    CHECK_FALSE(rec.results[0].passed);
  }
  SECTION("a malformed status line fails") {
    auto bad = GENERATE(std::string("garbage\r\n\r\n"), std::string("HTTP/2 200 OK\r\n\r\n"),
                        std::string("HTTP/1.1 20 OK\r\n\r\n"), std::string("HTTP/1.1 2000 OK\r\n\r\n"),
                        std::string("HTTP/1.1 200"));  // closed before the line ended
    server.reply = bad;
    hc.addTarget(1, server.addr(), "x");
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 1; }));
    CHECK_FALSE(rec.results[0].passed);
    CHECK_THAT(rec.results[0].detail, Catch::Contains("malformed status line"));
  }
  SECTION("a status line without a reason, bare LF, passes") {
    server.reply = "HTTP/1.0 200\n\n";
    hc.addTarget(1, server.addr(), "x");
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 1; }));
    CHECK(rec.results[0].passed);
  }
  SECTION("closing without a reply fails") {
    server.reply = "";
    hc.addTarget(1, server.addr(), "x");
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 1; }));
    CHECK_FALSE(rec.results[0].passed);
    CHECK(rec.results[0].detail == "closed before status line");
  }
}

TEST_CASE("connection refused is a failure and makes the host unhealthy", "[health]") {
  asio::io_context io;
  Recorder rec;
  auto cfg = httpConfig();
  cfg.unhealthy_threshold = 2;
  RefusedAddr refused;
  HealthChecker hc(io, cfg, "c", rec.onChange(), rec.onResult());
  hc.addTarget(9, refused.addr, "127.0.0.1:x");
  REQUIRE(runUntil(io, [&] { return rec.changes.size() == 1; }));
  CHECK_FALSE(rec.changes[0].healthy);
  CHECK(rec.changes[0].after_results == 2);
  CHECK_FALSE(hc.healthy(9));
  CHECK(rec.results[0].detail == "connect: Connection refused");
}

TEST_CASE("a host that accepts but never answers fails with a timeout after about cfg.timeout", "[health]") {
  asio::io_context io;
  TestServer server(io);
  server.hold = true;
  Recorder rec;
  auto cfg = httpConfig();
  cfg.timeout = 100ms;
  HealthChecker hc(io, cfg, "c", rec.onChange(), rec.onResult());
  auto start = Clock::now();
  hc.addTarget(1, server.addr(), "x");
  REQUIRE(runUntil(io, [&] { return rec.results.size() == 1; }));
  auto took = rec.results[0].at - start;
  CHECK(took >= 100ms);
  CHECK(took < 1000ms);
  CHECK_FALSE(rec.results[0].passed);
  CHECK(rec.results[0].detail == "timeout");
  CHECK(server.requests.size() == 1);  // the request was sent; only the answer was missing

  // A TCP check waiting for its expected reply times out the same way.
  auto tcp_cfg = tcpConfig();
  tcp_cfg.timeout = 100ms;
  tcp_cfg.send = "PING\r\n";
  tcp_cfg.expect = "PONG";
  server.until = "\r\n";
  HealthChecker tcp_hc(io, tcp_cfg, "c", rec.onChange(), rec.onResult());
  tcp_hc.addTarget(2, server.addr(), "x");
  hc.removeTarget(1);
  REQUIRE(runUntil(io, [&] { return rec.results.size() == 2; }));
  CHECK(rec.results[1].id == 2);
  CHECK(rec.results[1].detail == "timeout");
}

TEST_CASE("TCP check: connect, send and expect", "[health]") {
  asio::io_context io;
  TestServer server(io);
  server.until = "\r\n";
  Recorder rec;
  auto cfg = tcpConfig();
  cfg.unhealthy_threshold = 1;

  SECTION("send PING, expect PONG: passes") {
    server.reply = "+PONG\r\n";
    cfg.send = "PING\r\n";
    cfg.expect = "PONG";
    HealthChecker hc(io, cfg, "c", rec.onChange(), rec.onResult());
    hc.addTarget(1, server.addr(), "x");
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 2; }));
    CHECK(rec.results[0].passed);
    CHECK(rec.results[1].passed);
    REQUIRE(!server.requests.empty());
    CHECK(server.requests[0] == "PING\r\n");
    CHECK(rec.changes.empty());
  }
  SECTION("send PING, the reply is NOPE then close: fails") {
    server.reply = "NOPE";
    cfg.send = "PING\r\n";
    cfg.expect = "PONG";
    HealthChecker hc(io, cfg, "c", rec.onChange(), rec.onResult());
    hc.addTarget(1, server.addr(), "x");
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 1; }));
    CHECK_FALSE(rec.results[0].passed);
    CHECK(rec.results[0].detail == "closed before the expected reply");
    REQUIRE(rec.changes.size() == 1);
    CHECK_FALSE(hc.healthy(1));
  }
  SECTION("expect without send: a banner") {
    server.until = "";
    server.reply = "220 smtp ready\r\n";
    cfg.expect = "220 ";
    HealthChecker hc(io, cfg, "c", rec.onChange(), rec.onResult());
    hc.addTarget(1, server.addr(), "x");
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 1; }));
    CHECK(rec.results[0].passed);
  }
  SECTION("a reply without the expected bytes beyond 64 KiB fails") {
    server.until = "";
    server.reply = std::string(100 * 1024, 'x');
    cfg.expect = "PONG";
    HealthChecker hc(io, cfg, "c", rec.onChange(), rec.onResult());
    hc.addTarget(1, server.addr(), "x");
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 1; }));
    CHECK_FALSE(rec.results[0].passed);
    CHECK_THAT(rec.results[0].detail, Catch::Contains("64 KiB"));
  }
  SECTION("plain connect passes when something listens") {
    server.hold = true;
    HealthChecker hc(io, cfg, "c", rec.onChange(), rec.onResult());
    hc.addTarget(1, server.addr(), "x");
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 2; }));
    CHECK(rec.results[0].passed);
    CHECK(rec.results[1].passed);
    // The kernel completes the handshake before the server's accept handler runs.
    CHECK(runUntil(io, [&] { return server.accepted >= 2; }));
  }
  SECTION("plain connect fails when nothing listens") {
    RefusedAddr refused;
    HealthChecker hc(io, cfg, "c", rec.onChange(), rec.onResult());
    hc.addTarget(1, refused.addr, "x");
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 1; }));
    CHECK_FALSE(rec.results[0].passed);
    CHECK_THAT(rec.results[0].detail, Catch::StartsWith("connect: "));
  }
}

TEST_CASE("removal and destruction with checks in flight run no callback afterwards", "[health]") {
  asio::io_context io;
  TestServer silent(io);
  silent.hold = true;
  TestServer ok(io);
  ok.setStatus(200);
  Recorder rec;
  auto cfg = httpConfig();
  cfg.timeout = 50ms;
  cfg.interval = 10ms;

  SECTION("removeTarget while waiting for the answer") {
    HealthChecker hc(io, cfg, "c", rec.onChange(), rec.onResult());
    hc.addTarget(1, silent.addr(), "x");
    REQUIRE(runUntil(io, [&] { return silent.requests.size() == 1; }));
    hc.removeTarget(1);
    runFor(io, 150ms);  // past the timeout: the aborted completions run now
    CHECK(rec.results.empty());
    CHECK(hc.healthy(1));  // no longer checked
  }
  SECTION("removeTarget while connecting, before the io_context ran at all") {
    RefusedAddr refused;
    HealthChecker hc(io, cfg, "c", rec.onChange(), rec.onResult());
    hc.addTarget(1, ok.addr(), "x");
    hc.addTarget(2, refused.addr, "y");
    hc.removeTarget(1);
    hc.removeTarget(2);
    runFor(io, 100ms);
    CHECK(rec.results.empty());
  }
  SECTION("removeTarget then addTarget with the same id: only the new target reports") {
    HealthChecker hc(io, cfg, "c", rec.onChange(), rec.onResult());
    hc.addTarget(1, silent.addr(), "x");
    REQUIRE(runUntil(io, [&] { return silent.accepted == 1; }));
    hc.removeTarget(1);
    hc.addTarget(1, ok.addr(), "x");
    REQUIRE(runUntil(io, [&] { return rec.results.size() >= 3; }));
    for (const auto& r : rec.results) CHECK(r.passed);  // never the old target's timeout
  }
  SECTION("destroying the checker with checks in flight") {
    auto hc = std::make_unique<HealthChecker>(io, cfg, "c", rec.onChange(), rec.onResult());
    hc->addTarget(1, silent.addr(), "x");
    hc->addTarget(2, ok.addr(), "y");
    RefusedAddr refused;
    hc->addTarget(3, refused.addr, "z");
    REQUIRE(runUntil(io, [&] { return silent.requests.size() == 1 && rec.results.size() >= 2; }));
    hc->addTarget(4, ok.addr(), "w");  // its connect is certainly pending
    size_t before = rec.results.size();
    size_t changes_before = rec.changes.size();
    hc.reset();
    runFor(io, 150ms);
    CHECK(rec.results.size() == before);
    CHECK(rec.changes.size() == changes_before);
  }
}

TEST_CASE("callbacks may remove, re-add or destroy re-entrantly", "[health]") {
  asio::io_context io;
  TestServer bad(io);
  bad.setStatus(500);
  TestServer good(io);
  good.setStatus(200);
  auto cfg = httpConfig();
  cfg.unhealthy_threshold = 2;
  std::vector<std::pair<uint64_t, bool>> results;
  std::vector<std::pair<uint64_t, bool>> changes;
  std::unique_ptr<HealthChecker> hc;

  SECTION("on_change removes the host") {
    hc = std::make_unique<HealthChecker>(
        io, cfg, "c",
        [&](uint64_t id, bool healthy) {
          changes.emplace_back(id, healthy);
          hc->removeTarget(id);
        },
        [&](uint64_t id, bool passed, const std::string&) { results.emplace_back(id, passed); });
    hc->addTarget(1, bad.addr(), "x");
    REQUIRE(runUntil(io, [&] { return changes.size() == 1; }));
    runFor(io, 100ms);
    CHECK(results.size() == 2);
    CHECK(changes.size() == 1);
  }
  SECTION("on_change replaces the host under the same id") {
    hc = std::make_unique<HealthChecker>(
        io, cfg, "c",
        [&](uint64_t id, bool healthy) {
          changes.emplace_back(id, healthy);
          if (!healthy) {
            hc->removeTarget(id);
            hc->addTarget(id, good.addr(), "x");
          }
        },
        [&](uint64_t id, bool passed, const std::string&) { results.emplace_back(id, passed); });
    hc->addTarget(1, bad.addr(), "x");
    REQUIRE(runUntil(io, [&] { return results.size() >= 5; }));
    CHECK(changes.size() == 1);
    CHECK_FALSE(results[1].second);
    CHECK(results[2].second);  // the replacement starts healthy and passes
    CHECK(hc->healthy(1));
  }
  SECTION("on_result destroys the checker") {
    hc = std::make_unique<HealthChecker>(
        io, cfg, "c", [&](uint64_t id, bool healthy) { changes.emplace_back(id, healthy); },
        [&](uint64_t id, bool passed, const std::string&) {
          hc.reset();  // destroys the checker whose std::function is running right now
          results.emplace_back(id, passed);  // reads this closure's captures: ASan flags them if freed
        });
    hc->addTarget(1, good.addr(), "x");
    hc->addTarget(2, bad.addr(), "y");
    REQUIRE(runUntil(io, [&] { return results.size() == 1; }));
    runFor(io, 100ms);
    CHECK(results.size() == 1);
    CHECK(changes.empty());
  }
}
