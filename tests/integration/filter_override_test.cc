// Per-route filter config (routes[].filter_overrides): a route disables one of its listener's
// HTTP filters or runs it with another config; both are checked at load with their position.
#include <catch2/catch.hpp>
#include <regex>
#include <string>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http2_support.h"
#include "tests/integration/http_upstream.h"

using namespace ferry::testing;

namespace {

const std::string kAbort =
    "      response_flags_header: true\n"
    "      filters:\n"
    "        - name: fault\n"
    "          config: {abort: {status: 503, percentage: 100}}\n";

}  // namespace

TEST_CASE("a route disables a filter or overrides its config", "[filters][override]") {
  HttpUpstream up;
  FerryConfig c{.http_extra = kAbort,
                .routes = {Route{.match = "{prefix: /open}", .cluster = "up",
                                 .extra = "              filter_overrides: {fault: {disabled: true}}\n"},
                           Route{.match = "{prefix: /teapot}", .cluster = "up",
                                 .extra = "              filter_overrides:\n"
                                          "                fault: {config: {abort: {status: 418, percentage: 100}}}\n"},
                           Route{.match = "{prefix: /}", .cluster = "up"}},
                .clusters = {{"up", {up.port()}}}};
  auto f = FerryProcess::start(c.yaml());
  const uint16_t port = f->port("web");
  // The listener's filter as configured.
  auto r = httpRequest(port, "GET", "/x");
  CHECK(r.status == 503);
  CHECK(r.header("x-ferry-flags") == "FI");
  // Disabled on this route: the request reaches the upstream.
  r = httpRequest(port, "GET", "/open/a");
  CHECK(r.status == 200);
  CHECK(r.body == "ok:/open/a");
  // Another config on this route.
  r = httpRequest(port, "GET", "/teapot");
  CHECK(r.status == 418);
  CHECK(r.header("x-ferry-flags") == "FI");
  CHECK(up.requestCount() == 1);
  // The same over HTTP/2.
  TempDir dir;
  auto h2 = h2test::curl(dir, {"--http2-prior-knowledge", "http://127.0.0.1:" + std::to_string(port) + "/open/h2"});
  CHECK(h2.version == "2");
  CHECK(h2.status == 200);
  auto h2t = h2test::curl(dir, {"--http2-prior-knowledge", "http://127.0.0.1:" + std::to_string(port) + "/teapot"});
  CHECK(h2t.status == 418);
}

TEST_CASE("filter_overrides errors carry their position", "[filters][override][cli]") {
  TempDir dir;
  auto validate = [&](const std::string& route_extra) {
    FerryConfig c{.http_extra = kAbort,
                  .routes = {Route{.match = "{prefix: /}", .cluster = "up", .extra = route_extra}},
                  .clusters = {{"up", {1}}}};
    const std::string path = dir.write("o.yaml", c.yaml());
    return runFerry({"-c", path, "--validate"});
  };
  auto r = validate("              filter_overrides: {buffer: {disabled: true}}\n");
  CHECK(r.exit_code == 1);
  CHECK(std::regex_search(r.err, std::regex(R"(o\.yaml:[0-9]+:[0-9]+: filter_overrides names 'buffer', which is )"
                                            R"(not in this listener's filters \(fault\))")));
  r = validate("              filter_overrides: {fault: {disabled: false}}\n");
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("'disabled: false' changes nothing") != std::string::npos);
  r = validate("              filter_overrides: {fault: {config: {}}}\n");
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("fault config needs at least one of 'delay' or 'abort'") != std::string::npos);
  r = validate("              filter_overrides: {fault: {disabled: true, config: {abort: {status: 500}}}}\n");
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("filter override has both 'disabled' and 'config'") != std::string::npos);
  r = validate("              filter_overrides: {fault: {config: {abort: {status: 418}}}}\n");
  INFO(r.err);
  CHECK(r.exit_code == 0);
}
