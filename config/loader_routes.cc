// One listener's virtual hosts and their routes: domains, matches, actions (cluster, retries,
// redirects, direct responses), header operations and per-route filter overrides. Same
// conventions as loader.cc: every problem is reported with its position, nothing throws, and
// keys the build cannot honour yet are refused, not ignored.
#include <re2/re2.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>

#include "config/loader_internal.h"
#include "config/values.h"

namespace ferry::config::internal {

namespace {

bool isFieldValue(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// Headers the proxy itself manages (framing, hop-by-hop): changing them from the config
// could make a message ambiguous, so request_headers/response_headers may not touch them.
bool isManagedHeader(std::string_view name) {
  for (std::string_view h : {"content-length", "transfer-encoding", "connection", "keep-alive",
                             "proxy-connection", "te", "trailer", "upgrade", "http2-settings"})
    if (name == h) return true;
  return false;
}

class RouteParser {
 public:
  RouteParser(Parser& p, HttpNames& names) : p_(p), names_(names) {}

  void virtualHost(const Entry& item, HttpConfig& h) {
    http_ = &h;
    if (!p_.isMap(item)) return;
    constexpr std::string_view kWhere = "in virtual host";
    Entries f = p_.fields(item.value, kWhere, {"name", "domains", "routes"});
    VirtualHostConfig vh;
    vh.mark = item.value_mark;
    if (auto* x = p_.need(f, "name", item, kWhere))
      if (auto v = p_.getName(*x, "virtual host")) {
        vh.name = *v;
        if (!names_.virtual_hosts.insert(*v).second)
          p_.error(x->value_mark, "duplicate virtual host name " + quote(*v));
      }
    if (auto* x = p_.need(f, "domains", item, kWhere); x != nullptr && p_.isList(*x)) {
      if (x->value.size() == 0) p_.error(x->value_mark, "'domains' must not be empty");
      for (const YAML::Node& node : x->value) {
        Entry d = p_.itemEntry(node, x->value_mark, "domain");
        auto v = domain(d);
        if (!v) continue;
        auto [it, fresh] = names_.domains.emplace(*v, vh.name);
        if (!fresh) {
          p_.error(d.value_mark, "domain " + quote(*v) + " is already used by virtual host " +
                                     quote(it->second));
          continue;
        }
        vh.domains.push_back(*v);
      }
    }
    if (auto* x = p_.need(f, "routes", item, kWhere); x != nullptr && p_.isList(*x)) {
      if (x->value.size() == 0) p_.error(x->value_mark, "'routes' must not be empty");
      for (const YAML::Node& node : x->value) route(p_.itemEntry(node, x->value_mark, "route"), vh);
    }
    h.virtual_hosts.push_back(std::move(vh));
  }

  // "*", "*.suffix" or a host name; lower-cased. Host is matched without its port.
  std::optional<std::string> domain(const Entry& e) {
    auto s = p_.getString(e);
    if (!s) return std::nullopt;
    std::string d = lower(*s);
    auto pattern = [](std::string_view v) {
      return v == "*" || (v.starts_with("*.") && isHostName(v.substr(2))) || isHostName(v);
    };
    if (pattern(d)) return d;
    size_t colon = d.rfind(':');
    std::string_view port = colon == std::string::npos ? "" : std::string_view(d).substr(colon + 1);
    if (!port.empty() && port.find_first_not_of("0123456789") == std::string_view::npos &&
        pattern(std::string_view(d).substr(0, colon)))
      p_.error(e.value_mark, "domain " + quote(*s) + " must not have a port (the Host header is "
                                                     "matched without its port)");
    else
      p_.error(e.value_mark, "bad domain " + quote(*s) +
                                 " (use \"*\", \"*.example.com\" or a host name: letters, digits, "
                                 "'-', '.')");
    return std::nullopt;
  }

  void route(const Entry& item, VirtualHostConfig& vh) {
    if (!p_.isMap(item)) return;
    constexpr std::string_view kWhere = "in route";
    Entries f = p_.fields(item.value, kWhere,
                          {"name", "match", "route", "direct_response", "redirect", "request_headers",
                           "response_headers", "filter_overrides"});
    RouteConfig r;
    r.mark = item.value_mark;
    if (auto* x = f.get("name"))
      if (auto v = p_.getName(*x, "route")) {
        r.name = *v;
        if (!names_.routes.insert(*v).second) p_.error(x->value_mark, "duplicate route name " + quote(*v));
      }
    bool regex = false;
    if (auto* x = p_.need(f, "match", item, kWhere)) regex = match(*x, r.match);
    p_.oneOf(f, {"route", "direct_response", "redirect"}, item, "route", true);
    if (auto* x = f.get("route")) action(*x, r.route.emplace(), regex);
    if (auto* x = f.get("direct_response")) directResponse(*x, r.direct_response.emplace());
    if (auto* x = f.get("redirect")) redirect(*x, r.redirect.emplace(), regex);
    if (auto* x = f.get("request_headers")) headerOps(*x, r.request_headers, true);
    if (auto* x = f.get("response_headers")) headerOps(*x, r.response_headers, false);
    if (auto* x = f.get("filter_overrides")) filterOverrides(*x, r);
    vh.routes.push_back(std::move(r));
  }

  // Returns true for a regex match (prefix_rewrite has no prefix to replace then).
  bool match(const Entry& e, RouteMatchConfig& m) {
    m.mark = e.value_mark;
    if (!p_.isMap(e)) return false;
    Entries f = p_.fields(e.value, "in match", {"prefix", "path", "regex", "headers", "methods"});
    bool regex = false;
    if (auto* x = p_.oneOf(f, {"prefix", "path", "regex"}, e, "match", true)) {
      if (x->key == "regex") {
        m.kind = RouteMatchConfig::Kind::kRegex;
        regex = true;
        if (auto v = getRegex(*x)) m.value = *v;
      } else {
        m.kind = x->key == "path" ? RouteMatchConfig::Kind::kPath : RouteMatchConfig::Kind::kPrefix;
        if (auto v = getPathValue(*x)) m.value = *v;
      }
    }
    if (auto* x = f.get("headers"); x != nullptr && p_.isList(*x))
      for (const YAML::Node& node : x->value)
        headerMatcher(p_.itemEntry(node, x->value_mark, "header match"), m);
    if (auto* x = f.get("methods"); x != nullptr && p_.isList(*x)) {
      if (x->value.size() == 0)
        p_.error(x->value_mark, "'methods' must not be empty (leave it out to match every method)");
      for (const YAML::Node& node : x->value) {
        Entry me = p_.itemEntry(node, x->value_mark, "method");
        auto v = p_.getString(me);
        if (!v) continue;
        if (!std::all_of(v->begin(), v->end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
          p_.error(me.value_mark,
                   "bad method " + quote(*v) + " (use upper-case letters: GET, POST, ...)");
        else if (std::find(m.methods.begin(), m.methods.end(), *v) != m.methods.end())
          p_.error(me.value_mark, "duplicate method " + quote(*v));
        else
          m.methods.push_back(*v);
      }
    }
    return regex;
  }

  void headerMatcher(const Entry& item, RouteMatchConfig& m) {
    if (!p_.isMap(item)) return;
    constexpr std::string_view kWhere = "in header match";
    Entries f = p_.fields(item.value, kWhere, {"name", "exact", "prefix", "regex", "present"});
    HeaderMatcherConfig h;
    h.mark = item.value_mark;
    if (auto* x = p_.need(f, "name", item, kWhere))
      if (auto v = getHeaderName(*x)) h.name = *v;
    if (auto* x = p_.oneOf(f, {"exact", "prefix", "regex", "present"}, item, "header match", true)) {
      using Kind = HeaderMatcherConfig::Kind;
      if (x->key == "present") {
        h.kind = Kind::kPresent;
        if (auto v = p_.getBool(*x); v && !*v)
          p_.error(x->value_mark,
                   "'present' must be true (matching an absent header is not supported)");
      } else if (x->key == "regex") {
        h.kind = Kind::kRegex;
        if (auto v = getRegex(*x)) h.value = *v;
      } else {
        h.kind = x->key == "exact" ? Kind::kExact : Kind::kPrefix;
        if (auto v = getHeaderValue(*x)) h.value = *v;
      }
    }
    m.headers.push_back(std::move(h));
  }

  void action(const Entry& e, RouteActionConfig& a, bool regex) {
    if (!p_.isMap(e)) return;
    constexpr std::string_view kWhere = "in route action";
    Entries f = p_.fields(e.value, kWhere,
                          {"cluster", "weighted_clusters", "prefix_rewrite", "host_rewrite",
                           "timeout", "stream_idle_timeout", "retry", "hash_on"});
    p_.oneOf(f, {"cluster", "weighted_clusters"}, e, "route action", true);
    if (auto* x = f.get("cluster")) {
      a.cluster_mark = x->value_mark;
      if (auto v = p_.getString(*x)) a.cluster = *v;
    }
    if (auto* x = f.get("weighted_clusters"); x != nullptr && p_.isList(*x)) {
      if (x->value.size() == 0) p_.error(x->value_mark, "'weighted_clusters' must not be empty");
      for (const YAML::Node& node : x->value) {
        Entry item = p_.itemEntry(node, x->value_mark, "weighted cluster");
        if (!p_.isMap(item)) continue;
        Entries wf = p_.fields(node, "in weighted cluster", {"cluster", "weight"});
        WeightedClusterConfig w;
        w.mark = item.value_mark;
        if (auto* y = p_.need(wf, "cluster", item, "in weighted cluster")) {
          w.mark = y->value_mark;
          if (auto v = p_.getString(*y)) {
            w.cluster = *v;
            for (const auto& other : a.weighted_clusters)
              if (other.cluster == *v)
                p_.error(y->value_mark,
                         "cluster " + quote(*v) + " is listed twice in weighted_clusters");
          }
        }
        if (auto* y = wf.get("weight"))
          if (auto v = p_.getUint(*y, 1, 1000000)) w.weight = static_cast<uint32_t>(*v);
        a.weighted_clusters.push_back(std::move(w));
      }
    }
    if (auto* x = f.get("prefix_rewrite")) {
      if (regex)
        p_.error(x->key_mark, "'prefix_rewrite' cannot be used with a regex match");
      else if (auto v = getPathValue(*x))
        a.prefix_rewrite = *v;
    }
    if (auto* x = f.get("host_rewrite"))
      if (auto v = getHost(*x)) a.host_rewrite = *v;
    if (auto* x = f.get("timeout"))
      if (auto v = p_.getDuration(*x, false)) a.timeout = *v;
    if (auto* x = f.get("stream_idle_timeout"))
      if (auto v = p_.getDuration(*x, false)) a.stream_idle_timeout = *v;
    if (auto* x = f.get("retry")) retry(*x, a.retry.emplace());
    if (auto* x = f.get("hash_on")) a.hash_on = parseHashOn(p_, *x);
  }

  // retry: {attempts, retry_on, per_try_timeout, backoff, retry_non_idempotent,
  // buffer_limit_kb}. `retry:` (or `retry: {}`) is a retry with every default.
  void retry(const Entry& e, RetryConfig& r) {
    r.mark = e.value_mark;
    if (!p_.isMap(e, true)) return;
    Entries f = p_.fields(e.value, "in retry",
                          {"attempts", "retry_on", "per_try_timeout", "backoff",
                           "retry_non_idempotent", "buffer_limit_kb"});
    if (auto* x = f.get("attempts"))
      if (auto v = p_.getUint(*x, 0, 10)) r.attempts = static_cast<uint32_t>(*v);
    if (auto* x = f.get("retry_on"); x != nullptr && p_.isList(*x)) retryOn(*x, r);
    if (auto* x = f.get("per_try_timeout"))
      if (auto v = p_.getDuration(*x, false)) r.per_try_timeout = *v;
    if (auto* x = f.get("backoff")) backoff(*x, r);
    if (auto* x = f.get("retry_non_idempotent"))
      if (auto v = p_.getBool(*x)) r.retry_non_idempotent = *v;
    if (auto* x = f.get("buffer_limit_kb"))
      if (auto v = p_.getUint(*x, 0, 65536)) r.buffer_limit_bytes = *v * 1024;
  }

  // A given retry_on replaces the default (connect-failure, reset).
  void retryOn(const Entry& e, RetryConfig& r) {
    r.on_connect_failure = false;
    r.on_reset = false;
    if (e.value.size() == 0)
      p_.error(e.value_mark,
               "'retry_on' must not be empty (leave it out for the default: connect-failure, reset)");
    std::set<std::string> seen;
    for (const YAML::Node& node : e.value) {
      Entry item = p_.itemEntry(node, e.value_mark, "retry_on");
      if (!node.IsScalar()) {
        p_.typeError(item, "a condition or a status code");
        continue;
      }
      const std::string& s = node.Scalar();
      std::string_view digits = std::string_view(s).substr(s.starts_with('-') ? 1 : 0);
      bool numeric = !digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos;
      std::optional<uint64_t> status;
      if (numeric) {
        status = p_.getUint(item, 100, 599);
        if (!status) continue;
      } else if (s == "connect-failure") {
        r.on_connect_failure = true;
      } else if (s == "reset") {
        r.on_reset = true;
      } else if (s == "5xx") {
        r.on_5xx = true;
      } else if (s == "gateway-error") {
        r.on_gateway_error = true;
      } else if (s == "retriable-4xx") {
        r.on_retriable_4xx = true;
      } else {
        p_.error(item.value_mark, "unknown retry_on condition " + quote(s) +
                                      " (use connect-failure, reset, 5xx, gateway-error, "
                                      "retriable-4xx or a status code 100-599)");
        continue;
      }
      std::string key = status ? std::to_string(*status) : s;
      if (!seen.insert(key).second) {
        p_.error(item.value_mark, "retry_on lists " + quote(key) + " twice");
        continue;
      }
      if (status) r.statuses.push_back(static_cast<int>(*status));
    }
  }

  // backoff: {base, max}; max defaults to 10 x base and may not be less than base.
  void backoff(const Entry& e, RetryConfig& r) {
    if (!p_.isMap(e)) return;
    Entries f = p_.fields(e.value, "in backoff", {"base", "max"});
    bool base_ok = true;
    if (auto* x = f.get("base")) {
      auto v = p_.getDuration(*x, true);
      base_ok = v.has_value();
      if (v) r.backoff_base = *v;
    }
    const int64_t base = r.backoff_base.count();
    r.backoff_max = base > INT64_MAX / 10 ? Duration::max() : Duration(base * 10);
    if (auto* x = f.get("max"))
      if (auto v = p_.getDuration(*x, true)) {
        if (base_ok && *v < r.backoff_base)
          p_.error(x->value_mark, "backoff 'max' (" + formatDuration(*v) +
                                      ") must not be less than 'base' (" +
                                      formatDuration(r.backoff_base) + ")");
        else
          r.backoff_max = *v;
      }
  }

  void directResponse(const Entry& e, DirectResponseConfig& d) {
    if (!p_.isMap(e)) return;
    constexpr std::string_view kWhere = "in direct_response";
    Entries f = p_.fields(e.value, kWhere, {"status", "body"});
    if (auto* x = p_.need(f, "status", e, kWhere))
      if (auto v = p_.getUint(*x, 200, 599)) d.status = static_cast<int>(*v);
    if (auto* x = f.get("body")) {
      if (!x->value.IsScalar()) {
        p_.typeError(*x, "a string");
      } else {
        d.body = x->value.Scalar();
        if (!d.body.empty() && (d.status == 204 || d.status == 304))
          p_.error(x->value_mark, "a " + std::to_string(d.status) + " response cannot have a body");
      }
    }
  }

  void redirect(const Entry& e, RedirectConfig& r, bool regex) {
    if (!p_.isMap(e, true)) return;
    constexpr std::string_view kWhere = "in redirect";
    Entries f = p_.fields(e.value, kWhere,
                          {"scheme_redirect", "host_redirect", "path_redirect", "prefix_rewrite",
                           "code"});
    if (f.get("scheme_redirect") == nullptr && f.get("host_redirect") == nullptr &&
        f.get("path_redirect") == nullptr && f.get("prefix_rewrite") == nullptr)
      p_.error(e.value_mark,
               "redirect needs at least one of 'scheme_redirect', 'host_redirect', "
               "'path_redirect' or 'prefix_rewrite' (it would redirect to itself)");
    p_.oneOf(f, {"path_redirect", "prefix_rewrite"}, e, "redirect", false);
    if (auto* x = f.get("scheme_redirect"))
      if (auto v = p_.getEnum(*x, {"http", "https"})) r.scheme = *v;
    if (auto* x = f.get("host_redirect"))
      if (auto v = getHost(*x)) r.host = *v;
    if (auto* x = f.get("path_redirect"))
      if (auto v = getPathValue(*x)) r.path = *v;
    if (auto* x = f.get("prefix_rewrite")) {
      if (regex)
        p_.error(x->key_mark, "'prefix_rewrite' cannot be used with a regex match");
      else if (auto v = getPathValue(*x))
        r.prefix_rewrite = *v;
    }
    if (auto* x = f.get("code"))
      if (auto v = p_.getUint(*x, 0, 999)) {
        if (*v == 301 || *v == 302 || *v == 303 || *v == 307 || *v == 308)
          r.code = static_cast<int>(*v);
        else
          p_.error(x->value_mark, "bad redirect code " + std::to_string(*v) +
                                      " (use 301, 302, 303, 307, 308)");
      }
  }

  // request_headers / response_headers: {set: {name: value}, add: {name: value}, remove: [name]}.
  // A name may appear once across set, add and remove.
  void headerOps(const Entry& e, HeaderOpsConfig& ops, bool request) {
    if (!p_.isMap(e, true)) return;
    std::string where = "in " + e.key;
    Entries f = p_.fields(e.value, where, {"set", "add", "remove"});
    std::map<std::string, std::string> seen;  // name -> where it was first named
    auto check = [&](const std::string& name, Mark m, const std::string& op) {
      if (request && name == "host") {
        p_.error(m, "request_headers cannot change 'host' (use route.host_rewrite)");
        return false;
      }
      if (isManagedHeader(name)) {
        p_.error(m, "header " + quote(name) + " is managed by the proxy and cannot be changed");
        return false;
      }
      auto [it, fresh] = seen.emplace(name, op);
      if (!fresh) {
        p_.error(m, "header " + quote(name) + " is already named in " + quote(it->second));
        return false;
      }
      return true;
    };
    for (const Entry& x : f.list) {
      if (x.key == "remove") {
        if (x.value.IsNull() || !p_.isList(x)) continue;
        for (const YAML::Node& node : x.value) {
          Entry item = p_.itemEntry(node, x.value_mark, "header name");
          if (auto name = getHeaderName(item); name && check(*name, item.value_mark, x.key))
            ops.remove.push_back(*name);
        }
        continue;
      }
      if (!p_.isMap(x, true)) continue;
      auto& out = x.key == "set" ? ops.set : ops.add;
      Entries headers = p_.anyFields(x.value, "in " + x.key);
      for (const Entry& h : headers.list) {
        std::string name = lower(h.key);
        if (!isToken(name)) {
          p_.error(h.key_mark, "bad header name " + quote(h.key) + " " + headerNameHint());
          continue;
        }
        auto value = getHeaderValue(h);
        if (check(name, h.key_mark, x.key) && value) out.emplace_back(name, *value);
      }
    }
  }

  // ---- typed values

  std::optional<std::string> getHeaderName(const Entry& e) {
    auto s = p_.getString(e);
    if (!s) return std::nullopt;
    if (!isToken(*s)) {
      p_.error(e.value_mark, "bad header name " + quote(*s) + " " + headerNameHint());
      return std::nullopt;
    }
    return lower(*s);
  }

  // Any scalar, empty allowed, without CR, LF or NUL.
  std::optional<std::string> getHeaderValue(const Entry& e) {
    if (!e.value.IsScalar()) {
      p_.typeError(e, "a string");
      return std::nullopt;
    }
    if (!isFieldValue(e.value.Scalar())) {
      p_.error(e.value_mark, "bad value for " + quote(e.key) + ": must not contain CR, LF or NUL");
      return std::nullopt;
    }
    return e.value.Scalar();
  }

  // A path (prefix, exact path, rewrite, redirect): starts with '/', no query or fragment.
  std::optional<std::string> getPathValue(const Entry& e) {
    auto s = p_.getString(e);
    if (!s) return std::nullopt;
    if (s->front() != '/') {
      p_.error(e.value_mark, quote(e.key) + " must start with '/', got " + quote(*s));
      return std::nullopt;
    }
    if (!isPathText(*s)) {
      p_.error(e.value_mark, quote(e.key) + " must not contain spaces, control characters, "
                                            "non-ASCII bytes (percent-encode them), '?' or '#'");
      return std::nullopt;
    }
    return s;
  }

  // An RE2 pattern; a bad one is reported with RE2's own message.
  std::optional<std::string> getRegex(const Entry& e) {
    auto s = p_.getString(e);
    if (!s) return std::nullopt;
    RE2::Options options;
    options.set_log_errors(false);
    RE2 re(*s, options);
    if (!re.ok()) {
      p_.error(e.value_mark, "bad regex " + quote(*s) + ": " + re.error());
      return std::nullopt;
    }
    return s;
  }

  std::optional<std::string> getHost(const Entry& e) {
    auto s = p_.getString(e);
    if (s && !isHostAndPort(*s)) {
      p_.error(e.value_mark, "bad " + e.key + " " + quote(*s) +
                                 " (use a host name or IP address, optionally with :port)");
      return std::nullopt;
    }
    return s;
  }


 private:
  // ---- per-route filter overrides: {NAME: {disabled: true} | {config: {...}}}. The config
  // itself is the filter's to check (its builder runs on it, like on the listener's).
  void filterOverrides(const Entry& e, RouteConfig& r) {
    if (!p_.isMap(e)) return;
    Entries names = p_.anyFields(e.value, "in filter_overrides");
    for (const auto& n : names.list) {
      const bool known = http_ != nullptr && std::any_of(http_->filters.begin(), http_->filters.end(),
                                                         [&](const HttpFilterConfig& f) { return f.name == n.key; });
      if (!known) {
        std::string listed;
        if (http_ != nullptr)
          for (const auto& f : http_->filters) listed += (listed.empty() ? "" : ", ") + f.name;
        p_.error(n.key_mark, "filter_overrides names " + quote(n.key) +
                                 ", which is not in this listener's filters (" + (listed.empty() ? "none" : listed) + ")");
        continue;
      }
      if (!p_.isMap(n)) continue;
      Entries g = p_.fields(n.value, "in filter override", {"disabled", "config"});
      FilterOverrideConfig o;
      o.name = n.key;
      o.name_mark = n.key_mark;
      o.mark = n.value_mark;
      const Entry* which = p_.oneOf(g, {"disabled", "config"}, n, "filter override", true);
      if (which == nullptr) continue;
      if (which->key == "disabled") {
        auto v = p_.getBool(*which);
        if (!v) continue;
        if (!*v) {
          p_.error(which->value_mark, "'disabled: false' changes nothing (leave the override out)");
          continue;
        }
        o.disabled = true;
      } else {
        o.config = p_.deepNode(which->value, which->value_mark, "in " + n.key + " config");
      }
      r.filter_overrides.push_back(std::move(o));
    }
  }

  Parser& p_;
  HttpNames& names_;
  const HttpConfig* http_ = nullptr;  // the block being read (its filters are parsed first)
};

}  // namespace

void parseVirtualHost(Parser& p, const Entry& item, HttpConfig& h, HttpNames& names) {
  RouteParser(p, names).virtualHost(item, h);
}

}  // namespace ferry::config::internal
