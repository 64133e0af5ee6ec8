// What context.cc and transport.cc share: the context classes and the session caches.
// Not for use outside core/tls.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tls/tls.h"

namespace ferry::core::tls {

// Ticket keys: a random secret per listener; the keys of each epoch (session_timeout long)
// are derived from it, so workers need no shared mutable state to rotate them. Tickets of
// the current and the previous epoch are accepted (the previous ones are renewed).
struct TicketSecret {
  uint64_t id = 0;  // process-unique; names this secret in key names and caches
  std::array<unsigned char, 32> secret{};
  int64_t epoch_seconds = 3600;
};

class ServerContext {
 public:
  ~ServerContext();
  // The SSL_CTX a new connection starts with (the default certificate's); SNI may switch.
  SSL_CTX* initial() const { return ctxs_.front(); }
  SSL_CTX* forServerName(const char* name) const;

  std::string listener;
  std::vector<SSL_CTX*> ctxs_;  // one per certificate group; owned
  std::vector<std::pair<std::string, SSL_CTX*>> exact_;     // sorted by name
  std::vector<std::pair<std::string, SSL_CTX*>> wildcard_;  // "*.x.y" stored as "x.y", sorted
  std::vector<unsigned char> alpn_wire;  // accepted protocols, in preference order
  std::vector<std::string> allowed_sans, allowed_subjects;
  std::shared_ptr<const TicketSecret> tickets;  // null = tickets off
  uint64_t cache_id = 0;  // keys this context's entries in the per-worker session cache
  uint32_t session_cache_size = 0;
  std::vector<CertificateInfo> certs;
  TlsStats stats;
  StatsShard* main_shard = nullptr;  // where counts of the main thread go (null: nowhere)
};

class ClientContext {
 public:
  ~ClientContext();
  SSL_CTX* ctx = nullptr;
  std::string cluster;
  std::string sni;          // configured SNI ("" = the endpoint's DNS name)
  std::string verify_name;  // configured name to verify ("" = SNI)
  bool verify = true;
  bool session_reuse = true;
  uint64_t cache_id = 0;
  TlsStats stats;
  StatsShard* main_shard = nullptr;
};

// The stats shard of the calling thread: its worker's, or `main` on the main thread.
StatsShard* currentShard(StatsShard* main);

// Upstream sessions kept for reuse, per worker: key -> the newest session.
void storeClientSession(uint64_t cache_id, const std::string& key, SSL_SESSION* sess);  // takes a reference
SSL_SESSION* findClientSession(uint64_t cache_id, const std::string& key);  // borrowed; may be null

// The ServerContext of a server SSL (the app data of its SSL_CTX, whichever SNI picked).
inline ServerContext* serverOf(SSL* ssl) {
  return static_cast<ServerContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
}

// sessions.cc: the session and ticket callbacks of a server or client SSL_CTX.
void installServerSessions(SSL_CTX* ctx, const config::TlsConfig& cfg, bool tickets);
void installClientSessions(SSL_CTX* ctx, bool reuse);

// x509.cc: reading certificates.
std::string lowerAscii(std::string s);
std::string hexString(const unsigned char* p, size_t n);
std::string sha256Of(X509* x);      // of the DER form, lower-case hex
std::string subjectOf(X509* x);     // RFC 2253
// Each subjectAltName: DNS, URI and email entries as written, IP addresses as text.
void forEachAltName(X509* x, const std::function<void(int type, std::string value)>& fn);

// Called by the client SSL_CTX's new-session callback with the transport's session key.
const std::string* transportSessionKey(SSL* ssl);
// Server: the (lower-cased) server name the ClientHello asked for, "" for none; null when the
// SSL is not one of ours.
std::string* transportHelloName(SSL* ssl);

}  // namespace ferry::core::tls
