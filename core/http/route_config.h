// What an HTTP request takes when it starts: its listener's route table and HTTP filter chain
// as the newest snapshot has them. A keep-alive connection does not pin them: its next
// request sees a route or filter change.
#pragma once

#include <cstddef>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/event/local_ref.h"
#include "core/http/filter.h"
#include "core/router/route_table.h"

namespace ferry::core::http {

// What one route changes in its listener's filter chain (routes[].filter_overrides), by
// filter position: a filter that does not run, or runs made by another factory.
struct RouteFilterOverride {
  size_t index = 0;         // in HttpRouteConfig::filters
  HttpFilterFactory make;   // null: disabled on this route
};

// Immutable; built with a snapshot on the main thread.
struct HttpRouteConfig {
  std::shared_ptr<const router::RouteTable> routes;
  std::vector<HttpFilterFactory> filters;  // configured order; the router is added last
  HttpFilterFactory terminal;              // the last filter; null: the router (tests set it)
  // Routes with filter_overrides only (looked up only for such routes).
  std::unordered_map<const config::RouteConfig*, std::vector<RouteFilterOverride>> overrides;
};

// The current HttpRouteConfig of one listener, one slot per worker. Made once per listener
// name (it outlives snapshots); proxy/ installs a snapshot's config by running set() on each
// worker, and a request takes its worker's current() when it starts. Each slot is read and
// written by its own worker only (slot 0: the main thread, for tests): no lock, and a
// request's reference is a worker-local count (LocalRef).
class RouteConfigProvider {
 public:
  explicit RouteConfigProvider(size_t workers) : slots_(workers + 1) {}

  // On worker `worker` (1-based; 0 = the main thread).
  void set(size_t worker, std::shared_ptr<const HttpRouteConfig> cfg) {
    slots_[worker].current = LocalRef<HttpRouteConfig>::make(std::move(cfg));
  }
  const LocalRef<HttpRouteConfig>& current(size_t worker) const { return slots_[worker].current; }

 private:
  struct alignas(64) Slot {  // one cache line each: workers never share one
    LocalRef<HttpRouteConfig> current;
  };
  std::vector<Slot> slots_;
};

}  // namespace ferry::core::http
