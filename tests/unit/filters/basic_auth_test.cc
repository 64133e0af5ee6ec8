// The basic_auth filter's pieces: the htpasswd parser (accepted schemes, each refused kind,
// malformed lines, duplicates, empty files), password verification with libcrypt, the
// Authorization header parser, the credential cache, and the filter's config with its errors
// at FILE:LINE:COL (the filter over real sockets: tests/integration/basic_auth_test.cc). Every
// hash is made here with libcrypt, none is written out by hand.
#include <crypt.h>
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "config/node_reader.h"
#include "filters/http/basic_auth/basic_auth_filter.h"
#include "filters/http/basic_auth/htpasswd.h"
#include "tests/unit/config/loader_test_util.h"

using namespace ferry::config;
using namespace ferry::config::test;
using namespace ferry::filters::http;

namespace {

// A fresh hash of `password` with `prefix` ("$2y$", "$6$", ...; bcrypt at cost 4, the fastest).
std::string makeHash(const std::string& prefix, const std::string& password) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  const unsigned long cost = prefix.rfind("$2", 0) == 0 ? 4 : 0;
  REQUIRE(crypt_gensalt_rn(prefix.c_str(), cost, nullptr, 0, setting, sizeof setting) != nullptr);
  crypt_data d{};
  const char* h = crypt_rn(password.c_str(), setting, &d, sizeof d);
  REQUIRE(h != nullptr);
  REQUIRE(h[0] != '*');
  return h;
}

std::vector<std::string> htpasswdErrors(const std::string& text) {
  std::vector<std::string> errors;
  auto r = parseHtpasswd(text, "users.htpasswd", &errors);
  CHECK_FALSE(r.has_value());
  return errors;
}

std::string onlyHtpasswdError(const std::string& text) {
  auto e = htpasswdErrors(text);
  INFO(Catch::StringMaker<std::vector<std::string>>::convert(e));
  REQUIRE(e.size() == 1);
  return e[0];
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

std::optional<std::pair<std::string, std::string>> basic(const std::string& value) {
  std::array<char, kMaxCredentialBytes> buf;
  auto c = parseBasicAuthorization(value, buf);
  if (!c) return std::nullopt;
  return std::make_pair(std::string(c->user), std::string(c->password));
}

// A directory for htpasswd files, removed at the end.
struct Dir {
  std::string path;
  Dir() {
    char t[] = "/tmp/ferry-basic-auth-XXXXXX";
    REQUIRE(::mkdtemp(t) != nullptr);
    path = t;
  }
  ~Dir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path + "/" + name) << text;
    return path + "/" + name;
  }
};

// Lines 1-7 as in the cors/rbac tests: the filter's own keys start on line 8, column 13.
std::string withBasicAuth(const std::string& config_lines) {
  return "listeners:\n"
         "  - name: web\n"
         "    address: 127.0.0.1:8080\n"
         "    http:\n"
         "      filters:\n"
         "        - name: basic_auth\n"
         "          config:\n" + config_lines +
         "      virtual_hosts:\n"
         "        - {name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: api}}]}\n"
         "clusters:\n"
         "  - {name: api, endpoints: [{address: 127.0.0.1:9000}]}\n";
}

BasicAuthConfig basicAuth(const std::string& lines) {
  Config c = ok(load(withBasicAuth(lines)));
  NodeReader r;
  auto out = parseBasicAuthConfig(c.listeners[0].http->filters.at(0), r, "");
  INFO((r.errors().empty() ? std::string() : r.errors()[0].message));
  REQUIRE(out);
  return *out;
}

}  // namespace

TEST_CASE("htpasswd: bcrypt and SHA-crypt entries, comments and blank lines", "[basic_auth][htpasswd]") {
  const std::string a = makeHash("$2y$", "pw-a"), b = makeHash("$2b$", "pw-b"), c = makeHash("$2a$", "pw-c");
  const std::string d = makeHash("$5$", "pw-d"), e = makeHash("$6$", "pw-e");
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  REQUIRE(crypt_gensalt_rn("$6$", 6000, nullptr, 0, setting, sizeof setting));
  crypt_data cd{};
  const std::string f = crypt_rn("pw-f", setting, &cd, sizeof cd);
  REQUIRE(f.find("$rounds=6000$") == 2);
  const std::string text = "# users\n\nalice:" + a + "\n  bob:" + b + "  \r\n\t# indented comment\ncarol:" + c +
                           "\r\ndave smith:" + d + "\nerin@example.com:" + e + "\nfrank:" + f;  // no final LF
  std::vector<std::string> errors;
  auto h = parseHtpasswd(text, "users.htpasswd", &errors);
  INFO(Catch::StringMaker<std::vector<std::string>>::convert(errors));
  REQUIRE(h);
  CHECK(errors.empty());
  REQUIRE(h->users.size() == 6);
  CHECK(h->users[0].name == "alice");
  CHECK(h->users[0].hash == a);
  CHECK(h->users[0].line == 3);
  CHECK(h->users[1].name == "bob");
  CHECK(h->users[1].hash == b);
  CHECK(h->users[1].line == 4);
  CHECK(h->users[3].name == "dave smith");
  CHECK(h->users[4].name == "erin@example.com");
  CHECK(h->users[5].hash == f);
  CHECK(h->users[5].line == 9);
  // A UTF-8 byte order mark before the first line is not part of the first user's name.
  auto bom = parseHtpasswd("\xEF\xBB\xBF" "alice:" + a + "\n", "users.htpasswd", &errors);
  REQUIRE(bom);
  CHECK(bom->users.at(0).name == "alice");
  crypt_data scratch{};
  const char* pw[] = {"pw-a", "pw-b", "pw-c", "pw-d", "pw-e", "pw-f"};
  for (size_t i = 0; i < 6; ++i) {
    INFO(h->users[i].name);
    CHECK(verifyPassword(h->users[i].hash, pw[i], scratch));
    CHECK_FALSE(verifyPassword(h->users[i].hash, std::string(pw[i]) + "x", scratch));
    CHECK_FALSE(verifyPassword(h->users[i].hash, "", scratch));
  }
}

TEST_CASE("htpasswd: weak and unknown schemes are refused, naming the line, the user and why", "[basic_auth][htpasswd]") {
  // Real hashes of the refused kinds, made by libcrypt (DES and MD5-crypt are still there).
  const std::string md5crypt = makeHash("$1$", "pw");
  const std::string yescrypt = makeHash("$y$", "pw");
  char des_setting[3] = {'a', 'b', '\0'};
  crypt_data cd{};
  const char* des_c = crypt_rn("pw", des_setting, &cd, sizeof cd);
  const std::string des = des_c != nullptr && des_c[0] != '*' ? des_c : "abJnggxhB/yWI";  // DES may be disabled
  REQUIRE(des.size() == 13);
  const std::string good = "alice:" + makeHash("$2y$", "x") + "\n";
  CHECK(onlyHtpasswdError(good + "# comment\nbob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n") ==
        "users.htpasswd:3: user 'bob': MD5 ($apr1$) hashes are refused; use bcrypt (htpasswd -B)");
  CHECK(onlyHtpasswdError(good + "bob:" + md5crypt + "\n") ==
        "users.htpasswd:2: user 'bob': MD5-crypt ($1$) hashes are refused; use bcrypt (htpasswd -B)");
  CHECK(onlyHtpasswdError(good + "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n") ==
        "users.htpasswd:2: user 'bob': SHA-1 ({SHA}) hashes are refused; use bcrypt (htpasswd -B)");
  CHECK(onlyHtpasswdError(good + "bob:" + des + "\n") ==
        "users.htpasswd:2: user 'bob': DES crypt hashes are refused (or this is a plain-text password); use "
        "bcrypt (htpasswd -B)");
  CHECK(onlyHtpasswdError(good + "bob:correct horse\n") ==
        "users.htpasswd:2: user 'bob': plain-text passwords are refused; use bcrypt (htpasswd -B)");
  CHECK(onlyHtpasswdError(good + "bob:" + yescrypt + "\n") ==
        "users.htpasswd:2: user 'bob': the hash scheme $y$ is not supported (bcrypt $2y$ or SHA-crypt $5$/$6$ "
        "are); use bcrypt (htpasswd -B)");
  // Never the password or hash itself in a message.
  for (const auto& e : htpasswdErrors(good + "bob:hunter2\n")) CHECK(e.find("hunter2") == std::string::npos);
}

TEST_CASE("htpasswd: malformed lines, duplicates and empty files", "[basic_auth][htpasswd]") {
  const std::string bcrypt = makeHash("$2y$", "x");
  const std::string sha = makeHash("$6$", "x");
  const std::string good = "alice:" + bcrypt + "\n";
  CHECK(onlyHtpasswdError(good + "bob\n") == "users.htpasswd:2: expected USER:HASH, found no ':'");
  CHECK(onlyHtpasswdError(good + ":" + bcrypt + "\n") == "users.htpasswd:2: empty user name (expected USER:HASH)");
  CHECK(onlyHtpasswdError(good + "bob:\n") == "users.htpasswd:2: user 'bob': no password hash");
  CHECK(onlyHtpasswdError(good + "bob:" + bcrypt + ":comment\n") ==
        "users.htpasswd:2: user 'bob': more than one ':' (expected USER:HASH)");
  CHECK(onlyHtpasswdError(good + "b\x01ob:" + bcrypt + "\n") == "users.htpasswd:2: the user name has a control character");
  CHECK(onlyHtpasswdError(good + "bob:" + bcrypt.substr(0, 59) + "\n") ==
        "users.htpasswd:2: user 'bob': malformed bcrypt hash (expected $2y$NN$ and 53 characters of ./A-Za-z0-9)");
  CHECK(onlyHtpasswdError(good + "bob:$2y$" + "99" + bcrypt.substr(6) + "\n") ==
        "users.htpasswd:2: user 'bob': bcrypt cost 99 is out of range (04-31)");
  CHECK(onlyHtpasswdError(good + "bob:" + sha.substr(0, sha.size() - 1) + "\n") ==
        "users.htpasswd:2: user 'bob': malformed SHA-512-crypt hash (expected $6$[rounds=N$]SALT$ and 86 "
        "characters of ./A-Za-z0-9)");
  CHECK(onlyHtpasswdError(good + "bob:$5$salt\n") ==
        "users.htpasswd:2: user 'bob': malformed SHA-256-crypt hash (expected $5$[rounds=N$]SALT$ and 43 "
        "characters of ./A-Za-z0-9)");
  CHECK(onlyHtpasswdError(good + "\nalice:" + sha + "\n") ==
        "users.htpasswd:3: user 'alice' appears again (first on line 1)");
  CHECK(onlyHtpasswdError("") == "users.htpasswd: no users in the file (it is empty)");
  CHECK(onlyHtpasswdError("# nobody yet\n\n") == "users.htpasswd: no users in the file (only comments and blank lines)");
  // Every bad line is reported, up to a limit.
  std::string many = good;
  for (int i = 0; i < 15; ++i) many += "u" + std::to_string(i) + ":plain\n";
  auto e = htpasswdErrors(many);
  REQUIRE(e.size() == 11);
  CHECK(e[0] == "users.htpasswd:2: user 'u0': plain-text passwords are refused; use bcrypt (htpasswd -B)");
  CHECK(e[9].rfind("users.htpasswd:11: ", 0) == 0);
  CHECK(e[10] == "users.htpasswd: 5 more errors");
}

TEST_CASE("htpasswd: verification refuses a password with NUL and compares whole hashes", "[basic_auth][htpasswd]") {
  crypt_data scratch{};
  const std::string h = makeHash("$2y$", "secret");
  CHECK(verifyPassword(h, "secret", scratch));
  CHECK_FALSE(verifyPassword(h, std::string("secret\0more", 11), scratch));
  CHECK_FALSE(verifyPassword(h, "Secret", scratch));
  CHECK_FALSE(verifyPassword(h.substr(0, 59), "secret", scratch));
  CHECK_FALSE(verifyPassword(h, std::string(600, 'a'), scratch));
}

TEST_CASE("basic_auth: the Authorization header", "[basic_auth]") {
  using P = std::pair<std::string, std::string>;
  CHECK(basic("Basic " + b64("alice:secret")) == P{"alice", "secret"});
  CHECK(basic("basic " + b64("alice:secret")) == P{"alice", "secret"});
  CHECK(basic("BASIC   " + b64("alice:secret") + "  ") == P{"alice", "secret"});
  CHECK(basic("Basic " + b64("alice:se:cr:et")) == P{"alice", "se:cr:et"});  // the first ':' splits
  CHECK(basic("Basic " + b64("alice:")) == P{"alice", ""});
  CHECK(basic("Basic " + b64("J\xc3\xb6rg:p\xc3\xa4ss")) == P{"J\xc3\xb6rg", "p\xc3\xa4ss"});  // UTF-8
  std::string unpadded = b64("alice:secret1");
  while (unpadded.back() == '=') unpadded.pop_back();
  CHECK(basic("Basic " + unpadded) == P{"alice", "secret1"});
  CHECK_FALSE(basic(""));
  CHECK_FALSE(basic("Basic"));
  CHECK_FALSE(basic("Basic "));
  CHECK_FALSE(basic("Bearer " + b64("alice:secret")));
  CHECK_FALSE(basic("Basicx " + b64("alice:secret")));
  CHECK_FALSE(basic("Basic " + b64("alice")));        // no ':'
  CHECK_FALSE(basic("Basic " + b64(":secret")));      // no user
  CHECK_FALSE(basic("Basic !!!!"));                   // not base64
  CHECK_FALSE(basic("Basic YWxpY2U6c2VjcmV0=="));    // wrong padding
  CHECK_FALSE(basic("Basic YWxpY2U6c2VjcmV0M"));     // a lone 6-bit group
  CHECK_FALSE(basic("Basic " + b64("alice:secret") + " extra"));
  CHECK_FALSE(basic("Basic YQ"));                     // "a": no ':'
  CHECK_FALSE(basic("Basic YR=="));                   // non-canonical: leftover bits set
  CHECK(basic("Basic " + b64("a:" + std::string(kMaxCredentialBytes - 2, 'p'))).has_value());
  CHECK_FALSE(basic("Basic " + b64("a:" + std::string(kMaxCredentialBytes - 1, 'p'))));  // too long
}

TEST_CASE("basic_auth: the credential cache remembers pairs per user, bounded", "[basic_auth]") {
  std::array<uint8_t, 32> key{};
  key[0] = 1;
  CredentialCache c(64, key);
  CHECK(c.slots() == 64);
  const auto d = c.digest("alice", "secret");
  CHECK_FALSE(c.contains(d, 0));
  c.insert(d, 0);
  CHECK(c.contains(d, 0));
  CHECK_FALSE(c.contains(d, 1));                            // another user's index
  CHECK_FALSE(c.contains(c.digest("alice", "secreT"), 0));  // another password
  CHECK(c.digest("ab", "c") != c.digest("a", "bc"));        // the user is length-prefixed
  CHECK(c.digest("alice", "secret") == d);
  std::array<uint8_t, 32> other_key = key;
  other_key[0] = 2;
  CHECK(CredentialCache(64, other_key).digest("alice", "secret") != d);  // keyed
  // Bounded: many more pairs than slots; the table stays its size and old pairs get evicted.
  for (int i = 0; i < 1000; ++i) c.insert(c.digest("u" + std::to_string(i), "p"), static_cast<uint32_t>(i));
  CHECK(c.slots() == 64);
  int kept = 0;
  for (int i = 0; i < 1000; ++i) kept += c.contains(c.digest("u" + std::to_string(i), "p"), static_cast<uint32_t>(i));
  CHECK(kept <= 64);
  CHECK(kept > 0);
}

TEST_CASE("basic_auth config: keys, defaults and the htpasswd file", "[basic_auth][config]") {
  Dir dir;
  const std::string file = dir.write("users.htpasswd", "alice:" + makeHash("$2y$", "a") + "\nbob:" + makeHash("$6$", "b") + "\n");
  BasicAuthConfig d = basicAuth("            htpasswd: " + file + "\n");
  CHECK(d.htpasswd_path == file);
  REQUIRE(d.users.users.size() == 2);
  CHECK(d.users.users[1].name == "bob");
  CHECK(d.realm == "ferry");
  CHECK(d.forward_username_header.empty());
  CHECK(d.strip_authorization);
  CHECK(d.cache_entries == 1024);
  BasicAuthConfig c = basicAuth("            htpasswd: " + file +
                                "\n            realm: Staff only\n            forward_username_header: X-Remote-User\n"
                                "            strip_authorization: false\n            cache_entries: 1000\n");
  CHECK(c.realm == "Staff only");
  CHECK(c.forward_username_header == "x-remote-user");
  CHECK_FALSE(c.strip_authorization);
  CHECK(c.cache_entries == 1024);  // rounded up to a power of two
  CHECK(basicAuth("            htpasswd: " + file + "\n            cache_entries: 0\n").cache_entries == 0);
  // A relative path is relative to the config file's directory.
  Config rel = ok(ferry::proxy::loadConfigString(withBasicAuth("            htpasswd: users.htpasswd\n"),
                                                 dir.path + "/ferry.yaml", builtinRegistry()));
  NodeReader r;
  auto parsed = parseBasicAuthConfig(rel.listeners[0].http->filters.at(0), r, rel.dir);
  REQUIRE(parsed);
  CHECK(parsed->users.users.size() == 2);
  CHECK(parsed->htpasswd_path == "users.htpasswd");
  CHECK(onlyError(withBasicAuth("            htpasswd: users.htpasswd\n")) ==
        "t.yaml:8:23: cannot read htpasswd file 'users.htpasswd': No such file or directory");
}

TEST_CASE("basic_auth config: errors at FILE:LINE:COL", "[basic_auth][config]") {
  Dir dir;
  const std::string good = dir.write("good", "alice:" + makeHash("$2y$", "a") + "\n");
  auto err = [&](const std::string& lines) { return onlyError(withBasicAuth(lines)); };
  CHECK(onlyError(withBasicAuth("")) == "t.yaml:7:11: expected a mapping for 'config', got nothing");
  CHECK(err("            realm: x\n") == "t.yaml:8:13: missing required key 'htpasswd' in basic_auth config");
  CHECK(err("            htpasswd: " + good + "\n            realms: x\n") ==
        "t.yaml:9:13: unknown key 'realms' in basic_auth config (did you mean 'realm'?)");
  CHECK(err("            htpasswd: " + dir.path + "/nope\n") ==
        "t.yaml:8:23: cannot read htpasswd file '" + dir.path + "/nope': No such file or directory");
  CHECK(err("            htpasswd: " + dir.path + "\n") ==
        "t.yaml:8:23: cannot read htpasswd file '" + dir.path + "': is a directory");
  const std::string md5 = dir.write("md5", "alice:" + makeHash("$2y$", "a") + "\n# old entry\nbob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n");
  CHECK(err("            htpasswd: " + md5 + "\n") ==
        "t.yaml:8:23: " + md5 + ":3: user 'bob': MD5 ($apr1$) hashes are refused; use bcrypt (htpasswd -B)");
  const std::string empty = dir.write("empty", "");
  CHECK(err("            htpasswd: " + empty + "\n") == "t.yaml:8:23: " + empty + ": no users in the file (it is empty)");
  CHECK(err("            htpasswd: " + good + "\n            realm: 'a\"b'\n") ==
        "t.yaml:9:20: bad realm 'a\"b': at most 256 characters, without '\"', '\\' or control characters");
  CHECK(err("            htpasswd: " + good + "\n            forward_username_header: 'x user'\n") ==
        "t.yaml:9:38: bad header name 'x user'");
  CHECK(err("            htpasswd: " + good + "\n            forward_username_header: Authorization\n") ==
        "t.yaml:9:38: 'forward_username_header' cannot be 'authorization' (a header Ferry or HTTP itself gives a "
        "meaning; use e.g. x-remote-user)");
  CHECK(err("            htpasswd: " + good + "\n            strip_authorization: maybe\n") ==
        "t.yaml:9:34: expected a boolean (true/false) for 'strip_authorization', got 'maybe'");
  CHECK(err("            htpasswd: " + good + "\n            cache_entries: 2000000\n") ==
        "t.yaml:9:28: 'cache_entries' must be between 0 and 1048576, got 2000000");
  // Several bad lines: one error each, all at the key's value.
  const std::string two = dir.write("two", "a:plain\nb:{SHA}x\n");
  LoadResult r = load(withBasicAuth("            htpasswd: " + two + "\n"));
  REQUIRE(r.errors.size() == 2);
  CHECK(r.errors[0].format() == "t.yaml:8:23: " + two + ":1: user 'a': plain-text passwords are refused; use bcrypt (htpasswd -B)");
  CHECK(r.errors[1].format() == "t.yaml:8:23: " + two + ":2: user 'b': SHA-1 ({SHA}) hashes are refused; use bcrypt (htpasswd -B)");
}
