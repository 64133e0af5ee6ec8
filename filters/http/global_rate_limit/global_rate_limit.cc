#include "filters/http/global_rate_limit/global_rate_limit.h"

#include <absl/container/node_hash_map.h>
#include <netdb.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/event/timer.h"
#include "core/pooled.h"
#include "filters/http/outcome_counters.h"

namespace ferry::filters::http {
using namespace core::http;
namespace {

// KEYS[1]: the bucket. ARGV: max_tokens, tokens_per_fill, fill_interval (ms), tokens wanted.
// The bucket is "TOKENS LAST_FILL_MS"; an absent key is a full bucket. Redis's clock (TIME),
// so the instances' clocks do not matter. Answers {taken, tokens left, ms until the next fill}.
constexpr const char* kScript = R"lua(
if redis.replicate_commands then pcall(redis.replicate_commands) end
local max = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
local fill = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tokens, last = max, now
local v = redis.call('GET', KEYS[1])
if v then
  local a, b = string.match(v, '^(%d+) (%d+)$')
  if a then
    tokens = math.min(max, tonumber(a))
    last = tonumber(b)
  end
end
if now >= last then
  local n = math.floor((now - last) / fill)
  if n > 0 then
    tokens = math.min(max, tokens + n * per)
    last = last + n * fill
  end
else
  last = now
end
local got = math.min(tokens, want)
tokens = tokens - got
if tokens < max then
  local ttl = last + math.ceil((max - tokens) / per) * fill - now
  if ttl < 1 then ttl = 1 end
  redis.call('SET', KEYS[1], string.format('%d %d', tokens, last), 'PX', ttl)
end
return {got, tokens, last + fill - now}
)lua";

// Every filter config, snapshot and worker shares one script object (its address is the
// client's per-connection "loaded" mark).
const core::redis::Script& script() {
  static const auto* s = new core::redis::Script(kScript);
  return *s;
}

absl::string_view asv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

class GlobalRateLimitFilter;
struct GlobalRateLimitShared;
class BatchFetch;

// A worker's state for one key with batch > 1: tokens taken from Redis and not spent yet, and
// the requests waiting for the one fetch in flight (a worker never has two fetches for a key
// in flight, so it never holds more than one batch, and requests arriving meanwhile wait for
// it instead of costing a round trip each).
struct BatchKey {
  uint32_t tokens = 0;      // taken from Redis, not spent yet
  uint32_t remaining = 0;   // what Redis said was left (for ratelimit-remaining)
  int64_t expires_us = 0;   // monotonic: the tokens are dropped then (one fill_interval)
  int64_t reset_at_us = 0;  // monotonic: Redis's next fill
  bool busy = false;        // waiters are being served: not to be evicted
  std::vector<GlobalRateLimitFilter*> waiters;  // in arrival order
  std::unique_ptr<BatchFetch> fetch;            // made on first use; in flight: fetch->pending()
};

struct GlobalRateLimitShared {
  enum Outcome : size_t { kAllowed, kLimited, kShadowLimited, kNoKey, kFailureAllowed, kFailureDenied, kCount };
  GlobalRateLimitShared(GlobalRateLimitConfig c, size_t workers)
      : cfg(std::move(c)),
        prefix("ferry:rl:" + cfg.domain + ":"),
        fill_ms(std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(cfg.fill_interval).count())),
        timeout_us(std::chrono::duration_cast<std::chrono::microseconds>(cfg.redis.timeout).count()),
        slots(workers + 1) {}
  const GlobalRateLimitConfig cfg;
  const std::string prefix;
  const int64_t fill_ms;
  const int64_t timeout_us;
  std::shared_ptr<core::redis::Target> target;
  OutcomeCounters<kCount> counters;
  // Per worker (index 1..workers; 0: the main thread): its client and its batched keys. Node
  // map: a BatchKey stays where it is while requests and its fetch point at it.
  struct alignas(64) Slot {
    core::redis::Client* client = nullptr;
    absl::node_hash_map<std::string, BatchKey> keys;
  };
  std::vector<Slot> slots;

  Slot* slot(core::WorkerContext& w) { return w.worker_index < slots.size() ? &slots[w.worker_index] : nullptr; }
  core::redis::Client& client(core::WorkerContext& w, Slot* s) {
    if (s != nullptr) {
      if (s->client == nullptr) s->client = &core::redis::Client::forWorker(*target, w);
      return *s->client;
    }
    return core::redis::Client::forWorker(*target, w);
  }
  // The key's BatchKey, made if needed; null when max_keys are in use and none is idle.
  BatchKey* batchKey(Slot& s, std::string_view value) {
    auto it = s.keys.find(asv(value));
    if (it != s.keys.end()) return &it->second;
    if (s.keys.size() >= cfg.max_keys) {  // drop idle keys (their tokens: fewer pass, never more)
      for (auto i = s.keys.begin(); i != s.keys.end();) {
        const BatchKey& b = i->second;
        if (b.waiters.empty() && !b.busy && !inFlight(b))
          s.keys.erase(i++);
        else
          ++i;
      }
      if (s.keys.size() >= cfg.max_keys) return nullptr;
    }
    return &s.keys[asv(value)];
  }
  static bool inFlight(const BatchKey& b);
};

// The fetch of a batch for one key on one worker: a Redis request owned by its BatchKey, not
// by a stream (streams come and go while it is in flight). It holds the filter config while
// in flight, so the BatchKey outlives it.
class BatchFetch final : public core::redis::Request {
 public:
  BatchFetch(GlobalRateLimitShared& s, GlobalRateLimitShared::Slot& slot, BatchKey& bk, std::string_view value)
      : s_(s), slot_(slot), bk_(bk), key_(s.prefix + std::string(value)) {}
  ~BatchFetch() {
    if (pending() && slot_.client != nullptr) slot_.client->cancel(*this);
  }
  // Sends a fetch for the waiters; false (nothing sent) when Redis cannot take it now.
  bool start(std::shared_ptr<GlobalRateLimitShared> keep, core::redis::Client& client, int64_t deadline_us);
  void onRedisReply(const redisReply* reply, core::redis::Result result) override;

 private:
  GlobalRateLimitShared& s_;
  GlobalRateLimitShared::Slot& slot_;
  BatchKey& bk_;
  const std::string key_;  // the Redis key
  std::shared_ptr<GlobalRateLimitShared> keep_;  // while in flight
  int64_t want_ = 0;
};

bool GlobalRateLimitShared::inFlight(const BatchKey& b) { return b.fetch && b.fetch->pending(); }

class GlobalRateLimitFilter : public HttpFilter,
                              public core::redis::Request,
                              public core::PerThreadPooled<GlobalRateLimitFilter> {
 public:
  explicit GlobalRateLimitFilter(std::shared_ptr<GlobalRateLimitShared> s) : s_(std::move(s)) {}
  ~GlobalRateLimitFilter() override { detach(); }

  FilterStatus onRequestHeaders(RequestHeaders& headers, bool) override {
    const auto& cfg = s_->cfg;
    const auto key = rateLimitKeyOf(cfg, *callbacks_, headers);
    if (!key) {  // no key, no limit
      s_->counters.inc(*callbacks_, GlobalRateLimitShared::kNoKey);
      return FilterStatus::kContinue;
    }
    if (!s_->target) return failure(true);  // a config built only to be validated
    auto& worker = callbacks_->worker();
    slot_ = s_->slot(worker);
    client_ = &s_->client(worker, slot_);
    const int64_t now = core::monotonicUs();
    deadline_us_ = now + s_->timeout_us;
    if (cfg.batch > 1 && slot_ != nullptr) {
      if (BatchKey* bk = s_->batchKey(*slot_, *key)) {
        if (bk->tokens > 0 && now < bk->expires_us) {
          --bk->tokens;
          remaining_ = bk->remaining + bk->tokens;
          reset_us_ = bk->reset_at_us - now;
          return allowed(true);
        }
        bk->waiters.push_back(this);
        bk_ = bk;
        if (!GlobalRateLimitShared::inFlight(*bk)) {
          if (!bk->fetch) bk->fetch = std::make_unique<BatchFetch>(*s_, *slot_, *bk, *key);
          if (!bk->fetch->start(s_, *client_, deadline_us_)) {
            bk->waiters.pop_back();  // only this request waited: no fetch was in flight
            bk_ = nullptr;
            return failure(true);
          }
        }
        return FilterStatus::kStop;  // BatchFetch answers
      }
    }
    // One token per round trip (batch 1, or every batched key busy).
    key_.assign(s_->prefix);
    key_.append(key->data(), key->size());
    const bool sent = client_->evalsha(*this, script(), {key_},
                                       {static_cast<int64_t>(cfg.max_tokens), static_cast<int64_t>(cfg.tokens_per_fill),
                                        s_->fill_ms, 1});
    if (!sent) return failure(true);
    waiting_ = true;
    return FilterStatus::kStop;
  }

  FilterStatus onResponseHeaders(ResponseHeaders& headers, bool) override {
    if (failure_denied_) {
      headers.headers.add("retry-after", "1");
      return FilterStatus::kContinue;
    }
    if (!decided_ || !(refused_ || s_->cfg.response_headers)) return FilterStatus::kContinue;
    addRateLimitHeaders(headers.headers, refused_, s_->cfg.max_tokens, remaining_, reset_us_);
    return FilterStatus::kContinue;
  }

  void onDestroy() override { detach(); }

  // core::redis::Request (the unbatched round trip)
  void onRedisReply(const redisReply* reply, core::redis::Result result) override {
    if (!waiting_) return;
    waiting_ = false;
    long long got = -1, left = 0, reset_ms = 0;
    if (!parseReply(reply, result, &got, &left, &reset_ms)) {
      failure(false);
      return;
    }
    reset_us_ = reset_ms * 1000;
    if (got >= 1) {
      remaining_ = static_cast<uint64_t>(left);
      allowed(false);
      return;
    }
    limited(false, reset_us_);
  }

  // From BatchFetch, for a waiting request: a token, a refusal, or failure_mode.
  void batchGranted(uint64_t remaining, int64_t reset_us) {
    bk_ = nullptr;
    remaining_ = remaining;
    reset_us_ = reset_us;
    allowed(false);
  }
  void batchLimited(int64_t reset_us) {
    bk_ = nullptr;
    limited(false, reset_us);
  }
  void batchFailed() {
    bk_ = nullptr;
    failure(false);
  }
  int64_t deadline() const { return deadline_us_; }

  // {taken, tokens left, ms until the next fill} from the script; false: failure_mode.
  static bool parseReply(const redisReply* reply, core::redis::Result result, long long* got, long long* left,
                         long long* reset_ms) {
    if (result != core::redis::Result::kOk || reply == nullptr || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 3)
      return false;
    for (size_t i = 0; i < 3; ++i)
      if (reply->element[i]->type != REDIS_REPLY_INTEGER) return false;
    *got = reply->element[0]->integer;
    *left = std::max<long long>(0, reply->element[1]->integer);
    *reset_ms = std::max<long long>(1, reply->element[2]->integer);
    return true;
  }

 private:
  // The stream is going away: stop waiting for Redis or for a batch.
  void detach() {
    if (pending() && client_ != nullptr) client_->cancel(*this);
    waiting_ = false;
    if (bk_ != nullptr) {
      auto& w = bk_->waiters;
      w.erase(std::remove(w.begin(), w.end(), this), w.end());
      bk_ = nullptr;
    }
  }

  FilterStatus allowed(bool sync) {
    decided_ = true;
    s_->counters.inc(*callbacks_, GlobalRateLimitShared::kAllowed);
    return proceed(sync);
  }

  FilterStatus limited(bool sync, int64_t reset_us) {
    remaining_ = 0;
    reset_us_ = reset_us;
    decided_ = true;
    if (s_->cfg.shadow) {
      s_->counters.inc(*callbacks_, GlobalRateLimitShared::kShadowLimited);
      auto& info = callbacks_->streamInfo();
      if (info.flag == ResponseFlag::kNone) info.flag = ResponseFlag::kGlobalRateLimited;
      return proceed(sync);
    }
    refused_ = true;
    s_->counters.inc(*callbacks_, GlobalRateLimitShared::kLimited);
    callbacks_->sendLocalReply(429, "rate limited\n", ResponseFlag::kGlobalRateLimited);
    return FilterStatus::kStop;
  }

  FilterStatus proceed(bool sync) {
    if (!sync) callbacks_->resume();
    return FilterStatus::kContinue;
  }

  FilterStatus failure(bool sync) {
    if (s_->cfg.failure_mode == GlobalRateLimitConfig::FailureMode::kAllow) {
      s_->counters.inc(*callbacks_, GlobalRateLimitShared::kFailureAllowed);
      return proceed(sync);
    }
    failure_denied_ = true;
    s_->counters.inc(*callbacks_, GlobalRateLimitShared::kFailureDenied);
    callbacks_->sendLocalReply(429, "rate limit service unavailable\n", ResponseFlag::kRateLimitServiceError);
    return FilterStatus::kStop;
  }

  std::shared_ptr<GlobalRateLimitShared> s_;
  GlobalRateLimitShared::Slot* slot_ = nullptr;
  core::redis::Client* client_ = nullptr;
  BatchKey* bk_ = nullptr;  // waiting for this key's batch
  std::string key_;         // the Redis key (unbatched round trips)
  uint64_t remaining_ = 0;
  int64_t reset_us_ = 0;
  int64_t deadline_us_ = 0;
  bool waiting_ = false;    // for the unbatched round trip
  bool decided_ = false;
  bool refused_ = false;
  bool failure_denied_ = false;
};

bool BatchFetch::start(std::shared_ptr<GlobalRateLimitShared> keep, core::redis::Client& client, int64_t deadline_us) {
  const auto& cfg = s_.cfg;
  want_ = cfg.batch;
  if (!client.evalsha(*this, script(), {key_},
                      {static_cast<int64_t>(cfg.max_tokens), static_cast<int64_t>(cfg.tokens_per_fill), s_.fill_ms,
                       want_},
                      deadline_us))
    return false;
  keep_ = std::move(keep);
  return true;
}

void BatchFetch::onRedisReply(const redisReply* reply, core::redis::Result result) {
  // Declared first, destroyed last: the config (and this object with it) may go once the
  // waiters are served.
  std::shared_ptr<GlobalRateLimitShared> keep = std::move(keep_);
  long long got = -1, left = 0, reset_ms = 0;
  const bool ok = GlobalRateLimitFilter::parseReply(reply, result, &got, &left, &reset_ms);
  const int64_t now = core::monotonicUs();
  const int64_t reset_us = reset_ms * 1000;
  BatchKey& bk = bk_;
  bk.busy = true;  // each waiter's answer may run other code of this worker
  if (ok && got >= 1) {
    if (now >= bk.expires_us) bk.tokens = 0;
    bk.tokens = std::min<uint32_t>(s_.cfg.batch, bk.tokens + static_cast<uint32_t>(got));
    bk.remaining = static_cast<uint32_t>(left);
    bk.expires_us = now + s_.fill_ms * 1000;
    bk.reset_at_us = now + reset_us;
  }
  // Serve the waiters in order, while there are tokens.
  while (!bk.waiters.empty() && bk.tokens > 0 && now < bk.expires_us) {
    GlobalRateLimitFilter* w = bk.waiters.front();
    bk.waiters.erase(bk.waiters.begin());
    --bk.tokens;
    w->batchGranted(bk.remaining + bk.tokens, bk.reset_at_us - now);
  }
  // The rest: refused when Redis had no more, failure_mode when it did not answer, else
  // another fetch (more waiters than one batch), within the oldest waiter's deadline.
  while (!bk.waiters.empty() && !pending()) {
    const bool exhausted = ok && got < want_;
    bool again = ok && !exhausted;
    if (again) {
      int64_t deadline = bk.waiters.front()->deadline();
      for (auto* w : bk.waiters) deadline = std::min(deadline, w->deadline());
      again = deadline > now && slot_.client != nullptr && start(keep, *slot_.client, deadline);
    }
    if (again) break;
    GlobalRateLimitFilter* w = bk.waiters.front();
    bk.waiters.erase(bk.waiters.begin());
    if (exhausted)
      w->batchLimited(reset_us);
    else
      w->batchFailed();
  }
  bk.busy = false;
}

// HOST:PORT or [IPv6]:PORT: split, and resolved at once when HOST is an IP literal.
bool parseAddress(const std::string& text, std::string* host, std::string* port, sockaddr_storage* out,
                  bool* resolved, std::string* error) {
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      *error = "address must be HOST:PORT or [IPv6]:PORT";
      return false;
    }
    *host = text.substr(1, close - 1);
    *port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || text.find(':') != colon) {
      *error = "address must be HOST:PORT or [IPv6]:PORT";
      return false;
    }
    *host = text.substr(0, colon);
    *port = text.substr(colon + 1);
  }
  if (port->empty() || port->size() > 5 || port->find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(*port) == 0 || std::stoul(*port) > 65535) {
    *error = "bad port in address";
    return false;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  *resolved = getaddrinfo(host->c_str(), port->c_str(), &hints, &res) == 0 && res != nullptr;
  if (*resolved) {
    std::memset(out, 0, sizeof *out);
    std::memcpy(out, res->ai_addr, std::min<size_t>(res->ai_addrlen, sizeof *out));
  }
  if (res != nullptr) freeaddrinfo(res);
  return true;
}

// The password: one line (a trailing newline dropped). Read when the config is built to run.
bool readPassword(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  if (in) ss << in.rdbuf();
  std::string pw = ss.str();
  while (!pw.empty() && (pw.back() == '\n' || pw.back() == '\r')) pw.pop_back();
  if (!in || pw.empty()) {
    *error = "password_file " + config::NodeReader::quote(path) + " is unreadable or empty";
    return false;
  }
  if (pw.find_first_of("\r\n") != std::string::npos) {
    *error = "password_file " + config::NodeReader::quote(path) + " holds more than one line";
    return false;
  }
  *out = std::move(pw);
  return true;
}

// A host name, resolved on the main thread when a config is built to run (not when it is only
// validated: --validate and manifest checks run where the name may not resolve).
bool resolveName(const std::string& host, const std::string& port, sockaddr_storage* out, std::string* error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    *error = "cannot resolve " + config::NodeReader::quote(host) + ": " + gai_strerror(rc);
    if (res != nullptr) freeaddrinfo(res);
    return false;
  }
  std::memset(out, 0, sizeof *out);
  std::memcpy(out, res->ai_addr, std::min<size_t>(res->ai_addrlen, sizeof *out));
  freeaddrinfo(res);
  return true;
}

void parseRedis(config::NodeReader& r, const config::NodeReader::Field& root, GlobalRateLimitConfig* out) {
  if (!r.isMap(root, false)) return;
  constexpr std::string_view kWhere = "in global_rate_limit redis";
  auto f = r.fields(root, kWhere,
                    {"address", "timeout", "connect_timeout", "failure_mode", "password_file", "connections"});
  auto& rc = out->redis;
  if (auto* x = r.need(f, "address", root.value->mark, kWhere))
    if (auto v = r.getString(*x)) {
      std::string error;
      bool resolved = false;
      if (!parseAddress(*v, &out->host, &out->port, &rc.addr, &resolved, &error)) {
        r.error(x->value->mark, error + " (" + config::NodeReader::quote(*v) + ")");
      } else {
        rc.address = *v;
        out->resolved = resolved;
        out->address_mark = x->value->mark;
      }
    }
  if (auto* x = f.get("timeout"))
    if (auto v = r.getDuration(*x, true)) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*v);
      if (ms < std::chrono::milliseconds(1) || ms > std::chrono::seconds(10))
        r.error(x->value->mark, "timeout must be 1ms to 10s");
      else
        rc.timeout = ms;
    }
  if (auto* x = f.get("connect_timeout"))
    if (auto v = r.getDuration(*x, true)) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*v);
      if (ms < std::chrono::milliseconds(1) || ms > std::chrono::seconds(60))
        r.error(x->value->mark, "connect_timeout must be 1ms to 60s");
      else
        rc.connect_timeout = ms;
    }
  if (auto* x = f.get("failure_mode"))
    if (auto v = r.getString(*x)) {
      if (*v == "allow")
        out->failure_mode = GlobalRateLimitConfig::FailureMode::kAllow;
      else if (*v == "deny")
        out->failure_mode = GlobalRateLimitConfig::FailureMode::kDeny;
      else
        r.error(x->value->mark, "failure_mode must be allow or deny, not " + config::NodeReader::quote(*v));
    }
  if (auto* x = f.get("connections"))
    if (auto v = r.getUint(*x, 1, 16)) rc.connections = static_cast<uint32_t>(*v);
  if (auto* x = f.get("password_file"))
    if (auto v = r.getString(*x)) {
      out->password_file = *v;
      out->password_mark = x->value->mark;
    }
}

}  // namespace

const core::redis::Script& globalRateLimitScript() { return script(); }

std::optional<GlobalRateLimitConfig> parseGlobalRateLimitConfig(const config::HttpFilterConfig& entry,
                                                                config::NodeReader& r) {
  if (!entry.config) {
    r.error(entry.mark, "missing required key 'config' in filter");
    return std::nullopt;
  }
  const size_t before = r.errorCount();
  GlobalRateLimitConfig out;
  const config::NodeReader::Field root{"config", entry.mark, &*entry.config};
  if (!r.isMap(root, false)) return std::nullopt;
  constexpr std::string_view kWhere = "in global_rate_limit config";
  auto f = r.fields(root, kWhere,
                    {"max_tokens", "tokens_per_fill", "fill_interval", "key", "max_keys", "shadow",
                     "response_headers", "domain", "redis", "batch"});
  parseRateLimitBucket(r, f, entry.config->mark, kWhere, &out);
  if (auto* x = r.need(f, "domain", entry.config->mark, kWhere))
    if (auto v = r.getString(*x)) {
      const bool ok = v->size() <= 128 && std::all_of(v->begin(), v->end(), [](char c) {
                        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                               c == '_' || c == '-' || c == '.' || c == ':' || c == '/';
                      });
      if (!ok)
        r.error(x->value->mark, "domain must be 1-128 of A-Z a-z 0-9 _ - . : /, not " + config::NodeReader::quote(*v));
      else
        out.domain = *v;
    }
  if (auto* x = r.need(f, "redis", entry.config->mark, kWhere)) parseRedis(r, *x, &out);
  if (auto* x = f.get("batch"))
    if (auto v = r.getUint(*x, 1, 1000)) {
      out.batch = static_cast<uint32_t>(*v);
      if (out.max_tokens > 0 && out.batch > out.max_tokens)
        r.error(x->value->mark, "batch is larger than max_tokens");
    }
  if (r.errorCount() != before) return std::nullopt;
  return out;
}

Registry::HttpBuilder globalRateLimitFilterBuilder() {
  return [](const config::HttpFilterConfig& entry, config::NodeReader& reader,
            const HttpBuildContext& ctx) -> HttpFilterFactory {
    auto parsed = parseGlobalRateLimitConfig(entry, reader);
    if (!parsed) return {};
    if (ctx.stats != nullptr && !parsed->resolved) {
      std::string error;
      if (!resolveName(parsed->host, parsed->port, &parsed->redis.addr, &error)) {
        reader.error(parsed->address_mark, error);
        return {};
      }
      parsed->resolved = true;
    }
    if (ctx.stats != nullptr && !parsed->password_file.empty()) {
      std::string error;
      if (!readPassword(parsed->password_file, &parsed->redis.password, &error)) {
        reader.error(parsed->password_mark, error);
        return {};
      }
    }
    auto s = std::make_shared<GlobalRateLimitShared>(std::move(*parsed), ctx.workers);
    if (ctx.stats != nullptr) {  // a config that runs (not only validated)
      s->target = core::redis::target(s->cfg.redis);
      s->target->registerStats(*ctx.stats);
    }
    s->counters.registerAll(ctx, "ferry_global_rate_limit_requests_total",
                            {"allowed", "limited", "shadow_limited", "no_key", "failure_allowed", "failure_denied"},
                            "Requests the global_rate_limit filter looked at, by outcome.");
    return [s] { return std::make_unique<GlobalRateLimitFilter>(s); };
  };
}

}  // namespace ferry::filters::http
