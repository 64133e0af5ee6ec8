// Binary upgrade (--upgrade-from, SIGUSR2), `ferry --reload` and the systemd notify protocol,
// over real sockets with the built binary. Under load, every request is counted: not one
// may fail, and not one connection may be refused while the sockets change hands.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <catch2/catch.hpp>
#include <thread>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"

using namespace ferry::testing;

namespace {

std::string directYaml(int workers, const std::string& body, const std::string& runtime_extra = "") {
  return "runtime:\n  workers: " + std::to_string(workers) + "\n  drain_timeout: 10s\n" + runtime_extra +
         "admin:\n  address: 127.0.0.1:0\n"
         "listeners:\n"
         "  - name: web\n"
         "    address: 127.0.0.1:0\n"
         "    http:\n"
         "      virtual_hosts:\n"
         "        - name: all\n"
         "          domains: ['*']\n"
         "          routes: [{match: {prefix: /}, direct_response: {status: 200, body: " + body + "}}]\n";
}

// New connections, one request each, back to back until stopped: a refused connection or a
// failed request is an error.
struct Load {
  explicit Load(uint16_t port) : port_(port), thread_([this] { run(); }) {}
  ~Load() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  bool waitRequests(long n, ms timeout) {
    return waitUntil([&] { return ok.load() >= n; }, timeout);
  }
  std::atomic<long> ok{0}, errors{0};
  std::string last_error;

 private:
  void run() {
    while (!stop_) {
      auto r = httpRequest(port_, "GET", "/", "", {}, 5s);
      if (r.status == 200) {
        ++ok;
      } else {
        if (errors++ == 0) last_error = r.error.empty() ? "status " + std::to_string(r.status) : r.error;
      }
    }
  }
  uint16_t port_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A datagram socket on an abstract name, as systemd's NOTIFY_SOCKET; next() waits up to 10 s.
struct NotifySocket {
  explicit NotifySocket(std::string n) : name(std::move(n)) {
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path + 1, name.data(), name.size());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())) == 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NotifySocket() { ::close(fd); }
  std::string next() {
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
  std::string name;
  int fd = -1;
};

}  // namespace

TEST_CASE("upgrade: --upgrade-from takes the sockets, the old process drains and exits 0, no request fails",
          "[upgrade]") {
  auto old = FerryProcess::start(directYaml(2, "v1"));
  const uint16_t port = old->port("web");
  const uint16_t admin = old->adminPort();
  Load load(port);
  REQUIRE(load.waitRequests(50, 10s));

  // The new binary: the same listener (by name and address), one worker instead of two.
  auto fresh = FerryProcess::start(directYaml(1, "v2"), {"--upgrade-from", std::to_string(old->pid())});
  REQUIRE(fresh->waitForLog("upgrade: took over from", 10s));
  auto code = old->waitExit(10s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(old->countInLog("upgrade: pid " + std::to_string(fresh->pid()) + " serves the listeners now") == 1);
  // The same port and admin port, now answered by the new config.
  REQUIRE(waitUntil([&] { return httpRequest(port, "GET", "/").body == "v2"; }, 5s));
  const long before = load.ok.load();
  REQUIRE(load.waitRequests(before + 50, 10s));
  load.stop();
  INFO(load.last_error);
  CHECK(load.errors.load() == 0);
  CHECK(load.ok.load() > 100);
  auto ready = httpRequest(admin, "GET", "/ready");
  CHECK(ready.status == 200);
  CHECK(fresh->log().find("(2 inherited sockets)") != std::string::npos);
}

TEST_CASE("upgrade: a new process with more workers than inherited sockets binds the rest", "[upgrade]") {
  auto old = FerryProcess::start(directYaml(1, "v1"));
  const uint16_t port = old->port("web");
  Load load(port);
  REQUIRE(load.waitRequests(20, 10s));
  auto fresh = FerryProcess::start(directYaml(3, "v2"), {"--upgrade-from", std::to_string(old->pid())});
  REQUIRE(fresh->waitForLog("upgrade: took over from", 10s));
  REQUIRE(old->waitExit(10s).has_value());
  REQUIRE(waitUntil([&] { return httpRequest(port, "GET", "/").body == "v2"; }, 5s));
  const long before = load.ok.load();
  REQUIRE(load.waitRequests(before + 50, 10s));
  load.stop();
  INFO(load.last_error);
  CHECK(load.errors.load() == 0);
  CHECK(fresh->log().find("(1 inherited socket)") != std::string::npos);
}

TEST_CASE("upgrade: a request in flight on the old process completes after the handover", "[upgrade]") {
  // An upstream that answers after 600ms.
  FakeUpstream up([](int fd) {
    std::string req;
    while (req.find("\r\n\r\n") == std::string::npos) {
      std::string more = FakeUpstream::readSome(fd);
      if (more.empty()) return;
      req += more;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(600));  // the slow upstream itself
    FakeUpstream::writeAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
  });
  const std::string yaml = FerryConfig{.workers = 1, .runtime_extra = "  drain_timeout: 10s\n",
                                       .clusters = {{"up", {up.port()}}}}.yaml();
  auto old = FerryProcess::start(yaml);
  const uint16_t port = old->port("web");
  auto c = TcpClient::connect(port);
  REQUIRE(c);
  REQUIRE(c->sendAll("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(up.waitAccepted(1, 5s));
  auto fresh = FerryProcess::start(yaml, {"--upgrade-from", std::to_string(old->pid())});
  REQUIRE(fresh->waitForLog("upgrade: took over from", 10s));
  auto r = readHttpResponse(*c);
  CHECK(r.status == 200);
  CHECK(r.body == "slow");
  CHECK(r.header("connection") == "close");  // the old process drains
  auto code = old->waitExit(10s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
}

TEST_CASE("upgrade: SIGUSR2 starts the binary again, which takes over; a broken config leaves the old serving",
          "[upgrade]") {
  auto old = FerryProcess::start(directYaml(2, "v1"));
  const uint16_t port = old->port("web");
  Load load(port);
  REQUIRE(load.waitRequests(20, 10s));

  // A config the new process rejects: the upgrade fails, the old process serves on.
  const std::string good = directYaml(2, "v2");
  old->writeConfig(good + "bogus_key: 1\n");
  old->signal(SIGUSR2);
  REQUIRE(old->waitForLog("before taking over; still serving", 10s));
  REQUIRE(old->running());
  CHECK(httpRequest(port, "GET", "/").body == "v1");

  old->writeConfig(good);
  old->signal(SIGUSR2);
  REQUIRE(old->waitForLog("upgrade: took over from", 10s));  // the child logs to the same output
  auto code = old->waitExit(10s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  REQUIRE(waitUntil([&] { return httpRequest(port, "GET", "/").body == "v2"; }, 5s));
  const long before = load.ok.load();
  REQUIRE(load.waitRequests(before + 30, 10s));
  load.stop();
  INFO(load.last_error);
  CHECK(load.errors.load() == 0);
}

TEST_CASE("upgrade: --upgrade-from a process that is not there fails startup with a clear error", "[upgrade]") {
  auto r = runFerry({"-c", "/dev/null", "--upgrade-from", "garbage"});
  CHECK(r.exit_code == 1);
  TempDir dir;
  const std::string path = dir.write("ferry.yaml", directYaml(1, "v1"));
  // A pid with no ferry behind it: the socket never answers; bounded by the 10s fetch timeout.
  auto r2 = runFerry({"-c", path, "--upgrade-from", std::to_string(::getpid())}, 20s);
  CHECK(r2.exit_code == 1);
  CHECK(r2.err.find("upgrade: cannot take the sockets of") != std::string::npos);
}

TEST_CASE("cli: ferry --reload applies the file and exits 0, or prints the errors and exits 1", "[upgrade][cli]") {
  auto f = FerryProcess::start(directYaml(1, "v1"));
  const uint16_t port = f->port("web");
  const uint16_t admin = f->adminPort();
  // `ferry --reload` reaches the admin address the file names: the port the running ferry got
  // for its "127.0.0.1:0" (the address it is bound to, so not a change of admin.address).
  auto withAdmin = [&](std::string yaml) {
    yaml.replace(yaml.find("127.0.0.1:0\nlisteners"), 11, "127.0.0.1:" + std::to_string(admin));
    return yaml;
  };
  f->writeConfig(withAdmin(directYaml(1, "v2")));
  auto r = runFerry({"-c", f->configPath(), "--reload"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("\"result\":\"success\"") != std::string::npos);
  CHECK(httpRequest(port, "GET", "/").body == "v2");
  // Rejected by the running ferry (runtime.workers cannot change): exit 1, its errors printed.
  f->writeConfig(withAdmin(directYaml(2, "v3")));
  r = runFerry({"-c", f->configPath(), "--reload"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("runtime.workers cannot change by reload") != std::string::npos);
  CHECK(httpRequest(port, "GET", "/").body == "v2");
  // A file that does not validate: its errors, exit 1, and the running ferry is not asked.
  f->writeConfig(withAdmin(directYaml(1, "v4")) + "bogus: 1\n");
  r = runFerry({"-c", f->configPath(), "--reload"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("bogus") != std::string::npos);
  CHECK(httpRequest(port, "GET", "/").body == "v2");
}

TEST_CASE("systemd: READY=1 once listening, RELOADING=1/READY=1 around a reload, STOPPING=1 on drain",
          "[upgrade][systemd]") {
  TempDir dir;
  NotifySocket sock("ferry-test-notify-" + std::to_string(::getpid()));
  auto next = [&] { return sock.next(); };
  const std::string name = sock.name;
  const std::string path = dir.write("ferry.yaml", directYaml(1, "v1"));
  auto f = FerryProcess::startCommand({"/usr/bin/env", "NOTIFY_SOCKET=@" + name, ferryBin(), "-c", path});
  std::string m = next();
  CHECK(m.find("READY=1") != std::string::npos);
  CHECK(m.find("STATUS=serving") != std::string::npos);
  f->signal(SIGHUP);
  CHECK(next().find("RELOADING=1") != std::string::npos);
  m = next();
  CHECK(m.find("READY=1") != std::string::npos);
  CHECK(m.find("config version 2") != std::string::npos);
  f->signal(SIGTERM);
  CHECK(next().find("STOPPING=1") != std::string::npos);
  CHECK(f->waitExit(10s).has_value());
}

TEST_CASE("systemd: WATCHDOG_USEC makes the main loop send WATCHDOG=1 at half the interval", "[upgrade][systemd]") {
  TempDir dir;
  NotifySocket sock("ferry-test-watchdog-" + std::to_string(::getpid()));
  const std::string path = dir.write("ferry.yaml", directYaml(1, "v1"));
  auto f = FerryProcess::startCommand(
      {"/usr/bin/env", "NOTIFY_SOCKET=@" + sock.name, "WATCHDOG_USEC=400000", ferryBin(), "-c", path});
  int pings = 0;
  const auto start = std::chrono::steady_clock::now();
  while (pings < 3 && std::chrono::steady_clock::now() - start < 10s) {
    std::string m = sock.next();
    if (m.empty()) break;
    if (m.find("WATCHDOG=1") != std::string::npos) ++pings;
  }
  CHECK(pings == 3);
  CHECK(f->waitForLog("systemd watchdog: WATCHDOG=1 every 200 ms"));
}
