// What local_rate_limit and global_rate_limit share: the bucket keys of their config
// (max_tokens, tokens_per_fill, fill_interval, key, max_keys, shadow, response_headers), the
// request's bucket key, and the answer (429 with retry-after and the IETF draft RateLimit
// header fields). Config parsing on the main thread; the rest per request on a worker.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/node_reader.h"
#include "core/http/filter.h"
#include "core/http/header_map.h"

namespace ferry::filters::http {

struct RateLimitBucketConfig {
  enum class Key { kNone, kClientIp, kHeader };
  uint32_t max_tokens = 0;
  uint32_t tokens_per_fill = 1;
  config::Duration fill_interval{};
  Key key = Key::kNone;
  std::string header;  // Key::kHeader: lower-cased name
  uint64_t max_keys = 100000;
  bool shadow = false;
  bool response_headers = false;  // RateLimit headers on allowed responses too
};

// The largest bucket (what local_rate_limit's table can hold; global_rate_limit keeps it).
inline constexpr uint64_t kRateLimitMaxTokens = (1u << 20) - 1;

// Reads the shared keys from `f` (a filter's `config:` mapping read with NodeReader::fields,
// whose allowed keys include them) into *out; errors go to `r` at their marks. `where` ends
// messages ("in local_rate_limit config"); `parent`: the mapping's mark for missing keys.
void parseRateLimitBucket(config::NodeReader& r, const config::NodeReader::Fields& f, config::Mark parent,
                          std::string_view where, RateLimitBucketConfig* out);

// The request's bucket key: "" for key none, the client IP, or the header's value; nullopt
// when the header is absent (no key, no limit).
std::optional<std::string_view> rateLimitKeyOf(const RateLimitBucketConfig& cfg, core::http::FilterCallbacks& cb,
                                               core::http::RequestHeaders& headers);

// The RateLimit header fields of an answer: retry-after when refused, ratelimit-limit,
// -remaining, -reset; `reset_us` is rounded up to whole seconds (at least 1).
void addRateLimitHeaders(core::http::HeaderMap& h, bool refused, uint64_t limit, uint64_t remaining,
                         int64_t reset_us);

}  // namespace ferry::filters::http
