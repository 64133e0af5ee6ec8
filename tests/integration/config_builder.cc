// The integration tests' config builder (config_builder.h).
#include "tests/integration/config_builder.h"

#include "tests/integration/harness.h"

namespace ferry::testing {

std::string Cluster::yaml() const {
  std::string out = "  - name: " + name + "\n";
  if (endpoints.empty()) {
    out += "    endpoints: []\n";
  } else {
    out += "    endpoints:\n";
    for (const Endpoint& e : endpoints) {
      out += "      - {address: " + e.host + ":" + std::to_string(e.port);
      if (e.weight > 0) out += ", weight: " + std::to_string(e.weight);
      if (e.priority >= 0) out += ", priority: " + std::to_string(e.priority);
      out += "}\n";
    }
  }
  return out + extra;
}

std::string FerryConfig::yaml() const {
  std::string out;
  if (workers > 0 || !runtime_extra.empty()) {
    out += "runtime:\n";
    if (workers > 0) out += "  workers: " + std::to_string(workers) + "\n";
    out += runtime_extra;
  }
  if (admin) out += "admin:\n  address: 127.0.0.1:0\n" + admin_extra;
  out += "listeners:\n"
         "  - name: " + listener + "\n"
         "    address: " + listener_address + "\n" +
         listener_extra;
  if (!tcp_cluster.empty()) {
    out += "    tcp:\n      cluster: " + tcp_cluster + "\n" + tcp_extra;
  } else {
    std::vector<Route> rs = routes;
    if (rs.empty()) {
      if (clusters.empty()) throw HarnessError("FerryConfig: an HTTP listener without routes or clusters");
      rs.push_back(Route{.cluster = clusters.front().name});
    }
    out += "    http:\n" + http_extra +
           "      virtual_hosts:\n"
           "        - name: all\n"
           "          domains: [\"*\"]\n"
           "          routes:\n";
    for (const Route& r : rs) {
      out += "            - match: " + r.match + "\n";
      if (!r.cluster.empty()) {
        out += "              route: {cluster: " + r.cluster + (r.action.empty() ? "" : ", " + r.action) + "}\n";
      }
      out += r.extra;
    }
  }
  if (!clusters.empty()) {
    out += "clusters:\n";
    for (const Cluster& c : clusters) out += c.yaml();
  }
  return out;
}

std::string httpFilterYaml(const std::string& name, const std::string& config, bool flags_header,
                           const std::string& more_http) {
  std::string y = flags_header ? "      response_flags_header: true\n" : "";
  y += more_http + "      filters:\n        - name: " + name + "\n";
  if (config.empty()) return y;
  if (config.front() == '{') return y + "          config: " + config + "\n";
  return y + "          config:\n" + config;
}

std::vector<Route> overrideRoutes(const std::string& filter, const std::string& alt, const std::string& cluster) {
  const std::string indent = "              ";
  return {Route{.match = "{prefix: /off}", .cluster = cluster,
                .extra = indent + "filter_overrides: {" + filter + ": {disabled: true}}\n"},
          Route{.match = "{prefix: /alt}", .cluster = cluster,
                .extra = indent + "filter_overrides: {" + filter + ": {config: " + alt + "}}\n"},
          Route{.match = "{prefix: /}", .cluster = cluster}};
}

}  // namespace ferry::testing
