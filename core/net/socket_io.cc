#include "core/net/socket_io.h"
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  // splice(2)
#endif

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <vector>

#include "core/event/poller.h"
#include "core/net/socket_util.h"

namespace ferry::core::net {
namespace {
constexpr size_t kReadIovecs = 4;  // up to 64 KiB per readv
constexpr size_t kWriteIovecs = 64;
// io_uring: the receive stops while the inbox holds this much (the connection is not
// reading); read() starts it again once the bytes were taken.
constexpr size_t kInboxLimit = 64 * 1024;

// io_uring inboxes are lent per worker thread: a socket holds one only while bytes wait in
// it, so an idle connection holds none and steady traffic allocates none.
thread_local std::vector<std::unique_ptr<Buffer>> tl_spare_inboxes;
constexpr size_t kSpareInboxes = 256;

std::unique_ptr<Buffer> borrowInbox() {
  if (tl_spare_inboxes.empty()) return std::make_unique<Buffer>();
  std::unique_ptr<Buffer> b = std::move(tl_spare_inboxes.back());
  tl_spare_inboxes.pop_back();
  return b;
}

void returnInbox(std::unique_ptr<Buffer>& b) {
  if (!b) return;
  b->clear();
  if (tl_spare_inboxes.size() < kSpareInboxes) tl_spare_inboxes.push_back(std::move(b));
  b.reset();
}
}  // namespace

SocketIo::SocketIo(Poller& poller, int fd) : poller_(poller), ring_(poller.uring()), fd_(fd) {}

bool SocketIo::watch(PollHandler* handler) {
  if (ring_ != nullptr) {
    slot_ = ring_->open(fd_, this);
    handler_ = handler;
    readable_ = false;
    if (connecting_) {
      writable_ = false;  // until the connect's poll completes
      ring_->pollWritable(slot_);
    } else {
      writable_ = true;
      // An accepted socket usually has its request waiting already (epoll reads it at once,
      // the ready bit being assumed): take it now rather than a loop turn later, when the
      // receive completes. Until then the connection would look idle to a drain.
      readNow();
      if (!pending_eof_ && ring_error_ == 0) ring_->recv(slot_);
    }
    return true;
  }
  readable_ = true;
  writable_ = true;
  if (!poller_.add(fd_, handler)) return false;
  handler_ = handler;
  return true;
}

void SocketIo::readNow() {
  std::unique_ptr<Buffer> in = borrowInbox();
  iovec iov[1];
  in->reserve(iov, 1);
  ssize_t r;
  do {
    r = ::recv(fd_, iov[0].iov_base, iov[0].iov_len, MSG_DONTWAIT);
  } while (r < 0 && errno == EINTR);
  in->commit(r > 0 ? static_cast<size_t>(r) : 0);
  if (r > 0) {
    inbox_ = std::move(in);
    readable_ = true;
    return;
  }
  returnInbox(in);
  if (r == 0) {
    pending_eof_ = true;
    readable_ = true;
  } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
    ring_error_ = errno;
    readable_ = true;
  }
}

void SocketIo::onUringRecv(const uint8_t* data, int n, bool more) {
  uint32_t events = EPOLLIN;
  if (n > 0) {
    if (!inbox_) inbox_ = borrowInbox();
    inbox_->add(data, static_cast<size_t>(n));
    if (!more && !recv_paused_) ring_->recv(slot_);  // the kernel ended it: receive on
    if (more && !recv_paused_ && inbox_->length() >= kInboxLimit) {
      recv_paused_ = true;
      ring_->cancelRecv(slot_);
    }
  } else if (n == 0) {
    pending_eof_ = true;
    events |= EPOLLRDHUP;
  } else if (n == -ENOBUFS) {
    // Every provided buffer was in use: they are back by the time this is submitted.
    if (!recv_paused_) ring_->recv(slot_);
    return;
  } else if (n == -ECANCELED || n == -EINTR) {
    if (!recv_paused_) ring_->recv(slot_);
    return;
  } else {
    ring_error_ = -n;
    events |= EPOLLERR;
  }
  readable_ = true;
  handler_->onPollEvents(events);  // last: it may destroy this
}

void SocketIo::onUringSent(int res) {
  Buffer* buf = sending_;
  sending_ = nullptr;
  if (res > 0) {
    buf->drain(static_cast<size_t>(res));
  } else if (res < 0 && res != -EINTR && res != -EAGAIN) {
    send_error_ = -res;
  }
  writable_ = true;
  handler_->onPollEvents(EPOLLOUT);  // last: it may destroy this
}

void SocketIo::onUringWritable(int res) {
  connecting_ = false;
  writable_ = true;
  uint32_t events = EPOLLOUT;
  if (res < 0 || (res & (POLLERR | POLLHUP))) {
    events |= EPOLLERR;  // connectResult() tells what failed
  } else {
    ring_->recv(slot_);
  }
  handler_->onPollEvents(events);  // last: it may destroy this
}

void SocketIo::onEvents(uint32_t events) {
  if (ring_ != nullptr) return;  // the completions set the state themselves
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) pending_eof_ = true;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable_ = true;
}

int SocketIo::connect(const sockaddr_storage& to) {
  int r = ::connect(fd_, reinterpret_cast<const sockaddr*>(&to), sockaddrLen(to));
  connecting_ = true;
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
  if (ring_ != nullptr) {
    // What arrived, within the budget (the rest stays readable), then the FIN or the error.
    const size_t waiting = inbox_ ? inbox_->length() : 0;
    res.bytes = std::min(budget, waiting);
    if (res.bytes > 0) raw.move(*inbox_, res.bytes);
    if (res.bytes == waiting) {
      returnInbox(inbox_);
      if (ring_error_ != 0) {
        res.error = ring_error_;
      } else if (pending_eof_) {
        res.eof = true;
      }
    }
    if (recv_paused_ && waiting - res.bytes < kInboxLimit && ring_error_ == 0 && !pending_eof_) {
      recv_paused_ = false;
      ring_->recv(slot_);
    }
    readable_ = inbox_ != nullptr || recv_paused_;
    return res;
  }
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
  if (ring_ != nullptr) {
    if (send_error_ != 0) return send_error_;
    if (sending_ != nullptr) {
      writable_ = false;  // the completion says when the next send can start
      return 0;
    }
    if (raw.empty()) return 0;
    ring_->send(slot_, raw);
    sending_ = &raw;
    writable_ = false;
    return 0;
  }
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
  if (ring_ != nullptr) {
    returnInbox(inbox_);
    // Requests in flight are cancelled; a send keeps its bytes until the kernel lets go.
    if (handler_ != nullptr) ring_->close(slot_, sending_);
    sending_ = nullptr;
  } else if (handler_ != nullptr) {
    poller_.remove(fd_, handler_);
  }
  handler_ = nullptr;
  ::close(fd_);
  fd_ = -1;
}

}  // namespace ferry::core::net
