// The server's insides, shared by its parts: server.cc (startup, workers, signals, drain),
// reload.cc (a new config: validate, bind, build, install on the workers, retire what left)
// and admin_api.cc (the admin endpoints). Main thread, except where a member says otherwise.
#pragma once

#include <netinet/in.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/model.h"
#include "core/event/file_watcher.h"
#include "core/event/worker.h"
#include "core/net/listener.h"
#include "core/stats.h"
#include "core/tracing/exporter.h"
#include "core/upstream/cluster.h"
#include "core/upstream/stream_pool.h"
#include "filters/registry.h"
#include "proxy/admin/admin.h"
#include "proxy/runtime.h"
#include "proxy/server.h"
#include "proxy/upgrade.h"

namespace ferry::proxy {

namespace asio = boost::asio;

// A worker's share of the running config: its listeners and LB state. Lives on the worker and
// is touched only there (the main thread posts to it).
struct WorkerRuntime {
  core::WorkerContext ctx;
  bool draining = false;
  std::unique_ptr<core::upstream::ClusterLb> lb;
  std::unique_ptr<core::upstream::PoolManager> pools;
  std::unique_ptr<core::tracing::WorkerTracing> tracing;  // span exporters: go before the pools
  // Listeners a reload removed (or moved to another address): no longer accepting, their
  // connections draining; each goes once its last connection has closed.
  std::list<std::unique_ptr<core::net::ActiveListener>> retired;
  // The running listeners, in snapshot order; a listener may have several sockets on one
  // worker (after a binary upgrade from a process with more workers).
  std::vector<std::unique_ptr<core::net::ActiveListener>> listeners;  // destroyed first
};

// How one listener of a new snapshot gets its sockets on the workers.
struct ListenerPlan {
  std::string keep;  // a running listener (by name) whose sockets it takes over; "" = new ones
  bool drain_old = false;  // keep: the open connections of that listener drain
  std::vector<std::vector<int>> fds;  // new sockets, per worker (index = worker - 1)
};

// What a snapshot's installation does on every worker.
struct InstallPlan {
  std::vector<ListenerPlan> listeners;  // one per snapshot listener, same order
  std::vector<std::string> retire;      // running listeners that stop accepting and drain
  std::chrono::milliseconds drain_timeout{0};
};

// A running listener as the main thread knows it.
struct BoundListener {
  config::ListenerConfig cfg;
  std::string key;  // canonical address ("name@..." for port 0): matches a socket to a config
  // The main thread's duplicates of the listener's sockets (all workers'), for a binary
  // upgrade's inventory. Closed when the listener goes, and when the process stops accepting
  // (a socket must not outlive its workers' copies, or the kernel would queue connections
  // nobody accepts).
  std::vector<int> fds;
};

// A reload attempt, for GET /config (the last one) and GET /reloads (the last kReloadHistory).
struct ReloadRecord {
  int64_t at_ms = 0;  // 0: none yet
  bool ok = false;
  std::string trigger;
  std::vector<std::string> errors;
  uint64_t version = 0;  // the config version running after it
};
inline constexpr size_t kReloadHistory = 10;

struct ReloadOutcome {
  bool ok = false;
  std::vector<std::string> errors;  // FILE:LINE:COL: message (or FILE: message)
  std::string summary_json;         // what changed (ok), for POST /reload and PUT /config
};

// An address as the kernel writes it ("::1" and "0:0::1" alike); the text as written when it
// does not parse.
std::string canonicalAddress(const config::Address& a);

// Logs "listening: listener=NAME address=IP:PORT" for new sockets (scripts and tests read it).
void logListening(const config::ListenerConfig& l, const std::vector<std::vector<int>>& fds);

// CLOEXEC duplicates of every socket in `fds` (BoundListener::fds).
std::vector<int> socketCopies(const std::vector<std::vector<int>>& fds);

struct Server::Impl {
  Impl(config::Config c, ServerOptions o) : cfg(std::move(c)), options(std::move(o)) {}

  config::Config cfg;  // the running config
  ServerOptions options;
  asio::io_context io{1};
  std::unique_ptr<core::StatsStore> stats;
  filters::Registry registry;
  std::unique_ptr<Runtime> runtime;  // state kept across snapshots; clusters stopped in finish()
  std::shared_ptr<const Snapshot> snapshot;
  std::vector<std::unique_ptr<core::Worker>> workers;
  std::vector<std::unique_ptr<WorkerRuntime>> runtimes;  // index = worker - 1; touched only on its worker
  core::upstream::ClusterManager* cluster_manager = nullptr;  // the runtime's
  std::unique_ptr<AdminServer> admin;
  std::string admin_token;  // from admin.token_file; empty = no token required
  std::unique_ptr<asio::signal_set> signals;
  std::unique_ptr<asio::steady_timer> drain_timer;
  bool ready = false;
  bool draining = false;
  // POST /healthcheck/fail .. /healthcheck/ok: /ready and every health_path answer 503.
  // Written on the main thread, read by the workers.
  std::atomic<bool> health_failed{false};
  bool stopping = false;
  std::chrono::steady_clock::time_point drain_deadline;
  int64_t started_ms = 0;

  // Reload state.
  std::vector<BoundListener> bound;  // the running snapshot's listeners, same order
  ReloadRecord last_reload;
  std::deque<ReloadRecord> reload_history;  // newest first, at most kReloadHistory
  core::StatHandle reloads_ok, reloads_failed;
  std::string file_hash;  // SHA-256 of the -c file as last loaded or written
  std::unique_ptr<core::FileWatcher> config_watcher;
  core::FileWatcher::WatchId config_watch = 0;

  // server.cc
  void onSignal(int sig);
  // SIGTERM/SIGINT and POST /drain: logs `why` and starts the drain; false (nothing done) when
  // the process is already draining.
  bool beginDrain(const std::string& why);
  void startDrain();
  void stopAccepting();
  void pollDrain();
  void finish();
  bool startAdmin();
  bool loadAdminToken(const config::AdminConfig& a, std::string* error);
  // Runs `plan` for snapshot `snap` on every worker (in order with everything posted before).
  // With `wait`, returns once every worker has run it: a reload reports success only when
  // connections accepted from then on get the new config.
  void install(const std::shared_ptr<const Snapshot>& snap, InstallPlan plan, bool wait);
  // Posts fn(worker runtime) to every worker, in order with what was posted before, and
  // returns at once.
  void postToEveryWorker(std::function<void(WorkerRuntime*)> fn);
  // Runs fn(worker runtime) on every running worker, in order with what was posted before,
  // and returns once all have run it (bounded: a worker that does not answer within 5 s is
  // logged and not waited for). Control path only: the main thread blocks meanwhile.
  void onEveryWorker(const std::function<void(WorkerRuntime*)>& fn, const char* what);

  // reload.cc
  // Binds one socket per worker for `l`; empty and *error on failure.
  std::vector<std::vector<int>> bindListener(const config::ListenerConfig& l, std::string* error);
  static std::string socketKey(const config::ListenerConfig& l);
  // A reload from the -c file (yaml == nullptr) or from pushed YAML (PUT /config: validated,
  // written over the -c file, then applied). Changes nothing unless it succeeds.
  ReloadOutcome reload(const std::string& trigger, const std::string* yaml);
  void watchConfig();

  // handover.cc: binary upgrade. The old side serves its sockets on upgrade_server and
  // drains once the new process has them; the new side takes them from `inherited`.
  std::unique_ptr<UpgradeServer> upgrade_server;
  Inventory inherited;             // sockets from the process this one replaces (new side)
  UpgradeSession upgrade_session;  // to that process, until DRAIN
  std::string exe_path;            // this binary, for SIGUSR2's re-exec
  bool handed_over = false;        // old side: the new process has the sockets
  pid_t upgrade_child = 0;         // the process SIGUSR2 started, until it is reaped
  // Fetches the inventory of --upgrade-from (new side). False (logged) on failure.
  bool receiveSockets();
  // The sockets of `l` from the inventory, spread over the workers (extra ones bound when
  // there are fewer than workers); empty when the inventory has none for it.
  std::vector<std::vector<int>> inheritedSockets(const config::ListenerConfig& l, std::string* error);
  int inheritedAdmin();  // the admin socket from the inventory, or -1
  void closeUnusedInherited();
  void startUpgradeServer();
  void onHandedOver(pid_t new_pid);
  void spawnUpgrade();   // SIGUSR2
  void reapChildren();   // SIGCHLD
  void closeSocketCopies();
  // systemd's watchdog (WATCHDOG_USEC): the main thread's loop pings at half the interval.
  void startWatchdog();
  std::unique_ptr<asio::steady_timer> watchdog_timer;
  std::shared_ptr<std::function<void()>> watchdog_beat;

  // admin_api.cc
  void installAdminHandlers();
  // Keeps a reload attempt as last_reload and in reload_history.
  void recordReload(ReloadRecord r);
  std::string listenersJson() const;
  std::string reloadsJson() const;
  std::string configJson() const;
  struct Rendered {  // GET /config of one config version, secrets redacted
    uint64_t version = 0;
    std::string json, yaml;
  };
  const Rendered& rendered() const;
  mutable std::shared_ptr<const Rendered> render_cache;
};

}  // namespace ferry::proxy
