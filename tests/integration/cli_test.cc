// The ferry command line: --version, -h, --validate and its error format, bad arguments,
// --workers / --log-level overrides.
#include <csignal>

#include <catch2/catch.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"

using namespace ferry::testing;

namespace {

std::vector<std::string> splitLines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

// One `FILE:LINE:COL: message` line of --validate output.
struct ConfigErrorLine {
  std::string file;
  int line = 0;
  int col = 0;
  std::string message;
};

std::optional<ConfigErrorLine> parseErrorLine(const std::string& text) {
  static const std::regex re(R"(^(.+):([0-9]+):([0-9]+): (.+)$)");
  std::smatch m;
  if (!std::regex_match(text, m, re)) return std::nullopt;
  return ConfigErrorLine{m[1].str(), std::stoi(m[2].str()), std::stoi(m[3].str()), m[4].str()};
}

}  // namespace

TEST_CASE("--version prints one line 'ferry X.Y.Z (git REV)' matching the meson project version", "[cli]") {
  RunResult r = runFerry({"--version"});
  REQUIRE(r.exit_code == 0);
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  std::smatch m;
  REQUIRE(std::regex_match(r.out, m, std::regex(R"(^ferry ([0-9]+\.[0-9]+\.[0-9]+)( [^\n]*)?\n$)")));
  const std::string version = m[1].str();

  // The version comes from the build: meson.build's `version : 'X.Y.Z'`.
  std::string meson = readFile(srcDir() + "/meson.build");
  std::smatch mv;
  REQUIRE(std::regex_search(meson, mv, std::regex(R"(version\s*:\s*'([0-9]+\.[0-9]+\.[0-9]+)')")));
  CHECK(version == mv[1].str());

  // Then the git revision it was built from.
  const std::string rest = m[2].str();
  REQUIRE(std::regex_match(rest, std::regex(R"( \(git ([0-9a-f]{12}|unknown)\))")));
  RunResult git = runProcess({"git", "-C", srcDir(), "rev-parse", "--short=12", "HEAD"});
  if (git.exit_code == 0 && git.out.size() > 1) CHECK(rest == " (git " + git.out.substr(0, git.out.size() - 1) + ")");
}

TEST_CASE("-h and --help print the usage on stdout and exit 0", "[cli]") {
  for (const char* flag : {"-h", "--help"}) {
    INFO(flag);
    RunResult r = runFerry({flag});
    CHECK(r.exit_code == 0);
    CHECK(r.err.empty());
    CHECK(r.out.find("usage:") != std::string::npos);
    for (const char* opt : {"-c", "--validate", "--workers", "--log-level", "--version"}) {
      INFO("usage mentions " << opt);
      CHECK(r.out.find(opt) != std::string::npos);
    }
  }
}

TEST_CASE("--validate accepts examples/edge.yaml and examples/clusters.yaml", "[cli]") {
  for (const char* name : {"edge.yaml", "clusters.yaml"}) {
    const std::string path = srcDir() + "/examples/" + name;
    RunResult r = runFerry({"-c", path, "--validate"});
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out == path + ": configuration is valid\n");
  }
}

TEST_CASE("--validate accepts examples/tcp-proxy.yaml", "[cli]") {
  const std::string path = srcDir() + "/examples/tcp-proxy.yaml";
  RunResult r = runFerry({"-c", path, "--validate"});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == path + ": configuration is valid\n");
  CHECK(r.err.empty());
  // Flag order does not matter.
  RunResult r2 = runFerry({"--validate", "-c", path});
  CHECK(r2.exit_code == 0);
  CHECK(r2.out == r.out);
}

TEST_CASE("examples/tls.yaml validates with the certificates scripts/example-certs makes", "[cli][tls]") {
  TempDir dir;
  const std::string cfg = dir.write("tls.yaml", readFile(srcDir() + "/examples/tls.yaml"));
  RunResult certs = runProcess({srcDir() + "/scripts/example-certs", dir.path() + "/certs"}, 30s);
  INFO("example-certs: " << certs.out << certs.err);
  REQUIRE(certs.exit_code == 0);
  RunResult verify = runProcess({"openssl", "verify", "-CAfile", dir.path() + "/certs/ca.pem",
                                 dir.path() + "/certs/site.pem", dir.path() + "/certs/client.pem"});
  CHECK(verify.exit_code == 0);
  RunResult r = runFerry({"-c", cfg, "--validate"});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
}

TEST_CASE("--validate reports every error as FILE:LINE:COL: message, in order, exit 1", "[cli]") {
  TempDir dir;
  // Line numbers matter below: unknown key at 4:5, unknown cluster value at 6:16,
  // bad duration value at 7:21.
  const std::string path = dir.write("bad.yaml",
                                     "listeners:\n"                         // 1
                                     "  - name: tcp\n"                      // 2
                                     "    address: 127.0.0.1:0\n"           // 3
                                     "    bogus_key: 1\n"                   // 4
                                     "    tcp:\n"                           // 5
                                     "      cluster: nope\n"                // 6
                                     "      idle_timeout: 10\n"             // 7
                                     "clusters:\n"                          // 8
                                     "  - name: backend\n"                  // 9
                                     "    endpoints: [{address: 127.0.0.1:1}]\n");  // 10
  RunResult r = runFerry({"-c", path, "--validate"});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.empty());  // errors go to stderr only

  std::vector<std::string> lines = splitLines(r.err);
  REQUIRE(lines.size() == 3);
  std::vector<ConfigErrorLine> errs;
  for (const auto& l : lines) {
    auto e = parseErrorLine(l);
    INFO("line: " << l);
    REQUIRE(e);
    CHECK(e->file == path);
    errs.push_back(*e);
  }
  CHECK(errs[0].line == 4);
  CHECK(errs[0].col == 5);
  CHECK(errs[0].message.find("unknown key") != std::string::npos);
  CHECK(errs[0].message.find("bogus_key") != std::string::npos);

  CHECK(errs[1].line == 6);
  CHECK(errs[1].col == 16);
  CHECK(errs[1].message.find("unknown cluster") != std::string::npos);
  CHECK(errs[1].message.find("nope") != std::string::npos);

  CHECK(errs[2].line == 7);
  CHECK(errs[2].col == 21);
  CHECK(errs[2].message.find("duration") != std::string::npos);
  CHECK(errs[2].message.find("10") != std::string::npos);

  // Without --validate the same config is refused the same way, and ferry does not start.
  RunResult run = runFerry({"-c", path});
  CHECK(run.exit_code == 1);
  CHECK(run.err == r.err);
}

TEST_CASE("--validate reports a duplicate key at the second occurrence", "[cli]") {
  TempDir dir;
  const std::string path = dir.write("dup.yaml",
                                     "runtime:\n"          // 1
                                     "  workers: 1\n"      // 2
                                     "  log_level: info\n" // 3
                                     "  workers: 2\n" +    // 4
                                         FerryConfig{.workers = 0,  // no runtime: section of its own
                                                     .admin = false,
                                                     .listener = "tcp",
                                                     .tcp_cluster = "backend",
                                                     .clusters = {{"backend", {1}}}}
                                             .yaml());
  RunResult r = runFerry({"-c", path, "--validate"});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == 1);
  std::vector<std::string> lines = splitLines(r.err);
  REQUIRE(lines.size() == 1);
  auto e = parseErrorLine(lines[0]);
  REQUIRE(e);
  CHECK(e->file == path);
  CHECK(e->line == 4);
  CHECK(e->col == 3);
  CHECK(e->message.find("duplicate key") != std::string::npos);
  CHECK(e->message.find("workers") != std::string::npos);
}

TEST_CASE("a missing config file exits 1 with a message naming it", "[cli]") {
  TempDir dir;
  const std::string path = dir.path() + "/does-not-exist.yaml";
  for (bool validate : {true, false}) {
    INFO("validate=" << validate);
    std::vector<std::string> args = {"-c", path};
    if (validate) args.push_back("--validate");
    RunResult r = runFerry(args);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find(path) != std::string::npos);
    CHECK(r.err.find("No such file") != std::string::npos);
    CHECK(r.out.find("configuration is valid") == std::string::npos);
  }
}

TEST_CASE("config errors found by --validate carry their position", "[cli]") {
  TempDir dir;
  SECTION("access_log that is not a list") {
    const std::string path = dir.write(
        "log.yaml",
        "listeners:\n"                                  // 1
        "  - name: web\n"                               // 2
        "    address: 127.0.0.1:0\n"                    // 3
        "    http:\n"                                   // 4
        "      access_log: {}\n"                        // 5
        "      virtual_hosts:\n"                        // 6
        "        - {name: a, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: backend}}]}\n"  // 7
        "clusters:\n"                                   // 8
        "  - name: backend\n"                           // 9
        "    endpoints: [{address: 127.0.0.1:1}]\n");   // 10
    RunResult r = runFerry({"-c", path, "--validate"});
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 1);
    std::vector<std::string> lines = splitLines(r.err);
    REQUIRE(lines.size() == 1);
    auto e = parseErrorLine(lines[0]);
    REQUIRE(e);
    CHECK(e->line == 5);
    CHECK(e->col == 19);
    CHECK(e->message.find("expected a list") != std::string::npos);
  }
  SECTION("tls whose certificate file holds no certificate") {
    dir.write("site.pem", "x");
    dir.write("site.key", "x");
    const std::string path = dir.write(
        "tls.yaml",
        "listeners:\n"                                                      // 1
        "  - name: tcp\n"                                                   // 2
        "    address: 127.0.0.1:0\n"                                        // 3
        "    tls:\n"                                                        // 4
        "      certificates: [{cert_file: site.pem, key_file: site.key}]\n" // 5
        "    tcp: {cluster: backend}\n"                                     // 6
        "clusters:\n"
        "  - name: backend\n"
        "    endpoints: [{address: 127.0.0.1:1}]\n");
    RunResult r = runFerry({"-c", path, "--validate"});
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 1);
    std::vector<std::string> lines = splitLines(r.err);
    REQUIRE(lines.size() == 1);
    auto e = parseErrorLine(lines[0]);
    REQUIRE(e);
    CHECK(e->line == 5);
    CHECK(e->col == 34);  // the cert_file value
    CHECK(e->message.find("no PEM certificate") != std::string::npos);
  }
}

TEST_CASE("bad command lines exit 1 with a message on stderr", "[cli]") {
  TempDir dir;
  const std::string cfg = dir.write("ok.yaml", FerryConfig{.workers = 0,
                                                            .admin = false,
                                                            .listener = "tcp",
                                                            .tcp_cluster = "backend",
                                                            .clusters = {{"backend", {1}}}}
                                                    .yaml());
  struct Case {
    std::vector<std::string> args;
    std::string needle;  // expected in stderr
  };
  const std::vector<Case> cases = {
      {{"-c", cfg, "--validate", "--bogus"}, "--bogus"},
      {{"--frobnicate"}, "--frobnicate"},
      {{"--validate"}, "-c"},  // no config file
      {{}, "-c"},
      {{"-c"}, "-c"},
      {{"-c", cfg, "--validate", "--workers", "abc"}, "abc"},
      {{"-c", cfg, "--validate", "--workers", "-1"}, "-1"},
      {{"-c", cfg, "--validate", "--workers", "3x"}, "3x"},
      {{"-c", cfg, "--validate", "--workers"}, "--workers"},
      {{"-c", cfg, "--validate", "--log-level", "loud"}, "loud"},
      {{"-c", cfg, "--validate", "--log-level"}, "--log-level"},
  };
  for (const auto& c : cases) {
    std::string joined;
    for (const auto& a : c.args) joined += " " + a;
    INFO("ferry" << joined);
    RunResult r = runFerry(c.args);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find(c.needle) != std::string::npos);
    CHECK(r.out.find("configuration is valid") == std::string::npos);
  }
  // The same flags with good values are accepted.
  RunResult ok = runFerry({"-c", cfg, "--validate", "--workers", "3", "--log-level", "warn"});
  INFO("stderr: " << ok.err);
  CHECK(ok.exit_code == 0);
}

TEST_CASE("--workers overrides runtime.workers", "[cli]") {
  FakeUpstream up(FakeUpstream::echo());
  auto f = FerryProcess::start(FerryConfig{.workers = 3,
                                           .admin = false,
                                           .listener = "tcp",
                                           .tcp_cluster = "backend",
                                           .clusters = {{"backend", {up.port()}}}}
                                   .yaml(),
                               {"--workers", "1"});
  f->port("tcp");
  REQUIRE(f->waitForLog("started: 1 worker,"));
  CHECK(f->countInLog("started: 3 workers") == 0);
}

TEST_CASE("--log-level debug overrides the config and shows debug lines", "[cli]") {
  // The only endpoint is a port nothing listens on: the connect failure is logged at debug.
  const RefusingPort refusing;  // lives across both sections and every ferry they start
  const uint16_t dead = refusing.port();
  const std::string yaml = FerryConfig{.workers = 1,
                                       .runtime_extra = "  log_level: info\n",
                                       .admin = false,
                                       .listener = "tcp",
                                       .tcp_cluster = "backend",
                                       .clusters = {{"backend", {dead}}}}
                               .yaml();
  const std::string needle = "127.0.0.1:" + std::to_string(dead);

  auto runOnce = [&](const std::vector<std::string>& extra) {
    auto f = FerryProcess::start(yaml, extra);
    auto c = TcpClient::connect(f->port("tcp"));
    REQUIRE(c);
    // The connect failure closes the client connection without a byte.
    REQUIRE(c->waitClosed(5s));
    return f;
  };

  SECTION("--log-level debug") {
    auto f = runOnce({"--log-level", "debug"});
    CHECK(f->waitForLog("[debug]", 5s));
    CHECK(f->waitForLog(needle, 5s));
  }
  SECTION("config says info: no debug lines") {
    auto f = runOnce({});
    // Let ferry stop cleanly: every line it wrote before "ferry stopped" is then in the log.
    f->signal(SIGTERM);
    REQUIRE(f->waitForLog("ferry stopped", 10s));
    CHECK(f->waitExit(10s) == std::optional<int>(0));
    CHECK(f->countInLog("[debug]") == 0);
    CHECK(f->countInLog(needle) == 0);
  }
}
