// The TLS transport under the Connection seam, over real loopback sockets, client and server
// both Ferry's: the handshake gates kConnected and fills the handshake facts; what one event
// writes leaves as one TLS record (plaintext goes to the transport at flush time); plaintext
// written before the handshake waits inside; close_notify ends the peer's stream; a failed
// handshake is counted and leaves nothing on the thread's OpenSSL error queue.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/net/connection.h"
#include "core/tls/internal.h"
#include "core/tls/tls.h"
#include "tests/support/event_loop.h"
#include "tests/support/socket_pair.h"

using namespace ferry;
using core::Buffer;
using core::net::Connection;
using core::net::ConnectionEvent;
using testing::runUntil;

namespace {

struct Certs {
  std::string dir;
  Certs() {
    dir = (std::filesystem::temp_directory_path() / "ferry-tls-XXXXXX").string();
    REQUIRE(mkdtemp(dir.data()) != nullptr);
    const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
                            "-subj /CN=a.test -addext subjectAltName=DNS:a.test -keyout " +
                            dir + "/site.key -out " + dir + "/site.pem >/dev/null 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  ~Certs() { std::filesystem::remove_all(dir); }
};

struct Recorder : core::net::ConnectionCallbacks {
  std::string data;
  bool eof = false;
  bool connected = false;
  bool closed = false;
  std::function<void(Recorder&)> on_data;  // runs inside the read event
  void onData(Buffer& d, bool end_stream) override {
    data += d.toString();
    d.clear();
    if (end_stream) eof = true;
    if (on_data) on_data(*this);
  }
  void onEvent(ConnectionEvent e) override {
    if (e == ConnectionEvent::kConnected) connected = true;
    if (e == ConnectionEvent::kRemoteClose || e == ConnectionEvent::kLocalClose ||
        e == ConnectionEvent::kConnectFailed)
      closed = true;
  }
};

// Application-data records a client SSL received: OpenSSL's message callback reports each
// TLS 1.3 record's inner content type (a session ticket is a handshake record inside).
int app_records = 0;
void countRecords(int write_p, int, int content_type, const void* buf, size_t len, SSL*, void*) {
  if (write_p == 0 && content_type == SSL3_RT_INNER_CONTENT_TYPE && len >= 1 &&
      static_cast<const unsigned char*>(buf)[0] == SSL3_RT_APPLICATION_DATA)
    ++app_records;
}

struct Fixture {
  Certs certs;
  core::StatsStore stats{1};
  std::shared_ptr<const core::tls::ServerContext> server_ctx;
  std::shared_ptr<const core::tls::ClientContext> client_ctx;
  boost::asio::io_context io;
  Fixture() {
    config::TlsConfig s;
    s.certificates.push_back({certs.dir + "/site.pem", certs.dir + "/site.key"});
    std::vector<core::tls::BuildError> errors;
    server_ctx = core::tls::buildServerContext(s, "web", {"http/1.1"}, &stats, nullptr, &errors);
    config::UpstreamTlsConfig c;
    c.sni = "a.test";
    c.ca_file = certs.dir + "/site.pem";  // self-signed: it is its own CA
    c.protocol.alpn = {"http/1.1"};
    client_ctx = core::tls::buildClientContext(c, "up", &stats, &errors);
    for (const auto& e : errors) FAIL(e.message);
    REQUIRE(server_ctx);
    REQUIRE(client_ctx);
  }
  int64_t count(const std::string& name, std::vector<std::pair<std::string, std::string>> labels) {
    return stats.value(stats.counter(name, labels));
  }
};

// A connected pair: our client Connection (TLS) to a server Connection (TLS) on an accepted
// socket.
struct Pair {
  Recorder client_rec, server_rec;
  std::shared_ptr<Connection> client, server;
  explicit Pair(Fixture& f) {
    sockaddr_storage addr{};
    int lfd = testing::listenLoopback(&addr);
    client = Connection::connect(f.io, addr, std::chrono::seconds(5), {},
                                 core::tls::newClientTransport(f.client_ctx, "", "127.0.0.1:1"));
    REQUIRE(client);
    client->setCallbacks(&client_rec);
    int fd = -1;
    REQUIRE(runUntil(f.io, [&] { return (fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0; }));
    ::close(lfd);
    server = Connection::adopt(f.io, fd, {});
    server->setCallbacks(&server_rec);
    Buffer none;
    server->setTransport(core::tls::newServerTransport(f.server_ctx), none);
    server->startReading();
  }
  ~Pair() {
    client->setCallbacks(nullptr);
    server->setCallbacks(nullptr);
    client->close(Connection::CloseType::kNoFlush);
    server->close(Connection::CloseType::kNoFlush);
  }
};

}  // namespace

TEST_CASE("tls transport: a handshake gates kConnected, then plaintext flows both ways", "[tls][transport]") {
  Fixture f;
  Pair p(f);
  // Written before the handshake: held inside the client transport, sent after it.
  Buffer early;
  early.add("hello before the handshake");
  p.client->write(early, false);
  CHECK_FALSE(p.client_rec.connected);
  REQUIRE(runUntil(f.io, [&] { return p.server_rec.data == "hello before the handshake"; }));
  CHECK(p.client_rec.connected);
  REQUIRE(p.server->transportReady());
  auto info = p.server->transport()->tlsInfo();
  REQUIRE(info);
  CHECK(info->sni == "a.test");
  CHECK(info->alpn == "http/1.1");
  CHECK(info->version == "TLSv1.3");
  CHECK_FALSE(info->resumed);
  CHECK(p.client->transport()->protocol() == "http/1.1");

  Buffer reply;
  reply.add("hello back");
  p.server->write(reply, false);
  REQUIRE(runUntil(f.io, [&] { return p.client_rec.data == "hello back"; }));
  CHECK(f.count("ferry_tls_handshakes_total", {{"listener", "web"}}) == 1);
  CHECK(f.count("ferry_upstream_tls_handshakes_total", {{"cluster", "up"}}) == 1);

  // An orderly close sends close_notify: the server's plaintext stream ends.
  p.client->close(Connection::CloseType::kFlushWrite);
  REQUIRE(runUntil(f.io, [&] { return p.server_rec.eof; }));
}

TEST_CASE("tls transport: what one event writes leaves as one TLS record", "[tls][transport]") {
  Fixture f;
  SSL_CTX_set_msg_callback(f.client_ctx->ctx, countRecords);
  Pair p(f);
  // The server answers from inside its read event, in three writes (a head, a body, its end),
  // as a codec does: the connection is corked, and the transport sees them at flush time.
  p.server_rec.on_data = [&](Recorder& r) {
    if (r.data != "request") return;
    for (const char* part : {"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", "hel", "lo"}) {
      Buffer b;
      b.add(part);
      p.server->write(b, false);
    }
  };
  REQUIRE(runUntil(f.io, [&] { return p.client_rec.connected; }));
  app_records = 0;
  Buffer req;
  req.add("request");
  p.client->write(req, false);
  REQUIRE(runUntil(f.io, [&] { return p.client_rec.data.size() == 43; }));
  CHECK(p.client_rec.data.substr(38) == "hello");
  CHECK(app_records == 1);
  SSL_CTX_set_msg_callback(f.client_ctx->ctx, nullptr);
}

TEST_CASE("tls transport: a failed handshake is counted and leaves no OpenSSL error behind", "[tls][transport]") {
  Fixture f;
  testing::SocketPair sp;
  Recorder rec;
  auto server = Connection::adopt(f.io, sp.ours, {});
  server->setCallbacks(&rec);
  Buffer none;
  server->setTransport(core::tls::newServerTransport(f.server_ctx), none);
  server->startReading();
  // A TLS record header announcing a handshake, then bytes that are no ClientHello.
  sp.send(std::string("\x16\x03\x01\x00\x08", 5) + "garbage!");
  REQUIRE(runUntil(f.io, [&] { return rec.closed; }));
  CHECK(server->closeReason().find("tls") == 0);
  CHECK(ERR_peek_error() == 0);  // the next connection on this thread starts clean
  CHECK(f.count("ferry_tls_handshake_failures_total", {{"listener", "web"}, {"reason", "other"}}) +
            f.count("ferry_tls_handshake_failures_total", {{"listener", "web"}, {"reason", "not_tls"}}) ==
        1);
  server->setCallbacks(nullptr);

  // Plain HTTP to the TLS port: a 400 that says so, then the close.
  testing::SocketPair sp2;
  Recorder rec2;
  auto server2 = Connection::adopt(f.io, sp2.ours, {});
  server2->setCallbacks(&rec2);
  server2->setTransport(core::tls::newServerTransport(f.server_ctx), none);
  server2->startReading();
  sp2.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(runUntil(f.io, [&] { return rec2.closed; }));
  CHECK(sp2.recvExactly(24) == "HTTP/1.1 400 Bad Request");
  CHECK(f.count("ferry_tls_handshake_failures_total", {{"listener", "web"}, {"reason", "http_request"}}) == 1);
  CHECK(ERR_peek_error() == 0);
  server2->setCallbacks(nullptr);
}

TEST_CASE("tls transport: an end of stream written before the handshake waits for it", "[tls][transport]") {
  // Regression test: the FIN went out right after the ClientHello (the transport's held
  // end-of-stream did not count as pending), and the server saw the handshake cut short.
  Fixture f;
  Pair p(f);
  Buffer last;
  last.add("bye");
  p.client->write(last, true);
  REQUIRE(runUntil(f.io, [&] { return p.server_rec.eof || p.server_rec.closed; }));
  CHECK(p.server_rec.data == "bye");
  CHECK(p.server_rec.eof);
  CHECK(p.client_rec.connected);
  CHECK(f.count("ferry_tls_handshakes_total", {{"listener", "web"}}) == 1);

  Fixture g;
  Pair q(g);
  Buffer none;
  q.client->write(none, true);  // nothing at all, then the end
  REQUIRE(runUntil(g.io, [&] { return q.server_rec.eof || q.server_rec.closed; }));
  CHECK(q.server_rec.eof);
  CHECK(g.count("ferry_tls_handshakes_total", {{"listener", "web"}}) == 1);
}

TEST_CASE("tls transport: a reset during an outgoing handshake is a failed connect", "[tls][transport]") {
  // Regression test: it was raised as a remote close, which pools took for a connection that
  // had worked.
  Fixture f;
  sockaddr_storage addr{};
  int lfd = testing::listenLoopback(&addr);
  Recorder rec;
  auto client = Connection::connect(f.io, addr, std::chrono::seconds(5), {},
                                    core::tls::newClientTransport(f.client_ctx, "", "127.0.0.1:1"));
  client->setCallbacks(&rec);
  bool failed = false;
  struct Watch : core::net::ConnectionCallbacks {
    bool* failed;
    void onData(Buffer& d, bool) override { d.clear(); }
    void onEvent(ConnectionEvent e) override {
      if (e == ConnectionEvent::kConnectFailed) *failed = true;
    }
  } watch;
  watch.failed = &failed;
  client->setCallbacks(&watch);
  int fd = -1;
  REQUIRE(runUntil(f.io, [&] { return (fd = ::accept(lfd, nullptr, nullptr)) >= 0; }));
  ::close(lfd);
  testing::boundReads(fd);
  REQUIRE(runUntil(f.io, [&] {  // the ClientHello arrives
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
  }));
  char hello[512];
  REQUIRE(::recv(fd, hello, sizeof hello, 0) > 0);
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);  // RST
  REQUIRE(runUntil(f.io, [&] { return failed || client->closed(); }));
  CHECK(failed);
  client->setCallbacks(nullptr);
}

namespace {
// Two transports joined in memory, without sockets: what one writes to its raw output the
// test hands to the other's doRead, in whatever pieces it likes.
struct MemoryPair {
  std::unique_ptr<core::net::TransportSocket> client, server;
  Buffer c2s, s2c;                 // raw bytes in flight
  std::string client_got, server_got;
  explicit MemoryPair(Fixture& f)
      : client(core::tls::newClientTransport(f.client_ctx, "", "127.0.0.1:1")),
        server(core::tls::newServerTransport(f.server_ctx)) {
    REQUIRE_FALSE(client->onConnected(c2s).close);
    for (int i = 0; i < 10 && !(client->ready() && server->ready()); ++i) {
      REQUIRE_FALSE(feedServer(c2s.length()).close);
      REQUIRE_FALSE(feedClient(s2c.length()).close);
    }
    REQUIRE(client->ready());
    REQUIRE(server->ready());
    feedServer(c2s.length());  // anything the client still had to say
  }
  // Hands the server the first n raw bytes the client sent.
  core::net::TransportResult feedServer(size_t n) { return feed(*server, c2s, n, server_got, s2c); }
  core::net::TransportResult feedClient(size_t n) { return feed(*client, s2c, n, client_got, c2s); }
  static core::net::TransportResult feed(core::net::TransportSocket& t, Buffer& from, size_t n, std::string& got,
                                         Buffer& answer) {
    Buffer in;
    std::string bytes(n, '\0');
    from.copyOut(0, n, bytes.data());
    from.drain(n);
    in.add(bytes);
    Buffer plain;
    auto r = t.doRead(in, false, plain, answer);
    CHECK(in.empty());  // the transport takes every raw byte it is given
    got += plain.toString();
    return r;
  }
};
}  // namespace

TEST_CASE("tls transport: records arriving whole, several at once or cut anywhere all come out", "[tls][transport]") {
  // A read stops asking OpenSSL for more once no ciphertext is left, in the raw bytes or
  // inside OpenSSL: a record cut short, several records in one read, and a record of more
  // plaintext than one read takes must all still come out whole and in order.
  Fixture f;
  MemoryPair p(f);
  std::string sent;
  auto send = [&](size_t len, char fill) {  // one client write: one record (two above 16 kB)
    Buffer b;
    std::string s(len, fill);
    for (size_t i = 0; i < len; i += 97) s[i] = static_cast<char>('a' + (i / 97) % 26);
    b.add(s);
    sent += s;
    REQUIRE_FALSE(p.client->doWrite(b, false, p.c2s).close);
  };

  SECTION("a record cut at every byte") {
    send(300, 'x');
    const size_t total = p.c2s.length();
    for (size_t i = 0; i < total; ++i) {
      REQUIRE_FALSE(p.feedServer(1).close);
      if (i + 1 < total) CHECK(p.server_got.empty());  // nothing before the record is whole
    }
    CHECK(p.server_got == sent);
  }
  SECTION("several records in one read") {
    for (int i = 0; i < 5; ++i) send(1000 + i, static_cast<char>('0' + i));
    REQUIRE_FALSE(p.feedServer(p.c2s.length()).close);
    CHECK(p.server_got == sent);
  }
  SECTION("one and a half records, then the rest") {
    send(5000, 'y');
    send(5000, 'z');
    const size_t half = p.c2s.length() * 3 / 4;
    REQUIRE_FALSE(p.feedServer(half).close);
    CHECK(p.server_got == sent.substr(0, 5000));
    REQUIRE_FALSE(p.feedServer(p.c2s.length()).close);
    CHECK(p.server_got == sent);
  }
  SECTION("full-size records, more plaintext than one slice of the read buffer") {
    send(3 * 16384 + 123, 'w');  // four records, three of them full
    REQUIRE_FALSE(p.feedServer(p.c2s.length()).close);
    CHECK(p.server_got == sent);
  }
  SECTION("a short record, then a full one: the read slice cannot take all of the second") {
    send(300, 'v');
    send(16384, 'u');  // 16,084 bytes fit behind the first 300; the rest waits inside OpenSSL
    REQUIRE_FALSE(p.feedServer(p.c2s.length()).close);
    CHECK(p.server_got.size() == sent.size());
    CHECK(p.server_got == sent);
  }
  SECTION("the other way, and the end of the stream") {
    Buffer b;
    b.add("reply");
    REQUIRE_FALSE(p.server->doWrite(b, true, p.s2c).close);  // the data, then close_notify
    auto r = p.feedClient(p.s2c.length());
    CHECK(p.client_got == "reply");
    CHECK(r.end_stream);
  }
}
