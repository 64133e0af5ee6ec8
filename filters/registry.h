// The explicit filter registry: names -> factory builders. builtin.cc lists every built-in
// filter in one place (no static-initialiser registration). Main thread; immutable once built.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "config/model.h"
#include "filters/network_filter.h"

namespace ferry::config {
struct Snapshot;
}

namespace ferry::filters {

class Registry {
 public:
  // Builds a listener's network filter factory from its config, against the snapshot being
  // built (its clusters are ready). Returns an empty factory and sets *error on failure.
  using NetworkBuilder = std::function<NetworkFilterFactory(
      const config::ListenerConfig& listener, const config::Snapshot& snapshot, std::string* error)>;

  void addNetwork(const std::string& name, NetworkBuilder builder) { network_[name] = std::move(builder); }
  const NetworkBuilder* network(const std::string& name) const {
    auto it = network_.find(name);
    return it == network_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::string, NetworkBuilder> network_;
};

// Registers every built-in filter (builtin.cc).
void registerBuiltins(Registry& registry);

}  // namespace ferry::filters
