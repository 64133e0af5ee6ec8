#include "filters/http/local_rate_limit/local_rate_limit.h"

#include <absl/hash/hash.h>
#include <absl/strings/ascii.h>

#include <algorithm>
#include <charconv>

#include "core/event/timer.h"
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

// Whole seconds, rounded up (a client waiting that long finds a token).
int64_t ceilSeconds(int64_t us) { return us <= 0 ? 0 : (us + 999999) / 1000000; }

void addNumber(HeaderMap& h, std::string_view name, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  h.add(name, std::string_view(buf, static_cast<size_t>(end - buf)));
}

class LocalRateLimitFilter : public HttpFilter {
 public:
  explicit LocalRateLimitFilter(std::shared_ptr<LocalRateLimitShared> s) : s_(std::move(s)) {}

  FilterStatus onRequestHeaders(RequestHeaders& headers, bool) override {
    const auto& cfg = s_->cfg;
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    switch (cfg.key) {
      case LocalRateLimitConfig::Key::kNone:
        break;
      case LocalRateLimitConfig::Key::kClientIp:
        h = hashKey(callbacks_->downstreamRemoteIp());
        break;
      case LocalRateLimitConfig::Key::kHeader: {
        const std::string* v = headers.headers.get(cfg.header);
        if (v == nullptr) {  // no key, no limit (Envoy's descriptors)
          s_->counters.inc(*callbacks_, LocalRateLimitShared::kNoKey);
          return FilterStatus::kContinue;
        }
        h = hashKey(*v);
        break;
      }
    }
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
    const int64_t reset = std::max<int64_t>(1, ceilSeconds(result_.next_fill_us));
    auto& h = headers.headers;
    if (refused_) addNumber(h, "retry-after", static_cast<uint64_t>(reset));
    addNumber(h, "ratelimit-limit", s_->table.maxTokens());
    addNumber(h, "ratelimit-remaining", result_.remaining);
    addNumber(h, "ratelimit-reset", static_cast<uint64_t>(reset));
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
  if (auto* x = r.need(f, "max_tokens", entry.config->mark, kWhere))
    if (auto v = r.getUint(*x, 1, TokenBucketTable::kMaxTokens)) out.max_tokens = static_cast<uint32_t>(*v);
  if (auto* x = f.get("tokens_per_fill"))
    if (auto v = r.getUint(*x, 1, TokenBucketTable::kMaxTokens)) out.tokens_per_fill = static_cast<uint32_t>(*v);
  if (auto* x = r.need(f, "fill_interval", entry.config->mark, kWhere))
    if (auto v = r.getDuration(*x, true)) {
      if (*v < std::chrono::milliseconds(50))
        r.error(x->value->mark, "fill_interval must be at least 50ms");
      else
        out.fill_interval = *v;
    }
  if (auto* x = f.get("key"))
    if (auto v = r.getString(*x)) {
      if (*v == "none") {
        out.key = LocalRateLimitConfig::Key::kNone;
      } else if (*v == "client_ip") {
        out.key = LocalRateLimitConfig::Key::kClientIp;
      } else if (v->rfind("header:", 0) == 0 && v->size() > 7) {
        out.key = LocalRateLimitConfig::Key::kHeader;
        out.header = absl::AsciiStrToLower(v->substr(7));
        if (out.header.find_first_of(" \t:") != std::string::npos)
          r.error(x->value->mark, "bad header name in key " + config::NodeReader::quote(*v));
      } else {
        r.error(x->value->mark, "key must be none, client_ip or header:NAME, not " + config::NodeReader::quote(*v));
      }
    }
  if (auto* x = f.get("max_keys"))
    if (auto v = r.getUint(*x, 1, 10000000)) out.max_keys = *v;  // 16 bytes each: 160 MB at most
  if (auto* x = f.get("shadow"))
    if (auto v = r.getBool(*x)) out.shadow = *v;
  if (auto* x = f.get("response_headers"))
    if (auto v = r.getBool(*x)) out.response_headers = *v;
  if (out.tokens_per_fill > out.max_tokens && out.max_tokens > 0)
    if (auto* x = f.get("tokens_per_fill")) r.error(x->value->mark, "tokens_per_fill is larger than max_tokens");
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
