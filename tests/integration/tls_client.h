// A TLS client for integration tests, on OpenSSL: connects to 127.0.0.1:port over a
// non-blocking socket, with every call bounded by a deadline (poll() on WANT_READ/WANT_WRITE).
// It offers what a test of a TLS server needs to control (SNI, ALPN, verification against a CA
// file, a client certificate, protocol versions, ciphers, a session to resume) and reports what
// the handshake settled (version, cipher, ALPN, resumption, the server's certificate), the
// alerts it received and the sessions (tickets) the server issued.
//
//   TlsError err;
//   auto c = TlsClient::connect(port, {.sni = "localhost", .ca_file = files.ca}, 5s, &err);
//   REQUIRE(c);  // on failure err.message says why, err.alert_received which alert came in
//
// Use from one thread at a time. Setup errors (unreadable cert/CA files) throw HarnessError;
// connection and handshake failures are results (nullptr + TlsError).
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/test_certs.h"

namespace ferry::testing {

using TlsSession = std::shared_ptr<SSL_SESSION>;  // freed with SSL_SESSION_free

struct TlsClientOptions {
  std::string sni;                // server_name to send; "" = no SNI extension
  std::vector<std::string> alpn;  // protocols to offer, e.g. {"h2", "http/1.1"}; {} = no ALPN
  // Verification: "" = accept any certificate. Otherwise the server's chain must verify against
  // this PEM file, and its certificate must match verify_name (DNS or IP; default: sni; both ""
  // = no name check).
  std::string ca_file;
  std::string verify_name;
  std::string cert_file, key_file;  // client certificate (chain PEM) and key, for mTLS
  int min_version = 0;              // TLS1_2_VERSION, ...; 0 = OpenSSL's default
  int max_version = 0;              // 0 = the highest supported
  std::string cipher_list;          // TLS <= 1.2 ciphers (SSL_CTX_set_cipher_list); "" = default
  std::string ciphersuites;         // TLS 1.3 suites (SSL_CTX_set_ciphersuites); "" = default
  int security_level = -1;          // SSL_CTX_set_security_level; -1 = default (2 on Debian)
  TlsSession session;               // offered for resumption if set
  // SSL_OP_NO_TICKET: no session_ticket extension, so a TLS 1.2 server that resumes does it
  // by session id (its cache). For TLS 1.3 it only means "no stateless tickets" (OpenSSL
  // clients still accept whatever tickets the server sends).
  bool no_ticket = false;
  // Signature algorithms offered (SSL_CTX_set1_sigalgs_list); "rsa_pss_rsae_sha256" accepts
  // only an RSA certificate (with TLS 1.3 too). "" = OpenSSL's default list.
  std::string sigalgs;

  // TLS 1.1 only, with what it takes to send such a ClientHello with OpenSSL 3 (the equivalent
  // of `-tls1_1 -cipher DEFAULT@SECLEVEL=0`): for testing that a server refuses old versions.
  // An OpenSSL server answers it with a protocol_version alert only if its minimum version is
  // set (SSL_CTX_set_min_proto_version); one relying on the default security level alone
  // answers internal_error (80).
  static TlsClientOptions tls11Only(std::string sni = "");
};

// An alert received or sent (close_notify is not recorded as one: see sawCloseNotify()).
struct TlsAlert {
  int code = 0;  // SSL_AD_PROTOCOL_VERSION (70), SSL_AD_UNKNOWN_CA (48), ...
  bool fatal = false;
  std::string name;  // OpenSSL's long description, e.g. "protocol version"
};

struct TlsError {
  std::string message;  // what failed: connect, or OpenSSL's reasons (e.g. "tlsv1 alert protocol
                        // version", "certificate verify failed: certificate has expired")
  std::optional<TlsAlert> alert_received;
  std::optional<TlsAlert> alert_sent;
  long verify_result = 0;  // X509_V_OK, or X509_V_ERR_* when verifying the server failed
};

class TlsClient {
 public:
  // Connects and handshakes within timeout. nullptr on failure, with *error filled if given.
  // With TLS 1.3 the server judges a client certificate after the client's handshake is done:
  // a rejected one shows as a failed first read (failed(), lastAlertReceived()), not here.
  static std::unique_ptr<TlsClient> connect(uint16_t port, const TlsClientOptions& opts,
                                            ms timeout = 5s, TlsError* error = nullptr);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // What the handshake settled.
  std::string version() const;  // "TLSv1.3", "TLSv1.2"
  std::string cipher() const;   // "TLS_AES_256_GCM_SHA384"
  std::string alpn() const;     // "" = none negotiated
  bool resumed() const;         // SSL_session_reused
  // The server's certificate; nullopt if it sent none.
  std::optional<CertInfo> peerCert() const;
  // X509_V_OK after a verified handshake. With verification off (no ca_file) nothing is trusted,
  // so it is usually an error such as X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY.
  long verifyResult() const;

  // False if the deadline passes or the connection fails before everything was written.
  bool sendAll(std::string_view data, ms timeout = 10s);
  // Waits up to timeout for application data and returns what is available; empty on timeout
  // or close.
  std::string recvSome(ms timeout);
  // Exactly n bytes, or fewer if the deadline passes / the connection ends first.
  std::string recvExactly(size_t n, ms timeout = 10s);
  // Everything until the connection ends (close_notify, EOF, error) or the deadline.
  std::string recvUntilClose(ms timeout = 10s);
  // One HTTP/1.1 response (Content-Length, chunked or until close; 1xx skipped), parsed by the
  // harness's parseHttpResponse. Bytes after it in the same read are discarded. status 0 + error
  // if malformed, or incomplete when the connection ends or the deadline passes.
  HttpResponse recvHttpResponse(ms timeout = 5s, bool head_request = false);

  // The newest session the server issued (for TLS 1.3, tickets arrive after the handshake and
  // are processed by the next read: call after reading a response, or use waitSession).
  TlsSession session() const;
  // Reads (keeping application data for later recv* calls) until a resumable session has
  // arrived; null if none by the deadline or the connection ends first.
  TlsSession waitSession(ms timeout = 5s);

  // The last non-close_notify alert received / sent, if any.
  std::optional<TlsAlert> lastAlertReceived() const { return alert_received_; }
  std::optional<TlsAlert> lastAlertSent() const { return alert_sent_; }
  bool sawCloseNotify() const { return close_notify_; }  // the server closed cleanly
  bool sawEof() const { return eof_; }                   // TCP EOF without close_notify
  bool failed() const { return !error_.empty(); }        // a fatal TLS error or a reset
  const std::string& lastError() const { return error_; }
  bool closedByPeer() const { return close_notify_ || eof_ || failed(); }

  // Sends close_notify (best effort, bounded) and closes the socket.
  void close(ms timeout = 1s);
  int fd() const { return fd_; }
  SSL* ssl() const { return ssl_; }

 private:
  TlsClient() = default;
  bool fill(std::chrono::steady_clock::time_point deadline);
  static void infoCallback(const SSL* ssl, int where, int ret);
  static int newSessionCallback(SSL* ssl, SSL_SESSION* sess);

  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  std::string pending_;
  TlsSession session_;
  std::optional<TlsAlert> alert_received_, alert_sent_;
  bool close_notify_ = false;
  bool eof_ = false;
  std::string error_;
};

// GET https://<host><path> over one connection ("Connection: close"): Host is `host`, the SNI is
// opts.sni or else host (without a port; none if host is an IP address). status 0 and error on
// failure (connect, handshake, response), as httpRequest.
HttpResponse httpsGet(uint16_t port, const std::string& host, const std::string& path,
                      TlsClientOptions opts = {}, ms timeout = 5s);

}  // namespace ferry::testing
