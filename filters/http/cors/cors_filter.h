// cors: Cross-Origin Resource Sharing for browsers (the Fetch standard's CORS protocol).
// A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered here with a
// 204 and never reaches the upstream; an actual request from an allowed origin goes on and its
// response gets Access-Control-Allow-Origin (and -Credentials, -Expose-Headers); a request from
// any other origin goes on untouched, and its response gets no CORS headers (the browser then
// keeps the response from the page). The whole config is one immutable object shared by every
// stream's filter. Worker-local filter; one per stream.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "filters/http/outcome_counters.h"
#include "filters/registry.h"

namespace re2 {
class RE2;
}

namespace ferry::filters::http {

struct CorsFilterConfig {
  // ferry_cors_requests_total{listener,result}: requests with an Origin, by outcome.
  enum Outcome : size_t { kPreflightAllowed, kPreflightDenied, kOriginAllowed, kOriginDenied };
  OutcomeCounters<4> counters;
  struct Origin {
    enum class Kind { kExact, kAny, kRegex };
    Kind kind = Kind::kExact;
    std::string value;                  // the origin, or the pattern (full match)
    std::shared_ptr<const re2::RE2> re;  // kRegex
  };
  std::vector<Origin> allow_origins;  // at least one
  // The header values, joined with ", " ("" = the header is not sent).
  std::string allow_methods;
  std::string allow_headers;
  std::string expose_headers;
  bool allow_credentials = false;
  std::optional<int64_t> max_age_s;  // Access-Control-Max-Age on preflights
  // A preflight from an origin not allowed goes upstream instead of being answered here
  // without CORS headers.
  bool forward_not_matching_preflights = false;

  // Whether `origin` (the request's Origin value) is allowed.
  bool allows(std::string_view origin) const;
  // Whether Access-Control-Allow-Origin depends on the request's origin (anything but a lone
  // `*` without credentials): responses then carry Vary: Origin.
  bool variesByOrigin() const;
};

// Reads `config:` of a cors entry (required); nullopt after reporting errors.
std::optional<CorsFilterConfig> parseCorsFilterConfig(const config::HttpFilterConfig& entry,
                                                      config::NodeReader& reader);
Registry::HttpBuilder corsFilterBuilder();

}  // namespace ferry::filters::http
