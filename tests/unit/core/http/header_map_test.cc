#include "core/http/header_map.h"

#include <catch2/catch.hpp>
#include <memory>
#include <string>

using ferry::core::http::HeaderMap;

TEST_CASE("HeaderMap keeps order, lower-cases names and looks up case-insensitively", "[headers]") {
  HeaderMap h;
  h.add("Content-Type", "text/plain");
  h.add("X-A", "1");
  h.add("x-a", "2");
  REQUIRE(h.size() == 3);
  REQUIRE(h.entries()[0].name == "content-type");
  REQUIRE(*h.get("CONTENT-TYPE") == "text/plain");
  REQUIRE(*h.get("x-A") == "1");
  REQUIRE(h.count("X-a") == 2);
  REQUIRE(h.getAll("x-a") == "1, 2");
  REQUIRE(h.get("missing") == nullptr);
  REQUIRE(h.byteSize() == std::string("content-typetext/plainx-a1x-a2").size());
}

TEST_CASE("HeaderMap set replaces all values in place; remove drops all", "[headers]") {
  HeaderMap h;
  h.add("a", "1");
  h.add("b", "x");
  h.add("A", "2");
  h.set("a", "3");
  REQUIRE(h.size() == 2);
  REQUIRE(h.entries()[0].name == "a");
  REQUIRE(h.entries()[0].value == "3");
  h.set("c", "new");
  REQUIRE(h.entries().back().name == "c");
  REQUIRE(h.remove("B") == 1);
  REQUIRE_FALSE(h.has("b"));
  REQUIRE(h.remove("b") == 0);
}

TEST_CASE("HeaderMap clear() keeps room, but a reused map shows only its new headers", "[headers][reuse]") {
  HeaderMap h;
  h.add("X-A-Header-Name-Longer-Than-SSO", std::string(100, 'a'));
  h.add("b", "2");
  h.add("c", "3");
  h.clear();
  REQUIRE(h.empty());
  REQUIRE(h.entries().empty());
  REQUIRE(h.get("x-a-header-name-longer-than-sso") == nullptr);
  REQUIRE(h.byteSize() == 0);
  h.add("D", "4");
  REQUIRE(h.size() == 1);
  REQUIRE(h.entries()[0].name == "d");
  REQUIRE(h.entries()[0].value == "4");
  REQUIRE(h.getAll("b").empty());
  REQUIRE(h.count("c") == 0);
  REQUIRE(h.byteSize() == 2);

  // What remove() and set() drop goes behind the live entries: never seen again, and the
  // live ones keep their order.
  h.add("e", "5");
  h.add("d", "6");
  h.add("f", "7");
  REQUIRE(h.remove("D") == 2);
  REQUIRE(h.size() == 2);
  REQUIRE(h.entries()[0].name == "e");
  REQUIRE(h.entries()[1].name == "f");
  h.add("e", "8");
  h.set("e", "9");
  REQUIRE(h.size() == 2);
  REQUIRE(h.entries()[0].value == "9");
  REQUIRE(h.entries()[1].name == "f");
  REQUIRE(h.count("e") == 1);
  size_t removed = h.removeIf([](const HeaderMap::Entry& e) { return e.name == "f"; });
  REQUIRE(removed == 1);
  REQUIRE(h.size() == 1);
  h.add("g", "10");
  REQUIRE(h.entries()[1].name == "g");
  REQUIRE(h.entries()[1].value == "10");

  // Copies and moves carry the live entries only; a moved-from map is empty and usable.
  HeaderMap copy = h;
  REQUIRE(copy.size() == 2);
  REQUIRE(copy.getAll("e") == "9");
  HeaderMap target;
  target.add("stale", "x");
  target.add("stale2", "y");
  target.add("stale3", "z");
  target.clear();
  target = copy;
  REQUIRE(target.size() == 2);
  REQUIRE_FALSE(target.has("stale"));
  HeaderMap moved = std::move(h);
  REQUIRE(moved.size() == 2);
  REQUIRE(h.empty());  // NOLINT(bugprone-use-after-move): documented state
  h.add("z", "1");
  REQUIRE(h.size() == 1);
  // A parser's appendEntry() gets an empty entry even where a longer one was.
  moved.clear();
  HeaderMap::Entry& e = moved.appendEntry();
  REQUIRE(e.name.empty());
  REQUIRE(e.value.empty());
  // clearAndTrim() empties too.
  copy.clearAndTrim();
  REQUIRE(copy.empty());
  copy.add("y", "2");
  REQUIRE(copy.size() == 1);
  REQUIRE(copy.entries()[0].name == "y");
}

TEST_CASE("Recycled request and response heads come back empty", "[headers][reuse]") {
  using namespace ferry::core::http;
  const RequestHeaders* first = nullptr;
  {
    RequestHeadersPtr h = makeRequestHeaders();
    h->method = "PROPFIND";
    h->path = "/a/path/long/enough/to/be/on/the/heap?and=a&query=too";
    h->authority = "an.authority.example.com:8443";
    h->scheme = "https";
    h->version_minor = 0;
    for (int i = 0; i < 40; ++i) h->headers.add("x-header-" + std::to_string(i), std::string(50, 'v'));
    first = h.get();
  }
  RequestHeadersPtr h = makeRequestHeaders();
  CHECK(h.get() == first);  // this thread's pool gave the same object back
  CHECK(h->method.empty());
  CHECK(h->path.empty());
  CHECK(h->authority.empty());
  CHECK(h->scheme.empty());
  CHECK(h->version_major == 1);
  CHECK(h->version_minor == 1);
  CHECK(h->headers.empty());
  CHECK_FALSE(h->headers.has("x-header-0"));

  const ResponseHeaders* first_response = nullptr;
  {
    ResponseHeadersPtr r = makeResponseHeaders();
    r->status = 503;
    r->reason = "A Reason Phrase Longer Than Fifteen";
    r->headers.add("x-only-the-first", "1");
    first_response = r.get();
  }
  ResponseHeadersPtr r = makeResponseHeaders();
  CHECK(r.get() == first_response);
  CHECK(r->status == 200);
  CHECK(r->reason.empty());
  CHECK(r->headers.empty());

  // A head made with std::make_unique converts, and is recycled as well.
  RequestHeadersPtr made = std::make_unique<RequestHeaders>();
  made->method = "GET";
  const RequestHeaders* made_ptr = made.get();
  made.reset();
  RequestHeadersPtr again = makeRequestHeaders();
  CHECK(again.get() == made_ptr);
  CHECK(again->method.empty());
}

// lowerInPlace works 8 bytes at a time: every byte value at every position of every length up
// to 24 must come out as the byte-by-byte ASCII rule says (A-Z to a-z, everything else kept).
TEST_CASE("HeaderMap::lowerInPlace lower-cases A-Z only, for every byte at every offset", "[headers]") {
  auto ref = [](std::string s) {
    for (char& c : s)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    return s;
  };
  const std::string fill = "Content-Type-X-FORWARDED@[`{~Z";
  std::string wrong;
  for (size_t len = 0; len <= 24; ++len) {
    for (size_t at = 0; at < len; ++at)
      for (int b = 0; b < 256; ++b) {
        std::string s = fill.substr(0, len);
        s[at] = static_cast<char>(b);
        std::string got = s;
        HeaderMap::lowerInPlace(got.data(), got.size());
        if (got != ref(s)) wrong += "len " + std::to_string(len) + " at " + std::to_string(at) + " byte " + std::to_string(b) + "; ";
      }
  }
  INFO(wrong.substr(0, 2000));
  CHECK(wrong.empty());
  CHECK(HeaderMap::lower("X-Request-ID") == "x-request-id");
}

// sameIgnoreCase compares 8 bytes at a time too (and the tail as an overlapping word): at
// every position of every length up to 24, a byte against every other byte must compare as
// the byte-by-byte ASCII rule says (equal after A-Z to a-z).
TEST_CASE("HeaderMap::sameIgnoreCase agrees with the byte rule, for every byte pair at every offset", "[headers]") {
  auto low = [](int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; };
  const std::string fill = "Content-Type-X-FORWARDED@[`{~Z";
  std::string flipped = fill;  // the same text in the other case
  for (char& c : flipped)
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) c = static_cast<char>(c ^ 0x20);
  std::string wrong;
  for (size_t len = 0; len <= 24; ++len) {
    CHECK(HeaderMap::sameIgnoreCase(fill.data(), flipped.data(), len));
    for (size_t at = 0; at < len; ++at)
      for (int b = 0; b < 256; ++b)
        for (int c : {b, b ^ 0x20, b + 1, b - 1, b + 0x20, b - 0x20, 0, 0x40, 0x5b, 0x60, 0x7b, 0x7f, 0x80, 0xff}) {
          c &= 0xff;
          std::string x = fill.substr(0, len), y = flipped.substr(0, len);
          x[at] = static_cast<char>(b);
          y[at] = static_cast<char>(c);
          const bool want = low(b) == low(c);
          if (HeaderMap::sameIgnoreCase(x.data(), y.data(), len) != want || HeaderMap::sameIgnoreCase(y.data(), x.data(), len) != want)
            wrong += "len " + std::to_string(len) + " at " + std::to_string(at) + " bytes " + std::to_string(b) + "/" + std::to_string(c) + "; ";
        }
  }
  INFO(wrong.substr(0, 2000));
  CHECK(wrong.empty());
  CHECK(HeaderMap::equalsIgnoreCase("Content-Length", "content-length"));
  CHECK_FALSE(HeaderMap::equalsIgnoreCase("content-length", "content-lengtH2"));
  CHECK_FALSE(HeaderMap::equalsIgnoreCase("content-lengt[", "content-lengt{"));
}

TEST_CASE("copyInto replaces a string's contents and keeps its room", "[headers][reuse]") {
  using ferry::core::http::copyInto;
  std::string s(200, 'x');
  const char* room = s.data();
  copyInto(s, "GET");
  REQUIRE(s == "GET");
  REQUIRE(s.size() == 3);
  REQUIRE(s.c_str()[3] == '\0');
  REQUIRE(s.data() == room);  // shorter: no new storage
  copyInto(s, std::string(150, 'p'));
  REQUIRE(s == std::string(150, 'p'));
  REQUIRE(s.data() == room);
  copyInto(s, "");
  REQUIRE(s.empty());
  copyInto(s, std::string(300, 'q'));  // longer than the room: grows
  REQUIRE(s == std::string(300, 'q'));
  // A reused map entry takes the new field whole, whatever the old one held.
  HeaderMap h;
  h.add("Long-Old-Name-Beyond-The-Small-String", std::string(64, 'v'));
  h.clear();
  h.add("A", "b");
  REQUIRE(h.entries()[0].name == "a");
  REQUIRE(h.entries()[0].value == "b");
}

// The `checked` mark: addMade() sets it (a field Ferry made itself), add() and addLowerCase()
// do not, and every way of changing an entry clears it; entries moved by a removal keep
// their own mark.
TEST_CASE("HeaderMap: the checked mark is set only by addMade and cleared by every change", "[headers]") {
  HeaderMap h;
  h.addMade("x-request-id", "0f");
  h.add("X-A", "1");
  h.addLowerCase("x-b", "2");
  h.addMade("x-forwarded-for", "10.0.0.1");
  REQUIRE(h.size() == 4);
  CHECK(h.entries()[0].checked);
  CHECK_FALSE(h.entries()[1].checked);
  CHECK_FALSE(h.entries()[2].checked);
  CHECK(h.entries()[3].checked);
  h.remove("x-a");  // entries after it move down with their marks
  CHECK(h.entries()[0].checked);
  CHECK_FALSE(h.entries()[1].checked);
  CHECK(h.entries()[2].checked);
  h.mutableEntry(2).value += ", 10.0.0.2";
  CHECK_FALSE(h.entries()[2].checked);
  h.set("x-request-id", "other");
  CHECK_FALSE(h.entries()[0].checked);
  h.addMade("x-c", "3");
  (void)h.mutableEntries();
  for (const auto& e : h.entries()) CHECK_FALSE(e.checked);
  h.clear();  // a reused entry starts without the mark
  h.add("x-d", "4");
  CHECK_FALSE(h.entries()[0].checked);
}
