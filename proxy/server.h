// Server: owns the main thread's event loop, the workers, the listening sockets, the admin
// API, signals and drain. Main thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/model.h"

namespace ferry::proxy {

// What the command line sets over the config file; a reload applies them again.
struct ServerOptions {
  std::optional<uint32_t> workers;            // --workers
  std::optional<config::LogLevel> log_level;  // --log-level
  std::optional<std::string> io;              // --io, else $FERRY_IO where the config has no runtime.io
  bool io_forced = false;                     // io came from --io (over the config's runtime.io)
  std::string upgrade_from;                   // --upgrade-from PID|PATH: take that process's sockets
  std::vector<std::string> argv;              // the command line, for SIGUSR2's re-exec
};

class Server {
 public:
  Server(config::Config cfg, ServerOptions options);
  ~Server();
  // Binds, starts the workers and runs until SIGTERM/SIGINT and the drain that follows.
  // Returns the process exit code (0 after a drain, 1 when startup fails).
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::proxy
