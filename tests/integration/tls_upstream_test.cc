// TLS toward upstreams (a cluster's `tls` block: SNI, verification, client certificates,
// session reuse, health checks over TLS), TLS on tcp listeners (termination; routing by the
// handshake's SNI), SNI passthrough through the TLS inspector, and what `ferry --validate`
// says about bad TLS blocks. Helpers: tls_test_support.h.
#include <openssl/err.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>
#include <atomic>
#include <regex>
#include <thread>
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

namespace {

// A TlsUpstream with a certificate for `dns` from the PKI's CA.
TlsUpstreamOptions upstreamOpts(const Pki& pki, const std::string& file, const std::string& cn,
                                std::vector<std::string> dns, TlsUpstreamOptions::Mode mode = TlsUpstreamOptions::Mode::kHttp) {
  Issued s = pki.server(file, cn, std::move(dns));
  TlsUpstreamOptions o;
  o.cert_file = s.files.cert;
  o.key_file = s.files.key;
  o.mode = mode;
  o.name = cn;
  return o;
}

// A plain HTTP listener "web" in front of cluster "up" (one endpoint) with these extra cluster
// keys (indented 4).
std::string proxyTo(uint16_t port, const std::string& cluster_extra) {
  return FerryConfig{.clusters = {{"up", {port}, cluster_extra}}}.yaml();
}

std::string upstreamKey(const std::string& name, const std::string& cluster = "up") {
  return name + "{cluster=\"" + cluster + "\"}";
}
std::string upstreamFailureKey(const std::string& reason, const std::string& cluster = "up") {
  return "ferry_upstream_tls_handshake_failures_total{cluster=\"" + cluster + "\",reason=\"" + reason + "\"}";
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace

// ---- 10. upstream TLS

TEST_CASE("tls upstream: a cluster with tls {ca_file, sni} reaches a TLS backend", "[tls][upstream]") {
  Pki pki;
  TlsUpstreamOptions uo = upstreamOpts(pki, "up", "backend", {"up.test"});
  uo.alpn = {"http/1.1"};
  TlsUpstream tu(uo);
  auto f = FerryProcess::start(proxyTo(
      tu.port(), "    tls: {sni: up.test, ca_file: " + pki.ca_file + ", alpn: [http/1.1]}\n"));
  const uint16_t port = f->port("web");

  HttpResponse r = httpRequest(port, "GET", "/via-tls");
  INFO(r.error << r.body);
  REQUIRE(r.status == 200);
  CHECK(r.body == "backend");
  CHECK(r.header("x-tls-sni") == "up.test");
  CHECK(r.header("x-tls-version") == "TLSv1.3");
  CHECK(r.header("x-tls-alpn") == "http/1.1");
  REQUIRE(tu.requestHeads().size() == 1);
  CHECK_THAT(tu.requestHeads()[0], Contains("GET /via-tls HTTP/1.1"));
  // Pooled: a second request on the same upstream connection.
  CHECK(httpRequest(port, "GET", "/again").status == 200);
  CHECK(tu.connections() == 1);
  CHECK(metric(*f, upstreamKey("ferry_upstream_tls_handshakes_total")) == 1);
}

TEST_CASE("tls upstream: a certificate that does not verify is a connect failure: 503 UF", "[tls][upstream]") {
  Pki pki;
  Pki other("Other CA");
  TlsUpstream tu(upstreamOpts(pki, "up", "backend", {"up.test"}));
  struct Case {
    const char* what;
    std::string tls;
  } cases[] = {
      {"another CA", "    tls: {sni: up.test, ca_file: " + other.ca_file + "}\n"},
      {"verify_name not in the certificate", "    tls: {sni: up.test, ca_file: " + pki.ca_file + ", verify_name: other.test}\n"},
      {"SNI (the verified name) not in the certificate", "    tls: {sni: wrong.test, ca_file: " + pki.ca_file + "}\n"},
      {"tls: {} verifies against the system's CAs", "    tls: {sni: up.test}\n"},
  };
  for (const auto& k : cases) {
    INFO(k.what);
    auto f = FerryProcess::start(proxyTo(tu.port(), k.tls));
    HttpResponse r = httpRequest(f->port("web"), "GET", "/");
    CHECK(r.status == 503);
    CHECK(metric(*f, "ferry_downstream_response_flags_total{listener=\"web\",flag=\"UF\"}") == 1);
    CHECK(metric(*f, upstreamFailureKey("peer_certificate")) >= 1);
    CHECK(metric(*f, upstreamKey("ferry_upstream_tls_handshakes_total")) == 0);
    CHECK(metric(*f, upstreamKey("ferry_upstream_connect_failures_total")) >= 1);
  }
  CHECK(tu.requestHeads().empty());
  CHECK(tu.handshakes() == 0);

  SECTION("verify: false accepts it") {
    auto f = FerryProcess::start(proxyTo(tu.port(), "    tls: {sni: up.test, verify: false}\n"));
    CHECK(httpRequest(f->port("web"), "GET", "/").status == 200);
  }
}

TEST_CASE("tls upstream: a backend that resets during the handshake is a connect failure at once",
          "[tls][upstream]") {
  // Regression test (was a crash): a reset while the TLS handshake ran was reported as a
  // remote close, not a failed connect; the pool then left the request waiting on a client it
  // had destroyed (a use-after-free when the route timeout cancelled it).
  sockaddr_storage addr{};
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(lfd, 16) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const uint16_t port = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  std::atomic<int> resets{0};
  std::atomic<bool> stop{false};
  // Accepts, reads the ClientHello, answers with a reset; bounded by `stop` and poll timeouts.
  std::thread server([&] {
    while (!stop) {
      pollfd p{lfd, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      int fd = ::accept(lfd, nullptr, nullptr);
      if (fd < 0) continue;
      pollfd q{fd, POLLIN, 0};
      char buf[4096];
      if (::poll(&q, 1, 2000) == 1) (void)::recv(fd, buf, sizeof buf, 0);
      linger lg{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      ++resets;  // before the reset goes out: Ferry's 503 cannot come back ahead of the count
      ::close(fd);
    }
  });
  struct Join {
    std::thread& t;
    std::atomic<bool>& stop;
    int fd;
    ~Join() {
      stop = true;
      t.join();
      ::close(fd);
    }
  } join{server, stop, lfd};
  auto f = FerryProcess::start(proxyTo(port, "    tls: {verify: false}\n"));
  const auto started = std::chrono::steady_clock::now();
  HttpResponse r = httpRequest(f->port("web"), "GET", "/");
  CHECK(r.status == 503);
  CHECK(std::chrono::steady_clock::now() - started < 3s);  // not the route timeout
  CHECK(metric(*f, "ferry_downstream_response_flags_total{listener=\"web\",flag=\"UF\"}") == 1);
  CHECK(metric(*f, upstreamKey("ferry_upstream_connect_failures_total")) >= 1);
  CHECK(resets >= 1);
  // Ferry is still there and answers the next request the same way.
  CHECK(httpRequest(f->port("web"), "GET", "/").status == 503);
  CHECK(f->running());
}

TEST_CASE("tls upstream: a TLS 1.1 backend is refused, counted protocol_version", "[tls][upstream]") {
  Pki pki;
  TlsUpstreamOptions uo = upstreamOpts(pki, "up", "backend", {"up.test"});
  uo.min_version = uo.max_version = TLS1_1_VERSION;
  uo.security_level = 0;
  uo.cipher_list = "DEFAULT@SECLEVEL=0";
  TlsUpstream tu(uo);
  auto f = FerryProcess::start(proxyTo(tu.port(), "    tls: {sni: up.test, ca_file: " + pki.ca_file + "}\n"));
  CHECK(httpRequest(f->port("web"), "GET", "/").status == 503);
  CHECK(metric(*f, upstreamFailureKey("protocol_version")) == 1);
}

TEST_CASE("tls upstream: an IP endpoint gets no SNI", "[tls][upstream]") {
  Pki pki;
  TlsUpstream tu(upstreamOpts(pki, "up", "backend", {"up.test"}));
  auto f = FerryProcess::start(proxyTo(tu.port(), "    tls: {ca_file: " + pki.ca_file + ", verify_name: up.test}\n"));
  HttpResponse r = httpRequest(f->port("web"), "GET", "/");
  REQUIRE(r.status == 200);
  CHECK(r.header("x-tls-sni").empty());
}

TEST_CASE("tls upstream: a client certificate toward an upstream that requires one", "[tls][upstream]") {
  Pki pki;
  Issued client = pki.client("ferry-client", "ferry-client", {"spiffe://test/ferry"});
  TlsUpstreamOptions uo = upstreamOpts(pki, "up", "backend", {"up.test"});
  uo.client_ca_file = pki.ca_file;
  TlsUpstream tu(uo);

  SECTION("cert_file/key_file: 200, the upstream sees the CN") {
    auto f = FerryProcess::start(proxyTo(tu.port(), "    tls: {sni: up.test, ca_file: " + pki.ca_file + ", cert_file: " +
                                                        client.files.cert + ", key_file: " + client.files.key + "}\n"));
    HttpResponse r = httpRequest(f->port("web"), "GET", "/mtls");
    INFO(r.error << r.body);
    REQUIRE(r.status == 200);
    CHECK(r.header("x-tls-client-cn") == "ferry-client");
    CHECK(r.header("x-tls-client-uri") == "spiffe://test/ferry");
  }
  SECTION("without one: an error answer, nothing reaches the upstream") {
    auto f = FerryProcess::start(proxyTo(tu.port(), "    tls: {sni: up.test, ca_file: " + pki.ca_file + "}\n"));
    HttpResponse r = httpRequest(f->port("web"), "GET", "/no-cert");
    CHECK(r.status >= 500);
    REQUIRE(tu.waitFailedHandshakes(1));
    CHECK_THAT(tu.seen().at(0).error, Contains("peer did not return a certificate"));
    CHECK(tu.requestHeads().empty());
  }
}

TEST_CASE("tls upstream: a new upstream connection resumes the session (tcp_proxy)", "[tls][upstream]") {
  Pki pki;
  TlsUpstream tu(upstreamOpts(pki, "up", "backend", {"up.test"}, TlsUpstreamOptions::Mode::kEcho));
  auto f = FerryProcess::start(FerryConfig{.listener = "tcp",
                                           .tcp_cluster = "up",
                                           .clusters = {{"up", {tu.port()}, "    tls: {sni: up.test, ca_file: " + pki.ca_file + "}\n"}}}
                                   .yaml());
  const uint16_t port = f->port("tcp");
  for (int i = 0; i < 3; ++i) {
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    REQUIRE(c->sendAll("ping"));
    CHECK(c->recvExactly(4, 3s) == "ping");
    c->close();  // ferry closes its upstream connection cleanly (close_notify)
    REQUIRE(tu.server().waitAccepted(static_cast<size_t>(i + 1)));
    REQUIRE(tu.waitHandshakes(static_cast<size_t>(i + 1)));
  }
  CHECK(tu.resumedHandshakes() == 2);
  CHECK(waitMetricAtLeast(*f, upstreamKey("ferry_upstream_tls_resumed_handshakes_total"), 2) == 2);
}

TEST_CASE("tls upstream: session reuse across HTTP pool connections (max_requests_per_connection 1)",
          "[tls][upstream]") {
  // Regression test (was a bug): the HTTP pool closes an upstream connection it does not keep with
  // CloseType::kNoFlush (core/upstream/http1_pool.cc release()), so the TLS transport never sends
  // close_notify; OpenSSL's SSL_free then runs ssl_clear_bad_session, which marks the connection's
  // session - the one stored for reuse by onClientNewSession - not resumable. The next connection
  // to the host does a full handshake. (tcp_proxy closes with kFlushWrite: its upstream sessions do
  // resume, see the previous test.)
  Pki pki;
  TlsUpstream tu(upstreamOpts(pki, "up", "backend", {"up.test"}));
  auto f = FerryProcess::start(proxyTo(
      tu.port(), "    max_requests_per_connection: 1\n    tls: {sni: up.test, ca_file: " + pki.ca_file + "}\n"));
  const uint16_t port = f->port("web");
  std::vector<std::string> resumed;
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = httpRequest(port, "GET", "/r" + std::to_string(i));
    REQUIRE(r.status == 200);
    resumed.push_back(r.header("x-tls-resumed"));
  }
  CHECK(tu.connections() == 3);
  CHECK(resumed == std::vector<std::string>{"false", "true", "true"});
  CHECK(tu.resumedHandshakes() == 2);
}

TEST_CASE("tls upstream: session_reuse false: every connection does a full handshake", "[tls][upstream]") {
  Pki pki;
  TlsUpstream tu(upstreamOpts(pki, "up", "backend", {"up.test"}, TlsUpstreamOptions::Mode::kEcho));
  auto f = FerryProcess::start(
      FerryConfig{.listener = "tcp",
                  .tcp_cluster = "up",
                  .clusters = {{"up", {tu.port()}, "    tls: {sni: up.test, ca_file: " + pki.ca_file + ", session_reuse: false}\n"}}}
          .yaml());
  for (int i = 0; i < 3; ++i) {
    auto c = TcpClient::connect(f->port("tcp"));
    REQUIRE(c);
    REQUIRE(c->sendAll("ping"));
    CHECK(c->recvExactly(4, 3s) == "ping");
    c->close();
    REQUIRE(tu.waitHandshakes(static_cast<size_t>(i + 1)));
  }
  CHECK(tu.resumedHandshakes() == 0);
}

TEST_CASE("tls upstream: health checks run over TLS", "[tls][upstream]") {
  Pki pki;
  Pki other("Other CA");
  TlsUpstream tu(upstreamOpts(pki, "up", "backend", {"up.test"}));
  const std::string hc = "    health_check: {path: /hc, interval: 50ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1}\n";
  SECTION("a verified backend is checked and healthy") {
    auto f = FerryProcess::start(proxyTo(tu.port(), "    tls: {sni: up.test, ca_file: " + pki.ca_file + "}\n" + hc));
    CHECK(waitMetricAtLeast(*f, "ferry_cluster_health_checks_total{cluster=\"up\",result=\"success\"}", 2) >= 2);
    CHECK(metric(*f, upstreamKey("ferry_cluster_endpoints_healthy")) == 1);
    bool saw_check = false;
    for (const auto& h : tu.requestHeads()) saw_check = saw_check || h.rfind("GET /hc HTTP/1.1", 0) == 0;
    CHECK(saw_check);
    CHECK(httpRequest(f->port("web"), "GET", "/").status == 200);
  }
  SECTION("a backend whose certificate does not verify fails its checks") {
    auto f = FerryProcess::start(proxyTo(tu.port(), "    tls: {sni: up.test, ca_file: " + other.ca_file + "}\n" + hc));
    CHECK(waitMetricAtLeast(*f, "ferry_cluster_health_checks_total{cluster=\"up\",result=\"failure\"}", 1) >= 1);
    CHECK(waitMetric(f->adminPort(), upstreamKey("ferry_cluster_endpoints_healthy"), 0));
    CHECK(tu.requestHeads().empty());
  }
}

// ---- 11. tcp listeners terminating TLS

TEST_CASE("tls tcp: a tcp listener terminates TLS toward a plain echo upstream", "[tls][tcp]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  FakeUpstream echo(FakeUpstream::echo());
  auto f = FerryProcess::start(
      FerryConfig{.listener = "tt", .listener_extra = tlsBlock({a.files}), .tcp_cluster = "echo", .clusters = {{"echo", {echo.port()}}}}
          .yaml());
  auto c = TlsClient::connect(f->port("tt"), pki.verifying("a.test"));
  REQUIRE(c);
  const std::string data = randomBytes(256 * 1024, 11);
  REQUIRE(c->sendAll(data));
  CHECK(c->recvExactly(data.size(), 5s) == data);
  // Half-close: our close_notify reaches the echo as EOF; it closes, and so does ferry, cleanly.
  REQUIRE(c->sendAll("last words"));
  ERR_clear_error();
  CHECK(SSL_shutdown(c->ssl()) >= 0);
  CHECK(c->recvUntilClose(5s) == "last words");
  CHECK(c->sawCloseNotify());
  CHECK(metric(*f, handshakesKey("tt")) == 1);
}

TEST_CASE("tls tcp: TLS on both sides: terminated, then originated toward a TLS echo", "[tls][tcp]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  TlsUpstream tu(upstreamOpts(pki, "up", "backend", {"up.test"}, TlsUpstreamOptions::Mode::kEcho));
  auto f = FerryProcess::start(FerryConfig{.listener = "tt",
                                           .listener_extra = tlsBlock({a.files}),
                                           .tcp_cluster = "up",
                                           .clusters = {{"up", {tu.port()}, "    tls: {sni: up.test, ca_file: " + pki.ca_file + "}\n"}}}
                                   .yaml());
  auto c = TlsClient::connect(f->port("tt"), pki.verifying("a.test"));
  REQUIRE(c);
  const std::string data = randomBytes(100 * 1024, 12);
  REQUIRE(c->sendAll(data));
  CHECK(c->recvExactly(data.size(), 5s) == data);
  REQUIRE(tu.waitHandshakes(1));
  CHECK(tu.seen().at(0).sni == "up.test");
}

TEST_CASE("tls tcp: sni_routes on a TLS-terminating tcp listener route by the handshake's SNI", "[tls][tcp]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  Issued b = pki.server("b", "b", {"b.test"});
  FakeUpstream ua([](int fd) { FakeUpstream::writeAll(fd, "upstream-a"); });
  FakeUpstream ub([](int fd) { FakeUpstream::writeAll(fd, "upstream-b"); });
  auto f = FerryProcess::start("runtime: {workers: 1}\n"
                               "admin: {address: 127.0.0.1:0}\n"
                               "listeners:\n"
                               "  - name: tt\n"
                               "    address: 127.0.0.1:0\n" +
                               tlsBlock({a.files, b.files}) +
                               "    tcp:\n"
                               "      sni_routes:\n"
                               "        - {server_names: [a.test], cluster: a}\n"
                               "        - {server_names: [b.test], cluster: b}\n"
                               "clusters:\n" +
                               Cluster{"a", {ua.port()}}.yaml() + Cluster{"b", {ub.port()}}.yaml());
  const uint16_t port = f->port("tt");
  auto reach = [&](const std::string& sni) -> std::string {
    TlsClientOptions o;
    o.sni = sni;
    auto c = TlsClient::connect(port, o);
    if (!c) return "handshake failed";
    return c->recvUntilClose(3s);
  };
  CHECK(reach("a.test") == "upstream-a");
  CHECK(reach("b.test") == "upstream-b");
  CHECK(reach("other.test").empty());  // no route, no fallback: closed after the handshake
  CHECK(waitMetricAtLeast(*f, listenerKey("ferry_tcp_sni_unmatched_total", "tt"), 1) == 1);
}

TEST_CASE("tls tcp: SNI routing on a terminating listener ignores the name's case", "[tls][tcp]") {
  // Regression test (was a bug): TcpProxy::pickCluster (filters/network/tcp_proxy/tcp_proxy.cc)
  // compares info.tls->sni - SSL_get_servername(), as the client sent it - with the lower-cased
  // route names, so "A.Test" matches no route on a TLS-terminating tcp listener, while the same
  // listener serves it the a.test certificate and the TLS inspector (passthrough) lower-cases the
  // name.
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  FakeUpstream ua([](int fd) { FakeUpstream::writeAll(fd, "upstream-a"); });
  auto f = FerryProcess::start("runtime: {workers: 1}\n"
                               "admin: {address: 127.0.0.1:0}\n"
                               "listeners:\n"
                               "  - name: tt\n"
                               "    address: 127.0.0.1:0\n" +
                               tlsBlock({a.files}) +
                               "    tcp:\n"
                               "      sni_routes:\n"
                               "        - {server_names: [a.test], cluster: a}\n"
                               "clusters:\n" +
                               Cluster{"a", {ua.port()}}.yaml());
  TlsClientOptions o = pki.verifying("A.Test");
  auto c = TlsClient::connect(f->port("tt"), o);
  REQUIRE(c);  // the certificate for a.test verifies for A.Test
  CHECK(c->recvUntilClose(3s) == "upstream-a");
  CHECK(metric(*f, listenerKey("ferry_tcp_sni_unmatched_total", "tt")) == 0);
}

// ---- 12. SNI passthrough

namespace {

std::string passthroughYaml(uint16_t a, uint16_t b, uint16_t fallback) {
  std::string y = "runtime: {workers: 1}\n"
                  "admin: {address: 127.0.0.1:0}\n"
                  "listeners:\n"
                  "  - name: pass\n"
                  "    address: 127.0.0.1:0\n"
                  "    tcp:\n";
  if (fallback != 0) y += "      cluster: fallback\n";
  y += "      client_hello_timeout: 300ms\n"
       "      sni_routes:\n"
       "        - {server_names: [a.test], cluster: a}\n"
       "        - {server_names: [b.test, \"*.b.test\"], cluster: b}\n"
       "clusters:\n" +
       Cluster{"a", {a}}.yaml() + Cluster{"b", {b}}.yaml();
  if (fallback != 0) y += Cluster{"fallback", {fallback}}.yaml();
  return y;
}

}  // namespace

TEST_CASE("tls passthrough: sni_routes send each ClientHello to its backend, bytes untouched", "[tls][passthrough]") {
  Pki pki;
  TlsUpstream ua(upstreamOpts(pki, "ua", "a", {"a.test"}, TlsUpstreamOptions::Mode::kEcho));
  TlsUpstream ub(upstreamOpts(pki, "ub", "b", {"b.test", "*.b.test"}, TlsUpstreamOptions::Mode::kEcho));
  auto f = FerryProcess::start(passthroughYaml(ua.port(), ub.port(), 0));
  const uint16_t port = f->port("pass");

  auto through = [&](const std::string& sni, TlsClientOptions o) -> std::string {
    o.sni = sni;
    auto c = TlsClient::connect(port, o);
    if (!c) return "";
    if (!c->sendAll("hello " + sni) || c->recvExactly(6 + sni.size(), 3s) != "hello " + sni) return "no echo";
    return c->peerCert()->common_name;
  };
  CHECK(through("a.test", pki.verifying("a.test")) == "a");
  CHECK(through("b.test", pki.verifying("b.test")) == "b");
  CHECK(through("x.b.test", pki.verifying("x.b.test")) == "b");
  CHECK(through("A.TEST", pki.verifying("A.TEST")) == "a");  // the inspector lower-cases
  CHECK(through("deep.x.b.test", {}) == "b");  // route wildcards cover any depth (not the cert's)
  REQUIRE(ua.waitHandshakes(2));
  REQUIRE(ub.waitHandshakes(3));
  CHECK(ua.seen().at(0).sni == "a.test");  // ferry passed the ClientHello on as it was
  CHECK(ub.seen().at(0).sni == "b.test");
  CHECK(metric(*f, listenerKey("ferry_tls_inspector_client_hellos_total", "pass")) == 5);
  CHECK(metric(*f, listenerKey("ferry_tcp_sni_unmatched_total", "pass")) == 0);

  SECTION("an unknown name, and no SNI, without a fallback cluster: closed, counted") {
    TlsError err;
    TlsClientOptions o;
    o.sni = "unknown.test";
    CHECK_FALSE(TlsClient::connect(port, o, 3s, &err));
    CHECK_FALSE(TlsClient::connect(port, {}, 3s, &err));
    CHECK(waitMetricAtLeast(*f, listenerKey("ferry_tcp_sni_unmatched_total", "pass"), 2) == 2);
    CHECK(ua.connections() + ub.connections() == 5);
  }
  SECTION("bytes that are not TLS: closed, counted as inspector errors") {
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    REQUIRE(c->sendAll("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"));
    CHECK(c->waitClosed(3s));
    CHECK(waitMetricAtLeast(*f, listenerKey("ferry_tls_inspector_errors_total", "pass"), 1) == 1);
    CHECK(ua.connections() + ub.connections() == 5);
  }
  SECTION("no ClientHello within client_hello_timeout: closed, counted") {
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    const std::string hello = clientHelloBytes("a.test");
    REQUIRE(c->sendAll(hello.substr(0, hello.size() / 2)));
    CHECK(c->waitClosed(3s));
    CHECK(waitMetricAtLeast(*f, listenerKey("ferry_tls_inspector_timeouts_total", "pass"), 1) == 1);
  }
}

TEST_CASE("tls passthrough: with a fallback cluster, unmatched names go there", "[tls][passthrough]") {
  Pki pki;
  TlsUpstream ua(upstreamOpts(pki, "ua", "a", {"a.test"}, TlsUpstreamOptions::Mode::kEcho));
  TlsUpstream ub(upstreamOpts(pki, "ub", "b", {"b.test"}, TlsUpstreamOptions::Mode::kEcho));
  TlsUpstream fb(upstreamOpts(pki, "fb", "fallback", {"fallback.test"}, TlsUpstreamOptions::Mode::kEcho));
  auto f = FerryProcess::start(passthroughYaml(ua.port(), ub.port(), fb.port()));
  const uint16_t port = f->port("pass");
  for (const char* sni : {"unknown.test", ""}) {
    INFO("sni: " << sni);
    TlsClientOptions o;
    o.sni = sni;
    auto c = TlsClient::connect(port, o);
    REQUIRE(c);
    CHECK(c->peerCert()->common_name == "fallback");
    REQUIRE(c->sendAll("x"));
    CHECK(c->recvExactly(1, 3s) == "x");
  }
  CHECK(fb.handshakes() == 2);
  CHECK(metric(*f, listenerKey("ferry_tcp_sni_unmatched_total", "pass")) == 0);
}

// ---- 13. --validate

namespace {

struct ValidateError {
  int line = 0, col = 0;
  std::string message;
};

// Runs `ferry -c <file> --validate` on `yaml`; the FILE:LINE:COL errors (all lines must be
// such errors, on `file`), and the exit code in *exit_code.
std::vector<ValidateError> validate(const TempDir& dir, const std::string& yaml, int* exit_code) {
  const std::string path = dir.write("validate.yaml", yaml);
  RunResult r = runFerry({"-c", path, "--validate"});
  INFO("stderr: " << r.err);
  *exit_code = r.exit_code;
  std::vector<ValidateError> out;
  static const std::regex re(R"(^(.+):([0-9]+):([0-9]+): (.+)$)");
  for (const auto& l : lines(r.err)) {
    std::smatch m;
    REQUIRE(std::regex_match(l, m, re));
    CHECK(m[1].str() == path);
    out.push_back({std::stoi(m[2].str()), std::stoi(m[3].str()), m[4].str()});
  }
  return out;
}

}  // namespace

TEST_CASE("tls validate: bad TLS blocks are reported at their position", "[tls][validate]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  Issued b = pki.server("b", "b", {"b.test"});
  Issued a_too = pki.server("a2", "a-too", {"a.test"});
  // Lines 1-6 are the same in every case; the tls block's keys start on line 7.
  auto listener = [&](const std::string& tls_lines) {
    return "listeners:\n"                          // 1
           "  - name: web\n"                       // 2
           "    address: 127.0.0.1:0\n"            // 3
           "    tcp: {cluster: up}\n"              // 4
           "    tls:\n"                            // 5
           "      certificates:\n" +               // 6
           tls_lines +
           "clusters:\n"
           "  - name: up\n"
           "    endpoints: [{address: 127.0.0.1:1}]\n";
  };
  struct Case {
    const char* what;
    std::string yaml;
    int line, col;
    std::string message;
  } cases[] = {
      {"a key that does not match the certificate",
       listener("        - cert_file: " + a.files.cert + "\n"   // 7
                "          key_file: " + b.files.key + "\n"),   // 8, value at col 21
       8, 21, "does not match the certificate"},
      {"a missing certificate file",
       listener("        - cert_file: " + pki.dir.path() + "/missing.crt\n"  // 7, value at col 22
                "          key_file: " + a.files.key + "\n"),
       7, 22, "missing.crt"},
      {"a file that is not a certificate",
       listener("        - cert_file: " + a.files.key + "\n"  // 7
                "          key_file: " + a.files.key + "\n"),
       7, 22, "no PEM certificate"},
      {"a bad cipher list",
       listener("        - " + certEntry(a.files) + "\n"  // 7
                "      ciphers: NOT-A-CIPHER\n"),         // 8, value at col 16
       8, 16, "bad ciphers"},
      {"client_cert without client_ca_file",
       listener("        - " + certEntry(a.files) + "\n"  // 7
                "      client_cert: optional\n"),         // 8, key at col 7
       8, 7, "'client_cert' needs 'client_ca_file'"},
      {"max_version below min_version",
       listener("        - " + certEntry(a.files) + "\n"  // 7
                "      min_version: TLSv1.3\n"            // 8
                "      max_version: TLSv1.2\n"),          // 9, value at col 20
       9, 20, "below min_version"},
      {"two certificates with the same names and key type",
       listener("        - " + certEntry(a.files) + "\n"      // 7
                "        - cert_file: " + a_too.files.cert + "\n"  // 8, value at col 22
                "          key_file: " + a_too.files.key + "\n"),
       8, 22, "same names and key type"},
      {"an upstream client certificate without its key",
       "listeners:\n"                                                // 1
       "  - name: web\n"                                             // 2
       "    address: 127.0.0.1:0\n"                                  // 3
       "    tcp: {cluster: up}\n"                                    // 4
       "clusters:\n"                                                 // 5
       "  - name: up\n"                                              // 6
       "    endpoints: [{address: 127.0.0.1:1}]\n"                   // 7
       "    tls:\n"                                                  // 8
       "      cert_file: " + a.files.cert + "\n",                    // 9, key at col 7
       9, 7, "needs both 'cert_file' and 'key_file'"},
      {"an upstream ca_file that is not a CA file",
       "listeners:\n"                                                // 1
       "  - name: web\n"                                             // 2
       "    address: 127.0.0.1:0\n"                                  // 3
       "    tcp: {cluster: up}\n"                                    // 4
       "clusters:\n"                                                 // 5
       "  - name: up\n"                                              // 6
       "    endpoints: [{address: 127.0.0.1:1}]\n"                   // 7
       "    tls:\n"                                                  // 8
       "      ca_file: " + a.files.key + "\n",                       // 9, value at col 16
       9, 16, "cannot load ca_file"},
  };
  for (const auto& k : cases) {
    INFO(k.what << "\n" << k.yaml);
    int exit_code = -1;
    auto errs = validate(pki.dir, k.yaml, &exit_code);
    CHECK(exit_code == 1);
    REQUIRE(errs.size() == 1);
    CHECK(errs[0].line == k.line);
    CHECK(errs[0].col == k.col);
    CHECK_THAT(errs[0].message, Contains(k.message));
  }
  // And a good block passes.
  int exit_code = -1;
  CHECK(validate(pki.dir, listener("        - " + certEntry(a.files) + "\n        - " + certEntry(b.files) + "\n"),
                 &exit_code)
            .empty());
  CHECK(exit_code == 0);
}

TEST_CASE("tls validate: ferry refuses to start with a key that does not match", "[tls][validate]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  Issued b = pki.server("b", "b", {"b.test"});
  const std::string path = pki.dir.write("bad.yaml", "listeners:\n"
                                                     "  - name: web\n"
                                                     "    address: 127.0.0.1:0\n"
                                                     "    tcp: {cluster: up}\n"
                                                     "    tls:\n"
                                                     "      certificates:\n"
                                                     "        - {cert_file: " + a.files.cert + ", key_file: " + b.files.key + "}\n"
                                                     "clusters:\n"
                                                     "  - name: up\n"
                                                     "    endpoints: [{address: 127.0.0.1:1}]\n");
  RunResult v = runFerry({"-c", path, "--validate"});
  RunResult run = runFerry({"-c", path});
  INFO(v.err << "\n" << run.err);
  CHECK(v.exit_code == 1);
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.err, Contains("does not match the certificate"));
}
