// Poller: the worker's own edge-triggered epoll set for connection sockets (or, with
// useIoUring(), its io_uring).
//
// Asio's reactor re-registers a descriptor (epoll_ctl) on every readiness wait, so a
// request would cost two epoll_ctl calls and, because readiness is edge-triggered, a read
// to EAGAIN on each side. The Poller registers each socket once (EPOLLIN | EPOLLOUT |
// EPOLLRDHUP | EPOLLET) and hands out readiness as events; a connection keeps "ready"
// bits like nginx does and treats a short read as drained. The Poller's own epoll fd is
// waited on through the io_context, so timers, posts and accepts still run there; one
// wakeup serves every socket that became ready.
//
// Writes made while an event is being dispatched are corked: a connection queues itself
// and is flushed once the event's handler returns, so a response's head and body leave in
// one sendmsg. Worker-local: one Poller per io_context, used on that context's thread only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace ferry::core {

class Uring;

class PollHandler {
 public:
  // events: EPOLL* bits as epoll_wait returned them.
  virtual void onPollEvents(uint32_t events) = 0;

 protected:
  ~PollHandler() = default;
};

// Work to run once the current event's handler has returned (a corked flush).
class DeferredAction {
 public:
  virtual void runDeferred() = 0;

 protected:
  ~DeferredAction() = default;
};

class Poller {
 public:
  // The Poller of `io`, created on first use; it lives as long as `io`.
  static Poller& of(boost::asio::io_context& io);

  // The io_context this Poller belongs to.
  boost::asio::io_context& io() const;

  // Registers `fd` (edge-triggered, in/out/rdhup). Returns false with errno set on failure.
  bool add(int fd, PollHandler* handler);
  // Must be called before `fd` is closed: events already fetched for `handler` are dropped.
  void remove(int fd, PollHandler* handler);

  // True while an event handler runs (writes may be corked until it returns).
  bool dispatching() const { return dispatching_; }
  // Runs `action` once every event of the current batch has been handled. Only while
  // dispatching().
  void defer(DeferredAction* action) { deferred_.push_back(action); }
  // Forgets a deferred action whose owner is going away.
  void cancelDeferred(DeferredAction* action);

  // For a loop that blocks by itself (the Worker) instead of in io_context::run(): the
  // Poller's fd is no longer waited on through Asio; the loop calls wait() instead.
  void driveExternally();
  // Events of `handler` are dispatched before every other event of a batch (the worker's
  // wakeup: work posted by other threads, such as a new LB table, runs before the I/O that
  // became ready at the same time).
  void dispatchFirst(PollHandler* handler) { first_ = handler; }
  // Waits up to `timeout_ms` (-1: no limit, 0: just look) and dispatches what is ready.
  void wait(int timeout_ms);

  // Switches an externally driven Poller, before anything is registered, to the io_uring
  // backend (core/event/uring.h): plain descriptors get a multishot poll and sockets
  // (SocketIo) completion-based receives and sends. False, with the reason, when the kernel
  // refuses; the Poller then stays on epoll.
  bool useIoUring(std::string* why, unsigned first_buffers = 32);
  // The ring when the io_uring backend runs, else nullptr.
  Uring* uring() const { return uring_; }

  struct State;  // epoll fd, the Asio wait on it, the event batch (poller.cc)
  explicit Poller(State* state) : state_(state) {}

 private:
  void arm();
  void dispatch();
  void dispatchEvents(int n);
  void runDeferred();

  State* state_;
  Uring* uring_ = nullptr;  // owned by the State
  bool dispatching_ = false;
  PollHandler* first_ = nullptr;
  bool external_ = false;
  std::vector<DeferredAction*> deferred_;
};

}  // namespace ferry::core
