// Access logs (listeners[].http.access_log), response flags (x-ferry-flags) and the
// observability metrics added with them (per-route series, size and upstream-time histograms).
#include <signal.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http2_support.h"
#include "tests/integration/http_upstream.h"
#include "tests/integration/json.h"

using namespace ferry::testing;

namespace {

std::vector<std::string> lines(const std::string& path) {
  std::vector<std::string> out;
  std::istringstream in(readFile(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

// Waits until `path` has at least n lines; returns them.
std::vector<std::string> waitLines(const std::string& path, size_t n, ms timeout = 5s) {
  waitUntil([&] { return lines(path).size() >= n; }, timeout);
  return lines(path);
}

// The upstream: /reset resets, /garbage answers nonsense, /slow and /hang never answer,
// everything else 200 "ok:<target>".
HttpUpstream::Responder responder() {
  return [](const UpstreamRequest& r) {
    UpstreamAction a;
    if (r.target.rfind("/reset", 0) == 0) {
      a.reset = true;
    } else if (r.target.rfind("/garbage", 0) == 0) {
      a.raw = "HTTP/1.1 2OO nope\r\n\r\n";
      a.close_after = true;
    } else if (r.target.rfind("/slow", 0) == 0 || r.target.rfind("/hang", 0) == 0) {
      a.stall = true;
    } else {
      const std::string body = "ok:" + r.target;
      a.raw = "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(body.size()) + "\r\nx-up: yes\r\n\r\n" + body;
    }
    return a;
  };
}

std::string routeExtra(const std::string& name) { return "              name: " + name + "\n"; }

}  // namespace

TEST_CASE("json access log: one parsable line per exchange, with the flag of each failure", "[accesslog]") {
  HttpUpstream up(responder());
  RefusingPort refused;
  RefusingPort sick_port;
  FerryConfig c{
      .http_extra = "      request_headers_timeout: 400ms\n"
                    "      response_flags_header: true\n"
                    "      access_log:\n"
                    "        - {path: access.log, format: json}\n",
      .routes = {Route{.match = "{path: /ok}", .cluster = "up", .extra = routeExtra("ok")},
                 Route{.match = "{prefix: /refused}", .cluster = "refused"},
                 Route{.match = "{prefix: /sick}", .cluster = "sick"},
                 Route{.match = "{prefix: /reset}", .cluster = "up"},
                 Route{.match = "{prefix: /garbage}", .cluster = "up"},
                 Route{.match = "{prefix: /slow}", .cluster = "up", .action = "timeout: 300ms"},
                 Route{.match = "{prefix: /hang}", .cluster = "up"},
                 Route{.match = "{path: /direct}", .extra = "              direct_response: {status: 201, body: hi}\n"}},
      .clusters = {{"up", {up.port()}},
                   {"refused", {refused.port()}},
                   {"sick", {sick_port.port()},
                    "    health_check: {type: tcp, interval: 50ms, timeout: 200ms, unhealthy_threshold: 1}\n"}}};
  auto f = FerryProcess::start(c.yaml());
  const uint16_t port = f->port("web");
  const uint16_t admin = f->adminPort();
  REQUIRE(waitMetric(admin, "ferry_cluster_endpoints_healthy{cluster=\"sick\"}", 0));
  const std::string log = f->dir() + "/access.log";

  struct Want {
    std::string path;
    int status;
    std::string flag;  // "" = none
  };
  const std::vector<Want> wants = {
      {"/ok", 200, ""},           {"/direct", 201, ""},      {"/nothing", 404, "NR"},
      {"/refused", 503, "UF"},    {"/sick", 503, "UH"},      {"/reset", 502, "UC"},
      {"/garbage", 502, "UPE"},   {"/slow", 504, "UT"},
  };
  for (const auto& w : wants) {
    INFO(w.path);
    auto r = httpRequest(port, "GET", w.path, "", {"User-Agent: t/1", "X-Request-Id: id-" + w.path.substr(1)});
    CHECK(r.status == w.status);
    CHECK(r.header("x-ferry-flags") == w.flag);
  }
  // A malformed request (DPE), a client that never finishes its head (DRT), and one that goes
  // away while the upstream thinks (DC).
  {
    auto t = TcpClient::connect(port);
    REQUIRE(t);
    REQUIRE(t->sendAll("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"));
    auto r = readHttpResponse(*t);
    CHECK(r.status == 400);
    CHECK(r.header("x-ferry-flags") == "DPE");
  }
  {
    auto t = TcpClient::connect(port);
    REQUIRE(t);
    REQUIRE(t->sendAll("GET / HTTP/1.1\r\nHost: a\r\n"));
    auto r = readHttpResponse(*t);
    CHECK(r.status == 408);
  }
  {
    auto t = TcpClient::connect(port);
    REQUIRE(t);
    REQUIRE(t->sendAll("GET /hang HTTP/1.1\r\nHost: a\r\n\r\n"));
    REQUIRE(waitMetric(admin, "ferry_upstream_requests_active{cluster=\"up\"}", 1));
    t->resetClose();
  }

  auto got = waitLines(log, wants.size() + 3);
  INFO(readFile(log));
  REQUIRE(got.size() == wants.size() + 3);
  std::map<std::string, Json> by_path;  // request path -> its line
  std::vector<Json> no_path;
  for (const auto& l : got) {
    INFO(l);
    auto j = parseJson(l);
    REQUIRE(j.has_value());
    if ((*j)["path"].isString()) by_path[(*j)["path"].str()] = *j;
    else no_path.push_back(*j);
  }
  for (const auto& w : wants) {
    INFO(w.path);
    REQUIRE(by_path.count(w.path) == 1);
    const Json& j = by_path[w.path];
    CHECK(j["response_code"].num() == w.status);
    if (w.flag.empty()) CHECK(j["response_flags"].isNull());
    else CHECK(j["response_flags"].str() == w.flag);
    CHECK(j["method"].str() == "GET");
    CHECK(j["protocol"].str() == "HTTP/1.1");
    CHECK(j["user_agent"].str() == "t/1");
    CHECK(j["request_id"].str() == "id-" + w.path.substr(1));
    CHECK(j["listener"].str() == "web");
    CHECK(j["duration_ms"].isNumber());
    CHECK(j["downstream_remote_address"].str().rfind("127.0.0.1:", 0) == 0);
    CHECK(j["start_time"].str().size() == 24);
  }
  CHECK(by_path["/ok"]["upstream_host"].str() == "127.0.0.1:" + std::to_string(up.port()));
  CHECK(by_path["/ok"]["upstream_cluster"].str() == "up");
  CHECK(by_path["/ok"]["route_name"].str() == "ok");
  CHECK(by_path["/ok"]["bytes_sent"].num() == 6);
  CHECK(by_path["/ok"]["response_code_details"].str() == "via_upstream");
  CHECK(by_path["/ok"]["upstream_service_time_ms"].isNumber());
  CHECK(by_path["/direct"]["response_code_details"].str() == "direct_response");
  CHECK(by_path["/refused"]["response_code_details"].str() == "upstream_connect_failure");
  CHECK(by_path["/slow"]["duration_ms"].num() >= 300);
  REQUIRE(by_path.count("/hang") == 1);
  CHECK(by_path["/hang"]["response_flags"].str() == "DC");
  CHECK(by_path["/hang"]["response_code"].num() == 0);
  // The two errors before a request was read: no method, no path.
  std::map<std::string, int> codes;
  for (const auto& j : no_path) codes[j["response_flags"].str()] = static_cast<int>(j["response_code"].num());
  CHECK(codes == std::map<std::string, int>{{"DPE", 400}, {"DRT", 408}});
  // The flags are in the metrics too.
  CHECK(metricValue(admin, "ferry_downstream_response_flags_total{listener=\"web\",flag=\"DC\"}") == 1);
  CHECK(metricValue(admin, "ferry_downstream_response_flags_total{listener=\"web\",flag=\"UH\"}") == 1);
}

TEST_CASE("text access log: custom format, filter, SIGUSR1 reopen", "[accesslog]") {
  HttpUpstream up(responder());
  FerryConfig c{.workers = 2,
                .http_extra = "      access_log:\n"
                              "        - path: all.log\n"
                              "          text_format: \"%REQ(:method)% %REQ(:path)% %RESPONSE_CODE% "
                              "%RESPONSE_FLAGS% %RESP(x-up)% %REQ(x-missing?user-agent)% 100%%\"\n"
                              "        - path: errors.log\n"
                              "          filter: {min_status: 500}\n",
                .clusters = {{"up", {up.port()}}}};
  auto f = FerryProcess::start(c.yaml());
  const uint16_t port = f->port("web");
  const std::string all = f->dir() + "/all.log";
  const std::string errors = f->dir() + "/errors.log";
  CHECK(httpRequest(port, "GET", "/a", "", {"User-Agent: ua"}).status == 200);
  CHECK(httpRequest(port, "GET", "/reset", "", {"User-Agent: ua"}).status == 502);
  auto got = waitLines(all, 2);
  std::sort(got.begin(), got.end());  // two workers: each hands its own lines over
  CHECK(got == std::vector<std::string>{"GET /a 200 - yes ua 100%", "GET /reset 502 UC - ua 100%"});
  auto errs = waitLines(errors, 1);
  REQUIRE(errs.size() == 1);
  // The default text format, Envoy's order.
  CHECK(errs[0].find("] \"GET /reset HTTP/1.1\" 502 UC 0 ") != std::string::npos);
  // No x-ferry-flags by default.
  CHECK_FALSE(httpRequest(port, "GET", "/reset").hasHeader("x-ferry-flags"));
  waitLines(all, 3);

  // logrotate: the file is renamed, SIGUSR1, new lines go to a new file at the path.
  std::filesystem::rename(all, all + ".1");
  f->signal(SIGUSR1);
  REQUIRE(f->waitForLog("SIGUSR1: reopened"));
  CHECK(httpRequest(port, "GET", "/after", "", {"User-Agent: ua"}).status == 200);
  auto fresh = waitLines(all, 1);
  CHECK(fresh == std::vector<std::string>{"GET /after 200 - yes ua 100%"});
  CHECK(lines(all + ".1").size() == 3);

  // Sampling 0 logs nothing; a bad path fails the reload with the reason.
  f->writeConfig(FerryConfig{.workers = 2,
                             .http_extra = "      access_log:\n"
                                           "        - {path: /nonexistent-dir/x.log}\n",
                             .clusters = {{"up", {up.port()}}}}
                     .yaml());
  f->signal(SIGHUP);
  CHECK(f->waitForLog("access log /nonexistent-dir/x.log"));
}

TEST_CASE("access log over HTTP/2, and the observability histograms", "[accesslog][http2]") {
  HttpUpstream up(responder());
  FerryConfig c{.http_extra = "      max_request_headers_kb: 1\n"
                              "      access_log:\n"
                              "        - {path: h2.log, format: json, json_format: {p: \"%PROTOCOL%\", "
                              "code: \"%RESPONSE_CODE%\", route: \"%ROUTE_NAME%\", size: \"%BYTES_SENT%\"}}\n",
                .routes = {Route{.match = "{prefix: /named}", .cluster = "up", .extra = routeExtra("named")},
                           Route{.match = "{prefix: /}", .cluster = "up"}},
                .clusters = {{"up", {up.port()}}}};
  auto f = FerryProcess::start(c.yaml());
  const uint16_t port = f->port("web");
  const uint16_t admin = f->adminPort();
  TempDir dir;
  auto r = h2test::curl(dir, {"--http2-prior-knowledge", "http://127.0.0.1:" + std::to_string(port) + "/named/x"});
  CHECK(r.status == 200);
  CHECK(r.version == "2");
  for (int i = 0; i < 3; ++i) CHECK(httpRequest(port, "GET", "/other").status == 200);
  auto got = waitLines(f->dir() + "/h2.log", 4);
  REQUIRE(got.size() == 4);
  auto first = parseJson(got[0]);
  REQUIRE(first);
  CHECK((*first)["p"].str() == "HTTP/2");
  CHECK((*first)["code"].num() == 200);
  CHECK((*first)["route"].str() == "named");
  CHECK((*first)["size"].num() == std::string("ok:/named/x").size());
  CHECK((*parseJson(got[1]))["route"].isNull());

  auto text = httpRequest(admin, "GET", "/metrics").body;
  auto m = parsePrometheus(text);
  REQUIRE(m);
  auto& mm = *m;
  // Per named route, its own metric names; the unnamed route has none.
  CHECK(mm["ferry_route_requests_total{listener=\"web\",route=\"named\",code=\"2xx\"}"] == 1);
  CHECK(mm["ferry_route_request_duration_seconds_count{listener=\"web\",route=\"named\"}"] == 1);
  CHECK(text.find("route=\"\"") == std::string::npos);
  // The listener's series keep their labels.
  CHECK(mm["ferry_downstream_requests_total{listener=\"web\",code=\"2xx\"}"] == 4);
  // Histograms: cumulative buckets, +Inf = count, a sane sum.
  for (std::string h : {"ferry_downstream_request_duration_seconds{listener=\"web\"",
                        "ferry_upstream_request_duration_seconds{cluster=\"up\"",
                        "ferry_downstream_response_size_bytes{listener=\"web\""}) {
    INFO(h);
    const std::string name = h.substr(0, h.find('{'));
    const std::string labels = h.substr(h.find('{') + 1);
    double prev = 0;
    size_t buckets = 0;
    for (const auto& [k, v] : mm) {
      if (k.rfind(name + "_bucket{" + labels + ",le=", 0) != 0) continue;
      ++buckets;
      (void)prev;
    }
    CHECK(buckets > 5);
    const double count = mm[name + "_count{" + labels + "}"];
    CHECK(count == 4);
    CHECK(mm[name + "_bucket{" + labels + ",le=\"+Inf\"}"] == count);
    const double sum = mm[name + "_sum{" + labels + "}"];
    CHECK(sum > 0);
    if (name.find("size") != std::string::npos) {
      CHECK(sum == 11 + 3 * std::string("ok:/other").size());
      CHECK(mm[name + "_bucket{" + labels + ",le=\"100\"}"] == 4);
    } else {
      CHECK(sum < 4 * 5.0);  // seconds, not microseconds
    }
  }
  // Buckets in text order never decrease.
  double last = -1;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("ferry_downstream_request_duration_seconds_bucket{listener=\"web\"", 0) != 0) continue;
    double v = std::stod(line.substr(line.rfind(' ') + 1));
    CHECK(v >= last);
    last = v;
  }
  CHECK(last == 4);
  // A stream the HTTP/2 codec refuses itself (a header list over the limit) is logged too.
  Json big = h2test::runScript("header_list.py", port, {"--size", "4096"});
  CHECK(big["big"]["status"].num() == 431);
  auto after = waitLines(f->dir() + "/h2.log", 6);  // the 431, then the request after it
  REQUIRE(after.size() == 6);
  std::vector<double> codes;
  for (size_t i = 4; i < 6; ++i) codes.push_back((*parseJson(after[i]))["code"].num());
  std::sort(codes.begin(), codes.end());
  CHECK(codes == std::vector<double>{200, 431});
}
