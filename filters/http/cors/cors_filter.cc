#include "filters/http/cors/cors_filter.h"

#include <re2/re2.h>

#include <memory>

#include "core/pooled.h"
#include "filters/http/config_util.h"

namespace ferry::filters::http {
using namespace core::http;
using config::NodeReader;
namespace {

using Kind = CorsFilterConfig::Origin::Kind;

// Adds `Origin` to the response's Vary unless it is there already (or Vary is `*`).
void addVaryOrigin(HeaderMap& h) {
  HeaderMap::Entry* only = nullptr;
  size_t n = 0;
  for (auto& e : h.mutableEntries()) {
    if (!HeaderMap::equalsIgnoreCase(e.name, "vary")) continue;
    ++n;
    only = &e;
    std::string_view v = e.value;
    size_t pos = 0;
    while (pos <= v.size()) {
      size_t comma = v.find(',', pos);
      std::string_view t = v.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
      while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
      while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
      if (t == "*" || HeaderMap::equalsIgnoreCase(t, "origin")) return;
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
    }
  }
  if (n == 1 && !only->value.empty()) {
    only->value += ", Origin";
    return;
  }
  h.add("vary", "Origin");
}

class CorsFilter : public HttpFilter, public core::PerThreadPooled<CorsFilter> {
 public:
  explicit CorsFilter(std::shared_ptr<const CorsFilterConfig> c) : c_(std::move(c)) {}

  FilterStatus onRequestHeaders(RequestHeaders& h, bool) override {
    const std::string* origin = h.headers.get("origin");
    if (origin == nullptr) return FilterStatus::kContinue;
    const bool allowed = c_->allows(*origin);
    if (h.method == "OPTIONS" && h.headers.has("access-control-request-method")) {
      c_->counters.inc(*callbacks_, allowed ? CorsFilterConfig::kPreflightAllowed : CorsFilterConfig::kPreflightDenied);
      if (!allowed && c_->forward_not_matching_preflights) return FilterStatus::kContinue;
      answerPreflight(allowed ? origin : nullptr);
      return FilterStatus::kStop;
    }
    c_->counters.inc(*callbacks_, allowed ? CorsFilterConfig::kOriginAllowed : CorsFilterConfig::kOriginDenied);
    if (allowed) origin_ = *origin;  // echoed unless the answer is a plain `*`
    allowed_ = allowed;
    return FilterStatus::kContinue;
  }

  FilterStatus onResponseHeaders(ResponseHeaders& r, bool) override {
    if (preflight_) return FilterStatus::kContinue;  // our own answer, complete already
    if (c_->variesByOrigin()) addVaryOrigin(r.headers);
    if (!allowed_) return FilterStatus::kContinue;
    setAllowOrigin(r.headers, origin_);
    if (!c_->expose_headers.empty()) r.headers.set("access-control-expose-headers", c_->expose_headers);
    return FilterStatus::kContinue;
  }

 private:
  // Access-Control-Allow-Origin, and -Credentials with it.
  void setAllowOrigin(HeaderMap& h, std::string_view origin) {
    // `*` is sent as `*` only without credentials (the spec refuses `*` with credentials) and
    // when it is what allowed the origin.
    const bool star = !c_->allow_credentials && !c_->variesByOrigin();
    h.set("access-control-allow-origin", star ? std::string_view("*") : origin);
    if (c_->allow_credentials) h.set("access-control-allow-credentials", "true");
  }

  // The 204 for a preflight, with the CORS headers when the origin is allowed (`origin` not
  // null), without them otherwise (the browser then fails the preflight).
  void answerPreflight(const std::string* origin) {
    preflight_ = true;
    auto r = makeResponseHeaders();
    r->status = 204;
    if (origin != nullptr) {
      setAllowOrigin(r->headers, *origin);
      if (!c_->allow_methods.empty()) r->headers.add("access-control-allow-methods", c_->allow_methods);
      if (!c_->allow_headers.empty()) r->headers.add("access-control-allow-headers", c_->allow_headers);
      if (c_->max_age_s) r->headers.add("access-control-max-age", std::to_string(*c_->max_age_s));
    }
    r->headers.add("vary", "Origin");
    callbacks_->streamInfo().details = "cors_preflight";
    callbacks_->encodeHeaders(std::move(r), true);
  }

  std::shared_ptr<const CorsFilterConfig> c_;
  std::string origin_;
  bool allowed_ = false;
  bool preflight_ = false;
};

// An exact origin as browsers serialise it: "null", or scheme "://" host [":" port], lower
// case, with no path. "" when fine, else why not.
std::string originProblem(std::string_view o) {
  if (o == "null") return {};
  const size_t sep = o.find("://");
  const std::string_view scheme = sep == std::string_view::npos ? std::string_view() : o.substr(0, sep);
  const std::string_view rest = sep == std::string_view::npos ? std::string_view() : o.substr(sep + 3);
  const bool scheme_ok = !scheme.empty() && scheme[0] >= 'a' && scheme[0] <= 'z' &&
                         std::all_of(scheme.begin(), scheme.end(), [](char c) {
                           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
                         });
  if (!scheme_ok || rest.empty() ||
      rest.find_first_of("/?#@ \t") != std::string_view::npos)
    return "an origin is scheme://host[:port], with no path, not even a trailing '/' "
           "(e.g. https://app.example.com)";
  if (std::any_of(o.begin(), o.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
    return "write it in lower case, as browsers send it";
  return {};
}

void readOrigin(NodeReader& r, const NodeReader::Field& item, CorsFilterConfig& out) {
  CorsFilterConfig::Origin o;
  if (item.value->kind == config::ConfigNode::Kind::kMap) {
    auto f = r.fields(item, "in allow_origins entry", {"regex"});
    if (f.list.empty() && !item.value->entries.empty()) return;  // unknown keys, reported
    auto* x = r.need(f, "regex", item.value->mark, "in allow_origins entry");
    if (x == nullptr) return;
    auto v = r.getString(*x);
    if (!v) return;
    RE2::Options options;
    options.set_log_errors(false);
    auto re = std::make_shared<const RE2>(*v, options);
    if (!re->ok()) {
      r.error(x->value->mark, "bad regex " + NodeReader::quote(*v) + ": " + re->error());
      return;
    }
    o.kind = Kind::kRegex;
    o.value = *v;
    o.re = std::move(re);
  } else {
    if (item.value->kind != config::ConfigNode::Kind::kScalar) {
      r.typeError(item, "an origin, '*' or {regex: ...}");
      return;
    }
    auto v = r.getString(item);
    if (!v) return;
    if (*v == "*") {
      o.kind = Kind::kAny;
    } else if (std::string why = originProblem(*v); !why.empty()) {
      r.error(item.value->mark, "bad origin " + NodeReader::quote(*v) + ": " + why);
      return;
    }
    o.value = *v;
  }
  for (const auto& e : out.allow_origins)
    if (e.kind == o.kind && e.value == o.value) {
      r.error(item.value->mark, "duplicate origin " + NodeReader::quote(o.value));
      return;
    }
  out.allow_origins.push_back(std::move(o));
}

// A list of tokens joined with ", " (methods: case kept, compared exactly; header names
// compared case-insensitively).
std::optional<std::string> readTokenList(NodeReader& r, const NodeReader::Field& f, std::string_view what,
                                         bool case_insensitive) {
  auto items = listItems(r, f);
  if (!items) return std::nullopt;
  std::string joined;
  std::vector<std::string> seen;
  bool ok = true;
  for (const auto& item : *items) {
    auto v = r.getString(item);
    if (!v) {
      ok = false;
      continue;
    }
    if (!isHttpToken(*v)) {
      r.error(item.value->mark, "bad " + std::string(what) + " " + NodeReader::quote(*v));
      ok = false;
      continue;
    }
    std::string key = case_insensitive ? lowerAscii(*v) : *v;
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      r.error(item.value->mark, "duplicate " + std::string(what) + " " + NodeReader::quote(*v));
      ok = false;
      continue;
    }
    seen.push_back(std::move(key));
    if (!joined.empty()) joined += ", ";
    joined += *v;
  }
  if (!ok) return std::nullopt;
  return joined;
}

}  // namespace

bool CorsFilterConfig::allows(std::string_view origin) const {
  for (const auto& o : allow_origins) {
    switch (o.kind) {
      case Kind::kAny: return true;
      case Kind::kExact:
        if (origin == o.value) return true;
        break;
      case Kind::kRegex:
        if (RE2::FullMatch(re2::StringPiece(origin.data(), origin.size()), *o.re)) return true;
        break;
    }
  }
  return false;
}

bool CorsFilterConfig::variesByOrigin() const {
  if (allow_credentials) return true;
  return !(allow_origins.size() == 1 && allow_origins[0].kind == Kind::kAny);
}

std::optional<CorsFilterConfig> parseCorsFilterConfig(const config::HttpFilterConfig& entry, NodeReader& r) {
  if (!entry.config) {
    r.error(entry.mark, "missing required key 'config' in filter");
    return std::nullopt;
  }
  const size_t before = r.errorCount();
  CorsFilterConfig out;
  const NodeReader::Field root{"config", entry.mark, &*entry.config};
  if (!r.isMap(root)) return std::nullopt;
  constexpr std::string_view kWhere = "in cors config";
  auto f = r.fields(root, kWhere,
                    {"allow_origins", "allow_methods", "allow_headers", "expose_headers", "allow_credentials",
                     "max_age", "forward_not_matching_preflights"});
  if (auto* x = r.need(f, "allow_origins", entry.config->mark, kWhere))
    if (auto items = listItems(r, *x))
      for (const auto& item : *items) readOrigin(r, item, out);
  if (auto* x = f.get("allow_methods"))
    if (auto v = readTokenList(r, *x, "method", false)) out.allow_methods = *v;
  if (auto* x = f.get("allow_headers"))
    if (auto v = readTokenList(r, *x, "header name", true)) out.allow_headers = *v;
  if (auto* x = f.get("expose_headers"))
    if (auto v = readTokenList(r, *x, "header name", true)) out.expose_headers = *v;
  if (auto* x = f.get("allow_credentials"))
    if (auto v = r.getBool(*x)) out.allow_credentials = *v;
  if (auto* x = f.get("max_age"))
    if (auto v = r.getDuration(*x, false)) {
      if (v->count() % 1000 != 0)
        r.error(x->value->mark, "'max_age' must be whole seconds (Access-Control-Max-Age counts seconds)");
      else
        out.max_age_s = v->count() / 1000;
    }
  if (auto* x = f.get("forward_not_matching_preflights"))
    if (auto v = r.getBool(*x)) out.forward_not_matching_preflights = *v;
  if (r.errorCount() != before) return std::nullopt;
  return out;
}

Registry::HttpBuilder corsFilterBuilder() {
  return [](const config::HttpFilterConfig& entry, NodeReader& reader, const HttpBuildContext& ctx) -> HttpFilterFactory {
    auto parsed = parseCorsFilterConfig(entry, reader);
    if (!parsed) return {};
    parsed->counters.registerAll(ctx, "ferry_cors_requests_total",
                                 {"preflight_allowed", "preflight_denied", "origin_allowed", "origin_denied"},
                                 "Requests with an Origin header the cors filter looked at, by outcome.");
    auto c = std::make_shared<const CorsFilterConfig>(std::move(*parsed));
    return [c] { return std::make_unique<CorsFilter>(c); };
  };
}

}  // namespace ferry::filters::http
