// Per-route filter config (routes[].filter_overrides): a route disables one of its listener's
// HTTP filters or runs it with another config; both are checked at load with their position.
// The fault filter here; local_rate_limit, cors, rbac and compression overrides are tested in
// their own files (tag [filter_override]), with config_builder.h's overrideRoutes.
#include <catch2/catch.hpp>
#include <regex>
#include <string>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http2_support.h"
#include "tests/integration/http_upstream.h"

using namespace ferry::testing;

namespace {

const std::string kAbort = httpFilterYaml("fault", "{abort: {status: 503, percentage: 100}}");

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t e = s.find('\n', pos);
    if (e == std::string::npos) e = s.size();
    out.push_back(s.substr(pos, e - pos));
    pos = e + 1;
  }
  return out;
}

}  // namespace

TEST_CASE("a route disables a filter or overrides its config", "[filters][override][filter_override]") {
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

TEST_CASE("filter_overrides errors carry their position", "[filters][override][filter_override][cli]") {
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

TEST_CASE("errors in the edge filters' override configs point into the route's override",
          "[filters][override][filter_override][cli][rate_limit][cors][rbac][compression]") {
  TempDir dir;
  // The listener's configs are valid; each route override has one error. Line numbers matter.
  const std::string yaml =
      "listeners:\n"                                                                      // 1
      "  - name: web\n"                                                                   // 2
      "    address: 127.0.0.1:0\n"                                                        // 3
      "    http:\n"                                                                       // 4
      "      filters:\n"                                                                  // 5
      "        - name: local_rate_limit\n"                                                // 6
      "          config: {max_tokens: 5, fill_interval: 1s}\n"                            // 7
      "        - name: cors\n"                                                            // 8
      "          config: {allow_origins: ['*']}\n"                                        // 9
      "        - name: rbac\n"                                                            // 10
      "          config: {action: deny, rules: [{path_prefix: /admin/}]}\n"               // 11
      "        - name: compression\n"                                                     // 12
      "      virtual_hosts:\n"                                                            // 13
      "        - name: all\n"                                                             // 14
      "          domains: ['*']\n"                                                        // 15
      "          routes:\n"                                                               // 16
      "            - match: {prefix: /}\n"                                                // 17
      "              route: {cluster: up}\n"                                              // 18
      "              filter_overrides:\n"                                                 // 19
      "                local_rate_limit:\n"                                               // 20
      "                  config: {max_tokens: 5, fill_interval: 1s, key: 'cookie:x'}\n"   // 21
      "                cors:\n"                                                           // 22
      "                  config: {allow_origins: ['https://a.example'], bogus: 1}\n"      // 23
      "                rbac:\n"                                                           // 24
      "                  config: {action: deny, rules: [{client_cidrs: [10.0.0.0/33]}]}\n" // 25
      "                compression:\n"                                                    // 26
      "                  config: {algorithms: [gzip, zstd]}\n"                            // 27
      "clusters:\n"                                                                       // 28
      "  - name: up\n"                                                                    // 29
      "    endpoints: [{address: 127.0.0.1:1}]\n";                                        // 30
  const std::string path = dir.write("o.yaml", yaml);
  RunResult r = runFerry({"-c", path, "--validate"});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  const std::vector<std::string> errs = lines(r.err);
  REQUIRE(errs.size() == 4);
  // FILE:LINE:COL at the offending value, in file order.
  const std::regex re(R"(^(.+):([0-9]+):([0-9]+): (.+)$)");
  struct Want {
    int line, col;
    std::string text;
  };
  const std::vector<Want> want = {
      {21, 67, "key must be none, client_ip or header:NAME, not 'cookie:x'"},
      {23, 66, "bogus"},
      {25, 66, "bad CIDR range '10.0.0.0/33'"},
      {27, 47, "unknown compression algorithm 'zstd'"},
  };
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(errs[i]);
    std::smatch m;
    REQUIRE(std::regex_match(errs[i], m, re));
    CHECK(m[1].str() == path);
    CHECK(std::stoi(m[2].str()) == want[i].line);
    CHECK(std::stoi(m[3].str()) == want[i].col);
    CHECK(m[4].str().find(want[i].text) != std::string::npos);
  }
  // Ferry refuses to start with it the same way.
  RunResult run = runFerry({"-c", path});
  CHECK(run.exit_code == 1);
  CHECK(run.err == r.err);
}
