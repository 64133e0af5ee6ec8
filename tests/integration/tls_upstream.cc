// TlsUpstream: blocking OpenSSL on FakeUpstream's per-connection threads.
#include "tests/integration/tls_upstream.h"

#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>

#include "tests/integration/harness_internal.h"

namespace ferry::testing {

using namespace detail;

namespace {

std::string drainErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* r = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    out += r ? r : "error " + std::to_string(ERR_GET_REASON(e));
  }
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The value of header `name` (lower-case) in a request head; "" if absent.
std::string headerValue(const std::string& head, const std::string& name) {
  size_t pos = head.find("\r\n");
  while (pos != std::string::npos && pos + 2 < head.size()) {
    size_t start = pos + 2, end = head.find("\r\n", start);
    std::string line =
        head.substr(start, end == std::string::npos ? std::string::npos : end - start);
    size_t colon = line.find(':');
    if (colon != std::string::npos && lower(line.substr(0, colon)) == name) {
      std::string v = line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      v.erase(v.find_last_not_of(" \t") + 1);
      return v;
    }
    pos = end;
  }
  return "";
}

// Reads more application data into buf; false once the connection ended (close_notify, EOF,
// error).
bool readMore(SSL* ssl, std::string& buf) {
  char tmp[16384];
  ERR_clear_error();
  int r = SSL_read(ssl, tmp, sizeof tmp);
  if (r <= 0) return false;
  buf.append(tmp, static_cast<size_t>(r));
  return true;
}

bool writeAll(SSL* ssl, const std::string& data) {
  ERR_clear_error();
  return data.empty() || SSL_write(ssl, data.data(), static_cast<int>(data.size())) > 0;
}

// Reads a chunked body from buf (more from ssl as needed), starting at pos; returns the
// position after it, or npos if the connection ended or the framing is bad.
size_t skipChunked(SSL* ssl, std::string& buf, size_t pos) {
  for (;;) {
    size_t eol;
    while ((eol = buf.find("\r\n", pos)) == std::string::npos) {
      if (!readMore(ssl, buf)) return std::string::npos;
    }
    size_t n = std::strtoul(buf.substr(pos, eol - pos).c_str(), nullptr, 16);
    pos = eol + 2;
    if (n == 0) {  // trailers up to an empty line
      for (;;) {
        while ((eol = buf.find("\r\n", pos)) == std::string::npos) {
          if (!readMore(ssl, buf)) return std::string::npos;
        }
        bool last = eol == pos;
        pos = eol + 2;
        if (last) return pos;
      }
    }
    while (buf.size() < pos + n + 2) {
      if (!readMore(ssl, buf)) return std::string::npos;
    }
    pos += n + 2;
  }
}

// Shuts our side down and reads until the peer closes (bounded), so closing does not turn
// into a RST that could destroy data (an alert) the peer has not read yet.
void lingerClose(int fd) {
  ::shutdown(fd, SHUT_WR);
  const TimePoint deadline = Clock::now() + 10s;
  char buf[4096];
  while (pollOne(fd, POLLIN, deadline) != 0) {
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
  }
}

}  // namespace

struct TlsUpstream::State {
  TlsUpstreamOptions opts;
  SSL_CTX* ctx = nullptr;
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  std::vector<TlsHandshakeSeen> seen;
  size_t ok = 0, resumed = 0, failed = 0;
  std::vector<std::string> heads;

  ~State() { SSL_CTX_free(ctx); }

  void record(TlsHandshakeSeen s) {
    std::lock_guard<std::mutex> lk(mu);
    ok += s.ok;
    resumed += s.ok && s.resumed;
    failed += !s.ok;
    seen.push_back(std::move(s));
    cv.notify_all();
  }

  static int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen,
                        const unsigned char* in, unsigned inlen, void* arg) {
    const std::string& wire = *static_cast<const std::string*>(arg);
    unsigned char* sel = nullptr;
    if (SSL_select_next_proto(&sel, outlen, reinterpret_cast<const unsigned char*>(wire.data()),
                              static_cast<unsigned>(wire.size()), in,
                              inlen) != OPENSSL_NPN_NEGOTIATED) {
      return SSL_TLSEXT_ERR_NOACK;
    }
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
  }
  std::string alpn_wire;

  void serve(int fd) {
    std::unique_ptr<SSL, decltype(&SSL_free)> owned(SSL_new(ctx), SSL_free);
    SSL* ssl = owned.get();
    if (ssl == nullptr) return;
    SSL_set_fd(ssl, fd);
    ERR_clear_error();
    TlsHandshakeSeen s;
    if (SSL_accept(ssl) != 1) {
      s.error = drainErrors();
      long vr = SSL_get_verify_result(ssl);
      if (vr != X509_V_OK) s.error += std::string(": ") + X509_verify_cert_error_string(vr);
      if (s.error.empty()) s.error = "connection closed during the handshake";
      record(std::move(s));
      lingerClose(fd);
      return;
    }
    s.ok = true;
    s.version = SSL_get_version(ssl);
    s.cipher = SSL_get_cipher_name(ssl);
    const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    s.sni = sni ? sni : "";
    const unsigned char* a = nullptr;
    unsigned alen = 0;
    SSL_get0_alpn_selected(ssl, &a, &alen);
    s.alpn.assign(reinterpret_cast<const char*>(a), alen);
    s.resumed = SSL_session_reused(ssl) == 1;
    if (X509* peer = SSL_get0_peer_certificate(ssl)) s.client_cert = inspectCert(peer);
    record(s);
    if (opts.mode == TlsUpstreamOptions::Mode::kEcho) {
      std::string buf;
      while (readMore(ssl, buf)) {
        if (!writeAll(ssl, buf)) return;
        buf.clear();
      }
    } else {
      serveHttp(ssl, fd, s);
    }
    if (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) SSL_shutdown(ssl);  // answer close_notify
  }

  void serveHttp(SSL* ssl, int fd, const TlsHandshakeSeen& s) {
    std::string buf;
    for (;;) {
      size_t head_end;
      while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!readMore(ssl, buf)) return;
      }
      std::string head = buf.substr(0, head_end + 2);
      size_t pos = head_end + 4;
      if (lower(headerValue(head, "transfer-encoding")).find("chunked") != std::string::npos) {
        pos = skipChunked(ssl, buf, pos);
        if (pos == std::string::npos) return;
      } else {
        size_t len = std::strtoull(headerValue(head, "content-length").c_str(), nullptr, 10);
        while (buf.size() < pos + len) {
          if (!readMore(ssl, buf)) return;
        }
        pos += len;
      }
      buf.erase(0, pos);
      {
        std::lock_guard<std::mutex> lk(mu);
        heads.push_back(head);
      }
      const bool close = lower(headerValue(head, "connection")) == "close" ||
                         head.find(" HTTP/1.0\r\n") != std::string::npos;
      std::string client_uri =
          s.client_cert && !s.client_cert->uris.empty() ? s.client_cert->uris[0] : "";
      std::string resp =
          "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-upstream: " + opts.name +
          "\r\nx-tls-version: " + s.version + "\r\nx-tls-cipher: " + s.cipher +
          "\r\nx-tls-sni: " + s.sni + "\r\nx-tls-alpn: " + s.alpn +
          "\r\nx-tls-resumed: " + (s.resumed ? "true" : "false") +
          "\r\nx-tls-client-cn: " + (s.client_cert ? s.client_cert->common_name : "") +
          "\r\nx-tls-client-uri: " + client_uri +
          "\r\ncontent-length: " + std::to_string(opts.name.size()) + "\r\n" +
          (close ? "connection: close\r\n" : "") + "\r\n" + opts.name;
      if (!writeAll(ssl, resp)) return;
      if (close) {
        ERR_clear_error();
        SSL_shutdown(ssl);
        lingerClose(fd);
        return;
      }
    }
  }
};

TlsUpstream::TlsUpstream(TlsUpstreamOptions opts) : st_(std::make_shared<State>()) {
  State& st = *st_;
  st.opts = std::move(opts);
  const TlsUpstreamOptions& o = st.opts;
  auto fail = [&](const std::string& what) {
    throw HarnessError("TlsUpstream: " + what + ": " + drainErrors());
  };
  ERR_clear_error();
  st.ctx = SSL_CTX_new(TLS_server_method());
  if (st.ctx == nullptr) fail("SSL_CTX_new");
  SSL_CTX* ctx = st.ctx;
  if (o.security_level >= 0) SSL_CTX_set_security_level(ctx, o.security_level);
  if (!o.cipher_list.empty() && !SSL_CTX_set_cipher_list(ctx, o.cipher_list.c_str())) {
    fail("cipher_list " + o.cipher_list);
  }
  if (o.min_version && !SSL_CTX_set_min_proto_version(ctx, o.min_version)) fail("min_version");
  if (o.max_version && !SSL_CTX_set_max_proto_version(ctx, o.max_version)) fail("max_version");
  if (!SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) ||
      !SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) ||
      !SSL_CTX_check_private_key(ctx)) {
    fail("certificate " + o.cert_file + " / key " + o.key_file);
  }
  // Needed for resumption whenever client certificates are verified.
  static const unsigned char kSidCtx[] = "ferry-tls-upstream";
  SSL_CTX_set_session_id_context(ctx, kSidCtx, sizeof kSidCtx - 1);
  if (!o.session_tickets) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (!o.client_ca_file.empty()) {
    if (!SSL_CTX_load_verify_locations(ctx, o.client_ca_file.c_str(), nullptr)) {
      fail("client CA file " + o.client_ca_file);
    }
    SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(o.client_ca_file.c_str()));
    SSL_CTX_set_verify(
        ctx, SSL_VERIFY_PEER | (o.client_cert_optional ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
        nullptr);
  }
  if (!o.alpn.empty()) {
    for (const auto& p : o.alpn) st.alpn_wire += static_cast<char>(p.size()) + p;
    SSL_CTX_set_alpn_select_cb(ctx, State::selectAlpn, &st.alpn_wire);
  }
  server_ = std::make_unique<FakeUpstream>([st = st_](int fd) { st->serve(fd); });
}

TlsUpstream::~TlsUpstream() {
  server_.reset();  // joins every connection thread before the SSL_CTX goes
}

size_t TlsUpstream::handshakes() const {
  std::lock_guard<std::mutex> lk(st_->mu);
  return st_->ok;
}

size_t TlsUpstream::resumedHandshakes() const {
  std::lock_guard<std::mutex> lk(st_->mu);
  return st_->resumed;
}

size_t TlsUpstream::failedHandshakes() const {
  std::lock_guard<std::mutex> lk(st_->mu);
  return st_->failed;
}

std::vector<TlsHandshakeSeen> TlsUpstream::seen() const {
  std::lock_guard<std::mutex> lk(st_->mu);
  return st_->seen;
}

bool TlsUpstream::waitHandshakes(size_t n, ms timeout) const {
  std::unique_lock<std::mutex> lk(st_->mu);
  return st_->cv.wait_for(lk, timeout, [&] { return st_->ok >= n; });
}

bool TlsUpstream::waitFailedHandshakes(size_t n, ms timeout) const {
  std::unique_lock<std::mutex> lk(st_->mu);
  return st_->cv.wait_for(lk, timeout, [&] { return st_->failed >= n; });
}

std::vector<std::string> TlsUpstream::requestHeads() const {
  std::lock_guard<std::mutex> lk(st_->mu);
  return st_->heads;
}

}  // namespace ferry::testing
