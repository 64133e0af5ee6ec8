#include "filters/http/rbac/rbac_filter.h"

#include <re2/re2.h>

#include <algorithm>

#include "core/log.h"
#include "core/pooled.h"
#include "filters/http/config_util.h"

namespace ferry::filters::http {
using namespace core::http;
using config::NodeReader;
namespace {

using HeaderKind = RbacFilterConfig::HeaderMatch::Kind;

bool headerMatches(const RbacFilterConfig::HeaderMatch& m, const RequestHeaders& h) {
  // The request line's parts under their HTTP/2 names (and Host), like the route matchers.
  const std::string* single = nullptr;
  if (m.name == "host" || m.name == ":authority") single = h.authority.empty() ? nullptr : &h.authority;
  else if (m.name == ":method") single = &h.method;
  else if (m.name == ":path") single = &h.path;
  else if (m.name == ":scheme") single = &h.scheme;
  std::string joined;  // a repeated header: its values joined with ",", in order
  if (single == nullptr && m.name[0] != ':' && m.name != "host") {
    size_t n = 0;
    for (const auto& e : h.headers.entries()) {
      if (e.name != m.name) continue;
      if (n++ == 0) {
        single = &e.value;
        continue;
      }
      if (n == 2) joined = *single;
      joined += ',';
      joined += e.value;
    }
    if (n > 1) single = &joined;
  }
  if (single == nullptr) return false;
  const std::string& v = *single;
  switch (m.kind) {
    case HeaderKind::kPresent: return true;
    case HeaderKind::kExact: return v == m.value;
    case HeaderKind::kPrefix: return v.starts_with(m.value);
    case HeaderKind::kRegex: return RE2::FullMatch(v, *m.re);
  }
  return false;
}

class RbacFilter : public HttpFilter, public core::PerThreadPooled<RbacFilter> {
 public:
  explicit RbacFilter(std::shared_ptr<const RbacFilterConfig> c) : c_(std::move(c)) {}

  FilterStatus onRequestHeaders(RequestHeaders& h, bool) override {
    RbacFilterConfig::Request req;
    req.headers = &h;
    if (c_->uses_client_address) req.client = core::net::parseIpAddress(callbacks_->trustedClientIp());
    req.tls = callbacks_->downstreamConnection().tls().get();
    const int rule = c_->firstMatch(req);
    const bool matched = rule >= 0;
    const bool denied = c_->action == RbacFilterConfig::Action::kAllow ? !matched : matched;
    if (!denied) {
      c_->counters.inc(*callbacks_, RbacFilterConfig::kAllowed);
      return FilterStatus::kContinue;
    }
    const std::string why = matched ? "matches the deny rule on line " + std::to_string(c_->rules[rule].line)
                                    : std::string("matches no allow rule");
    if (c_->shadow) {
      // Shadow mode: counted and logged, never enforced.
      c_->counters.inc(*callbacks_, RbacFilterConfig::kShadowDenied);
      FERRY_LOG(kDebug, "rbac: shadow denial: ", core::log::sv(h.method), " ", core::log::sv(h.path), " from ",
                core::log::sv(callbacks_->trustedClientIp()), " ", why);
      return FilterStatus::kContinue;
    }
    FERRY_LOG(kDebug, "rbac: denied: ", core::log::sv(h.method), " ", core::log::sv(h.path), " from ",
              core::log::sv(callbacks_->trustedClientIp()), " ", why);
    c_->counters.inc(*callbacks_, RbacFilterConfig::kDenied);
    callbacks_->sendLocalReply(403, "access denied\n", ResponseFlag::kRbacDenied);
    return FilterStatus::kStop;
  }

 private:
  std::shared_ptr<const RbacFilterConfig> c_;
};

// ---- config

const NodeReader::Field* exactlyOne(NodeReader& r, const NodeReader::Fields& f,
                                    std::initializer_list<std::string_view> keys, config::Mark parent,
                                    std::string_view what) {
  const NodeReader::Field* first = nullptr;
  for (const auto& x : f.list) {
    if (std::find(keys.begin(), keys.end(), x.key) == keys.end()) continue;
    if (first == nullptr) {
      first = &x;
      continue;
    }
    r.error(x.key_mark, std::string(what) + " has both " + NodeReader::quote(first->key) + " and " +
                            NodeReader::quote(x.key) + " (use exactly one)");
  }
  if (first == nullptr) {
    std::string options;
    size_t i = 0;
    for (std::string_view k : keys) {
      if (i > 0) options += i + 1 == keys.size() ? " or " : ", ";
      options += NodeReader::quote(k);
      ++i;
    }
    r.error(parent, std::string(what) + " needs one of " + options);
  }
  return first;
}

std::shared_ptr<const RE2> regexOf(NodeReader& r, const NodeReader::Field& x) {
  auto v = r.getString(x);
  if (!v) return nullptr;
  RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_shared<const RE2>(*v, options);
  if (!re->ok()) {
    r.error(x.value->mark, "bad regex " + NodeReader::quote(*v) + ": " + re->error());
    return nullptr;
  }
  return re;
}

void readHeaderMatch(NodeReader& r, const NodeReader::Field& item, RbacFilterConfig::Rule& rule) {
  if (!r.isMap(item)) return;
  constexpr std::string_view kWhere = "in header match";
  auto f = r.fields(item, kWhere, {"name", "exact", "prefix", "regex", "present"});
  RbacFilterConfig::HeaderMatch m;
  if (auto* x = r.need(f, "name", item.value->mark, kWhere))
    if (auto v = r.getString(*x)) {
      std::string name = lowerAscii(*v);
      const bool pseudo = name == ":authority" || name == ":method" || name == ":path" || name == ":scheme";
      if (!pseudo && !isHttpToken(name))
        r.error(x->value->mark, "bad header name " + NodeReader::quote(*v));
      m.name = std::move(name);
    }
  if (auto* x = exactlyOne(r, f, {"exact", "prefix", "regex", "present"}, item.value->mark, "header match")) {
    if (x->key == "present") {
      m.kind = HeaderKind::kPresent;
      if (auto v = r.getBool(*x); v && !*v)
        r.error(x->value->mark, "'present' must be true (matching an absent header is not supported)");
    } else if (x->key == "regex") {
      m.kind = HeaderKind::kRegex;
      m.re = regexOf(r, *x);
      if (m.re) m.value = m.re->pattern();
    } else {
      m.kind = x->key == "exact" ? HeaderKind::kExact : HeaderKind::kPrefix;
      if (auto v = r.getString(*x)) m.value = *v;
    }
  }
  rule.headers.push_back(std::move(m));
}

void readRule(NodeReader& r, const NodeReader::Field& item, RbacFilterConfig& out) {
  if (!r.isMap(item)) return;
  constexpr std::string_view kWhere = "in rbac rule";
  auto f = r.fields(item, kWhere, {"client_cidrs", "headers", "path_prefix", "methods", "client_cert_sans"});
  RbacFilterConfig::Rule rule;
  rule.line = item.value->mark.line;
  if (f.list.empty() && item.value->kind == config::ConfigNode::Kind::kMap && item.value->entries.empty())
    r.error(item.value->mark,
            "rbac rule needs at least one of 'client_cidrs', 'headers', 'path_prefix', 'methods' or "
            "'client_cert_sans'");
  if (auto* x = f.get("client_cidrs"))
    if (auto items = listItems(r, *x))
      for (const auto& c : *items) {
        auto v = r.getString(c);
        if (!v) continue;
        std::string why;
        auto range = core::net::parseCidr(*v, &why);
        if (!range) {
          r.error(c.value->mark, "bad CIDR range " + NodeReader::quote(*v) + ": " + why);
          continue;
        }
        rule.client_cidrs.push_back(*range);
      }
  if (auto* x = f.get("headers"))
    if (auto items = listItems(r, *x))
      for (const auto& h : *items) readHeaderMatch(r, h, rule);
  if (auto* x = f.get("path_prefix"))
    if (auto v = r.getString(*x)) {
      if ((*v)[0] != '/' || v->find_first_of("?#") != std::string::npos)
        r.error(x->value->mark, "'path_prefix' must start with '/' and have no query, got " + NodeReader::quote(*v));
      else
        rule.path_prefix = *v;
    }
  if (auto* x = f.get("methods"))
    if (auto items = listItems(r, *x))
      for (const auto& m : *items) {
        auto v = r.getString(m);
        if (!v) continue;
        if (!std::all_of(v->begin(), v->end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
          r.error(m.value->mark, "bad method " + NodeReader::quote(*v) + " (use upper-case letters: GET, POST, ...)");
        else if (std::find(rule.methods.begin(), rule.methods.end(), *v) != rule.methods.end())
          r.error(m.value->mark, "duplicate method " + NodeReader::quote(*v));
        else
          rule.methods.push_back(*v);
      }
  if (auto* x = f.get("client_cert_sans"))
    if (auto items = listItems(r, *x))
      for (const auto& s : *items)
        if (auto v = r.getString(s)) rule.client_cert_sans.push_back(*v);
  if (!rule.client_cidrs.empty()) out.uses_client_address = true;
  out.rules.push_back(std::move(rule));
}

}  // namespace

bool RbacFilterConfig::matches(const Rule& rule, const Request& req) {
  const RequestHeaders& h = *req.headers;
  if (!rule.methods.empty() && std::find(rule.methods.begin(), rule.methods.end(), h.method) == rule.methods.end())
    return false;
  if (!rule.path_prefix.empty()) {
    const std::string_view path = std::string_view(h.path).substr(0, h.path.find('?'));
    if (!path.starts_with(rule.path_prefix)) return false;
  }
  if (!rule.client_cidrs.empty()) {
    if (!req.client) return false;
    if (std::none_of(rule.client_cidrs.begin(), rule.client_cidrs.end(),
                     [&](const core::net::CidrRange& c) { return c.contains(*req.client); }))
      return false;
  }
  for (const auto& m : rule.headers)
    if (!headerMatches(m, h)) return false;
  if (!rule.client_cert_sans.empty()) {
    if (req.tls == nullptr || !req.tls->peer_verified) return false;
    auto has = [&](const std::string& san) {
      return std::find(req.tls->peer_dns.begin(), req.tls->peer_dns.end(), san) != req.tls->peer_dns.end() ||
             std::find(req.tls->peer_uri.begin(), req.tls->peer_uri.end(), san) != req.tls->peer_uri.end();
    };
    if (std::none_of(rule.client_cert_sans.begin(), rule.client_cert_sans.end(), has)) return false;
  }
  return true;
}

int RbacFilterConfig::firstMatch(const Request& req) const {
  for (size_t i = 0; i < rules.size(); ++i)
    if (matches(rules[i], req)) return static_cast<int>(i);
  return -1;
}

std::optional<RbacFilterConfig> parseRbacFilterConfig(const config::HttpFilterConfig& entry, NodeReader& r) {
  if (!entry.config) {
    r.error(entry.mark, "missing required key 'config' in filter");
    return std::nullopt;
  }
  const size_t before = r.errorCount();
  RbacFilterConfig out;
  const NodeReader::Field root{"config", entry.mark, &*entry.config};
  if (!r.isMap(root)) return std::nullopt;
  constexpr std::string_view kWhere = "in rbac config";
  auto f = r.fields(root, kWhere, {"action", "rules", "shadow"});
  if (auto* x = r.need(f, "action", entry.config->mark, kWhere))
    if (auto v = r.getString(*x)) {
      if (*v == "allow")
        out.action = RbacFilterConfig::Action::kAllow;
      else if (*v == "deny")
        out.action = RbacFilterConfig::Action::kDeny;
      else
        r.error(x->value->mark, "bad action " + NodeReader::quote(*v) + " (use allow or deny)");
    }
  if (auto* x = r.need(f, "rules", entry.config->mark, kWhere))
    if (auto items = listItems(r, *x))
      for (const auto& item : *items) readRule(r, item, out);
  if (auto* x = f.get("shadow"))
    if (auto v = r.getBool(*x)) out.shadow = *v;
  if (r.errorCount() != before) return std::nullopt;
  return out;
}

Registry::HttpBuilder rbacFilterBuilder() {
  return [](const config::HttpFilterConfig& entry, NodeReader& reader, const HttpBuildContext& ctx) -> HttpFilterFactory {
    auto parsed = parseRbacFilterConfig(entry, reader);
    if (!parsed) return {};
    parsed->counters.registerAll(ctx, "ferry_rbac_requests_total", {"allowed", "denied", "shadow_denied"},
                                 "Requests the rbac filter looked at, by outcome.");
    auto c = std::make_shared<const RbacFilterConfig>(std::move(*parsed));
    return [c] { return std::make_unique<RbacFilter>(c); };
  };
}

}  // namespace ferry::filters::http
