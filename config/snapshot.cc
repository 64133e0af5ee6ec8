#include "config/snapshot.h"

#include <chrono>
#include <cstdio>

#include "filters/registry.h"

namespace ferry::config {
namespace {

std::string fnv1aHex(const std::string& text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

const core::upstream::Cluster* Snapshot::cluster(const std::string& name) const {
  for (const auto& c : clusters)
    if (c->name() == name) return c.get();
  return nullptr;
}

std::shared_ptr<const core::upstream::Cluster> Snapshot::clusterPtr(const std::string& name) const {
  for (const auto& c : clusters)
    if (c->name() == name) return c;
  return nullptr;
}

std::shared_ptr<const Snapshot> buildSnapshot(Config cfg, uint64_t version, core::StatsStore& stats,
                                              const filters::Registry& registry, std::string* error) {
  auto snap = std::make_shared<Snapshot>();
  snap->version = version;
  snap->hash = fnv1aHex(cfg.yaml);
  snap->loaded_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  snap->global_active = std::make_shared<std::atomic<int64_t>>(0);
  snap->buffered_bytes =
      stats.gauge("ferry_buffered_bytes", {}, "Bytes held in connection write buffers.");
  for (size_t i = 0; i < cfg.clusters.size(); ++i)
    snap->clusters.push_back(std::make_shared<core::upstream::Cluster>(cfg.clusters[i], i, stats));

  for (const auto& l : cfg.listeners) {
    auto info = std::make_shared<ListenerInfo>();
    info->cfg = l;
    const std::vector<std::pair<std::string, std::string>> labels = {{"listener", l.name}};
    info->stats.cx_total =
        stats.counter("ferry_downstream_connections_total", labels, "Downstream connections accepted.");
    info->stats.cx_active =
        stats.gauge("ferry_downstream_connections_active", labels, "Open downstream connections.");
    info->stats.cx_overflow = stats.counter("ferry_downstream_connections_overflow_total", labels,
                                            "Connections refused by max_connections.");
    info->stats.proxy_protocol_errors = stats.counter("ferry_downstream_proxy_protocol_errors_total", labels,
                                                      "Connections closed for a missing or bad PROXY header.");
    info->stats.bytes_received =
        stats.counter("ferry_downstream_bytes_received_total", labels, "Bytes received from clients.");
    info->stats.bytes_sent = stats.counter("ferry_downstream_bytes_sent_total", labels, "Bytes sent to clients.");
    info->active = std::make_shared<std::atomic<int64_t>>(0);
    const char* terminal = l.tcp ? "tcp_proxy" : l.http ? "http_connection_manager" : nullptr;
    const auto* builder = terminal ? registry.network(terminal) : nullptr;
    if (!builder) {
      *error = "listener '" + l.name + "' has no supported protocol";
      return nullptr;
    }
    filters::BuildContext bctx{l, *snap, stats, registry};
    auto factory = (*builder)(bctx, error);
    if (!factory) return nullptr;
    info->filter_factories.push_back(std::move(factory));
    snap->listeners.push_back(std::move(info));
  }
  snap->config = std::move(cfg);
  return snap;
}

}  // namespace ferry::config
