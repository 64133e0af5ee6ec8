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
#include "core/http/filter.h"

namespace ferry::filters::network {
namespace http = core::http;

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
};

}  // namespace ferry::filters::network
