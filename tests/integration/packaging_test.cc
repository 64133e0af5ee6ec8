// What ships beside the binary: the systemd unit passes `systemd-analyze verify` with its
// commands pointing at the built binary (verify fails on a missing executable).
#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/integration/harness.h"

using namespace ferry::testing;

TEST_CASE("packaging: examples/systemd/ferry.service passes systemd-analyze verify", "[packaging]") {
  std::ifstream in(srcDir() + "/examples/systemd/ferry.service");
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string unit = ss.str();
  // What docs/reload.md promises of it.
  for (const char* line : {"Type=notify\n", "NotifyAccess=all\n", "ExecReload=/usr/bin/ferry -c /etc/ferry/ferry.yaml --reload\n",
                           "ExecStartPre=/usr/bin/ferry -c /etc/ferry/ferry.yaml --validate\n",
                           "AmbientCapabilities=CAP_NET_BIND_SERVICE\n", "ProtectSystem=strict\n",
                           "ReadWritePaths=/etc/ferry /var/log/ferry\n", "NoNewPrivileges=yes\n"})
    CHECK(unit.find(line) != std::string::npos);

  RunResult have = runProcess({"/bin/sh", "-c", "command -v systemd-analyze"});
  if (have.exit_code != 0) {
    WARN("SKIP: systemd-analyze is not installed (scripts/install-deps installs it)");
    return;
  }
  TempDir dir;
  const std::string copy = std::regex_replace(unit, std::regex("/usr/bin/ferry"), ferryBin());
  const std::string path = dir.write("ferry-test.service", copy);
  RunResult r = runProcess({"systemd-analyze", "verify", path}, 60s);
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("ferry-test.service") == std::string::npos);  // no warning about the unit
}
