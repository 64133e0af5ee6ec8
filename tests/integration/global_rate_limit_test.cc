// global_rate_limit over loopback against Debian's redis-server (started by each test on a
// free port, never a system Redis): limits shared by two Ferry processes with two workers
// each, batching, Redis stopped and restarted, a Redis that never answers, NOSCRIPT after
// SCRIPT FLUSH, AUTH from a password file.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_upstream.h"

using namespace ferry::testing;

namespace {

// A loopback port nothing listens on now (bound, then released).
uint16_t freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw HarnessError("bind");
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// redis-server on 127.0.0.1:port, no persistence, in the foreground (killed with the test).
class RedisServer {
 public:
  explicit RedisServer(std::vector<std::string> extra = {}) : port_(freePort()), extra_(std::move(extra)) { start(); }
  void start() {
    std::vector<std::string> argv = {"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no", "--daemonize", "no"};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    proc_ = FerryProcess::startCommand(argv);
    if (!proc_->waitForLog("Ready to accept connections", 10s))
      throw HarnessError("redis-server did not start: " + proc_->log());
  }
  void stop() {
    proc_->signal(SIGKILL);
    proc_->waitExit(5s);
    proc_.reset();
  }
  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // One raw command (RESP bytes), its raw reply.
  std::string command(const std::string& resp) {
    auto c = TcpClient::connect(port_, 2s);
    if (!c || !c->sendAll(resp, 2s)) return "";
    return c->recvSome(2s);
  }

 private:
  uint16_t port_;
  std::vector<std::string> extra_;
  std::unique_ptr<FerryProcess> proc_;
};

std::string filter(const std::string& config) {
  return "      response_flags_header: true\n"
         "      filters:\n"
         "        - name: global_rate_limit\n"
         "          config: " + config + "\n";
}

std::string outcome(const std::string& result) {
  return "ferry_global_rate_limit_requests_total{listener=\"web\",result=\"" + result + "\"}";
}
std::string redisMetric(const std::string& name, const std::string& address, const std::string& more = "") {
  return name + "{redis=\"" + address + "\"" + more + "}";
}

struct Tally {
  std::atomic<int> ok{0}, limited{0}, other{0};
};

// Requests with `headers` from `threads` threads, each alternating between the ports, `n` in all.
void burst(const std::vector<uint16_t>& ports, int n, Tally& t, const std::vector<std::string>& headers,
           int threads = 4) {
  std::vector<std::thread> ts;
  std::atomic<int> next{0};
  for (int k = 0; k < threads; ++k)
    ts.emplace_back([&, k] {
      for (int i = next++; i < n; i = next++) {
        const int s = httpRequest(ports[static_cast<size_t>(i + k) % ports.size()], "GET", "/b", "", headers).status;
        (s == 200 ? t.ok : s == 429 ? t.limited : t.other)++;
      }
    });
  for (auto& th : ts) th.join();
}

// Sends requests under another key until every worker of `f` has a ready connection to Redis
// (clients are made on a worker's first request).
bool warm(FerryProcess& f, uint16_t port, const std::string& address, int workers) {
  return waitUntil(
      [&] {
        httpRequest(port, "GET", "/warm", "", {"x-key: warm-up"});
        return metricValue(f, redisMetric("ferry_redis_workers_up", address)) == workers;
      },
      10s, 1ms);
}

int64_t elapsedMs(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("global_rate_limit: two instances x two workers share one bucket exactly with batch 1",
          "[global_rate_limit]") {
  RedisServer redis;
  HttpUpstream up;
  const std::string cfg = filter("{max_tokens: 20, fill_interval: 1h, key: 'header:x-key', domain: t1, "
                                 "redis: {address: " + redis.address() + ", timeout: 1s}}");
  auto a = FerryProcess::start(FerryConfig{.workers = 2, .http_extra = cfg, .clusters = {{"up", {up.port()}}}}.yaml());
  auto b = FerryProcess::start(FerryConfig{.workers = 2, .http_extra = cfg, .clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t pa = a->port("web"), pb = b->port("web");
  REQUIRE(warm(*a, pa, redis.address(), 2));
  REQUIRE(warm(*b, pb, redis.address(), 2));

  Tally t;
  burst({pa, pb}, 60, t, {"x-key: tenant-1"});
  CHECK(t.ok == 20);
  CHECK(t.limited == 40);
  CHECK(t.other == 0);
  // Both instances served some of them.
  CHECK(metricValue(*a, outcome("allowed")) + metricValue(*a, outcome("limited")) > 0);
  CHECK(metricValue(*b, outcome("allowed")) + metricValue(*b, outcome("limited")) > 0);

  // A refusal: local_rate_limit's answer with flag GRL.
  HttpResponse r = httpRequest(pa, "GET", "/c", "", {"x-key: tenant-1"});
  REQUIRE(r.status == 429);
  CHECK(r.header("x-ferry-flags") == "GRL");
  CHECK(r.body == "rate limited\n");
  CHECK(std::stol(r.header("retry-after")) >= 1);
  CHECK(r.header("ratelimit-limit") == "20");
  CHECK(r.header("ratelimit-remaining") == "0");
  CHECK(metricValue(*a, "ferry_downstream_response_flags_total{listener=\"web\",flag=\"GRL\"}") >= 1);
  // Another key has its own bucket.
  CHECK(httpRequest(pb, "GET", "/d", "", {"x-key: tenant-2"}).status == 200);
  // No key, no limit.
  CHECK(httpRequest(pb, "GET", "/e").status == 200);
  CHECK(metricValue(*b, outcome("no_key")) >= 1);
  CHECK(metricValue(*a, outcome("failure_allowed")) == 0);
  CHECK(metricValue(*b, outcome("failure_allowed")) == 0);
  // The bucket key expires in Redis (PEXPIRE), and /clusters shows the Redis target.
  const std::string ttl = redis.command("*2\r\n$4\r\nPTTL\r\n$20\r\nferry:rl:t1:tenant-1\r\n");
  REQUIRE(ttl.size() > 2);
  CHECK(ttl[0] == ':');
  CHECK(std::stol(ttl.substr(1)) > 0);
  const HttpResponse clusters = httpRequest(a->adminPort(), "GET", "/clusters");
  CHECK(clusters.body.find("\"redis\":[{\"name\":\"" + redis.address() + "\",\"workers_up\":2") != std::string::npos);
}

TEST_CASE("global_rate_limit: batch 10 stays within the bucket and the documented bound, with fewer round trips",
          "[global_rate_limit]") {
  RedisServer redis;
  HttpUpstream up;
  const std::string cfg = filter("{max_tokens: 100, fill_interval: 1h, key: 'header:x-key', domain: t2, batch: 10, "
                                 "redis: {address: " + redis.address() + ", timeout: 1s}}");
  auto a = FerryProcess::start(FerryConfig{.workers = 2, .http_extra = cfg, .clusters = {{"up", {up.port()}}}}.yaml());
  auto b = FerryProcess::start(FerryConfig{.workers = 2, .http_extra = cfg, .clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t pa = a->port("web"), pb = b->port("web");
  REQUIRE(warm(*a, pa, redis.address(), 2));
  REQUIRE(warm(*b, pb, redis.address(), 2));
  const std::string ok_key = redisMetric("ferry_redis_requests_total", redis.address(), ",result=\"ok\"");
  const double trips_before = metricValue(*a, ok_key) + metricValue(*b, ok_key);

  // At most 9 tokens wait unspent on each of the 4 workers, so the first 100 - 36 pass.
  Tally first;
  burst({pa, pb}, 64, first, {"x-key: tenant"});
  CHECK(first.ok == 64);
  const double trips = metricValue(*a, ok_key) + metricValue(*b, ok_key) - trips_before;
  INFO("round trips for 64 allowed requests: " << trips);
  CHECK(trips <= 16);  // about 64 / 10: requests arriving during a fetch wait for it

  Tally rest;
  burst({pa, pb}, 200, rest, {"x-key: tenant"});
  const int allowed = first.ok + rest.ok;
  INFO("allowed " << allowed);
  // Within one fill interval: never more than the bucket (over-limit is N x workers x instances
  // only across fill intervals), and at most 9 x 4 tokens left unspent on the workers.
  CHECK(allowed <= 100 + 10 * 2 * 2);
  CHECK(allowed <= 100);
  CHECK(allowed >= 100 - 9 * 4);
  CHECK(rest.other == 0);
}

TEST_CASE("global_rate_limit: Redis stopped -> failure_mode allow at once (logged once); restarted -> limited again",
          "[global_rate_limit]") {
  RedisServer redis;
  HttpUpstream up;
  const std::string cfg = filter("{max_tokens: 3, fill_interval: 1h, key: 'header:x-key', domain: t3, "
                                 "redis: {address: " + redis.address() + ", timeout: 100ms}}");
  auto f = FerryProcess::start(FerryConfig{.workers = 2, .http_extra = cfg, .clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t port = f->port("web");
  REQUIRE(warm(*f, port, redis.address(), 2));
  Tally t;
  burst({port}, 6, t, {"x-key: k"}, 1);
  CHECK(t.ok == 3);
  CHECK(t.limited == 3);

  redis.stop();
  for (int i = 0; i < 10; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(httpRequest(port, "GET", "/down", "", {"x-key: k"}).status == 200);
    CHECK(elapsedMs(t0) < 100 + 400);  // the timeout, plus slack for a busy machine
  }
  CHECK(metricValue(*f, outcome("failure_allowed")) == 10);
  REQUIRE(waitMetric(f->adminPort(), redisMetric("ferry_redis_workers_up", redis.address()), 0, 5s));
  CHECK(f->countInLog("redis " + redis.address() + ": down") == 1);

  redis.start();  // same port, empty: the bucket is full again
  REQUIRE(waitMetric(f->adminPort(), redisMetric("ferry_redis_workers_up", redis.address()), 2, 10s));
  Tally again;
  burst({port}, 6, again, {"x-key: k"}, 1);
  CHECK(again.ok == 3);
  CHECK(again.limited == 3);
  CHECK(f->countInLog("redis " + redis.address() + ": up") == 2);
  CHECK(f->countInLog("redis " + redis.address() + ": down") == 1);
}

TEST_CASE("global_rate_limit: Redis stopped -> failure_mode deny answers 429 RLSE within the timeout",
          "[global_rate_limit]") {
  RedisServer redis;
  HttpUpstream up;
  const std::string cfg = filter("{max_tokens: 100, fill_interval: 1h, domain: t4, "
                                 "redis: {address: " + redis.address() + ", timeout: 100ms, failure_mode: deny}}");
  auto f = FerryProcess::start(FerryConfig{.workers = 2, .http_extra = cfg, .clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t port = f->port("web");
  REQUIRE(warm(*f, port, redis.address(), 2));
  redis.stop();
  for (int i = 0; i < 6; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    HttpResponse r = httpRequest(port, "GET", "/down");
    CHECK(r.status == 429);
    CHECK(r.header("x-ferry-flags") == "RLSE");
    CHECK(elapsedMs(t0) < 100 + 400);
  }
  CHECK(metricValue(*f, outcome("failure_denied")) == 6);
  redis.start();
  REQUIRE(waitMetric(f->adminPort(), redisMetric("ferry_redis_workers_up", redis.address()), 2, 10s));
  CHECK(httpRequest(port, "GET", "/up").status == 200);
}

TEST_CASE("global_rate_limit: a Redis that accepts but never answers delays no request past the timeout",
          "[global_rate_limit]") {
  // A listening socket nobody accepts from: the kernel completes the handshakes.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 64) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string address = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));

  HttpUpstream up;
  const std::string cfg = filter("{max_tokens: 100, fill_interval: 1h, domain: t5, redis: {address: " + address +
                                 ", timeout: 50ms, connect_timeout: 300ms, failure_mode: deny}}");
  auto f = FerryProcess::start(FerryConfig{.workers = 2, .http_extra = cfg, .clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t port = f->port("web");
  for (int i = 0; i < 12; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    HttpResponse r = httpRequest(port, "GET", "/x");
    CHECK(r.status == 429);
    CHECK(r.header("x-ferry-flags") == "RLSE");
    CHECK(elapsedMs(t0) < 50 + 400);
  }
  CHECK(metricValue(*f, outcome("failure_denied")) == 12);
  const double timeouts = metricValue(*f, redisMetric("ferry_redis_requests_total", address, ",result=\"timeout\""));
  const double unavailable =
      metricValue(*f, redisMetric("ferry_redis_requests_total", address, ",result=\"unavailable\""));
  CHECK(timeouts >= 1);
  const double closed = metricValue(*f, redisMetric("ferry_redis_requests_total", address, ",result=\"closed\""));
  CHECK(timeouts + unavailable + closed == 12);
  CHECK(metricValue(*f, redisMetric("ferry_redis_workers_up", address)) == 0);
  CHECK(up.requestCount() == 0);
  ::close(fd);
}

TEST_CASE("global_rate_limit: NOSCRIPT after SCRIPT FLUSH: the script is loaded again and the request retried",
          "[global_rate_limit]") {
  RedisServer redis;
  HttpUpstream up;
  const std::string cfg = filter("{max_tokens: 5, fill_interval: 1h, key: 'header:x-key', domain: t6, "
                                 "redis: {address: " + redis.address() + ", timeout: 1s, connections: 1}}");
  auto f = FerryProcess::start(FerryConfig{.workers = 1, .http_extra = cfg, .clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t port = f->port("web");
  REQUIRE(warm(*f, port, redis.address(), 1));
  CHECK(httpRequest(port, "GET", "/1", "", {"x-key: k"}).status == 200);
  CHECK(httpRequest(port, "GET", "/2", "", {"x-key: k"}).status == 200);
  REQUIRE(redis.command("*2\r\n$6\r\nSCRIPT\r\n$5\r\nFLUSH\r\n") == "+OK\r\n");
  Tally t;
  burst({port}, 5, t, {"x-key: k"}, 1);
  CHECK(t.ok == 3);  // the same bucket: 5 in all
  CHECK(t.limited == 2);
  CHECK(metricValue(*f, redisMetric("ferry_redis_noscript_total", redis.address())) == 1);
  CHECK(metricValue(*f, redisMetric("ferry_redis_requests_total", redis.address(), ",result=\"error\"")) == 0);
  CHECK(metricValue(*f, outcome("failure_allowed")) == 0);
}

TEST_CASE("global_rate_limit: AUTH with the password from password_file, never logged", "[global_rate_limit]") {
  RedisServer redis({"--requirepass", "s3cret-pw"});
  HttpUpstream up;
  const std::string cfg = filter("{max_tokens: 2, fill_interval: 1h, domain: t7, redis: {address: " +
                                 redis.address() + ", timeout: 1s, password_file: '{dir}/redis.pw'}}");
  auto f = FerryProcess::start(FerryConfig{.workers = 1, .http_extra = cfg, .clusters = {{"up", {up.port()}}}}.yaml(),
                               {"--log-level", "debug"}, {{"redis.pw", "s3cret-pw\n"}});
  const uint16_t port = f->port("web");
  Tally t;
  burst({port}, 4, t, {}, 1);
  CHECK(t.ok == 2);
  CHECK(t.limited == 2);
  CHECK(metricValue(*f, outcome("failure_allowed")) == 0);
  CHECK(f->log().find("s3cret-pw") == std::string::npos);
  CHECK(httpRequest(f->adminPort(), "GET", "/config").body.find("s3cret-pw") == std::string::npos);
}
