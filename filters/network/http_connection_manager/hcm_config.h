// The compiled, immutable configuration of one HTTP listener: route table, HTTP filter
// factories and stat handles. Built on the main thread with the snapshot; shared read-only
// by every connection of the listener on every worker.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "config/model.h"
#include "core/router/route_table.h"
#include "core/stats.h"
#include "filters/http/http_filter.h"

namespace ferry::config {
struct Snapshot;
}

namespace ferry::filters::network {

struct HcmStats {
  core::StatHandle rq_total;
  core::StatHandle rq_active;
  std::array<core::StatHandle, 6> rq_by_class;  // [1..5] = 1xx..5xx
  std::array<core::StatHandle, 16> flags;       // by ResponseFlag
  core::HistogramHandle duration;
};

struct HcmConfig {
  std::string listener_name;
  config::HttpConfig http;
  std::shared_ptr<const core::router::RouteTable> routes;
  std::vector<http::HttpFilterFactory> filters;  // configured order; the router is added last
  HcmStats stats;
  // The snapshot this config belongs to. Raw: the ActiveListener holding a connection keeps
  // the snapshot alive, and a shared_ptr here would be a cycle.
  const config::Snapshot* snapshot = nullptr;
};

}  // namespace ferry::filters::network
