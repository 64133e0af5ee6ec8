// The byte checks of HTTP/1 fields (core/http/http1/field_chars.h): each fast path (whole
// words, SSE2) against the byte rule of its RFC, for every byte at every offset.
#include <catch2/catch.hpp>
#include <string>
#include <string_view>

#include "core/http/http1/field_chars.h"

// validFieldName / validFieldValue take whole words at a time on a fast path and fall back to
// a byte table: every byte value at every position of every length up to 40 must get the
// answer RFC 9110 gives (token characters for names; for values, no control character but
// HTAB, and no DEL; obs-text allowed).
TEST_CASE("http1: header name and value checks agree with RFC 9110 for every byte at every offset", "[http1]") {
  using ferry::core::http::http1::detail::validFieldName;
  using ferry::core::http::http1::detail::validFieldValue;
  auto tchar = [](unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos);
  };
  auto vchar = [](unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); };
  const std::string name_fill = "content-type-x-forwarded-for-0123456789-accept";
  const std::string value_fill = "Mozilla/5.0 (X11; Linux x86_64) text/html;q=0.9, */*";
  std::string wrong;
  for (size_t len = 0; len <= 40; ++len) {
    const std::string name = name_fill.substr(0, len), value = value_fill.substr(0, len);
    if (validFieldName(name) != (len > 0)) wrong += "name len " + std::to_string(len) + "; ";
    if (!validFieldValue(value)) wrong += "value len " + std::to_string(len) + "; ";
    for (size_t at = 0; at < len; ++at)
      for (int b = 0; b < 256; ++b) {
        std::string n = name, v = value;
        n[at] = static_cast<char>(b);
        v[at] = static_cast<char>(b);
        const bool want_name = tchar(static_cast<unsigned char>(b)), want_value = vchar(static_cast<unsigned char>(b));
        if (validFieldName(n) != want_name)
          wrong += "name len " + std::to_string(len) + " at " + std::to_string(at) + " byte " + std::to_string(b) + "; ";
        if (validFieldValue(v) != want_value)
          wrong += "value len " + std::to_string(len) + " at " + std::to_string(at) + " byte " + std::to_string(b) + "; ";
      }
  }
  INFO(wrong.substr(0, 2000));
  CHECK(wrong.empty());
}

// allVisible takes whole words at a time (the last one overlapping): every byte at every
// position of every length up to 40 must get the byte rule's answer (0x21-0x7e).
TEST_CASE("http1: allVisible agrees with the byte rule for every byte at every offset", "[http1]") {
  using ferry::core::http::http1::detail::allVisible;
  const std::string fill = "/api/v1/items?id=42&sort=desc#frag-0123456789";
  std::string wrong;
  for (size_t len = 0; len <= 40; ++len) {
    const std::string base = fill.substr(0, len);
    if (!allVisible(base)) wrong += "len " + std::to_string(len) + "; ";
    for (size_t at = 0; at < len; ++at)
      for (int b = 0; b < 256; ++b) {
        std::string v = base;
        v[at] = static_cast<char>(b);
        if (allVisible(v) != (b > 0x20 && b < 0x7f))
          wrong += "len " + std::to_string(len) + " at " + std::to_string(at) + " byte " + std::to_string(b) + "; ";
      }
  }
  INFO(wrong.substr(0, 2000));
  CHECK(wrong.empty());
}

// Host (and a CONNECT target) is host[:port]: the host a reg-name of RFC 3986 (unreserved,
// sub-delims and '%') or an IP literal in brackets, the port up to 5 digits. Every byte at
// every position of a reg-name, a port and a literal gets the RFC's answer.
TEST_CASE("http1: authority checks agree with RFC 3986 for every byte at every offset", "[http1]") {
  using ferry::core::http::http1::detail::validAuthority;
  auto reg = [](unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && std::string_view("-._~!$&'()*+,;=%").find(static_cast<char>(c)) != std::string_view::npos);
  };
  auto hex = [](unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
  };
  std::string wrong;
  const std::string host = "www.example-1.com", port = "8443", literal = "[2001:db8::1]";
  CHECK(validAuthority(host + ":" + port, true));
  CHECK(validAuthority(literal + ":" + port, true));
  CHECK(validAuthority(host, false));
  CHECK_FALSE(validAuthority(host, true));
  CHECK_FALSE(validAuthority(host + ":123456", false));
  for (int b = 0; b < 256; ++b) {
    const auto c = static_cast<unsigned char>(b);
    for (size_t at = 0; at < host.size(); ++at) {
      std::string h = host;
      h[at] = static_cast<char>(b);
      if (b == ':') continue;  // ends the host: a port check, not a host byte
      if (validAuthority(h + ":" + port, true) != reg(c)) wrong += "host at " + std::to_string(at) + " byte " + std::to_string(b) + "; ";
    }
    for (size_t at = 0; at < port.size(); ++at) {
      std::string p = port;
      p[at] = static_cast<char>(b);
      if (validAuthority(host + ":" + p, true) != (c >= '0' && c <= '9'))
        wrong += "port at " + std::to_string(at) + " byte " + std::to_string(b) + "; ";
    }
    for (size_t at = 1; at + 1 < literal.size(); ++at) {
      std::string l = literal;
      l[at] = static_cast<char>(b);
      if (b == ']') continue;  // ends the literal early
      if (validAuthority(l + ":" + port, true) != hex(c)) wrong += "literal at " + std::to_string(at) + " byte " + std::to_string(b) + "; ";
    }
  }
  INFO(wrong.substr(0, 2000));
  CHECK(wrong.empty());
}
