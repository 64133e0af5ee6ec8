// A Redis client on Ferry's own event loop: each worker keeps a small set of pipelined
// connections (net::Connection, non-blocking, on the worker's io_context) to one Redis, and
// parses replies with hiredis's reader (resp.h). Nothing here blocks: no hiredis connection
// or synchronous call is ever used.
//
//  - Target: one configured Redis (address, timeouts, connections, password), process-wide.
//    Made on the main thread when a config is built (target()), shared by every filter and
//    snapshot that names the same settings, never destroyed (a few bytes). It owns the metrics
//    (ferry_redis_*{redis="ADDRESS"}) and the fleet-facing health: how many workers have a
//    working connection, with each up/down transition logged once for the process.
//  - Client: one Target's connections on one worker (Client::forWorker(), made on first use on
//    that worker, destroyed when the worker thread ends). Requests go round-robin to ready
//    connections and are pipelined; replies are matched first in, first out.
//
// A connection is ready once its handshake (AUTH when a password is set, SCRIPT LOAD of the
// scripts known so far, PING) has been answered within connect_timeout. Failures (connect
// refused, handshake or protocol error, peer close, a reply outstanding for far longer than
// the timeout) close it; it reconnects after an exponential backoff (100 ms doubling to 2 s,
// with jitter) until Redis answers again.
//
// Timeouts: a request is answered kTimeout once `timeout` has passed without its reply; the
// connection keeps its place in the FIFO so the late reply is matched and dropped. One timer
// per connection (armed for the oldest live request) does this, not one per request.
// While no connection of the worker is ready (after the first failure), send calls return
// false at once: the caller applies its failure policy without waiting.
//
// Scripts: evalsha() loads a script on a connection the first time it is used there
// (SCRIPT LOAD, pipelined before the EVALSHA), and on a NOSCRIPT error (Redis restarted or
// SCRIPT FLUSH) loads it again and retries the request once.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/redis/resp.h"
#include "core/stats.h"

namespace ferry::core {
struct WorkerContext;
}

namespace ferry::core::redis {

enum class Result : uint8_t {
  kOk,           // a reply (not an error reply)
  kError,        // an error reply (after the NOSCRIPT retry), or a reply of the wrong shape
  kTimeout,      // no reply within `timeout`
  kClosed,       // the connection failed with the request outstanding
};
inline constexpr size_t kResultCount = 4;
// "ok", "error", "timeout", "closed" (metric labels).
const char* resultName(Result r);

struct TargetConfig {
  std::string address;  // HOST:PORT as configured: the metrics label and log name
  sockaddr_storage addr{};
  std::chrono::milliseconds timeout{25};
  std::chrono::milliseconds connect_timeout{1000};
  uint32_t connections = 2;  // per worker
  std::string password;      // AUTH when not empty; never logged or shown
  bool operator==(const TargetConfig& o) const;
};

class Target {
 public:
  explicit Target(TargetConfig cfg);
  const TargetConfig& config() const { return cfg_; }
  const std::string& name() const { return cfg_.address; }

  // Main thread, at build time with the process's stats (idempotent).
  void registerStats(StatsStore& stats);
  struct Stats {
    StatHandle workers_up;       // gauge: workers with a ready connection
    StatHandle connections_ready;  // gauge
    StatHandle connects;         // counter: connections that became ready
    StatHandle connect_failures;  // counter: attempts that failed before ready
    StatHandle disconnects;      // counter: ready connections lost
    StatHandle requests[kResultCount];  // counter by result
    StatHandle unavailable;      // counter: requests refused at once (no ready connection)
    StatHandle noscript;         // counter: NOSCRIPT replies (script re-loaded)
    HistogramHandle round_trip;  // request sent -> reply
  };
  const Stats& stats() const { return stats_; }
  bool registered() const { return registered_; }

  // Workers report their transitions; the first worker to see one logs it.
  void workerUp();
  void workerDown(bool was_up, std::string_view reason);
  int workersUp() const { return workers_up_.load(std::memory_order_relaxed); }

 private:
  const TargetConfig cfg_;
  Stats stats_;
  bool registered_ = false;
  std::atomic<int> workers_up_{0};
  std::atomic<int> logged_{0};  // 0 nothing yet, 1 up, 2 down
};

// The Target for these settings (made on first use). Main thread.
std::shared_ptr<Target> target(const TargetConfig& cfg);
// {"name":..,"workers_up":..,...} per registered target, as a JSON array (admin /clusters).
std::string targetsJson(const StatsStore& stats);

// A Lua script: its text and SHA1.
struct Script {
  explicit Script(std::string body_in) : body(std::move(body_in)), sha(sha1Hex(body)) {}
  std::string body;
  std::string sha;
};

class ClientConn;

// What waits for a reply. The object must stay valid until its reply arrives or
// Client::cancel(); onRedisReply runs once (never from inside the send call).
class Request {
 public:
  // `reply` is set for kOk (and for kError when Redis answered an error); valid during the call.
  virtual void onRedisReply(const redisReply* reply, Result result) = 0;
  bool pending() const { return conn_ != nullptr; }

 protected:
  ~Request() = default;

 private:
  friend class Client;
  friend class ClientConn;
  ClientConn* conn_ = nullptr;
  uint64_t seq_ = 0;
  std::string cmd_;  // the encoded command, kept for the NOSCRIPT retry
};

class Client {
 public:
  // This worker's client for `target` (made, and connecting, on first use). Worker thread.
  static Client& forWorker(Target& target, WorkerContext& worker);

  Client(Target& target, WorkerContext& worker);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // EVALSHA script numkeys keys... args...; false (and no callback) when no connection can
  // take it now. `deadline_us` (monotonicUs): answer kTimeout then if earlier than now +
  // timeout (0: now + timeout).
  bool evalsha(Request& req, const Script& script, std::initializer_list<std::string_view> keys,
               std::initializer_list<int64_t> args, int64_t deadline_us = 0);
  // Any other command.
  bool command(Request& req, std::initializer_list<std::string_view> args, int64_t deadline_us = 0);
  // The request's reply, if it comes, is dropped. No-op when not pending.
  void cancel(Request& req);

  bool up() const { return ready_ > 0; }
  Target& target() { return target_; }

 private:
  friend class ClientConn;
  ClientConn* pick();
  bool send(Request& req, const Script* script, int64_t deadline_us);
  void connReady();
  void connLost(bool was_ready, std::string_view reason);

  Target& target_;
  WorkerContext& worker_;
  std::vector<std::unique_ptr<ClientConn>> conns_;
  std::vector<const Script*> scripts_;  // loaded on every new connection
  size_t rr_ = 0;
  int ready_ = 0;
  bool failed_once_ = false;  // until then, requests may wait for the first handshake
  uint64_t rng_;
};

}  // namespace ferry::core::redis
