#include "core/log.h"

#include <time.h>
#include <unistd.h>

#include <cstdio>

namespace ferry::core::log {

namespace detail {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
}

namespace {
std::atomic<int> g_format{static_cast<int>(Format::kText)};
std::atomic<int> g_fd{STDERR_FILENO};
thread_local size_t tl_worker = 0;
constexpr const char* kNames[] = {"trace", "debug", "info", "warn", "error"};

void appendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(ch);  // UTF-8 passes as is
        }
    }
  }
  out.push_back('"');
}
}  // namespace

void setLevel(Level l) { detail::g_level.store(static_cast<int>(l), std::memory_order_relaxed); }
Level level() { return static_cast<Level>(detail::g_level.load(std::memory_order_relaxed)); }
void setFormat(Format f) { g_format.store(static_cast<int>(f), std::memory_order_relaxed); }
void setOutput(int fd) { g_fd.store(fd, std::memory_order_release); }
void setThreadWorker(size_t index) { tl_worker = index; }

std::string formatLine(Format format, Level l, std::string_view message, int64_t unix_ms, size_t worker) {
  const time_t secs = static_cast<time_t>(unix_ms / 1000);
  tm t{};
  gmtime_r(&secs, &t);
  char stamp[80];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                t.tm_hour, t.tm_min, t.tm_sec, static_cast<int>(unix_ms % 1000));
  std::string line;
  line.reserve(message.size() + 80);
  if (format == Format::kJson) {
    line += "{\"time\":\"";
    line += stamp;
    line += "\",\"level\":\"";
    line += kNames[static_cast<int>(l)];
    line += "\",\"msg\":";
    appendJsonString(line, message);
    if (worker != 0) {
      line += ",\"worker\":";
      line += std::to_string(worker);
    }
    line.push_back('}');
  } else {
    line += "[";
    line += stamp;
    line += "] [";
    line += kNames[static_cast<int>(l)];
    line += "] ";
    line.append(message);
  }
  return line;
}

void write(Level l, std::string_view message) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  const int64_t ms = static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
  std::string line = formatLine(static_cast<Format>(g_format.load(std::memory_order_relaxed)), l, message, ms, tl_worker);
  line.push_back('\n');
  const int fd = g_fd.load(std::memory_order_acquire);
  size_t off = 0;
  while (off < line.size()) {
    ssize_t w = ::write(fd, line.data() + off, line.size() - off);
    if (w <= 0) break;
    off += static_cast<size_t>(w);
  }
}

}  // namespace ferry::core::log
