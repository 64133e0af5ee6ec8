// fault: injects a delay and/or an abort into a configured share of requests, to test how
// clients and services cope. The delay uses the worker's timer and then resumes the stream
// (the filter chain's asynchronous side). Worker-local; one per stream.
#pragma once

#include "filters/registry.h"

namespace ferry::filters::http {

Registry::HttpBuilder faultFilterBuilder();

}  // namespace ferry::filters::http
