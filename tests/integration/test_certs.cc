// Test certificates with the OpenSSL 3 API: keys (EVP_PKEY_Q_keygen), X509 building and
// signing, PEM output.
#include "tests/integration/test_certs.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "tests/integration/harness.h"

namespace ferry::testing {
namespace {

// Throws HarnessError with what OpenSSL's error queue says.
[[noreturn]] void fail(const std::string& what) {
  std::string msg = "test_certs: " + what;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    msg += std::string("; ") + buf;
  }
  throw HarnessError(msg);
}

template <typename T>
T* check(T* p, const char* what) {
  if (p == nullptr) fail(what);
  return p;
}
void check(int ok, const char* what) {
  if (ok <= 0) fail(what);
}

std::shared_ptr<EVP_PKEY> ownKey(EVP_PKEY* k) { return {k, EVP_PKEY_free}; }
std::shared_ptr<X509> ownCert(X509* x) { return {x, X509_free}; }

std::shared_ptr<EVP_PKEY> makeKey(KeyType type) {
  if (type == KeyType::kEcP256) {
    return ownKey(check(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), "EC keygen"));
  }
  // RSA 2048 takes up to a second or so: one key per process, shared by every RSA certificate.
  static std::once_flag once;
  static std::shared_ptr<EVP_PKEY> rsa;
  std::call_once(once, [] {
    rsa = ownKey(check(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}), "RSA keygen"));
  });
  return rsa;
}

uint64_t nextSerial() {
  static std::atomic<uint64_t> serial{1000};
  return serial++;
}

void addExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) fail("extension " + std::string(OBJ_nid2sn(nid)) + " = " + value);
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  check(ok, "X509_add_ext");
}

struct CertSpec {
  std::string common_name;
  std::chrono::seconds not_before, not_after;
  uint64_t serial;
  bool ca;
};

// A certificate for `key`, with the subject, validity and the extensions shared by CAs and
// leaves; signed by issuer_key (issuer == nullptr: self-signed). The caller adds the rest and
// calls sign().
std::shared_ptr<X509> makeCert(const CertSpec& s, EVP_PKEY* key, X509* issuer) {
  auto cert = ownCert(check(X509_new(), "X509_new"));
  X509* x = cert.get();
  check(X509_set_version(x, X509_VERSION_3), "X509_set_version");
  check(ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), s.serial ? s.serial : nextSerial()),
        "serial");
  check(X509_gmtime_adj(X509_getm_notBefore(x), static_cast<long>(s.not_before.count())) ? 1 : 0,
        "notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(x), static_cast<long>(s.not_after.count())) ? 1 : 0,
        "notAfter");
  X509_NAME* name = X509_get_subject_name(x);
  if (!s.common_name.empty()) {
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(s.common_name.c_str()),
                                     -1, -1, 0),
          "subject CN");
  }
  check(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name), "issuer name");
  check(X509_set_pubkey(x, key), "X509_set_pubkey");
  X509* iss = issuer ? issuer : x;
  addExt(x, iss, NID_basic_constraints, s.ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  addExt(x, iss, NID_subject_key_identifier, "hash");
  addExt(x, iss, NID_authority_key_identifier, "keyid:always");
  return cert;
}

void sign(X509* x, EVP_PKEY* issuer_key) {
  check(X509_sign(x, issuer_key, EVP_sha256()), "X509_sign");
}

void addLeafExts(X509* x, X509* issuer, const IssueOptions& o) {
  addExt(x, issuer, NID_key_usage,
         o.key == KeyType::kRsa2048 ? "critical,digitalSignature,keyEncipherment"
                                    : "critical,digitalSignature");
  const char* eku = o.usage == CertUsage::kServer   ? "serverAuth"
                    : o.usage == CertUsage::kClient ? "clientAuth"
                                                    : "serverAuth,clientAuth";
  addExt(x, issuer, NID_ext_key_usage, eku);
  std::string san;
  auto add = [&](const char* kind, const std::vector<std::string>& values) {
    for (const auto& v : values) san += (san.empty() ? "" : ",") + std::string(kind) + ":" + v;
  };
  add("DNS", o.dns);
  add("URI", o.uris);
  add("IP", o.ips);
  if (!san.empty()) addExt(x, issuer, NID_subject_alt_name, san);
}

std::string bioString(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string certToPem(X509* x) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(check(BIO_new(BIO_s_mem()), "BIO_new"), BIO_free);
  check(PEM_write_bio_X509(bio.get(), x), "PEM_write_bio_X509");
  return bioString(bio.get());
}

std::string nameToString(const X509_NAME* name) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(check(BIO_new(BIO_s_mem()), "BIO_new"), BIO_free);
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  return bioString(bio.get());
}

// Writes through a temporary name and rename (a reader never sees a torn file, e.g. ferry
// reloading certificates while a test rewrites them).
std::string writeAtomically(const std::string& dir, const std::string& name,
                            const std::string& content, bool private_file = false) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = dir + "/" + name;
  const std::string tmp = path + ".tmp-write";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out.flush()) throw HarnessError("test_certs: cannot write " + tmp);
  }
  if (private_file) ::chmod(tmp.c_str(), 0600);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw HarnessError("test_certs: cannot rename " + tmp + " to " + path);
  }
  return path;
}

}  // namespace

CertInfo inspectCert(const X509* cert) {
  CertInfo info;
  const X509_NAME* subject = X509_get_subject_name(cert);
  info.subject = nameToString(subject);
  info.issuer = nameToString(X509_get_issuer_name(cert));
  int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (idx >= 0) {
    const ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, cn);
    if (n >= 0) info.common_name.assign(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
  }
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
    if (gn->type != GEN_DNS && gn->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = gn->d.ia5;
    std::string v(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                  static_cast<size_t>(ASN1_STRING_length(s)));
    (gn->type == GEN_DNS ? info.dns : info.uris).push_back(std::move(v));
  }
  GENERAL_NAMES_free(sans);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  check(X509_digest(cert, EVP_sha256(), md, &len), "X509_digest");
  static const char* hex = "0123456789abcdef";
  for (unsigned i = 0; i < len; ++i) {
    info.sha256 += hex[md[i] >> 4];
    info.sha256 += hex[md[i] & 15];
  }
  return info;
}

// ---------------------------------------------------------------------------------------------
// IssuedCert

IssuedCert IssuedCert::selfSigned(const IssueOptions& o) {
  IssuedCert c;
  c.key_ = makeKey(o.key);
  c.cert_ =
      makeCert({o.common_name, o.not_before, o.not_after, o.serial, false}, c.key_.get(), nullptr);
  addLeafExts(c.cert_.get(), c.cert_.get(), o);
  sign(c.cert_.get(), c.key_.get());
  c.issuer_ = c.cert_;
  return c;
}

std::string IssuedCert::certPem() const { return certToPem(cert_.get()); }

std::string IssuedCert::keyPem() const {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(check(BIO_new(BIO_s_mem()), "BIO_new"), BIO_free);
  check(PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr),
        "PEM_write_bio_PrivateKey");
  return bioString(bio.get());
}

std::string IssuedCert::caPem() const { return certToPem(issuer_.get()); }

std::string IssuedCert::chainPem() const {
  return issuer_ == cert_ ? certPem() : certPem() + caPem();
}

CertFiles IssuedCert::writeFiles(const std::string& dir, const std::string& name,
                                 bool include_ca) const {
  CertFiles f;
  f.cert = writeAtomically(dir, name + ".crt", include_ca ? chainPem() : certPem());
  f.key = writeAtomically(dir, name + ".key", keyPem(), true);
  f.ca = writeAtomically(dir, name + "-ca.crt", caPem());
  return f;
}

// ---------------------------------------------------------------------------------------------
// CertAuthority

CertAuthority CertAuthority::create(const std::string& common_name, KeyType key) {
  CertAuthority ca;
  IssuedCert& c = ca.self_;
  c.key_ = makeKey(key);
  c.cert_ = makeCert({common_name, -std::chrono::hours(1), std::chrono::hours(24 * 3650), 0, true},
                     c.key_.get(), nullptr);
  addExt(c.cert_.get(), c.cert_.get(), NID_key_usage,
         "critical,keyCertSign,cRLSign,digitalSignature");
  sign(c.cert_.get(), c.key_.get());
  c.issuer_ = c.cert_;
  return ca;
}

IssuedCert CertAuthority::issue(const IssueOptions& o) const {
  IssuedCert c;
  c.key_ = makeKey(o.key);
  c.issuer_ = self_.cert_;
  c.cert_ = makeCert({o.common_name, o.not_before, o.not_after, o.serial, false}, c.key_.get(),
                     c.issuer_.get());
  addLeafExts(c.cert_.get(), c.issuer_.get(), o);
  sign(c.cert_.get(), self_.key_.get());
  return c;
}

std::string CertAuthority::writeCert(const std::string& dir, const std::string& name) const {
  return writeAtomically(dir, name + ".crt", certPem());
}

}  // namespace ferry::testing
