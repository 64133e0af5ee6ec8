// TLS on OpenSSL 3, as a transport (core/net/transport.h): termination on listeners and
// origination toward clusters. OpenSSL never sees a socket: the transport feeds it the
// connection's raw buffers through a BIO of our own (no copy into a memory BIO), so the I/O
// backend and its batched sends stay as they are.
//
// - ServerContext: everything one listener's `tls` block builds: an SSL_CTX per group of
//   certificates that share their names (an RSA and an ECDSA certificate side by side in
//   one SSL_CTX), the SNI table (exact and *.wildcard names read from the certificates;
//   the first certificate is the default), ALPN, client-certificate checks, session ticket
//   keys (rotating, derived per epoch: no shared mutable state) and the per-worker session
//   cache. Built once on the main thread, immutable, shared read-only by every worker.
// - ServerContextProvider: the ServerContext a listener's new connections take, one slot per
//   worker (like the route config): a certificate reload builds a new context and installs
//   it on each worker; connections already open keep theirs.
// - ClientContext: a cluster's `tls` block: SNI, verification, client certificate, ALPN and
//   session reuse (per worker, per endpoint).
//
// Thread affinity: contexts are built on the main thread; transports are worker-local.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/model.h"
#include "core/net/transport.h"
#include "core/stats.h"

namespace ferry::core::tls {

// A problem found while building a context, at the config position it comes from.
struct BuildError {
  config::Mark mark;
  std::string message;
};

// Why a handshake failed (the `reason` label of the failure counter).
enum class HandshakeFailure {
  kTimeout,                // handshake_timeout passed
  kNotTls,                 // the first bytes were not a TLS record
  kHttpRequest,            // a plain-HTTP request on a TLS port (answered 400)
  kProtocolVersion,        // no TLS version in common
  kNoSharedCipher,         // no cipher (or group, or signature algorithm) in common
  kNoApplicationProtocol,  // ALPN offered, none in common
  kPeerCertificate,        // client (or server) certificate missing, invalid or not allowed
  kPeerClosed,             // the peer closed or reset before the handshake finished
  kOther,
  kCount
};
const char* handshakeFailureName(HandshakeFailure f);

// Counters of one TLS side: a listener (ferry_tls_*{listener}) or a cluster
// (ferry_upstream_tls_*{cluster}). Registered on the main thread.
struct TlsStats {
  StatHandle handshakes;  // completed
  StatHandle resumed;     // completed by resuming a session (ticket or cache)
  StatHandle failures[static_cast<int>(HandshakeFailure::kCount)];
  StatHandle tls12, tls13;  // completed handshakes by version
  struct Cipher {
    std::string name;
    StatHandle handle;
  };
  std::vector<Cipher> ciphers;  // completed handshakes by cipher (every cipher the context allows)
};

// Facts about one certificate, for logs, metrics and /clusters-like dumps.
struct CertificateInfo {
  std::string cert_file;
  std::vector<std::string> names;  // DNS names it serves (SAN, else the subject CN)
  std::string key_type;            // "RSA", "ECDSA", ...
  int64_t not_after = 0;           // unix time
  std::string sha256;              // of the DER certificate, hex
};

class ServerContext;
class ClientContext;

// Builds a listener's context. `default_alpn`: the protocols accepted when the block has no
// `alpn` (from the listener's protocol). `stats`: null = no metrics (config validation).
// `keys_from`: a context whose ticket keys (and session cache) the new one keeps (a
// certificate reload); null = new keys. Returns null and appends to *errors on failure.
std::shared_ptr<const ServerContext> buildServerContext(const config::TlsConfig& cfg, const std::string& listener,
                                                        const std::vector<std::string>& default_alpn,
                                                        StatsStore* stats, const ServerContext* keys_from,
                                                        std::vector<BuildError>* errors);
// The certificates of a built context (config order).
const std::vector<CertificateInfo>& certificates(const ServerContext& ctx);
// The files a context was built from (certificates, keys, client CA): what to watch.
std::vector<std::string> watchedFiles(const config::TlsConfig& cfg);

// A cluster's context; null and *errors on failure.
std::shared_ptr<const ClientContext> buildClientContext(const config::UpstreamTlsConfig& cfg,
                                                        const std::string& cluster, StatsStore* stats,
                                                        std::vector<BuildError>* errors);
// The transport of one upstream connection to an endpoint. `hostname`: the endpoint's DNS
// name ("" for an IP), the default SNI and verified name; `address`: "ip:port", keys the
// session kept for reuse.
std::unique_ptr<net::TransportSocket> newClientTransport(const std::shared_ptr<const ClientContext>& ctx,
                                                         const std::string& hostname, const std::string& address);

// One slot per worker (1-based; slot 0 = the main thread). set() runs on the slot's thread.
class ServerContextProvider {
 public:
  explicit ServerContextProvider(size_t workers) : slots_(workers + 1) {}
  void set(size_t worker, std::shared_ptr<const ServerContext> ctx) { slots_[worker].ctx = std::move(ctx); }
  // The transport factory for the listener spec: a new server transport from the calling
  // worker's current context. The factory keeps the provider alive.
  static net::TransportFactory factory(std::shared_ptr<const ServerContextProvider> provider);

 private:
  struct alignas(64) Slot {
    std::shared_ptr<const ServerContext> ctx;
  };
  std::vector<Slot> slots_;
};

// A server transport over `ctx` (tests; listeners go through ServerContextProvider).
std::unique_ptr<net::TransportSocket> newServerTransport(const std::shared_ptr<const ServerContext>& ctx);

}  // namespace ferry::core::tls
