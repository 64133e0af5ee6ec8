// Runtime: a second snapshot built from the same config reuses every piece of state kept by
// name (listener state and its route provider, clusters with their hosts and breaker
// counters, the process connection count, worker pools); a changed cluster keeps its index,
// counters and the hosts whose address stays.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include "config/loader.h"
#include "core/event/worker_context.h"
#include "core/http/route_config.h"
#include "core/tls/internal.h"
#include "core/upstream/cluster_manager.h"
#include "core/upstream/stream_pool.h"
#include "filters/registry.h"
#include "proxy/runtime.h"

using namespace ferry;

namespace {

const char* kYaml = R"(
listeners:
  - name: web
    address: 127.0.0.1:0
    max_connections: 10
    http:
      virtual_hosts:
        - name: all
          domains: ["*"]
          routes:
            - match: {prefix: /}
              route: {cluster: api}
  - name: db
    address: 127.0.0.1:0
    tcp: {cluster: db}
clusters:
  - name: api
    endpoints: [{address: 127.0.0.1:9001}, {address: 127.0.0.1:9002, weight: 2}]
    circuit_breakers: {max_requests: 5}
  - name: db
    endpoints: [{address: 127.0.0.1:5432}]
)";

config::Config load(const std::string& yaml) {
  auto r = config::loadConfigString(yaml, "t.yaml");
  REQUIRE(r.errors.empty());
  return *r.config;
}

std::set<const core::upstream::Host*> hostsOf(const core::upstream::LbState& st) {
  std::set<const core::upstream::Host*> out;
  for (const auto& lv : st.levels)
    for (const auto& h : lv.hosts) out.insert(h.get());
  return out;
}

struct Fixture {
  Fixture() { filters::registerBuiltins(registry); }
  boost::asio::io_context io;
  core::StatsStore stats{3};
  filters::Registry registry;
  proxy::Runtime runtime{io, stats, registry, 2};
};

}  // namespace

TEST_CASE("Runtime: a second snapshot of the same config reuses every piece of state", "[runtime]") {
  Fixture f;
  std::string err;
  auto a = f.runtime.build(load(kYaml), &err);
  REQUIRE(a);
  auto b = f.runtime.build(load(kYaml), &err);
  REQUIRE(b);
  CHECK(a.get() != b.get());
  CHECK(b->version == a->version + 1);

  // Listeners: the same process-wide state (counters, stats, route provider).
  REQUIRE(a->listeners.size() == 2);
  REQUIRE(b->listeners.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    CHECK(a->listeners[i] != b->listeners[i]);  // the spec is per snapshot
    CHECK(a->listeners[i]->state == b->listeners[i]->state);
    CHECK(a->listeners[i]->process == b->listeners[i]->process);
    CHECK(a->listeners[i]->state->stats.cx_active.idx == b->listeners[i]->state->stats.cx_active.idx);
  }
  CHECK(a->listeners[0]->state->http_routes != nullptr);
  CHECK(a->listeners[0]->state->http_routes == b->listeners[0]->state->http_routes);
  CHECK(a->listeners[1]->state->http_routes == nullptr);  // tcp

  // Clusters: the very same objects (breaker counters, index, stats), the same hosts.
  REQUIRE(b->clusters.size() == 2);
  for (size_t i = 0; i < 2; ++i) CHECK(a->clusters[i] == b->clusters[i]);
  CHECK(f.runtime.clusters().slotCount() == 2);
  auto st = f.runtime.clusters().state(a->clusters[0]->index());
  REQUIRE(st);
  CHECK(hostsOf(*st).size() == 2);

  // A counter taken under the first snapshot is seen through the second.
  REQUIRE(a->clusters[0]->tryAcquireRequest());
  CHECK(b->clusters[0]->activeRequests() == 1);
  a->clusters[0]->releaseRequest();
  a->listeners[0]->state->active.fetch_add(3);
  CHECK(b->listeners[0]->state->active.load() == 3);

  // Routes of the second snapshot point at the same cluster objects.
  b->listeners[0]->worker_setup.front()(1);
  const auto& rc = b->listeners[0]->state->http_routes->current(1);
  REQUIRE(rc);
  core::http::HeaderMap none;
  const auto* route = rc->routes->find("x", "GET", "/", none).route;
  REQUIRE(route);
  CHECK(route->clusters.at(0) == a->clusters[0]);

  // Worker pools follow the host's identity: the same pool under either snapshot's cluster.
  core::StatsStore pool_stats(2);
  core::WorkerContext ctx;
  ctx.io = &f.io;
  ctx.stats = &pool_stats.shard(1);
  core::upstream::PoolManager pools(ctx);
  const auto& host = st->levels.at(0).hosts.at(0);
  auto& p1 = pools.pool(*a->clusters[0], host);
  auto& p2 = pools.pool(*b->clusters[0], host);
  CHECK(&p1 == &p2);
  CHECK(pools.size() == 1);
}

TEST_CASE("Runtime: a changed cluster keeps its index, counters and the hosts that stay", "[runtime]") {
  Fixture f;
  std::string err;
  auto a = f.runtime.build(load(kYaml), &err);
  REQUIRE(a);
  auto old_state = f.runtime.clusters().state(0);
  REQUIRE(old_state);
  const core::upstream::Host* kept = nullptr;
  const core::upstream::Host* dropped = nullptr;
  for (const auto* h : hostsOf(*old_state)) (h->address == "127.0.0.1:9001" ? kept : dropped) = h;
  REQUIRE(kept);
  REQUIRE(dropped);
  REQUIRE(a->clusters[0]->tryAcquireRequest());

  std::string changed = kYaml;
  changed.replace(changed.find("{address: 127.0.0.1:9002, weight: 2}"), 36, "{address: 127.0.0.1:9003}");
  auto b = f.runtime.build(load(changed), &err);
  REQUIRE(b);
  CHECK(b->clusters[0] != a->clusters[0]);  // new settings: a new object...
  CHECK(b->clusters[0]->index() == a->clusters[0]->index());  // ...in the same slot
  CHECK(b->clusters[0]->counters() == a->clusters[0]->counters());
  CHECK(b->clusters[0]->activeRequests() == 1);
  CHECK(b->clusters[1] == a->clusters[1]);  // db did not change
  auto new_state = f.runtime.clusters().state(0);
  auto hosts = hostsOf(*new_state);
  CHECK(hosts.size() == 2);
  CHECK(hosts.count(kept) == 1);
  CHECK(hosts.count(dropped) == 0);
  CHECK(dropped->removed.load());
  CHECK_FALSE(kept->removed.load());
  a->clusters[0]->releaseRequest();
}

TEST_CASE("ClusterManager: add, update and remove by name", "[runtime][cluster_manager]") {
  boost::asio::io_context io;
  core::StatsStore stats(2);
  core::upstream::ClusterManager cm(io, stats);
  config::ClusterConfig c;
  c.name = "a";
  config::EndpointConfig ep;
  ep.address.host = "127.0.0.1";
  ep.address.port = 9001;
  c.endpoints.push_back(ep);
  auto a1 = cm.addOrUpdate(c);
  CHECK(cm.addOrUpdate(c) == a1);  // unchanged: the same object
  CHECK(cm.find("a") == a1);
  CHECK(cm.find("b") == nullptr);

  std::vector<std::pair<size_t, bool>> published;
  cm.start([&](size_t i, std::shared_ptr<const core::upstream::LbState> st) { published.emplace_back(i, st != nullptr); });
  config::ClusterConfig b = c;
  b.name = "b";
  auto b1 = cm.addOrUpdate(b);
  CHECK(b1->index() == 1);
  CHECK(cm.slotCount() == 2);

  c.connect_timeout = std::chrono::milliseconds(250);
  auto a2 = cm.addOrUpdate(c);
  CHECK(a2 != a1);
  CHECK(a2->index() == a1->index());
  CHECK(a2->connectTimeout() == std::chrono::milliseconds(250));
  CHECK(cm.find("a") == a2);

  const auto host = cm.state(1)->levels.at(0).hosts.at(0);  // kept alive by the test
  published.clear();
  cm.remove("b");
  CHECK(cm.find("b") == nullptr);
  CHECK(cm.state(1) == nullptr);
  CHECK(host->removed.load());
  REQUIRE(published.size() == 1);
  CHECK(published[0] == std::make_pair(size_t{1}, false));
  // A new cluster never takes a removed one's index.
  config::ClusterConfig d = c;
  d.name = "d";
  CHECK(cm.addOrUpdate(d)->index() == 2);
  CHECK(cm.json().find("\"name\":\"b\"") == std::string::npos);
  cm.stop();
}

namespace {

// A self-signed ECDSA certificate for `name` into dir/<file>.pem and .key (openssl command).
void makeCert(const std::string& dir, const std::string& file, const std::string& name) {
  const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=" +
                          name + " -keyout " + dir + "/" + file + ".key -out " + dir + "/" + file +
                          ".pem >/dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
}

std::string tlsYaml(const std::string& dir, const std::string& min_version, const std::string& body) {
  return "listeners:\n"
         "  - name: web\n"
         "    address: 127.0.0.1:0\n"
         "    tls:\n"
         "      certificates: [{cert_file: " + dir + "/site.pem, key_file: " + dir + "/site.key}]\n"
         "      min_version: " + min_version + "\n"
         "      watch_certificates: false\n"
         "    http:\n"
         "      virtual_hosts:\n"
         "        - name: all\n"
         "          domains: ['*']\n"
         "          routes: [{match: {prefix: /}, direct_response: {status: 200, body: " + body + "}}]\n";
}

}  // namespace

TEST_CASE("Runtime: a listener's TLS context (and ticket keys) lives as long as its tls block", "[runtime][tls]") {
  std::string dir = (std::filesystem::temp_directory_path() / "ferry-rt-XXXXXX").string();
  REQUIRE(mkdtemp(dir.data()) != nullptr);
  struct Cleanup {
    std::string d;
    ~Cleanup() { std::filesystem::remove_all(d); }
  } cleanup{dir};
  makeCert(dir, "site", "a.test");
  Fixture f;
  std::string err;
  REQUIRE(f.runtime.build(load(tlsYaml(dir, "TLSv1.2", "a")), &err));
  auto first = f.runtime.tlsContext("web");
  REQUIRE(first);
  CHECK(f.runtime.tlsContext("other") == nullptr);

  // A route edit keeps the context: its SSL_CTX and ticket keys, so resumption survives it.
  REQUIRE(f.runtime.build(load(tlsYaml(dir, "TLSv1.2", "b")), &err));
  CHECK(f.runtime.tlsContext("web") == first);

  // A certificate reload (the file watcher's action) builds a new context with the same keys.
  makeCert(dir, "site", "a.test");
  REQUIRE(f.runtime.reloadCertificates("web"));
  auto reloaded = f.runtime.tlsContext("web");
  CHECK(reloaded != first);
  CHECK(reloaded->tickets == first->tickets);
  CHECK(reloaded->certs[0].sha256 != first->certs[0].sha256);

  // A pair that does not load is refused; the running context stays, and it is counted.
  { std::ofstream(dir + "/site.key") << "not a key\n"; }
  CHECK_FALSE(f.runtime.reloadCertificates("web"));
  CHECK(f.runtime.tlsContext("web") == reloaded);
  auto failures = f.stats.counter("ferry_tls_certificate_reloads_total", {{"listener", "web"}, {"result", "failure"}});
  CHECK(f.stats.value(failures) == 1);

  // A changed tls block makes a new context with new ticket keys.
  makeCert(dir, "site", "a.test");
  REQUIRE(f.runtime.build(load(tlsYaml(dir, "TLSv1.3", "b")), &err));
  auto changed = f.runtime.tlsContext("web");
  CHECK(changed != reloaded);
  CHECK(changed->tickets != reloaded->tickets);
}

TEST_CASE("Runtime: a certificate reload keeps the ticket keys unless the client CAs changed", "[runtime][tls]") {
  std::string dir = (std::filesystem::temp_directory_path() / "ferry-rt-XXXXXX").string();
  REQUIRE(mkdtemp(dir.data()) != nullptr);
  struct Cleanup {
    std::string d;
    ~Cleanup() { std::filesystem::remove_all(d); }
  } cleanup{dir};
  makeCert(dir, "site", "a.test");
  makeCert(dir, "ca", "client-ca");
  std::string yaml = tlsYaml(dir, "TLSv1.2", "a");
  yaml.replace(yaml.find("      watch_certificates"), 0, "      client_ca_file: " + dir + "/ca.pem\n");
  Fixture f;
  std::string err;
  REQUIRE(f.runtime.build(load(yaml), &err));
  auto first = f.runtime.tlsContext("web");
  REQUIRE(first);
  // The server certificate changes, the CAs do not: sessions carry over.
  makeCert(dir, "site", "a.test");
  REQUIRE(f.runtime.reloadCertificates("web"));
  auto second = f.runtime.tlsContext("web");
  CHECK(second->tickets == first->tickets);
  CHECK(second->cache_id == first->cache_id);
  // A different CA: sessions verified against the old one must not resume.
  makeCert(dir, "ca", "another-ca");
  REQUIRE(f.runtime.reloadCertificates("web"));
  auto third = f.runtime.tlsContext("web");
  CHECK(third->tickets != second->tickets);
  CHECK(third->cache_id != second->cache_id);
}

TEST_CASE("Runtime: a reload build re-reads the TLS files: a changed certificate gets a new context, same keys",
          "[runtime][tls][reload]") {
  std::string dir = (std::filesystem::temp_directory_path() / "ferry-rt-XXXXXX").string();
  REQUIRE(mkdtemp(dir.data()) != nullptr);
  struct Cleanup {
    std::string d;
    ~Cleanup() { std::filesystem::remove_all(d); }
  } cleanup{dir};
  makeCert(dir, "site", "a.test");
  Fixture f;
  std::string err;
  REQUIRE(f.runtime.build(load(tlsYaml(dir, "TLSv1.2", "a")), &err));
  auto first = f.runtime.tlsContext("web");
  // Same config, same files: kept.
  REQUIRE(f.runtime.build(load(tlsYaml(dir, "TLSv1.2", "a")), &err));
  CHECK(f.runtime.tlsContext("web") == first);
  // Same config, a new certificate in the same files (no watch_certificates): a new context.
  makeCert(dir, "site", "a.test");
  REQUIRE(f.runtime.build(load(tlsYaml(dir, "TLSv1.2", "a")), &err));
  auto second = f.runtime.tlsContext("web");
  CHECK(second != first);
  CHECK(second->tickets == first->tickets);
  CHECK(second->certs[0].sha256 != first->certs[0].sha256);
  // Files that no longer load fail the build (a reload is then rejected).
  { std::ofstream(dir + "/site.key") << "not a key\n"; }
  CHECK_FALSE(f.runtime.build(load(tlsYaml(dir, "TLSv1.2", "a")), &err));
  CHECK(err.find("web") != std::string::npos);
  CHECK(f.runtime.tlsContext("web") == second);
}

TEST_CASE("listenerChanged: address, TLS, listener filters and protocol drain; other settings do not",
          "[runtime][reload]") {
  auto base = load(kYaml);
  const config::ListenerConfig web = base.listeners[0];
  const config::ListenerConfig db = base.listeners[1];
  CHECK_FALSE(proxy::listenerChanged(web, web));
  auto l = web;
  l.max_connections = 99;
  l.http->idle_timeout = std::chrono::seconds(3);
  l.http->virtual_hosts.clear();
  CHECK_FALSE(proxy::listenerChanged(web, l));  // limits, HTTP settings, routes
  l = web;
  l.address.port = 8081;
  l.address.text = "127.0.0.1:8081";
  CHECK(proxy::listenerChanged(web, l));
  l = web;
  l.proxy_protocol = true;
  CHECK(proxy::listenerChanged(web, l));
  l = web;
  l.tls.emplace();
  CHECK(proxy::listenerChanged(web, l));
  l = web;
  l.http.reset();
  l.tcp = db.tcp;
  CHECK(proxy::listenerChanged(web, l));  // protocol
  auto t = db;
  t.tcp->sni_routes.push_back(config::SniRouteConfig{});
  CHECK(proxy::listenerChanged(db, t));  // the SNI inspector is a listener filter
  auto t2 = db;
  t2.tcp->idle_timeout = std::chrono::seconds(7);
  CHECK_FALSE(proxy::listenerChanged(db, t2));
}

TEST_CASE("Runtime: a cluster whose TLS files changed is updated; without TLS there is no fingerprint",
          "[runtime][reload]") {
  std::string dir = (std::filesystem::temp_directory_path() / "ferry-rt-XXXXXX").string();
  REQUIRE(mkdtemp(dir.data()) != nullptr);
  struct Cleanup {
    std::string d;
    ~Cleanup() { std::filesystem::remove_all(d); }
  } cleanup{dir};
  makeCert(dir, "ca", "upstream-ca");
  std::string yaml = std::string(kYaml) + "    tls: {ca_file: " + dir + "/ca.pem}\n";
  Fixture f;
  std::string err;
  auto s1 = f.runtime.build(load(yaml), &err);
  REQUIRE(s1);
  CHECK(s1->cluster("api")->filesFingerprint().empty());
  auto db1 = s1->cluster("db");
  CHECK_FALSE(db1->filesFingerprint().empty());
  auto s2 = f.runtime.build(load(yaml), &err);
  CHECK(s2->cluster("db") == db1);  // same files: the same cluster
  makeCert(dir, "ca", "another-ca");
  auto s3 = f.runtime.build(load(yaml), &err);
  REQUIRE(s3);
  auto db3 = s3->cluster("db");
  CHECK(db3 != db1);
  CHECK(db3->index() == db1->index());
  CHECK_FALSE(db3->sameConnectionsAs(*db1));
  CHECK(s3->cluster("api") == s1->cluster("api"));
}

TEST_CASE("PoolManager: a cluster update keeps a host's pool unless TLS, protocol or PROXY protocol changed",
          "[runtime][reload]") {
  Fixture f;
  std::string err;
  auto a = f.runtime.build(load(kYaml), &err);
  REQUIRE(a);
  auto st = f.runtime.clusters().state(a->cluster("api")->index());
  const auto host = st->levels.at(0).hosts.at(0);
  core::StatsStore pool_stats(2);
  core::WorkerContext ctx;
  ctx.io = &f.io;
  ctx.stats = &pool_stats.shard(1);
  core::upstream::PoolManager pools(ctx);
  auto& p1 = pools.pool(*a->cluster("api"), host);

  // A timeout changes: the same pool, now under the new cluster.
  std::string yaml = kYaml;
  yaml.replace(yaml.find("    circuit_breakers"), 0, "    connect_timeout: 2s\n");
  auto b = f.runtime.build(load(yaml), &err);
  REQUIRE(b);
  REQUIRE(b->cluster("api") != a->cluster("api"));
  auto& p2 = pools.pool(*b->cluster("api"), host);
  CHECK(&p2 == &p1);
  CHECK(&p2.cluster() == b->cluster("api").get());

  // The PROXY protocol is switched on: connections made without it cannot serve; a new pool.
  yaml.replace(yaml.find("    circuit_breakers"), 0, "    send_proxy_protocol: v1\n");
  auto c = f.runtime.build(load(yaml), &err);
  REQUIRE(c);
  auto& p3 = pools.pool(*c->cluster("api"), host);  // no client connection: the shared pool
  CHECK(&p3 != &p1);
  CHECK(pools.size() == 1);  // the old (unused) one went
  f.io.poll();
}
