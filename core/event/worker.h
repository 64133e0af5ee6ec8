// Worker: one thread running one io_context (concurrency hint 1) and the Poller's epoll set,
// blocking in epoll_wait (see worker.cc). Everything created on a
// worker (connections, timers, pools, LB cursors) stays on it; other threads reach it only
// through post(). Owned by the Server. Asio stays out of this header.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace ferry::core {

class StatsShard;

class Worker {
 public:
  enum class Io { kEpoll, kIoUring };
  // `index` is 1-based for workers (0 is the main thread's stats shard). `io`: the loop's
  // backend (io_uring falls back to epoll, with an error logged, if the ring cannot be made).
  Worker(size_t index, StatsShard& stats, Io io = Io::kEpoll);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();                           // spawns the thread; the loop runs until stop()
  void post(std::function<void()> fn);    // any thread
  void stop();                            // any thread: ends the loop
  void join();

  boost::asio::io_context& io();
  size_t index() const { return index_; }
  StatsShard& stats() { return stats_; }

  // The worker running on this thread, or nullptr (main thread).
  static Worker* current();

 private:
  void run();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  size_t index_;
  StatsShard& stats_;
  Io io_;
};

}  // namespace ferry::core
