// Timer: a one-shot timer on an io_context that calls back on that context's thread.
// Owned by whoever created it; destroying it cancels it (the callback never runs after).
// Filters and codecs use this instead of Asio types.
//
// Cheap to arm, re-arm and drop, because requests do all three: timers of one io_context
// share a single Asio timer (or, on a worker, the loop's wait). Timers with the same duration sit in one list ordered by
// deadline (arming appends at the tail), so arming and cancelling are O(1) list operations
// and the shared Asio timer is only moved when the earliest deadline gets earlier. A
// cancelled timer does not cancel the Asio wait: it may wake once for nothing.
//
// TimerHook is the same place in the same lists without an object of its own: the links and
// the deadline are embedded in their owner, which implements onTimer(). An idle connection
// waits for its idle timeout this way, so the many idle connections of a worker hold no
// Timer (no callback object, no queue reference; 40 bytes inside the connection). The
// per-duration lists make it a timer wheel for the few distinct configured timeouts:
// arming and cancelling are O(1), and the earliest deadline is known exactly, so a worker
// with nothing due sleeps until then (a hashed wheel would tick through its slots).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace boost::asio {
class io_context;
}

namespace ferry::core {

class TimerQueue;

// An intrusive timer: derive from it, implement onTimer(), and arm it on the worker's queue
// (WorkerContext::timers()). The owner disables it before it goes (the hook keeps no
// reference to its queue; destroying an armed hook is a bug, caught in debug builds).
class TimerHook {
 public:
  TimerHook() = default;
  TimerHook(const TimerHook&) = delete;
  TimerHook& operator=(const TimerHook&) = delete;

  // (Re)arms the hook to fire after `d`: onTimer() runs then, from the loop.
  void enableTimer(TimerQueue& queue, std::chrono::milliseconds d);
  void disableTimer(TimerQueue& queue);
  bool timerEnabled() const { return lane_ >= 0; }

 protected:
  ~TimerHook();
  // The deadline passed. The hook is disarmed already; it may be armed again from here.
  virtual void onTimer() = 0;

 private:
  friend class TimerQueue;
  int64_t deadline_ns_ = 0;
  TimerHook* prev_ = nullptr;
  TimerHook* next_ = nullptr;
  // Index of the duration list it is in; -1: not armed. Last and narrow: an owner's small
  // members fit in the padding after it.
  int16_t lane_ = -1;
};

class Timer final : private TimerHook {
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
  void enable(std::chrono::milliseconds d) { enableTimer(queue_, d); }
  void disable() { disableTimer(queue_); }
  bool enabled() const { return timerEnabled(); }

 private:
  void onTimer() override {
    if (cb_) cb_();
  }
  TimerQueue& queue_;
  std::function<void()> cb_;
};

// The timers of `io` (made on first use; lives as long as `io`). A locked lookup in Asio:
// look it up once and keep it (WorkerContext::timers()).
TimerQueue& timerQueueOf(boost::asio::io_context& io);

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
