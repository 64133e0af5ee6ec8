// The transport seam, over real loopback sockets: a Connection hands raw bytes to its
// TransportSocket and gives its owner only plaintext; the handshake gates kConnected; what a
// listener filter read ahead goes through the transport first; the transport's shutdown bytes
// precede the FIN; a raw preamble (PROXY header) precedes the handshake. The transport here
// is a toy with a one-byte handshake and framed, scrambled records, so every byte on the wire
// differs from the plaintext.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "core/net/connection.h"
#include "core/net/socket_util.h"
#include "tests/support/event_loop.h"
#include "tests/support/socket_pair.h"

using ferry::core::Buffer;
using ferry::core::net::Connection;
using ferry::core::net::ConnectionCallbacks;
using ferry::core::net::ConnectionEvent;
using ferry::core::net::TransportResult;
using ferry::core::net::TransportSocket;
using ferry::testing::listenLoopback;
using ferry::testing::runUntil;
using ferry::testing::SocketPair;
using namespace std::chrono_literals;

namespace {

// Wire format: handshake 'H' (client) then 'A' (server); records 'D' len(1..255) payload^0x5A;
// an orderly close 'C'.
class ToyTransport : public TransportSocket {
 public:
  explicit ToyTransport(bool client) : client_(client) {}
  std::string_view name() const override { return "toy"; }
  bool ready() const override { return ready_; }
  TransportResult onConnected(Buffer& raw_out) override {
    if (client_) raw_out.add("H");
    return {};
  }
  TransportResult doRead(Buffer& raw_in, bool raw_eof, Buffer& plain_out, Buffer& raw_out) override {
    TransportResult r;
    while (!raw_in.empty()) {
      char type;
      raw_in.copyOut(0, 1, &type);
      if (!ready_) {
        if (type != (client_ ? 'A' : 'H')) return fail("bad handshake");
        raw_in.drain(1);
        if (!client_) raw_out.add("A");
        ready_ = true;
        encode(held_, raw_out);  // plaintext written before the handshake finished
        continue;
      }
      if (type == 'C') {
        raw_in.drain(1);
        closed_ = true;
        continue;
      }
      if (type != 'D') return fail("bad record");
      if (raw_in.length() < 2) break;
      unsigned char len;
      raw_in.copyOut(1, 1, &len);
      if (raw_in.length() < 2u + len) break;  // a partial record waits for the rest
      std::string payload(len, '\0');
      raw_in.copyOut(2, len, payload.data());
      raw_in.drain(2u + len);
      for (char& c : payload) c ^= 0x5A;
      plain_out.add(payload);
    }
    r.end_stream = closed_ || raw_eof;
    return r;
  }
  TransportResult doWrite(Buffer& plain_in, bool, Buffer& raw_out) override {
    held_.move(plain_in);
    if (ready_) encode(held_, raw_out);
    return {};
  }
  size_t bufferedBytes() const override { return held_.length(); }
  void shutdown(Buffer& raw_out) override { raw_out.add("C"); }

 private:
  TransportResult fail(const char* why) {
    TransportResult r;
    r.close = true;
    r.error = why;
    return r;
  }
  static void encode(Buffer& plain, Buffer& raw_out) {
    std::string s = plain.toString();
    plain.clear();
    for (size_t i = 0; i < s.size(); i += 255) {
      std::string chunk = s.substr(i, 255);
      for (char& c : chunk) c ^= 0x5A;
      raw_out.add("D");
      const char len = static_cast<char>(chunk.size());
      raw_out.add(&len, 1);
      raw_out.add(chunk);
    }
  }
  bool client_;
  bool ready_ = false;
  bool closed_ = false;
  Buffer held_;
};

std::string record(const std::string& plain) {
  std::string out = "D";
  out += static_cast<char>(plain.size());
  for (char c : plain) out += static_cast<char>(c ^ 0x5A);
  return out;
}

// The test's end of a connection a Connection made: blocking, bounded reads, closed here.
struct Peer {
  int fd = -1;
  ~Peer() {
    if (fd >= 0) ::close(fd);
  }
  void send(const std::string& s) const { ferry::testing::sendAll(fd, s); }
  std::string recvExactly(size_t n) const { return ferry::testing::recvExactly(fd, n); }
  bool recvEof() const { return ferry::testing::recvEof(fd); }
};

// A listening socket for a client Connection; accept() gives the test its peer end.
struct Listening {
  Listening() { lfd = listenLoopback(&addr); }
  ~Listening() { ::close(lfd); }
  void accept(Peer& peer) const {
    peer.fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(peer.fd >= 0);
    ferry::testing::boundReads(peer.fd);
  }
  int lfd = -1;
  sockaddr_storage addr{};
};

struct Recorder : ConnectionCallbacks {
  std::string data;
  bool eof = false;
  int connected = 0;
  int closed = 0;
  std::function<void(Buffer&, bool)> raw_stage;  // set: the owner is a listener filter stage
  void onData(Buffer& b, bool end_stream) override {
    if (raw_stage) {
      auto stage = raw_stage;  // the stage may clear raw_stage while it runs
      return stage(b, end_stream);
    }
    data += b.toString();
    b.clear();
    eof = eof || end_stream;
  }
  void onEvent(ConnectionEvent e) override {
    if (e == ConnectionEvent::kConnected) ++connected;
    if (e == ConnectionEvent::kRemoteClose || e == ConnectionEvent::kLocalClose) ++closed;
  }
};

}  // namespace

TEST_CASE("transport: the owner sees plaintext, the wire carries the transport's bytes", "[transport]") {
  boost::asio::io_context io;
  SocketPair s;
  Recorder rec;
  auto conn = Connection::adopt(io, s.ours, {});
  conn->setCallbacks(&rec);
  Buffer none;
  conn->setTransport(std::make_unique<ToyTransport>(false), none);
  CHECK_FALSE(conn->transportReady());
  conn->startReading();
  s.send("H");
  REQUIRE(runUntil(io, [&] { return rec.connected == 1; }));  // kConnected once the handshake is done
  CHECK(conn->transportReady());
  CHECK(s.recvExactly(1) == "A");
  s.send(record("ping") + record(" again"));
  REQUIRE(runUntil(io, [&] { return rec.data == "ping again"; }));
  Buffer out;
  out.add("pong");
  conn->write(out, false);
  CHECK(s.recvExactly(6) == record("pong"));
  // Orderly close: the transport's shutdown bytes, then the FIN.
  conn->close(Connection::CloseType::kFlushWrite);
  CHECK(s.recvExactly(1) == "C");
  CHECK(s.recvEof());
}

TEST_CASE("transport: a client is connected only after the handshake; early writes wait inside",
          "[transport]") {
  boost::asio::io_context io;
  Listening server;
  Recorder rec;
  auto conn = Connection::connect(io, server.addr, 2000ms, {}, std::make_unique<ToyTransport>(true));
  REQUIRE(conn);
  conn->setCallbacks(&rec);
  Buffer early;
  early.add("early bytes");
  conn->write(early, false);
  Peer peer;
  server.accept(peer);
  // The TCP connect finishes and the client hello goes out, but nothing is "connected" yet:
  // the plaintext waits inside the transport.
  REQUIRE(runUntil(io, [&] { return !conn->connecting(); }));
  CHECK(peer.recvExactly(1) == "H");
  CHECK(rec.connected == 0);
  CHECK(conn->writeBufferLength() == 11);
  peer.send("A");
  REQUIRE(runUntil(io, [&] { return rec.connected == 1; }));
  CHECK(peer.recvExactly(13) == record("early bytes"));
  CHECK(conn->writeBufferLength() == 0);
  // A closing record from the peer ends the plaintext stream.
  peer.send(record("bye") + "C");
  REQUIRE(runUntil(io, [&] { return rec.eof; }));
  CHECK(rec.data == "bye");
  conn->close(Connection::CloseType::kNoFlush);
}

TEST_CASE("transport: bytes a listener filter read ahead go through the transport first", "[transport]") {
  boost::asio::io_context io;
  SocketPair s;
  Recorder rec;
  auto conn = Connection::adopt(io, s.ours, {});
  conn->setCallbacks(&rec);
  std::string seen_raw;
  // The listener filter stage: raw bytes, no transport. It takes its 6-byte prefix and hands
  // the rest to the transport, all inside one read.
  rec.raw_stage = [&](Buffer& raw, bool) {
    if (raw.length() < 6) return;
    seen_raw = raw.toString().substr(0, 6);
    raw.drain(6);
    rec.raw_stage = nullptr;
    Buffer rest;
    rest.move(raw);
    conn->setTransport(std::make_unique<ToyTransport>(false), rest);
  };
  conn->startReading();
  s.send("PREFIX" + std::string("H") + record("first") + record(" second"));
  REQUIRE(runUntil(io, [&] { return rec.data == "first second"; }));
  CHECK(seen_raw == "PREFIX");
  CHECK(rec.connected == 1);
  CHECK(s.recvExactly(1) == "A");
  // The peer's FIN read in the raw stage along with the rest still ends the plaintext stream.
  ::shutdown(s.peer, SHUT_WR);
  REQUIRE(runUntil(io, [&] { return rec.eof; }));
  conn->close(Connection::CloseType::kNoFlush);
}

TEST_CASE("transport: an EOF read by the listener filter stage reaches the transport's owner", "[transport]") {
  boost::asio::io_context io;
  SocketPair s;
  Recorder rec;
  auto conn = Connection::adopt(io, s.ours, {});
  conn->setCallbacks(&rec);
  bool handed_over = false;
  rec.raw_stage = [&](Buffer& raw, bool end_stream) {
    if (!end_stream) return;  // wait for everything, FIN included
    raw.drain(3);
    rec.raw_stage = nullptr;
    handed_over = true;
    Buffer rest;
    rest.move(raw);
    conn->setTransport(std::make_unique<ToyTransport>(false), rest);
  };
  conn->startReading();
  s.send("PP:H" + record("last words"));
  ::shutdown(s.peer, SHUT_WR);
  REQUIRE(runUntil(io, [&] { return rec.eof; }));
  CHECK(handed_over);
  CHECK(rec.data == "last words");
  conn->close(Connection::CloseType::kNoFlush);
}

TEST_CASE("transport: a raw preamble goes out before the handshake", "[transport]") {
  boost::asio::io_context io;
  Listening server;
  Recorder rec;
  auto conn = Connection::connect(io, server.addr, 2000ms, {}, std::make_unique<ToyTransport>(true));
  REQUIRE(conn);
  conn->setCallbacks(&rec);
  Buffer preamble;
  preamble.add("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
  conn->writeRaw(preamble);
  Buffer data;
  data.add("x");
  conn->write(data, false);
  Peer peer;
  server.accept(peer);
  REQUIRE(runUntil(io, [&] { return !conn->connecting(); }));
  CHECK(peer.recvExactly(33) == "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nH");
  peer.send("A");
  REQUIRE(runUntil(io, [&] { return rec.connected == 1; }));
  CHECK(peer.recvExactly(3) == record("x"));
  conn->close(Connection::CloseType::kNoFlush);
}

TEST_CASE("transport: a transport error closes the connection with its reason", "[transport]") {
  boost::asio::io_context io;
  SocketPair s;
  Recorder rec;
  auto conn = Connection::adopt(io, s.ours, {});
  conn->setCallbacks(&rec);
  Buffer none;
  conn->setTransport(std::make_unique<ToyTransport>(false), none);
  conn->startReading();
  s.send("X");
  REQUIRE(runUntil(io, [&] { return rec.closed == 1; }));
  CHECK(conn->closeReason() == "toy: bad handshake");
  CHECK(rec.connected == 0);
  CHECK(s.recvEof());
}
