// Config hot reload through the built binary (SIGHUP, POST /reload, the file watch): routes,
// listeners, clusters and rejected configs, each test under load (reload_support.h).
#include <catch2/catch.hpp>

#include "tests/integration/reload_support.h"

namespace ferry::testing {

// ---------------------------------------------------------------------------------------------

TEST_CASE("reload: route and HTTP filter changes apply from the next request, keep-alive connections included",
          "[reload]") {
  HttpUpstream up([](const UpstreamRequest&) { return HttpUpstream::ok("v3"); });
  // v1 and v2 answer directly; v3 routes to a cluster the same reload adds; v4 adds an HTTP
  // filter in front of that route (a fault filter whose "abort" is a 200 with its own body).
  const std::string fault = "fault filter abort\n";
  auto config = [&](int v) {
    const std::string filters =
        v < 4 ? "" : "      filters:\n        - name: fault\n          config: {abort: {status: 200}}\n";
    std::string y =
        head() + httpListener("web", v < 3 ? direct("v" + std::to_string(v)) : toCluster("up"), "", filters);
    if (v >= 3) y += clusters({{"up", {up.port()}}});
    return y;
  };
  auto f = FerryProcess::start(config(1));
  const uint16_t port = f->port("web");
  const uint16_t admin = f->adminPort();
  HttpLoad load({.port = port, .bodies = {"v1", "v2", "v3", fault}});
  {
    Json c = getJson(admin, "/config");
    CHECK(c["version"].num() == 1);
    CHECK(c["hash"].str() == sha256Hex(readFile(f->configPath())));
    CHECK(c["last_reload"]["result"].isNull());
  }

  auto k = TcpClient::connect(port);
  REQUIRE(k);
  HttpResponse r = keepAliveGet(*k);
  REQUIRE(r.status == 200);
  REQUIRE(r.body == "v1");
  REQUIRE(load.waitMore(20));

  {  // SIGHUP
    f->writeConfig(config(2));
    f->signal(SIGHUP);
    REQUIRE(f->waitForLog("config reloaded (SIGHUP): version 2", 10s));
    r = keepAliveGet(*k);  // the same connection
    INFO(r.error);
    CHECK(r.status == 200);
    CHECK(r.body == "v2");
    CHECK(r.header("connection") != "close");
    Json c = getJson(admin, "/config");
    CHECK(c["version"].num() == 2);
    CHECK(c["last_reload"]["result"].str() == "success");
    CHECK(c["last_reload"]["trigger"].str() == "SIGHUP");
    REQUIRE(load.waitMore(20));
  }

  {  // POST /reload
    f->writeConfig(config(3));
    Json s = reloadOk(admin);
    const std::string hash = sha256Hex(readFile(f->configPath()));
    CHECK(s["version"].num() == 3);
    CHECK(s["hash"].str() == hash);
    CHECK(s["trigger"].str() == "POST /reload");
    CHECK(strings(s["listeners"]["added"]).empty());
    CHECK(strings(s["listeners"]["removed"]).empty());
    CHECK(strings(s["listeners"]["drained"]).empty());
    CHECK(strings(s["listeners"]["updated"]) == Names{"web"});
    CHECK(strings(s["clusters"]["added"]) == Names{"up"});
    CHECK(strings(s["clusters"]["removed"]).empty());
    CHECK(strings(s["clusters"]["updated"]).empty());
    r = keepAliveGet(*k);  // still the same connection, now routed upstream
    INFO(r.error);
    CHECK(r.status == 200);
    CHECK(r.body == "v3");
    REQUIRE(load.waitMore(20));

    Json c = getJson(admin, "/config");
    CHECK(c["version"].num() == 3);
    CHECK(c["hash"].str() == hash);
    CHECK(c["last_reload"]["result"].str() == "success");
    CHECK(c["last_reload"]["trigger"].str() == "POST /reload");
    CHECK(c["last_reload"]["at"].isString());
    CHECK(c["last_reload"]["errors"].isArray());
    CHECK(c["last_reload"]["errors"].arr().empty());
  }

  {  // an HTTP filter added (POST /reload)
    f->writeConfig(config(4));
    Json s = reloadOk(admin);
    CHECK(s["version"].num() == 4);
    CHECK(strings(s["listeners"]["updated"]) == Names{"web"});
    CHECK(strings(s["listeners"]["drained"]).empty());
    r = keepAliveGet(*k);  // still the same connection, now through the filter
    INFO(r.error);
    CHECK(r.status == 200);
    CHECK(r.body == fault);
    REQUIRE(load.waitMore(20));
  }
  CHECK(metricValue(admin, kReloadsOk) == 3);
  CHECK(metricValue(admin, kReloadsFailed) == 0);
  CHECK_LOAD(load, 80);
  // Route and filter changes drain nothing: the load kept its two connections throughout.
  CHECK(load.connects() == 2);
  CHECK(load.count("v3") > 0);
  CHECK(load.count(fault) > 0);
  exitsCleanly(*f);
}

// A reload's success means the new config is in effect on every worker: a connection made
// after the answer (and the next request of a kept-alive one) gets it. Regression: the
// workers applied it when they next ran their queue, so under load a connection accepted in
// between was answered by the old config.
TEST_CASE("reload: once POST /reload answers success, new and kept-alive connections get the new config",
          "[reload]") {
  constexpr int kReloads = 25;
  std::vector<std::string> bodies;
  for (int v = 0; v <= kReloads; ++v) bodies.push_back("v" + std::to_string(v));
  auto f = FerryProcess::start(head() + httpListener("web", direct(bodies[0])));
  const uint16_t port = f->port("web");
  const uint16_t admin = f->adminPort();
  HttpLoad load({.port = port, .clients = 3, .bodies = bodies});
  REQUIRE(load.waitMore(20));
  auto k = TcpClient::connect(port);
  REQUIRE(k);
  REQUIRE(keepAliveGet(*k).body == bodies[0]);
  int stale_new = 0, stale_kept = 0;
  for (int v = 1; v <= kReloads; ++v) {
    f->writeConfig(head() + httpListener("web", direct(bodies[v])));
    reloadOk(admin);
    HttpResponse fresh = httpRequest(port, "GET", "/");
    HttpResponse kept = keepAliveGet(*k);
    INFO("reload " << v << ": new connection " << fresh.status << " '" << fresh.body << "' " << fresh.error
                   << ", kept-alive " << kept.status << " '" << kept.body << "' " << kept.error);
    REQUIRE(fresh.status == 200);
    REQUIRE(kept.status == 200);
    stale_new += fresh.body != bodies[v];
    stale_kept += kept.body != bodies[v];
  }
  CHECK(stale_new == 0);
  CHECK(stale_kept == 0);
  CHECK_LOAD(load, 100);
}

TEST_CASE("reload: a listener added and then removed under load", "[reload]") {
  Gate gate;
  auto slow = slowUpstream(gate);
  ReleaseOnExit release{gate};
  // "extra" comes with its own cluster "slow"; both leave together.
  auto config = [&](bool extra) {
    std::string y = head("  drain_timeout: 10s\n") + httpListener("web", direct("web"));
    if (extra)
      y += httpListener("extra", toCluster("slow", "{path: /slow}") + direct("extra")) +
           clusters({{"slow", {slow->port()}}});
    return y;
  };
  auto f = FerryProcess::start(config(false));
  const uint16_t admin = f->adminPort();
  HttpLoad load({.port = f->port("web"), .bodies = {"web"}});
  REQUIRE(load.waitMore(20));

  f->writeConfig(config(true));
  Json s = reloadOk(admin);
  CHECK(strings(s["listeners"]["added"]) == Names{"extra"});
  CHECK(strings(s["listeners"]["removed"]).empty());
  CHECK(strings(s["listeners"]["drained"]).empty());
  CHECK(strings(s["listeners"]["updated"]).empty());
  CHECK(strings(s["clusters"]["added"]) == Names{"slow"});
  const uint16_t extra = f->port("extra", 5s);
  HttpResponse r = httpRequest(extra, "GET", "/");
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "extra");
  // Open across its removal: an idle keep-alive connection, and one with a request in flight
  // to the cluster that leaves too.
  auto idle = TcpClient::connect(extra);
  REQUIRE(idle);
  REQUIRE(keepAliveGet(*idle).body == "extra");
  auto busy = TcpClient::connect(extra);
  REQUIRE(busy);
  REQUIRE(busy->sendAll("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  REQUIRE(waitUntil([&] { return gate.waiting() == 1; }, 5s));
  REQUIRE(load.waitMore(20));

  f->writeConfig(config(false));
  s = reloadOk(admin);
  CHECK(strings(s["listeners"]["added"]).empty());
  CHECK(strings(s["listeners"]["removed"]) == Names{"extra"});
  CHECK(strings(s["listeners"]["drained"]).empty());
  CHECK(strings(s["listeners"]["updated"]).empty());
  CHECK(strings(s["clusters"]["removed"]) == Names{"slow"});
  // The removed listener refuses new connections; its idle connection is closed at once (the
  // drain notice; drain_timeout is far off).
  CHECK(waitUntil([&] { return TcpClient::connect(extra, 1s) == nullptr; }, 5s));
  CHECK(idle->peerClosedOrReset(3s));
  // The request in flight finishes, through the removed cluster, and closes its connection.
  gate.release();
  r = readHttpResponse(*busy, false, 10s);
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "slow");
  CHECK(r.header("connection") == "close");
  CHECK(busy->waitClosed(5s));
  CHECK(waitMetric(admin, "ferry_downstream_connections_active{listener=\"extra\"}", 0));
  REQUIRE(load.waitMore(20));
  CHECK(configVersion(admin) == 3);
  CHECK_LOAD(load, 60);
  CHECK(load.connects() == 2);
  exitsCleanly(*f);
}

TEST_CASE("reload: a cluster's endpoint list changes, the hosts it keeps keep their health state", "[reload]") {
  Backend a("A"), b("B", 503), c("C");
  const std::string hc =
      "    health_check: {path: /healthz, interval: 100ms, timeout: 1s, healthy_threshold: 2, "
      "unhealthy_threshold: 2}\n";
  auto config = [&](std::vector<Endpoint> eps) {
    return FerryConfig{.workers = 2, .clusters = {{"api", std::move(eps), hc}}}.yaml();
  };
  auto f = FerryProcess::start(config({a.server.port(), b.server.port()}));
  const uint16_t admin = f->adminPort();
  HttpLoad load({.port = f->port("web"), .bodies = {"A", "B", "C"}, .ordered = false});

  // B fails its checks and leaves the table.
  auto healthOf = [&](const Backend& e) {
    return endpointOf(getJson(admin, "/clusters"), "api", e.address())["health"].str();
  };
  REQUIRE(waitUntil([&] { return healthOf(b) == "unhealthy"; }, 5s));
  REQUIRE(load.waitMore(30));  // the workers have the table without B by now
  Json before = getJson(admin, "/clusters");
  const double b_failures = endpointOf(before, "api", b.address())["health_check_failures"].num();
  CHECK(endpointOf(before, "api", b.address())["health_transitions"].num() == 1);
  CHECK(endpointOf(before, "api", a.address())["health"].str() == "healthy");
  const int b_served = b.served.load();
  const size_t b_mark = b.server.requestCount();
  // The upstream connections A's requests came on so far (its pools on the workers).
  const size_t a_mark = a.server.requestCount();
  const std::set<int> a_before = dataConnections(a.server, 0, a_mark);
  REQUIRE(!a_before.empty());

  f->writeConfig(config({a.server.port(), b.server.port(), c.server.port()}));
  Json s = reloadOk(admin);
  const int b_served_at_reload = b.served.load();
  CHECK(strings(s["clusters"]["updated"]) == Names{"api"});
  CHECK(strings(s["clusters"]["added"]).empty());
  CHECK(strings(s["clusters"]["removed"]).empty());
  CHECK(strings(s["listeners"]["drained"]).empty());

  // At once (the admin API runs on the thread that reloads): A healthy, B still unhealthy with
  // its counts, C there.
  HttpResponse now = httpRequest(admin, "GET", "/clusters");
  INFO(now.body);
  REQUIRE(now.status == 200);
  const Json after = parseJson(now.body).value_or(Json{});
  const Json& ea = endpointOf(after, "api", a.address());
  const Json& eb = endpointOf(after, "api", b.address());
  const Json& ec = endpointOf(after, "api", c.address());
  CHECK(ea["health"].str() == "healthy");
  CHECK(ea["health_transitions"].num() == 0);
  CHECK(eb["health"].str() == "unhealthy");
  CHECK(eb["active_health"].str() == "unhealthy");
  CHECK(eb["health_transitions"].num() == 1);
  CHECK(eb["health_check_failures"].num() >= b_failures);
  CHECK(ec.isObject());
  CHECK(after["clusters"].arr().size() == 1);

  // C takes traffic; B never did again.
  CHECK(waitUntil([&] { return c.served.load() > 0; }, 5s));
  REQUIRE(load.waitMore(50));
  CHECK(waitMetric(admin, "ferry_cluster_endpoints_healthy{cluster=\"api\"}", 2));
  CHECK(healthOf(b) == "unhealthy");
  {
    INFO("B served " << b_served << " before the reload, " << b_served_at_reload
                     << " right after it; its requests since:" << describeRequests(b.server, b_mark));
    CHECK(b.served.load() == b_served);
  }
  // A kept its pools: its requests after the reload go on over the upstream connections it
  // had before (replaced pools would have left those at most the requests in flight at the
  // reload, one per client). More may join when more requests overlap than before.
  {
    int on_old = 0, total = 0;
    const auto rs = a.server.requests();
    for (size_t i = a_mark; i < rs.size(); ++i) {
      if (rs[i].target == "/healthz") continue;
      ++total;
      if (a_before.count(rs[i].connection_index)) ++on_old;
    }
    INFO("A's requests after the reload: " << total << ", " << on_old << " of them on the " << a_before.size()
                                          << " connections it had before");
    CHECK(on_old >= 10);
  }
  CHECK_LOAD(load, 100);
  CHECK(load.count("C") > 0);
  exitsCleanly(*f);
}

TEST_CASE("reload: a cluster whose health_check settings changed keeps its hosts' health", "[reload]") {
  // docs/reload.md: a changed cluster is updated in place, hosts keyed by address keep their
  // health. Here only the health check's interval changes, and one host is down for good.
  // (The regression test of the cluster update that set every host healthy again when the
  // health_check block changed.)
  Backend a("A");
  const RefusingPort dead;
  const std::string dead_address = "127.0.0.1:" + std::to_string(dead.port());
  auto config = [&](const std::string& interval) {
    return FerryConfig{.workers = 2,
                       .clusters = {{"api", {a.server.port(), dead.port()},
                                     "    health_check: {path: /healthz, interval: " + interval +
                                         ", timeout: 1s, healthy_threshold: 2, unhealthy_threshold: 2}\n"}}}
        .yaml();
  };
  auto f = FerryProcess::start(config("100ms"));
  const uint16_t admin = f->adminPort();
  const uint16_t port = f->port("web");
  auto healthOf = [&](const std::string& address) {
    return endpointOf(getJson(admin, "/clusters"), "api", address)["health"].str();
  };
  REQUIRE(waitUntil([&] { return healthOf(dead_address) == "unhealthy"; }, 5s));
  // The load starts once the dead host is out of the table.
  HttpLoad load({.port = port, .bodies = {"A"}});
  REQUIRE(load.waitMore(30));

  f->writeConfig(config("200ms"));
  Json s = reloadOk(admin);
  CHECK(strings(s["clusters"]["updated"]) == Names{"api"});
  // At once: the dead host is still out, the live one in.
  CHECK(healthOf(dead_address) == "unhealthy");
  CHECK(healthOf(a.address()) == "healthy");
  // Load until the new checks have (again) found the dead host unhealthy: had it been let back
  // in meanwhile, the load saw its connect failures.
  REQUIRE(load.waitMore(100));
  REQUIRE(waitUntil([&] { return healthOf(dead_address) == "unhealthy"; }, 5s));
  REQUIRE(load.waitMore(20));
  CHECK_LOAD(load, 150);
  exitsCleanly(*f);
}

TEST_CASE("reload: a broken config is rejected while traffic flows; the running config stays", "[reload]") {
  const std::string rt = "  drain_timeout: 5s\n";
  auto good = [&](const std::string& body) { return head(rt) + httpListener("web", direct(body)); };
  auto f = FerryProcess::start(good("v1"));
  const uint16_t admin = f->adminPort();
  const std::string path = f->configPath();
  HttpLoad load({.port = f->port("web"), .bodies = {"v1", "v2"}});
  REQUIRE(load.waitMore(20));
  int failures = 0;

  {
    INFO("an unknown key");
    const std::string bad = head(rt) + httpListener("web", direct("v2"), "    bogus_key: 1\n");
    auto [line, col] = lineColOf(bad, "bogus_key");
    f->writeConfig(bad);
    auto errors = reloadRefused(admin);
    INFO(errors[0]);
    CHECK(errors[0].rfind(path + ":" + std::to_string(line) + ":" + std::to_string(col) + ": ", 0) == 0);
    CHECK(errors[0].find("bogus_key") != std::string::npos);
    CHECK(metricValue(admin, kReloadsFailed) == ++failures);

    // SIGHUP: the same rejection, in the log.
    f->signal(SIGHUP);
    CHECK(f->waitForLog("config reload (SIGHUP) rejected", 5s));
    CHECK(f->waitForLogCount(errors[0], 2, 5s));  // logged for POST /reload, and now for SIGHUP
    CHECK(waitMetric(admin, kReloadsFailed, ++failures));
    Json c = getJson(admin, "/config");
    CHECK(c["last_reload"]["trigger"].str() == "SIGHUP");
    CHECK(c["last_reload"]["result"].str() == "failure");
    CHECK(strings(c["last_reload"]["errors"]) == errors);
    REQUIRE(load.waitMore(20));
  }
  {
    INFO("a bad value");
    const std::string bad = head("  drain_timeout: forever\n") + httpListener("web", direct("v2"));
    auto [line, col] = lineColOf(bad, "forever");
    f->writeConfig(bad);
    auto errors = reloadRefused(admin);
    INFO(errors[0]);
    CHECK(errors[0].rfind(path + ":" + std::to_string(line) + ":" + std::to_string(col) + ": ", 0) == 0);
    CHECK(metricValue(admin, kReloadsFailed) == ++failures);
    REQUIRE(load.waitMore(20));
  }
  {
    INFO("runtime.workers changed");
    f->writeConfig(head(rt, "", 3) + httpListener("web", direct("v2")));
    auto errors = reloadRefused(admin);
    INFO(errors[0]);
    CHECK(errors.size() == 1);
    CHECK(errors[0].rfind(path + ":", 0) == 0);
    CHECK(errors[0].find("runtime.workers") != std::string::npos);
    CHECK(metricValue(admin, kReloadsFailed) == ++failures);
  }
  {
    INFO("admin.address changed");
    f->writeConfig(head(rt, "", 2, "127.0.0.2:0") + httpListener("web", direct("v2")));
    auto errors = reloadRefused(admin);
    INFO(errors[0]);
    CHECK(errors[0].find("admin.address") != std::string::npos);
    CHECK(metricValue(admin, kReloadsFailed) == ++failures);
  }
  {
    INFO("a new listener on a port in use");
    FakeUpstream busy(FakeUpstream::echo());  // holds its port without SO_REUSEPORT
    const std::string busy_address = "127.0.0.1:" + std::to_string(busy.port());
    // "fresh" binds first; the reload then fails on "busy" and must let "fresh" go again.
    const std::string bad = head(rt) + httpListener("web", direct("v2")) + httpListener("fresh", direct("fresh")) +
                            httpListener("busy", direct("busy"), "", "", busy_address);
    auto [line, col] = lineColOf(bad, busy_address);
    f->writeConfig(bad);
    auto errors = reloadRefused(admin);
    INFO(errors[0]);
    CHECK(errors[0].rfind(path + ":" + std::to_string(line) + ":" + std::to_string(col) + ": ", 0) == 0);
    CHECK(errors[0].find("busy") != std::string::npos);
    CHECK(errors[0].find("Address already in use") != std::string::npos);
    CHECK(metricValue(admin, kReloadsFailed) == ++failures);
    // (If ferry announced it: bindListener logs each socket it binds.)
    if (f->waitForLog("listening: listener=fresh address=", 2s)) {
      const uint16_t fresh = f->port("fresh");
      CHECK(TcpClient::connect(fresh, 1s) == nullptr);  // its socket was closed again
    }
    REQUIRE(load.waitMore(20));
  }

  // Nothing changed: version 1, v1 served (the load checks every answer), no success counted.
  Json c = getJson(admin, "/config");
  CHECK(c["version"].num() == 1);
  CHECK(c["last_reload"]["result"].str() == "failure");
  CHECK(c["last_reload"]["trigger"].str() == "POST /reload");
  CHECK(metricValue(admin, kReloadsOk) == 0);
  CHECK(load.count("v2") == 0);

  // A good config after all that applies, as the next version.
  f->writeConfig(good("v2"));
  Json s = reloadOk(admin);
  CHECK(s["version"].num() == 2);
  REQUIRE(load.waitMore(20));
  CHECK_LOAD(load, 100);
  CHECK(load.count("v2") > 0);
  CHECK(load.connects() == 2);
  exitsCleanly(*f);
}

}  // namespace ferry::testing
