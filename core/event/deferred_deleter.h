// DeferredDeleter: holds objects that ended inside their own call stack (a connection that
// closed from a callback, a finished stream) and destroys them from the event loop a moment
// later, when nothing on the stack can still touch them. Worker-local; owned by the object
// that owned the dying ones (destroying the deleter destroys what it holds at once).
// Inside a Poller event the sweep runs as soon as that event's handler has returned (no
// timer, no syscall); elsewhere (timers, posted work) on a zero-delay timer.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "core/event/poller.h"
#include "core/event/timer.h"

namespace ferry::core {

template <typename T>
class DeferredDeleter final : private DeferredAction {
 public:
  explicit DeferredDeleter(boost::asio::io_context& io) : poller_(Poller::of(io)), timer_(io, [this] { sweep(); }) {}
  ~DeferredDeleter() {
    if (queued_) poller_.cancelDeferred(this);
  }

  void add(std::unique_ptr<T> dying) {
    dead_.push_back(std::move(dying));
    if (queued_ || timer_.enabled()) return;
    if (poller_.dispatching()) {
      queued_ = true;
      poller_.defer(this);
    } else {
      timer_.enable(std::chrono::milliseconds(0));
    }
  }

 private:
  void runDeferred() override {
    queued_ = false;
    sweep();
  }
  void sweep() {
    // Destructors may add more: those wait for the next sweep. Swapping (not moving) keeps
    // both vectors' capacity, so steady-state sweeps allocate nothing.
    sweeping_.swap(dead_);
    sweeping_.clear();
  }

  Poller& poller_;
  std::vector<std::unique_ptr<T>> dead_;
  std::vector<std::unique_ptr<T>> sweeping_;
  Timer timer_;
  bool queued_ = false;
};

}  // namespace ferry::core
