// The admin dashboard (GET / on the admin address) in a real browser: Debian's
// chromium-headless-shell loads it from a Ferry with live traffic, runs its script for a few
// seconds of virtual time (its fetches to the admin API are real), and the DOM it dumps must
// show the live numbers; a screenshot is kept under the build directory for a person to look
// at. Also the plain-text index at /help.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <cstdlib>
#include <regex>
#include <string>
#include <thread>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_upstream.h"

using namespace ferry::testing;

namespace {

const char* kChromium = "chromium-headless-shell";

// The data-value of the element with that id ("" when absent or empty).
std::string dataValue(const std::string& dom, const std::string& id) {
  std::smatch m;
  if (!std::regex_search(dom, m, std::regex("id=\"" + id + "\"[^>]*data-value=\"([^\"]*)\""))) return "";
  return m[1];
}

// Keep-alive requests to `port` until `stop` (at most 60 s and 200000 requests).
void traffic(uint16_t port, const std::atomic<bool>& stop, std::atomic<int>& sent) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::unique_ptr<TcpClient> c;
  for (int i = 0; i < 200000 && !stop.load() && std::chrono::steady_clock::now() < deadline; ++i) {
    if (!c) c = TcpClient::connect(port);
    if (!c) continue;
    if (!c->sendAll("GET /" + std::string(i % 10 == 0 ? "missing" : "ok") + " HTTP/1.1\r\nHost: x\r\n\r\n", 2s) ||
        readHttpResponse(*c, false, 2s).status == 0) {
      c.reset();
      continue;
    }
    sent.fetch_add(1);
  }
}

std::string artifactDir() {
  const char* b = std::getenv("FERRY_BUILD_DIR");
  return b && *b ? std::string(b) : std::string();
}

}  // namespace

TEST_CASE("GET / is the HTML dashboard; GET /help keeps the plain-text index", "[admin][dashboard]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"api", {up.port()}}}}.yaml());
  const uint16_t admin = f->adminPort();
  HttpResponse r = httpRequest(admin, "GET", "/");
  REQUIRE(r.status == 200);
  CHECK(r.header("content-type") == "text/html; charset=utf-8");
  CHECK(r.body.rfind("<!doctype html>", 0) == 0);
  for (const char* id : {"id=\"rps\"", "id=\"error-rate\"", "id=\"p50\"", "id=\"p90\"", "id=\"p99\"", "id=\"clusters\"",
                         "id=\"reloads\"", "href=\"/help\""}) {
    INFO(id);
    CHECK(r.body.find(id) != std::string::npos);
  }
  // Self-contained: nothing is loaded from elsewhere.
  CHECK(r.body.find("http://") == std::string::npos);
  CHECK(r.body.find("https://") == std::string::npos);
  CHECK(r.body.find("src=") == std::string::npos);

  r = httpRequest(admin, "GET", "/help");
  REQUIRE(r.status == 200);
  CHECK(r.header("content-type").rfind("text/plain", 0) == 0);
  for (const char* line : {"GET /ready", "GET /metrics", "GET /stats", "GET /clusters", "GET /listeners",
                           "GET /reloads", "POST /logging", "POST /drain", "POST /reload", "PUT /config"}) {
    INFO(line);
    CHECK(r.body.find(line) != std::string::npos);
  }
  CHECK(httpRequest(admin, "POST", "/", "x").status == 405);
}

TEST_CASE("the dashboard in headless Chromium shows live rates, latency, endpoint health and reloads",
          "[admin][dashboard][browser]") {
  HttpUpstream up;
  RefusingPort down;
  auto f = FerryProcess::start(
      FerryConfig{.workers = 2,
                  .routes = {{.match = "{prefix: /ok}", .cluster = "api"}},
                  .clusters = {{"api",
                                {up.port(), down.port()},
                                "    health_check: {path: /healthz, interval: 100ms, timeout: 1s, healthy_threshold: 1,"
                                " unhealthy_threshold: 1}\n"}}}
          .yaml());
  const uint16_t web = f->port("web"), admin = f->adminPort();
  const std::string good = "127.0.0.1:" + std::to_string(up.port());
  const std::string bad = "127.0.0.1:" + std::to_string(down.port());
  // A reload before the page loads: the page must list it.
  REQUIRE(httpRequest(admin, "POST", "/reload").status == 200);
  // The refusing endpoint has failed its check (so the page must show it unhealthy).
  REQUIRE(waitUntil([&] { return httpRequest(admin, "GET", "/clusters").body.find("\"unhealthy\"") != std::string::npos; },
                    10s));

  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::thread t1([&] { traffic(web, stop, sent); });
  std::thread t2([&] { traffic(web, stop, sent); });
  struct Join {
    std::atomic<bool>& stop;
    std::thread &a, &b;
    ~Join() {
      stop = true;
      a.join();
      b.join();
    }
  } join{stop, t1, t2};
  REQUIRE(waitUntil([&] { return sent.load() >= 200; }, 10s));

  TempDir profile;
  const std::string url = "http://127.0.0.1:" + std::to_string(admin) + "/";
  // --virtual-time-budget: the page's timers run through 5 s of virtual time (5 updates);
  // virtual time waits while a fetch is under way, so each update reads the live process.
  const std::vector<std::string> common = {kChromium, "--headless", "--no-sandbox", "--disable-gpu",
                                           "--no-first-run", "--user-data-dir=" + profile.path() + "/profile",
                                           "--virtual-time-budget=5000", "--window-size=1280,900"};
  std::vector<std::string> argv = common;
  argv.push_back("--dump-dom");
  argv.push_back(url);
  RunResult r = runProcess(argv, 60s);
  INFO("chromium exit " << r.exit_code << "\nstderr:\n" << r.err.substr(0, 4000));
  REQUIRE(r.exit_code != 127);  // not installed: scripts/install-deps installs chromium-headless-shell
  REQUIRE_FALSE(r.timed_out);
  REQUIRE(r.exit_code == 0);
  const std::string& dom = r.out;
  INFO("DOM:\n" << dom.substr(dom.find("<main>") == std::string::npos ? 0 : dom.find("<main>"), 6000));

  // Updated from the JSON endpoints, more than once.
  std::smatch m;
  REQUIRE(std::regex_search(dom, m, std::regex("id=\"status\"[^>]*data-updates=\"([0-9]+)\"")));
  CHECK(std::stoi(m[1]) >= 3);
  // Live requests/s, and the 5xx share (the /missing requests are 404s, not 5xx).
  const std::string rps = dataValue(dom, "rps");
  REQUIRE_FALSE(rps.empty());
  CHECK(std::stod(rps) > 0);
  const std::string err = dataValue(dom, "error-rate");
  REQUIRE_FALSE(err.empty());
  CHECK(std::stod(err) >= 0);
  CHECK(std::stod(err) < 0.5);
  // Latency percentiles from the histogram: positive, ordered.
  const std::string p50 = dataValue(dom, "p50"), p90 = dataValue(dom, "p90"), p99 = dataValue(dom, "p99");
  REQUIRE_FALSE(p50.empty());
  REQUIRE_FALSE(p90.empty());
  REQUIRE_FALSE(p99.empty());
  CHECK(std::stod(p50) > 0);
  CHECK(std::stod(p50) <= std::stod(p90));
  CHECK(std::stod(p90) <= std::stod(p99));
  CHECK(std::stod(p99) < 60);
  // Endpoint health per cluster.
  CHECK(dom.find("<tr class=\"endpoint\" data-cluster=\"api\" data-endpoint=\"" + good + "\" data-health=\"healthy\"") !=
        std::string::npos);
  CHECK(dom.find("<tr class=\"endpoint\" data-cluster=\"api\" data-endpoint=\"" + bad + "\" data-health=\"unhealthy\"") !=
        std::string::npos);
  // The reload done before loading.
  CHECK(dom.find("<tr class=\"reload\" data-trigger=\"POST /reload\" data-result=\"success\" data-version=\"2\">") !=
        std::string::npos);
  // The listener, with its requests.
  CHECK(dom.find("<tr class=\"listener\" data-listener=\"web\" data-kind=\"http\">") != std::string::npos);

  // A screenshot for a person to look at: build/dashboard.png (or the temp dir).
  const std::string dir = artifactDir().empty() ? profile.path() : artifactDir();
  const std::string png = dir + "/dashboard.png";
  ::unlink(png.c_str());
  argv = common;
  argv.push_back("--screenshot=" + png);
  argv.push_back(url);
  RunResult s = runProcess(argv, 60s);
  INFO("screenshot: exit " << s.exit_code << "\n" << s.err.substr(0, 4000));
  CHECK(s.exit_code == 0);
  const std::string bytes = readFile(png);
  CHECK(bytes.size() > 1000);
  CHECK(bytes.rfind("\x89PNG", 0) == 0);
}
