// The whole check of a config, as --validate, startup and (later) reload run it: the loader's
// own checks (config/) plus each HTTP filter's parser over its own `config:` block (the filter
// registry, filters/) and a trial build of each TLS context, every error at once, in document order, as FILE:LINE:COL: message.
// Main thread.
#pragma once

#include <string>
#include <vector>

#include "config/loader.h"

namespace ferry::filters {
class Registry;
}

namespace ferry::proxy {

config::LoadResult loadConfigFile(const std::string& path, const filters::Registry& registry);
config::LoadResult loadConfigString(const std::string& yaml, const std::string& path,
                                    const filters::Registry& registry);

// The errors of the filter entries of `cfg` (unknown names, bad configs), for file `path`.
std::vector<config::ConfigError> checkFilters(const config::Config& cfg, const std::string& path,
                                              const filters::Registry& registry);

// The errors of the TLS blocks of `cfg`: certificates and keys that do not load or match,
// bad cipher lists, CA files that do not load (by building each TLS context once).
std::vector<config::ConfigError> checkTls(const config::Config& cfg, const std::string& path);

}  // namespace ferry::proxy
