// sd_notify: a datagram reaches $NOTIFY_SOCKET (abstract "@name" and path forms), MAINPID is
// prefixed by sdNotifyPid, nothing is sent without the variable; the watchdog interval
// follows WATCHDOG_USEC and WATCHDOG_PID.
#include "proxy/sd_notify.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/net/socket_util.h"

using namespace ferry;

namespace {

// A bound datagram socket standing in for systemd's notify socket.
struct NotifySocket {
  NotifySocket(const std::string& name, bool abstract) {
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr;
    socklen_t len;
    REQUIRE(core::net::unixSockaddr(name, abstract, &addr, &len));
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0);
    ::setenv("NOTIFY_SOCKET", ((abstract ? "@" : "") + name).c_str(), 1);
  }
  ~NotifySocket() {
    ::unsetenv("NOTIFY_SOCKET");
    ::close(fd);
  }
  // The next datagram, waiting at most 5 s ("" on timeout).
  std::string receive() {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return "";
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }
  int fd = -1;
};

}  // namespace

TEST_CASE("sd_notify: a state reaches an abstract NOTIFY_SOCKET", "[sd_notify]") {
  NotifySocket sock("ferry-test-notify-" + std::to_string(::getpid()), true);
  REQUIRE(proxy::sdNotify("READY=1\nSTATUS=x"));
  CHECK(sock.receive() == "READY=1\nSTATUS=x");
  REQUIRE(proxy::sdNotifyPid(4321, "READY=1"));
  CHECK(sock.receive() == "MAINPID=4321\nREADY=1");
}

TEST_CASE("sd_notify: a state reaches a NOTIFY_SOCKET path", "[sd_notify]") {
  auto dir = std::filesystem::temp_directory_path() / ("ferry-notify-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    NotifySocket sock((dir / "notify").string(), false);
    REQUIRE(proxy::sdNotify("READY=1\nSTATUS=x"));
    CHECK(sock.receive() == "READY=1\nSTATUS=x");
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("sd_notify: nothing is sent without NOTIFY_SOCKET, or to a socket nobody bound", "[sd_notify]") {
  ::unsetenv("NOTIFY_SOCKET");
  CHECK_FALSE(proxy::sdNotify("READY=1"));
  ::setenv("NOTIFY_SOCKET", "", 1);
  CHECK_FALSE(proxy::sdNotify("READY=1"));
  ::setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
  CHECK_FALSE(proxy::sdNotify("READY=1"));
  ::setenv("NOTIFY_SOCKET", ("@ferry-test-nobody-" + std::to_string(::getpid())).c_str(), 1);
  CHECK_FALSE(proxy::sdNotify("READY=1"));
  ::unsetenv("NOTIFY_SOCKET");
}

TEST_CASE("sd_notify: the watchdog interval follows WATCHDOG_USEC and WATCHDOG_PID", "[sd_notify]") {
  ::unsetenv("WATCHDOG_PID");
  ::unsetenv("WATCHDOG_USEC");
  CHECK_FALSE(proxy::sdWatchdogInterval());
  ::setenv("WATCHDOG_USEC", "500000", 1);
  REQUIRE(proxy::sdWatchdogInterval());
  CHECK(proxy::sdWatchdogInterval()->count() == 500000);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  REQUIRE(proxy::sdWatchdogInterval());
  CHECK(proxy::sdWatchdogInterval()->count() == 500000);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
  CHECK_FALSE(proxy::sdWatchdogInterval());  // meant for another process
  ::unsetenv("WATCHDOG_PID");
  for (const char* bad : {"0", "", "-5", "12x", " 7", "99999999999999999999999"}) {
    ::setenv("WATCHDOG_USEC", bad, 1);
    CHECK_FALSE(proxy::sdWatchdogInterval());
  }
  ::unsetenv("WATCHDOG_USEC");
}
