// The admin API's observability endpoints: GET /clusters (settings, health, outlier state,
// counters), GET /listeners, GET /stats?filter=&format=json, GET /reloads, POST /logging,
// POST /drain, the method and token rules of every mutation, `promtool check metrics` on a
// busy process, and the Grafana example's metric names (docs/observability.md).
#include <catch2/catch.hpp>
#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_upstream.h"
#include "tests/integration/json.h"
#include "tests/integration/test_certs.h"

using namespace ferry::testing;

namespace {

Json getJson(uint16_t admin, const std::string& path) {
  HttpResponse r = httpRequest(admin, "GET", path);
  INFO("GET " << path << ": " << r.status << " " << r.error << "\n" << r.body);
  REQUIRE(r.status == 200);
  REQUIRE(r.header("content-type").rfind("application/json", 0) == 0);
  auto j = parseJson(r.body);
  REQUIRE(j);
  return *j;
}

bool boolean(const Json& j) { return std::holds_alternative<bool>(j.v) && std::get<bool>(j.v); }

const Json* findNamed(const Json& list, const std::string& key, const std::string& value) {
  for (const auto& e : list.arr())
    if (e[key].str() == value) return &e;
  return nullptr;
}

// A process with traffic of every kind on HTTP listener "web": 200s from cluster "api", 503
// (UF) from cluster "down" (its endpoint refuses), 404 (NR) for unrouted paths, a 400 (DPE).
struct Busy {
  HttpUpstream up;
  RefusingPort refusing;
  std::unique_ptr<FerryProcess> f;
  uint16_t web = 0, admin = 0;

  Busy() {
    f = FerryProcess::start(FerryConfig{.workers = 2,
                                        .routes = {{.match = "{prefix: /ok}", .cluster = "api",
                                                    .extra = "              name: ok\n"},
                                                   {.match = "{prefix: /down}", .cluster = "down"}},
                                        .clusters = {{"api", {up.port()}}, {"down", {refusing.port()}}}}
                                .yaml());
    web = f->port("web");
    admin = f->adminPort();
    for (int i = 0; i < 20; ++i) REQUIRE(httpRequest(web, "GET", "/ok/" + std::to_string(i)).status == 200);
    for (int i = 0; i < 4; ++i) REQUIRE(httpRequest(web, "GET", "/down").status == 503);
    for (int i = 0; i < 3; ++i) REQUIRE(httpRequest(web, "GET", "/nope").status == 404);
    auto c = TcpClient::connect(web);
    REQUIRE(c);
    REQUIRE(c->sendAll("GET / HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n"));
    REQUIRE(readHttpResponse(*c).status == 400);
  }
};

std::string metricsText(uint16_t admin) {
  HttpResponse r = httpRequest(admin, "GET", "/metrics");
  REQUIRE(r.status == 200);
  return r.body;
}

// Metric family names in Prometheus text (from the samples, _bucket/_sum/_count stripped).
std::set<std::string> familyNames(const std::string& text) {
  std::set<std::string> out;
  static const std::regex sample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ])");
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string line = text.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos);
    pos = eol == std::string::npos ? text.size() : eol + 1;
    std::smatch m;
    if (line.empty() || line[0] == '#' || !std::regex_search(line, m, sample)) continue;
    std::string name = m[1];
    out.insert(name);
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s = suffix;
      if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0)
        out.insert(name.substr(0, name.size() - s.size()));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("GET /clusters: settings, endpoint health, weight, outlier state and counters", "[admin][observability]") {
  HttpUpstream good;
  RefusingPort bad, bad_checked;
  auto f = FerryProcess::start(
      FerryConfig{.workers = 1,
                  .routes = {{.match = "{prefix: /checked}", .cluster = "checked"}, {.match = "{prefix: /}", .cluster = "api"}},
                  .clusters = {{"api",
                                {{good.port(), 3}, {bad.port(), 1}},
                                "    outlier_detection: {consecutive_gateway_failure: 1, base_ejection_time: 30s,"
                                " max_ejection_percent: 50}\n"},
                               {"checked",
                                {good.port(), bad_checked.port()},
                                "    lb_policy: least_request\n"
                                "    health_check: {path: /healthz, interval: 100ms, timeout: 1s,"
                                " healthy_threshold: 1, unhealthy_threshold: 1}\n"}}}
          .yaml());
  const uint16_t web = f->port("web"), admin = f->adminPort();
  const std::string good_addr = "127.0.0.1:" + std::to_string(good.port());
  const std::string bad_addr = "127.0.0.1:" + std::to_string(bad.port());
  const std::string checked_addr = "127.0.0.1:" + std::to_string(bad_checked.port());

  // Requests until round robin has sent one to the refusing endpoint: it is ejected.
  bool ejected = waitUntil(
      [&] {
        httpRequest(web, "GET", "/x");
        const Json j = getJson(admin, "/clusters");
        const Json* api = findNamed(j["clusters"], "name", "api");
        const Json* e = api ? findNamed((*api)["endpoints"], "address", bad_addr) : nullptr;
        return e && boolean((*e)["outlier"]["ejected"]);
      },
      10s);
  REQUIRE(ejected);
  REQUIRE(waitUntil(
      [&] {
        const Json j = getJson(admin, "/clusters");
        const Json* c = findNamed(j["clusters"], "name", "checked");
        const Json* e = c ? findNamed((*c)["endpoints"], "address", checked_addr) : nullptr;
        return e && (*e)["active_health"].str() == "unhealthy";
      },
      10s));
  for (int i = 0; i < 3; ++i) REQUIRE(httpRequest(web, "GET", "/y").status == 200);

  const Json j = getJson(admin, "/clusters");
  const Json* api = findNamed(j["clusters"], "name", "api");
  REQUIRE(api);
  CHECK((*api)["lb_policy"].str() == "round_robin");
  CHECK((*api)["protocol"].str() == "http1");
  CHECK((*api)["health_check"].isNull());
  CHECK(boolean((*api)["outlier_detection"]));
  CHECK((*api)["endpoints_healthy"].num() == 1);
  CHECK((*api)["requests"]["2xx"].num() >= 3);
  CHECK((*api)["connect_failures"].num() >= 1);

  const Json* g = findNamed((*api)["endpoints"], "address", good_addr);
  REQUIRE(g);
  CHECK((*g)["weight"].num() == 3);
  CHECK((*g)["health"].str() == "healthy");
  CHECK((*g)["active_health"].str() == "healthy");
  CHECK_FALSE(boolean((*g)["ejected"]));
  CHECK_FALSE(boolean((*g)["outlier"]["ejected"]));
  CHECK((*g)["outlier"]["ejected_until"].isNull());
  CHECK((*g)["outlier"]["ejection_count"].num() == 0);
  CHECK((*g)["requests"]["2xx"].num() >= 3);
  CHECK((*g)["requests_active"].num() == 0);
  CHECK((*g)["connections_active"].isNumber());
  CHECK((*g)["connect_failures"].num() == 0);

  const Json* b = findNamed((*api)["endpoints"], "address", bad_addr);
  REQUIRE(b);
  CHECK((*b)["weight"].num() == 1);
  CHECK((*b)["health"].str() == "ejected");
  CHECK(boolean((*b)["ejected"]));
  CHECK((*b)["outlier"]["ejection_count"].num() == 1);
  CHECK((*b)["outlier"]["remaining_ms"].num() > 20000);  // base_ejection_time 30s
  CHECK(std::regex_match((*b)["outlier"]["ejected_until"].str(),
                         std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
  CHECK((*b)["connect_failures"].num() >= 1);

  const Json* checked = findNamed(j["clusters"], "name", "checked");
  REQUIRE(checked);
  CHECK((*checked)["lb_policy"].str() == "least_request");
  CHECK((*checked)["health_check"].str() == "http");
  CHECK_FALSE(boolean((*checked)["outlier_detection"]));
  const Json* cb = findNamed((*checked)["endpoints"], "address", checked_addr);
  REQUIRE(cb);
  CHECK((*cb)["health"].str() == "unhealthy");
  CHECK((*cb)["active_health"].str() == "unhealthy");
  CHECK_FALSE(boolean((*cb)["outlier"]["ejected"]));
  const Json* cg = findNamed((*checked)["endpoints"], "address", good_addr);
  REQUIRE(cg);
  CHECK((*cg)["active_health"].str() == "healthy");
}

TEST_CASE("GET /listeners: address, bound address, kind, TLS and ALPN, connections, requests",
          "[admin][observability]") {
  HttpUpstream up;
  TempDir certs;
  CertAuthority ca = CertAuthority::create("Test CA");
  CertFiles cf = ca.issue({.common_name = "localhost", .dns = {"localhost"}}).writeFiles(certs.path(), "server");
  const std::string routes =
      "      virtual_hosts:\n"
      "        - name: all\n"
      "          domains: [\"*\"]\n"
      "          routes:\n"
      "            - match: {prefix: /}\n"
      "              route: {cluster: api}\n";
  const std::string yaml = "runtime: {workers: 2}\n"
                           "admin: {address: 127.0.0.1:0}\n"
                           "listeners:\n"
                           "  - name: web\n"
                           "    address: 127.0.0.1:0\n"
                           "    http:\n" +
                           routes +
                           "  - name: secure\n"
                           "    address: 127.0.0.1:0\n"
                           "    tls:\n"
                           "      certificates: [{cert_file: " + cf.cert + ", key_file: " + cf.key + "}]\n"
                           "    http:\n" +
                           routes +
                           "  - name: secure_h1\n"
                           "    address: 127.0.0.1:0\n"
                           "    tls:\n"
                           "      certificates: [{cert_file: " + cf.cert + ", key_file: " + cf.key + "}]\n"
                           "      alpn: [http/1.1]\n"
                           "    http:\n" +
                           routes +
                           "  - name: raw\n"
                           "    address: 127.0.0.1:0\n"
                           "    tcp: {cluster: api}\n"
                           "clusters:\n"
                           "  - name: api\n"
                           "    endpoints: [{address: 127.0.0.1:" + std::to_string(up.port()) + "}]\n";
  auto f = FerryProcess::start(yaml);
  const uint16_t web = f->port("web"), raw = f->port("raw"), admin = f->adminPort();
  f->port("secure");
  f->port("secure_h1");
  for (int i = 0; i < 5; ++i) REQUIRE(httpRequest(web, "GET", "/a").status == 200);
  auto open = TcpClient::connect(web);  // stays open
  REQUIRE(open);
  REQUIRE(open->sendAll("GET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(readHttpResponse(*open).status == 200);
  auto tcp = TcpClient::connect(raw);
  REQUIRE(tcp);

  Json j;
  REQUIRE(waitUntil(
      [&] {
        j = getJson(admin, "/listeners");
        // The closed connections leave the count once their worker has seen the close. A worker
        // counts a new connection as active before it counts it in the total (the limit check
        // comes first), so a read between the two sees active 1 and total 0: wait for both.
        const Json* r = findNamed(j["listeners"], "name", "raw");
        const Json* w = findNamed(j["listeners"], "name", "web");
        return r && w && (*r)["connections_active"].num() == 1 && (*r)["connections_total"].num() == 1 &&
               (*w)["connections_active"].num() == 1;
      },
      5s));
  REQUIRE(j["listeners"].arr().size() == 4);
  const Json* w = findNamed(j["listeners"], "name", "web");
  REQUIRE(w);
  CHECK((*w)["kind"].str() == "http");
  CHECK((*w)["address"].str() == "127.0.0.1:0");
  REQUIRE((*w)["bound"].arr().size() == 1);  // one port shared by both workers
  CHECK((*w)["bound"].arr()[0].str() == "127.0.0.1:" + std::to_string(web));
  CHECK_FALSE(boolean((*w)["tls"]));
  CHECK((*w)["alpn"].arr().empty());
  CHECK((*w)["connections_active"].num() == 1);
  CHECK((*w)["connections_total"].num() == 6);
  CHECK((*w)["requests"].num() == 6);
  CHECK((*w)["responses"]["2xx"].num() == 6);
  CHECK((*w)["requests_active"].num() == 0);

  const Json* s = findNamed(j["listeners"], "name", "secure");
  REQUIRE(s);
  CHECK((*s)["kind"].str() == "http");
  CHECK(boolean((*s)["tls"]));
  REQUIRE((*s)["alpn"].arr().size() == 2);  // the default for an HTTP listener
  CHECK((*s)["alpn"].arr()[0].str() == "h2");
  CHECK((*s)["alpn"].arr()[1].str() == "http/1.1");
  CHECK((*s)["connections_total"].num() == 0);
  CHECK((*s)["requests"].num() == 0);

  const Json* h1 = findNamed(j["listeners"], "name", "secure_h1");
  REQUIRE(h1);
  REQUIRE((*h1)["alpn"].arr().size() == 1);
  CHECK((*h1)["alpn"].arr()[0].str() == "http/1.1");

  const Json* r = findNamed(j["listeners"], "name", "raw");
  REQUIRE(r);
  CHECK((*r)["kind"].str() == "tcp");
  CHECK_FALSE(boolean((*r)["tls"]));
  CHECK((*r)["connections_active"].num() == 1);
  CHECK((*r)["connections_total"].num() == 1);
  CHECK_FALSE((*r).has("requests"));  // TCP: no requests
}

TEST_CASE("GET /stats?filter=REGEX and ?format=json", "[admin][observability]") {
  Busy b;
  const uint16_t admin = b.admin;

  HttpResponse r = httpRequest(admin, "GET", "/stats?filter=downstream_requests_t");
  REQUIRE(r.status == 200);
  INFO(r.body);
  size_t lines = 0;
  for (size_t pos = 0; pos < r.body.size();) {
    size_t eol = r.body.find('\n', pos);
    std::string line = r.body.substr(pos, eol - pos);
    pos = eol + 1;
    ++lines;
    CHECK(line.rfind("ferry_downstream_requests_total{", 0) == 0);
  }
  CHECK(lines == 5);  // listener "web", classes 1xx..5xx
  CHECK(r.body.find("ferry_downstream_requests_total{listener=\"web\",code=\"2xx\"}: 20\n") != std::string::npos);
  CHECK(r.body.find("ferry_downstream_requests_total{listener=\"web\",code=\"5xx\"}: 4\n") != std::string::npos);

  // Percent-encoded, anchored.
  r = httpRequest(admin, "GET", "/stats?filter=%5Eferry_config_reloads_total%24");
  REQUIRE(r.status == 200);
  CHECK(r.body ==
        "ferry_config_reloads_total{result=\"failure\"}: 0\nferry_config_reloads_total{result=\"success\"}: 0\n");
  // Matches nothing: 200, empty.
  r = httpRequest(admin, "GET", "/stats?filter=no_such_metric");
  CHECK(r.status == 200);
  CHECK(r.body.empty());
  // A bad regex or format: 400.
  r = httpRequest(admin, "GET", "/stats?filter=ferry_(");
  CHECK(r.status == 400);
  CHECK(r.body.find("bad regex") != std::string::npos);
  CHECK(httpRequest(admin, "GET", "/stats?filter=%zz").status == 400);
  CHECK(httpRequest(admin, "GET", "/stats?format=xml").status == 400);

  // JSON: the same values, histograms with cumulative buckets.
  const Json j = getJson(admin, "/stats?format=json");
  CHECK(j["time_ms"].num() > 1.6e12);
  const Json* dur = nullptr;
  double ok2xx = -1, total_count = 0;
  for (const auto& s : j["stats"].arr()) {
    if (s["name"].str() == "ferry_downstream_requests_total" && s["labels"]["code"].str() == "2xx") {
      CHECK(s["type"].str() == "counter");
      ok2xx = s["value"].num();
    }
    if (s["name"].str() == "ferry_downstream_request_duration_seconds" && s["labels"]["listener"].str() == "web")
      dur = &s;
  }
  CHECK(ok2xx == 20);
  REQUIRE(dur);
  CHECK((*dur)["type"].str() == "histogram");
  const auto& buckets = (*dur)["buckets"].arr();
  REQUIRE(buckets.size() > 2);
  double prev = 0;
  for (const auto& bk : buckets) {
    CHECK(bk["count"].num() >= prev);
    prev = bk["count"].num();
  }
  CHECK(buckets.back()["le"].str() == "+Inf");
  total_count = (*dur)["count"].num();
  CHECK(prev == total_count);
  CHECK(total_count >= 27);  // 20 + 4 + 3 (+ the 400, when it is timed)
  CHECK((*dur)["sum"].num() >= 0);  // loopback requests may all take under the clock's millisecond

  // The filter applies to the JSON form too (a histogram by its family name).
  const Json only = getJson(admin, "/stats?format=json&filter=downstream_request_duration_seconds%24");
  REQUIRE(only["stats"].arr().size() == 1);
  CHECK(only["stats"].arr()[0]["name"].str() == "ferry_downstream_request_duration_seconds");
}

TEST_CASE("GET /reloads keeps the last 10 reloads, newest first", "[admin][observability]") {
  HttpUpstream up;
  const std::string yaml = FerryConfig{.clusters = {{"api", {up.port()}}}}.yaml();
  auto f = FerryProcess::start(yaml);
  const uint16_t admin = f->adminPort();
  f->port("web");
  CHECK(getJson(admin, "/reloads")["reloads"].arr().empty());
  for (int i = 0; i < 11; ++i) REQUIRE(httpRequest(admin, "POST", "/reload").status == 200);
  f->writeConfig("listeners: [\n");
  REQUIRE(httpRequest(admin, "POST", "/reload").status == 400);
  const Json j = getJson(admin, "/reloads");
  const auto& list = j["reloads"].arr();
  REQUIRE(list.size() == 10);
  CHECK(list[0]["result"].str() == "failure");
  CHECK(list[0]["trigger"].str() == "POST /reload");
  CHECK_FALSE(list[0]["errors"].arr().empty());
  CHECK(list[0]["version"].num() == 12);  // the running one stays
  CHECK(list[1]["result"].str() == "success");
  CHECK(list[1]["version"].num() == 12);
  CHECK(list[9]["version"].num() == 4);
  CHECK(j["version"].num() == 12);
  CHECK(std::regex_match(list[0]["at"].str(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
  CHECK(list[0]["at_ms"].num() >= list[1]["at_ms"].num());
}

TEST_CASE("every admin mutation answers 405 to GET and 401 without the token", "[admin][observability]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.admin_extra = "  token_file: admin.token\n  allow_config_push: true\n", .clusters = {{"api", {up.port()}}}}
          .yaml(),
      {}, {{"admin.token", "s3cret\n"}});
  const uint16_t admin = f->adminPort();
  f->port("web");
  const std::string yaml = readFile(f->configPath());
  struct Case {
    const char* method;
    const char* path;
  };
  for (const Case& c : {Case{"POST", "/logging?level=debug"}, Case{"POST", "/drain"}, Case{"POST", "/healthcheck/fail"},
                        Case{"POST", "/healthcheck/ok"}, Case{"POST", "/reload"}, Case{"PUT", "/config"}}) {
    INFO(c.method << " " << c.path);
    if (std::string(c.path) == "/config") {
      // GET /config is the read (the running config, contract), never a change: 200 without
      // the token; the other methods but PUT are 405.
      CHECK(httpRequest(admin, "GET", c.path).status == 200);
      CHECK(httpRequest(admin, "POST", c.path, yaml).status == 405);
    } else {
      CHECK(httpRequest(admin, "GET", c.path).status == 405);
      CHECK(httpRequest(admin, "HEAD", c.path).status == 405);
      CHECK(httpRequest(admin, "PUT", c.path, "x").status == 405);
    }
    CHECK(httpRequest(admin, "DELETE", c.path).status == 405);
    const std::string body = std::string(c.method) == "PUT" ? yaml : "";
    CHECK(httpRequest(admin, c.method, c.path, body).status == 401);
    CHECK(httpRequest(admin, c.method, c.path, body, {"Authorization: Bearer wrong"}).status == 401);
    CHECK(httpRequest(admin, c.method, c.path, body, {"Authorization: s3cret"}).status == 401);
  }
  // None of them did anything: still serving, level unchanged, no drain.
  CHECK(httpRequest(admin, "GET", "/ready").status == 200);
  CHECK(f->countInLog("draining") == 0);
  CHECK(f->countInLog("log level:") == 0);
  // With the token they work.
  HttpResponse r = httpRequest(admin, "POST", "/logging?level=warn", "", {"Authorization: Bearer s3cret"});
  CHECK(r.status == 200);
  CHECK(r.body == "log level: warn\n");
  r = httpRequest(admin, "POST", "/drain", "", {"Authorization: Bearer s3cret"});
  CHECK(r.status == 200);
  CHECK(f->waitExit(10s) == 0);
}

TEST_CASE("POST /logging changes the log level of every thread at run time", "[admin][observability]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.workers = 2, .clusters = {{"api", {up.port()}}}}.yaml());
  const uint16_t web = f->port("web"), admin = f->adminPort();
  // A malformed request makes a debug line on the worker that reads it ("400 before any stream").
  auto malformed = [&] {
    auto c = TcpClient::connect(web);
    REQUIRE(c);
    REQUIRE(c->sendAll("GET / HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n"));
    REQUIRE(readHttpResponse(*c).status == 400);
  };
  const std::string debug_line = "[debug] http: web: 400 before any stream";
  malformed();
  malformed();
  CHECK(f->countInLog("[debug]") == 0);  // info by default

  CHECK(httpRequest(admin, "POST", "/logging?level=loud").status == 400);
  CHECK(httpRequest(admin, "POST", "/logging").status == 400);
  CHECK(httpRequest(admin, "GET", "/logging?level=debug").status == 405);
  HttpResponse r = httpRequest(admin, "POST", "/logging?level=debug");
  REQUIRE(r.status == 200);
  CHECK(r.body == "log level: debug\n");
  CHECK(f->waitForLog("log level: debug (was info; POST /logging)"));
  // Two connections: with two workers, SO_REUSEPORT may put them on either; each logs.
  malformed();
  malformed();
  CHECK(f->waitForLogCount(debug_line, 2, 5s));

  // A reload keeps the level set here (as it keeps --log-level).
  REQUIRE(httpRequest(admin, "POST", "/reload").status == 200);
  malformed();
  CHECK(f->waitForLogCount(debug_line, 3, 5s));

  // Back up to error: neither debug nor info lines any more.
  REQUIRE(httpRequest(admin, "POST", "/logging?level=error").status == 200);
  const size_t debug_before = f->countInLog("[debug]");
  const size_t info_before = f->countInLog("[info]");
  malformed();
  REQUIRE(httpRequest(admin, "POST", "/reload").status == 200);  // logs "config reloaded" at info
  CHECK(f->countInLog("[debug]") == debug_before);
  CHECK(f->countInLog("[info]") == info_before);
}

TEST_CASE("POST /drain drains as SIGTERM does: /ready 503, in-flight requests finish, exit 0",
          "[admin][observability]") {
  auto release = std::make_shared<std::promise<void>>();
  std::shared_future<void> released = release->get_future().share();
  auto arrived = std::make_shared<std::atomic<bool>>(false);
  HttpUpstream up([released, arrived](const UpstreamRequest&) {
    arrived->store(true);
    released.wait_for(std::chrono::seconds(10));
    return HttpUpstream::ok("late");
  });
  auto f = FerryProcess::start(
      FerryConfig{.runtime_extra = "  drain_timeout: 10s\n", .clusters = {{"api", {up.port()}}}}.yaml());
  const uint16_t web = f->port("web"), admin = f->adminPort();
  REQUIRE(httpRequest(admin, "GET", "/ready").status == 200);

  auto c = TcpClient::connect(web);
  REQUIRE(c);
  REQUIRE(c->sendAll("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(waitUntil([&] { return arrived->load(); }, 10s));  // in flight, held by the upstream

  HttpResponse r = httpRequest(admin, "POST", "/drain");
  CHECK(r.status == 200);
  CHECK(r.body == "draining\n");
  CHECK(f->waitForLog("POST /drain: draining"));
  HttpResponse ready = httpRequest(admin, "GET", "/ready");
  CHECK(ready.status == 503);
  CHECK(ready.body == "DRAINING\n");
  // A second call is harmless: 200, the drain goes on as it was.
  r = httpRequest(admin, "POST", "/drain");
  CHECK(r.status == 200);
  CHECK(f->countInLog("POST /drain: draining") == 1);
  CHECK(f->running());

  release->set_value();
  HttpResponse late = readHttpResponse(*c);
  CHECK(late.status == 200);
  CHECK(late.body == "late");
  CHECK(f->waitExit(10s) == 0);
  CHECK(f->waitForLog("drain: all connections closed"));
}

TEST_CASE("promtool check metrics accepts /metrics of a busy process", "[admin][observability]") {
  Busy b;
  TempDir tmp;
  const std::string path = tmp.write("metrics.txt", metricsText(b.admin));
  RunResult r = runProcess({"sh", "-c", "promtool check metrics < " + path}, 30s);
  INFO("promtool (exit " << r.exit_code << "):\n" << r.out << r.err);
  REQUIRE(r.exit_code != 127);  // promtool missing: scripts/install-deps installs prometheus
  CHECK(r.exit_code == 0);
  CHECK(r.out.empty());  // no lint problem either
}

TEST_CASE("the Grafana example is JSON whose queries use metrics Ferry exports", "[admin][observability]") {
  const std::string text = readFile(srcDir() + "/examples/grafana/ferry-dashboard.json");
  REQUIRE_FALSE(text.empty());
  auto dash = parseJson(text);
  REQUIRE(dash);
  // The Prometheus data source is a variable.
  bool ds_var = false;
  for (const auto& v : (*dash)["templating"]["list"].arr())
    if (v["type"].str() == "datasource" && v["query"].str() == "prometheus") ds_var = true;
  CHECK(ds_var);
  // Every query's metric names.
  std::set<std::string> used;
  std::vector<const Json*> stack{&*dash};
  size_t exprs = 0;
  static const std::regex name(R"(\bferry_[a-z0-9_]+)");
  while (!stack.empty()) {
    const Json* j = stack.back();
    stack.pop_back();
    if (j->isArray())
      for (const auto& e : j->arr()) stack.push_back(&e);
    if (!j->isObject()) continue;
    for (const auto& [k, v] : std::get<JsonObject>(j->v)) {
      if (k == "expr" && v.isString()) {
        ++exprs;
        const std::string e = v.str();
        for (std::sregex_iterator it(e.begin(), e.end(), name), end; it != end; ++it) {
          std::string n = it->str();
          for (const char* suffix : {"_bucket", "_sum", "_count"}) {
            const std::string s = suffix;
            if (n.size() > s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0) n.resize(n.size() - s.size());
          }
          used.insert(n);
        }
      }
      stack.push_back(&v);
    }
  }
  CHECK(exprs >= 8);
  Busy b;
  const std::set<std::string> exported = familyNames(metricsText(b.admin));
  for (const auto& n : used) {
    INFO("the dashboard queries " << n << ", which /metrics of a running Ferry does not have");
    CHECK(exported.count(n) == 1);
  }
}
