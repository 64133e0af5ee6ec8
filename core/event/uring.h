// Uring: a worker's io_uring, the completion-based I/O backend beside the epoll Poller.
//
// Sockets (SocketIo in io_uring mode) receive with one multishot recv each, into buffers the
// kernel picks from a ring shared by the worker (a provided-buffer ring); the bytes are copied
// into the connection's own Buffer and the ring buffer goes straight back. Sends are
// sendmsg requests over the connection's Buffer slices, at most one in flight per socket; every
// request made during a loop turn is submitted by the one io_uring_enter that also waits for
// the next completions. Sockets are registered in the ring's file table (fixed files), so
// requests skip the per-call file lookup. Plain descriptors (listeners, the worker's eventfd)
// get readiness from a multishot poll and are handed to their PollHandler as EPOLL bits.
//
// Worker-local, created on the worker's thread (the ring is single-issuer). Requests name
// their socket by slot and generation, never by pointer: a completion that arrives after its
// socket closed finds the slot dead and is dropped (a send's bytes are kept alive until then).
// liburing stays out of this header.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace ferry::core {

class Buffer;
class PollHandler;

// What a socket's requests report (SocketIo implements it). Called from Uring::wait().
class UringSocket {
 public:
  // `n` bytes arrived at `data` (n > 0), the peer's FIN (n == 0), or the receive failed
  // (n = -errno). more: the multishot receive stays armed.
  virtual void onUringRecv(const uint8_t* data, int n, bool more) = 0;
  // The send finished: bytes sent, or -errno.
  virtual void onUringSent(int res) = 0;
  // The socket became writable (a connect finished): poll bits, or -errno.
  virtual void onUringWritable(int res) = 0;

 protected:
  ~UringSocket() = default;
};

class Uring {
 public:
  // Whether this process can run the backend: a ring, a provided-buffer ring and a multishot
  // receive that works (tried on a socket pair). False with the reason in `why`.
  static bool probe(std::string* why);
  // nullptr with the reason in `why` when the kernel (or a seccomp filter) refuses.
  // `first_buffers`: receive buffers provided at first (tests make it small to see growth).
  static std::unique_ptr<Uring> create(std::string* why, unsigned first_buffers = 32);
  ~Uring();
  Uring(const Uring&) = delete;
  Uring& operator=(const Uring&) = delete;

  // Readiness of a plain descriptor (POLLIN/POLLRDHUP as EPOLL bits) for `handler`.
  bool addPoll(int fd, PollHandler* handler);
  void removePoll(int fd, PollHandler* handler);

  // A socket's slot (registered as a fixed file when the table has room).
  uint32_t open(int fd, UringSocket* sock);
  void recv(uint32_t slot);        // arms the multishot receive
  void cancelRecv(uint32_t slot);  // stops it (its last completion says so)
  void pollWritable(uint32_t slot);
  // Sends `data`'s first bytes (up to 64 slices). `data` must stay unchanged, apart from bytes
  // added at its end, until onUringSent; close() takes it over if the socket closes first.
  void send(uint32_t slot, const Buffer& data);
  // The socket is going away: its requests are cancelled, a send in flight keeps `in_flight`'s
  // bytes (moved out of the caller's buffer) until it completes, and the slot is freed once
  // nothing refers to it. The caller closes its descriptor.
  void close(uint32_t slot, Buffer* in_flight);

  // Receive buffers handed to the kernel: `first_buffers` (32) at first, 32 more each time a
  // receive finds none left, at most 256 (16 KiB each).
  unsigned receiveBuffers() const;

  // Submits every request made since the last call and waits up to `timeout_ms` (-1: no
  // limit, 0: just look) for completions, then dispatches them all; those of `first` (a poll
  // handler) go before the rest. Returns the number of completions handled.
  int wait(int timeout_ms, PollHandler* first);

  struct Impl;

 private:
  explicit Uring(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::core
