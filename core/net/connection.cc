#include "core/net/connection.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <climits>
#include <cstring>

#include "core/event/timer.h"

namespace ferry::core::net {
namespace asio = boost::asio;

namespace {
constexpr ConnectionEvent kRemote = ConnectionEvent::kRemoteClose;
constexpr ConnectionEvent kLocal = ConnectionEvent::kLocalClose;
constexpr ConnectionEvent kFailed = ConnectionEvent::kConnectFailed;
constexpr size_t kReadBudget = 256 * 1024;  // per wakeup, then yield to other connections

std::string errnoText(const char* what, int err) { return std::string(what) + ": " + std::strerror(err); }
}  // namespace

Connection::Connection(Private, asio::io_context& io, int fd, BufferAccounting acct)
    : io_(Poller::of(io), fd), acct_shard_(acct.shard), acct_handle_(acct.buffered_bytes) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Connection::~Connection() {
  if (!closed_) closeInternal(CloseType::kNoFlush, nullptr, "destroyed");
}

std::shared_ptr<Connection> Connection::adopt(asio::io_context& io, int fd, BufferAccounting acct) {
  auto conn = std::make_shared<Connection>(Private{}, io, fd, acct);
  // Data may already be waiting (the edge came before registration): the first read tries.
  conn->registered_ = conn->io_.watch(conn.get());
  if (!conn->registered_) {
    std::string reason = errnoText("register", errno);
    asio::post(io, [conn, reason] { conn->closeInternal(CloseType::kNoFlush, &kRemote, reason); });
  }
  return conn;
}

std::shared_ptr<Connection> Connection::connect(asio::io_context& io, const sockaddr_storage& to,
                                                std::chrono::milliseconds timeout, BufferAccounting acct,
                                                std::unique_ptr<TransportSocket> transport) {
  int fd = ::socket(to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;  // out of descriptors
  auto conn = std::make_shared<Connection>(Private{}, io, fd, acct);
  conn->transport_ = transport ? keepTransport(std::move(transport)) : TransportPtr(sharedPlainTransport());
  conn->connecting_ = true;
  int err = conn->io_.connect(to);
  if (err == 0 && (conn->registered_ = conn->io_.watch(conn.get()))) {
    // Writable (EPOLLOUT, or EPOLLERR on failure) = connect finished, either way.
    if (timeout.count() > 0) {
      std::weak_ptr<Connection> weak = conn;
      // The limit covers the transport's handshake too (TLS toward the upstream).
      conn->cold().connect_timer = std::make_unique<Timer>(io, [weak] {
        auto self = weak.lock();
        if (!self || self->closed_ || self->ready_raised_) return;
        const bool tcp = self->connecting_;
        self->connecting_ = false;
        if (!tcp && self->transport_) self->transport_->onHandshakeTimeout();
        self->closeInternal(CloseType::kNoFlush, &kFailed, tcp ? "connect timeout" : "connect timeout (TLS handshake)");
      });
      conn->cold_->connect_timer->enable(timeout);
    }
  } else {
    std::string reason = errnoText("connect", err != 0 ? err : errno);
    asio::post(io, [conn, reason] {
      if (!conn->connecting_) return;
      conn->connecting_ = false;
      conn->closeInternal(CloseType::kNoFlush, &kFailed, reason);
    });
  }
  return conn;
}

asio::io_context& Connection::ctx() const { return poller().io(); }

Connection::Cold& Connection::cold() {
  if (!cold_) cold_ = std::make_unique<Cold>();
  return *cold_;
}

bool Connection::readPending() const {
  return !raw_read_.empty() || (raw_eof_ && !read_eof_) || (!raw_eof_ && io_.readable());
}

bool Connection::wantsFlush() const {
  // close_after_flush_: a completion-based backend drains raw_write_ by itself, and the
  // flush that follows closes the connection.
  return !raw_write_.empty() || !plain_write_.empty() || plain_end_ || pipeBytes() > 0 ||
         (write_end_requested_ && !write_shut_) || close_after_flush_;
}

size_t Connection::writeBufferLength() const {
  return raw_write_.length() + plain_write_.length() + pipeBytes() + (transport_ ? transport_->bufferedBytes() : 0);
}

bool Connection::spliceTo(const std::shared_ptr<Connection>& to) {
  if (!to || to.get() == this || closed_ || to->closed_ || !transport_ || !to->transport_ ||
      !transport_->passthrough() || !to->transport_->passthrough() || !io_.canSplice() || !to->io_.canSplice())
    return false;
  Cold& tc = to->cold();
  if (tc.pipe[0] < 0) {
    if (::pipe2(tc.pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
      tc.pipe[0] = tc.pipe[1] = -1;
      return false;
    }
    // The pipe is part of the destination's write buffer: as large as its high watermark
    // (more bytes per syscall), within the kernel's pipe-max-size (1 MiB by default); the
    // default (64 KiB) stays if the kernel refuses.
    ::fcntl(tc.pipe[1], F_SETPIPE_SZ, static_cast<int>(std::min<uint32_t>(to->high_watermark_, 1u << 20)));
    const int cap = ::fcntl(tc.pipe[1], F_GETPIPE_SZ);
    tc.pipe_cap = cap > 0 ? static_cast<size_t>(cap) : 65536;
  }
  cold().splice_to = to;
  tc.splice_from = shared_from_this();
  return true;
}

void Connection::closePipe() {
  if (!cold_) return;
  cold_->pipe_bytes = 0;
  for (int& fd : cold_->pipe) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

bool Connection::flushPipe() {
  if (pipeBytes() == 0 || !raw_write_.empty() || !io_.writable() || closed_) return !closed_;
  long r = io_.spliceOut(cold_->pipe[0], cold_->pipe_bytes);
  if (r < 0) {
    closeInternal(CloseType::kNoFlush, &kRemote, errnoText("splice", static_cast<int>(-r)));
    return false;
  }
  cold_->pipe_bytes -= static_cast<size_t>(r);
  if (cold_->pipe_bytes == 0) {
    // Room again: the source reads on (from the event loop, not from inside this call).
    if (auto from = cold_->splice_from.lock(); from && !from->closed_ && from->reading_started_ && from->read_disable_ == 0 &&
                                        from->io_.readable() && !from->raw_eof_)
      from->scheduleRead();
  }
  return true;
}

// Socket -> `to`'s pipe -> `to`'s socket, a pipe's worth at a time; the pipe is emptied before
// each read, so the bytes of one read are all out before the next one comes in.
void Connection::doSpliceRead(Connection& to) {
  size_t total = 0;
  while (total < kReadBudget) {
    if (to.pipeBytes() > 0) {
      if (!to.flushPipe() || closed_) return;
      if (to.pipeBytes() > 0) return;  // its socket is full: its pipe's flush resumes us
    }
    SocketIo::ReadResult r = io_.spliceIn(to.cold_->pipe[1], to.cold_->pipe_cap);
    if (r.error != 0) {
      closeInternal(CloseType::kNoFlush, &kRemote, errnoText("splice", r.error));
      return;
    }
    if (r.bytes > 0) {
      to.cold_->pipe_bytes += r.bytes;
      total += r.bytes;
      if (callbacks_) callbacks_->onSpliced(r.bytes);
      if (closed_) return;
      continue;
    }
    if (r.eof) {
      raw_eof_ = true;
      if (!processRead(true)) return;  // onData(empty, true): the owner passes the end on
      if (write_shut_) closeInternal(CloseType::kNoFlush, &kRemote, "both directions finished");
      return;
    }
    to.accountBuffered();
    return;  // drained
  }
  to.accountBuffered();
  if (to.pipeBytes() > 0 && !to.flushPipe()) return;
  if (!closed_ && io_.readable() && read_disable_ == 0) scheduleRead();
}

void Connection::onPollEvents(uint32_t events) {
  if (closed_) return;
  auto self = shared_from_this();
  io_.onEvents(events);
  if (connecting_) {
    if (io_.writable()) finishConnect();
    return;
  }
  // A completion-based backend drains raw_write_ itself: the flush also settles the
  // watermarks and the buffered-bytes gauge for what left.
  if (io_.writable() && !flush_pending_ && (wantsFlush() || above_high_ || static_cast<size_t>(accounted_) != writeBufferLength())) {
    flush();
    if (closed_) return;
  }
  if (io_.readable() && reading_started_ && read_disable_ == 0 && !raw_eof_ && !read_scheduled_) doRead();
}

void Connection::finishConnect() {
  int err = io_.connectResult();
  connecting_ = false;
  handshaking_ = true;  // until the transport is ready: its failure is a failed connect
  if (err != 0) {
    closeInternal(CloseType::kNoFlush, &kFailed, errnoText("connect", err));
    return;
  }
  TransportResult r = transport_->onConnected(raw_write_);
  if (r.close) {
    closeInternal(CloseType::kNoFlush, &kFailed, std::string(transport_->name()) + ": " + r.error);
    return;
  }
  if (transport_->ready()) {
    handshaking_ = false;
    if (cold_ && cold_->connect_timer) cold_->connect_timer->disable();
    ready_raised_ = true;
    if (callbacks_) callbacks_->onEvent(ConnectionEvent::kConnected);
    if (closed_) return;
  }
  startReading();
  if (!closed_ && wantsFlush()) flush();
}

void Connection::setTransport(std::unique_ptr<TransportSocket> transport, Buffer& read_ahead) {
  if (closed_) return;
  transport_ = keepTransport(std::move(transport));
  raw_read_.move(read_ahead);
  read_eof_ = false;  // the plaintext stream starts here (an EOF seen by the listener
                      // filters reaches the transport with the read-ahead)
  TransportResult r = transport_->onConnected(raw_write_);
  if (r.close) {
    closeInternal(CloseType::kNoFlush, &kRemote, std::string(transport_->name()) + ": " + r.error);
    return;
  }
  ready_raised_ = transport_->ready();  // ready at once: the owner checks, no event
  // Reading already started (listener filters): the read-ahead goes through the transport
  // from the event loop, never from inside the callback that is installing the transport.
  if (reading_started_) scheduleRead();
  if (wantsFlush() && io_.writable() && !flush_pending_) flush();
}

void Connection::startReading() {
  if (closed_ || connecting_ || reading_started_) return;
  reading_started_ = true;
  if ((!raw_read_.empty() || raw_eof_) && !processRead(raw_eof_)) return;
  if (read_disable_ == 0 && io_.readable() && !raw_eof_) doRead();
}

bool Connection::processRead(bool raw_eof) {
  bool plain_eof = raw_eof;
  if (transport_) {
    const bool was_ready = transport_->ready();
    TransportResult r = transport_->doRead(raw_read_, raw_eof, read_buffer_, raw_write_);
    if (r.close) {
      if (!raw_write_.empty()) io_.write(raw_write_);  // an alert, if the socket takes it
      closeInternal(CloseType::kNoFlush, handshaking_ ? &kFailed : &kRemote,
                    std::string(transport_->name()) + ": " + r.error);
      return false;
    }
    plain_eof = r.end_stream;
    if (handshaking_ && plain_eof && !transport_->ready()) {
      closeInternal(CloseType::kNoFlush, &kFailed, std::string(transport_->name()) + ": peer closed during the handshake");
      return false;
    }
    if (!was_ready && transport_->ready() && !ready_raised_) {
      if (handshaking_) {
        handshaking_ = false;
        if (cold_ && cold_->connect_timer) cold_->connect_timer->disable();
      }
      ready_raised_ = true;
      if (callbacks_) callbacks_->onEvent(ConnectionEvent::kConnected);
      if (closed_) return false;
    }
    // Handshake bytes (and plaintext held until it finished) go out now.
    if (wantsFlush() && io_.writable() && !flush_pending_) {
      flush();
      if (closed_) return false;
    }
  } else {
    read_buffer_.move(raw_read_);  // listener filter stage: raw bytes as they are
  }
  const bool new_eof = plain_eof && !read_eof_;
  if (plain_eof) read_eof_ = true;
  if ((!read_buffer_.empty() || new_eof) && callbacks_) callbacks_->onData(read_buffer_, read_eof_);
  return !closed_;
}

void Connection::doRead() {
  auto self = shared_from_this();
  if (cold_ && !cold_->splice_to.expired() && raw_read_.empty()) {
    auto to = cold_->splice_to.lock();
    if (to && !to->closed_ && !to->close_after_flush_ && !to->write_end_requested_) {
      doSpliceRead(*to);
      return;
    }
    cold_->splice_to.reset();  // its destination is gone or finished: bytes go the usual way
  }
  SocketIo::ReadResult res = io_.read(raw_read_, kReadBudget);
  if (res.error != 0) {
    closeInternal(CloseType::kNoFlush, &kRemote, errnoText("read", res.error));
    return;
  }
  if (res.eof) raw_eof_ = true;
  if ((res.bytes > 0 || res.eof) && !processRead(res.eof)) return;
  if (raw_eof_) {
    if (write_shut_) closeInternal(CloseType::kNoFlush, &kRemote, "both directions finished");
    return;
  }
  // Budget spent with data left: continue after other ready work.
  if (io_.readable() && read_disable_ == 0) scheduleRead();
}

void Connection::scheduleRead() {
  if (read_scheduled_) return;
  read_scheduled_ = true;
  asio::post(ctx(), [self = shared_from_this()] {
    self->read_scheduled_ = false;
    if (self->closed_ || self->read_disable_ != 0) return;
    // Bytes already read (a listener filter's read-ahead) first, then the socket.
    if ((!self->raw_read_.empty() || (self->raw_eof_ && !self->read_eof_)) && !self->processRead(self->raw_eof_))
      return;
    if (!self->raw_eof_ && self->io_.readable()) self->doRead();
  });
}

void Connection::readDisable(bool disable) {
  if (closed_) return;
  if (disable) {
    ++read_disable_;
    return;
  }
  if (read_disable_ == 0) return;
  // Data that arrived while disabled left the socket readable (its edge is gone), or bytes
  // read ahead wait for the transport: go on now.
  if (--read_disable_ == 0 && reading_started_ && readPending()) scheduleRead();
}

void Connection::writeRaw(Buffer& bytes) {
  if (closed_ || write_end_requested_) {
    bytes.clear();
    return;
  }
  raw_write_.move(bytes);
  if (!connecting_ && io_.writable() && !flush_pending_ && !poller().dispatching()) flush();
}

void Connection::write(Buffer& data, bool end_stream) {
  if (closed_ || write_end_requested_ || close_after_flush_) {  // nothing follows a close
    data.clear();
    return;
  }
  if (transport_) {
    // Through the transport at flush time: what one event writes (a response head and its
    // body) becomes one TLS record instead of one per write.
    plain_write_.move(data);
    if (end_stream) plain_end_ = true;
  } else {
    raw_write_.move(data);
  }
  if (end_stream) write_end_requested_ = true;
  if (connecting_ || !io_.writable() || flush_pending_) {
    accountBuffered();
    checkHighWatermark();
    return;
  }
  if (poller().dispatching()) {
    // Cork: whatever else this event writes goes out in the same sendmsg.
    flush_pending_ = true;
    self_ref_ = shared_from_this();
    poller().defer(this);
    accountBuffered();
    checkHighWatermark();
    return;
  }
  flush();
}

void Connection::runDeferred() {
  flush_pending_ = false;
  auto self = std::move(self_ref_);
  if (!closed_ && io_.writable()) flush();
}

void Connection::checkHighWatermark() {
  if (!above_high_ && writeBufferLength() > high_watermark_) {
    above_high_ = true;
    if (callbacks_) callbacks_->onAboveWriteHighWatermark();
  }
}

bool Connection::encodePending() {
  if (!transport_ || (plain_write_.empty() && !plain_end_)) return true;
  const bool end = plain_end_;
  plain_end_ = false;
  TransportResult r = transport_->doWrite(plain_write_, end, raw_write_);
  if (r.close) {
    closeInternal(CloseType::kNoFlush, &kRemote, std::string(transport_->name()) + ": " + r.error);
    return false;
  }
  return true;
}

void Connection::flush() {
  auto self = shared_from_this();
  if (!encodePending()) return;
  if (int err = io_.write(raw_write_); err != 0) {
    closeInternal(CloseType::kNoFlush, &kRemote, errnoText("write", err));
    return;
  }
  if (pipeBytes() > 0 && !flushPipe()) return;
  accountBuffered();
  const size_t pending = writeBufferLength();
  if (!above_high_ && pending > high_watermark_) {
    above_high_ = true;
    if (callbacks_) callbacks_->onAboveWriteHighWatermark();
    if (closed_) return;
  } else if (above_high_ && pending <= high_watermark_ / 2) {
    above_high_ = false;
    if (callbacks_) callbacks_->onBelowWriteLowWatermark();
    if (closed_) return;
  }
  if (!raw_write_.empty() || pipeBytes() > 0) return;
  if (close_after_flush_) {
    closeInternal(CloseType::kNoFlush, &kLocal, "closed after flush");
    return;
  }
  // The FIN only once the transport has nothing left to turn into bytes (a TLS end-of-stream
  // written before the handshake waits for it).
  if (write_end_requested_ && !write_shut_ && (!transport_ || (transport_->ready() && transport_->bufferedBytes() == 0))) {
    io_.shutdownWrite();
    write_shut_ = true;
    if (raw_eof_) closeInternal(CloseType::kNoFlush, &kRemote, "both directions finished");
  }
}

void Connection::close(CloseType type, std::chrono::milliseconds flush_timeout) {
  if (closed_) return;
  auto self = shared_from_this();
  if (flush_pending_ && type != CloseType::kReset) {
    // A corked write goes out first, as it would have without the cork.
    flush_pending_ = false;
    self_ref_.reset();  // `self` keeps us
    poller().cancelDeferred(this);
    if (io_.writable()) flush();
    if (closed_) return;
  }
  if (type == CloseType::kFlushWrite && !connecting_) {
    if (!encodePending()) return;
    if (transport_) transport_->shutdown(raw_write_);  // e.g. TLS close_notify
    if (!raw_write_.empty() && io_.writable()) {
      if (int err = io_.write(raw_write_); err != 0) {
        closeInternal(CloseType::kNoFlush, &kRemote, errnoText("write", err));
        return;
      }
    }
    if (pipeBytes() > 0 && !flushPipe()) return;
    if (!raw_write_.empty() || pipeBytes() > 0) {
      close_after_flush_ = true;
      ++read_disable_;  // nothing more is read from a connection on its way out
      // The owner may drop its reference now: the connection stays until the bytes are out.
      self_ref_ = shared_from_this();
      accountBuffered();
      if (flush_timeout.count() > 0) armCloseFlushTimer(flush_timeout);
      return;
    }
  }
  closeInternal(type, &kLocal, "closed locally");
}

void Connection::armCloseFlushTimer(std::chrono::milliseconds timeout) {
  Cold& c = cold();
  c.flush_timeout = timeout;
  c.flush_left = writeBufferLength();
  std::weak_ptr<Connection> weak = weak_from_this();
  c.flush_timer = std::make_unique<Timer>(ctx(), [weak] {
    auto self = weak.lock();
    if (!self || self->closed_) return;
    Cold& cs = *self->cold_;
    const size_t left = self->writeBufferLength();
    if (left < cs.flush_left) {  // the peer took bytes since: it gets another period
      cs.flush_left = left;
      cs.flush_timer->enable(cs.flush_timeout);
      return;
    }
    self->closeInternal(CloseType::kReset, &kLocal, "close: the peer took no bytes for the flush timeout");
  });
  c.flush_timer->enable(timeout);
}

void Connection::setWriteBufferLimits(uint32_t high_watermark) { high_watermark_ = high_watermark; }

void Connection::closeInternal(CloseType type, const ConnectionEvent* event, const std::string& reason) {
  if (closed_) return;
  // An outgoing connection that never finished its handshake failed to connect, whatever
  // ended it (a reset, a read or write error): owners treat it as a connect failure.
  if (handshaking_ && event == &kRemote) event = &kFailed;
  handshaking_ = false;
  closed_ = true;
  connecting_ = false;
  cold().close_reason = reason;
  if (cold_->connect_timer) cold_->connect_timer->disable();
  if (cold_->flush_timer) cold_->flush_timer->disable();
  if (flush_pending_) {
    poller().cancelDeferred(this);
    flush_pending_ = false;
    // self_ref_ may hold the last reference: release it only when done here.
  }
  io_.close(type == CloseType::kReset);
  registered_ = false;
  raw_read_.clear();
  read_buffer_.clear();
  raw_write_.clear();
  plain_write_.clear();
  plain_end_ = false;
  closePipe();
  cold_->splice_to.reset();
  accountBuffered();
  auto keep = std::move(self_ref_);
  if (event && callbacks_) callbacks_->onEvent(*event);
}

void Connection::accountBuffered() {
  if (!acct_shard_) return;
  // Kept in 32 bits (a write buffer stops its source's reads past 1 MiB by default).
  const size_t len = closed_ ? 0 : writeBufferLength();
  const int32_t now = len > INT32_MAX ? INT32_MAX : static_cast<int32_t>(len);
  if (now != accounted_) {
    acct_shard_->add(acct_handle_, static_cast<int64_t>(now) - accounted_);
    accounted_ = now;
  }
}

}  // namespace ferry::core::net
