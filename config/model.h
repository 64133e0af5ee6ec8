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
// Positions are not part of a config's meaning: two marks always compare equal, so a block
// that only moved in the file (or got a comment above it) compares equal to the old one and
// its runtime state is reused.
struct Mark {
  int line = 0;
  int col = 0;
  friend bool operator==(const Mark&, const Mark&) { return true; }
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
  bool operator==(const Address&) const = default;
};

struct RuntimeConfig {
  uint32_t workers = 0;  // 0 = one per CPU core
  Duration drain_timeout = std::chrono::seconds(15);
  Duration drain_delay = std::chrono::seconds(0);
  LogLevel log_level = LogLevel::kInfo;
  uint64_t max_connections = 0;  // process-wide downstream limit; 0 = unlimited
  bool watch_config = false;     // reload when the -c file changes (content hash differs)
  // Started as root: drop to this user (and group; "" = the user's primary group) once the
  // sockets are bound, keeping CAP_NET_BIND_SERVICE. "" = no drop. Immutable across reloads.
  std::string user;
  std::string group;
  enum class LogFormat { kText, kJson };
  LogFormat log_format = LogFormat::kText;
  std::string log_file;  // resolved against the config dir; "" = stderr. Immutable across reloads.
  // The workers' I/O backend: "auto" (io_uring where the kernel allows it, else epoll),
  // "epoll" or "io_uring" (startup fails without it). Default: $FERRY_IO if set, else auto.
  // Immutable across reloads.
  std::string io = "auto";
  Mark mark;                     // of the runtime block (its key), for reload errors
  Mark workers_mark;             // of the workers value
  Mark user_mark, group_mark, log_file_mark, io_mark;  // of those values
  bool operator==(const RuntimeConfig&) const = default;
};

struct AdminConfig {
  Address address;            // default 127.0.0.1:9901
  std::string token_file;     // resolved against the config dir; empty = none
  bool allow_config_push = false;
  Mark mark;  // of the admin block (its key)
  bool operator==(const AdminConfig&) const = default;
};

struct TlsCertificate {
  std::string cert_file;  // PEM: the certificate, then its chain
  std::string key_file;   // PEM private key (RSA or ECDSA)
  Mark mark;              // of the list item
  Mark cert_mark;         // of the cert_file value
  Mark key_mark;          // of the key_file value
  bool operator==(const TlsCertificate&) const = default;
};

// Settings both sides of TLS share.
struct TlsProtocolConfig {
  std::string min_version = "TLSv1.2";  // TLSv1.2 | TLSv1.3
  std::string max_version = "TLSv1.3";
  std::string ciphers;       // TLS 1.2 cipher list (OpenSSL syntax); "" = ECDHE with AEAD only
  std::string ciphersuites;  // TLS 1.3 suites; "" = OpenSSL's (AES-GCM, ChaCha20-Poly1305)
  std::string curves;        // key exchange groups; "" = X25519:P-256:P-384
  std::vector<std::string> alpn;  // offered (upstream) or accepted (listener) protocols
  Mark min_mark, max_mark, ciphers_mark, ciphersuites_mark, curves_mark, alpn_mark;
  bool operator==(const TlsProtocolConfig&) const = default;
};

// A listener's `tls` block: TLS termination.
struct TlsConfig {
  enum class ClientCert { kNone, kRequired, kOptional };
  std::vector<TlsCertificate> certificates;  // the first is the default (no SNI match)
  TlsProtocolConfig protocol;  // alpn empty = by listener protocol (http: http/1.1)
  std::string client_ca_file;  // mTLS: verify client certificates against these CAs
  Mark client_ca_mark;
  ClientCert client_cert = ClientCert::kNone;  // kRequired when client_ca_file is set alone
  uint32_t verify_depth = 10;
  std::vector<std::string> allowed_sans;      // client cert must carry one (DNS/URI/email/IP)
  std::vector<std::string> allowed_subjects;  // ... or a subject (RFC 2253) from this list
  bool session_tickets = true;
  Duration session_timeout = std::chrono::hours(1);  // ticket/session lifetime; keys rotate this often
  uint32_t session_cache_size = 20480;              // per worker (TLS 1.2 / ticketless); 0 = off
  Duration handshake_timeout = std::chrono::seconds(10);
  bool watch_certificates = true;  // reload certificate and key files when they change
  Mark mark;  // of the `tls` key
  bool operator==(const TlsConfig&) const = default;
};

// A cluster's `tls` block: TLS toward its endpoints.
struct UpstreamTlsConfig {
  std::string sni;         // "" = the endpoint's DNS name, none for an IP endpoint
  bool verify = true;      // verify the server's chain (and name: sni or the DNS name)
  std::string ca_file;     // "" = the system's trust store
  Mark ca_mark;
  std::string verify_name;  // the name the certificate must carry; "" = sni / DNS name
  std::optional<TlsCertificate> client_certificate;  // mTLS toward the upstream
  TlsProtocolConfig protocol;
  bool session_reuse = true;
  Mark mark;  // of the `tls` key
  bool operator==(const UpstreamTlsConfig&) const = default;
};

// ---- HTTP (L7) listener config -------------------------------------------------------

// A block of config kept as written, for what the loader does not interpret itself (a
// filter's `config:`): its owner parses it with config/node_reader.h, and errors still point
// at FILE:LINE:COL. Mapping keys are unique (the loader reports duplicates).
struct ConfigEntry;
struct ConfigNode {
  enum class Kind { kNull, kScalar, kMap, kList };
  Kind kind = Kind::kNull;
  std::string scalar;
  // How a scalar was written: "" plain, "!" quoted, else its explicit tag
  // ("tag:yaml.org,2002:int"): a quoted "12" is a string, not a number.
  std::string tag;
  std::vector<ConfigEntry> entries;  // kMap, in document order
  std::vector<ConfigNode> items;     // kList
  Mark mark;
  bool operator==(const ConfigNode&) const;
};

struct ConfigEntry {
  std::string key;
  Mark key_mark;
  ConfigNode value;
  bool operator==(const ConfigEntry&) const = default;
};

// Written out (a defaulted comparison of this recursive type crashes clang 14). Marks compare
// equal, as everywhere.
inline bool ConfigNode::operator==(const ConfigNode& o) const {
  return kind == o.kind && scalar == o.scalar && tag == o.tag && entries == o.entries && items == o.items;
}

// One entry of an http listener's `filters:` (the router is implicit and always last). The
// loader checks its shape; the filter registry (filters/) knows the names and parses `config`.
struct HttpFilterConfig {
  std::string name;
  Mark name_mark;
  std::optional<ConfigNode> config;  // absent: no `config:` key
  Mark mark;  // of the list item
  bool operator==(const HttpFilterConfig&) const = default;
};

// routes[].filter_overrides.NAME: a route's change to one of its listener's HTTP filters.
struct FilterOverrideConfig {
  std::string name;  // a filter of the listener's `filters`
  Mark name_mark;
  bool disabled = false;             // {disabled: true}: the filter does not run on this route
  std::optional<ConfigNode> config;  // {config: {...}}: the filter runs with this config instead
  Mark mark;
  bool operator==(const FilterOverrideConfig&) const = default;
};

struct HeaderMatcherConfig {
  enum class Kind { kExact, kPrefix, kRegex, kPresent };
  std::string name;  // lower-cased by the loader
  Kind kind = Kind::kPresent;
  std::string value;  // for exact/prefix/regex
  Mark mark;
  bool operator==(const HeaderMatcherConfig&) const = default;
};

struct RouteMatchConfig {
  enum class Kind { kPrefix, kPath, kRegex };
  Kind kind = Kind::kPrefix;
  std::string value;  // the prefix, exact path or RE2 pattern (full match on the path)
  std::vector<HeaderMatcherConfig> headers;  // all must match
  std::vector<std::string> methods;          // any; empty = all
  Mark mark;
  bool operator==(const RouteMatchConfig&) const = default;
};

// Where ring_hash/maglev take the request's key from. kNone: no key (a random pick).
struct HashOnConfig {
  enum class Kind { kNone, kHeader, kCookie, kSourceIp, kQuery };
  Kind kind = Kind::kNone;
  std::string name;  // header name (lower-cased), cookie name or query parameter name
  Mark mark;
  bool operator==(const HashOnConfig&) const = default;
};

// A route's retry policy. `attempts` = retries after the first try.
struct RetryConfig {
  uint32_t attempts = 1;
  // retry_on (default: connect-failure, reset)
  bool on_connect_failure = true;
  bool on_reset = true;           // upstream closed/reset before the response headers
  bool on_5xx = false;            // any 5xx response, connect failure, reset, per-try timeout
  bool on_gateway_error = false;  // 502/503/504 responses, connect failure, reset, per-try timeout
  bool on_retriable_4xx = false;  // 409
  std::vector<int> statuses;      // integers in retry_on
  Duration per_try_timeout{0};    // 0 = none (the route timeout still bounds the whole request)
  Duration backoff_base = std::chrono::milliseconds(25);   // exponential, full jitter
  Duration backoff_max = std::chrono::milliseconds(250);
  bool retry_non_idempotent = false;  // POST/PATCH/...: false = retried only on connect failure
  uint64_t buffer_limit_bytes = 64 * 1024;  // a request body longer than this is not retried
  Mark mark;
  bool operator==(const RetryConfig&) const = default;
};

struct WeightedClusterConfig {
  std::string cluster;
  uint32_t weight = 1;
  Mark mark;
  bool operator==(const WeightedClusterConfig&) const = default;
};

struct RouteActionConfig {
  std::string cluster;                                 // or weighted_clusters
  std::vector<WeightedClusterConfig> weighted_clusters;
  std::optional<std::string> prefix_rewrite;          // replaces the matched prefix (or path)
  std::optional<std::string> host_rewrite;
  Duration timeout = std::chrono::seconds(15);        // until response headers; 0 = none
  // Overrides the listener's http.stream_idle_timeout on this route (0 = off).
  std::optional<Duration> stream_idle_timeout;
  std::optional<RetryConfig> retry;
  std::optional<HashOnConfig> hash_on;                // overrides the cluster's hash_on
  Mark cluster_mark;
  bool operator==(const RouteActionConfig&) const = default;
};

struct DirectResponseConfig {
  int status = 200;
  std::string body;
  bool operator==(const DirectResponseConfig&) const = default;
};

struct RedirectConfig {
  std::optional<std::string> scheme;          // scheme_redirect
  std::optional<std::string> host;            // host_redirect
  std::optional<std::string> path;            // path_redirect (replaces the whole path)
  std::optional<std::string> prefix_rewrite;  // replaces the matched prefix
  int code = 301;                             // 301, 302, 303, 307, 308
  bool operator==(const RedirectConfig&) const = default;
};

struct HeaderOpsConfig {
  std::vector<std::pair<std::string, std::string>> set;  // names lower-cased
  std::vector<std::pair<std::string, std::string>> add;
  std::vector<std::string> remove;
  bool operator==(const HeaderOpsConfig&) const = default;
};

struct RouteConfig {
  // Optional, unique within the listener: per-route metrics (ferry_route_*) and %ROUTE_NAME%.
  std::string name;
  RouteMatchConfig match;
  std::optional<RouteActionConfig> route;
  std::optional<DirectResponseConfig> direct_response;
  std::optional<RedirectConfig> redirect;
  HeaderOpsConfig request_headers;
  HeaderOpsConfig response_headers;
  std::vector<FilterOverrideConfig> filter_overrides;  // in document order
  Mark mark;
  bool operator==(const RouteConfig&) const = default;
};

struct VirtualHostConfig {
  std::string name;
  std::vector<std::string> domains;  // lower-cased: "api.example.com", "*.example.com", "*"
  std::vector<RouteConfig> routes;
  Mark mark;
  bool operator==(const VirtualHostConfig&) const = default;
};


// HTTP/2 on an HTTP listener (docs/http.md): offered by ALPN on TLS, and h2c by prior
// knowledge (the client preface) on plaintext. The header list limits are the listener's
// max_request_headers_kb and max_headers.
struct Http2Config {
  bool enabled = true;
  uint32_t max_concurrent_streams = 100;
  uint32_t initial_stream_window_size = 1 << 20;
  uint32_t initial_connection_window_size = 4 << 20;
  uint32_t hpack_table_size = 4096;
  uint32_t max_outbound_control_frames = 1000;
  uint32_t max_consecutive_empty_frames = 1;
  uint32_t max_continuations = 8;
  uint32_t max_resets_per_second = 100;
  uint32_t max_resets_burst = 200;
  bool operator==(const Http2Config&) const = default;
};

// One piece of an access-log format, compiled from text like
// "%REQ(:method)% %RESPONSE_CODE%": literal text or a command (docs/observability.md).
struct LogCommand {
  enum class Kind : uint8_t {
    kLiteral,
    kStartTime,            // ISO 8601, UTC, milliseconds
    kDuration,             // ms from the request head to the end of the response
    kResponseDuration,     // ms from the request head to the response head
    kUpstreamServiceTime,  // ms the upstream took to answer with headers
    kResponseCode,
    kResponseFlags,
    kResponseCodeDetails,
    kBytesReceived,  // request body bytes
    kBytesSent,      // response body bytes
    kProtocol,       // HTTP/1.1, HTTP/2
    kUpstreamHost,
    kUpstreamCluster,
    kDownstreamRemoteAddress,
    kDownstreamRemoteAddressWithoutPort,
    kDownstreamLocalAddress,
    kRouteName,
    kListenerName,
    kTraceId,
    kReq,      // %REQ(name?alternative)%, :method :path :authority :scheme included
    kResp,     // %RESP(name)%
    kTrailer,  // %TRAILER(name)% (response trailers)
  };
  Kind kind = Kind::kLiteral;
  std::string text;  // the literal, or the header name (lower case)
  std::string alt;   // %REQ(a?b)%: b when a is absent
  uint32_t max_len = 0;  // %REQ(a):N%: at most N bytes; 0 = whole
  bool operator==(const LogCommand&) const = default;
};
using LogFormat = std::vector<LogCommand>;

// listeners[].http.access_log[]: one log destination.
struct AccessLogConfig {
  std::string path;  // a file (appended; reopened on SIGUSR1), or /dev/stdout, /dev/stderr
  enum class Format { kText, kJson };
  Format format = Format::kText;
  LogFormat text;                                         // format text: the line (no newline)
  std::vector<std::pair<std::string, LogFormat>> json;    // format json: key -> value, in order
  // Only log responses with min_status <= status <= max_status (0 = the connection ended
  // without a response), only flagged ones when flagged_only; then a sample_rate share.
  uint32_t min_status = 0;
  uint32_t max_status = 999;
  bool flagged_only = false;
  double sample_rate = 1.0;
  Mark mark;
  bool operator==(const AccessLogConfig&) const = default;
};

// `http.tracing.otlp`: where spans go (outside TracingConfig: clang wants a nested struct's
// default member initializers complete before std::optional of it is used in the class).
struct TracingOtlpConfig {
  std::string cluster;  // the collector (OTLP/HTTP), a cluster in `clusters`
  Mark cluster_mark;
  std::string path = "/v1/traces";
  Duration timeout = std::chrono::seconds(5);
  Duration flush_interval = std::chrono::seconds(1);
  uint32_t max_batch = 512;   // spans per POST
  uint32_t max_queue = 4096;  // spans waiting per worker; past it new spans are dropped
  bool operator==(const TracingOtlpConfig&) const = default;
};

// W3C Trace Context propagation and OTLP span export on an HTTP listener (`http.tracing`).
struct TracingConfig {
  double sample_rate = 1.0;  // fraction of new traces that are sampled (0..1)
  std::string service_name = "ferry";
  using Otlp = TracingOtlpConfig;
  std::optional<Otlp> otlp;  // none: headers only, no export
  bool operator==(const TracingConfig&) const = default;
};

struct HttpConfig {
  Duration idle_timeout = std::chrono::seconds(60);            // keep-alive idle; 0 = off
  Duration request_headers_timeout = std::chrono::seconds(10);  // whole request head; 0 = off
  // A stream with no bytes either way (request in, response out) for this long ends: 408 SI
  // before the response started, a reset after. 0 = off.
  Duration stream_idle_timeout = std::chrono::seconds(300);
  // The request (head end to last body byte) must arrive within this: 408 RQT. 0 = off.
  Duration request_timeout{0};
  // A connection Ferry closes after a response (connection: close, an error, a drain) sends
  // what it buffered first; a client that takes none of it for this long is reset. 0 = off.
  Duration close_flush_timeout = std::chrono::seconds(10);
  uint32_t max_request_headers_kb = 60;                        // past it: 431
  uint32_t max_headers = 100;                                  // past it: 431
  uint32_t xff_trusted_hops = 0;
  // x-forwarded-client-cert (the verified client certificate of a TLS listener). On a
  // connection with a verified client certificate: sanitize (drop the client's header),
  // sanitize_set (drop it, set Ferry's element), append_forward (append Ferry's element to
  // the client's), forward_only (pass the client's on untouched). On any other connection
  // every mode drops the header, except always_forward_only, which passes it on.
  enum class ForwardClientCert { kSanitize, kSanitizeSet, kAppendForward, kForwardOnly, kAlwaysForwardOnly };
  ForwardClientCert forward_client_cert = ForwardClientCert::kSanitize;
  bool merge_slashes = false;
  uint32_t max_requests_per_connection = 0;  // downstream keep-alive cap; 0 = unlimited
  Http2Config http2;
  // GET/HEAD on this path (query ignored) is answered by Ferry: 200 "ok", 503 "draining" while
  // the process drains or after POST /healthcheck/fail. "" = off.
  std::string health_path;
  // Adds x-ferry-flags (the response flag, e.g. "UF") to every flagged response. Off by
  // default: it tells clients about the inside.
  bool response_flags_header = false;
  std::vector<AccessLogConfig> access_log;
  std::optional<TracingConfig> tracing;  // none: traceparent passes through untouched
  std::vector<HttpFilterConfig> filters;
  std::vector<VirtualHostConfig> virtual_hosts;
  Mark mark;  // of the `http` key
  bool operator==(const HttpConfig&) const = default;
};

// SNI passthrough: a tcp listener picks the cluster by the ClientHello's server name.
struct SniRouteConfig {
  std::vector<std::string> server_names;  // lower-cased; exact or "*.suffix"
  std::string cluster;
  Mark cluster_mark;
  Mark mark;
  bool operator==(const SniRouteConfig&) const = default;
};

struct TcpProxyConfig {
  std::string cluster;  // with sni_routes: the cluster when no route matches ("" = close)
  Mark cluster_mark;
  std::vector<SniRouteConfig> sni_routes;  // non-empty: a TLS inspector reads the ClientHello
  Duration client_hello_timeout = std::chrono::seconds(5);
  Duration idle_timeout = std::chrono::hours(1);  // 0 = off
  // Forward with splice(2) (zero copy) when both sides are plain TCP.
  bool splice = true;
  bool operator==(const TcpProxyConfig&) const = default;
};

struct ListenerConfig {
  std::string name;
  Mark name_mark;
  Address address;
  bool proxy_protocol = false;    // expect a PROXY v1/v2 header from the client
  Duration proxy_protocol_timeout = std::chrono::seconds(5);
  uint64_t max_connections = 0;   // 0 = unlimited
  uint64_t max_connections_per_ip = 0;  // per client IP (the socket's peer); 0 = unlimited
  uint32_t buffer_limit_kb = 1024;  // per-connection write buffer high watermark
  std::optional<TlsConfig> tls;
  std::optional<HttpConfig> http;
  std::optional<TcpProxyConfig> tcp;
  Mark mark;  // of the list item
  bool operator==(const ListenerConfig&) const = default;
};

enum class LbPolicy { kRoundRobin, kLeastRequest, kRandom, kRingHash, kMaglev };

struct EndpointConfig {
  Address address;       // host is empty when `hostname` is set
  std::string hostname;  // a DNS name (lower-cased), resolved by the cluster; empty = an IP
  uint32_t weight = 1;
  uint32_t priority = 0;  // 0 serves first; traffic spills to higher levels as health drops
  Mark mark;
  bool operator==(const EndpointConfig&) const = default;
};

struct HealthCheckConfig {
  enum class Type { kHttp, kTcp, kGrpc };
  Type type = Type::kHttp;
  std::string grpc_service;  // grpc: the service asked about (grpc.health.v1); "" = the server
  std::string path;  // http: request path (required for http)
  std::string host;  // http: Host header; empty = the cluster name
  std::vector<std::pair<int, int>> expected_statuses{{200, 200}};  // inclusive ranges
  std::string send;    // tcp: bytes sent after connecting; empty = connect only
  std::string expect;  // tcp: bytes the reply must contain; empty = none
  Duration interval = std::chrono::seconds(5);
  Duration jitter{0};  // each interval gets a random extra 0..jitter
  Duration timeout = std::chrono::seconds(1);
  uint32_t healthy_threshold = 2;    // consecutive passes to mark a failed host healthy
  uint32_t unhealthy_threshold = 3;  // consecutive failures to mark a healthy host unhealthy
  Mark mark;
  bool operator==(const HealthCheckConfig&) const = default;
};

struct OutlierDetectionConfig {
  uint32_t consecutive_5xx = 5;              // 0 = off
  uint32_t consecutive_gateway_failure = 5;  // 502/503/504, connect failure, reset, timeout; 0 = off
  Duration base_ejection_time = std::chrono::seconds(30);  // times the number of ejections
  Duration max_ejection_time = std::chrono::seconds(300);
  uint32_t max_ejection_percent = 10;  // at least one host may always be ejected
  Mark mark;
  bool operator==(const OutlierDetectionConfig&) const = default;
};

struct RetryBudgetConfig {
  double percent = 20;                  // active retries <= percent of active requests
  uint32_t min_retry_concurrency = 3;   // ... or this many, whichever is larger
  bool operator==(const RetryBudgetConfig&) const = default;
};

// Process-wide limits per cluster; overflow is answered 503 UO at once.
struct CircuitBreakersConfig {
  uint32_t max_connections = 1024;
  uint32_t max_pending_requests = 1024;  // requests waiting for a connection
  uint32_t max_requests = 1024;          // requests in flight
  uint32_t max_retries = 3;              // retries in flight (ignored when retry_budget is set)
  std::optional<RetryBudgetConfig> retry_budget;
  Mark mark;
  bool operator==(const CircuitBreakersConfig&) const = default;
};

struct ClusterConfig {
  std::string name;
  Mark name_mark;
  std::vector<EndpointConfig> endpoints;
  LbPolicy lb_policy = LbPolicy::kRoundRobin;
  HashOnConfig hash_on;                 // ring_hash / maglev key
  uint32_t ring_size = 1024;            // ring_hash: minimum ring entries
  uint32_t least_request_choices = 2;   // least_request: hosts compared per pick
  Duration slow_start{0};               // weight ramp for new/recovered hosts; 0 = off
  uint32_t panic_threshold = 0;         // percent healthy below which all hosts are used; 0 = off
  Duration dns_refresh = std::chrono::seconds(5);
  std::vector<Address> dns_resolvers;   // empty = the system's (/etc/resolv.conf)
  std::optional<HealthCheckConfig> health_check;
  std::optional<OutlierDetectionConfig> outlier_detection;
  CircuitBreakersConfig circuit_breakers;
  Duration connect_timeout = std::chrono::seconds(1);
  int send_proxy_protocol = 0;  // 0 = off, 1 = v1, 2 = v2
  std::optional<UpstreamTlsConfig> tls;
  std::string protocol = "http1";
  // Upstream HTTP connection pool (per worker, per host).
  uint32_t max_requests_per_connection = 0;  // 0 = unlimited
  uint32_t max_idle_connections = 1024;      // idle keep-alive connections kept per host per worker
  Duration idle_timeout = std::chrono::seconds(60);  // a pooled connection idle this long is closed
  Mark mark;
  bool operator==(const ClusterConfig&) const = default;
};

struct Config {
  std::string path;      // the -c file as given
  std::string dir;       // its directory, for relative paths
  std::string yaml;      // the raw text; GET /config renders it (redacted) when asked (render.h)
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
