// buffer: collects the whole request body (up to max_request_bytes; 413 past it) before the
// request goes on, so upstreams get a complete body with a Content-Length. It holds the
// request headers meanwhile, so nothing of the request leaves before the body is whole.
// Worker-local; one per stream.
#pragma once

#include <cstdint>
#include <optional>

#include "filters/registry.h"

namespace ferry::filters::http {

struct BufferFilterConfig {
  uint64_t max_request_bytes = 1024 * 1024;  // past it: 413
};

// Reads `config:` of a buffer entry (absent: the defaults); nullopt after reporting errors.
std::optional<BufferFilterConfig> parseBufferFilterConfig(const config::HttpFilterConfig& entry,
                                                          config::NodeReader& reader);
Registry::HttpBuilder bufferFilterBuilder();

}  // namespace ferry::filters::http
