// runtime.user / runtime.group: a process started as root drops to that user once every
// socket is bound, keeping only CAP_NET_BIND_SERVICE (permitted, effective and ambient, so
// that reloads can bind ports below 1024 and a binary upgrade's exec keeps it). Main thread,
// while the process has exactly one thread (capabilities are per thread).
#pragma once

#include <string>

#include "config/model.h"

namespace ferry::proxy {

// Before anything is bound: false and *error when runtime.user is set, the process is not
// root and not already that user (and group). Nothing to do when the user is not set.
bool checkRuntimeUser(const config::RuntimeConfig& r, std::string* error);

// The owner and group a file Ferry creates before the drop should get (the log file), so
// that the dropped process (and a binary upgrade's child) can open it again; -1 when there
// is no drop to do.
void runtimeOwner(const config::RuntimeConfig& r, uid_t* uid, gid_t* gid);

// Drops to runtime.user when running as root (logs the result); nothing when not set or when
// the process already runs as that user (a binary upgrade's child, a container started as
// that user). False and *error when the drop fails or other threads exist already.
bool dropPrivileges(const config::RuntimeConfig& r, std::string* error);

}  // namespace ferry::proxy
