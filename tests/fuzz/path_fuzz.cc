// libFuzzer target: path normalisation never crashes, and its output is stable (normalising
// a normalised path changes nothing) and never climbs above the root.
#include <cstdint>
#include <string>

#include "core/http/path.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string target(reinterpret_cast<const char*>(data), size);
  for (bool merge : {false, true}) {
    std::string path, query;
    if (ferry::core::http::normalizePath(target, merge, &path, &query) != ferry::core::http::PathResult::kOk)
      continue;
    if (path.empty() || path[0] != '/') __builtin_trap();
    if (path.find("/../") != std::string::npos || path.find("/./") != std::string::npos) __builtin_trap();
    std::string again, q2;
    if (ferry::core::http::normalizePath(path, merge, &again, &q2) != ferry::core::http::PathResult::kOk) __builtin_trap();
    if (again != path) __builtin_trap();
  }
  return 0;
}
