#include "config/values.h"

#include <catch2/catch.hpp>

using namespace ferry::config;
using std::chrono::milliseconds;

TEST_CASE("parseDuration accepts numbers with a unit", "[config][values]") {
  CHECK(parseDuration("250ms") == milliseconds(250));
  CHECK(parseDuration("15s") == milliseconds(15'000));
  CHECK(parseDuration("5m") == milliseconds(300'000));
  CHECK(parseDuration("1h") == milliseconds(3'600'000));
  CHECK(parseDuration("0s") == milliseconds(0));
  CHECK(parseDuration("0ms") == milliseconds(0));
  CHECK(parseDuration("1.5s") == milliseconds(1'500));
  CHECK(parseDuration("0.25m") == milliseconds(15'000));
  CHECK(parseDuration("2.000s") == milliseconds(2'000));
  CHECK(parseDuration("0.001s") == milliseconds(1));
  CHECK(parseDuration("007s") == milliseconds(7'000));
}

TEST_CASE("parseDuration refuses bad input", "[config][values]") {
  for (const char* bad : {"", "0", "15", "s", "ms", "-1s", "+1s", "5x", "5 s", " 5s", "5s ",
                          "1.s", ".5s", "1.5.5s", "5sec", "1d", "1S", "abc", "1e3ms", "0.5ms",
                          "0.0001s", "1.0000000001s"}) {
    INFO("input: '" << bad << "'");
    CHECK_FALSE(parseDuration(bad).has_value());
  }
}

TEST_CASE("parseDuration refuses overflow", "[config][values]") {
  CHECK_FALSE(parseDuration("9223372036854775808ms").has_value());
  CHECK_FALSE(parseDuration("9223372036854775807s").has_value());
  CHECK_FALSE(parseDuration("99999999999999999999999h").has_value());
  CHECK(parseDuration("9223372036854775807ms") == milliseconds(INT64_MAX));
}

TEST_CASE("formatDuration picks the largest exact unit", "[config][values]") {
  CHECK(formatDuration(milliseconds(0)) == "0s");
  CHECK(formatDuration(milliseconds(250)) == "250ms");
  CHECK(formatDuration(milliseconds(1500)) == "1500ms");
  CHECK(formatDuration(milliseconds(15'000)) == "15s");
  CHECK(formatDuration(milliseconds(90'000)) == "90s");
  CHECK(formatDuration(milliseconds(300'000)) == "5m");
  CHECK(formatDuration(milliseconds(7'200'000)) == "2h");
  CHECK(formatDuration(milliseconds(-2'000)) == "-2s");
  for (const char* s : {"250ms", "1500ms", "15s", "5m", "1h", "0s"})
    CHECK(formatDuration(*parseDuration(s)) == s);
}

TEST_CASE("parseAddress accepts IPv4 and bracketed IPv6 literals", "[config][values]") {
  auto a = parseAddress("1.2.3.4:80");
  REQUIRE(a);
  CHECK(a->host == "1.2.3.4");
  CHECK(a->port == 80);
  CHECK_FALSE(a->v6);
  CHECK(a->text == "1.2.3.4:80");

  auto b = parseAddress("[::1]:8080");
  REQUIRE(b);
  CHECK(b->host == "::1");
  CHECK(b->port == 8080);
  CHECK(b->v6);
  CHECK(b->text == "[::1]:8080");

  auto c = parseAddress("0.0.0.0:0");
  REQUIRE(c);
  CHECK(c->host == "0.0.0.0");
  CHECK(c->port == 0);

  CHECK(parseAddress("[::]:65535")->port == 65535);
  CHECK(parseAddress("[::ffff:10.0.0.1]:1")->host == "::ffff:10.0.0.1");
  CHECK(parseAddress("255.255.255.255:1"));
}

TEST_CASE("parseAddress refuses bad input with a reason", "[config][values]") {
  struct Case {
    const char* text;
    const char* why;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"1.2.3.4:65536", "port out of range"},
           {"1.2.3.4:99999999999999999999999", "port out of range"},
           {"1.2.3.4:-1", "port must be a decimal number"},
           {"1.2.3.4:0x50", "port must be a decimal number"},
           {"1.2.3.4:http", "port must be a decimal number"},
           {"1.2.3.4:", "missing port"},
           {"1.2.3.4", "missing port"},
           {"[::1]", "missing port"},
           {"[::1]8080", "missing port"},
           {"[::1:8080", "missing ']'"},
           {"::1:8080", "must be in brackets"},
           {"[1.2.3.4]:80", "bad IPv6 address"},
           {"[fe80::1%eth0]:80", "bad IPv6 address"},
           {"1.2.3.256:80", "bad IPv4 address"},
           {"1.2.3:80", "bad IPv4 address"},
           {"localhost:80", "host must be an IP address (DNS names are not supported yet)"},
           {"example.com:443", "DNS names are not supported yet"},
           {":80", "missing host"},
           {"", "empty address"},
       }) {
    INFO("input: '" << c.text << "'");
    std::string why;
    CHECK_FALSE(parseAddress(c.text, &why).has_value());
    CHECK_THAT(why, Catch::Contains(c.why));
  }
  CHECK_FALSE(parseAddress("nope").has_value());  // why may be null
}

TEST_CASE("log levels round-trip", "[config][values]") {
  for (const char* name : {"trace", "debug", "info", "warn", "error"}) {
    auto l = parseLogLevel(name);
    REQUIRE(l);
    CHECK(logLevelName(*l) == name);
  }
  CHECK(parseLogLevel("warn") == LogLevel::kWarn);
  CHECK(parseLogLevel("error") == LogLevel::kError);
  CHECK_FALSE(parseLogLevel("warning"));
  CHECK_FALSE(parseLogLevel("INFO"));
  CHECK_FALSE(parseLogLevel(""));
}
