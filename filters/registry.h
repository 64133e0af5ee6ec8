// The explicit filter registry: names -> factory builders. builtin.cc lists every built-in
// filter in one place (no static-initialiser registration). Main thread; immutable once built.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "config/model.h"
#include "config/node_reader.h"
#include "core/http/filter.h"
#include "core/net/listener.h"
#include "core/net/network_filter.h"
#include "core/router/route_table.h"

namespace ferry::core {
class StatsStore;
}

namespace ferry::filters {

class Registry;

// What an HTTP filter builder may use besides its own config. `stats` is null when a config is
// only being validated (--validate, config_check); a builder then registers nothing. Counters a
// filter registers carry the listener's name as their `listener` label; the filter bumps them
// per request through FilterCallbacks::worker().stats (a per-worker shard, no locks).
struct HttpBuildContext {
  std::string listener;
  core::StatsStore* stats = nullptr;
  // Worker threads. Per-worker state is indexed by WorkerContext::worker_index, which counts
  // from 1 (0 is the main thread): size such arrays workers + 1.
  size_t workers = 1;
  // The config file's directory: a file a filter's config names (basic_auth's `htpasswd`)
  // resolves against it when relative. "" = the working directory.
  std::string config_dir;
};

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
  // The config file's directory, for relative paths in filter configs (HttpBuildContext).
  std::string config_dir = {};
};

class Registry {
 public:
  // Builds a listener's network filter factory. Returns an empty factory and sets *error on
  // failure.
  using NetworkBuilder = std::function<core::net::NetworkFilterFactory(const BuildContext& ctx, std::string* error)>;
  // Parses an HTTP filter's config entry (its `config:` block is the filter's own) and builds
  // its factory. Errors go to `reader`, each at its FILE:LINE:COL mark, and the factory is
  // then empty. The same call validates a config (--validate, reload) and builds it.
  using HttpBuilder = std::function<core::http::HttpFilterFactory(
      const config::HttpFilterConfig& cfg, config::NodeReader& reader, const HttpBuildContext& ctx)>;

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
  // The registered HTTP filter names, sorted ("buffer, fault"), for error messages.
  std::string httpNames() const {
    std::string out;
    for (const auto& [name, builder] : http_) out += (out.empty() ? "" : ", ") + name;
    return out;
  }

 private:
  std::map<std::string, NetworkBuilder> network_;
  std::map<std::string, HttpBuilder> http_;
};

// Registers every built-in filter (builtin.cc).
void registerBuiltins(Registry& registry);

}  // namespace ferry::filters
