// Downstream HTTP/2 against the real ferry binary: h2c by prior knowledge (curl, h2load, nghttp)
// next to HTTP/1.1 on the same port, h2 by ALPN over TLS, http2.enabled false, trailers both
// ways, the idle timeout of connections without streams, SETTINGS_MAX_CONCURRENT_STREAMS and
// SETTINGS_NO_RFC7540_PRIORITIES.
// The flood defences are in http2_defence_test.cc, backpressure and drain in
// http2_flow_drain_test.cc; helpers in http2_support.h.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <regex>

#include "tests/integration/http2_support.h"

using namespace ferry::testing;
using namespace ferry::testing::h2test;

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

// Ferry stores HTTP/2 field names without lower-casing them again (HeaderMap::addLowerCase):
// that is sound only because one with an upper-case letter never reaches the codec.
TEST_CASE("http2: a field or trailer name with an upper-case letter resets its stream (PROTOCOL_ERROR); the "
          "connection goes on",
          "[http2]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port()));
  Json j = runScript("upper_name.py", f->port("web"));
  CHECK(j["upper"]["reset"].num() == 1);  // PROTOCOL_ERROR
  CHECK(j["upper"]["status"].isNull());
  CHECK(j["trailer"]["reset"].num() == 1);
  CHECK(j["ok"]["status"].num() == 200);
  CHECK(truthy(j["ok"]["ended"]));
  CHECK_FALSE(truthy(j["closed"]));
  for (const UpstreamRequest& r : up.requests()) {
    INFO(r.raw_head);
    CHECK(r.target != "/upper");
    CHECK_FALSE(r.hasHeader("x-upper"));
    CHECK_FALSE(r.hasHeader("x-checksum"));
    for (const auto& t : r.trailers) CHECK(t.first != "x-checksum");
  }
  REQUIRE(up.waitRequests(1));
  bool seen_ok = false;
  for (const UpstreamRequest& r : up.requests())
    if (r.target == "/ok") seen_ok = r.header("x-lower") == "1";
  CHECK(seen_ok);
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

TEST_CASE("http2: announces SETTINGS_NO_RFC7540_PRIORITIES and serves streams sent with RFC 7540 priorities",
          "[http2]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const uint16_t port = f->port("web");
  Json j = runScript("priority.py", port);
  CHECK(j["no_rfc7540_priorities"].num() == 1);
  for (int sid : {1, 3}) {
    INFO("stream " << sid);
    CHECK(j["streams"][std::to_string(sid)]["status"].num() == 200);
    CHECK(j["streams"][std::to_string(sid)]["body"].str() == std::string("ok:/") + (sid == 1 ? "a" : "b"));
    CHECK(j["streams"][std::to_string(sid)]["reset"].isNull());
  }
  CHECK(goaways(j).empty());
  CHECK(up.requestCount() == 2);
  stillServes(*f, port);
  exitsCleanly(*f);
}
