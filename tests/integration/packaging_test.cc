// What ships beside the binary: the systemd unit passes `systemd-analyze verify` with its
// commands pointing at the built binary (verify fails on a missing executable); `meson install`
// installs the binary, the default config, the unit and the docs.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

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

// ---------------------------------------------------------------------------------------------
// meson install: the binary, the default config, the systemd unit and the docs, at the paths
// the build's prefix/bindir/sysconfdir/datadir give (found by looking, so any prefix works).

namespace {

namespace fs = std::filesystem;

// The build directory the tests run from: $FERRY_BUILD_DIR (set by tests/meson.build), else the
// directory above FERRY_BIN's (build/proxy/ferry), if it is a meson build directory.
std::string buildDir() {
  if (const char* b = std::getenv("FERRY_BUILD_DIR"); b != nullptr && *b != '\0') return b;
  fs::path p = fs::path(ferryBin()).parent_path().parent_path();
  if (fs::exists(p / "meson-private")) return p.string();
  return "";
}

std::string mesonCommand() {
  if (const char* m = std::getenv("FERRY_MESON"); m != nullptr && *m != '\0') return m;
  return "meson";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every regular file under root whose path (relative to root, with a leading '/') ends with
// suffix.
std::vector<std::string> findUnder(const std::string& root, const std::string& suffix) {
  std::vector<std::string> found;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = "/" + fs::relative(e.path(), root).string();
    if (rel.size() >= suffix.size() && rel.compare(rel.size() - suffix.size(), suffix.size(), suffix) == 0)
      found.push_back(rel);
  }
  return found;
}

std::string replaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

// The value of the first "Key=" line of a unit ("" if none).
std::string unitValue(const std::string& unit, const std::string& key) {
  std::smatch m;
  if (std::regex_search(unit, m, std::regex("(^|\n)" + key + "=([^\n]*)"))) return m[2];
  return "";
}

}  // namespace

TEST_CASE("packaging: meson install puts the binary, config, unit and docs in place", "[packaging]") {
  const std::string build = buildDir();
  if (build.empty()) {
    WARN("SKIP: no meson build directory (set FERRY_BUILD_DIR)");
    return;
  }
  TempDir dest;
  RunResult inst = runProcess({mesonCommand(), "install", "--no-rebuild", "--quiet", "--destdir", dest.path(), "-C", build}, 120s);
  INFO("meson install stdout: " << inst.out << "\nstderr: " << inst.err);
  REQUIRE(inst.exit_code == 0);
  const std::string d = dest.path();

  // The binary: exactly one <bindir>/ferry, and it runs.
  const auto bins = findUnder(d, "/bin/ferry");
  REQUIRE(bins.size() == 1);
  const std::string bin = bins[0];
  CHECK(fs::status(d + bin).permissions() == (fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                              fs::perms::others_read | fs::perms::others_exec));
  RunResult ver = runProcess({d + bin, "--version"});
  CHECK(ver.exit_code == 0);
  CHECK(ver.out.rfind("ferry ", 0) == 0);

  // The default config: <sysconfdir>/ferry/ferry.yaml, the same as examples/ferry.yaml, and valid
  // for the installed binary.
  const auto confs = findUnder(d, "/ferry/ferry.yaml");
  std::vector<std::string> etc;
  for (const auto& c : confs)
    if (c.find("/doc/") == std::string::npos) etc.push_back(c);
  REQUIRE(etc.size() == 1);
  const std::string conf = etc[0];
  CHECK(slurp(d + conf) == slurp(srcDir() + "/examples/ferry.yaml"));
  RunResult val = runProcess({d + bin, "-c", d + conf, "--validate"});
  INFO("validate stdout: " << val.out << "\nstderr: " << val.err);
  CHECK(val.exit_code == 0);
  CHECK(slurp(d + conf).find("address: 127.0.0.1:9901") != std::string::npos);  // admin on loopback

  // The systemd unit: <prefix>/lib/systemd/system/ferry.service whose commands name the
  // installed binary and config (for -Dprefix=/usr -Dsysconfdir=/etc: /usr/bin/ferry and
  // /etc/ferry/ferry.yaml, as in examples/systemd/ferry.service).
  const auto units = findUnder(d, "/lib/systemd/system/ferry.service");
  REQUIRE(units.size() == 1);
  const std::string unit = slurp(d + units[0]);
  CHECK(units[0] == fs::path(bin).parent_path().parent_path().string() + "/lib/systemd/system/ferry.service");
  CHECK(unitValue(unit, "ExecStart") == bin + " -c " + conf);
  CHECK(unitValue(unit, "ExecStartPre") == bin + " -c " + conf + " --validate");
  CHECK(unitValue(unit, "ExecReload") == bin + " -c " + conf + " --reload");
  const std::string confdir = fs::path(conf).parent_path().string();
  CHECK(unitValue(unit, "ReadWritePaths") == confdir + " /var/log/ferry");
  // Apart from those paths, the installed unit is the example.
  std::string example = slurp(srcDir() + "/examples/systemd/ferry.service");
  const std::string docdir_guess = unitValue(unit, "Documentation");
  {
    std::string u = unit;
    u = replaceAll(u, bin, "/usr/bin/ferry");
    u = replaceAll(u, confdir, "/etc/ferry");
    u = std::regex_replace(u, std::regex("file:[^ \n]*/doc/ferry/"), "file:/usr/share/doc/ferry/");
    CHECK(u == example);
  }

  // The docs: README.md and every docs/*.md under <datadir>/doc/ferry, in the repository's
  // layout so that their links work; the unit's Documentation= files exist.
  const auto readmes = findUnder(d, "/doc/ferry/README.md");
  REQUIRE(readmes.size() == 1);
  const std::string docdir = fs::path(readmes[0]).parent_path().string();
  CHECK(slurp(d + docdir + "/README.md") == slurp(srcDir() + "/README.md"));
  size_t docs = 0;
  for (const auto& e : fs::directory_iterator(srcDir() + "/docs")) {
    if (e.path().extension() != ".md") continue;
    ++docs;
    const std::string name = e.path().filename().string();
    INFO("docs/" << name << " must be listed in meson.build's install_data");
    CHECK(slurp(d + docdir + "/docs/" + name) == slurp(e.path().string()));
  }
  CHECK(docs >= 8);
  CHECK(fs::exists(d + docdir + "/examples/ferry.yaml"));
  CHECK(fs::exists(d + docdir + "/examples/systemd/ferry.service"));
  std::stringstream doc_urls(docdir_guess);
  for (std::string url; doc_urls >> url;) {
    INFO("Documentation=" << url);
    REQUIRE(url.rfind("file:", 0) == 0);
    CHECK(fs::exists(d + url.substr(5)));
  }

  // Installing again keeps an edited config (an upgrade never overwrites it).
  { std::ofstream(d + conf, std::ios::app) << "# edited\n"; }
  RunResult again = runProcess({mesonCommand(), "install", "--no-rebuild", "--quiet", "--destdir", dest.path(), "-C", build}, 120s);
  CHECK(again.exit_code == 0);
  CHECK(slurp(d + conf).find("# edited\n") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// examples/logrotate/ferry: what it promises, `logrotate -d` parses it, and a forced rotation of
// a copy (paths moved into a temporary directory, the owner made the current user, the
// postrotate command replaced by a marker) renames, creates and runs the script once.

TEST_CASE("packaging: examples/logrotate/ferry parses and rotates", "[packaging]") {
  const std::string conf = slurp(srcDir() + "/examples/logrotate/ferry");
  REQUIRE(!conf.empty());
  for (const char* line : {"/var/log/ferry/*.log {", "    daily\n", "    compress\n", "    delaycompress\n", "    missingok\n",
                           "    notifempty\n", "    create 0640 ferry ferry\n", "    sharedscripts\n",
                           "        systemctl kill --kill-who=main -s USR1 ferry.service"}) {
    INFO(line);
    CHECK(conf.find(line) != std::string::npos);
  }
  CHECK(std::regex_search(conf, std::regex("\n    rotate [0-9]+\n")));

  RunResult have = runProcess({"/bin/sh", "-c", "command -v logrotate || test -x /usr/sbin/logrotate"});
  if (have.exit_code != 0) {
    WARN("SKIP: logrotate is not installed (scripts/install-deps installs it)");
    return;
  }
  const std::string logrotate = fs::exists("/usr/sbin/logrotate") ? "/usr/sbin/logrotate" : "logrotate";
  TempDir dir;
  const std::string logs = dir.path() + "/log";
  fs::create_directories(logs);
  fs::permissions(logs, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                            fs::perms::others_exec);
  // The user `ferry` may not exist here: the copy creates files as the current user.
  RunResult who = runProcess({"/bin/sh", "-c", "printf '%s %s' \"$(id -un)\" \"$(id -gn)\""});
  REQUIRE(who.exit_code == 0);
  std::string copy = replaceAll(conf, "/var/log/ferry/", logs + "/");
  copy = replaceAll(copy, "create 0640 ferry ferry", "create 0640 " + who.out);
  const std::string marker = dir.path() + "/postrotate-ran";
  copy = std::regex_replace(copy, std::regex("systemctl kill --kill-who=main -s USR1 ferry.service[^\n]*"), "echo x >> " + marker);
  const std::string path = dir.write("ferry.logrotate", copy);
  const std::string state = dir.path() + "/state";

  // Dry run (-d): parses the file and says what it would do, changes nothing.
  RunResult dry = runProcess({logrotate, "-d", "-s", state, path}, 30s);
  INFO("logrotate -d stdout: " << dry.out << "\nstderr: " << dry.err);
  CHECK(dry.exit_code == 0);
  CHECK(dry.err.find("error") == std::string::npos);

  dir.write("log/ferry.log", "line 1\n");
  dir.write("log/access.log", "GET /\n");
  RunResult rot = runProcess({logrotate, "-f", "-s", state, path}, 30s);
  INFO("logrotate -f stdout: " << rot.out << "\nstderr: " << rot.err);
  CHECK(rot.exit_code == 0);
  CHECK(slurp(logs + "/ferry.log.1") == "line 1\n");  // delaycompress: the newest is not compressed
  CHECK(slurp(logs + "/access.log.1") == "GET /\n");
  CHECK(fs::exists(logs + "/ferry.log"));  // created again, empty
  CHECK(fs::file_size(logs + "/ferry.log") == 0);
  CHECK((fs::status(logs + "/ferry.log").permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
  CHECK(slurp(marker) == "x\n");  // sharedscripts: once for both files

  // The next rotation compresses the previous one.
  dir.write("log/ferry.log", "line 2\n");
  RunResult rot2 = runProcess({logrotate, "-f", "-s", state, path}, 30s);
  CHECK(rot2.exit_code == 0);
  CHECK(fs::exists(logs + "/ferry.log.2.gz"));
  CHECK(slurp(logs + "/ferry.log.1") == "line 2\n");
}

// ---------------------------------------------------------------------------------------------
// examples/docker: scripts/docker-build-check repeats the Dockerfile's install on this machine
// (no Docker here) and checks the runtime package list against ldd; a list that lacks a package
// the binary needs fails it.

TEST_CASE("packaging: scripts/docker-build-check passes, and fails on a missing runtime package", "[packaging]") {
  const std::string build = buildDir();
  if (build.empty()) {
    WARN("SKIP: no meson build directory (set FERRY_BUILD_DIR)");
    return;
  }
  const std::string script = srcDir() + "/scripts/docker-build-check";
  RunResult ok = runProcess({script, build}, 120s);
  INFO("stdout: " << ok.out << "\nstderr: " << ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(ok.out.find("docker-build-check: OK:") != std::string::npos);
  CHECK(ok.out.find("libssl3") != std::string::npos);

  // The same list without libssl3 (the binary links libssl.so.3 and libcrypto.so.3).
  std::string list = slurp(srcDir() + "/examples/docker/runtime-packages.txt");
  REQUIRE(list.find("\nlibssl3\n") != std::string::npos);
  TempDir dir;
  const std::string short_list = dir.write("runtime-packages.txt", replaceAll(list, "\nlibssl3\n", "\n"));
  RunResult bad = runProcess({script, build, "--packages", short_list}, 120s);
  INFO("stdout: " << bad.out << "\nstderr: " << bad.err);
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("needs package libssl3 (libssl.so.3 libcrypto.so.3)") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// examples/kubernetes and examples/docker/docker-compose.yml: scripts/check-manifests (Debian's
// /usr/bin/python3 with python3-yaml) parses them, checks probes, mounts, grace periods and
// security settings, and validates every embedded ferry.yaml with this build's binary. A copy
// with the usual mistakes (a subPath mount, a probe on another path, a short grace period, no
// watch) must fail on each of them.

TEST_CASE("packaging: Kubernetes manifests and the compose file pass scripts/check-manifests", "[packaging]") {
  RunResult have = runProcess({"/usr/bin/python3", "-c", "import yaml"});
  if (have.exit_code != 0) {
    WARN("SKIP: /usr/bin/python3 has no yaml module (scripts/install-deps installs python3-yaml)");
    return;
  }
  const std::string script = srcDir() + "/scripts/check-manifests";
  RunResult ok = runProcess({"/usr/bin/python3", script, ferryBin()}, 120s);
  INFO("stdout: " << ok.out << "\nstderr: " << ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(std::regex_search(ok.out, std::regex("\ncheck-manifests: [0-9]+ passed, 0 failed\n$")));
  CHECK(ok.out.find("FAIL") == std::string::npos);

  // The same examples, broken.
  TempDir root;
  for (const char* f : {"examples/kubernetes/sidecar.yaml", "examples/kubernetes/edge.yaml", "examples/docker/docker-compose.yml",
                        "examples/docker/ferry.yaml", "examples/docker/Dockerfile"})
    root.write(f, slurp(srcDir() + "/" + f));
  std::string sidecar = slurp(srcDir() + "/examples/kubernetes/sidecar.yaml");
  sidecar = replaceAll(sidecar, "              mountPath: /etc/ferry\n",
                       "              mountPath: /etc/ferry\n              subPath: ferry.yaml\n");
  sidecar = replaceAll(sidecar, "terminationGracePeriodSeconds: 40", "terminationGracePeriodSeconds: 20");
  sidecar = replaceAll(sidecar, "watch_config: true", "watch_config: false");
  sidecar = replaceAll(sidecar, "            httpGet: {path: /healthz, port: 8080}\n            periodSeconds: 2",
                       "            httpGet: {path: /ready, port: 8080}\n            periodSeconds: 2");
  root.write("examples/kubernetes/sidecar.yaml", sidecar);
  std::string edge = slurp(srcDir() + "/examples/kubernetes/edge.yaml");
  edge = replaceAll(edge, "      drain_delay: 10s\n", "      drain_delay: 10s\n      drain_tmeout: 30s\n");  // a typo
  edge = replaceAll(edge, "            runAsNonRoot: true\n", "");
  root.write("examples/kubernetes/edge.yaml", edge);
  root.write("examples/docker/docker-compose.yml",
             replaceAll(slurp(srcDir() + "/examples/docker/docker-compose.yml"), "      - .:/etc/ferry:ro",
                        "      - ./ferry.yaml:/etc/ferry/ferry.yaml:ro"));
  RunResult bad = runProcess({"/usr/bin/python3", script, "--root", root.path(), ferryBin()}, 120s);
  INFO("stdout: " << bad.out << "\nstderr: " << bad.err);
  CHECK(bad.exit_code == 1);
  for (const char* what : {
           "FAIL: examples/kubernetes/sidecar.yaml: Deployment myapp: container ferry: /etc/ferry is a directory mount, not subPath",
           "FAIL: examples/kubernetes/sidecar.yaml: Deployment myapp: container ferry: terminationGracePeriodSeconds 20 >",
           "FAIL: examples/kubernetes/sidecar.yaml: Deployment myapp: container ferry: runtime.watch_config: true",
           "FAIL: examples/kubernetes/sidecar.yaml: Deployment myapp: container ferry: readinessProbe path /ready is listener ingress's health_path",
           "FAIL: examples/kubernetes/edge.yaml: ConfigMap ferry-edge ferry.yaml: ferry --validate",
           "unknown key 'drain_tmeout'",
           "FAIL: examples/kubernetes/edge.yaml: Deployment ferry-edge: container ferry: runAsNonRoot",
           "FAIL: examples/docker/docker-compose.yml: a directory is mounted at /etc/ferry",
       }) {
    INFO(what);
    CHECK(bad.out.find(what) != std::string::npos);
  }
  CHECK(std::regex_search(bad.out, std::regex("\ncheck-manifests: [0-9]+ passed, 7 failed\n$")));
}
