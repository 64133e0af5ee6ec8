// Config hot reload through the built binary, continued: long-lived connections across
// reloads, draining (SIGTERM, a changed listener, drain_timeout), PUT /config and the file
// watch, each test under load (reload_support.h).
#include <catch2/catch.hpp>

#include "tests/integration/reload_support.h"

namespace ferry::testing {

TEST_CASE("reload: a long-lived TCP session stays up across ten reloads that change other things", "[reload]") {
  FakeUpstream echo(FakeUpstream::echo());
  // Generation g: the HTTP listener answers "r<routes>", the echo cluster's connect_timeout is
  // 1000 + 100 x <timeouts> ms.
  auto config = [&](int routes, int timeouts) {
    return head() + httpListener("web", direct("r" + std::to_string(routes))) + tcpListener("tcp", "echo") +
           clusters({{"echo", {echo.port()}, "    connect_timeout: " + std::to_string(1000 + 100 * timeouts) +
                                                   "ms\n"}});
  };
  auto f = FerryProcess::start(config(0, 0));
  const uint16_t admin = f->adminPort();
  std::vector<std::string> bodies;
  for (int i = 0; i <= 10; ++i) bodies.push_back("r" + std::to_string(i));
  HttpLoad load({.port = f->port("web"), .bodies = bodies});

  auto t = TcpClient::connect(f->port("tcp"));
  REQUIRE(t);
  REQUIRE(t->sendAll("hello\n"));
  REQUIRE(t->recvExactly(6, 5s) == "hello\n");
  REQUIRE(load.waitMore(10));

  int routes = 0, timeouts = 0;
  for (int i = 1; i <= 10; ++i) {
    INFO("reload " << i);
    const bool route_change = i % 2 == 1;
    (route_change ? routes : timeouts)++;
    f->writeConfig(config(routes, timeouts));
    Json s = reloadOk(admin);
    CHECK(s["version"].num() == i + 1);
    CHECK(strings(s["listeners"]["drained"]).empty());
    CHECK(strings(s["listeners"]["removed"]).empty());
    CHECK(strings(s["listeners"]["updated"]) == (route_change ? Names{"web"} : Names{}));
    CHECK(strings(s["clusters"]["updated"]) == (route_change ? Names{} : Names{"echo"}));
    const std::string ping = "ping " + std::to_string(i) + "\n";
    REQUIRE(t->sendAll(ping));
    REQUIRE(t->recvExactly(ping.size(), 5s) == ping);
    REQUIRE(load.waitMore(10));
  }
  // The cluster runs the last connect_timeout; the session still has its one upstream connection.
  Json cl = getJson(admin, "/clusters");
  REQUIRE(cl["clusters"].arr().size() == 1);
  CHECK(cl["clusters"].arr()[0]["connect_timeout"].str() == "1500ms");
  CHECK(echo.accepted() == 1);
  CHECK(metricValue(admin, "ferry_downstream_connections_active{listener=\"tcp\"}") == 1);
  REQUIRE(t->sendAll("bye\n"));
  CHECK(t->recvExactly(4, 5s) == "bye\n");
  CHECK_LOAD(load, 100);
  CHECK(load.count("r5") > 0);  // the last route generation
  CHECK(load.connects() == 2);
  t->close();
  exitsCleanly(*f);
}

TEST_CASE("drain: SIGTERM lets a slow in-flight request finish with connection: close, then exits 0",
          "[reload][drain]") {
  Gate gate;
  auto slow = slowUpstream(gate);
  ReleaseOnExit release{gate};
  auto f = FerryProcess::start(head("  drain_delay: 500ms\n  drain_timeout: 10s\n") +
                               httpListener("web", toCluster("slow", "{path: /slow}") + direct("ok")) +
                               clusters({{"slow", {slow->port()}}}));
  const uint16_t port = f->port("web");
  const uint16_t admin = f->adminPort();
  // The load stops at its first "connection: close" (the drain notice).
  HttpLoad load({.port = port, .bodies = {"ok"}, .stop_on_close = true});
  auto idle = TcpClient::connect(port);
  REQUIRE(idle);
  REQUIRE(keepAliveGet(*idle).body == "ok");
  auto s = TcpClient::connect(port);
  REQUIRE(s);
  REQUIRE(s->sendAll("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  REQUIRE(waitUntil([&] { return gate.waiting() == 1; }, 5s));
  REQUIRE(load.waitMore(20));

  f->signal(SIGTERM);
  CHECK(waitUntil([&] { return httpRequest(admin, "GET", "/ready").status == 503; }, 2s));
  {
    // No reloads while draining.
    auto errors = reloadRefused(admin);
    INFO(errors[0]);
    CHECK(errors[0].find("draining") != std::string::npos);
  }
  // During drain_delay every answer says "connection: close": each load client gets one and stops.
  CHECK(load.waitFinished(5s));
  // Then the listener closes and idle connections with it; the slow request is still held.
  CHECK(waitUntil([&] { return TcpClient::connect(port, 1s) == nullptr; }, 5s));
  CHECK(idle->peerClosedOrReset(5s));
  REQUIRE(f->running());
  CHECK(gate.waiting() == 1);

  gate.release();
  HttpResponse r = readHttpResponse(*s, false, 10s);
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "slow");
  CHECK(r.header("connection") == "close");
  CHECK(s->waitClosed(5s));
  auto code = f->waitExit(10s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(f->log().find("drain: all connections closed") != std::string::npos);
  CHECK_LOAD(load, 20);
  CHECK(load.closes() == 2);
}

TEST_CASE("reload: a listener whose PROXY protocol setting changed drains its open connections", "[reload]") {
  Gate gate;
  auto slow = slowUpstream(gate);
  ReleaseOnExit release{gate};
  // "pp" turns PROXY protocol on (drained); "web" changes an HTTP setting only (updated: its
  // open connections run on).
  auto config = [&](bool proxy_protocol) {
    return head("  drain_timeout: 10s\n") +
           httpListener("web", direct("web"), "",
                        proxy_protocol ? "      idle_timeout: 31s\n" : "      idle_timeout: 30s\n") +
           httpListener("pp", toCluster("slow", "{path: /slow}") + direct("pp"),
                        proxy_protocol ? "    proxy_protocol: true\n" : "") +
           clusters({{"slow", {slow->port()}}});
  };
  auto f = FerryProcess::start(config(false));
  const uint16_t admin = f->adminPort();
  const uint16_t pp = f->port("pp");
  HttpLoad load({.port = f->port("web"), .bodies = {"web"}});

  auto idle = TcpClient::connect(pp);
  REQUIRE(idle);
  REQUIRE(keepAliveGet(*idle).body == "pp");
  auto busy = TcpClient::connect(pp);
  REQUIRE(busy);
  REQUIRE(busy->sendAll("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  REQUIRE(waitUntil([&] { return gate.waiting() == 1; }, 5s));
  REQUIRE(load.waitMore(20));

  f->writeConfig(config(true));
  Json s = reloadOk(admin);
  CHECK(strings(s["listeners"]["drained"]) == Names{"pp"});
  CHECK(strings(s["listeners"]["updated"]) == Names{"web"});
  CHECK(strings(s["listeners"]["added"]).empty());
  CHECK(strings(s["listeners"]["removed"]).empty());

  // The idle connection is closed at once (well before drain_timeout).
  CHECK(idle->peerClosedOrReset(3s));
  // The request in flight finishes, and its answer closes its connection.
  gate.release();
  HttpResponse r = readHttpResponse(*busy, false, 10s);
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "slow");
  CHECK(r.header("connection") == "close");
  CHECK(busy->waitClosed(5s));

  // New connections need the PROXY header now.
  auto bare = TcpClient::connect(pp);
  REQUIRE(bare);
  REQUIRE(bare->sendAll("GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
  CHECK(bare->recvUntilClose(5s).empty());
  CHECK(bare->closedByPeer());
  auto proxied = TcpClient::connect(pp);
  REQUIRE(proxied);
  REQUIRE(proxied->sendAll("PROXY TCP4 192.0.2.7 127.0.0.1 40000 80\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n"));
  r = readHttpResponse(*proxied);
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "pp");
  CHECK(waitMetric(admin, "ferry_downstream_proxy_protocol_errors_total{listener=\"pp\"}", 1));

  REQUIRE(load.waitMore(20));
  CHECK_LOAD(load, 60);
  CHECK(load.connects() == 2);  // "web" was updated, not drained
  exitsCleanly(*f);
}

TEST_CASE("reload: PUT /config", "[reload]") {
  const std::string token = "tok-5e1d0c9a7b3f";
  const std::string push = "  allow_config_push: true\n  token_file: admin.token\n";
  auto config = [&](const std::string& body, const std::string& admin_extra) {
    return head("", admin_extra) + httpListener("web", direct(body));
  };
  auto f = FerryProcess::start(config("v1", ""), {}, {{"admin.token", token + "\n"}});
  const uint16_t admin = f->adminPort();
  const std::string path = f->configPath();
  const std::vector<std::string> auth = {"Authorization: Bearer " + token};
  HttpLoad load({.port = f->port("web"), .bodies = {"v1", "v2", "v3"}});
  REQUIRE(load.waitMore(20));

  // Refused unless allow_config_push.
  const std::string original = readFile(path);
  HttpResponse r = httpRequest(admin, "PUT", "/config", config("v9", ""));
  CHECK(r.status == 403);
  CHECK(readFile(path) == original);
  CHECK(configVersion(admin) == 1);

  // Turn it on (with a token) by a reload; from then on mutations need the token.
  f->writeConfig(config("v2", push));
  reloadOk(admin);
  CHECK(httpRequest(admin, "POST", "/reload").status == 401);
  CHECK(httpRequest(admin, "PUT", "/config", config("v9", push)).status == 401);
  CHECK(httpRequest(admin, "PUT", "/config", config("v9", push), {"Authorization: Bearer wrong"}).status == 401);
  CHECK(configVersion(admin) == 2);
  REQUIRE(load.waitMore(20));

  // A valid body: applied, and written over the -c file (which keeps its permissions).
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  const std::string v3 = config("v3", push);
  r = httpRequest(admin, "PUT", "/config", v3, auth, 10s);
  {
    INFO(r.status << " " << r.error << "\n" << r.body);
    REQUIRE(r.status == 200);
    auto s = parseJson(r.body);
    REQUIRE(s);
    CHECK((*s)["result"].str() == "success");
    CHECK((*s)["version"].num() == 3);
    CHECK((*s)["hash"].str() == sha256Hex(v3));
    CHECK(strings((*s)["listeners"]["updated"]) == Names{"web"});
  }
  CHECK(readFile(path) == v3);
  struct stat st{};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  r = httpRequest(admin, "GET", "/config?format=yaml");
  CHECK(r.status == 200);
  CHECK(r.body.find("\"v3\"") != std::string::npos);
  Json c = getJson(admin, "/config");
  CHECK(c["hash"].str() == sha256Hex(v3));
  CHECK(c["last_reload"]["trigger"].str() == "PUT /config");
  REQUIRE(load.waitMore(20));
  const int64_t v3_before = load.count("v3");
  CHECK(v3_before > 0);

  // An invalid body: 400 with FILE:LINE:COL errors; the file stays.
  const std::string bad = head("", push) + httpListener("web", direct("v4"), "    bogus_key: 1\n");
  auto errors = refusedErrors(httpRequest(admin, "PUT", "/config", bad, auth, 10s));
  auto [line, col] = lineColOf(bad, "bogus_key");
  INFO(errors[0]);
  CHECK(errors[0].rfind(path + ":" + std::to_string(line) + ":" + std::to_string(col) + ": ", 0) == 0);
  CHECK(readFile(path) == v3);
  CHECK(configVersion(admin) == 3);

  // The file cannot be written: 400 naming the reason; nothing applies.
  const std::string v4 = config("v4", push);
  if (::geteuid() != 0) {
    INFO("the config directory read-only");
    REQUIRE(::chmod(f->dir().c_str(), 0555) == 0);
    HttpResponse w = httpRequest(admin, "PUT", "/config", v4, auth, 10s);
    ::chmod(f->dir().c_str(), 0755);
    errors = refusedErrors(w);
    INFO(errors[0]);
    CHECK(errors[0].find("Permission denied") != std::string::npos);
    CHECK(errors[0].find(path) != std::string::npos);
    CHECK(readFile(path) == v3);
    CHECK(configVersion(admin) == 3);
  } else {
    WARN("running as root: chmod cannot make the config directory read-only; the sub-case with a directory "
         "in the config file's place stands in for it");
  }
  {
    INFO("a directory where the config file was");
    const std::string saved = path + ".saved";
    REQUIRE(::rename(path.c_str(), saved.c_str()) == 0);
    REQUIRE(::mkdir(path.c_str(), 0755) == 0);
    HttpResponse w = httpRequest(admin, "PUT", "/config", v4, auth, 10s);
    REQUIRE(::rmdir(path.c_str()) == 0);
    REQUIRE(::rename(saved.c_str(), path.c_str()) == 0);
    errors = refusedErrors(w);
    INFO(errors[0]);
    CHECK(errors[0].find("cannot write " + path) != std::string::npos);
    CHECK(errors[0].find("Is a directory") != std::string::npos);
    CHECK(configVersion(admin) == 3);
    // No temporary file left behind.
    for (const auto& e : std::filesystem::directory_iterator(f->dir())) {
      INFO(e.path().string());
      CHECK(e.path().filename().string().find("ferry-tmp") == std::string::npos);
    }
  }
  REQUIRE(load.waitMore(20));
  CHECK(metricValue(admin, kReloadsOk) == 2);
  CHECK_LOAD(load, 80);
  CHECK(load.count("v4") == 0);
  CHECK(load.count("v3") > v3_before);  // still served after the refusals
  exitsCleanly(*f);
}

TEST_CASE("reload: runtime.watch_config reloads on a changed file, not on identical content", "[reload]") {
  auto config = [](const std::string& body) {
    return head("  watch_config: true\n", "  allow_config_push: true\n") + httpListener("web", direct(body));
  };
  // Debug logging shows the watch deciding that identical content needs no reload.
  auto f = FerryProcess::start(config("v1"), {"--log-level", "debug"});
  const uint16_t port = f->port("web");
  const uint16_t admin = f->adminPort();
  REQUIRE(f->waitForLog("config: watching ", 5s));
  HttpLoad load({.port = port, .bodies = {"v1", "v2", "v3", "v4"}});
  REQUIRE(load.waitMore(20));

  auto serves = [&](const std::string& body) { return httpRequest(port, "GET", "/").body == body; };
  f->writeConfig(config("v2"));
  REQUIRE(waitUntil([&] { return serves("v2"); }, 10s));
  CHECK(configVersion(admin) == 2);
  CHECK(f->waitForLogCount("config reloaded (file watch)", 1, 5s));
  CHECK(f->countInLog("config reloaded (file watch)") == 1);
  Json c = getJson(admin, "/config");
  CHECK(c["last_reload"]["trigger"].str() == "file watch");
  CHECK(c["hash"].str() == sha256Hex(readFile(f->configPath())));
  REQUIRE(load.waitMore(20));

  // A broken file: the watch's reload is refused, and v2 stays.
  f->writeConfig(head("  watch_config: true\n", "  allow_config_push: true\n") +
                 httpListener("web", direct("v9"), "    bogus_key: 1\n"));
  CHECK(f->waitForLog("config reload (file watch) rejected", 10s));
  CHECK(waitMetric(admin, kReloadsFailed, 1));
  CHECK(configVersion(admin) == 2);
  REQUIRE(load.waitMore(20));

  // The running content again (a new file by rename): seen, and no reload.
  f->writeConfig(config("v2"));
  CHECK(f->waitForLog("has the running content: no reload", 10s));
  CHECK(configVersion(admin) == 2);
  // A real change after it: exactly one more version.
  f->writeConfig(config("v3"));
  REQUIRE(waitUntil([&] { return serves("v3"); }, 10s));
  CHECK(configVersion(admin) == 3);
  CHECK(f->waitForLogCount("config reloaded (file watch)", 2, 5s));
  CHECK(f->countInLog("config reloaded (file watch)") == 2);
  CHECK(metricValue(admin, kReloadsOk) == 2);
  REQUIRE(load.waitMore(20));

  // PUT /config writes the file itself: the watch sees that write and does not reload again.
  const std::string v4 = config("v4");
  HttpResponse r = httpRequest(admin, "PUT", "/config", v4, {}, 10s);
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(serves("v4"));
  CHECK(f->waitForLogCount("has the running content: no reload", 2, 10s));
  CHECK(configVersion(admin) == 4);
  CHECK(f->countInLog("config reloaded (file watch)") == 2);
  CHECK(metricValue(admin, kReloadsOk) == 3);
  REQUIRE(load.waitMore(20));
  CHECK_LOAD(load, 80);
  CHECK(load.connects() == 2);
  exitsCleanly(*f);
}

TEST_CASE("reload: a drained TCP session is closed at drain_timeout, not before", "[reload]") {
  FakeUpstream echo(FakeUpstream::echo());
  // Turning PROXY protocol on changes the TCP listener: its open sessions drain; the new
  // drain_timeout (300 ms) applies to them.
  auto config = [&](bool proxy_protocol) {
    return head(proxy_protocol ? "  drain_timeout: 300ms\n" : "  drain_timeout: 10s\n") +
           httpListener("web", direct("web")) + "  - name: tcp\n    address: 127.0.0.1:0\n" +
           (proxy_protocol ? "    proxy_protocol: true\n" : "") + "    tcp:\n      cluster: echo\n" +
           clusters({{"echo", {echo.port()}}});
  };
  auto f = FerryProcess::start(config(false));
  const uint16_t admin = f->adminPort();
  HttpLoad load({.port = f->port("web"), .bodies = {"web"}});
  auto t = TcpClient::connect(f->port("tcp"));
  REQUIRE(t);
  REQUIRE(t->sendAll("hello\n"));
  REQUIRE(t->recvExactly(6, 5s) == "hello\n");
  REQUIRE(load.waitMore(20));

  f->writeConfig(config(true));
  const auto t0 = Clock::now();
  Json s = reloadOk(admin);
  CHECK(strings(s["listeners"]["drained"]) == Names{"tcp"});
  // TCP has no drain notice of its own: the session works on until the timeout...
  REQUIRE(t->sendAll("still\n"));
  CHECK(t->recvExactly(6, 5s) == "still\n");
  // ...then ferry closes it.
  CHECK(t->waitClosed(5s));
  const auto took = std::chrono::duration_cast<ms>(Clock::now() - t0);
  INFO("closed after " << took.count() << " ms");
  CHECK(took >= 250ms);
  CHECK(f->waitForLog("listener tcp: drain timeout: closing 1 connection", 5s));
  REQUIRE(load.waitMore(20));
  CHECK_LOAD(load, 40);
  CHECK(load.connects() == 2);
  exitsCleanly(*f);
}

}  // namespace ferry::testing
