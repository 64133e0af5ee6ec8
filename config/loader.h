// YAML -> Config, with validation. Every problem found is reported (not just the first) as
// FILE:LINE:COL: message, LINE/COL 1-based, pointing at the offending key or value.
// Main-thread only. yaml-cpp stays inside loader*.cc and render.cc; no exceptions escape.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/model.h"

namespace ferry::config {

struct ConfigError {
  std::string file;
  Mark mark;
  std::string message;
  // "FILE:LINE:COL: message" (or "FILE: message" when the position is unknown).
  std::string format() const;
};

struct LoadResult {
  std::optional<Config> config;     // set iff errors is empty
  std::vector<ConfigError> errors;
  // What could be read despite errors, for the checks of later stages (the filters' own
  // config parsers), so that every error of a file is reported at once.
  std::optional<Config> partial;
};

// Reads and loads the file at `path`. Relative paths inside resolve against its directory.
LoadResult loadConfigFile(const std::string& path);

// Loads YAML text; `path` names it in errors and its directory resolves relative paths.
LoadResult loadConfigString(const std::string& yaml, const std::string& path);

}  // namespace ferry::config
