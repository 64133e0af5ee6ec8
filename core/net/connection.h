// Connection: one non-blocking TCP socket with a read buffer, a write buffer and
// backpressure (watermarks). Reactor style on the worker's edge-triggered Poller: registered
// once, it reads until a read comes back short (drained) and gathers writes into one sendmsg
// (corked while an event is dispatched), so a proxied request costs about one syscall per
// step. Worker-local: created, used and destroyed on one worker's thread. Shared ownership
// only so queued work, and a close(kFlushWrite) still sending, keep it alive; the owner
// holds the one long-lived reference and may drop it right after close(kFlushWrite).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/buffer.h"
#include "core/event/poller.h"
#include "core/stats.h"

namespace boost::asio {
class io_context;
}

namespace ferry::core {
class Timer;
}

namespace ferry::core::net {

enum class ConnectionEvent {
  kConnected,      // outgoing connect() finished
  kConnectFailed,  // outgoing connect() refused, failed or timed out (see closeReason())
  kRemoteClose,    // ended by itself: peer reset, I/O error, or both directions finished
  kLocalClose,     // a close() the owner asked for has completed (after any flush)
};

// The owner's view of a connection. Callbacks run on the worker thread; they may call any
// Connection method, including close(), and may drop the owner's reference.
class ConnectionCallbacks {
 public:
  virtual ~ConnectionCallbacks() = default;
  // Bytes arrived. The callee takes what it wants (usually all, by Buffer::move).
  // end_stream: the peer shut down its sending side (FIN); no more data follows.
  virtual void onData(Buffer& data, bool end_stream) = 0;
  // Every connection ends with exactly one of kConnectFailed, kRemoteClose, kLocalClose.
  // kLocalClose may be raised from inside close(): callers must tolerate re-entry.
  virtual void onEvent(ConnectionEvent event) = 0;
  // The write buffer passed its high watermark / fell back under the low one.
  virtual void onAboveWriteHighWatermark() {}
  virtual void onBelowWriteLowWatermark() {}
};

// Per-thread accounting every connection reports into: bytes held in write buffers.
struct BufferAccounting {
  StatsShard* shard = nullptr;
  StatHandle buffered_bytes;
};

class Connection final : public std::enable_shared_from_this<Connection>,
                   private PollHandler,
                   private DeferredAction {
 public:
  enum class CloseType {
    kFlushWrite,  // stop reading, send what is buffered, then close
    kNoFlush,     // close now, drop buffered bytes
    kReset,       // close now with an RST (SO_LINGER 0)
  };

  // Wraps an accepted, non-blocking socket. Call setCallbacks() then startReading().
  static std::shared_ptr<Connection> adopt(boost::asio::io_context& io, int fd, BufferAccounting acct);
  // Starts a non-blocking connect; the result arrives as onEvent(kConnected|kConnectFailed).
  // Writes before that are buffered. Reading starts by itself once connected.
  // Returns nullptr when no socket can be created (e.g. out of descriptors).
  static std::shared_ptr<Connection> connect(boost::asio::io_context& io, const sockaddr_storage& to,
                                             std::chrono::milliseconds timeout, BufferAccounting acct);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void setCallbacks(ConnectionCallbacks* cb) { callbacks_ = cb; }
  // Bytes that arrived before the connection was handed over (e.g. after a PROXY header);
  // delivered first by startReading().
  void injectReadData(Buffer& data) { read_buffer_.move(data); }
  void startReading();

  // Moves `data` into the write buffer and writes what the socket takes now.
  // end_stream: shut down the sending side (FIN) once everything is written.
  void write(Buffer& data, bool end_stream);
  // Counted: reading resumes when every disable has been matched by an enable.
  void readDisable(bool disable);
  void close(CloseType type);

  void setWriteBufferLimits(uint32_t high_watermark);
  size_t writeBufferLength() const { return write_buffer_.length(); }
  bool aboveHighWatermark() const { return above_high_; }
  bool closed() const { return closed_; }
  // close(kFlushWrite) was called and the write buffer is still draining.
  bool closing() const { return close_after_flush_ && !closed_; }
  bool connecting() const { return connecting_; }
  bool readEof() const { return read_eof_; }
  bool writeShutdown() const { return write_shut_; }
  const std::string& closeReason() const { return close_reason_; }
  int fd() const { return fd_; }

 private:
  Connection(boost::asio::io_context& io, int fd, BufferAccounting acct);

  void onPollEvents(uint32_t events) override;
  void runDeferred() override;
  void scheduleRead();
  void doRead();
  void flush();
  void finishConnect();
  // event: what to raise (kConnectFailed, kRemoteClose, kLocalClose), or nothing (destructor).
  void closeInternal(CloseType type, const ConnectionEvent* event, const std::string& reason);
  void accountBuffered();
  void checkHighWatermark();

  boost::asio::io_context& io_;
  Poller& poller_;
  int fd_;
  ConnectionCallbacks* callbacks_ = nullptr;
  BufferAccounting acct_;
  int64_t accounted_ = 0;
  Buffer read_buffer_;
  Buffer write_buffer_;
  uint32_t high_watermark_ = 1024 * 1024;
  int read_disable_ = 0;
  // Readiness as the edge-triggered Poller last reported it (nginx's "ready" bits):
  // readable_ until a read comes back short or EAGAIN, writable_ until a write hits EAGAIN.
  bool readable_ = false;
  bool writable_ = false;
  bool pending_eof_ = false;  // the peer's FIN (or an error) is queued behind the data
  bool registered_ = false;
  bool reading_started_ = false;
  bool read_eof_ = false;
  bool write_end_requested_ = false;
  bool write_shut_ = false;
  bool close_after_flush_ = false;
  bool closed_ = false;
  bool connecting_ = false;
  bool above_high_ = false;
  bool read_scheduled_ = false;
  std::shared_ptr<Connection> flush_pending_;  // set while a corked flush is queued (keeps us alive)
  std::shared_ptr<Connection> closing_self_;   // set by close(kFlushWrite) until the flush is done
  std::unique_ptr<Timer> connect_timer_;
  std::string close_reason_;
};

}  // namespace ferry::core::net
