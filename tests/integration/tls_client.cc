// TlsClient and httpsGet: OpenSSL over a non-blocking socket, deadlines via poll().
#include "tests/integration/tls_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <utility>

#include "tests/integration/harness_internal.h"

namespace ferry::testing {

using namespace detail;

namespace {

// OpenSSL's queued reasons, "; "-separated (and the queue emptied).
std::string drainErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* r = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    out += r ? r : "error " + std::to_string(ERR_GET_REASON(e));
  }
  return out;
}

[[noreturn]] void setupFailed(SSL_CTX* ctx, const std::string& what) {
  std::string msg = "TlsClient: " + what + ": " + drainErrors();
  SSL_CTX_free(ctx);
  throw HarnessError(msg);
}

std::string alpnWire(const std::vector<std::string>& protos) {
  std::string wire;
  for (const auto& p : protos) {
    wire += static_cast<char>(p.size());
    wire += p;
  }
  return wire;
}

bool isIpLiteral(const std::string& s) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// A connected non-blocking socket to 127.0.0.1:port, or -1.
int tcpConnect(uint16_t port, TimePoint deadline) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw HarnessError("socket: " + errnoStr(errno));
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int r = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  if (r != 0 && (errno == EINPROGRESS || errno == EINTR)) {
    int err = 0;
    socklen_t len = sizeof err;
    if (pollOne(fd, POLLOUT, deadline) != 0 &&
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
      r = 0;
    }
  }
  if (r != 0) closeFd(fd);
  return fd;
}

// What an SSL_* call's failure means for a deadline loop.
enum class Step { kRetry, kTimeout, kFailed };

// After a failed SSL call returning r: waits for the socket as OpenSSL asks, or says it failed.
Step waitFor(SSL* ssl, int fd, int r, TimePoint deadline) {
  int e = SSL_get_error(ssl, r);
  if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return Step::kFailed;
  short ev = pollOne(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
  return ev == 0 ? Step::kTimeout : Step::kRetry;
}

}  // namespace

TlsClientOptions TlsClientOptions::tls11Only(std::string sni) {
  TlsClientOptions o;
  o.sni = std::move(sni);
  o.min_version = TLS1_1_VERSION;
  o.max_version = TLS1_1_VERSION;
  o.security_level = 0;
  o.cipher_list = "DEFAULT@SECLEVEL=0";
  return o;
}

void TlsClient::infoCallback(const SSL* ssl, int where, int ret) {
  if ((where & SSL_CB_ALERT) == 0) return;
  auto* self = static_cast<TlsClient*>(SSL_get_app_data(ssl));
  const bool received = (where & SSL_CB_READ) != 0;
  const int code = ret & 0xff;
  if (code == SSL_AD_CLOSE_NOTIFY) {
    if (received) self->close_notify_ = true;
    return;
  }
  TlsAlert a{code, (ret >> 8) == SSL3_AL_FATAL, SSL_alert_desc_string_long(ret)};
  (received ? self->alert_received_ : self->alert_sent_) = std::move(a);
}

int TlsClient::newSessionCallback(SSL* ssl, SSL_SESSION* sess) {
  auto* self = static_cast<TlsClient*>(SSL_get_app_data(ssl));
  self->session_ = TlsSession(sess, SSL_SESSION_free);
  return 1;  // we keep the reference
}

std::unique_ptr<TlsClient> TlsClient::connect(uint16_t port, const TlsClientOptions& o, ms timeout,
                                              TlsError* error) {
  const TimePoint deadline = Clock::now() + timeout;
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) setupFailed(nullptr, "SSL_CTX_new");
  if (o.security_level >= 0) SSL_CTX_set_security_level(ctx, o.security_level);
  if (o.min_version && !SSL_CTX_set_min_proto_version(ctx, o.min_version))
    setupFailed(ctx, "min_version");
  if (o.max_version && !SSL_CTX_set_max_proto_version(ctx, o.max_version))
    setupFailed(ctx, "max_version");
  if (!o.cipher_list.empty() && !SSL_CTX_set_cipher_list(ctx, o.cipher_list.c_str())) {
    setupFailed(ctx, "cipher_list " + o.cipher_list);
  }
  if (!o.ciphersuites.empty() && !SSL_CTX_set_ciphersuites(ctx, o.ciphersuites.c_str())) {
    setupFailed(ctx, "ciphersuites " + o.ciphersuites);
  }
  if (!o.sigalgs.empty() && !SSL_CTX_set1_sigalgs_list(ctx, o.sigalgs.c_str())) {
    setupFailed(ctx, "sigalgs " + o.sigalgs);
  }
  if (o.no_ticket) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (!o.ca_file.empty()) {
    if (!SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr)) {
      setupFailed(ctx, "CA file " + o.ca_file);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (!o.cert_file.empty() &&
      (!SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) ||
       !SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) ||
       !SSL_CTX_check_private_key(ctx))) {
    setupFailed(ctx, "client certificate " + o.cert_file + " / " + o.key_file);
  }
  // Sessions (TLS 1.2 at the end of the handshake, TLS 1.3 tickets whenever they arrive) are
  // handed to newSessionCallback.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, newSessionCallback);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

  std::unique_ptr<TlsClient> c(new TlsClient());
  c->ctx_ = ctx;
  auto failWith = [&](std::string msg) -> std::unique_ptr<TlsClient> {
    if (error != nullptr) {
      *error = TlsError{std::move(msg), c->alert_received_, c->alert_sent_,
                        c->ssl_ ? SSL_get_verify_result(c->ssl_) : X509_V_OK};
    }
    return nullptr;
  };
  c->fd_ = tcpConnect(port, deadline);
  if (c->fd_ < 0) return failWith("connect to 127.0.0.1:" + std::to_string(port) + " failed");

  SSL* ssl = c->ssl_ = SSL_new(ctx);
  if (ssl == nullptr) setupFailed(nullptr, "SSL_new");
  SSL_set_app_data(ssl, c.get());
  SSL_set_info_callback(ssl, infoCallback);
  SSL_set_fd(ssl, c->fd_);
  if (!o.sni.empty()) SSL_set_tlsext_host_name(ssl, o.sni.c_str());
  if (!o.alpn.empty()) {
    std::string wire = alpnWire(o.alpn);
    SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned>(wire.size()));
  }
  const std::string& name = o.verify_name.empty() ? o.sni : o.verify_name;
  if (!o.ca_file.empty() && !name.empty()) {
    if (isIpLiteral(name)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
    } else {
      SSL_set1_host(ssl, name.c_str());
    }
  }
  if (o.session) SSL_set_session(ssl, o.session.get());

  for (;;) {
    ERR_clear_error();
    errno = 0;
    int r = SSL_connect(ssl);
    if (r == 1) return c;
    Step s = waitFor(ssl, c->fd_, r, deadline);
    if (s == Step::kRetry) continue;
    if (s == Step::kTimeout) return failWith("handshake timed out");
    int err = errno;
    std::string msg = drainErrors();
    long vr = SSL_get_verify_result(ssl);
    if (!o.ca_file.empty() && vr != X509_V_OK)
      msg += std::string(": ") + X509_verify_cert_error_string(vr);
    if (msg.empty()) {
      msg = err != 0 ? "handshake failed: " + errnoStr(err)
                     : "connection closed during the handshake";
    }
    return failWith(msg);
  }
}

TlsClient::~TlsClient() {
  close(0ms);
  SSL_free(ssl_);
  SSL_CTX_free(ctx_);
}

std::string TlsClient::version() const { return SSL_get_version(ssl_); }

std::string TlsClient::cipher() const { return SSL_get_cipher_name(ssl_); }

std::string TlsClient::alpn() const {
  const unsigned char* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return std::string(reinterpret_cast<const char*>(p), len);
}

bool TlsClient::resumed() const { return SSL_session_reused(ssl_) == 1; }

std::optional<CertInfo> TlsClient::peerCert() const {
  X509* peer = SSL_get0_peer_certificate(ssl_);
  if (peer == nullptr) return std::nullopt;
  return inspectCert(peer);
}

long TlsClient::verifyResult() const { return SSL_get_verify_result(ssl_); }

TlsSession TlsClient::session() const {
  if (session_) return session_;
  SSL_SESSION* s = SSL_get1_session(ssl_);
  return s ? TlsSession(s, SSL_SESSION_free) : nullptr;
}

bool TlsClient::sendAll(std::string_view data, ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  size_t off = 0;
  while (off < data.size()) {
    if (fd_ < 0 || failed()) return false;
    ERR_clear_error();
    errno = 0;
    int w = SSL_write(ssl_, data.data() + off,
                      static_cast<int>(std::min<size_t>(data.size() - off, 1 << 20)));
    if (w > 0) {
      off += static_cast<size_t>(w);
      continue;
    }
    Step s = waitFor(ssl_, fd_, w, deadline);
    if (s == Step::kTimeout) return false;
    if (s == Step::kFailed) {
      int err = errno;
      error_ = drainErrors();
      if (error_.empty()) error_ = "write failed: " + (err ? errnoStr(err) : std::string("EOF"));
      return false;
    }
  }
  return true;
}

// Reads once into pending_ (waiting until the deadline). True on progress: data, or a new
// session (ticket) while no data is available. False on timeout or when the connection ended.
bool TlsClient::fill(TimePoint deadline) {
  if (fd_ < 0 || closedByPeer()) return false;
  const SSL_SESSION* had = session_.get();
  char buf[65536];
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(ssl_, buf, sizeof buf);
    if (r > 0) {
      pending_.append(buf, static_cast<size_t>(r));
      return true;
    }
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_ZERO_RETURN) {
      close_notify_ = true;
      return false;
    }
    if (e == SSL_ERROR_WANT_READ && session_.get() != had) return true;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      if (pollOne(fd_, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline) == 0) return false;
      continue;
    }
    int err = errno;
    if (e == SSL_ERROR_SSL &&
        ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
      ERR_clear_error();
      eof_ = true;
      return false;
    }
    error_ = drainErrors();
    if (error_.empty()) error_ = "read failed: " + (err ? errnoStr(err) : std::string("EOF"));
    return false;
  }
}

std::string TlsClient::recvSome(ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  while (pending_.empty() && fill(deadline)) {
  }
  return std::exchange(pending_, std::string());
}

std::string TlsClient::recvExactly(size_t n, ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  while (pending_.size() < n && fill(deadline)) {
  }
  size_t k = std::min(n, pending_.size());
  std::string out = pending_.substr(0, k);
  pending_.erase(0, k);
  return out;
}

std::string TlsClient::recvUntilClose(ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  while (fill(deadline)) {
  }
  return std::exchange(pending_, std::string());
}

HttpResponse TlsClient::recvHttpResponse(ms timeout, bool head_request) {
  const TimePoint deadline = Clock::now() + timeout;
  for (;;) {
    HttpResponse r = parseHttpResponse(pending_, false, head_request);
    if (r.status != 0) {
      pending_.clear();
      return r;
    }
    if (!fill(deadline)) {
      if (closedByPeer()) {
        r = parseHttpResponse(pending_, true, head_request);
        if (r.status == 0 && failed()) r.error += " (" + error_ + ")";
      } else {
        r = HttpResponse{};
        r.error = "timed out after " + std::to_string(timeout.count()) + " ms; got " +
                  std::to_string(pending_.size()) + " bytes";
      }
      pending_.clear();
      return r;
    }
  }
}

TlsSession TlsClient::waitSession(ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  for (;;) {
    if (session_ && SSL_SESSION_is_resumable(session_.get())) return session_;
    // fill keeps application data in pending_ for the recv* calls.
    if (!fill(deadline)) return nullptr;
  }
}

void TlsClient::close(ms timeout) {
  if (fd_ < 0) return;
  if (!failed() && SSL_is_init_finished(ssl_)) {
    const TimePoint deadline = Clock::now() + timeout;
    for (;;) {
      ERR_clear_error();
      int r = SSL_shutdown(ssl_);  // 0: our close_notify is sent (we do not wait for theirs)
      if (r >= 0 || waitFor(ssl_, fd_, r, deadline) != Step::kRetry) break;
    }
    ERR_clear_error();
  }
  closeFd(fd_);
}

HttpResponse httpsGet(uint16_t port, const std::string& host, const std::string& path,
                      TlsClientOptions opts, ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  if (opts.sni.empty()) {
    std::string h = host;
    if (!h.empty() && h.front() != '[' && h.find(':') != std::string::npos) h.erase(h.rfind(':'));
    if (!h.empty() && h.front() != '[' && !isIpLiteral(h)) opts.sni = h;
  }
  HttpResponse res;
  TlsError err;
  auto c = TlsClient::connect(port, opts, timeout, &err);
  if (!c) {
    res.error = "TLS connect to 127.0.0.1:" + std::to_string(port) + ": " + err.message;
    return res;
  }
  const std::string req =
      "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
  if (!c->sendAll(req, ms(remainingMs(deadline)))) {
    // The server may have answered and closed early: still try to read a response.
  }
  return c->recvHttpResponse(ms(remainingMs(deadline)));
}

}  // namespace ferry::testing
