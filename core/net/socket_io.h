// SocketIo: the I/O backend of one connection: every syscall on its socket, and the raw bytes
// between the socket and Buffers. Today: the worker's edge-triggered epoll Poller with
// nginx-style ready bits (a short read means drained), readv into Buffer slices, and one
// gathered sendmsg per flush (the Connection corks writes made during an event, so a
// response's head and body leave together). It knows nothing of transports or codecs, and
// they know nothing of it: another backend (io_uring) replaces this class alone.
// Passive: the Connection is the PollHandler and calls in here; nothing here calls back.
// Worker-local. Owned by its Connection.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

#include "core/buffer.h"

namespace ferry::core {
class Poller;
class PollHandler;
}

namespace ferry::core::net {

class SocketIo {
 public:
  SocketIo(Poller& poller, int fd) : poller_(poller), fd_(fd) {}
  ~SocketIo() { close(false); }
  SocketIo(const SocketIo&) = delete;
  SocketIo& operator=(const SocketIo&) = delete;

  int fd() const { return fd_; }
  bool isOpen() const { return fd_ >= 0; }

  // Registers the socket with the Poller once (in/out/rdhup, edge-triggered). Returns false
  // with errno set on failure. Readiness is assumed until a syscall says otherwise (data may
  // have arrived before registration).
  bool watch(PollHandler* handler);
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

 private:
  Poller& poller_;
  PollHandler* handler_ = nullptr;  // set while registered
  int fd_;
  bool readable_ = false;
  bool writable_ = false;
  bool pending_eof_ = false;  // the peer's FIN (or an error) is queued behind the data
};

}  // namespace ferry::core::net
