// The compiled HTTP route table of one listener: virtual-host selection and route matching
// (docs/http.md: "Routes match in order, first match wins. Virtual hosts match on the Host header
// without its port: exact name first, then the longest *.suffix, then *").
//
// Threading: built once per config load on the main thread, immutable afterwards, shared
// read-only (shared_ptr<const RouteTable>) by every worker; match() is const, lock-free and
// allocation-free except when a header matcher meets a repeated header (values are joined).
//
// Matching rules (docs/configuration.md repeats them for users):
//  - Host: the Host/:authority value with any ":port" removed ("[v6]:port" -> "[v6]"), one
//    trailing '.' removed, compared case-insensitively. Precedence: exact domain, then the
//    longest "*suffix" domain ("*.example.com" matches "a.example.com" and "a.b.example.com",
//    not "example.com"; the '*' must stand for at least one character), then the longest
//    "prefix*" domain (Envoy's "foo.*"), then "*". If two virtual hosts list the same domain,
//    the first one wins. No match -> nullptr (404 NR).
//  - Routes are tried in config order and the first whose conditions all hold wins. Internally
//    exact paths are found by hash, prefixes by a radix trie and only regex routes are scanned,
//    but the lowest-index matching route is returned, so the result equals a linear scan.
//  - Path conditions apply to the normalised path without the query, case-sensitively:
//    prefix = plain string prefix ("/v1" matches "/v1x"; write "/v1/" for a segment boundary),
//    path = exact equality, regex = RE2 full match.
//  - methods: any of them, compared case-sensitively (HTTP methods are case-sensitive);
//    empty = every method.
//  - headers: all must hold. Names are case-insensitive. A header that appears more than once is
//    matched as its values joined with "," in order (Envoy's rule). exact / prefix / regex
//    (RE2 full match) need the header present; present only needs it present. The names "host"
//    and ":authority" match the host argument as received (with port), ":method" the method.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.h"
#include "core/http/header_map.h"
#include "core/stats.h"

namespace ferry::core::upstream {
class Cluster;
}

namespace ferry::core::router {

// One route as the router uses it: its config and its clusters, resolved once when the table
// is built (never looked up by name per request). Immutable; lives as long as its table.
// Per-route series of a named route (routes[].name): ferry_route_requests_total and
// ferry_route_request_duration_seconds, labelled {listener, route}.
struct RouteStats {
  bool enabled = false;
  StatHandle rq_by_class[6];  // [1..5]
  HistogramHandle duration;
};

struct Route {
  const config::RouteConfig* config = nullptr;
  RouteStats stats;
  // For `route:` actions: the cluster of `cluster`, or one per entry of `weighted_clusters` in
  // config order. Null where the resolver did not know the name (the router answers 503 UH).
  std::vector<std::shared_ptr<const upstream::Cluster>> clusters;

  // The cluster a request takes: the only one, or a weighted pick with `random` (see
  // pickWeighted). Null when unresolved or for direct responses and redirects.
  const upstream::Cluster* pickCluster(uint64_t random) const;
};

// Resolves a cluster name while a table is built (the snapshot's clusters); null when unknown.
using ClusterResolver = std::function<std::shared_ptr<const upstream::Cluster>(const std::string& name)>;

class RouteTable {
 public:
  // Compiles a copy of `http`. Returns nullptr and sets *error (if non-null) on failure, e.g. a
  // regex that RE2 rejects: "virtual host 'api' route 3: bad regex '(': missing )".
  // `clusters` resolves the routes' cluster names (none given: every cluster is unresolved).
  // With `stats`, named routes get their series (labelled with `listener`).
  static std::shared_ptr<const RouteTable> build(const config::HttpConfig& http, std::string* error,
                                                 const ClusterResolver& clusters = nullptr,
                                                 StatsStore* stats = nullptr, const std::string& listener = "");
  // The same without copying: the table holds `http` for its lifetime.
  static std::shared_ptr<const RouteTable> build(std::shared_ptr<const config::HttpConfig> http,
                                                 std::string* error, const ClusterResolver& clusters = nullptr,
                                                 StatsStore* stats = nullptr, const std::string& listener = "");

  ~RouteTable();
  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

  struct Match {
    const config::VirtualHostConfig* virtual_host = nullptr;  // nullptr: unknown host
    const Route* route = nullptr;                             // nullptr: no route (404 NR)
  };

  // host: the Host/:authority value as received. path: the normalised path WITHOUT query.
  // Both the virtual host and the route in one lookup (the router wants both: stats + action).
  Match find(std::string_view host, std::string_view method, std::string_view path,
             const http::HeaderMap& headers) const;

  // The matched RouteConfig or nullptr (-> 404 NR). Pointers stay valid for the table's life.
  const config::RouteConfig* match(std::string_view host, std::string_view method,
                                   std::string_view path, const http::HeaderMap& headers) const {
    const Route* r = find(host, method, path, headers).route;
    return r ? r->config : nullptr;
  }

  // Which virtual host (for logs/stats), or nullptr.
  const config::VirtualHostConfig* matchVirtualHost(std::string_view host) const;

  // The config this table was built from (its copy).
  const config::HttpConfig& config() const;

 private:
  struct Impl;
  explicit RouteTable(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Picks one of a.weighted_clusters by weight: with total weight W, `random % W` falls into the
// cumulative weight ranges in config order, so random values 0..W-1 give each cluster exactly
// `weight` hits. Weight-0 entries are never picked. Returns a.cluster when there are no weighted
// clusters, and the first entry if every weight is 0 (the loader rejects both).
const std::string& pickWeighted(const config::RouteActionConfig& a, uint64_t random);

// The value matched against a "*suffix" / exact domain: port and one trailing '.' stripped,
// lower-cased. Exposed for tests and logs.
std::string canonicalHost(std::string_view host);

}  // namespace ferry::core::router
