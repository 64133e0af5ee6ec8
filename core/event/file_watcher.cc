#include "core/event/file_watcher.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <string_view>

#include "core/event/poller.h"
#include "core/event/timer.h"
#include "core/log.h"

namespace ferry::core {

namespace {

// Directory events that may change what a name in it refers to, and the directory itself
// going away (IN_IGNORED follows; the kernel has then dropped the watch).
constexpr uint32_t kDirMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB | IN_MOVED_FROM |
                              IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
constexpr int kMaxSymlinkHops = 40;  // the kernel's own limit (ELOOP)
// A file whose mtime is this close to when it was fingerprinted may be written again within
// the same timestamp tick (a jiffy on local filesystems, a second or two on some others).
constexpr int64_t kRacyNs = 2'000'000'000;
constexpr int kMaxWaitFactor = 10;  // a burst is fired at most this many debounces after it began
constexpr std::string_view kDataName = "..data";

int64_t steadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Fingerprint {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  bool racy = false;  // taken too close to mtime to tell a later same-size write apart

  bool sameFile(const Fingerprint& o) const {
    return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns;
  }
};

Fingerprint fingerprintOf(const std::string& path) {
  Fingerprint f;
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return f;
  f.exists = true;
  f.dev = st.st_dev;
  f.ino = st.st_ino;
  f.size = st.st_size;
  f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t now_ns = static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
  f.racy = now_ns - f.mtime_ns < kRacyNs;  // an mtime in the future is racy too
  return f;
}

// `p` is absolute without a trailing slash.
std::string dirnameOf(const std::string& p) {
  size_t pos = p.find_last_of('/');
  if (pos == std::string::npos || pos == 0) return "/";
  return p.substr(0, pos);
}

std::string join(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

std::vector<std::string> components(std::string_view p) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    if (j > i) out.emplace_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// "" if the path cannot be made absolute (no working directory).
std::string absolutePath(const std::string& p) {
  std::string abs;
  if (!p.empty() && p[0] == '/') {
    abs = p;
  } else {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd) == nullptr) return {};
    abs = join(cwd, p);
  }
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  return abs;
}

bool readLink(const std::string& path, std::string& out) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
    if (n < 0) return false;
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      out = std::move(buf);
      return true;
    }
    if (buf.size() >= 65536) return false;
    buf.resize(buf.size() * 2);
  }
}

const char* hint(int err) {
  switch (err) {
    case ENOSPC:
      return " (the inotify watch limit is reached: raise fs.inotify.max_user_watches)";
    case EMFILE:
      return " (fs.inotify.max_user_instances or the process's open-file limit is reached)";
    default:
      return "";
  }
}

}  // namespace

struct FileWatcher::Impl final : PollHandler {
  // A name in a watched directory whose events concern a watch.
  struct Interest {
    int wd;
    std::string name;
  };
  struct PathState {
    std::string path;  // absolute
    bool active = true;  // false: could not be watched at watch() time, never fires
    Fingerprint fp;
  };
  struct Watch {
    WatchId id = 0;
    std::vector<PathState> paths;
    std::vector<Interest> interests;
    std::vector<int> wds;  // sorted, distinct: the directories it holds a reference on
    // Shared so that a callback that unwatches its own watch keeps running on a live copy.
    std::shared_ptr<std::function<void()>> on_change;
    std::unique_ptr<Timer> debounce;
    int64_t burst_start_ns = 0;
  };
  struct Dir {
    std::string path;  // as first watched (the kernel keys by inode)
    std::vector<WatchId> users;
  };

  Impl(boost::asio::io_context& ctx, std::chrono::milliseconds d) : io(ctx), poller(Poller::of(ctx)), debounce(d) {
    fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      FERRY_LOG(kWarn, "file watcher: inotify_init1 failed: ", std::strerror(err), hint(err),
                "; files will not be reloaded when they change");
      return;
    }
    if (!poller.add(fd, this)) {
      FERRY_LOG(kWarn, "file watcher: cannot poll the inotify descriptor: ", std::strerror(errno),
                "; files will not be reloaded when they change");
      ::close(fd);
      fd = -1;
    }
  }

  ~Impl() {
    watches.clear();  // their timers first
    if (fd >= 0) {
      poller.remove(fd, this);
      ::close(fd);  // drops every kernel watch
    }
  }

  WatchId watch(std::vector<std::string> paths, std::function<void()> on_change) {
    WatchId id = ++last_id;
    auto w = std::make_unique<Watch>();
    w->id = id;
    w->on_change = std::make_shared<std::function<void()>>(std::move(on_change));
    w->debounce = std::make_unique<Timer>(io, [this, id] { onDebounce(id); });
    for (auto& p : paths) {
      PathState ps;
      ps.path = absolutePath(p);
      if (fd < 0) {
        ps.active = false;
        FERRY_LOG(kWarn, "file watcher: inotify is unavailable: changes to ", p, " are not watched");
      } else if (ps.path.empty()) {
        ps.active = false;
        FERRY_LOG(kWarn, "file watcher: cannot make '", p, "' absolute: changes to it are not watched");
      } else {
        std::string parent = dirnameOf(ps.path);
        struct stat st{};
        const bool found = ::stat(parent.c_str(), &st) == 0;
        if (!found || !S_ISDIR(st.st_mode)) {
          const char* why = found ? "not a directory" : std::strerror(errno);
          ps.active = false;
          FERRY_LOG(kWarn, "file watcher: directory ", parent, " of ", p, " cannot be watched (", why,
                    "): changes to it are not seen for the life of this watch");
        }
      }
      w->paths.push_back(std::move(ps));
    }
    Watch& ref = *w;
    watches.emplace(id, std::move(w));
    // Directories are watched before the fingerprints are taken: a change after the stat
    // sends an event.
    rearm(ref);
    for (auto& ps : ref.paths) {
      if (ps.active) ps.fp = fingerprintOf(ps.path);
    }
    return id;
  }

  void unwatch(WatchId id) {
    auto it = watches.find(id);
    if (it == watches.end()) return;
    for (int wd : it->second->wds) release(wd, id);
    watches.erase(it);  // may be the running timer's own: Timer allows that
  }

  // Resolves every path again and moves the watch's directory references to what it finds.
  // New references are taken before old ones are dropped, so a directory that stays keeps
  // its kernel watch (no window without events).
  void rearm(Watch& w) {
    std::vector<Interest> interests;
    std::vector<int> wds;
    for (auto& ps : w.paths) {
      if (ps.active) walk(ps.path, interests, wds);
    }
    std::sort(wds.begin(), wds.end());
    wds.erase(std::unique(wds.begin(), wds.end()), wds.end());
    for (int wd : wds) {
      auto it = dirs.find(wd);
      if (it == dirs.end()) continue;  // acquired then reported gone within this walk
      auto& users = it->second.users;
      if (std::find(users.begin(), users.end(), w.id) == users.end()) users.push_back(w.id);
    }
    for (int wd : w.wds) {
      if (!std::binary_search(wds.begin(), wds.end(), wd)) release(wd, w.id);
    }
    w.wds = std::move(wds);
    w.interests = std::move(interests);
  }

  // Follows `path` as the kernel would, one component at a time from "/". Each symlink met
  // and the last name reached (the file, or the first missing or non-directory component)
  // becomes an interest in the directory holding it; that directory is watched before the
  // name is looked at again, so whatever changes after the look sends an event.
  void walk(const std::string& path, std::vector<Interest>& interests, std::vector<int>& wds) {
    auto first = components(path);
    std::deque<std::string> comps(first.begin(), first.end());
    std::string dir = "/";
    int hops = 0;
    while (!comps.empty()) {
      std::string c = std::move(comps.front());
      comps.pop_front();
      if (c == ".") continue;
      if (c == "..") {
        dir = dirnameOf(dir);  // `dir` has no symlinks: ".." is lexical
        continue;
      }
      std::string entry = join(dir, c);
      const bool last = comps.empty();
      struct stat st{};
      bool found = ::lstat(entry.c_str(), &st) == 0;
      if (found && S_ISDIR(st.st_mode) && !last) {
        dir = std::move(entry);  // a plain directory on the way: not watched
        continue;
      }
      int wd = acquire(dir, wds);
      if (wd < 0) return;
      interests.push_back(Interest{wd, c});
      found = ::lstat(entry.c_str(), &st) == 0;  // again, now that changes are seen
      if (!found) return;                        // its creation in `dir` fires
      if (S_ISLNK(st.st_mode)) {
        std::string target;
        if (++hops > kMaxSymlinkHops) {
          FERRY_LOG(kWarn, "file watcher: too many levels of symbolic links resolving ", path,
                    ": following stops at ", entry);
          return;
        }
        if (!readLink(entry, target)) return;
        if (!target.empty() && target[0] == '/') dir = "/";
        auto more = components(target);
        comps.insert(comps.begin(), more.begin(), more.end());
        continue;
      }
      if (last || !S_ISDIR(st.st_mode)) return;  // the file, or a non-directory on the way
      dir = std::move(entry);                    // became a directory since the first look
    }
  }

  // The watch descriptor of `dir` (a new kernel watch or the existing one), or -1 (logged).
  int acquire(const std::string& dir, std::vector<int>& wds) {
    int wd = ::inotify_add_watch(fd, dir.c_str(), kDirMask);
    if (wd < 0) {
      int err = errno;
      FERRY_LOG(kWarn, "file watcher: cannot watch directory ", dir, ": ", std::strerror(err), hint(err),
                "; changes to files in it are not seen");
      return -1;
    }
    dirs.try_emplace(wd, Dir{dir, {}});
    wds.push_back(wd);
    return wd;
  }

  void release(int wd, WatchId id) {
    auto it = dirs.find(wd);
    if (it == dirs.end()) return;  // the kernel dropped it already (IN_IGNORED)
    auto& users = it->second.users;
    users.erase(std::remove(users.begin(), users.end(), id), users.end());
    if (!users.empty()) return;
    ::inotify_rm_watch(fd, wd);  // its IN_IGNORED finds no entry and is skipped
    dirs.erase(it);
  }

  void onPollEvents(uint32_t) override {
    // Edge-triggered: read until the queue is empty.
    alignas(inotify_event) char buf[8192];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) FERRY_LOG(kWarn, "file watcher: reading inotify events failed: ", std::strerror(errno));
        return;
      }
      if (n == 0) return;
      for (ssize_t off = 0; off < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
        onEvent(*ev);
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
    }
  }

  void onEvent(const inotify_event& ev) {
    if (ev.mask & IN_Q_OVERFLOW) {
      FERRY_LOG(kWarn, "file watcher: the inotify queue overflowed; checking every watched file");
      for (auto& [id, w] : watches) schedule(*w);
      return;
    }
    auto it = dirs.find(ev.wd);
    if (it == dirs.end()) return;  // released by us meanwhile
    if (ev.mask & IN_IGNORED) {
      // The directory is gone (deleted, unmounted): its users resolve again.
      std::vector<WatchId> users = std::move(it->second.users);
      dirs.erase(it);
      for (WatchId id : users) scheduleId(id);
      return;
    }
    const bool self = (ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0;
    const std::string_view name = ev.len > 0 ? std::string_view(ev.name) : std::string_view();
    for (WatchId id : it->second.users) {
      auto w = watches.find(id);
      if (w == watches.end()) continue;
      if (self || name == kDataName || interested(*w->second, ev.wd, name)) schedule(*w->second);
    }
  }

  static bool interested(const Watch& w, int wd, std::string_view name) {
    for (auto& i : w.interests) {
      if (i.wd == wd && i.name == name) return true;
    }
    return false;
  }

  void scheduleId(WatchId id) {
    auto it = watches.find(id);
    if (it != watches.end()) schedule(*it->second);
  }

  // Starts or extends the watch's quiet period; a burst that never goes quiet is still
  // checked within kMaxWaitFactor debounces of its first event.
  void schedule(Watch& w) {
    int64_t now = steadyNs();
    if (!w.debounce->enabled()) {
      w.burst_start_ns = now;
    } else if (now - w.burst_start_ns >= kMaxWaitFactor * std::chrono::nanoseconds(debounce).count()) {
      return;  // keep the deadline already set
    }
    w.debounce->enable(debounce);
  }

  void onDebounce(WatchId id) {
    auto it = watches.find(id);
    if (it == watches.end()) return;
    Watch& w = *it->second;
    rearm(w);
    bool changed = false;
    for (auto& ps : w.paths) {
      if (!ps.active) continue;
      Fingerprint now = fingerprintOf(ps.path);
      if (now.exists && (!ps.fp.exists || ps.fp.racy || !now.sameFile(ps.fp))) {
        changed = true;
        FERRY_LOG(kDebug, "file watcher: ", ps.path, " may have changed");
      }
      ps.fp = now;
    }
    if (!changed) return;
    auto cb = w.on_change;  // the callback may unwatch (destroying w) or watch (rehashing)
    if (*cb) (*cb)();
    // Nothing here after the callback: it may have destroyed the timer running this.
  }

  boost::asio::io_context& io;
  Poller& poller;
  std::chrono::milliseconds debounce;
  int fd = -1;
  WatchId last_id = 0;
  std::map<WatchId, std::unique_ptr<Watch>> watches;
  std::map<int, Dir> dirs;  // by watch descriptor
};

FileWatcher::FileWatcher(boost::asio::io_context& io, std::chrono::milliseconds debounce)
    : impl_(std::make_unique<Impl>(io, debounce)) {}

FileWatcher::~FileWatcher() = default;

FileWatcher::WatchId FileWatcher::watch(std::vector<std::string> paths, std::function<void()> on_change) {
  return impl_->watch(std::move(paths), std::move(on_change));
}

void FileWatcher::unwatch(WatchId id) { impl_->unwatch(id); }

namespace {

std::string hexDigest(const unsigned char* md, unsigned int len) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

}  // namespace

std::string FileWatcher::textHash(std::string_view text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(text.data(), text.size(), md, &len, EVP_sha256(), nullptr) != 1) return {};
  return hexDigest(md, len);
}

std::string FileWatcher::contentHash(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  bool ok = ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1;
  char buf[16384];
  while (ok) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ok = false;
    if (n <= 0) break;
    ok = EVP_DigestUpdate(ctx.get(), buf, static_cast<size_t>(n)) == 1;
  }
  ::close(fd);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!ok || EVP_DigestFinal_ex(ctx.get(), md, &len) != 1) return {};
  return hexDigest(md, len);
}

}  // namespace ferry::core
