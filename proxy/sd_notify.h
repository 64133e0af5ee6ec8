// The systemd notify protocol without libsystemd (sd_notify(3)): one datagram of
// "KEY=value" lines to the socket named by $NOTIFY_SOCKET, and the watchdog interval from
// $WATCHDOG_USEC. Linux only. Any thread (each call opens and closes its own socket; they
// read the environment, so do not call them while another thread runs setenv).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

namespace ferry::proxy {

// Sends `state` (e.g. "READY=1\nSTATUS=serving") to $NOTIFY_SOCKET: a filesystem path, or an
// abstract socket written "@name". Returns false, sending nothing, when the variable is unset
// or empty (not under systemd, or Type= is not notify) or names another kind of socket; also
// false when the send fails.
bool sdNotify(const std::string& state);

// sdNotify("MAINPID=<pid>\n" + state): tells systemd that `pid` is now the service's main
// process (after a hot upgrade, the old process sends this for the new one before it exits).
bool sdNotifyPid(pid_t pid, const std::string& state);

// The interval within which systemd expects "WATCHDOG=1" (send it about twice as often), or
// nullopt when the watchdog is off: WATCHDOG_USEC unset, not a positive number, or
// WATCHDOG_PID set to a process other than this one.
std::optional<std::chrono::microseconds> sdWatchdogInterval();

}  // namespace ferry::proxy
