// Access logs: one line per HTTP exchange, formatted on the worker into a per-worker buffer
// and written by one writer thread per file, so a slow disk never blocks a request.
//
// Worker side: AccessLog::log() appends the formatted line to the worker's buffer for that
// file. The buffer goes to the file's writer through a single-producer ring (no lock) when it
// holds 64 KiB or when its oldest line is 100 ms old (a worker timer), so under load one
// hand-over (and one wake-up of the writer) carries hundreds of lines. When the ring is full
// (the writer is stuck), the buffer is dropped and its lines counted in
// ferry_access_log_dropped_lines_total: the worker never waits.
// Writer side: one thread per file path drains every worker's ring and writes the buffers
// with writev(2) onto a ReopenableFile (SIGUSR1 reopens it for logrotate). Emptied buffers go
// back through the ring, so the steady state allocates nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.h"
#include "core/http/filter.h"
#include "core/http/header_map.h"
#include "core/net/connection_info.h"

namespace ferry::core {
class StatsStore;
struct WorkerContext;
}

namespace ferry::core::http {

// What one log line is made of. Pointers may be null (an error before any request).
struct LogContext {
  const StreamInfo* info = nullptr;
  const RequestHeaders* request = nullptr;
  const ResponseHeaders* response = nullptr;
  const HeaderMap* response_trailers = nullptr;
  const net::ConnectionInfo* connection = nullptr;
  std::string_view route_name;
  std::string_view listener;
  int64_t end_us = 0;  // monotonic (core::monotonicUs), when the exchange ended
};

class AccessLogFile;

// One `access_log` entry of a listener, compiled. Immutable, shared by every worker.
class AccessLog {
 public:
  // Opens (or shares) the file of `cfg.path`; null and *error when it cannot be opened.
  // Main thread. `workers`: the worker count (worker indexes are 1..workers).
  static std::shared_ptr<const AccessLog> create(const config::AccessLogConfig& cfg, size_t workers,
                                                 StatsStore& stats, std::string* error);
  ~AccessLog();

  // Worker thread: the filter (status range, flags, sampling), then the line.
  void log(WorkerContext& worker, const LogContext& ctx) const;

  // The line as it would be written, without its newline (tests, and the writer's caller).
  void format(const LogContext& ctx, std::string& out) const;

 private:
  AccessLog(const config::AccessLogConfig& cfg, std::shared_ptr<AccessLogFile> file);
  config::AccessLogConfig cfg_;
  std::vector<std::string> json_keys_;  // "\"key\":" for each json_format entry
  uint64_t sample_threshold_;  // sampled when a random 64-bit draw is below it
  std::shared_ptr<AccessLogFile> file_;
};

// Main thread, after the workers have stopped: every writer flushes what it holds and exits.
void shutdownAccessLogs();

// Formats one command's value (for tests): what %CMD% prints, "-" when it has no value.
void formatLogCommand(const config::LogCommand& cmd, const LogContext& ctx, std::string& out);

}  // namespace ferry::core::http
