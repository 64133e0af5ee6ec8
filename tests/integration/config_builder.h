// One builder for the integration tests' Ferry configs: runtime, admin, one listener (TCP, or
// HTTP with one virtual host and its routes) and the clusters, written as YAML by yaml().
// Every field has the usual default; a test sets what it needs with designated initializers:
//
//   FerryProcess::start(FerryConfig{.clusters = {{"up", {up.port()}}}}.yaml());
//     -> runtime.workers 1, admin on 127.0.0.1:0, HTTP listener "web" sending everything to
//        cluster "up" (one endpoint, 127.0.0.1:<port>)
//   FerryConfig{.workers = 2, .listener = "tcp", .tcp_cluster = "up",
//               .clusters = {{"up", {{a.port(), 1}, {b.port(), 3}}}}}  // weights 1 and 3
//
// The *_extra fields take more keys of their section as YAML lines, indented as they appear in
// the file (the indentation is noted on each field). Configs with several listeners or virtual
// hosts are written out in their tests.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ferry::testing {

// One entry of a cluster's endpoints: {address: HOST:PORT[, weight: W][, priority: P]}.
struct Endpoint {
  // Implicit, so that a list of ports is a list of endpoints: {{"up", {a.port(), b.port()}}}.
  Endpoint(uint16_t port, int weight = 0, int priority = -1)  // NOLINT(google-explicit-constructor)
      : port(port), weight(weight), priority(priority) {}
  Endpoint(std::string host, uint16_t port) : host(std::move(host)), port(port) {}

  std::string host = "127.0.0.1";  // an IP, or a name a DNS cluster resolves
  uint16_t port = 0;
  int weight = 0;     // written when > 0
  int priority = -1;  // written when >= 0
};

// One entry under clusters:.
struct Cluster {
  std::string name;
  std::vector<Endpoint> endpoints;
  std::string extra;  // more keys of the cluster, indented 4: "    lb_policy: random\n"

  std::string yaml() const;  // the list item, indented 2
};

// One entry under the virtual host's routes:.
struct Route {
  std::string match = "{prefix: /}";  // the value of match: (flow YAML)
  std::string cluster;                // route: {cluster: <cluster>[, <action>]}; none when empty
  std::string action;                 // more keys of route:, flow YAML: "timeout: 5s"
  std::string extra;                  // more keys of the entry, indented 14:
                                      // "              direct_response: {status: 200}\n"
};

struct FerryConfig {
  // runtime: (left out when workers is 0 and there is no runtime_extra)
  int workers = 1;
  std::string runtime_extra;  // indented 2: "  drain_timeout: 5s\n"
  // admin: on 127.0.0.1:0 (left out when false)
  bool admin = true;
  std::string admin_extra;  // indented 2: "  token_file: admin.token\n"
  // The one listener.
  std::string listener = "web";
  std::string listener_address = "127.0.0.1:0";
  std::string listener_extra;  // indented 4: "    max_connections: 2\n"
  // A TCP listener to this cluster; when empty, an HTTP listener.
  std::string tcp_cluster;
  std::string tcp_extra;   // more keys of tcp:, indented 6: "      idle_timeout: 300ms\n"
  std::string http_extra;  // keys under http: before virtual_hosts, indented 6
  // The routes of the HTTP listener's virtual host "all" (domains ["*"]). None: everything
  // (prefix /) goes to the first cluster.
  std::vector<Route> routes;
  std::vector<Cluster> clusters;  // none: no clusters: section

  // The config file's text. Throws HarnessError if there is nothing to route to (an HTTP
  // listener without routes or clusters).
  std::string yaml() const;
};

// The keys under http: for one HTTP filter, indented for http_extra: `response_flags_header:
// true` (when flags_header), then `filters:` with NAME and its config. `config` is flow YAML
// ("{max_tokens: 5}") or block lines indented 12, each ending in "\n"; no config: when empty.
// `more_http`: other keys of http:, indented 6, written before filters:.
std::string httpFilterYaml(const std::string& name, const std::string& config = "", bool flags_header = true,
                           const std::string& more_http = "");

// The routes of a filter override test, in this order: PREFIX /off disables the listener's
// filter NAME, PREFIX /alt runs it with config `alt` (flow YAML) instead of the listener's,
// and everything else (prefix /) has the listener's. All go to `cluster`.
std::vector<Route> overrideRoutes(const std::string& filter, const std::string& alt, const std::string& cluster = "up");

}  // namespace ferry::testing
