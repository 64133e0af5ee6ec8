// fault: injects a delay and/or an abort into a configured share of requests, to test how
// clients and services cope. The delay uses the worker's timer and then resumes the stream
// (the filter chain's asynchronous side). Worker-local; one per stream.
#pragma once

#include <optional>

#include "filters/registry.h"

namespace ferry::filters::http {

struct FaultFilterConfig {
  // Each applies to `percentage` (0-100) of requests, decided independently.
  std::optional<config::Duration> delay;
  double delay_percentage = 100;
  std::optional<int> abort_status;
  double abort_percentage = 100;
};

// Reads `config:` of a fault entry (required); nullopt after reporting errors.
std::optional<FaultFilterConfig> parseFaultFilterConfig(const config::HttpFilterConfig& entry,
                                                        config::NodeReader& reader);
Registry::HttpBuilder faultFilterBuilder();

}  // namespace ferry::filters::http
