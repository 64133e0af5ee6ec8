// IP addresses and CIDR ranges as plain bytes, for access rules that match a client address
// (the rbac filter's client_cidrs). An IPv4-mapped IPv6 address (::ffff:10.1.2.3, what a
// dual-stack socket reports for an IPv4 client) is the IPv4 address it carries, so that
// 10.0.0.0/8 matches it. Pure functions and values; no allocation when matching.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::core::net {

struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // network order; the first 4 for IPv4
  size_t size() const { return v6 ? 16 : 4; }
  bool operator==(const IpAddress&) const = default;
};

// "10.1.2.3", "::1", "::ffff:10.1.2.3" (-> IPv4). nullopt when not an address (no brackets,
// ports or zone ids).
std::optional<IpAddress> parseIpAddress(std::string_view text);
// The address of an AF_INET/AF_INET6 sockaddr; nullopt for other families.
std::optional<IpAddress> ipAddressOf(const sockaddr_storage& sa);

struct CidrRange {
  IpAddress base;  // host bits zero
  uint8_t prefix_len = 0;
  bool contains(const IpAddress& a) const;
  std::string str() const;  // "10.0.0.0/8"
  bool operator==(const CidrRange&) const = default;
};

// "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128). On failure nullopt and
// *error says why: "bad address", "prefix length must be 0-32", "host bits set (use
// 10.0.0.0/8)". An IPv4-mapped range (::ffff:10.0.0.0/104) is refused: write it as IPv4.
std::optional<CidrRange> parseCidr(std::string_view text, std::string* error);

}  // namespace ferry::core::net
