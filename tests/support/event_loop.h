// Driving a boost::asio::io_context from a unit test: bounded waits on a condition, no sleeps.
#pragma once

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>

namespace ferry::testing {

// Runs io's handlers on this thread until done() holds or `limit` has passed, and returns done()
// (false: the deadline came first).
//  - done() is evaluated before the first handler, after every handler and, while no handler is
//    ready, at least every `recheck`, so it may also watch state another thread changes (a test
//    server's counters).
//  - A stopped io_context (an earlier run ran out of work) is restarted first.
//  - If io runs out of work, nothing more can happen on it: returns done() at once.
template <typename Done>
bool runUntil(boost::asio::io_context& io, Done&& done,
              std::chrono::milliseconds limit = std::chrono::milliseconds(5000),
              std::chrono::milliseconds recheck = std::chrono::milliseconds(10)) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + limit;
  io.restart();
  while (!done()) {
    const Clock::time_point now = Clock::now();
    if (now >= deadline) return false;
    io.run_one_for(std::min<Clock::duration>(deadline - now, recheck));
    if (io.stopped()) return done();
  }
  return true;
}

}  // namespace ferry::testing
