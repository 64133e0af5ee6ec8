#include "proxy/server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <climits>

#include <boost/asio/post.hpp>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "config/values.h"
#include "core/event/uring.h"
#include "core/log.h"
#include "core/http/access_log.h"
#include "core/reopenable_file.h"
#include "core/net/socket_util.h"
#include "core/upstream/cluster_manager.h"
#include "proxy/privileges.h"
#include "proxy/reload_client.h"
#include "proxy/sd_notify.h"
#include "proxy/server_impl.h"

namespace ferry::proxy {

namespace {

// runtime.io: `epoll` runs epoll; `io_uring` runs io_uring or fails startup; `auto` runs
// io_uring where the kernel (and any seccomp filter) allows it, epoll otherwise: io_uring
// used less CPU per request on HTTP/1.1, HTTPS and h2c in the A/B runs (docs/performance.md).
// Logs the choice, and for auto on epoll, why.
core::Worker::Io chooseIo(const std::string& configured, std::string* err) {
  if (configured == "epoll") {
    FERRY_LOG(kInfo, "I/O backend: epoll (runtime.io: epoll)");
    return core::Worker::Io::kEpoll;
  }
  std::string why;
  if (core::Uring::probe(&why)) {
    FERRY_LOG(kInfo, "I/O backend: io_uring (runtime.io: ", configured, ")");
    return core::Worker::Io::kIoUring;
  }
  if (configured == "auto") {
    FERRY_LOG(kInfo, "I/O backend: epoll (runtime.io: auto; io_uring is not available here: ", why, ")");
    return core::Worker::Io::kEpoll;
  }
  *err = "runtime.io: io_uring is not available here: " + why + " (use io: auto or epoll)";
  return core::Worker::Io::kEpoll;
}

unsigned resolveWorkers(uint32_t configured) {
  if (configured > 0) return configured;
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

std::string selfExe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string path(buf, static_cast<size_t>(n));
  // A binary replaced on disk (a package upgrade) shows as "PATH (deleted)": PATH is the new one.
  const std::string deleted = " (deleted)";
  if (path.size() > deleted.size() && path.compare(path.size() - deleted.size(), deleted.size(), deleted) == 0)
    path.resize(path.size() - deleted.size());
  return path;
}

// On a worker: a listener that no longer accepts waits in `retired` for its last connection.
void retire(WorkerRuntime* rt, std::unique_ptr<core::net::ActiveListener> l) {
  rt->retired.push_front(std::move(l));
  auto it = rt->retired.begin();
  (*it)->onEmpty([rt, it] { rt->retired.erase(it); });
}

// On worker `w`: installs `snap` as `plan` says.
void installOnWorker(WorkerRuntime* rt, size_t w, const std::shared_ptr<const Snapshot>& snap, const InstallPlan& plan) {
  for (const auto& spec : snap->listeners)
    for (const auto& setup : spec->worker_setup) setup(w);
  std::multimap<std::string, std::unique_ptr<core::net::ActiveListener>> running;
  for (auto& l : rt->listeners) {
    std::string name = l->name();
    running.emplace(std::move(name), std::move(l));
  }
  rt->listeners.clear();
  for (size_t j = 0; j < snap->listeners.size(); ++j) {
    const auto& spec = snap->listeners[j];
    const ListenerPlan& p = plan.listeners[j];
    if (!p.keep.empty()) {
      auto [b, e] = running.equal_range(p.keep);
      for (auto it = b; it != e; ++it) {
        auto& l = it->second;
        if (p.drain_old) l->drainConnections(plan.drain_timeout);
        l->setSpec(spec);  // later connections; open ones keep theirs
        rt->listeners.push_back(std::move(l));
      }
      running.erase(b, e);
      continue;
    }
    for (int fd : p.fds[w - 1]) {
      rt->listeners.push_back(std::make_unique<core::net::ActiveListener>(rt->ctx, spec, fd));
      rt->listeners.back()->start();
    }
  }
  for (auto& [name, l] : running) {  // removed, or moved to another address
    l->stopAccepting();
    l->drainConnections(plan.drain_timeout);
    retire(rt, std::move(l));
  }
}

}  // namespace

std::vector<int> socketCopies(const std::vector<std::vector<int>>& fds) {
  std::vector<int> out;
  for (const auto& v : fds)
    for (int fd : v) {
      int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (d >= 0) out.push_back(d);
    }
  return out;
}

void Server::Impl::startWatchdog() {
  auto interval = sdWatchdogInterval();
  if (!interval) return;
  const auto every = std::chrono::duration_cast<std::chrono::milliseconds>(*interval) / 2;
  FERRY_LOG(kInfo, "systemd watchdog: WATCHDOG=1 every ", every.count(), " ms");
  watchdog_timer = std::make_unique<asio::steady_timer>(io);
  auto beat = std::make_shared<std::function<void()>>();
  *beat = [this, every, weak = std::weak_ptr<std::function<void()>>(beat)] {
    sdNotify("WATCHDOG=1");
    watchdog_timer->expires_after(every);
    watchdog_timer->async_wait([weak](const boost::system::error_code& ec) {
      if (auto b = weak.lock(); b && !ec) (*b)();
    });
  };
  watchdog_beat = beat;
  (*beat)();
}

Server::Server(config::Config cfg, ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(cfg), std::move(options))) {}
Server::~Server() = default;

void Server::Impl::install(const std::shared_ptr<const Snapshot>& snap, InstallPlan plan, bool wait) {
  auto shared = std::make_shared<const InstallPlan>(std::move(plan));
  auto run = [snap, shared](WorkerRuntime* rt) { installOnWorker(rt, rt->ctx.worker_index, snap, *shared); };
  if (wait) {
    onEveryWorker(run, "config install");
  } else {
    postToEveryWorker(run);
  }
}

void Server::Impl::postToEveryWorker(std::function<void(WorkerRuntime*)> fn) {
  auto shared = std::make_shared<const std::function<void(WorkerRuntime*)>>(std::move(fn));
  for (size_t i = 0; i < workers.size(); ++i) {
    WorkerRuntime* rt = runtimes[i].get();
    workers[i]->post([rt, shared] { (*shared)(rt); });
  }
}

void Server::Impl::onEveryWorker(const std::function<void(WorkerRuntime*)>& fn, const char* what) {
  struct Done {
    std::mutex m;
    std::condition_variable cv;
    size_t left;
  };
  auto done = std::make_shared<Done>();
  done->left = workers.size();
  postToEveryWorker([fn, done](WorkerRuntime* rt) {
    fn(rt);
    std::lock_guard<std::mutex> lock(done->m);
    if (--done->left == 0) done->cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(done->m);
  if (!done->cv.wait_for(lock, std::chrono::seconds(5), [&] { return done->left == 0; }))
    FERRY_LOG(kWarn, what, ": ", done->left, " worker", done->left == 1 ? "" : "s",
              " did not answer within 5 s; going on without waiting");
}

bool Server::Impl::loadAdminToken(const config::AdminConfig& a, std::string* error) {
  if (a.token_file.empty()) {
    admin_token.clear();
    return true;
  }
  std::string token = readAdminToken(a.token_file);
  if (token.empty()) {
    *error = "admin: token_file " + a.token_file + " is unreadable or empty";
    return false;
  }
  admin_token = std::move(token);
  return true;
}

bool Server::Impl::startAdmin() {
  if (!cfg.admin) return true;
  sockaddr_storage addr{};
  core::net::makeSockaddr(cfg.admin->address.host, cfg.admin->address.port, &addr);
  std::string err;
  if (!loadAdminToken(*cfg.admin, &err)) {
    FERRY_LOG(kError, err);
    return false;
  }
  admin = std::make_unique<AdminServer>(io);
  const int inherited_fd = inheritedAdmin();
  if (inherited_fd >= 0 ? !admin->adopt(inherited_fd, &err) : !admin->start(addr, &err)) {
    FERRY_LOG(kError, "admin: ", err);
    return false;
  }
  installAdminHandlers();
  FERRY_LOG(kInfo, "listening: admin address=", core::net::formatSockaddr(admin->address()));
  return true;
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
      beginDrain(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM"));
      return;
    case SIGHUP:
      reload("SIGHUP", nullptr);
      return;
    case SIGUSR1: {
      // logrotate: the files were renamed; each path is opened again (the log file; later
      // the access logs, through the same hook).
      std::vector<std::string> errors;
      const size_t n = core::ReopenableFile::reopenAll(&errors);
      for (const auto& e : errors) FERRY_LOG(kError, "SIGUSR1: ", e, " (the old file stays in use)");
      FERRY_LOG(kInfo, "SIGUSR1: reopened ", n, " log file", n == 1 ? "" : "s");
      return;
    }
    case SIGUSR2:
      spawnUpgrade();
      return;
    case SIGCHLD:
      reapChildren();
      return;
  }
}

bool Server::Impl::beginDrain(const std::string& why) {
  if (draining || stopping) return false;
  FERRY_LOG(kInfo, why, ": draining");
  startDrain();
  return true;
}

void Server::Impl::startDrain() {
  draining = true;  // /ready answers 503 from now on
  sdNotify("STOPPING=1\nSTATUS=draining");
  // Workers: HTTP responses carry "connection: close" from now on (drain_delay: a load
  // balancer still sends, and sees the notice).
  postToEveryWorker([](WorkerRuntime* rt) { rt->draining = true; });
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
  closeSocketCopies();
  // Waited for: until a worker has run this it may still accept, and pollDrain must not see
  // "no connections" before the last one is counted (it would end the process under it).
  onEveryWorker(
      [](WorkerRuntime* rt) {
        // Idle connections close now; busy ones after their response (the drain notice).
        for (auto& l : rt->listeners) {
          l->stopAccepting();
          l->drainConnections(std::chrono::milliseconds(0));
        }
      },
      "drain: closing listeners");
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
  if (watchdog_timer) watchdog_timer->cancel();
  config_watcher.reset();
  upgrade_server.reset();
  closeSocketCopies();
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
  core::http::shutdownAccessLogs();  // the writers flush what the workers handed them
  if (cluster_manager) cluster_manager->stop();
  if (admin) admin->stop();
  if (signals) {
    boost::system::error_code ec;
    signals->cancel(ec);
  }
  io.stop();
}

// Every connection is a descriptor (two when proxied): the soft limit goes up to the hard one,
// as HAProxy does; the limit is logged.
static void raiseDescriptorLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  const rlim_t before = rl.rlim_cur;
  // An unlimited hard limit still stops at the kernel's nr_open (1048576 by default).
  const rlim_t target = rl.rlim_max == RLIM_INFINITY ? rlim_t{1} << 20 : rl.rlim_max;
  if (rl.rlim_cur < target) {
    rl.rlim_cur = target;
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) rl.rlim_cur = before;
  }
  if (rl.rlim_cur == before)
    FERRY_LOG(kInfo, "file descriptors: limit ", static_cast<uint64_t>(rl.rlim_cur));
  else
    FERRY_LOG(kInfo, "file descriptors: limit ", static_cast<uint64_t>(rl.rlim_cur), " (raised from ",
              static_cast<uint64_t>(before), ")");
}

int Server::run() {
  auto& s = *impl_;
  ::signal(SIGPIPE, SIG_IGN);
  std::string err;
  if (!checkRuntimeUser(s.cfg.runtime, &err)) {
    FERRY_LOG(kError, err);
    return 1;
  }
  raiseDescriptorLimit();
  unsigned n = resolveWorkers(s.cfg.runtime.workers);
  s.stats = std::make_unique<core::StatsStore>(n + 1);
  const std::string help = "Config reloads (SIGHUP, POST /reload, PUT /config, file watch), by result.";
  s.reloads_ok = s.stats->counter("ferry_config_reloads_total", {{"result", "success"}}, help);
  s.reloads_failed = s.stats->counter("ferry_config_reloads_total", {{"result", "failure"}}, help);
  filters::registerBuiltins(s.registry);
  s.runtime = std::make_unique<Runtime>(s.io, *s.stats, s.registry, n);
  s.cluster_manager = &s.runtime->clusters();
  s.file_hash = core::FileWatcher::contentHash(s.cfg.path);
  s.snapshot = s.runtime->build(s.cfg, &err);
  if (!s.snapshot) {
    FERRY_LOG(kError, "config: ", err);
    return 1;
  }
  s.runtime->removeClustersNotIn(*s.snapshot);  // none: records the running set
  const core::Worker::Io io = chooseIo(s.cfg.runtime.io, &err);
  if (!err.empty()) {
    FERRY_LOG(kError, err);
    return 1;
  }
  for (unsigned i = 0; i < n; ++i)
    s.workers.push_back(std::make_unique<core::Worker>(i + 1, s.stats->shard(i + 1), io));

  // Signals first, so a SIGTERM during startup is not lost.
  s.signals = std::make_unique<asio::signal_set>(s.io, SIGINT, SIGTERM, SIGHUP);
  s.signals->add(SIGUSR1);
  s.signals->add(SIGUSR2);
  s.signals->add(SIGCHLD);
  s.exe_path = selfExe();
  std::function<void()> waitSignal;
  waitSignal = [&s, &waitSignal] {
    s.signals->async_wait([&s, &waitSignal](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      s.onSignal(sig);
      if (!s.stopping) waitSignal();
    });
  };
  waitSignal();

  if (!s.options.upgrade_from.empty() && !s.receiveSockets()) return 1;
  if (!s.startAdmin()) return 1;
  InstallPlan plan;
  plan.drain_timeout = s.cfg.runtime.drain_timeout;
  for (const auto& l : s.cfg.listeners) {
    ListenerPlan p;
    p.fds = s.inheritedSockets(l, &err);
    if (p.fds.empty() && err.empty()) {
      p.fds = s.bindListener(l, &err);
      if (!p.fds.empty()) logListening(l, p.fds);
    }
    if (p.fds.empty()) {
      FERRY_LOG(kError, "listener ", l.name, ": ", err);
      for (auto& done : plan.listeners)
        for (auto& v : done.fds)
          for (int fd : v) ::close(fd);
      s.closeUnusedInherited();
      return 1;
    }
    s.bound.push_back(BoundListener{l, Impl::socketKey(l), socketCopies(p.fds)});
    plan.listeners.push_back(std::move(p));
  }
  s.closeUnusedInherited();
  s.startUpgradeServer();
  // Every socket is bound and no other thread runs yet: the one moment to drop to
  // runtime.user (capabilities are per thread; the workers inherit the main thread's).
  if (!dropPrivileges(s.cfg.runtime, &err)) {
    FERRY_LOG(kError, err);
    for (auto& p : plan.listeners)
      for (auto& v : p.fds)
        for (int fd : v) ::close(fd);
    return 1;
  }

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
    rt->tracing = std::make_unique<core::tracing::WorkerTracing>(rt->ctx);
    rt->ctx.tracing = rt->tracing.get();
    rt->ctx.draining = &rt->draining;
    rt->ctx.health_failed = &s.health_failed;
    s.runtimes.push_back(std::move(rt));
  }
  s.install(s.snapshot, std::move(plan), false);  // the workers run it first when they start
  for (auto& w : s.workers) w->start();
  // From now on a cluster's new table goes to every worker; each installs it on its own thread.
  s.cluster_manager->start([&s](size_t cluster, std::shared_ptr<const core::upstream::LbState> state) {
    s.postToEveryWorker([cluster, state](WorkerRuntime* rt) {
      rt->lb->setState(cluster, state);
      rt->pools->dropRemovedHosts();
    });
  });
  // Waits until every worker runs it, as a config reload does: once the reload is counted and
  // logged, every new handshake gets the new certificate, whichever worker accepts it.
  s.runtime->watchCertificates([&s](std::function<void(size_t)> fn) {
    s.onEveryWorker([fn](WorkerRuntime* rt) { fn(rt->ctx.worker_index); }, "certificate reload");
  });
  s.watchConfig();
  s.ready = true;
  s.started_ms = s.snapshot->loaded_at_ms;
  FERRY_LOG(kInfo, "ferry ", FERRY_VERSION, " started: ", n, " worker", n == 1 ? "" : "s", ", ",
            s.cfg.listeners.size(), " listener", s.cfg.listeners.size() == 1 ? "" : "s");
  const std::string status = "STATUS=serving: " + std::to_string(s.cfg.listeners.size()) + " listeners, " +
                             std::to_string(n) + " workers, config version 1";
  if (s.upgrade_session.connected()) {
    // Serving on the inherited sockets (the workers accept once their install task runs;
    // until then connections wait in the shared queues): the old process may drain now.
    if (!s.upgrade_session.sendDrain(&err))
      FERRY_LOG(kWarn, "upgrade: the old process did not acknowledge DRAIN: ", err, " (it may still be serving)");
    else
      FERRY_LOG(kInfo, "upgrade: took over from ", s.options.upgrade_from);
    sdNotify("MAINPID=" + std::to_string(::getpid()) + "\nREADY=1\n" + status);
  } else {
    sdNotify("READY=1\n" + status);
  }
  s.startWatchdog();
  s.io.run();
  FERRY_LOG(kInfo, "ferry stopped");
  return 0;
}

}  // namespace ferry::proxy
