#include "core/event/timer.h"

#include <time.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace ferry::core {
namespace asio = boost::asio;

struct Timer::Impl {
  explicit Impl(asio::io_context& io, std::function<void()> f) : timer(io), cb(std::move(f)) {}
  asio::steady_timer timer;
  std::function<void()> cb;
  uint64_t generation = 0;  // bumps on every enable/disable: stale completions are ignored
  bool armed = false;
};

Timer::Timer(asio::io_context& io, std::function<void()> cb)
    : impl_(std::make_shared<Impl>(io, std::move(cb))) {}

Timer::~Timer() {
  impl_->generation++;
  impl_->armed = false;
  impl_->cb = nullptr;
  impl_->timer.cancel();
}

void Timer::enable(std::chrono::milliseconds d) {
  auto gen = ++impl_->generation;
  impl_->armed = true;
  impl_->timer.expires_after(d);
  impl_->timer.async_wait([impl = impl_, gen](const boost::system::error_code& ec) {
    if (ec || gen != impl->generation || !impl->armed) return;
    impl->armed = false;
    if (impl->cb) impl->cb();
  });
}

void Timer::disable() {
  impl_->generation++;
  impl_->armed = false;
  impl_->timer.cancel();
}

bool Timer::enabled() const { return impl_->armed; }

int64_t monotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace ferry::core
