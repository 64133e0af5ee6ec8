// Parsers for scalar config values: durations, addresses (IP literals and DNS names), log levels.
#include "config/values.h"

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <limits>

namespace ferry::config {

namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }

bool allDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!isDigit(c)) return false;
  return true;
}

void setWhy(std::string* why, std::string_view reason) {
  if (why != nullptr) *why = std::string(reason);
}

// Milliseconds per unit, or 0 when the unit is unknown.
int64_t unitMillis(std::string_view unit) {
  if (unit == "ms") return 1;
  if (unit == "s") return 1000;
  if (unit == "m") return 60 * 1000;
  if (unit == "h") return 60 * 60 * 1000;
  return 0;
}

// Parses a string of decimal digits (no sign) into *out; false on overflow.
bool parseDigits(std::string_view s, int64_t* out) {
  int64_t v = 0;
  for (char c : s) {
    if (__builtin_mul_overflow(v, int64_t{10}, &v)) return false;
    if (__builtin_add_overflow(v, int64_t{c - '0'}, &v)) return false;
  }
  *out = v;
  return true;
}

std::optional<uint16_t> parsePort(std::string_view port, std::string* why) {
  if (port.empty()) {
    setWhy(why, "missing port");
    return std::nullopt;
  }
  if (!allDigits(port)) {
    setWhy(why, "port must be a decimal number");
    return std::nullopt;
  }
  int64_t p = 0;
  if (!parseDigits(port, &p) || p > 65535) {
    setWhy(why, "port out of range (0-65535)");
    return std::nullopt;
  }
  return static_cast<uint16_t>(p);
}

}  // namespace

std::optional<Duration> parseDuration(std::string_view text) {
  // <digits>[.<digits>]<unit>, unit one of ms, s, m, h.
  size_t i = 0;
  while (i < text.size() && isDigit(text[i])) ++i;
  std::string_view whole = text.substr(0, i);
  if (whole.empty()) return std::nullopt;  // no leading digit: sign, ".5s", garbage
  std::string_view frac;
  if (i < text.size() && text[i] == '.') {
    size_t start = ++i;
    while (i < text.size() && isDigit(text[i])) ++i;
    frac = text.substr(start, i - start);
    if (frac.empty()) return std::nullopt;  // "5.s"
  }
  int64_t unit = unitMillis(text.substr(i));
  if (unit == 0) return std::nullopt;  // missing or unknown unit

  int64_t ms = 0;
  if (!parseDigits(whole, &ms)) return std::nullopt;
  if (__builtin_mul_overflow(ms, unit, &ms)) return std::nullopt;

  // Fraction, in exact integer arithmetic; it must come out as whole milliseconds.
  while (!frac.empty() && frac.back() == '0') frac.remove_suffix(1);
  if (!frac.empty()) {
    if (frac.size() > 9) return std::nullopt;  // finer than 1ms for every unit
    int64_t f = 0;
    parseDigits(frac, &f);  // at most 9 digits: cannot overflow
    int64_t scale = 1;
    for (size_t k = 0; k < frac.size(); ++k) scale *= 10;
    int64_t num = f * unit;  // < 1e9 * 3.6e6: fits in int64
    if (num % scale != 0) return std::nullopt;
    if (__builtin_add_overflow(ms, num / scale, &ms)) return std::nullopt;
  }
  return Duration(ms);
}

std::optional<Address> parseAddress(std::string_view text, std::string* why) {
  Address addr;
  addr.text = std::string(text);
  std::string_view host;
  std::string_view port;
  if (text.empty()) {
    setWhy(why, "empty address (use host:port)");
    return std::nullopt;
  }
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      setWhy(why, "missing ']' after IPv6 address");
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      setWhy(why, "missing port (use [v6]:port)");
      return std::nullopt;
    }
    port = rest.substr(1);
    addr.v6 = true;
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      setWhy(why, "missing port (use host:port)");
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      setWhy(why, "IPv6 addresses must be in brackets, e.g. [::1]:8080");
      return std::nullopt;
    }
  }

  if (host.empty()) {
    setWhy(why, "missing host");
    return std::nullopt;
  }
  std::string host_str(host);
  std::array<unsigned char, 16> buf{};
  if (addr.v6) {
    if (inet_pton(AF_INET6, host_str.c_str(), buf.data()) != 1) {
      setWhy(why, "bad IPv6 address");
      return std::nullopt;
    }
  } else if (inet_pton(AF_INET, host_str.c_str(), buf.data()) != 1) {
    bool numeric = true;
    for (char c : host)
      if (!isDigit(c) && c != '.') numeric = false;
    setWhy(why, numeric ? "bad IPv4 address"
                        : "host must be an IP address (DNS names are not supported yet)");
    return std::nullopt;
  }

  auto p = parsePort(port, why);
  if (!p) return std::nullopt;
  addr.host = std::move(host_str);
  addr.port = *p;
  return addr;
}

std::optional<Address> parseAddressDefaultPort(std::string_view text, uint16_t default_port,
                                               std::string* why) {
  std::string full(text);
  const std::string suffix = ":" + std::to_string(default_port);
  if (!text.empty() && text.front() == '[' && text.back() == ']') {
    full += suffix;  // "[v6]"
  } else if (!text.empty() && text.find(':') == std::string_view::npos) {
    full += suffix;  // "1.2.3.4"
  } else if (!text.empty() && text.front() != '[' &&
             text.find(':') != text.rfind(':')) {  // a bare "v6" (two colons or more)
    std::array<unsigned char, 16> buf{};
    if (inet_pton(AF_INET6, full.c_str(), buf.data()) == 1) full = "[" + full + "]" + suffix;
  }
  auto a = parseAddress(full, why);
  if (a) a->text = std::string(text);
  return a;
}

std::string dnsNameProblem(std::string_view name) {
  const std::string q = "host name '" + std::string(name) + "'";
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || isDigit(c) || c == '-' ||
              c == '.';
    if (ok) continue;
    auto u = static_cast<unsigned char>(c);
    std::string shown;
    if (u > 0x20 && u < 0x7f) {
      shown = std::string("'") + c + "'";
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02x", u);
      shown = hex;
    }
    return q + " has a bad character " + shown + " (use letters, digits, '-' and '.')";
  }
  if (name.size() > 253) return "host name is longer than 253 characters";
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    std::string_view label =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty()) return q + " has an empty label (check the dots)";
    if (label.size() > 63) return q + " has a label longer than 63 characters";
    if (label.front() == '-' || label.back() == '-')
      return q + " has a label that starts or ends with '-'";
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return "";
}

std::optional<Address> parseEndpointAddress(std::string_view text, std::string* hostname,
                                            std::string* why) {
  if (hostname != nullptr) hostname->clear();
  if (text.empty() || text.front() == '[') return parseAddress(text, why);
  size_t colon = text.rfind(':');
  std::string_view host = colon == std::string_view::npos ? text : text.substr(0, colon);
  // An empty host, an unbracketed IPv6 address or digits and dots: the IP parser's reasons.
  bool ip_like = host.empty() || host.find(':') != std::string_view::npos ||
                 host.find_first_not_of("0123456789.") == std::string_view::npos;
  if (ip_like) return parseAddress(text, why);
  if (std::string problem = dnsNameProblem(host); !problem.empty()) {
    setWhy(why, problem);
    return std::nullopt;
  }
  if (colon == std::string_view::npos) {
    setWhy(why, "missing port (use host:port)");
    return std::nullopt;
  }
  auto port = parsePort(text.substr(colon + 1), why);
  if (!port) return std::nullopt;
  Address addr;
  addr.text = std::string(text);
  addr.port = *port;
  if (hostname != nullptr) {
    hostname->assign(host);
    for (char& c : *hostname)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return addr;
}

std::string formatDuration(Duration d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string sign = ms < 0 ? "-" : "";
  // Magnitude as unsigned so that INT64_MIN does not overflow.
  uint64_t mag = ms < 0 ? 0 - static_cast<uint64_t>(ms) : static_cast<uint64_t>(ms);
  if (mag % 3'600'000 == 0) return sign + std::to_string(mag / 3'600'000) + "h";
  if (mag % 60'000 == 0) return sign + std::to_string(mag / 60'000) + "m";
  if (mag % 1'000 == 0) return sign + std::to_string(mag / 1'000) + "s";
  return sign + std::to_string(mag) + "ms";
}

std::string_view logLevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kTrace: return "trace";
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

std::optional<LogLevel> parseLogLevel(std::string_view text) {
  for (LogLevel l : {LogLevel::kTrace, LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn,
                     LogLevel::kError})
    if (logLevelName(l) == text) return l;
  return std::nullopt;
}

void appendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

}  // namespace ferry::config
