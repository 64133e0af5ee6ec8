#include "core/net/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace ferry::core::net {
namespace {

bool isV4Mapped(const uint8_t* b) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(b, kPrefix, 12) == 0;
}

IpAddress fromV6(const uint8_t* b) {
  IpAddress a;
  if (isV4Mapped(b)) {
    std::memcpy(a.bytes.data(), b + 12, 4);
    return a;
  }
  a.v6 = true;
  std::memcpy(a.bytes.data(), b, 16);
  return a;
}

}  // namespace

std::optional<IpAddress> parseIpAddress(std::string_view text) {
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof buf) return std::nullopt;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress a;
  if (text.find(':') == std::string_view::npos) {
    if (inet_pton(AF_INET, buf, a.bytes.data()) != 1) return std::nullopt;
    return a;
  }
  uint8_t b[16];
  if (inet_pton(AF_INET6, buf, b) != 1) return std::nullopt;
  return fromV6(b);
}

std::optional<IpAddress> ipAddressOf(const sockaddr_storage& sa) {
  if (sa.ss_family == AF_INET) {
    IpAddress a;
    std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in&>(sa).sin_addr, 4);
    return a;
  }
  if (sa.ss_family == AF_INET6)
    return fromV6(reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in6&>(sa).sin6_addr));
  return std::nullopt;
}

bool CidrRange::contains(const IpAddress& a) const {
  if (a.v6 != base.v6) return false;
  const size_t full = prefix_len / 8;
  if (std::memcmp(a.bytes.data(), base.bytes.data(), full) != 0) return false;
  const unsigned rest = prefix_len % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a.bytes[full] & mask) == base.bytes[full];
}

std::string CidrRange::str() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  inet_ntop(base.v6 ? AF_INET6 : AF_INET, base.bytes.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(prefix_len);
}

std::optional<CidrRange> parseCidr(std::string_view text, std::string* error) {
  const size_t slash = text.find('/');
  const std::string_view addr = text.substr(0, slash);
  auto ip = parseIpAddress(addr);
  if (!ip) {
    *error = "bad address";
    return std::nullopt;
  }
  // A mapped address would silently become IPv4; say so rather than guess what was meant.
  if (!ip->v6 && addr.find(':') != std::string_view::npos) {
    *error = "an IPv4-mapped IPv6 range is not supported (write the IPv4 range: it matches mapped clients too)";
    return std::nullopt;
  }
  const unsigned max = ip->v6 ? 128 : 32;
  unsigned len = max;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 || digits.find_first_not_of("0123456789") != std::string_view::npos ||
        (len = static_cast<unsigned>(std::stoul(std::string(digits)))) > max) {
      *error = "prefix length must be 0-" + std::to_string(max);
      return std::nullopt;
    }
  }
  CidrRange r{*ip, static_cast<uint8_t>(len)};
  CidrRange masked = r;
  for (unsigned i = 0; i < ip->size(); ++i) {
    const unsigned bit = i * 8;
    uint8_t mask = bit + 8 <= len ? 0xff : bit >= len ? 0 : static_cast<uint8_t>(0xff << (8 - (len - bit)));
    masked.base.bytes[i] &= mask;
  }
  if (!(masked == r)) {
    *error = "host bits set (use " + masked.str() + ")";
    return std::nullopt;
  }
  return r;
}

}  // namespace ferry::core::net
