#include "proxy/reload_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "core/net/socket_util.h"

namespace ferry::proxy {

std::string readAdminToken(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) return "";
  std::string token = ss.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
  return token;
}

int requestReload(const config::Config& cfg) {
  if (!cfg.admin) {
    std::fprintf(stderr, "ferry: --reload needs an admin block in %s (or send SIGHUP to the process)\n",
                 cfg.path.c_str());
    return 1;
  }
  const std::string token = cfg.admin->token_file.empty() ? "" : readAdminToken(cfg.admin->token_file);
  sockaddr_storage addr{};
  core::net::makeSockaddr(cfg.admin->address.host, cfg.admin->address.port, &addr);
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{60, 0};  // a reload with many routes and certificates takes well under this
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    std::fprintf(stderr, "ferry: cannot reach the admin API at %s: %s\n", cfg.admin->address.text.c_str(),
                 std::strerror(errno));
    if (fd >= 0) ::close(fd);
    return 1;
  }
  std::string req = "POST /reload HTTP/1.1\r\nHost: " + cfg.admin->address.text +
                    "\r\nContent-Length: 0\r\nConnection: close\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  req += "\r\n";
  size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string resp;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  int status = 0;
  if (resp.rfind("HTTP/1.", 0) != 0 || std::sscanf(resp.c_str() + 8, " %d", &status) != 1) {
    std::fprintf(stderr, "ferry: no answer from the admin API at %s\n", cfg.admin->address.text.c_str());
    return 1;
  }
  size_t body = resp.find("\r\n\r\n");
  std::string text = body == std::string::npos ? "" : resp.substr(body + 4);
  if (status == 200) {
    std::fputs(text.c_str(), stdout);
    return 0;
  }
  std::fprintf(stderr, "ferry: reload rejected (%d): %s", status, text.c_str());
  return 1;
}

}  // namespace ferry::proxy
