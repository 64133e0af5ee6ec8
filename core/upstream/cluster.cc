#include "core/upstream/cluster.h"

#include "core/net/socket_util.h"

namespace ferry::core::upstream {

Cluster::Cluster(const config::ClusterConfig& cfg, size_t index, StatsStore& stats)
    : name_(cfg.name),
      index_(index),
      connect_timeout_(cfg.connect_timeout),
      send_proxy_protocol_(cfg.send_proxy_protocol),
      max_requests_per_connection_(cfg.max_requests_per_connection),
      max_idle_connections_(cfg.max_idle_connections),
      pool_idle_timeout_(cfg.idle_timeout) {
  const std::vector<std::pair<std::string, std::string>> labels = {{"cluster", name_}};
  stats_.cx_total = stats.counter("ferry_upstream_connections_total", labels, "Upstream connections opened.");
  stats_.cx_active = stats.gauge("ferry_upstream_connections_active", labels, "Open upstream connections.");
  stats_.connect_failures = stats.counter("ferry_upstream_connect_failures_total", labels,
                                          "Upstream connects refused, failed or timed out.");
  stats_.bytes_sent = stats.counter("ferry_upstream_bytes_sent_total", labels, "Bytes sent to upstreams.");
  stats_.bytes_received =
      stats.counter("ferry_upstream_bytes_received_total", labels, "Bytes received from upstreams.");
  // No active health checking yet: every endpoint counts as healthy. Set on the main thread's
  // shard (this runs there, at snapshot build).
  StatHandle healthy = stats.gauge("ferry_cluster_endpoints_healthy", labels, "Healthy endpoints per cluster.");
  stats.shard(0).add(healthy, static_cast<int64_t>(cfg.endpoints.size()) - stats.shard(0).get(healthy));
  for (int cls = 1; cls <= 5; ++cls)
    stats_.rq_by_class[cls] = stats.counter("ferry_upstream_requests_total",
                                            {{"cluster", name_}, {"code", std::to_string(cls) + "xx"}},
                                            "Upstream HTTP responses by status class.");
  for (const auto& ep : cfg.endpoints) {
    Host h;
    net::makeSockaddr(ep.address.host, ep.address.port, &h.addr);
    h.address = net::formatSockaddr(h.addr);
    h.weight = ep.weight == 0 ? 1 : ep.weight;
    const std::vector<std::pair<std::string, std::string>> hl = {{"cluster", name_}, {"endpoint", h.address}};
    h.cx_total = stats.counter("ferry_upstream_endpoint_connections_total", hl, "Connections per endpoint.");
    h.cx_active = stats.gauge("ferry_upstream_endpoint_connections_active", hl, "Open connections per endpoint.");
    h.connect_failures =
        stats.counter("ferry_upstream_endpoint_connect_failures_total", hl, "Connect failures per endpoint.");
    hosts_.push_back(h);
  }
}

size_t ClusterLb::pickRoundRobin(const Cluster& cluster) {
  const auto& hosts = cluster.hosts();
  if (hosts.size() == 1) return 0;
  auto& cur = rr_[cluster.index()];
  if (cur.size() != hosts.size()) cur.assign(hosts.size(), 0);
  int64_t total = 0;
  size_t best = 0;
  for (size_t i = 0; i < hosts.size(); ++i) {
    cur[i] += hosts[i].weight;
    total += hosts[i].weight;
    if (cur[i] > cur[best]) best = i;
  }
  cur[best] -= total;
  return best;
}

}  // namespace ferry::core::upstream
