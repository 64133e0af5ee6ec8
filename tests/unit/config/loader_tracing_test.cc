// The `http.tracing` block of a listener: defaults, every key, and the errors.
#include <catch2/catch.hpp>

#include "tests/unit/config/loader_test_util.h"

using namespace ferry::config;
using namespace ferry::config::test;
using std::chrono::milliseconds;

namespace {

// A listener whose http block holds `tracing` (indented 6), and clusters "up" and "otel".
std::string withTracing(const std::string& tracing) {
  return "listeners:\n"
         "  - name: web\n"
         "    address: 127.0.0.1:8080\n"
         "    http:\n" +
         tracing +
         "      virtual_hosts:\n"
         "        - {name: all, domains: [\"*\"], routes: [{match: {prefix: /}, route: {cluster: up}}]}\n"
         "clusters:\n"
         "  - {name: up, endpoints: [{address: 127.0.0.1:9000}]}\n"
         "  - {name: otel, endpoints: [{address: 127.0.0.1:4318}]}\n";
}

}  // namespace

TEST_CASE("tracing: absent, empty, and every key", "[config][tracing]") {
  CHECK_FALSE(ok(load(withTracing(""))).listeners[0].http->tracing.has_value());

  Config c = ok(load(withTracing("      tracing:\n")));
  REQUIRE(c.listeners[0].http->tracing.has_value());
  const auto& d = *c.listeners[0].http->tracing;
  CHECK(d.sample_rate == 1.0);
  CHECK(d.service_name == "ferry");
  CHECK_FALSE(d.otlp.has_value());

  c = ok(load(withTracing("      tracing:\n"
                          "        sample_rate: 0.25\n"
                          "        service_name: edge-proxy\n"
                          "        otlp: {cluster: otel}\n")));
  const auto& t = *c.listeners[0].http->tracing;
  CHECK(t.sample_rate == 0.25);
  CHECK(t.service_name == "edge-proxy");
  REQUIRE(t.otlp.has_value());
  CHECK(t.otlp->cluster == "otel");
  CHECK(t.otlp->path == "/v1/traces");
  CHECK(t.otlp->timeout == milliseconds(5000));
  CHECK(t.otlp->flush_interval == milliseconds(1000));
  CHECK(t.otlp->max_batch == 512);
  CHECK(t.otlp->max_queue == 4096);

  c = ok(load(withTracing("      tracing:\n"
                          "        sample_rate: 0\n"
                          "        otlp:\n"
                          "          cluster: otel\n"
                          "          path: /otlp/v1/traces\n"
                          "          timeout: 250ms\n"
                          "          flush_interval: 2s\n"
                          "          max_batch: 10\n"
                          "          max_queue: 10\n")));
  const auto& o = *c.listeners[0].http->tracing->otlp;
  CHECK(c.listeners[0].http->tracing->sample_rate == 0.0);
  CHECK(o.path == "/otlp/v1/traces");
  CHECK(o.timeout == milliseconds(250));
  CHECK(o.flush_interval == milliseconds(2000));
  CHECK(o.max_batch == 10);
  CHECK(o.max_queue == 10);
}

TEST_CASE("tracing: errors are reported at their position", "[config][tracing]") {
  CHECK(onlyError(withTracing("      tracing: {otlp: {cluster: nope}}\n")) == "t.yaml:5:33: unknown cluster 'nope'");
  CHECK(onlyError(withTracing("      tracing: {sample_rate: 1.5}\n")) ==
        "t.yaml:5:30: 'sample_rate' must be between 0 and 1, got 1.5");
  CHECK(onlyError(withTracing("      tracing: {sample_rate: -0.5}\n")) ==
        "t.yaml:5:30: expected a number for 'sample_rate', got '-0.5'");
  CHECK(onlyError(withTracing("      tracing: {sample_rat: 1}\n")) ==
        "t.yaml:5:17: unknown key 'sample_rat' in tracing (did you mean 'sample_rate'?)");
  CHECK(onlyError(withTracing("      tracing: {otlp: {}}\n")) == "t.yaml:5:23: missing required key 'cluster' in otlp");
  CHECK(onlyError(withTracing("      tracing: {otlp: {cluster: otel, path: v1/traces}}\n")) ==
        "t.yaml:5:45: bad path 'v1/traces' (must start with '/'; no query, fragment, spaces or control characters)");
  CHECK(onlyError(withTracing("      tracing: {otlp: {cluster: otel, timeout: 0s}}\n")) ==
        "t.yaml:5:48: 'timeout' must be greater than 0s");
  CHECK(onlyError(withTracing("      tracing: {otlp: {cluster: otel, max_batch: 0}}\n")) ==
        "t.yaml:5:50: 'max_batch' must be between 1 and 100000, got 0");
  CHECK(onlyError(withTracing("      tracing: {otlp: {cluster: otel, max_batch: 100, max_queue: 50}}\n")) ==
        "t.yaml:5:66: max_queue (50) must not be below max_batch (100)");
  CHECK(onlyError(withTracing("      tracing: {otlp: {cluster: otel, flush: 1s}}\n")) ==
        "t.yaml:5:39: unknown key 'flush' in otlp");
}
