#include "config/loader.h"
#include "tests/unit/config/loader_test_util.h"

#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "config/render.h"

using namespace ferry::config;
using namespace ferry::config::test;
using std::chrono::milliseconds;
using Catch::Contains;

namespace {

// A minimal valid listener + cluster, to append invalid bits to.
const std::string kClusters =
    "clusters:\n"
    "  - name: db\n"
    "    endpoints: [{address: 127.0.0.1:5432}]\n";

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ferry-cfg-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& rel, const std::string& text) const {
    auto p = path / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
};

}  // namespace

TEST_CASE("ConfigError formats FILE:LINE:COL", "[config][loader]") {
  CHECK(ConfigError{"a.yaml", {3, 7}, "boom"}.format() == "a.yaml:3:7: boom");
  CHECK(ConfigError{"a.yaml", {}, "boom"}.format() == "a.yaml: boom");
}

TEST_CASE("empty and comment-only documents are valid empty configs", "[config][loader]") {
  for (const char* text : {"", "# nothing here\n", "\n\n", "---\n"}) {
    INFO("text: " << text);
    const Config c = ok(load(text));
    CHECK(c.listeners.empty());
    CHECK(c.clusters.empty());
    CHECK_FALSE(c.admin.has_value());
    CHECK(renderRedactedJson(c.yaml) == "{}");
  }
}

TEST_CASE("defaults are applied", "[config][loader]") {
  const Config c = ok(load("runtime: {}\nadmin:\nlisteners:\n  - name: l\n    address: 0.0.0.0:0\n"
                            "    tcp: {cluster: db}\n" + kClusters));
  CHECK(c.path == "t.yaml");
  CHECK(c.dir == ".");
  CHECK(c.runtime.workers == 0);
  CHECK(c.runtime.drain_timeout == milliseconds(15'000));
  CHECK(c.runtime.drain_delay == milliseconds(0));
  CHECK(c.runtime.log_level == LogLevel::kInfo);
  CHECK(c.runtime.max_connections == 0);
  REQUIRE(c.admin.has_value());  // "admin:" with nothing = present, all defaults
  CHECK(c.admin->address.host == "127.0.0.1");
  CHECK(c.admin->address.port == 9901);
  CHECK(c.admin->token_file.empty());
  CHECK_FALSE(c.admin->allow_config_push);
  REQUIRE(c.listeners.size() == 1);
  const ListenerConfig& l = c.listeners[0];
  CHECK_FALSE(l.proxy_protocol);
  CHECK(l.proxy_protocol_timeout == milliseconds(5'000));
  CHECK(l.max_connections == 0);
  CHECK(l.buffer_limit_kb == 1024);
  CHECK_FALSE(l.tls);
  CHECK_FALSE(l.http);
  REQUIRE(l.tcp);
  CHECK(l.tcp->idle_timeout == milliseconds(3'600'000));
  REQUIRE(c.clusters.size() == 1);
  const ClusterConfig& cl = c.clusters[0];
  CHECK(cl.lb_policy == LbPolicy::kRoundRobin);
  CHECK(cl.connect_timeout == milliseconds(1'000));
  CHECK(cl.protocol == "http1");
  CHECK(cl.send_proxy_protocol == 0);
  CHECK(cl.max_requests_per_connection == 0);
  CHECK(cl.max_idle_connections == 1024);
  CHECK(cl.idle_timeout == milliseconds(60'000));
  REQUIRE(cl.endpoints.size() == 1);
  CHECK(cl.endpoints[0].weight == 1);

  CHECK_FALSE(ok(load("runtime: {}\n")).admin.has_value());  // no admin block = no admin
  CHECK(ok(load("admin: {}\n")).admin->address.port == 9901);
}

TEST_CASE("a full TCP config loads into the right values", "[config][loader]") {
  const std::string yaml = R"(# Ferry
runtime:
  workers: 4
  drain_timeout: 30s
  drain_delay: 1500ms
  log_level: debug
  max_connections: 1000
admin:
  address: "[::1]:9902"
  allow_config_push: true
listeners:
  - name: postgres
    address: 0.0.0.0:6432
    proxy_protocol: true
    proxy_protocol_timeout: 2s
    max_connections: 50
    per_connection_buffer_limit_kb: 64
    tcp:
      cluster: db
      idle_timeout: 0s
  - name: pg-2.b_c
    address: "[::]:6433"
    tcp: {cluster: db}
clusters:
  - name: db
    endpoints:
      - address: 127.0.0.1:5432
      - {address: 127.0.0.1:5433, weight: 3}
    lb_policy: round_robin
    connect_timeout: 250ms
    protocol: http1
    send_proxy_protocol: v2
    max_requests_per_connection: 1000
    max_idle_connections: 0
    idle_timeout: 0s
  - name: other
    endpoints: [{address: "[::1]:1"}]
    send_proxy_protocol: v1
)";
  LoadResult r = loadConfigString(yaml, "conf/ferry.yaml");
  const Config c = ok(r);
  CHECK(c.path == "conf/ferry.yaml");
  CHECK(c.dir == "conf");
  CHECK(c.yaml == yaml);
  CHECK(c.runtime.workers == 4);
  CHECK(c.runtime.drain_timeout == milliseconds(30'000));
  CHECK(c.runtime.drain_delay == milliseconds(1'500));
  CHECK(c.runtime.log_level == LogLevel::kDebug);
  CHECK(c.runtime.max_connections == 1000);
  REQUIRE(c.admin);
  CHECK(c.admin->address.host == "::1");
  CHECK(c.admin->address.v6);
  CHECK(c.admin->address.port == 9902);
  CHECK(c.admin->allow_config_push);

  REQUIRE(c.listeners.size() == 2);
  const ListenerConfig& l = c.listeners[0];
  CHECK(l.name == "postgres");
  CHECK(l.name_mark.line == 12);
  CHECK(l.name_mark.col == 11);
  CHECK(l.mark.line == 12);
  CHECK(l.mark.col == 5);
  CHECK(l.address.host == "0.0.0.0");
  CHECK(l.address.port == 6432);
  CHECK(l.address.text == "0.0.0.0:6432");
  CHECK(l.address.mark.line == 13);
  CHECK(l.address.mark.col == 14);
  CHECK(l.proxy_protocol);
  CHECK(l.proxy_protocol_timeout == milliseconds(2'000));
  CHECK(l.max_connections == 50);
  CHECK(l.buffer_limit_kb == 64);
  REQUIRE(l.tcp);
  CHECK(l.tcp->cluster == "db");
  CHECK(l.tcp->cluster_mark.line == 19);
  CHECK(l.tcp->cluster_mark.col == 16);
  CHECK(l.tcp->idle_timeout == milliseconds(0));
  CHECK(c.listeners[1].name == "pg-2.b_c");
  CHECK(c.listeners[1].address.v6);
  CHECK(c.listeners[1].tcp->cluster == "db");

  REQUIRE(c.clusters.size() == 2);
  const ClusterConfig* db = c.findCluster("db");
  REQUIRE(db != nullptr);
  CHECK(db->name_mark.line == 25);
  REQUIRE(db->endpoints.size() == 2);
  CHECK(db->endpoints[0].address.port == 5432);
  CHECK(db->endpoints[0].weight == 1);
  CHECK(db->endpoints[1].address.port == 5433);
  CHECK(db->endpoints[1].weight == 3);
  CHECK(db->lb_policy == LbPolicy::kRoundRobin);
  CHECK(db->connect_timeout == milliseconds(250));
  CHECK(db->protocol == "http1");
  CHECK(db->send_proxy_protocol == 2);
  CHECK(db->max_requests_per_connection == 1000);
  CHECK(db->max_idle_connections == 0);
  CHECK(db->idle_timeout == milliseconds(0));
  const ClusterConfig* other = c.findCluster("other");
  REQUIRE(other != nullptr);
  CHECK(other->send_proxy_protocol == 1);
  CHECK(other->endpoints.at(0).address.host == "::1");
}

TEST_CASE("flow-style endpoints", "[config][loader]") {
  const Config c = ok(load("clusters:\n  - {name: db, endpoints: [{address: 127.0.0.1:5432}]}\n"));
  REQUIRE(c.clusters.size() == 1);
  REQUIRE(c.clusters[0].endpoints.size() == 1);
  CHECK(c.clusters[0].endpoints[0].address.host == "127.0.0.1");
  CHECK(c.clusters[0].endpoints[0].address.port == 5432);
  CHECK(c.clusters[0].endpoints[0].address.mark.line == 2);
  CHECK(c.clusters[0].endpoints[0].address.mark.col == 38);
}

TEST_CASE("unknown keys are reported at the key", "[config][loader]") {
  CHECK(onlyError("runtime: {}\nlistner: []\n") ==
        "t.yaml:2:1: unknown key 'listner' at the top level (did you mean 'listeners'?)");
  CHECK(onlyError("listeners:\n  - name: web\n    address: 0.0.0.0:80\n    tcp: {cluster: db}\n"
                  "    adress: 0.0.0.0:80\n" + kClusters) ==
        "t.yaml:5:5: unknown key 'adress' in listener (did you mean 'address'?)");
  CHECK(onlyError("runtime:\n  workers: 2\n  colour: blue\n") ==
        "t.yaml:3:3: unknown key 'colour' in runtime");
  CHECK(onlyError(kClusters + "    extra: 1\n") == "t.yaml:4:5: unknown key 'extra' in cluster");
  CHECK(onlyError("clusters:\n  - name: db\n    endpoints: [{address: 127.0.0.1:1, wieght: 2}]\n") ==
        "t.yaml:3:40: unknown key 'wieght' in endpoint (did you mean 'weight'?)");
}

TEST_CASE("duplicate keys are reported at the second key", "[config][loader]") {
  CHECK(onlyError("listeners:\n  - name: web\n    address: 0.0.0.0:80\n    address: 0.0.0.0:81\n"
                  "    tcp: {cluster: db}\n" + kClusters) == "t.yaml:4:5: duplicate key 'address'");
  CHECK(onlyError("runtime: {workers: 1, workers: 2}\n") == "t.yaml:1:23: duplicate key 'workers'");
  CHECK(onlyError("admin: {}\nadmin: {}\n") == "t.yaml:2:1: duplicate key 'admin'");
}

TEST_CASE("bad values are reported at the value", "[config][loader]") {
  CHECK(onlyError("runtime:\n  drain_timeout: 5x\n") ==
        "t.yaml:2:18: bad duration '5x' (use a unit: 250ms, 15s, 5m)");
  CHECK(onlyError("runtime:\n  drain_delay: 10\n") ==
        "t.yaml:2:16: bad duration '10' (use a unit: 250ms, 15s, 5m)");
  CHECK(onlyError("admin:\n  address: localhost:9901\n") ==
        "t.yaml:2:12: bad address 'localhost:9901': host must be an IP address (DNS names are "
        "not supported yet)");
  CHECK(onlyError("admin:\n  address: 127.0.0.1:70000\n") ==
        "t.yaml:2:12: bad address '127.0.0.1:70000': port out of range (0-65535)");
  CHECK(onlyError("clusters:\n  - name: db\n    endpoints:\n      - address: 127.0.0.1:0\n") ==
        "t.yaml:4:18: bad address '127.0.0.1:0': port must be 1-65535 here");
  CHECK(onlyError("runtime:\n  workers: 2000\n") ==
        "t.yaml:2:12: 'workers' must be between 0 and 1024, got 2000");
  CHECK(onlyError("runtime:\n  workers: -1\n") ==
        "t.yaml:2:12: 'workers' must be between 0 and 1024, got -1");
  CHECK(onlyError("runtime:\n  workers: four\n") ==
        "t.yaml:2:12: expected an integer for 'workers', got 'four'");
  CHECK(onlyError("runtime:\n  workers: \"4\"\n") ==
        "t.yaml:2:12: expected an integer for 'workers', got the quoted string \"4\"");
  CHECK(ok(load("runtime: {workers: !!int 3}\n")).runtime.workers == 3);  // explicit core tag
  CHECK(onlyError("runtime:\n  workers: !!str 3\n") ==
        "t.yaml:2:12: expected an integer for 'workers', got '3' tagged tag:yaml.org,2002:str");
  CHECK(onlyError("runtime:\n  log_level: loud\n") ==
        "t.yaml:2:14: bad log_level 'loud' (use trace, debug, info, warn, error)");
  CHECK(onlyError("admin:\n  allow_config_push: yes\n") ==
        "t.yaml:2:22: expected a boolean (true/false) for 'allow_config_push', got 'yes'");
  CHECK(onlyError("runtime: [1]\n") == "t.yaml:1:10: expected a mapping for 'runtime', got a list");
  CHECK(onlyError("listeners: {}\n") == "t.yaml:1:12: expected a list for 'listeners', got a mapping");
  CHECK(onlyError("- a\n- b\n") == "t.yaml:1:1: expected a mapping at the top level, got a list");
  for (const char* policy : {"round_robin", "least_request", "random", "ring_hash", "maglev"})
    CHECK(ok(load(kClusters + "    lb_policy: " + policy + "\n")).clusters.size() == 1);
  CHECK(onlyError(kClusters + "    lb_policy: fastest\n") ==
        "t.yaml:4:16: bad lb_policy 'fastest' (use round_robin, least_request, random, "
        "ring_hash, maglev)");
  CHECK(ok(load(kClusters + "    health_check: {path: /}\n")).clusters[0].health_check);
  CHECK(ok(load(kClusters + "    hash_on: {header: x}\n")).clusters[0].hash_on.name == "x");
  {
    // "0s turns a timeout off" (docs/configuration.md): accepted, and stored as 0.
    auto r = ferry::config::loadConfigString(kClusters + "    connect_timeout: 0s\n", "t.yaml");
    REQUIRE(r.errors.empty());
    CHECK(r.config->clusters[0].connect_timeout.count() == 0);
  }
  CHECK(onlyError(kClusters + "    protocol: http3\n") ==
        "t.yaml:4:15: bad protocol 'http3' (use http1, http2)");
  {
    auto r = ferry::config::loadConfigString(kClusters + "    protocol: http2\n", "t.yaml");
    REQUIRE(r.errors.empty());
    CHECK(r.config->clusters[0].protocol == "http2");
  }
  CHECK(onlyError(kClusters + "    max_idle_connections: 100001\n") ==
        "t.yaml:4:27: 'max_idle_connections' must be between 0 and 100000, got 100001");
  CHECK(onlyError(kClusters + "    max_requests_per_connection: -1\n") ==
        "t.yaml:4:34: 'max_requests_per_connection' must be between 0 and 4294967295, got -1");
  CHECK(onlyError(kClusters + "    idle_timeout: 60\n") ==
        "t.yaml:4:19: bad duration '60' (use a unit: 250ms, 15s, 5m)");
  CHECK(onlyError(kClusters + "    send_proxy_protocol: 2\n") ==
        "t.yaml:4:26: bad send_proxy_protocol '2' (use v1, v2)");
  CHECK(onlyError("clusters:\n  - name: db\n    endpoints: []\n") ==
        "t.yaml:3:16: 'endpoints' must not be empty");
  CHECK(onlyError("clusters:\n  - name: db\n    endpoints: [{address: 127.0.0.1:1, weight: 0}]\n") ==
        "t.yaml:3:48: 'weight' must be between 1 and 1000000, got 0");
  CHECK(onlyError("clusters:\n  - name: my db\n    endpoints: [{address: 127.0.0.1:1}]\n") ==
        "t.yaml:2:11: bad cluster name 'my db' (use letters, digits, '_', '.', '-')");
}

TEST_CASE("an empty value is reported at its key", "[config][loader]") {
  CHECK(onlyError("listeners:\n  - name: web\n    address:\n    tcp: {cluster: db}\n" + kClusters) ==
        "t.yaml:3:5: expected a string for 'address', got nothing");
}

TEST_CASE("missing required keys are reported at the mapping", "[config][loader]") {
  CHECK(onlyError("listeners:\n  - address: 0.0.0.0:80\n    tcp: {cluster: db}\n" + kClusters) ==
        "t.yaml:2:5: missing required key 'name' in listener");
  CHECK(onlyError("listeners:\n  - name: a\n    address: 0.0.0.0:80\n    tcp:\n      idle_timeout: 1s\n") ==
        "t.yaml:5:7: missing required key 'cluster' in tcp");
  CHECK(onlyError("clusters:\n  - name: db\n    endpoints: [{weight: 2}]\n") ==
        "t.yaml:3:17: missing required key 'address' in endpoint");
}

TEST_CASE("listener cross checks", "[config][loader]") {
  SECTION("duplicate listener name at the second name") {
    CHECK(onlyError("listeners:\n  - name: web\n    address: 0.0.0.0:80\n    tcp: {cluster: db}\n"
                    "  - name: web\n    address: 0.0.0.0:81\n    tcp: {cluster: db}\n" + kClusters) ==
          "t.yaml:5:11: duplicate listener name 'web'");
  }
  SECTION("duplicate address at the second address; port 0 may repeat") {
    CHECK(onlyError("listeners:\n  - name: a\n    address: '[::1]:80'\n    tcp: {cluster: db}\n"
                    "  - name: b\n    address: '[0::1]:80'\n    tcp: {cluster: db}\n" + kClusters) ==
          "t.yaml:6:14: duplicate listener address '[0::1]:80' (also used by listener 'a')");
    ok(load("listeners:\n  - name: a\n    address: 127.0.0.1:0\n    tcp: {cluster: db}\n"
            "  - name: b\n    address: 127.0.0.1:0\n    tcp: {cluster: db}\n" + kClusters));
  }
  SECTION("unknown cluster at the value, wherever clusters are defined") {
    CHECK(onlyError("listeners:\n  - name: a\n    address: 0.0.0.0:80\n    tcp:\n      cluster: nope\n" +
                    kClusters) == "t.yaml:5:16: unknown cluster 'nope'");
    ok(load(kClusters + "listeners:\n  - {name: a, address: 0.0.0.0:80, tcp: {cluster: db}}\n"));
  }
  SECTION("exactly one of http and tcp") {
    CHECK(onlyError("listeners:\n  - name: a\n    address: 0.0.0.0:80\n" + kClusters) ==
          "t.yaml:2:5: listener needs one of 'http' or 'tcp'");
    CHECK(onlyError("listeners:\n  - name: a\n    tcp: {cluster: db}\n    address: 0.0.0.0:80\n"
                    "    http: {virtual_hosts: [{name: v, domains: ['*'], routes: "
                    "[{match: {prefix: /}, route: {cluster: db}}]}]}\n" + kClusters) ==
          "t.yaml:5:5: listener has both 'http' and 'tcp' (use exactly one)");
  }
}

TEST_CASE("tls blocks: listener termination, cluster origination, sni_routes", "[config][loader][tls]") {
  TempDir dir;
  for (const char* f : {"site.pem", "site.key", "ca.pem", "client.pem", "client.key"}) dir.write(f, "x\n");
  const std::string path = (dir.path / "t.yaml").string();
  auto loadHere = [&](const std::string& yaml) { return ferry::config::loadConfigString(yaml, path); };
  auto errors = [&](const std::string& yaml) {
    std::vector<std::string> out;
    for (const auto& e : loadHere(yaml).errors) out.push_back(e.format().substr(path.size()));
    return out;
  };
  const std::string cluster_db = "clusters:\n  - name: db\n    endpoints: [{address: 127.0.0.1:5432}]\n";

  auto r = loadHere(
      "listeners:\n"
      "  - name: web\n"
      "    address: 0.0.0.0:443\n"
      "    tls:\n"
      "      certificates:\n"
      "        - {cert_file: site.pem, key_file: site.key}\n"
      "      alpn: [http/1.1]\n"
      "      min_version: TLSv1.3\n"
      "      ciphersuites: TLS_AES_128_GCM_SHA256\n"
      "      client_ca_file: ca.pem\n"
      "      client_cert: optional\n"
      "      verify_depth: 3\n"
      "      allowed_sans: [spiffe://acme/x]\n"
      "      session_tickets: false\n"
      "      session_timeout: 10m\n"
      "      session_cache_size: 0\n"
      "      handshake_timeout: 2s\n"
      "      watch_certificates: false\n"
      "    http:\n"
      "      forward_client_cert: sanitize_set\n"
      "      virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: db}}]}]\n"
      "  - name: pass\n"
      "    address: 0.0.0.0:8443\n"
      "    tcp:\n"
      "      sni_routes:\n"
      "        - {server_names: [A.test, '*.b.test'], cluster: db}\n"
      "      client_hello_timeout: 1s\n" +
      cluster_db +
      "    tls: {sni: Up.Internal, ca_file: ca.pem, cert_file: client.pem, key_file: client.key, "
      "session_reuse: false, max_version: TLSv1.2}\n");
  REQUIRE(r.errors.empty());
  const auto& c = *r.config;
  const auto& t = *c.listeners[0].tls;
  CHECK(t.certificates[0].cert_file == (dir.path / "site.pem").string());
  CHECK(t.protocol.alpn == std::vector<std::string>{"http/1.1"});
  CHECK(t.protocol.min_version == "TLSv1.3");
  CHECK(t.protocol.ciphersuites == "TLS_AES_128_GCM_SHA256");
  CHECK(t.client_cert == TlsConfig::ClientCert::kOptional);
  CHECK(t.verify_depth == 3);
  CHECK(t.allowed_sans == std::vector<std::string>{"spiffe://acme/x"});
  CHECK(!t.session_tickets);
  CHECK(t.session_timeout == std::chrono::minutes(10));
  CHECK(t.session_cache_size == 0);
  CHECK(t.handshake_timeout == std::chrono::seconds(2));
  CHECK(!t.watch_certificates);
  CHECK(c.listeners[0].http->forward_client_cert == HttpConfig::ForwardClientCert::kSanitizeSet);
  const auto& tcp = *c.listeners[1].tcp;
  CHECK(tcp.cluster.empty());
  REQUIRE(tcp.sni_routes.size() == 1);
  CHECK(tcp.sni_routes[0].server_names == std::vector<std::string>{"a.test", "*.b.test"});
  CHECK(tcp.client_hello_timeout == std::chrono::seconds(1));
  const auto& up = *c.clusters[0].tls;
  CHECK(up.sni == "up.internal");
  CHECK(up.verify);
  CHECK(up.client_certificate);
  CHECK(!up.session_reuse);
  CHECK(up.protocol.max_version == "TLSv1.2");

  // client_ca_file alone requires client certificates.
  r = loadHere("listeners:\n  - name: web\n    address: 0.0.0.0:443\n    tls:\n"
               "      certificates: [{cert_file: site.pem, key_file: site.key}]\n"
               "      client_ca_file: ca.pem\n    tcp: {cluster: db}\n" + cluster_db);
  REQUIRE(r.errors.empty());
  CHECK(r.config->listeners[0].tls->client_cert == TlsConfig::ClientCert::kRequired);
  CHECK(r.config->listeners[0].tls->session_tickets);

  CHECK(errors("listeners:\n  - name: web\n    address: 0.0.0.0:443\n    tls:\n"
               "      certificates:\n        - cert_file: missing.pem\n      alpn: [h2, h3]\n"
               "      min_version: SSLv3\n      max_version: TLSv1.2\n      client_cert: required\n"
               "      verify_depth: 2\n    tcp: {cluster: db}\n" + cluster_db) ==
        std::vector<std::string>{
            ":6:11: missing required key 'key_file' in certificate",
            ":6:22: cannot read cert_file '" + (dir.path / "missing.pem").string() + "': No such file or directory",
            ":7:18: bad alpn 'h3' (use h2, http/1.1)",
            ":8:20: bad min_version 'SSLv3' (use TLSv1.2, TLSv1.3)",
            ":10:7: 'client_cert' needs 'client_ca_file' (the CAs client certificates are verified against)",
            ":11:7: 'verify_depth' needs 'client_ca_file'",
        });
  CHECK(errors("listeners:\n  - name: web\n    address: 0.0.0.0:443\n    tls:\n"
               "      certificates: [{cert_file: site.pem, key_file: site.key}]\n"
               "      min_version: TLSv1.3\n      max_version: TLSv1.2\n    tcp: {cluster: db}\n" + cluster_db) ==
        std::vector<std::string>{":7:20: max_version TLSv1.2 is below min_version TLSv1.3"});
  CHECK(errors("listeners:\n  - name: p\n    address: 0.0.0.0:443\n    tcp:\n      sni_routes:\n"
               "        - {server_names: [a.test, 'x*.b'], cluster: nope}\n"
               "        - {server_names: [a.test], cluster: db}\n      client_hello_timeout: 1s\n" + cluster_db) ==
        std::vector<std::string>{
            ":6:35: bad server name 'x*.b' (use a host name or *.suffix)",
            ":6:53: unknown cluster 'nope'",
            ":7:11: server name 'a.test' is in two sni_routes",
        });
  CHECK(errors("listeners:\n  - name: p\n    address: 0.0.0.0:443\n    tcp: {client_hello_timeout: 1s}\n" +
               cluster_db) == std::vector<std::string>{
                                  ":4:10: missing required key 'cluster' in tcp",
                                  ":4:11: 'client_hello_timeout' needs 'sni_routes'",
                              });
  CHECK(errors("listeners: []\n" + cluster_db + "    tls: {cert_file: client.pem, verify: false, ca_file: ca.pem}\n") ==
        std::vector<std::string>{
            ":5:11: a client certificate needs both 'cert_file' and 'key_file'",
            ":5:49: 'ca_file' with 'verify: false' (nothing would be verified)",
        });
}

TEST_CASE("all errors are reported in one run, in document order", "[config][loader]") {
  const std::string yaml = R"(runtime:
  workers: many
  drain_timeout: 5x
listeners:
  - name: web
    adress: 0.0.0.0:80
    address: 0.0.0.0:99999
    tcp: {cluster: nope}
  - address: 0.0.0.0:81
    tcp: {cluster: db}
clusters:
  - name: db
    endpoints: [{address: example_com:5432}]
    name: db2
)";
  LoadResult r = load(yaml);
  CHECK_FALSE(r.config.has_value());
  CHECK(errorsOf(r) ==
        std::vector<std::string>{
            "t.yaml:2:12: expected an integer for 'workers', got 'many'",
            "t.yaml:3:18: bad duration '5x' (use a unit: 250ms, 15s, 5m)",
            "t.yaml:6:5: unknown key 'adress' in listener (did you mean 'address'?)",
            "t.yaml:7:14: bad address '0.0.0.0:99999': port out of range (0-65535)",
            "t.yaml:8:20: unknown cluster 'nope'",
            "t.yaml:9:5: missing required key 'name' in listener",
            "t.yaml:13:27: bad address 'example_com:5432': host name 'example_com' has a bad "
            "character '_' (use letters, digits, '-' and '.')",
            "t.yaml:14:5: duplicate key 'name'",
        });
}

TEST_CASE("a YAML syntax error is one error at its position", "[config][loader]") {
  auto r = load("runtime:\n  workers: [1, 2\nadmin: {}\n");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].mark.line == 3);
  CHECK(r.errors[0].mark.col == 6);
  CHECK_THAT(r.errors[0].format(), Contains("t.yaml:3:6: YAML syntax error: "));
  CHECK_FALSE(r.config.has_value());

  r = load("runtime:\n  workers: 1\n drain_delay: 1s\n");
  REQUIRE(r.errors.size() == 1);
  CHECK_THAT(r.errors[0].format(), Contains("t.yaml:3:2: YAML syntax error: "));

  CHECK(onlyError("runtime: {}\n---\nadmin: {}\n") == "t.yaml:3:1: only one YAML document is allowed");
}

TEST_CASE("loadConfigFile reads the file and resolves token_file against its directory",
          "[config][loader]") {
  TempDir dir;
  dir.write("secrets/admin.token", "s3cret\n");
  std::string path = dir.write("ferry.yaml", "admin:\n  token_file: secrets/admin.token\n");
  LoadResult r = loadConfigFile(path);
  const Config c = ok(r);
  CHECK(c.path == path);
  CHECK(c.dir == dir.path.string());
  REQUIRE(c.admin);
  CHECK(c.admin->token_file == (dir.path / "secrets/admin.token").string());

  // An absolute token_file is kept as is.
  std::string abs = (dir.path / "secrets/admin.token").string();
  path = dir.write("abs.yaml", "admin:\n  token_file: " + abs + "\n");
  CHECK(ok(loadConfigFile(path)).admin->token_file == abs);

  // Missing: an error at the value, naming the resolved path.
  path = dir.write("bad.yaml", "admin:\n  token_file: secrets/missing.token\n");
  r = loadConfigFile(path);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].format() == path + ":2:15: cannot read token_file '" +
                                    (dir.path / "secrets/missing.token").string() +
                                    "': No such file or directory");

  // A directory is not a token file.
  path = dir.write("dir.yaml", "admin:\n  token_file: secrets\n");
  r = loadConfigFile(path);
  REQUIRE(r.errors.size() == 1);
  CHECK_THAT(r.errors[0].format(), Contains(":2:15: token_file '") && Contains("is not a regular file"));
}

TEST_CASE("loadConfigFile reports an unreadable file without a position", "[config][loader]") {
  TempDir dir;
  std::string path = (dir.path / "absent.yaml").string();
  LoadResult r = loadConfigFile(path);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].mark.line == 0);
  CHECK(r.errors[0].format() == path + ": cannot read config file: No such file or directory");
  CHECK_FALSE(r.config.has_value());

  r = loadConfigFile(dir.path.string());
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].format() == dir.path.string() + ": cannot read config file: Is a directory");
}

TEST_CASE("json and redacted_yaml render the config", "[config][loader]") {
  const Config c = ok(load("runtime:\n  workers: 2\n  log_level: warn\n"
                            "admin: {address: 127.0.0.1:9901, allow_config_push: false}\n" + kClusters +
                            "    connect_timeout: \"250ms\"\n"));
  CHECK(renderRedactedJson(c.yaml) ==
        R"({"runtime":{"workers":2,"log_level":"warn"},)"
        R"("admin":{"address":"127.0.0.1:9901","allow_config_push":false},)"
        R"("clusters":[{"name":"db","endpoints":[{"address":"127.0.0.1:5432"}],)"
        R"("connect_timeout":"250ms"}]})");
  const std::string redacted = *renderRedactedYaml(c.yaml);
  CHECK(redacted ==
        "runtime:\n  workers: 2\n  log_level: warn\n"
        "admin: {address: 127.0.0.1:9901, allow_config_push: false}\n"
        "clusters:\n  - name: db\n    endpoints: [{address: 127.0.0.1:5432}]\n"
        "    connect_timeout: \"250ms\"\n");
  // The re-emitted YAML loads back to the same config.
  CHECK(renderRedactedJson(ok(load(redacted)).yaml) == renderRedactedJson(c.yaml));
}

TEST_CASE("rendering redacts secrets and keeps file paths", "[config][loader]") {
  const std::string yaml = R"(admin:
  token_file: secrets/admin.token
  token: abc
filters:
  - name: auth
    config:
      password: hunter2
      secret: {nested: x}
      private_key: "-----BEGIN"
      inline_key: k
      inlineCert: [a, b]
      tokens: kept
      n: 012
      q: "5"
      f: -1.5e3
      t: true
      z: ~
      s: "quote\" and \\ and	tab"
)";
  auto json = renderRedactedJson(yaml);
  REQUIRE(json);
  CHECK(*json ==
        R"({"admin":{"token_file":"secrets/admin.token","token":"[redacted]"},)"
        R"("filters":[{"name":"auth","config":{"password":"[redacted]","secret":"[redacted]",)"
        R"("private_key":"[redacted]","inline_key":"[redacted]","inlineCert":"[redacted]",)"
        R"("tokens":"kept","n":"012","q":"5","f":-1.5e3,"t":true,"z":null,)"
        R"("s":"quote\" and \\ and\ttab"}}]})");
  auto out = renderRedactedYaml(yaml);
  REQUIRE(out);
  CHECK_THAT(*out, Contains("token_file: secrets/admin.token"));
  CHECK_THAT(*out, Contains("tokens: kept"));
  for (const char* secret : {"abc", "hunter2", "nested", "BEGIN", "inline_key: k", "[a, b]"})
    CHECK_THAT(*out, !Contains(secret));
  CHECK_THAT(*out, Contains("token: \"[redacted]\""));
  CHECK_THAT(*out, Contains("password: \"[redacted]\""));
  CHECK_THAT(*out, Contains("inlineCert: \"[redacted]\""));
  // The redacted YAML is itself valid and renders to the same JSON.
  CHECK(renderRedactedJson(*out) == json);

  CHECK_FALSE(renderRedactedJson("a: [1, 2\n").has_value());
  CHECK(renderRedactedJson("") == "{}");
}

TEST_CASE("an alias bomb is refused before it is expanded", "[config]") {
  std::string yaml =
      "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
      "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
      "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
      "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
      "listeners: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
  auto r = ferry::config::loadConfigString(yaml, "t.yaml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].format().rfind("t.yaml:1:1: config too large", 0) == 0);
}

TEST_CASE("errors are capped so a huge bad config cannot flood memory", "[config]") {
  std::string yaml = "listeners:\n";
  for (int i = 0; i < 1500; ++i) yaml += "  - x\n";
  auto r = ferry::config::loadConfigString(yaml, "t.yaml");
  REQUIRE(r.errors.size() == 1001);
  CHECK(r.errors.back().message.find("too many errors") != std::string::npos);
}
