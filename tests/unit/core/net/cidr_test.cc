// IP addresses and CIDR ranges (core/net/cidr.h): parsing, errors, matching, IPv4-mapped
// clients.
#include "core/net/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <cstring>

using ferry::core::net::CidrRange;
using ferry::core::net::IpAddress;
using ferry::core::net::ipAddressOf;
using ferry::core::net::parseCidr;
using ferry::core::net::parseIpAddress;

namespace {

CidrRange cidr(const std::string& s) {
  std::string err;
  auto r = parseCidr(s, &err);
  INFO(s << ": " << err);
  REQUIRE(r);
  return *r;
}

std::string cidrError(const std::string& s) {
  std::string err;
  auto r = parseCidr(s, &err);
  CHECK_FALSE(r);
  return err;
}

IpAddress ip(const std::string& s) {
  auto a = parseIpAddress(s);
  INFO(s);
  REQUIRE(a);
  return *a;
}

}  // namespace

TEST_CASE("cidr: addresses parse; IPv4-mapped IPv6 is IPv4", "[cidr]") {
  CHECK_FALSE(ip("10.1.2.3").v6);
  CHECK(ip("10.1.2.3").size() == 4);
  CHECK(ip("::1").v6);
  CHECK(ip("::ffff:10.1.2.3") == ip("10.1.2.3"));
  CHECK(ip("::ffff:a01:203") == ip("10.1.2.3"));
  for (const char* bad : {"", "10.1.2", "10.1.2.256", "[::1]", "::1%lo", "10.0.0.1:80", "host", " 10.0.0.1",
                          "10.0.0.0/8"})
    CHECK_FALSE(parseIpAddress(bad));
}

TEST_CASE("cidr: ranges parse, print, and report their errors", "[cidr]") {
  CHECK(cidr("10.0.0.0/8").str() == "10.0.0.0/8");
  CHECK(cidr("::1/128").str() == "::1/128");
  CHECK(cidr("2001:db8::/32").str() == "2001:db8::/32");
  CHECK(cidr("0.0.0.0/0").str() == "0.0.0.0/0");
  CHECK(cidr("::/0").str() == "::/0");
  CHECK(cidr("192.0.2.7").str() == "192.0.2.7/32");  // a bare address is one host
  CHECK(cidr("::1").str() == "::1/128");
  CHECK(cidr("10.128.0.0/9").prefix_len == 9);

  CHECK(cidrError("10.0.0.1/8") == "host bits set (use 10.0.0.0/8)");
  CHECK(cidrError("10.0.0.0/33") == "prefix length must be 0-32");
  CHECK(cidrError("::/129") == "prefix length must be 0-128");
  CHECK(cidrError("10.0.0.0/") == "prefix length must be 0-32");
  CHECK(cidrError("10.0.0.0/-1") == "prefix length must be 0-32");
  CHECK(cidrError("10.0.0.0/8x") == "prefix length must be 0-32");
  CHECK(cidrError("10.0.0/8") == "bad address");
  CHECK(cidrError("example.com/8") == "bad address");
  CHECK(cidrError("2001:db8::1/32") == "host bits set (use 2001:db8::/32)");
  CHECK(cidrError("::ffff:10.0.0.0/104").rfind("an IPv4-mapped IPv6 range is not supported", 0) == 0);
}

TEST_CASE("cidr: matching", "[cidr]") {
  CidrRange ten = cidr("10.0.0.0/8");
  CHECK(ten.contains(ip("10.0.0.0")));
  CHECK(ten.contains(ip("10.255.255.255")));
  CHECK_FALSE(ten.contains(ip("11.0.0.0")));
  CHECK_FALSE(ten.contains(ip("9.255.255.255")));
  CHECK(ten.contains(ip("::ffff:10.9.8.7")));  // a dual-stack socket's view of an IPv4 client
  CHECK_FALSE(ten.contains(ip("::a00:1")));     // IPv4-compatible is not mapped: an IPv6 address

  CidrRange odd = cidr("192.168.4.0/22");  // a prefix that ends inside a byte
  CHECK(odd.contains(ip("192.168.4.1")));
  CHECK(odd.contains(ip("192.168.7.255")));
  CHECK_FALSE(odd.contains(ip("192.168.8.0")));
  CHECK_FALSE(odd.contains(ip("192.168.3.255")));

  CidrRange loop6 = cidr("::1/128");
  CHECK(loop6.contains(ip("::1")));
  CHECK_FALSE(loop6.contains(ip("::2")));
  CHECK_FALSE(loop6.contains(ip("127.0.0.1")));  // families never mix

  CidrRange doc = cidr("2001:db8::/33");
  CHECK(doc.contains(ip("2001:db8:7fff::1")));
  CHECK_FALSE(doc.contains(ip("2001:db8:8000::1")));

  CHECK(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
  CHECK_FALSE(cidr("0.0.0.0/0").contains(ip("::1")));
  CHECK(cidr("::/0").contains(ip("2001:db8::1")));
  CHECK(cidr("127.0.0.1").contains(ip("127.0.0.1")));
  CHECK_FALSE(cidr("127.0.0.1").contains(ip("127.0.0.2")));
}

TEST_CASE("cidr: addresses of sockaddrs", "[cidr]") {
  sockaddr_storage ss{};
  auto& in4 = reinterpret_cast<sockaddr_in&>(ss);
  in4.sin_family = AF_INET;
  inet_pton(AF_INET, "198.51.100.4", &in4.sin_addr);
  REQUIRE(ipAddressOf(ss));
  CHECK(*ipAddressOf(ss) == ip("198.51.100.4"));

  sockaddr_storage s6{};
  auto& in6 = reinterpret_cast<sockaddr_in6&>(s6);
  in6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::ffff:198.51.100.4", &in6.sin6_addr);
  CHECK(*ipAddressOf(s6) == ip("198.51.100.4"));
  inet_pton(AF_INET6, "2001:db8::5", &in6.sin6_addr);
  CHECK(*ipAddressOf(s6) == ip("2001:db8::5"));

  sockaddr_storage none{};
  none.ss_family = AF_UNIX;
  CHECK_FALSE(ipAddressOf(none));
}
