#include "core/net/tls_inspector.h"

#include <openssl/ssl.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/event/worker_context.h"
#include "core/net/listener.h"
#include "core/net/proxy_protocol.h"
#include "core/stats.h"

using ferry::core::Buffer;
using ferry::core::StatsStore;
using ferry::core::WorkerContext;
using ferry::core::net::ClientHelloInfo;
using ferry::core::net::ClientHelloParse;
using ferry::core::net::ConnectionInfo;
using ferry::core::net::kMaxClientHelloBytes;
using ferry::core::net::ListenerFilter;
using ferry::core::net::ListenerFilterContext;
using ferry::core::net::ListenerFilterStatus;
using ferry::core::net::ListenerState;
using ferry::core::net::parseClientHello;
using ferry::core::net::registerTlsInspectorStats;
using ferry::core::net::tlsInspectorFilter;
using ferry::core::net::TlsInspectorStats;
using namespace std::chrono_literals;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes be16(size_t v) { return {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)}; }
Bytes be24(size_t v) {
  return {static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

// The first flight of a real OpenSSL client: SSL_do_handshake once over memory BIOs.
// maxVersion: 0 = OpenSSL's default (TLS 1.3), or e.g. TLS1_2_VERSION.
Bytes opensslClientHello(const char* sni, const std::vector<std::string>& alpn = {},
                         int maxVersion = 0) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  REQUIRE(ctx);
  if (maxVersion != 0) REQUIRE(SSL_CTX_set_max_proto_version(ctx.get(), maxVersion) == 1);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  REQUIRE(ssl);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), rbio, wbio);  // ssl owns both
  SSL_set_connect_state(ssl.get());
  if (sni != nullptr) REQUIRE(SSL_set_tlsext_host_name(ssl.get(), sni) == 1);
  if (!alpn.empty()) {
    std::string wire;
    for (const auto& p : alpn) {
      wire.push_back(static_cast<char>(p.size()));
      wire += p;
    }
    REQUIRE(SSL_set_alpn_protos(ssl.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                                static_cast<unsigned>(wire.size())) == 0);
  }
  int rc = SSL_do_handshake(ssl.get());
  REQUIRE(rc == -1);
  REQUIRE(SSL_get_error(ssl.get(), rc) == SSL_ERROR_WANT_READ);
  char* p = nullptr;
  long n = BIO_get_mem_data(wbio, &p);
  REQUIRE(n > 0);
  return Bytes(p, p + n);
}

// The handshake message of a ClientHello that fits one record.
Bytes handshakeOf(const Bytes& hello) {
  REQUIRE(hello.size() > 9);
  size_t recordLen = (static_cast<size_t>(hello[3]) << 8) | hello[4];
  REQUIRE(hello.size() == 5 + recordLen);
  return Bytes(hello.begin() + 5, hello.end());
}

// Frames a handshake message into handshake records carrying `sizes` bytes each (the last
// record takes what is left).
Bytes frame(const Bytes& msg, const std::vector<size_t>& sizes) {
  Bytes out;
  size_t pos = 0;
  for (size_t i = 0; pos < msg.size(); ++i) {
    size_t n = i < sizes.size() ? std::min(sizes[i], msg.size() - pos) : msg.size() - pos;
    out = concat(out, concat({0x16, 0x03, 0x01}, be16(n)));
    out.insert(out.end(), msg.begin() + static_cast<std::ptrdiff_t>(pos),
               msg.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  }
  return out;
}

// A hand-made ClientHello: TLS 1.2 body, one cipher suite, null compression, then the
// extensions block (omitted entirely when !withExtensions), in one record.
Bytes handHello(const Bytes& extensions, bool withExtensions = true) {
  Bytes body = {0x03, 0x03};
  body.resize(2 + 32, 0xAB);                     // random
  body.push_back(0);                              // session id <0..32>
  body = concat(body, {0x00, 0x02, 0x13, 0x01});  // cipher suites
  body = concat(body, {0x01, 0x00});              // compression methods
  if (withExtensions) body = concat(concat(body, be16(extensions.size())), extensions);
  Bytes msg = concat(concat({0x01}, be24(body.size())), body);
  return concat(concat({0x16, 0x03, 0x01}, be16(msg.size())), msg);
}
// Offsets in handHello's output.
constexpr size_t kSessionIdLenAt = 5 + 4 + 2 + 32;
constexpr size_t kCipherLenAt = kSessionIdLenAt + 1;
constexpr size_t kCompressionLenAt = kCipherLenAt + 4;
constexpr size_t kExtensionsLenAt = kCompressionLenAt + 2;

Bytes ext(uint16_t type, const Bytes& body) { return concat(concat(be16(type), be16(body.size())), body); }
// server_name with the given list (raw).
Bytes sniList(const Bytes& list) { return ext(0, concat(be16(list.size()), list)); }
Bytes hostEntry(const std::string& name, uint8_t type = 0) {
  return concat(concat({type}, be16(name.size())), bytes(name));
}
Bytes sniExt(const std::string& name) { return sniList(hostEntry(name)); }
Bytes alpnList(const Bytes& list) { return ext(16, concat(be16(list.size()), list)); }
Bytes alpnExt(const std::vector<std::string>& protos) {
  Bytes list;
  for (const auto& p : protos) list = concat(concat(list, {static_cast<uint8_t>(p.size())}), bytes(p));
  return alpnList(list);
}

struct Result {
  ClientHelloParse r;
  ClientHelloInfo info;
  std::string error;
};

// Parses the first n bytes from an exactly-sized heap copy so ASan catches over-reads.
Result parseN(const Bytes& b, size_t n) {
  Bytes copy(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
  Result res{ClientHelloParse::kError, {}, ""};
  res.r = parseClientHello(copy.data(), copy.size(), &res.info, &res.error);
  return res;
}
Result parse(const Bytes& b) { return parseN(b, b.size()); }

Result requireDone(const Bytes& b) {
  Result res = parse(b);
  INFO("error: " << res.error);
  REQUIRE(res.r == ClientHelloParse::kDone);
  REQUIRE(res.info.looked_like_tls);
  return res;
}

void requireError(const Bytes& b, const std::string& why = "") {
  Result res = parse(b);
  INFO("input size " << b.size() << ", error: " << res.error);
  REQUIRE(res.r == ClientHelloParse::kError);
  REQUIRE_FALSE(res.error.empty());
  if (!why.empty()) REQUIRE(res.error == why);
}

// Every strict prefix is kNeedMore; the whole is kDone.
void requireEveryPrefixNeedsMore(const Bytes& b) {
  for (size_t k = 0; k < b.size(); ++k) {
    Result res = parseN(b, k);
    INFO("prefix " << k << " of " << b.size() << ", error: " << res.error);
    REQUIRE(res.r == ClientHelloParse::kNeedMore);
  }
  requireDone(b);
}

}  // namespace

TEST_CASE("tls_inspector: an OpenSSL ClientHello with SNI and ALPN", "[tls_inspector]") {
  Bytes hello = opensslClientHello("www.example.com", {"h2", "http/1.1"});
  Result res = requireDone(hello);
  REQUIRE(res.info.server_name == "www.example.com");
  REQUIRE(res.info.alpn == std::vector<std::string>{"h2", "http/1.1"});
  // What follows the ClientHello (here the start of another record) is not looked at.
  REQUIRE(parse(concat(hello, {0x14, 0x03, 0x03})).r == ClientHelloParse::kDone);
  REQUIRE(parse(concat(hello, bytes("anything"))).r == ClientHelloParse::kDone);
}

TEST_CASE("tls_inspector: a TLS 1.2-only OpenSSL client", "[tls_inspector]") {
  Result res = requireDone(opensslClientHello("api.example.org", {"http/1.1"}, TLS1_2_VERSION));
  REQUIRE(res.info.server_name == "api.example.org");
  REQUIRE(res.info.alpn == std::vector<std::string>{"http/1.1"});
}

TEST_CASE("tls_inspector: arriving a byte at a time, every prefix needs more", "[tls_inspector]") {
  requireEveryPrefixNeedsMore(opensslClientHello("www.example.com", {"h2"}));
  requireEveryPrefixNeedsMore(opensslClientHello(nullptr, {}, TLS1_2_VERSION));
}

TEST_CASE("tls_inspector: a handshake message split across records", "[tls_inspector]") {
  const Bytes msg = handshakeOf(opensslClientHello("split.example.com", {"h2", "http/1.1"}));
  SECTION("two records, split at every offset (inside the handshake header too)") {
    for (size_t first = 1; first < msg.size(); ++first) {
      Bytes twoRecords = frame(msg, {first});
      INFO("first fragment " << first << " of " << msg.size());
      REQUIRE(twoRecords.size() == msg.size() + 10);
      Result res = requireDone(twoRecords);
      REQUIRE(res.info.server_name == "split.example.com");
      REQUIRE(res.info.alpn == std::vector<std::string>{"h2", "http/1.1"});
    }
  }
  SECTION("two records, byte by byte") { requireEveryPrefixNeedsMore(frame(msg, {msg.size() / 2})); }
  SECTION("one byte per record") {
    std::vector<size_t> ones(msg.size(), 1);
    Bytes tiny = frame(msg, ones);
    REQUIRE(tiny.size() == 6 * msg.size());
    requireEveryPrefixNeedsMore(tiny);
    REQUIRE(parse(tiny).info.server_name == "split.example.com");
  }
  SECTION("a record of another type in the middle is an error") {
    Bytes two = frame(msg, {100});
    two[5 + 100] = 0x17;  // application_data
    requireError(two, "ClientHello interleaved with another record type");
  }
}

TEST_CASE("tls_inspector: OpenSSL itself spreads a large ClientHello over records", "[tls_inspector]") {
  // ~20 KiB of ALPN names: more than one 16 KiB record.
  std::vector<std::string> alpn;
  for (int i = 0; i < 200; ++i) alpn.push_back("proto-" + std::to_string(i) + std::string(90, 'x'));
  Bytes hello = opensslClientHello("big.example.com", alpn);
  REQUIRE(hello.size() > 16384 + 5);
  const size_t firstRecord = (static_cast<size_t>(hello[3]) << 8) | hello[4];
  REQUIRE(firstRecord == 16384);
  Result res = requireDone(hello);
  REQUIRE(res.info.server_name == "big.example.com");
  REQUIRE(res.info.alpn == alpn);
  // Cut inside the second record: still waiting.
  REQUIRE(parseN(hello, 5 + 16384 + 5 + 10).r == ClientHelloParse::kNeedMore);
}

TEST_CASE("tls_inspector: no SNI and no ALPN", "[tls_inspector]") {
  Result res = requireDone(opensslClientHello(nullptr));
  REQUIRE(res.info.server_name.empty());
  REQUIRE(res.info.alpn.empty());
  // A ClientHello with no extensions block at all (SSL 3.0 style), and an empty one.
  REQUIRE(requireDone(handHello({}, false)).info.server_name.empty());
  REQUIRE(requireDone(handHello({})).info.server_name.empty());
}

TEST_CASE("tls_inspector: server names", "[tls_inspector]") {
  // DNS names only: RFC 6066 forbids IP literals in host_name.
  for (const char* name : {"a", "example.com", "a-b.c_d.example.net", "xn--bcher-kva.example",
                           "very.deep.sub.domain.example.co.uk"}) {
    INFO(name);
    REQUIRE(requireDone(opensslClientHello(name)).info.server_name == name);
  }
  SECTION("upper case is lower-cased") {
    REQUIRE(requireDone(opensslClientHello("WWW.Example.COM")).info.server_name == "www.example.com");
  }
  SECTION("255 bytes is the longest") {
    std::string longest(255, 'a');
    REQUIRE(requireDone(handHello(sniExt(longest))).info.server_name == longest);
    requireError(handHello(sniExt(longest + "a")), "bad server name");
  }
}

TEST_CASE("tls_inspector: ALPN lists", "[tls_inspector]") {
  REQUIRE(requireDone(opensslClientHello("x.example", {"h2"})).info.alpn ==
          std::vector<std::string>{"h2"});
  REQUIRE(requireDone(opensslClientHello("x.example", {"http/1.1", "h2", "spdy/3.1"})).info.alpn ==
          std::vector<std::string>{"http/1.1", "h2", "spdy/3.1"});
  const std::string longest(255, 'p');
  REQUIRE(requireDone(handHello(alpnExt({longest, "h2"}))).info.alpn ==
          std::vector<std::string>{longest, "h2"});
  // Names are opaque bytes.
  REQUIRE(requireDone(handHello(alpnExt({std::string("\0\xff", 2)}))).info.alpn ==
          std::vector<std::string>{std::string("\0\xff", 2)});
  Result both = requireDone(handHello(concat(alpnExt({"h2"}), sniExt("Both.Example"))));
  REQUIRE(both.info.server_name == "both.example");
  REQUIRE(both.info.alpn == std::vector<std::string>{"h2"});
}

TEST_CASE("tls_inspector: not TLS at all", "[tls_inspector]") {
  requireError(bytes("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), "not a TLS ClientHello");
  requireError(bytes("G"), "not a TLS ClientHello");  // decided on the first byte
  requireError(bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), "not a TLS ClientHello");
  requireError(bytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "not a TLS ClientHello");
  // SSLv2-compatible ClientHello: 2-byte length with the high bit set, then msg type 1.
  requireError({0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15}, "not a TLS ClientHello");
  // A handshake record with major version 2, and an SSH banner.
  requireError({0x16, 0x02, 0x00, 0x00, 0x10}, "not a TLS ClientHello");
  requireError(bytes("SSH-2.0-OpenSSH_9.2\r\n"), "not a TLS ClientHello");
  // TLS, but not a ClientHello: an alert record, and a ServerHello handshake message.
  requireError({0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28}, "not a TLS ClientHello");
  Bytes serverHello = handHello({});
  serverHello[5] = 0x02;
  Result res = parse(serverHello);
  REQUIRE(res.r == ClientHelloParse::kError);
  REQUIRE(res.info.looked_like_tls);  // the record header was TLS
  REQUIRE_FALSE(parse(bytes("GET /")).info.looked_like_tls);
  // Empty input and the first byte of a record are a valid prefix.
  REQUIRE(parse({}).r == ClientHelloParse::kNeedMore);
  REQUIRE(parse({0x16}).r == ClientHelloParse::kNeedMore);
  REQUIRE_FALSE(parse({0x16}).info.looked_like_tls);
  REQUIRE(parse({0x16, 0x03}).info.looked_like_tls);
}

TEST_CASE("tls_inspector: record header errors", "[tls_inspector]") {
  const Bytes hello = opensslClientHello("www.example.com");
  SECTION("length 0 or above 2^14") {
    Bytes b = hello;
    b[3] = 0;
    b[4] = 0;
    requireError(b, "bad TLS record length");
    b[3] = 0x40;
    b[4] = 0x01;
    requireError(b, "bad TLS record length");
  }
  SECTION("any minor version is accepted, not a major other than 3") {
    Bytes b = hello;
    b[2] = 0x00;
    requireDone(b);
    b[2] = 0x03;
    requireDone(b);
    Bytes two = frame(handshakeOf(hello), {50});
    two[5 + 50 + 1] = 0x02;
    requireError(two, "bad TLS record version");
  }
  // (The middle bytes of the lengths: + 256, no carry for a hello of a few hundred bytes.)
  SECTION("handshake length past the record waits for the next record") {
    Bytes b = hello;
    b[7] = static_cast<uint8_t>(b[7] + 1);
    REQUIRE(parse(b).r == ClientHelloParse::kNeedMore);
    requireError(concat(b, bytes("GET")), "ClientHello interleaved with another record type");
  }
  SECTION("record length past the data waits only while the message is incomplete") {
    Bytes b = hello;
    b[3] = static_cast<uint8_t>(b[3] + 1);
    REQUIRE(parse(b).r == ClientHelloParse::kDone);  // the message is complete regardless
    b[7] = static_cast<uint8_t>(b[7] + 1);
    REQUIRE(parse(b).r == ClientHelloParse::kNeedMore);
  }
}

TEST_CASE("tls_inspector: bad lengths inside the ClientHello are errors", "[tls_inspector]") {
  const Bytes good = handHello(concat(sniExt("example.com"), alpnExt({"h2"})));
  requireDone(good);
  auto with = [&](size_t at, uint8_t value) {
    Bytes b = good;
    b[at] = value;
    return b;
  };
  requireError(with(kSessionIdLenAt, 33), "bad ClientHello session id");
  requireError(with(kSessionIdLenAt, 0xFF), "bad ClientHello session id");
  requireError(with(kCipherLenAt + 1, 0x03), "bad ClientHello cipher suites");  // odd
  requireError(with(kCipherLenAt + 1, 0x00), "bad ClientHello cipher suites");  // empty
  requireError(with(kCipherLenAt, 0xFF), "bad ClientHello cipher suites");      // overlong
  requireError(with(kCompressionLenAt, 0x00), "bad ClientHello compression methods");
  requireError(with(kCompressionLenAt, 0xFF), "bad ClientHello compression methods");
  requireError(with(kExtensionsLenAt + 1, static_cast<uint8_t>(good[kExtensionsLenAt + 1] + 1)),
               "bad ClientHello extensions length");
  requireError(with(kExtensionsLenAt + 1, static_cast<uint8_t>(good[kExtensionsLenAt + 1] - 1)),
               "bad ClientHello extensions length");  // one byte after the block
  // The first extension's (server_name's) own length, overlong and short.
  requireError(with(kExtensionsLenAt + 5, 0xF0), "bad ClientHello extension length");
  requireError(with(kExtensionsLenAt + 5, static_cast<uint8_t>(good[kExtensionsLenAt + 5] - 1)));
  requireError(with(5 + 4, 0x02), "bad ClientHello version");
  // A handshake message too short for its fixed fields.
  Bytes shortMsg = {0x16, 0x03, 0x01, 0x00, 0x0E, 0x01, 0x00, 0x00, 0x0A};
  shortMsg.resize(shortMsg.size() + 10, 0x03);
  requireError(shortMsg, "ClientHello too short");
}

TEST_CASE("tls_inspector: malformed server_name extensions", "[tls_inspector]") {
  requireError(handHello(ext(0, {})), "bad server_name extension");           // empty (server form)
  requireError(handHello(sniList({})), "bad server_name extension");          // empty list
  requireError(handHello(sniList(hostEntry("a.example", 1))), "bad server_name extension");
  requireError(handHello(sniList(concat(hostEntry("a.example"), hostEntry("b.example")))),
               "bad server_name extension");  // two names
  requireError(handHello(sniExt("")), "bad server name");
  requireError(handHello(sniExt(std::string("evil\0.example", 13))), "bad server name");
  requireError(handHello(sniExt("b\xc3\xbc" "cher.example")), "bad server name");
  requireError(handHello(sniExt("a b.example")), "bad server name");
  requireError(handHello(sniExt("[::1]")), "bad server name");
  requireError(handHello(concat(sniExt("a.example"), sniExt("b.example"))),
               "repeated server_name extension");
  // List length one more / one less than its contents.
  Bytes entry = hostEntry("a.example");
  requireError(handHello(ext(0, concat(be16(entry.size() + 1), entry))), "bad server_name extension");
  requireError(handHello(ext(0, concat(be16(entry.size() - 1), entry))), "bad server_name extension");
  // Name length past the list.
  requireError(handHello(sniList(concat({0x00}, concat(be16(50), bytes("a.example"))))),
               "bad server_name extension");
}

TEST_CASE("tls_inspector: malformed ALPN extensions", "[tls_inspector]") {
  requireError(handHello(ext(16, {})), "bad ALPN extension");
  requireError(handHello(alpnList({})), "bad ALPN extension");
  requireError(handHello(alpnList({0x00})), "bad ALPN extension");            // empty name
  requireError(handHello(alpnList({0x02, 'h', '2', 0x00})), "bad ALPN extension");
  requireError(handHello(alpnList({0x05, 'h', '2'})), "bad ALPN extension");  // name past the list
  requireError(handHello(ext(16, concat(be16(4), {0x02, 'h', '2'}))), "bad ALPN extension");
  requireError(handHello(concat(alpnExt({"h2"}), alpnExt({"h2"}))), "repeated ALPN extension");
}

TEST_CASE("tls_inspector: the 64 KiB limit", "[tls_inspector]") {
  // A padding extension (21) sized so that the message in 16 KiB records ends exactly at
  // the limit: 4 records of 65516 message bytes = 65536 bytes.
  auto padded = [](size_t pad) {
    Bytes msg = handshakeOf(handHello(concat(sniExt("pad.example"), ext(21, Bytes(pad, 0)))));
    return frame(msg, {16384, 16384, 16384, 16384});
  };
  const size_t fixed = handshakeOf(handHello(concat(sniExt("pad.example"), ext(21, {})))).size();
  const size_t pad = 65516 - fixed;
  Bytes atLimit = padded(pad);
  REQUIRE(atLimit.size() == kMaxClientHelloBytes);
  REQUIRE(requireDone(atLimit).info.server_name == "pad.example");
  Bytes over = padded(pad + 1);
  REQUIRE(over.size() == kMaxClientHelloBytes + 1);
  requireError(over, "ClientHello longer than 64 KiB");
  // Rejected as soon as the last record's header arrives, not after 64 KiB.
  requireError(Bytes(over.begin(), over.begin() + 3 * 16389 + 5), "ClientHello longer than 64 KiB");

  // A handshake length that cannot fit is rejected from the header alone.
  requireError({0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xFF, 0xFF, 0xFF}, "ClientHello longer than 64 KiB");
  requireError({0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00}, "ClientHello longer than 64 KiB");
  // One-byte records run out of room before a small message ends.
  Bytes msg = handshakeOf(handHello(ext(21, Bytes(12000, 0))));
  Bytes tiny = frame(msg, std::vector<size_t>(msg.size(), 1));
  REQUIRE(tiny.size() > kMaxClientHelloBytes);
  requireError(tiny, "ClientHello longer than 64 KiB");
  // Never kNeedMore at or past the limit.
  REQUIRE(parseN(tiny, kMaxClientHelloBytes).r == ClientHelloParse::kError);
}

TEST_CASE("tls_inspector: any corrupted byte is handled without reading out of bounds",
          "[tls_inspector]") {
  const Bytes hello = opensslClientHello("www.example.com", {"h2", "http/1.1"});
  const Bytes split = frame(handshakeOf(hello), {40, 100});
  for (const Bytes* base : {&hello, &split}) {
    for (size_t i = 0; i < base->size(); ++i) {
      for (uint8_t v : {uint8_t{0x00}, uint8_t{0xFF}, static_cast<uint8_t>((*base)[i] + 1),
                        static_cast<uint8_t>((*base)[i] - 1)}) {
        Bytes b = *base;
        b[i] = v;
        Result res = parse(b);  // ASan/UBSan builds check the reads
        if (res.r == ClientHelloParse::kError) REQUIRE_FALSE(res.error.empty());
        // Truncated copies of the corrupted stream as well.
        parseN(b, i + 1);
      }
    }
  }
}

TEST_CASE("tls_inspector: out-parameters may be null", "[tls_inspector]") {
  const Bytes hello = opensslClientHello("www.example.com");
  REQUIRE(parseClientHello(hello.data(), hello.size(), nullptr, nullptr) == ClientHelloParse::kDone);
  Bytes http = bytes("GET / HTTP/1.1\r\n");
  REQUIRE(parseClientHello(http.data(), http.size(), nullptr, nullptr) == ClientHelloParse::kError);
  REQUIRE(parseClientHello(nullptr, 0, nullptr, nullptr) == ClientHelloParse::kNeedMore);
}

namespace {

// A TLS inspector as the listener runs it: a ConnectionInfo, a worker with a stats shard,
// the listener's state.
struct FilterFixture {
  FilterFixture() : stats(1), state(std::make_shared<ListenerState>("sni", stats)) {
    tls_stats = registerTlsInspectorStats(stats, "sni");
    worker.stats = &stats.shard(0);
    filter = tlsInspectorFilter(5s, tls_stats).make();
  }
  ListenerFilterStatus feed(Buffer& raw, bool end_stream = false) {
    ListenerFilterContext ctx{info, worker, *state};
    return filter->onData(raw, end_stream, ctx);
  }
  int64_t count(ferry::core::StatHandle h) const { return stats.value(h); }

  StatsStore stats;
  std::shared_ptr<ListenerState> state;
  TlsInspectorStats tls_stats;
  WorkerContext worker;
  ConnectionInfo info;
  std::unique_ptr<ListenerFilter> filter;
};

std::string str(const Bytes& b) { return std::string(b.begin(), b.end()); }

}  // namespace

TEST_CASE("tls_inspector filter: fills ConnectionInfo and leaves every byte in the buffer",
          "[tls_inspector]") {
  FilterFixture f;
  const Bytes hello = opensslClientHello("Passthrough.Example.COM", {"h2", "http/1.1"});
  const std::string stream = str(hello) + "\x17\x03\x03 and whatever follows";
  Buffer raw;
  raw.add(stream);
  REQUIRE(f.feed(raw) == ListenerFilterStatus::kContinue);
  REQUIRE(raw.toString() == stream);  // passthrough: nothing consumed
  REQUIRE(f.info.tlsClientHello());
  REQUIRE(f.info.requestedServerName() == "passthrough.example.com");
  REQUIRE(f.info.requestedAlpn() == std::vector<std::string>{"h2", "http/1.1"});
  REQUIRE(f.count(f.tls_stats.client_hellos) == 1);
  REQUIRE(f.count(f.tls_stats.errors) == 0);
  REQUIRE(tlsInspectorFilter(5s, f.tls_stats).timeout == 5s);
}

TEST_CASE("tls_inspector filter: bytes arriving one at a time, over two records", "[tls_inspector]") {
  FilterFixture f;
  const Bytes msg = handshakeOf(opensslClientHello("slow.example.com", {"h2"}));
  const Bytes stream = frame(msg, {7});
  Buffer raw;
  for (size_t i = 0; i + 1 < stream.size(); ++i) {
    raw.add(&stream[i], 1);
    INFO("byte " << i);
    REQUIRE(f.feed(raw) == ListenerFilterStatus::kNeedMore);
  }
  REQUIRE_FALSE(f.info.tlsClientHello());
  raw.add(&stream.back(), 1);
  REQUIRE(f.feed(raw) == ListenerFilterStatus::kContinue);
  REQUIRE(raw.toString() == str(stream));
  REQUIRE(f.info.requestedServerName() == "slow.example.com");
  REQUIRE(f.info.requestedAlpn() == std::vector<std::string>{"h2"});
  REQUIRE(f.count(f.tls_stats.client_hellos) == 1);
}

TEST_CASE("tls_inspector filter: a ClientHello without SNI continues with no name", "[tls_inspector]") {
  FilterFixture f;
  Buffer raw;
  raw.add(str(opensslClientHello(nullptr)));
  REQUIRE(f.feed(raw) == ListenerFilterStatus::kContinue);
  REQUIRE(f.info.tlsClientHello());
  REQUIRE(f.info.requestedServerName().empty());
  REQUIRE(f.info.requestedAlpn().empty());
}

TEST_CASE("tls_inspector filter: not TLS is refused and counted", "[tls_inspector]") {
  FilterFixture f;
  Buffer raw;
  raw.add("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
  REQUIRE(f.feed(raw) == ListenerFilterStatus::kClose);
  REQUIRE_FALSE(f.info.tlsClientHello());
  REQUIRE(f.count(f.tls_stats.errors) == 1);
  REQUIRE(f.count(f.tls_stats.client_hellos) == 0);
}

TEST_CASE("tls_inspector filter: the peer closing early", "[tls_inspector]") {
  FilterFixture f;
  Buffer raw;
  SECTION("inside the ClientHello: closed, counted as an error") {
    const Bytes hello = opensslClientHello("www.example.com");
    raw.add(&hello[0], 20);
    REQUIRE(f.feed(raw) == ListenerFilterStatus::kNeedMore);
    REQUIRE(f.feed(raw, true) == ListenerFilterStatus::kClose);
    REQUIRE(f.count(f.tls_stats.errors) == 1);
  }
  SECTION("before sending a byte: closed, not an error") {
    REQUIRE(f.feed(raw, true) == ListenerFilterStatus::kClose);
    REQUIRE(f.count(f.tls_stats.errors) == 0);
  }
  REQUIRE_FALSE(f.info.tlsClientHello());
}

TEST_CASE("tls_inspector filter: a timeout is counted", "[tls_inspector]") {
  FilterFixture f;
  Buffer raw;
  raw.add("\x16\x03\x01");
  REQUIRE(f.feed(raw) == ListenerFilterStatus::kNeedMore);
  ListenerFilterContext ctx{f.info, f.worker, *f.state};
  f.filter->onTimeout(ctx);
  REQUIRE(f.count(f.tls_stats.timeouts) == 1);
  REQUIRE(f.count(f.tls_stats.errors) == 0);
}

TEST_CASE("tls_inspector filter: after the PROXY protocol filter", "[tls_inspector]") {
  // As the listener chains them: the PROXY filter drains its header, the inspector reads
  // what follows and drains nothing.
  FilterFixture f;
  auto proxy = ferry::core::net::proxyProtocolFilter(0ms).make();
  const std::string hello = str(opensslClientHello("behind.lb.example", {"h2"}));
  const std::string header = "PROXY TCP4 192.0.2.1 192.0.2.2 40000 443\r\n";
  Buffer raw;
  ListenerFilterContext ctx{f.info, f.worker, *f.state};
  raw.add(header + hello.substr(0, 30));
  REQUIRE(proxy->onData(raw, false, ctx) == ListenerFilterStatus::kContinue);
  REQUIRE(f.feed(raw) == ListenerFilterStatus::kNeedMore);
  raw.add(hello.substr(30));
  REQUIRE(f.feed(raw) == ListenerFilterStatus::kContinue);
  REQUIRE(raw.toString() == hello);
  REQUIRE(f.info.fromProxyProtocol());
  REQUIRE(f.info.requestedServerName() == "behind.lb.example");
}

TEST_CASE("tls_inspector: counters are registered per listener with help", "[tls_inspector]") {
  StatsStore stats(1);
  TlsInspectorStats a = registerTlsInspectorStats(stats, "a");
  TlsInspectorStats b = registerTlsInspectorStats(stats, "b");
  REQUIRE(a.client_hellos.idx != b.client_hellos.idx);
  REQUIRE(registerTlsInspectorStats(stats, "a").errors.idx == a.errors.idx);
  const std::string text = stats.prometheus();
  for (const char* name : {"ferry_tls_inspector_client_hellos_total",
                           "ferry_tls_inspector_errors_total", "ferry_tls_inspector_timeouts_total"}) {
    INFO(name);
    REQUIRE(text.find(std::string("# HELP ") + name + " ") != std::string::npos);
    REQUIRE(text.find(std::string(name) + "{listener=\"a\"} 0") != std::string::npos);
    REQUIRE(text.find(std::string(name) + "{listener=\"b\"} 0") != std::string::npos);
  }
}
