// W3C traceparent parsing and formatting, the request id made from a trace id, the id
// generator, and the OTLP JSON of one span.
#include <catch2/catch.hpp>
#include <cstring>
#include <set>
#include <string>

#include "core/tracing/exporter.h"
#include "core/tracing/trace_context.h"

using namespace ferry::core::tracing;

namespace {

std::string hex(const uint8_t* p, size_t n) {
  std::string s(2 * n, '?');
  toHex(p, n, s.data());
  return s;
}

const std::string kValid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

}  // namespace

TEST_CASE("traceparent: a valid version 00 header is parsed", "[tracing]") {
  Traceparent t;
  REQUIRE(parseTraceparent(kValid, &t));
  CHECK(t.version == 0);
  CHECK(hex(t.trace_id, 16) == "0af7651916cd43dd8448eb211c80319c");
  CHECK(hex(t.parent_id, 8) == "b7ad6b7169203331");
  CHECK(t.flags == 1);
  REQUIRE(parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", &t));
  CHECK(t.flags == 0);
  REQUIRE(parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-ff", &t));
  CHECK(t.flags == 0xff);
}

TEST_CASE("traceparent: invalid headers are refused", "[tracing]") {
  Traceparent t;
  for (std::string bad : {
           std::string(""),
           std::string("00"),
           kValid.substr(0, 54),                                      // short
           kValid + "-",                                              // version 00 with more
           kValid + "x",                                              //
           std::string("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"),  // upper case
           std::string("00-00000000000000000000000000000000-b7ad6b7169203331-01"),  // zero trace id
           std::string("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"),  // zero parent id
           std::string("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),  // version ff
           std::string("0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),  // not hex
           std::string("00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),  // separators
           std::string("00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01"),
           std::string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331_01"),
           std::string("00-0af7651916cd43dd8448eb211c8031-9c-b7ad6b7169203331-01"),
           std::string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g"),
           std::string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1"),
           std::string(" 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
           std::string("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x"),  // future version: '-' must follow
       }) {
    INFO(bad);
    CHECK_FALSE(parseTraceparent(bad, &t));
  }
}

TEST_CASE("traceparent: a later version is read as version 00, with anything after a dash ignored", "[tracing]") {
  Traceparent t;
  REQUIRE(parseTraceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", &t));
  CHECK(t.version == 1);
  REQUIRE(parseTraceparent("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-holds", &t));
  CHECK(t.version == 0xcc);
  CHECK(hex(t.trace_id, 16) == "0af7651916cd43dd8448eb211c80319c");
  CHECK(t.flags == 1);
}

TEST_CASE("traceparent: format round-trips; request id is the trace id in UUID layout", "[tracing]") {
  Traceparent t;
  REQUIRE(parseTraceparent(kValid, &t));
  char out[kTraceparentSize];
  formatTraceparent(t.trace_id, t.parent_id, t.flags, out);
  CHECK(std::string(out, sizeof out) == kValid);
  formatTraceparent(t.trace_id, t.parent_id, 0, out);
  CHECK(std::string(out, sizeof out) == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");
  char id[36];
  formatRequestId(t.trace_id, id);
  CHECK(std::string(id, sizeof id) == "0af76519-16cd-43dd-8448-eb211c80319c");

  TraceContext c;
  CHECK(c.traceIdHex().empty());
  std::memcpy(c.trace_id, t.trace_id, 16);
  std::memcpy(c.span_id, t.parent_id, 8);
  c.active = true;
  CHECK(c.traceIdHex() == "0af7651916cd43dd8448eb211c80319c");
  CHECK(c.spanIdHex() == "b7ad6b7169203331");
  CHECK(c.parentIdHex().empty());
}

TEST_CASE("id generator: trace ids are UUID v4 shaped, valid and distinct", "[tracing]") {
  auto& g = IdGenerator::local();
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    uint8_t trace[16], span[8];
    g.traceId(trace);
    g.spanId(span);
    char tp[kTraceparentSize];
    formatTraceparent(trace, span, 1, tp);
    Traceparent back;
    REQUIRE(parseTraceparent(std::string_view(tp, sizeof tp), &back));
    char id[36];
    formatRequestId(trace, id);
    CHECK(id[14] == '4');                                      // version 4
    CHECK(std::string("89ab").find(id[19]) != std::string::npos);  // variant 10
    seen.insert(hex(trace, 16));
    seen.insert(hex(span, 8));
  }
  CHECK(seen.size() == 4000);
}

TEST_CASE("clock: monotonic times convert to Unix time near the wall clock", "[tracing]") {
  const int64_t now = unixNsFromMonotonic(monotonicNs());
  const int64_t wall = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  CHECK(std::llabs(now - wall) < 1000000000LL);
}

TEST_CASE("OTLP JSON: one span with its attributes, escaped", "[tracing]") {
  TraceContext t;
  Traceparent in;
  REQUIRE(parseTraceparent(kValid, &in));
  std::memcpy(t.trace_id, in.trace_id, 16);
  std::memcpy(t.parent_id, in.parent_id, 8);
  for (int i = 0; i < 8; ++i) t.span_id[i] = static_cast<uint8_t>(0xA0 + i);
  t.active = t.has_parent = true;
  t.flags = 1;
  SpanRecord s;
  s.trace = &t;
  s.start_unix_ns = 1700000000123456789;
  s.end_unix_ns = 1700000000223456789;
  s.method = "GET";
  s.path = "/a\"b";
  s.scheme = "http";
  s.server_address = "example.com";
  s.protocol_version = "1.1";
  s.status = 503;
  s.user_agent = "ua\x01\xe9";
  s.client_address = "127.0.0.1";
  s.request_id = "rid";
  s.response_flags = "UF";
  s.upstream_cluster = "up";
  std::string out;
  appendSpanJson(out, s);
  CHECK(out ==
        "{\"traceId\":\"0af7651916cd43dd8448eb211c80319c\",\"spanId\":\"a0a1a2a3a4a5a6a7\","
        "\"parentSpanId\":\"b7ad6b7169203331\",\"name\":\"GET\",\"kind\":2,"
        "\"startTimeUnixNano\":\"1700000000123456789\",\"endTimeUnixNano\":\"1700000000223456789\","
        "\"attributes\":["
        "{\"key\":\"http.request.method\",\"value\":{\"stringValue\":\"GET\"}},"
        "{\"key\":\"url.path\",\"value\":{\"stringValue\":\"/a\\\"b\"}},"
        "{\"key\":\"url.scheme\",\"value\":{\"stringValue\":\"http\"}},"
        "{\"key\":\"server.address\",\"value\":{\"stringValue\":\"example.com\"}},"
        "{\"key\":\"network.protocol.version\",\"value\":{\"stringValue\":\"1.1\"}},"
        "{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"503\"}},"
        "{\"key\":\"user_agent.original\",\"value\":{\"stringValue\":\"ua\\u0001\\u00e9\"}},"
        "{\"key\":\"client.address\",\"value\":{\"stringValue\":\"127.0.0.1\"}},"
        "{\"key\":\"http.request.header.x-request-id\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"rid\"}]}}},"
        "{\"key\":\"ferry.response_flags\",\"value\":{\"stringValue\":\"UF\"}},"
        "{\"key\":\"ferry.upstream_cluster\",\"value\":{\"stringValue\":\"up\"}}],"
        "\"status\":{\"code\":2}}");

  // 2xx: no status; no parent: no parentSpanId; empty values are left out.
  t.has_parent = false;
  s.status = 200;
  s.user_agent = "";
  out.clear();
  appendSpanJson(out, s);
  CHECK(out.find("parentSpanId") == std::string::npos);
  CHECK(out.find("\"status\"") == std::string::npos);
  CHECK(out.find("user_agent") == std::string::npos);

  ExportConfig c;
  c.setServiceName("svc\"1");
  CHECK(c.body_prefix ==
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":"
        "\"svc\\\"1\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"ferry\"},\"spans\":[");
}
