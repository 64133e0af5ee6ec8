// What the loader unit tests share: load a YAML string as "t.yaml" and read its errors.
// Header-only, test code.
#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "config/loader.h"

namespace ferry::config::test {

inline LoadResult load(const std::string& yaml) { return loadConfigString(yaml, "t.yaml"); }

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
