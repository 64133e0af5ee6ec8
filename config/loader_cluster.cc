// The `clusters` section: endpoints (IP or DNS name), load balancing, health checks, outlier
// detection and circuit breakers. Same conventions as loader.cc: every problem is reported
// with its position, nothing throws, and keys the build cannot honour yet are refused.
#include <algorithm>
#include <array>
#include <string>
#include <utility>
#include <vector>

#include "config/loader_internal.h"
#include "config/values.h"

namespace ferry::config::internal {
namespace {

class ClusterParser {
 public:
  explicit ClusterParser(Parser& p) : p_(p) {}

  void cluster(const Entry& item, std::vector<ClusterConfig>& out) {
    if (!p_.isMap(item)) return;
    constexpr std::string_view kWhere = "in cluster";
    Entries f = p_.fields(item.value, kWhere,
                       {"name", "endpoints", "lb_policy", "hash_on", "ring_size", "least_request",
                        "slow_start", "panic_threshold", "dns_refresh", "dns_resolvers",
                        "health_check", "outlier_detection", "circuit_breakers",
                        "connect_timeout", "protocol", "send_proxy_protocol",
                        "max_requests_per_connection", "max_idle_connections", "idle_timeout", "tls"});
    ClusterConfig c;
    c.mark = item.value_mark;
    if (auto* x = p_.need(f, "name", item, kWhere)) {
      c.name_mark = x->value_mark;
      if (auto v = p_.getName(*x, "cluster")) c.name = *v;
    }
    if (auto* x = p_.need(f, "endpoints", item, kWhere); x != nullptr && p_.isList(*x)) {
      if (x->value.size() == 0) p_.error(x->value_mark, "'endpoints' must not be empty");
      for (const YAML::Node& node : x->value) endpoint(p_.itemEntry(node, x->value_mark, "endpoint"), c);
    }
    if (auto* x = f.get("lb_policy")) {
      static constexpr std::array<std::pair<std::string_view, LbPolicy>, 5> kPolicies{{
          {"round_robin", LbPolicy::kRoundRobin},
          {"least_request", LbPolicy::kLeastRequest},
          {"random", LbPolicy::kRandom},
          {"ring_hash", LbPolicy::kRingHash},
          {"maglev", LbPolicy::kMaglev},
      }};
      if (auto v = p_.getEnum(*x, {"round_robin", "least_request", "random", "ring_hash", "maglev"}))
        for (const auto& [name, policy] : kPolicies)
          if (name == *v) c.lb_policy = policy;
    }
    if (auto* x = f.get("hash_on")) c.hash_on = parseHashOn(p_, *x);
    if (auto* x = f.get("ring_size"))
      if (auto v = p_.getUint(*x, 1, 8388608)) c.ring_size = static_cast<uint32_t>(*v);
    if (auto* x = f.get("least_request"); x != nullptr && p_.isMap(*x, true)) {
      Entries lf = p_.fields(x->value, "in least_request", {"choices"});
      if (auto* y = lf.get("choices"))
        if (auto v = p_.getUint(*y, 2, 10)) c.least_request_choices = static_cast<uint32_t>(*v);
    }
    if (auto* x = f.get("tls")) parseUpstreamTls(p_, *x, c.tls.emplace());
    if (auto* x = f.get("slow_start"))
      if (auto v = p_.getDuration(*x, false)) c.slow_start = *v;
    if (auto* x = f.get("panic_threshold"))
      if (auto v = p_.getUint(*x, 0, 100)) c.panic_threshold = static_cast<uint32_t>(*v);
    if (auto* x = f.get("dns_refresh"))
      if (auto v = p_.getDuration(*x, true)) c.dns_refresh = *v;
    if (auto* x = f.get("dns_resolvers"); x != nullptr && !x->value.IsNull() && p_.isList(*x)) {
      for (const YAML::Node& node : x->value) {
        Entry r = p_.itemEntry(node, x->value_mark, "dns_resolvers");
        auto s = p_.getString(r);
        if (!s) continue;
        std::string why;
        auto a = parseAddressDefaultPort(*s, 53, &why);
        if (a && a->port == 0) why = "port must be 1-65535 here", a.reset();
        if (!a) {
          p_.error(r.value_mark, "bad resolver address " + quote(*s) + ": " + why +
                                  " (use an IP address, optionally with :port; port 53 if left out)");
          continue;
        }
        a->mark = r.value_mark;
        c.dns_resolvers.push_back(*a);
      }
    }
    if (auto* x = f.get("health_check")) healthCheck(*x, c.health_check.emplace());
    if (auto* x = f.get("outlier_detection")) outlierDetection(*x, c.outlier_detection.emplace());
    if (auto* x = f.get("circuit_breakers")) circuitBreakers(*x, c.circuit_breakers);
    if (auto* x = f.get("connect_timeout"))
      if (auto v = p_.getDuration(*x, false)) c.connect_timeout = *v;
    if (auto* x = f.get("protocol"))
      if (auto v = p_.getEnum(*x, {"http1", "http2"})) {
        c.protocol = *v;
      }
    // HTTP/2 over TLS is negotiated by ALPN: h2 unless the cluster names its protocols.
    if (c.protocol == "http2" && c.tls && c.tls->protocol.alpn.empty()) c.tls->protocol.alpn = {"h2"};
    if (auto* x = f.get("send_proxy_protocol"))
      if (auto v = p_.getEnum(*x, {"v1", "v2"})) c.send_proxy_protocol = *v == "v1" ? 1 : 2;
    if (auto* x = f.get("max_requests_per_connection"))
      if (auto v = p_.getUint(*x, 0, UINT32_MAX))
        c.max_requests_per_connection = static_cast<uint32_t>(*v);
    if (auto* x = f.get("max_idle_connections"))
      if (auto v = p_.getUint(*x, 0, 100000)) c.max_idle_connections = static_cast<uint32_t>(*v);
    if (auto* x = f.get("idle_timeout"))
      if (auto v = p_.getDuration(*x, false)) c.idle_timeout = *v;
    out.push_back(std::move(c));
  }

  // {address, weight, priority}. The address is an IP literal or a DNS name with a port.
  void endpoint(const Entry& ep, ClusterConfig& c) {
    if (!p_.isMap(ep)) return;
    Entries ef = p_.fields(ep.value, "in endpoint", {"address", "weight", "priority"});
    EndpointConfig& out = c.endpoints.emplace_back();
    out.mark = ep.value_mark;
    if (auto* y = p_.need(ef, "address", ep, "in endpoint"))
      if (auto s = p_.getString(*y)) {
        std::string why;
        auto a = parseEndpointAddress(*s, &out.hostname, &why);
        if (a && a->port == 0) why = "port must be 1-65535 here", a.reset();
        if (a) {
          a->mark = y->value_mark;
          out.address = *a;
        } else {
          out.hostname.clear();
          p_.error(y->value_mark, "bad address " + quote(*s) + ": " + why);
        }
      }
    if (auto* y = ef.get("weight"))
      if (auto v = p_.getUint(*y, 1, 1000000)) out.weight = static_cast<uint32_t>(*v);
    if (auto* y = ef.get("priority"))
      if (auto v = p_.getUint(*y, 0, 127)) out.priority = static_cast<uint32_t>(*v);
  }

  // health_check: http (default) or tcp. Keys of the other type are errors at the key.
  void healthCheck(const Entry& e, HealthCheckConfig& h) {
    h.mark = e.value_mark;
    if (!p_.isMap(e)) return;
    constexpr std::string_view kWhere = "in health_check";
    Entries f = p_.fields(e.value, kWhere,
                       {"type", "path", "host", "expected_statuses", "send", "expect", "service", "interval",
                        "jitter", "timeout", "healthy_threshold", "unhealthy_threshold"});
    std::optional<std::string> type = "http";
    if (auto* x = f.get("type")) type = p_.getEnum(*x, {"http", "tcp", "grpc"});
    if (type)
      h.type = *type == "tcp"    ? HealthCheckConfig::Type::kTcp
               : *type == "grpc" ? HealthCheckConfig::Type::kGrpc
                                 : HealthCheckConfig::Type::kHttp;
    if (auto* x = f.get("service")) {
      if (type && *type != "grpc") {
        p_.error(x->key_mark, "'service' is only for grpc health checks (this one has type " + *type + ")");
      } else if (auto v = p_.getString(*x)) {
        h.grpc_service = *v;
      }
    }
    // Keys that only the other type takes (unchecked when the type itself is bad).
    auto foreign = [&](std::string_view key, std::string_view owner) {
      const Entry* x = f.get(key);
      if (x != nullptr && type && *type != owner)
        p_.error(x->key_mark, quote(key) + " is only for " + std::string(owner) +
                               " health checks (this one has type " + *type + ")");
      return x != nullptr && type && *type == owner ? x : nullptr;
    };
    if (type && *type == "http" && f.get("path") == nullptr)
      p_.error(e.value_mark, "missing required key 'path' in health_check (an http check needs it)");
    if (auto* x = foreign("path", "http"))
      if (auto v = p_.getString(*x)) {
        bool text_ok = std::all_of(v->begin(), v->end(), [](char ch) {
          auto u = static_cast<unsigned char>(ch);
          return u > 0x20 && u < 0x7f && ch != '#';
        });
        if (v->front() != '/')
          p_.error(x->value_mark, "'path' must start with '/', got " + quote(*v));
        else if (!text_ok)
          p_.error(x->value_mark, "'path' must not contain spaces, control characters, non-ASCII "
                               "bytes (percent-encode them) or '#'");
        else
          h.path = *v;
      }
    const Entry* host = f.get("host");
    if (host != nullptr && type && *type == "tcp") {
      p_.error(host->key_mark, "'host' is only for http and grpc health checks (this one has type tcp)");
      host = nullptr;
    }
    if (auto* x = host)
      if (auto v = p_.getString(*x)) {
        if (isHostAndPort(*v))
          h.host = *v;
        else
          p_.error(x->value_mark, "bad host " + quote(*v) +
                                   " (use a host name or IP address, optionally with :port)");
      }
    if (auto* x = foreign("expected_statuses", "http"); x != nullptr && p_.isList(*x)) {
      if (x->value.size() == 0) p_.error(x->value_mark, "'expected_statuses' must not be empty");
      h.expected_statuses.clear();
      for (const YAML::Node& node : x->value)
        if (auto r = statusRange(p_.itemEntry(node, x->value_mark, "expected_statuses")))
          h.expected_statuses.push_back(*r);
    }
    if (auto* x = foreign("send", "tcp"))
      if (auto v = p_.getString(*x)) h.send = *v;
    if (auto* x = foreign("expect", "tcp"))
      if (auto v = p_.getString(*x)) h.expect = *v;
    if (auto* x = f.get("interval"))
      if (auto v = p_.getDuration(*x, true)) h.interval = *v;
    if (auto* x = f.get("jitter"))
      if (auto v = p_.getDuration(*x, false)) h.jitter = *v;
    if (auto* x = f.get("timeout"))
      if (auto v = p_.getDuration(*x, true)) h.timeout = *v;
    if (auto* x = f.get("healthy_threshold"))
      if (auto v = p_.getUint(*x, 1, 1000)) h.healthy_threshold = static_cast<uint32_t>(*v);
    if (auto* x = f.get("unhealthy_threshold"))
      if (auto v = p_.getUint(*x, 1, 1000)) h.unhealthy_threshold = static_cast<uint32_t>(*v);
  }

  // One expected status: an integer 100-599, or a "LOW-HIGH" range string (inclusive).
  std::optional<std::pair<int, int>> statusRange(const Entry& e) {
    if (e.value.IsScalar() && e.value.Scalar().find('-') != std::string::npos &&
        !e.value.Scalar().starts_with('-')) {
      const std::string& s = e.value.Scalar();
      size_t dash = s.find('-');
      auto num = [](std::string_view d) -> int {
        if (d.empty() || d.size() > 3 || d.find_first_not_of("0123456789") != std::string::npos)
          return -1;
        return std::stoi(std::string(d));
      };
      int lo = num(std::string_view(s).substr(0, dash));
      int hi = num(std::string_view(s).substr(dash + 1));
      if (lo < 100 || hi > 599 || lo > hi) {
        p_.error(e.value_mark, "bad status range " + quote(s) +
                                " (use LOW-HIGH with 100 <= LOW <= HIGH <= 599, e.g. \"200-299\")");
        return std::nullopt;
      }
      return std::pair{lo, hi};
    }
    if (!e.value.IsScalar()) {
      p_.typeError(e, "a status code or a \"LOW-HIGH\" range");
      return std::nullopt;
    }
    auto v = p_.getUint(e, 100, 599);
    if (!v) return std::nullopt;
    return std::pair{static_cast<int>(*v), static_cast<int>(*v)};
  }

  // outlier_detection: present (even `{}`) = on, with defaults for the keys left out.
  void outlierDetection(const Entry& e, OutlierDetectionConfig& o) {
    o.mark = e.value_mark;
    if (!p_.isMap(e, true)) return;
    Entries f = p_.fields(e.value, "in outlier_detection",
                       {"consecutive_5xx", "consecutive_gateway_failure", "base_ejection_time",
                        "max_ejection_time", "max_ejection_percent"});
    if (auto* x = f.get("consecutive_5xx"))
      if (auto v = p_.getUint(*x, 0, 1000)) o.consecutive_5xx = static_cast<uint32_t>(*v);
    if (auto* x = f.get("consecutive_gateway_failure"))
      if (auto v = p_.getUint(*x, 0, 1000)) o.consecutive_gateway_failure = static_cast<uint32_t>(*v);
    bool times_ok = true;
    const Entry* base = f.get("base_ejection_time");
    const Entry* max = f.get("max_ejection_time");
    if (base != nullptr) {
      auto v = p_.getDuration(*base, true);
      times_ok &= v.has_value();
      if (v) o.base_ejection_time = *v;
    }
    if (max != nullptr) {
      auto v = p_.getDuration(*max, true);
      times_ok &= v.has_value();
      if (v) o.max_ejection_time = *v;
    }
    if (times_ok && o.max_ejection_time < o.base_ejection_time) {
      const Entry* at = max != nullptr ? max : base;
      p_.error(at->value_mark, "'max_ejection_time' (" + formatDuration(o.max_ejection_time) +
                                ") must not be less than 'base_ejection_time' (" +
                                formatDuration(o.base_ejection_time) + ")");
    }
    if (auto* x = f.get("max_ejection_percent"))
      if (auto v = p_.getUint(*x, 0, 100)) o.max_ejection_percent = static_cast<uint32_t>(*v);
  }

  void circuitBreakers(const Entry& e, CircuitBreakersConfig& cb) {
    cb.mark = e.value_mark;
    if (!p_.isMap(e, true)) return;
    Entries f = p_.fields(e.value, "in circuit_breakers",
                       {"max_connections", "max_pending_requests", "max_requests", "max_retries",
                        "retry_budget"});
    constexpr uint64_t kMax = 10000000;
    if (auto* x = f.get("max_connections"))
      if (auto v = p_.getUint(*x, 0, kMax)) cb.max_connections = static_cast<uint32_t>(*v);
    if (auto* x = f.get("max_pending_requests"))
      if (auto v = p_.getUint(*x, 0, kMax)) cb.max_pending_requests = static_cast<uint32_t>(*v);
    if (auto* x = f.get("max_requests"))
      if (auto v = p_.getUint(*x, 0, kMax)) cb.max_requests = static_cast<uint32_t>(*v);
    if (auto* x = f.get("max_retries"))
      if (auto v = p_.getUint(*x, 0, kMax)) cb.max_retries = static_cast<uint32_t>(*v);
    if (auto* x = f.get("retry_budget"); x != nullptr && p_.isMap(*x, true)) {
      RetryBudgetConfig& b = cb.retry_budget.emplace();
      Entries bf = p_.fields(x->value, "in retry_budget", {"percent", "min_retry_concurrency"});
      if (auto* y = bf.get("percent"))
        if (auto v = p_.getNumber(*y, 0, 100)) b.percent = *v;
      if (auto* y = bf.get("min_retry_concurrency"))
        if (auto v = p_.getUint(*y, 0, 1000000)) b.min_retry_concurrency = static_cast<uint32_t>(*v);
    }
  }

 private:
  Parser& p_;
};

}  // namespace

void parseCluster(Parser& p, const Entry& item, std::vector<ClusterConfig>& out) {
  ClusterParser(p).cluster(item, out);
}

}  // namespace ferry::config::internal
