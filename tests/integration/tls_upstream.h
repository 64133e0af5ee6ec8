// A TLS server for upstream tests (ferry connecting to a backend over TLS), modelled on and
// built on FakeUpstream: listens on 127.0.0.1:<ephemeral>, terminates TLS on each accepted
// connection's thread with the given certificate (optionally requiring a client certificate,
// optionally negotiating ALPN), then either echoes bytes (kEcho) or answers every HTTP/1.1
// request with 200, a body naming itself and headers describing the TLS session it saw
// (kHttp, keep-alive):
//
//   x-upstream: <name>          x-tls-version: TLSv1.3     x-tls-cipher: TLS_AES_256_GCM_SHA384
//   x-tls-sni: <server name>    x-tls-alpn: <protocol>     x-tls-resumed: true|false
//   x-tls-client-cn: <CN>       x-tls-client-uri: <first URI SAN>   ("" when absent)
//
// Every handshake (successful or not) is recorded; tickets are on (the SSL_CTX lives as long
// as the server), so a client may resume. Thread-safe; every wait bounded; the destructor stops
// everything like FakeUpstream's.
#pragma once

#include <openssl/ssl.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/test_certs.h"

namespace ferry::testing {

struct TlsUpstreamOptions {
  enum class Mode { kEcho, kHttp };
  std::string cert_file, key_file;  // server certificate chain PEM and key (required)
  Mode mode = Mode::kHttp;
  std::string name = "tls-upstream";  // the HTTP body and x-upstream
  // Client certificates: "" = not requested. Otherwise one is requested and verified against
  // this CA file, and required unless client_cert_optional.
  std::string client_ca_file;
  bool client_cert_optional = false;
  // ALPN, in the server's order of preference; {} = none. A client offering none of them gets
  // no ALPN (no alert), as most servers do.
  std::vector<std::string> alpn;
  int min_version = TLS1_2_VERSION;  // a TLS 1.2+ server by default
  int max_version = 0;               // 0 = TLS 1.3
  // For a legacy server (TLS 1.1 needs both lowered: security_level 0, "DEFAULT@SECLEVEL=0").
  std::string cipher_list;      // TLS <= 1.2 ciphers; "" = default
  int security_level = -1;      // -1 = default
  bool session_tickets = true;  // false: SSL_OP_NO_TICKET (TLS 1.2 resumes by session id)
};

// What the server saw of one handshake.
struct TlsHandshakeSeen {
  bool ok = false;
  std::string error;  // why it failed (OpenSSL's reasons), when !ok
  std::string version, cipher, sni, alpn;
  bool resumed = false;
  std::optional<CertInfo> client_cert;  // the verified client certificate, if one was sent
};

class TlsUpstream {
 public:
  explicit TlsUpstream(TlsUpstreamOptions opts);
  ~TlsUpstream();
  TlsUpstream(const TlsUpstream&) = delete;
  TlsUpstream& operator=(const TlsUpstream&) = delete;

  uint16_t port() const { return server_->port(); }
  size_t connections() const { return server_->accepted(); }
  size_t handshakes() const;         // successful ones
  size_t resumedHandshakes() const;  // successful ones that resumed a session
  size_t failedHandshakes() const;
  std::vector<TlsHandshakeSeen> seen() const;  // in completion order, failures included
  // Wait until at least n successful / failed handshakes were recorded.
  bool waitHandshakes(size_t n, ms timeout = 10s) const;
  bool waitFailedHandshakes(size_t n, ms timeout = 10s) const;
  // kHttp: the request heads received so far (request line + headers, as received).
  std::vector<std::string> requestHeads() const;

  FakeUpstream& server() { return *server_; }  // e.g. stopListening()

  struct State;

 private:
  std::shared_ptr<State> st_;
  std::unique_ptr<FakeUpstream> server_;
};

}  // namespace ferry::testing
