// A config reload (SIGHUP, POST /reload, PUT /config, the file watch): validate the new config
// the way startup does, refuse what a reload cannot change, bind the sockets of new
// addresses, build the snapshot (reusing every listener's and cluster's state by name), then
// install it on every worker and retire what it no longer has. Any failure before the install
// changes nothing. Main thread.
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include <boost/asio/post.hpp>

#include "config/values.h"
#include "core/log.h"
#include "core/net/socket_util.h"
#include "proxy/config_check.h"
#include "proxy/sd_notify.h"
#include "proxy/server_impl.h"

namespace ferry::proxy {
namespace {

using config::jsonString;

std::string at(const std::string& path, const config::Mark& m) {
  const int line = m.line > 0 ? m.line : 1;
  const int col = m.col > 0 ? m.col : 1;
  return path + ":" + std::to_string(line) + ":" + std::to_string(col) + ": ";
}


// Writes `text` over `path` atomically (a temporary file in the same directory, then rename),
// keeping the old file's permissions. False and *error (the reason) when it cannot.
bool writeAtomically(const std::string& path, const std::string& text, std::string* error) {
  struct stat st{};
  const mode_t mode = ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0640;
  const std::string tmp = path + ".ferry-tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    *error = "cannot write " + path + ": " + std::strerror(errno);
    return false;
  }
  size_t done = 0;
  bool ok = true;
  while (ok && done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ok = false;
    else done += static_cast<size_t>(n);
  }
  if (ok && ::fsync(fd) != 0) ok = false;
  const int saved = errno;
  ::close(fd);
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) ok = false;
  if (!ok) {
    *error = "cannot write " + path + ": " + std::strerror(errno != 0 ? errno : saved);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

void closeAll(const InstallPlan& plan) {
  for (const auto& p : plan.listeners)
    for (const auto& v : p.fds)
      for (int fd : v) ::close(fd);
}

int64_t unixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string list(const std::vector<std::string>& names) {
  std::string out = "[";
  for (size_t i = 0; i < names.size(); ++i) out += (i ? "," : "") + jsonString(names[i]);
  return out + "]";
}

}  // namespace

std::string canonicalAddress(const config::Address& a) {
  sockaddr_storage ss{};
  if (!core::net::makeSockaddr(a.host, a.port, &ss)) return a.text;
  return core::net::formatSockaddr(ss);
}

void logListening(const config::ListenerConfig& l, const std::vector<std::vector<int>>& fds) {
  sockaddr_storage addr{};
  if (fds.empty() || fds[0].empty() || !core::net::localAddress(fds[0][0], &addr)) return;
  FERRY_LOG(kInfo, "listening: listener=", l.name, " address=", core::net::formatSockaddr(addr));
}

std::string Server::Impl::socketKey(const config::ListenerConfig& l) {
  // Port 0 asks the kernel for a port: such a socket is the listener's own, kept by name.
  if (l.address.port == 0) return l.name + "@" + canonicalAddress(l.address);
  return canonicalAddress(l.address);
}

std::vector<std::vector<int>> Server::Impl::bindListener(const config::ListenerConfig& l, std::string* error) {
  sockaddr_storage addr{};
  core::net::makeSockaddr(l.address.host, l.address.port, &addr);
  std::vector<std::vector<int>> fds(workers.size());
  for (size_t w = 0; w < workers.size(); ++w) {
    int fd = core::net::listenSocket(addr, 4096, true, error);
    if (fd < 0) {
      for (auto& v : fds)
        for (int f : v) ::close(f);
      return {};
    }
    // Port 0: the kernel picked one for the first socket; every worker shares it.
    if (w == 0) core::net::localAddress(fd, &addr);
    fds[w].push_back(fd);
  }
  return fds;
}

ReloadOutcome Server::Impl::reload(const std::string& trigger, const std::string* yaml) {
  // A big config's parse tree is freed by the time a reload ends; give that memory back to
  // the system instead of keeping it in the main thread's heap (glibc keeps freed memory:
  // a 10,000-route config grew RSS by about 190 MB over a few reloads).
  struct Trim {
    ~Trim() { ::malloc_trim(0); }
  } trim;
  const auto t0 = std::chrono::steady_clock::now();
  ReloadOutcome out;
  auto fail = [&](std::vector<std::string> errors) {
    out.ok = false;
    out.errors = std::move(errors);
    stats->shard(0).inc(reloads_failed);
    recordReload(ReloadRecord{unixMs(), false, trigger, out.errors, snapshot->version});
    FERRY_LOG(kError, "config reload (", trigger, ") rejected; the running config (version ",
              snapshot->version, ") stays:");
    for (const auto& e : out.errors) FERRY_LOG(kError, "  ", e);
    return out;
  };
  if (draining || stopping) return fail({"the process is draining: reloads are refused"});
  sdNotify("RELOADING=1\nSTATUS=reloading (" + trigger + ")");
  struct Ready {  // systemd hears READY=1 again however the reload ends
    ~Ready() { sdNotify("READY=1\nSTATUS=" + *status); }
    const std::string* status;
  };
  std::string status_line = "serving";
  Ready ready_again{&status_line};

  // 1. The whole check, as --validate and startup run it.
  config::LoadResult loaded = yaml ? loadConfigString(*yaml, cfg.path, registry) : loadConfigFile(cfg.path, registry);
  if (!loaded.errors.empty()) {
    std::vector<std::string> errors;
    for (const auto& e : loaded.errors) errors.push_back(e.format());
    return fail(std::move(errors));
  }
  config::Config next = std::move(*loaded.config);
  const auto t_loaded = std::chrono::steady_clock::now();
  if (options.workers) next.runtime.workers = *options.workers;
  if (options.log_level) next.runtime.log_level = *options.log_level;
  if (options.io && (options.io_forced || next.runtime.io_mark.line == 0)) next.runtime.io = *options.io;

  // 2. What only a restart or a binary upgrade changes.
  std::vector<std::string> errors;
  if (next.runtime.workers != cfg.runtime.workers)
    errors.push_back(at(cfg.path, next.runtime.workers_mark.line ? next.runtime.workers_mark : next.runtime.mark) +
                     "runtime.workers cannot change by reload (running " + std::to_string(cfg.runtime.workers) +
                     ", now " + std::to_string(next.runtime.workers) +
                     "): restart, or upgrade the binary (--upgrade-from)");
  // Set once at startup: the process's user (the privileges are gone) and its log file.
  auto immutable = [&](const char* key, const std::string& was, const std::string& now, const config::Mark& m) {
    if (was == now) return;
    auto shown = [](const std::string& v) { return v.empty() ? std::string("none") : "'" + v + "'"; };
    errors.push_back(at(cfg.path, m.line ? m : next.runtime.mark) + "runtime." + key +
                     " cannot change by reload (running " + shown(was) + ", now " + shown(now) +
                     "): restart, or upgrade the binary (--upgrade-from)");
  };
  immutable("user", cfg.runtime.user, next.runtime.user, next.runtime.user_mark);
  immutable("group", cfg.runtime.group, next.runtime.group, next.runtime.group_mark);
  immutable("log_file", cfg.runtime.log_file, next.runtime.log_file, next.runtime.log_file_mark);
  immutable("io", cfg.runtime.io, next.runtime.io, next.runtime.io_mark);
  // The same admin address: as configured, or the address it is bound to (a port 0 made
  // explicit).
  auto sameAdmin = [&] {
    if (!cfg.admin || !next.admin) return cfg.admin.has_value() == next.admin.has_value();
    const std::string want = canonicalAddress(next.admin->address);
    return want == canonicalAddress(cfg.admin->address) || (admin && want == core::net::formatSockaddr(admin->address()));
  };
  if (!sameAdmin())
    errors.push_back(at(cfg.path, next.admin ? next.admin->address.mark : config::Mark{}) +
                     "admin.address cannot change by reload (running " +
                     (cfg.admin ? cfg.admin->address.text : std::string("no admin")) + ", now " +
                     (next.admin ? next.admin->address.text : std::string("no admin")) +
                     "): restart, or upgrade the binary (--upgrade-from)");
  if (!errors.empty()) return fail(std::move(errors));

  // 3. Sockets: an address the running config has keeps its sockets (closing a SO_REUSEPORT
  // socket would drop its accept queue); a new one is bound now, so that a port in use
  // rejects the reload before anything changes.
  std::map<std::string, const BoundListener*> running;
  for (const auto& b : bound) running.emplace(b.key, &b);
  InstallPlan plan;
  plan.drain_timeout = next.runtime.drain_timeout;
  std::vector<BoundListener> next_bound;
  std::set<std::string> kept;
  std::vector<std::string> added, drained, updated, removed;
  for (const auto& l : next.listeners) {
    ListenerPlan p;
    std::vector<int> kept_fds;
    const std::string key = socketKey(l);
    auto it = running.find(key);
    if (it != running.end()) {
      const BoundListener& b = *it->second;
      p.keep = b.cfg.name;
      kept_fds = b.fds;
      p.drain_old = b.cfg.name != l.name || listenerChanged(b.cfg, l);
      kept.insert(b.cfg.name);
      if (p.drain_old) {
        drained.push_back(l.name);
      } else if (!(b.cfg == l)) {
        updated.push_back(l.name);
      }
    } else {
      std::string err;
      p.fds = bindListener(l, &err);
      if (p.fds.empty()) {
        closeAll(plan);
        return fail({at(cfg.path, l.address.mark) + "listener '" + l.name + "': " + err});
      }
      added.push_back(l.name);
    }
    next_bound.push_back(BoundListener{l, key, kept_fds});  // new sockets: copies made at install
    plan.listeners.push_back(std::move(p));
  }
  for (const auto& b : bound)
    if (!kept.count(b.cfg.name)) {
      plan.retire.push_back(b.cfg.name);
      removed.push_back(b.cfg.name);
    }

  // 4. A pushed config replaces the -c file before it applies, so that a later SIGHUP keeps it.
  if (yaml) {
    std::string err;
    if (!writeAtomically(cfg.path, *yaml, &err)) {
      closeAll(plan);
      return fail({err + " (nothing was applied)"});
    }
  }

  // 5. The snapshot: unchanged listeners and clusters keep their state, changed clusters are
  // updated in place.
  std::string err;
  const auto t_build = std::chrono::steady_clock::now();
  auto snap = runtime->build(std::move(next), &err);
  if (!snap) {
    closeAll(plan);
    std::string restore_err;
    if (yaml && !writeAtomically(cfg.path, cfg.yaml, &restore_err))  // the running config's text again
      FERRY_LOG(kError, "config: ", restore_err, " (restoring the running config's file)");
    return fail({cfg.path + ": " + err});
  }

  // What changed, from the snapshots: an unchanged cluster is the very same object.
  std::vector<std::string> clusters_added, clusters_updated;
  for (const auto& c : snap->clusters) {
    auto before = snapshot->cluster(c->name());
    if (!before) clusters_added.push_back(c->name());
    else if (before != c) clusters_updated.push_back(c->name());
  }

  // 6. Install: every worker takes the snapshot in order with what was posted before; what
  // left drains there. Removed clusters go after (their workers have the new routes first).
  for (size_t j = 0; j < plan.listeners.size(); ++j)
    if (plan.listeners[j].keep.empty()) next_bound[j].fds = socketCopies(plan.listeners[j].fds);
  for (size_t j = 0; j < plan.listeners.size(); ++j) {  // new sockets and new names, now that they serve
    const ListenerPlan& p = plan.listeners[j];
    if (p.keep.empty()) logListening(next_bound[j].cfg, p.fds);
    else if (p.keep != next_bound[j].cfg.name) logListening(next_bound[j].cfg, {next_bound[j].fds});
  }
  install(snap, std::move(plan), true);  // success is reported once every worker runs it
  for (const auto& b : bound)
    if (!kept.count(b.cfg.name))
      for (int fd : b.fds) ::close(fd);
  std::vector<std::string> clusters_removed = runtime->removeClustersNotIn(*snap);

  snapshot = snap;
  cfg = snap->config;
  bound = std::move(next_bound);
  core::log::setLevel(static_cast<core::log::Level>(static_cast<int>(cfg.runtime.log_level)));
  core::log::setFormat(cfg.runtime.log_format == config::RuntimeConfig::LogFormat::kJson ? core::log::Format::kJson
                                                                                        : core::log::Format::kText);
  if (cfg.admin) {
    std::string token_err;
    if (!loadAdminToken(*cfg.admin, &token_err)) FERRY_LOG(kError, token_err, " (the previous token stays)");
  }
  file_hash = snap->hash;
  watchConfig();

  const auto t_end = std::chrono::steady_clock::now();
  auto msText = [](std::chrono::steady_clock::duration d) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3f",
                  static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(d).count()) / 1000.0);
    return std::string(b);
  };
  const std::string ms = msText(t_end - t0);
  out.ok = true;
  out.summary_json = "{\"result\":\"success\",\"trigger\":" + jsonString(trigger) +
                     ",\"version\":" + std::to_string(snap->version) + ",\"hash\":\"" + snap->hash +
                     "\",\"duration_ms\":" + ms + ",\"load_ms\":" + msText(t_loaded - t0) +
                     ",\"build_ms\":" + msText(t_end - t_build) +
                     ",\"listeners\":{\"added\":" + list(added) + ",\"removed\":" + list(removed) +
                     ",\"drained\":" + list(drained) + ",\"updated\":" + list(updated) +
                     "},\"clusters\":{\"added\":" + list(clusters_added) + ",\"removed\":" + list(clusters_removed) +
                     ",\"updated\":" + list(clusters_updated) + "}}";
  stats->shard(0).inc(reloads_ok);
  status_line = "serving: config version " + std::to_string(snap->version);
  recordReload(ReloadRecord{unixMs(), true, trigger, {}, snap->version});
  FERRY_LOG(kInfo, "config reloaded (", trigger, "): version ", snap->version, " in ", ms, " ms (load and check ", msText(t_loaded - t0),
            " ms, build ", msText(t_end - t_build), " ms); listeners +", added.size(), " -", removed.size(), " drained ",
            drained.size(), " updated ", updated.size(), "; clusters +", clusters_added.size(), " -",
            clusters_removed.size(), " updated ", clusters_updated.size());
  return out;
}

void Server::Impl::watchConfig() {
  if (!cfg.runtime.watch_config) {
    if (!config_watcher) return;
    FERRY_LOG(kInfo, "config: no longer watching ", cfg.path);
    // Possibly from inside the watcher's own callback: it goes once that has returned.
    asio::post(io, [w = std::shared_ptr<core::FileWatcher>(std::move(config_watcher))] {});
    config_watch = 0;
    return;
  }
  if (config_watcher) return;
  config_watcher = std::make_unique<core::FileWatcher>(io);
  config_watch = config_watcher->watch({cfg.path}, [this] {
    if (draining || stopping) return;
    const std::string h = core::FileWatcher::contentHash(cfg.path);
    if (h.empty() || h == file_hash) {
      FERRY_LOG(kDebug, "config: ", cfg.path, " ", h.empty() ? "is unreadable" : "has the running content",
                ": no reload");
      return;
    }
    reload("file watch", nullptr);
  });
  FERRY_LOG(kInfo, "config: watching ", cfg.path, " (runtime.watch_config)");
}

}  // namespace ferry::proxy
