// global_rate_limit: its config (the bucket keys shared with local_rate_limit, domain, redis,
// batch) and errors at their positions.
#include <catch2/catch.hpp>

#include "filters/http/global_rate_limit/global_rate_limit.h"
#include "tests/unit/config/loader_test_util.h"

using ferry::filters::http::GlobalRateLimitConfig;
using namespace ferry::config;
using namespace ferry::config::test;

namespace {
// Lines 1-4 are the listener head; the filter starts on line 6, its config on line 7 column 19.
std::string withFilter(const std::string& config_line) {
  return "listeners:\n"
         "  - name: web\n"
         "    address: 0.0.0.0:8080\n"
         "    http:\n"
         "      filters:\n"
         "        - name: global_rate_limit\n"
         "          config: " +
         config_line +
         "\n"
         "      virtual_hosts:\n"
         "        - {name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: api}}]}\n"
         "clusters:\n"
         "  - {name: api, endpoints: [{address: 127.0.0.1:9000}]}\n";
}
GlobalRateLimitConfig grlOf(const std::string& config_line) {
  const Config c = ok(load(withFilter(config_line)));
  NodeReader r;
  auto parsed = ferry::filters::http::parseGlobalRateLimitConfig(c.listeners[0].http->filters.at(0), r);
  REQUIRE(parsed);
  return *parsed;
}
std::string err(const std::string& config_line) { return onlyError(withFilter(config_line)); }
}  // namespace

TEST_CASE("global_rate_limit config: defaults, keys and errors", "[global_rate_limit][config]") {
  auto c = grlOf("{max_tokens: 10, fill_interval: 1s, domain: api, redis: {address: 127.0.0.1:6379}}");
  CHECK(c.max_tokens == 10);
  CHECK(c.tokens_per_fill == 1);
  CHECK(c.key == GlobalRateLimitConfig::Key::kNone);
  CHECK(c.domain == "api");
  CHECK(c.batch == 1);
  CHECK(c.failure_mode == GlobalRateLimitConfig::FailureMode::kAllow);
  CHECK(c.redis.address == "127.0.0.1:6379");
  CHECK(c.redis.timeout == std::chrono::milliseconds(25));
  CHECK(c.redis.connect_timeout == std::chrono::milliseconds(1000));
  CHECK(c.redis.connections == 2);
  CHECK(c.redis.password.empty());
  c = grlOf("{max_tokens: 100, tokens_per_fill: 10, fill_interval: 1m, key: 'header:X-Api-Key', domain: 'api:v1', "
            "batch: 10, shadow: true, response_headers: true, redis: {address: '[::1]:6380', timeout: 5ms, "
            "connect_timeout: 300ms, failure_mode: deny, connections: 4}}");
  CHECK(c.key == GlobalRateLimitConfig::Key::kHeader);
  CHECK(c.header == "x-api-key");
  CHECK(c.batch == 10);
  CHECK(c.shadow);
  CHECK(c.response_headers);
  CHECK(c.failure_mode == GlobalRateLimitConfig::FailureMode::kDeny);
  CHECK(c.redis.timeout == std::chrono::milliseconds(5));
  CHECK(c.redis.connect_timeout == std::chrono::milliseconds(300));
  CHECK(c.redis.connections == 4);
  CHECK(c.redis.addr.ss_family == AF_INET6);

  CHECK(err("{max_tokens: 1, fill_interval: 1s, redis: {address: 127.0.0.1:6379}}") ==
        "t.yaml:7:19: missing required key 'domain' in global_rate_limit config");
  CHECK(err("{max_tokens: 1, fill_interval: 1s, domain: a}") ==
        "t.yaml:7:19: missing required key 'redis' in global_rate_limit config");
  CHECK(err("{fill_interval: 1s, domain: a, redis: {address: 127.0.0.1:6379}}") ==
        "t.yaml:7:19: missing required key 'max_tokens' in global_rate_limit config");
  CHECK(err("{max_tokens: 5, fill_interval: 1s, domain: 'a b', redis: {address: 127.0.0.1:6379}}") ==
        "t.yaml:7:62: domain must be 1-128 of A-Z a-z 0-9 _ - . : /, not 'a b'");
  CHECK(err("{max_tokens: 5, fill_interval: 1s, domain: a, redis: {address: 127.0.0.1}}") ==
        "t.yaml:7:82: address must be HOST:PORT or [IPv6]:PORT ('127.0.0.1')");
  CHECK(err("{max_tokens: 5, fill_interval: 1s, domain: a, redis: {address: 127.0.0.1:0}}") ==
        "t.yaml:7:82: bad port in address ('127.0.0.1:0')");
  CHECK(err("{max_tokens: 5, fill_interval: 1s, domain: a, redis: {address: 127.0.0.1:1, failure_mode: open}}") ==
        "t.yaml:7:109: failure_mode must be allow or deny, not 'open'");
  CHECK(err("{max_tokens: 5, fill_interval: 1s, domain: a, redis: {address: 127.0.0.1:1, timeout: 0ms}}") ==
        "t.yaml:7:104: 'timeout' must be greater than 0s");
  CHECK(err("{max_tokens: 5, fill_interval: 1s, domain: a, redis: {address: 127.0.0.1:1, connections: 0}}") ==
        "t.yaml:7:108: 'connections' must be between 1 and 16, got 0");
  CHECK(err("{max_tokens: 5, fill_interval: 1s, domain: a, redis: {address: 127.0.0.1:1, db: 2}}") ==
        "t.yaml:7:95: unknown key 'db' in global_rate_limit redis");
  CHECK(err("{max_tokens: 5, fill_interval: 1s, domain: a, batch: 6, redis: {address: 127.0.0.1:1}}") ==
        "t.yaml:7:72: batch is larger than max_tokens");
  // A host name and the password file are for a config that runs (not --validate).
  c = grlOf("{max_tokens: 5, fill_interval: 1s, domain: a, redis: {address: 'redis.invalid:6379', password_file: /nonexistent/pw}}");
  CHECK_FALSE(c.resolved);
  CHECK(c.host == "redis.invalid");
  CHECK(c.password_file == "/nonexistent/pw");
  CHECK(err("{max_tokens: 5, fill_interval: 1s, domain: a, burst: 3, redis: {address: 127.0.0.1:1}}") ==
        "t.yaml:7:65: unknown key 'burst' in global_rate_limit config");
}

TEST_CASE("global_rate_limit: the bucket script's SHA is what EVALSHA names", "[global_rate_limit]") {
  const auto& s = ferry::filters::http::globalRateLimitScript();
  CHECK(s.sha.size() == 40);
  CHECK(s.sha == ferry::core::redis::sha1Hex(s.body));
  CHECK(s.body.find("redis.call('TIME')") != std::string::npos);
  CHECK(s.body.find("'PX'") != std::string::npos);
}
