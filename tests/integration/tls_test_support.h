// What the TLS tests against ferry share (tls_test.cc, tls_reload_test.cc,
// tls_upstream_test.cc): a CA with its certificates on disk, the YAML of a listener's `tls`
// block, metric keys and helpers, and raw ClientHello bytes for handshake-robustness tests.
// Header-only; everything runs on the test's thread (the helpers use REQUIRE).
#pragma once

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <catch2/catch.hpp>
#include <string>
#include <utility>
#include <vector>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/test_certs.h"
#include "tests/integration/tls_client.h"

namespace ferry::testing::tls_test {

// An issued certificate and the files it was written to.
struct Issued {
  IssuedCert cert;
  CertFiles files;
  std::string sha256() const { return cert.sha256(); }
};

// A CA and the certificates a test issues from it, all as files in one TempDir (whose
// absolute paths go into ferry's config).
struct Pki {
  explicit Pki(const std::string& ca_name = "Ferry Test CA")
      : ca(CertAuthority::create(ca_name)), ca_file(ca.writeCert(dir.path(), "ca")) {}
  TempDir dir;
  CertAuthority ca;
  std::string ca_file;  // the CA's certificate: what clients verify ferry's certificates against

  // A server certificate with subject CN `cn` and DNS names `dns`, as <name>.crt / <name>.key.
  Issued server(const std::string& name, const std::string& cn, std::vector<std::string> dns,
                KeyType key = KeyType::kEcP256) const {
    IssuedCert c = ca.issue({.common_name = cn, .dns = std::move(dns), .key = key});
    return {c, c.writeFiles(dir.path(), name)};
  }
  // A client certificate (CN, URI SANs) as <name>.crt / <name>.key.
  Issued client(const std::string& name, const std::string& cn, std::vector<std::string> uris = {}) const {
    IssuedCert c = ca.issue({.common_name = cn, .uris = std::move(uris), .usage = CertUsage::kClient});
    return {c, c.writeFiles(dir.path(), name)};
  }
  // Client options that verify ferry's certificate against this CA and the SNI name.
  TlsClientOptions verifying(const std::string& sni) const {
    TlsClientOptions o;
    o.sni = sni;
    o.ca_file = ca_file;
    return o;
  }
};

// `{cert_file: ..., key_file: ...}` (flow YAML).
inline std::string certEntry(const CertFiles& f) {
  return "{cert_file: " + f.cert + ", key_file: " + f.key + "}";
}

// The `tls:` block of a listener, for FerryConfig::listener_extra: the certificates in this
// order, then `more` (more keys of the block, each line indented 6).
inline std::string tlsBlock(const std::vector<CertFiles>& certs, const std::string& more = "") {
  std::string out = "    tls:\n      certificates:\n";
  for (const auto& c : certs) out += "        - " + certEntry(c) + "\n";
  return out + more;
}

// An HTTP listener "web" terminating TLS (`tls`: a tlsBlock) in front of cluster "up" (one
// plain endpoint).
inline std::string httpsConfig(uint16_t upstream_port, const std::string& tls, int workers = 1) {
  return FerryConfig{.workers = workers, .listener_extra = tls, .clusters = {{"up", {upstream_port}}}}.yaml();
}

// Metric keys.
inline std::string listenerKey(const std::string& name, const std::string& listener = "web") {
  return name + "{listener=\"" + listener + "\"}";
}
inline std::string failureKey(const std::string& reason, const std::string& listener = "web") {
  return "ferry_tls_handshake_failures_total{listener=\"" + listener + "\",reason=\"" + reason + "\"}";
}
inline std::string handshakesKey(const std::string& listener = "web") {
  return listenerKey("ferry_tls_handshakes_total", listener);
}
inline std::string resumedKey(const std::string& listener = "web") {
  return listenerKey("ferry_tls_resumed_handshakes_total", listener);
}

// One scrape of /metrics: the sample's value, kMetricAbsent if there is none. A /metrics that
// is not a 200 with valid Prometheus text fails the test here.
inline double metric(FerryProcess& f, const std::string& key) {
  auto r = httpRequest(f.adminPort(), "GET", "/metrics");
  REQUIRE(r.status == 200);
  auto m = parsePrometheus(r.body);
  REQUIRE(m.has_value());
  auto it = m->find(key);
  return it == m->end() ? kMetricAbsent : it->second;
}

// Every sample of /metrics whose key starts with `prefix` (for INFO when a check fails).
inline std::string metricsWithPrefix(FerryProcess& f, const std::string& prefix) {
  auto r = httpRequest(f.adminPort(), "GET", "/metrics");
  std::string out;
  if (auto m = parsePrometheus(r.body))
    for (const auto& [k, v] : *m)
      if (k.rfind(prefix, 0) == 0) out += k + " " + std::to_string(v) + "\n";
  return out;
}

// Scrapes until the sample is >= want (bounded); returns the last value.
inline double waitMetricAtLeast(FerryProcess& f, const std::string& key, double want, ms timeout = 5s) {
  double v = metric(f, key);
  waitUntil([&] { return (v = metric(f, key)) >= want; }, timeout, 10ms);
  return v;
}

// The bytes of a TLS ClientHello as OpenSSL's client sends it (TLS 1.2-1.3, with SNI when
// `sni` is not empty): made in memory, no connection.
inline std::string clientHelloBytes(const std::string& sni) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  REQUIRE(ctx != nullptr);
  SSL* ssl = SSL_new(ctx);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rbio, wbio);
  if (!sni.empty()) SSL_set_tlsext_host_name(ssl, sni.c_str());
  SSL_connect(ssl);  // writes the ClientHello, then wants to read
  char* data = nullptr;
  long n = BIO_get_mem_data(wbio, &data);
  std::string out(data, static_cast<size_t>(n));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  REQUIRE(out.size() > 100);
  REQUIRE(static_cast<unsigned char>(out[0]) == 22);  // a handshake record
  return out;
}

}  // namespace ferry::testing::tls_test
