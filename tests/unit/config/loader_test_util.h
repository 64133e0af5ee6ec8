// What the loader unit tests share: load a YAML string as "t.yaml" and read its errors. The
// load is the whole check the binary runs (the loader's, plus each filter's own parser).
// Header-only, test code.
#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "config/loader.h"
#include "filters/registry.h"
#include "proxy/config_check.h"

namespace ferry::config::test {

inline const filters::Registry& builtinRegistry() {
  static const filters::Registry r = [] {
    filters::Registry reg;
    filters::registerBuiltins(reg);
    return reg;
  }();
  return r;
}

inline LoadResult load(const std::string& yaml) { return proxy::loadConfigString(yaml, "t.yaml", builtinRegistry()); }

inline std::vector<std::string> errorsOf(const LoadResult& r) {
  std::vector<std::string> out;
  for (const auto& e : r.errors) out.push_back(e.format());
  return out;
}

// The single error of a config that must fail with exactly one.
inline std::string onlyError(const std::string& yaml) {
  LoadResult r = load(yaml);
  CHECK_FALSE(r.config.has_value());
  INFO(Catch::StringMaker<std::vector<std::string>>::convert(errorsOf(r)));
  REQUIRE(r.errors.size() == 1);
  return r.errors[0].format();
}

// The config of a load that must succeed (returned by value: `r` is often a temporary).
inline Config ok(const LoadResult& r) {
  INFO(Catch::StringMaker<std::vector<std::string>>::convert(errorsOf(r)));
  REQUIRE(r.errors.empty());
  REQUIRE(r.config.has_value());
  return *r.config;
}

}  // namespace ferry::config::test
