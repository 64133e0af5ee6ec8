// Helpers of the config reload tests (reload_test.cc, reload_drain_test.cc): config snippets,
// admin API calls, and the load clients that run through every test. A request that fails is
// an error, with one exception (RFC 9112 section 9.3.1): a request sent on a reused keep-alive
// connection that sees EOF or a reset before any byte of a response may be retried once on a
// new connection (the server closed the idle connection as the request went out); that counts
// as a retry.
#pragma once

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


using Clock = std::chrono::steady_clock;

// ---- configs

// The top of every config here: runtime (workers, more keys indented 2), admin (more keys
// indented 2), then "listeners:".
inline std::string head(const std::string& runtime_extra = "", const std::string& admin_extra = "", int workers = 2,
                 const std::string& admin_address = "127.0.0.1:0") {
  return "runtime:\n  workers: " + std::to_string(workers) + "\n" + runtime_extra + "admin:\n  address: " +
         admin_address + "\n" + admin_extra + "listeners:\n";
}

// Route entries (for httpListener's `routes`).
inline std::string direct(const std::string& body, const std::string& match = "{prefix: /}") {
  return "            - match: " + match + "\n              direct_response: {status: 200, body: \"" + body + "\"}\n";
}
inline std::string toCluster(const std::string& cluster, const std::string& match = "{prefix: /}") {
  return "            - match: " + match + "\n              route: {cluster: " + cluster + "}\n";
}

// An HTTP listener with one virtual host ("*") and `routes`; `extra`: more listener keys
// (indented 4), `http_extra`: more keys of http: (indented 6).
inline std::string httpListener(const std::string& name, const std::string& routes, const std::string& extra = "",
                         const std::string& http_extra = "", const std::string& address = "127.0.0.1:0") {
  return "  - name: " + name + "\n    address: " + address + "\n" + extra + "    http:\n" + http_extra +
         "      virtual_hosts:\n        - name: all\n          domains: [\"*\"]\n          routes:\n" + routes;
}

inline std::string tcpListener(const std::string& name, const std::string& cluster) {
  return "  - name: " + name + "\n    address: 127.0.0.1:0\n    tcp:\n      cluster: " + cluster + "\n";
}

inline std::string clusters(const std::vector<Cluster>& cs) {
  std::string out = "clusters:\n";
  for (const auto& c : cs) out += c.yaml();
  return out;
}

// 1-based line and column of the first occurrence of `needle` in `text` (as FILE:LINE:COL
// errors count them).
inline std::pair<int, int> lineColOf(const std::string& text, const std::string& needle) {
  size_t pos = text.find(needle);
  REQUIRE(pos != std::string::npos);
  int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
  size_t bol = text.rfind('\n', pos);
  int col = static_cast<int>(bol == std::string::npos ? pos + 1 : pos - bol);
  return {line, col};
}

inline std::string sha256Hex(const std::string& data) {
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

inline Json getJson(uint16_t admin, const std::string& path) {
  HttpResponse r = httpRequest(admin, "GET", path);
  INFO("GET " << path << ": " << r.status << " " << r.error << "\n" << r.body);
  REQUIRE(r.status == 200);
  auto j = parseJson(r.body);
  REQUIRE(j);
  return *j;
}

inline double configVersion(uint16_t admin) { return getJson(admin, "/config")["version"].num(); }

inline std::vector<std::string> strings(const Json& array) {
  std::vector<std::string> out;
  for (const auto& e : array.arr()) out.push_back(e.str());
  return out;
}

using Names = std::vector<std::string>;

// POST /reload, which must succeed: its summary.
inline Json reloadOk(uint16_t admin, const std::vector<std::string>& headers = {}) {
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
inline std::vector<std::string> refusedErrors(const HttpResponse& r) {
  INFO("answer: " << r.status << " " << r.error << "\n" << r.body);
  REQUIRE(r.status == 400);
  auto j = parseJson(r.body);
  REQUIRE(j);
  CHECK((*j)["result"].str() == "failure");
  auto errors = strings((*j)["errors"]);
  REQUIRE(!errors.empty());
  return errors;
}

inline std::vector<std::string> reloadRefused(uint16_t admin) {
  return refusedErrors(httpRequest(admin, "POST", "/reload", "", {}, 10s));
}

const std::string kReloadsOk = "ferry_config_reloads_total{result=\"success\"}";
const std::string kReloadsFailed = "ferry_config_reloads_total{result=\"failure\"}";

// The endpoint of cluster `cluster` in a GET /clusters answer with that address (a null Json
// if there is none).
inline const Json& endpointOf(const Json& clusters_json, const std::string& cluster, const std::string& address) {
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
inline HttpResponse keepAliveGet(TcpClient& c, const std::string& path = "/", ms timeout = 5s) {
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

inline Exchange exchange(TcpClient& c, const std::string& request, ms timeout) {
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
inline std::unique_ptr<HttpUpstream> slowUpstream(Gate& gate) {
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
inline std::set<int> dataConnections(const HttpUpstream& u, size_t from, size_t to) {
  std::set<int> out;
  auto rs = u.requests();
  for (size_t i = from; i < std::min(to, rs.size()); ++i)
    if (rs[i].target != "/healthz") out.insert(rs[i].connection_index);
  return out;
}

// The data requests the upstream recorded from `from` on: which load client sent each, on
// which upstream connection (for failure messages).
inline std::string describeRequests(const HttpUpstream& u, size_t from) {
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
inline void exitsCleanly(FerryProcess& f) {
  f.signal(SIGTERM);
  auto code = f.waitExit(20s);
  const std::string log = f.log();
  INFO("ferry's log, the end:\n" << log.substr(log.size() > 6000 ? log.size() - 6000 : 0));
  REQUIRE(code.has_value());
  CHECK(*code == 0);
}

}  // namespace ferry::testing
