// Poller in external mode (as a worker drives it): a handler marked dispatchFirst runs before
// the other events of the same epoll batch, whatever their order in the batch.
#include "core/event/poller.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <string>

using ferry::core::PollHandler;
using ferry::core::Poller;

namespace {

struct Recorder final : PollHandler {
  Recorder(std::string& log, char name) : log(log), name(name) {}
  ~Recorder() { ::close(fd); }
  void onPollEvents(uint32_t) override {
    uint64_t n;
    while (::read(fd, &n, sizeof n) > 0) {
    }
    log += name;
  }
  void signal() const {
    uint64_t one = 1;
    REQUIRE(::write(fd, &one, sizeof one) == sizeof one);
  }
  std::string& log;
  char name;
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
};

}  // namespace

TEST_CASE("poller: the dispatchFirst handler runs before the rest of its batch", "[poller]") {
  boost::asio::io_context io;
  Poller& poller = Poller::of(io);
  poller.driveExternally();
  std::string log;
  Recorder io_event(log, 'a'), wakeup(log, 'w');
  REQUIRE(poller.add(io_event.fd, &io_event));
  REQUIRE(poller.add(wakeup.fd, &wakeup));
  poller.wait(0);  // registration edges (writable): drain them
  log.clear();

  SECTION("without it, readiness order") {
    io_event.signal();
    wakeup.signal();
    poller.wait(1000);
    CHECK(log == "aw");
  }
  SECTION("with it, the wakeup first although it became ready last") {
    poller.dispatchFirst(&wakeup);
    io_event.signal();
    wakeup.signal();
    poller.wait(1000);
    CHECK(log == "wa");
  }
  poller.remove(io_event.fd, &io_event);
  poller.remove(wakeup.fd, &wakeup);
}
