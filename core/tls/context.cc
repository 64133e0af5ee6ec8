// Building TLS contexts (main thread) and the callbacks OpenSSL runs during handshakes on
// the workers: SNI selection, ALPN, client-certificate checks. Sessions and ticket keys are
// in sessions.cc, certificate reading in x509.cc.
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <optional>

#include "core/event/worker.h"
#include "core/log.h"
#include "core/tls/internal.h"

namespace ferry::core::tls {
namespace {

std::atomic<uint64_t> next_id{1};

const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
const char* kDefaultCurves = "X25519:P-256:P-384";

// The newest OpenSSL error as text, and the queue cleared.
std::string opensslError(const std::string& what) {
  unsigned long e = ERR_peek_last_error();
  std::string out = what;
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    const char* reason = ERR_reason_error_string(e);
    out += ": ";
    out += reason != nullptr ? reason : buf;
  }
  ERR_clear_error();
  return out;
}

int versionOf(const std::string& v) { return v == "TLSv1.3" ? TLS1_3_VERSION : TLS1_2_VERSION; }

// Never prompt for a passphrase (an encrypted key is an error).
int noPassphrase(char*, int, int, void*) { return -1; }

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct ChainFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};

struct LoadedCert {
  std::unique_ptr<X509, X509Free> leaf;
  std::unique_ptr<EVP_PKEY, PkeyFree> key;
  std::unique_ptr<STACK_OF(X509), ChainFree> chain;
  CertificateInfo info;
  int key_id = 0;  // EVP_PKEY base id
};

std::vector<std::string> dnsNames(X509* x) {
  std::vector<std::string> names;
  forEachAltName(x, [&](int type, std::string v) {
    if (type == GEN_DNS) names.push_back(lowerAscii(std::move(v)));
  });
  if (names.empty()) {  // no DNS SAN: the subject's common name
    X509_NAME* subject = X509_get_subject_name(x);
    int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (idx >= 0) {
      ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
      unsigned char* utf8 = nullptr;
      int len = ASN1_STRING_to_UTF8(&utf8, cn);
      if (len > 0) names.push_back(lowerAscii(std::string(reinterpret_cast<char*>(utf8), static_cast<size_t>(len))));
      OPENSSL_free(utf8);
    }
  }
  return names;
}

int64_t notAfter(X509* x) {
  tm t{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &t) != 1) return 0;
  return static_cast<int64_t>(timegm(&t));
}

// Loads a PEM chain and its key; errors at the positions of the file names.
std::optional<LoadedCert> loadCert(const config::TlsCertificate& c, std::vector<BuildError>* errors) {
  LoadedCert out;
  out.info.cert_file = c.cert_file;
  BIO* b = BIO_new_file(c.cert_file.c_str(), "r");
  if (b == nullptr) {
    errors->push_back({c.cert_mark, opensslError("cannot read certificate file '" + c.cert_file + "'")});
    return std::nullopt;
  }
  out.leaf.reset(PEM_read_bio_X509_AUX(b, nullptr, noPassphrase, nullptr));
  if (!out.leaf) {
    BIO_free(b);
    errors->push_back({c.cert_mark, opensslError("no PEM certificate in '" + c.cert_file + "'")});
    return std::nullopt;
  }
  out.chain.reset(sk_X509_new_null());
  while (X509* x = PEM_read_bio_X509(b, nullptr, noPassphrase, nullptr)) sk_X509_push(out.chain.get(), x);
  ERR_clear_error();  // the end of the file reads as "no start line"
  BIO_free(b);

  b = BIO_new_file(c.key_file.c_str(), "r");
  if (b == nullptr) {
    errors->push_back({c.key_mark, opensslError("cannot read key file '" + c.key_file + "'")});
    return std::nullopt;
  }
  out.key.reset(PEM_read_bio_PrivateKey(b, nullptr, noPassphrase, nullptr));
  BIO_free(b);
  if (!out.key) {
    errors->push_back({c.key_mark, opensslError("no usable PEM private key in '" + c.key_file +
                                                "' (encrypted keys are not supported)")});
    return std::nullopt;
  }
  if (X509_check_private_key(out.leaf.get(), out.key.get()) != 1) {
    ERR_clear_error();
    errors->push_back({c.key_mark, "key_file '" + c.key_file + "' does not match the certificate in '" +
                                       c.cert_file + "'"});
    return std::nullopt;
  }
  out.key_id = EVP_PKEY_get_base_id(out.key.get());
  out.info.key_type = out.key_id == EVP_PKEY_RSA ? "RSA"
                      : out.key_id == EVP_PKEY_EC ? "ECDSA"
                      : out.key_id == EVP_PKEY_ED25519 ? "Ed25519"
                                                        : "other";
  out.info.names = dnsNames(out.leaf.get());
  out.info.not_after = notAfter(out.leaf.get());
  out.info.sha256 = sha256Of(out.leaf.get());
  return out;
}

// Settings every SSL_CTX of either side gets. False (and an error) on a bad list.
bool applyProtocol(SSL_CTX* ctx, const config::TlsProtocolConfig& p, std::vector<BuildError>* errors) {
  bool ok = true;
  SSL_CTX_set_min_proto_version(ctx, versionOf(p.min_version));
  SSL_CTX_set_max_proto_version(ctx, versionOf(p.max_version));
  if (SSL_CTX_set_cipher_list(ctx, p.ciphers.empty() ? kDefaultCiphers : p.ciphers.c_str()) != 1) {
    errors->push_back({p.ciphers_mark, opensslError("bad ciphers '" + p.ciphers + "'")});
    ok = false;
  }
  if (!p.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, p.ciphersuites.c_str()) != 1) {
    errors->push_back({p.ciphersuites_mark, opensslError("bad ciphersuites '" + p.ciphersuites + "'")});
    ok = false;
  }
  if (SSL_CTX_set1_groups_list(ctx, p.curves.empty() ? kDefaultCurves : p.curves.c_str()) != 1) {
    errors->push_back({p.curves_mark, opensslError("bad curves '" + p.curves + "'")});
    ok = false;
  }
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  return ok;
}

std::vector<unsigned char> alpnWire(const std::vector<std::string>& protos) {
  std::vector<unsigned char> w;
  for (const auto& p : protos) {
    w.push_back(static_cast<unsigned char>(p.size()));
    w.insert(w.end(), p.begin(), p.end());
  }
  return w;
}

void registerStats(TlsStats& s, StatsStore& store, SSL_CTX* ctx, bool upstream, const std::string& name) {
  const std::string prefix = upstream ? "ferry_upstream_tls_" : "ferry_tls_";
  const std::string key = upstream ? "cluster" : "listener";
  const std::vector<std::pair<std::string, std::string>> labels = {{key, name}};
  s.handshakes = store.counter(prefix + "handshakes_total", labels, "TLS handshakes completed.");
  s.resumed = store.counter(prefix + "resumed_handshakes_total", labels,
                            "TLS handshakes completed by resuming a session.");
  for (int i = 0; i < static_cast<int>(HandshakeFailure::kCount); ++i)
    s.failures[i] = store.counter(prefix + "handshake_failures_total",
                                  {{key, name}, {"reason", handshakeFailureName(static_cast<HandshakeFailure>(i))}},
                                  "TLS handshakes that failed, by reason.");
  s.tls12 = store.counter(prefix + "connections_by_version_total", {{key, name}, {"version", "TLSv1.2"}},
                          "TLS handshakes completed, by protocol version.");
  s.tls13 = store.counter(prefix + "connections_by_version_total", {{key, name}, {"version", "TLSv1.3"}},
                          "TLS handshakes completed, by protocol version.");
  STACK_OF(SSL_CIPHER)* list = SSL_CTX_get_ciphers(ctx);
  for (int i = 0; i < sk_SSL_CIPHER_num(list); ++i) {
    std::string cipher = SSL_CIPHER_get_name(sk_SSL_CIPHER_value(list, i));
    s.ciphers.push_back({cipher, store.counter(prefix + "connections_by_cipher_total",
                                               {{key, name}, {"cipher", cipher}},
                                               "TLS handshakes completed, by cipher.")});
  }
}

// ---- server callbacks (worker threads)

int onServerName(SSL* ssl, int*, void*) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
  ServerContext* sc = serverOf(ssl);
  SSL_CTX* want = sc->forServerName(name);
  if (want != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, want);
  return SSL_TLSEXT_ERR_OK;
}

int onAlpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
           void*) {
  ServerContext* sc = serverOf(ssl);
  if (sc->alpn_wire.empty()) return SSL_TLSEXT_ERR_NOACK;
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, sc->alpn_wire.data(), static_cast<unsigned>(sc->alpn_wire.size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol (RFC 7301)
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

bool certAllowed(const ServerContext& sc, X509* cert) {
  bool ok = false;
  forEachAltName(cert, [&](int, std::string v) {
    for (const auto& a : sc.allowed_sans)
      if (!v.empty() && a == v) ok = true;
  });
  if (!ok && !sc.allowed_subjects.empty()) {
    const std::string subject = subjectOf(cert);
    for (const auto& a : sc.allowed_subjects)
      if (a == subject) ok = true;
  }
  return ok;
}

int onVerify(int preverify_ok, X509_STORE_CTX* store) {
  if (preverify_ok != 1) return preverify_ok;
  if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  ServerContext* sc = serverOf(ssl);
  if (sc->allowed_sans.empty() && sc->allowed_subjects.empty()) return 1;
  if (certAllowed(*sc, X509_STORE_CTX_get_current_cert(store))) return 1;
  X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}


}  // namespace

const char* handshakeFailureName(HandshakeFailure f) {
  switch (f) {
    case HandshakeFailure::kTimeout: return "timeout";
    case HandshakeFailure::kNotTls: return "not_tls";
    case HandshakeFailure::kHttpRequest: return "http_request";
    case HandshakeFailure::kProtocolVersion: return "protocol_version";
    case HandshakeFailure::kNoSharedCipher: return "no_shared_cipher";
    case HandshakeFailure::kNoApplicationProtocol: return "no_application_protocol";
    case HandshakeFailure::kPeerCertificate: return "peer_certificate";
    case HandshakeFailure::kPeerClosed: return "peer_closed";
    default: return "other";
  }
}

StatsShard* currentShard(StatsShard* main) {
  Worker* w = Worker::current();
  return w != nullptr ? &w->stats() : main;
}


ServerContext::~ServerContext() {
  for (SSL_CTX* c : ctxs_) {
    SSL_CTX_set_app_data(c, nullptr);
    SSL_CTX_free(c);
  }
}

SSL_CTX* ServerContext::forServerName(const char* raw) const {
  std::string name = lowerAscii(raw);
  auto find = [](const std::vector<std::pair<std::string, SSL_CTX*>>& v, const std::string& key) -> SSL_CTX* {
    auto it = std::lower_bound(v.begin(), v.end(), key, [](const auto& e, const std::string& k) { return e.first < k; });
    return it != v.end() && it->first == key ? it->second : nullptr;
  };
  if (SSL_CTX* c = find(exact_, name)) return c;
  size_t dot = name.find('.');
  if (dot != std::string::npos)  // *.example.com covers one label
    if (SSL_CTX* c = find(wildcard_, name.substr(dot + 1))) return c;
  return ctxs_.front();
}

ClientContext::~ClientContext() {
  if (ctx != nullptr) {
    SSL_CTX_set_app_data(ctx, nullptr);
    SSL_CTX_free(ctx);
  }
}

std::vector<std::string> watchedFiles(const config::TlsConfig& cfg) {
  std::vector<std::string> files;
  for (const auto& c : cfg.certificates) {
    files.push_back(c.cert_file);
    files.push_back(c.key_file);
  }
  if (!cfg.client_ca_file.empty()) files.push_back(cfg.client_ca_file);
  return files;
}

const std::vector<CertificateInfo>& certificates(const ServerContext& ctx) { return ctx.certs; }

std::shared_ptr<const ServerContext> buildServerContext(const config::TlsConfig& cfg, const std::string& listener,
                                                        const std::vector<std::string>& default_alpn,
                                                        StatsStore* stats, const ServerContext* keys_from,
                                                        std::vector<BuildError>* errors) {
  ERR_clear_error();
  const size_t errors_before = errors->size();
  auto sc = std::make_shared<ServerContext>();
  sc->listener = listener;
  sc->alpn_wire = alpnWire(cfg.protocol.alpn.empty() ? default_alpn : cfg.protocol.alpn);
  sc->allowed_sans = cfg.allowed_sans;
  sc->allowed_subjects = cfg.allowed_subjects;
  sc->session_cache_size = cfg.session_cache_size;
  if (keys_from != nullptr) {
    sc->tickets = keys_from->tickets;
    sc->cache_id = keys_from->cache_id;
  } else {
    sc->cache_id = next_id.fetch_add(1);
  }
  if (cfg.session_tickets && !sc->tickets) {
    auto t = std::make_shared<TicketSecret>();
    t->id = next_id.fetch_add(1);
    RAND_bytes(t->secret.data(), static_cast<int>(t->secret.size()));
    t->epoch_seconds = std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(cfg.session_timeout).count());
    sc->tickets = std::move(t);
  }
  if (!cfg.session_tickets) sc->tickets.reset();

  std::vector<LoadedCert> loaded;
  for (const auto& c : cfg.certificates)
    if (auto l = loadCert(c, errors)) loaded.push_back(std::move(*l));
  if (errors->size() != errors_before) return nullptr;
  if (loaded.empty()) {
    errors->push_back({cfg.mark, "tls needs at least one certificate"});
    return nullptr;
  }

  // Groups: certificates with the same names share an SSL_CTX (one per key type).
  struct Group {
    std::vector<std::string> names;  // sorted
    std::vector<size_t> certs;
  };
  std::vector<Group> groups;
  for (size_t i = 0; i < loaded.size(); ++i) {
    std::vector<std::string> names = loaded[i].info.names;
    std::sort(names.begin(), names.end());
    auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& x) { return x.names == names; });
    if (g == groups.end()) {
      groups.push_back(Group{names, {i}});
      continue;
    }
    for (size_t other : g->certs)
      if (loaded[other].key_id == loaded[i].key_id) {
        errors->push_back({cfg.certificates[i].cert_mark,
                           "certificate '" + loaded[i].info.cert_file + "' has the same names and key type (" +
                               loaded[i].info.key_type + ") as '" + loaded[other].info.cert_file + "'"});
        return nullptr;
      }
    g->certs.push_back(i);
  }

  // The session id context: the same for every SSL_CTX of the listener, so a session
  // resumes whichever certificate SNI picked.
  unsigned char sid[SSL_MAX_SID_CTX_LENGTH];
  unsigned int sid_len = 0;
  EVP_Digest(listener.data(), listener.size(), sid, &sid_len, EVP_sha256(), nullptr);
  sid_len = std::min<unsigned int>(sid_len, SSL_MAX_SID_CTX_LENGTH);

  struct NamesFree {
    void operator()(STACK_OF(X509_NAME) * n) const { sk_X509_NAME_pop_free(n, X509_NAME_free); }
  };
  std::unique_ptr<STACK_OF(X509_NAME), NamesFree> ca_names;
  for (const Group& g : groups) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr) {
      errors->push_back({cfg.mark, opensslError("cannot create a TLS context")});
      return nullptr;
    }
    sc->ctxs_.push_back(ctx);
    SSL_CTX_set_app_data(ctx, sc.get());
    if (!applyProtocol(ctx, cfg.protocol, errors)) return nullptr;
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | (cfg.session_tickets ? 0 : SSL_OP_NO_TICKET));
    for (size_t i : g.certs) {
      LoadedCert& l = loaded[i];
      if (SSL_CTX_use_cert_and_key(ctx, l.leaf.get(), l.key.get(), l.chain.get(), 1) != 1) {
        errors->push_back({cfg.certificates[i].cert_mark, opensslError("cannot use certificate '" + l.info.cert_file + "'")});
        return nullptr;
      }
    }
    SSL_CTX_set_session_id_context(ctx, sid, sid_len);
    SSL_CTX_set_timeout(ctx, static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(cfg.session_timeout).count()));
    installServerSessions(ctx, cfg, sc->tickets != nullptr);
    SSL_CTX_set_tlsext_servername_callback(ctx, onServerName);
    SSL_CTX_set_alpn_select_cb(ctx, onAlpn, nullptr);
    if (cfg.client_cert != config::TlsConfig::ClientCert::kNone) {
      if (SSL_CTX_load_verify_locations(ctx, cfg.client_ca_file.c_str(), nullptr) != 1) {
        errors->push_back({cfg.client_ca_mark, opensslError("cannot load client_ca_file '" + cfg.client_ca_file + "'")});
        return nullptr;
      }
      if (!ca_names) ca_names.reset(SSL_load_client_CA_file(cfg.client_ca_file.c_str()));
      if (ca_names) SSL_CTX_set_client_CA_list(ctx, SSL_dup_CA_list(ca_names.get()));
      int mode = SSL_VERIFY_PEER;
      if (cfg.client_cert == config::TlsConfig::ClientCert::kRequired) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      SSL_CTX_set_verify(ctx, mode, onVerify);
      SSL_CTX_set_verify_depth(ctx, static_cast<int>(cfg.verify_depth));
    }
  }

  // The SNI table: the first group naming a host serves it.
  for (size_t gi = 0; gi < groups.size(); ++gi)
    for (const auto& n : groups[gi].names) {
      bool wild = n.rfind("*.", 0) == 0;
      auto& table = wild ? sc->wildcard_ : sc->exact_;
      std::string key = wild ? n.substr(2) : n;
      if (std::none_of(table.begin(), table.end(), [&](const auto& e) { return e.first == key; }))
        table.emplace_back(key, sc->ctxs_[gi]);
    }
  auto byName = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::sort(sc->exact_.begin(), sc->exact_.end(), byName);
  std::sort(sc->wildcard_.begin(), sc->wildcard_.end(), byName);
  // The default: the group of the first certificate (groups are in config order).
  for (auto& l : loaded) sc->certs.push_back(l.info);

  if (stats != nullptr) {
    sc->main_shard = &stats->shard(0);
    registerStats(sc->stats, *stats, sc->ctxs_.front(), false, listener);
    for (const auto& c : sc->certs) {
      StatHandle h = stats->gauge("ferry_tls_certificate_expiry_timestamp_seconds",
                                  {{"listener", listener}, {"certificate", c.cert_file}},
                                  "When the certificate expires (unix time).");
      sc->main_shard->add(h, c.not_after - stats->value(h));
    }
  }
  ERR_clear_error();
  return sc;
}

std::shared_ptr<const ClientContext> buildClientContext(const config::UpstreamTlsConfig& cfg,
                                                        const std::string& cluster, StatsStore* stats,
                                                        std::vector<BuildError>* errors) {
  ERR_clear_error();
  auto cc = std::make_shared<ClientContext>();
  cc->cluster = cluster;
  cc->sni = cfg.sni;
  cc->verify_name = cfg.verify_name;
  cc->verify = cfg.verify;
  cc->session_reuse = cfg.session_reuse;
  cc->cache_id = next_id.fetch_add(1);
  cc->ctx = SSL_CTX_new(TLS_client_method());
  if (cc->ctx == nullptr) {
    errors->push_back({cfg.mark, opensslError("cannot create a TLS context")});
    return nullptr;
  }
  SSL_CTX_set_app_data(cc->ctx, cc.get());
  if (!applyProtocol(cc->ctx, cfg.protocol, errors)) return nullptr;
  if (cfg.verify) {
    int ok = cfg.ca_file.empty() ? SSL_CTX_set_default_verify_paths(cc->ctx)
                                 : SSL_CTX_load_verify_locations(cc->ctx, cfg.ca_file.c_str(), nullptr);
    if (ok != 1) {
      errors->push_back({cfg.ca_file.empty() ? cfg.mark : cfg.ca_mark,
                         opensslError(cfg.ca_file.empty() ? "cannot load the system's CA certificates"
                                                          : "cannot load ca_file '" + cfg.ca_file + "'")});
      return nullptr;
    }
    SSL_CTX_set_verify(cc->ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(cc->ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (cfg.client_certificate) {
    auto l = loadCert(*cfg.client_certificate, errors);
    if (!l) return nullptr;
    if (SSL_CTX_use_cert_and_key(cc->ctx, l->leaf.get(), l->key.get(), l->chain.get(), 1) != 1) {
      errors->push_back({cfg.client_certificate->cert_mark, opensslError("cannot use the client certificate")});
      return nullptr;
    }
  }
  if (!cfg.protocol.alpn.empty()) {
    auto wire = alpnWire(cfg.protocol.alpn);
    SSL_CTX_set_alpn_protos(cc->ctx, wire.data(), static_cast<unsigned>(wire.size()));
  }
  installClientSessions(cc->ctx, cfg.session_reuse);
  if (stats != nullptr) {
    cc->main_shard = &stats->shard(0);
    registerStats(cc->stats, *stats, cc->ctx, true, cluster);
  }
  ERR_clear_error();
  return cc;
}

}  // namespace ferry::core::tls
