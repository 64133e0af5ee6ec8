// Downstream HTTP/2 against the real ferry binary: h2c by prior knowledge (curl, h2load, nghttp)
// next to HTTP/1.1 on the same port, h2 by ALPN over TLS, trailers both ways, the flood
// defences (rapid reset, CONTINUATION, header lists and trailers over the limits, control
// frames, empty frames) each with its counter, backpressure both ways (a client that stops
// reading a 50 MB response, an upstream that stops reading a 50 MB upload), the two-step GOAWAY
// drain, the idle timeout of connections without streams and SETTINGS_MAX_CONCURRENT_STREAMS.
//
// Raw HTTP/2 clients are the python scripts in tests/integration/h2/ (hyperframe + hpack from
// python3-h2, run with /usr/bin/python3: the python3 on PATH may not see Debian's packages).
// Each prints one "RESULT <json>" line; long-running ones (drain, backpressure, upload, the
// control-frame flood) run as a child whose log the test watches, and wait for SIGUSR1 where
// the test has to act in between.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <regex>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_upstream.h"
#include "tests/integration/json.h"
#include "tests/integration/test_certs.h"
#include "tests/integration/tls_test_support.h"

using namespace ferry::testing;

namespace {

const std::string kPython = "/usr/bin/python3";

std::string script(const std::string& name) { return srcDir() + "/tests/integration/h2/" + name; }

// The JSON of the last "RESULT " line of a script's output.
std::optional<Json> resultOf(const std::string& out) {
  const size_t p = out.rfind("RESULT ");
  if (p == std::string::npos) return std::nullopt;
  size_t e = out.find('\n', p);
  return parseJson(out.substr(p + 7, e == std::string::npos ? std::string::npos : e - p - 7));
}

// Runs tests/integration/h2/<name> --port <port> <args...> to completion; its RESULT.
Json runScript(const std::string& name, uint16_t port, const std::vector<std::string>& args = {}, ms timeout = 20s) {
  std::vector<std::string> argv{kPython, script(name), "--port", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = runProcess(argv, timeout);
  INFO(name << " exit " << r.exit_code << "\nstdout:\n" << r.out << "\nstderr:\n" << r.err);
  REQUIRE(!r.timed_out);
  REQUIRE(r.exit_code == 0);
  auto j = resultOf(r.out);
  REQUIRE(j.has_value());
  return *j;
}

// A script left running (its output is the child's log).
std::unique_ptr<FerryProcess> startScript(const std::string& name, uint16_t port, const std::vector<std::string>& args = {}) {
  std::vector<std::string> argv{kPython, script(name), "--port", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  return FerryProcess::startCommand(argv);
}

std::string violationKey(const std::string& kind, const std::string& listener = "web") {
  return "ferry_http2_violations_total{listener=\"" + listener + "\",kind=\"" + kind + "\"}";
}

bool truthy(const Json& j) { return std::holds_alternative<bool>(j.v) && std::get<bool>(j.v); }

double metric(FerryProcess& f, const std::string& key) { return metricValue(f, key); }

// Waits until the counter is above `than`; its last value.
double waitAbove(FerryProcess& f, const std::string& key, double than, ms timeout = 5s) {
  double v = kMetricAbsent;
  waitUntil([&] { return (v = metric(f, key)) > than; }, timeout, 20ms);
  return v;
}

// The list of [last_stream_id, error_code] pairs a script reports.
std::vector<std::pair<double, double>> goaways(const Json& j) {
  std::vector<std::pair<double, double>> out;
  for (const auto& g : j["goaways"].arr()) out.emplace_back(g.arr().at(0).num(), g.arr().at(1).num());
  return out;
}

constexpr double kEnhanceYourCalm = 11;
constexpr double kRefusedStream = 7;

// Ferry still runs and serves an h2c request on a new connection.
void stillServes(FerryProcess& f, uint16_t port) {
  REQUIRE(f.running());
  Json g = runScript("get.py", port, {"--path", "/still-there"});
  CHECK(g["status"].num() == 200);
  CHECK(g["body"].str() == "ok:/still-there");
}

// SIGTERM: ferry exits 0 (under the sanitizers, also without a leak or error report at exit).
void exitsCleanly(FerryProcess& f) {
  f.signal(SIGTERM);
  auto code = f.waitExit(20s);
  const std::string log = f.log();
  INFO("ferry's log, the end:\n" << log.substr(log.size() > 6000 ? log.size() - 6000 : 0));
  REQUIRE(code.has_value());
  CHECK(*code == 0);
}

// The flood checks: ferry counted the violation, ended the connection with GOAWAY
// ENHANCE_YOUR_CALM and still serves.
void floodHandled(FerryProcess& f, uint16_t port, const Json& j, const std::string& kind, double before) {
  INFO("kind " << kind);
  CHECK(truthy(j["closed"]));
  CHECK(waitAbove(f, violationKey(kind), before) > before);
  auto g = goaways(j);
  REQUIRE(!g.empty());
  CHECK(g.back().second == kEnhanceYourCalm);
  stillServes(f, port);
}

std::string h2cConfig(uint16_t upstream, const std::string& http_extra = "", const std::string& runtime_extra = "") {
  return FerryConfig{.runtime_extra = runtime_extra, .http_extra = http_extra, .clusters = {{"up", {upstream}}}}.yaml();
}

// curl against ferry: "<http_version> <status>" (curl's -w) and the body.
struct CurlResult {
  int exit_code = -1;
  std::string version;
  int status = 0;
  std::string body;
  std::string err;
};
CurlResult curl(const TempDir& dir, std::vector<std::string> args) {
  const std::string body_file = dir.path() + "/curl-body";
  std::vector<std::string> argv{"curl", "-sS", "-o", body_file, "-w", "%{http_version} %{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = runProcess(argv, 10s);
  CurlResult c;
  c.exit_code = r.exit_code;
  c.err = r.err;
  const size_t sp = r.out.find(' ');
  if (sp != std::string::npos) {
    c.version = r.out.substr(0, sp);
    c.status = std::atoi(r.out.c_str() + sp + 1);
  }
  c.body = readFile(body_file);
  return c;
}

}  // namespace

// ---- 1-4: clients

TEST_CASE("http2: h2c by prior knowledge (curl GET and a 300 kB POST) and HTTP/1.1 on the same port", "[http2]") {
  const std::string big = randomBytes(300 * 1024, 11);
  HttpUpstream up([&](const UpstreamRequest& r) {
    if (r.method == "POST")
      return HttpUpstream::ok("len:" + std::to_string(r.body.size()) + (r.body == big ? ":same" : ":different"));
    return HttpUpstream::ok("ok:" + r.target);
  });
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const uint16_t port = f->port("web");
  const std::string p = std::to_string(port);
  TempDir dir;
  const std::string resolve = "h2.test:" + p + ":127.0.0.1";

  CurlResult g = curl(dir, {"--http2-prior-knowledge", "--resolve", resolve, "-H", "x-test: from-h2c",
                            "http://h2.test:" + p + "/hello?q=1"});
  INFO(g.err);
  REQUIRE(g.exit_code == 0);
  CHECK(g.version == "2");
  CHECK(g.status == 200);
  CHECK(g.body == "ok:/hello?q=1");
  REQUIRE(up.waitRequests(1));
  UpstreamRequest r0 = up.requests()[0];
  CHECK(r0.method == "GET");
  CHECK(r0.version == "HTTP/1.1");
  CHECK(r0.header("host") == "h2.test:" + p);  // :authority
  CHECK(r0.header("x-test") == "from-h2c");
  CHECK(r0.header("x-forwarded-proto") == "http");

  const std::string body_file = dir.write("upload", big);
  CurlResult post = curl(dir, {"--http2-prior-knowledge", "--resolve", resolve, "--data-binary", "@" + body_file,
                               "-H", "content-type: application/octet-stream", "http://h2.test:" + p + "/upload"});
  INFO(post.err);
  REQUIRE(post.exit_code == 0);
  CHECK(post.version == "2");
  CHECK(post.status == 200);
  CHECK(post.body == "len:" + std::to_string(big.size()) + ":same");
  REQUIRE(up.waitRequests(2));
  CHECK(up.requests()[1].header("content-type") == "application/octet-stream");

  // HTTP/1.1 on the same port, same route.
  HttpResponse h1 = httpRequest(port, "GET", "/hello", "", {"Host: h2.test"});
  INFO(h1.error);
  CHECK(h1.status == 200);
  CHECK(h1.body == "ok:/hello");
  CurlResult c1 = curl(dir, {"--http1.1", "http://127.0.0.1:" + p + "/h1"});
  CHECK(c1.version == "1.1");
  CHECK(c1.body == "ok:/h1");

  CHECK(waitMetric(f->adminPort(), "ferry_http2_connections_total{listener=\"web\"}", 2));
  exitsCleanly(*f);
}

TEST_CASE("http2: h2 over TLS by ALPN (curl --http2)", "[http2]") {
  tls_test::Pki pki;
  tls_test::Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(tls_test::httpsConfig(up.port(), tls_test::tlsBlock({a.files})));
  const std::string p = std::to_string(f->port("web"));
  TempDir dir;
  const std::vector<std::string> common{"--cacert", pki.ca_file, "--resolve", "a.test:" + p + ":127.0.0.1"};

  std::vector<std::string> args = common;
  args.insert(args.end(), {"--http2", "https://a.test:" + p + "/over-tls"});
  CurlResult c = curl(dir, args);
  INFO(c.err);
  REQUIRE(c.exit_code == 0);
  CHECK(c.version == "2");
  CHECK(c.status == 200);
  CHECK(c.body == "ok:/over-tls");
  REQUIRE(up.waitRequests(1));
  CHECK(up.requests()[0].header("host") == "a.test:" + p);
  CHECK(up.requests()[0].header("x-forwarded-proto") == "https");

  // A client that offers only http/1.1 still gets HTTP/1.1.
  args = common;
  args.insert(args.end(), {"--http1.1", "https://a.test:" + p + "/h1"});
  CurlResult c1 = curl(dir, args);
  CHECK(c1.version == "1.1");
  CHECK(c1.body == "ok:/h1");
  CHECK(waitMetric(f->adminPort(), "ferry_http2_connections_total{listener=\"web\"}", 1));
  exitsCleanly(*f);
}

TEST_CASE("http2: http2.enabled false: TLS listeners offer only http/1.1, plaintext ones take no preface", "[http2]") {
  tls_test::Pki pki;
  tls_test::Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  const std::string off = "      http2:\n        enabled: false\n";
  auto tls = FerryProcess::start(
      FerryConfig{.listener_extra = tls_test::tlsBlock({a.files}), .http_extra = off, .clusters = {{"up", {up.port()}}}}
          .yaml());
  auto plain = FerryProcess::start(h2cConfig(up.port(), off));
  const std::string tp = std::to_string(tls->port("web"));
  const std::string pp = std::to_string(plain->port("web"));
  TempDir dir;

  CurlResult c = curl(dir, {"--http2", "--cacert", pki.ca_file, "--resolve", "a.test:" + tp + ":127.0.0.1",
                            "https://a.test:" + tp + "/tls-h1"});
  INFO(c.err);
  CHECK(c.exit_code == 0);
  CHECK(c.version == "1.1");
  CHECK(c.body == "ok:/tls-h1");

  CurlResult pk = curl(dir, {"--http2-prior-knowledge", "http://127.0.0.1:" + pp + "/h2c"});
  CHECK(pk.exit_code != 0);  // the preface is an HTTP/1.1 request with method PRI: 400 and close
  CurlResult h1 = curl(dir, {"--http1.1", "http://127.0.0.1:" + pp + "/h1"});
  CHECK(h1.version == "1.1");
  CHECK(h1.body == "ok:/h1");
  CHECK(metric(*tls, "ferry_http2_connections_total{listener=\"web\"}") == 0);
  CHECK(metric(*plain, "ferry_http2_connections_total{listener=\"web\"}") == 0);
  exitsCleanly(*tls);
  exitsCleanly(*plain);
}

TEST_CASE("http2: h2load, 1000 requests 100 at a time on one h2c connection, all 2xx", "[http2]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const std::string p = std::to_string(f->port("web"));
  RunResult r = runProcess({"h2load", "-n", "1000", "-c", "1", "-m", "100", "http://127.0.0.1:" + p + "/load"}, 30s);
  INFO(r.out << r.err);
  REQUIRE(!r.timed_out);
  CHECK(r.exit_code == 0);
  std::smatch m;
  REQUIRE(std::regex_search(r.out, m, std::regex(R"(status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx)")));
  CHECK(m[1] == "1000");
  CHECK(m[4] == "0");
  CHECK(r.out.find("1000 succeeded, 0 failed, 0 errored") != std::string::npos);
  CHECK(up.requestCount() == 1000);
  CHECK(waitMetric(f->adminPort(), "ferry_http2_connections_total{listener=\"web\"}", 1));
  exitsCleanly(*f);
}

TEST_CASE("http2: nghttp client GET", "[http2]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const std::string p = std::to_string(f->port("web"));
  RunResult r = runProcess({"nghttp", "-v", "-H", "x-from: nghttp", "http://127.0.0.1:" + p + "/nghttp"}, 10s);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("recv SETTINGS frame") != std::string::npos);
  CHECK(r.out.find(":status: 200") != std::string::npos);
  CHECK(r.out.find("ok:/nghttp") != std::string::npos);
  REQUIRE(up.waitRequests(1));
  CHECK(up.requests()[0].header("x-from") == "nghttp");
  exitsCleanly(*f);
}

// ---- 5: trailers

TEST_CASE("http2: request trailers become chunked trailers upstream; response trailers reach the h2 client",
          "[http2]") {
  HttpUpstream up([](const UpstreamRequest&) {
    return UpstreamAction{
        "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n0\r\ngrpc-status: 0\r\ngrpc-message: fine\r\n\r\n"};
  });
  auto f = FerryProcess::start(h2cConfig(up.port()));
  Json j = runScript("trailers.py", f->port("web"));
  INFO(j["status"].num());
  CHECK(j["status"].num() == 200);
  CHECK(j["body"].str() == "hello");
  CHECK(truthy(j["ended"]));
  CHECK(j["trailers"]["grpc-status"].str() == "0");
  CHECK(j["trailers"]["grpc-message"].str() == "fine");
  REQUIRE(up.waitRequests(1));
  UpstreamRequest r = up.requests()[0];
  CHECK(r.method == "POST");
  CHECK(r.chunked);
  CHECK(r.body == "hello trailers");
  CHECK(r.header("te") == "trailers");
  REQUIRE(r.trailers.size() == 1);
  CHECK(r.trailers[0].first == "x-checksum");
  CHECK(r.trailers[0].second == "abc123");
  exitsCleanly(*f);
}

// ---- 6: flood defences

TEST_CASE("http2: rapid reset ends the connection with GOAWAY ENHANCE_YOUR_CALM", "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const uint16_t port = f->port("web");
  const double before = metric(*f, violationKey("rapid_reset"));
  REQUIRE(before >= 0);
  Json j = runScript("rapid_reset.py", port, {"--streams", "1000"});
  INFO(j["sent"].num());
  floodHandled(*f, port, j, "rapid_reset", before);
  // The burst (200) passed before the connection ended: nothing less trips it.
  CHECK(j["sent"].num() >= 200);
  exitsCleanly(*f);
}

TEST_CASE("http2: cancelling fewer streams than max_resets_burst is not a rapid reset", "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const uint16_t port = f->port("web");
  const double before = metric(*f, violationKey("rapid_reset"));
  REQUIRE(before >= 0);
  // 150 cancelled streams, then a request on the same connection: served.
  Json j = runScript("rapid_reset.py", port, {"--streams", "150", "--then-get"});
  CHECK(j["sent"].num() == 150);
  CHECK(j["get"]["status"].num() == 200);
  CHECK(j["get"]["body"].str() == "ok:/after-resets");
  CHECK(goaways(j).empty());
  CHECK(!truthy(j["closed"]));
  CHECK(metric(*f, violationKey("rapid_reset")) == before);
  exitsCleanly(*f);
}

TEST_CASE("http2: a CONTINUATION flood ends the connection (max_continuations 8)", "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const uint16_t port = f->port("web");
  const double before = metric(*f, violationKey("continuation_flood"));
  REQUIRE(before >= 0);
  Json j = runScript("continuation_flood.py", port, {"--frames", "1000", "--field", "1000"});
  REQUIRE(j["connections"].arr().size() == 1);
  const Json& c = j["connections"].arr()[0];
  CHECK(c["sent"].num() < 1000);  // ferry closed before the flood was over
  CHECK(up.requestCount() == 0);   // the header block never completed
  floodHandled(*f, port, c, "continuation_flood", before);
  exitsCleanly(*f);
}

// With max_continuations 1000, each header block is ~16 MB of fields before the limit ends it:
// past max_request_headers_kb the fields are dropped as they are decoded, so ferry's memory does
// not follow.
TEST_CASE("http2: 16 MB header blocks in CONTINUATION frames do not grow ferry's memory", "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port(), "      http2:\n        max_continuations: 1000\n"));
  const uint16_t port = f->port("web");
  const double before = metric(*f, violationKey("continuation_flood"));
  REQUIRE(before >= 0);
  const long rss_before = f->rssKb();
  Json many = runScript("continuation_flood.py", port, {"--frames", "1010", "--field", "16000", "--connections", "4"}, 30s);
  REQUIRE(many["connections"].arr().size() == 4);
  for (const auto& one : many["connections"].arr()) {
    CHECK(one["sent"].num() >= 1000);  // the limit, not something earlier, ended it
    auto g = goaways(one);
    CHECK((!g.empty() && g.back().second == kEnhanceYourCalm));
  }
  CHECK(waitMetric(f->adminPort(), violationKey("continuation_flood"), before + 4));
  CHECK(up.requestCount() == 0);
  if (!sanitized()) {
    const long rss_after = f->rssKb();
    INFO("rss before " << rss_before << " kB, after " << rss_after << " kB");
    CHECK(rss_after - rss_before < 8 * 1024);
  }
  stillServes(*f, port);
  exitsCleanly(*f);
}

TEST_CASE("http2: a header list over max_request_headers_kb or max_headers gets 431 on its stream; the connection "
          "goes on",
          "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port(), "      max_request_headers_kb: 1\n      max_headers: 20\n"));
  const uint16_t port = f->port("web");
  const std::vector<std::vector<std::string>> cases{{"--size", "4096"}, {"--fields", "40"}};
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO("case " << cases[i][0]);
    const double before = metric(*f, violationKey("header_list_too_large"));
    REQUIRE(before >= 0);
    Json j = runScript("header_list.py", port, cases[i]);
    CHECK(j["big"]["status"].num() == 431);
    CHECK(j["small"]["status"].num() == 200);
    CHECK(j["small"]["body"].str() == "ok:/after");
    CHECK(goaways(j).empty());
    CHECK(!truthy(j["closed"]));
    CHECK(waitAbove(*f, violationKey("header_list_too_large"), before) == before + 1);
    // Only the second request went upstream.
    REQUIRE(up.waitRequests(i + 1));
    CHECK(up.requestCount() == i + 1);
    CHECK(up.requests()[i].target == "/after");
  }
  stillServes(*f, port);
  exitsCleanly(*f);
}

TEST_CASE("http2: request trailers over max_request_headers_kb reset their stream; the connection goes on",
          "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port(), "      max_request_headers_kb: 1\n"));
  const uint16_t port = f->port("web");
  const double before = metric(*f, violationKey("header_list_too_large"));
  REQUIRE(before >= 0);
  Json j = runScript("big_trailers.py", port, {"--size", "4096"});
  CHECK(j["big"]["reset"].num() == 1);  // PROTOCOL_ERROR
  CHECK(j["big"]["status"].isNull());
  CHECK(j["small"]["status"].num() == 200);
  CHECK(j["small"]["body"].str() == "ok:/after");
  CHECK(goaways(j).empty());
  CHECK(waitAbove(*f, violationKey("header_list_too_large"), before) == before + 1);
  // The upstream never got a complete /big-trailers request.
  REQUIRE(up.waitRequests(1));
  for (const auto& r : up.requests()) CHECK(r.target != "/big-trailers");
  stillServes(*f, port);
  exitsCleanly(*f);
}

// nghttp2 counts an acknowledgement from the frame that asks for it until it is serialised,
// and the codec serialises after each read (up to 256 KiB: 15420 PINGs) unless the connection's
// write buffer is above its high watermark (1 MiB). With max_outbound_control_frames above what
// one read can carry, only acknowledgements held back by a client that does not read trip it.
// The client still reads nothing afterwards: ferry must not wait for it to take the GOAWAY.
TEST_CASE("http2: PING and SETTINGS floods from a client that does not read end the connection (control_frame_flood)",
          "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port(), "      http2:\n        max_outbound_control_frames: 20000\n"));
  const uint16_t port = f->port("web");
  const uint16_t admin = f->adminPort();
  for (const std::string frame : {"ping", "settings"}) {
    INFO("frame " << frame);
    const double before = metric(*f, violationKey("control_frame_flood"));
    REQUIRE(before >= 0);
    auto client = startScript("ping_flood.py", port, {"--frame", frame, "--count", "2000000", "--batch", "100", "--hold"});
    REQUIRE(client->waitForLog("SENT", 30s));
    CHECK(waitAbove(*f, violationKey("control_frame_flood"), before) == before + 1);
    // Gone, with its buffers, although the client has not read a byte.
    CHECK(waitMetric(admin, "ferry_downstream_connections_active{listener=\"web\"}", 0, 5s));
    CHECK(waitMetric(admin, "ferry_buffered_bytes", 0, 5s));
    client->signal(SIGUSR1);
    auto code = client->waitExit(20s);
    const std::string log = client->log();
    INFO(log);
    REQUIRE(code.has_value());
    REQUIRE(*code == 0);
    auto j = resultOf(log);
    REQUIRE(j.has_value());
    INFO("sent " << (*j)["sent"].num() << " frames, " << (*j)["sent_bytes"].num() << " bytes; acks read "
                 << (*j)["acks"].num());
    CHECK(truthy((*j)["write_failed"]));   // ferry closed the connection under the client's writes
    CHECK(!truthy((*j)["send_blocked"]));  // ...and never stopped reading before that
    CHECK((*j)["sent"].num() < 2000000);
    // The acknowledgements had to fill ferry's write buffer past 1 MiB first.
    CHECK((*j)["sent_bytes"].num() > (1 << 20));
    CHECK(truthy((*j)["closed"]));
    stillServes(*f, port);
  }
  exitsCleanly(*f);
}

TEST_CASE("http2: a flood of empty DATA frames ends the connection", "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const uint16_t port = f->port("web");
  const double before = metric(*f, violationKey("empty_frame_flood"));
  REQUIRE(before >= 0);
  Json j = runScript("empty_frames.py", port, {"--frames", "100"});
  floodHandled(*f, port, j, "empty_frame_flood", before);
  exitsCleanly(*f);
}

// ---- 7: backpressure

TEST_CASE("http2: a client that stops reading holds a 50 MB response back to the upstream; then it all arrives",
          "[http2]") {
  constexpr size_t kSize = 50u << 20;
  std::atomic<size_t> written{0};
  std::atomic<int64_t> blocked_since{0};  // steady-clock ms when the upstream's writes last started to block
  auto nowMs = [] {
    return std::chrono::duration_cast<ms>(std::chrono::steady_clock::now().time_since_epoch()).count();
  };
  HttpUpstream up([&](const UpstreamRequest&) {
    UpstreamAction a;
    a.custom = [&](int fd) {
      if (!FakeUpstream::writeAll(fd, "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(kSize) + "\r\n\r\n")) return;
      std::string chunk(64 * 1024, '\0');
      size_t off = 0;
      while (off < kSize) {
        const size_t n = std::min(chunk.size(), kSize - off);
        for (size_t i = 0; i < n; ++i) chunk[i] = static_cast<char>((off + i) % 251);
        size_t done = 0;
        while (done < n) {
          const ssize_t w = ::send(fd, chunk.data() + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
          if (w > 0) {
            done += static_cast<size_t>(w);
            written += static_cast<size_t>(w);
            blocked_since = 0;
            continue;
          }
          if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            int64_t zero = 0;
            blocked_since.compare_exchange_strong(zero, nowMs());
            pollfd p{fd, POLLOUT, 0};
            if (::poll(&p, 1, 30000) <= 0) return;
            continue;
          }
          return;
        }
        off += n;
      }
      while (!FakeUpstream::readSome(fd).empty()) {
      }
    };
    return a;
  });
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const uint16_t port = f->port("web");
  const long rss_before = f->rssKb();
  auto client = startScript("backpressure.py", port, {"--size", std::to_string(kSize), "--path", "/big"});
  REQUIRE(client->waitForLog("STALLED", 10s));
  // The upstream is held back: its writes block (ferry stopped reading it) for a while.
  REQUIRE(waitUntil([&] {
    const int64_t b = blocked_since.load();
    return b != 0 && nowMs() - b >= 500;
  }, 15s));
  const size_t held_at = written.load();
  INFO("upstream wrote " << held_at << " bytes before it was held back");
  // What the sockets' buffers hold (loopback autotuning: some MB each way) plus the stream's
  // send buffer (1 MiB high watermark) and one window toward the client; far from 50 MB.
  CHECK(held_at < 20u << 20);
  // ferry_buffered_bytes counts connection write buffers only (not the HTTP/2 stream's).
  const double buffered = metric(*f, "ferry_buffered_bytes");
  INFO("ferry_buffered_bytes " << buffered);
  CHECK(buffered >= 0);
  CHECK(buffered < 4 << 20);
  if (!sanitized()) {
    INFO("rss before " << rss_before << " kB, now " << f->rssKb() << " kB");
    CHECK(f->rssKb() - rss_before < 8 * 1024);
  }
  // Reading resumes: everything arrives, intact.
  client->signal(SIGUSR1);
  auto code = client->waitExit(60s);
  const std::string log = client->log();
  INFO(log.substr(0, 4000));
  REQUIRE(code.has_value());
  REQUIRE(*code == 0);
  auto j = resultOf(log);
  REQUIRE(j.has_value());
  CHECK((*j)["status"].num() == 200);
  CHECK((*j)["stalled_at"].num() == 65535);
  CHECK((*j)["before_resume"].num() == 65535);  // nothing beyond the window meanwhile
  CHECK((*j)["body_len"].num() == static_cast<double>(kSize));
  CHECK(truthy((*j)["ended"]));
  CHECK(truthy((*j)["intact"]));
  CHECK(written.load() == kSize);
  exitsCleanly(*f);
}

// The other direction: an upstream that does not read holds the client back through the
// stream's flow-control window (DATA is consumed only while the stream's reader takes it).
TEST_CASE("http2: a 50 MB upload to an upstream that does not read is held back by flow control; then it all arrives",
          "[http2]") {
  constexpr size_t kSize = 50u << 20;
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<bool> head_seen{false};
  std::atomic<size_t> received{0};
  std::atomic<bool> intact{true};
  FakeUpstream up([&](int fd) {
    std::string buf;
    size_t head_end;
    while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
      std::string s = FakeUpstream::readSome(fd);
      if (s.empty()) return;
      buf += s;
    }
    head_seen = true;
    {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait_for(lk, 30s, [&] { return open; });
    }
    std::string chunk = buf.substr(head_end + 4);
    size_t got = 0;
    for (;;) {
      for (size_t i = 0; i < chunk.size(); ++i)
        if (static_cast<unsigned char>(chunk[i]) != (got + i) % 251) intact = false;
      got += chunk.size();
      received = got;
      if (got >= kSize) break;
      chunk = FakeUpstream::readSome(fd, 1 << 20);
      if (chunk.empty()) return;
    }
    const std::string body = "len:" + std::to_string(got) + (intact ? ":intact" : ":corrupt");
    FakeUpstream::writeAll(fd, "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    while (!FakeUpstream::readSome(fd).empty()) {
    }
  });
  struct Release {
    std::mutex& mu;
    std::condition_variable& cv;
    bool& open;
    void operator()() {
      {
        std::lock_guard<std::mutex> lk(mu);
        open = true;
      }
      cv.notify_all();
    }
    ~Release() { (*this)(); }
  } release{mu, cv, open};
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const uint16_t port = f->port("web");
  const long rss_before = f->rssKb();
  auto client = startScript("upload.py", port, {"--size", std::to_string(kSize), "--path", "/up"});
  REQUIRE(client->waitForLog("BLOCKED", 20s));
  CHECK(head_seen.load());
  std::smatch m;
  const std::string log = client->log();
  REQUIRE(std::regex_search(log, m, std::regex(R"(BLOCKED (\d+))")));
  const double blocked_at = std::stod(m[1]);
  INFO("the client was held after " << blocked_at << " bytes");
  // The upstream socket's buffers, ferry's upstream write buffer (1 MiB high watermark) and
  // the stream and connection windows (1 MiB, 4 MiB): far from 50 MB.
  CHECK(blocked_at < 24u << 20);
  const double buffered = metric(*f, "ferry_buffered_bytes");
  INFO("ferry_buffered_bytes " << buffered);
  CHECK(buffered >= 0);
  CHECK(buffered < 4 << 20);
  if (!sanitized()) {
    INFO("rss before " << rss_before << " kB, now " << f->rssKb() << " kB");
    CHECK(f->rssKb() - rss_before < 16 * 1024);
  }
  release();
  auto code = client->waitExit(60s);
  const std::string out = client->log();
  INFO(out.substr(0, 4000));
  REQUIRE(code.has_value());
  REQUIRE(*code == 0);
  auto j = resultOf(out);
  REQUIRE(j.has_value());
  CHECK((*j)["sent"].num() == static_cast<double>(kSize));
  CHECK((*j)["stream"]["status"].num() == 200);
  CHECK((*j)["stream"]["body"].str() == "len:" + std::to_string(kSize) + ":intact");
  CHECK(received.load() == kSize);
  exitsCleanly(*f);
}

// ---- 8: drain

TEST_CASE("http2: SIGTERM sends the two-step GOAWAY; streams in flight complete; ferry exits 0", "[http2][drain]") {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> waiting{0};
  HttpUpstream up([&](const UpstreamRequest& r) {
    if (r.target == "/slow") {
      ++waiting;
      std::unique_lock<std::mutex> lk(mu);
      cv.wait_for(lk, 10s, [&] { return open; });
      return HttpUpstream::ok("slow");
    }
    return HttpUpstream::ok("fast");
  });
  struct Release {
    std::mutex& mu;
    std::condition_variable& cv;
    bool& open;
    void operator()() {
      {
        std::lock_guard<std::mutex> lk(mu);
        open = true;
      }
      cv.notify_all();
    }
    ~Release() { (*this)(); }
  } release{mu, cv, open};
  auto f = FerryProcess::start(h2cConfig(up.port(), "", "  drain_delay: 0s\n  drain_timeout: 10s\n"));
  const uint16_t port = f->port("web");
  // late: a second stream goes out after the first GOAWAY, before the drain PING is
  // acknowledged; the final GOAWAY must cover it.
  bool late = false;
  SECTION("one stream in flight") {}
  SECTION("and one sent between the two GOAWAYs") { late = true; }
  std::vector<std::string> args{"--path", "/slow"};
  if (late) args.insert(args.end(), {"--late", "--late-path", "/late"});
  auto client = startScript("drain.py", port, args);
  REQUIRE(client->waitForLog("SENT", 10s));
  REQUIRE(waitUntil([&] { return waiting.load() == 1; }, 10s));
  f->signal(SIGTERM);
  // Step one: "no new streams soon" (last stream id 2^31-1), while the stream is still open.
  REQUIRE(client->waitForLog("GOAWAY 2147483647 0", 10s));
  CHECK(f->running());
  release();
  auto code = client->waitExit(20s);
  const std::string log = client->log();
  INFO(log);
  REQUIRE(code.has_value());
  REQUIRE(*code == 0);
  auto j = resultOf(log);
  REQUIRE(j.has_value());
  CHECK((*j)["stream"]["status"].num() == 200);
  CHECK((*j)["stream"]["body"].str() == "slow");
  CHECK(truthy((*j)["stream"]["ended"]));
  auto g = goaways(*j);
  REQUIRE(g.size() >= 2);
  CHECK(g.front() == std::make_pair(2147483647.0, 0.0));
  // Step two: the real last stream id.
  CHECK(g.back() == std::make_pair(late ? 3.0 : 1.0, 0.0));
  if (late) {
    CHECK((*j)["late"]["status"].num() == 200);
    CHECK((*j)["late"]["body"].str() == "fast");
  } else {
    CHECK((*j)["late"].isNull());
  }
  CHECK(truthy((*j)["closed"]));
  auto fcode = f->waitExit(15s);
  REQUIRE(fcode.has_value());
  CHECK(*fcode == 0);
}

TEST_CASE("http2: a reload that removes the listener drains its h2 connection with the two GOAWAYs", "[http2][drain]") {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> waiting{0};
  HttpUpstream up([&](const UpstreamRequest& r) {
    if (r.target == "/slow") {
      ++waiting;
      std::unique_lock<std::mutex> lk(mu);
      cv.wait_for(lk, 10s, [&] { return open; });
      return HttpUpstream::ok("slow");
    }
    return HttpUpstream::ok("ok:" + r.target);
  });
  struct Release {
    std::mutex& mu;
    std::condition_variable& cv;
    bool& open;
    void operator()() {
      {
        std::lock_guard<std::mutex> lk(mu);
        open = true;
      }
      cv.notify_all();
    }
    ~Release() { (*this)(); }
  } release{mu, cv, open};
  const std::string runtime = "  drain_delay: 0s\n  drain_timeout: 10s\n";
  auto f = FerryProcess::start(h2cConfig(up.port(), "", runtime));
  const uint16_t port = f->port("web");
  const uint16_t admin = f->adminPort();
  auto client = startScript("drain.py", port, {"--path", "/slow"});
  REQUIRE(client->waitForLog("SENT", 10s));
  REQUIRE(waitUntil([&] { return waiting.load() == 1; }, 10s));
  // The same, but the listener is now "web2".
  f->writeConfig(FerryConfig{.runtime_extra = runtime, .listener = "web2", .clusters = {{"up", {up.port()}}}}.yaml());
  HttpResponse rr = httpRequest(admin, "POST", "/reload", "", {}, 10s);
  INFO("POST /reload: " << rr.status << " " << rr.body);
  REQUIRE(rr.status == 200);
  REQUIRE(client->waitForLog("GOAWAY 2147483647 0", 10s));
  release();
  auto code = client->waitExit(20s);
  const std::string log = client->log();
  INFO(log);
  REQUIRE(code.has_value());
  REQUIRE(*code == 0);
  auto j = resultOf(log);
  REQUIRE(j.has_value());
  CHECK((*j)["stream"]["status"].num() == 200);
  CHECK((*j)["stream"]["body"].str() == "slow");
  auto g = goaways(*j);
  REQUIRE(g.size() >= 2);
  CHECK(g.front() == std::make_pair(2147483647.0, 0.0));
  CHECK(g.back() == std::make_pair(1.0, 0.0));
  CHECK(truthy((*j)["closed"]));
  // Ferry goes on, with the new listener.
  REQUIRE(f->running());
  Json g2 = runScript("get.py", f->port("web2"), {"--path", "/new"});
  CHECK(g2["status"].num() == 200);
  exitsCleanly(*f);
}

TEST_CASE("http2: SIGTERM closes an h2 connection without streams after the two GOAWAYs", "[http2][drain]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port(), "", "  drain_delay: 0s\n  drain_timeout: 10s\n"));
  auto client = startScript("idle.py", f->port("web"), {"--wait", "10"});
  REQUIRE(client->waitForLog("READY", 10s));
  f->signal(SIGTERM);
  auto code = client->waitExit(15s);
  const std::string log = client->log();
  INFO(log);
  REQUIRE(code.has_value());
  REQUIRE(*code == 0);
  auto j = resultOf(log);
  REQUIRE(j.has_value());
  CHECK(truthy((*j)["closed"]));
  CHECK((*j)["closed_after"].num() < 5);  // not the drain timeout
  auto g = goaways(*j);
  REQUIRE(g.size() == 2);
  CHECK(g[0] == std::make_pair(2147483647.0, 0.0));
  CHECK(g[1] == std::make_pair(0.0, 0.0));
  auto fcode = f->waitExit(10s);
  REQUIRE(fcode.has_value());
  CHECK(*fcode == 0);
}

// ---- idle connections

// http.idle_timeout applies to an HTTP/2 connection while it has no stream open, whatever
// control frames the client sends meanwhile; it ends with GOAWAY NO_ERROR.
TEST_CASE("http2: a connection without streams is closed after idle_timeout with GOAWAY NO_ERROR", "[http2]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port(), "      idle_timeout: 300ms\n"));
  const uint16_t port = f->port("web");
  SECTION("no stream ever") {
    Json j = runScript("idle.py", port, {"--wait", "5"});
    INFO("closed after " << j["closed_after"].num() << " s");
    CHECK(truthy(j["closed"]));
    auto g = goaways(j);
    REQUIRE(g.size() == 1);
    CHECK(g[0] == std::make_pair(0.0, 0.0));
  }
  SECTION("after a stream, and a PING") {
    Json j = runScript("idle.py", port, {"--stream", "--wait", "5"});
    INFO("closed after " << j["closed_after"].num() << " s");
    CHECK(j["status"].num() == 200);
    CHECK(truthy(j["closed"]));
    auto g = goaways(j);
    REQUIRE(g.size() == 1);
    CHECK(g[0] == std::make_pair(1.0, 0.0));
  }
  CHECK(waitMetric(f->adminPort(), "ferry_downstream_connections_active{listener=\"web\"}", 0));
  exitsCleanly(*f);
}

// ---- 9: max_concurrent_streams

TEST_CASE("http2: max_concurrent_streams 5 refuses a 6th concurrent stream", "[http2]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port(), "      http2:\n        max_concurrent_streams: 5\n"));
  const uint16_t port = f->port("web");
  Json j = runScript("max_streams.py", port, {"--streams", "6"});
  CHECK(j["max_concurrent_streams"].num() == 5);
  for (int sid : {1, 3, 5, 7, 9}) {
    INFO("stream " << sid);
    CHECK(j["streams"][std::to_string(sid)]["status"].num() == 200);
    CHECK(j["streams"][std::to_string(sid)]["body"].str() == "ok:/s" + std::to_string(sid));
  }
  CHECK(j["streams"]["11"]["reset"].num() == kRefusedStream);
  CHECK(j["streams"]["11"]["status"].isNull());
  CHECK(goaways(j).empty());
  CHECK(up.requestCount() == 5);
  stillServes(*f, port);
  exitsCleanly(*f);
}
