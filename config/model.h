// Plain config structs: what the YAML loader produces and validation checks.
// No behaviour here; immutable once loaded. Thread-agnostic (read-only after load).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ferry::config {

// 1-based position in the config file; 0 when unknown (e.g. a default value).
struct Mark {
  int line = 0;
  int col = 0;
};

using Duration = std::chrono::milliseconds;

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };

// "host:port" or "[v6]:port". host is a numeric IP literal (v4 or v6, no brackets).
struct Address {
  std::string host;
  uint16_t port = 0;
  bool v6 = false;
  std::string text;  // as written
  Mark mark;
};

struct RuntimeConfig {
  uint32_t workers = 0;  // 0 = one per CPU core
  Duration drain_timeout = std::chrono::seconds(15);
  Duration drain_delay = std::chrono::seconds(0);
  LogLevel log_level = LogLevel::kInfo;
  uint64_t max_connections = 0;  // process-wide downstream limit; 0 = unlimited
};

struct AdminConfig {
  Address address;            // default 127.0.0.1:9901
  std::string token_file;     // resolved against the config dir; empty = none
  bool allow_config_push = false;
};

struct TlsCertificate {
  std::string cert_file;
  std::string key_file;
};

struct TlsConfig {
  std::vector<TlsCertificate> certificates;
  std::vector<std::string> alpn;
  std::string client_ca_file;
  std::string min_version = "TLSv1.2";
  Mark mark;  // of the `tls` key
};

// ---- HTTP (L7) listener config -------------------------------------------------------

struct HeaderMatcherConfig {
  enum class Kind { kExact, kPrefix, kRegex, kPresent };
  std::string name;  // lower-cased by the loader
  Kind kind = Kind::kPresent;
  std::string value;  // for exact/prefix/regex
  Mark mark;
};

struct RouteMatchConfig {
  enum class Kind { kPrefix, kPath, kRegex };
  Kind kind = Kind::kPrefix;
  std::string value;  // the prefix, exact path or RE2 pattern (full match on the path)
  std::vector<HeaderMatcherConfig> headers;  // all must match
  std::vector<std::string> methods;          // any; empty = all
  Mark mark;
};

struct WeightedClusterConfig {
  std::string cluster;
  uint32_t weight = 1;
  Mark mark;
};

struct RouteActionConfig {
  std::string cluster;                                 // or weighted_clusters
  std::vector<WeightedClusterConfig> weighted_clusters;
  std::optional<std::string> prefix_rewrite;          // replaces the matched prefix (or path)
  std::optional<std::string> host_rewrite;
  Duration timeout = std::chrono::seconds(15);        // until response headers; 0 = none
  Mark cluster_mark;
};

struct DirectResponseConfig {
  int status = 200;
  std::string body;
};

struct RedirectConfig {
  std::optional<std::string> scheme;          // scheme_redirect
  std::optional<std::string> host;            // host_redirect
  std::optional<std::string> path;            // path_redirect (replaces the whole path)
  std::optional<std::string> prefix_rewrite;  // replaces the matched prefix
  int code = 301;                             // 301, 302, 303, 307, 308
};

struct HeaderOpsConfig {
  std::vector<std::pair<std::string, std::string>> set;  // names lower-cased
  std::vector<std::pair<std::string, std::string>> add;
  std::vector<std::string> remove;
};

struct RouteConfig {
  RouteMatchConfig match;
  std::optional<RouteActionConfig> route;
  std::optional<DirectResponseConfig> direct_response;
  std::optional<RedirectConfig> redirect;
  HeaderOpsConfig request_headers;
  HeaderOpsConfig response_headers;
  Mark mark;
};

struct VirtualHostConfig {
  std::string name;
  std::vector<std::string> domains;  // lower-cased: "api.example.com", "*.example.com", "*"
  std::vector<RouteConfig> routes;
  Mark mark;
};

// Built-in HTTP filters (the router is implicit and always last).
struct BufferFilterConfig {
  uint64_t max_request_bytes = 1024 * 1024;  // past it: 413
};

struct FaultFilterConfig {
  // Each applies to `percentage` (0-100) of requests, decided independently.
  std::optional<Duration> delay;
  double delay_percentage = 100;
  std::optional<int> abort_status;
  double abort_percentage = 100;
};

struct HttpFilterConfig {
  std::string name;  // "buffer" | "fault"
  std::optional<BufferFilterConfig> buffer;
  std::optional<FaultFilterConfig> fault;
  Mark mark;
};

struct HttpConfig {
  Duration idle_timeout = std::chrono::seconds(60);            // keep-alive idle; 0 = off
  Duration request_headers_timeout = std::chrono::seconds(10);  // whole request head; 0 = off
  uint32_t max_request_headers_kb = 60;                        // past it: 431
  uint32_t max_headers = 100;                                  // past it: 431
  uint32_t xff_trusted_hops = 0;
  bool merge_slashes = false;
  uint32_t max_requests_per_connection = 0;  // downstream keep-alive cap; 0 = unlimited
  std::vector<HttpFilterConfig> filters;
  std::vector<VirtualHostConfig> virtual_hosts;
  Mark mark;  // of the `http` key
};

struct TcpProxyConfig {
  std::string cluster;
  Mark cluster_mark;
  Duration idle_timeout = std::chrono::hours(1);  // 0 = off
};

struct ListenerConfig {
  std::string name;
  Mark name_mark;
  Address address;
  bool proxy_protocol = false;    // expect a PROXY v1/v2 header from the client
  Duration proxy_protocol_timeout = std::chrono::seconds(5);
  uint64_t max_connections = 0;   // 0 = unlimited
  uint32_t buffer_limit_kb = 1024;  // per-connection write buffer high watermark
  std::optional<TlsConfig> tls;
  std::optional<HttpConfig> http;
  std::optional<TcpProxyConfig> tcp;
  Mark mark;  // of the list item
};

enum class LbPolicy { kRoundRobin, kLeastRequest, kRandom, kRingHash, kMaglev };

struct EndpointConfig {
  Address address;
  uint32_t weight = 1;
};

struct ClusterConfig {
  std::string name;
  Mark name_mark;
  std::vector<EndpointConfig> endpoints;
  LbPolicy lb_policy = LbPolicy::kRoundRobin;
  Duration connect_timeout = std::chrono::seconds(1);
  int send_proxy_protocol = 0;  // 0 = off, 1 = v1, 2 = v2
  std::string protocol = "http1";
  // Upstream HTTP connection pool (per worker, per host).
  uint32_t max_requests_per_connection = 0;  // 0 = unlimited
  uint32_t max_idle_connections = 1024;      // idle keep-alive connections kept per host per worker
  Duration idle_timeout = std::chrono::seconds(60);  // a pooled connection idle this long is closed
  Mark mark;
};

struct Config {
  std::string path;      // the -c file as given
  std::string dir;       // its directory, for relative paths
  std::string yaml;      // the raw text, for GET /config?format=yaml (redacted at dump time)
  std::string json;           // the whole config as one JSON object, secrets redacted
  std::string redacted_yaml;  // the config re-emitted as YAML, secrets redacted
  RuntimeConfig runtime;
  std::optional<AdminConfig> admin;
  std::vector<ListenerConfig> listeners;
  std::vector<ClusterConfig> clusters;

  const ClusterConfig* findCluster(const std::string& name) const {
    for (const auto& c : clusters)
      if (c.name == name) return &c;
    return nullptr;
  }
};

}  // namespace ferry::config
