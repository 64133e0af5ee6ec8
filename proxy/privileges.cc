#include "proxy/privileges.h"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "core/log.h"

namespace ferry::proxy {
namespace {

struct Target {
  std::string user, group;
  uid_t uid = 0;
  gid_t gid = 0;
};

bool lookup(const config::RuntimeConfig& r, Target* t, std::string* error) {
  const passwd* pw = ::getpwnam(r.user.c_str());
  if (pw == nullptr) {
    *error = "runtime.user: unknown user '" + r.user + "'";
    return false;
  }
  t->user = r.user;
  t->uid = pw->pw_uid;
  t->gid = pw->pw_gid;
  if (!r.group.empty()) {
    const group* gr = ::getgrnam(r.group.c_str());
    if (gr == nullptr) {
      *error = "runtime.group: unknown group '" + r.group + "'";
      return false;
    }
    t->gid = gr->gr_gid;
    t->group = r.group;
  } else if (const group* gr = ::getgrgid(t->gid)) {
    t->group = gr->gr_name;
  } else {
    t->group = std::to_string(t->gid);
  }
  return true;
}

std::string sysError(const std::string& what) { return what + ": " + std::strerror(errno); }

// Threads: the "Threads:" line of /proc/self/status; 0 when unknown.
int threadCount() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  return 0;
}

bool alreadyThere(const Target& t) { return ::getuid() == t.uid && ::geteuid() == t.uid && ::getgid() == t.gid; }

}  // namespace

bool checkRuntimeUser(const config::RuntimeConfig& r, std::string* error) {
  if (r.user.empty() || ::geteuid() == 0) return true;
  Target t;
  if (!lookup(r, &t, error)) return false;
  if (alreadyThere(t)) return true;
  *error = "runtime.user is '" + r.user + "' (uid " + std::to_string(t.uid) + ", gid " + std::to_string(t.gid) +
           ") but ferry runs as uid " + std::to_string(::getuid()) + ", gid " + std::to_string(::getgid()) +
           ", not root: start it as root (it drops to that user after binding) or as that user";
  return false;
}

void runtimeOwner(const config::RuntimeConfig& r, uid_t* uid, gid_t* gid) {
  *uid = static_cast<uid_t>(-1);
  *gid = static_cast<gid_t>(-1);
  Target t;
  std::string err;
  if (r.user.empty() || ::geteuid() != 0 || !lookup(r, &t, &err)) return;
  *uid = t.uid;
  *gid = t.gid;
}

bool dropPrivileges(const config::RuntimeConfig& r, std::string* error) {
  if (r.user.empty()) return true;
  Target t;
  if (!lookup(r, &t, error)) return false;
  if (::geteuid() != 0) {
    if (!alreadyThere(t)) return checkRuntimeUser(r, error);
    // A binary upgrade's child (the ambient set gave it CAP_NET_BIND_SERVICE) or a process
    // started as that user: nothing to drop.
    FERRY_LOG(kInfo, "running as user ", t.user, " (uid ", t.uid, ", gid ", t.gid, "), already; nothing to drop");
    return true;
  }
  if (const int n = threadCount(); n != 1) {
    *error = "runtime.user: cannot drop privileges with " + std::to_string(n) +
             " threads running (capabilities are per thread); this is a bug";
    return false;
  }
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) {
    *error = sysError("runtime.user: prctl(PR_SET_KEEPCAPS)");
    return false;
  }
  // Supplementary groups: the user's own (and the chosen primary group).
  if (::initgroups(t.user.c_str(), t.gid) != 0) {
    *error = sysError("runtime.user: initgroups(" + t.user + ")");
    return false;
  }
  if (::setresgid(t.gid, t.gid, t.gid) != 0) {
    *error = sysError("runtime.user: setgid(" + std::to_string(t.gid) + ")");
    return false;
  }
  if (::setresuid(t.uid, t.uid, t.uid) != 0) {
    *error = sysError("runtime.user: setuid(" + std::to_string(t.uid) + ")");
    return false;
  }
  // Permitted, effective and inheritable: CAP_NET_BIND_SERVICE alone (inheritable so that it
  // may be raised in the ambient set, which an exec of the binary keeps).
  __user_cap_header_struct hdr{};
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  const uint32_t bit = 1u << CAP_NET_BIND_SERVICE;  // CAP_NET_BIND_SERVICE = 10 < 32
  data[0].permitted = bit;
  data[0].effective = bit;
  data[0].inheritable = bit;
  if (::syscall(SYS_capset, &hdr, data) != 0) {
    *error = sysError("runtime.user: capset");
    return false;
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) != 0) {
    *error = sysError("runtime.user: prctl(PR_CAP_AMBIENT_RAISE)");
    return false;
  }
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) {
    *error = sysError("runtime.user: prctl(PR_SET_KEEPCAPS, 0)");
    return false;
  }
  FERRY_LOG(kInfo, "running as user ", t.user, " (uid ", t.uid, ", gid ", t.gid, "), keeping CAP_NET_BIND_SERVICE");
  return true;
}

}  // namespace ferry::proxy
