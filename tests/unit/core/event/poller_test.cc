// Poller in external mode (as a worker drives it): a handler marked dispatchFirst runs before
// the other events of the same epoll batch, whatever their order in the batch.
#include "core/event/poller.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <string>

#include "tests/support/eventfd_recorder.h"

using ferry::core::PollHandler;
using ferry::core::Poller;

using Recorder = ferry::testing::EventFdRecorder;

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
