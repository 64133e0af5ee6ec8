#include "core/net/proxy_protocol.h"

#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

using ferry::core::net::encodeProxyV1;
using ferry::core::net::encodeProxyV2;
using ferry::core::net::parseProxyHeader;
using ferry::core::net::ProxyHeader;
using ferry::core::net::ProxyParse;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const Bytes kSig = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

// v2 header: signature, ver/cmd, fam, big-endian length of body, body.
Bytes v2(uint8_t verCmd, uint8_t fam, const Bytes& body) {
  Bytes b = kSig;
  b.push_back(verCmd);
  b.push_back(fam);
  b.push_back(static_cast<uint8_t>(body.size() >> 8));
  b.push_back(static_cast<uint8_t>(body.size() & 0xFF));
  return concat(b, body);
}

// v2 header whose length field says `declared` but carrying no body bytes.
Bytes v2Head(uint8_t verCmd, uint8_t fam, uint16_t declared) {
  Bytes b = kSig;
  b.push_back(verCmd);
  b.push_back(fam);
  b.push_back(static_cast<uint8_t>(declared >> 8));
  b.push_back(static_cast<uint8_t>(declared & 0xFF));
  return b;
}

struct Result {
  ProxyParse r;
  ProxyHeader h;
  size_t consumed;
  std::string error;
};

// Parses the first n bytes from an exactly-sized heap copy so ASan catches over-reads.
Result parseN(const Bytes& b, size_t n) {
  std::vector<uint8_t> copy(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
  Result res{ProxyParse::kError, ProxyHeader{}, 12345, ""};
  res.r = parseProxyHeader(copy.data(), copy.size(), &res.h, &res.consumed, &res.error);
  return res;
}
Result parse(const Bytes& b) { return parseN(b, b.size()); }
Result parse(const std::string& s) { return parse(bytes(s)); }

sockaddr_storage v4(const char* ip, uint16_t port) {
  sockaddr_storage ss{};
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  sin->sin_family = AF_INET;
  REQUIRE(inet_pton(AF_INET, ip, &sin->sin_addr) == 1);
  sin->sin_port = htons(port);
  return ss;
}

sockaddr_storage v6(const char* ip, uint16_t port) {
  sockaddr_storage ss{};
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
  sin6->sin6_family = AF_INET6;
  REQUIRE(inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1);
  sin6->sin6_port = htons(port);
  return ss;
}

// "ip:port" / "[ip]:port" rendering of a parsed address, for readable comparisons.
std::string show(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(ntohs(sin->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(sin6->sin6_port));
  }
  return "family=" + std::to_string(ss.ss_family);
}

void requireDone(const Result& res, size_t consumed, int version) {
  INFO("error: " << res.error);
  REQUIRE(res.r == ProxyParse::kDone);
  REQUIRE(res.consumed == consumed);
  REQUIRE(res.h.version == version);
}

void requireError(const Bytes& b) {
  Result res = parse(b);
  INFO("input size " << b.size());
  REQUIRE(res.r == ProxyParse::kError);
  REQUIRE_FALSE(res.error.empty());
}
void requireError(const std::string& s) {
  INFO("input: " << s);
  requireError(bytes(s));
}

// Every strict prefix of header is kNeedMore; the full header, alone or followed by
// payload, is kDone consuming exactly the header. Returns the parse of header + payload.
Result checkEverySplit(const Bytes& header, int version) {
  const Bytes payload = bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  const Bytes stream = concat(header, payload);
  for (size_t k = 0; k < header.size(); ++k) {
    Result res = parseN(stream, k);
    INFO("prefix length " << k << " of " << header.size() << ", error: " << res.error);
    REQUIRE(res.r == ProxyParse::kNeedMore);
  }
  requireDone(parse(header), header.size(), version);
  // Any amount of trailing payload after the header is left unconsumed.
  Result last{};
  for (size_t k = header.size(); k <= stream.size(); ++k) {
    last = parseN(stream, k);
    INFO("stream length " << k);
    requireDone(last, header.size(), version);
  }
  return last;
}

}  // namespace

TEST_CASE("proxy_protocol: v2 encoder matches the spec example byte for byte", "[proxy_protocol]") {
  // Spec example connection: 192.168.0.1:56324 -> 192.168.0.11:443.
  std::string enc = encodeProxyV2(v4("192.168.0.1", 56324), v4("192.168.0.11", 443));
  const Bytes expected = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
                          0x21,                    // version 2, PROXY
                          0x11,                    // AF_INET, STREAM
                          0x00, 0x0C,              // length 12
                          0xC0, 0xA8, 0x00, 0x01,  // 192.168.0.1
                          0xC0, 0xA8, 0x00, 0x0B,  // 192.168.0.11
                          0xDC, 0x04,              // 56324
                          0x01, 0xBB};             // 443
  REQUIRE(bytes(enc) == expected);
}

TEST_CASE("proxy_protocol: v2 encoder for IPv6 uses 0x21 and length 36", "[proxy_protocol]") {
  std::string enc = encodeProxyV2(v6("2001:db8::1", 1), v6("2001:db8::2", 65535));
  Bytes b = bytes(enc);
  REQUIRE(b.size() == 16 + 36);
  REQUIRE(Bytes(b.begin(), b.begin() + 12) == kSig);
  REQUIRE(b[12] == 0x21);
  REQUIRE(b[13] == 0x21);
  REQUIRE(b[14] == 0x00);
  REQUIRE(b[15] == 36);
  const Bytes addr1 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
  const Bytes addr2 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02};
  REQUIRE(Bytes(b.begin() + 16, b.begin() + 32) == addr1);
  REQUIRE(Bytes(b.begin() + 32, b.begin() + 48) == addr2);
  REQUIRE(b[48] == 0x00);
  REQUIRE(b[49] == 0x01);
  REQUIRE(b[50] == 0xFF);
  REQUIRE(b[51] == 0xFF);
}

TEST_CASE("proxy_protocol: v1 encoder matches the spec example", "[proxy_protocol]") {
  REQUIRE(encodeProxyV1(v4("192.168.0.1", 56324), v4("192.168.0.11", 443)) ==
          "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
  REQUIRE(encodeProxyV1(v6("2001:db8::1", 0), v6("::1", 65535)) ==
          "PROXY TCP6 2001:db8::1 ::1 0 65535\r\n");
}

TEST_CASE("proxy_protocol: encoders send mixed families as v4-mapped IPv6", "[proxy_protocol]") {
  sockaddr_storage src = v4("10.1.2.3", 1234);
  sockaddr_storage dst = v6("2001:db8::5", 443);
  REQUIRE(encodeProxyV1(src, dst) == "PROXY TCP6 ::ffff:10.1.2.3 2001:db8::5 1234 443\r\n");

  Result r1 = parse(encodeProxyV1(src, dst));
  requireDone(r1, encodeProxyV1(src, dst).size(), 1);
  REQUIRE(show(r1.h.src) == "[::ffff:10.1.2.3]:1234");
  REQUIRE(show(r1.h.dst) == "[2001:db8::5]:443");

  std::string e2 = encodeProxyV2(src, dst);
  REQUIRE(e2.size() == 16 + 36);
  REQUIRE(static_cast<uint8_t>(e2[13]) == 0x21);
  Result r2 = parse(e2);
  requireDone(r2, e2.size(), 2);
  REQUIRE(show(r2.h.src) == "[::ffff:10.1.2.3]:1234");
  REQUIRE(show(r2.h.dst) == "[2001:db8::5]:443");

  // And the other way round.
  Result r3 = parse(encodeProxyV2(dst, src));
  REQUIRE(r3.r == ProxyParse::kDone);
  REQUIRE(show(r3.h.src) == "[2001:db8::5]:443");
  REQUIRE(show(r3.h.dst) == "[::ffff:10.1.2.3]:1234");
}

TEST_CASE("proxy_protocol: encoders fall back to UNKNOWN / UNSPEC for non-inet families", "[proxy_protocol]") {
  sockaddr_storage unix_ss{};
  unix_ss.ss_family = AF_UNIX;
  REQUIRE(encodeProxyV1(unix_ss, v4("1.2.3.4", 5)) == "PROXY UNKNOWN\r\n");
  std::string e2 = encodeProxyV2(unix_ss, v4("1.2.3.4", 5));
  REQUIRE(bytes(e2) == v2(0x21, 0x00, {}));
  Result r = parse(e2);
  requireDone(r, 16, 2);
  REQUIRE(r.h.local);
}

TEST_CASE("proxy_protocol: round trips v1 and v2 for IPv4 and IPv6", "[proxy_protocol]") {
  struct Case {
    sockaddr_storage src, dst;
    const char* srcText;
    const char* dstText;
  };
  const Case cases[] = {
      {v4("192.168.0.1", 56324), v4("192.168.0.11", 443), "192.168.0.1:56324",
       "192.168.0.11:443"},
      {v4("0.0.0.0", 0), v4("255.255.255.255", 65535), "0.0.0.0:0", "255.255.255.255:65535"},
      {v6("2001:db8::1", 40000), v6("fe80::1:2:3:4", 8443), "[2001:db8::1]:40000",
       "[fe80::1:2:3:4]:8443"},
      {v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535), v6("::", 0),
       "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "[::]:0"},
  };
  for (const Case& c : cases) {
    for (int version : {1, 2}) {
      std::string enc = version == 1 ? encodeProxyV1(c.src, c.dst) : encodeProxyV2(c.src, c.dst);
      INFO("version " << version << " " << c.srcText << " -> " << c.dstText);
      Result r = parse(enc);
      requireDone(r, enc.size(), version);
      REQUIRE_FALSE(r.h.local);
      REQUIRE(r.h.src.ss_family == c.src.ss_family);
      REQUIRE(r.h.dst.ss_family == c.dst.ss_family);
      REQUIRE(show(r.h.src) == c.srcText);
      REQUIRE(show(r.h.dst) == c.dstText);
    }
  }
}

TEST_CASE("proxy_protocol: every valid header split at every byte offset", "[proxy_protocol]") {
  SECTION("v1 TCP4") {
    Result r = checkEverySplit(bytes("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"), 1);
    REQUIRE(show(r.h.src) == "192.168.0.1:56324");
    REQUIRE(show(r.h.dst) == "192.168.0.11:443");
  }
  SECTION("v1 TCP4 with zero ports and short addresses") {
    Result r = checkEverySplit(bytes("PROXY TCP4 0.0.0.0 1.2.3.4 0 0\r\n"), 1);
    REQUIRE(show(r.h.src) == "0.0.0.0:0");
    REQUIRE(show(r.h.dst) == "1.2.3.4:0");
  }
  SECTION("v1 TCP6") {
    Result r = checkEverySplit(bytes("PROXY TCP6 2001:db8::1 ::ffff:1.2.3.4 65535 1\r\n"), 1);
    REQUIRE(show(r.h.src) == "[2001:db8::1]:65535");
    REQUIRE(show(r.h.dst) == "[::ffff:1.2.3.4]:1");
  }
  SECTION("v1 TCP6 at the spec's maximum length") {
    const std::string f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    Bytes h = bytes("PROXY TCP6 " + f + " " + f + " 65535 65535\r\n");
    REQUIRE(h.size() == 104);
    Result r = checkEverySplit(h, 1);
    REQUIRE(show(r.h.src) == "[" + f + "]:65535");
  }
  SECTION("v1 UNKNOWN short form") {
    Result r = checkEverySplit(bytes("PROXY UNKNOWN\r\n"), 1);
    REQUIRE(r.h.local);
  }
  SECTION("v1 UNKNOWN long form") {
    Result r = checkEverySplit(bytes("PROXY UNKNOWN ffff::1 ffff::2 65535 65535\r\n"), 1);
    REQUIRE(r.h.local);
  }
  SECTION("v2 TCP4") {
    Result r = checkEverySplit(bytes(encodeProxyV2(v4("10.0.0.1", 1), v4("10.0.0.2", 2))), 2);
    REQUIRE(show(r.h.src) == "10.0.0.1:1");
    REQUIRE(show(r.h.dst) == "10.0.0.2:2");
  }
  SECTION("v2 TCP6") {
    Result r = checkEverySplit(bytes(encodeProxyV2(v6("::1", 1), v6("2001:db8::9", 2))), 2);
    REQUIRE(show(r.h.src) == "[::1]:1");
    REQUIRE(show(r.h.dst) == "[2001:db8::9]:2");
  }
  SECTION("v2 TCP4 with TLVs") {
    Bytes body = {10, 0, 0, 1, 10, 0, 0, 2, 0x00, 0x50, 0x01, 0xBB};
    body = concat(body, {0x01, 0x00, 0x02, 'h', '2', 0x04, 0x00, 0x00});
    Result r = checkEverySplit(v2(0x21, 0x11, body), 2);
    REQUIRE(show(r.h.src) == "10.0.0.1:80");
    REQUIRE(show(r.h.dst) == "10.0.0.2:443");
  }
  SECTION("v2 LOCAL") {
    Result r = checkEverySplit(v2(0x20, 0x00, {}), 2);
    REQUIRE(r.h.local);
  }
  SECTION("v2 UNIX") {
    Result r = checkEverySplit(v2(0x21, 0x31, Bytes(216, 'u')), 2);
    REQUIRE(r.h.local);
  }
}

TEST_CASE("proxy_protocol: v2 TLVs after the address block are skipped", "[proxy_protocol]") {
  // TCP6 with an ALPN TLV and an AUTHORITY TLV.
  Bytes body(36, 0);
  body[15] = 1;               // src ::1
  body[31] = 2;               // dst ::2
  body[32] = 0x30;            // sport 0x3039 = 12345
  body[33] = 0x39;
  body[34] = 0x00;            // dport 80
  body[35] = 0x50;
  body = concat(body, {0x01, 0x00, 0x08, 'h', 't', 't', 'p', '/', '1', '.', '1'});
  body = concat(body, {0x02, 0x00, 0x0B, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm'});
  Bytes h = v2(0x21, 0x21, body);
  Bytes stream = concat(h, bytes("payload"));
  Result r = parse(stream);
  requireDone(r, 16 + body.size(), 2);
  REQUIRE(r.consumed == h.size());
  REQUIRE_FALSE(r.h.local);
  REQUIRE(show(r.h.src) == "[::1]:12345");
  REQUIRE(show(r.h.dst) == "[::2]:80");
}

TEST_CASE("proxy_protocol: v2 LOCAL command and non-TCP families are local", "[proxy_protocol]") {
  SECTION("LOCAL with no addresses") {
    Result r = parse(v2(0x20, 0x00, {}));
    requireDone(r, 16, 2);
    REQUIRE(r.h.local);
    REQUIRE(r.h.src.ss_family == AF_UNSPEC);
  }
  SECTION("LOCAL with an address block: addresses ignored, block skipped") {
    Bytes body = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
    Result r = parse(concat(v2(0x20, 0x11, body), bytes("xyz")));
    requireDone(r, 16 + 12, 2);
    REQUIRE(r.h.local);
    REQUIRE(r.h.src.ss_family == AF_UNSPEC);
    REQUIRE(r.h.dst.ss_family == AF_UNSPEC);
  }
  SECTION("LOCAL ignores the family byte and its length requirement") {
    Result r = parse(v2(0x20, 0xFF, {}));
    requireDone(r, 16, 2);
    REQUIRE(r.h.local);
  }
  SECTION("PROXY with AF_UNSPEC") {
    Result r = parse(v2(0x21, 0x00, {9, 9, 9}));
    requireDone(r, 19, 2);
    REQUIRE(r.h.local);
  }
  SECTION("PROXY with AF_UNIX stream is skipped") {
    Result r = parse(v2(0x21, 0x31, Bytes(216, 0)));
    requireDone(r, 16 + 216, 2);
    REQUIRE(r.h.local);
  }
  SECTION("PROXY with UDP over IPv4 falls back to local") {
    Result r = parse(v2(0x21, 0x12, {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2}));
    requireDone(r, 28, 2);
    REQUIRE(r.h.local);
  }
  SECTION("PROXY with AF_INET and UNSPEC transport yields addresses") {
    Result r = parse(v2(0x21, 0x10, {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2}));
    requireDone(r, 28, 2);
    REQUIRE_FALSE(r.h.local);
    REQUIRE(show(r.h.src) == "1.2.3.4:1");
    REQUIRE(show(r.h.dst) == "5.6.7.8:2");
  }
}

TEST_CASE("proxy_protocol: v1 UNKNOWN is local", "[proxy_protocol]") {
  Result r = parse("PROXY UNKNOWN\r\nGET /");
  requireDone(r, 15, 1);
  REQUIRE(r.h.local);

  r = parse("PROXY UNKNOWN anything at all here\r\nrest");
  requireDone(r, 36, 1);
  REQUIRE(r.h.local);

  // Exactly 107 bytes including CRLF is the longest accepted line.
  std::string longest = "PROXY UNKNOWN " + std::string(91, 'a') + "\r\n";
  REQUIRE(longest.size() == 107);
  requireDone(parse(longest), 107, 1);
  REQUIRE(parse(longest.substr(0, 106)).r == ProxyParse::kNeedMore);
}

TEST_CASE("proxy_protocol: not a PROXY header at all", "[proxy_protocol]") {
  requireError("GET / HTTP/1.1\r\n");
  requireError("X");
  requireError(Bytes{0x16, 0x03, 0x01});  // TLS ClientHello
  requireError("PRX");
  requireError("proxy TCP4");
  requireError("PROXY\t");
  requireError(Bytes{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x58});  // QUIX
  requireError(Bytes{0x0D, 0x0A, 0x0A});
  // An empty buffer and the partial prefixes are fine.
  REQUIRE(parse(Bytes{}).r == ProxyParse::kNeedMore);
  REQUIRE(parse("PRO").r == ProxyParse::kNeedMore);
  REQUIRE(parse(Bytes{0x0D, 0x0A, 0x0D}).r == ProxyParse::kNeedMore);
}

TEST_CASE("proxy_protocol: v1 line longer than 107 bytes without CRLF", "[proxy_protocol]") {
  std::string s = "PROXY UNKNOWN " + std::string(93, 'a');
  REQUIRE(s.size() == 107);
  requireError(s);
  requireError(s + "\r\n");
  requireError(s + std::string(500, 'b'));
  // One byte fewer is still a possible header.
  REQUIRE(parse(s.substr(0, 106)).r == ProxyParse::kNeedMore);
  // A CR as the 107th byte with LF beyond the limit is too long as well.
  requireError("PROXY UNKNOWN " + std::string(92, 'a') + "\r\n");
}

TEST_CASE("proxy_protocol: v1 bad tokens are rejected", "[proxy_protocol]") {
  // Protocol token.
  requireError("PROXY TCP5");
  requireError("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n");
  requireError("PROXY UNKNOWNX\r\n");
  requireError("PROXY UDP4");
  requireError("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
  requireError("PROXY \r\n");
  requireError("PROXY TCP4\r\n");
  requireError("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n");
  // Separators and line ending.
  requireError("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8\r\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX");
  requireError("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n");
  requireError("PROXY UNKNOWN\n");
  requireError("PROXY UNKNOWN foo\nbar\r\n");
  requireError("PROXY UNKNOWN foo\rbar\r\n");
  // Bad addresses.
  requireError("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n");
  requireError("PROXY TCP4 256.1.1.1 5.6.7.8 1 2\r\n");
  requireError("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n");
  requireError("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n");
  requireError("PROXY TCP4 1.2.3.4 host 1 2\r\n");
  requireError("PROXY TCP6 ::1 ::g 1 2\r\n");
  requireError("PROXY TCP6 1::2::3 ::1 1 2\r\n");
  requireError("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n");
}

TEST_CASE("proxy_protocol: v1 address family mismatches", "[proxy_protocol]") {
  requireError("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n");
  requireError("PROXY TCP6 ::1 5.6.7.8 1 2\r\n");
  requireError("PROXY TCP4 ::1 ::2 1 2\r\n");
  requireError("PROXY TCP4 1.2.3.4 ::2 1 2\r\n");
  // Rejected as soon as the complete v4 token is seen, before the rest of the line.
  requireError("PROXY TCP6 1.2.3.4 ");
  requireError("PROXY TCP4 ::");
}

TEST_CASE("proxy_protocol: v1 bad ports", "[proxy_protocol]") {
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 100000 2\r\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 8a 2\r\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 0x50 2\r\n");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 80 \r\n");
  // Rejected before CRLF arrives.
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 65536");
  requireError("PROXY TCP4 1.2.3.4 5.6.7.8 80 +");
  // Boundaries are accepted.
  Result r = parse("PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n");
  requireDone(r, 36, 1);
  REQUIRE(show(r.h.src) == "1.2.3.4:0");
  REQUIRE(show(r.h.dst) == "5.6.7.8:65535");
}

TEST_CASE("proxy_protocol: v1 errors are reported as soon as the prefix is impossible", "[proxy_protocol]") {
  REQUIRE(parse("PROXY TC").r == ProxyParse::kNeedMore);
  REQUIRE(parse("PROXY TCX").r == ProxyParse::kError);
  REQUIRE(parse("PROXY TCP4 1.2.3.").r == ProxyParse::kNeedMore);
  REQUIRE(parse("PROXY TCP4 1.2.3.a").r == ProxyParse::kError);
  REQUIRE(parse("PROXY TCP4 1.2.3.256").r == ProxyParse::kError);
  REQUIRE(parse("PROXY TCP4 1.2.3.4 5.6.7.8 6553").r == ProxyParse::kNeedMore);
  REQUIRE(parse("PROXY TCP4 1.2.3.4 5.6.7.8 65536").r == ProxyParse::kError);
  REQUIRE(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r").r == ProxyParse::kNeedMore);
  REQUIRE(parse("PROXY TCP4 0").r == ProxyParse::kNeedMore);
  REQUIRE(parse("PROXY TCP4 01").r == ProxyParse::kError);       // leading zero
  REQUIRE(parse("PROXY TCP4 1..").r == ProxyParse::kError);      // empty octet
  REQUIRE(parse("PROXY TCP4 1.2.3.4.").r == ProxyParse::kError); // fifth octet
  REQUIRE(parse("PROXY TCP4 1.2.3.1000").r == ProxyParse::kError);
  REQUIRE(parse("PROXY TCP6 ::g").r == ProxyParse::kError);
  REQUIRE(parse("PROXY TCP6 " + std::string(46, 'f')).r == ProxyParse::kError);  // too long
  REQUIRE(parse("PROXY TCP4 1.2.3.4 5.6.7.8 08").r == ProxyParse::kError);
  REQUIRE(parse("PROXY TCP4 1.2.3.4 5.6.7.8 123456").r == ProxyParse::kError);
  REQUIRE(parse("PROXY UNKNOWN\r").r == ProxyParse::kNeedMore);
}

TEST_CASE("proxy_protocol: v2 bad version and command", "[proxy_protocol]") {
  const Bytes body = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
  for (uint8_t verCmd : {0x01, 0x11, 0x31, 0xF1, 0x10, 0x30}) {
    INFO("ver_cmd " << int(verCmd));
    requireError(v2(verCmd, 0x11, body));
    // Detected from the 13th byte alone.
    Bytes head = kSig;
    head.push_back(verCmd);
    requireError(head);
  }
  for (uint8_t verCmd : {0x22, 0x23, 0x2F}) {
    INFO("ver_cmd " << int(verCmd));
    requireError(v2(verCmd, 0x11, body));
    Bytes head = kSig;
    head.push_back(verCmd);
    requireError(head);
  }
}

TEST_CASE("proxy_protocol: v2 bad family and transport", "[proxy_protocol]") {
  const Bytes body(216, 0);
  for (uint8_t fam : {0x41, 0x51, 0xF1, 0x13, 0x1F, 0x23, 0x03}) {
    INFO("fam " << int(fam));
    requireError(v2(0x21, fam, body));
    Bytes head = kSig;
    head.push_back(0x21);
    head.push_back(fam);
    requireError(head);
  }
}

TEST_CASE("proxy_protocol: v2 length too small for the address family", "[proxy_protocol]") {
  requireError(v2(0x21, 0x11, Bytes(11, 0)));
  requireError(v2(0x21, 0x11, {}));
  requireError(v2(0x21, 0x21, Bytes(35, 0)));
  requireError(v2(0x21, 0x21, Bytes(12, 0)));  // IPv4-sized block under AF_INET6
  requireError(v2(0x21, 0x22, Bytes(12, 0)));
  requireError(v2(0x21, 0x31, Bytes(215, 0)));
  requireError(v2(0x21, 0x12, Bytes(8, 0)));
  requireError(v2(0x21, 0x10, Bytes(8, 0)));
  // Detected from the 16-byte fixed header, without waiting for the body.
  requireError(v2Head(0x21, 0x21, 12));
  // The same lengths are acceptable when they are large enough: need more, then done.
  REQUIRE(parse(v2Head(0x21, 0x21, 36)).r == ProxyParse::kNeedMore);
  REQUIRE(parse(v2Head(0x21, 0x11, 0xFFFF)).r == ProxyParse::kNeedMore);
  requireDone(parse(v2(0x21, 0x11, Bytes(0xFFFF, 0))), 16 + 0xFFFF, 2);
}

TEST_CASE("proxy_protocol: parser tolerates null out-parameters for error", "[proxy_protocol]") {
  const uint8_t bad[] = {'X'};
  REQUIRE(parseProxyHeader(bad, 1, nullptr, nullptr, nullptr) == ProxyParse::kError);
  std::string err;
  REQUIRE(parseProxyHeader(bad, 1, nullptr, nullptr, &err) == ProxyParse::kError);
  REQUIRE_FALSE(err.empty());
}
