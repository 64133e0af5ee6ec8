// The L4 proxy over real loopback sockets: byte-exact both ways, half-close each way,
// upstream down, backpressure with bounded buffering, idle timeout, round robin.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <thread>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"

using namespace ferry::testing;

namespace {

// Like metricValue, but a /metrics that is not a 200 with valid Prometheus text fails the test
// here (REQUIRE) instead of returning kMetricUnreadable; kMetricAbsent if the sample is absent.
double metric(FerryProcess& f, const std::string& key) {
  auto r = httpRequest(f.adminPort(), "GET", "/metrics");
  REQUIRE(r.status == 200);
  auto m = parsePrometheus(r.body);
  REQUIRE(m.has_value());
  auto it = m->find(key);
  return it == m->end() ? kMetricAbsent : it->second;
}

// Polls metric() until pred holds (bounded); returns the last value.
template <typename Pred>
double waitMetricMatching(FerryProcess& f, const std::string& key, Pred pred, ms timeout = 10s) {
  double v = metric(f, key);
  waitUntil([&] { return pred(v = metric(f, key)); }, timeout, 20ms);
  return v;
}

// Writes `data` to a non-blocking copy of fd until everything is written, or until a write
// has made no progress for `stall` (the peer stopped reading): returns bytes written.
size_t writeUntilStalled(int fd, const std::string& data, ms stall, std::atomic<bool>* stalled) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::send(fd, data.data() + off, std::min<size_t>(65536, data.size() - off),
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      off += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) break;
    pollfd p{fd, POLLOUT, 0};
    // Until the first stall, a short wait detects it; after that, only a long one gives up.
    bool first = stalled && !stalled->load();
    int r = ::poll(&p, 1, first ? static_cast<int>(stall.count()) : 30000);
    if (r == 0 && first) {
      stalled->store(true);  // blocked for `stall`: backpressure reached the writer
      r = ::poll(&p, 1, 30000);
    }
    if (r <= 0) break;
  }
  return off;
}

}  // namespace

TEST_CASE("tcp: 10 MB of random bytes each way arrive byte-exact, spliced or copied", "[tcp]") {
  // Plain TCP both ways: the bytes move socket to socket through kernel pipes (splice), unless
  // the listener turns it off; the result must be the same.
  const bool splice = GENERATE(true, false);
  INFO("splice " << splice);
  const std::string up_data = randomBytes(10 << 20, 1);
  const std::string down_data = randomBytes(10 << 20, 2);
  auto rec = std::make_shared<Received>();
  FakeUpstream up([&](int fd) {
    std::thread reader([&] { FakeUpstream::sink(rec)(fd); });
    FakeUpstream::writeAll(fd, up_data);
    ::shutdown(fd, SHUT_WR);
    reader.join();
  });
  auto f = FerryProcess::start(FerryConfig{.workers = 2,
                                           .listener = "tcp",
                                           .tcp_cluster = "up",
                                           .tcp_extra = splice ? "" : "      splice: false\n",
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  auto c = TcpClient::connect(f->port("tcp"));
  REQUIRE(c);
  std::thread sender([&] {
    c->sendAll(down_data, 30s);
    c->shutdownWrite();
  });
  std::string got = c->recvUntilClose(30s);
  sender.join();
  REQUIRE(rec->waitEof(30s));
  REQUIRE(got.size() == up_data.size());
  REQUIRE(got == up_data);
  REQUIRE(rec->size() == down_data.size());
  REQUIRE(rec->data() == down_data);
  REQUIRE(metric(*f, "ferry_downstream_bytes_received_total{listener=\"tcp\"}") == down_data.size());
  REQUIRE(metric(*f, "ferry_downstream_bytes_sent_total{listener=\"tcp\"}") == up_data.size());
  REQUIRE(metric(*f, "ferry_upstream_bytes_sent_total{cluster=\"up\"}") == down_data.size());
  REQUIRE(metric(*f, "ferry_upstream_bytes_received_total{cluster=\"up\"}") == up_data.size());
  // The io_uring backend copies (its receive owns the socket): nothing is spliced there.
  const bool spliced = splice && f->log().find("I/O backend: io_uring") == std::string::npos;
  REQUIRE(metric(*f, "ferry_tcp_spliced_bytes_total{listener=\"tcp\"}") ==
          (spliced ? up_data.size() + down_data.size() : 0));
  REQUIRE(metric(*f, "ferry_buffered_bytes") == 0);
}

TEST_CASE("tcp: client half-close reaches the upstream, which can still answer", "[tcp]") {
  FakeUpstream up([](int fd) {
    std::string got;
    for (;;) {
      std::string s = FakeUpstream::readSome(fd);
      if (s.empty()) break;  // EOF: the client's FIN came through
      got += s;
    }
    FakeUpstream::writeAll(fd, "got:" + got);
    ::shutdown(fd, SHUT_WR);
  });
  auto f = FerryProcess::start(
      FerryConfig{.workers = 2, .listener = "tcp", .tcp_cluster = "up", .clusters = {{"up", {up.port()}}}}.yaml());
  auto c = TcpClient::connect(f->port("tcp"));
  REQUIRE(c);
  REQUIRE(c->sendAll("ping"));
  c->shutdownWrite();
  REQUIRE(c->recvUntilClose(10s) == "got:ping");
  REQUIRE(c->sawEof());
}

TEST_CASE("tcp: upstream half-close reaches the client, which can still send", "[tcp]") {
  auto rec = std::make_shared<Received>();
  FakeUpstream up([&](int fd) {
    FakeUpstream::writeAll(fd, "hello");
    ::shutdown(fd, SHUT_WR);
    FakeUpstream::sink(rec)(fd);
  });
  auto f = FerryProcess::start(
      FerryConfig{.workers = 2, .listener = "tcp", .tcp_cluster = "up", .clusters = {{"up", {up.port()}}}}.yaml());
  auto c = TcpClient::connect(f->port("tcp"));
  REQUIRE(c);
  REQUIRE(c->recvUntilClose(10s) == "hello");
  REQUIRE(c->sawEof());
  REQUIRE_FALSE(c->sawReset());
  REQUIRE(c->sendAll("more data after the upstream's FIN"));
  c->shutdownWrite();
  REQUIRE(rec->waitEof(10s));
  REQUIRE(rec->data() == "more data after the upstream's FIN");
  REQUIRE_FALSE(rec->reset());
}

TEST_CASE("tcp: upstream down closes the client promptly and is counted", "[tcp]") {
  const RefusingPort refusing;  // the upstream: refuses connections until the test ends
  const uint16_t dead = refusing.port();
  auto f = FerryProcess::start(
      FerryConfig{.workers = 2, .listener = "tcp", .tcp_cluster = "up", .clusters = {{"up", {dead}}}}.yaml());
  auto c = TcpClient::connect(f->port("tcp"));
  REQUIRE(c);
  c->sendAll("anyone there?");
  REQUIRE(c->waitClosed(3s));
  REQUIRE(waitMetricMatching(*f, "ferry_upstream_connect_failures_total{cluster=\"up\"}",
                             [](double v) { return v >= 1; }) == 1);
  REQUIRE(waitMetricMatching(*f, "ferry_downstream_connections_active{listener=\"tcp\"}",
                             [](double v) { return v == 0; }) == 0);
}

TEST_CASE("tcp: a slow client stops reads from the upstream; buffering stays bounded", "[tcp][backpressure]") {
  const size_t total = 64u << 20;
  const std::string data = randomBytes(total, 3);
  std::atomic<bool> stalled{false};
  std::atomic<size_t> written{0};
  FakeUpstream up([&](int fd) {
    written = writeUntilStalled(fd, data, 300ms, &stalled);
    ::shutdown(fd, SHUT_WR);
    FakeUpstream::readSome(fd);  // wait for the client side to finish
  });
  // 256 KiB per-connection limit; small socket buffers on the client side.
  auto f = FerryProcess::start(FerryConfig{.workers = 2,
                                           .listener = "tcp",
                                           .listener_extra = "    per_connection_buffer_limit_kb: 256\n",
                                           .tcp_cluster = "up",
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  auto c = TcpClient::connect(f->port("tcp"), 5s, 64 * 1024);
  REQUIRE(c);
  long rss_before = f->rssKb();
  // The client reads nothing until the upstream's writes stall.
  REQUIRE(waitUntil([&] { return stalled.load(); }, 30s, 5ms));
  double buffered = metric(*f, "ferry_buffered_bytes");
  INFO("buffered bytes " << buffered);
  REQUIRE(buffered <= 256 * 1024 + 256 * 1024);  // limit + one read budget
  if (!sanitized()) {
    long rss_after = f->rssKb();
    INFO("rss before " << rss_before << " kB, at stall " << rss_after << " kB");
    REQUIRE(rss_after - rss_before < 16 * 1024);
  }
  // Now read everything: nothing was lost while the proxy held back.
  std::string got = c->recvUntilClose(60s);
  REQUIRE(got.size() == total);
  REQUIRE(got == data);
}

TEST_CASE("tcp: a slow upstream stops reads from the client; buffering stays bounded", "[tcp][backpressure]") {
  const size_t total = 64u << 20;
  const std::string data = randomBytes(total, 4);
  auto rec = std::make_shared<Received>();
  std::atomic<bool> start_reading{false};
  FakeUpstream up([&](int fd) {
    int small = 64 * 1024;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    waitUntil([&] { return start_reading.load(); }, 60s, 5ms);
    FakeUpstream::sink(rec)(fd);
  });
  auto f = FerryProcess::start(FerryConfig{.workers = 2,
                                           .listener = "tcp",
                                           .listener_extra = "    per_connection_buffer_limit_kb: 256\n",
                                           .tcp_cluster = "up",
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  auto c = TcpClient::connect(f->port("tcp"));
  REQUIRE(c);
  long rss_before = f->rssKb();
  std::atomic<bool> stalled{false};
  size_t sent = 0;
  std::thread writer([&] { sent = writeUntilStalled(c->fd(), data, 300ms, &stalled); });
  bool was_stalled = waitUntil([&] { return stalled.load(); }, 30s, 5ms);
  double buffered = metric(*f, "ferry_buffered_bytes");
  long rss_after = f->rssKb();
  start_reading = true;
  writer.join();
  c->shutdownWrite();
  REQUIRE(was_stalled);
  INFO("buffered bytes " << buffered);
  REQUIRE(buffered <= 256 * 1024 + 256 * 1024);
  if (!sanitized()) {
    INFO("rss before " << rss_before << " kB, at stall " << rss_after << " kB");
    REQUIRE(rss_after - rss_before < 16 * 1024);
  }
  REQUIRE(sent == total);
  REQUIRE(rec->waitEof(60s));
  REQUIRE(rec->size() == total);
  REQUIRE(rec->data() == data);
}

TEST_CASE("tcp: idle connections are closed after idle_timeout", "[tcp]") {
  FakeUpstream up(FakeUpstream::echo());
  auto f = FerryProcess::start(FerryConfig{.workers = 2,
                                           .listener = "tcp",
                                           .tcp_cluster = "up",
                                           .tcp_extra = "      idle_timeout: 300ms\n",
                                           .clusters = {{"up", {up.port()}}}}
                                   .yaml());
  auto c = TcpClient::connect(f->port("tcp"));
  REQUIRE(c);
  REQUIRE(c->sendAll("x"));
  REQUIRE(c->recvExactly(1, 5s) == "x");
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(c->waitClosed(5s));
  auto took = std::chrono::duration_cast<ms>(std::chrono::steady_clock::now() - t0);
  REQUIRE(took >= 200ms);  // not before the timeout (coarse clock: allow some slack)
}

TEST_CASE("tcp: weighted round robin spreads connections by weight", "[tcp]") {
  FakeUpstream a(FakeUpstream::echo());
  FakeUpstream b(FakeUpstream::echo());
  auto f = FerryProcess::start(FerryConfig{.workers = 1,
                                           .listener = "tcp",
                                           .tcp_cluster = "up",
                                           .clusters = {{"up", {{a.port(), 1}, {b.port(), 3}}}}}
                                   .yaml());
  uint16_t port = f->port("tcp");
  for (int i = 0; i < 40; ++i) {
    auto c = TcpClient::connect(port);
    REQUIRE(c);
    REQUIRE(c->sendAll("r"));
    REQUIRE(c->recvExactly(1, 5s) == "r");
  }
  REQUIRE(a.waitAccepted(10));
  REQUIRE(b.waitAccepted(30));
  REQUIRE(a.accepted() == 10);
  REQUIRE(b.accepted() == 30);
}
