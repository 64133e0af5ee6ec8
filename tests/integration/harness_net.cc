// Integration harness, sockets: TcpClient, Received, FakeUpstream, RefusingPort.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <list>
#include <thread>
#include <utility>

#include "tests/integration/harness.h"
#include "tests/integration/harness_internal.h"

namespace ferry::testing {

using namespace detail;

// ---------------------------------------------------------------------------------------------
// TcpClient

std::unique_ptr<TcpClient> TcpClient::connect(uint16_t port, ms timeout, int recv_buffer) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw HarnessError("socket: " + errnoStr(errno));
  if (recv_buffer > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &recv_buffer, sizeof recv_buffer);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const TimePoint deadline = Clock::now() + timeout;
  int r = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  if (r != 0 && errno != EINPROGRESS && errno != EINTR) {
    ::close(fd);
    return nullptr;
  }
  if (r != 0) {
    if (pollOne(fd, POLLOUT, deadline) == 0) {
      ::close(fd);
      return nullptr;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      ::close(fd);
      return nullptr;
    }
  }
  return std::unique_ptr<TcpClient>(new TcpClient(fd));
}

TcpClient::~TcpClient() { closeFd(fd_); }

bool TcpClient::sendAll(std::string_view data, ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (w > 0) {
      off += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      short ev = pollOne(fd_, POLLOUT, deadline);
      if (ev == 0) return false;
      continue;  // POLLERR/POLLHUP: the next send reports the error
    }
    return false;  // EPIPE / ECONNRESET / ...
  }
  return true;
}

bool TcpClient::fill(TimePoint deadline) {
  if (eof_ || reset_ || fd_ < 0) return false;
  char buf[65536];
  for (;;) {
    ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
    if (r > 0) {
      pending_.append(buf, static_cast<size_t>(r));
      return true;
    }
    if (r == 0) {
      eof_ = true;
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (pollOne(fd_, POLLIN, deadline) == 0) return false;
      continue;
    }
    reset_ = true;
    return false;
  }
}

std::string TcpClient::recvExactly(size_t n, ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  while (pending_.size() < n && fill(deadline)) {
  }
  size_t k = std::min(n, pending_.size());
  std::string out = pending_.substr(0, k);
  pending_.erase(0, k);
  return out;
}

std::string TcpClient::recvUntilClose(ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  while (fill(deadline)) {
  }
  return std::exchange(pending_, std::string());
}

std::string TcpClient::recvSome(ms timeout) {
  if (pending_.empty()) fill(Clock::now() + timeout);
  return std::exchange(pending_, std::string());
}

bool TcpClient::waitClosed(ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  pending_.clear();
  while (fill(deadline)) pending_.clear();
  return eof_ || reset_;
}

bool TcpClient::peerClosedOrReset(ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  while (fill(deadline)) {
  }
  return eof_ || reset_;
}

void TcpClient::shutdownWrite() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void TcpClient::setRecvBuffer(int bytes) {
  if (fd_ >= 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

void TcpClient::close() { closeFd(fd_); }

void TcpClient::resetClose() {
  if (fd_ < 0) return;
  linger lg{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  closeFd(fd_);
}

// ---------------------------------------------------------------------------------------------
// Received

std::string Received::data() const {
  std::lock_guard<std::mutex> lk(mu_);
  return data_;
}
size_t Received::size() const {
  std::lock_guard<std::mutex> lk(mu_);
  return data_.size();
}
bool Received::eof() const {
  std::lock_guard<std::mutex> lk(mu_);
  return ended_ > 0;
}
bool Received::reset() const {
  std::lock_guard<std::mutex> lk(mu_);
  return reset_;
}
bool Received::waitBytes(size_t n, ms timeout) const {
  std::unique_lock<std::mutex> lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return data_.size() >= n; });
}
bool Received::waitEof(ms timeout) const {
  std::unique_lock<std::mutex> lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return ended_ > 0; });
}
void Received::append(std::string_view bytes) {
  std::lock_guard<std::mutex> lk(mu_);
  data_.append(bytes);
  cv_.notify_all();
}
void Received::markEnded(bool by_reset) {
  std::lock_guard<std::mutex> lk(mu_);
  ++ended_;
  reset_ = reset_ || by_reset;
  cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// FakeUpstream

struct FakeUpstream::Impl {
  Handler handler;
  int listen_fd = -1;
  uint16_t port = 0;
  int wake_rd = -1, wake_wr = -1;
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  size_t accepted = 0;
  bool stopping = false;
  bool stop_listening = false;
  bool listening_closed = false;
  struct Conn {
    int fd = -1;
    bool done = false;
    std::thread th;
  };
  std::list<Conn> conns;
  std::thread acceptor;

  void wake() {
    char c = 1;
    ssize_t w = ::write(wake_wr, &c, 1);
    (void)w;
  }

  void runConn(Conn* c) {
    try {
      handler(c->fd);
    } catch (...) {
      // Handlers must not assert; swallow so one bad connection cannot terminate the binary.
    }
    std::lock_guard<std::mutex> lk(mu);
    closeFd(c->fd);
    c->done = true;
  }

  void reapDone() {  // with mu held: join finished handler threads
    for (auto it = conns.begin(); it != conns.end();) {
      if (it->done) {
        it->th.join();
        it = conns.erase(it);
      } else {
        ++it;
      }
    }
  }

  void acceptLoop() {
    for (;;) {
      bool lclosed;
      {
        std::lock_guard<std::mutex> lk(mu);
        if (stopping) break;
        if (stop_listening && !listening_closed) {
          closeFd(listen_fd);
          listening_closed = true;
          cv.notify_all();
        }
        lclosed = listening_closed;
      }
      pollfd p[2] = {{wake_rd, POLLIN, 0}, {listen_fd, POLLIN, 0}};
      int r = ::poll(p, lclosed ? 1 : 2, -1);  // woken through wake_rd by stop/destructor
      if (r < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (p[0].revents != 0) {
        char buf[64];
        while (::read(wake_rd, buf, sizeof buf) > 0) {
        }
        continue;
      }
      if (lclosed || p[1].revents == 0) continue;
      int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);  // blocking conn fd
      if (fd < 0) continue;  // EAGAIN (listen fd is non-blocking), ECONNABORTED, ...
      std::lock_guard<std::mutex> lk(mu);
      reapDone();
      if (stopping) {
        ::close(fd);
        break;
      }
      conns.emplace_back();
      Conn* c = &conns.back();
      c->fd = fd;
      ++accepted;
      c->th = std::thread([this, c] { runConn(c); });
      cv.notify_all();
    }
    std::lock_guard<std::mutex> lk(mu);
    closeFd(listen_fd);
    listening_closed = true;
    cv.notify_all();
  }
};

FakeUpstream::FakeUpstream(Handler handler, const std::string& ip, uint16_t port) : impl_(std::make_shared<Impl>()) {
  Impl& im = *impl_;
  im.handler = std::move(handler);
  im.listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (im.listen_fd < 0) throw HarnessError("socket: " + errnoStr(errno));
  int one = 1;
  ::setsockopt(im.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (::inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1) {
    closeFd(im.listen_fd);
    throw HarnessError("FakeUpstream: not an IPv4 address: " + ip);
  }
  socklen_t len = sizeof sa;
  if (::bind(im.listen_fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::listen(im.listen_fd, 1024) != 0 ||
      ::getsockname(im.listen_fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    int e = errno;
    closeFd(im.listen_fd);
    throw HarnessError("FakeUpstream bind/listen: " + errnoStr(e));
  }
  im.port = ntohs(sa.sin_port);
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    int e = errno;
    closeFd(im.listen_fd);
    throw HarnessError("pipe2: " + errnoStr(e));
  }
  im.wake_rd = wake[0];
  im.wake_wr = wake[1];
  im.acceptor = std::thread([p = impl_.get()] { p->acceptLoop(); });
}

FakeUpstream::~FakeUpstream() {
  Impl& im = *impl_;
  {
    std::lock_guard<std::mutex> lk(im.mu);
    im.stopping = true;
  }
  im.wake();
  im.acceptor.join();
  {
    // Unblock handlers: reads return 0, writes fail. The fds stay valid (closed by runConn
    // under the same mutex), so this never touches a recycled descriptor.
    std::lock_guard<std::mutex> lk(im.mu);
    for (auto& c : im.conns) {
      if (c.fd >= 0) ::shutdown(c.fd, SHUT_RDWR);
    }
  }
  // The list is no longer modified by anyone else; join without holding the mutex.
  for (auto& c : im.conns) {
    if (c.th.joinable()) c.th.join();
  }
  closeFd(im.wake_rd);
  closeFd(im.wake_wr);
}

uint16_t FakeUpstream::port() const { return impl_->port; }

size_t FakeUpstream::accepted() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->accepted;
}

bool FakeUpstream::waitAccepted(size_t n, ms timeout) const {
  std::unique_lock<std::mutex> lk(impl_->mu);
  return impl_->cv.wait_for(lk, timeout, [&] { return impl_->accepted >= n; });
}

void FakeUpstream::stopListening() {
  Impl& im = *impl_;
  std::unique_lock<std::mutex> lk(im.mu);
  im.stop_listening = true;
  im.wake();
  if (!im.cv.wait_for(lk, 10s, [&] { return im.listening_closed; })) {
    throw HarnessError("FakeUpstream::stopListening: acceptor did not respond");
  }
}

bool FakeUpstream::writeAll(int fd, std::string_view data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    off += static_cast<size_t>(w);
  }
  return true;
}

std::string FakeUpstream::readSome(int fd, size_t max) {
  std::string buf(max, '\0');
  for (;;) {
    ssize_t r = ::recv(fd, buf.data(), max, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return {};
    buf.resize(static_cast<size_t>(r));
    return buf;
  }
}

FakeUpstream::Handler FakeUpstream::echo() {
  return [](int fd) {
    char buf[65536];
    for (;;) {
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return;  // reset
      if (r == 0) break;
      if (!writeAll(fd, std::string_view(buf, static_cast<size_t>(r)))) return;
    }
    ::shutdown(fd, SHUT_WR);
  };
}

FakeUpstream::Handler FakeUpstream::sink(std::shared_ptr<Received> rec) {
  return [rec](int fd) {
    char buf[65536];
    for (;;) {
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        rec->markEnded(r < 0);
        return;
      }
      rec->append(std::string_view(buf, static_cast<size_t>(r)));
    }
  };
}

FakeUpstream::Handler FakeUpstream::closeImmediately() {
  return [](int) {};
}

FakeUpstream::Handler FakeUpstream::reply(std::string response, std::shared_ptr<Received> request) {
  return [response = std::move(response), request](int fd) {
    std::string head;
    char buf[65536];
    while (head.find("\r\n\r\n") == std::string::npos) {
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      head.append(buf, static_cast<size_t>(r));
      if (request) request->append(std::string_view(buf, static_cast<size_t>(r)));
    }
    writeAll(fd, response);
    ::shutdown(fd, SHUT_WR);
    // Drain until the peer closes (so our close does not turn into a RST), bounded.
    const TimePoint deadline = Clock::now() + 10s;
    for (;;) {
      short ev = pollOne(fd, POLLIN, deadline);
      if (ev == 0) break;
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      if (request) request->append(std::string_view(buf, static_cast<size_t>(r)));
    }
    if (request) request->markEnded();
  };
}

// ---------------------------------------------------------------------------------------------
// RefusingPort

RefusingPort::RefusingPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw HarnessError("RefusingPort: socket: " + errnoStr(errno));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  // Bound, never listen()ed: connections to the port are refused, and the binding keeps
  // anyone else from taking the port while this object lives.
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    int e = errno;
    closeFd(fd_);
    throw HarnessError("RefusingPort: bind: " + errnoStr(e));
  }
  port_ = ntohs(sa.sin_port);
}

RefusingPort::~RefusingPort() { closeFd(fd_); }

}  // namespace ferry::testing
