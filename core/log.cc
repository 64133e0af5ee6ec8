#include "core/log.h"

#include <time.h>
#include <unistd.h>

#include <cstdio>

namespace ferry::core::log {

namespace detail {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
}

void setLevel(Level l) { detail::g_level.store(static_cast<int>(l), std::memory_order_relaxed); }
Level level() { return static_cast<Level>(detail::g_level.load(std::memory_order_relaxed)); }

void write(Level l, std::string_view message) {
  static constexpr const char* kNames[] = {"trace", "debug", "info", "warn", "error"};
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  gmtime_r(&ts.tv_sec, &t);
  char prefix[64];
  int n = std::snprintf(prefix, sizeof prefix, "[%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ] [%s] ",
                        t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                        ts.tv_nsec / 1000000, kNames[static_cast<int>(l)]);
  std::string line;
  line.reserve(static_cast<size_t>(n) + message.size() + 1);
  line.append(prefix, static_cast<size_t>(n));
  line.append(message);
  line.push_back('\n');
  size_t off = 0;
  while (off < line.size()) {
    ssize_t w = ::write(STDERR_FILENO, line.data() + off, line.size() - off);
    if (w <= 0) break;
    off += static_cast<size_t>(w);
  }
}

}  // namespace ferry::core::log
