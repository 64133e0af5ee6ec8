// Parsers for scalar config values. Pure functions, any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/model.h"

namespace ferry::config {

// "250ms", "15s", "5m", "1h", "0s" (a unit is required; "0" alone is refused).
// Also accepts "us"/"µs" is NOT supported: the smallest unit is ms. Fractions ("1.5s") allowed.
std::optional<Duration> parseDuration(std::string_view text);

// "1.2.3.4:80", "[::1]:80", "0.0.0.0:0". Host must be an IP literal; port 0-65535.
// On failure returns nullopt and sets *why to a short reason.
std::optional<Address> parseAddress(std::string_view text, std::string* why = nullptr);

// Formats a duration the way the config writes it ("1500ms", "15s", "5m").
std::string formatDuration(Duration d);

std::string_view logLevelName(LogLevel l);
std::optional<LogLevel> parseLogLevel(std::string_view text);

}  // namespace ferry::config
