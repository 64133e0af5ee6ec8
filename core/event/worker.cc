#include "core/event/worker.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <optional>
#include <thread>

#include "core/log.h"

namespace ferry::core {
namespace asio = boost::asio;

namespace {
thread_local Worker* tl_worker = nullptr;
}

struct Worker::Impl {
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::thread thread;
};

Worker::Worker(size_t index, StatsShard& stats) : impl_(std::make_unique<Impl>()), index_(index), stats_(stats) {
  impl_->guard.emplace(impl_->io.get_executor());
}

Worker::~Worker() {
  stop();
  join();
}

void Worker::start() {
  impl_->thread = std::thread([this] {
    tl_worker = this;
    try {
      impl_->io.run();
    } catch (const std::exception& e) {
      FERRY_LOG(kError, "worker ", index_, " stopped by an exception: ", e.what());
    }
    tl_worker = nullptr;
  });
}

void Worker::post(std::function<void()> fn) { asio::post(impl_->io, std::move(fn)); }

void Worker::stop() {
  impl_->guard.reset();
  impl_->io.stop();
}

void Worker::join() {
  if (impl_->thread.joinable()) impl_->thread.join();
}

asio::io_context& Worker::io() { return impl_->io; }

Worker* Worker::current() { return tl_worker; }

}  // namespace ferry::core
