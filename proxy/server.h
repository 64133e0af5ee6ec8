// Server: owns the main thread's event loop, the workers, the listening sockets, the admin
// API, signals and drain. Main thread.
#pragma once

#include <memory>

#include "config/model.h"

namespace ferry::proxy {

class Server {
 public:
  explicit Server(config::Config cfg);
  ~Server();
  // Binds, starts the workers and runs until SIGTERM/SIGINT and the drain that follows.
  // Returns the process exit code (0 after a drain, 1 when startup fails).
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::proxy
