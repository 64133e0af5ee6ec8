// Small socket helpers over plain POSIX: listening sockets with SO_REUSEPORT, address
// conversion and formatting. Any thread.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <string>

namespace ferry::core::net {

// Makes sockaddr from an IP literal and port. Returns false if `host` is not an IP literal.
bool makeSockaddr(const std::string& host, uint16_t port, sockaddr_storage* out);

// "1.2.3.4:80" or "[::1]:80".
std::string formatSockaddr(const sockaddr_storage& sa);
// Just the IP ("1.2.3.4", "::1").
std::string formatIp(const sockaddr_storage& sa);
uint16_t sockaddrPort(const sockaddr_storage& sa);
socklen_t sockaddrLen(const sockaddr_storage& sa);

// A non-blocking listening socket with SO_REUSEADDR, and SO_REUSEPORT when `reuse_port` (so
// each worker can own one for the same address). Returns the fd, or -1 with *error set.
int listenSocket(const sockaddr_storage& addr, int backlog, bool reuse_port, std::string* error);

// A Unix socket address: a filesystem path, or with `abstract` a name in Linux's abstract
// namespace (sun_path[0] = '\0', no file). Returns false if `name` is empty or too long.
bool unixSockaddr(const std::string& name, bool abstract, sockaddr_un* out, socklen_t* len);

// The address a socket is bound to.
bool localAddress(int fd, sockaddr_storage* out);
bool peerAddress(int fd, sockaddr_storage* out);

}  // namespace ferry::core::net
