#include <arpa/inet.h>

#include <catch2/catch.hpp>

#include "config/log_format.h"
#include "core/http/access_log.h"
#include "core/stats.h"

using namespace ferry;
using core::http::LogContext;

namespace {

std::string render(std::string_view format, const LogContext& ctx) {
  std::string err;
  auto f = config::parseLogFormat(format, &err);
  REQUIRE(f.has_value());
  std::string out;
  for (const auto& c : *f) core::http::formatLogCommand(c, ctx, out);
  return out;
}

std::string parseError(std::string_view format) {
  std::string err;
  auto f = config::parseLogFormat(format, &err);
  return f ? "" : err;
}

struct Exchange {
  core::http::StreamInfo info;
  core::http::RequestHeaders req;
  core::http::ResponseHeaders resp;
  core::net::ConnectionInfo conn;
  LogContext ctx;
  Exchange() {
    info.start_us = 1'000'000;
    info.response_start_us = 1'004'000;
    info.upstream_service_us = 2'500;
    info.response_code = 503;
    info.flag = core::http::ResponseFlag::kUpstreamConnectFailure;
    info.upstream_cluster = "api";
    info.upstream_host = "127.0.0.1:9000";
    info.request_body_bytes = 12;
    info.response_body_bytes = 345;
    req.method = "GET";
    req.path = "/v1/items?x=1";
    req.authority = "example.com";
    req.scheme = "https";
    req.headers.add("user-agent", "curl/7.88");
    req.headers.add("x-request-id", "abc");
    req.headers.add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    resp.headers.add("server", "up");
    sockaddr_storage remote{};
    auto& in = reinterpret_cast<sockaddr_in&>(remote);
    in.sin_family = AF_INET;
    in.sin_port = htons(40000);
    inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
    conn.remote = remote;
    ctx.info = &info;
    ctx.request = &req;
    ctx.response = &resp;
    ctx.connection = &conn;
    ctx.route_name = "items";
    ctx.listener = "web";
    ctx.end_us = 1'010'000;
  }
};

}  // namespace

TEST_CASE("access log formats compile and report what is wrong", "[accesslog]") {
  CHECK(parseError("%REQ(:path)% %RESPONSE_CODE% 100%%") == "");
  CHECK(parseError("%FOO%") == "unknown access log command %FOO% at offset 0");
  CHECK(parseError("a %DURATION") == "unterminated command %DURATION at offset 2 (commands end with '%')");
  CHECK(parseError("%REQ%") == "%REQ% needs a header name: %REQ(name)%");
  CHECK(parseError("%REQ(a b)%") == "bad header name in %REQ(a b)%");
  CHECK(parseError("%REQ(a)%:0") == "");  // ":0" after the closing % is literal text
  CHECK(parseError("%REQ(a):0%") == "bad length after %REQ...: (a positive number) at offset 7");
  CHECK(parseError("50 % off") == "a lone '%' at offset 3 (write %% for a percent sign)");
  // Every default compiles.
  std::string err;
  CHECK(config::parseLogFormat(config::defaultTextFormat(), &err).has_value());
  CHECK(config::defaultJsonFormat().size() > 10);
}

TEST_CASE("access log commands print the exchange", "[accesslog]") {
  Exchange x;
  CHECK(render("%REQ(:method)% %REQ(:PATH)% %PROTOCOL%", x.ctx) == "GET /v1/items?x=1 HTTP/1.1");
  CHECK(render("%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%", x.ctx) ==
        "503 UF upstream_connect_failure");
  CHECK(render("%DURATION% %RESPONSE_DURATION% %UPSTREAM_SERVICE_TIME%", x.ctx) == "10 4 2");
  CHECK(render("%BYTES_RECEIVED% %BYTES_SENT%", x.ctx) == "12 345");
  CHECK(render("%UPSTREAM_CLUSTER% %UPSTREAM_HOST% %ROUTE_NAME% %LISTENER_NAME%", x.ctx) ==
        "api 127.0.0.1:9000 items web");
  CHECK(render("%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", x.ctx) ==
        "10.1.2.3:40000 10.1.2.3");
  CHECK(render("%REQ(X-Request-Id)% %REQ(host)% %REQ(:authority)% %RESP(server)%", x.ctx) ==
        "abc example.com example.com up");
  CHECK(render("%REQ(x-missing)% %REQ(x-missing?user-agent)% %REQ(user-agent):4%", x.ctx) == "- curl/7.88 curl");
  CHECK(render("%TRACE_ID%", x.ctx) == "0af7651916cd43dd8448eb211c80319c");
  CHECK(render("%TRAILER(grpc-status)%", x.ctx) == "-");
  x.req.version_major = 2;
  x.req.version_minor = 0;
  CHECK(render("%PROTOCOL%", x.ctx) == "HTTP/2");
  // START_TIME is ISO 8601 UTC with milliseconds.
  std::string t = render("%START_TIME%", x.ctx);
  REQUIRE(t.size() == 24);
  CHECK(t[4] == '-');
  CHECK(t[10] == 'T');
  CHECK(t[19] == '.');
  CHECK(t.back() == 'Z');
  // Details without a flag.
  x.info.flag = core::http::ResponseFlag::kNone;
  x.info.response_code = 200;
  CHECK(render("%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%", x.ctx) == "- via_upstream");
  x.info.details = "direct_response";
  CHECK(render("%RESPONSE_CODE_DETAILS%", x.ctx) == "direct_response");
  // An error before any request: only what is known.
  LogContext bare;
  core::http::StreamInfo info;
  info.response_code = 400;
  info.flag = core::http::ResponseFlag::kDownstreamProtocolError;
  bare.info = &info;
  CHECK(render("%REQ(:method)% %RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_HOST% %PROTOCOL%", bare) == "- 400 DPE - -");
}

TEST_CASE("json access log lines are typed and escaped", "[accesslog]") {
  Exchange x;
  x.req.headers.add("x-quote", "a\"b\\c\n");
  config::AccessLogConfig cfg;
  cfg.path = "/dev/null";
  cfg.format = config::AccessLogConfig::Format::kJson;
  std::string err;
  auto add = [&](const char* k, const char* v) { cfg.json.emplace_back(k, *config::parseLogFormat(v, &err)); };
  add("code", "%RESPONSE_CODE%");
  add("flags", "%RESPONSE_FLAGS%");
  add("q", "%REQ(x-quote)%");
  add("missing", "%REQ(x-none)%");
  add("both", "%REQ(:method)% %RESPONSE_CODE%");
  core::StatsStore stats(2);
  auto log = core::http::AccessLog::create(cfg, 1, stats, &err);
  REQUIRE(log);
  std::string line;
  log->format(x.ctx, line);
  CHECK(line == R"({"code":503,"flags":"UF","q":"a\"b\\c\n","missing":null,"both":"GET 503"})");
}
