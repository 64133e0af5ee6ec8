#include "core/event/poller.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <optional>
#include <memory>
#include <stdexcept>

#include "core/event/uring.h"

namespace ferry::core {
namespace asio = boost::asio;

namespace {
constexpr int kBatch = 256;
}

struct Poller::State {
  explicit State(asio::io_context& ctx) : io(ctx) {
    epfd = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) throw std::runtime_error("epoll_create1 failed");
  }
  ~State() {
    uring.reset();
    if (desc) desc->release();  // epfd is ours to close
    ::close(epfd);
  }
  std::unique_ptr<Uring> uring;
  asio::io_context& io;
  int epfd = -1;
  // The Asio wait on epfd, made on first use: an externally driven Poller never has one.
  std::optional<asio::posix::stream_descriptor> desc;
  bool shut = false;
  epoll_event events[kBatch];
  int next = 0;  // index of the next event to hand out while dispatching
  int count = 0;
  size_t registered = 0;
  bool armed = false;
};

namespace {
class PollerService : public asio::execution_context::service {
 public:
  using key_type = PollerService;
  static asio::execution_context::id id;

  explicit PollerService(asio::execution_context& ctx)
      : service(ctx), state(static_cast<asio::io_context&>(ctx)), poller(&state) {}

  void shutdown() override {
    state.shut = true;
    if (state.desc) {
      boost::system::error_code ec;
      state.desc->cancel(ec);
      state.desc->release();  // epfd is closed by ~State
      state.desc.reset();
    }
  }

  Poller::State state;
  Poller poller;
};
asio::execution_context::id PollerService::id;
}  // namespace

Poller& Poller::of(asio::io_context& io) { return asio::use_service<PollerService>(io).poller; }

asio::io_context& Poller::io() const { return state_->io; }

bool Poller::add(int fd, PollHandler* handler) {
  if (uring_ != nullptr) return uring_->addPoll(fd, handler);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = handler;
  if (::epoll_ctl(state_->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) return false;
  ++state_->registered;
  arm();
  return true;
}

void Poller::arm() {
  if (external_ || state_->armed || state_->registered == 0 || state_->shut) return;
  if (!state_->desc) state_->desc.emplace(state_->io, state_->epfd);
  state_->armed = true;
  state_->desc->async_wait(asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
    state_->armed = false;
    if (!ec) {
      dispatch();
    } else {
      arm();  // cancelled when the set emptied, but a socket may have been added since
    }
  });
}

void Poller::remove(int fd, PollHandler* handler) {
  if (uring_ != nullptr) {
    uring_->removePoll(fd, handler);
    return;
  }
  // Closing the fd would drop it from the set too, but only once every duplicate is closed.
  ::epoll_ctl(state_->epfd, EPOLL_CTL_DEL, fd, nullptr);
  for (int i = state_->next; i < state_->count; ++i) {
    if (state_->events[i].data.ptr == handler) state_->events[i].data.ptr = nullptr;
  }
  if (state_->registered > 0 && --state_->registered == 0 && state_->armed) {
    // Nothing left to wait for: let io_context::run() return when it has no other work.
    boost::system::error_code ec;
    if (state_->desc) state_->desc->cancel(ec);
  }
}

void Poller::dispatch() {
  int n;
  do {
    n = ::epoll_wait(state_->epfd, state_->events, kBatch, 0);
  } while (n < 0 && errno == EINTR);
  dispatchEvents(n);
  // Re-arming re-evaluates readiness, so events left over a full batch wake us at once.
  arm();
}

void Poller::driveExternally() { external_ = true; }

bool Poller::useIoUring(std::string* why, unsigned first_buffers) {
  if (!external_ || state_->registered > 0) {
    *why = "the poller is already in use";
    return false;
  }
  state_->uring = Uring::create(why, first_buffers);
  uring_ = state_->uring.get();
  return uring_ != nullptr;
}

void Poller::wait(int timeout_ms) {
  if (uring_ != nullptr) {
    // Completions are handled as a batch, like epoll events: writes they make are corked
    // until every one of them ran, and go to the kernel with the next wait.
    dispatching_ = true;
    uring_->wait(timeout_ms, first_);
    if (!deferred_.empty()) runDeferred();
    dispatching_ = false;
    return;
  }
  int n = ::epoll_wait(state_->epfd, state_->events, kBatch, timeout_ms);
  dispatchEvents(n);  // EINTR: nothing this time
}

void Poller::dispatchEvents(int n) {
  state_->count = std::max(n, 0);
  dispatching_ = true;
  if (first_ != nullptr) {
    for (int i = 0; i < state_->count; ++i) {
      if (state_->events[i].data.ptr != first_) continue;
      state_->events[i].data.ptr = nullptr;
      first_->onPollEvents(state_->events[i].events);
      if (!deferred_.empty()) runDeferred();
      break;
    }
  }
  for (state_->next = 0; state_->next < state_->count;) {
    const epoll_event ev = state_->events[state_->next++];
    if (auto* h = static_cast<PollHandler*>(ev.data.ptr)) h->onPollEvents(ev.events);
  }
  // Writes deferred by the handlers run once the whole batch is handled: what several events
  // of this turn write to one connection (HTTP/2 responses from many upstreams) goes out in
  // one sendmsg.
  if (!deferred_.empty()) runDeferred();
  dispatching_ = false;
  state_->next = state_->count = 0;
}

void Poller::runDeferred() {
  // Deferred actions may defer more (a flush can trigger a write elsewhere): run to empty.
  for (size_t i = 0; i < deferred_.size(); ++i) {
    if (auto* a = deferred_[i]) a->runDeferred();
  }
  deferred_.clear();
}

void Poller::cancelDeferred(DeferredAction* action) {
  std::replace(deferred_.begin(), deferred_.end(), action, static_cast<DeferredAction*>(nullptr));
}

}  // namespace ferry::core
