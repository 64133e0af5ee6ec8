// tcp_bench: bulk TCP throughput for comparing a direct connection with one through Ferry.
//   tcp_bench sink PORT              accept connections on 127.0.0.1:PORT; read to EOF, reply
//                                    with the byte count (8 bytes), close. Runs until killed.
//   tcp_bench send PORT BYTES        connect, send BYTES (a repeating pattern) then FIN, wait
//                                    for the count; prints "bytes seconds MB/s" and checks it.
// Plain POSIX, no dependencies; a benchmark, not a test.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

int listenOn(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 128) != 0) {
    std::perror("bind/listen");
    std::exit(1);
  }
  return fd;
}

void serve(int fd) {
  std::vector<char> buf(1 << 20);
  uint64_t total = 0;
  for (;;) {
    ssize_t r = ::read(fd, buf.data(), buf.size());
    if (r <= 0) break;
    total += static_cast<uint64_t>(r);
  }
  ::write(fd, &total, sizeof total);
  ::close(fd);
}

int send(uint16_t port, uint64_t bytes) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("connect");
    return 1;
  }
  std::vector<char> buf(1 << 20);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<char>(i * 131);
  auto t0 = std::chrono::steady_clock::now();
  uint64_t left = bytes;
  while (left > 0) {
    ssize_t w = ::write(fd, buf.data(), std::min<uint64_t>(left, buf.size()));
    if (w <= 0) {
      std::perror("write");
      return 1;
    }
    left -= static_cast<uint64_t>(w);
  }
  ::shutdown(fd, SHUT_WR);
  uint64_t got = 0;
  size_t have = 0;
  while (have < sizeof got) {
    ssize_t r = ::read(fd, reinterpret_cast<char*>(&got) + have, sizeof got - have);
    if (r <= 0) break;
    have += static_cast<size_t>(r);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::close(fd);
  if (have != sizeof got || got != bytes) {
    std::fprintf(stderr, "sink counted %llu bytes, sent %llu\n", static_cast<unsigned long long>(got),
                 static_cast<unsigned long long>(bytes));
    return 1;
  }
  std::printf("%llu %.3f %.1f\n", static_cast<unsigned long long>(bytes), secs, bytes / secs / 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[1], "sink") == 0) {
    int l = listenOn(static_cast<uint16_t>(std::atoi(argv[2])));
    for (;;) {
      int c = ::accept(l, nullptr, nullptr);
      if (c < 0) continue;
      std::thread(serve, c).detach();
    }
  }
  if (argc >= 4 && std::strcmp(argv[1], "send") == 0)
    return send(static_cast<uint16_t>(std::atoi(argv[2])), std::strtoull(argv[3], nullptr, 10));
  std::fprintf(stderr, "usage: tcp_bench sink PORT | tcp_bench send PORT BYTES\n");
  return 2;
}
