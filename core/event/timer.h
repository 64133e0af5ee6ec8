// Timer: a one-shot timer on an io_context that calls back on that context's thread.
// Owned by whoever created it; destroying it cancels it (the callback never runs after).
// Filters and codecs use this instead of Asio types.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace boost::asio {
class io_context;
}

namespace ferry::core {

class Timer {
 public:
  Timer(boost::asio::io_context& io, std::function<void()> cb);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // (Re)arms the timer to fire after `d`.
  void enable(std::chrono::milliseconds d);
  void disable();
  bool enabled() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Monotonic milliseconds, cheap to read (CLOCK_MONOTONIC_COARSE), for activity stamps.
int64_t monotonicMs();

}  // namespace ferry::core
