// What a filter may use of the worker it runs on: its io_context (through Timer and
// Connection), its stats shard, its buffer accounting and its worker-local LB state.
// Worker-local. Owned by the server's per-worker runtime.
#pragma once

#include <atomic>

#include "core/event/poller.h"
#include "core/event/timer.h"
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

  // The io_context's timer queue and Poller, looked up once (each lookup is a locked search
  // of Asio's service registry) and kept: per-request and per-connection code arms timer
  // hooks and defers work through them.
  TimerQueue& timers() {
    if (timers_ == nullptr) timers_ = &timerQueueOf(*io);
    return *timers_;
  }
  Poller& poller() {
    if (poller_ == nullptr) poller_ = &Poller::of(*io);
    return *poller_;
  }
  TimerQueue* timers_ = nullptr;
  Poller* poller_ = nullptr;
};

}  // namespace ferry::core
