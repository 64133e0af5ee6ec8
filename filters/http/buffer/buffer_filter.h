// buffer: collects the whole request body (up to max_request_bytes; 413 past it) before the
// request goes on, so upstreams get a complete body with a Content-Length.
// Worker-local; one per stream.
#pragma once

#include "filters/registry.h"

namespace ferry::filters::http {

Registry::HttpBuilder bufferFilterBuilder();

}  // namespace ferry::filters::http
