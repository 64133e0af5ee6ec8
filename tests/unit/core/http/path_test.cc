#include "core/http/path.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using ferry::core::http::normalizePath;
using ferry::core::http::PathResult;

namespace {

struct Case {
  const char* target;
  const char* path;   // nullptr = kInvalid
  const char* query;  // checked when path != nullptr
  bool merge = false;
};

void check(const Case& c) {
  INFO("target: " << c.target << " merge_slashes: " << c.merge);
  std::string path = "junk", query = "junk";
  PathResult r = normalizePath(c.target, c.merge, &path, &query);
  if (!c.path) {
    CHECK(r == PathResult::kInvalid);
    return;
  }
  REQUIRE(r == PathResult::kOk);
  CHECK(path == c.path);
  CHECK(query == c.query);
}

}  // namespace

TEST_CASE("normalizePath: unchanged paths and the query", "[path]") {
  const std::vector<Case> cases = {
      {"/", "/", ""},
      {"/a/b/c", "/a/b/c", ""},
      {"/a/b/", "/a/b/", ""},
      {"/v1/users?id=7&x=%zz", "/v1/users", "?id=7&x=%zz"},  // query verbatim, '%' unchecked
      {"/a?", "/a", "?"},
      {"/a?b?c/../d", "/a", "?b?c/../d"},  // only the first '?' splits; no dots in the query
      {"/a%3f?q", "/a%3F", "?q"},
      {"/a.b/c..d/.e/..f", "/a.b/c..d/.e/..f", ""},  // dots inside names are not dot segments
      {"/a//b", "/a//b", ""},                          // no merge by default
      {"/~user/a-b_c.d", "/~user/a-b_c.d", ""},
      {"/a:b@c!$&'()*+,;=", "/a:b@c!$&'()*+,;=", ""},
  };
  for (const auto& c : cases) check(c);
}

TEST_CASE("normalizePath: percent-encoding", "[path]") {
  const std::vector<Case> cases = {
      {"/%41%62%7E%2d%5F%2E%30", "/Ab~-_.0", ""},  // unreserved decoded
      {"/a%2Fb", "/a%2Fb", ""},                    // %2F kept
      {"/a%2fb", "/a%2Fb", ""},                    // ... with upper-case hex
      {"/a%3ab%c3%a9", "/a%3Ab%C3%A9", ""},        // other escapes kept, hex upper-cased
      {"/a%20b", "/a%20b", ""},
      {"/a%0Ab", "/a%0Ab", ""},  // an encoded control stays encoded (harmless)
      {"/%25", "/%25", ""},      // an encoded '%' is not decoded (no double decoding)
      {"/%2541", "/%2541", ""},
      {"/a%2F..%2Fb", "/a%2F..%2Fb", ""},  // not a dot segment: %2F is no separator
      {"/a%", nullptr, nullptr},
      {"/a%4", nullptr, nullptr},
      {"/a%4g", nullptr, nullptr},
      {"/a%g4", nullptr, nullptr},
      {"/a%%41", nullptr, nullptr},
      {"/a%00", nullptr, nullptr},
  };
  for (const auto& c : cases) check(c);
}

TEST_CASE("normalizePath: dot segments", "[path]") {
  const std::vector<Case> cases = {
      {"/public/../admin", "/admin", ""},
      {"/a/./b", "/a/b", ""},
      {"/a/b/..", "/a/", ""},
      {"/a/b/../", "/a/", ""},
      {"/a/.", "/a/", ""},
      {"/.", "/", ""},
      {"/./", "/", ""},
      {"/a/..", "/", ""},
      {"/a/b/../../c", "/c", ""},
      {"/a/b/./../c/./d/..", "/a/c/", ""},
      {"/a/../b?x=/../y", "/b", "?x=/../y"},
      // Encoded dots are decoded first.
      {"/public/%2e%2e/admin", "/admin", ""},
      {"/public/%2E./admin", "/admin", ""},
      {"/public/.%2e/admin", "/admin", ""},
      {"/a/%2e/b", "/a/b", ""},
      {"/a/%2E", "/a/", ""},
      // Climbing above the root.
      {"/..", nullptr, nullptr},
      {"/../", nullptr, nullptr},
      {"/../a", nullptr, nullptr},
      {"/a/../..", nullptr, nullptr},
      {"/a/../../b", nullptr, nullptr},
      {"/%2e%2e/etc/passwd", nullptr, nullptr},
      {"/a/./../../b", nullptr, nullptr},
      // Without merging, an empty segment is a segment (RFC 3986).
      {"/a//..", "/a/", ""},
      {"/a//../b", "/a/b", ""},
      {"//..", "/", ""},
  };
  for (const auto& c : cases) check(c);
}

TEST_CASE("normalizePath: merge_slashes", "[path]") {
  const std::vector<Case> cases = {
      {"/a//b", "/a/b", "", true},
      {"//a///b//", "/a/b/", "", true},
      {"//", "/", "", true},
      {"/a//../b", "/b", "", true},  // merged first, then dots removed
      {"//..", nullptr, nullptr, true},
      {"/a/b?x=//y", "/a/b", "?x=//y", true},  // the query is untouched
      {"/a%2F%2Fb", "/a%2F%2Fb", "", true},     // encoded slashes are not merged
      {"/a/.//b", "/a/b", "", true},
  };
  for (const auto& c : cases) check(c);
}

TEST_CASE("normalizePath: rejected targets", "[path]") {
  const std::vector<Case> cases = {
      {"", nullptr, nullptr},
      {"a/b", nullptr, nullptr},
      {"*", nullptr, nullptr},
      {"http://h/a", nullptr, nullptr},
      {"/a#frag", nullptr, nullptr},
      {"/a?b#frag", nullptr, nullptr},
      {"/a b", nullptr, nullptr},
      {"/a\tb", nullptr, nullptr},
      {"/a\rb", nullptr, nullptr},
      {"/a?x\r\nInjected: 1", nullptr, nullptr},
      {"/a\x7f", nullptr, nullptr},
      {"/caf\xc3\xa9", nullptr, nullptr},
      {"/a?caf\xc3\xa9", nullptr, nullptr},
  };
  for (const auto& c : cases) check(c);
  std::string p, q;
  CHECK(normalizePath(std::string_view("/a\0b", 4), false, &p, &q) == PathResult::kInvalid);
}

TEST_CASE("normalizePath: query_out may be null", "[path]") {
  std::string p;
  REQUIRE(normalizePath("/a/./b?x", false, &p, nullptr) == PathResult::kOk);
  CHECK(p == "/a/b");
}

TEST_CASE("normalizePath: idempotent on its own output", "[path]") {
  const char* targets[] = {"/a/%2e%2e/b%2f%7e/./c//d/..", "/x%3a/%41/../y", "//a//b/./"};
  for (bool merge : {false, true}) {
    for (const char* t : targets) {
      std::string p1, p2, q;
      REQUIRE(normalizePath(t, merge, &p1, &q) == PathResult::kOk);
      REQUIRE(normalizePath(p1, merge, &p2, &q) == PathResult::kOk);
      CHECK(p1 == p2);
    }
  }
}
