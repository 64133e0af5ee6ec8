#include "filters/http/rate_limit_common.h"

#include <absl/strings/ascii.h>

#include <algorithm>
#include <charconv>

namespace ferry::filters::http {
namespace {

void addNumber(core::http::HeaderMap& h, std::string_view name, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  h.add(name, std::string_view(buf, static_cast<size_t>(end - buf)));
}

// Whole seconds, rounded up (a client waiting that long finds a token).
int64_t ceilSeconds(int64_t us) { return us <= 0 ? 0 : (us + 999999) / 1000000; }

}  // namespace

void parseRateLimitBucket(config::NodeReader& r, const config::NodeReader::Fields& f, config::Mark parent,
                          std::string_view where, RateLimitBucketConfig* out) {
  if (auto* x = r.need(f, "max_tokens", parent, where))
    if (auto v = r.getUint(*x, 1, kRateLimitMaxTokens)) out->max_tokens = static_cast<uint32_t>(*v);
  if (auto* x = f.get("tokens_per_fill"))
    if (auto v = r.getUint(*x, 1, kRateLimitMaxTokens)) out->tokens_per_fill = static_cast<uint32_t>(*v);
  if (auto* x = r.need(f, "fill_interval", parent, where))
    if (auto v = r.getDuration(*x, true)) {
      if (*v < std::chrono::milliseconds(50))
        r.error(x->value->mark, "fill_interval must be at least 50ms");
      else
        out->fill_interval = *v;
    }
  if (auto* x = f.get("key"))
    if (auto v = r.getString(*x)) {
      if (*v == "none") {
        out->key = RateLimitBucketConfig::Key::kNone;
      } else if (*v == "client_ip") {
        out->key = RateLimitBucketConfig::Key::kClientIp;
      } else if (v->rfind("header:", 0) == 0 && v->size() > 7) {
        out->key = RateLimitBucketConfig::Key::kHeader;
        out->header = absl::AsciiStrToLower(v->substr(7));
        if (out->header.find_first_of(" \t:") != std::string::npos)
          r.error(x->value->mark, "bad header name in key " + config::NodeReader::quote(*v));
      } else {
        r.error(x->value->mark, "key must be none, client_ip or header:NAME, not " + config::NodeReader::quote(*v));
      }
    }
  if (auto* x = f.get("max_keys"))
    if (auto v = r.getUint(*x, 1, 10000000)) out->max_keys = *v;
  if (auto* x = f.get("shadow"))
    if (auto v = r.getBool(*x)) out->shadow = *v;
  if (auto* x = f.get("response_headers"))
    if (auto v = r.getBool(*x)) out->response_headers = *v;
  if (out->tokens_per_fill > out->max_tokens && out->max_tokens > 0)
    if (auto* x = f.get("tokens_per_fill")) r.error(x->value->mark, "tokens_per_fill is larger than max_tokens");
}

std::optional<std::string_view> rateLimitKeyOf(const RateLimitBucketConfig& cfg, core::http::FilterCallbacks& cb,
                                               core::http::RequestHeaders& headers) {
  switch (cfg.key) {
    case RateLimitBucketConfig::Key::kNone:
      return std::string_view();
    case RateLimitBucketConfig::Key::kClientIp:
      return std::string_view(cb.downstreamRemoteIp());
    case RateLimitBucketConfig::Key::kHeader: {
      const std::string* v = headers.headers.get(cfg.header);
      if (v == nullptr) return std::nullopt;
      return std::string_view(*v);
    }
  }
  return std::string_view();
}

void addRateLimitHeaders(core::http::HeaderMap& h, bool refused, uint64_t limit, uint64_t remaining,
                         int64_t reset_us) {
  const int64_t reset = std::max<int64_t>(1, ceilSeconds(reset_us));
  if (refused) addNumber(h, "retry-after", static_cast<uint64_t>(reset));
  addNumber(h, "ratelimit-limit", limit);
  addNumber(h, "ratelimit-remaining", remaining);
  addNumber(h, "ratelimit-reset", static_cast<uint64_t>(reset));
}

}  // namespace ferry::filters::http
