// Certificate reloads on a running ferry (watch_certificates): a new pair written atomically,
// a broken pair (rejected, the old one kept), a Kubernetes-style `..data` symlink swap, a new
// client CA, and swaps under load with zero failed requests. Then the memory an idle TLS
// connection costs. Helpers: tls_test_support.h.
#include <openssl/x509.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <thread>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_upstream.h"
#include "tests/integration/test_certs.h"
#include "tests/integration/tls_client.h"
#include "tests/integration/tls_test_support.h"

using namespace ferry::testing;
using namespace ferry::testing::tls_test;
using Catch::Matchers::Contains;

namespace {

// Replaces the file at `path` atomically: the content goes to a temporary file in the same
// directory, which is then renamed over `path` (what careful writers such as certbot do).
void atomicWrite(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  REQUIRE(f != nullptr);
  REQUIRE(std::fwrite(content.data(), 1, content.size(), f) == content.size());
  REQUIRE(std::fclose(f) == 0);
  REQUIRE(std::rename(tmp.c_str(), path.c_str()) == 0);
}

// Installs a certificate and its key at `files`' paths, certificate first, each atomically.
void installPair(const CertFiles& files, const IssuedCert& cert, const IssuedCert& key_of) {
  atomicWrite(files.cert, cert.certPem());
  atomicWrite(files.key, key_of.keyPem());
}

// SHA-256 of the certificate a new connection gets for `sni` ("" if the handshake fails).
std::string servedSha(uint16_t port, const std::string& sni = "a.test") {
  TlsClientOptions o;
  o.sni = sni;
  auto c = TlsClient::connect(port, o, 2s);
  if (!c || !c->peerCert()) return "";
  return c->peerCert()->sha256;
}

// Waits (bounded) until new connections get the certificate with this hash.
bool waitServed(uint16_t port, const std::string& sha256, ms timeout = 5s) {
  return waitUntil([&] { return servedSha(port) == sha256; }, timeout, 20ms);
}

HttpResponse get(TlsClient& c, const std::string& path = "/") {
  if (!c.sendAll("GET " + path + " HTTP/1.1\r\nHost: a.test\r\n\r\n")) return {};
  return c.recvHttpResponse();
}

// Starts ferry and waits for its "started" line, which it logs once the certificate files
// are watched: a file changed before that is not noticed (it was read before the watch began,
// and the watch takes the changed file as its starting point).
std::unique_ptr<FerryProcess> startWatching(const std::string& yaml) {
  auto f = FerryProcess::start(yaml);
  REQUIRE(f->waitForLog(" started: "));
  return f;
}

const std::string kSuccess = "ferry_tls_certificate_reloads_total{listener=\"web\",result=\"success\"}";
const std::string kFailure = "ferry_tls_certificate_reloads_total{listener=\"web\",result=\"failure\"}";

}  // namespace

TEST_CASE("tls reload: a new pair written atomically is served to new connections; open ones keep theirs",
          "[tls][reload]") {
  Pki pki;
  Issued a1 = pki.server("a", "a1", {"a.test"});
  HttpUpstream up;
  auto f = startWatching(httpsConfig(up.port(), tlsBlock({a1.files})));
  const uint16_t port = f->port("web");
  REQUIRE(servedSha(port) == a1.sha256());

  // A connection opened before the change, with a session to resume afterwards.
  auto before = TlsClient::connect(port, pki.verifying("a.test"));
  REQUIRE(before);
  REQUIRE(get(*before).status == 200);
  TlsSession session = before->waitSession();
  REQUIRE(session);

  IssuedCert a2 = pki.ca.issue({.common_name = "a2", .dns = {"a.test"}, .not_after = std::chrono::hours(24 * 90)});
  installPair(a1.files, a2, a2);
  REQUIRE(waitServed(port, a2.sha256()));
  CHECK(waitMetricAtLeast(*f, kSuccess, 1) >= 1);
  CHECK(metric(*f, kFailure) == 0);  // the two renames came as one debounced change
  CHECK(f->waitForLog("listener web: certificates reloaded", 2s));

  // The open connection goes on, with the certificate it shook hands with.
  CHECK(get(*before).status == 200);
  CHECK(before->peerCert()->sha256 == a1.sha256());
  // New connections verify and proxy with the new certificate.
  HttpResponse r = httpsGet(port, "a.test", "/after", pki.verifying(""));
  INFO(r.error);
  CHECK(r.status == 200);
  // Ticket keys survive the reload: the old session resumes.
  TlsClientOptions o = pki.verifying("a.test");
  o.session = session;
  auto resumed = TlsClient::connect(port, o);
  REQUIRE(resumed);
  CHECK(resumed->resumed());
  // The expiry gauge follows the new certificate.
  tm t{};
  REQUIRE(ASN1_TIME_to_tm(X509_get0_notAfter(a2.x509()), &t) == 1);
  CHECK(metric(*f, "ferry_tls_certificate_expiry_timestamp_seconds{listener=\"web\",certificate=\"" + a1.files.cert +
                       "\"}") == static_cast<double>(timegm(&t)));
}

TEST_CASE("tls reload: with 4 workers every worker takes the new certificate", "[tls][reload]") {
  Pki pki;
  Issued a1 = pki.server("a", "a1", {"a.test"});
  HttpUpstream up;
  auto f = startWatching(httpsConfig(up.port(), tlsBlock({a1.files}), /*workers=*/4));
  const uint16_t port = f->port("web");
  IssuedCert a2 = pki.ca.issue({.common_name = "a2", .dns = {"a.test"}});
  installPair(a1.files, a2, a2);
  // Once the reload is counted, every worker has the new pair: 40 new connections spread
  // over the workers (SO_REUSEPORT) all get it.
  REQUIRE(waitMetric(f->adminPort(), kSuccess, 1, 10s));
  int old_seen = 0;
  for (int i = 0; i < 40; ++i) old_seen += servedSha(port) == a2.sha256() ? 0 : 1;
  CHECK(old_seen == 0);
  CHECK(metric(*f, kSuccess) == 1);
}

TEST_CASE("tls reload: a broken pair is rejected, the running certificate stays", "[tls][reload]") {
  Pki pki;
  Issued a1 = pki.server("a", "a1", {"a.test"});
  HttpUpstream up;
  auto f = startWatching(httpsConfig(up.port(), tlsBlock({a1.files})));
  const uint16_t port = f->port("web");
  REQUIRE(servedSha(port) == a1.sha256());

  SECTION("the key of another certificate") {
    IssuedCert a3 = pki.ca.issue({.common_name = "a3", .dns = {"a.test"}});
    IssuedCert a4 = pki.ca.issue({.common_name = "a4", .dns = {"a.test"}});
    installPair(a1.files, a3, a4);
    REQUIRE(waitMetricAtLeast(*f, kFailure, 1) >= 1);
    CHECK(f->waitForLog("certificate reload rejected, keeping the running certificates", 2s));
    CHECK(f->waitForLog("does not match the certificate", 2s));
  }
  SECTION("a certificate file that is not PEM") {
    atomicWrite(a1.files.cert, "this is not a certificate\n");
    REQUIRE(waitMetricAtLeast(*f, kFailure, 1) >= 1);
    CHECK(f->waitForLog("certificate reload rejected", 2s));
  }
  CHECK(metric(*f, kSuccess) == 0);
  // Still the old certificate, still serving.
  CHECK(servedSha(port) == a1.sha256());
  HttpResponse r = httpsGet(port, "a.test", "/still", pki.verifying(""));
  CHECK(r.status == 200);
  CHECK(f->running());

  // A good pair afterwards is taken.
  IssuedCert a5 = pki.ca.issue({.common_name = "a5", .dns = {"a.test"}});
  installPair(a1.files, a5, a5);
  REQUIRE(waitServed(port, a5.sha256()));
  CHECK(waitMetricAtLeast(*f, kSuccess, 1) >= 1);
}

TEST_CASE("tls reload: a Kubernetes-style ..data symlink swap reloads", "[tls][reload]") {
  namespace fs = std::filesystem;
  Pki pki;
  // <mount>/tls.crt -> ..data/tls.crt, ..data -> ..v1 (what a secret volume looks like).
  const std::string mount = pki.dir.path() + "/mount";
  IssuedCert v1 = pki.ca.issue({.common_name = "v1", .dns = {"a.test"}});
  IssuedCert v2 = pki.ca.issue({.common_name = "v2", .dns = {"a.test"}});
  v1.writeFiles(mount + "/..v1", "tls");
  fs::create_directory_symlink("..v1", mount + "/..data");
  fs::create_symlink("..data/tls.crt", mount + "/tls.crt");
  fs::create_symlink("..data/tls.key", mount + "/tls.key");
  HttpUpstream up;
  auto f = startWatching(httpsConfig(up.port(), tlsBlock({{mount + "/tls.crt", mount + "/tls.key", ""}})));
  const uint16_t port = f->port("web");
  REQUIRE(servedSha(port) == v1.sha256());

  // The kubelet's swap: the new version in its own directory, then ..data_tmp renamed over ..data.
  v2.writeFiles(mount + "/..v2", "tls");
  fs::create_directory_symlink("..v2", mount + "/..data_tmp");
  fs::rename(mount + "/..data_tmp", mount + "/..data");
  REQUIRE(waitServed(port, v2.sha256()));
  CHECK(metric(*f, kSuccess) == 1);
  fs::remove_all(mount + "/..v1");  // the kubelet removes the old version

  // And again: the watch follows the new target.
  IssuedCert v3 = pki.ca.issue({.common_name = "v3", .dns = {"a.test"}});
  v3.writeFiles(mount + "/..v3", "tls");
  fs::create_directory_symlink("..v3", mount + "/..data_tmp");
  fs::rename(mount + "/..data_tmp", mount + "/..data");
  REQUIRE(waitServed(port, v3.sha256()));
  CHECK(metric(*f, kSuccess) == 2);
  CHECK(metric(*f, kFailure) == 0);
}

TEST_CASE("tls reload: a new client_ca_file is taken for new handshakes", "[tls][reload]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  Pki other("Other CA");
  Issued client = other.client("client", "client-of-other-ca");
  const std::string client_ca = pki.dir.write("clients-ca.crt", pki.ca.certPem());
  HttpUpstream up;
  auto f = startWatching(httpsConfig(up.port(), tlsBlock({a.files}, "      client_ca_file: " + client_ca + "\n")));
  const uint16_t port = f->port("web");
  TlsClientOptions o = pki.verifying("");
  o.cert_file = client.files.cert;
  o.key_file = client.files.key;
  CHECK(httpsGet(port, "a.test", "/", o).status == 0);  // not trusted yet

  atomicWrite(client_ca, other.ca.certPem());
  CHECK(waitUntil([&] { return httpsGet(port, "a.test", "/", o).status == 200; }, 5s, 20ms));
  CHECK(metric(*f, kSuccess) == 1);
}

TEST_CASE("tls reload: the SNI table follows the names of the reloaded certificates", "[tls][reload]") {
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  Issued b = pki.server("b", "b", {"b.test"});
  HttpUpstream up;
  auto f = startWatching(httpsConfig(up.port(), tlsBlock({a.files, b.files})));
  const uint16_t port = f->port("web");
  REQUIRE(servedSha(port, "b.test") == b.sha256());
  // b's files now hold a certificate for c.test.
  IssuedCert c = pki.ca.issue({.common_name = "c", .dns = {"c.test"}});
  installPair(b.files, c, c);
  REQUIRE(waitUntil([&] { return servedSha(port, "c.test") == c.sha256(); }, 5s, 20ms));
  CHECK(servedSha(port, "b.test") == a.sha256());  // no longer a name of any certificate: the default
  CHECK(servedSha(port, "a.test") == a.sha256());
}

TEST_CASE("tls reload: watch_certificates false: file changes are not picked up", "[tls][reload]") {
  Pki pki;
  Issued a1 = pki.server("a", "a1", {"a.test"});
  HttpUpstream up;
  auto f = startWatching(httpsConfig(up.port(), tlsBlock({a1.files}, "      watch_certificates: false\n")));
  const uint16_t port = f->port("web");
  IssuedCert a2 = pki.ca.issue({.common_name = "a2", .dns = {"a.test"}});
  installPair(a1.files, a2, a2);
  // Several debounce periods (100 ms) pass without a reload.
  CHECK_FALSE(waitServed(port, a2.sha256(), 600ms));
  CHECK(servedSha(port) == a1.sha256());
  CHECK(metric(*f, kSuccess) == 0);
}

TEST_CASE("tls reload: three certificate swaps under load fail no request", "[tls][reload]") {
  Pki pki;
  Issued a1 = pki.server("a", "a1", {"a.test"});
  HttpUpstream up;
  auto f = startWatching(httpsConfig(up.port(), tlsBlock({a1.files})));
  const uint16_t port = f->port("web");

  std::atomic<bool> stop{false};
  std::atomic<int> fresh_ok{0}, keepalive_ok{0}, failures{0};
  std::mutex mu;
  std::string first_failure;
  auto failed = [&](const std::string& what) {
    if (failures.fetch_add(1) == 0) {
      std::lock_guard<std::mutex> lk(mu);
      first_failure = what;
    }
  };
  // The load: a request over a new verified TLS connection, then one on a kept-alive
  // connection (opened again if ferry ever closed it), in a loop.
  std::thread load([&] {
    const TlsClientOptions o = pki.verifying("a.test");
    std::unique_ptr<TlsClient> kept;
    while (!stop.load()) {
      HttpResponse r = httpsGet(port, "a.test", "/fresh", o, 3s);
      if (r.status == 200)
        fresh_ok.fetch_add(1);
      else
        failed("fresh connection: " + r.error);
      if (!kept) kept = TlsClient::connect(port, o, 3s);
      if (!kept) {
        failed("keep-alive connect");
        continue;
      }
      HttpResponse k = get(*kept, "/kept");
      if (k.status == 200) {
        keepalive_ok.fetch_add(1);
      } else {
        failed("keep-alive request: " + k.error);
        kept.reset();
      }
    }
  });

  bool swapped = true;
  std::vector<IssuedCert> certs;
  for (int i = 0; i < 3 && swapped; ++i) {
    const int before = fresh_ok.load();
    // Some requests with the current certificate first.
    waitUntil([&] { return fresh_ok.load() >= before + 5 || failures.load() > 0; }, 1s, 2ms);
    certs.push_back(pki.ca.issue({.common_name = "swap" + std::to_string(i), .dns = {"a.test"}}));
    installPair(a1.files, certs.back(), certs.back());
    swapped = waitServed(port, certs.back().sha256(), 2s);
  }
  const int after_swaps = fresh_ok.load();
  waitUntil([&] { return fresh_ok.load() >= after_swaps + 5 || failures.load() > 0; }, 1s, 2ms);
  stop = true;
  load.join();

  INFO("fresh " << fresh_ok.load() << ", keep-alive " << keepalive_ok.load() << ", first failure: " << first_failure);
  CHECK(swapped);
  CHECK(failures.load() == 0);
  CHECK(fresh_ok.load() >= 20);
  CHECK(keepalive_ok.load() >= 20);
  // One reload per swap (a reload between the two renames, had the thread been paused for
  // the whole 100 ms debounce, would be a rejected one: no request would fail either).
  CHECK(metric(*f, kSuccess) == 3);
}

TEST_CASE("tls memory: 200 idle TLS connections cost little RSS each", "[tls][memory]") {
  if (sanitized()) {
    SUCCEED("skipped: RSS is not meaningful under sanitizers");
    return;
  }
  constexpr int kConnections = 200;
  Pki pki;
  Issued a = pki.server("a", "a", {"a.test"});
  HttpUpstream up;
  const TlsClientOptions o = pki.verifying("a.test");

  // The same with plain HTTP first, for comparison: what TLS adds is the difference.
  double plain_per_conn = 0;
  {
    auto f = FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
    const uint16_t port = f->port("web");
    for (int i = 0; i < 20; ++i) REQUIRE(httpRequest(port, "GET", "/warm").status == 200);
    const long before = f->rssKb();
    std::vector<std::unique_ptr<TcpClient>> conns;
    for (int i = 0; i < kConnections; ++i) {
      auto c = TcpClient::connect(port);
      REQUIRE(c);
      REQUIRE(c->sendAll("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"));
      REQUIRE(readHttpResponse(*c).status == 200);
      conns.push_back(std::move(c));
    }
    plain_per_conn = static_cast<double>(f->rssKb() - before) / kConnections;
  }

  auto f = FerryProcess::start(httpsConfig(up.port(), tlsBlock({a.files})));
  const uint16_t port = f->port("web");
  // Warm up (first handshakes allocate OpenSSL's lazily built tables, the pools, ...).
  for (int i = 0; i < 20; ++i) REQUIRE(httpsGet(port, "a.test", "/warm", o).status == 200);
  const long rss_before = f->rssKb();
  REQUIRE(rss_before > 0);
  std::vector<std::unique_ptr<TlsClient>> conns;
  for (int i = 0; i < kConnections; ++i) {
    auto c = TlsClient::connect(port, o);
    REQUIRE(c);
    REQUIRE(get(*c).status == 200);  // one request, then the connection stays open, idle
    conns.push_back(std::move(c));
  }
  const long rss_after = f->rssKb();
  const double per_conn = static_cast<double>(rss_after - rss_before) / kConnections;
  WARN("idle TLS 1.3 connection (HTTP keep-alive after one request): " << per_conn << " kB RSS each (" << rss_before
                                                                          << " -> " << rss_after << " kB for "
                                                                          << kConnections << "); plain HTTP: "
                                                                          << plain_per_conn << " kB each");
  CHECK(per_conn < 20.0);
  // They are all still usable.
  for (int i = 0; i < kConnections; i += 50) CHECK(get(*conns[static_cast<size_t>(i)]).status == 200);
}
