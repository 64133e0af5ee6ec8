// rbac: access control on who asks for what. `action: allow` lets through only requests that
// match one of the rules; `action: deny` refuses those that match one. A rule matches when all
// of its conditions hold: the client address (after PROXY protocol and the trusted
// x-forwarded-for hops) in one of its CIDR ranges, every header matcher, the path prefix, one
// of the methods, one of the verified client certificate's SANs. A refusal is a 403 with flag
// RBAC; `shadow: true` only logs (debug) what would have been refused. The whole config is one
// immutable object shared by every stream's filter. Worker-local filter; one per stream.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/http/header_map.h"
#include "core/net/cidr.h"
#include "core/net/connection_info.h"
#include "filters/http/outcome_counters.h"
#include "filters/registry.h"

namespace re2 {
class RE2;
}

namespace ferry::filters::http {

struct RbacFilterConfig {
  // ferry_rbac_requests_total{listener,result}: allowed, denied, shadow_denied.
  enum Outcome : size_t { kAllowed, kDenied, kShadowDenied };
  OutcomeCounters<3> counters;
  enum class Action { kAllow, kDeny };
  struct HeaderMatch {
    enum class Kind { kExact, kPrefix, kRegex, kPresent };
    std::string name;  // lower-case
    Kind kind = Kind::kPresent;
    std::string value;
    std::shared_ptr<const re2::RE2> re;  // kRegex (full match)
  };
  struct Rule {
    std::vector<core::net::CidrRange> client_cidrs;  // any; empty = any client
    std::vector<HeaderMatch> headers;                // all
    std::string path_prefix;                         // "" = any path
    std::vector<std::string> methods;                // any; empty = any method
    std::vector<std::string> client_cert_sans;       // any DNS or URI SAN; empty = no condition
    int line = 0;                                    // where it is written, for logs
  };
  // What a rule looks at in a request.
  struct Request {
    const core::http::RequestHeaders* headers = nullptr;
    std::optional<core::net::IpAddress> client;     // nullopt: unknown (matches no CIDR)
    const core::net::TlsSessionInfo* tls = nullptr;  // null: not TLS
  };

  Action action = Action::kAllow;
  bool shadow = false;
  std::vector<Rule> rules;  // at least one
  bool uses_client_address = false;  // some rule has client_cidrs

  static bool matches(const Rule& rule, const Request& req);
  // The index of the first rule `req` matches, or -1.
  int firstMatch(const Request& req) const;
  // Whether the request is refused (before shadow mode is taken into account).
  bool denies(const Request& req) const {
    const bool matched = firstMatch(req) >= 0;
    return action == Action::kAllow ? !matched : matched;
  }
};

// Reads `config:` of an rbac entry (required); nullopt after reporting errors.
std::optional<RbacFilterConfig> parseRbacFilterConfig(const config::HttpFilterConfig& entry,
                                                      config::NodeReader& reader);
Registry::HttpBuilder rbacFilterBuilder();

}  // namespace ferry::filters::http
