// DeferredDeleter: holds objects that ended inside their own call stack (a connection that
// closed from a callback, a finished stream) and destroys them from the event loop a moment
// later, when nothing on the stack can still touch them. Worker-local; owned by the object
// that owned the dying ones (destroying the deleter destroys what it holds at once).
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "core/event/timer.h"

namespace ferry::core {

template <typename T>
class DeferredDeleter {
 public:
  explicit DeferredDeleter(boost::asio::io_context& io) : timer_(io, [this] { sweep(); }) {}

  void add(std::unique_ptr<T> dying) {
    dead_.push_back(std::move(dying));
    if (!timer_.enabled()) timer_.enable(std::chrono::milliseconds(0));
  }

 private:
  void sweep() {
    auto dead = std::move(dead_);  // destructors may add more: those wait for the next sweep
    dead_.clear();
  }

  std::vector<std::unique_ptr<T>> dead_;
  Timer timer_;
};

}  // namespace ferry::core
