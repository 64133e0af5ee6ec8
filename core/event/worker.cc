#include "core/event/worker.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <optional>
#include <stdexcept>
#include <thread>

#include "core/event/poller.h"
#include "core/event/timer.h"
#include "core/log.h"

namespace ferry::core {
namespace asio = boost::asio;

namespace {
thread_local Worker* tl_worker = nullptr;
}

// Wakes the worker's epoll_wait when another thread posts work or asks it to stop.
struct Wakeup final : PollHandler {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ~Wakeup() { ::close(fd); }
  void signal() const {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(fd, &one, sizeof one);
  }
  void onPollEvents(uint32_t) override {
    uint64_t n;
    while (::read(fd, &n, sizeof n) > 0) {
    }
    // Another thread posted work: run it before the rest of this batch's I/O (the Poller
    // dispatches this handler first), so e.g. a new LB table applies to the requests that
    // arrived with it.
    if (io != nullptr) io->poll();
  }
  asio::io_context* io = nullptr;
};

struct Worker::Impl {
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::thread thread;
  Wakeup wakeup;
  std::optional<TimerDriver> timers;  // set up before anything can arm a timer
};

Worker::Worker(size_t index, StatsShard& stats, Io io)
    : impl_(std::make_unique<Impl>()), index_(index), stats_(stats), io_(io) {
  impl_->guard.emplace(impl_->io.get_executor());
  if (impl_->wakeup.fd < 0) throw std::runtime_error("eventfd failed");
  // Before anything can register with them (listeners are made by posted work).
  Poller::of(impl_->io).driveExternally();
  impl_->timers.emplace(impl_->io);
}

Worker::~Worker() {
  stop();
  join();
}

void Worker::start() {
  impl_->thread = std::thread([this] {
    tl_worker = this;
    log::setThreadWorker(index_);
    try {
      run();
    } catch (const std::exception& e) {
      FERRY_LOG(kError, "worker ", index_, " stopped by an exception: ", e.what());
    }
    tl_worker = nullptr;
  });
}

// The loop blocks in the Poller's epoll_wait (or its io_uring wait), not in Asio: the worker has no Asio I/O objects
// (sockets are on the Poller, timers are asked for their deadline), so io.poll() only runs
// posted handlers and one wakeup costs one epoll_wait. Other threads wake it with the eventfd.
void Worker::run() {
  asio::io_context& io = impl_->io;
  Poller& poller = Poller::of(io);
  if (io_ == Io::kIoUring) {
    // Made here: the ring belongs to the thread that submits to it.
    std::string why;
    if (!poller.useIoUring(&why)) FERRY_LOG(kError, "worker ", index_, ": io_uring failed (", why, "); running on epoll");
  }
  impl_->wakeup.io = &io;
  poller.dispatchFirst(&impl_->wakeup);
  if (!poller.add(impl_->wakeup.fd, &impl_->wakeup)) throw std::runtime_error("cannot watch the wakeup eventfd");
  for (;;) {
    io.poll();  // posted work, including work posted by the handlers it runs
    if (io.stopped()) break;
    poller.wait(impl_->timers->msUntilNext());
    impl_->timers->fireDue();
  }
  poller.remove(impl_->wakeup.fd, &impl_->wakeup);
}

void Worker::post(std::function<void()> fn) {
  asio::post(impl_->io, std::move(fn));
  if (Worker::current() != this) impl_->wakeup.signal();
}

void Worker::stop() {
  impl_->guard.reset();
  impl_->io.stop();
  impl_->wakeup.signal();
}

void Worker::join() {
  if (impl_->thread.joinable()) impl_->thread.join();
}

asio::io_context& Worker::io() { return impl_->io; }

Worker* Worker::current() { return tl_worker; }

}  // namespace ferry::core
