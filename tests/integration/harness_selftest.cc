// Self-tests of the integration harness; none of them needs the ferry binary.
#include <signal.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "tests/integration/harness.h"

using namespace ferry::testing;
using Clock = std::chrono::steady_clock;

namespace {

const char* kListenLine =
    "echo \"[info] listening: listener=web address=127.0.0.1:4321\" >&2; sleep 30";

}  // namespace

TEST_CASE("echo upstream round-trips 1 MB through TcpClient", "[harness]") {
  FakeUpstream up(FakeUpstream::echo());
  auto c = TcpClient::connect(up.port());
  REQUIRE(c);
  const std::string payload = randomBytes(1 << 20, 42);
  bool sent = false;
  std::thread writer([&] { sent = c->sendAll(payload, 20s); });
  std::string got = c->recvExactly(payload.size(), 20s);
  writer.join();
  REQUIRE(sent);
  REQUIRE(got.size() == payload.size());
  REQUIRE(got == payload);
  c->shutdownWrite();
  REQUIRE(c->waitClosed(5s));
  CHECK(c->sawEof());
  CHECK(up.accepted() == 1);
}

TEST_CASE("sink records exactly what was sent, then EOF", "[harness]") {
  auto rec = std::make_shared<Received>();
  FakeUpstream up(FakeUpstream::sink(rec));
  auto c = TcpClient::connect(up.port());
  REQUIRE(c);
  const std::string payload = randomBytes(300000, 7);
  REQUIRE(c->sendAll(payload.substr(0, 1000)));
  REQUIRE(rec->waitBytes(1000, 5s));
  CHECK_FALSE(rec->eof());
  REQUIRE(c->sendAll(payload.substr(1000)));
  c->shutdownWrite();
  REQUIRE(rec->waitEof(5s));
  CHECK(rec->data() == payload);
  CHECK_FALSE(rec->reset());
  CHECK_FALSE(rec->waitBytes(payload.size() + 1, 50ms));
}

TEST_CASE("sink sees a reset as the end of the connection", "[harness]") {
  auto rec = std::make_shared<Received>();
  FakeUpstream up(FakeUpstream::sink(rec));
  auto c = TcpClient::connect(up.port());
  REQUIRE(c);
  REQUIRE(c->sendAll("abc"));
  REQUIRE(rec->waitBytes(3, 5s));
  c->resetClose();
  REQUIRE(rec->waitEof(5s));
  CHECK(rec->reset());
  CHECK(rec->data() == "abc");
}

TEST_CASE("waitClosed after closeImmediately", "[harness]") {
  FakeUpstream up(FakeUpstream::closeImmediately());
  auto c = TcpClient::connect(up.port());
  REQUIRE(c);
  REQUIRE(c->waitClosed(5s));
  CHECK(c->closedByPeer());
  REQUIRE(up.waitAccepted(1, 5s));
  CHECK(c->recvSome(100ms).empty());
}

TEST_CASE("waitClosed times out on an open connection", "[harness]") {
  auto rec = std::make_shared<Received>();
  FakeUpstream up(FakeUpstream::sink(rec));
  auto c = TcpClient::connect(up.port());
  REQUIRE(c);
  auto t0 = Clock::now();
  CHECK_FALSE(c->waitClosed(200ms));
  auto dt = Clock::now() - t0;
  CHECK(dt >= 200ms);
  CHECK(dt < 3s);
  CHECK_FALSE(c->closedByPeer());
  // The upstream's destructor must not hang although the client never closes.
}

TEST_CASE("peerClosedOrReset keeps the data, waitClosed discards it", "[harness]") {
  FakeUpstream up([](int fd) { FakeUpstream::writeAll(fd, "hello"); });
  {
    auto c = TcpClient::connect(up.port());
    REQUIRE(c);
    REQUIRE(c->peerClosedOrReset(5s));
    CHECK(c->recvSome(0ms) == "hello");
    CHECK(c->recvUntilClose(100ms).empty());
  }
  {
    auto c = TcpClient::connect(up.port());
    REQUIRE(c);
    REQUIRE(c->waitClosed(5s));
    CHECK(c->recvSome(0ms).empty());
  }
  {
    auto c = TcpClient::connect(up.port());
    REQUIRE(c);
    CHECK(c->recvExactly(3) == "hel");
    CHECK(c->recvExactly(10, 5s) == "lo");  // EOF cuts it short
    CHECK(c->sawEof());
  }
  CHECK(up.waitAccepted(3, 5s));
}

TEST_CASE("recvSome returns nothing on timeout, data when it comes", "[harness]") {
  FakeUpstream up(FakeUpstream::echo());
  auto c = TcpClient::connect(up.port());
  REQUIRE(c);
  CHECK(c->recvSome(50ms).empty());
  REQUIRE(c->sendAll("ping"));
  CHECK(c->recvExactly(4, 5s) == "ping");
}

TEST_CASE("FakeUpstream: many connections, waitAccepted, stopListening", "[harness]") {
  FakeUpstream up(FakeUpstream::echo());
  std::vector<std::unique_ptr<TcpClient>> cs;
  for (int i = 0; i < 20; ++i) {
    cs.push_back(TcpClient::connect(up.port()));
    REQUIRE(cs.back());
  }
  REQUIRE(up.waitAccepted(20, 5s));
  for (size_t i = 0; i < cs.size(); ++i) {
    std::string msg = "msg" + std::to_string(i);
    REQUIRE(cs[i]->sendAll(msg));
    CHECK(cs[i]->recvExactly(msg.size()) == msg);
  }
  CHECK_FALSE(up.waitAccepted(21, 50ms));
  up.stopListening();
  CHECK(TcpClient::connect(up.port(), 1s) == nullptr);
  // Connections accepted before keep working.
  REQUIRE(cs[0]->sendAll("still"));
  CHECK(cs[0]->recvExactly(5) == "still");
  // Destructor with 20 open connections must return promptly.
}

TEST_CASE("FakeUpstream destructor does not hang on a blocked handler", "[harness]") {
  auto t0 = Clock::now();
  auto c = std::unique_ptr<TcpClient>();
  {
    FakeUpstream up([](int fd) {
      // Blocks in read until the destructor shuts the socket down.
      while (!FakeUpstream::readSome(fd).empty()) {
      }
    });
    c = TcpClient::connect(up.port());
    REQUIRE(c);
    REQUIRE(up.waitAccepted(1, 5s));
  }
  CHECK(Clock::now() - t0 < 3s);
  CHECK(c->waitClosed(5s));
}

TEST_CASE("RefusingPort refuses connections, every time, for as long as it lives", "[harness]") {
  RefusingPort refusing;
  const uint16_t p = refusing.port();
  REQUIRE(p != 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(p);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 20; ++i) {
    INFO("attempt " << i);
    // Refused at once with a RST (ECONNREFUSED), not left to time out.
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    int r = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    int err = errno;
    ::close(fd);
    CHECK(r == -1);
    CHECK(err == ECONNREFUSED);
    // The harness client sees the same.
    CHECK(TcpClient::connect(p, 2s) == nullptr);
    // Nothing else can take the port meanwhile, not even with SO_REUSEADDR.
    int other = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(other >= 0);
    int one = 1;
    ::setsockopt(other, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    r = ::bind(other, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    err = errno;
    ::close(other);
    CHECK(r == -1);
    CHECK(err == EADDRINUSE);
  }
}

TEST_CASE("runProcess captures stdout, stderr and the exit code", "[harness]") {
  RunResult r = runProcess({"/bin/sh", "-c", "echo hi; echo err >&2; exit 3"});
  CHECK(r.exit_code == 3);
  CHECK(r.out == "hi\n");
  CHECK(r.err == "err\n");
  CHECK_FALSE(r.timed_out);

  r = runProcess({"/bin/echo", "a", "b"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "a b\n");
  CHECK(r.err.empty());

  // PATH lookup, larger output than a pipe buffer.
  r = runProcess({"sh", "-c", "head -c 300000 /dev/zero"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.size() == 300000);

  // stdin is /dev/null.
  r = runProcess({"/bin/cat"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.empty());
}

TEST_CASE("runProcess: signals, timeouts, exec failure", "[harness]") {
  RunResult r = runProcess({"/bin/sh", "-c", "kill -TERM $$"});
  CHECK(r.exit_code == 128 + SIGTERM);

  // SIGPIPE is ignored in the test binary but children start with default dispositions and
  // an empty signal mask.
  r = runProcess({"grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"});
  CHECK(r.out == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");

  auto t0 = Clock::now();
  r = runProcess({"/bin/sh", "-c", "echo started; sleep 30; echo never"}, 300ms);
  auto dt = Clock::now() - t0;
  CHECK(r.timed_out);
  CHECK(r.exit_code == 128 + SIGKILL);
  CHECK(r.out == "started\n");
  CHECK(dt >= 300ms);
  CHECK(dt < 5s);

  // No fd of the test process leaks into children, even one opened without O_CLOEXEC.
  int leaky = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(leaky >= 0);
  r = runProcess({"ls", "/proc/self/fd"});
  ::close(leaky);
  CHECK(r.out == "0\n1\n2\n3\n");  // 3 is ls's own directory handle

  CHECK_THROWS_AS(runProcess({"/nonexistent/binary"}), HarnessError);
  CHECK_THROWS_AS(runProcess({}), HarnessError);
}

TEST_CASE("runFerry uses FERRY_BIN and fails on timeout", "[harness]") {
  {
    ScopedEnv env("FERRY_BIN", "");
    CHECK_THROWS_AS(ferryBin(), HarnessError);
    CHECK_THROWS_AS(runFerry({"--version"}), HarnessError);
  }
  {
    ScopedEnv env("FERRY_BIN", "/bin/echo");
    RunResult r = runFerry({"--version", "x"});
    CHECK(r.exit_code == 0);
    CHECK(r.out == "--version x\n");
  }
  {
    ScopedEnv env("FERRY_BIN", "/bin/sleep");
    CHECK_THROWS_AS(runFerry({"30"}, 200ms), HarnessError);
  }
  {
    ScopedEnv env("FERRY_SRC", "/some/where");
    CHECK(srcDir() == "/some/where");
  }
}

TEST_CASE("TempDir writes files and is removed", "[harness]") {
  std::string p;
  {
    TempDir d;
    p = d.path();
    CHECK(p.rfind("/tmp/ferry-test-", 0) == 0);
    std::string f = d.write("sub/dir/a.txt", "content");
    CHECK(f == p + "/sub/dir/a.txt");
    CHECK(readFile(f) == "content");
    d.write("sub/dir/a.txt", "new");
    CHECK(readFile(f) == "new");
    std::string x = d.write("run.sh", "#!/bin/sh\necho ok\n", 0755);
    struct stat sb;
    REQUIRE(::stat(x.c_str(), &sb) == 0);
    CHECK((sb.st_mode & 0777) == 0755);
  }
  CHECK_FALSE(std::filesystem::exists(p));
}

TEST_CASE("FerryProcess: port() parses the listening line", "[harness]") {
  auto p = FerryProcess::startCommand({"/bin/sh", "-c", kListenLine});
  REQUIRE(p);
  CHECK(p->port("web") == 4321);
  CHECK(p->running());
  CHECK(p->waitForLog("[info] listening:", 1s));
  CHECK(p->countInLog("listening") == 1);
  CHECK(p->log().find("address=127.0.0.1:4321") != std::string::npos);
  // Another listener name (and a prefix of it) never appears: deadline -> HarnessError.
  auto t0 = Clock::now();
  CHECK_THROWS_AS(p->port("we", 200ms), HarnessError);
  CHECK_THROWS_AS(p->adminPort(200ms), HarnessError);
  CHECK(Clock::now() - t0 < 3s);
  CHECK_FALSE(p->waitForLog("nope", 100ms));
  CHECK(p->rssKb() > 0);
  CHECK(p->pid() > 0);
  CHECK_FALSE(p->waitExit(50ms).has_value());
  // The destructor SIGKILLs sh and its `sleep 30`, without waiting for them.
  auto t1 = Clock::now();
  p.reset();
  CHECK(Clock::now() - t1 < 3s);
}

TEST_CASE("FerryProcess: several listeners, admin, partial lines", "[harness]") {
  auto p = FerryProcess::startCommand(
      {"/bin/sh", "-c",
       "echo 'x listening: listener=web2 address=127.0.0.1:1111';"
       "echo 'x listening: admin address=[::1]:2222';"
       "printf 'x listening: listener=tcp address=127.0.0.1:33';"  // no newline yet
       "sleep 0.3; echo '33 more'; sleep 30"});
  CHECK(p->adminPort() == 2222);
  CHECK(p->port("web2") == 1111);
  CHECK(p->port("tcp") == 3333);  // only complete lines count
}

TEST_CASE("FerryProcess: port() fails fast when the process exits", "[harness]") {
  auto p = FerryProcess::startCommand({"/bin/sh", "-c", "echo 'config error' >&2; exit 2"});
  auto t0 = Clock::now();
  try {
    p->port("web", 10s);
    FAIL("port() should have thrown");
  } catch (const HarnessError& e) {
    std::string msg = e.what();
    CHECK(msg.find("exited with code 2") != std::string::npos);
    CHECK(msg.find("config error") != std::string::npos);
  }
  CHECK(Clock::now() - t0 < 5s);
  CHECK(p->waitExit(5s) == 2);
  CHECK_FALSE(p->running());
  CHECK(p->rssKb() == -1);  // zombie: no VmRSS
  CHECK_FALSE(p->waitForLog("never", 5s));  // returns at once: exited
}

TEST_CASE("FerryProcess: waitExit with signals", "[harness]") {
  SECTION("default action") {
    auto p = FerryProcess::startCommand({"/bin/sh", "-c", kListenLine});
    REQUIRE(p->port("web") == 4321);
    p->signal(SIGTERM);
    CHECK(p->waitExit(5s) == 128 + SIGTERM);
    CHECK(p->waitExit(0ms) == 128 + SIGTERM);  // repeatable
    p->signal(SIGTERM);                         // harmless after exit
  }
  SECTION("handled signal, clean exit code") {
    auto p = FerryProcess::startCommand(
        {"/bin/sh", "-c",
         "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 1 & wait $!; done"});
    REQUIRE(p->waitForLog("ready\n", 5s));
    p->signal(SIGTERM);
    CHECK(p->waitExit(5s) == 7);
    CHECK(p->waitForLog("got-term", 5s));
  }
  SECTION("SIGHUP then keep running") {
    auto p = FerryProcess::startCommand(
        {"/bin/sh", "-c",
         "trap 'echo reloaded' HUP; echo ready; while :; do sleep 1 & wait $!; done"});
    REQUIRE(p->waitForLog("ready\n", 5s));
    p->signal(SIGHUP);
    REQUIRE(p->waitForLogCount("reloaded", 1, 5s));
    p->signal(SIGHUP);
    REQUIRE(p->waitForLogCount("reloaded", 2, 5s));
    CHECK(p->running());
  }
}

TEST_CASE("FerryProcess: exec failure is a HarnessError", "[harness]") {
  CHECK_THROWS_AS(FerryProcess::startCommand({"/nonexistent/ferry"}), HarnessError);
}

TEST_CASE("FerryProcess::start writes config and extra files, expands {dir}", "[harness]") {
  TempDir bin;
  // A stand-in for ferry: prints its args and config, then the listening line.
  const std::string fake = bin.write("fake-ferry",
                                     "#!/bin/sh\n"
                                     "echo \"args: $*\"\n"
                                     "echo \"cwd: $(pwd)\"\n"
                                     "cat \"$2\"\n"
                                     "echo \"listening: listener=main address=127.0.0.1:5555\"\n"
                                     "exec sleep 30\n",
                                     0755);
  ScopedEnv env("FERRY_BIN", fake);
  auto p = FerryProcess::start("listeners: {path: {dir}/x}\n", {"--check", "{dir}/extra"},
                               {{"certs/a.pem", "pem in {dir}"}});
  REQUIRE(p->port("main") == 5555);
  const std::string d = p->dir();
  CHECK(p->configPath() == d + "/ferry.yaml");
  std::string log = p->log();
  CHECK(log.find("args: -c " + d + "/ferry.yaml --check " + d + "/extra\n") != std::string::npos);
  CHECK(log.find("cwd: " + d + "\n") != std::string::npos);
  CHECK(log.find("listeners: {path: " + d + "/x}\n") != std::string::npos);
  CHECK(readFile(d + "/certs/a.pem") == "pem in " + d);
  p->writeConfig("new: {dir}\n");
  CHECK(readFile(p->configPath()) == "new: " + d + "\n");
  p.reset();
  CHECK_FALSE(std::filesystem::exists(d));
}

TEST_CASE("httpRequest parses Content-Length, chunked and close-delimited responses",
          "[harness]") {
  SECTION("content-length, request as sent") {
    auto req = std::make_shared<Received>();
    FakeUpstream up(FakeUpstream::reply(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test:  yes \r\n\r\nhello", req));
    HttpResponse r = httpRequest(up.port(), "POST", "/p?q=1", "body!", {"X-Req: 1"});
    CHECK(r.error.empty());
    CHECK(r.status == 200);
    CHECK(r.body == "hello");
    CHECK(r.header("x-test") == "yes");
    CHECK(r.header("content-length") == "5");
    CHECK(r.hasHeader("X-TEST"));
    CHECK_FALSE(r.hasHeader("X-Tes"));
    REQUIRE(req->waitEof(5s));
    const std::string sent = req->data();
    CHECK(sent.rfind("POST /p?q=1 HTTP/1.1\r\n", 0) == 0);
    CHECK(sent.find("\r\nHost: 127.0.0.1:" + std::to_string(up.port()) + "\r\n") !=
          std::string::npos);
    CHECK(sent.find("\r\nConnection: close\r\n") != std::string::npos);
    CHECK(sent.find("\r\nContent-Length: 5\r\n") != std::string::npos);
    CHECK(sent.find("\r\nX-Req: 1\r\n") != std::string::npos);
    CHECK(sent.substr(sent.size() - 9) == "\r\n\r\nbody!");
  }
  SECTION("chunked, with 100 Continue first") {
    FakeUpstream up(FakeUpstream::reply(
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n"));
    HttpResponse r = httpRequest(up.port(), "GET", "/");
    CHECK(r.status == 201);
    CHECK(r.body == "hello world");
  }
  SECTION("close-delimited") {
    FakeUpstream up(FakeUpstream::reply("HTTP/1.0 503 Service Unavailable\r\nA: b\r\n\r\nuntil close"));
    HttpResponse r = httpRequest(up.port(), "GET", "/");
    CHECK(r.status == 503);
    CHECK(r.body == "until close");
    CHECK(r.headers == "A: b");
  }
  SECTION("HEAD and 204 have no body") {
    FakeUpstream up(FakeUpstream::reply("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"));
    HttpResponse r = httpRequest(up.port(), "HEAD", "/");
    CHECK(r.status == 200);
    CHECK(r.body.empty());
    FakeUpstream up2(FakeUpstream::reply("HTTP/1.1 204 No Content\r\n\r\n"));
    CHECK(httpRequest(up2.port(), "GET", "/").status == 204);
  }
  SECTION("large body") {
    const std::string big = randomBytes(2 << 20, 3);
    FakeUpstream up(FakeUpstream::reply(
        "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(big.size()) + "\r\n\r\n" + big));
    HttpResponse r = httpRequest(up.port(), "GET", "/big", "", {}, 20s);
    CHECK(r.status == 200);
    CHECK(r.body == big);
  }
  SECTION("errors: refused, truncated, garbage, timeout") {
    RefusingPort refusing;
    HttpResponse r = httpRequest(refusing.port(), "GET", "/");
    CHECK(r.status == 0);
    CHECK_FALSE(r.error.empty());

    FakeUpstream trunc(FakeUpstream::reply("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"));
    r = httpRequest(trunc.port(), "GET", "/");
    CHECK(r.status == 0);
    CHECK(r.error.find("Content-Length") != std::string::npos);

    FakeUpstream garbage(FakeUpstream::reply("SSH-2.0-OpenSSH\r\n\r\n"));
    r = httpRequest(garbage.port(), "GET", "/");
    CHECK(r.status == 0);
    CHECK(r.error.find("status line") != std::string::npos);

    auto rec = std::make_shared<Received>();
    FakeUpstream silent(FakeUpstream::sink(rec));
    auto t0 = Clock::now();
    r = httpRequest(silent.port(), "GET", "/", "", {}, 300ms);
    CHECK(r.status == 0);
    CHECK(r.error.find("timed out") != std::string::npos);
    CHECK(Clock::now() - t0 < 3s);
  }
}

TEST_CASE("parseHttpResponse on raw bytes", "[harness]") {
  CHECK(parseHttpResponse("HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno").status == 404);
  CHECK(parseHttpResponse("HTTP/1.1 200 OK\r\n\r\nabc", false).status == 0);  // not closed yet
  CHECK(parseHttpResponse("HTTP/1.1 200\r\n\r\nabc").body == "abc");
  CHECK(parseHttpResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").status == 0);
}

TEST_CASE("parsePrometheus: well-formed exposition", "[harness]") {
  const std::string text =
      "# HELP ferry_downstream_connections_active Active connections.\n"
      "# TYPE ferry_downstream_connections_active gauge\n"
      "ferry_downstream_connections_active{listener=\"web\"} 3\n"
      "ferry_bytes_total{listener=\"web\",direction=\"rx\"} 1.5e3\n"
      "\n"
      "up 1\r\n"
      "ferry_x:y_z 0\n"
      "nan_metric NaN\n"
      "inf_metric +Inf\n"
      "neg_inf -Inf\n"
      "with_ts -2.5 1712345678000\n"
      "esc{a=\"x\\\"y\\\\z\\n\",} 2\n"
      "empty_labels{} 4\n";
  auto m = parsePrometheus(text);
  REQUIRE(m);
  CHECK(m->size() == 10);
  CHECK(m->at("ferry_downstream_connections_active{listener=\"web\"}") == 3);
  CHECK(m->at("ferry_bytes_total{listener=\"web\",direction=\"rx\"}") == 1500);
  CHECK(m->at("up") == 1);
  CHECK(m->at("ferry_x:y_z") == 0);
  CHECK(std::isnan(m->at("nan_metric")));
  CHECK(std::isinf(m->at("inf_metric")));
  CHECK(m->at("neg_inf") < 0);
  CHECK(m->at("with_ts") == -2.5);
  CHECK(m->at("esc{a=\"x\\\"y\\\\z\\n\",}") == 2);
  CHECK(m->at("empty_labels{}") == 4);
  CHECK(parsePrometheus("")->empty());
  CHECK(parsePrometheus("# only comments\n")->empty());
}

TEST_CASE("parsePrometheus: malformed lines are detected", "[harness]") {
  const char* bad[] = {
      "foo\n",                      // no value
      "foo{a=\"b\" 1\n",            // unterminated labels
      "foo bar\n",                  // non-numeric value
      "1foo 2\n",                   // bad metric name
      "foo{a=b} 1\n",               // unquoted label value
      "foo{a=\"b} 1\n",             // unterminated string
      "foo{1a=\"b\"} 1\n",          // bad label name
      "foo{a=\"\\x\"} 1\n",         // bad escape
      "foo 1 2 3\n",                // extra token
      "foo 1 abc\n",                // bad timestamp
      "foo{a=\"b\"}1\n",            // no separator
      "foo 0x10\n",                 // hex is not allowed
      "foo inf\n",                  // only +Inf/-Inf/Inf
      "foo 1\nfoo 2\n",             // duplicate sample
      "ok 1\nbroken line here\n",  // one bad line spoils the lot
  };
  for (const char* b : bad) {
    INFO(b);
    CHECK_FALSE(parsePrometheus(b).has_value());
  }
}

TEST_CASE("randomBytes is deterministic and well spread", "[harness]") {
  CHECK(randomBytes(0, 1).empty());
  CHECK(randomBytes(1000, 1) == randomBytes(1000, 1));
  CHECK(randomBytes(1000, 1) != randomBytes(1000, 2));
  CHECK(randomBytes(13, 9) == randomBytes(1000, 9).substr(0, 13));
  std::string r = randomBytes(65536, 5);
  bool seen[256] = {};
  for (unsigned char c : r) seen[c] = true;
  CHECK(std::all_of(std::begin(seen), std::end(seen), [](bool b) { return b; }));
}
