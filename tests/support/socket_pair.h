// Loopback sockets for unit tests of connections: a connected pair whose `ours` end is
// non-blocking (for a net::Connection) and whose `peer` end the test drives with blocking,
// bounded calls; a listening socket for a Connection to connect to. Header-only test code.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

namespace ferry::testing {

// Reads on `fd` give up after `seconds` (SO_RCVTIMEO): every wait of a test stays bounded.
inline void boundReads(int fd, int seconds = 5) {
  timeval tv{seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

inline void sendAll(int fd, const std::string& s) {
  REQUIRE(::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()));
}

// Up to `n` bytes: fewer only when the peer closed or the read timed out.
inline std::string recvExactly(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

// The next read sees the end of the stream.
inline bool recvEof(int fd) {
  char c;
  return ::recv(fd, &c, 1, 0) == 0;
}

// A socket listening on 127.0.0.1 (an ephemeral port, written to *addr); the caller closes it.
inline int listenLoopback(sockaddr_storage* addr) {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(lfd, 4) == 0);
  socklen_t len = sizeof *addr;
  REQUIRE(::getsockname(lfd, reinterpret_cast<sockaddr*>(addr), &len) == 0);
  return lfd;
}

// A connected loopback pair: `ours` is non-blocking (for a Connection, which closes it),
// `peer` blocking with bounded reads (closed here).
struct SocketPair {
  int ours = -1, peer = -1;
  SocketPair() {
    sockaddr_storage a{};
    int lfd = listenLoopback(&a);
    peer = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(::connect(peer, reinterpret_cast<sockaddr*>(&a), sizeof(sockaddr_in)) == 0);
    ours = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    REQUIRE(ours >= 0);
    ::close(lfd);
    boundReads(peer);
  }
  ~SocketPair() {
    if (peer >= 0) ::close(peer);
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
  void send(const std::string& s) const { sendAll(peer, s); }
  std::string recvExactly(size_t n) const { return testing::recvExactly(peer, n); }
  bool recvEof() const { return testing::recvEof(peer); }
  // Waits (bounded) until bytes are queued on `ours`. poll() is level-triggered: it consumes
  // no edge of the Poller's edge-triggered registration.
  bool oursReadable(int timeout_ms = 5000) const {
    pollfd p{ours, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
  }
};

}  // namespace ferry::testing
