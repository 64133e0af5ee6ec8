// Internal to the integration harness (harness*.cc): small helpers the harness's source files
// share. Tests include harness.h only.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <string>

namespace ferry::testing::detail {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

inline bool isDigit(char c) { return c >= '0' && c <= '9'; }

inline std::string errnoStr(int e) { return std::strerror(e); }

// Milliseconds until the deadline, rounded up (so poll never returns before it), clamped.
inline int remainingMs(TimePoint deadline) {
  auto now = Clock::now();
  if (now >= deadline) return 0;
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count();
  long long msv = (us + 999) / 1000;
  return msv > INT_MAX ? INT_MAX : static_cast<int>(msv);
}

// Polls one fd until an event or the deadline; returns revents (0 on timeout).
inline short pollOne(int fd, short events, TimePoint deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, remainingMs(deadline));
    if (r > 0) return p.revents;
    if (r == 0) {
      if (Clock::now() >= deadline) return 0;
      continue;
    }
    if (errno == EINTR) continue;
    return POLLERR;
  }
}

inline void closeFd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

inline void setNonBlocking(int fd, bool on) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0) return;
  ::fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}

}  // namespace ferry::testing::detail
