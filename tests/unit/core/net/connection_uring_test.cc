// Connection on the io_uring backend (Poller::useIoUring), over real loopback TCP sockets:
// receive and EOF, sends larger than the socket takes, flush-then-close, a close with a send in
// flight, the receive pausing while reads are disabled, outgoing connects, and plain
// descriptors' readiness. Each case prints a SKIP warning and passes when the kernel refuses
// io_uring. Bounded waits, no sleeps.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/event/poller.h"
#include "core/event/uring.h"
#include "core/net/connection.h"
#include "tests/support/eventfd_recorder.h"
#include "tests/support/socket_pair.h"

using ferry::core::Buffer;
using ferry::core::PollHandler;
using ferry::core::Poller;
using ferry::core::net::Connection;
using ferry::core::net::ConnectionCallbacks;
using ferry::core::net::ConnectionEvent;
using ferry::testing::EventFdRecorder;
using ferry::testing::SocketPair;
using namespace std::chrono_literals;

namespace {

// An io_context whose Poller runs on io_uring, driven the way a worker drives it.
struct UringLoop {
  boost::asio::io_context io;
  Poller& poller = Poller::of(io);
  bool ok = false;
  std::string why;
  explicit UringLoop(unsigned first_buffers = 32) {
    poller.driveExternally();
    ok = poller.useIoUring(&why, first_buffers);
    if (!ok) WARN("SKIP: io_uring unavailable here: " << why);
  }
  template <typename Done>
  bool runUntil(Done&& done, std::chrono::milliseconds limit = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      io.restart();
      io.poll();
      if (done()) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      poller.wait(10);
    }
  }
};

struct Recorder : ConnectionCallbacks {
  std::string data;
  bool eof = false;
  std::vector<ConnectionEvent> events;
  void onData(Buffer& b, bool end_stream) override {
    data += b.toString();
    b.clear();
    eof = eof || end_stream;
  }
  void onEvent(ConnectionEvent e) override { events.push_back(e); }
  bool saw(ConnectionEvent e) const { return std::find(events.begin(), events.end(), e) != events.end(); }
};

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  return s;
}

void setNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// A connection adopted on `loop` over a fresh socket pair, reading, its events recorded.
struct Adopted {
  SocketPair sp;
  Recorder rec;
  std::shared_ptr<Connection> conn;
  Adopted(UringLoop& loop, bool nonblocking_peer) {
    if (nonblocking_peer) setNonBlocking(sp.peer);
    conn = Connection::adopt(loop.io, sp.ours, {});
    conn->setCallbacks(&rec);
    conn->startReading();
  }
};

void writeString(Connection& c, const std::string& s) {
  Buffer b;
  b.add(s);
  c.write(b, false);
}

// Reads what is there without blocking; false once the peer closed (EOF or reset).
bool drainSome(int fd, std::string& into) {
  char buf[65536];
  for (;;) {
    ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r > 0) {
      into.append(buf, static_cast<size_t>(r));
      continue;
    }
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

}  // namespace

TEST_CASE("uring connection: bytes both ways, then the peer's FIN", "[connection][uring]") {
  UringLoop loop;
  if (!loop.ok) return;
  Adopted a(loop, false);
  auto& sp = a.sp;
  auto& rec = a.rec;
  auto& conn = a.conn;
  sp.send("hello");
  REQUIRE(loop.runUntil([&] { return rec.data == "hello"; }));
  Buffer out;
  out.add("world");
  conn->write(out, false);
  REQUIRE(loop.runUntil([&] { return conn->writeBufferLength() == 0; }));
  CHECK(sp.recvExactly(5) == "world");
  sp.send("more");
  ::shutdown(sp.peer, SHUT_WR);
  REQUIRE(loop.runUntil([&] { return rec.eof; }));
  CHECK(rec.data == "hellomore");
  conn->close(Connection::CloseType::kNoFlush);
  int turns = 0;
  loop.runUntil([&] { return ++turns > 2; });  // the close reaches the kernel with the next wait
  CHECK(sp.recvEof());
}

TEST_CASE("uring connection: bytes already queued when a socket is adopted are read at once", "[connection][uring]") {
  // A drain that looks at the connection before the first receive completes must see the
  // request, not an idle connection (a binary upgrade would close it unanswered).
  UringLoop loop;
  if (!loop.ok) return;
  SocketPair sp;
  sp.send("GET / HTTP/1.1\r\n\r\n");
  REQUIRE(sp.oursReadable());
  Recorder rec;
  auto conn = Connection::adopt(loop.io, sp.ours, {});
  conn->setCallbacks(&rec);
  conn->startReading();  // no loop turn in between
  CHECK(rec.data == "GET / HTTP/1.1\r\n\r\n");
  sp.send("more");
  REQUIRE(loop.runUntil([&] { return rec.data.size() == 22; }));
  conn->close(Connection::CloseType::kNoFlush);
}

TEST_CASE("uring connection: a write larger than the socket takes arrives whole, in order", "[connection][uring]") {
  UringLoop loop;
  if (!loop.ok) return;
  Adopted a(loop, true);
  auto& sp = a.sp;
  auto& conn = a.conn;
  const std::string payload = pattern(8 << 20);
  writeString(*conn, payload);
  std::string got;
  REQUIRE(loop.runUntil([&] {
    drainSome(sp.peer, got);
    return got.size() >= payload.size();
  }, 20000ms));
  CHECK(got == payload);
  CHECK(conn->writeBufferLength() == 0);
  conn->close(Connection::CloseType::kNoFlush);
}

TEST_CASE("uring connection: close(kFlushWrite) sends everything, then closes", "[connection][uring]") {
  UringLoop loop;
  if (!loop.ok) return;
  Adopted a(loop, true);
  auto& sp = a.sp;
  auto& rec = a.rec;
  auto& conn = a.conn;
  const std::string payload = pattern(4 << 20);
  writeString(*conn, payload);
  conn->close(Connection::CloseType::kFlushWrite);
  std::weak_ptr<Connection> weak = conn;
  conn.reset();  // the connection keeps itself until the bytes are out
  std::string got;
  bool open = true;
  REQUIRE(loop.runUntil([&] {
    open = drainSome(sp.peer, got);
    return !open;
  }, 20000ms));
  CHECK(got == payload);
  CHECK(rec.saw(ConnectionEvent::kLocalClose));
  CHECK(weak.expired());
}

TEST_CASE("uring connection: close(kFlushWrite) to a peer that reads nothing is reset after the flush timeout",
          "[connection][uring]") {
  UringLoop loop;
  if (!loop.ok) return;
  Adopted a(loop, true);
  auto& conn = a.conn;
  writeString(*conn, pattern(8 << 20));  // more than the kernel buffers take; the peer reads none
  const auto start = std::chrono::steady_clock::now();
  conn->close(Connection::CloseType::kFlushWrite, 200ms);
  REQUIRE(conn->closing());
  REQUIRE(loop.runUntil([&] { return conn->closed(); }));
  CHECK(std::chrono::steady_clock::now() - start >= 200ms);
  CHECK(conn->closeReason().find("flush timeout") != std::string::npos);
}

TEST_CASE("uring connection: closing with a send in flight drops it safely", "[connection][uring]") {
  UringLoop loop;
  if (!loop.ok) return;
  SocketPair sp;  // the peer never reads: the send stays parked in the kernel
  setNonBlocking(sp.peer);
  Recorder rec;
  auto conn = Connection::adopt(loop.io, sp.ours, {});
  conn->setCallbacks(&rec);
  conn->startReading();
  writeString(*conn, pattern(16 << 20));
  // Run until the kernel holds what it takes and the rest waits.
  int turns = 0;
  REQUIRE(loop.runUntil([&] { return ++turns > 20; }));
  REQUIRE(conn->writeBufferLength() > 0);
  conn->close(Connection::CloseType::kReset);
  conn.reset();
  // The loop goes on (the cancelled send completes; its bytes were kept alive until then).
  SocketPair sp2;
  Recorder rec2;
  auto conn2 = Connection::adopt(loop.io, sp2.ours, {});
  conn2->setCallbacks(&rec2);
  conn2->startReading();
  sp2.send("after");
  REQUIRE(loop.runUntil([&] { return rec2.data == "after"; }));
  // The first peer sees the reset (or an EOF) once it reads what was queued.
  std::string ignored;
  REQUIRE(loop.runUntil([&] { return !drainSome(sp.peer, ignored); }, 20000ms));
  conn2->close(Connection::CloseType::kNoFlush);
}

TEST_CASE("uring connection: the receive stops while reads are disabled and resumes in order", "[connection][uring]") {
  UringLoop loop;
  if (!loop.ok) return;
  Adopted a(loop, true);
  auto& sp = a.sp;
  auto& rec = a.rec;
  auto& conn = a.conn;
  conn->readDisable(true);
  // Send until the peer's socket is full while the loop runs: without the pause the receive
  // would drain the socket into memory forever and the peer would never see EAGAIN.
  const std::string chunk = pattern(65536);
  std::string sent;
  int blocked_turns = 0;
  REQUIRE(loop.runUntil([&] {
    ssize_t r = ::send(sp.peer, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (r > 0) {
      sent.append(chunk, 0, static_cast<size_t>(r));
      blocked_turns = 0;
    } else if (errno == EAGAIN) {
      ++blocked_turns;
    }
    return blocked_turns >= 20;
  }, 20000ms));
  CHECK(rec.data.empty());
  INFO("sent " << sent.size() << " bytes before the socket filled");
  CHECK(sent.size() < (64u << 20));
  conn->readDisable(false);
  REQUIRE(loop.runUntil([&] { return rec.data.size() >= sent.size(); }, 20000ms));
  CHECK(rec.data == sent);
  conn->close(Connection::CloseType::kNoFlush);
}

TEST_CASE("uring connection: outgoing connects succeed and fail", "[connection][uring]") {
  UringLoop loop;
  if (!loop.ok) return;
  sockaddr_storage addr{};
  int lfd = ferry::testing::listenLoopback(&addr);
  Recorder rec;
  auto conn = Connection::connect(loop.io, addr, 2000ms, {}, nullptr);
  REQUIRE(conn);
  conn->setCallbacks(&rec);
  REQUIRE(loop.runUntil([&] { return !rec.events.empty(); }));
  CHECK(rec.events.front() == ConnectionEvent::kConnected);
  int peer = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  REQUIRE(peer >= 0);
  ferry::testing::boundReads(peer);
  Buffer out;
  out.add("ping");
  conn->write(out, false);
  REQUIRE(loop.runUntil([&] { return conn->writeBufferLength() == 0; }));
  CHECK(ferry::testing::recvExactly(peer, 4) == "ping");
  ferry::testing::sendAll(peer, "pong");
  REQUIRE(loop.runUntil([&] { return rec.data == "pong"; }));
  conn->close(Connection::CloseType::kNoFlush);
  ::close(peer);
  ::close(lfd);  // now nothing listens there
  Recorder refused;
  auto failed = Connection::connect(loop.io, addr, 2000ms, {}, nullptr);
  REQUIRE(failed);
  failed->setCallbacks(&refused);
  REQUIRE(loop.runUntil([&] { return !refused.events.empty(); }));
  CHECK(refused.events.front() == ConnectionEvent::kConnectFailed);
}

TEST_CASE("uring poller: plain descriptors get readiness, the dispatchFirst handler first", "[poller][uring]") {
  UringLoop loop;
  if (!loop.ok) return;
  std::string log;
  EventFdRecorder a(log, 'a'), w(log, 'w');
  REQUIRE(loop.poller.add(a.fd, &a));
  REQUIRE(loop.poller.add(w.fd, &w));
  loop.poller.dispatchFirst(&w);
  a.signal();
  w.signal();
  REQUIRE(loop.runUntil([&] { return log.size() >= 2; }));
  CHECK(log == "wa");
  a.signal();  // multishot: it fires again without re-registering
  REQUIRE(loop.runUntil([&] { return log.size() >= 3; }));
  CHECK(log == "waa");
  loop.poller.remove(a.fd, &a);
  loop.poller.remove(w.fd, &w);
  loop.poller.dispatchFirst(nullptr);
  a.signal();
  int turns = 0;
  loop.runUntil([&] { return ++turns > 5; });
  CHECK(log == "waa");
}

TEST_CASE("uring connection: receive buffers start few and grow when a burst finds none left", "[connection][uring]") {
  {
    UringLoop plain;
    if (!plain.ok) return;
    CHECK(plain.poller.uring()->receiveBuffers() == 32);  // few at first: few pages touched
  }
  // One buffer at first, so that a burst surely finds none left (the kernel may complete
  // about 20 receives per wait before Ferry gives their buffers back).
  UringLoop loop(1);
  REQUIRE(loop.ok);
  REQUIRE(loop.poller.uring() != nullptr);
  CHECK(loop.poller.uring()->receiveBuffers() == 1);
  constexpr int kConns = 100;
  std::vector<std::unique_ptr<Adopted>> conns;
  for (int i = 0; i < kConns; ++i) conns.push_back(std::make_unique<Adopted>(loop, false));
  int turns = 0;
  loop.runUntil([&] { return ++turns > 3; });  // every receive armed
  // One message on every socket before the loop looks again: more receives complete at
  // once than there are buffers.
  for (int i = 0; i < kConns; ++i) {
    const std::string msg = "message " + std::to_string(i) + " " + pattern(200);
    REQUIRE(::send(conns[i]->sp.peer, msg.data(), msg.size(), 0) == static_cast<ssize_t>(msg.size()));
  }
  REQUIRE(loop.runUntil([&] {
    for (auto& c : conns)
      if (c->rec.data.size() < 200) return false;
    return true;
  }));
  for (int i = 0; i < kConns; ++i) CHECK(conns[i]->rec.data == "message " + std::to_string(i) + " " + pattern(200));
  const unsigned grown = loop.poller.uring()->receiveBuffers();
  CHECK(grown > 1);
  CHECK(grown <= 256);
  for (auto& c : conns) c->conn->close(Connection::CloseType::kNoFlush);
  turns = 0;
  loop.runUntil([&] { return ++turns > 3; });
}
