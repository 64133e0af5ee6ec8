// Binary upgrade (hot restart), both sides, on the main thread.
//
// Old: listens on the abstract Unix socket "ferry-upgrade-<pid>" (proxy/upgrade.h). A new
// process started with --upgrade-from <pid> (by hand, or by this process on SIGUSR2) receives
// the admin socket and every listener's sockets (SCM_RIGHTS), starts serving on them, then
// says DRAIN: the old process stops accepting (the sockets stay open: the new one holds
// them, so no connection is refused and none waiting in an accept queue is lost), drains its
// connections for drain_timeout and exits 0.
//
// New: a listener whose socket key (address) matches an inherited one takes its sockets,
// spread round-robin over its own workers (a worker may get several; when there are fewer
// sockets than workers, the others bind more to the same SO_REUSEPORT group). Inherited
// sockets no listener wants are closed. A listener with a new address binds as usual.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "core/log.h"
#include "core/net/socket_util.h"
#include "proxy/sd_notify.h"
#include "proxy/server_impl.h"

namespace ferry::proxy {
namespace {

constexpr auto kUpgradeTimeout = std::chrono::seconds(10);

}  // namespace

bool Server::Impl::receiveSockets() {
  UpgradeTarget target;
  std::string err;
  if (!parseUpgradeTarget(options.upgrade_from, &target, &err)) {
    FERRY_LOG(kError, "--upgrade-from: ", err);
    return false;
  }
  if (!fetchInventory(target, kUpgradeTimeout, &upgrade_session, &inherited, &err)) {
    FERRY_LOG(kError, "upgrade: cannot take the sockets of ", options.upgrade_from, ": ", err);
    return false;
  }
  size_t n = 0, listeners = 0;
  for (const auto& item : inherited) {
    n += item.fds.size();
    if (item.kind == "listener") ++listeners;
  }
  FERRY_LOG(kInfo, "upgrade: received ", n, " socket", n == 1 ? "" : "s", " (", listeners, " listener",
            listeners == 1 ? "" : "s", n > 0 && listeners < inherited.size() ? " and admin" : "", ") from ",
            options.upgrade_from);
  // The watchdog systemd set up for the old main process is ours once we are the main one.
  if (target.pid > 0) {
    const char* wpid = std::getenv("WATCHDOG_PID");
    if (wpid != nullptr && std::to_string(target.pid) == wpid) ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  }
  return true;
}

std::vector<std::vector<int>> Server::Impl::inheritedSockets(const config::ListenerConfig& l, std::string* error) {
  const std::string key = socketKey(l);
  for (auto& item : inherited) {
    if (item.kind != "listener" || item.address != key || item.fds.empty()) continue;
    std::vector<std::vector<int>> fds(workers.size());
    for (size_t i = 0; i < item.fds.size(); ++i) fds[i % workers.size()].push_back(item.fds[i]);
    const size_t have = item.fds.size();
    item.fds.clear();  // ours now
    if (have < workers.size()) {
      sockaddr_storage addr{};
      core::net::localAddress(fds[0][0], &addr);
      for (size_t w = have; w < workers.size(); ++w) {
        int fd = core::net::listenSocket(addr, 4096, true, error);
        if (fd < 0) {
          for (auto& v : fds)
            for (int f : v) ::close(f);
          return {};
        }
        fds[w].push_back(fd);
      }
    }
    sockaddr_storage bound{};
    core::net::localAddress(fds[0][0], &bound);
    FERRY_LOG(kInfo, "listening: listener=", l.name, " address=", core::net::formatSockaddr(bound), " (", have,
              " inherited socket", have == 1 ? "" : "s", ")");
    return fds;
  }
  return {};
}

int Server::Impl::inheritedAdmin() {
  if (!cfg.admin) return -1;
  const std::string want = canonicalAddress(cfg.admin->address);
  for (auto& item : inherited) {
    if (item.kind != "admin" || item.address != want || item.fds.size() != 1) continue;
    int fd = item.fds[0];
    item.fds.clear();
    return fd;
  }
  return -1;
}

void Server::Impl::closeUnusedInherited() {
  for (auto& item : inherited) {
    if (!item.fds.empty())
      FERRY_LOG(kInfo, "upgrade: ", item.kind, " ", item.name, " ", item.address,
                " is not in this config: its inherited sockets are closed");
    for (int fd : item.fds) ::close(fd);
    item.fds.clear();
  }
  inherited.clear();
}

void Server::Impl::startUpgradeServer() {
  upgrade_server = std::make_unique<UpgradeServer>(io);
  upgrade_server->inventory = [this] {
    Inventory inv;
    if (handed_over || draining || stopping) return inv;  // nothing to hand over any more
    if (admin && admin->nativeHandle() >= 0) inv.push_back(InventoryItem{"admin", "", canonicalAddress(cfg.admin->address), {admin->nativeHandle()}});
    for (const auto& b : bound) inv.push_back(InventoryItem{"listener", b.cfg.name, b.key, b.fds});
    return inv;
  };
  upgrade_server->on_drain = [this](pid_t pid) { onHandedOver(pid); };
  std::string err;
  if (!upgrade_server->start(upgradeSocketName(::getpid()), &err)) {
    FERRY_LOG(kWarn, "upgrade: cannot listen for a binary upgrade: ", err, " (upgrades are off)");
    upgrade_server.reset();
  }
}

void Server::Impl::onHandedOver(pid_t new_pid) {
  if (handed_over || stopping) return;
  handed_over = true;
  FERRY_LOG(kInfo, "upgrade: pid ", new_pid, " serves the listeners now; draining");
  sdNotifyPid(new_pid, "READY=1\nSTATUS=handed over to pid " + std::to_string(new_pid));
  if (admin) admin->stop();  // the new process accepts on the same admin socket
  upgrade_server->stop();
  // The drain without drain_delay: the sockets go on accepting in the new process, so there
  // is nothing for a load balancer to notice.
  draining = true;
  postToEveryWorker([](WorkerRuntime* rt) { rt->draining = true; });
  if (!drain_timer) drain_timer = std::make_unique<asio::steady_timer>(io);
  drain_timer->cancel();
  stopAccepting();
  drain_deadline = std::chrono::steady_clock::now() + cfg.runtime.drain_timeout;
  pollDrain();
}

void Server::Impl::closeSocketCopies() {
  for (auto& b : bound) {
    for (int fd : b.fds) ::close(fd);
    b.fds.clear();
  }
}

void Server::Impl::spawnUpgrade() {
  if (draining || stopping) {
    FERRY_LOG(kWarn, "SIGUSR2: the process is draining; no upgrade");
    return;
  }
  if (upgrade_child > 0) {
    FERRY_LOG(kWarn, "SIGUSR2: an upgrade (pid ", upgrade_child, ") is already under way");
    return;
  }
  if (!upgrade_server) {
    FERRY_LOG(kError, "SIGUSR2: upgrades are off (no upgrade socket)");
    return;
  }
  std::vector<std::string> args;
  for (size_t i = 1; i < options.argv.size(); ++i) {
    if (options.argv[i] == "--upgrade-from") {
      ++i;  // and its value
      continue;
    }
    args.push_back(options.argv[i]);
  }
  args.push_back("--upgrade-from");
  args.push_back(std::to_string(::getpid()));
  std::vector<char*> cargv;
  cargv.push_back(const_cast<char*>(exe_path.c_str()));
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    FERRY_LOG(kError, "SIGUSR2: fork: ", std::strerror(errno));
    return;
  }
  if (pid == 0) {
    // The child: a fresh signal state, then the (possibly replaced) binary.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(exe_path.c_str(), cargv.data());
    ::_exit(127);
  }
  upgrade_child = pid;
  FERRY_LOG(kInfo, "SIGUSR2: started ", exe_path, " as pid ", pid, " to take over");
}

void Server::Impl::reapChildren() {
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    if (pid != upgrade_child) continue;
    upgrade_child = 0;
    if (handed_over) continue;
    if (WIFEXITED(status)) {
      FERRY_LOG(kError, "upgrade: pid ", pid, " exited with code ", WEXITSTATUS(status), " before taking over; still serving");
    } else if (WIFSIGNALED(status)) {
      FERRY_LOG(kError, "upgrade: pid ", pid, " died of signal ", WTERMSIG(status), " before taking over; still serving");
    }
  }
}

}  // namespace ferry::proxy
