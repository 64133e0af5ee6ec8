#include "config/log_format.h"

#include <charconv>

namespace ferry::config {
namespace {

using Kind = LogCommand::Kind;

struct Plain {
  std::string_view name;
  Kind kind;
};
constexpr Plain kPlain[] = {
    {"START_TIME", Kind::kStartTime},
    {"DURATION", Kind::kDuration},
    {"RESPONSE_DURATION", Kind::kResponseDuration},
    {"UPSTREAM_SERVICE_TIME", Kind::kUpstreamServiceTime},
    {"RESPONSE_CODE", Kind::kResponseCode},
    {"RESPONSE_FLAGS", Kind::kResponseFlags},
    {"RESPONSE_CODE_DETAILS", Kind::kResponseCodeDetails},
    {"BYTES_RECEIVED", Kind::kBytesReceived},
    {"BYTES_SENT", Kind::kBytesSent},
    {"PROTOCOL", Kind::kProtocol},
    {"UPSTREAM_HOST", Kind::kUpstreamHost},
    {"UPSTREAM_CLUSTER", Kind::kUpstreamCluster},
    {"DOWNSTREAM_REMOTE_ADDRESS", Kind::kDownstreamRemoteAddress},
    {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", Kind::kDownstreamRemoteAddressWithoutPort},
    {"DOWNSTREAM_LOCAL_ADDRESS", Kind::kDownstreamLocalAddress},
    {"ROUTE_NAME", Kind::kRouteName},
    {"LISTENER_NAME", Kind::kListenerName},
    {"TRACE_ID", Kind::kTraceId},
};

bool isNameChar(char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }

std::string lowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool isHeaderName(std::string_view s) {
  if (s.empty()) return false;
  size_t i = s[0] == ':' ? 1 : 0;  // pseudo-headers
  if (i == s.size()) return false;
  constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  for (; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              kExtra.find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::optional<LogFormat> parseLogFormat(std::string_view text, std::string* error) {
  LogFormat out;
  std::string literal;
  auto flush = [&] {
    if (literal.empty()) return;
    out.push_back(LogCommand{Kind::kLiteral, literal, "", 0});
    literal.clear();
  };
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c != '%') {
      literal += c;
      ++i;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '%') {
      literal += '%';
      i += 2;
      continue;
    }
    const size_t start = i++;
    size_t name_end = i;
    while (name_end < text.size() && isNameChar(text[name_end])) ++name_end;
    std::string_view name = text.substr(i, name_end - i);
    if (name.empty()) {
      *error = "a lone '%' at offset " + std::to_string(start) + " (write %% for a percent sign)";
      return std::nullopt;
    }
    LogCommand cmd;
    i = name_end;
    const bool header_cmd = name == "REQ" || name == "RESP" || name == "TRAILER";
    if (header_cmd) {
      if (i >= text.size() || text[i] != '(') {
        *error = "%" + std::string(name) + "% needs a header name: %" + std::string(name) + "(name)%";
        return std::nullopt;
      }
      size_t close = text.find(')', i);
      if (close == std::string_view::npos) {
        *error = "unterminated '(' in %" + std::string(name) + "( at offset " + std::to_string(start);
        return std::nullopt;
      }
      std::string_view arg = text.substr(i + 1, close - i - 1);
      std::string_view main = arg, alt;
      if (size_t q = arg.find('?'); q != std::string_view::npos) {
        main = arg.substr(0, q);
        alt = arg.substr(q + 1);
      }
      if (!isHeaderName(main) || (!alt.empty() && !isHeaderName(alt)) ||
          (arg.find('?') != std::string_view::npos && alt.empty())) {
        *error = "bad header name in %" + std::string(name) + "(" + std::string(arg) + ")%";
        return std::nullopt;
      }
      cmd.kind = name == "REQ" ? Kind::kReq : name == "RESP" ? Kind::kResp : Kind::kTrailer;
      cmd.text = lowerAscii(main);
      cmd.alt = lowerAscii(alt);
      i = close + 1;
    } else {
      bool found = false;
      for (const auto& p : kPlain)
        if (p.name == name) {
          cmd.kind = p.kind;
          found = true;
        }
      if (!found) {
        *error = "unknown access log command %" + std::string(name) + "% at offset " + std::to_string(start);
        return std::nullopt;
      }
    }
    if (i < text.size() && text[i] == ':') {
      size_t d = i + 1;
      while (d < text.size() && text[d] >= '0' && text[d] <= '9') ++d;
      uint32_t n = 0;
      auto r = std::from_chars(text.data() + i + 1, text.data() + d, n);
      if (d == i + 1 || r.ec != std::errc() || n == 0) {
        *error = "bad length after %" + std::string(name) + "...: (a positive number) at offset " + std::to_string(i);
        return std::nullopt;
      }
      cmd.max_len = n;
      i = d;
    }
    if (i >= text.size() || text[i] != '%') {
      *error = "unterminated command %" + std::string(name) + " at offset " + std::to_string(start) +
               " (commands end with '%')";
      return std::nullopt;
    }
    ++i;
    flush();
    out.push_back(std::move(cmd));
  }
  flush();
  return out;
}

const char* defaultTextFormat() {
  return "[%START_TIME%] \"%REQ(:method)% %REQ(:path)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% "
         "%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %UPSTREAM_SERVICE_TIME% \"%REQ(x-forwarded-for)%\" "
         "\"%REQ(user-agent)%\" \"%REQ(x-request-id)%\" \"%REQ(:authority)%\" \"%UPSTREAM_HOST%\"";
}

std::vector<std::pair<std::string, LogFormat>> defaultJsonFormat() {
  static const std::pair<const char*, const char*> kFields[] = {
      {"start_time", "%START_TIME%"},
      {"listener", "%LISTENER_NAME%"},
      {"method", "%REQ(:method)%"},
      {"path", "%REQ(:path)%"},
      {"protocol", "%PROTOCOL%"},
      {"authority", "%REQ(:authority)%"},
      {"response_code", "%RESPONSE_CODE%"},
      {"response_flags", "%RESPONSE_FLAGS%"},
      {"response_code_details", "%RESPONSE_CODE_DETAILS%"},
      {"bytes_received", "%BYTES_RECEIVED%"},
      {"bytes_sent", "%BYTES_SENT%"},
      {"duration_ms", "%DURATION%"},
      {"upstream_service_time_ms", "%UPSTREAM_SERVICE_TIME%"},
      {"upstream_cluster", "%UPSTREAM_CLUSTER%"},
      {"upstream_host", "%UPSTREAM_HOST%"},
      {"route_name", "%ROUTE_NAME%"},
      {"downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"},
      {"x_forwarded_for", "%REQ(x-forwarded-for)%"},
      {"user_agent", "%REQ(user-agent)%"},
      {"request_id", "%REQ(x-request-id)%"},
      {"trace_id", "%TRACE_ID%"},
  };
  std::vector<std::pair<std::string, LogFormat>> out;
  std::string err;
  for (const auto& [k, v] : kFields) out.emplace_back(k, *parseLogFormat(v, &err));
  return out;
}

}  // namespace ferry::config
