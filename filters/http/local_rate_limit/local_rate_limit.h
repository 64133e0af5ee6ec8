// local_rate_limit: a token bucket per key (none, the client IP, or a request header's value),
// shared by every worker of the process (token_bucket.h: atomic words, no locks). A request
// that finds its bucket empty is answered 429 (flag RL) with retry-after and the IETF draft
// RateLimit header fields; in shadow mode it is forwarded and only flagged.
//
// The buckets live in the filter's config object: a config snapshot (a reload, even with the
// same filter config) starts with full buckets.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "filters/http/local_rate_limit/token_bucket.h"
#include "filters/http/rate_limit_common.h"
#include "filters/registry.h"

namespace ferry::filters::http {

// The bucket keys shared with global_rate_limit (rate_limit_common.h); nothing else.
struct LocalRateLimitConfig : RateLimitBucketConfig {};

// Reads `config:` of a local_rate_limit entry (required); nullopt after reporting errors.
std::optional<LocalRateLimitConfig> parseLocalRateLimitConfig(const config::HttpFilterConfig& entry,
                                                              config::NodeReader& reader);
Registry::HttpBuilder localRateLimitFilterBuilder();

}  // namespace ferry::filters::http
