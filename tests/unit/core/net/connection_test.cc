// Connection on the worker Poller, over real loopback TCP sockets: readiness bookkeeping
// (short read = drained, FIN queued behind data, reads disabled while data arrives) and
// corked writes. Bounded waits (runUntil, tests/support/event_loop.h); no sleeps.
#include "core/net/connection.h"
#include "core/net/socket_util.h"

#include <arpa/inet.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "tests/support/event_loop.h"
#include "tests/support/socket_pair.h"

using ferry::core::Buffer;
using ferry::core::net::Connection;
using ferry::core::net::ConnectionCallbacks;
using ferry::core::net::ConnectionEvent;
using ferry::testing::runUntil;
using ferry::testing::SocketPair;
using namespace std::chrono_literals;

namespace {

struct Recorder : ConnectionCallbacks {
  std::string data;
  bool eof = false;
  int events = 0;
  std::function<void(Buffer&)> on_data;
  void onData(Buffer& b, bool end_stream) override {
    if (on_data) on_data(b);
    data += b.toString();
    b.clear();
    eof = eof || end_stream;
  }
  void onEvent(ConnectionEvent) override { ++events; }
};

}  // namespace

TEST_CASE("connection: data and FIN arriving together are both delivered", "[connection]") {
  boost::asio::io_context io;
  SocketPair sp;
  Recorder rec;
  auto conn = Connection::adopt(io, sp.ours, {});
  conn->setCallbacks(&rec);
  conn->startReading();  // reads nothing yet: the socket is drained
  // Both arrive before the loop looks: one edge for both. The short read of "hello" must
  // not be taken as "drained" because the FIN is already queued behind it.
  sp.send("hello");
  ::shutdown(sp.peer, SHUT_WR);
  REQUIRE(runUntil(io, [&] { return rec.eof; }));
  CHECK(rec.data == "hello");
  conn->close(Connection::CloseType::kNoFlush);
}

// Reads of every size on one connection (the epoll path reads into up to four slices a
// call): small, then a burst far larger than the socket buffers, then small again. Every
// byte must arrive, in order.
TEST_CASE("connection: small reads, a large burst, small reads again: every byte in order", "[connection]") {
  boost::asio::io_context io;
  SocketPair sp;
  Recorder rec;
  auto conn = Connection::adopt(io, sp.ours, {});
  conn->setCallbacks(&rec);
  conn->startReading();
  std::string want = "GET / HTTP/1.1\r\n\r\n";
  sp.send(want);
  REQUIRE(runUntil(io, [&] { return rec.data.size() == want.size(); }));
  std::string burst(3 * 1024 * 1024 + 123, '\0');
  for (size_t i = 0; i < burst.size(); ++i) burst[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  // Sent from a thread, as the loop below reads it; bounded by a send timeout.
  timeval tv{20, 0};
  ::setsockopt(sp.peer, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  size_t sent = 0;
  std::thread sender([&] {
    while (sent < burst.size()) {
      const ssize_t r = ::send(sp.peer, burst.data() + sent, burst.size() - sent, MSG_NOSIGNAL);
      if (r <= 0) break;
      sent += static_cast<size_t>(r);
    }
  });
  want += burst;
  const bool got = runUntil(io, [&] { return rec.data.size() == want.size(); }, 20s);
  sender.join();
  REQUIRE(sent == burst.size());
  REQUIRE(got);
  sp.send("tail");
  want += "tail";
  REQUIRE(runUntil(io, [&] { return rec.data.size() == want.size(); }));
  CHECK(rec.data == want);
  conn->close(Connection::CloseType::kNoFlush);
}

TEST_CASE("connection: data that arrives while reads are disabled is read on enable", "[connection]") {
  boost::asio::io_context io;
  SocketPair sp;
  Recorder rec;
  auto conn = Connection::adopt(io, sp.ours, {});
  conn->setCallbacks(&rec);
  conn->startReading();
  // A second connection on the same loop (the same Poller), reading normally.
  SocketPair later_sp;
  Recorder later;
  auto later_conn = Connection::adopt(io, later_sp.ours, {});
  later_conn->setCallbacks(&later);
  later_conn->startReading();
  conn->readDisable(true);
  sp.send("abc");
  // The edge is consumed while disabled. Rather than run the loop for a while: once "abc" is
  // queued on our socket (so its edge is already in epoll's ready list), send a later message
  // on the second connection and run the loop until that one has arrived. Its edge came after
  // ours, so by then the Poller has dispatched ours too, to a connection that must not read.
  REQUIRE(sp.oursReadable());
  later_sp.send("later");
  REQUIRE(runUntil(io, [&] { return later.data == "later"; }));
  CHECK(rec.data.empty());
  conn->readDisable(false);  // no new edge will come: the ready bit must carry it
  REQUIRE(runUntil(io, [&] { return rec.data == "abc"; }));
  sp.send("def");  // and the edge-triggered registration still works afterwards
  REQUIRE(runUntil(io, [&] { return rec.data == "abcdef"; }));
  conn->close(Connection::CloseType::kNoFlush);
  later_conn->close(Connection::CloseType::kNoFlush);
}

TEST_CASE("connection: writes made while handling one event leave in one segment", "[connection]") {
  boost::asio::io_context io;
  SocketPair sp;
  Recorder rec;
  auto conn = Connection::adopt(io, sp.ours, {});
  conn->setCallbacks(&rec);
  rec.on_data = [&](Buffer&) {
    Buffer head, body;
    head.add("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
    body.add("hello");
    conn->write(head, false);  // corked: the event handler is still running
    conn->write(body, false);
  };
  conn->startReading();
  tcp_info before{};
  socklen_t len = sizeof before;
  REQUIRE(::getsockopt(sp.ours, IPPROTO_TCP, TCP_INFO, &before, &len) == 0);
  sp.send("GET / HTTP/1.1\r\n\r\n");
  std::string want = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
  std::string got;
  REQUIRE(runUntil(io, [&] { return !rec.data.empty() && conn->writeBufferLength() == 0; }));
  got = sp.recvExactly(want.size());
  CHECK(got == want);
  tcp_info after{};
  len = sizeof after;
  REQUIRE(::getsockopt(sp.ours, IPPROTO_TCP, TCP_INFO, &after, &len) == 0);
  CHECK(after.tcpi_data_segs_out - before.tcpi_data_segs_out == 1);
  conn->close(Connection::CloseType::kNoFlush);
}

TEST_CASE("connection: a close right after a corked write still sends it", "[connection]") {
  boost::asio::io_context io;
  SocketPair sp;
  Recorder rec;
  auto conn = Connection::adopt(io, sp.ours, {});
  conn->setCallbacks(&rec);
  rec.on_data = [&](Buffer&) {
    Buffer reply;
    reply.add("bye");
    conn->write(reply, false);
    conn->close(Connection::CloseType::kNoFlush);  // as before corking: what was written is out
  };
  conn->startReading();
  sp.send("x");
  REQUIRE(runUntil(io, [&] { return conn->closed(); }));
  CHECK(sp.recvExactly(3) == "bye");
}

TEST_CASE("connection: close(kFlushWrite) then dropping it still delivers every byte", "[connection]") {
  boost::asio::io_context io;
  SocketPair sp;
  Recorder rec;
  auto conn = Connection::adopt(io, sp.ours, {});
  conn->setCallbacks(&rec);
  conn->startReading();
  // More than the kernel buffers hold while the peer is not reading: most stays in ours.
  const size_t total = 8 << 20;
  std::string payload(total, '\0');
  for (size_t i = 0; i < total; ++i) payload[i] = static_cast<char>('a' + i % 26);
  Buffer out;
  out.add(payload);
  conn->write(out, false);
  REQUIRE(conn->writeBufferLength() > 0);
  conn->close(Connection::CloseType::kFlushWrite);
  conn->setCallbacks(nullptr);
  std::weak_ptr<Connection> weak = conn;
  conn.reset();  // the owner lets go, as tcp_proxy does when the client side has ended
  REQUIRE_FALSE(weak.expired());
  std::string got;
  std::thread reader([&] {
    char buf[65536];
    for (;;) {
      ssize_t r = ::recv(sp.peer, buf, sizeof buf, 0);
      if (r <= 0) break;
      got.append(buf, static_cast<size_t>(r));
    }
  });
  REQUIRE(runUntil(io, [&] { return weak.expired(); }, 10000ms));
  reader.join();
  CHECK(got.size() == total);
  CHECK(got == payload);
}

TEST_CASE("connection: close(kFlushWrite) to a peer that reads nothing ends with a reset after the flush timeout",
          "[connection]") {
  boost::asio::io_context io;
  SocketPair sp;
  Recorder rec;
  auto conn = Connection::adopt(io, sp.ours, {});
  conn->setCallbacks(&rec);
  conn->startReading();
  Buffer out;
  out.add(std::string(8 << 20, 'x'));  // more than the kernel buffers take: most stays ours
  conn->write(out, false);
  REQUIRE(conn->writeBufferLength() > 0);
  const auto start = std::chrono::steady_clock::now();
  conn->close(Connection::CloseType::kFlushWrite, 200ms);
  REQUIRE(conn->closing());
  REQUIRE(runUntil(io, [&] { return conn->closed(); }, 5000ms));
  CHECK(std::chrono::steady_clock::now() - start >= 200ms);
  CHECK(conn->closeReason().find("flush timeout") != std::string::npos);
  // The peer sees the reset once it reads past what its kernel buffer holds.
  const timeval bound{5, 0};
  ::setsockopt(sp.peer, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
  char buf[65536];
  ssize_t r = 0;
  while ((r = ::recv(sp.peer, buf, sizeof buf, 0)) > 0) {
  }
  CHECK(r < 0);
  CHECK(errno == ECONNRESET);
}

// An idle keep-alive connection is mostly these objects: bounds on their size (docs/
// performance.md, "Idle memory": the three per-connection objects of a plain HTTP/1.1
// connection fit in 0.5 kB with malloc's headers).
TEST_CASE("connection: an open connection and its info stay small", "[connection][idle]") {
  STATIC_REQUIRE(sizeof(ferry::core::net::Connection) <= 200);
  STATIC_REQUIRE(sizeof(ferry::core::net::ConnectionInfo) <= 64);  // two compact addresses, one pointer
  STATIC_REQUIRE(sizeof(ferry::core::net::SocketAddress) == 24);
}

TEST_CASE("connection: SocketAddress keeps IPv4 and IPv6 endpoints exactly", "[connection][idle]") {
  sockaddr_storage v4{};
  auto& in = reinterpret_cast<sockaddr_in&>(v4);
  in.sin_family = AF_INET;
  in.sin_port = htons(8080);
  inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
  sockaddr_storage back = ferry::core::net::SocketAddress(v4);
  CHECK(memcmp(&back, &v4, sizeof(sockaddr_in)) == 0);
  sockaddr_storage v6{};
  auto& in6 = reinterpret_cast<sockaddr_in6&>(v6);
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(443);
  in6.sin6_scope_id = 3;
  inet_pton(AF_INET6, "fe80::1", &in6.sin6_addr);
  back = ferry::core::net::SocketAddress(v6);
  CHECK(memcmp(&back, &v6, sizeof(sockaddr_in6)) == 0);
  CHECK(ferry::core::net::SocketAddress().family() == AF_UNSPEC);
}

TEST_CASE("connection: formatIp writes IPv4 addresses as dotted quads", "[connection][idle]") {
  for (const char* text : {"0.0.0.0", "255.255.255.255", "10.1.2.3", "192.168.0.100", "1.20.255.9"}) {
    sockaddr_storage sa{};
    auto& in = reinterpret_cast<sockaddr_in&>(sa);
    in.sin_family = AF_INET;
    inet_pton(AF_INET, text, &in.sin_addr);
    CHECK(ferry::core::net::formatIp(sa) == text);
  }
}
