// Timer: a one-shot timer on an io_context that calls back on that context's thread.
// Owned by whoever created it; destroying it cancels it (the callback never runs after).
// Filters and codecs use this instead of Asio types.
//
// Cheap to arm, re-arm and drop, because requests do all three: timers of one io_context
// share a single Asio timer. Timers with the same duration sit in one list ordered by
// deadline (arming appends at the tail), so arming and cancelling are O(1) list operations
// and the shared Asio timer is only moved when the earliest deadline gets earlier. A
// cancelled timer does not cancel the Asio wait: it may wake once for nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace boost::asio {
class io_context;
}

namespace ferry::core {

class TimerQueue;

class Timer {
 public:
  Timer(boost::asio::io_context& io, std::function<void()> cb);
  // On the same io_context as a timer at hand, without looking the context's queue up (a
  // locked registry lookup in Asio): for timers made per request.
  Timer(TimerQueue& queue, std::function<void()> cb) : queue_(queue), cb_(std::move(cb)) {}
  TimerQueue& queue() const { return queue_; }
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // (Re)arms the timer to fire after `d`.
  void enable(std::chrono::milliseconds d);
  void disable();
  bool enabled() const { return lane_ >= 0; }

 private:
  friend class TimerQueue;
  TimerQueue& queue_;
  std::function<void()> cb_;
  int64_t deadline_ns_ = 0;
  int lane_ = -1;  // index of the duration list it is in; -1: not armed
  Timer* prev_ = nullptr;
  Timer* next_ = nullptr;
};

// For an event loop that blocks by itself instead of in io_context::run() (the Worker): the
// io_context's timers stop using Asio's timer, and the loop asks when the next one is due
// and fires them. Call before the first Timer of `io` fires; worker thread only.
class TimerDriver {
 public:
  // Switches `io`'s timers to external driving; the driver keeps the queue at hand, so the
  // loop's per-turn calls look nothing up.
  explicit TimerDriver(boost::asio::io_context& io);
  // Milliseconds until the earliest armed timer (rounded up; 0 = due), or -1 if none.
  int msUntilNext() const;
  // Runs the callbacks of every timer that is due.
  void fireDue();

 private:
  TimerQueue& queue_;
};

// Monotonic milliseconds, cheap to read (CLOCK_MONOTONIC_COARSE), for activity stamps.
int64_t monotonicMs();
// Monotonic microseconds (CLOCK_MONOTONIC, a vDSO read), for durations that are measured.
int64_t monotonicUs();

}  // namespace ferry::core
