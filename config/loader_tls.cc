// The `tls` blocks: a listener's (termination: certificates, versions, ciphers, ALPN, client
// certificates, sessions) and a cluster's (origination: SNI, verification, client
// certificate). Same conventions as loader.cc. Whether the files hold usable certificates and
// keys is checked when the TLS contexts are built (core/tls), with these positions.
#include <string>
#include <vector>

#include "config/loader_internal.h"

namespace ferry::config::internal {
namespace {

const Keys kVersions = {"TLSv1.2", "TLSv1.3"};

int versionRank(const std::string& v) { return v == "TLSv1.3" ? 3 : 2; }

// Keys both blocks share; returns false when `key` is not one of them.
bool protocolKey(Parser& p, const Entry& e, TlsProtocolConfig& out, bool listener) {
  if (e.key == "min_version") {
    out.min_mark = e.value_mark;
    if (auto v = p.getEnum(e, kVersions)) out.min_version = *v;
  } else if (e.key == "max_version") {
    out.max_mark = e.value_mark;
    if (auto v = p.getEnum(e, kVersions)) out.max_version = *v;
  } else if (e.key == "ciphers") {
    out.ciphers_mark = e.value_mark;
    if (auto v = p.getString(e)) out.ciphers = *v;
  } else if (e.key == "ciphersuites") {
    out.ciphersuites_mark = e.value_mark;
    if (auto v = p.getString(e)) out.ciphersuites = *v;
  } else if (e.key == "curves") {
    out.curves_mark = e.value_mark;
    if (auto v = p.getString(e)) out.curves = *v;
  } else if (e.key == "alpn") {
    out.alpn_mark = e.value_mark;
    if (!p.isList(e)) return true;
    for (const YAML::Node& item : e.value) {
      Entry a = p.itemEntry(item, e.value_mark, "alpn");
      auto v = p.getEnum(a, {"h2", "http/1.1"});
      if (!v) continue;
      for (const auto& have : out.alpn)
        if (have == *v) p.error(a.value_mark, "duplicate ALPN protocol " + quote(*v));
      out.alpn.push_back(*v);
    }
  } else {
    return false;
  }
  return true;
}

void checkVersions(Parser& p, const TlsProtocolConfig& t) {
  if (versionRank(t.min_version) > versionRank(t.max_version))
    p.error(t.max_mark.line != 0 ? t.max_mark : t.min_mark,
            "max_version " + t.max_version + " is below min_version " + t.min_version);
}

// A {cert_file, key_file} map.
void certificate(Parser& p, const Entry& c, TlsCertificate& cert) {
  cert.mark = c.value_mark;
  if (!p.isMap(c)) return;
  constexpr std::string_view kWhere = "in certificate";
  Entries f = p.fields(c.value, kWhere, {"cert_file", "key_file"});
  if (auto* y = p.need(f, "cert_file", c, kWhere)) {
    cert.cert_mark = y->value_mark;
    if (auto v = p.getPath(*y)) {
      cert.cert_file = *v;
      p.checkReadable(*y, *v);
    }
  }
  if (auto* y = p.need(f, "key_file", c, kWhere)) {
    cert.key_mark = y->value_mark;
    if (auto v = p.getPath(*y)) {
      cert.key_file = *v;
      p.checkReadable(*y, *v);
    }
  }
}

std::vector<std::string> stringList(Parser& p, const Entry& e, const std::string& what) {
  std::vector<std::string> out;
  if (!p.isList(e)) return out;
  for (const YAML::Node& item : e.value)
    if (auto v = p.getString(p.itemEntry(item, e.value_mark, what))) out.push_back(*v);
  return out;
}

}  // namespace

void parseListenerTls(Parser& p, const Entry& e, TlsConfig& t) {
  t.mark = e.key_mark;
  if (!p.isMap(e)) return;
  constexpr std::string_view kWhere = "in tls";
  Entries f = p.fields(e.value, kWhere,
                       {"certificates", "alpn", "min_version", "max_version", "ciphers", "ciphersuites",
                        "curves", "client_ca_file", "client_cert", "verify_depth", "allowed_sans",
                        "allowed_subjects", "session_tickets", "session_timeout", "session_cache_size",
                        "handshake_timeout", "watch_certificates"});
  for (const Entry& x : f.list) protocolKey(p, x, t.protocol, true);
  checkVersions(p, t.protocol);
  if (auto* x = p.need(f, "certificates", e, kWhere); x != nullptr && p.isList(*x)) {
    if (x->value.size() == 0) p.error(x->value_mark, "'certificates' must not be empty");
    for (const YAML::Node& item : x->value)
      certificate(p, p.itemEntry(item, x->value_mark, "certificate"), t.certificates.emplace_back());
  }
  if (auto* x = f.get("client_ca_file")) {
    t.client_ca_mark = x->value_mark;
    if (auto v = p.getPath(*x)) {
      t.client_ca_file = *v;
      p.checkReadable(*x, *v);
    }
    t.client_cert = TlsConfig::ClientCert::kRequired;  // client_ca_file alone: required
  }
  if (auto* x = f.get("client_cert")) {
    if (auto v = p.getEnum(*x, {"required", "optional"})) {
      if (t.client_ca_file.empty() && f.get("client_ca_file") == nullptr)
        p.error(x->key_mark, "'client_cert' needs 'client_ca_file' (the CAs client certificates are verified against)");
      else
        t.client_cert = *v == "optional" ? TlsConfig::ClientCert::kOptional : TlsConfig::ClientCert::kRequired;
    }
  }
  for (const char* key : {"verify_depth", "allowed_sans", "allowed_subjects"})
    if (auto* x = f.get(key); x != nullptr && f.get("client_ca_file") == nullptr)
      p.error(x->key_mark, std::string("'") + key + "' needs 'client_ca_file'");
  if (auto* x = f.get("verify_depth"))
    if (auto v = p.getUint(*x, 1, 100)) t.verify_depth = static_cast<uint32_t>(*v);
  if (auto* x = f.get("allowed_sans")) t.allowed_sans = stringList(p, *x, "allowed_sans");
  if (auto* x = f.get("allowed_subjects")) t.allowed_subjects = stringList(p, *x, "allowed_subjects");
  if (auto* x = f.get("session_tickets"))
    if (auto v = p.getBool(*x)) t.session_tickets = *v;
  if (auto* x = f.get("session_timeout"))
    if (auto v = p.getDuration(*x, true)) {
      if (*v < std::chrono::seconds(1) || *v > std::chrono::hours(24 * 7))
        p.error(x->value_mark, "session_timeout must be between 1s and 168h");
      else
        t.session_timeout = *v;
    }
  if (auto* x = f.get("session_cache_size"))
    if (auto v = p.getUint(*x, 0, 10000000)) t.session_cache_size = static_cast<uint32_t>(*v);
  if (auto* x = f.get("handshake_timeout"))
    if (auto v = p.getDuration(*x, false)) t.handshake_timeout = *v;
  if (auto* x = f.get("watch_certificates"))
    if (auto v = p.getBool(*x)) t.watch_certificates = *v;
}

void parseUpstreamTls(Parser& p, const Entry& e, UpstreamTlsConfig& t) {
  t.mark = e.key_mark;
  if (!p.isMap(e, true)) return;  // "tls: {}" or "tls:" = defaults
  constexpr std::string_view kWhere = "in tls";
  Entries f = p.fields(e.value, kWhere,
                       {"sni", "verify", "ca_file", "verify_name", "cert_file", "key_file", "alpn",
                        "min_version", "max_version", "ciphers", "ciphersuites", "curves", "session_reuse"});
  for (const Entry& x : f.list) protocolKey(p, x, t.protocol, false);
  checkVersions(p, t.protocol);
  if (auto* x = f.get("sni"))
    if (auto v = p.getString(*x)) t.sni = lower(*v);
  if (auto* x = f.get("verify"))
    if (auto v = p.getBool(*x)) t.verify = *v;
  if (auto* x = f.get("ca_file")) {
    t.ca_mark = x->value_mark;
    if (auto v = p.getPath(*x)) {
      t.ca_file = *v;
      p.checkReadable(*x, *v);
    }
    if (!t.verify) p.error(x->key_mark, "'ca_file' with 'verify: false' (nothing would be verified)");
  }
  if (auto* x = f.get("verify_name"))
    if (auto v = p.getString(*x)) t.verify_name = lower(*v);
  const Entry* cert = f.get("cert_file");
  const Entry* key = f.get("key_file");
  if ((cert == nullptr) != (key == nullptr)) {
    const Entry* have = cert != nullptr ? cert : key;
    p.error(have->key_mark, "a client certificate needs both 'cert_file' and 'key_file'");
  } else if (cert != nullptr) {
    TlsCertificate& c = t.client_certificate.emplace();
    c.mark = e.value_mark;
    c.cert_mark = cert->value_mark;
    c.key_mark = key->value_mark;
    if (auto v = p.getPath(*cert)) {
      c.cert_file = *v;
      p.checkReadable(*cert, *v);
    }
    if (auto v = p.getPath(*key)) {
      c.key_file = *v;
      p.checkReadable(*key, *v);
    }
  }
  if (auto* x = f.get("session_reuse"))
    if (auto v = p.getBool(*x)) t.session_reuse = *v;
}

}  // namespace ferry::config::internal
