#include "core/http/header_map.h"

#include <catch2/catch.hpp>

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
