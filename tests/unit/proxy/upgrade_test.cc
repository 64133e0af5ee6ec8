// Hot upgrade handoff: an UpgradeServer on its own io_context thread (the old process) hands
// real listening sockets to fetchInventory (the new process): the received fds are the same
// sockets, more than SCM_MAX_FD fds are chunked, DRAIN reaches on_drain with our pid, peers
// that go away early, time out or speak garbage leave the server serving, and no fd leaks.
#include "proxy/upgrade.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "core/net/socket_util.h"

using namespace ferry;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

std::string uniqueName() {
  static int n = 0;
  return "ferry-upgrade-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

size_t openFds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// Room for a few hundred extra fds whatever the soft limit.
void raiseFdLimit() {
  rlimit rl;
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &rl) == 0);
  if (rl.rlim_cur < 4096 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = std::min<rlim_t>(4096, rl.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int tcpListener() {
  sockaddr_storage addr;
  REQUIRE(core::net::makeSockaddr("127.0.0.1", 0, &addr));
  std::string err;
  int fd = core::net::listenSocket(addr, 16, false, &err);
  REQUIRE(fd >= 0);
  return fd;
}

uint16_t portOf(int fd) {
  sockaddr_storage addr;
  if (!core::net::localAddress(fd, &addr)) return 0;
  return core::net::sockaddrPort(addr);
}

// A client connected to 127.0.0.1:port is accepted on `listen_fd` within 5 s.
bool acceptsOn(int listen_fd, uint16_t port) {
  sockaddr_storage addr;
  core::net::makeSockaddr("127.0.0.1", port, &addr);
  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = ::connect(client, reinterpret_cast<const sockaddr*>(&addr), core::net::sockaddrLen(addr)) == 0;
  pollfd p{listen_fd, POLLIN, 0};
  ok = ok && ::poll(&p, 1, 5000) == 1;
  int accepted = ok ? ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC) : -1;
  if (accepted >= 0) ::close(accepted);
  ::close(client);
  return accepted >= 0;
}

void closeInventory(proxy::Inventory* inv) {
  for (auto& item : *inv)
    for (int fd : item.fds) ::close(fd);
  inv->clear();
}

// The old process: an UpgradeServer on an io_context run by its own thread.
struct OldProcess {
  OldProcess() : work(asio::make_work_guard(io)) {}
  ~OldProcess() {
    stopLoop();
    server.stop();
  }
  void start(const std::string& name) {
    std::string err;
    REQUIRE(server.start(name, &err));
    thread = std::thread([this] { io.run(); });
  }
  // Runs `fn` on the loop's thread (the server is not thread-safe) and waits for it.
  void onLoop(const std::function<void()>& fn) {
    std::promise<void> done;
    asio::post(io, [&] {
      fn();
      done.set_value();
    });
    REQUIRE(done.get_future().wait_for(10s) == std::future_status::ready);
  }
  void stopLoop() {
    if (!thread.joinable()) return;
    work.reset();
    io.stop();
    thread.join();
  }

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  proxy::UpgradeServer server{io};
  std::thread thread;
};

// fetchInventory that must succeed (showing its error if not).
void fetchOk(const proxy::UpgradeTarget& target, proxy::UpgradeSession* session, proxy::Inventory* inv) {
  std::string err;
  bool ok = proxy::fetchInventory(target, 10s, session, inv, &err);
  INFO(err);
  REQUIRE(ok);
}

// A raw peer, to misbehave.
int rawConnect(const std::string& name) {
  sockaddr_un addr;
  socklen_t len;
  REQUIRE(core::net::unixSockaddr(name, true, &addr, &len));
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0);
  return fd;
}

void sendFrame(int fd, const std::string& payload, uint32_t declared) {
  std::string out{static_cast<char>(declared >> 24), static_cast<char>(declared >> 16),
                  static_cast<char>(declared >> 8), static_cast<char>(declared)};
  out += payload;
  REQUIRE(::send(fd, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size()));
}
void sendFrame(int fd, const std::string& payload) { sendFrame(fd, payload, static_cast<uint32_t>(payload.size())); }

// Everything the server sends until it closes the connection; *closed false if it did not
// within 5 s.
std::string readUntilClosed(int fd, bool* closed) {
  std::string data;
  *closed = false;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return data;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      *closed = n == 0 || errno == ECONNRESET;
      return data;
    }
    data.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

TEST_CASE("upgrade: the new process receives the same listening sockets", "[upgrade]") {
  int web = tcpListener();
  int admin = tcpListener();
  OldProcess old;
  old.server.inventory = [&] {
    return proxy::Inventory{{"listener", "my web", "127.0.0.1:" + std::to_string(portOf(web)), {web}},
                            {"admin", "", "127.0.0.1:" + std::to_string(portOf(admin)), {admin}}};
  };
  std::string name = uniqueName();
  // The new process may start connecting before the old one listens: it retries.
  proxy::Inventory inv;
  std::string err;
  auto fetched = std::async(std::launch::async, [&] {
    return proxy::fetchInventory(proxy::UpgradeTarget{0, name}, 10s, nullptr, &inv, &err);
  });
  old.start(name);
  REQUIRE(fetched.wait_for(15s) == std::future_status::ready);
  bool ok = fetched.get();
  INFO(err);
  REQUIRE(ok);

  REQUIRE(inv.size() == 2);
  CHECK(inv[0].kind == "listener");
  CHECK(inv[0].name == "my web");
  CHECK(inv[0].address == "127.0.0.1:" + std::to_string(portOf(web)));
  CHECK(inv[1].kind == "admin");
  CHECK(inv[1].name == "");
  REQUIRE(inv[0].fds.size() == 1);
  REQUIRE(inv[1].fds.size() == 1);
  for (auto [received, original] : {std::pair{inv[0].fds[0], web}, std::pair{inv[1].fds[0], admin}}) {
    CHECK(received != original);
    CHECK(portOf(received) == portOf(original));
    CHECK((::fcntl(received, F_GETFD) & FD_CLOEXEC) != 0);
    CHECK(acceptsOn(received, portOf(original)));
  }
  // The server borrowed the originals: they are still open.
  CHECK(::fcntl(web, F_GETFD) != -1);
  CHECK(::fcntl(admin, F_GETFD) != -1);
  closeInventory(&inv);
  ::close(web);
  ::close(admin);
}

TEST_CASE("upgrade: more than SCM_MAX_FD fds are chunked and stay in item order", "[upgrade]") {
  raiseFdLimit();
  size_t baseline = openFds();
  {
    int a = tcpListener();
    int b = tcpListener();
    std::vector<int> as, bs;  // 200 + 100: the first 253-fd message spans both items
    for (int i = 0; i < 200; ++i) as.push_back(::fcntl(a, F_DUPFD_CLOEXEC, 0));
    for (int i = 0; i < 100; ++i) bs.push_back(::fcntl(b, F_DUPFD_CLOEXEC, 0));
    OldProcess old;
    old.server.inventory = [&] { return proxy::Inventory{{"listener", "a", "x", as}, {"listener", "b", "y", bs}}; };
    std::string name = uniqueName();
    old.start(name);
    proxy::Inventory inv;
    fetchOk(proxy::UpgradeTarget{0, name}, nullptr, &inv);
    REQUIRE(inv.size() == 2);
    REQUIRE(inv[0].fds.size() == 200);
    REQUIRE(inv[1].fds.size() == 100);
    size_t wrong = 0;
    for (int fd : inv[0].fds) wrong += portOf(fd) != portOf(a);
    for (int fd : inv[1].fds) wrong += portOf(fd) != portOf(b);
    CHECK(wrong == 0);
    CHECK(acceptsOn(inv[0].fds[199], portOf(a)));
    CHECK(acceptsOn(inv[1].fds[0], portOf(b)));
    closeInventory(&inv);
    for (int fd : as) ::close(fd);
    for (int fd : bs) ::close(fd);
    ::close(a);
    ::close(b);
  }
  CHECK(openFds() == baseline);  // the server's duplicates are closed
}

TEST_CASE("upgrade: DRAIN calls on_drain with the new process's pid", "[upgrade]") {
  int web = tcpListener();
  OldProcess old;
  old.server.inventory = [&] { return proxy::Inventory{{"listener", "web", "127.0.0.1:0", {web}}}; };
  std::promise<pid_t> drained;
  old.server.on_drain = [&](pid_t pid) { drained.set_value(pid); };
  // By PID, as --upgrade-from 1234 would: the abstract name of our own pid.
  proxy::UpgradeTarget target;
  std::string err;
  REQUIRE(proxy::parseUpgradeTarget(std::to_string(::getpid()), &target, &err));
  old.start(target.socket);

  proxy::UpgradeSession session;
  proxy::Inventory inv;
  fetchOk(target, &session, &inv);
  REQUIRE(session.connected());
  REQUIRE(inv.size() == 1);
  REQUIRE(session.sendDrain(&err));
  CHECK_FALSE(session.connected());
  auto pid = drained.get_future();
  REQUIRE(pid.wait_for(10s) == std::future_status::ready);
  CHECK(pid.get() == ::getpid());
  closeInventory(&inv);
  ::close(web);
}

TEST_CASE("upgrade: the new process refuses a socket held by another pid", "[upgrade]") {
  OldProcess old;
  std::string name = uniqueName();
  old.start(name);
  proxy::Inventory inv;
  std::string err;
  CHECK_FALSE(proxy::fetchInventory(proxy::UpgradeTarget{1, name}, 10s, nullptr, &inv, &err));
  CHECK(err.find("is held by pid " + std::to_string(::getpid())) != std::string::npos);
  // Nobody listening: retried until the timeout, then an error.
  CHECK_FALSE(proxy::fetchInventory(proxy::UpgradeTarget{0, uniqueName()}, 100ms, nullptr, &inv, &err));
  CHECK(err.find("connect @ferry-upgrade-test-") != std::string::npos);
  CHECK(inv.empty());
}

TEST_CASE("upgrade: peers that leave early, stall or speak garbage leave the server serving", "[upgrade]") {
  size_t baseline = openFds();
  {
    int web = tcpListener();
    OldProcess old;
    old.server.inventory = [&] { return proxy::Inventory{{"listener", "web", "127.0.0.1:0", {web, web, web}}}; };
    std::atomic<int> drains{0};
    std::promise<pid_t> drained;
    old.server.on_drain = [&](pid_t pid) {
      if (++drains == 1) drained.set_value(pid);
    };
    std::string name = uniqueName();
    old.start(name);
    bool closed = false;

    int fd = rawConnect(name);  // gone at once
    ::close(fd);

    fd = rawConnect(name);  // HELLO, then gone without reading the fds
    sendFrame(fd, "HELLO 1 " + std::to_string(::getpid()));
    ::close(fd);

    old.onLoop([&] { old.server.io_timeout = 100ms; });
    fd = rawConnect(name);  // says nothing: closed after io_timeout
    readUntilClosed(fd, &closed);
    CHECK(closed);
    ::close(fd);
    old.onLoop([&] { old.server.io_timeout = 10s; });

    fd = rawConnect(name);  // a frame larger than any request
    sendFrame(fd, "HELLO", 1 << 30);
    readUntilClosed(fd, &closed);
    CHECK(closed);
    ::close(fd);

    fd = rawConnect(name);  // DRAIN before HELLO
    sendFrame(fd, "DRAIN");
    readUntilClosed(fd, &closed);
    CHECK(closed);
    ::close(fd);

    fd = rawConnect(name);  // a protocol version we do not speak
    sendFrame(fd, "HELLO 2 " + std::to_string(::getpid()));
    std::string reply = readUntilClosed(fd, &closed);
    CHECK(closed);
    CHECK(reply.find("ERROR unsupported protocol version 2") != std::string::npos);
    ::close(fd);

    // Reads the inventory, then never sends DRAIN: closed after drain_timeout.
    old.onLoop([&] { old.server.drain_timeout = 100ms; });
    fd = rawConnect(name);
    sendFrame(fd, "HELLO 1 " + std::to_string(::getpid()));
    reply = readUntilClosed(fd, &closed);  // the fds sent with it are dropped by recv()
    CHECK(closed);
    CHECK(reply.find("INVENTORY 1 ") != std::string::npos);
    ::close(fd);
    old.onLoop([&] { old.server.drain_timeout = 10s; });

    proxy::Inventory inv;
    std::string err;
    // Fetches, then goes away before DRAIN (no session kept).
    fetchOk(proxy::UpgradeTarget{0, name}, nullptr, &inv);
    CHECK(inv.at(0).fds.size() == 3);
    closeInventory(&inv);

    // The next new process is served and drains.
    proxy::UpgradeSession session;
    fetchOk(proxy::UpgradeTarget{0, name}, &session, &inv);
    CHECK(inv.at(0).fds.size() == 3);
    CHECK(acceptsOn(inv[0].fds[2], portOf(web)));
    closeInventory(&inv);
    REQUIRE(session.sendDrain(&err));
    auto pid = drained.get_future();
    REQUIRE(pid.wait_for(10s) == std::future_status::ready);
    CHECK(pid.get() == ::getpid());
    old.stopLoop();
    CHECK(drains == 1);
    ::close(web);
  }
  CHECK(openFds() == baseline);
}

TEST_CASE("upgrade: sendDrain fails once the old process has stopped", "[upgrade]") {
  OldProcess old;
  bool drained = false;
  old.server.on_drain = [&](pid_t) { drained = true; };
  std::string name = uniqueName();
  old.start(name);
  proxy::UpgradeSession session;
  proxy::Inventory inv;
  std::string err;
  fetchOk(proxy::UpgradeTarget{0, name}, &session, &inv);
  CHECK(inv.empty());  // no inventory callback: nothing to hand over
  old.onLoop([&] { old.server.stop(); });
  CHECK_FALSE(session.sendDrain(&err));
  CHECK(err.find("DRAIN: ") == 0);
  old.stopLoop();
  CHECK_FALSE(drained);
}

TEST_CASE("upgrade: a socket path is listened on, replaces a stale file and is removed on stop", "[upgrade]") {
  auto dir = std::filesystem::temp_directory_path() / ("ferry-upgrade-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "upgrade.sock").string();
  {  // a socket file left by a process that died
    sockaddr_un addr;
    socklen_t len;
    REQUIRE(core::net::unixSockaddr(path, false, &addr, &len));
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0);
    ::close(fd);
  }
  int web = tcpListener();
  {
    OldProcess old;
    old.server.inventory = [&] { return proxy::Inventory{{"listener", "web", "a", {web}}}; };
    old.start(path);
    CHECK(std::filesystem::is_socket(path));

    proxy::UpgradeTarget target;
    std::string err;
    REQUIRE(proxy::parseUpgradeTarget(path, &target, &err));
    proxy::Inventory inv;
    fetchOk(target, nullptr, &inv);
    CHECK(portOf(inv.at(0).fds.at(0)) == portOf(web));
    closeInventory(&inv);

    // A second server on the same path (a live one) is refused.
    proxy::UpgradeServer second(old.io);
    CHECK_FALSE(second.start(path, &err));
    CHECK(err.find("bind") != std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(path));
  // A regular file is not replaced.
  std::ofstream(path) << "not a socket";
  {
    asio::io_context io;
    proxy::UpgradeServer server(io);
    std::string err;
    CHECK_FALSE(server.start(path, &err));
  }
  CHECK(std::filesystem::is_regular_file(path));
  std::filesystem::remove_all(dir);
  ::close(web);
}

TEST_CASE("upgrade: parseUpgradeTarget takes a PID or a socket path", "[upgrade]") {
  proxy::UpgradeTarget t;
  std::string err;
  REQUIRE(proxy::parseUpgradeTarget("1234", &t, &err));
  CHECK(t.pid == 1234);
  CHECK(t.socket == "ferry-upgrade-1234");
  CHECK(t.socket == proxy::upgradeSocketName(1234));
  REQUIRE(proxy::parseUpgradeTarget("/run/ferry/upgrade.sock", &t, &err));
  CHECK(t.pid == 0);
  CHECK(t.socket == "/run/ferry/upgrade.sock");
  REQUIRE(proxy::parseUpgradeTarget("./upgrade.sock", &t, &err));
  CHECK(t.socket == "./upgrade.sock");
  for (const std::string& bad :
       std::vector<std::string>{"", "abc", "12a", "0", "-5", "99999999999", "99999999999999999999999", "upgrade.sock",
                                "/" + std::string(200, 'x')}) {
    err.clear();
    CHECK_FALSE(proxy::parseUpgradeTarget(bad, &t, &err));
    CHECK_FALSE(err.empty());
  }
}
