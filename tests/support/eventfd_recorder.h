// A PollHandler over its own eventfd that appends its name to a log each time it is
// dispatched (the order handlers ran in), then runs on_dispatch if set (work a test wants done
// inside the Poller's event dispatch); signal() makes it ready. For Poller tests.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <functional>
#include <string>

#include "core/event/poller.h"

namespace ferry::testing {

struct EventFdRecorder final : core::PollHandler {
  EventFdRecorder(std::string& log, char name) : log(log), name(name) {}
  ~EventFdRecorder() { ::close(fd); }
  EventFdRecorder(const EventFdRecorder&) = delete;
  EventFdRecorder& operator=(const EventFdRecorder&) = delete;
  void onPollEvents(uint32_t) override {
    uint64_t n;
    while (::read(fd, &n, sizeof n) > 0) {
    }
    log += name;
    if (on_dispatch) on_dispatch();
  }
  void signal() const {
    uint64_t one = 1;
    REQUIRE(::write(fd, &one, sizeof one) == sizeof one);
  }
  std::string& log;
  char name;
  std::function<void()> on_dispatch;
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
};

}  // namespace ferry::testing
