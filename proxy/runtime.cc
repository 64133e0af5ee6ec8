#include "proxy/runtime.h"

#include <chrono>
#include <cstdio>

#include "filters/registry.h"

namespace ferry::proxy {
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

std::shared_ptr<const core::upstream::Cluster> Snapshot::cluster(const std::string& name) const {
  for (const auto& c : clusters)
    if (c->name() == name) return c;
  return nullptr;
}

std::shared_ptr<const Snapshot> buildSnapshot(config::Config cfg, uint64_t version, core::StatsStore& stats,
                                              const filters::Registry& registry, std::string* error) {
  auto snap = std::make_shared<Snapshot>();
  snap->version = version;
  snap->hash = fnv1aHex(cfg.yaml);
  snap->loaded_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  snap->connections = std::make_shared<core::net::ProcessConnections>();
  snap->buffered_bytes =
      stats.gauge("ferry_buffered_bytes", {}, "Bytes held in connection write buffers.");
  for (size_t i = 0; i < cfg.clusters.size(); ++i)
    snap->clusters.push_back(std::make_shared<core::upstream::Cluster>(cfg.clusters[i], i, stats));
  const core::router::ClusterResolver resolve = [s = snap.get()](const std::string& name) { return s->cluster(name); };

  for (const auto& l : cfg.listeners) {
    auto spec = std::make_shared<core::net::ListenerSpec>();
    spec->cfg = l;
    spec->state = std::make_shared<core::net::ListenerState>(l.name, stats);
    spec->process = snap->connections;
    spec->process_max_connections = cfg.runtime.max_connections;
    const char* terminal = l.tcp ? "tcp_proxy" : l.http ? "http_connection_manager" : nullptr;
    const auto* builder = terminal ? registry.network(terminal) : nullptr;
    if (!builder) {
      *error = "listener '" + l.name + "' has no supported protocol";
      return nullptr;
    }
    filters::BuildContext bctx{l, resolve, stats, registry};
    auto factory = (*builder)(bctx, error);
    if (!factory) return nullptr;
    spec->filter_factories.push_back(std::move(factory));
    snap->listeners.push_back(std::move(spec));
  }
  snap->config = std::move(cfg);
  return snap;
}

}  // namespace ferry::proxy
