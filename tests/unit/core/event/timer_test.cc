// Timer: one shared Asio timer per io_context, per-duration lists. Real io_context, real
// clock; every wait is bounded by run_for.
#include "core/event/timer.h"

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

using ferry::core::Timer;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST_CASE("timer: timers of different durations fire in deadline order", "[timer]") {
  boost::asio::io_context io;
  std::string order;
  Timer a(io, [&] { order += 'a'; });
  Timer b(io, [&] { order += 'b'; });
  Timer c(io, [&] { order += 'c'; });
  Timer d(io, [&] { order += 'd'; });
  a.enable(60ms);
  b.enable(20ms);
  c.enable(40ms);
  d.enable(20ms);  // same duration as b, armed after it
  io.run_for(5s);  // returns once nothing is left
  CHECK(order == "bdca");
  CHECK_FALSE(a.enabled());
}

TEST_CASE("timer: an earlier deadline than the armed one fires on time", "[timer]") {
  boost::asio::io_context io;
  Clock::time_point fired{};
  Timer late(io, [] {});
  Timer early(io, [&] { fired = Clock::now(); });
  auto start = Clock::now();
  late.enable(2000ms);  // arms the shared timer far out
  early.enable(10ms);   // must move it in
  io.run_for(1s);
  REQUIRE(fired != Clock::time_point{});
  CHECK(fired - start >= 10ms);
  CHECK(fired - start < 900ms);
  CHECK(late.enabled());
}

TEST_CASE("timer: re-arming moves the deadline, disabling and destroying cancel", "[timer]") {
  boost::asio::io_context io;
  int rearmed = 0, disabled = 0, destroyed = 0;
  Clock::time_point rearm_at{}, fired_at{};
  Timer r(io, [&] {
    ++rearmed;
    fired_at = Clock::now();
  });
  Timer x(io, [&] { ++disabled; });
  auto y = std::make_unique<Timer>(io, [&] { ++destroyed; });
  Timer kick(io, [&] {
    rearm_at = Clock::now();
    r.enable(60ms);  // was due at 30ms: now 60ms after this
    x.disable();
    y.reset();
  });
  r.enable(30ms);
  x.enable(30ms);
  y->enable(30ms);
  kick.enable(10ms);
  io.run_for(5s);
  CHECK(rearmed == 1);
  CHECK(fired_at - rearm_at >= 60ms);
  CHECK(disabled == 0);
  CHECK(destroyed == 0);
}

// Re-arming the last timer of a duration only moves its deadline (no relinking); re-arming
// one with others of its duration behind it moves it behind them.
TEST_CASE("timer: re-arming the last timer of a duration moves its deadline in place", "[timer]") {
  boost::asio::io_context io;
  std::string order;
  Clock::time_point kicked{}, b_fired{};
  Timer a(io, [&] { order += 'a'; });
  Timer b(io, [&] {
    order += 'b';
    b_fired = Clock::now();
  });
  Timer kick(io, [&] {
    kicked = Clock::now();
    b.enable(30ms);  // last of the 30 ms lane: deadline moved in place
    a.enable(30ms);  // first of the lane: moves behind b
  });
  a.enable(30ms);
  b.enable(30ms);
  kick.enable(10ms);
  io.run_for(5s);
  CHECK(order == "ba");
  REQUIRE(b_fired != Clock::time_point{});
  CHECK(b_fired - kicked >= 30ms);  // not at its first deadline, 20 ms after the kick
}

namespace {
// Each step destroys the timer whose callback is running and arms a new one. The callback
// only forwards to step(), so nothing touches the destroyed closure afterwards.
struct Chain {
  boost::asio::io_context& io;
  std::vector<std::unique_ptr<Timer>> timers;
  int count = 0;
  void arm(int ms) {
    timers.push_back(std::make_unique<Timer>(io, [this] { step(); }));
    timers.back()->enable(std::chrono::milliseconds(ms));
  }
  void step() {
    ++count;
    timers.clear();
    if (count < 5) arm(count % 2);
  }
};
}  // namespace

TEST_CASE("timer: a callback may destroy its own timer and arm others", "[timer]") {
  boost::asio::io_context io;
  Chain chain{io};
  chain.arm(0);
  io.run_for(5s);
  CHECK(chain.count == 5);
}

TEST_CASE("timer: nothing armed leaves io_context::run free to return", "[timer]") {
  boost::asio::io_context io;
  Timer t(io, [] {});
  t.enable(10s);
  t.disable();
  auto start = Clock::now();
  io.run_for(5s);
  CHECK(Clock::now() - start < 2s);
}

TEST_CASE("timer: many timers with one duration, some cancelled, fire once each in order", "[timer]") {
  boost::asio::io_context io;
  std::vector<int> fired;
  std::vector<std::unique_ptr<Timer>> ts;
  for (int i = 0; i < 100; ++i) ts.push_back(std::make_unique<Timer>(io, [&fired, i] { fired.push_back(i); }));
  for (auto& t : ts) t->enable(5ms);
  for (int i = 0; i < 100; i += 3) ts[static_cast<size_t>(i)]->disable();
  io.run_for(5s);
  std::vector<int> want;
  for (int i = 0; i < 100; ++i) {
    if (i % 3 != 0) want.push_back(i);
  }
  CHECK(fired == want);
}

// TimerHook: the intrusive form an idle connection uses (no Timer object, no callback object):
// it shares the lists and the shared deadline with Timers.
namespace {
struct Hooked : ferry::core::TimerHook {
  explicit Hooked(std::string& log, char name) : log(log), name(name) {}
  ~Hooked() {
    if (timerEnabled()) disableTimer(*queue);
  }
  void onTimer() override {
    log += name;
    if (rearm > 0) {
      --rearm;
      enableTimer(*queue, std::chrono::milliseconds(5));
    }
  }
  std::string& log;
  char name;
  int rearm = 0;
  ferry::core::TimerQueue* queue = nullptr;
};
}  // namespace

TEST_CASE("timer: hooks fire in deadline order with timers, re-arm from their callback, and cancel",
          "[timer][idle]") {
  boost::asio::io_context io;
  auto& queue = ferry::core::timerQueueOf(io);
  std::string log;
  Hooked a(log, 'a'), b(log, 'b'), gone(log, 'x'), off(log, 'o');
  for (Hooked* h : {&a, &b, &gone, &off}) h->queue = &queue;
  Timer t(io, [&] { log += 't'; });
  a.enableTimer(queue, 40ms);
  b.enableTimer(queue, 10ms);
  b.rearm = 2;  // fires at 10, 15 and 20 ms
  t.enable(30ms);
  off.enableTimer(queue, 20ms);
  off.disableTimer(queue);
  CHECK_FALSE(off.timerEnabled());
  {
    Hooked dying(log, 'd');
    dying.queue = &queue;
    dying.enableTimer(queue, 15ms);
  }  // its owner disabled it as it went
  gone.enableTimer(queue, 25ms);
  gone.enableTimer(queue, 50ms);  // re-armed: moves after `a`
  io.run_for(5s);  // returns once nothing is armed
  CHECK(log == "bbbtax");
  CHECK_FALSE(a.timerEnabled());
}

TEST_CASE("timer: a hook is a few words inside its owner", "[timer][idle]") {
  // Links, deadline and lane, plus the owner's vtable pointer: what an idle connection pays
  // for its timeout instead of a Timer (a callback object and a queue reference) per timeout.
  STATIC_REQUIRE(sizeof(ferry::core::TimerHook) <= 40);
}
