// The basic_auth HTTP filter against the real binary over loopback, HTTP/1.1 and h2c (curl
// --http2-prior-knowledge): right credentials pass (bcrypt and SHA-512 users); wrong, missing
// and malformed ones get 401 with the WWW-Authenticate challenge, flag BA and the outcome
// counters; the user name forwarded and Authorization stripped (as the upstream saw them), a
// client's own user header removed; the htpasswd file read again by a reload; per-route
// overrides. Parser and config details: tests/unit/filters/basic_auth_test.cc. Hashes are made
// here with libcrypt (bcrypt at cost 5, to keep the tests fast).
#include <crypt.h>
#include <signal.h>

#include <catch2/catch.hpp>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_upstream.h"

using namespace ferry::testing;

namespace {

const std::string kFlagKey = "ferry_downstream_response_flags_total{listener=\"web\",flag=\"BA\"}";
std::string outcomeKey(const std::string& result) {
  return "ferry_basic_auth_requests_total{listener=\"web\",result=\"" + result + "\"}";
}

std::string makeHash(const std::string& prefix, const std::string& password) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  const unsigned long cost = prefix.rfind("$2", 0) == 0 ? 5 : 0;
  REQUIRE(crypt_gensalt_rn(prefix.c_str(), cost, nullptr, 0, setting, sizeof setting) != nullptr);
  crypt_data d{};
  const char* h = crypt_rn(password.c_str(), setting, &d, sizeof d);
  REQUIRE(h != nullptr);
  REQUIRE(h[0] != '*');
  return h;
}

std::string b64(std::string_view in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], k[v & 63]};
  }
  if (in.size() - i == 1) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += {k[v >> 18], k[(v >> 12) & 63], '=', '='};
  } else if (in.size() - i == 2) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
  }
  return out;
}

std::string authHeader(const std::string& user, const std::string& password) {
  return "Authorization: Basic " + b64(user + ":" + password);
}

// The http: keys for a basic_auth filter with `config_lines` (indented 12).
std::string basicAuthYaml(const std::string& config_lines) {
  return "      response_flags_header: true\n"
         "      filters:\n"
         "        - name: basic_auth\n"
         "          config:\n" + config_lines;
}

// One curl exchange with its response headers.
struct Curl {
  std::string version;
  int status = 0;
  std::string headers;
  std::string body;
  std::string err;
  std::string header(const std::string& name) const {
    auto lower = [](std::string s) {
      for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return s;
    };
    const std::string want = lower(name) + ":";
    size_t pos = 0;
    while (pos < headers.size()) {
      size_t end = headers.find("\r\n", pos);
      if (end == std::string::npos) end = headers.size();
      const std::string line = headers.substr(pos, end - pos);
      if (lower(line).rfind(want, 0) == 0) {
        std::string v = line.substr(want.size());
        while (!v.empty() && v.front() == ' ') v.erase(0, 1);
        return v;
      }
      pos = end + 2;
    }
    return "";
  }
};

Curl curl(const TempDir& dir, const std::vector<std::string>& args) {
  const std::string body_file = dir.path() + "/curl-body", head_file = dir.path() + "/curl-headers";
  std::vector<std::string> argv{"curl", "-sS", "-o", body_file, "-D", head_file, "-w", "%{http_version} %{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = runProcess(argv, 10s);
  Curl c;
  c.err = r.err;
  const size_t sp = r.out.find(' ');
  if (sp != std::string::npos) {
    c.version = r.out.substr(0, sp);
    c.status = std::atoi(r.out.c_str() + sp + 1);
  }
  c.body = readFile(body_file);
  c.headers = readFile(head_file);
  return c;
}

void checkChallenge(const HttpResponse& r, const std::string& realm = "ferry") {
  CHECK(r.status == 401);
  CHECK(r.header("www-authenticate") == "Basic realm=\"" + realm + "\", charset=\"UTF-8\"");
  CHECK(r.header("x-ferry-flags") == "BA");
  CHECK(r.body == "authentication required\n");
}

}  // namespace

TEST_CASE("basic_auth: right credentials pass; wrong, missing and malformed ones get 401 BA with the challenge",
          "[basic_auth]") {
  HttpUpstream up;
  const std::string users = "# test users\nalice:" + makeHash("$2y$", "secret") + "\n\nbob:" +
                            makeHash("$6$", "hunter2") + "\n";
  auto f = FerryProcess::start(
      FerryConfig{.workers = 2,
                  .http_extra = basicAuthYaml("            htpasswd: users.htpasswd\n"),  // next to ferry.yaml
                  .clusters = {{"up", {up.port()}}}}
          .yaml(),
      {}, {{"users.htpasswd", users}});
  const uint16_t port = f->port("web");

  // Allowed: a bcrypt user and a SHA-512 user.
  auto r = httpRequest(port, "GET", "/a", "", {authHeader("alice", "secret")});
  CHECK(r.status == 200);
  CHECK(r.body == "ok:/a");
  CHECK_FALSE(r.hasHeader("www-authenticate"));
  CHECK_FALSE(r.hasHeader("x-ferry-flags"));
  r = httpRequest(port, "GET", "/b", "", {authHeader("bob", "hunter2")});
  CHECK(r.status == 200);

  // Denied: a wrong password, a wrong case, an unknown user, another user's password.
  for (const auto& [user, pw] : std::vector<std::pair<std::string, std::string>>{
           {"alice", "Secret"}, {"alice", "secret "}, {"carol", "secret"}, {"bob", "secret"}, {"Alice", "secret"}}) {
    INFO(user << ":" << pw);
    checkChallenge(httpRequest(port, "GET", "/x", "", {authHeader(user, pw)}));
  }
  // Missing or malformed.
  checkChallenge(httpRequest(port, "GET", "/x"));
  for (const std::string& h : {std::string("Authorization: Basic !!!!"), std::string("Authorization: Bearer abc"),
                               "Authorization: Basic " + b64("alice"), std::string("Authorization: Basic"),
                               "Authorization: Digest " + b64("alice:secret")}) {
    INFO(h);
    checkChallenge(httpRequest(port, "GET", "/x", "", {h}));
  }
  // Two Authorization headers: refused even if one is right.
  checkChallenge(httpRequest(port, "GET", "/x", "", {authHeader("alice", "secret"), authHeader("bob", "hunter2")}));

  CHECK(metricValue(*f, outcomeKey("allowed")) == 2);
  CHECK(metricValue(*f, outcomeKey("denied")) == 5);
  CHECK(metricValue(*f, outcomeKey("missing")) == 7);
  CHECK(metricValue(*f, kFlagKey) == 12);
  CHECK(metricValue(*f, "ferry_downstream_requests_total{listener=\"web\",code=\"4xx\"}") == 12);
  CHECK(up.requestCount() == 2);

  // On a keep-alive connection: right, wrong, right, missing, right. A 401 leaves the
  // connection usable, and a wrong password after a right one is not let through by the cache.
  auto c = TcpClient::connect(port);
  REQUIRE(c);
  auto send = [&](const std::string& extra) {
    REQUIRE(c->sendAll("GET /k HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n"));
    return readHttpResponse(*c);
  };
  CHECK(send(authHeader("alice", "secret") + "\r\n").status == 200);
  checkChallenge(send(authHeader("alice", "secreT") + "\r\n"));
  CHECK(send(authHeader("alice", "secret") + "\r\n").status == 200);
  checkChallenge(send(""));
  CHECK(send(authHeader("alice", "secret") + "\r\n").status == 200);
  CHECK(send(authHeader("bob", "hunter2") + "\r\n").status == 200);
  CHECK(waitMetric(f->adminPort(), outcomeKey("allowed"), 6));
  CHECK(metricValue(*f, outcomeKey("denied")) == 6);
  // The log never shows a password.
  CHECK(f->log().find("secret") == std::string::npos);
  CHECK(f->log().find("hunter2") == std::string::npos);
}

TEST_CASE("basic_auth: each worker remembers verified credentials, never failures; a reload forgets them",
          "[basic_auth][reload]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.workers = 1,
                  .http_extra = basicAuthYaml("            htpasswd: users.htpasswd\n"),
                  .clusters = {{"up", {up.port()}}}}
          .yaml(),
      {}, {{"users.htpasswd", "alice:" + makeHash("$2y$", "secret") + "\nbob:" + makeHash("$6$", "pw") + "\n"}});
  const uint16_t port = f->port("web");
  const std::string hashed = "ferry_basic_auth_credential_checks_total{listener=\"web\",result=\"hashed\"}";
  const std::string hit = "ferry_basic_auth_credential_checks_total{listener=\"web\",result=\"cache_hit\"}";
  auto c = TcpClient::connect(port);
  REQUIRE(c);
  auto status = [&](TcpClient& conn, const std::string& user, const std::string& pw) {
    REQUIRE(conn.sendAll("GET /k HTTP/1.1\r\nHost: x\r\n" + authHeader(user, pw) + "\r\n\r\n"));
    return readHttpResponse(conn).status;
  };
  for (int i = 0; i < 5; ++i) CHECK(status(*c, "alice", "secret") == 200);
  CHECK(metricValue(*f, hashed) == 1);
  CHECK(metricValue(*f, hit) == 4);
  // Failures are hashed every time, and never answered from the cache.
  CHECK(status(*c, "alice", "wrong") == 401);
  CHECK(status(*c, "alice", "wrong") == 401);
  CHECK(status(*c, "alice", "secret\t") == 401);
  CHECK(status(*c, "carol", "secret") == 401);  // an unknown user costs a hash check too
  CHECK(metricValue(*f, hashed) == 5);
  CHECK(metricValue(*f, hit) == 4);
  // The cache is the worker's, not the connection's; users are told apart.
  auto c2 = TcpClient::connect(port);
  REQUIRE(c2);
  CHECK(status(*c2, "alice", "secret") == 200);
  CHECK(status(*c2, "bob", "pw") == 200);
  CHECK(status(*c2, "bob", "pw") == 200);
  CHECK(status(*c2, "bob", "secret") == 401);
  CHECK(metricValue(*f, hashed) == 7);
  CHECK(metricValue(*f, hit) == 6);
  // A reload builds the filter again with an empty cache.
  f->signal(SIGHUP);
  REQUIRE(f->waitForLog("config reloaded (SIGHUP): version 2", 10s));
  CHECK(status(*c, "alice", "secret") == 200);
  CHECK(status(*c, "alice", "secret") == 200);
  CHECK(metricValue(*f, hashed) == 8);
  CHECK(metricValue(*f, hit) == 7);
  CHECK(metricValue(*f, outcomeKey("allowed")) == 10);
  CHECK(metricValue(*f, outcomeKey("denied")) == 5);
}

TEST_CASE("basic_auth: the user name goes upstream in its header, Authorization does not; a client's own is removed",
          "[basic_auth]") {
  HttpUpstream up;
  const std::string users = "alice:" + makeHash("$2y$", "secret") + "\n";
  SECTION("forward_username_header, strip_authorization by default") {
    auto f = FerryProcess::start(
        FerryConfig{.http_extra = basicAuthYaml("            htpasswd: '{dir}/users.htpasswd'\n"
                                                "            realm: Staff only\n"
                                                "            forward_username_header: X-Remote-User\n"),
                    .clusters = {{"up", {up.port()}}}}
            .yaml(),
        {}, {{"users.htpasswd", users}});
    const uint16_t port = f->port("web");
    auto r = httpRequest(port, "GET", "/a", "",
                         {authHeader("alice", "secret"), "X-Remote-User: mallory", "x-remote-user: root"});
    CHECK(r.status == 200);
    // A spoofed header on a refused request changes nothing either: it never reaches the upstream.
    checkChallenge(httpRequest(port, "GET", "/b", "", {"X-Remote-User: alice"}), "Staff only");
    REQUIRE(up.waitRequests(1));
    CHECK(up.requestCount() == 1);
    const auto req = up.requests().at(0);
    CHECK(req.target == "/a");
    size_t n = 0;
    for (const auto& [name, value] : req.headers) n += name == "x-remote-user";
    CHECK(n == 1);
    CHECK(req.header("x-remote-user") == "alice");
    CHECK_FALSE(req.hasHeader("authorization"));
  }
  SECTION("strip_authorization: false keeps it; without forward_username_header the user header passes") {
    auto f = FerryProcess::start(
        FerryConfig{.http_extra = basicAuthYaml("            htpasswd: users.htpasswd\n"
                                                "            strip_authorization: false\n"),
                    .clusters = {{"up", {up.port()}}}}
            .yaml(),
        {}, {{"users.htpasswd", users}});
    auto r = httpRequest(f->port("web"), "GET", "/a", "", {authHeader("alice", "secret"), "X-Remote-User: x"});
    CHECK(r.status == 200);
    REQUIRE(up.waitRequests(1));
    const auto req = up.requests().at(0);
    CHECK(req.header("authorization") == "Basic " + b64("alice:secret"));
    CHECK(req.header("x-remote-user") == "x");
  }
}

TEST_CASE("basic_auth: a reload reads the htpasswd file again", "[basic_auth][reload]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = basicAuthYaml("            htpasswd: users.htpasswd\n"),
                  .clusters = {{"up", {up.port()}}}}
          .yaml(),
      {}, {{"users.htpasswd", "alice:" + makeHash("$2y$", "old") + "\n"}});
  const uint16_t port = f->port("web");
  CHECK(httpRequest(port, "GET", "/", "", {authHeader("alice", "old")}).status == 200);
  // A keep-alive connection that authenticated (and cached) alice before the reload.
  auto c = TcpClient::connect(port);
  REQUIRE(c);
  REQUIRE(c->sendAll("GET /k HTTP/1.1\r\nHost: x\r\n" + authHeader("alice", "old") + "\r\n\r\n"));
  CHECK(readHttpResponse(*c).status == 200);

  // alice leaves, bob arrives, the config file itself is unchanged.
  const std::string path = f->dir() + "/users.htpasswd";
  const std::string tmp = f->dir() + "/users.htpasswd.new";
  {
    std::FILE* out = std::fopen(tmp.c_str(), "w");
    REQUIRE(out);
    const std::string text = "bob:" + makeHash("$2b$", "new") + "\n";
    std::fwrite(text.data(), 1, text.size(), out);
    std::fclose(out);
    REQUIRE(std::rename(tmp.c_str(), path.c_str()) == 0);
  }
  f->signal(SIGHUP);
  REQUIRE(f->waitForLog("config reloaded (SIGHUP): version 2", 10s));
  checkChallenge(httpRequest(port, "GET", "/", "", {authHeader("alice", "old")}));
  CHECK(httpRequest(port, "GET", "/", "", {authHeader("bob", "new")}).status == 200);
  // The kept-alive connection runs the new filter config too: alice is gone there as well.
  REQUIRE(c->sendAll("GET /k HTTP/1.1\r\nHost: x\r\n" + authHeader("alice", "old") + "\r\n\r\n"));
  checkChallenge(readHttpResponse(*c));
  REQUIRE(c->sendAll("GET /k HTTP/1.1\r\nHost: x\r\n" + authHeader("bob", "new") + "\r\n\r\n"));
  CHECK(readHttpResponse(*c).status == 200);

  // A file with a refused entry: the reload is rejected with the file's line, bob stays.
  {
    std::FILE* out = std::fopen(tmp.c_str(), "w");
    REQUIRE(out);
    const std::string text = "bob:" + makeHash("$2b$", "new") + "\neve:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n";
    std::fwrite(text.data(), 1, text.size(), out);
    std::fclose(out);
    REQUIRE(std::rename(tmp.c_str(), path.c_str()) == 0);
  }
  f->signal(SIGHUP);
  REQUIRE(f->waitForLog("config reload (SIGHUP) rejected", 10s));
  CHECK(f->waitForLog("users.htpasswd:2: user 'eve': MD5 ($apr1$) hashes are refused; use bcrypt (htpasswd -B)"));
  CHECK(httpRequest(port, "GET", "/", "", {authHeader("bob", "new")}).status == 200);
  CHECK(metricValue(*f, "ferry_basic_auth_requests_total{listener=\"web\",result=\"allowed\"}") >= 1);
}

TEST_CASE("basic_auth: a route disables it, another runs it with another htpasswd", "[basic_auth][override]") {
  HttpUpstream up;
  FerryConfig c{
      .http_extra = basicAuthYaml("            htpasswd: users.htpasswd\n"
                                  "            forward_username_header: x-user\n"),
      .routes = {Route{.match = "{prefix: /public}", .cluster = "up",
                       .extra = "              filter_overrides: {basic_auth: {disabled: true}}\n"},
                 Route{.match = "{prefix: /admin}", .cluster = "up",
                       .extra = "              filter_overrides:\n"
                                "                basic_auth:\n"
                                "                  config: {htpasswd: admins.htpasswd, realm: admin, "
                                "forward_username_header: x-admin}\n"},
                 Route{.match = "{prefix: /}", .cluster = "up"}},
      .clusters = {{"up", {up.port()}}}};
  auto f = FerryProcess::start(c.yaml(), {},
                               {{"users.htpasswd", "alice:" + makeHash("$2y$", "a-pw") + "\n"},
                                {"admins.htpasswd", "root:" + makeHash("$2y$", "r-pw") + "\n"}});
  const uint16_t port = f->port("web");
  // /public: no credentials needed.
  auto r = httpRequest(port, "GET", "/public/x");
  CHECK(r.status == 200);
  CHECK(r.body == "ok:/public/x");
  // /: the listener's users.
  checkChallenge(httpRequest(port, "GET", "/x"));
  CHECK(httpRequest(port, "GET", "/x", "", {authHeader("alice", "a-pw")}).status == 200);
  checkChallenge(httpRequest(port, "GET", "/x", "", {authHeader("root", "r-pw")}));
  // /admin: the admins only, under their realm.
  checkChallenge(httpRequest(port, "GET", "/admin/x", "", {authHeader("alice", "a-pw")}), "admin");
  r = httpRequest(port, "GET", "/admin/x", "", {authHeader("root", "r-pw")});
  CHECK(r.status == 200);
  CHECK(r.body == "ok:/admin/x");
  REQUIRE(up.waitRequests(3));
  const auto reqs = up.requests();
  REQUIRE(reqs.size() == 3);
  CHECK_FALSE(reqs[0].hasHeader("x-user"));
  CHECK(reqs[1].header("x-user") == "alice");
  CHECK(reqs[2].header("x-admin") == "root");
  CHECK_FALSE(reqs[2].hasHeader("x-user"));
}

TEST_CASE("basic_auth: HTTP/2 clients get the same answers", "[basic_auth][http2]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = basicAuthYaml("            htpasswd: users.htpasswd\n"
                                              "            forward_username_header: x-remote-user\n"),
                  .clusters = {{"up", {up.port()}}}}
          .yaml(),
      {}, {{"users.htpasswd", "alice:" + makeHash("$2y$", "secret") + "\n"}});
  const std::string url = "http://127.0.0.1:" + std::to_string(f->port("web")) + "/h2";
  TempDir dir;
  Curl ok = curl(dir, {"--http2-prior-knowledge", "-u", "alice:secret", "-H", "x-remote-user: eve", url});
  INFO(ok.err);
  CHECK(ok.version == "2");
  CHECK(ok.status == 200);
  CHECK(ok.body == "ok:/h2");
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{}, std::vector<std::string>{"-u", "alice:wrong"},
        std::vector<std::string>{"-H", "authorization: Basic %%%"}}) {
    std::vector<std::string> args{"--http2-prior-knowledge"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(url);
    Curl no = curl(dir, args);
    CHECK(no.version == "2");
    CHECK(no.status == 401);
    CHECK(no.header("www-authenticate") == "Basic realm=\"ferry\", charset=\"UTF-8\"");
    CHECK(no.header("x-ferry-flags") == "BA");
    CHECK(no.body == "authentication required\n");
  }
  REQUIRE(up.waitRequests(1));
  CHECK(up.requestCount() == 1);
  CHECK(up.requests().at(0).header("x-remote-user") == "alice");
  CHECK_FALSE(up.requests().at(0).hasHeader("authorization"));
  CHECK(metricValue(*f, outcomeKey("allowed")) == 1);
  CHECK(metricValue(*f, outcomeKey("denied")) == 1);
  CHECK(metricValue(*f, outcomeKey("missing")) == 2);
}
