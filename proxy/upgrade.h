// Hot binary upgrade: a running Ferry (old) hands its listening sockets to a newly started
// one (new) over a Unix stream socket, with SCM_RIGHTS. Linux only.
//
//   old: UpgradeServer listens on the abstract socket upgradeSocketName(getpid()) (or a path).
//   new: fetchInventory() connects, says HELLO, receives the inventory and its fds, starts
//        serving on them, then UpgradeSession::sendDrain() tells old to drain (on_drain).
//   If new goes away before DRAIN, old sees EOF, logs it and keeps serving.
//
// Both sides accept a peer only if its uid (SO_PEERCRED) is our effective uid or root.
//
// Wire protocol, version 1. Every message is a frame: a 4-byte big-endian length, then that
// many bytes of text (at most 1 MiB). Fields are separated by one space; names and addresses
// are percent-encoded (bytes <= 0x20, >= 0x7f and '%'), the empty string is written "-".
//   new -> old  "HELLO 1 <pid>"
//   old -> new  "INVENTORY 1 <pid> <items> <fds>" then one line per item:
//               "\n<kind> <name> <address> <fd count>"
//               then "FDS <n>" frames, each with n (1..253, SCM_MAX_FD) fds attached, until
//               <fds> fds have been sent; the fds belong to the items in order.
//   new -> old  "DRAIN"            (once new is serving)
//   old -> new  "DRAINING"         then old closes the connection and calls on_drain.
//   old -> new  "ERROR <text>"     instead of any reply (e.g. an unknown version), then closes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace ferry::proxy {

struct InventoryItem {
  std::string kind;      // "listener" or "admin" (not checked here: the receiver decides)
  std::string name;      // the listener name ("" for admin)
  std::string address;   // as configured, e.g. "127.0.0.1:8080"
  std::vector<int> fds;  // one per worker with SO_REUSEPORT, else one
};
using Inventory = std::vector<InventoryItem>;

// "ferry-upgrade-<pid>": the abstract socket name of the process `pid` (no leading NUL here).
std::string upgradeSocketName(pid_t pid);

struct UpgradeTarget {
  pid_t pid = 0;       // the old process when given by PID, else 0
  std::string socket;  // contains '/': a filesystem path; otherwise an abstract socket name
};

// The argument of --upgrade-from: a PID (all digits, > 0; the socket is
// upgradeSocketName(pid)) or a socket path (contains '/'). Anything else is an error.
bool parseUpgradeTarget(const std::string& arg, UpgradeTarget* out, std::string* error);

// Old side. Main thread, on the main io_context (which must outlive it).
class UpgradeServer {
 public:
  explicit UpgradeServer(boost::asio::io_context& io);
  ~UpgradeServer();  // stop()
  UpgradeServer(const UpgradeServer&) = delete;
  UpgradeServer& operator=(const UpgradeServer&) = delete;

  // Called on HELLO. The fds are borrowed for the duration of the call only: the server
  // duplicates them at once (CLOEXEC), sends the duplicates and closes them. Unset: an
  // empty inventory.
  std::function<Inventory()> inventory;
  // Called once new's DRAIN has been acknowledged, with new's pid as seen by SO_PEERCRED (in
  // our pid namespace: what systemd needs for MAINPID). Each connection can drain once; two
  // new processes fetching at the same time would each call it.
  std::function<void(pid_t new_pid)> on_drain;
  // Time allowed for HELLO and for each reply to be written.
  std::chrono::milliseconds io_timeout{std::chrono::seconds(10)};
  // Time allowed between the inventory and DRAIN (new starting up); then the connection is
  // closed and old keeps serving.
  std::chrono::milliseconds drain_timeout{std::chrono::seconds(60)};

  // Listens on `name_or_path` (as UpgradeTarget::socket: with '/' a path, else abstract).
  // A stale socket file nobody listens on is replaced. Returns false with *error on failure.
  bool start(const std::string& name_or_path, std::string* error);
  // Stops listening, removes the socket file (path form) and closes every connection.
  void stop();

 private:
  struct Impl;
  class Session;
  std::shared_ptr<Impl> impl_;  // shared: accept handlers hold it weakly
};

// New side: the connection to old, kept open after fetchInventory() until sendDrain().
// Closing it (or exiting) before DRAIN leaves old serving. Move-only.
class UpgradeSession {
 public:
  UpgradeSession() = default;
  ~UpgradeSession();
  UpgradeSession(UpgradeSession&& other) noexcept;
  UpgradeSession& operator=(UpgradeSession&& other) noexcept;

  bool connected() const { return fd_ >= 0; }
  // Sends DRAIN and waits (blocking, up to the fetchInventory timeout) for DRAINING. The
  // connection is closed either way. Returns false with *error if old did not acknowledge.
  bool sendDrain(std::string* error);
  void close();

 private:
  friend bool fetchInventory(const UpgradeTarget&, std::chrono::milliseconds, UpgradeSession*, Inventory*,
                             std::string*);
  int fd_ = -1;
  std::chrono::milliseconds timeout_{0};
  std::string pending_;  // bytes read past the last frame
};

// New side, blocking (at startup, before the event loop). Connects to `target` (retrying
// while the socket is missing or refuses, so old may still be starting), checks old's uid
// (and pid when target.pid is set), sends HELLO and receives the inventory, all within
// `timeout`. On success the caller owns every fd in *out (CLOEXEC set) and *session holds the
// connection for sendDrain(); `session` may be null (the connection is closed: old keeps
// serving). On failure *out is empty, no fd is left open and *error says why.
bool fetchInventory(const UpgradeTarget& target, std::chrono::milliseconds timeout, UpgradeSession* session,
                    Inventory* out, std::string* error);

}  // namespace ferry::proxy
