#include "filters/http/local_rate_limit/local_rate_limit.h"

#include <absl/hash/hash.h>

#include <algorithm>

#include "core/event/timer.h"
#include "core/pooled.h"
#include "filters/http/outcome_counters.h"

namespace ferry::filters::http {
using namespace core::http;
namespace {

// The filter's immutable config and its buckets, shared by every stream of every worker.
struct LocalRateLimitShared {
  LocalRateLimitShared(const LocalRateLimitConfig& c, int64_t now_us)
      : cfg(c),
        table(c.max_tokens, c.tokens_per_fill,
              std::chrono::duration_cast<std::chrono::microseconds>(c.fill_interval).count(),
              c.key == LocalRateLimitConfig::Key::kNone ? 1 : c.max_keys, now_us) {}
  const LocalRateLimitConfig cfg;
  TokenBucketTable table;
  // ferry_local_rate_limit_requests_total{listener,result}.
  enum Outcome : size_t { kAllowed, kLimited, kShadowLimited, kNoKey };
  OutcomeCounters<4> counters;
};

// Seeded per process (absl::Hash), so clients cannot aim at one slot window on purpose.
uint64_t hashKey(std::string_view s) { return absl::Hash<absl::string_view>{}(absl::string_view(s.data(), s.size())); }

class LocalRateLimitFilter : public HttpFilter, public core::PerThreadPooled<LocalRateLimitFilter> {
 public:
  explicit LocalRateLimitFilter(std::shared_ptr<LocalRateLimitShared> s) : s_(std::move(s)) {}

  FilterStatus onRequestHeaders(RequestHeaders& headers, bool) override {
    const auto& cfg = s_->cfg;
    const auto key = rateLimitKeyOf(cfg, *callbacks_, headers);
    if (!key) {  // no key, no limit (Envoy's descriptors)
      s_->counters.inc(*callbacks_, LocalRateLimitShared::kNoKey);
      return FilterStatus::kContinue;
    }
    const uint64_t h = cfg.key == LocalRateLimitConfig::Key::kNone ? 0x9e3779b97f4a7c15ULL : hashKey(*key);
    int64_t now = callbacks_->streamInfo().start_us;
    if (now == 0) now = core::monotonicUs();
    result_ = s_->table.take(h, now);
    taken_ = true;
    if (result_.allowed) {
      s_->counters.inc(*callbacks_, LocalRateLimitShared::kAllowed);
      return FilterStatus::kContinue;
    }
    if (cfg.shadow) {
      s_->counters.inc(*callbacks_, LocalRateLimitShared::kShadowLimited);
      auto& info = callbacks_->streamInfo();
      if (info.flag == ResponseFlag::kNone) info.flag = ResponseFlag::kRateLimited;
      return FilterStatus::kContinue;
    }
    refused_ = true;
    s_->counters.inc(*callbacks_, LocalRateLimitShared::kLimited);
    callbacks_->sendLocalReply(429, "rate limited\n", ResponseFlag::kRateLimited);
    return FilterStatus::kStop;
  }

  FilterStatus onResponseHeaders(ResponseHeaders& headers, bool) override {
    if (!taken_ || !(refused_ || s_->cfg.response_headers)) return FilterStatus::kContinue;
    addRateLimitHeaders(headers.headers, refused_, s_->table.maxTokens(), result_.remaining, result_.next_fill_us);
    return FilterStatus::kContinue;
  }

 private:
  std::shared_ptr<LocalRateLimitShared> s_;
  TokenBucketTable::Result result_;
  bool taken_ = false;
  bool refused_ = false;
};

}  // namespace

std::optional<LocalRateLimitConfig> parseLocalRateLimitConfig(const config::HttpFilterConfig& entry,
                                                              config::NodeReader& r) {
  if (!entry.config) {
    r.error(entry.mark, "missing required key 'config' in filter");
    return std::nullopt;
  }
  const size_t before = r.errorCount();
  LocalRateLimitConfig out;
  const config::NodeReader::Field root{"config", entry.mark, &*entry.config};
  if (!r.isMap(root, false)) return std::nullopt;
  constexpr std::string_view kWhere = "in local_rate_limit config";
  auto f = r.fields(root, kWhere,
                    {"max_tokens", "tokens_per_fill", "fill_interval", "key", "max_keys", "shadow",
                     "response_headers"});
  parseRateLimitBucket(r, f, entry.config->mark, kWhere, &out);
  if (r.errorCount() != before) return std::nullopt;
  return out;
}

Registry::HttpBuilder localRateLimitFilterBuilder() {
  return [](const config::HttpFilterConfig& entry, config::NodeReader& reader,
            const HttpBuildContext& ctx) -> HttpFilterFactory {
    auto parsed = parseLocalRateLimitConfig(entry, reader);
    if (!parsed) return {};
    // The table is allocated here, once per snapshot (also when only validating a config).
    auto s = std::make_shared<LocalRateLimitShared>(*parsed, core::monotonicUs());
    s->counters.registerAll(ctx, "ferry_local_rate_limit_requests_total",
                            {"allowed", "limited", "shadow_limited", "no_key"},
                            "Requests the local_rate_limit filter looked at, by outcome.");
    return [s] { return std::make_unique<LocalRateLimitFilter>(s); };
  };
}

}  // namespace ferry::filters::http
