// Process lifecycle over real sockets: SIGTERM/SIGINT drain in docs/operations.md's order, and
// connection limits (per listener and process-wide).
#include <signal.h>
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <regex>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"

using namespace ferry::testing;

namespace {

// A connection through ferry that has done one echo round trip (so it is surely accepted).
std::unique_ptr<TcpClient> echoClient(uint16_t port) {
  auto c = TcpClient::connect(port);
  if (!c) return nullptr;
  if (!c->sendAll("hi") || c->recvExactly(2, 5s) != "hi") return nullptr;
  return c;
}

}  // namespace

TEST_CASE("drain: SIGTERM turns /ready 503, refuses new connections, lets open ones finish, exits 0",
          "[lifecycle]") {
  FakeUpstream up(FakeUpstream::echo());
  auto f = FerryProcess::start(FerryConfig{.workers = 2,
                                           .runtime_extra = "  drain_delay: 500ms\n  drain_timeout: 20s\n",
                                           .listener = "tcp",
                                           .tcp_cluster = "up",
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  uint16_t port = f->port("tcp");
  uint16_t admin = f->adminPort();
  REQUIRE(httpRequest(admin, "GET", "/ready").status == 200);
  auto open = echoClient(port);
  REQUIRE(open);

  f->signal(SIGTERM);
  // /ready answers 503 at once (well before drain_delay ends).
  REQUIRE(waitUntil([&] { return httpRequest(admin, "GET", "/ready").status == 503; }, 400ms));
  // After drain_delay the listener is closed: new connections are refused.
  REQUIRE(waitUntil([&] { return TcpClient::connect(port, 1s) == nullptr; }, 5s));
  REQUIRE(f->running());
  // The open connection still works, and the admin API stays up.
  REQUIRE(open->sendAll("still here"));
  REQUIRE(open->recvExactly(10, 5s) == "still here");
  REQUIRE(httpRequest(admin, "GET", "/metrics").status == 200);
  // Once it finishes, ferry exits 0 without waiting for drain_timeout.
  open->shutdownWrite();
  REQUIRE(open->recvUntilClose(5s).empty());
  auto code = f->waitExit(5s);
  REQUIRE(code.has_value());
  REQUIRE(*code == 0);
}

TEST_CASE("drain: connections still open at drain_timeout are closed and ferry exits 0", "[lifecycle]") {
  FakeUpstream up(FakeUpstream::echo());
  auto f = FerryProcess::start(FerryConfig{.workers = 2,
                                           .runtime_extra = "  drain_timeout: 500ms\n",
                                           .listener = "tcp",
                                           .tcp_cluster = "up",
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  auto open = echoClient(f->port("tcp"));
  REQUIRE(open);
  auto t0 = std::chrono::steady_clock::now();
  f->signal(SIGINT);
  REQUIRE(open->waitClosed(5s));
  auto code = f->waitExit(5s);
  REQUIRE(code.has_value());
  REQUIRE(*code == 0);
  REQUIRE(std::chrono::steady_clock::now() - t0 >= 400ms);
  REQUIRE(f->waitForLog("drain: timeout with 1 connections still open", 1s));
}

TEST_CASE("drain: an idle ferry exits 0 at once on SIGTERM", "[lifecycle]") {
  FakeUpstream up(FakeUpstream::echo());
  auto f = FerryProcess::start(
      FerryConfig{.workers = 2, .listener = "tcp", .tcp_cluster = "up", .clusters = {{"up", {up.port()}}}}.yaml());
  f->port("tcp");
  f->signal(SIGTERM);
  auto code = f->waitExit(3s);
  REQUIRE(code.has_value());
  REQUIRE(*code == 0);
}

TEST_CASE("limits: listener max_connections closes connections past the limit and counts them",
          "[lifecycle][limits]") {
  FakeUpstream up(FakeUpstream::echo());
  auto f = FerryProcess::start(FerryConfig{.workers = 2,
                                           .listener = "tcp",
                                           .listener_extra = "    max_connections: 2\n",
                                           .tcp_cluster = "up",
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  uint16_t port = f->port("tcp");
  auto a = echoClient(port);
  auto b = echoClient(port);
  REQUIRE(a);
  REQUIRE(b);
  auto c = TcpClient::connect(port);
  REQUIRE(c);  // the kernel accepts; ferry closes it at once
  REQUIRE(c->waitClosed(3s));
  REQUIRE(up.accepted() == 2);
  REQUIRE(metricValue(*f, "ferry_downstream_connections_overflow_total{listener=\"tcp\"}") == 1);
  REQUIRE(metricValue(*f, "ferry_downstream_connections_active{listener=\"tcp\"}") == 2);
  // Room again once one closes.
  a->shutdownWrite();
  a->recvUntilClose(5s);
  REQUIRE(waitUntil([&] { return metricValue(*f, "ferry_downstream_connections_active{listener=\"tcp\"}") == 1; },
                    5s));
  REQUIRE(echoClient(port));
}

TEST_CASE("limits: runtime.max_connections applies across listeners", "[lifecycle][limits]") {
  FakeUpstream up(FakeUpstream::echo());
  std::string cfg =
      "runtime: {workers: 2, max_connections: 1}\n"
      "admin: {address: 127.0.0.1:0}\n"
      "listeners:\n"
      "  - {name: one, address: 127.0.0.1:0, tcp: {cluster: up}}\n"
      "  - {name: two, address: 127.0.0.1:0, tcp: {cluster: up}}\n"
      "clusters:\n"
      "  - name: up\n"
      "    endpoints: [{address: 127.0.0.1:" + std::to_string(up.port()) + "}]\n";
  auto f = FerryProcess::start(cfg);
  auto a = echoClient(f->port("one"));
  REQUIRE(a);
  auto b = TcpClient::connect(f->port("two"));
  REQUIRE(b);
  REQUIRE(b->waitClosed(3s));
  REQUIRE(metricValue(*f, "ferry_downstream_connections_overflow_total{listener=\"two\"}") == 1);
}

TEST_CASE("workers: --workers overrides runtime.workers", "[lifecycle]") {
  FakeUpstream up(FakeUpstream::echo());
  auto f = FerryProcess::start(
      FerryConfig{.workers = 2, .listener = "tcp", .tcp_cluster = "up", .clusters = {{"up", {up.port()}}}}.yaml(),
      {"--workers", "3"});
  f->port("tcp");
  REQUIRE(f->waitForLog("started: 3 workers", 5s));
}

TEST_CASE("startup: a listener address in use fails startup with exit 1", "[lifecycle]") {
  FakeUpstream busy(FakeUpstream::echo());  // holds a port without SO_REUSEPORT
  auto f = FerryProcess::start(FerryConfig{.workers = 0,
                                           .admin = false,
                                           .listener = "tcp",
                                           .listener_address = "127.0.0.1:" + std::to_string(busy.port()),
                                           .tcp_cluster = "up",
                                           .clusters = {{"up", {1}}}}
                                   .yaml());
  auto code = f->waitExit(5s);
  REQUIRE(code.has_value());
  REQUIRE(*code == 1);
  REQUIRE(f->log().find("Address already in use") != std::string::npos);
}

TEST_CASE("listener: out of descriptors, queued connections are accepted once descriptors free up",
          "[lifecycle]") {
  if (sanitized()) {
    // UBSan's vptr check probes memory through a pipe(); in a process with no descriptors
    // left it cannot, and reports every virtual call as invalid (with halt_on_error, aborts).
    SUCCEED("skipped under sanitizers: their runtime needs free descriptors");
    return;
  }
  const std::string cfg =
      FerryConfig{.admin = false,
                  .routes = {{.extra = "              direct_response: {status: 200, body: \"ok\\n\"}\n"}}}
          .yaml();
  // Ferry runs with a small descriptor limit, soft and hard (it raises its soft limit to the
  // hard one at start).
  TempDir dir;
  const std::string path = dir.write("ferry.yaml", cfg);
  auto f = FerryProcess::startCommand({"/usr/bin/prlimit", "--nofile=64:64", ferryBin(), "-c", path});
  REQUIRE(f->waitForLog("file descriptors: limit 64", 10s));
  uint16_t port = f->port("web");

  // Idle connections until Ferry runs out of descriptors; the rest wait in the accept queue.
  std::vector<std::unique_ptr<TcpClient>> clients;
  for (int i = 0; i < 120; ++i) {
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    clients.push_back(std::move(c));
  }
  REQUIRE(f->waitForLog("accept: Too many open files", 5s));
  // Free the descriptors. No new connection arrives to raise an edge on the listening
  // socket: Ferry must come back to the queue by itself.
  auto last = std::move(clients.back());
  clients.clear();
  REQUIRE(last->sendAll("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
  auto r = readHttpResponse(*last, false, 20s);
  INFO("response error: " << r.error << "\nferry log:\n" << f->log());
  CHECK(r.status == 200);
  CHECK(r.body == "ok\n");
}

TEST_CASE("startup: the descriptor limit is raised to the hard limit and logged", "[lifecycle]") {
  TempDir dir;
  const std::string path = dir.write("ferry.yaml", FerryConfig{.admin = false,
      .routes = {{.extra = "              direct_response: {status: 200, body: \"ok\\n\"}\n"}}}.yaml());
  auto f = FerryProcess::startCommand({"/usr/bin/prlimit", "--nofile=100:2000", ferryBin(), "-c", path});
  REQUIRE(f->waitForLog("file descriptors: limit 2000 (raised from 100)", 10s));
  f->port("web");
  std::string limits = readFile("/proc/" + std::to_string(f->pid()) + "/limits");
  CHECK(std::regex_search(limits, std::regex(R"(Max open files\s+2000\s+2000)")));
}
