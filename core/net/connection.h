// Connection: one non-blocking TCP connection as its owner sees it: plaintext in and out, with
// backpressure (watermarks), half-close and orderly close. Two seams sit under it:
//  - the I/O backend (SocketIo): the socket calls, raw bytes between the socket and Buffers;
//  - the transport (TransportSocket): raw bytes <-> plaintext (plain: a move; TLS later).
// Reactor style on the worker's edge-triggered Poller: registered once, it reads until a read
// comes back short (drained) and gathers writes into one sendmsg (corked while an event is
// dispatched), so a proxied request costs about one syscall per step.
//
// An accepted connection starts without a transport: its listener filters (PROXY protocol)
// read raw bytes first; setTransport() then hands the transport what they read ahead.
//
// Worker-local: created, used and destroyed on one worker's thread. Shared ownership only so
// queued work, and a close(kFlushWrite) still sending, keep it alive; the owner holds the one
// long-lived reference and may drop it right after close(kFlushWrite).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/buffer.h"
#include "core/event/poller.h"
#include "core/net/socket_io.h"
#include "core/net/transport.h"
#include "core/stats.h"

namespace boost::asio {
class io_context;
}

namespace ferry::core {
class Timer;
}

namespace ferry::core::net {

enum class ConnectionEvent {
  kConnected,      // outgoing: connected and the transport's handshake done; accepted: the
                   // transport became ready after setTransport() (not raised when it is ready at once)
  kConnectFailed,  // outgoing connect() refused, failed or timed out (see closeReason())
  kRemoteClose,    // ended by itself: peer reset, I/O or transport error, or both directions finished
  kLocalClose,     // a close() the owner asked for has completed (after any flush)
};

// The owner's view of a connection. Callbacks run on the worker thread; they may call any
// Connection method, including close(), and may drop the owner's reference.
class ConnectionCallbacks {
 public:
  virtual ~ConnectionCallbacks() = default;
  // Bytes arrived (plaintext; raw bytes while no transport is set). The callee takes what it
  // wants (usually all, by Buffer::move); what it leaves stays for the next call.
  // end_stream: the peer ended its sending side (FIN); no more data follows.
  virtual void onData(Buffer& data, bool end_stream) = 0;
  // Every connection ends with exactly one of kConnectFailed, kRemoteClose, kLocalClose.
  // kLocalClose may be raised from inside close(): callers must tolerate re-entry.
  virtual void onEvent(ConnectionEvent event) = 0;
  // The write buffer passed its high watermark / fell back under the low one.
  virtual void onAboveWriteHighWatermark() {}
  virtual void onBelowWriteLowWatermark() {}
  // With spliceTo(): `bytes` read here went straight to the other connection's socket.
  virtual void onSpliced(size_t bytes) {}
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
    kFlushWrite,  // stop reading, send what is buffered (and the transport's shutdown), then close
    kNoFlush,     // close now, drop buffered bytes
    kReset,       // close now with an RST (SO_LINGER 0)
  };

  // Wraps an accepted, non-blocking socket, without a transport yet. Call setCallbacks(),
  // then either setTransport() or (listener filters first) startReading().
  static std::shared_ptr<Connection> adopt(boost::asio::io_context& io, int fd, BufferAccounting acct);
  // Starts a non-blocking connect over `transport`; the result arrives as onEvent(kConnected
  // | kConnectFailed), kConnected once the transport's handshake is done. Writes before that
  // are buffered. Reading starts by itself once connected. Returns nullptr when no socket can
  // be created (e.g. out of descriptors).
  static std::shared_ptr<Connection> connect(boost::asio::io_context& io, const sockaddr_storage& to,
                                             std::chrono::milliseconds timeout, BufferAccounting acct,
                                             std::unique_ptr<TransportSocket> transport);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void setCallbacks(ConnectionCallbacks* cb) { callbacks_ = cb; }
  // Accepted connections: installs the transport. `read_ahead`: raw bytes the listener
  // filters read and did not consume; they go through the transport before anything else
  // read from the socket. Starts reading.
  void setTransport(std::unique_ptr<TransportSocket> transport, Buffer& read_ahead);
  // Starts delivering bytes (raw ones while no transport is set: the listener filter stage).
  void startReading();
  // Sends `bytes` as they are, ahead of anything the transport has not sent yet: the PROXY
  // protocol header an upstream expects before the TLS handshake.
  void writeRaw(Buffer& bytes);

  // Moves `data` (plaintext) into the write path and writes what the socket takes now.
  // end_stream: shut down the sending side (FIN) once everything is written.
  void write(Buffer& data, bool end_stream);
  // Counted: reading resumes when every disable has been matched by an enable.
  void readDisable(bool disable);
  // kFlushWrite: the peer must take the buffered bytes with no pause longer than
  // `flush_timeout` (0: no limit); a peer that stops reading is reset then, so a client that
  // never reads cannot hold a closing connection and its buffered bytes forever.
  static constexpr std::chrono::milliseconds kCloseFlushTimeout{10000};
  void close(CloseType type, std::chrono::milliseconds flush_timeout = kCloseFlushTimeout);

  // Zero-copy forwarding, for a TCP proxy whose two connections both have the plain
  // transport: from now on, bytes read here go to `to`'s socket through a kernel pipe with
  // splice(2), never through user space. The owner hears onSpliced(bytes) instead of onData
  // for them, and still onData(empty, true) at the end of the stream. Bytes already read, and
  // anything written to `to` before, keep their order. False (nothing changes) when a
  // transport is not plain or no pipe can be had (out of descriptors).
  bool spliceTo(const std::shared_ptr<Connection>& to);
  bool splicing() const { return cold_ && !cold_->splice_to.expired(); }

  void setWriteBufferLimits(uint32_t high_watermark);
  // Bytes on their way out: raw bytes not yet sent plus plaintext the transport still holds.
  size_t writeBufferLength() const;
  bool aboveHighWatermark() const { return above_high_; }
  bool closed() const { return closed_; }
  // close(kFlushWrite) was called and the write buffer is still draining.
  bool closing() const { return close_after_flush_ && !closed_; }
  bool connecting() const { return connecting_; }
  bool readEof() const { return read_eof_; }
  bool writeShutdown() const { return write_shut_; }
  const std::string& closeReason() const {
    static const std::string kNone;
    return cold_ ? cold_->close_reason : kNone;
  }
  int fd() const { return io_.fd(); }
  // The transport (null on an accepted connection before setTransport()).
  const TransportSocket* transport() const { return transport_.get(); }
  TransportSocket* transport() { return transport_.get(); }
  // The transport exists and its handshake is done.
  bool transportReady() const { return transport_ && transport_->ready(); }

 private:
  struct Private {};

 public:
  // For make_shared (the object and its control block in one allocation); use adopt/connect.
  Connection(Private, boost::asio::io_context& io, int fd, BufferAccounting acct);

 private:
  // What few connections need: an outgoing connect's timer, splicing, the close reason. Made
  // on first use, so an open accepted connection does not carry it.
  struct Cold {
    std::unique_ptr<Timer> connect_timer;
    // Splicing: the source knows its destination; the destination owns the pipe (its bytes
    // are part of the destination's write buffer) and knows its source, to resume it once the
    // pipe has room again.
    std::weak_ptr<Connection> splice_to;
    std::weak_ptr<Connection> splice_from;
    int pipe[2] = {-1, -1};
    size_t pipe_cap = 0;
    size_t pipe_bytes = 0;  // bytes in this (destination's) pipe: part of the write buffer
    std::string close_reason;
    // close(kFlushWrite) with bytes left: fires after flush_timeout without progress.
    std::unique_ptr<Timer> flush_timer;
    std::chrono::milliseconds flush_timeout{0};
    size_t flush_left = 0;  // writeBufferLength() when the timer was last armed
  };
  Cold& cold();  // made on first use
  void armCloseFlushTimer(std::chrono::milliseconds timeout);

  void onPollEvents(uint32_t events) override;
  void runDeferred() override;
  void scheduleRead();
  void doRead();
  // Runs raw_read_ through the transport and delivers the plaintext. False if closed.
  bool processRead(bool raw_eof);
  void flush();
  // Hands the staged plaintext to the transport. False if that closed the connection.
  bool encodePending();
  void finishConnect();
  // event: what to raise (kConnectFailed, kRemoteClose, kLocalClose), or nothing (destructor).
  void closeInternal(CloseType type, const ConnectionEvent* event, const std::string& reason);
  void accountBuffered();
  void checkHighWatermark();
  bool wantsFlush() const;
  // Bytes read but not delivered, an EOF not delivered, or a socket still readable.
  bool readPending() const;
  void doSpliceRead(Connection& to);
  // Sends what the pipe holds (after raw_write_). False if that closed the connection.
  bool flushPipe();
  void closePipe();
  Poller& poller() const { return io_.poller(); }
  size_t pipeBytes() const { return cold_ ? cold_->pipe_bytes : 0; }
  boost::asio::io_context& ctx() const;

  SocketIo io_;  // also the Poller's and the io_context's keeper (poller(), ctx())
  TransportPtr transport_;
  ConnectionCallbacks* callbacks_ = nullptr;
  StatsShard* acct_shard_;  // buffered-bytes accounting (BufferAccounting), or null
  Buffer raw_read_;     // from the socket, not yet through the transport
  Buffer read_buffer_;  // plaintext (raw bytes before a transport is set) for the owner
  Buffer raw_write_;    // to the socket
  Buffer plain_write_;  // plaintext for the transport, turned into raw bytes at flush time
  uint32_t high_watermark_ = 1024 * 1024;
  StatHandle acct_handle_;
  int32_t accounted_ = 0;  // what this connection last added to the buffered-bytes gauge
  uint16_t read_disable_ = 0;
  // Flags as bits: an open connection is mostly an idle one, and its size counts.
  bool plain_end_ : 1 = false;  // plain_write_ ends the stream (not yet given to the transport)
  bool registered_ : 1 = false;
  bool reading_started_ : 1 = false;
  bool read_eof_ : 1 = false;          // the plaintext stream from the peer has ended
  bool raw_eof_ : 1 = false;           // the socket read the peer's FIN
  bool write_end_requested_ : 1 = false;
  bool write_shut_ : 1 = false;
  bool close_after_flush_ : 1 = false;
  bool closed_ : 1 = false;
  bool connecting_ : 1 = false;
  bool above_high_ : 1 = false;
  bool read_scheduled_ : 1 = false;
  bool ready_raised_ : 1 = false;      // kConnected raised (or not needed)
  bool handshaking_ : 1 = false;       // outgoing: connected, the transport's handshake not done
  bool flush_pending_ : 1 = false;  // a corked flush is queued
  // Keeps us alive while a corked flush is queued, and after close(kFlushWrite) until the
  // flush is done (never both: a close takes the corked bytes out first).
  std::shared_ptr<Connection> self_ref_;
  std::unique_ptr<Cold> cold_;
};

}  // namespace ferry::core::net
