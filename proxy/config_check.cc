#include "proxy/config_check.h"

#include <algorithm>

#include "config/node_reader.h"
#include "core/tls/tls.h"
#include "filters/registry.h"

namespace ferry::proxy {
namespace {

bool before(const config::Mark& a, const config::Mark& b) {
  return a.line != b.line ? a.line < b.line : a.col < b.col;
}

config::LoadResult withFilterChecks(config::LoadResult r, const filters::Registry& registry) {
  const config::Config* cfg = r.config ? &*r.config : r.partial ? &*r.partial : nullptr;
  if (cfg == nullptr) return r;  // nothing could be read (an unreadable file)
  std::vector<config::ConfigError> more = checkFilters(*cfg, cfg->path, registry);
  for (auto& e : checkTls(*cfg, cfg->path)) {
    // A file the loader could not read is reported once, by the loader.
    bool known = std::any_of(r.errors.begin(), r.errors.end(), [&](const config::ConfigError& x) {
      return x.mark.line == e.mark.line && x.mark.col == e.mark.col;
    });
    if (!known) more.push_back(std::move(e));
  }
  if (more.empty()) return r;
  r.errors.insert(r.errors.end(), more.begin(), more.end());
  std::stable_sort(r.errors.begin(), r.errors.end(),
                   [](const config::ConfigError& a, const config::ConfigError& b) { return before(a.mark, b.mark); });
  if (r.config) {
    r.partial = std::move(r.config);
    r.config.reset();
  }
  return r;
}

}  // namespace

std::vector<config::ConfigError> checkFilters(const config::Config& cfg, const std::string& path,
                                              const filters::Registry& registry) {
  std::vector<config::ConfigError> errors;
  config::NodeReader reader([&](config::Mark m, std::string message) {
    errors.push_back(config::ConfigError{path, m, std::move(message)});
  });
  for (const auto& l : cfg.listeners) {
    if (!l.http) continue;
    for (const auto& f : l.http->filters) {
      const auto* builder = registry.http(f.name);
      if (builder == nullptr) {
        reader.error(f.name_mark, "unknown filter '" + f.name + "' (use " + registry.httpNames() + ")");
        continue;
      }
      (*builder)(f, reader, filters::HttpBuildContext{l.name, nullptr, 1, cfg.dir});  // validates; the factory is dropped
    }
    // A route's override config goes through the same builder.
    for (const auto& vh : l.http->virtual_hosts)
      for (const auto& r : vh.routes)
        for (const auto& o : r.filter_overrides) {
          const auto* builder = registry.http(o.name);
          if (builder == nullptr || !o.config) continue;  // unknown names: reported above
          (*builder)(config::HttpFilterConfig{o.name, o.name_mark, o.config, o.mark}, reader,
                     filters::HttpBuildContext{l.name, nullptr, 1, cfg.dir});
        }
  }
  return errors;
}

std::vector<config::ConfigError> checkTls(const config::Config& cfg, const std::string& path) {
  std::vector<core::tls::BuildError> errors;
  for (const auto& l : cfg.listeners)
    if (l.tls && !l.tls->certificates.empty())
      core::tls::buildServerContext(*l.tls, l.name, {"http/1.1"}, nullptr, nullptr, &errors);
  for (const auto& c : cfg.clusters)
    if (c.tls) core::tls::buildClientContext(*c.tls, c.name, nullptr, &errors);
  std::vector<config::ConfigError> out;
  for (auto& e : errors) out.push_back(config::ConfigError{path, e.mark, std::move(e.message)});
  return out;
}

config::LoadResult loadConfigFile(const std::string& path, const filters::Registry& registry) {
  return withFilterChecks(config::loadConfigFile(path), registry);
}

config::LoadResult loadConfigString(const std::string& yaml, const std::string& path,
                                    const filters::Registry& registry) {
  return withFilterChecks(config::loadConfigString(yaml, path), registry);
}

}  // namespace ferry::proxy
