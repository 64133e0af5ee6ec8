// PROXY protocol: accepted on a listener (proxy_protocol: true), sent upstream
// (send_proxy_protocol: v1|v2). Expected headers are written out byte by byte here
// (haproxy.org doc/proxy-protocol.txt), independent of ferry's own encoder.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

using namespace ferry::testing;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kV2Sig("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12);

std::string be16(uint16_t v) {
  return std::string{static_cast<char>(v >> 8), static_cast<char>(v & 0xFF)};
}

std::string ip4(const char* text) {
  in_addr a{};
  REQUIRE(inet_pton(AF_INET, text, &a) == 1);
  return std::string(reinterpret_cast<const char*>(&a), 4);
}

std::string ip6(const char* text) {
  in6_addr a{};
  REQUIRE(inet_pton(AF_INET6, text, &a) == 1);
  return std::string(reinterpret_cast<const char*>(&a), 16);
}

// v2 PROXY command, TCP over IPv4, no TLVs.
std::string v2Tcp4(const char* src, uint16_t sport, const char* dst, uint16_t dport,
                   const std::string& tlvs = "") {
  return kV2Sig + "\x21\x11" + be16(static_cast<uint16_t>(12 + tlvs.size())) + ip4(src) + ip4(dst) +
         be16(sport) + be16(dport) + tlvs;
}

// v2 PROXY command, TCP over IPv6.
std::string v2Tcp6(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
  return kV2Sig + "\x21\x21" + be16(36) + ip6(src) + ip6(dst) + be16(sport) + be16(dport);
}

// v2 LOCAL command (health checks from the proxy itself): no addresses.
std::string v2Local() { return kV2Sig + std::string("\x20\x00\x00\x00", 4); }

std::string hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += d[c >> 4];
    out += d[c & 15];
    out += ' ';
  }
  return out;
}

uint16_t localPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  return ntohs(a.sin_port);
}

void noDelay(int fd) {
  int one = 1;
  REQUIRE(::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
}

// Listener "pp" expects a PROXY header; cluster "up" sends `send` (v1|v2|"" for none) to
// `up_port`. Listener "plain" (no PROXY header expected) uses the same cluster.
std::string ppConfig(uint16_t up_port, const std::string& send, const std::string& pp_timeout = "") {
  std::string y =
      "runtime: {workers: 1}\n"
      "admin: {address: 127.0.0.1:0}\n"
      "listeners:\n"
      "  - name: pp\n"
      "    address: 127.0.0.1:0\n"
      "    proxy_protocol: true\n";
  if (!pp_timeout.empty()) y += "    proxy_protocol_timeout: " + pp_timeout + "\n";
  y +=
      "    tcp: {cluster: up}\n"
      "  - name: plain\n"
      "    address: 127.0.0.1:0\n"
      "    tcp: {cluster: up}\n"
      "clusters:\n"
      "  - name: up\n";
  if (!send.empty()) y += "    send_proxy_protocol: " + send + "\n";
  y += "    endpoints: [{address: 127.0.0.1:" + std::to_string(up_port) + "}]\n";
  return y;
}

const std::string kPpErrors = "ferry_downstream_proxy_protocol_errors_total{listener=\"pp\"}";

// Sends `header` + payload through listener "pp" and checks what the upstream received:
// exactly `expect_header` + payload, then EOF after the client closes.
void checkForwarded(const std::string& header, const std::string& expect_header,
                    const std::string& send = "v2") {
  auto rec = std::make_shared<Received>();
  FakeUpstream up(FakeUpstream::sink(rec));
  auto f = FerryProcess::start(ppConfig(up.port(), send));
  uint16_t admin = f->adminPort();
  auto c = TcpClient::connect(f->port("pp"));
  REQUIRE(c);
  const std::string payload = "GET / HTTP/1.0\r\n\r\n" + randomBytes(5000, 3);
  REQUIRE(c->sendAll(header + payload));
  const std::string want = expect_header + payload;
  REQUIRE(rec->waitBytes(want.size(), 5s));
  c->shutdownWrite();
  REQUIRE(rec->waitEof(5s));
  const std::string got = rec->data();
  INFO("header received: " << hex(got.substr(0, expect_header.size())));
  INFO("header expected: " << hex(expect_header));
  CHECK(got.substr(0, expect_header.size()) == expect_header);
  CHECK(got.size() == want.size());
  CHECK(got == want);
  CHECK(up.accepted() == 1);
  CHECK(metricValue(admin, kPpErrors) == 0);
  // The client-visible byte count excludes the PROXY header.
  CHECK(waitMetric(admin, "ferry_downstream_bytes_received_total{listener=\"pp\"}",
                   static_cast<double>(payload.size())));
}

}  // namespace

TEST_CASE("PROXY v1 in, v2 out: upstream gets the client's addresses, then exactly the payload",
          "[proxy_protocol]") {
  checkForwarded("PROXY TCP4 192.0.2.1 198.51.100.2 12345 443\r\n",
                 v2Tcp4("192.0.2.1", 12345, "198.51.100.2", 443));
}

TEST_CASE("PROXY v2 in, v2 out", "[proxy_protocol]") {
  SECTION("IPv4") {
    checkForwarded(v2Tcp4("203.0.113.7", 40000, "198.51.100.9", 8443),
                   v2Tcp4("203.0.113.7", 40000, "198.51.100.9", 8443));
  }
  SECTION("IPv4 with TLVs (skipped, not forwarded)") {
    // PP2_TYPE_AUTHORITY "example.com" and a PP2_TYPE_NOOP of 3 bytes.
    const std::string tlvs = std::string("\x02\x00\x0B", 3) + "example.com" + std::string("\x04\x00\x03xyz", 6);
    checkForwarded(v2Tcp4("203.0.113.7", 40000, "198.51.100.9", 8443, tlvs),
                   v2Tcp4("203.0.113.7", 40000, "198.51.100.9", 8443));
  }
  SECTION("IPv6") {
    checkForwarded(v2Tcp6("2001:db8::1", 1111, "2001:db8::2", 2222),
                   v2Tcp6("2001:db8::1", 1111, "2001:db8::2", 2222));
  }
}

TEST_CASE("PROXY v1 TCP6 in, v2 out", "[proxy_protocol]") {
  checkForwarded("PROXY TCP6 2001:db8::1 2001:db8:0:1::ff 65535 1\r\n",
                 v2Tcp6("2001:db8::1", 65535, "2001:db8:0:1::ff", 1));
}

TEST_CASE("PROXY v1 in, v1 out", "[proxy_protocol]") {
  checkForwarded("PROXY TCP4 192.0.2.1 198.51.100.2 12345 443\r\n",
                 "PROXY TCP4 192.0.2.1 198.51.100.2 12345 443\r\n", "v1");
}

TEST_CASE("PROXY header in, nothing out: the header is stripped", "[proxy_protocol]") {
  checkForwarded("PROXY TCP4 192.0.2.1 198.51.100.2 12345 443\r\n", "", "");
  checkForwarded(v2Tcp4("192.0.2.1", 12345, "198.51.100.2", 443), "", "");
}

TEST_CASE("PROXY LOCAL/UNKNOWN in: the real connection addresses go upstream", "[proxy_protocol]") {
  auto rec = std::make_shared<Received>();
  FakeUpstream up(FakeUpstream::sink(rec));
  auto f = FerryProcess::start(ppConfig(up.port(), "v2"));
  uint16_t port = f->port("pp");
  const std::string header = GENERATE(as<std::string>{}, "PROXY UNKNOWN\r\n",
                                      "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", v2Local());
  INFO("incoming header: " << hex(header));
  auto c = TcpClient::connect(port);
  REQUIRE(c);
  const uint16_t client_port = localPort(c->fd());
  REQUIRE(c->sendAll(header + "data"));
  const std::string expect = v2Tcp4("127.0.0.1", client_port, "127.0.0.1", port) + "data";
  REQUIRE(rec->waitBytes(expect.size(), 5s));
  CHECK(hex(rec->data()) == hex(expect));
}

TEST_CASE("PROXY header split across several writes", "[proxy_protocol]") {
  auto rec = std::make_shared<Received>();
  FakeUpstream up(FakeUpstream::sink(rec));
  auto f = FerryProcess::start(ppConfig(up.port(), "v2"));
  uint16_t admin = f->adminPort();
  uint16_t port = f->port("pp");

  std::vector<std::string> pieces;
  std::string expect_header;
  SECTION("v1") {
    pieces = {"PROX", "Y TCP4 192.0", ".2.1 198.51.100.2 123", "45 443\r", "\n"};
    expect_header = v2Tcp4("192.0.2.1", 12345, "198.51.100.2", 443);
  }
  SECTION("v2") {
    std::string h = v2Tcp4("192.0.2.1", 12345, "198.51.100.2", 443);
    // Inside the signature, right after it, inside the length, inside the addresses.
    pieces = {h.substr(0, 5), h.substr(5, 8), h.substr(13, 2), h.substr(15, 6), h.substr(21)};
    expect_header = h;
  }
  auto c = TcpClient::connect(port);
  REQUIRE(c);
  noDelay(c->fd());
  for (size_t i = 0; i + 1 < pieces.size(); ++i) {
    INFO("after piece " << hex(pieces[i]));
    REQUIRE(c->sendAll(pieces[i]));
    // An incomplete header is neither an error nor a reason to contact the upstream.
    CHECK_FALSE(c->peerClosedOrReset(100ms));
    CHECK(up.accepted() == 0);
  }
  // The last piece completes the header: now the upstream is connected (and gets it).
  REQUIRE(c->sendAll(pieces.back()));
  REQUIRE(up.waitAccepted(1, 5s));
  REQUIRE(rec->waitBytes(expect_header.size(), 5s));
  CHECK(hex(rec->data()) == hex(expect_header));
  REQUIRE(c->sendAll("payload-1"));
  REQUIRE(c->sendAll("payload-2"));
  const std::string want = expect_header + "payload-1payload-2";
  REQUIRE(rec->waitBytes(want.size(), 5s));
  CHECK(hex(rec->data().substr(0, expect_header.size())) == hex(expect_header));
  CHECK(rec->data() == want);
  CHECK(up.accepted() == 1);
  CHECK(metricValue(admin, kPpErrors) == 0);
}

TEST_CASE("upstream bytes reach the client after a PROXY header", "[proxy_protocol]") {
  auto rec = std::make_shared<Received>();
  FakeUpstream up([rec](int fd) {
    FakeUpstream::writeAll(fd, "welcome\n");
    FakeUpstream::sink(rec)(fd);
  });
  auto f = FerryProcess::start(ppConfig(up.port(), "v2"));
  auto c = TcpClient::connect(f->port("pp"));
  REQUIRE(c);
  REQUIRE(c->sendAll("PROXY TCP4 192.0.2.1 198.51.100.2 12345 443\r\nhi"));
  CHECK(c->recvExactly(8, 5s) == "welcome\n");
  const std::string expect = v2Tcp4("192.0.2.1", 12345, "198.51.100.2", 443) + "hi";
  REQUIRE(rec->waitBytes(expect.size(), 5s));
  CHECK(rec->data() == expect);
}

TEST_CASE("a missing or malformed PROXY header closes the connection; upstream never contacted",
          "[proxy_protocol]") {
  auto rec = std::make_shared<Received>();
  FakeUpstream up(FakeUpstream::sink(rec));
  auto f = FerryProcess::start(ppConfig(up.port(), "v2"));
  uint16_t admin = f->adminPort();
  uint16_t port = f->port("pp");

  const std::vector<std::string> bad = {
      "hello\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      "PROXY garbage\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 12345\r\n",        // missing a port
      "PROXY TCP4 192.0.2.256 198.51.100.2 12345 443\r\n",  // bad octet
      "PROXY TCP4 192.0.2.1 198.51.100.2 123456 443\r\n",   // bad port
      "PROXY TCP4 192.0.2.1 198.51.100.2 12345 443\n",      // LF without CR
      kV2Sig + std::string("\x31\x11\x00\x0C", 4) + std::string(12, '\0'),  // version 3
      kV2Sig + std::string("\x21\x11\x00\x04", 4) + std::string(4, '\0'),   // too short for INET
      "PROXY UNKNOWN " + std::string(200, 'x') + "\r\n",  // longer than v1's 107 bytes
  };
  double errors = 0;
  for (const auto& b : bad) {
    INFO("sent: " << hex(b));
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    // (Ferry may close before reading it all: the send result does not matter.)
    c->sendAll(b + "then some payload", 2s);
    std::string back = c->recvUntilClose(5s);
    CHECK(c->closedByPeer());
    CHECK(back.empty());
    errors += 1;
    CHECK(waitMetric(admin, kPpErrors, errors));
  }
  CHECK(up.accepted() == 0);
  CHECK(rec->size() == 0);
  CHECK(waitMetric(admin, "ferry_downstream_connections_active{listener=\"pp\"}", 0));

  // The listener still works for a good client afterwards.
  auto good = TcpClient::connect(port);
  REQUIRE(good);
  REQUIRE(good->sendAll("PROXY TCP4 192.0.2.1 198.51.100.2 12345 443\r\nok"));
  const std::string want = v2Tcp4("192.0.2.1", 12345, "198.51.100.2", 443) + "ok";
  REQUIRE(rec->waitBytes(want.size(), 5s));
  CHECK(rec->data() == want);
  CHECK(metricValue(admin, kPpErrors) == errors);
}

TEST_CASE("the client closing inside the PROXY header counts as an error", "[proxy_protocol]") {
  auto rec = std::make_shared<Received>();
  FakeUpstream up(FakeUpstream::sink(rec));
  auto f = FerryProcess::start(ppConfig(up.port(), "v2"));
  uint16_t admin = f->adminPort();
  auto c = TcpClient::connect(f->port("pp"));
  REQUIRE(c);
  REQUIRE(c->sendAll("PROXY TCP4 192.0.2.1 "));
  c->shutdownWrite();
  CHECK(c->waitClosed(5s));
  CHECK(waitMetric(admin, kPpErrors, 1));
  CHECK(up.accepted() == 0);
}

TEST_CASE("no PROXY header before proxy_protocol_timeout: the connection is closed",
          "[proxy_protocol]") {
  auto rec = std::make_shared<Received>();
  FakeUpstream up(FakeUpstream::sink(rec));
  auto f = FerryProcess::start(ppConfig(up.port(), "v2", "300ms"));
  uint16_t admin = f->adminPort();
  uint16_t port = f->port("pp");

  SECTION("silence") {
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    auto t0 = Clock::now();
    REQUIRE(c->waitClosed(5s));
    auto elapsed = Clock::now() - t0;
    CHECK(elapsed >= 250ms);
    CHECK(elapsed < 3s);
  }
  SECTION("half a header, then silence") {
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    auto t0 = Clock::now();
    REQUIRE(c->sendAll("PROXY TCP4 192.0.2.1"));
    REQUIRE(c->waitClosed(5s));
    auto elapsed = Clock::now() - t0;
    CHECK(elapsed >= 250ms);
    CHECK(elapsed < 3s);
  }
  CHECK(waitMetric(admin, kPpErrors, 1));
  CHECK(up.accepted() == 0);
  CHECK(waitMetric(admin, "ferry_downstream_connections_active{listener=\"pp\"}", 0));
}

TEST_CASE("a header arriving in time is not cut by proxy_protocol_timeout", "[proxy_protocol]") {
  auto rec = std::make_shared<Received>();
  FakeUpstream up(FakeUpstream::sink(rec));
  auto f = FerryProcess::start(ppConfig(up.port(), "v2", "300ms"));
  auto c = TcpClient::connect(f->port("pp"));
  REQUIRE(c);
  REQUIRE(c->sendAll("PROXY TCP4 192.0.2.1 198.51.100.2 12345 443\r\nfirst"));
  const std::string h = v2Tcp4("192.0.2.1", 12345, "198.51.100.2", 443);
  REQUIRE(rec->waitBytes(h.size() + 5, 5s));
  // Well past the header timeout, the connection is still open and forwarding.
  CHECK_FALSE(c->peerClosedOrReset(600ms));
  REQUIRE(c->sendAll("second"));
  REQUIRE(rec->waitBytes(h.size() + 11, 5s));
  CHECK(rec->data() == h + "firstsecond");
}

TEST_CASE("send_proxy_protocol without an incoming header carries the socket addresses",
          "[proxy_protocol]") {
  auto rec = std::make_shared<Received>();
  FakeUpstream up(FakeUpstream::sink(rec));
  SECTION("v1") {
    auto f = FerryProcess::start(ppConfig(up.port(), "v1"));
    uint16_t port = f->port("plain");
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    const uint16_t client_port = localPort(c->fd());
    REQUIRE(c->sendAll("payload"));
    const std::string want = "PROXY TCP4 127.0.0.1 127.0.0.1 " + std::to_string(client_port) + " " +
                             std::to_string(port) + "\r\npayload";
    REQUIRE(rec->waitBytes(want.size(), 5s));
    CHECK(rec->data() == want);
  }
  SECTION("v2") {
    auto f = FerryProcess::start(ppConfig(up.port(), "v2"));
    uint16_t port = f->port("plain");
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    const uint16_t client_port = localPort(c->fd());
    REQUIRE(c->sendAll("payload"));
    const std::string want = v2Tcp4("127.0.0.1", client_port, "127.0.0.1", port) + "payload";
    REQUIRE(rec->waitBytes(want.size(), 5s));
    CHECK(hex(rec->data()) == hex(want));
  }
  SECTION("v1, the client sends nothing: the header still goes at once") {
    auto f = FerryProcess::start(ppConfig(up.port(), "v1"));
    uint16_t port = f->port("plain");
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    const uint16_t client_port = localPort(c->fd());
    const std::string want = "PROXY TCP4 127.0.0.1 127.0.0.1 " + std::to_string(client_port) + " " +
                             std::to_string(port) + "\r\n";
    REQUIRE(rec->waitBytes(want.size(), 5s));
    CHECK(rec->data() == want);
  }
}

namespace {

// An HTTP upstream that records, per connection, everything it read (a PROXY header
// included) and answers every request head with a small keep-alive 200.
struct RecordingHttpUpstream {
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::string> conns;
    size_t answered = 0;
  };
  std::shared_ptr<State> st = std::make_shared<State>();
  FakeUpstream server{[st = st](int fd) {
    size_t index;
    {
      std::lock_guard<std::mutex> lk(st->mu);
      index = st->conns.size();
      st->conns.emplace_back();
    }
    std::string pending;
    while (true) {
      std::string chunk = FakeUpstream::readSome(fd);
      if (chunk.empty()) return;
      pending += chunk;
      {
        std::lock_guard<std::mutex> lk(st->mu);
        st->conns[index] += chunk;
      }
      size_t end;
      while ((end = pending.find("\r\n\r\n")) != std::string::npos) {
        pending.erase(0, end + 4);
        if (!FakeUpstream::writeAll(fd, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")) return;
        std::lock_guard<std::mutex> lk(st->mu);
        ++st->answered;
        st->cv.notify_all();
      }
    }
  }};
  std::vector<std::string> conns() const {
    std::lock_guard<std::mutex> lk(st->mu);
    return st->conns;
  }
};

std::string ppHttpConfig(uint16_t up_port) {
  return "admin: {address: 127.0.0.1:0}\n"
         "listeners:\n"
         "  - name: web\n"
         "    address: 127.0.0.1:0\n"
         "    proxy_protocol: true\n"
         "    http:\n"
         "      virtual_hosts:\n"
         "        - {name: all, domains: [\"*\"], routes: [{match: {prefix: /}, route: {cluster: up}}]}\n"
         "clusters:\n"
         "  - name: up\n"
         "    send_proxy_protocol: v1\n"
         "    idle_timeout: 300ms\n"
         "    endpoints: [{address: 127.0.0.1:" + std::to_string(up_port) + "}]\n";
}

}  // namespace

TEST_CASE("send_proxy_protocol on an HTTP cluster: each client's connections carry its own header, "
          "and are never shared with another client", "[proxy_protocol][http]") {
  RecordingHttpUpstream up;
  auto f = FerryProcess::start(ppHttpConfig(up.server.port()));
  const uint16_t port = f->port("web");
  auto request = [](TcpClient& c, const std::string& path) {
    REQUIRE(c.sendAll("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto r = readHttpResponse(c);
    REQUIRE(r.status == 200);
    REQUIRE(r.body == "ok");
  };
  auto a = TcpClient::connect(port);
  REQUIRE(a);
  REQUIRE(a->sendAll("PROXY TCP4 10.0.0.1 10.0.0.9 1111 80\r\n"));
  request(*a, "/a1");
  request(*a, "/a2");  // keep-alive: the same upstream connection
  auto b = TcpClient::connect(port);
  REQUIRE(b);
  REQUIRE(b->sendAll("PROXY TCP4 10.0.0.2 10.0.0.9 2222 80\r\n"));
  request(*b, "/b1");
  auto conns = up.conns();
  REQUIRE(conns.size() == 2);
  INFO("first: " << conns[0] << "\nsecond: " << conns[1]);
  CHECK(conns[0].rfind("PROXY TCP4 10.0.0.1 10.0.0.9 1111 80\r\nGET /a1 HTTP/1.1\r\n", 0) == 0);
  CHECK(conns[0].find("GET /a2 HTTP/1.1\r\n") != std::string::npos);
  CHECK(conns[0].find("PROXY", 1) == std::string::npos);  // one header per connection
  CHECK(conns[1].rfind("PROXY TCP4 10.0.0.2 10.0.0.9 2222 80\r\nGET /b1 HTTP/1.1\r\n", 0) == 0);
  // Idle private connections close after the cluster's idle_timeout, and their pools go.
  a.reset();
  b.reset();
  REQUIRE(waitUntil([&] { return metricValue(*f, "ferry_upstream_pools{cluster=\"up\"}") == 0; }, 15s));
}
