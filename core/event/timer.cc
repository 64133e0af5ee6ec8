#include "core/event/timer.h"

#include <time.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cassert>
#include <climits>
#include <optional>
#include <vector>

namespace ferry::core {
namespace asio = boost::asio;

namespace {
int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

// The timers of one io_context (an Asio service, so it lives exactly as long as the context).
class TimerQueue : public asio::execution_context::service {
 public:
  using key_type = TimerQueue;
  static asio::execution_context::id id;

  explicit TimerQueue(asio::execution_context& ctx) : service(ctx), io_(static_cast<asio::io_context&>(ctx)) {}

  void shutdown() override {
    for (auto& l : lanes_) {
      for (TimerHook* t = l.head; t;) {
        TimerHook* next = t->next_;
        t->lane_ = -1;
        t->prev_ = t->next_ = nullptr;
        t = next;
      }
      l.head = l.tail = nullptr;
    }
    armed_gen_++;
    // Made after this service, so Asio destroys its service first: let it go now.
    timer_.reset();
  }

  void driveExternally() { external_ = true; }

  // A worker's loop calls this right before it blocks: the cached time goes stale then.
  int msUntilNext() {
    now_valid_ = false;
    int64_t next = earliest();
    if (next == 0) return -1;
    int64_t wait = next - nowNs();
    if (wait <= 0) return 0;
    int64_t ms = (wait + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
  }

  void fireDue() {
    int64_t next = earliest();
    if (next != 0 && next <= loopNow()) fire();
  }

  void add(TimerHook* t, int64_t duration_ns) {
    const int64_t deadline = loopNow() + duration_ns;
    if (t->lane_ >= 0) {
      // Re-armed with its own duration while last in that lane (an idle timeout pushed out on
      // activity): the deadline only moves later (the clock does not go back), so the lane
      // stays in order and the shared wakeup stays early enough. Nothing to relink.
      const Lane& cur = lanes_[static_cast<size_t>(t->lane_)];
      if (cur.tail == t && cur.duration_ns == duration_ns) {
        t->deadline_ns_ = deadline;
        return;
      }
      unlink(t);
    }
    t->deadline_ns_ = deadline;
    int i = laneFor(duration_ns);
    Lane& l = lanes_[static_cast<size_t>(i)];
    t->lane_ = static_cast<int16_t>(i);
    t->prev_ = l.tail;
    t->next_ = nullptr;
    if (l.tail) {
      l.tail->next_ = t;
    } else {
      l.head = t;
    }
    l.tail = t;
    ++count_;
    if (!armed_ || t->deadline_ns_ < armed_at_ns_) arm(t->deadline_ns_);
  }

  void remove(TimerHook* t) {
    if (t->lane_ < 0) return;
    unlink(t);
    if (count_ == 0 && armed_) {
      // Nothing left: do not keep io_context::run() alive for a wakeup that finds nothing.
      armed_ = false;
      armed_gen_++;
      if (timer_) timer_->cancel();
    }
  }

 private:
  struct Lane {
    int64_t duration_ns;
    TimerHook* head = nullptr;
    TimerHook* tail = nullptr;
  };

  int laneFor(int64_t duration_ns) {
    for (size_t i = 0; i < lanes_.size(); ++i) {
      if (lanes_[i].duration_ns == duration_ns) return static_cast<int>(i);
    }
    return newLane(duration_ns);
  }

  // Out of line (as is arm()): add() runs several times a request, and with these inlined it
  // saved and restored six registers every time for paths it seldom takes.
  [[gnu::noinline]] int newLane(int64_t duration_ns) {
    // Durations come from configuration: few distinct values. Reuse an empty lane first.
    for (size_t i = 0; i < lanes_.size(); ++i) {
      if (!lanes_[i].head) {
        lanes_[i].duration_ns = duration_ns;
        return static_cast<int>(i);
      }
    }
    lanes_.push_back(Lane{duration_ns});
    return static_cast<int>(lanes_.size() - 1);
  }

  void unlink(TimerHook* t) {
    Lane& l = lanes_[static_cast<size_t>(t->lane_)];
    (t->prev_ ? t->prev_->next_ : l.head) = t->next_;
    (t->next_ ? t->next_->prev_ : l.tail) = t->prev_;
    t->prev_ = t->next_ = nullptr;
    t->lane_ = -1;
    --count_;
  }

  int64_t earliest() const {
    int64_t next = 0;
    for (auto& l : lanes_) {
      if (l.head && (next == 0 || l.head->deadline_ns_ < next)) next = l.head->deadline_ns_;
    }
    return next;
  }

  [[gnu::noinline]] void arm(int64_t at_ns) {
    armed_ = true;
    armed_at_ns_ = at_ns;
    uint64_t gen = ++armed_gen_;
    if (external_) return;  // the loop asks msUntilNext() before it blocks
    // Made on first use: an io_context driven externally never creates an Asio timer.
    if (!timer_) timer_.emplace(io_);
    timer_->expires_at(asio::steady_timer::time_point(std::chrono::nanoseconds(at_ns)));
    timer_->async_wait([this, gen](const boost::system::error_code&) {
      if (gen != armed_gen_) return;  // superseded by an earlier deadline, or shut down
      armed_ = false;
      fire();
    });
  }

  void fire() {
    int64_t now = nowNs();
    // Callbacks may arm, cancel or destroy any timer (their own included): re-read heads.
    for (bool fired = true; fired;) {
      fired = false;
      for (auto& l : lanes_) {
        TimerHook* t = l.head;
        if (!t || t->deadline_ns_ > now) continue;
        unlink(t);
        fired = true;
        t->onTimer();  // may destroy t
        break;  // lanes_ may have grown: start over
      }
    }
    int64_t next = earliest();
    if (next != 0 && (!armed_ || next < armed_at_ns_)) arm(next);
  }

  // The time once per loop turn, as nginx does: read the clock at the first timer armed after
  // the loop woke up, and use that for every deadline of the turn (each request arms several
  // timers; a turn handles many requests). Deadlines come out early by at most the time a
  // turn takes. Only in a worker's loop (external), which calls msUntilNext() before it
  // blocks; elsewhere every call reads the clock.
  int64_t loopNow() {
    if (!external_) return nowNs();
    if (!now_valid_) {
      now_cache_ = nowNs();
      now_valid_ = true;
    }
    return now_cache_;
  }

  asio::io_context& io_;
  std::optional<asio::steady_timer> timer_;
  bool external_ = false;
  bool now_valid_ = false;
  int64_t now_cache_ = 0;
  std::vector<Lane> lanes_;
  size_t count_ = 0;
  bool armed_ = false;
  int64_t armed_at_ns_ = 0;
  uint64_t armed_gen_ = 0;
};
asio::execution_context::id TimerQueue::id;

TimerQueue& timerQueueOf(asio::io_context& io) { return asio::use_service<TimerQueue>(io); }

TimerHook::~TimerHook() { assert(lane_ < 0 && "an armed TimerHook destroyed: disable it first"); }

void TimerHook::enableTimer(TimerQueue& queue, std::chrono::milliseconds d) {
  queue.add(this, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

void TimerHook::disableTimer(TimerQueue& queue) { queue.remove(this); }

Timer::Timer(asio::io_context& io, std::function<void()> cb) : queue_(timerQueueOf(io)), cb_(std::move(cb)) {}

Timer::~Timer() { disable(); }

TimerDriver::TimerDriver(asio::io_context& io) : queue_(asio::use_service<TimerQueue>(io)) {
  queue_.driveExternally();
}
int TimerDriver::msUntilNext() const { return queue_.msUntilNext(); }
void TimerDriver::fireDue() { queue_.fireDue(); }

int64_t monotonicUs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

int64_t monotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace ferry::core
