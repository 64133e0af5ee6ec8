// What a filter may use of the worker it runs on: its io_context (through Timer and
// Connection), its stats shard, its buffer accounting and its worker-local LB state.
// Worker-local. Owned by the server's per-worker runtime.
#pragma once

#include <atomic>

#include "core/net/connection.h"

namespace boost::asio {
class io_context;
}

namespace ferry::core {

class StatsShard;
namespace upstream {
class ClusterLb;
class PoolManager;
}
namespace tracing {
class WorkerTracing;
}

struct WorkerContext {
  boost::asio::io_context* io = nullptr;
  StatsShard* stats = nullptr;
  net::BufferAccounting acct;
  upstream::ClusterLb* lb = nullptr;
  upstream::PoolManager* pools = nullptr;
  tracing::WorkerTracing* tracing = nullptr;  // span export (HTTP listeners' tracing.otlp); may be null
  bool* draining = nullptr;  // set by the server when a drain starts (worker-local copy)
  // Process-wide: POST /healthcheck/fail sets it, /healthcheck/ok clears it (HTTP health_path).
  const std::atomic<bool>* health_failed = nullptr;
  size_t worker_index = 0;
};

}  // namespace ferry::core
