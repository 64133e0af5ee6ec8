// TLS termination on HTTP listeners, against the real ferry binary: proxying over TLS (our
// client and curl), certificate selection by SNI (exact, wildcard, default) and by key type,
// ALPN, protocol versions, session resumption (tickets and session ids), client certificates
// (required, optional, allowed SANs and subjects) and the handshake's failure modes (garbage,
// plain HTTP, silence, a truncated ClientHello), each with its metric.
// Reloads and memory: tls_reload_test.cc; upstream TLS, tcp listeners, SNI passthrough and
// --validate: tls_upstream_test.cc.
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>
#include <regex>
#include <sstream>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_upstream.h"
#include "tests/integration/test_certs.h"
#include "tests/integration/tls_client.h"
#include "tests/integration/tls_test_support.h"
#include "tests/integration/tls_upstream.h"

using namespace ferry::testing;
using namespace ferry::testing::tls_test;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

// One keep-alive request on an open TLS connection; status 0 on failure.
HttpResponse get(TlsClient& c, const std::string& path = "/", const std::string& host = "a.test",
                 const std::vector<std::string>& extra_headers = {}) {
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n";
  for (const auto& h : extra_headers) req += h + "\r\n";
  if (!c.sendAll(req + "\r\n")) return {};
  return c.recvHttpResponse();
}

// The common name of the certificate ferry presents for `sni` ("" = no SNI); "" if the
// handshake fails.
std::string servedCn(uint16_t port, const std::string& sni, TlsClientOptions o = {}) {
  o.sni = sni;
  auto c = TlsClient::connect(port, o);
  if (!c || !c->peerCert()) return "";
  return c->peerCert()->common_name;
}

int64_t notAfterOf(const IssuedCert& c) {
  tm t{};
  REQUIRE(ASN1_TIME_to_tm(X509_get0_notAfter(c.x509()), &t) == 1);
  return static_cast<int64_t>(timegm(&t));
}

}  // namespace

// ---- 1. termination

TEST_CASE("tls: an HTTP listener terminates TLS and proxies to a plain upstream", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files})));
  const uint16_t port = f->port("web");

  HttpResponse r = httpsGet(port, "a.test", "/hello", pki.verifying(""));
  INFO(r.error);
  REQUIRE(r.status == 200);
  CHECK(r.body == "ok:/hello");
  REQUIRE(up.waitRequests(1));
  CHECK(up.requests()[0].header("host") == "a.test");
  CHECK(up.requests()[0].target == "/hello");

  // curl, verifying against the CA, with the name resolved to the listener.
  const std::string p = std::to_string(port);
  RunResult c = runProcess({"curl", "-sS", "-i", "--http1.1", "--cacert", pki.ca_file, "--resolve",
                            "a.test:" + p + ":127.0.0.1", "https://a.test:" + p + "/from-curl"});
  INFO("curl: " << c.out << c.err);
  CHECK(c.exit_code == 0);
  HttpResponse cr = parseHttpResponse(c.out);
  CHECK(cr.status == 200);
  CHECK(cr.body == "ok:/from-curl");

  CHECK(waitMetricAtLeast(*f, handshakesKey(), 2) == 2);
  CHECK(metric(*f, "ferry_tls_connections_by_version_total{listener=\"web\",version=\"TLSv1.3\"}") == 2);
  CHECK(metric(*f, "ferry_tls_connections_by_version_total{listener=\"web\",version=\"TLSv1.2\"}") == 0);
  CHECK(metric(*f, "ferry_tls_certificate_expiry_timestamp_seconds{listener=\"web\",certificate=\"" + a.files.cert +
                       "\"}") == static_cast<double>(notAfterOf(a.cert)));
}

TEST_CASE("tls: keep-alive, large bodies both ways and close_notify over a terminated connection", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  const std::string big = randomBytes(300 * 1024, 7);
  HttpUpstream up([&](const UpstreamRequest& r) {
    if (r.target == "/big") return HttpUpstream::ok(big);
    return HttpUpstream::ok("len:" + std::to_string(r.body.size()) + (r.body == big ? ":same" : ":different"));
  });
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files})));
  auto c = TlsClient::connect(f->port("web"), pki.verifying("a.test"));
  REQUIRE(c);

  // Three requests on one connection.
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = get(*c, "/big");
    INFO(r.error);
    REQUIRE(r.status == 200);
    CHECK(r.body.size() == big.size());
    CHECK(r.body == big);
  }
  // A 300 kB upload.
  REQUIRE(c->sendAll("POST /up HTTP/1.1\r\nHost: a.test\r\ncontent-length: " + std::to_string(big.size()) + "\r\n\r\n" +
                     big));
  HttpResponse r = c->recvHttpResponse();
  REQUIRE(r.status == 200);
  CHECK(r.body == "len:" + std::to_string(big.size()) + ":same");
  CHECK(up.connections() == 1);

  // Connection: close: the response, then ferry's close_notify.
  REQUIRE(c->sendAll("GET /last HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"));
  r = c->recvHttpResponse();
  REQUIRE(r.status == 200);
  c->recvUntilClose(3s);
  CHECK(c->sawCloseNotify());
  CHECK_FALSE(c->failed());
  CHECK(metric(*f, handshakesKey()) == 1);
}

TEST_CASE("tls: requests over TLS reach the upstream with x-forwarded-proto https", "[tls]") {
  // Regression test (was a bug): ActiveStream::decodeHeaders sets h.scheme = "http" for every
  // request, so a request received on a TLS listener is forwarded with x-forwarded-proto: http.
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files})));
  REQUIRE(httpsGet(f->port("web"), "a.test", "/p", pki.verifying("")).status == 200);
  REQUIRE(up.waitRequests(1));
  CHECK(up.requests()[0].header("x-forwarded-proto") == "https");
}

// ---- 2. SNI

TEST_CASE("tls: the certificate follows SNI: exact names, a one-label wildcard, the first as default", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  Issued b = pki.server("b", "b", {"b.test", "www.b.test"});
  Issued w = pki.server("w", "w", {"*.w.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files, b.files, w.files})));
  const uint16_t port = f->port("web");

  CHECK(servedCn(port, "a.test") == "a");
  CHECK(servedCn(port, "b.test") == "b");
  CHECK(servedCn(port, "www.b.test") == "b");
  CHECK(servedCn(port, "B.Test") == "b");  // names compare case-insensitively
  CHECK(servedCn(port, "x.w.test") == "w");
  CHECK(servedCn(port, "y.x.w.test") == "a");  // the wildcard covers one label only
  CHECK(servedCn(port, "w.test") == "a");      // ... and not the bare suffix
  CHECK(servedCn(port, "unknown.test") == "a");
  CHECK(servedCn(port, "") == "a");  // no SNI

  // Verified end to end: each name verifies against the CA and proxies.
  for (const char* host : {"a.test", "b.test", "x.w.test"}) {
    INFO(host);
    HttpResponse r = httpsGet(port, host, "/sni", pki.verifying(""));
    INFO(r.error);
    CHECK(r.status == 200);
  }
  // A name with no certificate gets the default, which does not verify for it.
  TlsError err;
  CHECK_FALSE(TlsClient::connect(port, pki.verifying("unknown.test"), 5s, &err));
  CHECK(err.verify_result == X509_V_ERR_HOSTNAME_MISMATCH);
}

// ---- 3. key types

TEST_CASE("tls: ECDSA and RSA certificates for one name: the client's algorithms pick", "[tls]") {
  Pki pki;
  Issued ec = pki.server("ec", "a-ecdsa", {"a.test"}, KeyType::kEcP256);
  Issued rsa = pki.server("rsa", "a-rsa", {"a.test"}, KeyType::kRsa2048);
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({ec.files, rsa.files})));
  const uint16_t port = f->port("web");

  auto served = [&](TlsClientOptions o) -> std::string {
    auto c = TlsClient::connect(port, o);
    if (!c) return "handshake failed";
    if (get(*c, "/k").status != 200) return "request failed";
    return c->peerCert()->sha256;
  };
  TlsClientOptions o = pki.verifying("a.test");
  CHECK(served(o) == ec.sha256());  // a default client prefers ECDSA

  TlsClientOptions rsa12 = o;
  rsa12.max_version = TLS1_2_VERSION;
  rsa12.cipher_list = "ECDHE-RSA-AES128-GCM-SHA256";
  CHECK(served(rsa12) == rsa.sha256());

  TlsClientOptions ec12 = o;
  ec12.max_version = TLS1_2_VERSION;
  ec12.cipher_list = "ECDHE-ECDSA-AES128-GCM-SHA256";
  CHECK(served(ec12) == ec.sha256());

  TlsClientOptions rsa13 = o;  // TLS 1.3: only RSA-PSS signatures offered
  rsa13.sigalgs = "rsa_pss_rsae_sha256";
  CHECK(served(rsa13) == rsa.sha256());

  CHECK(waitMetricAtLeast(*f, handshakesKey(), 4) == 4);
  CHECK(metric(*f, "ferry_tls_connections_by_cipher_total{listener=\"web\",cipher=\"ECDHE-RSA-AES128-GCM-SHA256\"}") ==
        1);
  CHECK(metric(*f, "ferry_tls_connections_by_cipher_total{listener=\"web\",cipher=\"ECDHE-ECDSA-AES128-GCM-SHA256\"}") ==
        1);
  CHECK(metric(*f, "ferry_tls_connections_by_version_total{listener=\"web\",version=\"TLSv1.2\"}") == 2);
}

// ---- 4. ALPN

TEST_CASE("tls: ALPN: http/1.1 is negotiated, an h2-only client is refused", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files}, "      alpn: [http/1.1]\n")));
  const uint16_t port = f->port("web");

  TlsClientOptions o = pki.verifying("a.test");
  o.alpn = {"h2", "http/1.1"};
  auto c = TlsClient::connect(port, o);
  REQUIRE(c);
  CHECK(c->alpn() == "http/1.1");
  CHECK(get(*c).status == 200);

  TlsClientOptions none = pki.verifying("a.test");  // no ALPN at all: fine
  auto n = TlsClient::connect(port, none);
  REQUIRE(n);
  CHECK(n->alpn().empty());
  CHECK(get(*n).status == 200);

  TlsClientOptions h2 = pki.verifying("a.test");
  h2.alpn = {"h2"};
  TlsError err;
  CHECK_FALSE(TlsClient::connect(port, h2, 5s, &err));
  INFO(err.message);
  REQUIRE(err.alert_received);
  CHECK(err.alert_received->code == SSL_AD_NO_APPLICATION_PROTOCOL);
  CHECK(waitMetricAtLeast(*f, failureKey("no_application_protocol"), 1) == 1);
  CHECK(metric(*f, handshakesKey()) == 2);
}

TEST_CASE("tls: a listener without an alpn key offers h2 and http/1.1 (the default for HTTP)", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files})));
  TlsClientOptions o = pki.verifying("a.test");
  o.alpn = {"h2", "http/1.1"};
  auto c = TlsClient::connect(f->port("web"), o);
  REQUIRE(c);
  CHECK(c->alpn() == "h2");
  TlsClientOptions h1 = pki.verifying("a.test");
  h1.alpn = {"http/1.1"};
  auto c1 = TlsClient::connect(f->port("web"), h1);
  REQUIRE(c1);
  CHECK(c1->alpn() == "http/1.1");
}

TEST_CASE("tls: --validate accepts alpn h2 on listeners and toward upstreams", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  const std::string path = pki.dir.write("h2.yaml",
                                         "listeners:\n"
                                         "  - name: web\n"
                                         "    address: 127.0.0.1:0\n"
                                         "    tls:\n"
                                         "      certificates:\n"
                                         "        - " + certEntry(a.files) + "\n"
                                         "      alpn: [h2]\n"
                                         "    tcp: {cluster: up}\n"
                                         "clusters:\n"
                                         "  - name: up\n"
                                         "    endpoints: [{address: 127.0.0.1:1}]\n"
                                         "    tls:\n"
                                         "      alpn: [h2]\n");
  RunResult r = runFerry({"-c", path, "--validate"});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == 0);
}

// ---- 5. versions

TEST_CASE("tls: TLS 1.1 is refused with a protocol_version alert, and counted", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files})));
  TlsError err;
  CHECK_FALSE(TlsClient::connect(f->port("web"), TlsClientOptions::tls11Only("a.test"), 5s, &err));
  INFO(err.message);
  REQUIRE(err.alert_received);
  CHECK(err.alert_received->code == SSL_AD_PROTOCOL_VERSION);
  CHECK(waitMetricAtLeast(*f, failureKey("protocol_version"), 1) == 1);
  CHECK(metric(*f, handshakesKey()) == 0);
}

TEST_CASE("tls: min_version TLSv1.3 refuses a TLS 1.2 client; max_version TLSv1.2 caps", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  SECTION("min_version: TLSv1.3") {
    auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files}, "      min_version: TLSv1.3\n")));
    TlsClientOptions o = pki.verifying("a.test");
    o.max_version = TLS1_2_VERSION;
    TlsError err;
    CHECK_FALSE(TlsClient::connect(f->port("web"), o, 5s, &err));
    INFO(err.message);
    REQUIRE(err.alert_received);
    CHECK(err.alert_received->code == SSL_AD_PROTOCOL_VERSION);
    CHECK(waitMetricAtLeast(*f, failureKey("protocol_version"), 1) == 1);
    auto c = TlsClient::connect(f->port("web"), pki.verifying("a.test"));
    REQUIRE(c);
    CHECK(c->version() == "TLSv1.3");
  }
  SECTION("max_version: TLSv1.2") {
    auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files}, "      max_version: TLSv1.2\n")));
    auto c = TlsClient::connect(f->port("web"), pki.verifying("a.test"));
    REQUIRE(c);
    CHECK(c->version() == "TLSv1.2");
    CHECK(get(*c).status == 200);
    TlsClientOptions o13 = pki.verifying("a.test");
    o13.min_version = TLS1_3_VERSION;
    TlsError err;
    CHECK_FALSE(TlsClient::connect(f->port("web"), o13, 5s, &err));
    CHECK(waitMetricAtLeast(*f, failureKey("protocol_version"), 1) == 1);
    CHECK(metric(*f, "ferry_tls_connections_by_version_total{listener=\"web\",version=\"TLSv1.2\"}") == 1);
  }
}

TEST_CASE("tls: a client with no cipher in common is refused, counted no_shared_cipher", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files}, "      max_version: TLSv1.2\n")));
  TlsClientOptions o = pki.verifying("a.test");
  o.max_version = TLS1_2_VERSION;
  o.cipher_list = "AES128-SHA";  // static RSA: not in ferry's ECDHE-only default list
  TlsError err;
  CHECK_FALSE(TlsClient::connect(f->port("web"), o, 5s, &err));
  INFO(err.message);
  REQUIRE(err.alert_received);
  CHECK(err.alert_received->code == SSL_AD_HANDSHAKE_FAILURE);
  CHECK(waitMetricAtLeast(*f, failureKey("no_shared_cipher"), 1) == 1);
}

// ---- 6. resumption

TEST_CASE("tls: sessions resume: TLS 1.3 tickets, TLS 1.2 tickets and TLS 1.2 session ids", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  struct Mode {
    const char* what;
    int max_version;
    bool client_no_ticket;
    bool listener_tickets;
  };
  const Mode mode = GENERATE(Mode{"TLS 1.3, tickets", 0, false, true},
                             Mode{"TLS 1.2, tickets", TLS1_2_VERSION, false, true},
                             Mode{"TLS 1.2, session id: no ticket extension from the client", TLS1_2_VERSION, true, true},
                             Mode{"TLS 1.2, session id: session_tickets false", TLS1_2_VERSION, false, false});
  INFO(mode.what);
  TlsClientOptions o = pki.verifying("a.test");
  o.max_version = mode.max_version;
  o.no_ticket = mode.client_no_ticket;
  const bool want_ticket = mode.listener_tickets && !mode.client_no_ticket;
  const std::string more = mode.listener_tickets ? "" : "      session_tickets: false\n";
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files}, more)));
  const uint16_t port = f->port("web");

  auto first = TlsClient::connect(port, o);
  REQUIRE(first);
  CHECK_FALSE(first->resumed());
  REQUIRE(get(*first).status == 200);
  TlsSession s = first->waitSession();
  REQUIRE(s);
  CHECK(SSL_SESSION_is_resumable(s.get()) == 1);
  CHECK(SSL_SESSION_has_ticket(s.get()) == (want_ticket ? 1 : 0));
  first->close();

  o.session = s;
  // TLS 1.2 sessions can be used again and again; OpenSSL's client uses a TLS 1.3 session
  // once (resuming marks it not resumable), hence one round there (and see the next test).
  const int rounds = mode.max_version == 0 ? 1 : 2;
  for (int i = 0; i < rounds; ++i) {
    auto again = TlsClient::connect(port, o);
    REQUIRE(again);
    CHECK(again->resumed());
    CHECK(get(*again).status == 200);
    REQUIRE(again->peerCert());
    CHECK(again->peerCert()->sha256 == a.sha256());
  }
  CHECK(waitMetricAtLeast(*f, resumedKey(), rounds) == rounds);
  CHECK(metric(*f, handshakesKey()) == 1 + rounds);
}

TEST_CASE("tls: a resumed TLS 1.3 connection gets a new ticket, as from OpenSSL's own server", "[tls]") {
  // Regression test (was a bug): core/tls/context.cc onTicketKey returns 1 ("valid, do not renew")
  // for a ticket of the current epoch; for TLS 1.3 OpenSSL then sends no NewSessionTicket after the
  // resumed handshake. OpenSSL clients use a TLS 1.3 session once, so a client that keeps
  // reconnecting does a full handshake every other time. TlsUpstream (OpenSSL's defaults) is the
  // control: it issues a new ticket after each resumption.
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  TlsUpstreamOptions uo;
  uo.cert_file = a.files.cert;
  uo.key_file = a.files.key;
  TlsUpstream control(uo);
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files})));
  auto resumedChain = [&](uint16_t port) {
    TlsClientOptions o = pki.verifying("a.test");
    auto first = TlsClient::connect(port, o);
    REQUIRE(first);
    REQUIRE(get(*first).status == 200);
    o.session = first->waitSession();
    REQUIRE(o.session);
    int resumed = 0;
    for (int i = 0; i < 4; ++i) {
      auto c = TlsClient::connect(port, o);
      REQUIRE(c);
      resumed += c->resumed() ? 1 : 0;
      REQUIRE(get(*c).status == 200);
      if (TlsSession next = c->waitSession(1s)) o.session = next;  // else: try the old one
    }
    return resumed;
  };
  REQUIRE(resumedChain(control.port()) == 4);
  CHECK(resumedChain(f->port("web")) == 4);
}

TEST_CASE("tls: tickets resume on every worker (stateless ticket keys, no shared state)", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files}), /*workers=*/4));
  const uint16_t port = f->port("web");
  // 24 connections land on the 4 workers by SO_REUSEPORT's hash of the client port: the
  // ticket issued by one worker must open on the others.
  constexpr int kRounds = 24;
  int resumed12 = 0, resumed13 = 0;
  TlsClientOptions o12 = pki.verifying("a.test");
  o12.max_version = TLS1_2_VERSION;
  auto first = TlsClient::connect(port, o12);
  REQUIRE(first);
  o12.session = first->session();
  REQUIRE(o12.session);
  for (int i = 0; i < kRounds; ++i) {
    auto c = TlsClient::connect(port, o12);
    REQUIRE(c);
    resumed12 += c->resumed() ? 1 : 0;
  }
  for (int i = 0; i < kRounds / 2; ++i) {  // TLS 1.3: a fresh ticket for each resumption
    TlsClientOptions o13 = pki.verifying("a.test");
    auto full = TlsClient::connect(port, o13);
    REQUIRE(full);
    o13.session = full->waitSession();
    REQUIRE(o13.session);
    auto c = TlsClient::connect(port, o13);
    REQUIRE(c);
    resumed13 += c->resumed() ? 1 : 0;
  }
  CHECK(resumed12 == kRounds);
  CHECK(resumed13 == kRounds / 2);
  CHECK(waitMetricAtLeast(*f, resumedKey(), kRounds + kRounds / 2) == kRounds + kRounds / 2);
}

TEST_CASE("tls: a session resumes whichever certificate SNI picked on the listener", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  Issued b = pki.server("b", "b", {"b.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files, b.files})));
  const uint16_t port = f->port("web");
  TlsClientOptions o = pki.verifying("b.test");
  auto first = TlsClient::connect(port, o);
  REQUIRE(first);
  CHECK(first->peerCert()->common_name == "b");
  o.session = first->waitSession();
  REQUIRE(o.session);
  auto again = TlsClient::connect(port, o);
  REQUIRE(again);
  CHECK(again->resumed());
  CHECK(get(*again, "/", "b.test").status == 200);
}

TEST_CASE("tls: TLS 1.3 resumes with session_tickets false (stateful session cache)", "[tls]") {
  // Regression test (was a bug): with session_tickets: false the listener sets
  // SSL_CTX_set_num_tickets(0), so a TLS 1.3 client never gets a NewSessionTicket and cannot
  // resume, although the session cache is documented (context.cc, model.h) as serving "TLS 1.3
  // without tickets" and onNewSession keeps TLS 1.3 sessions when tickets are off.
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files}, "      session_tickets: false\n")));
  TlsClientOptions o = pki.verifying("a.test");
  auto first = TlsClient::connect(f->port("web"), o);
  REQUIRE(first);
  REQUIRE(get(*first).status == 200);
  o.session = first->waitSession(2s);
  REQUIRE(o.session);
  auto again = TlsClient::connect(f->port("web"), o);
  REQUIRE(again);
  CHECK(again->resumed());
}

TEST_CASE("tls: openssl s_client -reconnect reuses the session (TLS 1.2)", "[tls]") {
  // TLS 1.2 only: with TLS 1.3 `s_client -reconnect` reconnects before it has read the
  // post-handshake ticket, so it never reuses, against any server (checked against
  // `openssl s_server`: "New" six times).
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files})));
  const std::string addr = "127.0.0.1:" + std::to_string(f->port("web"));
  RunResult r = runProcess({"openssl", "s_client", "-connect", addr, "-servername", "a.test", "-CAfile", pki.ca_file,
                            "-verify_return_error", "-tls1_2", "-reconnect"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  // The first connection is "New", the five reconnections "Reused".
  size_t reused = 0;
  for (size_t p = r.out.find("Reused, TLSv1.2"); p != std::string::npos; p = r.out.find("Reused, TLSv1.2", p + 1))
    ++reused;
  CHECK(reused == 5);
  CHECK(waitMetricAtLeast(*f, resumedKey(), 5) == 5);
}

TEST_CASE("tls: openssl s_client -no_ticket -sess_out / -sess_in resumes by session id", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files})));
  const std::string addr = "127.0.0.1:" + std::to_string(f->port("web"));
  const std::string sess = pki.dir.path() + "/s_client.sess";
  std::vector<std::string> base = {"openssl", "s_client", "-connect", addr, "-servername", "a.test",
                                   "-CAfile", pki.ca_file, "-verify_return_error", "-tls1_2", "-no_ticket"};
  auto first = base;
  first.insert(first.end(), {"-sess_out", sess});
  RunResult r1 = runProcess(first);
  INFO(r1.out << r1.err);
  REQUIRE(r1.exit_code == 0);
  CHECK_THAT(r1.out, Contains("New, TLSv1.2"));
  auto second = base;
  second.insert(second.end(), {"-sess_in", sess});
  RunResult r2 = runProcess(second);
  INFO(r2.out << r2.err);
  CHECK(r2.exit_code == 0);
  CHECK_THAT(r2.out, Contains("Reused, TLSv1.2"));
  CHECK(waitMetricAtLeast(*f, resumedKey(), 1) == 1);
}

// ---- 7. client certificates

TEST_CASE("tls: client_ca_file alone requires a client certificate from that CA", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  Issued good = pki.client("good", "client-good", {"spiffe://test/good"});
  Pki other("Other CA");
  Issued intruder = other.client("intruder", "intruder");
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files}, "      client_ca_file: " + pki.ca_file + "\n")));
  const uint16_t port = f->port("web");

  SECTION("a certificate from the CA: 200") {
    TlsClientOptions o = pki.verifying("a.test");
    o.cert_file = good.files.cert;
    o.key_file = good.files.key;
    for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
      o.max_version = version;
      HttpResponse r = httpsGet(port, "a.test", "/mtls", o);
      INFO(r.error);
      CHECK(r.status == 200);
    }
    CHECK(waitMetricAtLeast(*f, handshakesKey(), 2) == 2);
  }
  SECTION("no certificate, TLS 1.3: the first read fails with certificate_required") {
    auto c = TlsClient::connect(port, pki.verifying("a.test"));
    REQUIRE(c);  // the server's verdict comes after the client's Finished
    CHECK(get(*c).status == 0);
    CHECK(c->failed());
    REQUIRE(c->lastAlertReceived());
    CHECK(c->lastAlertReceived()->code == SSL_AD_CERTIFICATE_REQUIRED);
    CHECK(waitMetricAtLeast(*f, failureKey("peer_certificate"), 1) == 1);
    CHECK(metric(*f, handshakesKey()) == 0);
    CHECK(up.requestCount() == 0);
  }
  SECTION("no certificate, TLS 1.2: the handshake fails") {
    TlsClientOptions o = pki.verifying("a.test");
    o.max_version = TLS1_2_VERSION;
    TlsError err;
    CHECK_FALSE(TlsClient::connect(port, o, 5s, &err));
    REQUIRE(err.alert_received);
    CHECK(err.alert_received->code == SSL_AD_HANDSHAKE_FAILURE);
    CHECK(waitMetricAtLeast(*f, failureKey("peer_certificate"), 1) == 1);
  }
  SECTION("a certificate from another CA: unknown_ca") {
    TlsClientOptions o = pki.verifying("a.test");
    o.cert_file = intruder.files.cert;
    o.key_file = intruder.files.key;
    auto c = TlsClient::connect(port, o);
    REQUIRE(c);  // TLS 1.3: refused on the first read
    CHECK(get(*c).status == 0);
    REQUIRE(c->lastAlertReceived());
    CHECK(c->lastAlertReceived()->code == SSL_AD_UNKNOWN_CA);
    CHECK(waitMetricAtLeast(*f, failureKey("peer_certificate"), 1) == 1);
    CHECK(up.requestCount() == 0);
  }
}

TEST_CASE("tls: client_cert optional: no certificate works, a bad one is still refused", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  Issued good = pki.client("good", "client-good");
  Pki other("Other CA");
  Issued intruder = other.client("intruder", "intruder");
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(
      up.port(), tlsBlock({a.files}, "      client_ca_file: " + pki.ca_file + "\n      client_cert: optional\n")));
  const uint16_t port = f->port("web");

  HttpResponse r = httpsGet(port, "a.test", "/anon", pki.verifying(""));
  INFO(r.error);
  CHECK(r.status == 200);
  TlsClientOptions o = pki.verifying("");
  o.cert_file = good.files.cert;
  o.key_file = good.files.key;
  CHECK(httpsGet(port, "a.test", "/good", o).status == 200);
  o.cert_file = intruder.files.cert;
  o.key_file = intruder.files.key;
  CHECK(httpsGet(port, "a.test", "/bad", o).status == 0);
  CHECK(waitMetricAtLeast(*f, failureKey("peer_certificate"), 1) == 1);
  CHECK(up.requestCount() == 2);
}

TEST_CASE("tls: allowed_sans and allowed_subjects: only a listed client passes", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  Issued listed = pki.client("listed", "client-listed", {"spiffe://test/listed"});
  Issued by_subject = pki.client("subject", "client-by-subject", {"spiffe://test/other"});
  Issued unlisted = pki.client("unlisted", "client-unlisted", {"spiffe://test/unlisted"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files}, "      client_ca_file: " + pki.ca_file +
                                                                              "\n"
                                                                              "      allowed_sans: [spiffe://test/listed]\n"
                                                                              "      allowed_subjects: [CN=client-by-subject]\n")));
  const uint16_t port = f->port("web");
  auto with = [&](const Issued& c) {
    TlsClientOptions o = pki.verifying("");
    o.cert_file = c.files.cert;
    o.key_file = c.files.key;
    return httpsGet(port, "a.test", "/sans", o);
  };
  CHECK(with(listed).status == 200);
  CHECK(with(by_subject).status == 200);
  HttpResponse r = with(unlisted);
  CHECK(r.status == 0);
  CHECK(waitMetricAtLeast(*f, failureKey("peer_certificate"), 1) == 1);
  CHECK(up.requestCount() == 2);
}

TEST_CASE("tls: forward_client_cert sanitize drops a client's x-forwarded-client-cert", "[tls]") {
  // Regression test (was a bug): http.forward_client_cert is parsed (config/loader_http.cc) but
  // nothing in filters/ applies it: the default `sanitize` does not remove a client-supplied
  // x-forwarded-client-cert, so a client can forge the identity an upstream trusts.
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  Issued good = pki.client("good", "client-good");
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files}, "      client_ca_file: " + pki.ca_file + "\n")));
  TlsClientOptions o = pki.verifying("a.test");
  o.cert_file = good.files.cert;
  o.key_file = good.files.key;
  auto c = TlsClient::connect(f->port("web"), o);
  REQUIRE(c);
  REQUIRE(get(*c, "/", "a.test", {"x-forwarded-client-cert: By=spiffe://forged;URI=spiffe://admin"}).status == 200);
  REQUIRE(up.waitRequests(1));
  CHECK_FALSE(up.requests()[0].hasHeader("x-forwarded-client-cert"));
}

// ---- 8. handshake robustness

TEST_CASE("tls: bytes that are not TLS close the connection, counted not_tls", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files})));
  const uint16_t port = f->port("web");
  const std::string inputs[] = {
      std::string("hello, this is not TLS at all\r\n"),
      std::string("\x17\x03\x03\x00\x05hello", 10),  // application data before any handshake
      std::string("\x16\x03\x01\xff\xff") + std::string(64, 'x'),  // a record longer than 2^14
  };
  double want = 0;
  for (const auto& in : inputs) {
    INFO(in);
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    REQUIRE(c->sendAll(in));
    CHECK(c->waitClosed(3s));
    ++want;
    CHECK(waitMetricAtLeast(*f, failureKey("not_tls"), want) == want);
  }
  CHECK(metric(*f, failureKey("http_request")) == 0);
  CHECK(up.requestCount() == 0);
  // ferry is fine afterwards.
  CHECK(httpsGet(port, "a.test", "/", pki.verifying("")).status == 200);
}

TEST_CASE("tls: a plain HTTP request on the TLS port gets 400 and a close, counted http_request", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files})));
  const uint16_t port = f->port("web");
  for (const char* req : {"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", "POST /x HTTP/1.1\r\nHost: a.test\r\n\r\n"}) {
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    REQUIRE(c->sendAll(req));
    std::string got = c->recvUntilClose(3s);
    CHECK_THAT(got, StartsWith("HTTP/1.1 400"));
    CHECK(c->closedByPeer());
    HttpResponse r = parseHttpResponse(got);
    CHECK(r.status == 400);
    CHECK_THAT(r.body, Contains("TLS"));
  }
  // curl http:// on the https port: the same 400.
  RunResult cr = runProcess({"curl", "-s", "-i", "http://127.0.0.1:" + std::to_string(port) + "/"});
  CHECK_THAT(cr.out, StartsWith("HTTP/1.1 400"));
  CHECK(waitMetricAtLeast(*f, failureKey("http_request"), 3) == 3);
  CHECK(up.requestCount() == 0);
}

TEST_CASE("tls: handshake_timeout closes a silent client and a half ClientHello, counted timeout", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files}, "      handshake_timeout: 300ms\n")));
  const uint16_t port = f->port("web");
  const std::string hello = clientHelloBytes("a.test");
  struct Case {
    const char* what;
    std::string send;
  } cases[] = {{"nothing", ""}, {"half a ClientHello", hello.substr(0, hello.size() / 2)}, {"a record header", hello.substr(0, 3)}};
  double want = 0;
  for (const auto& k : cases) {
    INFO(k.what);
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    const auto start = std::chrono::steady_clock::now();
    if (!k.send.empty()) REQUIRE(c->sendAll(k.send));
    REQUIRE(c->waitClosed(5s));
    const auto took = std::chrono::duration_cast<ms>(std::chrono::steady_clock::now() - start);
    CHECK(took >= 250ms);
    CHECK(took < 3s);
    ++want;
    CHECK(waitMetricAtLeast(*f, failureKey("timeout"), want) == want);
  }
  // A client that does the handshake in time is not affected.
  CHECK(httpsGet(port, "a.test", "/", pki.verifying("")).status == 200);
}

TEST_CASE("tls: a client that closes during the handshake is counted peer_closed", "[tls]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files})));
  const uint16_t port = f->port("web");
  const std::string hello = clientHelloBytes("a.test");
  auto c = TcpClient::connect(port);
  REQUIRE(c);
  REQUIRE(c->sendAll(hello.substr(0, 40)));
  c->close();
  CHECK(waitMetricAtLeast(*f, failureKey("peer_closed"), 1) == 1);
  // A whole ClientHello, then a close before the client's Finished.
  auto d = TcpClient::connect(port);
  REQUIRE(d);
  REQUIRE(d->sendAll(hello));
  CHECK_FALSE(d->recvSome(3s).empty());  // the ServerHello...
  d->close();
  CHECK(waitMetricAtLeast(*f, failureKey("peer_closed"), 2) == 2);
  CHECK(metric(*f, failureKey("other")) == 0);
}
