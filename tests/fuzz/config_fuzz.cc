// libFuzzer target: the YAML config loader must turn any input into a Config or errors,
// never crash, hang or throw.
#include <cstdint>
#include <string>

#include "config/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto r = ferry::config::loadConfigString(text, "fuzz.yaml");
  if (r.config.has_value() == !r.errors.empty()) __builtin_trap();  // exactly one of them
  for (const auto& e : r.errors) (void)e.format();
  return 0;
}
