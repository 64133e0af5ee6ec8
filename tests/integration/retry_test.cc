// Route retries and cluster circuit breakers over real loopback sockets against fake upstreams:
// which failures a retry_on list covers (connect failures, resets, status codes, per-try
// timeouts), idempotency, request bodies sent again, attempts, max_retries and the retry
// budget, and the max_requests / max_connections / max_pending_requests breakers (503 UO).
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <vector>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_upstream.h"

using namespace ferry::testing;

namespace {

using Clock = std::chrono::steady_clock;

// A route's retry policy (for Route::action) with the given keys; small backoffs keep the tests
// fast.
std::string retry(const std::string& keys) {
  return "retry: {backoff: {base: 1ms, max: 2ms}, " + keys + "}";
}

std::string apiMetric(const std::string& name) { return name + "{cluster=\"api\"}"; }
std::string overflowMetric(const std::string& breaker) {
  return "ferry_upstream_circuit_breaker_overflow_total{cluster=\"api\",breaker=\"" + breaker + "\"}";
}

// A number member of cluster api's object in GET /clusters (-1 if absent). The admin answers
// one cluster here, so the first match is api's (cluster members come before the endpoints').
double clustersNumber(uint16_t admin, const std::string& member) {
  HttpResponse r = httpRequest(admin, "GET", "/clusters");
  if (r.status != 200) return -2;
  std::smatch m;
  std::regex re("\"" + member + "\":([0-9]+)");
  if (!std::regex_search(r.body, m, re)) return -1;
  return std::stod(m[1].str());
}

// A responder answering `first` to the first request it sees and `then` to the others.
HttpUpstream::Responder firstThen(std::shared_ptr<std::atomic<int>> n, UpstreamAction first, UpstreamAction then) {
  return [n, first, then](const UpstreamRequest&) { return n->fetch_add(1) == 0 ? first : then; };
}

UpstreamAction status(int code, const std::string& body = "") {
  return UpstreamAction{HttpUpstream::response(code, body.empty() ? std::to_string(code) + "\n" : body)};
}

// Holds requests in the upstream until the test opens it (bounded: 10 s at most, so a failed
// test cannot hang the upstream's threads).
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int arrived = 0;
  void pass() {
    std::unique_lock<std::mutex> lk(mu);
    ++arrived;
    cv.notify_all();
    cv.wait_for(lk, 10s, [&] { return open; });
  }
  void release() {
    std::lock_guard<std::mutex> lk(mu);
    open = true;
    cv.notify_all();
  }
  bool waitArrived(int n, ms timeout = 5s) {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, timeout, [&] { return arrived >= n; });
  }
};

// Opens the gate when the test ends (declared after the HttpUpstream: runs before its
// destructor joins the handler threads).
struct OpenOnExit {
  std::shared_ptr<Gate> g;
  ~OpenOnExit() { g->release(); }
};

const std::string kSlowGet = "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

// One GET against a fresh ferry + upstream whose first answer is `first_status`, then 200:
// either the client gets the 200 of a second try, or the first answer and no retry.
struct StatusCase {
  int first_status;
  std::string retry_keys;  // "" = no retry block
  bool retried;
};

void checkStatusCase(const StatusCase& c) {
  INFO("first status " << c.first_status << ", retry: " << c.retry_keys);
  auto n = std::make_shared<std::atomic<int>>(0);
  HttpUpstream up(firstThen(n, status(c.first_status), HttpUpstream::ok("second")));
  std::string extra = c.retry_keys.empty() ? "" : retry(c.retry_keys);
  auto f = FerryProcess::start(
      FerryConfig{.routes = {{"{prefix: /}", "api", extra}}, .clusters = {{"api", {up.port()}}}}.yaml());
  auto r = httpRequest(f->port("web"), "GET", "/x");
  if (c.retried) {
    CHECK(r.status == 200);
    CHECK(r.body == "second");
    CHECK(up.waitRequests(2, 2s));
    CHECK(up.requestCount() == 2);
    CHECK(metricValue(*f, apiMetric("ferry_upstream_retries_total")) == 1);
  } else {
    CHECK(r.status == c.first_status);
    CHECK(r.body == std::to_string(c.first_status) + "\n");
    CHECK(up.requestCount() == 1);
    CHECK(metricValue(*f, apiMetric("ferry_upstream_retries_total")) == 0);
  }
}

}  // namespace

TEST_CASE("retry: connect failures are retried on the other endpoint", "[retry]") {
  HttpUpstream live;
  const RefusingPort refusing;  // the first endpoint: refuses connections until the test ends
  const uint16_t dead = refusing.port();
  auto f = FerryProcess::start(
      FerryConfig{.routes = {{"{prefix: /plain}", "api"},
                             {"{prefix: /}", "api", retry("attempts: 1, retry_on: [connect-failure]")}},
                  .clusters = {{"api", {dead, live.port()}}}}
          .yaml());
  const uint16_t web = f->port("web");

  // Round robin alternates between the refusing endpoint and the live one: every request that
  // lands on the refusing one is retried, on the live one.
  for (int i = 0; i < 20; ++i) {
    INFO("request " << i);
    auto r = httpRequest(web, "GET", "/r/" + std::to_string(i));
    REQUIRE(r.status == 200);
    REQUIRE(r.body == "ok:/r/" + std::to_string(i));
  }
  CHECK(live.requestCount() == 20);
  const double retries = metricValue(*f, apiMetric("ferry_upstream_retries_total"));
  CHECK(retries >= 9);
  CHECK(retries <= 20);
  CHECK(metricValue(*f, apiMetric("ferry_upstream_retry_overflow_total")) == 0);

  // A connect failure never reached the application: a POST is retried too.
  for (int i = 0; i < 4; ++i) {
    auto r = httpRequest(web, "POST", "/post", "body-" + std::to_string(i));
    REQUIRE(r.status == 200);
  }
  auto reqs = live.requests();
  REQUIRE(reqs.size() == 24);
  for (int i = 0; i < 4; ++i) CHECK(reqs[20 + i].body == "body-" + std::to_string(i));

  // Without a retry policy about half of them fail.
  int failed = 0;
  for (int i = 0; i < 20; ++i) {
    auto r = httpRequest(web, "GET", "/plain");
    if (r.status == 503) {
      CHECK(r.body == "upstream connect error\n");
      ++failed;
    } else {
      CHECK(r.status == 200);
    }
  }
  CHECK(failed >= 5);
  CHECK(failed <= 15);

  // /clusters reports the retries (the /plain requests added none).
  const double all = metricValue(*f, apiMetric("ferry_upstream_retries_total"));
  CHECK(all > retries);  // the POSTs' retries
  CHECK(clustersNumber(f->adminPort(), "retries") == all);
  CHECK(clustersNumber(f->adminPort(), "retries_active") == 0);
}

TEST_CASE("retry: 5xx responses are retried as retry_on says", "[retry]") {
  for (const StatusCase& c : {
           StatusCase{503, "retry_on: [503]", true},
           StatusCase{503, "retry_on: [5xx]", true},
           StatusCase{500, "retry_on: [5xx]", true},
           StatusCase{503, "retry_on: [gateway-error]", true},
           StatusCase{502, "retry_on: [gateway-error]", true},
           StatusCase{504, "retry_on: [gateway-error]", true},
           StatusCase{500, "retry_on: [gateway-error]", false},
           StatusCase{500, "retry_on: [503]", false},
           StatusCase{503, "retry_on: [502, 504]", false},
           StatusCase{503, "retry_on: [connect-failure]", false},
           StatusCase{503, "retry_on: [connect-failure, reset]", false},
           StatusCase{503, "attempts: 0, retry_on: [503]", false},
           StatusCase{503, "", false},
       }) {
    checkStatusCase(c);
  }
}

TEST_CASE("retry: retriable-4xx retries a 409 only", "[retry]") {
  for (const StatusCase& c : {
           StatusCase{409, "retry_on: [retriable-4xx]", true},
           StatusCase{409, "retry_on: [409]", true},
           StatusCase{409, "retry_on: [5xx, gateway-error]", false},
           StatusCase{404, "retry_on: [retriable-4xx]", false},
           StatusCase{429, "retry_on: [retriable-4xx]", false},
       }) {
    checkStatusCase(c);
  }
}

TEST_CASE("retry: an upstream reset before the response is retried with retry_on reset", "[retry]") {
  struct Case {
    std::string keys;
    bool retried;
  };
  for (const Case& c : {Case{"retry_on: [reset]", true}, Case{"retry_on: [gateway-error]", true},
                        Case{"retry_on: [5xx]", true}, Case{"retry_on: [503]", false},
                        Case{"retry_on: [connect-failure]", false}}) {
    INFO("retry: " << c.keys);
    auto n = std::make_shared<std::atomic<int>>(0);
    UpstreamAction reset;
    reset.reset = true;
    HttpUpstream up(firstThen(n, reset, HttpUpstream::ok("second")));
    auto f = FerryProcess::start(
        FerryConfig{.routes = {{"{prefix: /}", "api", retry(c.keys)}}, .clusters = {{"api", {up.port()}}}}.yaml());
    auto r = httpRequest(f->port("web"), "GET", "/x");
    if (c.retried) {
      CHECK(r.status == 200);
      CHECK(r.body == "second");
      CHECK(up.requestCount() == 2);
      CHECK(metricValue(*f, apiMetric("ferry_upstream_retries_total")) == 1);
    } else {
      CHECK(r.status == 502);
      CHECK(r.body == "upstream connection closed\n");
      CHECK(up.requestCount() == 1);
      CHECK(metricValue(*f, apiMetric("ferry_upstream_retries_total")) == 0);
    }
  }
}

TEST_CASE("retry: requests that are not idempotent are retried only with retry_non_idempotent", "[retry]") {
  struct Case {
    std::string method;
    std::string keys;
    bool retried;
  };
  const std::string body = "payload-0123456789";
  for (const Case& c : {Case{"POST", "retry_on: [503]", false},
                        Case{"PATCH", "retry_on: [503]", false},
                        Case{"POST", "retry_on: [503], retry_non_idempotent: true", true},
                        Case{"PATCH", "retry_on: [5xx], retry_non_idempotent: true", true},
                        Case{"DELETE", "retry_on: [503]", true},
                        Case{"PUT", "retry_on: [503]", true}}) {
    INFO(c.method << " with retry: " << c.keys);
    auto n = std::make_shared<std::atomic<int>>(0);
    HttpUpstream up(firstThen(n, status(503), HttpUpstream::ok("second")));
    auto f = FerryProcess::start(
        FerryConfig{.routes = {{"{prefix: /}", "api", retry(c.keys)}}, .clusters = {{"api", {up.port()}}}}.yaml());
    auto r = httpRequest(f->port("web"), c.method, "/x", body);
    auto reqs = up.requests();
    REQUIRE(!reqs.empty());
    CHECK(reqs[0].method == c.method);
    CHECK(reqs[0].body == body);
    if (c.retried) {
      CHECK(r.status == 200);
      REQUIRE(reqs.size() == 2);
      CHECK(reqs[1].method == c.method);
      CHECK(reqs[1].body == body);
      CHECK(reqs[1].header("content-length") == std::to_string(body.size()));
    } else {
      CHECK(r.status == 503);
      CHECK(reqs.size() == 1);
      CHECK(metricValue(*f, apiMetric("ferry_upstream_retries_total")) == 0);
    }
  }

  SECTION("a reset POST is not retried either") {
    auto n = std::make_shared<std::atomic<int>>(0);
    UpstreamAction reset;
    reset.reset = true;
    HttpUpstream up(firstThen(n, reset, HttpUpstream::ok("second")));
    auto f = FerryProcess::start(FerryConfig{.routes = {{"{prefix: /}", "api", retry("retry_on: [reset]")}},
                                             .clusters = {{"api", {up.port()}}}}
                                     .yaml());
    auto r = httpRequest(f->port("web"), "POST", "/x", body);
    CHECK(r.status == 502);
    CHECK(up.requestCount() == 1);
  }
}

TEST_CASE("retry: a request body is sent again, up to buffer_limit_kb", "[retry]") {
  const std::string body = randomBytes(10 * 1024, 42);

  SECTION("a 10 KB PUT is retried with the same body") {
    auto n = std::make_shared<std::atomic<int>>(0);
    HttpUpstream up(firstThen(n, status(503), HttpUpstream::ok("second")));
    auto f = FerryProcess::start(FerryConfig{.routes = {{"{prefix: /}", "api", retry("retry_on: [503]")}},
                                             .clusters = {{"api", {up.port()}}}}
                                     .yaml());
    auto r = httpRequest(f->port("web"), "PUT", "/x", body);
    CHECK(r.status == 200);
    auto reqs = up.requests();
    REQUIRE(reqs.size() == 2);
    CHECK(reqs[0].body.size() == body.size());
    CHECK(reqs[0].body == body);
    CHECK(reqs[1].body.size() == body.size());
    CHECK(reqs[1].body == body);
  }

  SECTION("over buffer_limit_kb it is not retried") {
    auto n = std::make_shared<std::atomic<int>>(0);
    HttpUpstream up(firstThen(n, status(503), HttpUpstream::ok("second")));
    auto f = FerryProcess::start(
        FerryConfig{.routes = {{"{prefix: /}", "api", retry("retry_on: [503], buffer_limit_kb: 1")}},
                    .clusters = {{"api", {up.port()}}}}
            .yaml());
    auto r = httpRequest(f->port("web"), "PUT", "/x", body);
    CHECK(r.status == 503);
    REQUIRE(up.requestCount() == 1);
    CHECK(up.requests()[0].body == body);
    CHECK(metricValue(*f, apiMetric("ferry_upstream_retries_total")) == 0);
    // A body within the limit still is.
    auto small = httpRequest(f->port("web"), "PUT", "/y", "small");
    CHECK(small.status == 200);  // the upstream answers 200 from now on: not a retry
  }

  SECTION("a chunked body streamed in parts is sent whole again") {
    auto n = std::make_shared<std::atomic<int>>(0);
    HttpUpstream up(firstThen(n, status(503), HttpUpstream::ok("second")));
    auto f = FerryProcess::start(FerryConfig{.routes = {{"{prefix: /}", "api", retry("retry_on: [503]")}},
                                             .clusters = {{"api", {up.port()}}}}
                                     .yaml());
    auto c = TcpClient::connect(f->port("web"));
    REQUIRE(c);
    REQUIRE(c->sendAll("PUT /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n"));
    // The first try is under way (its connection accepted) before the rest of the body comes,
    // so the retry has to send what the first try streamed plus what came later.
    REQUIRE(up.server().waitAccepted(1, 5s));
    REQUIRE(c->sendAll("6\r\n world\r\n0\r\n\r\n"));
    auto r = readHttpResponse(*c);
    CHECK(r.status == 200);
    CHECK(r.body == "second");
    auto reqs = up.requests();
    REQUIRE(reqs.size() == 2);
    CHECK(reqs[0].body == "hello world");
    CHECK(reqs[1].body == "hello world");
  }
}

TEST_CASE("retry: per_try_timeout ends a stalled try", "[retry]") {
  UpstreamAction stall;
  stall.stall = true;

  SECTION("retried when retry_on covers it") {
    for (std::string on : {"[reset]", "[5xx]", "[gateway-error]"}) {
      INFO("retry_on: " << on);
      auto n = std::make_shared<std::atomic<int>>(0);
      HttpUpstream up(firstThen(n, stall, HttpUpstream::ok("second")));
      auto f = FerryProcess::start(
          FerryConfig{.routes = {{"{prefix: /}", "api",
                                  "timeout: 5s, " + retry("retry_on: " + on + ", per_try_timeout: 200ms")}},
                      .clusters = {{"api", {up.port()}}}}
              .yaml());
      const uint16_t web = f->port("web");
      auto t0 = Clock::now();
      auto r = httpRequest(web, "GET", "/x");
      auto took = Clock::now() - t0;
      CHECK(r.status == 200);
      CHECK(r.body == "second");
      CHECK(took >= 150ms);
      CHECK(took < 2s);
      CHECK(up.requestCount() == 2);
      CHECK(metricValue(*f, apiMetric("ferry_upstream_per_try_timeouts_total")) == 1);
      CHECK(metricValue(*f, apiMetric("ferry_upstream_retries_total")) == 1);
    }
  }

  SECTION("504 at once when it does not") {
    auto n = std::make_shared<std::atomic<int>>(0);
    HttpUpstream up(firstThen(n, stall, HttpUpstream::ok("second")));
    auto f = FerryProcess::start(
        FerryConfig{.routes = {{"{prefix: /}", "api",
                                "timeout: 5s, " + retry("retry_on: [connect-failure], per_try_timeout: 200ms")}},
                    .clusters = {{"api", {up.port()}}}}
            .yaml());
    auto t0 = Clock::now();
    auto r = httpRequest(f->port("web"), "GET", "/x");
    auto took = Clock::now() - t0;
    CHECK(r.status == 504);
    CHECK(r.body == "upstream request timeout\n");
    CHECK(took >= 150ms);
    CHECK(took < 2s);  // the per-try timeout, not the route's 5 s
    CHECK(up.requestCount() == 1);
    CHECK(metricValue(*f, apiMetric("ferry_upstream_per_try_timeouts_total")) == 1);
    CHECK(metricValue(*f, apiMetric("ferry_upstream_retries_total")) == 0);
  }
}

TEST_CASE("retry: attempts bounds the tries", "[retry]") {
  for (int attempts : {0, 1, 2, 3}) {
    INFO("attempts: " << attempts);
    HttpUpstream up([](const UpstreamRequest&) { return status(503); });
    auto f = FerryProcess::start(
        FerryConfig{.routes = {{"{prefix: /}", "api",
                                retry("attempts: " + std::to_string(attempts) + ", retry_on: [503]")}},
                    .clusters = {{"api", {up.port()}}}}
            .yaml());
    auto r = httpRequest(f->port("web"), "GET", "/x");
    CHECK(r.status == 503);
    CHECK(r.body == "503\n");  // the upstream's last answer
    CHECK(up.requestCount() == static_cast<size_t>(attempts + 1));
    CHECK(metricValue(*f, apiMetric("ferry_upstream_retries_total")) == attempts);
    CHECK(metricValue(*f, "ferry_upstream_requests_total{cluster=\"api\",code=\"5xx\"}") == attempts + 1);
    const uint16_t admin = f->adminPort();
    CHECK(clustersNumber(admin, "retries") == attempts);
    CHECK(clustersNumber(admin, "retries_active") == 0);
    // No upstream request past the last try.
    CHECK_FALSE(up.waitRequests(attempts + 2, 100ms));
  }
}

TEST_CASE("retry: max_retries and the retry budget refuse retries", "[retry][circuit_breaker]") {
  struct Case {
    std::string breakers;
    bool retried;
  };
  for (const Case& c : {Case{"{max_retries: 0}", false},
                        Case{"{max_retries: 1}", true},
                        Case{"{retry_budget: {percent: 0, min_retry_concurrency: 0}}", false},
                        Case{"{max_retries: 5, retry_budget: {percent: 0, min_retry_concurrency: 0}}", false},
                        Case{"{max_retries: 0, retry_budget: {percent: 0, min_retry_concurrency: 1}}", true},
                        Case{"{retry_budget: {percent: 100, min_retry_concurrency: 0}}", true}}) {
    INFO("circuit_breakers: " << c.breakers);
    auto n = std::make_shared<std::atomic<int>>(0);
    HttpUpstream up(firstThen(n, status(503), HttpUpstream::ok("second")));
    auto f = FerryProcess::start(
        FerryConfig{.routes = {{"{prefix: /}", "api", retry("attempts: 3, retry_on: [503]")}},
                    .clusters = {{"api", {up.port()}, "    circuit_breakers: " + c.breakers + "\n"}}}
            .yaml());
    auto r = httpRequest(f->port("web"), "GET", "/x");
    if (c.retried) {
      CHECK(r.status == 200);
      CHECK(up.requestCount() == 2);
      CHECK(metricValue(*f, apiMetric("ferry_upstream_retries_total")) == 1);
      CHECK(metricValue(*f, apiMetric("ferry_upstream_retry_overflow_total")) == 0);
    } else {
      CHECK(r.status == 503);
      CHECK(up.requestCount() == 1);
      CHECK(metricValue(*f, apiMetric("ferry_upstream_retries_total")) == 0);
      CHECK(metricValue(*f, apiMetric("ferry_upstream_retry_overflow_total")) == 1);
      CHECK(clustersNumber(f->adminPort(), "retry_overflow") == 1);
    }
  }
}

// Regression: a request that ends while its retry waits out the backoff (route timeout, or the
// client goes away) must give its max_retries slot back. Router::maybeRetry holds the slot
// (retry_slot_) from the backoff on; the router first released it only in endAttempt() after
// its `if (!attempt_active_) return;`, and no try is active during the backoff, so every such
// request leaked one slot of the cluster's retries_ count until the cluster never retried again.
TEST_CASE("retry: a request ended during the backoff gives its retry slot back", "[retry][circuit_breaker]") {
  auto fast = std::make_shared<std::atomic<int>>(0);
  HttpUpstream up([fast](const UpstreamRequest& r) {
    if (r.target != "/fast") return status(503);
    return fast->fetch_add(1) == 0 ? status(503) : HttpUpstream::ok("second");
  });
  // The backoff (up to an hour, full jitter: under 100 ms once in 36000) outlasts the
  // request.
  auto f = FerryProcess::start(
      FerryConfig{.routes = {{"{prefix: /slow}", "api",
                              "timeout: 100ms, retry: {retry_on: [503], backoff: {base: 1h, max: 1h}}"},
                             {"{prefix: /gone}", "api",
                              "timeout: 10s, retry: {retry_on: [503], backoff: {base: 1h, max: 1h}}"},
                             {"{prefix: /}", "api", retry("retry_on: [503]")}},
                  .clusters = {{"api", {up.port()}, "    circuit_breakers: {max_retries: 1}\n"}}}
          .yaml());
  const uint16_t web = f->port("web");
  const uint16_t admin = f->adminPort();

  SECTION("the route timeout fires during the backoff") {
    auto r = httpRequest(web, "GET", "/slow");
    CHECK(r.status == 504);
    CHECK(up.requestCount() == 1);
  }
  SECTION("the client goes away during the backoff") {
    auto c = TcpClient::connect(web);
    REQUIRE(c);
    REQUIRE(c->sendAll("GET /gone HTTP/1.1\r\nHost: x\r\n\r\n"));
    REQUIRE(waitMetric(admin, apiMetric("ferry_upstream_retries_total"), 1));  // in its backoff
    c->resetClose();  // a FIN alone is a half-close: ferry would still answer
  }
  CHECK(metricValue(admin, apiMetric("ferry_upstream_retries_total")) == 1);
  REQUIRE(waitMetric(admin, apiMetric("ferry_upstream_requests_active"), 0));
  CHECK(clustersNumber(admin, "requests_active") == 0);
  CHECK(clustersNumber(admin, "retries_active") == 0);  // 1 when the slot leaks
  // The one retry max_retries allows is free again.
  auto r2 = httpRequest(web, "GET", "/fast");
  CHECK(r2.status == 200);  // 503 when the slot leaks: the retry is refused
  CHECK(metricValue(admin, apiMetric("ferry_upstream_retry_overflow_total")) == 0);
}

TEST_CASE("circuit breaker: max_requests refuses requests past the limit with 503 UO", "[retry][circuit_breaker]") {
  auto gate = std::make_shared<Gate>();
  HttpUpstream up([gate](const UpstreamRequest& r) {
    if (r.target == "/slow") gate->pass();
    return HttpUpstream::ok("ok:" + r.target);
  });
  OpenOnExit open{gate};
  auto f = FerryProcess::start(
      FerryConfig{.routes = {{"{prefix: /}", "api"}},
                  .clusters = {{"api", {up.port()}, "    circuit_breakers: {max_requests: 2}\n"}}}
          .yaml());
  const uint16_t web = f->port("web");
  const uint16_t admin = f->adminPort();

  auto c1 = TcpClient::connect(web);
  auto c2 = TcpClient::connect(web);
  REQUIRE(c1);
  REQUIRE(c2);
  REQUIRE(c1->sendAll(kSlowGet));
  REQUIRE(c2->sendAll(kSlowGet));
  REQUIRE(gate->waitArrived(2));
  CHECK(clustersNumber(admin, "requests_active") == 2);

  auto t0 = Clock::now();
  auto r3 = httpRequest(web, "GET", "/fast");
  CHECK(Clock::now() - t0 < 1s);
  CHECK(r3.status == 503);
  CHECK(r3.body == "upstream overflow\n");
  CHECK(up.connections() == 2);  // the third never reached the upstream
  CHECK(metricValue(admin, overflowMetric("max_requests")) == 1);
  CHECK(metricValue(admin, overflowMetric("max_connections")) == 0);
  CHECK(metricValue(admin, overflowMetric("max_pending_requests")) == 0);

  gate->release();
  auto r1 = readHttpResponse(*c1);
  auto r2 = readHttpResponse(*c2);
  CHECK(r1.status == 200);
  CHECK(r1.body == "ok:/slow");
  CHECK(r2.status == 200);
  CHECK(r2.body == "ok:/slow");

  REQUIRE(waitMetric(admin, apiMetric("ferry_upstream_requests_active"), 0));
  for (int i = 0; i < 3; ++i) {
    auto r = httpRequest(web, "GET", "/fast");
    CHECK(r.status == 200);
    CHECK(r.body == "ok:/fast");
  }
  CHECK(metricValue(admin, overflowMetric("max_requests")) == 1);
  CHECK(clustersNumber(admin, "max_requests") == 1);
}

TEST_CASE("circuit breaker: max_connections refuses a request that needs another connection", "[retry][circuit_breaker]") {
  auto gate = std::make_shared<Gate>();
  HttpUpstream up([gate](const UpstreamRequest& r) {
    if (r.target == "/slow") gate->pass();
    return HttpUpstream::ok("ok:" + r.target);
  });
  OpenOnExit open{gate};
  // Retries on: a breaker's overflow is not retried.
  auto f = FerryProcess::start(
      FerryConfig{.routes = {{"{prefix: /}", "api", retry("attempts: 3, retry_on: [5xx, reset]")}},
                  .clusters = {{"api", {up.port()}, "    circuit_breakers: {max_connections: 1}\n"}}}
          .yaml());
  const uint16_t web = f->port("web");
  const uint16_t admin = f->adminPort();

  auto c1 = TcpClient::connect(web);
  REQUIRE(c1);
  REQUIRE(c1->sendAll(kSlowGet));
  REQUIRE(gate->waitArrived(1));

  auto t0 = Clock::now();
  auto r2 = httpRequest(web, "GET", "/fast");
  CHECK(Clock::now() - t0 < 1s);
  CHECK(r2.status == 503);
  CHECK(r2.body == "upstream overflow\n");
  CHECK(up.connections() == 1);
  CHECK(metricValue(admin, overflowMetric("max_connections")) == 1);
  CHECK(metricValue(admin, overflowMetric("max_requests")) == 0);
  CHECK(metricValue(admin, apiMetric("ferry_upstream_retries_total")) == 0);

  gate->release();
  auto r1 = readHttpResponse(*c1);
  CHECK(r1.status == 200);
  CHECK(r1.body == "ok:/slow");

  // The one connection, idle again, serves the next requests.
  REQUIRE(waitMetric(admin, apiMetric("ferry_upstream_requests_active"), 0));
  for (int i = 0; i < 3; ++i) {
    auto r = httpRequest(web, "GET", "/fast");
    CHECK(r.status == 200);
    CHECK(r.body == "ok:/fast");
  }
  CHECK(up.connections() == 1);
  CHECK(metricValue(admin, overflowMetric("max_connections")) == 1);
}

TEST_CASE("circuit breaker: max_pending_requests 0 refuses every new connection", "[retry][circuit_breaker]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.routes = {{"{prefix: /}", "api", retry("attempts: 3, retry_on: [connect-failure, 5xx]")}},
                  .clusters = {{"api", {up.port()}, "    circuit_breakers: {max_pending_requests: 0}\n"}}}
          .yaml());
  const uint16_t web = f->port("web");
  for (int i = 0; i < 3; ++i) {
    auto r = httpRequest(web, "GET", "/x");
    CHECK(r.status == 503);
    CHECK(r.body == "upstream overflow\n");
  }
  CHECK(up.connections() == 0);
  CHECK(metricValue(*f, overflowMetric("max_pending_requests")) == 3);
  CHECK(metricValue(*f, overflowMetric("max_connections")) == 0);
  CHECK(metricValue(*f, apiMetric("ferry_upstream_retries_total")) == 0);
  CHECK(clustersNumber(f->adminPort(), "max_pending_requests") == 3);
}
