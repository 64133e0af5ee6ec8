// Test certificates, made in memory with OpenSSL 3 (no `openssl` command needed): a CA that
// issues server and client leaf certificates (with DNS/URI/IP subjectAltNames, chosen key type,
// validity window and serial: expired or not-yet-valid certificates are one option away), and
// self-signed certificates. Everything can be written as PEM files for ferry's config, curl,
// `openssl s_client`, TlsClient and TlsUpstream.
//
//   CertAuthority ca = CertAuthority::create("Test CA");
//   IssuedCert server = ca.issue({.common_name = "localhost", .dns = {"localhost"}});
//   CertFiles f = server.writeFiles(tmp.path(), "server");  // f.cert, f.key, f.ca
//
// Key generation: ECDSA P-256 keys are made fresh for every certificate (fast); RSA 2048 is
// slow, so one RSA key is made per process and shared by every RSA certificate (CAs included).
// Objects are cheap to copy (they share the immutable OpenSSL objects) and usable from any
// thread.
#pragma once

#include <openssl/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ferry::testing {

enum class KeyType { kEcP256, kRsa2048 };

// Extended key usage of a leaf certificate.
enum class CertUsage { kServer, kClient, kServerAndClient };

struct IssueOptions {
  std::string common_name = "localhost";  // subject CN ("" = none: the subject is empty)
  std::vector<std::string> dns;           // subjectAltName DNS entries ("*.example.com" ok)
  std::vector<std::string> uris;          // subjectAltName URI entries (e.g. SPIFFE ids)
  std::vector<std::string> ips;           // subjectAltName IP entries ("127.0.0.1")
  KeyType key = KeyType::kEcP256;
  CertUsage usage = CertUsage::kServer;
  // Validity, as offsets from now: {-48h, -24h} makes an expired certificate, {1h, 48h} one that
  // is not yet valid.
  std::chrono::seconds not_before = -std::chrono::hours(1);
  std::chrono::seconds not_after = std::chrono::hours(24 * 30);
  uint64_t serial = 0;  // 0 = the next value of a process-wide counter
};

// What a certificate says about its subject (also what TlsClient reports about the server's
// certificate and TlsUpstream about a client's).
struct CertInfo {
  std::string subject;      // RFC 2253, e.g. "CN=localhost"
  std::string common_name;  // "" if none
  std::string issuer;       // RFC 2253
  std::vector<std::string> dns;
  std::vector<std::string> uris;
  std::string sha256;  // SHA-256 of the DER certificate, lower-case hex (as ferry reports it)
};
CertInfo inspectCert(const X509* cert);  // cert must not be null

// Paths written by writeFiles.
struct CertFiles {
  std::string cert;  // <dir>/<name>.crt: the leaf, then (include_ca) the issuing CA
  std::string key;   // <dir>/<name>.key: the private key, unencrypted PKCS#8
  std::string ca;    // <dir>/<name>-ca.crt: the issuer's certificate (verify against it);
                     // for a self-signed certificate, the certificate itself
};

// A certificate with its private key and the certificate of its issuer.
class IssuedCert {
 public:
  // A self-signed leaf (CA:FALSE). Trusting it means using it as its own CA file (files.ca).
  static IssuedCert selfSigned(const IssueOptions& opts);

  std::string certPem() const;   // the leaf
  std::string keyPem() const;    // PKCS#8
  std::string caPem() const;     // the issuer's certificate (self-signed: certPem())
  std::string chainPem() const;  // certPem() + caPem() (self-signed: certPem())
  CertInfo info() const { return inspectCert(cert_.get()); }
  std::string sha256() const { return info().sha256; }

  // Writes the PEM files (see CertFiles), creating dir if needed. Throws HarnessError on I/O
  // errors.
  CertFiles writeFiles(const std::string& dir, const std::string& name,
                       bool include_ca = false) const;

  X509* x509() const { return cert_.get(); }
  EVP_PKEY* key() const { return key_.get(); }
  X509* issuerX509() const { return issuer_.get(); }

 private:
  friend class CertAuthority;
  std::shared_ptr<X509> cert_;
  std::shared_ptr<EVP_PKEY> key_;
  std::shared_ptr<X509> issuer_;  // == cert_ when self-signed
};

// A root CA (CA:TRUE, keyCertSign; valid from an hour ago for ten years).
class CertAuthority {
 public:
  static CertAuthority create(const std::string& common_name, KeyType key = KeyType::kEcP256);

  // A leaf signed by this CA (SHA-256), with SKID/AKID, basicConstraints CA:FALSE, keyUsage
  // digitalSignature (+keyEncipherment for RSA) and the extendedKeyUsage of opts.usage.
  IssuedCert issue(const IssueOptions& opts) const;

  std::string certPem() const { return self_.certPem(); }
  // Writes <dir>/<name>.crt and returns its path.
  std::string writeCert(const std::string& dir, const std::string& name) const;
  const IssuedCert& cert() const { return self_; }

 private:
  IssuedCert self_;
};

}  // namespace ferry::testing
