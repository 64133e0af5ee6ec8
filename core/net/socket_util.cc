#include "core/net/socket_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace ferry::core::net {

bool makeSockaddr(const std::string& host, uint16_t port, sockaddr_storage* out) {
  std::memset(out, 0, sizeof *out);
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    return true;
  }
  return false;
}

std::string formatIp(const sockaddr_storage& sa) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa.ss_family == AF_INET) {
    // Dotted quad by hand: glibc's inet_ntop goes through sprintf, and the HTTP connection
    // manager formats the client's address once per keep-alive request (x-forwarded-for).
    const auto* b = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in&>(sa).sin_addr);
    char* p = buf;
    for (int i = 0; i < 4; ++i) {
      unsigned v = b[i];
      if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
      if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
      *p++ = static_cast<char>('0' + v % 10);
      if (i < 3) *p++ = '.';
    }
    return std::string(buf, static_cast<size_t>(p - buf));
  } else if (sa.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(sa).sin6_addr, buf, sizeof buf);
  } else {
    return "unknown";
  }
  return buf;
}

uint16_t sockaddrPort(const sockaddr_storage& sa) {
  if (sa.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(sa).sin_port);
  if (sa.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(sa).sin6_port);
  return 0;
}

std::string formatSockaddr(const sockaddr_storage& sa) {
  if (sa.ss_family == AF_INET6) return "[" + formatIp(sa) + "]:" + std::to_string(sockaddrPort(sa));
  return formatIp(sa) + ":" + std::to_string(sockaddrPort(sa));
}

socklen_t sockaddrLen(const sockaddr_storage& sa) {
  return sa.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

bool unixSockaddr(const std::string& name, bool abstract, sockaddr_un* out, socklen_t* len) {
  std::memset(out, 0, sizeof *out);
  out->sun_family = AF_UNIX;
  // A path needs its terminating NUL; an abstract name is the bytes after the leading NUL.
  size_t room = sizeof out->sun_path - 1;
  if (name.empty() || name.size() > room || name.find('\0') != std::string::npos) return false;
  std::memcpy(out->sun_path + (abstract ? 1 : 0), name.data(), name.size());
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  return true;
}

int listenSocket(const sockaddr_storage& addr, int backlog, bool reuse_port, std::string* error) {
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    *error = std::string("SO_REUSEPORT: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (addr.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sockaddrLen(addr)) != 0) {
    *error = std::string("bind ") + formatSockaddr(addr) + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (::listen(fd, backlog) != 0) {
    *error = std::string("listen: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

bool localAddress(int fd, sockaddr_storage* out) {
  socklen_t len = sizeof *out;
  return ::getsockname(fd, reinterpret_cast<sockaddr*>(out), &len) == 0;
}

bool peerAddress(int fd, sockaddr_storage* out) {
  socklen_t len = sizeof *out;
  return ::getpeername(fd, reinterpret_cast<sockaddr*>(out), &len) == 0;
}

}  // namespace ferry::core::net
