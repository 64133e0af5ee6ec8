// Config hot reload through the built binary (SIGHUP, POST /reload, PUT /config, the file watch,
// and the SIGTERM drain next to them), each test under load: HTTP clients on keep-alive
// connections send GETs back to back on their own threads for the whole test and check every
// answer. A request that fails is an error, with one exception (RFC 9112 section 9.3.1): a
// request sent on a reused keep-alive connection that sees EOF or a reset before any byte of a
// response may be retried once on a new connection (the server closed the idle connection as
// the request went out); that counts as a retry.
#include <openssl/evp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_upstream.h"
#include "tests/integration/json.h"

namespace ferry::testing {
namespace {

using Clock = std::chrono::steady_clock;

// ---- configs

// The top of every config here: runtime (workers, more keys indented 2), admin (more keys
// indented 2), then "listeners:".
std::string head(const std::string& runtime_extra = "", const std::string& admin_extra = "", int workers = 2,
                 const std::string& admin_address = "127.0.0.1:0") {
  return "runtime:\n  workers: " + std::to_string(workers) + "\n" + runtime_extra + "admin:\n  address: " +
         admin_address + "\n" + admin_extra + "listeners:\n";
}

// Route entries (for httpListener's `routes`).
std::string direct(const std::string& body, const std::string& match = "{prefix: /}") {
  return "            - match: " + match + "\n              direct_response: {status: 200, body: \"" + body + "\"}\n";
}
std::string toCluster(const std::string& cluster, const std::string& match = "{prefix: /}") {
  return "            - match: " + match + "\n              route: {cluster: " + cluster + "}\n";
}

// An HTTP listener with one virtual host ("*") and `routes`; `extra`: more listener keys
// (indented 4), `http_extra`: more keys of http: (indented 6).
std::string httpListener(const std::string& name, const std::string& routes, const std::string& extra = "",
                         const std::string& http_extra = "", const std::string& address = "127.0.0.1:0") {
  return "  - name: " + name + "\n    address: " + address + "\n" + extra + "    http:\n" + http_extra +
         "      virtual_hosts:\n        - name: all\n          domains: [\"*\"]\n          routes:\n" + routes;
}

std::string tcpListener(const std::string& name, const std::string& cluster) {
  return "  - name: " + name + "\n    address: 127.0.0.1:0\n    tcp:\n      cluster: " + cluster + "\n";
}

std::string clusters(const std::vector<Cluster>& cs) {
  std::string out = "clusters:\n";
  for (const auto& c : cs) out += c.yaml();
  return out;
}

// 1-based line and column of the first occurrence of `needle` in `text` (as FILE:LINE:COL
// errors count them).
std::pair<int, int> lineColOf(const std::string& text, const std::string& needle) {
  size_t pos = text.find(needle);
  REQUIRE(pos != std::string::npos);
  int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
  size_t bol = text.rfind('\n', pos);
  int col = static_cast<int>(bol == std::string::npos ? pos + 1 : pos - bol);
  return {line, col};
}

std::string sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  REQUIRE(EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr) == 1);
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += d[md[i] >> 4];
    out += d[md[i] & 15];
  }
  return out;
}

// ---- the admin API

Json getJson(uint16_t admin, const std::string& path) {
  HttpResponse r = httpRequest(admin, "GET", path);
  INFO("GET " << path << ": " << r.status << " " << r.error << "\n" << r.body);
  REQUIRE(r.status == 200);
  auto j = parseJson(r.body);
  REQUIRE(j);
  return *j;
}

double configVersion(uint16_t admin) { return getJson(admin, "/config")["version"].num(); }

std::vector<std::string> strings(const Json& array) {
  std::vector<std::string> out;
  for (const auto& e : array.arr()) out.push_back(e.str());
  return out;
}

using Names = std::vector<std::string>;

// POST /reload, which must succeed: its summary.
Json reloadOk(uint16_t admin, const std::vector<std::string>& headers = {}) {
  HttpResponse r = httpRequest(admin, "POST", "/reload", "", headers, 10s);
  INFO("POST /reload: " << r.status << " " << r.error << "\n" << r.body);
  REQUIRE(r.status == 200);
  CHECK(r.header("content-type").rfind("application/json", 0) == 0);
  auto j = parseJson(r.body);
  REQUIRE(j);
  REQUIRE((*j)["result"].str() == "success");
  return *j;
}

// POST /reload (or PUT /config), which must be refused with 400: its errors.
std::vector<std::string> refusedErrors(const HttpResponse& r) {
  INFO("answer: " << r.status << " " << r.error << "\n" << r.body);
  REQUIRE(r.status == 400);
  auto j = parseJson(r.body);
  REQUIRE(j);
  CHECK((*j)["result"].str() == "failure");
  auto errors = strings((*j)["errors"]);
  REQUIRE(!errors.empty());
  return errors;
}

std::vector<std::string> reloadRefused(uint16_t admin) {
  return refusedErrors(httpRequest(admin, "POST", "/reload", "", {}, 10s));
}

const std::string kReloadsOk = "ferry_config_reloads_total{result=\"success\"}";
const std::string kReloadsFailed = "ferry_config_reloads_total{result=\"failure\"}";

// The endpoint of cluster `cluster` in a GET /clusters answer with that address (a null Json
// if there is none).
const Json& endpointOf(const Json& clusters_json, const std::string& cluster, const std::string& address) {
  static const Json none;
  for (const auto& c : clusters_json["clusters"].arr()) {
    if (c["name"].str() != cluster) continue;
    for (const auto& e : c["endpoints"].arr())
      if (e["address"].str() == address) return e;
  }
  return none;
}

// ---- clients

// One GET on a kept-alive connection (no reconnect): the answer.
HttpResponse keepAliveGet(TcpClient& c, const std::string& path = "/", ms timeout = 5s) {
  if (!c.sendAll("GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n", timeout)) {
    HttpResponse r;
    r.error = "send failed";
    return r;
  }
  return readHttpResponse(c, false, timeout);
}

// A request written and its answer read, saying whether any byte of an answer came.
struct Exchange {
  HttpResponse r;
  size_t bytes = 0;     // of the answer received
  bool closed = false;  // the send failed, or the peer closed/reset before a complete answer
};

Exchange exchange(TcpClient& c, const std::string& request, ms timeout) {
  Exchange x;
  const auto deadline = Clock::now() + timeout;
  if (!c.sendAll(request, timeout)) {
    x.closed = true;
    x.r.error = "send failed";
    return x;
  }
  std::string raw;
  for (;;) {
    HttpResponse r = parseHttpResponse(raw, false);
    if (r.status != 0) {
      x.r = std::move(r);
      break;
    }
    const auto left = std::chrono::duration_cast<ms>(deadline - Clock::now());
    if (left <= 0ms) {
      x.r.error = "no complete answer within " + std::to_string(timeout.count()) + " ms (" +
                  std::to_string(raw.size()) + " bytes)";
      break;
    }
    std::string more = c.recvSome(std::min<ms>(left, 100ms));
    if (more.empty() && c.closedByPeer()) {
      x.closed = true;
      x.r = parseHttpResponse(raw, true);
      if (x.r.status == 0)
        x.r.error = std::string(c.sawReset() ? "reset" : "EOF") + " after " + std::to_string(raw.size()) +
                    " bytes of an answer";
      break;
    }
    raw += more;
  }
  x.bytes = raw.size();
  return x;
}

// HTTP load: `clients` threads, each on its own keep-alive connection, sending GETs back to
// back and checking every answer (status 200; the body one of `bodies`, which one connection
// sees in their order: a connection never goes back to an older config). An answer with
// `connection: close` ends its connection (the next request opens another), or the client
// itself with stop_on_close. Bounded by max_duration.
class HttpLoad {
 public:
  struct Options {
    uint16_t port = 0;
    std::string path = "/";
    int clients = 2;
    std::vector<std::string> bodies;  // empty: any body
    bool ordered = true;               // bodies: in this order on each connection
    bool stop_on_close = false;
    ms max_duration = 45s;
  };

  // Returns once every client has had an answer (or at most 10 s): the load is up.
  explicit HttpLoad(Options o) : o_(std::move(o)) {
    for (int i = 0; i < o_.clients; ++i) clients_.push_back(std::make_unique<PerClient>());
    for (int i = 0; i < o_.clients; ++i) threads_.emplace_back([this, i] { run(i); });
    waitMore(1);
  }
  ~HttpLoad() { stop(); }
  HttpLoad(const HttpLoad&) = delete;
  HttpLoad& operator=(const HttpLoad&) = delete;

  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  // Until each client has had `n` more answers than now (or has ended by itself): every
  // client was at work over the step before.
  bool waitMore(int64_t n, ms timeout = 10s) {
    std::vector<int64_t> want;
    for (const auto& c : clients_) want.push_back(c->done.load() + n);
    auto done = [&] {
      for (size_t i = 0; i < clients_.size(); ++i)
        if (clients_[i]->done.load() < want[i] && !clients_[i]->finished.load()) return false;
      return true;
    };
    return waitUntil(done, timeout, 2ms);
  }
  // Until every client has ended by itself (stop_on_close).
  bool waitFinished(ms timeout) {
    return waitUntil([&] { return finished_.load() == o_.clients; }, timeout);
  }

  int64_t requests() const { return requests_.load(); }
  int64_t errors() const { return errors_.load(); }
  int64_t retries() const { return retries_.load(); }
  int64_t connects() const { return connects_.load(); }
  int64_t closes() const { return closes_.load(); }
  int64_t count(const std::string& body) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = bodies_.find(body);
    return it == bodies_.end() ? 0 : it->second;
  }
  std::string report() const {
    std::lock_guard<std::mutex> lk(mu_);
    std::string out = "load on port " + std::to_string(o_.port) + ": requests=" + std::to_string(requests_) +
                      " errors=" + std::to_string(errors_) + " retries=" + std::to_string(retries_) +
                      " connects=" + std::to_string(connects_) + " connection-close=" + std::to_string(closes_) +
                      " bodies:";
    for (const auto& [b, n] : bodies_) out += " " + b + "=" + std::to_string(n);
    for (const auto& e : error_samples_) out += "\n  error: " + e;
    return out;
  }

 private:
  void error(int client, const std::string& what) {
    ++errors_;
    std::lock_guard<std::mutex> lk(mu_);
    if (error_samples_.size() < 10) error_samples_.push_back("client " + std::to_string(client) + ": " + what);
  }

  void run(int id) {
    const std::string request = "GET " + o_.path + " HTTP/1.1\r\nHost: load\r\nx-load-client: " + std::to_string(id) +
                                "\r\n\r\n";
    const auto deadline = Clock::now() + o_.max_duration;
    std::unique_ptr<TcpClient> c;
    int answered = 0;  // answers on this connection
    int rank = -1;     // index in bodies of the newest body this connection got
    int failures_in_a_row = 0;
    auto fresh = [&] {
      c = TcpClient::connect(o_.port, 2s);
      answered = 0;
      rank = -1;
      if (!c) return false;
      ++connects_;
      return true;
    };
    while (!stop_ && Clock::now() < deadline && failures_in_a_row < 20) {
      if (!c && !fresh()) {
        error(id, "connect to port " + std::to_string(o_.port) + " failed");
        ++failures_in_a_row;
        continue;
      }
      Exchange x = exchange(*c, request, 5s);
      if (x.r.status == 0 && x.closed && x.bytes == 0 && answered > 0) {
        // The idle keep-alive connection was closed as the request went out: once more on a
        // new connection.
        ++retries_;
        if (!fresh()) {
          error(id, "connect to port " + std::to_string(o_.port) + " failed (retry)");
          ++failures_in_a_row;
          continue;
        }
        x = exchange(*c, request, 5s);
      }
      if (x.r.status == 0) {
        error(id, "request " + std::to_string(answered + 1) + " on its connection: " + x.r.error);
        c.reset();
        ++failures_in_a_row;
        continue;
      }
      ++answered;
      std::string why = check(x.r, rank);
      if (!why.empty()) {
        error(id, why);
        ++failures_in_a_row;
      } else {
        failures_in_a_row = 0;
        {
          std::lock_guard<std::mutex> lk(mu_);
          ++bodies_[x.r.body];
        }
        ++requests_;
        ++clients_[id]->done;
      }
      if (x.r.header("connection") == "close") {
        ++closes_;
        c.reset();
        if (o_.stop_on_close) break;
      }
    }
    clients_[id]->finished = true;
    ++finished_;
  }

  // "" when the answer is right; else what is wrong with it.
  std::string check(const HttpResponse& r, int& rank) const {
    if (r.status != 200) return "status " + std::to_string(r.status) + " body \"" + r.body + "\"";
    if (o_.bodies.empty()) return "";
    auto it = std::find(o_.bodies.begin(), o_.bodies.end(), r.body);
    if (it == o_.bodies.end()) return "unexpected body \"" + r.body + "\"";
    if (!o_.ordered) return "";
    int i = static_cast<int>(it - o_.bodies.begin());
    if (i < rank) return "body \"" + r.body + "\" after \"" + o_.bodies[rank] + "\" on the same connection";
    rank = i;
    return "";
  }

  struct PerClient {
    std::atomic<int64_t> done{0};  // good answers
    std::atomic<bool> finished{false};
  };

  Options o_;
  std::vector<std::unique_ptr<PerClient>> clients_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> requests_{0}, errors_{0}, retries_{0}, connects_{0}, closes_{0};
  std::atomic<int> finished_{0};
  mutable std::mutex mu_;
  std::map<std::string, int64_t> bodies_;
  std::vector<std::string> error_samples_;
};

// The load's verdict: no errors, and it did real work.
#define CHECK_LOAD(load, min_requests)        \
  do {                                        \
    (load).stop();                            \
    INFO((load).report());                    \
    CHECK((load).errors() == 0);              \
    CHECK((load).requests() >= (min_requests)); \
  } while (0)

// Holds the requests of a slow upstream until released (or `max` passes).
class Gate {
 public:
  void wait(ms max) {
    std::unique_lock<std::mutex> lk(mu_);
    ++waiting_;
    cv_.wait_for(lk, max, [&] { return open_; });
  }
  void release() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  int waiting() const {
    std::lock_guard<std::mutex> lk(mu_);
    return waiting_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
};

// Releases a gate when it goes (declared after the upstream that waits on it, so that the
// upstream's threads can end before it is destroyed).
struct ReleaseOnExit {
  Gate& gate;
  ~ReleaseOnExit() { gate.release(); }
};

// An upstream answering "/slow" with "slow" once `gate` opens (at most 10 s), anything else
// with "fast".
std::unique_ptr<HttpUpstream> slowUpstream(Gate& gate) {
  return std::make_unique<HttpUpstream>([&gate](const UpstreamRequest& r) {
    if (r.target == "/slow") {
      gate.wait(10s);
      return HttpUpstream::ok("slow");
    }
    return HttpUpstream::ok("fast");
  });
}

// A health-checked upstream naming itself ("A", "B"...) in every answer; its health path
// answers `health_status`.
struct Backend {
  explicit Backend(std::string name_, int health = 200)
      : name(std::move(name_)),
        health_status(health),
        server([this](const UpstreamRequest& r) {
          if (r.target == "/healthz") return UpstreamAction{HttpUpstream::response(health_status.load(), "hc")};
          served.fetch_add(1);
          return HttpUpstream::ok(name);
        }) {}
  std::string address() const { return "127.0.0.1:" + std::to_string(server.port()); }
  std::string name;
  std::atomic<int> health_status;
  std::atomic<int> served{0};
  HttpUpstream server;
};

// The connections (HttpUpstream's 0-based indexes) that carried the requests [from, to) the
// upstream recorded, health checks left out.
std::set<int> dataConnections(const HttpUpstream& u, size_t from, size_t to) {
  std::set<int> out;
  auto rs = u.requests();
  for (size_t i = from; i < std::min(to, rs.size()); ++i)
    if (rs[i].target != "/healthz") out.insert(rs[i].connection_index);
  return out;
}

// The data requests the upstream recorded from `from` on: which load client sent each, on
// which upstream connection (for failure messages).
std::string describeRequests(const HttpUpstream& u, size_t from) {
  std::string out;
  auto rs = u.requests();
  for (size_t i = from; i < rs.size(); ++i)
    if (rs[i].target != "/healthz")
      out += " [#" + std::to_string(i) + " client " + rs[i].header("x-load-client") + " connection " +
             std::to_string(rs[i].connection_index) + "]";
  return out.empty() ? " none" : out;
}

// SIGTERM, and ferry exits 0: what the reloads retired is torn down too (and, under
// sanitizers, the leak check runs).
void exitsCleanly(FerryProcess& f) {
  f.signal(SIGTERM);
  auto code = f.waitExit(20s);
  const std::string log = f.log();
  INFO("ferry's log, the end:\n" << log.substr(log.size() > 6000 ? log.size() - 6000 : 0));
  REQUIRE(code.has_value());
  CHECK(*code == 0);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("reload: route and HTTP filter changes apply from the next request, keep-alive connections included",
          "[reload]") {
  HttpUpstream up([](const UpstreamRequest&) { return HttpUpstream::ok("v3"); });
  // v1 and v2 answer directly; v3 routes to a cluster the same reload adds; v4 adds an HTTP
  // filter in front of that route (a fault filter whose "abort" is a 200 with its own body).
  const std::string fault = "fault filter abort\n";
  auto config = [&](int v) {
    const std::string filters =
        v < 4 ? "" : "      filters:\n        - name: fault\n          config: {abort: {status: 200}}\n";
    std::string y =
        head() + httpListener("web", v < 3 ? direct("v" + std::to_string(v)) : toCluster("up"), "", filters);
    if (v >= 3) y += clusters({{"up", {up.port()}}});
    return y;
  };
  auto f = FerryProcess::start(config(1));
  const uint16_t port = f->port("web");
  const uint16_t admin = f->adminPort();
  HttpLoad load({.port = port, .bodies = {"v1", "v2", "v3", fault}});
  {
    Json c = getJson(admin, "/config");
    CHECK(c["version"].num() == 1);
    CHECK(c["hash"].str() == sha256Hex(readFile(f->configPath())));
    CHECK(c["last_reload"]["result"].isNull());
  }

  auto k = TcpClient::connect(port);
  REQUIRE(k);
  HttpResponse r = keepAliveGet(*k);
  REQUIRE(r.status == 200);
  REQUIRE(r.body == "v1");
  REQUIRE(load.waitMore(20));

  {  // SIGHUP
    f->writeConfig(config(2));
    f->signal(SIGHUP);
    REQUIRE(f->waitForLog("config reloaded (SIGHUP): version 2", 10s));
    r = keepAliveGet(*k);  // the same connection
    INFO(r.error);
    CHECK(r.status == 200);
    CHECK(r.body == "v2");
    CHECK(r.header("connection") != "close");
    Json c = getJson(admin, "/config");
    CHECK(c["version"].num() == 2);
    CHECK(c["last_reload"]["result"].str() == "success");
    CHECK(c["last_reload"]["trigger"].str() == "SIGHUP");
    REQUIRE(load.waitMore(20));
  }

  {  // POST /reload
    f->writeConfig(config(3));
    Json s = reloadOk(admin);
    const std::string hash = sha256Hex(readFile(f->configPath()));
    CHECK(s["version"].num() == 3);
    CHECK(s["hash"].str() == hash);
    CHECK(s["trigger"].str() == "POST /reload");
    CHECK(strings(s["listeners"]["added"]).empty());
    CHECK(strings(s["listeners"]["removed"]).empty());
    CHECK(strings(s["listeners"]["drained"]).empty());
    CHECK(strings(s["listeners"]["updated"]) == Names{"web"});
    CHECK(strings(s["clusters"]["added"]) == Names{"up"});
    CHECK(strings(s["clusters"]["removed"]).empty());
    CHECK(strings(s["clusters"]["updated"]).empty());
    r = keepAliveGet(*k);  // still the same connection, now routed upstream
    INFO(r.error);
    CHECK(r.status == 200);
    CHECK(r.body == "v3");
    REQUIRE(load.waitMore(20));

    Json c = getJson(admin, "/config");
    CHECK(c["version"].num() == 3);
    CHECK(c["hash"].str() == hash);
    CHECK(c["last_reload"]["result"].str() == "success");
    CHECK(c["last_reload"]["trigger"].str() == "POST /reload");
    CHECK(c["last_reload"]["at"].isString());
    CHECK(c["last_reload"]["errors"].isArray());
    CHECK(c["last_reload"]["errors"].arr().empty());
  }

  {  // an HTTP filter added (POST /reload)
    f->writeConfig(config(4));
    Json s = reloadOk(admin);
    CHECK(s["version"].num() == 4);
    CHECK(strings(s["listeners"]["updated"]) == Names{"web"});
    CHECK(strings(s["listeners"]["drained"]).empty());
    r = keepAliveGet(*k);  // still the same connection, now through the filter
    INFO(r.error);
    CHECK(r.status == 200);
    CHECK(r.body == fault);
    REQUIRE(load.waitMore(20));
  }
  CHECK(metricValue(admin, kReloadsOk) == 3);
  CHECK(metricValue(admin, kReloadsFailed) == 0);
  CHECK_LOAD(load, 80);
  // Route and filter changes drain nothing: the load kept its two connections throughout.
  CHECK(load.connects() == 2);
  CHECK(load.count("v3") > 0);
  CHECK(load.count(fault) > 0);
  exitsCleanly(*f);
}

TEST_CASE("reload: a listener added and then removed under load", "[reload]") {
  Gate gate;
  auto slow = slowUpstream(gate);
  ReleaseOnExit release{gate};
  // "extra" comes with its own cluster "slow"; both leave together.
  auto config = [&](bool extra) {
    std::string y = head("  drain_timeout: 10s\n") + httpListener("web", direct("web"));
    if (extra)
      y += httpListener("extra", toCluster("slow", "{path: /slow}") + direct("extra")) +
           clusters({{"slow", {slow->port()}}});
    return y;
  };
  auto f = FerryProcess::start(config(false));
  const uint16_t admin = f->adminPort();
  HttpLoad load({.port = f->port("web"), .bodies = {"web"}});
  REQUIRE(load.waitMore(20));

  f->writeConfig(config(true));
  Json s = reloadOk(admin);
  CHECK(strings(s["listeners"]["added"]) == Names{"extra"});
  CHECK(strings(s["listeners"]["removed"]).empty());
  CHECK(strings(s["listeners"]["drained"]).empty());
  CHECK(strings(s["listeners"]["updated"]).empty());
  CHECK(strings(s["clusters"]["added"]) == Names{"slow"});
  const uint16_t extra = f->port("extra", 5s);
  HttpResponse r = httpRequest(extra, "GET", "/");
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "extra");
  // Open across its removal: an idle keep-alive connection, and one with a request in flight
  // to the cluster that leaves too.
  auto idle = TcpClient::connect(extra);
  REQUIRE(idle);
  REQUIRE(keepAliveGet(*idle).body == "extra");
  auto busy = TcpClient::connect(extra);
  REQUIRE(busy);
  REQUIRE(busy->sendAll("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  REQUIRE(waitUntil([&] { return gate.waiting() == 1; }, 5s));
  REQUIRE(load.waitMore(20));

  f->writeConfig(config(false));
  s = reloadOk(admin);
  CHECK(strings(s["listeners"]["added"]).empty());
  CHECK(strings(s["listeners"]["removed"]) == Names{"extra"});
  CHECK(strings(s["listeners"]["drained"]).empty());
  CHECK(strings(s["listeners"]["updated"]).empty());
  CHECK(strings(s["clusters"]["removed"]) == Names{"slow"});
  // The removed listener refuses new connections; its idle connection is closed at once (the
  // drain notice; drain_timeout is far off).
  CHECK(waitUntil([&] { return TcpClient::connect(extra, 1s) == nullptr; }, 5s));
  CHECK(idle->peerClosedOrReset(3s));
  // The request in flight finishes, through the removed cluster, and closes its connection.
  gate.release();
  r = readHttpResponse(*busy, false, 10s);
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "slow");
  CHECK(r.header("connection") == "close");
  CHECK(busy->waitClosed(5s));
  CHECK(waitMetric(admin, "ferry_downstream_connections_active{listener=\"extra\"}", 0));
  REQUIRE(load.waitMore(20));
  CHECK(configVersion(admin) == 3);
  CHECK_LOAD(load, 60);
  CHECK(load.connects() == 2);
  exitsCleanly(*f);
}

TEST_CASE("reload: a cluster's endpoint list changes, the hosts it keeps keep their health state", "[reload]") {
  Backend a("A"), b("B", 503), c("C");
  const std::string hc =
      "    health_check: {path: /healthz, interval: 100ms, timeout: 1s, healthy_threshold: 2, "
      "unhealthy_threshold: 2}\n";
  auto config = [&](std::vector<Endpoint> eps) {
    return FerryConfig{.workers = 2, .clusters = {{"api", std::move(eps), hc}}}.yaml();
  };
  auto f = FerryProcess::start(config({a.server.port(), b.server.port()}));
  const uint16_t admin = f->adminPort();
  HttpLoad load({.port = f->port("web"), .bodies = {"A", "B", "C"}, .ordered = false});

  // B fails its checks and leaves the table.
  auto healthOf = [&](const Backend& e) {
    return endpointOf(getJson(admin, "/clusters"), "api", e.address())["health"].str();
  };
  REQUIRE(waitUntil([&] { return healthOf(b) == "unhealthy"; }, 5s));
  REQUIRE(load.waitMore(30));  // the workers have the table without B by now
  Json before = getJson(admin, "/clusters");
  const double b_failures = endpointOf(before, "api", b.address())["health_check_failures"].num();
  CHECK(endpointOf(before, "api", b.address())["health_transitions"].num() == 1);
  CHECK(endpointOf(before, "api", a.address())["health"].str() == "healthy");
  const int b_served = b.served.load();
  const size_t b_mark = b.server.requestCount();
  // The upstream connections A's requests came on so far (its pools on the workers).
  const size_t a_mark = a.server.requestCount();
  const std::set<int> a_before = dataConnections(a.server, 0, a_mark);
  REQUIRE(!a_before.empty());

  f->writeConfig(config({a.server.port(), b.server.port(), c.server.port()}));
  Json s = reloadOk(admin);
  const int b_served_at_reload = b.served.load();
  CHECK(strings(s["clusters"]["updated"]) == Names{"api"});
  CHECK(strings(s["clusters"]["added"]).empty());
  CHECK(strings(s["clusters"]["removed"]).empty());
  CHECK(strings(s["listeners"]["drained"]).empty());

  // At once (the admin API runs on the thread that reloads): A healthy, B still unhealthy with
  // its counts, C there.
  HttpResponse now = httpRequest(admin, "GET", "/clusters");
  INFO(now.body);
  REQUIRE(now.status == 200);
  const Json after = parseJson(now.body).value_or(Json{});
  const Json& ea = endpointOf(after, "api", a.address());
  const Json& eb = endpointOf(after, "api", b.address());
  const Json& ec = endpointOf(after, "api", c.address());
  CHECK(ea["health"].str() == "healthy");
  CHECK(ea["health_transitions"].num() == 0);
  CHECK(eb["health"].str() == "unhealthy");
  CHECK(eb["active_health"].str() == "unhealthy");
  CHECK(eb["health_transitions"].num() == 1);
  CHECK(eb["health_check_failures"].num() >= b_failures);
  CHECK(ec.isObject());
  CHECK(after["clusters"].arr().size() == 1);

  // C takes traffic; B never did again.
  CHECK(waitUntil([&] { return c.served.load() > 0; }, 5s));
  REQUIRE(load.waitMore(50));
  CHECK(waitMetric(admin, "ferry_cluster_endpoints_healthy{cluster=\"api\"}", 2));
  CHECK(healthOf(b) == "unhealthy");
  {
    INFO("B served " << b_served << " before the reload, " << b_served_at_reload
                     << " right after it; its requests since:" << describeRequests(b.server, b_mark));
    CHECK(b.served.load() == b_served);
  }
  // A kept its pools: its requests after the reload go on over the upstream connections it
  // had before (replaced pools would have left those at most the requests in flight at the
  // reload, one per client). More may join when more requests overlap than before.
  {
    int on_old = 0, total = 0;
    const auto rs = a.server.requests();
    for (size_t i = a_mark; i < rs.size(); ++i) {
      if (rs[i].target == "/healthz") continue;
      ++total;
      if (a_before.count(rs[i].connection_index)) ++on_old;
    }
    INFO("A's requests after the reload: " << total << ", " << on_old << " of them on the " << a_before.size()
                                          << " connections it had before");
    CHECK(on_old >= 10);
  }
  CHECK_LOAD(load, 100);
  CHECK(load.count("C") > 0);
  exitsCleanly(*f);
}

TEST_CASE("reload: a cluster whose health_check settings changed keeps its hosts' health", "[reload]") {
  // CONTRACT.md: a changed cluster is updated in place, hosts keyed by address keep their
  // health. Here only the health check's interval changes, and one host is down for good.
  // (Fails as long as the cluster update sets every host healthy again when the health_check
  // block changed: ClusterManager's update(), core/upstream/cluster_manager.cc.)
  Backend a("A");
  const RefusingPort dead;
  const std::string dead_address = "127.0.0.1:" + std::to_string(dead.port());
  auto config = [&](const std::string& interval) {
    return FerryConfig{.workers = 2,
                       .clusters = {{"api", {a.server.port(), dead.port()},
                                     "    health_check: {path: /healthz, interval: " + interval +
                                         ", timeout: 1s, healthy_threshold: 2, unhealthy_threshold: 2}\n"}}}
        .yaml();
  };
  auto f = FerryProcess::start(config("100ms"));
  const uint16_t admin = f->adminPort();
  const uint16_t port = f->port("web");
  auto healthOf = [&](const std::string& address) {
    return endpointOf(getJson(admin, "/clusters"), "api", address)["health"].str();
  };
  REQUIRE(waitUntil([&] { return healthOf(dead_address) == "unhealthy"; }, 5s));
  // The load starts once the dead host is out of the table.
  HttpLoad load({.port = port, .bodies = {"A"}});
  REQUIRE(load.waitMore(30));

  f->writeConfig(config("200ms"));
  Json s = reloadOk(admin);
  CHECK(strings(s["clusters"]["updated"]) == Names{"api"});
  // At once: the dead host is still out, the live one in.
  CHECK(healthOf(dead_address) == "unhealthy");
  CHECK(healthOf(a.address()) == "healthy");
  // Load until the new checks have (again) found the dead host unhealthy: had it been let back
  // in meanwhile, the load saw its connect failures.
  REQUIRE(load.waitMore(100));
  REQUIRE(waitUntil([&] { return healthOf(dead_address) == "unhealthy"; }, 5s));
  REQUIRE(load.waitMore(20));
  CHECK_LOAD(load, 150);
  exitsCleanly(*f);
}

TEST_CASE("reload: a broken config is rejected while traffic flows; the running config stays", "[reload]") {
  const std::string rt = "  drain_timeout: 5s\n";
  auto good = [&](const std::string& body) { return head(rt) + httpListener("web", direct(body)); };
  auto f = FerryProcess::start(good("v1"));
  const uint16_t admin = f->adminPort();
  const std::string path = f->configPath();
  HttpLoad load({.port = f->port("web"), .bodies = {"v1", "v2"}});
  REQUIRE(load.waitMore(20));
  int failures = 0;

  {
    INFO("an unknown key");
    const std::string bad = head(rt) + httpListener("web", direct("v2"), "    bogus_key: 1\n");
    auto [line, col] = lineColOf(bad, "bogus_key");
    f->writeConfig(bad);
    auto errors = reloadRefused(admin);
    INFO(errors[0]);
    CHECK(errors[0].rfind(path + ":" + std::to_string(line) + ":" + std::to_string(col) + ": ", 0) == 0);
    CHECK(errors[0].find("bogus_key") != std::string::npos);
    CHECK(metricValue(admin, kReloadsFailed) == ++failures);

    // SIGHUP: the same rejection, in the log.
    f->signal(SIGHUP);
    CHECK(f->waitForLog("config reload (SIGHUP) rejected", 5s));
    CHECK(f->waitForLogCount(errors[0], 2, 5s));  // logged for POST /reload, and now for SIGHUP
    CHECK(waitMetric(admin, kReloadsFailed, ++failures));
    Json c = getJson(admin, "/config");
    CHECK(c["last_reload"]["trigger"].str() == "SIGHUP");
    CHECK(c["last_reload"]["result"].str() == "failure");
    CHECK(strings(c["last_reload"]["errors"]) == errors);
    REQUIRE(load.waitMore(20));
  }
  {
    INFO("a bad value");
    const std::string bad = head("  drain_timeout: forever\n") + httpListener("web", direct("v2"));
    auto [line, col] = lineColOf(bad, "forever");
    f->writeConfig(bad);
    auto errors = reloadRefused(admin);
    INFO(errors[0]);
    CHECK(errors[0].rfind(path + ":" + std::to_string(line) + ":" + std::to_string(col) + ": ", 0) == 0);
    CHECK(metricValue(admin, kReloadsFailed) == ++failures);
    REQUIRE(load.waitMore(20));
  }
  {
    INFO("runtime.workers changed");
    f->writeConfig(head(rt, "", 3) + httpListener("web", direct("v2")));
    auto errors = reloadRefused(admin);
    INFO(errors[0]);
    CHECK(errors.size() == 1);
    CHECK(errors[0].rfind(path + ":", 0) == 0);
    CHECK(errors[0].find("runtime.workers") != std::string::npos);
    CHECK(metricValue(admin, kReloadsFailed) == ++failures);
  }
  {
    INFO("admin.address changed");
    f->writeConfig(head(rt, "", 2, "127.0.0.2:0") + httpListener("web", direct("v2")));
    auto errors = reloadRefused(admin);
    INFO(errors[0]);
    CHECK(errors[0].find("admin.address") != std::string::npos);
    CHECK(metricValue(admin, kReloadsFailed) == ++failures);
  }
  {
    INFO("a new listener on a port in use");
    FakeUpstream busy(FakeUpstream::echo());  // holds its port without SO_REUSEPORT
    const std::string busy_address = "127.0.0.1:" + std::to_string(busy.port());
    // "fresh" binds first; the reload then fails on "busy" and must let "fresh" go again.
    const std::string bad = head(rt) + httpListener("web", direct("v2")) + httpListener("fresh", direct("fresh")) +
                            httpListener("busy", direct("busy"), "", "", busy_address);
    auto [line, col] = lineColOf(bad, busy_address);
    f->writeConfig(bad);
    auto errors = reloadRefused(admin);
    INFO(errors[0]);
    CHECK(errors[0].rfind(path + ":" + std::to_string(line) + ":" + std::to_string(col) + ": ", 0) == 0);
    CHECK(errors[0].find("busy") != std::string::npos);
    CHECK(errors[0].find("Address already in use") != std::string::npos);
    CHECK(metricValue(admin, kReloadsFailed) == ++failures);
    // (If ferry announced it: bindListener logs each socket it binds.)
    if (f->waitForLog("listening: listener=fresh address=", 2s)) {
      const uint16_t fresh = f->port("fresh");
      CHECK(TcpClient::connect(fresh, 1s) == nullptr);  // its socket was closed again
    }
    REQUIRE(load.waitMore(20));
  }

  // Nothing changed: version 1, v1 served (the load checks every answer), no success counted.
  Json c = getJson(admin, "/config");
  CHECK(c["version"].num() == 1);
  CHECK(c["last_reload"]["result"].str() == "failure");
  CHECK(c["last_reload"]["trigger"].str() == "POST /reload");
  CHECK(metricValue(admin, kReloadsOk) == 0);
  CHECK(load.count("v2") == 0);

  // A good config after all that applies, as the next version.
  f->writeConfig(good("v2"));
  Json s = reloadOk(admin);
  CHECK(s["version"].num() == 2);
  REQUIRE(load.waitMore(20));
  CHECK_LOAD(load, 100);
  CHECK(load.count("v2") > 0);
  CHECK(load.connects() == 2);
  exitsCleanly(*f);
}

TEST_CASE("reload: a long-lived TCP session stays up across ten reloads that change other things", "[reload]") {
  FakeUpstream echo(FakeUpstream::echo());
  // Generation g: the HTTP listener answers "r<routes>", the echo cluster's connect_timeout is
  // 1000 + 100 x <timeouts> ms.
  auto config = [&](int routes, int timeouts) {
    return head() + httpListener("web", direct("r" + std::to_string(routes))) + tcpListener("tcp", "echo") +
           clusters({{"echo", {echo.port()}, "    connect_timeout: " + std::to_string(1000 + 100 * timeouts) +
                                                   "ms\n"}});
  };
  auto f = FerryProcess::start(config(0, 0));
  const uint16_t admin = f->adminPort();
  std::vector<std::string> bodies;
  for (int i = 0; i <= 10; ++i) bodies.push_back("r" + std::to_string(i));
  HttpLoad load({.port = f->port("web"), .bodies = bodies});

  auto t = TcpClient::connect(f->port("tcp"));
  REQUIRE(t);
  REQUIRE(t->sendAll("hello\n"));
  REQUIRE(t->recvExactly(6, 5s) == "hello\n");
  REQUIRE(load.waitMore(10));

  int routes = 0, timeouts = 0;
  for (int i = 1; i <= 10; ++i) {
    INFO("reload " << i);
    const bool route_change = i % 2 == 1;
    (route_change ? routes : timeouts)++;
    f->writeConfig(config(routes, timeouts));
    Json s = reloadOk(admin);
    CHECK(s["version"].num() == i + 1);
    CHECK(strings(s["listeners"]["drained"]).empty());
    CHECK(strings(s["listeners"]["removed"]).empty());
    CHECK(strings(s["listeners"]["updated"]) == (route_change ? Names{"web"} : Names{}));
    CHECK(strings(s["clusters"]["updated"]) == (route_change ? Names{} : Names{"echo"}));
    const std::string ping = "ping " + std::to_string(i) + "\n";
    REQUIRE(t->sendAll(ping));
    REQUIRE(t->recvExactly(ping.size(), 5s) == ping);
    REQUIRE(load.waitMore(10));
  }
  // The cluster runs the last connect_timeout; the session still has its one upstream connection.
  Json cl = getJson(admin, "/clusters");
  REQUIRE(cl["clusters"].arr().size() == 1);
  CHECK(cl["clusters"].arr()[0]["connect_timeout"].str() == "1500ms");
  CHECK(echo.accepted() == 1);
  CHECK(metricValue(admin, "ferry_downstream_connections_active{listener=\"tcp\"}") == 1);
  REQUIRE(t->sendAll("bye\n"));
  CHECK(t->recvExactly(4, 5s) == "bye\n");
  CHECK_LOAD(load, 100);
  CHECK(load.count("r5") > 0);  // the last route generation
  CHECK(load.connects() == 2);
  t->close();
  exitsCleanly(*f);
}

TEST_CASE("drain: SIGTERM lets a slow in-flight request finish with connection: close, then exits 0",
          "[reload][drain]") {
  Gate gate;
  auto slow = slowUpstream(gate);
  ReleaseOnExit release{gate};
  auto f = FerryProcess::start(head("  drain_delay: 500ms\n  drain_timeout: 10s\n") +
                               httpListener("web", toCluster("slow", "{path: /slow}") + direct("ok")) +
                               clusters({{"slow", {slow->port()}}}));
  const uint16_t port = f->port("web");
  const uint16_t admin = f->adminPort();
  // The load stops at its first "connection: close" (the drain notice).
  HttpLoad load({.port = port, .bodies = {"ok"}, .stop_on_close = true});
  auto idle = TcpClient::connect(port);
  REQUIRE(idle);
  REQUIRE(keepAliveGet(*idle).body == "ok");
  auto s = TcpClient::connect(port);
  REQUIRE(s);
  REQUIRE(s->sendAll("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  REQUIRE(waitUntil([&] { return gate.waiting() == 1; }, 5s));
  REQUIRE(load.waitMore(20));

  f->signal(SIGTERM);
  CHECK(waitUntil([&] { return httpRequest(admin, "GET", "/ready").status == 503; }, 2s));
  {
    // No reloads while draining.
    auto errors = reloadRefused(admin);
    INFO(errors[0]);
    CHECK(errors[0].find("draining") != std::string::npos);
  }
  // During drain_delay every answer says "connection: close": each load client gets one and stops.
  CHECK(load.waitFinished(5s));
  // Then the listener closes and idle connections with it; the slow request is still held.
  CHECK(waitUntil([&] { return TcpClient::connect(port, 1s) == nullptr; }, 5s));
  CHECK(idle->peerClosedOrReset(5s));
  REQUIRE(f->running());
  CHECK(gate.waiting() == 1);

  gate.release();
  HttpResponse r = readHttpResponse(*s, false, 10s);
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "slow");
  CHECK(r.header("connection") == "close");
  CHECK(s->waitClosed(5s));
  auto code = f->waitExit(10s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(f->log().find("drain: all connections closed") != std::string::npos);
  CHECK_LOAD(load, 20);
  CHECK(load.closes() == 2);
}

TEST_CASE("reload: a listener whose PROXY protocol setting changed drains its open connections", "[reload]") {
  Gate gate;
  auto slow = slowUpstream(gate);
  ReleaseOnExit release{gate};
  // "pp" turns PROXY protocol on (drained); "web" changes an HTTP setting only (updated: its
  // open connections run on).
  auto config = [&](bool proxy_protocol) {
    return head("  drain_timeout: 10s\n") +
           httpListener("web", direct("web"), "",
                        proxy_protocol ? "      idle_timeout: 31s\n" : "      idle_timeout: 30s\n") +
           httpListener("pp", toCluster("slow", "{path: /slow}") + direct("pp"),
                        proxy_protocol ? "    proxy_protocol: true\n" : "") +
           clusters({{"slow", {slow->port()}}});
  };
  auto f = FerryProcess::start(config(false));
  const uint16_t admin = f->adminPort();
  const uint16_t pp = f->port("pp");
  HttpLoad load({.port = f->port("web"), .bodies = {"web"}});

  auto idle = TcpClient::connect(pp);
  REQUIRE(idle);
  REQUIRE(keepAliveGet(*idle).body == "pp");
  auto busy = TcpClient::connect(pp);
  REQUIRE(busy);
  REQUIRE(busy->sendAll("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  REQUIRE(waitUntil([&] { return gate.waiting() == 1; }, 5s));
  REQUIRE(load.waitMore(20));

  f->writeConfig(config(true));
  Json s = reloadOk(admin);
  CHECK(strings(s["listeners"]["drained"]) == Names{"pp"});
  CHECK(strings(s["listeners"]["updated"]) == Names{"web"});
  CHECK(strings(s["listeners"]["added"]).empty());
  CHECK(strings(s["listeners"]["removed"]).empty());

  // The idle connection is closed at once (well before drain_timeout).
  CHECK(idle->peerClosedOrReset(3s));
  // The request in flight finishes, and its answer closes its connection.
  gate.release();
  HttpResponse r = readHttpResponse(*busy, false, 10s);
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "slow");
  CHECK(r.header("connection") == "close");
  CHECK(busy->waitClosed(5s));

  // New connections need the PROXY header now.
  auto bare = TcpClient::connect(pp);
  REQUIRE(bare);
  REQUIRE(bare->sendAll("GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
  CHECK(bare->recvUntilClose(5s).empty());
  CHECK(bare->closedByPeer());
  auto proxied = TcpClient::connect(pp);
  REQUIRE(proxied);
  REQUIRE(proxied->sendAll("PROXY TCP4 192.0.2.7 127.0.0.1 40000 80\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n"));
  r = readHttpResponse(*proxied);
  INFO(r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "pp");
  CHECK(waitMetric(admin, "ferry_downstream_proxy_protocol_errors_total{listener=\"pp\"}", 1));

  REQUIRE(load.waitMore(20));
  CHECK_LOAD(load, 60);
  CHECK(load.connects() == 2);  // "web" was updated, not drained
  exitsCleanly(*f);
}

TEST_CASE("reload: PUT /config", "[reload]") {
  const std::string token = "tok-5e1d0c9a7b3f";
  const std::string push = "  allow_config_push: true\n  token_file: admin.token\n";
  auto config = [&](const std::string& body, const std::string& admin_extra) {
    return head("", admin_extra) + httpListener("web", direct(body));
  };
  auto f = FerryProcess::start(config("v1", ""), {}, {{"admin.token", token + "\n"}});
  const uint16_t admin = f->adminPort();
  const std::string path = f->configPath();
  const std::vector<std::string> auth = {"Authorization: Bearer " + token};
  HttpLoad load({.port = f->port("web"), .bodies = {"v1", "v2", "v3"}});
  REQUIRE(load.waitMore(20));

  // Refused unless allow_config_push.
  const std::string original = readFile(path);
  HttpResponse r = httpRequest(admin, "PUT", "/config", config("v9", ""));
  CHECK(r.status == 403);
  CHECK(readFile(path) == original);
  CHECK(configVersion(admin) == 1);

  // Turn it on (with a token) by a reload; from then on mutations need the token.
  f->writeConfig(config("v2", push));
  reloadOk(admin);
  CHECK(httpRequest(admin, "POST", "/reload").status == 401);
  CHECK(httpRequest(admin, "PUT", "/config", config("v9", push)).status == 401);
  CHECK(httpRequest(admin, "PUT", "/config", config("v9", push), {"Authorization: Bearer wrong"}).status == 401);
  CHECK(configVersion(admin) == 2);
  REQUIRE(load.waitMore(20));

  // A valid body: applied, and written over the -c file (which keeps its permissions).
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  const std::string v3 = config("v3", push);
  r = httpRequest(admin, "PUT", "/config", v3, auth, 10s);
  {
    INFO(r.status << " " << r.error << "\n" << r.body);
    REQUIRE(r.status == 200);
    auto s = parseJson(r.body);
    REQUIRE(s);
    CHECK((*s)["result"].str() == "success");
    CHECK((*s)["version"].num() == 3);
    CHECK((*s)["hash"].str() == sha256Hex(v3));
    CHECK(strings((*s)["listeners"]["updated"]) == Names{"web"});
  }
  CHECK(readFile(path) == v3);
  struct stat st{};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  r = httpRequest(admin, "GET", "/config?format=yaml");
  CHECK(r.status == 200);
  CHECK(r.body.find("\"v3\"") != std::string::npos);
  Json c = getJson(admin, "/config");
  CHECK(c["hash"].str() == sha256Hex(v3));
  CHECK(c["last_reload"]["trigger"].str() == "PUT /config");
  REQUIRE(load.waitMore(20));
  const int64_t v3_before = load.count("v3");
  CHECK(v3_before > 0);

  // An invalid body: 400 with FILE:LINE:COL errors; the file stays.
  const std::string bad = head("", push) + httpListener("web", direct("v4"), "    bogus_key: 1\n");
  auto errors = refusedErrors(httpRequest(admin, "PUT", "/config", bad, auth, 10s));
  auto [line, col] = lineColOf(bad, "bogus_key");
  INFO(errors[0]);
  CHECK(errors[0].rfind(path + ":" + std::to_string(line) + ":" + std::to_string(col) + ": ", 0) == 0);
  CHECK(readFile(path) == v3);
  CHECK(configVersion(admin) == 3);

  // The file cannot be written: 400 naming the reason; nothing applies.
  const std::string v4 = config("v4", push);
  if (::geteuid() != 0) {
    INFO("the config directory read-only");
    REQUIRE(::chmod(f->dir().c_str(), 0555) == 0);
    HttpResponse w = httpRequest(admin, "PUT", "/config", v4, auth, 10s);
    ::chmod(f->dir().c_str(), 0755);
    errors = refusedErrors(w);
    INFO(errors[0]);
    CHECK(errors[0].find("Permission denied") != std::string::npos);
    CHECK(errors[0].find(path) != std::string::npos);
    CHECK(readFile(path) == v3);
    CHECK(configVersion(admin) == 3);
  } else {
    WARN("running as root: chmod cannot make the config directory read-only; the sub-case with a directory "
         "in the config file's place stands in for it");
  }
  {
    INFO("a directory where the config file was");
    const std::string saved = path + ".saved";
    REQUIRE(::rename(path.c_str(), saved.c_str()) == 0);
    REQUIRE(::mkdir(path.c_str(), 0755) == 0);
    HttpResponse w = httpRequest(admin, "PUT", "/config", v4, auth, 10s);
    REQUIRE(::rmdir(path.c_str()) == 0);
    REQUIRE(::rename(saved.c_str(), path.c_str()) == 0);
    errors = refusedErrors(w);
    INFO(errors[0]);
    CHECK(errors[0].find("cannot write " + path) != std::string::npos);
    CHECK(errors[0].find("Is a directory") != std::string::npos);
    CHECK(configVersion(admin) == 3);
    // No temporary file left behind.
    for (const auto& e : std::filesystem::directory_iterator(f->dir())) {
      INFO(e.path().string());
      CHECK(e.path().filename().string().find("ferry-tmp") == std::string::npos);
    }
  }
  REQUIRE(load.waitMore(20));
  CHECK(metricValue(admin, kReloadsOk) == 2);
  CHECK_LOAD(load, 80);
  CHECK(load.count("v4") == 0);
  CHECK(load.count("v3") > v3_before);  // still served after the refusals
  exitsCleanly(*f);
}

TEST_CASE("reload: runtime.watch_config reloads on a changed file, not on identical content", "[reload]") {
  auto config = [](const std::string& body) {
    return head("  watch_config: true\n", "  allow_config_push: true\n") + httpListener("web", direct(body));
  };
  // Debug logging shows the watch deciding that identical content needs no reload.
  auto f = FerryProcess::start(config("v1"), {"--log-level", "debug"});
  const uint16_t port = f->port("web");
  const uint16_t admin = f->adminPort();
  REQUIRE(f->waitForLog("config: watching ", 5s));
  HttpLoad load({.port = port, .bodies = {"v1", "v2", "v3", "v4"}});
  REQUIRE(load.waitMore(20));

  auto serves = [&](const std::string& body) { return httpRequest(port, "GET", "/").body == body; };
  f->writeConfig(config("v2"));
  REQUIRE(waitUntil([&] { return serves("v2"); }, 10s));
  CHECK(configVersion(admin) == 2);
  CHECK(f->waitForLogCount("config reloaded (file watch)", 1, 5s));
  CHECK(f->countInLog("config reloaded (file watch)") == 1);
  Json c = getJson(admin, "/config");
  CHECK(c["last_reload"]["trigger"].str() == "file watch");
  CHECK(c["hash"].str() == sha256Hex(readFile(f->configPath())));
  REQUIRE(load.waitMore(20));

  // A broken file: the watch's reload is refused, and v2 stays.
  f->writeConfig(head("  watch_config: true\n", "  allow_config_push: true\n") +
                 httpListener("web", direct("v9"), "    bogus_key: 1\n"));
  CHECK(f->waitForLog("config reload (file watch) rejected", 10s));
  CHECK(waitMetric(admin, kReloadsFailed, 1));
  CHECK(configVersion(admin) == 2);
  REQUIRE(load.waitMore(20));

  // The running content again (a new file by rename): seen, and no reload.
  f->writeConfig(config("v2"));
  CHECK(f->waitForLog("has the running content: no reload", 10s));
  CHECK(configVersion(admin) == 2);
  // A real change after it: exactly one more version.
  f->writeConfig(config("v3"));
  REQUIRE(waitUntil([&] { return serves("v3"); }, 10s));
  CHECK(configVersion(admin) == 3);
  CHECK(f->waitForLogCount("config reloaded (file watch)", 2, 5s));
  CHECK(f->countInLog("config reloaded (file watch)") == 2);
  CHECK(metricValue(admin, kReloadsOk) == 2);
  REQUIRE(load.waitMore(20));

  // PUT /config writes the file itself: the watch sees that write and does not reload again.
  const std::string v4 = config("v4");
  HttpResponse r = httpRequest(admin, "PUT", "/config", v4, {}, 10s);
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(serves("v4"));
  CHECK(f->waitForLogCount("has the running content: no reload", 2, 10s));
  CHECK(configVersion(admin) == 4);
  CHECK(f->countInLog("config reloaded (file watch)") == 2);
  CHECK(metricValue(admin, kReloadsOk) == 3);
  REQUIRE(load.waitMore(20));
  CHECK_LOAD(load, 80);
  CHECK(load.connects() == 2);
  exitsCleanly(*f);
}

TEST_CASE("reload: a drained TCP session is closed at drain_timeout, not before", "[reload]") {
  FakeUpstream echo(FakeUpstream::echo());
  // Turning PROXY protocol on changes the TCP listener: its open sessions drain; the new
  // drain_timeout (300 ms) applies to them.
  auto config = [&](bool proxy_protocol) {
    return head(proxy_protocol ? "  drain_timeout: 300ms\n" : "  drain_timeout: 10s\n") +
           httpListener("web", direct("web")) + "  - name: tcp\n    address: 127.0.0.1:0\n" +
           (proxy_protocol ? "    proxy_protocol: true\n" : "") + "    tcp:\n      cluster: echo\n" +
           clusters({{"echo", {echo.port()}}});
  };
  auto f = FerryProcess::start(config(false));
  const uint16_t admin = f->adminPort();
  HttpLoad load({.port = f->port("web"), .bodies = {"web"}});
  auto t = TcpClient::connect(f->port("tcp"));
  REQUIRE(t);
  REQUIRE(t->sendAll("hello\n"));
  REQUIRE(t->recvExactly(6, 5s) == "hello\n");
  REQUIRE(load.waitMore(20));

  f->writeConfig(config(true));
  const auto t0 = Clock::now();
  Json s = reloadOk(admin);
  CHECK(strings(s["listeners"]["drained"]) == Names{"tcp"});
  // TCP has no drain notice of its own: the session works on until the timeout...
  REQUIRE(t->sendAll("still\n"));
  CHECK(t->recvExactly(6, 5s) == "still\n");
  // ...then ferry closes it.
  CHECK(t->waitClosed(5s));
  const auto took = std::chrono::duration_cast<ms>(Clock::now() - t0);
  INFO("closed after " << took.count() << " ms");
  CHECK(took >= 250ms);
  CHECK(f->waitForLog("listener tcp: drain timeout: closing 1 connection", 5s));
  REQUIRE(load.waitMore(20));
  CHECK_LOAD(load, 40);
  CHECK(load.connects() == 2);
  exitsCleanly(*f);
}

}  // namespace ferry::testing
