#include "core/net/socket_io.h"
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  // splice(2)
#endif

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

#include "core/event/poller.h"
#include "core/net/socket_util.h"

namespace ferry::core::net {
namespace {
constexpr size_t kReadIovecs = 4;  // up to 64 KiB per readv
constexpr size_t kWriteIovecs = 64;
}  // namespace

bool SocketIo::watch(PollHandler* handler) {
  readable_ = true;
  writable_ = true;
  if (!poller_.add(fd_, handler)) return false;
  handler_ = handler;
  return true;
}

void SocketIo::onEvents(uint32_t events) {
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) pending_eof_ = true;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable_ = true;
}

int SocketIo::connect(const sockaddr_storage& to) {
  int r = ::connect(fd_, reinterpret_cast<const sockaddr*>(&to), sockaddrLen(to));
  return r == 0 || errno == EINPROGRESS ? 0 : errno;
}

int SocketIo::connectResult() const {
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

SocketIo::ReadResult SocketIo::read(Buffer& raw, size_t budget) {
  ReadResult res;
  while (res.bytes < budget) {
    iovec iov[kReadIovecs];
    size_t n = raw.reserve(iov, kReadIovecs);
    size_t capacity = 0;
    for (size_t i = 0; i < n; ++i) capacity += iov[i].iov_len;
    ssize_t r = ::readv(fd_, iov, static_cast<int>(n));
    if (r > 0) {
      raw.commit(static_cast<size_t>(r));
      res.bytes += static_cast<size_t>(r);
      // A short read drained the socket: new data raises a new edge. Unless the peer's FIN
      // (or an error) was already reported: that raises none, so read on to see it.
      if (static_cast<size_t>(r) < capacity && !pending_eof_) {
        readable_ = false;
        break;
      }
      continue;
    }
    raw.commit(0);
    if (r == 0) {
      res.eof = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_ = false;
      break;
    }
    res.error = errno;
    break;
  }
  return res;
}

int SocketIo::write(Buffer& raw) {
  while (!raw.empty()) {
    iovec iov[kWriteIovecs];
    size_t n = raw.gather(iov, kWriteIovecs);
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    ssize_t r = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (r > 0) {
      raw.drain(static_cast<size_t>(r));
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      writable_ = false;  // EPOLLOUT will say when there is room
      return 0;
    }
    return r < 0 && errno != 0 ? errno : EIO;
  }
  return 0;
}

SocketIo::ReadResult SocketIo::spliceIn(int pipe_w, size_t max) {
  ReadResult res;
  for (;;) {
    ssize_t r = ::splice(fd_, nullptr, pipe_w, nullptr, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (r > 0) {
      res.bytes = static_cast<size_t>(r);
    } else if (r == 0) {
      res.eof = true;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_ = false;
    } else {
      res.error = errno;
    }
    return res;
  }
}

long SocketIo::spliceOut(int pipe_r, size_t n) {
  size_t moved = 0;
  while (moved < n) {
    ssize_t r = ::splice(pipe_r, nullptr, fd_, nullptr, n - moved, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (r > 0) {
      moved += static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      writable_ = false;  // EPOLLOUT will say when there is room
      break;
    }
    return r < 0 && errno != 0 ? -errno : -EIO;
  }
  return static_cast<long>(moved);
}

void SocketIo::shutdownWrite() { ::shutdown(fd_, SHUT_WR); }

void SocketIo::close(bool reset) {
  if (fd_ < 0) return;
  if (reset) {
    linger lg{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  if (handler_ != nullptr) poller_.remove(fd_, handler_);
  handler_ = nullptr;
  ::close(fd_);
  fd_ = -1;
}

}  // namespace ferry::core::net
