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

// Parsed only as far as needed to refuse it clearly: HTTP is not built yet.
struct HttpConfig {
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
  std::string protocol = "http1";  // upstream protocol: http1 | http2
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
