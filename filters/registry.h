// The explicit filter registry: names -> factory builders. builtin.cc lists every built-in
// filter in one place (no static-initialiser registration). Main thread; immutable once built.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "config/model.h"
#include "filters/http/http_filter.h"
#include "filters/network_filter.h"

namespace ferry::config {
struct Snapshot;
}
namespace ferry::core {
class StatsStore;
}

namespace ferry::filters {

class Registry;

// What a builder may use while a snapshot is being compiled (main thread).
struct BuildContext {
  const config::ListenerConfig& listener;
  const config::Snapshot& snapshot;  // its clusters are ready
  core::StatsStore& stats;
  const Registry& registry;
};

class Registry {
 public:
  // Builds a listener's network filter factory. Returns an empty factory and sets *error on
  // failure.
  using NetworkBuilder = std::function<NetworkFilterFactory(const BuildContext& ctx, std::string* error)>;
  // Builds an HTTP filter factory from its config entry.
  using HttpBuilder =
      std::function<http::HttpFilterFactory(const config::HttpFilterConfig& cfg, std::string* error)>;

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
