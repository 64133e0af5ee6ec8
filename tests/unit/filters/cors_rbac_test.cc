// The cors and rbac filters' configs: what they load into, every error at its FILE:LINE:COL,
// origin matching and rule matching (the filters over real sockets: tests/integration/
// cors_rbac_test.cc).
#include <catch2/catch.hpp>

#include "config/node_reader.h"
#include "filters/http/cors/cors_filter.h"
#include "filters/http/rbac/rbac_filter.h"
#include "tests/unit/config/loader_test_util.h"

using namespace ferry::config;
using namespace ferry::config::test;
using ferry::filters::http::CorsFilterConfig;
using ferry::filters::http::RbacFilterConfig;

namespace {

// Lines 1-5; a filter's own `config:` keys start on line 7, column 13 (under "          config:").
std::string withFilter(const std::string& name, const std::string& config_lines) {
  return "listeners:\n"
         "  - name: web\n"
         "    address: 127.0.0.1:8080\n"
         "    http:\n"
         "      filters:\n"
         "        - name: " + name + "\n"
         "          config:\n" + config_lines +
         "      virtual_hosts:\n"
         "        - {name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: api}}]}\n"
         "clusters:\n"
         "  - {name: api, endpoints: [{address: 127.0.0.1:9000}]}\n";
}

CorsFilterConfig cors(const std::string& lines) {
  Config c = ok(load(withFilter("cors", lines)));
  NodeReader r;
  auto out = ferry::filters::http::parseCorsFilterConfig(c.listeners[0].http->filters.at(0), r);
  REQUIRE(out);
  return *out;
}

RbacFilterConfig rbac(const std::string& lines) {
  Config c = ok(load(withFilter("rbac", lines)));
  NodeReader r;
  auto out = ferry::filters::http::parseRbacFilterConfig(c.listeners[0].http->filters.at(0), r);
  REQUIRE(out);
  return *out;
}

std::string corsError(const std::string& lines) { return onlyError(withFilter("cors", lines)); }
std::string rbacError(const std::string& lines) { return onlyError(withFilter("rbac", lines)); }

}  // namespace

TEST_CASE("cors config: keys and defaults", "[cors][config]") {
  CorsFilterConfig c = cors(
      "            allow_origins: [https://app.example.com, {regex: 'https://[a-z]+\\.example\\.org'}, 'null']\n"
      "            allow_methods: [GET, PUT, DELETE]\n"
      "            allow_headers: [Content-Type, X-Token]\n"
      "            expose_headers: [x-request-id]\n"
      "            allow_credentials: true\n"
      "            max_age: 10m\n");
  REQUIRE(c.allow_origins.size() == 3);
  CHECK(c.allow_methods == "GET, PUT, DELETE");
  CHECK(c.allow_headers == "Content-Type, X-Token");
  CHECK(c.expose_headers == "x-request-id");
  CHECK(c.allow_credentials);
  CHECK(c.max_age_s == 600);
  CHECK_FALSE(c.forward_not_matching_preflights);
  CHECK(c.variesByOrigin());

  CorsFilterConfig d = cors("            allow_origins: ['*']\n");
  CHECK(d.allow_methods.empty());
  CHECK(d.allow_headers.empty());
  CHECK(d.expose_headers.empty());
  CHECK_FALSE(d.allow_credentials);
  CHECK_FALSE(d.max_age_s);
  CHECK_FALSE(d.variesByOrigin());  // a lone `*`: the answer is always `*`
  CHECK(cors("            allow_origins: ['*']\n            allow_credentials: true\n").variesByOrigin());
  CHECK(cors("            allow_origins: ['*']\n            max_age: 0s\n").max_age_s == 0);
  CHECK(cors("            allow_origins: ['*']\n            forward_not_matching_preflights: true\n")
            .forward_not_matching_preflights);
}

TEST_CASE("cors: origin matching", "[cors]") {
  CorsFilterConfig c = cors(
      "            allow_origins: [https://app.example.com, 'http://localhost:3000', "
      "{regex: 'https://[a-z0-9-]+\\.preview\\.example\\.com'}]\n");
  CHECK(c.allows("https://app.example.com"));
  CHECK(c.allows("http://localhost:3000"));
  CHECK(c.allows("https://pr-12.preview.example.com"));
  CHECK_FALSE(c.allows("https://app.example.com.evil.com"));  // exact is exact
  CHECK_FALSE(c.allows("http://app.example.com"));            // the scheme counts
  CHECK_FALSE(c.allows("https://app.example.com:8443"));      // and the port
  CHECK_FALSE(c.allows("http://localhost:3001"));
  CHECK_FALSE(c.allows("https://x.preview.example.com.evil.com"));  // regexes match in full
  CHECK_FALSE(c.allows("https://evil.com/https://a.preview.example.com"));
  CHECK_FALSE(c.allows("https://a.b.preview.example.com"));
  CHECK_FALSE(c.allows("null"));
  CHECK_FALSE(c.allows(""));

  CorsFilterConfig any = cors("            allow_origins: ['*']\n");
  CHECK(any.allows("https://anything.example"));
  CHECK(any.allows("null"));
  CHECK(cors("            allow_origins: ['null']\n").allows("null"));
}

TEST_CASE("cors config: errors at FILE:LINE:COL", "[cors][config]") {
  CHECK(onlyError(withFilter("cors", "")) == "t.yaml:7:11: expected a mapping for 'config', got nothing");
  CHECK(corsError("            allow_methods: [GET]\n") == "t.yaml:8:13: missing required key 'allow_origins' in cors config");
  CHECK(corsError("            allow_origins: []\n") == "t.yaml:8:28: 'allow_origins' must not be empty");
  CHECK(corsError("            allow_origins: https://a.com\n") ==
        "t.yaml:8:28: expected a list for 'allow_origins', got 'https://a.com'");
  CHECK(corsError("            allow_origins: [https://a.com/]\n") ==
        "t.yaml:8:29: bad origin 'https://a.com/': an origin is scheme://host[:port], with no path, not even "
        "a trailing '/' (e.g. https://app.example.com)");
  CHECK(corsError("            allow_origins: [a.com]\n") ==
        "t.yaml:8:29: bad origin 'a.com': an origin is scheme://host[:port], with no path, not even a trailing "
        "'/' (e.g. https://app.example.com)");
  CHECK(corsError("            allow_origins: [https://App.com]\n") ==
        "t.yaml:8:29: bad origin 'https://App.com': write it in lower case, as browsers send it");
  CHECK(corsError("            allow_origins: [https://a.com, https://a.com]\n") ==
        "t.yaml:8:44: duplicate origin 'https://a.com'");
  CHECK(corsError("            allow_origins: [{regex: 'https://(a'}]\n") ==
        "t.yaml:8:37: bad regex 'https://(a': missing ): https://(a");
  CHECK(corsError("            allow_origins: [{regexp: x}]\n") ==
        "t.yaml:8:30: unknown key 'regexp' in allow_origins entry (did you mean 'regex'?)");
  CHECK(corsError("            allow_origins: [[a]]\n") ==
        "t.yaml:8:29: expected an origin, '*' or {regex: ...} for 'allow_origins', got a list");
  CHECK(corsError("            allow_origins: ['*']\n            allow_methods: [GET, 'BAD METHOD']\n") ==
        "t.yaml:9:34: bad method 'BAD METHOD'");
  CHECK(corsError("            allow_origins: ['*']\n            allow_headers: [X-A, x-a]\n") ==
        "t.yaml:9:34: duplicate header name 'x-a'");
  CHECK(corsError("            allow_origins: ['*']\n            expose_headers: ['x:y']\n") ==
        "t.yaml:9:30: bad header name 'x:y'");
  CHECK(corsError("            allow_origins: ['*']\n            allow_credentials: yes\n") ==
        "t.yaml:9:32: expected a boolean (true/false) for 'allow_credentials', got 'yes'");
  CHECK(corsError("            allow_origins: ['*']\n            max_age: 1500ms\n") ==
        "t.yaml:9:22: 'max_age' must be whole seconds (Access-Control-Max-Age counts seconds)");
  CHECK(corsError("            allow_origins: ['*']\n            max_age: long\n") ==
        "t.yaml:9:22: bad duration 'long' (use a unit: 250ms, 15s, 5m)");
  CHECK(corsError("            allow_origins: ['*']\n            allow_origin: ['*']\n") ==
        "t.yaml:9:13: unknown key 'allow_origin' in cors config (did you mean 'allow_origins'?)");
}

TEST_CASE("rbac config: keys", "[rbac][config]") {
  RbacFilterConfig c = rbac(
      "            action: deny\n"
      "            shadow: true\n"
      "            rules:\n"
      "              - client_cidrs: [10.0.0.0/8, '::1/128']\n"
      "                headers: [{name: X-Env, exact: prod}, {name: x-debug, present: true}]\n"
      "                path_prefix: /admin/\n"
      "                methods: [POST, DELETE]\n"
      "                client_cert_sans: [spiffe://example.org/ops]\n"
      "              - {path_prefix: /internal/}\n");
  CHECK(c.action == RbacFilterConfig::Action::kDeny);
  CHECK(c.shadow);
  CHECK(c.uses_client_address);
  REQUIRE(c.rules.size() == 2);
  const auto& r = c.rules[0];
  REQUIRE(r.client_cidrs.size() == 2);
  CHECK(r.client_cidrs[0].str() == "10.0.0.0/8");
  CHECK(r.client_cidrs[1].str() == "::1/128");
  REQUIRE(r.headers.size() == 2);
  CHECK(r.headers[0].name == "x-env");
  CHECK(r.path_prefix == "/admin/");
  CHECK(r.methods == std::vector<std::string>{"POST", "DELETE"});
  CHECK(r.client_cert_sans == std::vector<std::string>{"spiffe://example.org/ops"});
  CHECK(r.line == 11);
  CHECK(c.rules[1].line == 16);

  RbacFilterConfig d = rbac("            action: allow\n            rules: [{methods: [GET]}]\n");
  CHECK(d.action == RbacFilterConfig::Action::kAllow);
  CHECK_FALSE(d.shadow);
  CHECK_FALSE(d.uses_client_address);
}

TEST_CASE("rbac: rule matching", "[rbac]") {
  using ferry::core::http::RequestHeaders;
  using ferry::core::net::parseIpAddress;
  RbacFilterConfig c = rbac(
      "            action: allow\n"
      "            rules:\n"
      "              - client_cidrs: [10.0.0.0/8, '2001:db8::/32']\n"
      "                path_prefix: /api/\n"
      "                methods: [GET]\n"
      "              - headers: [{name: x-token, regex: 't-[0-9]+'}, {name: host, prefix: admin.}]\n"
      "              - client_cert_sans: [ops.example.org, spiffe://example.org/ops]\n");
  RequestHeaders h;
  h.method = "GET";
  h.path = "/api/x?y=1";
  h.authority = "www.example.org";
  RbacFilterConfig::Request req{&h, parseIpAddress("10.2.3.4"), nullptr};
  CHECK(c.firstMatch(req) == 0);
  CHECK_FALSE(c.denies(req));
  req.client = parseIpAddress("::ffff:10.2.3.4");
  CHECK(c.firstMatch(req) == 0);
  req.client = parseIpAddress("2001:db8:1::9");
  CHECK(c.firstMatch(req) == 0);
  req.client = parseIpAddress("11.0.0.1");
  CHECK(c.firstMatch(req) == -1);
  CHECK(c.denies(req));
  req.client = std::nullopt;  // unknown: no CIDR matches it
  CHECK(c.firstMatch(req) == -1);
  req.client = parseIpAddress("10.2.3.4");
  h.method = "POST";  // every condition of a rule must hold
  CHECK(c.firstMatch(req) == -1);
  h.method = "GET";
  h.path = "/apix";
  CHECK(c.firstMatch(req) == -1);
  h.path = "/x?/api/";  // the query is not the path
  CHECK(c.firstMatch(req) == -1);

  h.headers.add("x-token", "t-123");
  CHECK(c.firstMatch(req) == -1);  // the host does not match yet
  h.authority = "admin.example.org";
  CHECK(c.firstMatch(req) == 1);
  h.headers.add("x-token", "t-4");  // a repeated header is matched as its values joined with ","
  CHECK(c.firstMatch(req) == -1);
  h.headers.remove("x-token");

  ferry::core::net::TlsSessionInfo tls;
  tls.peer_dns = {"ops.example.org"};
  req.tls = &tls;
  CHECK(c.firstMatch(req) == -1);  // a certificate that was not verified does not count
  tls.peer_verified = true;
  CHECK(c.firstMatch(req) == 2);
  tls.peer_dns = {"dev.example.org"};
  tls.peer_uri = {"spiffe://example.org/ops"};
  CHECK(c.firstMatch(req) == 2);
  tls.peer_uri = {"spiffe://example.org/dev"};
  CHECK(c.firstMatch(req) == -1);

  RbacFilterConfig deny = rbac("            action: deny\n            rules: [{path_prefix: /admin}]\n");
  h.path = "/admin/users";
  CHECK(deny.denies(req));
  h.path = "/public";
  CHECK_FALSE(deny.denies(req));
}

TEST_CASE("rbac config: errors at FILE:LINE:COL", "[rbac][config]") {
  CHECK(rbacError("            rules: [{methods: [GET]}]\n") == "t.yaml:8:13: missing required key 'action' in rbac config");
  CHECK(rbacError("            action: allow\n") == "t.yaml:8:13: missing required key 'rules' in rbac config");
  CHECK(rbacError("            action: permit\n            rules: [{methods: [GET]}]\n") ==
        "t.yaml:8:21: bad action 'permit' (use allow or deny)");
  CHECK(rbacError("            action: allow\n            rules: []\n") == "t.yaml:9:20: 'rules' must not be empty");
  CHECK(rbacError("            action: allow\n            rules: [{}]\n") ==
        "t.yaml:9:21: rbac rule needs at least one of 'client_cidrs', 'headers', 'path_prefix', 'methods' or "
        "'client_cert_sans'");
  CHECK(rbacError("            action: allow\n            rules: [{client_cidrs: [10.0.0.1/8]}]\n") ==
        "t.yaml:9:37: bad CIDR range '10.0.0.1/8': host bits set (use 10.0.0.0/8)");
  CHECK(rbacError("            action: allow\n            rules: [{client_cidrs: ['::1/200']}]\n") ==
        "t.yaml:9:37: bad CIDR range '::1/200': prefix length must be 0-128");
  CHECK(rbacError("            action: allow\n            rules: [{client_cidrs: [localhost]}]\n") ==
        "t.yaml:9:37: bad CIDR range 'localhost': bad address");
  CHECK(rbacError("            action: allow\n            rules: [{client_cidrs: []}]\n") ==
        "t.yaml:9:36: 'client_cidrs' must not be empty");
  CHECK(rbacError("            action: allow\n            rules: [{path_prefix: admin}]\n") ==
        "t.yaml:9:35: 'path_prefix' must start with '/' and have no query, got 'admin'");
  CHECK(rbacError("            action: allow\n            rules: [{methods: [get]}]\n") ==
        "t.yaml:9:32: bad method 'get' (use upper-case letters: GET, POST, ...)");
  CHECK(rbacError("            action: allow\n            rules: [{headers: [{name: x-a}]}]\n") ==
        "t.yaml:9:32: header match needs one of 'exact', 'prefix', 'regex' or 'present'");
  CHECK(rbacError("            action: allow\n            rules: [{headers: [{name: x-a, exact: a, prefix: b}]}]\n") ==
        "t.yaml:9:54: header match has both 'exact' and 'prefix' (use exactly one)");
  CHECK(rbacError("            action: allow\n            rules: [{headers: [{name: x-a, regex: '[a'}]}]\n") ==
        "t.yaml:9:51: bad regex '[a': missing ]: [a");
  CHECK(rbacError("            action: allow\n            rules: [{headers: [{name: x-a, present: false}]}]\n") ==
        "t.yaml:9:53: 'present' must be true (matching an absent header is not supported)");
  CHECK(rbacError("            action: allow\n            rules: [{headers: [{name: 'x a', present: true}]}]\n") ==
        "t.yaml:9:39: bad header name 'x a'");
  CHECK(rbacError("            action: allow\n            rules: [{cidrs: [10.0.0.0/8]}]\n") ==
        "t.yaml:9:22: unknown key 'cidrs' in rbac rule");
  CHECK(rbacError("            action: allow\n            rules: [{methods: [GET]}]\n            shadow: 1\n") ==
        "t.yaml:10:21: expected a boolean (true/false) for 'shadow', got '1'");
}
