#include "filters/http/basic_auth/basic_auth_filter.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <absl/container/flat_hash_map.h>

#include <algorithm>
#include <cstring>

#include "core/log.h"
#include "core/pooled.h"
#include "filters/http/config_util.h"

namespace ferry::filters::http {
using namespace core::http;
using config::NodeReader;
namespace {

// Per thread: libcrypt's 32 KiB scratch area and a SHA-256 context, made on first use.
crypt_data& cryptScratch() {
  thread_local std::unique_ptr<crypt_data> d;
  if (!d) d = std::make_unique<crypt_data>();
  return *d;
}
const EVP_MD* sha256() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}
EVP_MD_CTX* mdContext() {
  thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  return ctx.get();
}

// The filter's immutable config, its users by name, and one credential cache per worker.
struct BasicAuthShared {
  BasicAuthConfig cfg;
  absl::flat_hash_map<std::string, uint32_t> index;  // user name -> cfg.users.users[i]
  std::string challenge;                              // the WWW-Authenticate value
  std::array<uint8_t, 32> key{};                      // the caches' digest key, random
  // Each worker makes its own on first use and is the only one to touch it (distinct
  // elements of a vector sized once, at build).
  std::vector<std::unique_ptr<CredentialCache>> caches;
  // ferry_basic_auth_requests_total{listener,result}.
  enum Outcome : size_t { kAllowed, kDenied, kMissing };
  OutcomeCounters<3> counters;
  // ferry_basic_auth_credential_checks_total{listener,result}: cache_hit, hashed.
  enum Check : size_t { kCacheHit, kHashed };
  OutcomeCounters<2> checks;

  CredentialCache* cacheFor(size_t worker) {
    if (cfg.cache_entries == 0 || worker >= caches.size()) return nullptr;
    auto& c = caches[worker];
    if (!c) c = std::make_unique<CredentialCache>(cfg.cache_entries, key);
    return c.get();
  }
};

class BasicAuthFilter : public HttpFilter, public core::PerThreadPooled<BasicAuthFilter> {
 public:
  explicit BasicAuthFilter(std::shared_ptr<BasicAuthShared> s) : s_(std::move(s)) {}

  FilterStatus onRequestHeaders(RequestHeaders& h, bool) override {
    const BasicAuthConfig& c = s_->cfg;
    // Whatever happens next, the client does not get to name the user itself.
    if (!c.forward_username_header.empty()) h.headers.remove(c.forward_username_header);
    std::optional<BasicCredentials> creds;
    std::array<char, kMaxCredentialBytes> buf;
    if (h.headers.count("authorization") == 1) creds = parseBasicAuthorization(*h.headers.get("authorization"), buf);
    if (!creds) {
      FERRY_LOG(kDebug, "basic_auth: no valid Basic credentials: ", core::log::sv(h.method), " ", core::log::sv(h.path),
                " from ", core::log::sv(callbacks_->downstreamRemoteIp()));
      return deny(BasicAuthShared::kMissing);
    }
    const int64_t user = check(*creds);
    OPENSSL_cleanse(buf.data(), creds->user.size() + 1 + creds->password.size());
    if (user < 0) {
      FERRY_LOG(kDebug, "basic_auth: wrong user or password: ", core::log::sv(h.method), " ", core::log::sv(h.path),
                " from ", core::log::sv(callbacks_->downstreamRemoteIp()));
      return deny(BasicAuthShared::kDenied);
    }
    s_->counters.inc(*callbacks_, BasicAuthShared::kAllowed);
    if (c.strip_authorization) h.headers.remove("authorization");
    if (!c.forward_username_header.empty())
      h.headers.set(c.forward_username_header, c.users.users[static_cast<size_t>(user)].name);
    return FilterStatus::kContinue;
  }

  FilterStatus onResponseHeaders(ResponseHeaders& r, bool) override {
    if (denied_ && r.status == 401) r.headers.set("www-authenticate", s_->challenge);
    return FilterStatus::kContinue;
  }

 private:
  FilterStatus deny(BasicAuthShared::Outcome why) {
    denied_ = true;
    s_->counters.inc(*callbacks_, why);
    callbacks_->sendLocalReply(401, "authentication required\n", ResponseFlag::kBasicAuthDenied);
    return FilterStatus::kStop;
  }

  // The user's index when the credentials are right, else -1. An unknown user costs a hash
  // verification too (against the first user's hash, result ignored), so that its answer
  // takes as long as a wrong password's.
  int64_t check(const BasicCredentials& creds) {
    const auto& users = s_->cfg.users.users;
    auto it = s_->index.find(absl::string_view(creds.user.data(), creds.user.size()));
    const bool known = it != s_->index.end();
    const uint32_t idx = known ? it->second : 0;
    CredentialCache* cache = known ? s_->cacheFor(callbacks_->worker().worker_index) : nullptr;
    CredentialCache::Digest d{};
    if (cache != nullptr) {
      d = cache->digest(creds.user, creds.password);
      if (cache->contains(d, idx)) {
        s_->checks.inc(*callbacks_, BasicAuthShared::kCacheHit);
        return idx;
      }
    }
    s_->checks.inc(*callbacks_, BasicAuthShared::kHashed);
    const bool ok = verifyPassword(users[idx].hash, creds.password, cryptScratch()) && known;
    if (!ok) return -1;
    if (cache != nullptr) cache->insert(d, idx);
    return idx;
  }

  std::shared_ptr<BasicAuthShared> s_;
  bool denied_ = false;
};

int base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 (RFC 4648 section 4), padding optional; the decoded length, or -1.
int64_t decodeBase64(std::string_view in, char* out, size_t cap) {
  size_t pad = 0;
  while (!in.empty() && in.back() == '=' && pad < 2) {
    in.remove_suffix(1);
    ++pad;
  }
  if (in.size() % 4 == 1 || (pad > 0 && (in.size() + pad) % 4 != 0)) return -1;
  if (in.size() / 4 * 3 + (in.size() % 4 == 0 ? 0 : in.size() % 4 - 1) > cap) return -1;
  size_t n = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    const int v = base64Value(ch);
    if (v < 0) return -1;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // The leftover bits of a final partial group must be zero (a canonical encoding).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return -1;
  return static_cast<int64_t>(n);
}

// ---- config

bool goodRealm(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) {
    return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

size_t roundUpPow2(size_t n) {
  size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

CredentialCache::CredentialCache(size_t slots, const std::array<uint8_t, 32>& key) : slots_(slots), key_(key) {}

CredentialCache::Digest CredentialCache::digest(std::string_view user, std::string_view password) const {
  Digest d{};
  EVP_MD_CTX* ctx = mdContext();
  const uint32_t n = static_cast<uint32_t>(user.size());
  const uint8_t len[4] = {static_cast<uint8_t>(n >> 24), static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 8),
                          static_cast<uint8_t>(n)};
  unsigned int out = 0;
  if (ctx == nullptr || sha256() == nullptr || EVP_DigestInit_ex2(ctx, sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx, key_.data(), key_.size()) != 1 || EVP_DigestUpdate(ctx, len, sizeof len) != 1 ||
      EVP_DigestUpdate(ctx, user.data(), user.size()) != 1 ||
      EVP_DigestUpdate(ctx, password.data(), password.size()) != 1 || EVP_DigestFinal_ex(ctx, d.data(), &out) != 1) {
    // Cannot happen with OpenSSL's default provider; a random digest then matches nothing.
    RAND_bytes(d.data(), static_cast<int>(d.size()));
  }
  return d;
}

const CredentialCache::Slot& CredentialCache::slotOf(const Digest& d) const {
  uint64_t h = 0;
  std::memcpy(&h, d.data(), sizeof h);
  return slots_[h & (slots_.size() - 1)];
}

bool CredentialCache::contains(const Digest& d, uint32_t user) const {
  const Slot& s = slotOf(d);
  return s.user == user && CRYPTO_memcmp(s.digest.data(), d.data(), d.size()) == 0;
}

void CredentialCache::insert(const Digest& d, uint32_t user) {
  Slot& s = const_cast<Slot&>(slotOf(d));
  s.digest = d;
  s.user = user;
}

std::optional<BasicCredentials> parseBasicAuthorization(std::string_view v, std::array<char, kMaxCredentialBytes>& buf) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.size() < 6 || !HeaderMap::equalsIgnoreCase(v.substr(0, 5), "basic") || (v[5] != ' ' && v[5] != '\t'))
    return std::nullopt;
  v.remove_prefix(6);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  if (v.empty()) return std::nullopt;
  const int64_t n = decodeBase64(v, buf.data(), buf.size());
  if (n <= 0) return std::nullopt;
  const std::string_view decoded(buf.data(), static_cast<size_t>(n));
  const size_t colon = decoded.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  return BasicCredentials{decoded.substr(0, colon), decoded.substr(colon + 1)};
}

std::optional<BasicAuthConfig> parseBasicAuthConfig(const config::HttpFilterConfig& entry, NodeReader& r,
                                                    const std::string& config_dir) {
  if (!entry.config) {
    r.error(entry.mark, "missing required key 'config' in filter");
    return std::nullopt;
  }
  const size_t before = r.errorCount();
  BasicAuthConfig out;
  const NodeReader::Field root{"config", entry.mark, &*entry.config};
  if (!r.isMap(root)) return std::nullopt;
  constexpr std::string_view kWhere = "in basic_auth config";
  auto f = r.fields(root, kWhere,
                    {"htpasswd", "realm", "forward_username_header", "strip_authorization", "cache_entries"});
  if (auto* x = f.get("realm"))
    if (auto v = r.getString(*x)) {
      if (!goodRealm(*v) || v->size() > 256)
        r.error(x->value->mark, "bad realm " + NodeReader::quote(*v) +
                                    ": at most 256 characters, without '\"', '\\' or control characters");
      else
        out.realm = *v;
    }
  if (auto* x = f.get("forward_username_header"))
    if (auto v = r.getString(*x)) {
      const std::string name = lowerAscii(*v);
      static constexpr std::string_view kReserved[] = {
          "authorization", "proxy-authorization", "host",    "content-length", "transfer-encoding", "connection",
          "te",            "upgrade",             "trailer", "keep-alive",     "proxy-connection"};
      if (!isHttpToken(name))
        r.error(x->value->mark, "bad header name " + NodeReader::quote(*v));
      else if (std::find(std::begin(kReserved), std::end(kReserved), name) != std::end(kReserved))
        r.error(x->value->mark, "'forward_username_header' cannot be " + NodeReader::quote(name) +
                                    " (a header Ferry or HTTP itself gives a meaning; use e.g. x-remote-user)");
      else
        out.forward_username_header = name;
    }
  if (auto* x = f.get("strip_authorization"))
    if (auto v = r.getBool(*x)) out.strip_authorization = *v;
  if (auto* x = f.get("cache_entries"))
    if (auto v = r.getUint(*x, 0, 1 << 20)) out.cache_entries = roundUpPow2(*v) * (*v > 0);
  if (auto* x = r.need(f, "htpasswd", entry.config->mark, kWhere))
    if (auto v = r.getString(*x)) {
      out.htpasswd_path = *v;
      std::string path = *v;
      if (path[0] != '/' && !config_dir.empty() && config_dir != ".") path = config_dir + "/" + path;
      std::string why;
      auto text = readSmallFile(path, &why);
      if (!text) {
        r.error(x->value->mark, "cannot read htpasswd file " + NodeReader::quote(*v) + ": " + why);
      } else {
        std::vector<std::string> errors;
        auto users = parseHtpasswd(*text, *v, &errors);
        for (auto& e : errors) r.error(x->value->mark, std::move(e));
        if (users) out.users = std::move(*users);
        OPENSSL_cleanse(text->data(), text->size());
      }
    }
  if (r.errorCount() != before) return std::nullopt;
  return out;
}

Registry::HttpBuilder basicAuthFilterBuilder() {
  return [](const config::HttpFilterConfig& entry, NodeReader& reader, const HttpBuildContext& ctx) -> HttpFilterFactory {
    auto parsed = parseBasicAuthConfig(entry, reader, ctx.config_dir);
    if (!parsed) return {};
    auto s = std::make_shared<BasicAuthShared>();
    s->cfg = std::move(*parsed);
    for (size_t i = 0; i < s->cfg.users.users.size(); ++i)
      s->index.emplace(s->cfg.users.users[i].name, static_cast<uint32_t>(i));
    s->challenge = "Basic realm=\"" + s->cfg.realm + "\", charset=\"UTF-8\"";
    if (RAND_bytes(s->key.data(), static_cast<int>(s->key.size())) != 1) {
      reader.error(entry.mark, "basic_auth: no random bytes for the credential cache's key");
      return {};
    }
    s->caches.resize(ctx.workers + 1);  // WorkerContext::worker_index counts workers from 1 (0: the main thread)
    s->counters.registerAll(ctx, "ferry_basic_auth_requests_total", {"allowed", "denied", "missing"},
                            "Requests the basic_auth filter looked at, by outcome (missing: no or malformed "
                            "Basic credentials; denied: wrong user or password).");
    s->checks.registerAll(ctx, "ferry_basic_auth_credential_checks_total", {"cache_hit", "hashed"},
                          "Credentials the basic_auth filter checked: answered from the worker's cache of verified "
                          "pairs, or by a full (slow) hash verification.");
    return [s] { return std::make_unique<BasicAuthFilter>(s); };
  };
}

}  // namespace ferry::filters::http
