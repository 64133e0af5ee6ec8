// Sessions: ticket keys derived per epoch, the binding of a session to the server name it
// was made for, the per-worker server session cache and the per-worker upstream sessions.
// The callbacks run on the workers during handshakes; every cache here is thread_local, so
// no lock is taken.
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <chrono>
#include <cstring>
#include <list>
#include <string_view>
#include <unordered_map>

#include "core/tls/internal.h"

namespace ferry::core::tls {
namespace {

// -- ticket keys: derived per (secret, epoch), cached per thread.

struct EpochKeys {
  uint64_t secret_id = 0;
  int64_t epoch = -1;
  unsigned char name[16];
  unsigned char aes[32];
  unsigned char hmac[32];
};

const EVP_CIPHER* ticketCipher() {
  static EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);  // fetched once
  return c;
}

const EpochKeys& keysFor(const TicketSecret& s, int64_t epoch) {
  thread_local std::array<EpochKeys, 4> cache;
  for (auto& k : cache)
    if (k.secret_id == s.id && k.epoch == epoch) return k;
  EpochKeys& k = cache[static_cast<size_t>(epoch) % cache.size()];
  k.secret_id = s.id;
  k.epoch = epoch;
  std::memcpy(k.name, &s.id, 8);
  std::memcpy(k.name + 8, &epoch, 8);
  for (int part = 0; part < 2; ++part) {
    unsigned char label[17];
    std::memcpy(label, &epoch, 8);
    std::memcpy(label + 8, part == 0 ? "ferryaes" : "ferrymac", 8);
    label[16] = 0;
    size_t out_len = 0;
    EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, s.secret.data(), s.secret.size(), label, 16,
              part == 0 ? k.aes : k.hmac, 32, &out_len);
  }
  return k;
}

int onTicketKey(SSL* ssl, unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cctx, EVP_MAC_CTX* hctx,
                int enc) {
  ServerContext* sc = serverOf(ssl);
  if (!sc->tickets) return 0;
  const TicketSecret& s = *sc->tickets;
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count() /
                      s.epoch_seconds;
  int64_t epoch = now;
  if (enc == 0) {
    uint64_t id = 0;
    std::memcpy(&id, key_name, 8);
    std::memcpy(&epoch, key_name + 8, 8);
    if (id != s.id || epoch > now || epoch + 1 < now) return 0;  // unknown or expired: full handshake
  }
  const EpochKeys& k = keysFor(s, epoch);
  OSSL_PARAM params[3];
  params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(k.hmac), 32);
  params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0);
  params[2] = OSSL_PARAM_construct_end();
  if (enc != 0) {
    std::memcpy(key_name, k.name, 16);
    if (RAND_bytes(iv, 16) != 1) return -1;
    if (EVP_EncryptInit_ex(cctx, ticketCipher(), nullptr, k.aes, iv) != 1) return -1;
    if (EVP_MAC_CTX_set_params(hctx, params) != 1) return -1;
    return 1;
  }
  if (EVP_MAC_CTX_set_params(hctx, params) != 1) return -1;
  if (EVP_DecryptInit_ex(cctx, ticketCipher(), nullptr, k.aes, iv) != 1) return -1;
  // 2: valid, and issue a new ticket: under the current key for an older one, and always in
  // TLS 1.3, whose clients use a ticket once (without a new one, every second reconnect
  // would be a full handshake).
  return epoch == now && SSL_version(ssl) != TLS1_3_VERSION ? 1 : 2;
}

// A session is resumed only for the server name it was made for (RFC 6066 section 3): a
// ticket or cached session from another name gets a full handshake. The name a ClientHello
// asks for is read by the client-hello callback, before OpenSSL looks for a session (the
// server_name extension is parsed only later); a ticket carries the name it was made for
// as its app data, a cached session has it in its cache entry.
int onClientHello(SSL* ssl, int*, void*) {
  std::string* name = transportHelloName(ssl);
  if (name == nullptr) return SSL_CLIENT_HELLO_SUCCESS;
  const unsigned char* p = nullptr;
  size_t len = 0;
  name->clear();
  // server_name: list length (2), then entries of type (1), length (2), name.
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) == 1 && len >= 5 && p[2] == 0) {
    size_t n = (static_cast<size_t>(p[3]) << 8) | p[4];
    if (n <= len - 5) name->assign(lowerAscii(std::string(reinterpret_cast<const char*>(p + 5), n)));
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

bool sameServerName(SSL* ssl, std::string_view made_for) {
  const std::string* now = transportHelloName(ssl);
  return now != nullptr && *now == made_for;
}

int onTicketMade(SSL* ssl, void*) {
  const std::string* name = transportHelloName(ssl);
  const std::string empty;
  const std::string& n = name != nullptr ? *name : empty;
  return SSL_SESSION_set1_ticket_appdata(SSL_get0_session(ssl), n.data(), n.size());
}

std::string_view ticketName(SSL_SESSION* sess) {
  void* data = nullptr;
  size_t len = 0;
  if (SSL_SESSION_get0_ticket_appdata(sess, &data, &len) != 1 || data == nullptr) return {};
  return {static_cast<const char*>(data), len};
}

SSL_TICKET_RETURN onTicketDecrypted(SSL* ssl, SSL_SESSION* sess, const unsigned char*, size_t,
                                    SSL_TICKET_STATUS status, void*) {
  switch (status) {
    case SSL_TICKET_SUCCESS:
      return sameServerName(ssl, ticketName(sess)) ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_IGNORE_RENEW;
    case SSL_TICKET_SUCCESS_RENEW:
      return sameServerName(ssl, ticketName(sess)) ? SSL_TICKET_RETURN_USE_RENEW : SSL_TICKET_RETURN_IGNORE_RENEW;
    case SSL_TICKET_FATAL_ERR_MALLOC:
    case SSL_TICKET_FATAL_ERR_OTHER:
      return SSL_TICKET_RETURN_ABORT;
    default:  // none, or one that does not decrypt: a full handshake, and a new ticket
      return SSL_TICKET_RETURN_IGNORE_RENEW;
  }
}

// -- the per-worker server session cache (TLS 1.2 session ids; TLS 1.3 without tickets).

struct SessionCache {
  using Lru = std::list<std::string>;
  struct Entry {
    SSL_SESSION* sess;
    Lru::iterator pos;
    std::string server_name;  // the SNI the session was made for
  };
  std::unordered_map<std::string, Entry> map;
  Lru lru;  // front = newest
  ~SessionCache() {
    for (auto& [k, e] : map) SSL_SESSION_free(e.sess);
  }
  void erase(const std::string& key) {
    auto it = map.find(key);
    if (it == map.end()) return;
    SSL_SESSION_free(it->second.sess);
    lru.erase(it->second.pos);
    map.erase(it);
  }
  void put(std::string key, SSL_SESSION* sess, std::string server_name, size_t cap) {
    erase(key);
    while (map.size() >= cap && !lru.empty()) erase(lru.back());
    lru.push_front(key);
    map.emplace(std::move(key), Entry{sess, lru.begin(), std::move(server_name)});
  }
  const Entry* get(const std::string& key) {
    auto it = map.find(key);
    if (it == map.end()) return nullptr;
    lru.splice(lru.begin(), lru, it->second.pos);
    return &it->second;
  }
};

// One cache per context (its cache_id) on each worker, so that each listener's
// session_cache_size bounds its own sessions only.
SessionCache& serverCache(uint64_t cache_id) {
  thread_local std::unordered_map<uint64_t, SessionCache> caches;
  return caches[cache_id];
}

// A session id as the key of its context's cache.
std::string cacheKey(const unsigned char* id, size_t len) { return std::string(reinterpret_cast<const char*>(id), len); }

int onNewSession(SSL* ssl, SSL_SESSION* sess) {
  ServerContext* sc = serverOf(ssl);
  if (sc->session_cache_size == 0) return 0;
  // TLS 1.3 with tickets resumes from the ticket alone: nothing to keep.
  if (sc->tickets && SSL_SESSION_get_protocol_version(sess) == TLS1_3_VERSION) return 0;
  unsigned int len = 0;
  const unsigned char* id = SSL_SESSION_get_id(sess, &len);
  const std::string* name = transportHelloName(ssl);
  serverCache(sc->cache_id).put(cacheKey(id, len), sess, name != nullptr ? *name : std::string(),
                                sc->session_cache_size);
  return 1;  // the cache keeps the reference
}

SSL_SESSION* onGetSession(SSL* ssl, const unsigned char* id, int len, int* copy) {
  ServerContext* sc = static_cast<ServerContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  const SessionCache::Entry* e = serverCache(sc->cache_id).get(cacheKey(id, static_cast<size_t>(len)));
  if (e == nullptr || !sameServerName(ssl, e->server_name)) return nullptr;
  *copy = 1;  // OpenSSL takes its own reference
  return e->sess;
}

void onRemoveSession(SSL_CTX* ctx, SSL_SESSION* sess) {
  auto* sc = static_cast<ServerContext*>(SSL_CTX_get_app_data(ctx));
  if (sc == nullptr) return;
  unsigned int len = 0;
  const unsigned char* id = SSL_SESSION_get_id(sess, &len);
  serverCache(sc->cache_id).erase(cacheKey(id, len));
}

// -- upstream sessions, per worker.

std::unordered_map<std::string, SSL_SESSION*>& clientSessions() {
  thread_local struct Holder {
    std::unordered_map<std::string, SSL_SESSION*> map;
    ~Holder() {
      for (auto& [k, s] : map) SSL_SESSION_free(s);
    }
  } holder;
  return holder.map;
}

int onClientNewSession(SSL* ssl, SSL_SESSION* sess) {
  auto* cc = static_cast<ClientContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  const std::string* key = transportSessionKey(ssl);
  if (cc == nullptr || key == nullptr || !cc->session_reuse) return 0;
  storeClientSession(cc->cache_id, *key, sess);
  return 1;
}

}  // namespace

void storeClientSession(uint64_t cache_id, const std::string& key, SSL_SESSION* sess) {
  auto& m = clientSessions();
  std::string k = std::to_string(cache_id) + "|" + key;
  auto it = m.find(k);
  if (it != m.end()) {
    SSL_SESSION_free(it->second);
    it->second = sess;
    return;
  }
  if (m.size() >= 4096) {  // bounded: start over rather than grow
    for (auto& [kk, s] : m) SSL_SESSION_free(s);
    m.clear();
  }
  m.emplace(std::move(k), sess);
}

SSL_SESSION* findClientSession(uint64_t cache_id, const std::string& key) {
  auto& m = clientSessions();
  auto it = m.find(std::to_string(cache_id) + "|" + key);
  return it == m.end() ? nullptr : it->second;
}

void installServerSessions(SSL_CTX* ctx, const config::TlsConfig& cfg, bool tickets) {
  // TLS 1.3 resumes through tickets only: stateless ones, or (session_tickets: false)
  // stateful ones that name a session of the per-worker cache.
  SSL_CTX_set_num_tickets(ctx, cfg.session_tickets || cfg.session_cache_size > 0 ? 1 : 0);
  if (tickets) SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, onTicketKey);
  SSL_CTX_set_session_ticket_cb(ctx, onTicketMade, onTicketDecrypted, nullptr);
  SSL_CTX_set_client_hello_cb(ctx, onClientHello, nullptr);
  if (cfg.session_cache_size > 0) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL |
                                            SSL_SESS_CACHE_NO_AUTO_CLEAR);
    SSL_CTX_sess_set_new_cb(ctx, onNewSession);
    SSL_CTX_sess_set_get_cb(ctx, onGetSession);
    SSL_CTX_sess_set_remove_cb(ctx, onRemoveSession);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
}

void installClientSessions(SSL_CTX* ctx, bool reuse) {
  if (reuse) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx, onClientNewSession);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  }
}

}  // namespace ferry::core::tls
