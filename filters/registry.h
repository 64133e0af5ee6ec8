// The explicit filter registry: names -> factory builders. builtin.cc lists every built-in
// filter in one place (no static-initialiser registration). Main thread; immutable once built.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "config/model.h"
#include "core/http/filter.h"
#include "core/net/listener.h"
#include "core/net/network_filter.h"
#include "core/router/route_table.h"

namespace ferry::core {
class StatsStore;
}

namespace ferry::filters {

class Registry;

// What a builder may use while a snapshot is being built (main thread).
struct BuildContext {
  const config::ListenerConfig& listener;
  // The listener's process-wide state (kept across snapshots) and the number of workers.
  core::net::ListenerState& state;
  size_t workers;
  // Steps to run on each worker when the snapshot is installed there (ListenerSpec::worker_setup).
  std::vector<std::function<void(size_t worker)>>& worker_setup;
  // The snapshot's clusters by name (null when unknown). Filters keep the handle they get
  // here: nothing looks a cluster up by name per request or connection.
  const core::router::ClusterResolver& clusters;
  core::StatsStore& stats;
  const Registry& registry;
};

class Registry {
 public:
  // Builds a listener's network filter factory. Returns an empty factory and sets *error on
  // failure.
  using NetworkBuilder = std::function<core::net::NetworkFilterFactory(const BuildContext& ctx, std::string* error)>;
  // Builds an HTTP filter factory from its config entry.
  using HttpBuilder =
      std::function<core::http::HttpFilterFactory(const config::HttpFilterConfig& cfg, std::string* error)>;

  void addNetwork(const std::string& name, NetworkBuilder builder) { network_[name] = std::move(builder); }
  void addHttp(const std::string& name, HttpBuilder builder) { http_[name] = std::move(builder); }
  const NetworkBuilder* network(const std::string& name) const {
    auto it = network_.find(name);
    return it == network_.end() ? nullptr : &it->second;
  }
  const HttpBuilder* http(const std::string& name) const {
    auto it = http_.find(name);
    return it == http_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::string, NetworkBuilder> network_;
  std::map<std::string, HttpBuilder> http_;
};

// Registers every built-in filter (builtin.cc).
void registerBuiltins(Registry& registry);

}  // namespace ferry::filters
