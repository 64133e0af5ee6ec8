// The TLS test toolkit against itself (no ferry): test_certs' certificates, TlsClient and
// TlsUpstream, plus curl and `openssl s_client` accepting the generated files (the TLS tests
// against ferry use them too).
#include <openssl/x509_vfy.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/integration/harness.h"
#include "tests/integration/test_certs.h"
#include "tests/integration/tls_client.h"
#include "tests/integration/tls_upstream.h"

using namespace ferry::testing;
using Catch::Matchers::Contains;

namespace {

// A CA, a server certificate for "localhost" (+ 127.0.0.1) and a client certificate, on disk.
struct Pki {
  explicit Pki(KeyType key = KeyType::kEcP256)
      : ca(CertAuthority::create("Test CA", key)),
        server(ca.issue({.common_name = "localhost",
                         .dns = {"localhost", "*.example.com"},
                         .ips = {"127.0.0.1"},
                         .key = key})),
        client(ca.issue({.common_name = "client-a",
                         .uris = {"spiffe://test/client-a"},
                         .key = key,
                         .usage = CertUsage::kClient})),
        server_files(server.writeFiles(dir.path(), "server")),
        client_files(client.writeFiles(dir.path(), "client")) {}
  TempDir dir;
  CertAuthority ca;
  IssuedCert server, client;
  CertFiles server_files, client_files;

  TlsUpstreamOptions upstream(
      TlsUpstreamOptions::Mode mode = TlsUpstreamOptions::Mode::kHttp) const {
    TlsUpstreamOptions o;
    o.cert_file = server_files.cert;
    o.key_file = server_files.key;
    o.mode = mode;
    return o;
  }
  TlsClientOptions verifying(std::string sni = "localhost") const {
    TlsClientOptions o;
    o.sni = std::move(sni);
    o.ca_file = server_files.ca;
    return o;
  }
};

// One request on an open connection; the response (status 0 on failure).
HttpResponse get(TlsClient& c, const std::string& path = "/",
                 const std::string& host = "localhost") {
  if (!c.sendAll("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n")) return {};
  return c.recvHttpResponse();
}

}  // namespace

TEST_CASE("test_certs: issued certificates say what was asked", "[tls_toolkit]") {
  Pki pki;
  CertInfo s = pki.server.info();
  CHECK(s.subject == "CN=localhost");
  CHECK(s.common_name == "localhost");
  CHECK(s.issuer == "CN=Test CA");
  CHECK(s.dns == std::vector<std::string>{"localhost", "*.example.com"});
  CHECK(s.sha256.size() == 64);
  CHECK(pki.client.info().uris == std::vector<std::string>{"spiffe://test/client-a"});
  CHECK(pki.server.sha256() != pki.client.sha256());

  CHECK(readFile(pki.server_files.cert) == pki.server.certPem());
  CHECK(readFile(pki.server_files.ca) == pki.ca.certPem());
  CHECK_THAT(readFile(pki.server_files.key), Contains("-----BEGIN PRIVATE KEY-----"));
  CHECK((std::filesystem::status(pki.server_files.key).permissions() &
         std::filesystem::perms::others_read) == std::filesystem::perms::none);
  CertFiles chain = pki.server.writeFiles(pki.dir.path(), "chain", /*include_ca=*/true);
  CHECK(readFile(chain.cert) == pki.server.certPem() + pki.ca.certPem());

  // One RSA key per process, shared by every RSA certificate.
  CertAuthority rsa_ca = CertAuthority::create("RSA CA", KeyType::kRsa2048);
  IssuedCert a = rsa_ca.issue({.key = KeyType::kRsa2048});
  IssuedCert b = pki.ca.issue({.key = KeyType::kRsa2048});
  CHECK(EVP_PKEY_eq(a.key(), b.key()) == 1);
  CHECK(EVP_PKEY_eq(a.key(), pki.server.key()) != 1);
  CHECK(ASN1_INTEGER_get(X509_get_serialNumber(pki.ca.issue({.serial = 4242}).x509())) == 4242);
}

TEST_CASE("TlsClient verifies a TlsUpstream's certificate against the CA", "[tls_toolkit]") {
  KeyType key = GENERATE(KeyType::kEcP256, KeyType::kRsa2048);
  Pki pki(key);
  TlsUpstream up(pki.upstream(TlsUpstreamOptions::Mode::kEcho));

  TlsError err;
  auto c = TlsClient::connect(up.port(), pki.verifying(), 5s, &err);
  REQUIRE(c);
  INFO(err.message);
  CHECK(c->version() == "TLSv1.3");
  CHECK_FALSE(c->cipher().empty());
  CHECK(c->verifyResult() == X509_V_OK);
  CHECK_FALSE(c->resumed());
  auto peer = c->peerCert();
  REQUIRE(peer);
  CHECK(peer->common_name == "localhost");
  CHECK(peer->dns == std::vector<std::string>{"localhost", "*.example.com"});
  CHECK(peer->sha256 == pki.server.sha256());

  REQUIRE(c->sendAll("ping over tls"));
  CHECK(c->recvExactly(13) == "ping over tls");
  c->close();
  REQUIRE(up.waitHandshakes(1));
  CHECK(up.seen().at(0).sni == "localhost");

  SECTION("a name from the wildcard SAN, and the IP SAN") {
    CHECK(TlsClient::connect(up.port(), pki.verifying("a.example.com")));
    TlsClientOptions ip = pki.verifying("");
    ip.verify_name = "127.0.0.1";
    CHECK(TlsClient::connect(up.port(), ip));
  }
  SECTION("a name the certificate does not have fails") {
    CHECK_FALSE(TlsClient::connect(up.port(), pki.verifying("other.test"), 5s, &err));
    CHECK(err.verify_result == X509_V_ERR_HOSTNAME_MISMATCH);
    CHECK_THAT(err.message, Contains("certificate verify failed") && Contains("hostname mismatch"));
  }
}

TEST_CASE("TlsClient: a certificate from another CA fails verification", "[tls_toolkit]") {
  Pki pki;
  CertAuthority other = CertAuthority::create("Other CA");
  TlsUpstream up(pki.upstream());
  TlsClientOptions o = pki.verifying();
  o.ca_file = other.writeCert(pki.dir.path(), "other-ca");

  TlsError err;
  CHECK_FALSE(TlsClient::connect(up.port(), o, 5s, &err));
  CHECK(err.verify_result == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  CHECK_THAT(err.message,
             Contains("certificate verify failed: unable to get local issuer certificate"));
  REQUIRE(err.alert_sent);
  CHECK(err.alert_sent->code == SSL_AD_UNKNOWN_CA);
  // The server saw the client's alert.
  REQUIRE(up.waitFailedHandshakes(1));
  CHECK_THAT(up.seen().at(0).error, Contains("unknown ca"));
  CHECK(up.handshakes() == 0);

  // Without verification the same server is accepted.
  o.ca_file.clear();
  CHECK(TlsClient::connect(up.port(), o));
}

TEST_CASE("TlsClient: expired and not yet valid certificates fail verification", "[tls_toolkit]") {
  Pki pki;
  IssuedCert expired = pki.ca.issue({.dns = {"localhost"},
                                     .not_before = -std::chrono::hours(48),
                                     .not_after = -std::chrono::hours(24)});
  IssuedCert future = pki.ca.issue({.dns = {"localhost"},
                                    .not_before = std::chrono::hours(1),
                                    .not_after = std::chrono::hours(48)});
  struct {
    const IssuedCert& cert;
    long verify_result;
    const char* reason;
    int alert;
  } cases[] = {
      {expired, X509_V_ERR_CERT_HAS_EXPIRED, "certificate has expired", SSL_AD_CERTIFICATE_EXPIRED},
      {future, X509_V_ERR_CERT_NOT_YET_VALID, "certificate is not yet valid",
       SSL_AD_BAD_CERTIFICATE}};
  for (const auto& k : cases) {
    CertFiles f = k.cert.writeFiles(pki.dir.path(), "bad");
    TlsUpstreamOptions uo = pki.upstream();
    uo.cert_file = f.cert;
    uo.key_file = f.key;
    TlsUpstream up(uo);
    TlsError err;
    CHECK_FALSE(TlsClient::connect(up.port(), pki.verifying(), 5s, &err));
    CHECK(err.verify_result == k.verify_result);
    CHECK_THAT(err.message, Contains(k.reason));
    REQUIRE(err.alert_sent);
    CHECK(err.alert_sent->code == k.alert);
  }
}

TEST_CASE("TlsClient: a self-signed certificate verifies against itself", "[tls_toolkit]") {
  TempDir dir;
  IssuedCert self = IssuedCert::selfSigned({.common_name = "self", .dns = {"localhost"}});
  CertFiles f = self.writeFiles(dir.path(), "self");
  CHECK(readFile(f.ca) == self.certPem());
  TlsUpstreamOptions uo;
  uo.cert_file = f.cert;
  uo.key_file = f.key;
  TlsUpstream up(uo);
  TlsClientOptions o;
  o.sni = "localhost";
  o.ca_file = f.ca;
  auto c = TlsClient::connect(up.port(), o);
  REQUIRE(c);
  CHECK(c->peerCert()->sha256 == self.sha256());
}

TEST_CASE("TlsUpstream sees the SNI and ALPN a TlsClient sends", "[tls_toolkit]") {
  Pki pki;
  TlsUpstreamOptions uo = pki.upstream();
  uo.alpn = {"http/1.1", "h2"};
  uo.name = "backend-a";
  TlsUpstream up(uo);

  SECTION("SNI and a common protocol") {
    TlsClientOptions o = pki.verifying("api.example.com");
    o.alpn = {"h2", "http/1.1"};
    auto c = TlsClient::connect(up.port(), o);
    REQUIRE(c);
    CHECK(c->alpn() == "http/1.1");  // the server's preference
    HttpResponse r = get(*c, "/x", "api.example.com");
    REQUIRE(r.status == 200);
    CHECK(r.body == "backend-a");
    CHECK(r.header("x-upstream") == "backend-a");
    CHECK(r.header("x-tls-sni") == "api.example.com");
    CHECK(r.header("x-tls-alpn") == "http/1.1");
    CHECK(r.header("x-tls-version") == "TLSv1.3");
    CHECK(r.header("x-tls-cipher") == c->cipher());
    CHECK(r.header("x-tls-resumed") == "false");
    CHECK(r.header("x-tls-client-cn").empty());
    // Keep-alive: a second request on the same connection.
    CHECK(get(*c, "/y").status == 200);
    CHECK(up.connections() == 1);
    auto heads = up.requestHeads();
    REQUIRE(heads.size() == 2);
    CHECK_THAT(heads[0], Contains("GET /x HTTP/1.1\r\nHost: api.example.com\r\n"));
  }
  SECTION("no SNI, no common protocol") {
    TlsClientOptions o;
    o.alpn = {"spdy/3"};
    auto c = TlsClient::connect(up.port(), o);
    REQUIRE(c);
    CHECK(c->alpn().empty());
    HttpResponse r = get(*c);
    REQUIRE(r.status == 200);
    CHECK(r.header("x-tls-sni").empty());
    CHECK(r.header("x-tls-alpn").empty());
  }
  SECTION("httpsGet: the Host's name is the SNI") {
    HttpResponse r = httpsGet(up.port(), "localhost:8443", "/", pki.verifying(""));
    REQUIRE(r.status == 200);
    CHECK(r.header("x-tls-sni") == "localhost");
    r = httpsGet(up.port(), "127.0.0.1", "/", {});
    REQUIRE(r.status == 200);
    CHECK(r.header("x-tls-sni").empty());
    r = httpsGet(RefusingPort().port(), "localhost", "/");
    CHECK(r.status == 0);
    CHECK_THAT(r.error, Contains("connect"));
  }
}

TEST_CASE("TlsUpstream requiring a client certificate sees its CN", "[tls_toolkit]") {
  Pki pki;
  TlsUpstreamOptions uo = pki.upstream();
  uo.client_ca_file = pki.client_files.ca;
  TlsUpstream up(uo);
  TlsClientOptions o = pki.verifying();

  SECTION("with a client certificate") {
    o.cert_file = pki.client_files.cert;
    o.key_file = pki.client_files.key;
    auto c = TlsClient::connect(up.port(), o);
    REQUIRE(c);
    HttpResponse r = get(*c);
    REQUIRE(r.status == 200);
    CHECK(r.header("x-tls-client-cn") == "client-a");
    CHECK(r.header("x-tls-client-uri") == "spiffe://test/client-a");
    REQUIRE(up.seen().at(0).client_cert);
    CHECK(up.seen().at(0).client_cert->sha256 == pki.client.sha256());
  }
  SECTION("without one, TLS 1.3: the handshake completes, the alert comes with the first read") {
    auto c = TlsClient::connect(up.port(), o);
    REQUIRE(c);
    HttpResponse r = get(*c);
    CHECK(r.status == 0);
    CHECK(c->failed());
    REQUIRE(c->lastAlertReceived());
    CHECK(c->lastAlertReceived()->code == SSL_AD_CERTIFICATE_REQUIRED);
    REQUIRE(up.waitFailedHandshakes(1));
    CHECK_THAT(up.seen().at(0).error, Contains("peer did not return a certificate"));
  }
  SECTION("without one, TLS 1.2: the handshake fails") {
    o.max_version = TLS1_2_VERSION;
    TlsError err;
    CHECK_FALSE(TlsClient::connect(up.port(), o, 5s, &err));
    REQUIRE(err.alert_received);
    CHECK(err.alert_received->code == SSL_AD_HANDSHAKE_FAILURE);
  }
  SECTION("a client certificate from another CA") {
    CertAuthority other = CertAuthority::create("Other CA");
    CertFiles f = other.issue({.common_name = "intruder", .usage = CertUsage::kClient})
                      .writeFiles(pki.dir.path(), "intruder");
    o.cert_file = f.cert;
    o.key_file = f.key;
    auto c = TlsClient::connect(up.port(), o);
    REQUIRE(c);  // TLS 1.3: the server's verdict comes after the client's Finished
    CHECK(get(*c).status == 0);
    REQUIRE(c->lastAlertReceived());
    CHECK(c->lastAlertReceived()->code == SSL_AD_UNKNOWN_CA);
  }
}

TEST_CASE("TlsClient resumes a session from an earlier connection", "[tls_toolkit]") {
  int version = GENERATE(TLS1_3_VERSION, TLS1_2_VERSION);
  Pki pki;
  TlsUpstream up(pki.upstream());
  TlsClientOptions o = pki.verifying();
  o.max_version = version;

  auto first = TlsClient::connect(up.port(), o);
  REQUIRE(first);
  REQUIRE(get(*first).status == 200);  // TLS 1.3 tickets are read along with the response
  o.session = first->session();
  REQUIRE(o.session);
  CHECK(SSL_SESSION_is_resumable(o.session.get()) == 1);
  first.reset();

  auto second = TlsClient::connect(up.port(), o);
  REQUIRE(second);
  CHECK(second->resumed());
  HttpResponse r = get(*second);
  REQUIRE(r.status == 200);
  CHECK(r.header("x-tls-resumed") == "true");
  CHECK(up.handshakes() == 2);
  CHECK(up.resumedHandshakes() == 1);
  // The server's certificate is remembered in the session.
  REQUIRE(second->peerCert());
  CHECK(second->peerCert()->sha256 == pki.server.sha256());
}

TEST_CASE("TlsClient::waitSession gets a TLS 1.3 ticket without application data",
          "[tls_toolkit]") {
  Pki pki;
  TlsUpstream up(pki.upstream(TlsUpstreamOptions::Mode::kEcho));
  auto c = TlsClient::connect(up.port(), pki.verifying());
  REQUIRE(c);
  TlsSession s = c->waitSession();
  REQUIRE(s);
  // Data arriving later is still delivered.
  REQUIRE(c->sendAll("after"));
  CHECK(c->recvExactly(5) == "after");
  TlsClientOptions o = pki.verifying();
  o.session = s;
  auto again = TlsClient::connect(up.port(), o);
  REQUIRE(again);
  CHECK(again->resumed());
}

TEST_CASE("TlsClient offering TLS 1.1 only gets a protocol_version alert", "[tls_toolkit]") {
  Pki pki;
  TlsUpstream up(pki.upstream());
  TlsError err;
  CHECK_FALSE(TlsClient::connect(up.port(), TlsClientOptions::tls11Only("localhost"), 5s, &err));
  REQUIRE(err.alert_received);
  CHECK(err.alert_received->code == SSL_AD_PROTOCOL_VERSION);
  CHECK(err.alert_received->fatal);
  CHECK(err.alert_received->name == "protocol version");
  CHECK_THAT(err.message, Contains("tlsv1 alert protocol version"));
  REQUIRE(up.waitFailedHandshakes(1));
  CHECK_THAT(up.seen().at(0).error, Contains("unsupported protocol"));

  // The same client gets through to a server that allows TLS 1.1: what failed above is the
  // server refusing TLS 1.1, not the client failing to offer it.
  TlsUpstreamOptions lo = pki.upstream();
  lo.min_version = lo.max_version = TLS1_1_VERSION;
  lo.security_level = 0;
  lo.cipher_list = "DEFAULT@SECLEVEL=0";
  TlsUpstream legacy(lo);
  auto c = TlsClient::connect(legacy.port(), TlsClientOptions::tls11Only("localhost"), 5s, &err);
  INFO(err.message);
  REQUIRE(c);
  CHECK(c->version() == "TLSv1.1");
  CHECK(get(*c).status == 200);
}

TEST_CASE("curl and openssl s_client accept the generated files", "[tls_toolkit]") {
  Pki pki;
  TlsUpstreamOptions uo = pki.upstream();
  uo.client_ca_file = pki.client_files.ca;
  uo.client_cert_optional = true;
  TlsUpstream up(uo);
  const std::string port = std::to_string(up.port());

  RunResult r =
      runProcess({"curl", "-sS", "-i", "--cacert", pki.server_files.ca, "--cert",
                  pki.client_files.cert, "--key", pki.client_files.key, "--resolve",
                  "localhost:" + port + ":127.0.0.1", "https://localhost:" + port + "/c"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  HttpResponse resp = parseHttpResponse(r.out);
  CHECK(resp.status == 200);
  CHECK(resp.header("x-tls-client-cn") == "client-a");
  CHECK(resp.header("x-tls-sni") == "localhost");

  r = runProcess(
      {"curl", "-sS", "--cacert", pki.server_files.ca, "https://127.0.0.1:" + port + "/"});
  CHECK(r.exit_code == 0);  // the IP SAN
  r = runProcess({"curl", "-sS", "https://127.0.0.1:" + port + "/"});
  CHECK(r.exit_code == 60);  // unknown CA

  r = runProcess({"openssl", "s_client", "-connect", "127.0.0.1:" + port, "-servername",
                  "localhost", "-verify_hostname", "localhost", "-CAfile", pki.server_files.ca,
                  "-verify_return_error", "-brief"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.err, Contains("Verification: OK"));
}
