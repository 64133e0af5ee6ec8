#include "proxy/runtime.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/net/proxy_protocol.h"
#include "core/upstream/cluster_manager.h"
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

Runtime::Runtime(boost::asio::io_context& io, core::StatsStore& stats, const filters::Registry& registry,
                 size_t workers)
    : stats_(stats),
      registry_(registry),
      workers_(workers),
      clusters_(std::make_unique<core::upstream::ClusterManager>(io, stats)),
      buffered_bytes_(stats.gauge("ferry_buffered_bytes", {}, "Bytes held in connection write buffers.")) {}

Runtime::~Runtime() = default;

std::shared_ptr<const Snapshot> Runtime::build(config::Config cfg, std::string* error) {
  auto snap = std::make_shared<Snapshot>();
  snap->version = ++versions_;
  snap->hash = fnv1aHex(cfg.yaml);
  snap->loaded_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  for (const auto& c : cfg.clusters) snap->clusters.push_back(clusters_->addOrUpdate(c));
  const core::router::ClusterResolver resolve = [s = snap.get()](const std::string& name) { return s->cluster(name); };

  for (const auto& l : cfg.listeners) {
    auto& state = listeners_[l.name];
    if (!state) state = std::make_shared<core::net::ListenerState>(l.name, stats_);
    auto spec = std::make_shared<core::net::ListenerSpec>();
    spec->cfg = l;
    spec->state = state;
    spec->process = connections_;
    spec->process_max_connections = cfg.runtime.max_connections;
    if (l.proxy_protocol) {
      spec->listener_filters.push_back(core::net::proxyProtocolFilter(l.proxy_protocol_timeout));
      spec->listener_filter_timeout = std::max(spec->listener_filter_timeout, spec->listener_filters.back().timeout);
    }
    spec->transport = core::net::plainTransportFactory();
    const char* terminal = l.tcp ? "tcp_proxy" : l.http ? "http_connection_manager" : nullptr;
    const auto* builder = terminal ? registry_.network(terminal) : nullptr;
    if (!builder) {
      *error = "listener '" + l.name + "' has no supported protocol";
      return nullptr;
    }
    filters::BuildContext bctx{l, *state, workers_, spec->worker_setup, resolve, stats_, registry_};
    auto factory = (*builder)(bctx, error);
    if (!factory) return nullptr;
    spec->filter_factories.push_back(std::move(factory));
    snap->listeners.push_back(std::move(spec));
  }
  snap->config = std::move(cfg);
  return snap;
}

}  // namespace ferry::proxy
