// The `http` block of a listener (timeouts, limits, HTTP/2, tracing, access logs, filters; its
// virtual hosts and routes are loader_routes.cc's) and the checks on it that need every
// cluster, plus `hash_on` (shared with clusters) and the text checks the loader shares. Same
// conventions as loader.cc: every problem is reported with its position, nothing throws, and
// keys the build cannot honour yet are refused, not ignored.
#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <set>

#include "config/loader_internal.h"
#include "config/log_format.h"
#include "config/values.h"

namespace ferry::config::internal {

namespace {

bool isAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

// RFC 9110 token: header names and methods.
bool isToken(std::string_view s) {
  constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [&](char c) {
    return isAlnum(c) || kExtra.find(c) != std::string_view::npos;
  });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// Dot-separated non-empty labels of letters, digits and '-'.
bool isHostName(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t label = 0;
  for (char c : s) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (isAlnum(c) || c == '-') {
      if (++label > 63) return false;
    } else {
      return false;
    }
  }
  return label > 0;
}

// A host name or IP literal ("[v6]"), optionally with ":port".
bool isHostAndPort(std::string_view s) {
  std::string_view host = s;
  size_t colon = s.rfind(':');
  if (colon != std::string_view::npos && s.find(']', colon) == std::string_view::npos) {
    std::string_view port = s.substr(colon + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
        value > 65535)
      return false;
    host = s.substr(0, colon);
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    std::string v6(host.substr(1, host.size() - 2));
    unsigned char buf[16];
    return inet_pton(AF_INET6, v6.c_str(), buf) == 1;
  }
  return isHostName(host);
}

// Characters a normalised request path can hold (no query, no fragment, ASCII).
bool isPathText(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f && c != '?' && c != '#';
  });
}

std::string headerNameHint() { return "(use letters, digits and !#$%&'*+-.^_`|~)"; }

namespace {

class HttpParser {
 public:
  explicit HttpParser(Parser& p) : p_(p) {}

  void http2(const Entry& e, Http2Config& h) {
    if (!p_.isMap(e, true)) return;
    Entries f = p_.fields(e.value, "in http2",
                          {"enabled", "max_concurrent_streams", "initial_stream_window_size",
                           "initial_connection_window_size", "hpack_table_size", "max_outbound_control_frames",
                           "max_consecutive_empty_frames", "max_continuations", "max_resets_per_second",
                           "max_resets_burst"});
    if (auto* x = f.get("enabled"))
      if (auto v = p_.getBool(*x)) h.enabled = *v;
    auto u32 = [&](const char* key, uint64_t lo, uint64_t hi, uint32_t& out) {
      if (auto* x = f.get(key))
        if (auto v = p_.getUint(*x, lo, hi)) out = static_cast<uint32_t>(*v);
    };
    u32("max_concurrent_streams", 1, 1024, h.max_concurrent_streams);
    u32("initial_stream_window_size", 65535, 16 * 1024 * 1024, h.initial_stream_window_size);
    u32("initial_connection_window_size", 65535, 24 * 1024 * 1024, h.initial_connection_window_size);
    u32("hpack_table_size", 0, 65536, h.hpack_table_size);
    u32("max_outbound_control_frames", 1, 100000, h.max_outbound_control_frames);
    u32("max_consecutive_empty_frames", 0, 1000, h.max_consecutive_empty_frames);
    u32("max_continuations", 1, 1000, h.max_continuations);
    u32("max_resets_per_second", 1, 100000, h.max_resets_per_second);
    u32("max_resets_burst", 1, 100000, h.max_resets_burst);
  }

  void tracing(const Entry& e, HttpConfig& h) {
    TracingConfig& t = h.tracing.emplace();
    if (!p_.isMap(e, true)) return;
    Entries f = p_.fields(e.value, "in tracing", {"sample_rate", "service_name", "otlp"});
    if (auto* x = f.get("sample_rate"))
      if (auto v = p_.getNumber(*x, 0, 1)) t.sample_rate = *v;
    if (auto* x = f.get("service_name"))
      if (auto v = p_.getString(*x)) {
        if (std::any_of(v->begin(), v->end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
          p_.error(x->value_mark, "bad service_name " + quote(*v) + " (no control characters)");
        else
          t.service_name = *v;
      }
    auto* o = f.get("otlp");
    if (o == nullptr || !p_.isMap(*o)) return;
    auto& otlp = t.otlp.emplace();
    Entries of = p_.fields(o->value, "in otlp",
                           {"cluster", "path", "timeout", "flush_interval", "max_batch", "max_queue"});
    if (auto* x = p_.need(of, "cluster", *o, "in otlp"))
      if (auto v = p_.getString(*x)) {
        otlp.cluster = *v;
        otlp.cluster_mark = x->value_mark;
      }
    if (auto* x = of.get("path"))
      if (auto v = p_.getString(*x)) {
        if (v->front() != '/' || !isPathText(*v))
          p_.error(x->value_mark, "bad path " + quote(*v) + " (must start with '/'; no query, fragment, spaces or control characters)");
        else
          otlp.path = *v;
      }
    if (auto* x = of.get("timeout"))
      if (auto v = p_.getDuration(*x, true)) otlp.timeout = *v;
    if (auto* x = of.get("flush_interval"))
      if (auto v = p_.getDuration(*x, true)) otlp.flush_interval = *v;
    if (auto* x = of.get("max_batch"))
      if (auto v = p_.getUint(*x, 1, 100000)) otlp.max_batch = static_cast<uint32_t>(*v);
    if (auto* x = of.get("max_queue"))
      if (auto v = p_.getUint(*x, 1, 10000000)) {
        otlp.max_queue = static_cast<uint32_t>(*v);
        if (otlp.max_queue < otlp.max_batch)
          p_.error(x->value_mark, "max_queue (" + std::to_string(otlp.max_queue) + ") must not be below max_batch (" +
                                      std::to_string(otlp.max_batch) + ")");
      }
  }

  void http(const Entry& e, HttpConfig& h) {
    h.mark = e.key_mark;
    if (!p_.isMap(e, true)) return;
    constexpr std::string_view kWhere = "in http";
    Entries f = p_.fields(e.value, kWhere,
                          {"idle_timeout", "request_headers_timeout", "stream_idle_timeout", "request_timeout",
                           "close_flush_timeout", "max_request_headers_kb",
                           "max_headers", "xff_trusted_hops", "forward_client_cert", "merge_slashes",
                           "max_requests_per_connection", "http2", "access_log", "filters", "virtual_hosts",
                           "health_path", "response_flags_header", "tracing"});
    if (auto* x = f.get("health_path"))
      if (auto v = p_.getString(*x)) {
        const bool bad_char = std::any_of(v->begin(), v->end(), [](char c) {
          return c == '?' || c == '#' || static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
        });
        if (v->front() != '/' || bad_char)
          p_.error(x->value_mark, "bad health_path " + quote(*v) +
                                      " (must start with '/'; no query, fragment, spaces or control characters)");
        else
          h.health_path = *v;
      }
    if (auto* x = f.get("idle_timeout"))
      if (auto v = p_.getDuration(*x, false)) h.idle_timeout = *v;
    if (auto* x = f.get("request_headers_timeout"))
      if (auto v = p_.getDuration(*x, false)) h.request_headers_timeout = *v;
    if (auto* x = f.get("stream_idle_timeout"))
      if (auto v = p_.getDuration(*x, false)) h.stream_idle_timeout = *v;
    if (auto* x = f.get("request_timeout"))
      if (auto v = p_.getDuration(*x, false)) h.request_timeout = *v;
    if (auto* x = f.get("close_flush_timeout"))
      if (auto v = p_.getDuration(*x, false)) h.close_flush_timeout = *v;
    if (auto* x = f.get("max_request_headers_kb"))
      if (auto v = p_.getUint(*x, 1, 8192)) h.max_request_headers_kb = static_cast<uint32_t>(*v);
    if (auto* x = f.get("max_headers"))
      if (auto v = p_.getUint(*x, 1, 10000)) h.max_headers = static_cast<uint32_t>(*v);
    if (auto* x = f.get("xff_trusted_hops"))
      if (auto v = p_.getUint(*x, 0, 64)) h.xff_trusted_hops = static_cast<uint32_t>(*v);
    if (auto* x = f.get("forward_client_cert")) {
      using F = HttpConfig::ForwardClientCert;
      if (auto v = p_.getEnum(*x, {"sanitize", "sanitize_set", "append_forward", "forward_only",
                                   "always_forward_only"}))
        h.forward_client_cert = *v == "sanitize_set"          ? F::kSanitizeSet
                                : *v == "append_forward"      ? F::kAppendForward
                                : *v == "forward_only"        ? F::kForwardOnly
                                : *v == "always_forward_only" ? F::kAlwaysForwardOnly
                                                              : F::kSanitize;
    }
    if (auto* x = f.get("merge_slashes"))
      if (auto v = p_.getBool(*x)) h.merge_slashes = *v;
    if (auto* x = f.get("max_requests_per_connection"))
      if (auto v = p_.getUint(*x, 0, UINT32_MAX))
        h.max_requests_per_connection = static_cast<uint32_t>(*v);
    if (auto* x = f.get("http2")) http2(*x, h.http2);
    if (auto* x = f.get("response_flags_header"))
      if (auto v = p_.getBool(*x)) h.response_flags_header = *v;
    if (auto* x = f.get("access_log"); x != nullptr && !x->value.IsNull() && p_.isList(*x))
      for (const YAML::Node& item : x->value) accessLog(p_.itemEntry(item, x->value_mark, "access log"), h);
    if (auto* x = f.get("tracing")) tracing(*x, h);
    if (auto* x = f.get("filters"); x != nullptr && !x->value.IsNull() && p_.isList(*x)) {
      std::set<std::string> seen;
      for (const YAML::Node& item : x->value)
        filter(p_.itemEntry(item, x->value_mark, "filter"), h, seen);
    }
    if (auto* x = p_.need(f, "virtual_hosts", e, kWhere); x != nullptr && p_.isList(*x)) {
      if (x->value.size() == 0) p_.error(x->value_mark, "'virtual_hosts' must not be empty");
      HttpNames names;  // per listener
      for (const YAML::Node& item : x->value)
        parseVirtualHost(p_, p_.itemEntry(item, x->value_mark, "virtual host"), h, names);
    }
  }

 private:
  // ---- access logs

  // A format string compiled; errors at the value.
  std::optional<LogFormat> logFormat(const Entry& e) {
    if (!e.value.IsScalar()) {
      p_.typeError(e, "a format string");
      return std::nullopt;
    }
    std::string err;
    auto f = parseLogFormat(e.value.Scalar(), &err);
    if (!f) p_.error(e.value_mark, err);
    return f;
  }

  void accessLog(const Entry& item, HttpConfig& h) {
    if (!p_.isMap(item)) return;
    constexpr std::string_view kWhere = "in access log";
    Entries f = p_.fields(item.value, kWhere, {"path", "format", "text_format", "json_format", "filter"});
    AccessLogConfig a;
    a.mark = item.value_mark;
    if (auto* x = p_.need(f, "path", item, kWhere))
      if (auto v = p_.getString(*x)) a.path = v->rfind("/dev/", 0) == 0 ? *v : p_.getPath(*x).value_or(*v);
    if (auto* x = f.get("format"))
      if (auto v = p_.getEnum(*x, {"text", "json"})) a.format = *v == "json" ? AccessLogConfig::Format::kJson
                                                                             : AccessLogConfig::Format::kText;
    const bool json = a.format == AccessLogConfig::Format::kJson;
    if (auto* x = f.get("text_format")) {
      if (json) p_.error(x->key_mark, "'text_format' goes with format: text (use json_format for json)");
      else if (auto v = logFormat(*x)) a.text = std::move(*v);
    } else if (!json) {
      std::string err;
      a.text = *parseLogFormat(defaultTextFormat(), &err);
    }
    if (auto* x = f.get("json_format")) {
      if (!json) {
        p_.error(x->key_mark, "'json_format' goes with format: json");
      } else if (p_.isMap(*x)) {
        Entries keys = p_.anyFields(x->value, "in json_format");
        if (keys.list.empty()) p_.error(x->value_mark, "'json_format' must not be empty");
        for (const auto& k : keys.list)
          if (auto v = logFormat(k)) a.json.emplace_back(k.key, std::move(*v));
      }
    } else if (json) {
      a.json = defaultJsonFormat();
    }
    if (auto* x = f.get("filter"); x != nullptr && p_.isMap(*x)) {
      Entries g = p_.fields(x->value, "in access log filter", {"min_status", "max_status", "flagged_only", "sample_rate"});
      if (auto* y = g.get("min_status"))
        if (auto v = p_.getUint(*y, 0, 999)) a.min_status = static_cast<uint32_t>(*v);
      if (auto* y = g.get("max_status"))
        if (auto v = p_.getUint(*y, 0, 999)) a.max_status = static_cast<uint32_t>(*v);
      if (auto* y = g.get("flagged_only"))
        if (auto v = p_.getBool(*y)) a.flagged_only = *v;
      if (auto* y = g.get("sample_rate"))
        if (auto v = p_.getNumber(*y, 0, 1)) a.sample_rate = *v;
      if (a.min_status > a.max_status) p_.error(x->value_mark, "min_status is above max_status");
    }
    h.access_log.push_back(std::move(a));
  }


  // ---- filters

  // The shape of an entry; its name and config are the filter registry's (filters/).
  void filter(const Entry& item, HttpConfig& h, std::set<std::string>& seen) {
    if (!p_.isMap(item)) return;
    constexpr std::string_view kWhere = "in filter";
    Entries f = p_.fields(item.value, kWhere, {"name", "config"});
    HttpFilterConfig out;
    out.mark = item.value_mark;
    auto* n = p_.need(f, "name", item, kWhere);
    auto name = n != nullptr ? p_.getString(*n) : std::nullopt;
    if (!name) return;
    out.name_mark = n->value_mark;
    if (*name == "router") {
      p_.error(n->value_mark, "the router filter is implicit and always last; do not list it");
      return;
    }
    if (!seen.insert(*name).second) p_.error(n->value_mark, "filter " + quote(*name) + " is listed twice");
    out.name = *name;
    if (const Entry* c = f.get("config")) out.config = p_.deepNode(c->value, c->value_mark, "in " + *name + " config");
    h.filters.push_back(std::move(out));
  }

  Parser& p_;
};

}  // namespace

HashOnConfig parseHashOn(Parser& p, const Entry& e) {
  HashOnConfig h;
  h.mark = e.value_mark;
  if (!p.isMap(e)) return h;
  Entries f = p.fields(e.value, "in hash_on", {"header", "cookie", "query", "source_ip"});
  const Entry* x = p.oneOf(f, {"header", "cookie", "query", "source_ip"}, e, "hash_on", true);
  if (x == nullptr) return h;
  using Kind = HashOnConfig::Kind;
  if (x->key == "source_ip") {
    h.kind = Kind::kSourceIp;
    if (auto v = p.getBool(*x); v && !*v)
      p.error(x->value_mark, "'source_ip' must be true (leave hash_on out for no hash key)");
    return h;
  }
  auto s = p.getString(*x);
  if (!s) return h;
  if (x->key == "header") {
    h.kind = Kind::kHeader;
    if (!isToken(*s))
      p.error(x->value_mark, "bad header name " + quote(*s) + " " + headerNameHint());
    h.name = lower(*s);
  } else if (x->key == "cookie") {
    h.kind = Kind::kCookie;
    if (!isToken(*s))
      p.error(x->value_mark, "bad cookie name " + quote(*s) + " " + headerNameHint());
    h.name = *s;
  } else {
    h.kind = Kind::kQuery;
    bool ok = std::all_of(s->begin(), s->end(), [](char c) {
      auto u = static_cast<unsigned char>(c);
      return u > 0x20 && u < 0x7f && c != '&' && c != '=' && c != '#';
    });
    if (!ok)
      p.error(x->value_mark, "bad query parameter name " + quote(*s) +
                                 " (no spaces, control characters, non-ASCII bytes, '&', '=' "
                                 "or '#')");
    h.name = *s;
  }
  return h;
}

void parseHttp(Parser& p, const Entry& e, HttpConfig& out) { HttpParser(p).http(e, out); }

void checkHttpReferences(Parser& p, const Config& cfg) {
  auto check = [&](const std::string& name, Mark m) {
    if (!name.empty() && cfg.findCluster(name) == nullptr)
      p.error(m, "unknown cluster " + quote(name));
  };
  for (const auto& l : cfg.listeners) {
    if (!l.http) continue;
    if (l.http->tracing && l.http->tracing->otlp) check(l.http->tracing->otlp->cluster, l.http->tracing->otlp->cluster_mark);
    for (const auto& vh : l.http->virtual_hosts)
      for (const auto& r : vh.routes) {
        if (!r.route) continue;
        check(r.route->cluster, r.route->cluster_mark);
        for (const auto& w : r.route->weighted_clusters) check(w.cluster, w.mark);
      }
  }
}

}  // namespace ferry::config::internal
