// PROXY protocol v1/v2 parser and encoder (haproxy.org doc/proxy-protocol.txt).
//
// The parser is stateless: callers re-invoke it with the whole buffer received so far. It
// validates incrementally, so a stream that cannot become a valid header is rejected as soon
// as the offending byte arrives rather than after a CRLF or the full v2 length.
//
// Decisions where the spec leaves room:
//  - v1 ports and IPv4 octets reject leading zeroes ("080"), as the spec requires; "0" is fine.
//  - v1 "UNKNOWN" must be followed by " " or CRLF; everything up to CRLF is then ignored, but
//    a lone CR or LF in it is still an error, and the 107-byte line limit still applies.
//  - v2 LOCAL ignores the family byte entirely (spec: "discard the protocol block including
//    the family which is ignored"); only version/command/length matter.
//  - v2 PROXY: family > 3 or transport > 2 is an error. INET/INET6 with STREAM or UNSPEC
//    transport yield addresses; INET/INET6 with DGRAM, AF_UNSPEC and AF_UNIX fall back to
//    local (the spec's "fall back to UNSPEC for valid combinations not supported"). The
//    length must still cover the family's address block (12 / 36 / 216 bytes).
//  - v2 TLVs after the address block are skipped without being validated.
//  - Encoders: families other than AF_INET/AF_INET6 produce "PROXY UNKNOWN\r\n" (v1) and a
//    v2 PROXY header with AF_UNSPEC/UNSPEC and length 0 (v2); both read as "local".
#include "core/net/proxy_protocol.h"

#include <algorithm>

#include "core/event/worker_context.h"
#include "core/log.h"
#include "core/net/listener.h"
#include "core/net/socket_util.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>

namespace ferry::core::net {
namespace {

constexpr size_t kV1MaxLen = 107;  // including CRLF (spec 2.1)
constexpr char kV1Prefix[] = "PROXY ";
constexpr size_t kV1PrefixLen = sizeof(kV1Prefix) - 1;

constexpr uint8_t kV2Sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr size_t kV2SigLen = sizeof(kV2Sig);
constexpr size_t kV2HeaderLen = 16;
constexpr size_t kV2Inet4Len = 12;   // 2*4 + 2*2
constexpr size_t kV2Inet6Len = 36;   // 2*16 + 2*2
constexpr size_t kV2UnixLen = 216;   // 2*108

constexpr size_t kMaxV6Text = 45;  // INET6_ADDRSTRLEN - 1

ProxyParse fail(std::string* error, const char* why) {
  if (error != nullptr) *error = why;
  return ProxyParse::kError;
}

bool isDigit(uint8_t c) { return c >= '0' && c <= '9'; }
bool isHex(uint8_t c) {
  return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// True if tok[0..n) is a prefix of word (n may equal strlen(word)).
bool isPrefixOf(const uint8_t* tok, size_t n, const char* word) {
  size_t wl = std::strlen(word);
  return n <= wl && std::memcmp(tok, word, n) == 0;
}
bool equals(const uint8_t* tok, size_t n, const char* word) {
  return n == std::strlen(word) && std::memcmp(tok, word, n) == 0;
}

// Could tok[0..n) still grow into (or be) a canonical dotted-quad? (The octet rules cap
// the length at 15.)
bool v4TextPrefixOk(const uint8_t* tok, size_t n) {
  int dots = 0;
  size_t digits = 0;
  unsigned value = 0;
  bool leadingZero = false;
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = tok[i];
    if (c == '.') {
      if (digits == 0 || ++dots > 3) return false;
      digits = 0;
      value = 0;
      leadingZero = false;
    } else if (isDigit(c)) {
      if (leadingZero) return false;  // "01"
      if (digits == 0 && c == '0') leadingZero = true;
      value = value * 10 + (c - '0');
      if (++digits > 3 || value > 255) return false;
    } else {
      return false;
    }
  }
  return true;
}

bool v6TextPrefixOk(const uint8_t* tok, size_t n) {
  if (n > kMaxV6Text) return false;
  for (size_t i = 0; i < n; ++i) {
    if (!isHex(tok[i]) && tok[i] != ':' && tok[i] != '.') return false;
  }
  return true;
}

// Could tok[0..n) still grow into (or be) a port in [0, 65535] without leading zeroes?
bool portPrefixOk(const uint8_t* tok, size_t n, unsigned* value) {
  if (n > 5) return false;
  unsigned v = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!isDigit(tok[i])) return false;
    if (i == 1 && tok[0] == '0') return false;
    v = v * 10 + (tok[i] - '0');
  }
  if (v > 65535) return false;
  *value = v;
  return true;
}

// Parses a complete address token into *ss with the given family (port left 0).
bool parseAddrText(const uint8_t* tok, size_t n, int family, sockaddr_storage* ss) {
  char buf[kMaxV6Text + 1];
  if (n == 0 || n > kMaxV6Text) return false;
  std::memcpy(buf, tok, n);
  buf[n] = '\0';
  std::memset(ss, 0, sizeof(*ss));
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    if (inet_pton(AF_INET, buf, &sin->sin_addr) != 1) return false;
    sin->sin_family = AF_INET;
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
    if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) != 1) return false;
    sin6->sin6_family = AF_INET6;
  }
  return true;
}

void setPort(sockaddr_storage* ss, uint16_t hostOrder) {
  if (ss->ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(ss)->sin_port = htons(hostOrder);
  } else {
    reinterpret_cast<sockaddr_in6*>(ss)->sin6_port = htons(hostOrder);
  }
}

// Scans from pos until ' ', '\r' or '\n' (or n). Returns the end index.
size_t tokenEnd(const uint8_t* d, size_t n, size_t pos) {
  while (pos < n && d[pos] != ' ' && d[pos] != '\r' && d[pos] != '\n') ++pos;
  return pos;
}

// Out of bytes in the v1 line: more may come unless the 107-byte limit is already reached.
ProxyParse v1Starved(size_t len, std::string* error) {
  if (len >= kV1MaxLen) return fail(error, "PROXY v1 line longer than 107 bytes");
  return ProxyParse::kNeedMore;
}

ProxyParse parseV1(const uint8_t* data, size_t len, ProxyHeader* out, size_t* consumed,
                   std::string* error) {
  const size_t n = len < kV1MaxLen ? len : kV1MaxLen;
  for (size_t i = 0; i < n && i < kV1PrefixLen; ++i) {
    if (data[i] != static_cast<uint8_t>(kV1Prefix[i])) return fail(error, "bad PROXY v1 prefix");
  }
  if (n < kV1PrefixLen) return ProxyParse::kNeedMore;

  // Protocol token.
  size_t pos = kV1PrefixLen;
  size_t end = tokenEnd(data, n, pos);
  const uint8_t* tok = data + pos;
  size_t tlen = end - pos;
  if (!isPrefixOf(tok, tlen, "TCP4") && !isPrefixOf(tok, tlen, "TCP6") &&
      !isPrefixOf(tok, tlen, "UNKNOWN")) {
    return fail(error, "bad PROXY v1 protocol");
  }
  if (end == n) return v1Starved(len, error);
  if (data[end] == '\n' || (data[end] == ' ' && tlen == 0)) {
    return fail(error, "bad PROXY v1 protocol");
  }
  if (!equals(tok, tlen, "TCP4") && !equals(tok, tlen, "TCP6") &&
      !equals(tok, tlen, "UNKNOWN")) {
    return fail(error, "bad PROXY v1 protocol");
  }

  if (equals(tok, tlen, "UNKNOWN")) {
    // Ignore everything up to CRLF; a lone CR or LF is still invalid.
    for (size_t i = end; i < n; ++i) {
      if (data[i] == '\n') return fail(error, "PROXY v1 line has a bare LF");
      if (data[i] == '\r') {
        if (i + 1 == n) return v1Starved(len, error);
        if (data[i + 1] != '\n') return fail(error, "PROXY v1 line has a bare CR");
        ProxyHeader h;
        h.local = true;
        h.version = 1;
        if (out != nullptr) *out = h;
        if (consumed != nullptr) *consumed = i + 2;
        return ProxyParse::kDone;
      }
    }
    return v1Starved(len, error);
  }
  if (data[end] != ' ') return fail(error, "PROXY v1 line is missing fields");

  const int family = tok[3] == '4' ? AF_INET : AF_INET6;
  ProxyHeader h;
  h.version = 1;
  unsigned ports[2] = {0, 0};
  pos = end + 1;
  // Fields: src, dst, sport, dport; separated by one space and terminated by CRLF.
  for (int field = 0; field < 4; ++field) {
    end = tokenEnd(data, n, pos);
    tok = data + pos;
    tlen = end - pos;
    const bool isAddr = field < 2;
    unsigned port = 0;
    bool ok = isAddr ? (family == AF_INET ? v4TextPrefixOk(tok, tlen) : v6TextPrefixOk(tok, tlen))
                     : portPrefixOk(tok, tlen, &port);
    if (!ok) return fail(error, isAddr ? "bad PROXY v1 address" : "bad PROXY v1 port");
    if (end == n) return v1Starved(len, error);
    const uint8_t want = field < 3 ? ' ' : '\r';
    if (tlen == 0) return fail(error, "empty PROXY v1 field");
    if (data[end] != want) {
      return fail(error, field < 3 ? "PROXY v1 line is missing fields"
                                   : "PROXY v1 line has trailing data");
    }
    if (isAddr) {
      if (!parseAddrText(tok, tlen, family, field == 0 ? &h.src : &h.dst)) {
        return fail(error, "bad PROXY v1 address");
      }
    } else {
      ports[field - 2] = port;
    }
    pos = end + 1;
  }
  // pos is just past the CR.
  if (pos == n) return v1Starved(len, error);
  if (data[pos] != '\n') return fail(error, "PROXY v1 line has a bare CR");
  setPort(&h.src, static_cast<uint16_t>(ports[0]));
  setPort(&h.dst, static_cast<uint16_t>(ports[1]));
  if (out != nullptr) *out = h;
  if (consumed != nullptr) *consumed = pos + 1;
  return ProxyParse::kDone;
}

ProxyParse parseV2(const uint8_t* data, size_t len, ProxyHeader* out, size_t* consumed,
                   std::string* error) {
  for (size_t i = 0; i < len && i < kV2SigLen; ++i) {
    if (data[i] != kV2Sig[i]) return fail(error, "bad PROXY v2 signature");
  }
  if (len < kV2SigLen + 1) return ProxyParse::kNeedMore;

  const uint8_t verCmd = data[12];
  if ((verCmd >> 4) != 2) return fail(error, "bad PROXY v2 version");
  const uint8_t cmd = verCmd & 0x0F;
  if (cmd > 1) return fail(error, "bad PROXY v2 command");
  const bool isLocal = cmd == 0;
  if (len < 14) return ProxyParse::kNeedMore;

  const uint8_t famByte = data[13];
  const uint8_t fam = famByte >> 4;
  const uint8_t transport = famByte & 0x0F;
  size_t needAddr = 0;
  if (!isLocal) {
    if (fam > 3) return fail(error, "bad PROXY v2 address family");
    if (transport > 2) return fail(error, "bad PROXY v2 transport");
    needAddr = fam == 1 ? kV2Inet4Len : fam == 2 ? kV2Inet6Len : fam == 3 ? kV2UnixLen : 0;
  }
  if (len < kV2HeaderLen) return ProxyParse::kNeedMore;

  const size_t addrLen = (static_cast<size_t>(data[14]) << 8) | data[15];
  if (addrLen < needAddr) return fail(error, "PROXY v2 length too small for address family");
  const size_t total = kV2HeaderLen + addrLen;
  if (len < total) return ProxyParse::kNeedMore;

  ProxyHeader h;
  h.version = 2;
  const uint8_t* a = data + kV2HeaderLen;
  if (isLocal || transport == 2 || fam == 0 || fam == 3) {
    h.local = true;
  } else if (fam == 1) {
    auto* s = reinterpret_cast<sockaddr_in*>(&h.src);
    auto* d = reinterpret_cast<sockaddr_in*>(&h.dst);
    s->sin_family = AF_INET;
    d->sin_family = AF_INET;
    std::memcpy(&s->sin_addr, a, 4);
    std::memcpy(&d->sin_addr, a + 4, 4);
    std::memcpy(&s->sin_port, a + 8, 2);
    std::memcpy(&d->sin_port, a + 10, 2);
  } else {
    auto* s = reinterpret_cast<sockaddr_in6*>(&h.src);
    auto* d = reinterpret_cast<sockaddr_in6*>(&h.dst);
    s->sin6_family = AF_INET6;
    d->sin6_family = AF_INET6;
    std::memcpy(&s->sin6_addr, a, 16);
    std::memcpy(&d->sin6_addr, a + 16, 16);
    std::memcpy(&s->sin6_port, a + 32, 2);
    std::memcpy(&d->sin6_port, a + 34, 2);
  }
  if (out != nullptr) *out = h;
  if (consumed != nullptr) *consumed = total;
  return ProxyParse::kDone;
}

// Address bytes (network order) and port (network order) of an AF_INET/AF_INET6 sockaddr,
// widened to IPv6 (v4-mapped) when asV6.
void addrBytes(const sockaddr_storage& ss, bool asV6, uint8_t* addr, uint16_t* portNet) {
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    if (asV6) {
      std::memset(addr, 0, 10);
      addr[10] = 0xFF;
      addr[11] = 0xFF;
      std::memcpy(addr + 12, &sin->sin_addr, 4);
    } else {
      std::memcpy(addr, &sin->sin_addr, 4);
    }
    *portNet = sin->sin_port;
  } else {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    std::memcpy(addr, &sin6->sin6_addr, 16);
    *portNet = sin6->sin6_port;
  }
}

bool isInet(const sockaddr_storage& ss) {
  return ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
}

}  // namespace

ProxyParse parseProxyHeader(const uint8_t* data, size_t len, ProxyHeader* out, size_t* consumed,
                            std::string* error) {
  if (len == 0) return ProxyParse::kNeedMore;
  if (data[0] == static_cast<uint8_t>(kV1Prefix[0])) {
    return parseV1(data, len, out, consumed, error);
  }
  if (data[0] == kV2Sig[0]) return parseV2(data, len, out, consumed, error);
  return fail(error, "not a PROXY protocol header");
}

std::string encodeProxyV1(const sockaddr_storage& src, const sockaddr_storage& dst) {
  if (!isInet(src) || !isInet(dst)) return std::string("PROXY UNKNOWN\r\n");
  const bool v6 = src.ss_family == AF_INET6 || dst.ss_family == AF_INET6;
  const int af = v6 ? AF_INET6 : AF_INET;
  uint8_t sa[16], da[16];
  uint16_t sp = 0, dp = 0;
  addrBytes(src, v6, sa, &sp);
  addrBytes(dst, v6, da, &dp);
  char st[INET6_ADDRSTRLEN], dt[INET6_ADDRSTRLEN];
  if (inet_ntop(af, sa, st, sizeof(st)) == nullptr || inet_ntop(af, da, dt, sizeof(dt)) == nullptr) {
    return std::string("PROXY UNKNOWN\r\n");
  }
  char line[kV1MaxLen + 32];
  int n = std::snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n", v6 ? "TCP6" : "TCP4", st,
                        dt, static_cast<unsigned>(ntohs(sp)), static_cast<unsigned>(ntohs(dp)));
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(line)) return std::string("PROXY UNKNOWN\r\n");
  return std::string(line, static_cast<size_t>(n));
}

std::string encodeProxyV2(const sockaddr_storage& src, const sockaddr_storage& dst) {
  uint8_t buf[kV2HeaderLen + kV2Inet6Len];
  std::memcpy(buf, kV2Sig, kV2SigLen);
  buf[12] = 0x21;  // version 2, PROXY
  if (!isInet(src) || !isInet(dst)) {
    buf[13] = 0x00;  // AF_UNSPEC, UNSPEC
    buf[14] = 0;
    buf[15] = 0;
    return std::string(reinterpret_cast<const char*>(buf), kV2HeaderLen);
  }
  const bool v6 = src.ss_family == AF_INET6 || dst.ss_family == AF_INET6;
  const size_t alen = v6 ? kV2Inet6Len : kV2Inet4Len;
  const size_t aw = v6 ? 16 : 4;
  buf[13] = v6 ? 0x21 : 0x11;  // TCP over IPv6 / IPv4
  buf[14] = 0;
  buf[15] = static_cast<uint8_t>(alen);
  uint8_t* a = buf + kV2HeaderLen;
  uint16_t sp = 0, dp = 0;
  addrBytes(src, v6, a, &sp);
  addrBytes(dst, v6, a + aw, &dp);
  std::memcpy(a + 2 * aw, &sp, 2);
  std::memcpy(a + 2 * aw + 2, &dp, 2);
  return std::string(reinterpret_cast<const char*>(buf), kV2HeaderLen + alen);
}

namespace {

class ProxyProtocolFilter final : public ListenerFilter {
 public:
  ListenerFilterStatus onData(Buffer& raw, bool end_stream, ListenerFilterContext& ctx) override {
    constexpr size_t kMaxHeader = 4096;
    uint8_t head[kMaxHeader];
    size_t n = std::min(raw.length(), kMaxHeader);
    raw.copyOut(0, n, head);
    ProxyHeader hdr;
    size_t consumed = 0;
    std::string why;
    ProxyParse r = parseProxyHeader(head, n, &hdr, &consumed, &why);
    if (r == ProxyParse::kNeedMore && (n == kMaxHeader || end_stream)) {
      r = ProxyParse::kError;
      why = end_stream ? "connection closed inside the header" : "header too long";
    }
    if (r == ProxyParse::kNeedMore) return ListenerFilterStatus::kNeedMore;
    if (r == ProxyParse::kError) {
      FERRY_LOG(kDebug, "listener ", ctx.listener.name, ": bad PROXY header from ",
                formatSockaddr(ctx.info.directRemote()), ": ", why);
      ctx.worker.stats->inc(ctx.listener.stats.proxy_protocol_errors);
      return ListenerFilterStatus::kClose;
    }
    raw.drain(consumed);
    if (!hdr.local) {
      ctx.info.setProxied(hdr.src, hdr.dst);
    }
    return ListenerFilterStatus::kContinue;
  }

  void onTimeout(ListenerFilterContext& ctx) override {
    FERRY_LOG(kDebug, "listener ", ctx.listener.name, ": no PROXY header in time from ",
              formatSockaddr(ctx.info.directRemote()));
    ctx.worker.stats->inc(ctx.listener.stats.proxy_protocol_errors);
  }
};

}  // namespace

ListenerFilterFactory proxyProtocolFilter(std::chrono::milliseconds timeout) {
  return ListenerFilterFactory{[] { return std::make_unique<ProxyProtocolFilter>(); }, timeout};
}

}  // namespace ferry::core::net
