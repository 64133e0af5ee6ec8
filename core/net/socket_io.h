// SocketIo: the I/O backend of one connection: every syscall on its socket, and the raw bytes
// between the socket and Buffers. Today: the worker's edge-triggered epoll Poller with
// nginx-style ready bits (a short read means drained), readv into Buffer slices, and one
// gathered sendmsg per flush (the Connection corks writes made during an event, so a
// response's head and body leave together). It knows nothing of transports or codecs, and
// they know nothing of it.
// With the worker's io_uring (Poller::uring()), the same calls run on completions instead: a
// multishot receive appends what arrives to the socket's inbox and reports it as readable,
// and read() moves it on within its budget, as a readv would; write() starts one sendmsg over the write buffer's
// slices and reports writable again when it completes (the buffer drains then). splice is
// not used there.
// Passive: the Connection is the PollHandler and calls in here; nothing here calls back.
// Worker-local. Owned by its Connection.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/buffer.h"
#include "core/event/uring.h"

namespace ferry::core {
class Poller;
class PollHandler;
}

namespace ferry::core::net {

class SocketIo final : public UringSocket {
 public:
  SocketIo(Poller& poller, int fd);
  ~SocketIo() { close(false); }
  SocketIo(const SocketIo&) = delete;
  SocketIo& operator=(const SocketIo&) = delete;

  int fd() const { return fd_; }
  bool isOpen() const { return fd_ >= 0; }
  Poller& poller() const { return poller_; }

  // Registers the socket with the Poller once (in/out/rdhup, edge-triggered). Returns false
  // with errno set on failure. Readiness is assumed until a syscall says otherwise (data may
  // have arrived before registration).
  bool watch(PollHandler* handler);
  // Whether spliceIn/spliceOut may be used (not with io_uring: its receive owns the socket).
  bool canSplice() const { return ring_ == nullptr; }
  // Records what a poll event reported.
  void onEvents(uint32_t epoll_events);
  bool readable() const { return readable_; }
  bool writable() const { return writable_; }

  // Starts a non-blocking connect: 0 when under way (or done), else an errno.
  int connect(const sockaddr_storage& to);
  // The result of a finished connect: 0 or the socket's error.
  int connectResult() const;

  struct ReadResult {
    size_t bytes = 0;  // appended to the buffer
    bool eof = false;  // the peer's FIN was read
    int error = 0;     // errno of a failed read (the connection is broken)
  };
  // Reads until the socket is drained, the peer closed, or `budget` bytes were read (then
  // readable() stays true: the owner reads again after other ready work).
  ReadResult read(Buffer& raw, size_t budget);
  // Sends what the socket takes of `raw`, draining what went out. 0, or the errno of a
  // failed send; writable() turns false when the socket is full (EPOLLOUT says when not).
  int write(Buffer& raw);
  // Zero-copy forwarding with splice(2). spliceIn moves up to `max` bytes from the socket into
  // a pipe; call it with an empty pipe only, so that EAGAIN means the socket is drained
  // (readable() turns false). spliceOut moves up to `n` bytes from a pipe into the socket:
  // the count moved (writable() turns false when the socket is full), or -errno.
  ReadResult spliceIn(int pipe_w, size_t max);
  long spliceOut(int pipe_r, size_t n);
  void shutdownWrite();
  // Unregisters and closes the socket; reset: with an RST (SO_LINGER 0). Idempotent.
  void close(bool reset);

  // io_uring: one non-blocking recv into the inbox, for a socket just accepted.
  void readNow();

  // io_uring completions (UringSocket).
  void onUringRecv(const uint8_t* data, int n, bool more) override;
  void onUringSent(int res) override;
  void onUringWritable(int res) override;

 private:
  Poller& poller_;
  Uring* ring_;                     // the worker's io_uring, or nullptr (epoll)
  PollHandler* handler_ = nullptr;  // set while registered
  // io_uring: what the receive brought and read() has not taken yet (the kernel's socket
  // buffer, for epoll). Lent by the worker while bytes wait; none while idle.
  std::unique_ptr<Buffer> inbox_;
  Buffer* sending_ = nullptr;       // io_uring: the buffer of the send in flight
  int fd_;
  uint32_t slot_ = 0;       // io_uring: the socket's slot in the ring
  int ring_error_ = 0;      // io_uring: errno of a failed receive (reported by read())
  int send_error_ = 0;      // io_uring: errno of a failed send (reported by write())
  bool readable_ = false;
  bool writable_ = false;
  bool pending_eof_ = false;  // the peer's FIN (or an error) is queued behind the data
  bool recv_paused_ = false;  // io_uring: receive stopped while the inbox is full
  bool connecting_ = false;   // io_uring: connect() under way, writability not yet seen
};

}  // namespace ferry::core::net
