// The `http` listener block: filters, virtual hosts, routes, and their errors.
#include <catch2/catch.hpp>

#include "config/loader.h"
#include "config/node_reader.h"
#include "filters/http/buffer/buffer_filter.h"
#include "filters/http/compression/compression_filter.h"
#include "filters/http/fault/fault_filter.h"
#include "tests/unit/config/loader_test_util.h"

using namespace ferry::config;
using namespace ferry::config::test;
using std::chrono::milliseconds;

namespace {

using ferry::filters::http::BufferFilterConfig;
using ferry::filters::http::FaultFilterConfig;

// A filter entry's own config, as its parser reads it.
BufferFilterConfig bufferOf(const HttpFilterConfig& e) {
  NodeReader r;
  auto c = ferry::filters::http::parseBufferFilterConfig(e, r);
  REQUIRE(c);
  return *c;
}
FaultFilterConfig faultOf(const HttpFilterConfig& e) {
  NodeReader r;
  auto c = ferry::filters::http::parseFaultFilterConfig(e, r);
  REQUIRE(c);
  return *c;
}

const std::string kClusters =
    "clusters:\n"
    "  - {name: api, endpoints: [{address: 127.0.0.1:9000}]}\n"
    "  - {name: canary, endpoints: [{address: 127.0.0.1:9001}]}\n";

// Lines 1-4; the http block's keys start on line 5, column 7.
const std::string kHead =
    "listeners:\n"
    "  - name: web\n"
    "    address: 0.0.0.0:8080\n"
    "    http:\n";

// A valid virtual_hosts block (5 lines), to put after http keys under test.
const std::string kVhosts =
    "      virtual_hosts:\n"
    "        - name: v\n"
    "          domains: ['*']\n"
    "          routes:\n"
    "            - {match: {prefix: /}, route: {cluster: api}}\n";

// An http block: `keys` (at 6 spaces, from line 5) then kVhosts.
std::string withHttp(const std::string& keys) { return kHead + keys + kVhosts + kClusters; }

// Routes under test start on line 9: "            - " puts the route's first key at column 15.
std::string withRoutes(const std::string& routes) {
  return kHead +
         "      virtual_hosts:\n"
         "        - name: v\n"
         "          domains: ['*']\n"
         "          routes:\n" +
         routes + kClusters;
}

// Filters under test start on line 6 ("        - " puts a filter's first key at column 11).
std::string withFilters(const std::string& filters) {
  return withHttp("      filters:\n" + filters);
}

}  // namespace

TEST_CASE("a full http listener loads into the right values", "[config][http]") {
  const std::string yaml = R"(listeners:
  - name: edge
    address: 0.0.0.0:8080
    http:
      idle_timeout: 30s
      request_headers_timeout: 0s
      max_request_headers_kb: 32
      max_headers: 50
      xff_trusted_hops: 1
      merge_slashes: true
      max_requests_per_connection: 1000
      filters:
        - name: buffer
          config: {max_request_bytes: 4096}
        - name: fault
          config:
            delay: {duration: 100ms, percentage: 12.5}
            abort: {status: 503}
      virtual_hosts:
        - name: api
          domains: ["API.Example.com", "*.example.com"]
          routes:
            - match:
                prefix: /v1/
                headers:
                  - {name: X-Env, exact: prod}
                  - {name: x-canary, present: true}
                  - {name: x-user, regex: "u[0-9]+"}
                  - {name: x-pre, prefix: ""}
                methods: [GET, POST]
              route:
                weighted_clusters:
                  - {cluster: api, weight: 90}
                  - {cluster: canary, weight: 10}
                prefix_rewrite: /
                host_rewrite: api.internal:8443
                timeout: 0s
              request_headers:
                set: {X-Env: prod, x-empty: ""}
                add: {x-a: b}
                remove: [X-Debug]
              response_headers: {remove: [server]}
            - match: {regex: "^/u/[0-9]+$"}
              route: {cluster: api}
        - name: fallback
          domains: ["*"]
          routes:
            - match: {path: /healthz}
              direct_response: {status: 200, body: "ok\n"}
            - match: {prefix: /old/}
              redirect: {prefix_rewrite: /new/, code: 308}
            - match: {prefix: /}
              redirect: {scheme_redirect: https, host_redirect: "[::1]:8443", path_redirect: /x}
            - match: {path: /gone}
              direct_response: {status: 410}
clusters:
  - {name: api, endpoints: [{address: 127.0.0.1:9000}], max_requests_per_connection: 100,
     max_idle_connections: 8, idle_timeout: 5s}
  - {name: canary, endpoints: [{address: 127.0.0.1:9001}]}
)";
  const Config c = ok(load(yaml));
  REQUIRE(c.listeners.size() == 1);
  const ListenerConfig& l = c.listeners[0];
  CHECK_FALSE(l.tcp);
  REQUIRE(l.http);
  const HttpConfig& h = *l.http;
  CHECK(h.mark.line == 4);
  CHECK(h.mark.col == 5);
  CHECK(h.idle_timeout == milliseconds(30'000));
  CHECK(h.request_headers_timeout == milliseconds(0));
  CHECK(h.max_request_headers_kb == 32);
  CHECK(h.max_headers == 50);
  CHECK(h.xff_trusted_hops == 1);
  CHECK(h.merge_slashes);
  CHECK(h.max_requests_per_connection == 1000);

  REQUIRE(h.filters.size() == 2);
  CHECK(h.filters[0].name == "buffer");
  REQUIRE(h.filters[0].config);  // kept as written: the filter parses it
  CHECK(bufferOf(h.filters[0]).max_request_bytes == 4096);
  CHECK(h.filters[0].mark.line == 13);
  CHECK(h.filters[1].name == "fault");
  const FaultFilterConfig fault = faultOf(h.filters[1]);
  CHECK(fault.delay == milliseconds(100));
  CHECK(fault.delay_percentage == 12.5);
  CHECK(fault.abort_status == 503);
  CHECK(fault.abort_percentage == 100);

  REQUIRE(h.virtual_hosts.size() == 2);
  const VirtualHostConfig& api = h.virtual_hosts[0];
  CHECK(api.name == "api");
  CHECK(api.domains == std::vector<std::string>{"api.example.com", "*.example.com"});
  CHECK(api.mark.line == 20);
  REQUIRE(api.routes.size() == 2);
  const RouteConfig& r0 = api.routes[0];
  CHECK(r0.mark.line == 23);
  CHECK(r0.mark.col == 15);
  CHECK(r0.match.kind == RouteMatchConfig::Kind::kPrefix);
  CHECK(r0.match.value == "/v1/");
  REQUIRE(r0.match.headers.size() == 4);
  CHECK(r0.match.headers[0].name == "x-env");
  CHECK(r0.match.headers[0].kind == HeaderMatcherConfig::Kind::kExact);
  CHECK(r0.match.headers[0].value == "prod");
  CHECK(r0.match.headers[1].name == "x-canary");
  CHECK(r0.match.headers[1].kind == HeaderMatcherConfig::Kind::kPresent);
  CHECK(r0.match.headers[2].kind == HeaderMatcherConfig::Kind::kRegex);
  CHECK(r0.match.headers[2].value == "u[0-9]+");
  CHECK(r0.match.headers[3].kind == HeaderMatcherConfig::Kind::kPrefix);
  CHECK(r0.match.headers[3].value.empty());
  CHECK(r0.match.methods == std::vector<std::string>{"GET", "POST"});
  REQUIRE(r0.route);
  CHECK_FALSE(r0.direct_response);
  CHECK_FALSE(r0.redirect);
  CHECK(r0.route->cluster.empty());
  REQUIRE(r0.route->weighted_clusters.size() == 2);
  CHECK(r0.route->weighted_clusters[0].cluster == "api");
  CHECK(r0.route->weighted_clusters[0].weight == 90);
  CHECK(r0.route->weighted_clusters[1].cluster == "canary");
  CHECK(r0.route->weighted_clusters[1].weight == 10);
  CHECK(r0.route->prefix_rewrite == "/");
  CHECK(r0.route->host_rewrite == "api.internal:8443");
  CHECK(r0.route->timeout == milliseconds(0));
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  CHECK(r0.request_headers.set == Pairs{{"x-env", "prod"}, {"x-empty", ""}});
  CHECK(r0.request_headers.add == Pairs{{"x-a", "b"}});
  CHECK(r0.request_headers.remove == std::vector<std::string>{"x-debug"});
  CHECK(r0.response_headers.set.empty());
  CHECK(r0.response_headers.remove == std::vector<std::string>{"server"});

  const RouteConfig& r1 = api.routes[1];
  CHECK(r1.match.kind == RouteMatchConfig::Kind::kRegex);
  CHECK(r1.match.value == "^/u/[0-9]+$");
  CHECK(r1.match.headers.empty());
  CHECK(r1.match.methods.empty());
  REQUIRE(r1.route);
  CHECK(r1.route->cluster == "api");
  CHECK(r1.route->cluster_mark.line == 44);
  CHECK(r1.route->cluster_mark.col == 32);
  CHECK(r1.route->timeout == milliseconds(15'000));
  CHECK_FALSE(r1.route->prefix_rewrite);
  CHECK_FALSE(r1.route->host_rewrite);

  const VirtualHostConfig& fb = h.virtual_hosts[1];
  CHECK(fb.domains == std::vector<std::string>{"*"});
  REQUIRE(fb.routes.size() == 4);
  CHECK(fb.routes[0].match.kind == RouteMatchConfig::Kind::kPath);
  CHECK(fb.routes[0].match.value == "/healthz");
  REQUIRE(fb.routes[0].direct_response);
  CHECK(fb.routes[0].direct_response->status == 200);
  CHECK(fb.routes[0].direct_response->body == "ok\n");
  REQUIRE(fb.routes[1].redirect);
  CHECK(fb.routes[1].redirect->prefix_rewrite == "/new/");
  CHECK(fb.routes[1].redirect->code == 308);
  CHECK_FALSE(fb.routes[1].redirect->path);
  REQUIRE(fb.routes[2].redirect);
  CHECK(fb.routes[2].redirect->scheme == "https");
  CHECK(fb.routes[2].redirect->host == "[::1]:8443");
  CHECK(fb.routes[2].redirect->path == "/x");
  CHECK(fb.routes[2].redirect->code == 301);
  REQUIRE(fb.routes[3].direct_response);
  CHECK(fb.routes[3].direct_response->status == 410);
  CHECK(fb.routes[3].direct_response->body.empty());

  const ClusterConfig* cl = c.findCluster("api");
  REQUIRE(cl != nullptr);
  CHECK(cl->max_requests_per_connection == 100);
  CHECK(cl->max_idle_connections == 8);
  CHECK(cl->idle_timeout == milliseconds(5'000));
}

TEST_CASE("http.close_flush_timeout loads; 0s turns it off; a bad value is an error at its place", "[config][http]") {
  CHECK(ok(load(withHttp("      close_flush_timeout: 2s\n"))).listeners.at(0).http->close_flush_timeout ==
        milliseconds(2'000));
  CHECK(ok(load(withHttp("      close_flush_timeout: 0s\n"))).listeners.at(0).http->close_flush_timeout ==
        milliseconds(0));
  CHECK(onlyError(withHttp("      close_flush_timeout: soon\n")) ==
        "t.yaml:5:28: bad duration 'soon' (use a unit: 250ms, 15s, 5m)");
}

TEST_CASE("http defaults", "[config][http]") {
  const Config c = ok(load(withHttp("")));
  const HttpConfig& h = *c.listeners.at(0).http;
  CHECK(h.idle_timeout == milliseconds(60'000));
  CHECK(h.request_headers_timeout == milliseconds(10'000));
  CHECK(h.close_flush_timeout == milliseconds(10'000));
  CHECK(h.max_request_headers_kb == 60);
  CHECK(h.max_headers == 100);
  CHECK(h.xff_trusted_hops == 0);
  CHECK_FALSE(h.merge_slashes);
  CHECK(h.max_requests_per_connection == 0);
  CHECK(h.filters.empty());
  REQUIRE(h.virtual_hosts.size() == 1);
  const RouteConfig& r = h.virtual_hosts[0].routes.at(0);
  CHECK(r.route->timeout == milliseconds(15'000));
  CHECK(r.request_headers.set.empty());

  // Filters given without config take their defaults; "filters:" alone is no filter.
  CHECK(bufferOf(ok(load(withFilters("        - name: buffer\n"))).listeners[0].http->filters.at(0))
            .max_request_bytes == 1024 * 1024);
  CHECK(ok(load(withHttp("      filters:\n"))).listeners[0].http->filters.empty());
}

TEST_CASE("http block keys are validated", "[config][http]") {
  CHECK(onlyError(withHttp("      idle_timeout: 5\n")) ==
        "t.yaml:5:21: bad duration '5' (use a unit: 250ms, 15s, 5m)");
  CHECK(onlyError(withHttp("      request_headers_timeout: -1s\n")) ==
        "t.yaml:5:32: bad duration '-1s' (use a unit: 250ms, 15s, 5m)");
  CHECK(onlyError(withHttp("      max_request_headers_kb: 0\n")) ==
        "t.yaml:5:31: 'max_request_headers_kb' must be between 1 and 8192, got 0");
  CHECK(onlyError(withHttp("      max_request_headers_kb: 8193\n")) ==
        "t.yaml:5:31: 'max_request_headers_kb' must be between 1 and 8192, got 8193");
  CHECK(onlyError(withHttp("      max_headers: 10001\n")) ==
        "t.yaml:5:20: 'max_headers' must be between 1 and 10000, got 10001");
  CHECK(onlyError(withHttp("      xff_trusted_hops: many\n")) ==
        "t.yaml:5:25: expected an integer for 'xff_trusted_hops', got 'many'");
  CHECK(onlyError(withHttp("      merge_slashes: yes\n")) ==
        "t.yaml:5:22: expected a boolean (true/false) for 'merge_slashes', got 'yes'");
  CHECK(onlyError(withHttp("      max_requests_per_connection: 1.5\n")) ==
        "t.yaml:5:36: expected an integer for 'max_requests_per_connection', got '1.5'");
  CHECK(onlyError(withHttp("      idle_timout: 5s\n")) ==
        "t.yaml:5:7: unknown key 'idle_timout' in http (did you mean 'idle_timeout'?)");
  CHECK(onlyError(withHttp("      access_log:\n        - {path: /dev/stdout, format: xml}\n")) ==
        "t.yaml:6:39: bad format 'xml' (use text, json)");
  CHECK(onlyError(withHttp("      access_log:\n        - {path: /dev/stdout, text_format: \"%FOO%\"}\n")) ==
        "t.yaml:6:44: unknown access log command %FOO% at offset 0");
  CHECK(onlyError(withHttp("      access_log:\n        - {path: /dev/stdout, format: json, text_format: \"%DURATION%\"}\n")) ==
        "t.yaml:6:45: 'text_format' goes with format: text (use json_format for json)");
  CHECK(onlyError(withHttp("      access_log:\n        - {path: /dev/stdout, filter: {sample_rate: 2}}\n")) ==
        "t.yaml:6:53: 'sample_rate' must be between 0 and 1, got 2");
  CHECK(onlyError(withHttp("      access_log:\n        - {format: json}\n")) ==
        "t.yaml:6:11: missing required key 'path' in access log");
  CHECK(onlyError(kHead + "      idle_timeout: 1s\n" + kClusters) ==
        "t.yaml:5:7: missing required key 'virtual_hosts' in http");
  CHECK(onlyError(kHead + kClusters) == "t.yaml:4:5: missing required key 'virtual_hosts' in http");
  CHECK(onlyError(kHead + "      virtual_hosts: []\n" + kClusters) ==
        "t.yaml:5:22: 'virtual_hosts' must not be empty");
  CHECK(onlyError("listeners:\n  - {name: web, address: 0.0.0.0:80, http: [a]}\n") ==
        "t.yaml:2:44: expected a mapping for 'http', got a list");
}

TEST_CASE("all errors of an http block are reported together", "[config][http]") {
  const std::string yaml = R"(listeners:
  - name: web
    address: 0.0.0.0:80
    http:
      idle_timeout: soon
      max_headers: 0
      access_log: []
      filters:
        - name: gzip
        - {name: fault, config: {}}
      virtual_hosts:
        - name: a
          domains: ["A.com", "b.com:80"]
          routes:
            - match: {prefix: v1}
              route: {cluster: nope, retry: {attempts: 20}}
            - match: {regex: "("}
              direct_response: {status: 99}
              redirect: {code: 300}
        - name: a
          domains: [a.com]
          routes: []
clusters:
  - {name: api, endpoints: [{address: 127.0.0.1:9000}]}
)";
  LoadResult r = load(yaml);
  CHECK_FALSE(r.config.has_value());
  CHECK(errorsOf(r) ==
        std::vector<std::string>{
            "t.yaml:5:21: bad duration 'soon' (use a unit: 250ms, 15s, 5m)",
            "t.yaml:6:20: 'max_headers' must be between 1 and 10000, got 0",
            "t.yaml:9:17: unknown filter 'gzip' (use basic_auth, buffer, compression, cors, fault, global_rate_limit, local_rate_limit, rbac)",
            "t.yaml:10:33: fault config needs at least one of 'delay' or 'abort'",
            "t.yaml:13:30: domain 'b.com:80' must not have a port (the Host header is matched "
            "without its port)",
            "t.yaml:15:31: 'prefix' must start with '/', got 'v1'",
            "t.yaml:16:32: unknown cluster 'nope'",
            "t.yaml:16:56: 'attempts' must be between 0 and 10, got 20",
            "t.yaml:17:30: bad regex '(': missing ): (",
            "t.yaml:18:41: 'status' must be between 200 and 599, got 99",
            "t.yaml:19:15: route has both 'direct_response' and 'redirect' (use exactly one)",
            "t.yaml:19:25: redirect needs at least one of 'scheme_redirect', 'host_redirect', "
            "'path_redirect' or 'prefix_rewrite' (it would redirect to itself)",
            "t.yaml:19:32: bad redirect code 300 (use 301, 302, 303, 307, 308)",
            "t.yaml:20:17: duplicate virtual host name 'a'",
            "t.yaml:21:21: domain 'a.com' is already used by virtual host 'a'",
            "t.yaml:22:19: 'routes' must not be empty",
        });
}

TEST_CASE("filters", "[config][http]") {
  SECTION("unknown names list the known ones; the router is implicit") {
    CHECK(onlyError(withFilters("        - name: gzip\n")) ==
          "t.yaml:6:17: unknown filter 'gzip' (use basic_auth, buffer, compression, cors, fault, global_rate_limit, local_rate_limit, rbac)");
    CHECK(onlyError(withFilters("        - name: router\n")) ==
          "t.yaml:6:17: the router filter is implicit and always last; do not list it");
    CHECK(onlyError(withFilters("        - {name: buffer}\n        - {name: buffer}\n")) ==
          "t.yaml:7:18: filter 'buffer' is listed twice");
    CHECK(onlyError(withFilters("        - config: {}\n")) ==
          "t.yaml:6:11: missing required key 'name' in filter");
    CHECK(onlyError(withFilters("        - {name: buffer, settings: {}}\n")) ==
          "t.yaml:6:26: unknown key 'settings' in filter");
    CHECK(onlyError(withHttp("      filters: {name: buffer}\n")) ==
          "t.yaml:5:16: expected a list for 'filters', got a mapping");
  }
  SECTION("buffer") {
    CHECK(onlyError(withFilters("        - {name: buffer, config: {max_request_bytes: 0}}\n")) ==
          "t.yaml:6:54: 'max_request_bytes' must be between 1 and 1073741824, got 0");
    CHECK(onlyError(withFilters("        - {name: buffer, config: {max_bytes: 1}}\n")) ==
          "t.yaml:6:35: unknown key 'max_bytes' in buffer config");
    // The loader keeps a filter's block as plain data but still rejects duplicate keys in it.
    CHECK(onlyError(withFilters("        - {name: buffer, config: {max_request_bytes: 1, max_request_bytes: 2}}\n")) ==
          "t.yaml:6:57: duplicate key 'max_request_bytes'");
  }
  SECTION("fault") {
    CHECK(onlyError(withFilters("        - name: fault\n")) ==
          "t.yaml:6:11: missing required key 'config' in filter");
    CHECK(onlyError(withFilters("        - {name: fault, config: {}}\n")) ==
          "t.yaml:6:33: fault config needs at least one of 'delay' or 'abort'");
    CHECK(onlyError(withFilters("        - name: fault\n          config:\n"
                                "            delay: {duration: 0s}\n")) ==
          "t.yaml:8:31: 'duration' must be greater than 0s");
    CHECK(onlyError(withFilters("        - name: fault\n          config:\n"
                                "            delay: {percentage: 5}\n")) ==
          "t.yaml:8:20: missing required key 'duration' in delay");
    CHECK(onlyError(withFilters("        - name: fault\n          config:\n"
                                "            abort: {status: 600}\n")) ==
          "t.yaml:8:29: 'status' must be between 200 and 599, got 600");
    CHECK(onlyError(withFilters("        - name: fault\n          config:\n"
                                "            abort: {status: 503, percentage: 100.5}\n")) ==
          "t.yaml:8:46: 'percentage' must be between 0 and 100, got 100.5");
    CHECK(onlyError(withFilters("        - name: fault\n          config:\n"
                                "            abort: {status: 503, percentage: \"10\"}\n")) ==
          "t.yaml:8:46: expected a number for 'percentage', got the quoted string \"10\"");
    CHECK(onlyError(withFilters("        - name: fault\n          config:\n"
                                "            abort: {status: 503, percentage: -1}\n")) ==
          "t.yaml:8:46: expected a number for 'percentage', got '-1'");
    CHECK(onlyError(withFilters("        - name: fault\n          config:\n"
                                "            abort: {status: 503, percent: 1}\n")) ==
          "t.yaml:8:34: unknown key 'percent' in abort");
    const Config c = ok(load(withFilters("        - name: fault\n          config:\n"
                                         "            abort: {status: 503, percentage: 0}\n")));
    const FaultFilterConfig f = faultOf(c.listeners[0].http->filters.at(0));
    CHECK_FALSE(f.delay);
    CHECK(f.abort_status == 503);
    CHECK(f.abort_percentage == 0);
  }
  SECTION("compression") {
    using ferry::filters::http::CompressionFilterConfig;
    using ferry::filters::http::compression::Coding;
    auto compressionOf = [](const HttpFilterConfig& e) {
      NodeReader r;
      auto c = ferry::filters::http::parseCompressionFilterConfig(e, r);
      REQUIRE(c);
      return *c;
    };
    // No config: every default.
    const Config d = ok(load(withFilters("        - name: compression\n")));
    const CompressionFilterConfig dc = compressionOf(d.listeners[0].http->filters.at(0));
    CHECK(dc.algorithms == std::vector<Coding>{Coding::kBrotli, Coding::kGzip});
    CHECK(dc.min_content_length == 256);
    CHECK(dc.gzip_level == 6);
    CHECK(dc.brotli_quality == 4);
    CHECK_FALSE(dc.request_decompression);
    CHECK(dc.request_max_bytes == 10 * 1024 * 1024);
    CHECK(dc.compressibleType("text/html; charset=utf-8"));
    CHECK(dc.compressibleType("Application/JSON"));
    CHECK(dc.compressibleType("image/svg+xml"));
    CHECK_FALSE(dc.compressibleType("image/png"));
    CHECK_FALSE(dc.compressibleType("text/"));
    CHECK_FALSE(dc.compressibleType("application/jsonx"));
    // Every key.
    const Config c = ok(load(withFilters(
        "        - name: compression\n          config:\n"
        "            algorithms: [gzip]\n            min_content_length: 0\n"
        "            content_types: [application/x-ndjson, Font/*]\n            level: 1\n"
        "            brotli_quality: 11\n"
        "            request_decompression: {enabled: true, max_bytes: 4096}\n")));
    const CompressionFilterConfig cc = compressionOf(c.listeners[0].http->filters.at(0));
    CHECK(cc.algorithms == std::vector<Coding>{Coding::kGzip});
    CHECK(cc.min_content_length == 0);
    CHECK(cc.gzip_level == 1);
    CHECK(cc.brotli_quality == 11);
    CHECK(cc.request_decompression);
    CHECK(cc.request_max_bytes == 4096);
    CHECK(cc.compressibleType("application/x-ndjson"));
    CHECK(cc.compressibleType("font/woff2"));
    CHECK_FALSE(cc.compressibleType("text/html"));  // the list replaces the defaults
    // `level` maps brotli quality to level - 2 (at least 1).
    const Config l = ok(load(withFilters("        - {name: compression, config: {level: 9}}\n")));
    CHECK(compressionOf(l.listeners[0].http->filters.at(0)).brotli_quality == 7);
    CHECK(compressionOf(l.listeners[0].http->filters.at(0)).gzip_level == 9);
    // Errors, each at its value.
    CHECK(onlyError(withFilters("        - {name: compression, config: {algorithms: [gzip, deflate]}}\n")) ==
          "t.yaml:6:59: unknown compression algorithm 'deflate' (use br, gzip)");
    CHECK(onlyError(withFilters("        - {name: compression, config: {algorithms: [gzip, gzip]}}\n")) ==
          "t.yaml:6:59: compression algorithm 'gzip' listed twice");
    CHECK(onlyError(withFilters("        - {name: compression, config: {algorithms: []}}\n")) ==
          "t.yaml:6:52: 'algorithms' must not be empty");
    CHECK(onlyError(withFilters("        - {name: compression, config: {content_types: text/html}}\n")) ==
          "t.yaml:6:55: expected a list of media types for 'content_types', got 'text/html'");
    CHECK(onlyError(withFilters("        - {name: compression, config: {content_types: [text]}}\n")) ==
          "t.yaml:6:56: invalid media type 'text' in content_types (use type/subtype or type/*, "
          "without parameters)");
    CHECK(onlyError(withFilters("        - {name: compression, config: {content_types: [\"text/html; q=1\"]}}\n")) ==
          "t.yaml:6:56: invalid media type 'text/html; q=1' in content_types (use type/subtype or type/*, "
          "without parameters)");
    CHECK(onlyError(withFilters("        - {name: compression, config: {gzip_level: 10}}\n")) ==
          "t.yaml:6:52: 'gzip_level' must be between 1 and 9, got 10");
    CHECK(onlyError(withFilters("        - {name: compression, config: {brotli_quality: 12}}\n")) ==
          "t.yaml:6:56: 'brotli_quality' must be between 0 and 11, got 12");
    CHECK(onlyError(withFilters("        - {name: compression, config: {levels: 1}}\n")) ==
          "t.yaml:6:40: unknown key 'levels' in compression config (did you mean 'level'?)");
    CHECK(onlyError(withFilters("        - {name: compression, config: {request_decompression: {max_bytes: 0}}}\n")) ==
          "t.yaml:6:75: 'max_bytes' must be between 1 and 1099511627776, got 0");
  }
}

TEST_CASE("virtual hosts and domains", "[config][http]") {
  const std::string vh = "      virtual_hosts:\n        - name: a\n          domains: ";
  const std::string routes = "\n          routes: [{match: {prefix: /}, route: {cluster: api}}]\n";
  auto domains = [&](const std::string& list) { return kHead + vh + list + routes + kClusters; };

  // Lower-cased; ports, odd wildcards and other characters refused (errors at each item).
  CHECK(ok(load(domains("[\"WWW.Example.COM\", \"*.Example.com\", 10.0.0.1]")))
            .listeners[0].http->virtual_hosts[0].domains ==
        std::vector<std::string>{"www.example.com", "*.example.com", "10.0.0.1"});
  CHECK(onlyError(domains("[example.com:8080]")) ==
        "t.yaml:7:21: domain 'example.com:8080' must not have a port (the Host header is "
        "matched without its port)");
  CHECK(onlyError(domains("['*:80']")) ==
        "t.yaml:7:21: domain '*:80' must not have a port (the Host header is matched without "
        "its port)");
  for (const char* bad : {"a_b.com", "*.", "*example.com", "api.*", "a..b", "a b", ".a"}) {
    INFO(bad);
    CHECK(onlyError(domains(std::string("['") + bad + "']")) ==
          "t.yaml:7:21: bad domain '" + std::string(bad) +
              "' (use \"*\", \"*.example.com\" or a host name: letters, digits, '-', '.')");
  }
  CHECK(onlyError(domains("[]")) == "t.yaml:7:20: 'domains' must not be empty");
  CHECK(onlyError(domains("[a.com, A.com]")) ==
        "t.yaml:7:28: domain 'a.com' is already used by virtual host 'a'");

  SECTION("a domain in two virtual hosts of one listener: at the second") {
    const std::string yaml = kHead +
                             "      virtual_hosts:\n"
                             "        - name: one\n"
                             "          domains: ['*', api.example.com]\n"
                             "          routes: [{match: {prefix: /}, route: {cluster: api}}]\n"
                             "        - name: two\n"
                             "          domains: [API.example.com, '*']\n"
                             "          routes: [{match: {prefix: /}, route: {cluster: api}}]\n" +
                             kClusters;
    CHECK(errorsOf(load(yaml)) ==
          std::vector<std::string>{
              "t.yaml:10:21: domain 'api.example.com' is already used by virtual host 'one'",
              "t.yaml:10:38: domain '*' is already used by virtual host 'one'",
          });
  }
  SECTION("the same domain on two listeners is fine") {
    const std::string listener2 =
        "  - name: web2\n    address: 0.0.0.0:8081\n    http:\n"
        "      virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, "
        "route: {cluster: api}}]}]\n";
    ok(load(kHead + kVhosts + listener2 + kClusters));
  }
  SECTION("required keys and names") {
    CHECK(onlyError(kHead + "      virtual_hosts:\n        - domains: ['*']\n" + routes + kClusters) ==
          "t.yaml:6:11: missing required key 'name' in virtual host");
    CHECK(onlyError(kHead + "      virtual_hosts:\n        - name: a b\n          domains: ['*']" +
                    routes + kClusters) ==
          "t.yaml:6:17: bad virtual host name 'a b' (use letters, digits, '_', '.', '-')");
    CHECK(onlyError(kHead + "      virtual_hosts:\n        - name: a\n" + routes.substr(1) +
                    kClusters) ==
          "t.yaml:6:11: missing required key 'domains' in virtual host");
  }
}

TEST_CASE("route: exactly one action, exactly one match kind", "[config][http]") {
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n")) ==
        "t.yaml:9:15: route needs one of 'route', 'direct_response' or 'redirect'");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              route: {cluster: api}\n"
                             "              direct_response: {status: 200}\n")) ==
        "t.yaml:11:15: route has both 'route' and 'direct_response' (use exactly one)");
  CHECK(onlyError(withRoutes("            - route: {cluster: api}\n")) ==
        "t.yaml:9:15: missing required key 'match' in route");
  CHECK(onlyError(withRoutes("            - match: {prefix: /, path: /x}\n"
                             "              route: {cluster: api}\n")) ==
        "t.yaml:9:34: match has both 'prefix' and 'path' (use exactly one)");
  CHECK(onlyError(withRoutes("            - match: {methods: [GET]}\n"
                             "              route: {cluster: api}\n")) ==
        "t.yaml:9:22: match needs one of 'prefix', 'path' or 'regex'");
  CHECK(onlyError(withRoutes("            - match: {path: healthz}\n"
                             "              direct_response: {status: 200}\n")) ==
        "t.yaml:9:29: 'path' must start with '/', got 'healthz'");
  CHECK(onlyError(withRoutes("            - match: {prefix: \"/a?b\"}\n"
                             "              direct_response: {status: 200}\n")) ==
        "t.yaml:9:31: 'prefix' must not contain spaces, control characters, non-ASCII bytes "
        "(percent-encode them), '?' or '#'");
  CHECK(onlyError(withRoutes("            - match: {prefix: /, query: a}\n"
                             "              direct_response: {status: 200}\n")) ==
        "t.yaml:9:34: unknown key 'query' in match");
  CHECK(onlyError(withRoutes("            - hello\n")) ==
        "t.yaml:9:15: expected a mapping for 'route', got 'hello'");
  CHECK(onlyError(kHead + "      virtual_hosts:\n        - name: v\n          domains: ['*']\n" +
                  kClusters) ==
        "t.yaml:6:11: missing required key 'routes' in virtual host");
}

TEST_CASE("route match: regex, headers, methods", "[config][http]") {
  CHECK(onlyError(withRoutes("            - match: {regex: \"[a\"}\n"
                             "              direct_response: {status: 200}\n")) ==
        "t.yaml:9:30: bad regex '[a': missing ]: [a");
  CHECK(onlyError(withRoutes("            - match: {regex: \"a**\"}\n"
                             "              direct_response: {status: 200}\n")) ==
        "t.yaml:9:30: bad regex 'a**': bad repetition operator: **");
  CHECK(onlyError(withRoutes("            - match:\n"
                             "                prefix: /\n"
                             "                headers: [{name: x-a, exact: a, prefix: b}]\n"
                             "              direct_response: {status: 200}\n")) ==
        "t.yaml:11:49: header match has both 'exact' and 'prefix' (use exactly one)");
  CHECK(onlyError(withRoutes("            - match:\n"
                             "                prefix: /\n"
                             "                headers: [{name: x-a}]\n"
                             "              direct_response: {status: 200}\n")) ==
        "t.yaml:11:27: header match needs one of 'exact', 'prefix', 'regex' or 'present'");
  CHECK(onlyError(withRoutes("            - match:\n"
                             "                prefix: /\n"
                             "                headers: [{name: \"x a\", present: true}]\n"
                             "              direct_response: {status: 200}\n")) ==
        "t.yaml:11:34: bad header name 'x a' (use letters, digits and !#$%&'*+-.^_`|~)");
  CHECK(onlyError(withRoutes("            - match:\n"
                             "                prefix: /\n"
                             "                headers: [{name: x-a, present: false}]\n"
                             "              direct_response: {status: 200}\n")) ==
        "t.yaml:11:48: 'present' must be true (matching an absent header is not supported)");
  CHECK(onlyError(withRoutes("            - match:\n"
                             "                prefix: /\n"
                             "                headers: [{name: x-a, regex: \"(\"}]\n"
                             "              direct_response: {status: 200}\n")) ==
        "t.yaml:11:46: bad regex '(': missing ): (");
  CHECK(onlyError(withRoutes("            - match:\n"
                             "                prefix: /\n"
                             "                headers: [{name: x-a, exact: \"a\\nb\"}]\n"
                             "              direct_response: {status: 200}\n")) ==
        "t.yaml:11:46: bad value for 'exact': must not contain CR, LF or NUL");
  CHECK(onlyError(withRoutes("            - match: {prefix: /, methods: [GET, get]}\n"
                             "              direct_response: {status: 200}\n")) ==
        "t.yaml:9:49: bad method 'get' (use upper-case letters: GET, POST, ...)");
  CHECK(onlyError(withRoutes("            - match: {prefix: /, methods: [GET, GET]}\n"
                             "              direct_response: {status: 200}\n")) ==
        "t.yaml:9:49: duplicate method 'GET'");
  CHECK(onlyError(withRoutes("            - match: {prefix: /, methods: []}\n"
                             "              direct_response: {status: 200}\n")) ==
        "t.yaml:9:43: 'methods' must not be empty (leave it out to match every method)");
}

TEST_CASE("route action", "[config][http]") {
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              route: {cluster: nope}\n")) ==
        "t.yaml:10:32: unknown cluster 'nope'");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              route:\n"
                             "                weighted_clusters:\n"
                             "                  - {cluster: api, weight: 1}\n"
                             "                  - {cluster: ghost, weight: 1}\n")) ==
        "t.yaml:13:31: unknown cluster 'ghost'");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              route:\n"
                             "                weighted_clusters:\n"
                             "                  - {cluster: api, weight: 0}\n")) ==
        "t.yaml:12:44: 'weight' must be between 1 and 1000000, got 0");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              route:\n"
                             "                weighted_clusters:\n"
                             "                  - {cluster: api}\n"
                             "                  - {cluster: api}\n")) ==
        "t.yaml:13:31: cluster 'api' is listed twice in weighted_clusters");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              route: {weighted_clusters: []}\n")) ==
        "t.yaml:10:42: 'weighted_clusters' must not be empty");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              route: {cluster: api, weighted_clusters: [{cluster: api}]}\n")) ==
        "t.yaml:10:37: route action has both 'cluster' and 'weighted_clusters' (use exactly one)");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              route: {timeout: 1s}\n")) ==
        "t.yaml:10:22: route action needs one of 'cluster' or 'weighted_clusters'");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              route:\n"
                             "                cluster: api\n"
                             "                retry: {attempts: 2, retry_on: [nope]}\n")) ==
        "t.yaml:12:49: unknown retry_on condition 'nope' (use connect-failure, reset, 5xx, "
        "gateway-error, retriable-4xx or a status code 100-599)");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              route: {cluster: api, prefix_rewrite: new}\n")) ==
        "t.yaml:10:53: 'prefix_rewrite' must start with '/', got 'new'");
  CHECK(onlyError(withRoutes("            - match: {regex: /a.*}\n"
                             "              route: {cluster: api, prefix_rewrite: /b}\n")) ==
        "t.yaml:10:37: 'prefix_rewrite' cannot be used with a regex match");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              route: {cluster: api, host_rewrite: \"a b\"}\n")) ==
        "t.yaml:10:51: bad host_rewrite 'a b' (use a host name or IP address, optionally with "
        ":port)");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              route: {cluster: api, host_rewrite: \"a:0\"}\n")) ==
        "t.yaml:10:51: bad host_rewrite 'a:0' (use a host name or IP address, optionally with "
        ":port)");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              route: {cluster: api, timeout: 15}\n")) ==
        "t.yaml:10:46: bad duration '15' (use a unit: 250ms, 15s, 5m)");
}

TEST_CASE("direct_response and redirect", "[config][http]") {
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              direct_response: {status: 600}\n")) ==
        "t.yaml:10:41: 'status' must be between 200 and 599, got 600");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              direct_response: {body: hi}\n")) ==
        "t.yaml:10:32: missing required key 'status' in direct_response");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              direct_response: {status: 204, body: x}\n")) ==
        "t.yaml:10:52: a 204 response cannot have a body");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              redirect: {path_redirect: /a, prefix_rewrite: /b}\n")) ==
        "t.yaml:10:45: redirect has both 'path_redirect' and 'prefix_rewrite' (use only one)");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              redirect: {scheme_redirect: ftp}\n")) ==
        "t.yaml:10:43: bad scheme_redirect 'ftp' (use http, https)");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              redirect: {scheme_redirect: https, code: 302x}\n")) ==
        "t.yaml:10:56: expected an integer for 'code', got '302x'");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              redirect: {host_redirect: \"x_y\"}\n")) ==
        "t.yaml:10:41: bad host_redirect 'x_y' (use a host name or IP address, optionally with "
        ":port)");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              redirect: {path_redirect: \"/a b\"}\n")) ==
        "t.yaml:10:41: 'path_redirect' must not contain spaces, control characters, non-ASCII "
        "bytes (percent-encode them), '?' or '#'");
  CHECK(onlyError(withRoutes("            - match: {prefix: /}\n"
                             "              redirect:\n")) ==
        "t.yaml:10:15: redirect needs at least one of 'scheme_redirect', 'host_redirect', "
        "'path_redirect' or 'prefix_rewrite' (it would redirect to itself)");
  CHECK(onlyError(withRoutes("            - match: {regex: \"/a\"}\n"
                             "              redirect: {prefix_rewrite: /b}\n")) ==
        "t.yaml:10:26: 'prefix_rewrite' cannot be used with a regex match");
}

TEST_CASE("request_headers and response_headers", "[config][http]") {
  auto ops = [](const std::string& text) {
    return withRoutes("            - match: {prefix: /}\n"
                      "              direct_response: {status: 200}\n" + text);
  };
  CHECK(onlyError(ops("              request_headers: {set: {\"x a\": b}}\n")) ==
        "t.yaml:11:39: bad header name 'x a' (use letters, digits and !#$%&'*+-.^_`|~)");
  CHECK(onlyError(ops("              request_headers: {set: {x-a: \"b\\r\\nx-evil: 1\"}}\n")) ==
        "t.yaml:11:44: bad value for 'x-a': must not contain CR, LF or NUL");
  CHECK(onlyError(ops("              request_headers: {set: {x-a: [1]}}\n")) ==
        "t.yaml:11:44: expected a string for 'x-a', got a list");
  CHECK(onlyError(ops("              request_headers: {add: {x-a: b, X-A: c}}\n")) ==
        "t.yaml:11:47: header 'x-a' is already named in 'add'");
  CHECK(onlyError(ops("              response_headers: {set: {x-a: b}, remove: [X-A]}\n")) ==
        "t.yaml:11:58: header 'x-a' is already named in 'set'");
  CHECK(onlyError(ops("              response_headers: {remove: [content-length]}\n")) ==
        "t.yaml:11:43: header 'content-length' is managed by the proxy and cannot be changed");
  CHECK(onlyError(ops("              request_headers: {set: {Transfer-Encoding: chunked}}\n")) ==
        "t.yaml:11:39: header 'transfer-encoding' is managed by the proxy and cannot be changed");
  CHECK(onlyError(ops("              request_headers: {set: {host: a}}\n")) ==
        "t.yaml:11:39: request_headers cannot change 'host' (use route.host_rewrite)");
  CHECK(onlyError(ops("              request_headers: {remove: [\"\"]}\n")) ==
        "t.yaml:11:42: 'header name' must not be empty");
  CHECK(onlyError(ops("              request_headers: {delete: [x]}\n")) ==
        "t.yaml:11:33: unknown key 'delete' in request_headers");
  // response_headers may set Host-named headers; empty blocks are fine.
  const Config c = ok(load(ops("              response_headers: {set: {Host: a}, add: {}, remove: []}\n"
                               "              request_headers:\n")));
  CHECK(c.listeners[0].http->virtual_hosts[0].routes[0].response_headers.set ==
        std::vector<std::pair<std::string, std::string>>{{"host", "a"}});
}
