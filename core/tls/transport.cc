// The TLS transport: one SSL per connection, driven over the connection's own buffers.
// A BIO of our own reads ciphertext straight from the raw input Buffer and appends what
// OpenSSL writes to the raw output Buffer, so records leave with the connection's batched
// sends. Worker-local.
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstring>

#include "core/event/worker.h"
#include "core/log.h"
#include "core/tls/internal.h"

namespace ferry::core::tls {
namespace {

// What the BIO reads from and writes to during one transport call.
struct BioIo {
  Buffer* in = nullptr;
  Buffer* out = nullptr;
  bool eof = false;
};

int bioRead(BIO* b, char* data, size_t len, size_t* read) {
  auto* io = static_cast<BioIo*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (io->in == nullptr || io->in->empty()) {
    if (io->in == nullptr || !io->eof) BIO_set_retry_read(b);
    *read = 0;
    return 0;
  }
  size_t n = std::min(len, io->in->length());
  io->in->copyOut(0, n, data);
  io->in->drain(n);
  *read = n;
  return 1;
}

int bioWrite(BIO* b, const char* data, size_t len, size_t* written) {
  auto* io = static_cast<BioIo*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (io->out == nullptr) {  // never: every SSL call runs with an output buffer
    BIO_set_retry_write(b);
    *written = 0;
    return 0;
  }
  io->out->add(data, len);
  *written = len;
  return 1;
}

long bioCtrl(BIO*, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    default:
      return 0;
  }
}

int bioCreate(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

BIO_METHOD* bioMethod() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ferry buffer");
    BIO_meth_set_read_ex(method, bioRead);
    BIO_meth_set_write_ex(method, bioWrite);
    BIO_meth_set_ctrl(method, bioCtrl);
    BIO_meth_set_create(method, bioCreate);
    return method;
  }();
  return m;
}

int exIndex() {
  static int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

// The first bytes of a plain-HTTP request: an upper-case method token.
bool looksLikeHttp(const Buffer& in) {
  char first[8] = {};
  size_t n = std::min<size_t>(in.length(), sizeof first);
  in.copyOut(0, n, first);
  for (size_t i = 0; i < n; ++i) {
    if (first[i] == ' ') return i > 0;
    if (first[i] < 'A' || first[i] > 'Z') return false;
  }
  return n > 0;
}

constexpr std::string_view kHttpOnTls =
    "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 54\r\nconnection: close\r\n\r\n"
    "Bad Request: this port expects TLS (use https:// here)\n";

HandshakeFailure classify(unsigned long err, bool raw_eof) {
  if (err == 0) return raw_eof ? HandshakeFailure::kPeerClosed : HandshakeFailure::kOther;
  if (ERR_GET_LIB(err) != ERR_LIB_SSL) return HandshakeFailure::kOther;
  switch (ERR_GET_REASON(err)) {
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
      return HandshakeFailure::kHttpRequest;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_UNEXPECTED_MESSAGE:
    case SSL_R_UNEXPECTED_RECORD:
    case SSL_R_LENGTH_MISMATCH:
    case SSL_R_BAD_PACKET_LENGTH:
    case SSL_R_BAD_PACKET:
      return HandshakeFailure::kNotTls;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
      return HandshakeFailure::kProtocolVersion;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
      return HandshakeFailure::kNoSharedCipher;
    case SSL_R_NO_APPLICATION_PROTOCOL:
    case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
      return HandshakeFailure::kNoApplicationProtocol;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
      return HandshakeFailure::kPeerCertificate;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
      return HandshakeFailure::kPeerClosed;
    default:
      return HandshakeFailure::kOther;
  }
}

class TlsTransport final : public net::TransportSocket {
 public:
  // Server side.
  TlsTransport(std::shared_ptr<const ServerContext> sc)
      : server_(std::move(sc)), stats_(&server_->stats), main_shard_(server_->main_shard) {
    init(server_->initial());
    SSL_set_accept_state(ssl_);
  }
  // Client side.
  TlsTransport(std::shared_ptr<const ClientContext> cc, const std::string& hostname, const std::string& address)
      : client_(std::move(cc)), stats_(&client_->stats), main_shard_(client_->main_shard) {
    init(client_->ctx);
    SSL_set_connect_state(ssl_);
    const std::string& sni = client_->sni.empty() ? hostname : client_->sni;
    in6_addr a6;
    const bool is_ip = inet_pton(AF_INET, sni.c_str(), &a6) == 1 || inet_pton(AF_INET6, sni.c_str(), &a6) == 1;
    if (!sni.empty() && !is_ip) SSL_set_tlsext_host_name(ssl_, sni.c_str());
    const std::string& verify = client_->verify_name.empty() ? sni : client_->verify_name;
    if (client_->verify && !verify.empty()) {
      if (is_ip && verify == sni)
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), verify.c_str());
      else
        SSL_set1_host(ssl_, verify.c_str());
    }
    if (client_->session_reuse) {
      session_key_ = sni + "|" + address;
      if (SSL_SESSION* s = findClientSession(client_->cache_id, session_key_)) SSL_set_session(ssl_, s);
    }
  }
  ~TlsTransport() override {
    // A connection closed without close_notify (an idle pooled one, a client that went
    // away) leaves its session resumable: OpenSSL would otherwise mark it bad on SSL_free.
    // Not after a fatal error, whose session must not be resumed (RFC 5246 7.2.2).
    if (done_ && !fatal_) SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(ssl_);  // frees the BIO too
    ERR_clear_error();
  }

  const std::string* sessionKey() const { return session_key_.empty() ? nullptr : &session_key_; }
  std::string* helloName() { return &hello_name_; }

  std::string_view name() const override { return "tls"; }
  bool ready() const override { return done_; }
  size_t bufferedBytes() const override { return held_.length(); }
  std::string_view protocol() const override { return alpn_; }
  std::shared_ptr<const net::TlsSessionInfo> tlsInfo() const override { return info_; }

  net::TransportResult onConnected(Buffer& raw_out) override {
    if (!client_) return {};
    Buffer none;
    Scope scope(*this, &none, &raw_out, false);
    return handshake(false);
  }

  void onHandshakeTimeout() override { fail(HandshakeFailure::kTimeout); }

  net::TransportResult doRead(Buffer& raw_in, bool raw_eof, Buffer& plain_out, Buffer& raw_out) override {
    Scope scope(*this, &raw_in, &raw_out, raw_eof);
    net::TransportResult r;
    if (!done_) {
      if (server_ && !seen_bytes_ && !raw_in.empty()) {
        seen_bytes_ = true;
        if (looksLikeHttp(raw_in)) {  // plain HTTP sent to a TLS port: say so, then close
          raw_in.clear();
          raw_out.add(kHttpOnTls);
          fail(HandshakeFailure::kHttpRequest);
          r.close = true;
          r.error = "plain HTTP request on a TLS port";
          return r;
        }
      }
      r = handshake(raw_eof);
      if (r.close || !done_) return r;
    }
    if (!held_.empty() || held_end_) {  // plaintext written before the handshake finished
      bool end = held_end_;
      held_end_ = false;
      r = encrypt(held_, end, raw_out);
      if (r.close) return r;
    }
    for (;;) {
      iovec iov[1];
      plain_out.reserve(iov, 1);
      size_t n = 0;
      int rc = SSL_read_ex(ssl_, iov[0].iov_base, iov[0].iov_len, &n);
      if (rc == 1) {
        plain_out.commit(n);
        // Nothing left to decrypt: no ciphertext in raw_in and none held inside OpenSSL
        // (without read-ahead it takes exactly one record at a time). Another call could only
        // say WANT_READ, and costs a pass through the record layer per request.
        if (!raw_eof && raw_in.empty() && SSL_has_pending(ssl_) == 0) break;
        continue;
      }
      plain_out.commit(0);
      int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_ZERO_RETURN) {  // close_notify
        r.end_stream = true;
        break;
      }
      // Our BIO reports the peer's FIN as a read of nothing that is not to be retried.
      if (err == SSL_ERROR_WANT_READ || (err == SSL_ERROR_SYSCALL && raw_eof)) {
        if (raw_eof && raw_in.empty()) {
          if (SSL_has_pending(ssl_) == 1) {  // the FIN cut a record: the stream is not whole
            fatal_ = true;
            r.close = true;
            r.error = "read: the peer closed in the middle of a TLS record";
          } else {
            r.end_stream = true;  // a FIN without close_notify, between records
          }
        }
        if (err == SSL_ERROR_SYSCALL) ERR_clear_error();
        break;
      }
      fatal_ = true;
      r.close = true;
      r.error = errorText("read");
      ERR_clear_error();
      break;
    }
    return r;
  }

  net::TransportResult doWrite(Buffer& plain_in, bool end_stream, Buffer& raw_out) override {
    if (!done_) {
      held_.move(plain_in);
      held_end_ = held_end_ || end_stream;
      return {};
    }
    Scope scope(*this, nullptr, &raw_out, false);
    return encrypt(plain_in, end_stream, raw_out);
  }

  void shutdown(Buffer& raw_out) override {
    if (!done_ || shutdown_sent_) return;
    Scope scope(*this, nullptr, &raw_out, false);
    shutdown_sent_ = true;
    if (SSL_shutdown(ssl_) < 0) ERR_clear_error();
  }

 private:
  // Points the BIO at this call's buffers. The thread's OpenSSL error queue is empty on
  // entry: every call that fails clears it before returning (clearing it on every call
  // costs ~5% of an HTTPS request).
  struct Scope {
    Scope(TlsTransport& t, Buffer* in, Buffer* out, bool eof) : t_(t) { t_.io_ = BioIo{in, out, eof}; }
    ~Scope() { t_.io_ = BioIo{}; }
    TlsTransport& t_;
  };

  void init(SSL_CTX* ctx) {
    ssl_ = SSL_new(ctx);
    BIO* bio = BIO_new(bioMethod());
    BIO_set_data(bio, &io_);
    SSL_set_bio(ssl_, bio, bio);
    SSL_set_ex_data(ssl_, exIndex(), this);
  }

  StatsShard* shard() const { return currentShard(main_shard_); }

  void fail(HandshakeFailure f) {
    if (failed_ || done_) return;
    failed_ = true;
    if (StatsShard* s = shard()) s->inc(stats_->failures[static_cast<int>(f)]);
  }

  std::string errorText(const char* what) {
    unsigned long e = ERR_peek_error();
    std::string out = what;
    if (e != 0) {
      const char* reason = ERR_reason_error_string(e);
      out += ": ";
      out += reason != nullptr ? reason : "error";
    }
    if (long v = SSL_get_verify_result(ssl_); v != X509_V_OK) {
      out += " (";
      out += X509_verify_cert_error_string(v);
      out += ")";
    }
    return out;
  }

  net::TransportResult handshake(bool raw_eof) {
    net::TransportResult r;
    int rc = SSL_do_handshake(ssl_);
    if (rc == 1) {
      done_ = true;
      onHandshakeDone();
      ERR_clear_error();  // once per connection: nothing a lookup above left behind stays
      return r;
    }
    int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ && !raw_eof) return r;
    unsigned long e = ERR_peek_error();
    HandshakeFailure f = classify(e, raw_eof);
    if (client_ && f == HandshakeFailure::kOther && SSL_get_verify_result(ssl_) != X509_V_OK)
      f = HandshakeFailure::kPeerCertificate;
    fail(f);
    r.close = true;
    r.error = e == 0 && raw_eof ? std::string("peer closed during the TLS handshake") : errorText("handshake");
    ERR_clear_error();
    return r;
  }

  void onHandshakeDone() {
    const unsigned char* proto = nullptr;
    unsigned int proto_len = 0;
    SSL_get0_alpn_selected(ssl_, &proto, &proto_len);
    alpn_.assign(reinterpret_cast<const char*>(proto), proto_len);
    const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
    const bool resumed = SSL_session_reused(ssl_) == 1;
    if (StatsShard* s = shard()) {
      s->inc(stats_->handshakes);
      if (resumed) s->inc(stats_->resumed);
      s->inc(SSL_version(ssl_) == TLS1_3_VERSION ? stats_->tls13 : stats_->tls12);
      const char* cname = SSL_CIPHER_get_name(cipher);
      for (const auto& c : stats_->ciphers)
        if (c.name == cname) s->inc(c.handle);
    }
    if (!server_) return;
    auto info = std::make_shared<net::TlsSessionInfo>();
    info->version = SSL_get_version(ssl_);
    info->cipher = SSL_CIPHER_get_name(cipher);
    info->sni = hello_name_;  // as this ClientHello asked (lower case), resumed or not
    info->alpn = alpn_;
    info->resumed = resumed;
    X509* peer = SSL_get0_peer_certificate(ssl_);
    if (peer != nullptr && SSL_get_verify_result(ssl_) == X509_V_OK) {
      info->peer_verified = true;
      info->peer_subject = subjectOf(peer);
      info->peer_hash = sha256Of(peer);
      forEachAltName(peer, [&](int type, std::string v) {
        if (type == GEN_DNS) info->peer_dns.push_back(std::move(v));
        if (type == GEN_URI) info->peer_uri.push_back(std::move(v));
      });
    }
    info_ = std::move(info);
  }

  // Plaintext to records. Small slices (a response head, a short body) are gathered so that
  // they leave in one record; slices of a few kB and more are encrypted where they are.
  net::TransportResult encrypt(Buffer& plain, bool end_stream, Buffer& raw_out) {
    net::TransportResult r;
    constexpr size_t kGather = 16384;
    thread_local unsigned char scratch[kGather];
    size_t gathered = 0;
    auto write = [&](const void* p, size_t n) {
      size_t written = 0;
      if (SSL_write_ex(ssl_, p, n, &written) != 1 || written != n) {
        fatal_ = true;
        r.close = true;
        r.error = errorText("write");
        ERR_clear_error();
        return false;
      }
      return true;
    };
    while (!plain.empty() && !r.close) {
      iovec iov[16];
      size_t cnt = plain.gather(iov, 16);
      size_t used = 0;
      for (size_t i = 0; i < cnt && !r.close; ++i) {
        const size_t len = iov[i].iov_len;
        if (len >= 4096 || gathered + len > kGather) {
          if (gathered > 0 && !write(scratch, gathered)) break;
          gathered = 0;
        }
        if (len >= 4096) {
          if (!write(iov[i].iov_base, len)) break;
        } else {
          std::memcpy(scratch + gathered, iov[i].iov_base, len);
          gathered += len;
        }
        used += len;
      }
      plain.drain(used);
    }
    if (!r.close && gathered > 0) write(scratch, gathered);
    plain.clear();
    if (!r.close && end_stream && !shutdown_sent_) {
      shutdown_sent_ = true;
      if (SSL_shutdown(ssl_) < 0) ERR_clear_error();  // close_notify
    }
    return r;
  }

  std::shared_ptr<const ServerContext> server_;
  std::shared_ptr<const ClientContext> client_;
  const TlsStats* stats_;
  StatsShard* main_shard_;
  SSL* ssl_ = nullptr;
  BioIo io_;
  Buffer held_;  // plaintext written before the handshake finished
  bool held_end_ = false;
  bool done_ = false;
  bool failed_ = false;
  bool fatal_ = false;  // a fatal error after the handshake: the session is not resumable
  bool seen_bytes_ = false;
  bool shutdown_sent_ = false;
  std::string alpn_;
  std::string session_key_;  // client: keys the session kept for reuse
  std::string hello_name_;   // server: the ClientHello's server name (lower case)
  std::shared_ptr<const net::TlsSessionInfo> info_;
};

}  // namespace

const std::string* transportSessionKey(SSL* ssl) {
  auto* t = static_cast<TlsTransport*>(SSL_get_ex_data(ssl, exIndex()));
  return t != nullptr ? t->sessionKey() : nullptr;
}

std::string* transportHelloName(SSL* ssl) {
  auto* t = static_cast<TlsTransport*>(SSL_get_ex_data(ssl, exIndex()));
  return t != nullptr ? t->helloName() : nullptr;
}

std::unique_ptr<net::TransportSocket> newServerTransport(const std::shared_ptr<const ServerContext>& ctx) {
  return std::make_unique<TlsTransport>(ctx);
}

std::unique_ptr<net::TransportSocket> newClientTransport(const std::shared_ptr<const ClientContext>& ctx,
                                                         const std::string& hostname, const std::string& address) {
  return std::make_unique<TlsTransport>(ctx, hostname, address);
}

net::TransportFactory ServerContextProvider::factory(std::shared_ptr<const ServerContextProvider> provider) {
  return [p = std::move(provider)] {
    Worker* w = Worker::current();
    return newServerTransport(p->slots_[w != nullptr ? w->index() : 0].ctx);
  };
}

}  // namespace ferry::core::tls
