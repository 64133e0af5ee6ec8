// Cluster keys (DNS endpoints, priorities, load-balancing policies, health checks, outlier
// detection, circuit breakers) and a route's `retry` and `hash_on`: values and errors.
#include <catch2/catch.hpp>

#include "config/loader.h"
#include "tests/unit/config/loader_test_util.h"
#include "config/values.h"

using namespace ferry::config;
using namespace ferry::config::test;
using std::chrono::milliseconds;

namespace {

// A cluster whose keys under test follow from line 4, column 5.
const std::string kCluster =
    "clusters:\n"
    "  - name: api\n"
    "    endpoints: [{address: 127.0.0.1:9000}]\n";

std::string withCluster(const std::string& keys) { return kCluster + keys; }

// Lines 1-11; the route action's keys under test start on line 12, column 17.
std::string withRoute(const std::string& keys) {
  return "listeners:\n"
         "  - name: web\n"
         "    address: 0.0.0.0:8080\n"
         "    http:\n"
         "      virtual_hosts:\n"
         "        - name: v\n"
         "          domains: ['*']\n"
         "          routes:\n"
         "            - match: {prefix: /}\n"
         "              route:\n"
         "                cluster: api\n" +
         keys + kCluster;
}

}  // namespace

TEST_CASE("a cluster with every new key loads into the right values", "[config][cluster]") {
  const std::string yaml = R"(clusters:
  - name: api
    endpoints:
      - address: 10.0.0.1:8080
      - {address: "[::1]:8081", weight: 5, priority: 1}
      - {address: Backend.Internal:9000, weight: 2, priority: 127}
      - address: localhost:80
    lb_policy: ring_hash
    hash_on: {header: X-User}
    ring_size: 4096
    least_request: {choices: 3}
    slow_start: 30s
    panic_threshold: 50
    dns_refresh: 10s
    dns_resolvers: [127.0.0.1:5353, 8.8.8.8, "[::1]", "[2001:db8::1]:54", "2001:db8::2"]
    health_check:
      type: http
      path: /healthz?full=1
      host: health.internal
      expected_statuses: [200, "200-299", 418]
      interval: 2s
      jitter: 500ms
      timeout: 3s
      healthy_threshold: 1
      unhealthy_threshold: 1000
    outlier_detection:
      consecutive_5xx: 0
      consecutive_gateway_failure: 7
      base_ejection_time: 10s
      max_ejection_time: 10s
      max_ejection_percent: 100
    circuit_breakers:
      max_connections: 10
      max_pending_requests: 0
      max_requests: 10000000
      max_retries: 5
      retry_budget: {percent: 12.5, min_retry_concurrency: 0}
  - name: db
    endpoints: [{address: db.internal:5432}]
    lb_policy: least_request
    health_check: {type: tcp, send: "PING\r\n", expect: PONG, interval: 1s}
    outlier_detection: {}
    circuit_breakers: {retry_budget: {}}
  - name: m
    endpoints: [{address: 127.0.0.1:1}]
    lb_policy: maglev
    hash_on: {cookie: Session}
  - name: r
    endpoints: [{address: 127.0.0.1:1}]
    lb_policy: random
    hash_on: {query: user id}
)";
  // `user id` has a space: refused. Fix it and load the rest.
  CHECK(onlyError(yaml) ==
        "t.yaml:51:22: bad query parameter name 'user id' (no spaces, control characters, "
        "non-ASCII bytes, '&', '=' or '#')");
  std::string fixed = yaml;
  fixed.replace(fixed.find("user id"), 7, "user");
  const Config c = ok(load(fixed));
  REQUIRE(c.clusters.size() == 4);

  const ClusterConfig& api = c.clusters[0];
  REQUIRE(api.endpoints.size() == 4);
  CHECK(api.endpoints[0].address.host == "10.0.0.1");
  CHECK(api.endpoints[0].address.port == 8080);
  CHECK(api.endpoints[0].hostname.empty());
  CHECK(api.endpoints[0].priority == 0);
  CHECK(api.endpoints[0].mark.line == 4);
  CHECK(api.endpoints[1].address.host == "::1");
  CHECK(api.endpoints[1].address.v6);
  CHECK(api.endpoints[1].weight == 5);
  CHECK(api.endpoints[1].priority == 1);
  const EndpointConfig& dns = api.endpoints[2];
  CHECK(dns.hostname == "backend.internal");
  CHECK(dns.address.host.empty());
  CHECK(dns.address.port == 9000);
  CHECK(dns.address.text == "Backend.Internal:9000");
  CHECK(dns.address.mark.line == 6);
  CHECK(dns.address.mark.col == 19);
  CHECK(dns.weight == 2);
  CHECK(dns.priority == 127);
  CHECK(api.endpoints[3].hostname == "localhost");
  CHECK(api.endpoints[3].address.port == 80);

  CHECK(api.lb_policy == LbPolicy::kRingHash);
  CHECK(api.hash_on.kind == HashOnConfig::Kind::kHeader);
  CHECK(api.hash_on.name == "x-user");
  CHECK(api.hash_on.mark.line == 9);
  CHECK(api.hash_on.mark.col == 14);
  CHECK(api.ring_size == 4096);
  CHECK(api.least_request_choices == 3);
  CHECK(api.slow_start == milliseconds(30'000));
  CHECK(api.panic_threshold == 50);
  CHECK(api.dns_refresh == milliseconds(10'000));
  REQUIRE(api.dns_resolvers.size() == 5);
  CHECK(api.dns_resolvers[0].host == "127.0.0.1");
  CHECK(api.dns_resolvers[0].port == 5353);
  CHECK(api.dns_resolvers[1].host == "8.8.8.8");
  CHECK(api.dns_resolvers[1].port == 53);
  CHECK(api.dns_resolvers[1].text == "8.8.8.8");
  CHECK(api.dns_resolvers[2].host == "::1");
  CHECK(api.dns_resolvers[2].v6);
  CHECK(api.dns_resolvers[2].port == 53);
  CHECK(api.dns_resolvers[3].host == "2001:db8::1");
  CHECK(api.dns_resolvers[3].port == 54);
  CHECK(api.dns_resolvers[4].host == "2001:db8::2");
  CHECK(api.dns_resolvers[4].port == 53);

  REQUIRE(api.health_check);
  const HealthCheckConfig& hc = *api.health_check;
  CHECK(hc.type == HealthCheckConfig::Type::kHttp);
  CHECK(hc.path == "/healthz?full=1");
  CHECK(hc.host == "health.internal");
  CHECK(hc.expected_statuses == std::vector<std::pair<int, int>>{{200, 200}, {200, 299}, {418, 418}});
  CHECK(hc.interval == milliseconds(2'000));
  CHECK(hc.jitter == milliseconds(500));
  CHECK(hc.timeout == milliseconds(3'000));  // longer than the interval: allowed
  CHECK(hc.healthy_threshold == 1);
  CHECK(hc.unhealthy_threshold == 1000);
  CHECK(hc.mark.line == 17);
  CHECK(hc.mark.col == 7);

  REQUIRE(api.outlier_detection);
  const OutlierDetectionConfig& od = *api.outlier_detection;
  CHECK(od.consecutive_5xx == 0);
  CHECK(od.consecutive_gateway_failure == 7);
  CHECK(od.base_ejection_time == milliseconds(10'000));
  CHECK(od.max_ejection_time == milliseconds(10'000));  // equal to base: allowed
  CHECK(od.max_ejection_percent == 100);
  CHECK(od.mark.line == 27);

  const CircuitBreakersConfig& cb = api.circuit_breakers;
  CHECK(cb.max_connections == 10);
  CHECK(cb.max_pending_requests == 0);
  CHECK(cb.max_requests == 10000000);
  CHECK(cb.max_retries == 5);
  REQUIRE(cb.retry_budget);
  CHECK(cb.retry_budget->percent == 12.5);
  CHECK(cb.retry_budget->min_retry_concurrency == 0);
  CHECK(cb.mark.line == 33);

  const ClusterConfig& db = c.clusters[1];
  CHECK(db.endpoints.at(0).hostname == "db.internal");
  CHECK(db.lb_policy == LbPolicy::kLeastRequest);
  CHECK(db.least_request_choices == 2);
  REQUIRE(db.health_check);
  CHECK(db.health_check->type == HealthCheckConfig::Type::kTcp);
  CHECK(db.health_check->send == "PING\r\n");
  CHECK(db.health_check->expect == "PONG");
  CHECK(db.health_check->path.empty());
  CHECK(db.health_check->interval == milliseconds(1'000));
  REQUIRE(db.outlier_detection);  // `{}`: on, with defaults
  CHECK(db.outlier_detection->consecutive_5xx == 5);
  CHECK(db.outlier_detection->consecutive_gateway_failure == 5);
  CHECK(db.outlier_detection->base_ejection_time == milliseconds(30'000));
  CHECK(db.outlier_detection->max_ejection_time == milliseconds(300'000));
  CHECK(db.outlier_detection->max_ejection_percent == 10);
  REQUIRE(db.circuit_breakers.retry_budget);
  CHECK(db.circuit_breakers.retry_budget->percent == 20);
  CHECK(db.circuit_breakers.retry_budget->min_retry_concurrency == 3);

  CHECK(c.clusters[2].lb_policy == LbPolicy::kMaglev);
  CHECK(c.clusters[2].hash_on.kind == HashOnConfig::Kind::kCookie);
  CHECK(c.clusters[2].hash_on.name == "Session");  // cookie names keep their case
  CHECK(c.clusters[3].lb_policy == LbPolicy::kRandom);
  CHECK(c.clusters[3].hash_on.kind == HashOnConfig::Kind::kQuery);
  CHECK(c.clusters[3].hash_on.name == "user");
}

TEST_CASE("cluster defaults for the new keys", "[config][cluster]") {
  const Config c = ok(load(kCluster));
  const ClusterConfig& cl = c.clusters.at(0);
  CHECK(cl.endpoints.at(0).priority == 0);
  CHECK(cl.endpoints.at(0).hostname.empty());
  CHECK(cl.endpoints.at(0).mark.line == 3);
  CHECK(cl.lb_policy == LbPolicy::kRoundRobin);
  CHECK(cl.hash_on.kind == HashOnConfig::Kind::kNone);
  CHECK(cl.ring_size == 1024);
  CHECK(cl.least_request_choices == 2);
  CHECK(cl.slow_start == milliseconds(0));
  CHECK(cl.panic_threshold == 0);
  CHECK(cl.dns_refresh == milliseconds(5'000));
  CHECK(cl.dns_resolvers.empty());
  CHECK_FALSE(cl.health_check);
  CHECK_FALSE(cl.outlier_detection);
  CHECK(cl.circuit_breakers.max_connections == 1024);
  CHECK(cl.circuit_breakers.max_pending_requests == 1024);
  CHECK(cl.circuit_breakers.max_requests == 1024);
  CHECK(cl.circuit_breakers.max_retries == 3);
  CHECK_FALSE(cl.circuit_breakers.retry_budget);

  // The documented example health check (docs/configuration.md), and the http defaults.
  const Config h = ok(load(withCluster(
      "    health_check: {path: /healthz, interval: 5s, timeout: 1s,\n"
      "                   healthy_threshold: 2, unhealthy_threshold: 3}\n")));
  REQUIRE(h.clusters.at(0).health_check);
  const HealthCheckConfig& hc = *h.clusters[0].health_check;
  CHECK(hc.type == HealthCheckConfig::Type::kHttp);
  CHECK(hc.path == "/healthz");
  CHECK(hc.host.empty());
  CHECK(hc.expected_statuses == std::vector<std::pair<int, int>>{{200, 200}});
  CHECK(hc.interval == milliseconds(5'000));
  CHECK(hc.jitter == milliseconds(0));
  CHECK(hc.timeout == milliseconds(1'000));
  CHECK(hc.healthy_threshold == 2);
  CHECK(hc.unhealthy_threshold == 3);

  // A tcp check with nothing else: connect only.
  const Config t = ok(load(withCluster("    health_check: {type: tcp}\n")));
  CHECK(t.clusters.at(0).health_check->send.empty());
  CHECK(t.clusters.at(0).health_check->expect.empty());

  // Empty blocks: outlier detection on with defaults; circuit breakers at defaults.
  const Config e = ok(load(withCluster("    outlier_detection:\n    circuit_breakers:\n"
                                       "    least_request:\n    dns_resolvers:\n")));
  CHECK(e.clusters.at(0).outlier_detection.has_value());
  CHECK(e.clusters.at(0).circuit_breakers.max_requests == 1024);
  CHECK(e.clusters.at(0).least_request_choices == 2);
  CHECK(e.clusters.at(0).dns_resolvers.empty());
}

TEST_CASE("route retry and hash_on load into the right values", "[config][cluster]") {
  const Config c = ok(load(withRoute(
      "                hash_on: {source_ip: true}\n"
      "                retry:\n"
      "                  attempts: 3\n"
      "                  retry_on: [5xx, gateway-error, retriable-4xx, reset, 409, 503]\n"
      "                  per_try_timeout: 2s\n"
      "                  backoff: {base: 10ms, max: 1s}\n"
      "                  retry_non_idempotent: true\n"
      "                  buffer_limit_kb: 0\n")));
  const RouteActionConfig& a = *c.listeners.at(0).http->virtual_hosts.at(0).routes.at(0).route;
  REQUIRE(a.hash_on);
  CHECK(a.hash_on->kind == HashOnConfig::Kind::kSourceIp);
  CHECK(a.hash_on->name.empty());
  CHECK(a.hash_on->mark.line == 12);
  CHECK(a.hash_on->mark.col == 26);
  REQUIRE(a.retry);
  const RetryConfig& r = *a.retry;
  CHECK(r.attempts == 3);
  CHECK_FALSE(r.on_connect_failure);  // retry_on replaces the default
  CHECK(r.on_reset);
  CHECK(r.on_5xx);
  CHECK(r.on_gateway_error);
  CHECK(r.on_retriable_4xx);
  CHECK(r.statuses == std::vector<int>{409, 503});
  CHECK(r.per_try_timeout == milliseconds(2'000));
  CHECK(r.backoff_base == milliseconds(10));
  CHECK(r.backoff_max == milliseconds(1'000));
  CHECK(r.retry_non_idempotent);
  CHECK(r.buffer_limit_bytes == 0);
  CHECK(r.mark.line == 14);
  CHECK(r.mark.col == 19);

  const Config h = ok(load(withRoute("                hash_on: {header: X-Tenant}\n"
                                     "                retry: {retry_on: [connect-failure]}\n")));
  const RouteActionConfig& b = *h.listeners.at(0).http->virtual_hosts.at(0).routes.at(0).route;
  CHECK(b.hash_on->kind == HashOnConfig::Kind::kHeader);
  CHECK(b.hash_on->name == "x-tenant");
  CHECK(b.retry->on_connect_failure);
  CHECK_FALSE(b.retry->on_reset);
  CHECK(b.retry->statuses.empty());
}

TEST_CASE("route retry defaults", "[config][cluster]") {
  for (const char* block : {"                retry: {}\n", "                retry:\n"}) {
    INFO(block);
    const Config c = ok(load(withRoute(block)));
    const RouteActionConfig& a = *c.listeners.at(0).http->virtual_hosts.at(0).routes.at(0).route;
    CHECK_FALSE(a.hash_on);
    REQUIRE(a.retry);
    const RetryConfig& r = *a.retry;
    CHECK(r.attempts == 1);
    CHECK(r.on_connect_failure);
    CHECK(r.on_reset);
    CHECK_FALSE(r.on_5xx);
    CHECK_FALSE(r.on_gateway_error);
    CHECK_FALSE(r.on_retriable_4xx);
    CHECK(r.statuses.empty());
    CHECK(r.per_try_timeout == milliseconds(0));
    CHECK(r.backoff_base == milliseconds(25));
    CHECK(r.backoff_max == milliseconds(250));
    CHECK_FALSE(r.retry_non_idempotent);
    CHECK(r.buffer_limit_bytes == 64 * 1024);
  }
  // No retry block: no retry policy.
  const Config n = ok(load(withRoute("")));
  CHECK_FALSE(n.listeners.at(0).http->virtual_hosts.at(0).routes.at(0).route->retry);
  // max defaults to 10 x base.
  const Config b = ok(load(withRoute("                retry: {backoff: {base: 100ms}}\n")));
  const RetryConfig& r = *b.listeners.at(0).http->virtual_hosts.at(0).routes.at(0).route->retry;
  CHECK(r.backoff_base == milliseconds(100));
  CHECK(r.backoff_max == milliseconds(1'000));
}

TEST_CASE("route retry errors", "[config][cluster]") {
  CHECK(onlyError(withRoute("                retry: {retry_on: [reset, 5xy]}\n")) ==
        "t.yaml:12:43: unknown retry_on condition '5xy' (use connect-failure, reset, 5xx, "
        "gateway-error, retriable-4xx or a status code 100-599)");
  CHECK(onlyError(withRoute("                retry: {retry_on: [600]}\n")) ==
        "t.yaml:12:36: 'retry_on' must be between 100 and 599, got 600");
  CHECK(onlyError(withRoute("                retry: {retry_on: [reset, reset]}\n")) ==
        "t.yaml:12:43: retry_on lists 'reset' twice");
  CHECK(onlyError(withRoute("                retry: {retry_on: []}\n")) ==
        "t.yaml:12:35: 'retry_on' must not be empty (leave it out for the default: "
        "connect-failure, reset)");
  CHECK(onlyError(withRoute("                retry: {attempts: 11}\n")) ==
        "t.yaml:12:35: 'attempts' must be between 0 and 10, got 11");
  CHECK(onlyError(withRoute("                retry:\n"
                            "                  backoff: {base: 100ms, max: 50ms}\n")) ==
        "t.yaml:13:47: backoff 'max' (50ms) must not be less than 'base' (100ms)");
  CHECK(onlyError(withRoute("                retry: {backoff: {max: 10ms}}\n")) ==
        "t.yaml:12:40: backoff 'max' (10ms) must not be less than 'base' (25ms)");
  CHECK(onlyError(withRoute("                retry: {backoff: {base: 0s}}\n")) ==
        "t.yaml:12:41: 'base' must be greater than 0s");
  CHECK(onlyError(withRoute("                retry: {buffer_limit_kb: 65537}\n")) ==
        "t.yaml:12:42: 'buffer_limit_kb' must be between 0 and 65536, got 65537");
  CHECK(onlyError(withRoute("                retry: {per_try_timeout: 2}\n")) ==
        "t.yaml:12:42: bad duration '2' (use a unit: 250ms, 15s, 5m)");
  CHECK(onlyError(withRoute("                retry: {attempt: 2}\n")) ==
        "t.yaml:12:25: unknown key 'attempt' in retry (did you mean 'attempts'?)");
  CHECK(onlyError(withRoute("                hash_on: {header: \"x y\"}\n")) ==
        "t.yaml:12:35: bad header name 'x y' (use letters, digits and !#$%&'*+-.^_`|~)");
}

TEST_CASE("hash_on errors", "[config][cluster]") {
  CHECK(onlyError(withCluster("    hash_on: {header: x-user, cookie: sid}\n")) ==
        "t.yaml:4:31: hash_on has both 'header' and 'cookie' (use exactly one)");
  CHECK(onlyError(withCluster("    hash_on: {source_ip: false}\n")) ==
        "t.yaml:4:26: 'source_ip' must be true (leave hash_on out for no hash key)");
  CHECK(onlyError(withCluster("    hash_on: {}\n")) ==
        "t.yaml:4:14: hash_on needs one of 'header', 'cookie', 'query' or 'source_ip'");
  CHECK(onlyError(withCluster("    hash_on: {cookie: \"a;b\"}\n")) ==
        "t.yaml:4:23: bad cookie name 'a;b' (use letters, digits and !#$%&'*+-.^_`|~)");
  CHECK(onlyError(withCluster("    hash_on: {query: \"a=b\"}\n")) ==
        "t.yaml:4:22: bad query parameter name 'a=b' (no spaces, control characters, non-ASCII "
        "bytes, '&', '=' or '#')");
  CHECK(errorsOf(load(withCluster("    hash_on: {path: x}\n"))) ==
        std::vector<std::string>{
            "t.yaml:4:14: hash_on needs one of 'header', 'cookie', 'query' or 'source_ip'",
            "t.yaml:4:15: unknown key 'path' in hash_on",
        });
  CHECK(onlyError(withCluster("    hash_on: header\n")) ==
        "t.yaml:4:14: expected a mapping for 'hash_on', got 'header'");
}

TEST_CASE("endpoint errors", "[config][cluster]") {
  auto endpoint = [](const std::string& inner) {
    return "clusters:\n  - name: api\n    endpoints:\n      - " + inner + "\n";
  };
  CHECK(onlyError(endpoint("address: back_end.internal:80")) ==
        "t.yaml:4:18: bad address 'back_end.internal:80': host name 'back_end.internal' has a "
        "bad character '_' (use letters, digits, '-' and '.')");
  CHECK(onlyError(endpoint("address: a..b:80")) ==
        "t.yaml:4:18: bad address 'a..b:80': host name 'a..b' has an empty label (check the "
        "dots)");
  CHECK(onlyError(endpoint("address: -a.b:80")) ==
        "t.yaml:4:18: bad address '-a.b:80': host name '-a.b' has a label that starts or ends "
        "with '-'");
  CHECK(onlyError(endpoint("address: " + std::string(64, 'a') + ".com:80")) ==
        "t.yaml:4:18: bad address '" + std::string(64, 'a') + ".com:80': host name '" +
            std::string(64, 'a') + ".com' has a label longer than 63 characters");
  std::string longName;
  for (int i = 0; i < 64; ++i) longName += "abc.";
  longName += "com";  // 259 characters
  CHECK(onlyError(endpoint("address: " + longName + ":80")) ==
        "t.yaml:4:18: bad address '" + longName + ":80': host name is longer than 253 characters");
  CHECK(onlyError(endpoint("address: backend.internal")) ==
        "t.yaml:4:18: bad address 'backend.internal': missing port (use host:port)");
  CHECK(onlyError(endpoint("address: backend.internal:0")) ==
        "t.yaml:4:18: bad address 'backend.internal:0': port must be 1-65535 here");
  CHECK(onlyError(endpoint("address: backend.internal:65536")) ==
        "t.yaml:4:18: bad address 'backend.internal:65536': port out of range (0-65535)");
  CHECK(onlyError(endpoint("address: backend.internal:http")) ==
        "t.yaml:4:18: bad address 'backend.internal:http': port must be a decimal number");
  CHECK(onlyError(endpoint("address: 1.2.3:80")) ==
        "t.yaml:4:18: bad address '1.2.3:80': bad IPv4 address");
  CHECK(onlyError(endpoint("{address: 127.0.0.1:1, priority: 128}")) ==
        "t.yaml:4:42: 'priority' must be between 0 and 127, got 128");
  CHECK(onlyError(endpoint("{address: 127.0.0.1:1, priority: -1}")) ==
        "t.yaml:4:42: 'priority' must be between 0 and 127, got -1");
}

TEST_CASE("cluster value errors", "[config][cluster]") {
  CHECK(onlyError(withCluster("    ring_size: 0\n")) ==
        "t.yaml:4:16: 'ring_size' must be between 1 and 8388608, got 0");
  CHECK(onlyError(withCluster("    least_request: {choices: 1}\n")) ==
        "t.yaml:4:30: 'choices' must be between 2 and 10, got 1");
  CHECK(onlyError(withCluster("    slow_start: 30\n")) ==
        "t.yaml:4:17: bad duration '30' (use a unit: 250ms, 15s, 5m)");
  CHECK(onlyError(withCluster("    panic_threshold: 101\n")) ==
        "t.yaml:4:22: 'panic_threshold' must be between 0 and 100, got 101");
  CHECK(onlyError(withCluster("    dns_refresh: 0s\n")) ==
        "t.yaml:4:18: 'dns_refresh' must be greater than 0s");
  CHECK(onlyError(withCluster("    dns_resolvers: [8.8.8.8, dns.google]\n")) ==
        "t.yaml:4:30: bad resolver address 'dns.google': host must be an IP address (DNS names "
        "are not supported yet) (use an IP address, optionally with :port; port 53 if left out)");
  CHECK(onlyError(withCluster("    dns_resolvers: [\"1.1.1.1:0\"]\n")) ==
        "t.yaml:4:21: bad resolver address '1.1.1.1:0': port must be 1-65535 here (use an IP "
        "address, optionally with :port; port 53 if left out)");
  CHECK(onlyError(withCluster("    outlier_detection: {max_ejection_percent: 101}\n")) ==
        "t.yaml:4:47: 'max_ejection_percent' must be between 0 and 100, got 101");
  CHECK(onlyError(withCluster("    outlier_detection: {consecutive_5xx: 1001}\n")) ==
        "t.yaml:4:42: 'consecutive_5xx' must be between 0 and 1000, got 1001");
  CHECK(onlyError(withCluster("    circuit_breakers: {max_requests: 10000001}\n")) ==
        "t.yaml:4:38: 'max_requests' must be between 0 and 10000000, got 10000001");
  CHECK(onlyError(withCluster("    circuit_breakers: {retry_budget: {percent: 100.5}}\n")) ==
        "t.yaml:4:48: 'percent' must be between 0 and 100, got 100.5");
  CHECK(onlyError(withCluster("    circuit_breakers: {retry_budget: {percent: -1}}\n")) ==
        "t.yaml:4:48: expected a number for 'percent', got '-1'");
  CHECK(onlyError(withCluster("    circuit_breakers: {max_retires: 1}\n")) ==
        "t.yaml:4:24: unknown key 'max_retires' in circuit_breakers (did you mean 'max_retries'?)");
}

TEST_CASE("protocol http2 over TLS asks for h2 by ALPN unless the cluster names its protocols", "[config][cluster]") {
  auto r = ferry::config::loadConfigString(withCluster("    protocol: http2\n    tls: {}\n"), "t.yaml");
  REQUIRE(r.errors.empty());
  REQUIRE(r.config->clusters[0].tls);
  CHECK(r.config->clusters[0].tls->protocol.alpn == std::vector<std::string>{"h2"});
  auto h1 = ferry::config::loadConfigString(withCluster("    tls: {}\n"), "t.yaml");
  REQUIRE(h1.errors.empty());
  CHECK(h1.config->clusters[0].tls->protocol.alpn.empty());
}

TEST_CASE("grpc health checks take a service; other types do not", "[config][cluster]") {
  auto r = ferry::config::loadConfigString(withCluster("    health_check: {type: grpc, service: pkg.Svc}\n"), "t.yaml");
  REQUIRE(r.errors.empty());
  CHECK(r.config->clusters[0].health_check->type == ferry::config::HealthCheckConfig::Type::kGrpc);
  CHECK(r.config->clusters[0].health_check->grpc_service == "pkg.Svc");
  CHECK(onlyError(withCluster("    health_check: {type: tcp, service: x}\n")) ==
        "t.yaml:4:31: 'service' is only for grpc health checks (this one has type tcp)");
}

TEST_CASE("outlier detection ejection times", "[config][cluster]") {
  CHECK(onlyError(withCluster("    outlier_detection:\n"
                              "      base_ejection_time: 30s\n"
                              "      max_ejection_time: 10s\n")) ==
        "t.yaml:6:26: 'max_ejection_time' (10s) must not be less than 'base_ejection_time' (30s)");
  // Only base given, past the default max (300s): reported at base.
  CHECK(onlyError(withCluster("    outlier_detection: {base_ejection_time: 10m}\n")) ==
        "t.yaml:4:45: 'max_ejection_time' (5m) must not be less than 'base_ejection_time' (10m)");
  CHECK(onlyError(withCluster("    outlier_detection: {base_ejection_time: 0s}\n")) ==
        "t.yaml:4:45: 'base_ejection_time' must be greater than 0s");
}

TEST_CASE("health check errors", "[config][cluster]") {
  CHECK(onlyError(withCluster("    health_check: {interval: 5s}\n")) ==
        "t.yaml:4:19: missing required key 'path' in health_check (an http check needs it)");
  CHECK(onlyError(withCluster("    health_check: {type: http, interval: 5s}\n")) ==
        "t.yaml:4:19: missing required key 'path' in health_check (an http check needs it)");
  CHECK(onlyError(withCluster("    health_check: {path: healthz}\n")) ==
        "t.yaml:4:26: 'path' must start with '/', got 'healthz'");
  CHECK(onlyError(withCluster("    health_check: {path: /, send: PING}\n")) ==
        "t.yaml:4:29: 'send' is only for tcp health checks (this one has type http)");
  CHECK(onlyError(withCluster("    health_check: {type: tcp, path: /}\n")) ==
        "t.yaml:4:31: 'path' is only for http health checks (this one has type tcp)");
  CHECK(onlyError(withCluster("    health_check: {type: tcp, expected_statuses: [200]}\n")) ==
        "t.yaml:4:31: 'expected_statuses' is only for http health checks (this one has type tcp)");
  CHECK(onlyError(withCluster("    health_check: {type: udp}\n")) ==
        "t.yaml:4:26: bad type 'udp' (use http, tcp, grpc)");
  CHECK(onlyError(withCluster("    health_check: {path: /, expected_statuses: [\"299-200\"]}\n")) ==
        "t.yaml:4:49: bad status range '299-200' (use LOW-HIGH with 100 <= LOW <= HIGH <= 599, "
        "e.g. \"200-299\")");
  CHECK(onlyError(withCluster("    health_check: {path: /, expected_statuses: [200-700]}\n")) ==
        "t.yaml:4:49: bad status range '200-700' (use LOW-HIGH with 100 <= LOW <= HIGH <= 599, "
        "e.g. \"200-299\")");
  CHECK(onlyError(withCluster("    health_check: {path: /, expected_statuses: [2xx]}\n")) ==
        "t.yaml:4:49: expected an integer for 'expected_statuses', got '2xx'");
  CHECK(onlyError(withCluster("    health_check: {path: /, expected_statuses: [99]}\n")) ==
        "t.yaml:4:49: 'expected_statuses' must be between 100 and 599, got 99");
  CHECK(onlyError(withCluster("    health_check: {path: /, expected_statuses: []}\n")) ==
        "t.yaml:4:48: 'expected_statuses' must not be empty");
  CHECK(onlyError(withCluster("    health_check: {path: /, interval: 0s}\n")) ==
        "t.yaml:4:39: 'interval' must be greater than 0s");
  CHECK(onlyError(withCluster("    health_check: {path: /, timeout: 0s}\n")) ==
        "t.yaml:4:38: 'timeout' must be greater than 0s");
  CHECK(onlyError(withCluster("    health_check: {path: /, healthy_threshold: 0}\n")) ==
        "t.yaml:4:48: 'healthy_threshold' must be between 1 and 1000, got 0");
  CHECK(onlyError(withCluster("    health_check: {path: /, host: \"a b\"}\n")) ==
        "t.yaml:4:35: bad host 'a b' (use a host name or IP address, optionally with :port)");
}

TEST_CASE("cluster and route errors are all reported together", "[config][cluster]") {
  const std::string yaml = R"(clusters:
  - name: api
    endpoints:
      - {address: bad_name:80, priority: 200}
    health_check: {type: tcp, send: x, path: /}
    outlier_detection: {base_ejection_time: 1m, max_ejection_time: 30s}
    hash_on: {header: a, query: b}
)";
  LoadResult r = load(yaml);
  CHECK_FALSE(r.config.has_value());
  CHECK(errorsOf(r) == std::vector<std::string>{
                           "t.yaml:4:19: bad address 'bad_name:80': host name 'bad_name' has a bad "
                           "character '_' (use letters, digits, '-' and '.')",
                           "t.yaml:4:42: 'priority' must be between 0 and 127, got 200",
                           "t.yaml:5:40: 'path' is only for http health checks (this one has "
                           "type tcp)",
                           "t.yaml:6:68: 'max_ejection_time' (30s) must not be less than "
                           "'base_ejection_time' (1m)",
                           "t.yaml:7:26: hash_on has both 'header' and 'query' (use exactly one)",
                       });
}

TEST_CASE("parseEndpointAddress and parseAddressDefaultPort", "[config][values]") {
  std::string name;
  auto a = parseEndpointAddress("API.example.com:443", &name);
  REQUIRE(a);
  CHECK(name == "api.example.com");
  CHECK(a->host.empty());
  CHECK(a->port == 443);
  a = parseEndpointAddress("10.1.2.3:80", &name);
  REQUIRE(a);
  CHECK(name.empty());
  CHECK(a->host == "10.1.2.3");
  std::string why;
  CHECK_FALSE(parseEndpointAddress("a.b.:80", &name, &why));
  CHECK(why == "host name 'a.b.' has an empty label (check the dots)");
  CHECK_FALSE(parseEndpointAddress("::1:80", &name, &why));
  CHECK_THAT(why, Catch::Contains("must be in brackets"));
  CHECK(dnsNameProblem("a-b.c0") == "");
  CHECK(dnsNameProblem(std::string(63, 'x')) == "");

  auto d = parseAddressDefaultPort("9.9.9.9", 53);
  REQUIRE(d);
  CHECK(d->port == 53);
  CHECK(d->text == "9.9.9.9");
  CHECK_FALSE(parseAddressDefaultPort("", 53));
  CHECK_FALSE(parseAddressDefaultPort("[::1", 53));
  CHECK(parseAddressDefaultPort("[::1]:99", 53)->port == 99);
}
