// compression: compresses responses with gzip or brotli, as the request's Accept-Encoding
// allows, chunk by chunk as they stream (each chunk is flushed to the client; no whole-body
// buffering), and optionally inflates gzip/brotli request bodies with an output limit against
// decompression bombs (413). docs/edge.md "compression" has the rules. One immutable config
// per filter entry (the factory shares it); per stream, the encoder/decoder state exists only
// for a stream that is compressed or decompressed. Worker-local; one filter per stream.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "filters/http/compression/coding.h"
#include "filters/http/outcome_counters.h"
#include "filters/registry.h"

namespace ferry::filters::http {

struct CompressionFilterConfig {
  // ferry_compression_total{listener,result}: responses compressed (gzip, br), and request
  // bodies decompressed or refused (decompressed, request_too_large, request_malformed).
  enum Outcome : size_t { kGzip, kBrotli, kDecompressed, kRequestTooLarge, kRequestMalformed };
  OutcomeCounters<5> counters;
  std::vector<compression::Coding> algorithms{compression::Coding::kBrotli, compression::Coding::kGzip};
  uint64_t min_content_length = 256;
  // Lower-case media types; an entry "text/*" is kept as the prefix "text/" (prefix = true).
  struct MediaType {
    std::string text;
    bool prefix = false;
  };
  std::vector<MediaType> content_types;
  int gzip_level = 6;
  int brotli_quality = 4;
  bool request_decompression = false;
  uint64_t request_max_bytes = 10 * 1024 * 1024;

  // The media type of a Content-Type value (parameters ignored, any case) is in the list.
  bool compressibleType(std::string_view content_type) const;
};

// The default content_types.
const std::vector<std::string>& defaultCompressibleTypes();

std::optional<CompressionFilterConfig> parseCompressionFilterConfig(const config::HttpFilterConfig& entry,
                                                                    config::NodeReader& reader);
Registry::HttpBuilder compressionFilterBuilder();

}  // namespace ferry::filters::http
