#include "proxy/sd_notify.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "core/net/socket_util.h"

namespace ferry::proxy {
namespace {

// A decimal number that fits in uint64_t, nothing else (no sign, no spaces).
bool parseUnsigned(const char* s, uint64_t* out) {
  if (s == nullptr || *s == '\0') return false;
  uint64_t v = 0;
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9' || v > (UINT64_MAX - (*s - '0')) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(*s - '0');
  }
  *out = v;
  return true;
}

}  // namespace

bool sdNotify(const std::string& state) {
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (env == nullptr || (env[0] != '/' && env[0] != '@')) return false;
  sockaddr_un addr;
  socklen_t len;
  bool abstract = env[0] == '@';
  if (!core::net::unixSockaddr(abstract ? env + 1 : env, abstract, &addr, &len)) return false;
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t n;
  do {
    n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), len);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  return n == static_cast<ssize_t>(state.size());
}

bool sdNotifyPid(pid_t pid, const std::string& state) {
  return sdNotify("MAINPID=" + std::to_string(pid) + "\n" + state);
}

std::optional<std::chrono::microseconds> sdWatchdogInterval() {
  uint64_t usec = 0;
  if (!parseUnsigned(std::getenv("WATCHDOG_USEC"), &usec) || usec == 0 ||
      usec > static_cast<uint64_t>(std::chrono::microseconds::max().count()))
    return std::nullopt;
  if (const char* pid_env = std::getenv("WATCHDOG_PID"); pid_env != nullptr && *pid_env != '\0') {
    uint64_t pid = 0;
    if (!parseUnsigned(pid_env, &pid) || pid != static_cast<uint64_t>(::getpid())) return std::nullopt;
  }
  return std::chrono::microseconds(static_cast<int64_t>(usec));
}

}  // namespace ferry::proxy
