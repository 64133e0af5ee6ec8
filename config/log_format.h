// Access-log format strings ("%REQ(:path)% %RESPONSE_CODE%") compiled into LogCommands, and
// the default formats. Used by the loader (errors point at the value) and by tests.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/model.h"

namespace ferry::config {

// Compiles `text`. nullopt and *error ("unknown command %FOO% at offset 4") when it is not a
// format. Header names are lower-cased; "%%" is a literal '%'.
std::optional<LogFormat> parseLogFormat(std::string_view text, std::string* error);

// The text format when text_format is not given (Envoy's default, with Ferry's names).
const char* defaultTextFormat();
// The JSON fields when json_format is not given.
std::vector<std::pair<std::string, LogFormat>> defaultJsonFormat();

}  // namespace ferry::config
