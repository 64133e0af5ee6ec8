// Leveled logging, to stderr by default or to a file (runtime.log_file), as text or JSON lines
// (runtime.log_format). Any thread: each line is formatted into a local buffer and written
// with one write(2) to a descriptor whose number never changes (a reopened log file is
// dup2()ed onto it), so lines from different workers never interleave and a reopen loses none.
#pragma once

#include <atomic>
#include <cstddef>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace ferry::core::log {

enum class Level { kTrace = 0, kDebug, kInfo, kWarn, kError };
enum class Format { kText = 0, kJson };

void setLevel(Level level);
Level level();
inline bool enabled(Level l);
void write(Level level, std::string_view message);

// text: "[2026-01-02T03:04:05.678Z] [info] message"; json: one object a line,
// {"time":"2026-01-02T03:04:05.678Z","level":"info","msg":"...","worker":N} ("worker" on
// worker threads only).
void setFormat(Format format);
// Where lines go from now on (a descriptor the caller keeps open); STDERR_FILENO by default.
void setOutput(int fd);
// The worker index this thread logs as (0 = none). Called by each worker thread when it starts.
void setThreadWorker(size_t index);

// One log line as `format` writes it (without the newline); for tests.
std::string formatLine(Format format, Level level, std::string_view message, int64_t unix_ms, size_t worker);

namespace detail {
extern std::atomic<int> g_level;
}
inline bool enabled(Level l) {
  return static_cast<int>(l) >= detail::g_level.load(std::memory_order_relaxed);
}

// absl::StrCat-style: FERRY_LOG(kInfo, "listener ", name, " up"). Arguments are only
// evaluated when the level is enabled.
#define FERRY_LOG(lvl, ...)                                                          \
  do {                                                                               \
    if (::ferry::core::log::enabled(::ferry::core::log::Level::lvl))                 \
      ::ferry::core::log::write(::ferry::core::log::Level::lvl, ::absl::StrCat(__VA_ARGS__)); \
  } while (0)

// Abseil's string_view is not std::string_view in Debian's build (docs/development.md).
inline absl::string_view sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace ferry::core::log
