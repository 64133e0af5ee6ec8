#include "core/net/connection.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

#include "core/event/timer.h"
#include "core/net/socket_util.h"

namespace ferry::core::net {
namespace asio = boost::asio;

namespace {
constexpr ConnectionEvent kRemote = ConnectionEvent::kRemoteClose;
constexpr ConnectionEvent kLocal = ConnectionEvent::kLocalClose;
constexpr ConnectionEvent kFailed = ConnectionEvent::kConnectFailed;
constexpr size_t kReadIovecs = 4;             // up to 64 KiB per readv
constexpr size_t kReadBudget = 256 * 1024;    // per wakeup, then yield to other connections
constexpr size_t kWriteIovecs = 64;
}  // namespace

Connection::Connection(asio::io_context& io, int fd, BufferAccounting acct)
    : io_(io), poller_(Poller::of(io)), fd_(fd), acct_(acct) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Connection::~Connection() {
  if (!closed_) closeInternal(CloseType::kNoFlush, nullptr, "destroyed");
}

std::shared_ptr<Connection> Connection::adopt(asio::io_context& io, int fd, BufferAccounting acct) {
  auto conn = std::shared_ptr<Connection>(new Connection(io, fd, acct));
  // Data may already be waiting (the edge came before registration): try one read first.
  conn->readable_ = true;
  conn->writable_ = true;
  conn->registered_ = conn->poller_.add(fd, conn.get());
  if (!conn->registered_) {
    std::string reason = std::string("register: ") + std::strerror(errno);
    asio::post(io, [conn, reason] { conn->closeInternal(CloseType::kNoFlush, &kRemote, reason); });
  }
  return conn;
}

std::shared_ptr<Connection> Connection::connect(asio::io_context& io, const sockaddr_storage& to,
                                                std::chrono::milliseconds timeout, BufferAccounting acct) {
  int fd = ::socket(to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;  // out of descriptors
  auto conn = std::shared_ptr<Connection>(new Connection(io, fd, acct));
  conn->connecting_ = true;
  int r = ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sockaddrLen(to));
  if ((r == 0 || errno == EINPROGRESS) && (conn->registered_ = conn->poller_.add(fd, conn.get()))) {
    // Writable (EPOLLOUT, or EPOLLERR on failure) = connect finished, either way.
    if (timeout.count() > 0) {
      std::weak_ptr<Connection> weak = conn;
      conn->connect_timer_ = std::make_unique<Timer>(io, [weak] {
        auto self = weak.lock();
        if (!self || !self->connecting_) return;
        self->connecting_ = false;
        self->closeInternal(CloseType::kNoFlush, &kFailed, "connect timeout");
      });
      conn->connect_timer_->enable(timeout);
    }
  } else {
    std::string reason = std::string("connect: ") + std::strerror(errno);
    asio::post(io, [conn, reason] {
      if (!conn->connecting_) return;
      conn->connecting_ = false;
      conn->closeInternal(CloseType::kNoFlush, &kFailed, reason);
    });
  }
  return conn;
}

void Connection::onPollEvents(uint32_t events) {
  if (closed_) return;
  auto self = shared_from_this();
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) pending_eof_ = true;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable_ = true;
  if (connecting_) {
    if (writable_) finishConnect();
    return;
  }
  if (writable_ && !flush_pending_ && (!write_buffer_.empty() || (write_end_requested_ && !write_shut_))) {
    flush();
    if (closed_) return;
  }
  if (readable_ && reading_started_ && read_disable_ == 0 && !read_eof_ && !read_scheduled_) doRead();
}

void Connection::finishConnect() {
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
  connecting_ = false;
  if (connect_timer_) connect_timer_->disable();
  if (err != 0) {
    closeInternal(CloseType::kNoFlush, &kFailed, std::string("connect: ") + std::strerror(err));
    return;
  }
  if (callbacks_) callbacks_->onEvent(ConnectionEvent::kConnected);
  if (closed_) return;
  startReading();
  if (!closed_ && (!write_buffer_.empty() || write_end_requested_)) flush();
}

void Connection::startReading() {
  if (closed_ || connecting_) return;
  reading_started_ = true;
  if (!read_buffer_.empty()) {
    // Data handed over at accept time goes first.
    if (callbacks_) callbacks_->onData(read_buffer_, false);
    if (closed_) return;
  }
  if (read_disable_ == 0 && readable_ && !read_eof_) doRead();
}

void Connection::doRead() {
  auto self = shared_from_this();
  size_t total = 0;
  bool eof = false;
  while (total < kReadBudget) {
    iovec iov[kReadIovecs];
    size_t n = read_buffer_.reserve(iov, kReadIovecs);
    size_t capacity = 0;
    for (size_t i = 0; i < n; ++i) capacity += iov[i].iov_len;
    ssize_t r = ::readv(fd_, iov, static_cast<int>(n));
    if (r > 0) {
      read_buffer_.commit(static_cast<size_t>(r));
      total += static_cast<size_t>(r);
      // A short read drained the socket: new data raises a new edge. Unless the peer's
      // FIN (or an error) was already reported: that raises none, so read on to see it.
      if (static_cast<size_t>(r) < capacity && !pending_eof_) {
        readable_ = false;
        break;
      }
      continue;
    }
    read_buffer_.commit(0);
    if (r == 0) {
      eof = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_ = false;
      break;
    }
    closeInternal(CloseType::kNoFlush, &kRemote, std::string("read: ") + std::strerror(errno));
    return;
  }
  if (eof) read_eof_ = true;
  if ((total > 0 || eof) && callbacks_) callbacks_->onData(read_buffer_, eof);
  if (closed_) return;
  if (read_eof_) {
    if (write_shut_) closeInternal(CloseType::kNoFlush, &kRemote, "both directions finished");
    return;
  }
  // Budget spent with data left: continue after other ready work.
  if (readable_ && read_disable_ == 0) scheduleRead();
}

void Connection::scheduleRead() {
  if (read_scheduled_) return;
  read_scheduled_ = true;
  asio::post(io_, [self = shared_from_this()] {
    self->read_scheduled_ = false;
    if (!self->closed_ && self->read_disable_ == 0 && !self->read_eof_ && self->readable_) self->doRead();
  });
}

void Connection::readDisable(bool disable) {
  if (closed_) return;
  if (disable) {
    ++read_disable_;
    return;
  }
  if (read_disable_ == 0) return;
  // Data that arrived while disabled left readable_ set (its edge is gone): read it now.
  if (--read_disable_ == 0 && reading_started_ && !read_eof_ && readable_) scheduleRead();
}

void Connection::write(Buffer& data, bool end_stream) {
  if (closed_ || write_end_requested_) {
    data.clear();
    return;
  }
  write_buffer_.move(data);
  if (end_stream) write_end_requested_ = true;
  if (connecting_ || !writable_ || flush_pending_) {
    accountBuffered();
    checkHighWatermark();
    return;
  }
  if (poller_.dispatching()) {
    // Cork: whatever else this event writes goes out in the same sendmsg.
    flush_pending_ = shared_from_this();
    poller_.defer(this);
    accountBuffered();
    checkHighWatermark();
    return;
  }
  flush();
}

void Connection::runDeferred() {
  auto self = std::move(flush_pending_);
  if (!closed_ && writable_) flush();
}

void Connection::checkHighWatermark() {
  if (!above_high_ && write_buffer_.length() > high_watermark_) {
    above_high_ = true;
    if (callbacks_) callbacks_->onAboveWriteHighWatermark();
  }
}

void Connection::flush() {
  auto self = shared_from_this();
  while (!write_buffer_.empty()) {
    iovec iov[kWriteIovecs];
    size_t n = write_buffer_.gather(iov, kWriteIovecs);
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    ssize_t r = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (r > 0) {
      write_buffer_.drain(static_cast<size_t>(r));
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      writable_ = false;  // EPOLLOUT will say when there is room
      break;
    }
    closeInternal(CloseType::kNoFlush, &kRemote, std::string("write: ") + std::strerror(errno));
    return;
  }
  accountBuffered();
  if (!above_high_ && write_buffer_.length() > high_watermark_) {
    above_high_ = true;
    if (callbacks_) callbacks_->onAboveWriteHighWatermark();
    if (closed_) return;
  } else if (above_high_ && write_buffer_.length() <= high_watermark_ / 2) {
    above_high_ = false;
    if (callbacks_) callbacks_->onBelowWriteLowWatermark();
    if (closed_) return;
  }
  if (!write_buffer_.empty()) return;
  if (close_after_flush_) {
    closeInternal(CloseType::kNoFlush, &kLocal, "closed after flush");
    return;
  }
  if (write_end_requested_ && !write_shut_) {
    ::shutdown(fd_, SHUT_WR);
    write_shut_ = true;
    if (read_eof_) closeInternal(CloseType::kNoFlush, &kRemote, "both directions finished");
  }
}

void Connection::close(CloseType type) {
  if (closed_) return;
  auto self = shared_from_this();
  if (flush_pending_ && type != CloseType::kReset) {
    // A corked write goes out first, as it would have without the cork.
    flush_pending_.reset();
    poller_.cancelDeferred(this);
    if (writable_) flush();
    if (closed_) return;
  }
  if (type == CloseType::kFlushWrite && !write_buffer_.empty() && !connecting_) {
    close_after_flush_ = true;
    ++read_disable_;  // nothing more is read from a connection on its way out
    // The owner may drop its reference now: the connection stays until the bytes are out.
    closing_self_ = shared_from_this();
    return;
  }
  closeInternal(type, &kLocal, "closed locally");
}

void Connection::setWriteBufferLimits(uint32_t high_watermark) { high_watermark_ = high_watermark; }

void Connection::closeInternal(CloseType type, const ConnectionEvent* event, const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  connecting_ = false;
  close_reason_ = reason;
  if (connect_timer_) connect_timer_->disable();
  if (flush_pending_) {
    poller_.cancelDeferred(this);
    // flush_pending_ may hold the last reference: release it only when done here.
  }
  if (type == CloseType::kReset) {
    linger lg{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  if (registered_) poller_.remove(fd_, this);
  registered_ = false;
  ::close(fd_);
  read_buffer_.clear();
  write_buffer_.clear();
  accountBuffered();
  auto keep = std::move(flush_pending_);
  auto keep_closing = std::move(closing_self_);
  if (event && callbacks_) callbacks_->onEvent(*event);
}

void Connection::accountBuffered() {
  if (!acct_.shard) return;
  int64_t now = static_cast<int64_t>(write_buffer_.length());
  if (now != accounted_) {
    acct_.shard->add(acct_.buffered_bytes, now - accounted_);
    accounted_ = now;
  }
}

}  // namespace ferry::core::net
