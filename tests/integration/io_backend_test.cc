// runtime.io: which I/O backend the workers run (logged at startup), io_uring serving HTTP and
// TCP traffic byte-exact, the startup error when io_uring is asked for but refused, auto
// (io_uring where it can run, else epoll with the reason), --io and $FERRY_IO, and the key's
// immutability across reloads. The refused case turns io_uring off for the machine for a
// moment (kernel.io_uring_disabled = 2) when that sysctl is writable, else it is skipped
// with a warning.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <string>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_upstream.h"
#include "tests/integration/reload_support.h"

using namespace ferry::testing;

namespace {

bool uringAvailable(std::string* why) {
  RunResult r = runFerry({"--probe-io"});
  *why = r.out;
  return r.exit_code == 0;
}

// kernel.io_uring_disabled = 2 for the scope (io_uring_setup fails with EPERM for everyone),
// restored afterwards. ok() is false where the sysctl is missing or read-only.
class UringDisabled {
 public:
  UringDisabled() {
    std::ifstream in(kPath);
    if (!(in >> old_)) return;
    ok_ = write("2");
  }
  ~UringDisabled() {
    if (ok_) write(old_);
  }
  bool ok() const { return ok_; }

 private:
  static constexpr const char* kPath = "/proc/sys/kernel/io_uring_disabled";
  static bool write(const std::string& v) {
    std::ofstream out(kPath);
    out << v << "\n";
    out.flush();
    return out.good();
  }
  std::string old_;
  bool ok_ = false;
};

std::string config(uint16_t up, const std::string& io) {
  return FerryConfig{.workers = 2, .runtime_extra = io.empty() ? "" : "  io: " + io + "\n", .clusters = {{"up", {up}}}}
      .yaml();
}

}  // namespace

TEST_CASE("runtime.io: io_uring serves HTTP and keeps bodies byte-exact", "[io]") {
  std::string why;
  if (!uringAvailable(&why)) {
    WARN("SKIP: io_uring unavailable here: " << why);
    return;
  }
  const std::string body = randomBytes(3 << 20, 7);
  HttpUpstream up([&](const UpstreamRequest& req) {
    return UpstreamAction{HttpUpstream::response(200, req.target == "/big" ? body : "echo:" + std::to_string(req.body.size()))};
  });
  auto f = FerryProcess::start(config(up.port(), "io_uring"));
  REQUIRE(f->waitForLog("I/O backend: io_uring (runtime.io: io_uring)"));
  const uint16_t web = f->port("web");
  for (int i = 0; i < 20; ++i) CHECK(httpRequest(web, "GET", "/small").status == 200);
  auto r = httpRequest(web, "GET", "/big", "", {}, 20s);
  REQUIRE(r.status == 200);
  CHECK(r.body == body);
  auto p = httpRequest(web, "POST", "/up", body, {}, 20s);
  REQUIRE(p.status == 200);
  CHECK(p.body == "echo:" + std::to_string(body.size()));
  f->signal(SIGTERM);
  CHECK(f->waitExit(10s) == 0);
}

TEST_CASE("runtime.io: the backend is logged; auto runs io_uring where it can", "[io]") {
  HttpUpstream up;
  {
    auto f = FerryProcess::start(config(up.port(), "epoll"));
    REQUIRE(f->waitForLog("I/O backend: epoll (runtime.io: epoll)"));
    CHECK(httpRequest(f->port("web"), "GET", "/x").status == 200);
  }
  {
    std::string why;
    const bool uring = uringAvailable(&why);
    INFO(why);
    auto f = FerryProcess::start(config(up.port(), "auto"));
    if (uring) {
      REQUIRE(f->waitForLog("I/O backend: io_uring (runtime.io: auto)"));
    } else {
      REQUIRE(f->waitForLog("I/O backend: epoll (runtime.io: auto; io_uring is not available here: "));
    }
    CHECK(httpRequest(f->port("web"), "GET", "/x").status == 200);
  }
  // --io overrides the config; $FERRY_IO fills in only where the config is silent.
  {
    auto f = FerryProcess::start(config(up.port(), "auto"), {"--io", "epoll"});
    REQUIRE(f->waitForLog("I/O backend: epoll (runtime.io: epoll)"));
  }
  {
    ScopedEnv env("FERRY_IO", "epoll");
    auto f = FerryProcess::start(config(up.port(), ""));
    REQUIRE(f->waitForLog("I/O backend: epoll (runtime.io: epoll)"));
  }
  {
    ScopedEnv env("FERRY_IO", "epoll");
    auto f = FerryProcess::start(config(up.port(), "auto"));
    REQUIRE(f->waitForLog("(runtime.io: auto"));
  }
  ScopedEnv env("FERRY_IO", "uring");
  RunResult bad = runFerry({"-c", "/dev/null"});
  CHECK(bad.exit_code != 0);
  CHECK(bad.err.find("FERRY_IO: unknown backend 'uring' (auto, epoll or io_uring)") != std::string::npos);
}

TEST_CASE("runtime.io: io_uring refused by the kernel", "[io]") {
  HttpUpstream up;
  UringDisabled off;
  if (!off.ok()) {
    WARN("SKIP: cannot turn io_uring off here (kernel.io_uring_disabled is missing or read-only)");
    return;
  }
  std::string why;
  REQUIRE_FALSE(uringAvailable(&why));
  CHECK(why.find("io_uring: unavailable: io_uring_setup: Operation not permitted") == 0);
  // Asked for explicitly: startup fails and says why.
  TempDir dir;
  const std::string path = dir.path() + "/ferry.yaml";
  std::ofstream(path) << config(up.port(), "io_uring");
  RunResult r = runFerry({"-c", path});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("runtime.io: io_uring is not available here: io_uring_setup: Operation not permitted") !=
        std::string::npos);
  // auto: epoll, saying why.
  auto f = FerryProcess::start(config(up.port(), "auto"));
  REQUIRE(f->waitForLog(
      "I/O backend: epoll (runtime.io: auto; io_uring is not available here: io_uring_setup: Operation not permitted)"));
  CHECK(httpRequest(f->port("web"), "GET", "/x").status == 200);
}

TEST_CASE("runtime.io cannot change by reload", "[io][reload]") {
  HttpUpstream up;
  auto f = FerryProcess::start(config(up.port(), "epoll"));
  const uint16_t admin = f->adminPort();
  const std::string yaml = readFile(f->configPath());
  const std::string changed = std::regex_replace(yaml, std::regex("io: epoll"), "io: io_uring");
  REQUIRE(changed != yaml);
  f->writeConfig(changed);
  auto errors = reloadRefused(admin);
  REQUIRE(errors.size() == 1);
  auto [line, col] = lineColOf(changed, "io_uring");
  CHECK(errors[0] == f->configPath() + ":" + std::to_string(line) + ":" + std::to_string(col) +
                         ": runtime.io cannot change by reload (running 'epoll', now 'io_uring'): restart, or "
                         "upgrade the binary (--upgrade-from)");
  CHECK(httpRequest(f->port("web"), "GET", "/x").status == 200);
}
