// global_rate_limit: token buckets shared by a fleet of Ferry instances, kept in Redis. Each
// bucket (one per key: none, the client IP or a header's value, under `domain`) is a Redis
// string updated atomically by a Lua script (EVALSHA) that refills it from Redis's own clock,
// takes up to `batch` tokens, and sets the key to expire once the bucket would be full again.
// Concurrent instances cannot both take the last token.
//
// With `batch: N` > 1 a worker takes up to N tokens per round trip and spends them locally
// (per worker, per key, for at most one fill_interval): N times fewer round trips, at the cost
// of at most N x workers x instances requests over the limit in a fill interval. A worker has
// at most one fetch per key in flight; its requests for that key wait for it meanwhile.
//
// A refused request gets local_rate_limit's answer (429, retry-after, RateLimit headers) with
// flag GRL. When Redis is down, answering errors or slower than `redis.timeout`, failure_mode
// decides at once: allow (forwarded, counted failure_allowed) or deny (429, flag RLSE, counted
// failure_denied). The Redis client is core/redis/client.h (per-worker pipelined connections).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/redis/client.h"
#include "filters/http/rate_limit_common.h"
#include "filters/registry.h"

namespace ferry::filters::http {

struct GlobalRateLimitConfig : RateLimitBucketConfig {
  enum class FailureMode { kAllow, kDeny };
  std::string domain;
  uint32_t batch = 1;
  FailureMode failure_mode = FailureMode::kAllow;
  core::redis::TargetConfig redis;  // password read from password_file
  std::string password_file;
  // redis.address split; `resolved` once redis.addr holds it (an IP literal at once; a name
  // when the config is built to run).
  std::string host, port;
  bool resolved = false;
  config::Mark address_mark;
  config::Mark password_mark;
};

// Reads `config:` of a global_rate_limit entry (required; an IP literal address is converted;
// a host name is resolved and password_file read by the builder, for a config built to run); nullopt after reporting errors.
std::optional<GlobalRateLimitConfig> parseGlobalRateLimitConfig(const config::HttpFilterConfig& entry,
                                                                config::NodeReader& reader);
Registry::HttpBuilder globalRateLimitFilterBuilder();

// The bucket script (for tests).
const core::redis::Script& globalRateLimitScript();

}  // namespace ferry::filters::http
