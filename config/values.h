// Parsers for scalar config values. Pure functions, any thread.
#pragma once

#include <cstdint>
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

// As parseAddress, but the port may be left out and then is `default_port`: "8.8.8.8",
// "[2001:db8::1]" and a bare "2001:db8::1" are accepted, as are the forms with a port.
// `text` in the result is as written.
std::optional<Address> parseAddressDefaultPort(std::string_view text, uint16_t default_port,
                                               std::string* why = nullptr);

// An upstream endpoint: an IP literal address (as parseAddress), or "name:port" where name
// is a DNS name (letters, digits, '-', '.'; labels of 1-63 characters that do not start or
// end with '-'; at most 253 in all). For a name, the result's host is empty, its port and
// text are set, and *hostname gets the name lower-cased; for an IP, *hostname is cleared.
std::optional<Address> parseEndpointAddress(std::string_view text, std::string* hostname,
                                            std::string* why = nullptr);

// Why `name` is not a valid DNS host name (as for parseEndpointAddress), or "" if it is.
std::string dnsNameProblem(std::string_view name);

// Formats a duration the way the config writes it ("1500ms", "15s", "5m").
std::string formatDuration(Duration d);

std::string_view logLevelName(LogLevel l);

// Appends `s` as a JSON string literal (quotes included, control characters escaped).
void appendJsonString(std::string& out, std::string_view s);
// The same as a new string, quotes included.
inline std::string jsonString(std::string_view s) {
  std::string out;
  appendJsonString(out, s);
  return out;
}
std::optional<LogLevel> parseLogLevel(std::string_view text);

}  // namespace ferry::config
