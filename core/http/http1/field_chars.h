// The checks of HTTP/1 header fields (codec.cc). Their own header so that tests, and code that
// needs no parser, reach them without llhttp's.
#pragma once

#include <string_view>

namespace ferry::core::http::http1::detail {

// Token characters (RFC 9110 5.6.2).
bool isTchar(unsigned char c);
// A non-empty token.
bool validFieldName(std::string_view s);
// VCHAR / obs-text / SP / HTAB, no leading or trailing whitespace required by the caller.
// Printable ASCII is checked a word at a time; anything else byte by byte.
bool validFieldValue(std::string_view s);
// Every byte visible ASCII (0x21-0x7e); true for an empty s. A word at a time.
bool allVisible(std::string_view s);
// host[:port] (reg-name, IPv4 or [IPv6]); empty allowed unless require_port.
bool validAuthority(std::string_view s, bool require_port);
// `token` is one of the comma-separated items of `list` (ASCII case ignored, OWS trimmed).
bool hasToken(std::string_view list, std::string_view token);

}  // namespace ferry::core::http::http1::detail
