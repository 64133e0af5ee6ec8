// runtime.user / group / log_format / log_file and listeners[].http.health_path: values,
// defaults and FILE:LINE:COL errors.
#include <pwd.h>

#include <catch2/catch.hpp>
#include <string>

#include "tests/unit/config/loader_test_util.h"

using namespace ferry::config;
using namespace ferry::config::test;

namespace {

const std::string kListener =
    "listeners:\n"
    "  - name: web\n"
    "    address: 0.0.0.0:8080\n"
    "    http:\n";
const std::string kRest =
    "      virtual_hosts:\n"
    "        - name: v\n"
    "          domains: ['*']\n"
    "          routes:\n"
    "            - {match: {prefix: /}, direct_response: {status: 200}}\n";

// The http keys under test start on line 5, column 7.
std::string withHttp(const std::string& keys) { return kListener + keys + kRest; }

}  // namespace

TEST_CASE("runtime: user, group, log_format, log_file defaults", "[config][runtime]") {
  const Config c = ok(load("runtime: {}\n"));
  CHECK(c.runtime.user.empty());
  CHECK(c.runtime.group.empty());
  CHECK(c.runtime.log_format == RuntimeConfig::LogFormat::kText);
  CHECK(c.runtime.log_file.empty());
}

TEST_CASE("runtime: user, group, log_format, log_file values", "[config][runtime]") {
  const passwd* root = ::getpwuid(0);
  REQUIRE(root != nullptr);
  const std::string user = root->pw_name;
  const Config c = ok(load("runtime:\n  user: " + user + "\n  group: " + user +
                           "\n  log_format: json\n  log_file: /tmp/ferry.log\n"));
  CHECK(c.runtime.user == user);
  CHECK(c.runtime.group == user);
  CHECK(c.runtime.log_format == RuntimeConfig::LogFormat::kJson);
  CHECK(c.runtime.log_file == "/tmp/ferry.log");
  // A relative log_file resolves against the config's directory ("t.yaml": the current one).
  CHECK(ok(load("runtime:\n  log_file: ferry.log\n")).runtime.log_file == "ferry.log");
  CHECK(ok(load("runtime:\n  log_format: text\n")).runtime.log_format == RuntimeConfig::LogFormat::kText);
}

TEST_CASE("runtime: bad user, group, log_format, log_file", "[config][runtime]") {
  CHECK(onlyError("runtime:\n  user: no-such-user-ferry\n") ==
        "t.yaml:2:9: unknown user 'no-such-user-ferry' (runtime.user)");
  CHECK(onlyError("runtime:\n  user: root\n  group: no-such-group-ferry\n") ==
        "t.yaml:3:10: unknown group 'no-such-group-ferry' (runtime.group)");
  CHECK(onlyError("runtime:\n  group: root\n") == "t.yaml:2:3: 'group' needs 'user'");
  CHECK(onlyError("runtime:\n  user: \"\"\n").find("t.yaml:2:9: ") == 0);
  CHECK(onlyError("runtime:\n  log_format: logfmt\n") ==
        "t.yaml:2:15: bad log_format 'logfmt' (use text, json)");
  CHECK(onlyError("runtime:\n  log_file: /no/such/dir/ferry.log\n") ==
        "t.yaml:2:13: bad log_file '/no/such/dir/ferry.log': directory '/no/such/dir' does not exist");
  CHECK(onlyError("runtime:\n  log_file: /tmp/\n") == "t.yaml:2:13: bad log_file '/tmp/': a file name, not a directory");
  CHECK(onlyError("runtime:\n  usr: root\n").find("t.yaml:2:3: unknown key 'usr' in runtime") == 0);
}

TEST_CASE("http: health_path", "[config][http]") {
  CHECK(ok(load(withHttp(""))).listeners.at(0).http->health_path.empty());
  CHECK(ok(load(withHttp("      health_path: /healthz\n"))).listeners.at(0).http->health_path == "/healthz");
  CHECK(ok(load(withHttp("      health_path: /\n"))).listeners.at(0).http->health_path == "/");
  const std::string why = " (must start with '/'; no query, fragment, spaces or control characters)";
  CHECK(onlyError(withHttp("      health_path: healthz\n")) == "t.yaml:5:20: bad health_path 'healthz'" + why);
  CHECK(onlyError(withHttp("      health_path: /health?x=1\n")) == "t.yaml:5:20: bad health_path '/health?x=1'" + why);
  CHECK(onlyError(withHttp("      health_path: \"/a b\"\n")) == "t.yaml:5:20: bad health_path '/a b'" + why);
  CHECK(onlyError(withHttp("      health_path: /a#b\n")) == "t.yaml:5:20: bad health_path '/a#b'" + why);
  CHECK(onlyError(withHttp("      health_path: \"\"\n")).find("t.yaml:5:20: ") == 0);
  CHECK(onlyError(withHttp("      health_path: [a]\n")).find("t.yaml:5:20: ") == 0);
}

TEST_CASE("runtime: io backend", "[config][runtime]") {
  CHECK(ok(load("runtime: {}\n")).runtime.io == "auto");
  CHECK(ok(load("runtime: {}\n")).runtime.io_mark.line == 0);  // unset: $FERRY_IO may fill it in
  for (const char* v : {"auto", "epoll", "io_uring"}) {
    const Config c = ok(load(std::string("runtime:\n  io: ") + v + "\n"));
    CHECK(c.runtime.io == v);
    CHECK(c.runtime.io_mark.line == 2);
  }
  CHECK(onlyError("runtime:\n  io: uring\n") == "t.yaml:2:7: bad io 'uring' (use auto, epoll, io_uring)");
  CHECK(onlyError("runtime:\n  io: [epoll]\n").find("t.yaml:2:7: ") == 0);
}
