// Clusters against several real upstreams: load-balancing policies, active health checks,
// priorities, slow start, outlier detection and DNS endpoints, all through the built binary.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_upstream.h"
#include "tests/support/dns_server.h"

namespace ferry::testing {
namespace {

// An upstream that names itself in every answer and answers its health checks with a status
// the test switches.
struct Backend {
  explicit Backend(int id, const std::string& ip = "127.0.0.1", uint16_t port = 0, int delay_ms = 0)
      : id(id),
        server(
            [this, delay_ms](const UpstreamRequest& r) {
              if (r.target == "/healthz") {
                int s = health_status.load();
                return UpstreamAction{HttpUpstream::response(s, "hc")};
              }
              if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));  // a slow host
              served.fetch_add(1);
              int s = status.load();
              return UpstreamAction{HttpUpstream::response(s, "b" + std::to_string(this->id))};
            },
            ip, port) {}
  int id;
  std::atomic<int> health_status{200};
  std::atomic<int> status{200};
  std::atomic<int> served{0};
  HttpUpstream server;
};

// The backends' endpoints (127.0.0.1:<port>), with the given weights and priorities (for as
// many backends as they name).
std::vector<Endpoint> endpoints(const std::vector<std::unique_ptr<Backend>>& bs, const std::vector<int>& weights = {},
                                const std::vector<int>& priorities = {}) {
  std::vector<Endpoint> out;
  for (size_t i = 0; i < bs.size(); ++i) {
    out.emplace_back(bs[i]->server.port(), i < weights.size() ? weights[i] : 0,
                     i < priorities.size() ? priorities[i] : -1);
  }
  return out;
}

// The setup most tests here start: HTTP listener "web" sending everything to cluster "api"
// (endpoints `eps`, more cluster keys `extra`, indented 4).
FerryConfig apiProxy(std::vector<Endpoint> eps, const std::string& extra = "", int workers = 2) {
  return FerryConfig{.workers = workers, .clusters = {{"api", std::move(eps), extra}}};
}

// Sends n GETs over one keep-alive connection (reconnecting if the proxy closes it) and
// returns the answers' bodies ("b0", "b1"...; "status:NNN" for non-200 answers).
std::vector<std::string> getMany(uint16_t port, int n, const std::vector<std::string>& headers = {},
                                 const std::string& path = "/x") {
  std::vector<std::string> out;
  std::unique_ptr<TcpClient> c;
  for (int i = 0; i < n; ++i) {
    if (!c) c = TcpClient::connect(port);
    if (!c) {
      out.push_back("connect failed");
      continue;
    }
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: t\r\n";
    for (const auto& h : headers) req += h + "\r\n";
    req += "\r\n";
    if (!c->sendAll(req)) {
      c.reset();
      --i;
      continue;
    }
    HttpResponse r = readHttpResponse(*c);
    out.push_back(r.status == 200 ? r.body : "status:" + std::to_string(r.status));
    if (r.status != 200 && !r.body.empty()) UNSCOPED_INFO("answer " << i << ": " << r.status << " " << r.body);
    if (r.status == 0 || r.header("connection") == "close") c.reset();
  }
  return out;
}

std::map<std::string, int> tally(const std::vector<std::string>& v) {
  std::map<std::string, int> m;
  for (const auto& s : v) ++m[s];
  return m;
}

std::string show(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& [k, n] : tally(v)) out += k + "=" + std::to_string(n) + " ";
  return out;
}

std::string clusterMetric(const std::string& name, const std::string& cluster = "api") {
  return name + "{cluster=\"" + cluster + "\"}";
}

std::string endpointMetric(const std::string& name, uint16_t port) {
  return name + "{cluster=\"api\",endpoint=\"127.0.0.1:" + std::to_string(port) + "\"}";
}

std::vector<std::unique_ptr<Backend>> backends(int n, int slow_index = -1, int delay_ms = 0) {
  std::vector<std::unique_ptr<Backend>> v;
  for (int i = 0; i < n; ++i) v.push_back(std::make_unique<Backend>(i, "127.0.0.1", 0, i == slow_index ? delay_ms : 0));
  return v;
}

// Two upstreams on one port at 127.0.0.1 and 127.0.0.2, as one DNS name would name them.
// False (with a warning: the test is then skipped) when 127.0.0.2 cannot be bound here.
bool twoAddressBackends(std::unique_ptr<Backend>& first, std::unique_ptr<Backend>& second) {
  first = std::make_unique<Backend>(0, "127.0.0.1", 0);
  uint16_t port = first->server.port();
  try {
    second = std::make_unique<Backend>(1, "127.0.0.2", port);
  } catch (const HarnessError& e) {
    WARN("cannot bind 127.0.0.2:" << port << ": " << e.what());
    return false;
  }
  return true;
}

// Cluster keys that make the cluster resolve its endpoints with `dns`: `extra` (more cluster
// keys), then dns_refresh (`refresh`; empty: the default) and dns_resolvers.
std::string dnsKeys(const DnsServer& dns, const std::string& refresh = "100ms", const std::string& extra = "") {
  std::string out = extra;
  if (!refresh.empty()) out += "    dns_refresh: " + refresh + "\n";
  return out + "    dns_resolvers: ['" + dns.address() + "']\n";
}

const std::string kFastHealthCheck =
    "    health_check: {path: /healthz, interval: 50ms, timeout: 1s, healthy_threshold: 2, "
    "unhealthy_threshold: 2}\n";

}  // namespace

TEST_CASE("round_robin spreads requests by weight, within 10% over 1,000 requests", "[cluster][lb]") {
  auto bs = backends(3);
  auto f = FerryProcess::start(apiProxy(endpoints(bs, {1, 2, 3}), "    lb_policy: round_robin\n").yaml());
  uint16_t port = f->port("web");
  auto t = tally(getMany(port, 1200));
  INFO("b0=" << t["b0"] << " b1=" << t["b1"] << " b2=" << t["b2"]);
  CHECK(t["b0"] + t["b1"] + t["b2"] == 1200);
  CHECK(std::abs(t["b0"] - 200) <= 20);
  CHECK(std::abs(t["b1"] - 400) <= 40);
  CHECK(std::abs(t["b2"] - 600) <= 60);
}

TEST_CASE("random spreads requests by weight", "[cluster][lb]") {
  auto bs = backends(2);
  auto f = FerryProcess::start(apiProxy(endpoints(bs, {1, 3}), "    lb_policy: random\n").yaml());
  auto t = tally(getMany(f->port("web"), 1000));
  INFO("b0=" << t["b0"] << " b1=" << t["b1"]);
  CHECK(t["b0"] + t["b1"] == 1000);
  // Expected 250 / 750; binomial sd ~14, so 10% (+-25 / +-75) is > 1.7 sd for b0.
  CHECK(t["b0"] > 180);
  CHECK(t["b0"] < 320);
}

TEST_CASE("least_request steers away from a slow host", "[cluster][lb]") {
  // Host 0 takes 150 ms per request, hosts 1 and 2 answer at once. Eight clients in
  // parallel: round robin would give the slow host a third of the requests.
  auto bs = backends(3, 0, 150);
  auto f = FerryProcess::start(apiProxy(endpoints(bs), "    lb_policy: least_request\n").yaml());
  uint16_t port = f->port("web");
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  for (int c = 0; c < 8; ++c)
    clients.emplace_back([&] {
      while (std::chrono::steady_clock::now() < deadline) {
        auto r = getMany(port, 5);
        for (const auto& b : r) ok += b.rfind("b", 0) == 0 ? 1 : 0;
      }
    });
  for (auto& t : clients) t.join();
  int slow = bs[0]->served.load(), fast = bs[1]->served.load() + bs[2]->served.load();
  INFO("slow=" << slow << " fast=" << fast << " ok=" << ok.load());
  REQUIRE(slow + fast > 50);
  CHECK(ok.load() == slow + fast);
  // Power of two choices: the slow host is taken only when both draws land on it (1/9).
  CHECK(slow * 100 < (slow + fast) * 20);
}

namespace {

// Requests keys 0..n-1 (header x-user) and returns key -> backend body.
std::map<int, std::string> mapKeys(uint16_t port, int n) {
  std::map<int, std::string> m;
  for (int k = 0; k < n; ++k) m[k] = getMany(port, 1, {"x-user: user-" + std::to_string(k)})[0];
  return m;
}

void checkConsistentHashing(const std::string& policy, int min_kept_percent) {
  auto bs = backends(3);
  auto f = FerryProcess::start(
      apiProxy(endpoints(bs), "    lb_policy: " + policy + "\n    hash_on: {header: x-user}\n" + kFastHealthCheck)
          .yaml());
  uint16_t port = f->port("web");
  uint16_t admin = f->adminPort();
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 3));
  const int kKeys = 90;
  auto before = mapKeys(port, kKeys);
  // Same key, same host.
  auto again = mapKeys(port, kKeys);
  CHECK(before == again);
  auto t = tally([&] {
    std::vector<std::string> v;
    for (auto& [k, b] : before) v.push_back(b);
    return v;
  }());
  INFO("b0=" << t["b0"] << " b1=" << t["b1"] << " b2=" << t["b2"]);
  CHECK(t["b0"] > 10);
  CHECK(t["b1"] > 10);
  CHECK(t["b2"] > 10);
  // Host 2 fails its health checks: only its keys move.
  bs[2]->health_status = 503;
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 2));
  auto after = mapKeys(port, kKeys);
  int kept = 0, others = 0;
  for (auto& [k, b] : before) {
    CHECK(after[k] != "b2");
    CHECK(after[k].rfind("b", 0) == 0);
    if (b != "b2") {
      ++others;
      kept += after[k] == b ? 1 : 0;
    }
  }
  INFO("kept " << kept << " of " << others);
  CHECK(kept * 100 >= others * min_kept_percent);
  // Back: the original mapping returns.
  bs[2]->health_status = 200;
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 3));
  CHECK(mapKeys(port, kKeys) == before);
}

}  // namespace

TEST_CASE("ring_hash: same key same host; an unhealthy host moves only its own keys", "[cluster][lb]") {
  checkConsistentHashing("ring_hash", 100);
}

TEST_CASE("maglev: same key same host; an unhealthy host moves only its own keys", "[cluster][lb]") {
  checkConsistentHashing("maglev", 100);
}

TEST_CASE("hash_on cookie, query and source_ip; a route's hash_on overrides the cluster's", "[cluster][lb]") {
  auto bs = backends(3);
  SECTION("cookie") {
    auto f = FerryProcess::start(
        apiProxy(endpoints(bs), "    lb_policy: ring_hash\n    hash_on: {cookie: sid}\n").yaml());
    uint16_t port = f->port("web");
    std::set<std::string> hosts;
    for (int k = 0; k < 30; ++k) {
      auto r = getMany(port, 4, {"cookie: a=1; sid=s" + std::to_string(k) + "; b=2"});
      CHECK(tally(r).size() == 1);
      hosts.insert(r[0]);
    }
    CHECK(hosts.size() == 3);
  }
  SECTION("query parameter, set on the route") {
    FerryConfig cfg = apiProxy(endpoints(bs), "    lb_policy: maglev\n    hash_on: {header: x-none}\n");
    cfg.routes = {{"{prefix: /}", "api", "hash_on: {query: u}"}};
    auto f = FerryProcess::start(cfg.yaml());
    uint16_t port = f->port("web");
    std::set<std::string> hosts;
    for (int k = 0; k < 30; ++k) {
      auto r = getMany(port, 4, {}, "/p?a=1&u=" + std::to_string(k));
      CHECK(tally(r).size() == 1);
      hosts.insert(r[0]);
    }
    CHECK(hosts.size() == 3);
  }
  SECTION("source_ip: one client, one host") {
    auto f = FerryProcess::start(
        apiProxy(endpoints(bs), "    lb_policy: ring_hash\n    hash_on: {source_ip: true}\n").yaml());
    auto r = getMany(f->port("web"), 30);
    CHECK(tally(r).size() == 1);
  }
  SECTION("no key: requests spread at random") {
    auto f = FerryProcess::start(
        apiProxy(endpoints(bs), "    lb_policy: ring_hash\n    hash_on: {header: x-user}\n").yaml());
    auto t = tally(getMany(f->port("web"), 90));
    CHECK(t.size() == 3);
  }
}

TEST_CASE("active health checks take a failing host out and bring it back", "[cluster][health]") {
  auto bs = backends(3);
  auto f = FerryProcess::start(apiProxy(endpoints(bs), kFastHealthCheck).yaml());
  uint16_t port = f->port("web");
  uint16_t admin = f->adminPort();
  // Hosts start healthy: traffic flows before any check has finished.
  CHECK(tally(getMany(port, 30)).size() == 3);
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 3));
  bs[1]->health_status = 500;
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 2));
  CHECK(metricValue(admin, endpointMetric("ferry_upstream_endpoint_healthy", bs[1]->server.port())) == 0);
  int served_before = bs[1]->served.load();
  auto t = tally(getMany(port, 60));
  CHECK(t["b1"] == 0);
  CHECK(t["b0"] + t["b2"] == 60);
  CHECK(bs[1]->served.load() == served_before);
  // The checks keep running against the sick host; it comes back after two passes.
  bs[1]->health_status = 200;
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 3));
  CHECK(tally(getMany(port, 30))["b1"] > 0);
  CHECK(metricValue(admin, clusterMetric("ferry_cluster_health_transitions_total")) == 2);
  CHECK(metricValue(admin, endpointMetric("ferry_upstream_endpoint_health_transitions_total", bs[1]->server.port())) ==
        2);
  CHECK(metricValue(admin, endpointMetric("ferry_upstream_endpoint_health_transitions_total", bs[0]->server.port())) ==
        0);
  CHECK(metricValue(admin, "ferry_cluster_health_checks_total{cluster=\"api\",result=\"failure\"}") >= 2);
  // Checks run once per process, not once per worker: with 2 workers and a 50 ms interval
  // the sick host saw about one check per interval.
  HttpResponse clusters = httpRequest(admin, "GET", "/clusters");
  CHECK(clusters.body.find("\"health\":\"healthy\"") != std::string::npos);
}

TEST_CASE("health checks run once per process, not once per worker", "[cluster][health]") {
  std::atomic<int> checks{0};
  HttpUpstream up([&](const UpstreamRequest& r) {
    if (r.target == "/hc") checks.fetch_add(1);
    return HttpUpstream::ok("x");
  });
  auto f = FerryProcess::start(
      FerryConfig{.workers = 4,
                  .listener = "t",
                  .tcp_cluster = "api",
                  .clusters = {{"api", {up.port()}, "    health_check: {path: /hc, interval: 200ms, timeout: 1s}\n"}}}
          .yaml());
  uint16_t admin = f->adminPort();
  // The upstream counts a check when the request arrives, Ferry when the answer does: wait for
  // Ferry's count (the upstream's can be one ahead, a check in flight).
  const std::string key = "ferry_cluster_health_checks_total{cluster=\"api\",result=\"success\"}";
  REQUIRE(waitUntil([&] { return metricValue(admin, key) >= 3; }, 5s));
  double done = metricValue(admin, key);
  // Every check the upstream saw was counted once: four workers checking would make it 4x.
  CHECK(done >= 3);
  CHECK(checks.load() <= done + 1);
}

TEST_CASE("with every host unhealthy the answer is 503 UH; panic_threshold balances over all", "[cluster][health]") {
  auto bs = backends(2);
  SECTION("no panic threshold: 503") {
    auto f = FerryProcess::start(apiProxy(endpoints(bs), kFastHealthCheck).yaml());
    uint16_t admin = f->adminPort();
    bs[0]->health_status = 503;
    bs[1]->health_status = 503;
    REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 0));
    HttpResponse r = httpRequest(f->port("web"), "GET", "/x");
    CHECK(r.status == 503);
    CHECK(r.body == "no healthy upstream\n");
    CHECK(metricValue(admin, clusterMetric("ferry_upstream_no_healthy_total")) >= 1);
  }
  SECTION("panic_threshold 50: below it, every host takes traffic") {
    auto f = FerryProcess::start(apiProxy(endpoints(bs), kFastHealthCheck + "    panic_threshold: 50\n").yaml());
    uint16_t admin = f->adminPort();
    bs[0]->health_status = 503;
    bs[1]->health_status = 503;
    REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 0));
    auto t = tally(getMany(f->port("web"), 20));
    CHECK(t["b0"] + t["b1"] == 20);
    CHECK(metricValue(admin, clusterMetric("ferry_cluster_panic_requests_total")) >= 20);
  }
}

TEST_CASE("priority levels: failover to priority 1 and back, spill-over in proportion", "[cluster][priority]") {
  SECTION("one host per level") {
    auto bs = backends(2);
    auto f = FerryProcess::start(apiProxy(endpoints(bs, {}, {0, 1}), kFastHealthCheck).yaml());
    uint16_t port = f->port("web");
    uint16_t admin = f->adminPort();
    {
    auto v = getMany(port, 20);
    INFO(show(v));
    CHECK(tally(v)["b0"] == 20);
  }
    bs[0]->health_status = 503;
    REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 1));
    {
    auto v = getMany(port, 20);
    INFO(show(v));
    CHECK(tally(v)["b1"] == 20);
  }
    bs[0]->health_status = 200;
    REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 2));
    {
    auto v = getMany(port, 20);
    INFO(show(v));
    CHECK(tally(v)["b0"] == 20);
  }
  }
  SECTION("half of level 0 healthy: 70% stays, 30% spills (overprovisioning 1.4)") {
    auto bs = backends(3);
    auto f = FerryProcess::start(apiProxy(endpoints(bs, {}, {0, 0, 1}), kFastHealthCheck).yaml());
    uint16_t port = f->port("web");
    uint16_t admin = f->adminPort();
    bs[0]->health_status = 503;
    REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 2));
    auto t = tally(getMany(port, 1000));
    INFO("b1=" << t["b1"] << " b2=" << t["b2"]);
    CHECK(t["b0"] == 0);
    CHECK(t["b1"] > 630);  // 700 expected
    CHECK(t["b1"] < 770);
  }
}

TEST_CASE("slow start: a recovered host's share ramps up over the window", "[cluster][slow_start]") {
  auto bs = backends(2);
  auto f = FerryProcess::start(apiProxy(endpoints(bs), kFastHealthCheck + "    slow_start: 3s\n").yaml());
  uint16_t port = f->port("web");
  uint16_t admin = f->adminPort();
  bs[1]->health_status = 503;
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 1));
  bs[1]->health_status = 200;
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 2));
  // Right after it returns, host 1 weighs about 10% of host 0.
  auto early = tally(getMany(port, 200));
  INFO("early: b0=" << early["b0"] << " b1=" << early["b1"]);
  CHECK(early["b1"] > 0);
  CHECK(early["b1"] < 60);
  // Once the window is over (/clusters stops showing it in slow start), the shares are even.
  REQUIRE(waitUntil([&] { return httpRequest(admin, "GET", "/clusters").body.find("\"slow_start\":true") ==
                                 std::string::npos; },
                    6s, 50ms));
  auto late = tally(getMany(port, 200));
  INFO("late: b0=" << late["b0"] << " b1=" << late["b1"]);
  CHECK(late["b1"] >= 90);
  CHECK(late["b1"] <= 110);
}

TEST_CASE("outlier detection ejects a host after consecutive 5xx and lets it return", "[cluster][outlier]") {
  auto bs = backends(3);
  bs[2]->status = 500;
  auto f = FerryProcess::start(apiProxy(endpoints(bs),
                                        "    outlier_detection: {consecutive_5xx: 3, base_ejection_time: 1s, "
                                        "max_ejection_percent: 50}\n",
                                        1)
                                   .yaml());
  uint16_t port = f->port("web");
  uint16_t admin = f->adminPort();
  // Round robin: every third request meets host 2; three 500s in a row eject it.
  auto first = tally(getMany(port, 9));
  CHECK(first["status:500"] == 3);
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_outlier_ejections_total"), 1));
  CHECK(metricValue(admin, endpointMetric("ferry_upstream_endpoint_healthy", bs[2]->server.port())) == 0);
  CHECK(httpRequest(admin, "GET", "/clusters").body.find("\"health\":\"ejected\"") != std::string::npos);
  auto during = tally(getMany(port, 30));
  CHECK(during["status:500"] == 0);
  CHECK(during["b0"] + during["b1"] == 30);
  // It returns by itself after base_ejection_time (1 s x 1st ejection).
  bs[2]->status = 200;
  REQUIRE(waitMetric(admin, endpointMetric("ferry_upstream_endpoint_healthy", bs[2]->server.port()), 1, 4s));
  CHECK(tally(getMany(port, 30))["b2"] > 0);
}

TEST_CASE("outlier detection: each ejection of a host lasts longer, up to max_ejection_time", "[cluster][outlier]") {
  auto bs = backends(2);
  bs[1]->status = 500;
  auto f = FerryProcess::start(apiProxy(endpoints(bs),
                                        "    outlier_detection: {consecutive_5xx: 1, base_ejection_time: 300ms, "
                                        "max_ejection_time: 700ms, max_ejection_percent: 50}\n",
                                        1)
                                   .yaml());
  uint16_t port = f->port("web");
  uint16_t admin = f->adminPort();
  const std::string ejections = endpointMetric("ferry_upstream_endpoint_ejections_total", bs[1]->server.port());
  const std::string healthy = endpointMetric("ferry_upstream_endpoint_healthy", bs[1]->server.port());
  const char* kLogs[] = {"ejected for 300ms", "ejected for 600ms", "ejected for 700ms"};  // base x n, capped
  for (int n = 1; n <= 3; ++n) {
    // Round robin reaches the failing host within two requests once it is back.
    REQUIRE(waitUntil([&] {
      getMany(port, 2);
      return metricValue(admin, ejections) >= n;
    }, 5s, 10ms));
    CHECK(f->waitForLog(kLogs[n - 1], 2s));
    REQUIRE(waitMetric(admin, healthy, 1, 3s));  // it returns by itself
  }
}

TEST_CASE("outlier detection: consecutive gateway errors (connect failures) eject", "[cluster][outlier]") {
  auto bs = backends(1);
  const RefusingPort refusing;  // the second endpoint: refuses connections until the test ends
  const uint16_t dead = refusing.port();
  std::vector<Endpoint> eps = endpoints(bs);
  eps.emplace_back(dead);
  auto f = FerryProcess::start(apiProxy(eps,
                                        "    outlier_detection: {consecutive_gateway_failure: 2, "
                                        "consecutive_5xx: 0, base_ejection_time: 30s}\n",
                                        1)
                                   .yaml());
  uint16_t port = f->port("web");
  uint16_t admin = f->adminPort();
  auto first = tally(getMany(port, 4));
  CHECK(first["status:503"] == 2);
  CHECK(metricValue(admin, "ferry_upstream_errors_total{cluster=\"api\",kind=\"connect_failure\"}") == 2);
  CHECK(metricValue(admin, "ferry_upstream_errors_total{cluster=\"api\",kind=\"reset\"}") == 0);
  CHECK(metricValue(admin, endpointMetric("ferry_upstream_endpoint_errors_total", dead)) == 2);
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_outlier_ejections_total"), 1));
  {
    auto v = getMany(port, 20);
    INFO(show(v));
    CHECK(tally(v)["b0"] == 20);
  }
}

TEST_CASE("max_ejection_percent bounds how many hosts are ejected", "[cluster][outlier]") {
  auto bs = backends(4);
  for (auto& b : bs) b->status = 500;
  auto f = FerryProcess::start(apiProxy(endpoints(bs),
                                        "    outlier_detection: {consecutive_5xx: 1, base_ejection_time: 30s, "
                                        "max_ejection_percent: 50}\n",
                                        1)
                                   .yaml());
  uint16_t port = f->port("web");
  uint16_t admin = f->adminPort();
  getMany(port, 40);
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_ejected"), 2));
  getMany(port, 40);
  // Never more than half of the four.
  CHECK(metricValue(admin, clusterMetric("ferry_cluster_endpoints_ejected")) == 2);
  CHECK(metricValue(admin, clusterMetric("ferry_cluster_endpoints_healthy")) == 2);
}

TEST_CASE("DNS endpoints: resolved off the data path, changes picked up, failures keep the last set",
          "[cluster][dns]") {
  DnsServer dns;
  std::string err;
  REQUIRE(dns.start(&err));
  std::unique_ptr<Backend> first, second;
  if (!twoAddressBackends(first, second)) return;
  uint16_t port = first->server.port();
  dns.setA("api.test", {"127.0.0.1"});
  // One worker: each step below waits for a request to see the change, then counts on
  // the same worker (each worker gets a new address set by its own posted task).
  auto f = FerryProcess::start(apiProxy({{"api.test", port}}, dnsKeys(dns), 1).yaml());
  uint16_t web = f->port("web");
  uint16_t admin = f->adminPort();
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 1));
  // The metric is the main thread's; the worker gets the resolved set by a posted task, a
  // moment later (a request before that is a 503 "no healthy upstream").
  REQUIRE(waitUntil([&] { return getMany(web, 1)[0] == "b0"; }, 5s, 20ms));
  {
    auto v = getMany(web, 10);
    INFO(show(v));
    CHECK(tally(v)["b0"] == 10);
  }
  // The name moves: new requests go to the new address.
  dns.setA("api.test", {"127.0.0.2"});
  REQUIRE(waitUntil([&] { return getMany(web, 1)[0] == "b1"; }, 5s, 20ms));
  {
    auto v = getMany(web, 10);
    INFO(show(v));
    CHECK(tally(v)["b1"] == 10);
  }
  // Two addresses: both used.
  dns.setA("api.test", {"127.0.0.1", "127.0.0.2"});
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 2));
  CHECK(tally(getMany(web, 20)).size() == 2);
  // The name stops resolving: the last good set stays, failures are counted.
  double failures = metricValue(admin, "ferry_cluster_dns_resolutions_total{cluster=\"api\",result=\"failure\"}");
  dns.setFail("api.test");
  REQUIRE(waitUntil([&] {
    return metricValue(admin, "ferry_cluster_dns_resolutions_total{cluster=\"api\",result=\"failure\"}") >=
           failures + 2;
  }, 5s, 20ms));
  CHECK(metricValue(admin, clusterMetric("ferry_cluster_endpoints_healthy")) == 2);
  CHECK(tally(getMany(web, 20)).size() == 2);
  CHECK(httpRequest(admin, "GET", "/clusters").body.find("\"hostname\":\"api.test\"") != std::string::npos);
}

TEST_CASE("DNS: an address that goes away takes its idle upstream connections and its pool with it",
          "[cluster][dns]") {
  DnsServer dns;
  REQUIRE(dns.start());
  std::unique_ptr<Backend> first, second;
  if (!twoAddressBackends(first, second)) return;
  uint16_t port = first->server.port();
  dns.setA("churn.test", {"127.0.0.1"});
  auto f = FerryProcess::start(apiProxy({{"churn.test", port}}, dnsKeys(dns), 1).yaml());
  uint16_t web = f->port("web");
  uint16_t admin = f->adminPort();
  const std::string pools = clusterMetric("ferry_upstream_pools");
  REQUIRE(waitUntil([&] { return httpRequest(admin, "GET", "/ready").status == 200; }, 5s));
  for (int round = 0; round < 3; ++round) {
    bool to_second = round % 2 == 0;
    dns.setA("churn.test", {to_second ? "127.0.0.2" : "127.0.0.1"});
    const std::string want = to_second ? "b1" : "b0";
    REQUIRE(waitUntil([&] { return getMany(web, 1)[0] == want; }, 5s, 20ms));
    // The old address's pool closed its idle connection and went away: one pool left.
    CHECK(waitMetric(admin, pools, 1));
  }
  // The last round moved to 127.0.0.2: 127.0.0.1's idle connection was closed.
  CHECK(metricValue(admin, "ferry_upstream_endpoint_connections_active{cluster=\"api\",endpoint=\"127.0.0.1:" +
                               std::to_string(port) + "\"}") == 0);
  CHECK(metricValue(admin, "ferry_upstream_endpoint_connections_active{cluster=\"api\",endpoint=\"127.0.0.2:" +
                               std::to_string(port) + "\"}") == 1);
}

TEST_CASE("DNS + slow_start: the first answer's addresses take full weight; a later one ramps up", "[cluster][dns]") {
  DnsServer dns;
  REQUIRE(dns.start());
  auto b = std::make_unique<Backend>(0);
  dns.setA("two.test", {"127.0.0.1", "127.0.0.3"});
  auto f = FerryProcess::start(
      apiProxy({{"two.test", b->server.port()}}, dnsKeys(dns, "100ms", "    slow_start: 30s\n")).yaml());
  uint16_t admin = f->adminPort();
  REQUIRE(waitUntil([&] { return httpRequest(admin, "GET", "/ready").status == 200; }, 5s));
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 2));
  CHECK(httpRequest(admin, "GET", "/clusters").body.find("\"slow_start\":true") == std::string::npos);
  dns.setA("two.test", {"127.0.0.1", "127.0.0.3", "127.0.0.4"});
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 3));
  std::string js = httpRequest(admin, "GET", "/clusters").body;
  size_t at = js.find("\"address\":\"127.0.0.4:");
  REQUIRE(at != std::string::npos);
  CHECK(js.find("\"slow_start\":true", at) != std::string::npos);
}

TEST_CASE("DNS: before the first answer the cluster has no host (503 UH), then serves", "[cluster][dns]") {
  DnsServer dns;
  REQUIRE(dns.start());
  auto b = std::make_unique<Backend>(0);
  auto f = FerryProcess::start(apiProxy({{"late.test", b->server.port()}}, dnsKeys(dns)).yaml());
  uint16_t web = f->port("web");
  uint16_t admin = f->adminPort();
  REQUIRE(waitUntil([&] { return dns.queries("late.test") > 0; }, 5s));
  HttpResponse r = httpRequest(web, "GET", "/x");
  CHECK(r.status == 503);
  dns.setA("late.test", {"127.0.0.1"});
  REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 1));
  CHECK(getMany(web, 1)[0] == "b0");
}

TEST_CASE("DNS warming: /ready answers 503 until the first lookups finish, then requests are served at once",
          "[cluster][dns]") {
  DnsServer dns;
  REQUIRE(dns.start());
  dns.setSilent("warm.test");  // the first query goes unanswered: c-ares waits and asks again
  auto b = std::make_unique<Backend>(0);
  auto f = FerryProcess::start(apiProxy({{"warm.test", b->server.port()}}, dnsKeys(dns, "")).yaml());
  uint16_t web = f->port("web");
  uint16_t admin = f->adminPort();
  REQUIRE(waitUntil([&] { return dns.queries("warm.test") > 0; }, 5s));
  HttpResponse r = httpRequest(admin, "GET", "/ready");
  CHECK(r.status == 503);
  CHECK(r.body == "STARTING\n");
  dns.setA("warm.test", {"127.0.0.1"});  // the retry is answered
  REQUIRE(waitUntil([&] { return httpRequest(admin, "GET", "/ready").status == 200; }, 8s, 20ms));
  // Ready means the table is there: no 503 UH after /ready said LIVE.
  CHECK(getMany(web, 1)[0] == "b0");
}

TEST_CASE("tcp_proxy uses the cluster's breakers and health: overflow and no usable host close at once",
          "[cluster][tcp]") {
  FakeUpstream up(FakeUpstream::echo());
  auto tcpYaml = [&](const std::string& cluster_extra) {
    return FerryConfig{.listener = "t", .tcp_cluster = "api", .clusters = {{"api", {up.port()}, cluster_extra}}}
        .yaml();
  };
  SECTION("max_connections: 1") {
    auto f = FerryProcess::start(tcpYaml("    circuit_breakers: {max_connections: 1}\n"));
    uint16_t port = f->port("t");
    uint16_t admin = f->adminPort();
    auto first = TcpClient::connect(port);
    REQUIRE(first);
    REQUIRE(first->sendAll("one"));
    CHECK(first->recvExactly(3) == "one");
    auto second = TcpClient::connect(port);
    REQUIRE(second);
    CHECK(second->waitClosed(5s));
    CHECK(metricValue(admin, "ferry_upstream_circuit_breaker_overflow_total{cluster=\"api\",breaker=\"max_connections\"}") ==
          1);
    first->close();
    REQUIRE(waitMetric(admin, clusterMetric("ferry_upstream_connections_active"), 0));
    auto third = TcpClient::connect(port);
    REQUIRE(third);
    REQUIRE(third->sendAll("three"));
    CHECK(third->recvExactly(5) == "three");
  }
  SECTION("no usable host") {
    auto f = FerryProcess::start(tcpYaml("    health_check: {type: tcp, send: ping, expect: never, interval: 50ms, "
                                         "timeout: 200ms, unhealthy_threshold: 1}\n"));
    uint16_t port = f->port("t");
    uint16_t admin = f->adminPort();
    REQUIRE(waitMetric(admin, clusterMetric("ferry_cluster_endpoints_healthy"), 0));
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    CHECK(c->waitClosed(5s));
    CHECK(metricValue(admin, clusterMetric("ferry_upstream_no_healthy_total")) == 1);
  }
}

TEST_CASE("per-endpoint and per-cluster counters in /metrics and /clusters", "[cluster][admin]") {
  auto bs = backends(2);
  bs[1]->status = 502;
  auto f = FerryProcess::start(apiProxy(endpoints(bs), "", 1).yaml());
  uint16_t admin = f->adminPort();
  getMany(f->port("web"), 10);
  CHECK(metricValue(admin, "ferry_upstream_endpoint_requests_total{cluster=\"api\",endpoint=\"127.0.0.1:" +
                               std::to_string(bs[0]->server.port()) + "\",code=\"2xx\"}") == 5);
  CHECK(metricValue(admin, "ferry_upstream_endpoint_requests_total{cluster=\"api\",endpoint=\"127.0.0.1:" +
                               std::to_string(bs[1]->server.port()) + "\",code=\"5xx\"}") == 5);
  CHECK(metricValue(admin, endpointMetric("ferry_upstream_endpoint_requests_active", bs[0]->server.port())) == 0);
  std::string js = httpRequest(admin, "GET", "/clusters").body;
  CHECK(js.find("\"lb_policy\":\"round_robin\"") != std::string::npos);
  CHECK(js.find("\"requests\":{\"1xx\":0,\"2xx\":5,\"3xx\":0,\"4xx\":0,\"5xx\":5}") != std::string::npos);
  CHECK(js.find("\"circuit_breaker_overflow\":{") != std::string::npos);
}

}  // namespace ferry::testing
