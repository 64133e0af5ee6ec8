// Renders config YAML text for display (GET /config), with secrets redacted: the value of any
// key named token, password, secret, private_key, or starting with "inline" becomes
// "[redacted]". File paths are shown as they are. Implemented in render.cc, which keeps
// yaml-cpp out of this header. The admin API renders a snapshot's Config::yaml when asked.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/values.h"  // appendJsonString, jsonString

namespace ferry::config {

// The document as one JSON object: mappings -> objects, lists -> arrays, nulls -> null;
// plain scalars that read as JSON numbers or true/false stay numbers/booleans, everything
// else becomes a string. An empty document gives "{}". nullopt if the text is not YAML.
std::optional<std::string> renderRedactedJson(const std::string& yaml);

// The document re-emitted as YAML (comments dropped, quoting of quoted scalars kept).
// An empty document gives "{}\n". nullopt if the text is not YAML.
std::optional<std::string> renderRedactedYaml(const std::string& yaml);

}  // namespace ferry::config
