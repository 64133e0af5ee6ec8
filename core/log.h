// Leveled logging to stderr. Any thread: each line is formatted into a local buffer and
// written with one write(2), so lines from different workers never interleave.
#pragma once

#include <atomic>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace ferry::core::log {

enum class Level { kTrace = 0, kDebug, kInfo, kWarn, kError };

void setLevel(Level level);
Level level();
inline bool enabled(Level l);
void write(Level level, std::string_view message);

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
