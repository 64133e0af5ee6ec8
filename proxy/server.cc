#include "proxy/server.h"

#include <signal.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <ctime>
#include <fstream>
#include <sstream>
#include <random>
#include <thread>

#include "config/values.h"
#include "core/event/worker.h"
#include "core/log.h"
#include "core/net/listener.h"
#include "core/net/socket_util.h"
#include "core/stats.h"
#include "core/upstream/cluster.h"
#include "core/upstream/cluster_manager.h"
#include "core/upstream/stream_pool.h"
#include "filters/registry.h"
#include "proxy/admin/admin.h"
#include "proxy/runtime.h"

namespace ferry::proxy {
namespace asio = boost::asio;
using core::log::sv;

namespace {

using config::jsonString;

std::string isoTime(int64_t unix_ms) {
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1,
                t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, static_cast<int>(unix_ms % 1000));
  return buf;
}

unsigned resolveWorkers(uint32_t configured) {
  if (configured > 0) return configured;
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

// A worker's share of the running config: its listeners and LB state. Lives on the worker.
struct WorkerRuntime {
  core::WorkerContext ctx;
  bool draining = false;
  std::unique_ptr<core::upstream::ClusterLb> lb;
  std::unique_ptr<core::upstream::PoolManager> pools;
  std::vector<std::unique_ptr<core::net::ActiveListener>> listeners;  // destroyed first
};

}  // namespace

struct Server::Impl {
  explicit Impl(config::Config c) : cfg(std::move(c)) {}

  config::Config cfg;
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
  bool stopping = false;
  std::chrono::steady_clock::time_point drain_deadline;
  int64_t started_ms = 0;

  bool bindListeners(std::vector<std::vector<int>>* fds_per_worker);
  bool startAdmin();
  void installAdminHandlers();
  void onSignal(int sig);
  void startDrain();
  void stopAccepting();
  void pollDrain();
  void finish();
  std::string clustersJson() const;
  std::string configJson() const;
};

Server::Server(config::Config cfg) : impl_(std::make_unique<Impl>(std::move(cfg))) {}
Server::~Server() = default;

bool Server::Impl::bindListeners(std::vector<std::vector<int>>* fds) {
  size_t n = workers.size();
  fds->assign(n, {});
  for (const auto& l : cfg.listeners) {
    sockaddr_storage addr{};
    core::net::makeSockaddr(l.address.host, l.address.port, &addr);
    for (size_t w = 0; w < n; ++w) {
      std::string err;
      int fd = core::net::listenSocket(addr, 4096, true, &err);
      if (fd < 0) {
        FERRY_LOG(kError, "listener ", l.name, ": ", err);
        for (auto& v : *fds)
          for (int f : v) ::close(f);
        return false;
      }
      if (w == 0) {
        // Port 0: the kernel picked one for the first socket; every worker shares it.
        core::net::localAddress(fd, &addr);
        FERRY_LOG(kInfo, "listening: listener=", l.name, " address=", core::net::formatSockaddr(addr));
      }
      (*fds)[w].push_back(fd);
    }
  }
  return true;
}

bool Server::Impl::startAdmin() {
  if (!cfg.admin) return true;
  sockaddr_storage addr{};
  core::net::makeSockaddr(cfg.admin->address.host, cfg.admin->address.port, &addr);
  if (!cfg.admin->token_file.empty()) {
    std::ifstream in(cfg.admin->token_file);
    std::stringstream ss;
    ss << in.rdbuf();
    admin_token = ss.str();
    while (!admin_token.empty() && (admin_token.back() == '\n' || admin_token.back() == '\r' ||
                                    admin_token.back() == ' '))
      admin_token.pop_back();
    if (!in || admin_token.empty()) {
      FERRY_LOG(kError, "admin: token_file ", cfg.admin->token_file, " is unreadable or empty");
      return false;
    }
  }
  admin = std::make_unique<AdminServer>(io);
  std::string err;
  if (!admin->start(addr, &err)) {
    FERRY_LOG(kError, "admin: ", err);
    return false;
  }
  installAdminHandlers();
  FERRY_LOG(kInfo, "listening: admin address=", core::net::formatSockaddr(admin->address()));
  return true;
}

void Server::Impl::installAdminHandlers() {
  auto getOnly = [](AdminServer::Handler h) -> AdminServer::Handler {
    return [h](const AdminRequest& r) {
      if (r.method != "GET" && r.method != "HEAD")
        return AdminResponse{405, "text/plain; charset=utf-8", "method not allowed\n"};
      return h(r);
    };
  };
  admin->handle("/ready", getOnly([this](const AdminRequest&) {
    if (ready && !draining && !cluster_manager->warming())
      return AdminResponse{200, "text/plain; charset=utf-8", "LIVE\n"};
    return AdminResponse{503, "text/plain; charset=utf-8", draining ? "DRAINING\n" : "STARTING\n"};
  }));
  admin->handle("/metrics", getOnly([this](const AdminRequest&) {
    return AdminResponse{200, "text/plain; version=0.0.4; charset=utf-8", stats->prometheus()};
  }));
  admin->handle("/stats", getOnly([this](const AdminRequest&) {
    return AdminResponse{200, "text/plain; charset=utf-8", stats->plain()};
  }));
  admin->handle("/clusters", getOnly([this](const AdminRequest&) {
    return AdminResponse{200, "application/json", clustersJson()};
  }));
  // Mutations: POST/PUT only, Bearer token when admin.token_file is set.
  auto authorized = [this](const AdminRequest& r) {
    if (admin_token.empty()) return true;
    auto it = r.headers.find("authorization");
    return it != r.headers.end() && it->second == "Bearer " + admin_token;
  };
  admin->handle("/config", [this, authorized](const AdminRequest& r) {
    if (r.method == "GET" || r.method == "HEAD") {
      if (r.param("format") == "yaml")
        return AdminResponse{200, "application/yaml", snapshot->config.redacted_yaml};
      return AdminResponse{200, "application/json", configJson()};
    }
    if (r.method != "PUT") return AdminResponse{405, "text/plain; charset=utf-8", "method not allowed\n"};
    if (!authorized(r)) return AdminResponse{401, "text/plain; charset=utf-8", "unauthorized\n"};
    if (!cfg.admin->allow_config_push)
      return AdminResponse{403, "text/plain; charset=utf-8", "config push is disabled (admin.allow_config_push)\n"};
    return AdminResponse{501, "text/plain; charset=utf-8", "config reload is not supported yet in this build\n"};
  });
  admin->handle("/reload", [authorized](const AdminRequest& r) {
    if (r.method != "POST") return AdminResponse{405, "text/plain; charset=utf-8", "method not allowed\n"};
    if (!authorized(r)) return AdminResponse{401, "text/plain; charset=utf-8", "unauthorized\n"};
    return AdminResponse{501, "text/plain; charset=utf-8", "config reload is not supported yet in this build\n"};
  });
  admin->handle("/", getOnly([](const AdminRequest&) {
    return AdminResponse{200, "text/plain; charset=utf-8",
                         "ferry admin\n  GET /ready\n  GET /metrics\n  GET /stats\n  GET /clusters\n"
                         "  GET /config[?format=yaml]\n  POST /reload (not built yet)\n  PUT /config (not built yet)\n"};
  }));
}

std::string Server::Impl::clustersJson() const { return cluster_manager->json(); }

std::string Server::Impl::configJson() const {
  std::string out = "{\"version\":" + std::to_string(snapshot->version) + ",\"hash\":\"" + snapshot->hash +
                    "\",\"loaded_at\":\"" + isoTime(snapshot->loaded_at_ms) +
                    "\",\"path\":" + jsonString(snapshot->config.path) +
                    ",\"last_reload\":{\"at\":null,\"result\":null,\"errors\":[]},\"config\":";
  out += snapshot->config.json.empty() ? "{}" : snapshot->config.json;
  out += "}\n";
  return out;
}

void Server::Impl::onSignal(int sig) {
  switch (sig) {
    case SIGTERM:
    case SIGINT:
      if (draining) {
        FERRY_LOG(kWarn, "second ", sig == SIGINT ? "SIGINT" : "SIGTERM", ": skipping the rest of the drain");
        finish();
        return;
      }
      FERRY_LOG(kInfo, "received ", sig == SIGINT ? "SIGINT" : "SIGTERM", ": draining");
      startDrain();
      return;
    case SIGHUP:
      FERRY_LOG(kWarn, "SIGHUP: config reload is not supported yet in this build; the running config stays");
      return;
    case SIGUSR1:
      FERRY_LOG(kDebug, "SIGUSR1: no access-log files to reopen");
      return;
  }
}

void Server::Impl::startDrain() {
  draining = true;  // /ready answers 503 from now on
  // Workers: HTTP responses carry "connection: close" from now on.
  for (size_t i = 0; i < workers.size(); ++i) {
    WorkerRuntime* rt = runtimes[i].get();
    workers[i]->post([rt] { rt->draining = true; });
  }
  drain_timer = std::make_unique<asio::steady_timer>(io);
  auto delay = cfg.runtime.drain_delay;
  drain_timer->expires_after(delay);
  drain_timer->async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping) return;
    stopAccepting();
    drain_deadline = std::chrono::steady_clock::now() + cfg.runtime.drain_timeout;
    pollDrain();
  });
}

void Server::Impl::stopAccepting() {
  if (cfg.runtime.drain_timeout.count() > 0) {
    FERRY_LOG(kInfo, "drain: listeners closed; waiting up to ",
              config::formatDuration(cfg.runtime.drain_timeout), " for open connections");
  } else {
    FERRY_LOG(kInfo, "drain: listeners closed; waiting for open connections (drain_timeout 0s: no limit)");
  }
  for (size_t i = 0; i < workers.size(); ++i) {
    WorkerRuntime* rt = runtimes[i].get();
    workers[i]->post([rt] {
      for (auto& l : rt->listeners) l->stopAccepting();
    });
  }
}

void Server::Impl::pollDrain() {
  int64_t open = runtime->connections()->active.load(std::memory_order_relaxed);
  if (open <= 0) {
    FERRY_LOG(kInfo, "drain: all connections closed");
    finish();
    return;
  }
  if (cfg.runtime.drain_timeout.count() > 0 && std::chrono::steady_clock::now() >= drain_deadline) {
    FERRY_LOG(kWarn, "drain: timeout with ", open, " connections still open; closing them");
    finish();
    return;
  }
  // Coarse polling on the main thread only; workers are never asked to report.
  drain_timer->expires_after(std::chrono::milliseconds(20));
  drain_timer->async_wait([this](const boost::system::error_code& ec) {
    if (!ec) pollDrain();
  });
}

void Server::Impl::finish() {
  if (stopping) return;
  stopping = true;
  if (drain_timer) drain_timer->cancel();
  // Each worker tears down its own objects on its own thread, then its loop ends.
  for (size_t i = 0; i < workers.size(); ++i) {
    auto* w = workers[i].get();
    auto* slot = &runtimes[i];
    w->post([w, slot] {
      slot->reset();
      w->stop();
    });
  }
  for (auto& w : workers) w->join();
  if (cluster_manager) cluster_manager->stop();
  if (admin) admin->stop();
  if (signals) {
    boost::system::error_code ec;
    signals->cancel(ec);
  }
  io.stop();
}

int Server::run() {
  auto& s = *impl_;
  ::signal(SIGPIPE, SIG_IGN);
  unsigned n = resolveWorkers(s.cfg.runtime.workers);
  s.stats = std::make_unique<core::StatsStore>(n + 1);
  filters::registerBuiltins(s.registry);
  s.runtime = std::make_unique<Runtime>(s.io, *s.stats, s.registry, n);
  s.cluster_manager = &s.runtime->clusters();
  std::string err;
  s.snapshot = s.runtime->build(s.cfg, &err);
  if (!s.snapshot) {
    FERRY_LOG(kError, "config: ", err);
    return 1;
  }
  for (unsigned i = 0; i < n; ++i) s.workers.push_back(std::make_unique<core::Worker>(i + 1, s.stats->shard(i + 1)));

  // Signals first, so a SIGTERM during startup is not lost.
  s.signals = std::make_unique<asio::signal_set>(s.io, SIGINT, SIGTERM, SIGHUP);
  s.signals->add(SIGUSR1);
  std::function<void()> waitSignal;
  waitSignal = [&s, &waitSignal] {
    s.signals->async_wait([&s, &waitSignal](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      s.onSignal(sig);
      if (!s.stopping) waitSignal();
    });
  };
  waitSignal();

  if (!s.startAdmin()) return 1;
  std::vector<std::vector<int>> fds;
  if (!s.bindListeners(&fds)) return 1;

  for (unsigned i = 0; i < n; ++i) {
    auto rt = std::make_unique<WorkerRuntime>();
    core::Worker* w = s.workers[i].get();
    rt->ctx.io = &w->io();
    rt->ctx.stats = &w->stats();
    rt->ctx.acct = core::net::BufferAccounting{&w->stats(), s.runtime->bufferedBytes()};
    rt->ctx.worker_index = i + 1;
    const size_t slots = s.cluster_manager->slotCount();
    rt->lb = std::make_unique<core::upstream::ClusterLb>(slots, std::random_device{}() * 0x9E3779B97F4A7C15ULL + i);
    for (size_t c = 0; c < slots; ++c) rt->lb->setState(c, s.cluster_manager->state(c));
    rt->ctx.lb = rt->lb.get();
    rt->pools = std::make_unique<core::upstream::PoolManager>(rt->ctx);
    rt->ctx.pools = rt->pools.get();
    rt->ctx.draining = &rt->draining;
    s.runtimes.push_back(std::move(rt));
  }
  for (unsigned i = 0; i < n; ++i) {
    WorkerRuntime* rt = s.runtimes[i].get();
    auto snap = s.snapshot;
    std::vector<int> mine = fds[i];
    const size_t worker_index = i + 1;
    s.workers[i]->post([rt, snap, mine, worker_index] {
      for (const auto& spec : snap->listeners)
        for (const auto& setup : spec->worker_setup) setup(worker_index);
      for (size_t j = 0; j < snap->listeners.size(); ++j) {
        rt->listeners.push_back(
            std::make_unique<core::net::ActiveListener>(rt->ctx, snap->listeners[j], mine[j]));
        rt->listeners.back()->start();
      }
    });
    s.workers[i]->start();
  }
  // From now on a cluster's new table goes to every worker; each installs it on its own thread.
  s.cluster_manager->start([&s](size_t cluster, std::shared_ptr<const core::upstream::LbState> state) {
    for (size_t i = 0; i < s.workers.size(); ++i) {
      WorkerRuntime* rt = s.runtimes[i].get();
      s.workers[i]->post([rt, cluster, state] {
        rt->lb->setState(cluster, state);
        rt->pools->dropRemovedHosts();
      });
    }
  });
  s.runtime->watchCertificates([&s](std::function<void(size_t)> fn) {
    for (size_t i = 0; i < s.workers.size(); ++i) s.workers[i]->post([fn, i] { fn(i + 1); });
  });
  s.ready = true;
  s.started_ms = s.snapshot->loaded_at_ms;
  FERRY_LOG(kInfo, "ferry ", FERRY_VERSION, " started: ", n, " worker", n == 1 ? "" : "s", ", ",
            s.cfg.listeners.size(), " listener", s.cfg.listeners.size() == 1 ? "" : "s");
  s.io.run();
  FERRY_LOG(kInfo, "ferry stopped");
  return 0;
}

}  // namespace ferry::proxy
