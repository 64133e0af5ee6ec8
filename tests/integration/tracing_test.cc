// Tracing on HTTP listeners (docs/observability.md, "Tracing") over real loopback sockets: W3C
// traceparent continued or started, tracestate, x-request-id from the trace id, and the OTLP
// spans a fake collector (an HTTP upstream recording POST bodies) receives, over HTTP/1 and
// HTTP/2 downstreams; export failures and the bounded queue; config errors.
#include <signal.h>

#include <catch2/catch.hpp>
#include <regex>
#include <set>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http2_support.h"
#include "tests/integration/http_upstream.h"
#include "tests/integration/json.h"

using namespace ferry::testing;

namespace {

const std::string kTrace = "0af7651916cd43dd8448eb211c80319c";
const std::string kParent = "b7ad6b7169203331";

struct Tp {
  std::string trace, parent, flags;
};

// A traceparent Ferry sent: version 00, lower-case hex, ids not zero.
std::optional<Tp> parseTp(const std::string& v) {
  static const std::regex re("00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})");
  std::smatch m;
  if (!std::regex_match(v, m, re)) return std::nullopt;
  if (m[1] == std::string(32, '0') || m[2] == std::string(16, '0')) return std::nullopt;
  return Tp{m[1], m[2], m[3]};
}

// The trace id in UUID layout (what Ferry makes x-request-id from).
std::string uuidOf(const std::string& t) {
  return t.substr(0, 8) + "-" + t.substr(8, 4) + "-" + t.substr(12, 4) + "-" + t.substr(16, 4) + "-" + t.substr(20);
}

// A listener with `tracing_yaml` (indented 6) routing to "up"; cluster "otel" is `collector`.
std::string config(uint16_t up, uint16_t collector, const std::string& tracing_yaml) {
  return FerryConfig{.http_extra = tracing_yaml, .clusters = {{"up", {up}}, {"otel", {collector}}}}.yaml();
}

std::string otlp(const std::string& extra = "") {
  return "      tracing:\n"
         "        service_name: edge\n"
         "        otlp: {cluster: otel, flush_interval: 100ms" + extra + "}\n";
}

// Every span the collector received, and checks on each POST.
struct Collected {
  std::vector<Json> spans;
  std::vector<Json> bodies;
};
Collected spansOf(const HttpUpstream& collector) {
  Collected c;
  for (const auto& r : collector.requests()) {
    auto j = parseJson(r.body);
    if (!j) continue;
    for (const auto& rs : (*j)["resourceSpans"].arr())
      for (const auto& ss : rs["scopeSpans"].arr())
        for (const auto& s : ss["spans"].arr()) c.spans.push_back(s);
    c.bodies.push_back(*j);
  }
  return c;
}

// Waits until the collector has a span of trace `trace`; returns it (null Json if none).
Json waitSpan(const HttpUpstream& collector, const std::string& trace, ms timeout = 10s) {
  Json found;
  waitUntil(
      [&] {
        for (const auto& s : spansOf(collector).spans)
          if (s["traceId"].str() == trace) {
            found = s;
            return true;
          }
        return false;
      },
      timeout, 20ms);
  return found;
}

// The span attribute `key`: its stringValue, or intValue, or the first string of an array.
std::string attr(const Json& span, const std::string& key) {
  for (const auto& a : span["attributes"].arr()) {
    if (a["key"].str() != key) continue;
    const Json& v = a["value"];
    if (v.has("stringValue")) return v["stringValue"].str();
    if (v.has("intValue")) return v["intValue"].isString() ? v["intValue"].str() : std::to_string(int(v["intValue"].num()));
    if (v.has("arrayValue")) return v["arrayValue"]["values"].arr().at(0)["stringValue"].str();
  }
  return "<absent>";
}

}  // namespace

TEST_CASE("tracing: a valid traceparent is continued, tracestate passed, and the span exported", "[tracing]") {
  HttpUpstream up;
  HttpUpstream collector;
  auto f = FerryProcess::start(config(up.port(), collector.port(), otlp()));
  const uint16_t port = f->port("web");
  auto r = httpRequest(port, "GET", "/a/b?q=1", "",
                       {"Host: example.com:8080", "traceparent: 00-" + kTrace + "-" + kParent + "-01",
                        "tracestate: vendor=opaque,other=x", "user-agent: tester/1"});
  REQUIRE(r.status == 200);
  REQUIRE(up.waitRequests(1));
  const UpstreamRequest req = up.requests()[0];
  auto tp = parseTp(req.header("traceparent"));
  REQUIRE(tp);
  CHECK(tp->trace == kTrace);
  CHECK(tp->parent != kParent);  // Ferry's own span
  CHECK(tp->flags == "01");
  CHECK(req.header("tracestate") == "vendor=opaque,other=x");
  // No x-request-id came in: it is the trace id in UUID layout.
  CHECK(req.header("x-request-id") == uuidOf(kTrace));

  Json span = waitSpan(collector, kTrace);
  REQUIRE(span.isObject());
  CHECK(span["spanId"].str() == tp->parent);
  CHECK(span["parentSpanId"].str() == kParent);
  CHECK(span["name"].str() == "GET");
  CHECK(span["kind"].num() == 2);
  const std::string start = span["startTimeUnixNano"].str(), end = span["endTimeUnixNano"].str();
  REQUIRE(start.size() == 19);  // nanoseconds since 1970: 19 digits until 2286
  REQUIRE(end.size() == 19);
  CHECK(start <= end);
  const double now_s = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  CHECK(std::abs(std::stod(start) / 1e9 - now_s) < 60);
  CHECK(attr(span, "http.request.method") == "GET");
  CHECK(attr(span, "url.path") == "/a/b");
  CHECK(attr(span, "url.scheme") == "http");
  CHECK(attr(span, "server.address") == "example.com");
  CHECK(attr(span, "http.response.status_code") == "200");
  CHECK(attr(span, "user_agent.original") == "tester/1");
  CHECK(attr(span, "client.address") == "127.0.0.1");
  CHECK(attr(span, "ferry.response_flags") == "-");
  CHECK(attr(span, "ferry.upstream_cluster") == "up");
  CHECK(attr(span, "http.request.header.x-request-id") == uuidOf(kTrace));
  CHECK_FALSE(span.has("status"));

  // The POST itself: the OTLP/HTTP JSON request, with the resource and scope.
  auto posts = collector.requests();
  REQUIRE(!posts.empty());
  CHECK(posts[0].method == "POST");
  CHECK(posts[0].target == "/v1/traces");
  CHECK(posts[0].header("content-type") == "application/json");
  Json body = spansOf(collector).bodies.at(0);
  const Json& rs = body["resourceSpans"].arr().at(0);
  CHECK(rs["resource"]["attributes"].arr().at(0)["key"].str() == "service.name");
  CHECK(rs["resource"]["attributes"].arr().at(0)["value"]["stringValue"].str() == "edge");
  CHECK(rs["scopeSpans"].arr().at(0)["scope"]["name"].str() == "ferry");
  CHECK(waitMetric(f->adminPort(), "ferry_tracing_spans_exported_total{listener=\"web\"}", 1));
}

TEST_CASE("tracing: an incoming unsampled traceparent stays unsampled and is not exported", "[tracing]") {
  HttpUpstream up;
  HttpUpstream collector;
  auto f = FerryProcess::start(config(up.port(), collector.port(), otlp()));
  const uint16_t port = f->port("web");
  const std::string other = "1af7651916cd43dd8448eb211c80319c";
  REQUIRE(httpRequest(port, "GET", "/x", "", {"traceparent: 00-" + kTrace + "-" + kParent + "-00"}).status == 200);
  // Then a sampled one: once its span is in, the unsampled one would have been as well.
  REQUIRE(httpRequest(port, "GET", "/y", "", {"traceparent: 00-" + other + "-" + kParent + "-01"}).status == 200);
  REQUIRE(up.waitRequests(2));
  auto tp = parseTp(up.requests()[0].header("traceparent"));
  REQUIRE(tp);
  CHECK(tp->trace == kTrace);
  CHECK(tp->flags == "00");
  REQUIRE(waitSpan(collector, other).isObject());
  auto c = spansOf(collector);
  CHECK(c.spans.size() == 1);
}

TEST_CASE("tracing: without a traceparent a trace starts, sampled by sample_rate", "[tracing]") {
  HttpUpstream up;
  HttpUpstream collector;
  SECTION("sample_rate 1.0 (the default): sampled and exported") {
    auto f = FerryProcess::start(config(up.port(), collector.port(), otlp()));
    REQUIRE(httpRequest(f->port("web"), "GET", "/new", "", {"tracestate: orphan=1"}).status == 200);
    REQUIRE(up.waitRequests(1));
    const UpstreamRequest req = up.requests()[0];
    auto tp = parseTp(req.header("traceparent"));
    REQUIRE(tp);
    CHECK(tp->flags == "01");
    CHECK_FALSE(req.hasHeader("tracestate"));  // no traceparent: it meant nothing
    CHECK(req.header("x-request-id") == uuidOf(tp->trace));
    CHECK(req.header("x-request-id")[14] == '4');  // a UUID v4 too
    Json span = waitSpan(collector, tp->trace);
    REQUIRE(span.isObject());
    CHECK(span["spanId"].str() == tp->parent);
    CHECK_FALSE(span.has("parentSpanId"));
  }
  SECTION("sample_rate 0.0: propagated unsampled, not exported") {
    auto f = FerryProcess::start(config(up.port(), collector.port(),
                                        "      tracing:\n        sample_rate: 0.0\n"
                                        "        otlp: {cluster: otel, flush_interval: 100ms}\n"));
    const uint16_t port = f->port("web");
    for (int i = 0; i < 5; ++i) REQUIRE(httpRequest(port, "GET", "/n", "", {}).status == 200);
    REQUIRE(httpRequest(port, "GET", "/s", "", {"traceparent: 00-" + kTrace + "-" + kParent + "-01"}).status == 200);
    REQUIRE(up.waitRequests(6));
    std::set<std::string> traces;
    for (int i = 0; i < 5; ++i) {
      auto tp = parseTp(up.requests()[i].header("traceparent"));
      REQUIRE(tp);
      CHECK(tp->flags == "00");
      traces.insert(tp->trace);
    }
    CHECK(traces.size() == 5);
    REQUIRE(waitSpan(collector, kTrace).isObject());  // parent-based: the caller's choice wins
    CHECK(spansOf(collector).spans.size() == 1);
  }
}

TEST_CASE("tracing: an invalid traceparent is replaced and its tracestate dropped", "[tracing]") {
  HttpUpstream up;
  auto f = FerryProcess::start(config(up.port(), up.port(), "      tracing:\n"));
  const uint16_t port = f->port("web");
  const std::vector<std::string> bad = {
      "00-" + std::string(32, '0') + "-" + kParent + "-01",     // zero trace id
      "00-" + kTrace + "-" + std::string(16, '0') + "-01",      // zero parent id
      "00-0AF7651916CD43DD8448EB211C80319C-" + kParent + "-01",  // upper case
      "ff-" + kTrace + "-" + kParent + "-01",                   // version ff
      "00-" + kTrace + "-" + kParent + "-01-extra",             // version 00 with more
      "garbage",
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    INFO(bad[i]);
    REQUIRE(httpRequest(port, "GET", "/i", "", {"traceparent: " + bad[i], "tracestate: a=b", "x-request-id: mine"}).status == 200);
    REQUIRE(up.waitRequests(i + 1));
    const UpstreamRequest req = up.requests()[i];
    auto tp = parseTp(req.header("traceparent"));
    REQUIRE(tp);
    CHECK(tp->trace != kTrace);
    CHECK(tp->flags == "01");
    CHECK_FALSE(req.hasHeader("tracestate"));
    CHECK(req.header("x-request-id") == "mine");  // kept
  }
  // Two traceparent headers are invalid too.
  REQUIRE(httpRequest(port, "GET", "/two", "",
                      {"traceparent: 00-" + kTrace + "-" + kParent + "-01", "traceparent: 00-" + kTrace + "-" + kParent + "-01"})
              .status == 200);
  REQUIRE(up.waitRequests(bad.size() + 1));
  auto tp = parseTp(up.requests().back().header("traceparent"));
  REQUIRE(tp);
  CHECK(tp->trace != kTrace);
}

TEST_CASE("tracing: without a tracing block traceparent passes through untouched", "[tracing]") {
  HttpUpstream up;
  auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t port = f->port("web");
  const std::string bad = "00-" + std::string(32, '0') + "-" + kParent + "-01";
  REQUIRE(httpRequest(port, "GET", "/p", "", {"traceparent: " + bad, "tracestate: a=b"}).status == 200);
  REQUIRE(httpRequest(port, "GET", "/q", "", {}).status == 200);
  REQUIRE(up.waitRequests(2));
  CHECK(up.requests()[0].header("traceparent") == bad);
  CHECK(up.requests()[0].header("tracestate") == "a=b");
  CHECK_FALSE(up.requests()[1].hasHeader("traceparent"));
  // Today's x-request-id: a random UUID v4, not tied to any trace.
  CHECK(std::regex_match(up.requests()[1].header("x-request-id"),
                         std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
}

TEST_CASE("tracing: HTTP/2 downstream requests are traced the same way", "[tracing][http2]") {
  HttpUpstream up;
  HttpUpstream collector;
  auto f = FerryProcess::start(config(up.port(), collector.port(), otlp()));
  const std::string p = std::to_string(f->port("web"));
  TempDir dir;
  auto c = h2test::curl(dir, {"--http2-prior-knowledge", "-H", "traceparent: 00-" + kTrace + "-" + kParent + "-01",
                              "-H", "tracestate: k=v", "-H", "x-request-id: rid-1", "http://127.0.0.1:" + p + "/h2?x"});
  INFO(c.err);
  REQUIRE(c.exit_code == 0);
  CHECK(c.version == "2");
  REQUIRE(c.status == 200);
  REQUIRE(up.waitRequests(1));
  const UpstreamRequest req = up.requests()[0];
  auto tp = parseTp(req.header("traceparent"));
  REQUIRE(tp);
  CHECK(tp->trace == kTrace);
  CHECK(tp->flags == "01");
  CHECK(req.header("tracestate") == "k=v");
  CHECK(req.header("x-request-id") == "rid-1");
  Json span = waitSpan(collector, kTrace);
  REQUIRE(span.isObject());
  CHECK(span["spanId"].str() == tp->parent);
  CHECK(span["parentSpanId"].str() == kParent);
  CHECK(attr(span, "network.protocol.version") == "2");
  CHECK(attr(span, "url.path") == "/h2");
  CHECK(attr(span, "http.request.header.x-request-id") == "rid-1");
}

TEST_CASE("tracing: a 5xx span has status ERROR and the response flag", "[tracing]") {
  HttpUpstream collector;
  RefusingPort dead;
  auto f = FerryProcess::start(config(dead.port(), collector.port(), otlp()));
  auto r = httpRequest(f->port("web"), "GET", "/down", "", {"traceparent: 00-" + kTrace + "-" + kParent + "-01"});
  REQUIRE(r.status == 503);
  Json span = waitSpan(collector, kTrace);
  REQUIRE(span.isObject());
  CHECK(attr(span, "http.response.status_code") == "503");
  CHECK(attr(span, "ferry.response_flags") == "UF");
  CHECK(span["status"]["code"].num() == 2);
}

TEST_CASE("tracing: export failures and a full queue are counted, requests unaffected", "[tracing]") {
  HttpUpstream up;
  SECTION("collector refuses connections") {
    RefusingPort dead;
    auto f = FerryProcess::start(config(up.port(), dead.port(), otlp()));
    REQUIRE(httpRequest(f->port("web"), "GET", "/a", "", {}).status == 200);
    CHECK(waitMetric(f->adminPort(), "ferry_tracing_export_failures_total{listener=\"web\",reason=\"connect\"}", 1));
    CHECK(waitMetric(f->adminPort(), "ferry_tracing_spans_dropped_total{listener=\"web\",reason=\"export_failed\"}", 1));
  }
  SECTION("collector answers 500") {
    HttpUpstream collector([](const UpstreamRequest&) { return UpstreamAction{HttpUpstream::response(500, "no")}; });
    auto f = FerryProcess::start(config(up.port(), collector.port(), otlp()));
    REQUIRE(httpRequest(f->port("web"), "GET", "/a", "", {}).status == 200);
    CHECK(waitMetric(f->adminPort(), "ferry_tracing_export_failures_total{listener=\"web\",reason=\"status\"}", 1));
    CHECK(metricValue(*f, "ferry_tracing_spans_exported_total{listener=\"web\"}") == 0);
  }
  SECTION("collector never answers: the POST times out") {
    HttpUpstream collector([](const UpstreamRequest&) { return UpstreamAction{.stall = true}; });
    auto f = FerryProcess::start(config(up.port(), collector.port(), otlp(", timeout: 200ms")));
    REQUIRE(httpRequest(f->port("web"), "GET", "/a", "", {}).status == 200);
    CHECK(waitMetric(f->adminPort(), "ferry_tracing_export_failures_total{listener=\"web\",reason=\"timeout\"}", 1));
  }
  SECTION("collector stalls: at most 4 POSTs in flight, then max_queue spans wait, the rest is dropped") {
    HttpUpstream collector([](const UpstreamRequest&) { return UpstreamAction{.stall = true}; });
    auto f = FerryProcess::start(config(up.port(), collector.port(), otlp(", timeout: 60s, max_batch: 1, max_queue: 2")));
    const uint16_t port = f->port("web");
    for (int i = 0; i < 10; ++i) REQUIRE(httpRequest(port, "GET", "/q", "", {}).status == 200);
    // 4 batches of one span in flight, 2 spans queued, 4 dropped.
    CHECK(waitMetric(f->adminPort(), "ferry_tracing_spans_dropped_total{listener=\"web\",reason=\"queue_full\"}", 4));
    CHECK(collector.waitRequests(4));
    CHECK(collector.requestCount() == 4);
  }
}

TEST_CASE("tracing: config errors are reported at FILE:LINE:COL", "[tracing][cli]") {
  TempDir dir;
  auto validate = [&](const std::string& tracing) {
    const std::string path = dir.write("t.yaml", config(1000, 1001, tracing));
    RunResult r = runFerry({"-c", path, "--validate"});
    INFO(r.err);
    CHECK(r.exit_code == 1);
    return r.err;
  };
  std::string err = validate("      tracing: {otlp: {cluster: nope}}\n");
  INFO(err);
  CHECK(err.find("t.yaml:9:33: unknown cluster 'nope'") != std::string::npos);
  err = validate("      tracing: {sample_rate: 2}\n");
  CHECK(err.find("t.yaml:9:30: 'sample_rate' must be between 0 and 1, got 2") != std::string::npos);
}

TEST_CASE("tracing: a reload changes the service name; queued spans keep their batch's settings", "[tracing][reload]") {
  HttpUpstream up;
  HttpUpstream collector;
  auto f = FerryProcess::start(config(up.port(), collector.port(), otlp()));
  const uint16_t port = f->port("web");
  const std::string t1 = "1af7651916cd43dd8448eb211c80319c", t2 = "2af7651916cd43dd8448eb211c80319c";
  REQUIRE(httpRequest(port, "GET", "/1", "", {"traceparent: 00-" + t1 + "-" + kParent + "-01"}).status == 200);
  REQUIRE(waitSpan(collector, t1).isObject());
  f->writeConfig(config(up.port(), collector.port(),
                        "      tracing:\n        service_name: renamed\n"
                        "        otlp: {cluster: otel, flush_interval: 100ms, path: /otlp}\n"));
  f->signal(SIGHUP);
  REQUIRE(f->waitForLog("config reloaded (SIGHUP): version 2", 10s));
  REQUIRE(httpRequest(port, "GET", "/2", "", {"traceparent: 00-" + t2 + "-" + kParent + "-01"}).status == 200);
  REQUIRE(waitSpan(collector, t2).isObject());
  auto posts = collector.requests();
  REQUIRE(posts.size() == 2);
  CHECK(posts[0].target == "/v1/traces");
  CHECK(posts[1].target == "/otlp");
  auto service = [](const UpstreamRequest& r) {
    auto j = parseJson(r.body);
    return j ? (*j)["resourceSpans"].arr().at(0)["resource"]["attributes"].arr().at(0)["value"]["stringValue"].str() : "";
  };
  CHECK(service(posts[0]) == "edge");
  CHECK(service(posts[1]) == "renamed");
}
