// HTTP/2 backpressure both ways (a client that stops reading a 50 MB response, an upstream
// that stops reading a 50 MB upload) and the two-step GOAWAY drain (SIGTERM, a reload that
// removes the listener, connections without streams). Helpers in http2_support.h.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <regex>

#include "tests/integration/http2_support.h"

using namespace ferry::testing;
using namespace ferry::testing::h2test;


// ---- 7: backpressure

TEST_CASE("http2: a client that stops reading holds a 50 MB response back to the upstream; then it all arrives",
          "[http2]") {
  constexpr size_t kSize = 50u << 20;
  std::atomic<size_t> written{0};
  std::atomic<int64_t> blocked_since{0};  // steady-clock ms when the upstream's writes last started to block
  auto nowMs = [] {
    return std::chrono::duration_cast<ms>(std::chrono::steady_clock::now().time_since_epoch()).count();
  };
  HttpUpstream up([&](const UpstreamRequest&) {
    UpstreamAction a;
    a.custom = [&](int fd) {
      if (!FakeUpstream::writeAll(fd, "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(kSize) + "\r\n\r\n")) return;
      std::string chunk(64 * 1024, '\0');
      size_t off = 0;
      while (off < kSize) {
        const size_t n = std::min(chunk.size(), kSize - off);
        for (size_t i = 0; i < n; ++i) chunk[i] = static_cast<char>((off + i) % 251);
        size_t done = 0;
        while (done < n) {
          const ssize_t w = ::send(fd, chunk.data() + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
          if (w > 0) {
            done += static_cast<size_t>(w);
            written += static_cast<size_t>(w);
            blocked_since = 0;
            continue;
          }
          if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            int64_t zero = 0;
            blocked_since.compare_exchange_strong(zero, nowMs());
            pollfd p{fd, POLLOUT, 0};
            if (::poll(&p, 1, 30000) <= 0) return;
            continue;
          }
          return;
        }
        off += n;
      }
      while (!FakeUpstream::readSome(fd).empty()) {
      }
    };
    return a;
  });
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const uint16_t port = f->port("web");
  const long rss_before = f->rssKb();
  auto client = startScript("backpressure.py", port, {"--size", std::to_string(kSize), "--path", "/big"});
  REQUIRE(client->waitForLog("STALLED", 10s));
  // The upstream is held back: its writes block (ferry stopped reading it) for a while.
  REQUIRE(waitUntil([&] {
    const int64_t b = blocked_since.load();
    return b != 0 && nowMs() - b >= 500;
  }, 15s));
  const size_t held_at = written.load();
  INFO("upstream wrote " << held_at << " bytes before it was held back");
  // What the sockets' buffers hold (loopback autotuning: some MB each way) plus the stream's
  // send buffer (1 MiB high watermark) and one window toward the client; far from 50 MB.
  CHECK(held_at < 20u << 20);
  // ferry_buffered_bytes counts connection write buffers only (not the HTTP/2 stream's).
  const double buffered = metric(*f, "ferry_buffered_bytes");
  INFO("ferry_buffered_bytes " << buffered);
  CHECK(buffered >= 0);
  CHECK(buffered < 4 << 20);
  if (!sanitized()) {
    INFO("rss before " << rss_before << " kB, now " << f->rssKb() << " kB");
    CHECK(f->rssKb() - rss_before < 8 * 1024);
  }
  // Reading resumes: everything arrives, intact.
  client->signal(SIGUSR1);
  auto code = client->waitExit(60s);
  const std::string log = client->log();
  INFO(log.substr(0, 4000));
  REQUIRE(code.has_value());
  REQUIRE(*code == 0);
  auto j = resultOf(log);
  REQUIRE(j.has_value());
  CHECK((*j)["status"].num() == 200);
  CHECK((*j)["stalled_at"].num() == 65535);
  CHECK((*j)["before_resume"].num() == 65535);  // nothing beyond the window meanwhile
  CHECK((*j)["body_len"].num() == static_cast<double>(kSize));
  CHECK(truthy((*j)["ended"]));
  CHECK(truthy((*j)["intact"]));
  CHECK(written.load() == kSize);
  exitsCleanly(*f);
}

// The other direction: an upstream that does not read holds the client back through the
// stream's flow-control window (DATA is consumed only while the stream's reader takes it).
TEST_CASE("http2: a 50 MB upload to an upstream that does not read is held back by flow control; then it all arrives",
          "[http2]") {
  constexpr size_t kSize = 50u << 20;
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<bool> head_seen{false};
  std::atomic<size_t> received{0};
  std::atomic<bool> intact{true};
  FakeUpstream up([&](int fd) {
    std::string buf;
    size_t head_end;
    while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
      std::string s = FakeUpstream::readSome(fd);
      if (s.empty()) return;
      buf += s;
    }
    head_seen = true;
    {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait_for(lk, 30s, [&] { return open; });
    }
    std::string chunk = buf.substr(head_end + 4);
    size_t got = 0;
    for (;;) {
      for (size_t i = 0; i < chunk.size(); ++i)
        if (static_cast<unsigned char>(chunk[i]) != (got + i) % 251) intact = false;
      got += chunk.size();
      received = got;
      if (got >= kSize) break;
      chunk = FakeUpstream::readSome(fd, 1 << 20);
      if (chunk.empty()) return;
    }
    const std::string body = "len:" + std::to_string(got) + (intact ? ":intact" : ":corrupt");
    FakeUpstream::writeAll(fd, "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    while (!FakeUpstream::readSome(fd).empty()) {
    }
  });
  Release release{mu, cv, open};
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const uint16_t port = f->port("web");
  const long rss_before = f->rssKb();
  auto client = startScript("upload.py", port, {"--size", std::to_string(kSize), "--path", "/up"});
  REQUIRE(client->waitForLog("BLOCKED", 20s));
  CHECK(head_seen.load());
  std::smatch m;
  const std::string log = client->log();
  REQUIRE(std::regex_search(log, m, std::regex(R"(BLOCKED (\d+))")));
  const double blocked_at = std::stod(m[1]);
  INFO("the client was held after " << blocked_at << " bytes");
  // The upstream socket's buffers, ferry's upstream write buffer (1 MiB high watermark) and
  // the stream and connection windows (1 MiB, 4 MiB): far from 50 MB.
  CHECK(blocked_at < 24u << 20);
  const double buffered = metric(*f, "ferry_buffered_bytes");
  INFO("ferry_buffered_bytes " << buffered);
  CHECK(buffered >= 0);
  CHECK(buffered < 4 << 20);
  if (!sanitized()) {
    INFO("rss before " << rss_before << " kB, now " << f->rssKb() << " kB");
    CHECK(f->rssKb() - rss_before < 16 * 1024);
  }
  release();
  auto code = client->waitExit(60s);
  const std::string out = client->log();
  INFO(out.substr(0, 4000));
  REQUIRE(code.has_value());
  REQUIRE(*code == 0);
  auto j = resultOf(out);
  REQUIRE(j.has_value());
  CHECK((*j)["sent"].num() == static_cast<double>(kSize));
  CHECK((*j)["stream"]["status"].num() == 200);
  CHECK((*j)["stream"]["body"].str() == "len:" + std::to_string(kSize) + ":intact");
  CHECK(received.load() == kSize);
  exitsCleanly(*f);
}

// ---- 8: drain

TEST_CASE("http2: SIGTERM sends the two-step GOAWAY; streams in flight complete; ferry exits 0", "[http2][drain]") {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> waiting{0};
  HttpUpstream up([&](const UpstreamRequest& r) {
    if (r.target == "/slow") {
      ++waiting;
      std::unique_lock<std::mutex> lk(mu);
      cv.wait_for(lk, 10s, [&] { return open; });
      return HttpUpstream::ok("slow");
    }
    return HttpUpstream::ok("fast");
  });
  Release release{mu, cv, open};
  auto f = FerryProcess::start(h2cConfig(up.port(), "", "  drain_delay: 0s\n  drain_timeout: 10s\n"));
  const uint16_t port = f->port("web");
  // late: a second stream goes out after the first GOAWAY, before the drain PING is
  // acknowledged; the final GOAWAY must cover it.
  bool late = false;
  SECTION("one stream in flight") {}
  SECTION("and one sent between the two GOAWAYs") { late = true; }
  std::vector<std::string> args{"--path", "/slow"};
  if (late) args.insert(args.end(), {"--late", "--late-path", "/late"});
  auto client = startScript("drain.py", port, args);
  REQUIRE(client->waitForLog("SENT", 10s));
  REQUIRE(waitUntil([&] { return waiting.load() == 1; }, 10s));
  f->signal(SIGTERM);
  // Step one: "no new streams soon" (last stream id 2^31-1), while the stream is still open.
  REQUIRE(client->waitForLog("GOAWAY 2147483647 0", 10s));
  CHECK(f->running());
  release();
  auto code = client->waitExit(20s);
  const std::string log = client->log();
  INFO(log);
  REQUIRE(code.has_value());
  REQUIRE(*code == 0);
  auto j = resultOf(log);
  REQUIRE(j.has_value());
  CHECK((*j)["stream"]["status"].num() == 200);
  CHECK((*j)["stream"]["body"].str() == "slow");
  CHECK(truthy((*j)["stream"]["ended"]));
  auto g = goaways(*j);
  REQUIRE(g.size() >= 2);
  CHECK(g.front() == std::make_pair(2147483647.0, 0.0));
  // Step two: the real last stream id.
  CHECK(g.back() == std::make_pair(late ? 3.0 : 1.0, 0.0));
  if (late) {
    CHECK((*j)["late"]["status"].num() == 200);
    CHECK((*j)["late"]["body"].str() == "fast");
  } else {
    CHECK((*j)["late"].isNull());
  }
  CHECK(truthy((*j)["closed"]));
  auto fcode = f->waitExit(15s);
  REQUIRE(fcode.has_value());
  CHECK(*fcode == 0);
}

TEST_CASE("http2: a reload that removes the listener drains its h2 connection with the two GOAWAYs", "[http2][drain]") {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> waiting{0};
  HttpUpstream up([&](const UpstreamRequest& r) {
    if (r.target == "/slow") {
      ++waiting;
      std::unique_lock<std::mutex> lk(mu);
      cv.wait_for(lk, 10s, [&] { return open; });
      return HttpUpstream::ok("slow");
    }
    return HttpUpstream::ok("ok:" + r.target);
  });
  Release release{mu, cv, open};
  const std::string runtime = "  drain_delay: 0s\n  drain_timeout: 10s\n";
  auto f = FerryProcess::start(h2cConfig(up.port(), "", runtime));
  const uint16_t port = f->port("web");
  const uint16_t admin = f->adminPort();
  auto client = startScript("drain.py", port, {"--path", "/slow"});
  REQUIRE(client->waitForLog("SENT", 10s));
  REQUIRE(waitUntil([&] { return waiting.load() == 1; }, 10s));
  // The same, but the listener is now "web2".
  f->writeConfig(FerryConfig{.runtime_extra = runtime, .listener = "web2", .clusters = {{"up", {up.port()}}}}.yaml());
  HttpResponse rr = httpRequest(admin, "POST", "/reload", "", {}, 10s);
  INFO("POST /reload: " << rr.status << " " << rr.body);
  REQUIRE(rr.status == 200);
  REQUIRE(client->waitForLog("GOAWAY 2147483647 0", 10s));
  release();
  auto code = client->waitExit(20s);
  const std::string log = client->log();
  INFO(log);
  REQUIRE(code.has_value());
  REQUIRE(*code == 0);
  auto j = resultOf(log);
  REQUIRE(j.has_value());
  CHECK((*j)["stream"]["status"].num() == 200);
  CHECK((*j)["stream"]["body"].str() == "slow");
  auto g = goaways(*j);
  REQUIRE(g.size() >= 2);
  CHECK(g.front() == std::make_pair(2147483647.0, 0.0));
  CHECK(g.back() == std::make_pair(1.0, 0.0));
  CHECK(truthy((*j)["closed"]));
  // Ferry goes on, with the new listener.
  REQUIRE(f->running());
  Json g2 = runScript("get.py", f->port("web2"), {"--path", "/new"});
  CHECK(g2["status"].num() == 200);
  exitsCleanly(*f);
}

TEST_CASE("http2: SIGTERM closes an h2 connection without streams after the two GOAWAYs", "[http2][drain]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port(), "", "  drain_delay: 0s\n  drain_timeout: 10s\n"));
  auto client = startScript("idle.py", f->port("web"), {"--wait", "10"});
  REQUIRE(client->waitForLog("READY", 10s));
  f->signal(SIGTERM);
  auto code = client->waitExit(15s);
  const std::string log = client->log();
  INFO(log);
  REQUIRE(code.has_value());
  REQUIRE(*code == 0);
  auto j = resultOf(log);
  REQUIRE(j.has_value());
  CHECK(truthy((*j)["closed"]));
  CHECK((*j)["closed_after"].num() < 5);  // not the drain timeout
  auto g = goaways(*j);
  REQUIRE(g.size() == 2);
  CHECK(g[0] == std::make_pair(2147483647.0, 0.0));
  CHECK(g[1] == std::make_pair(0.0, 0.0));
  auto fcode = f->waitExit(10s);
  REQUIRE(fcode.has_value());
  CHECK(*fcode == 0);
}

// ---- idle connections

// http.idle_timeout applies to an HTTP/2 connection while it has no stream open, whatever
// control frames the client sends meanwhile; it ends with GOAWAY NO_ERROR.
