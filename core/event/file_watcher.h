// FileWatcher: calls back when files may have changed (TLS certificates and keys now, the
// config file later). One inotify instance, watched through the io_context's Poller; one
// io_context thread (the main thread in practice): construct, watch, unwatch and destroy it
// there, and destroy it before the io_context.
//
// What it watches. inotify on a file follows one inode, so it misses the ways files are
// really replaced. For each path the watcher instead watches directories and matches entry
// names:
//  - the path's parent directory, for the path's own name: overwrite in place
//    (IN_CLOSE_WRITE), atomic rename over it (IN_MOVED_TO), delete and create, chmod/touch
//    (IN_ATTRIB);
//  - every symlink on the way to the file, in the directory that holds it: the path is
//    resolved component by component at watch time, so `cert.pem -> ..data/cert.pem` with
//    `..data -> ..2026_12_06_xx` (a Kubernetes secret or configmap mount) watches `cert.pem`
//    and `..data` in the mount directory and `cert.pem` in `..2026_12_06_xx`. Kubernetes
//    swaps a new version in by renaming `..data_tmp` over `..data`: that event fires. Also,
//    an event on any entry named `..data` counts for every watch that uses the directory;
//  - plain directories on the way are not watched (renaming a directory the path goes
//    through, other than by a symlink swap, is not seen).
// After each change the paths are resolved again and the set of watched directories follows
// (new symlink targets are watched, old ones released). One inotify watch per directory,
// shared and counted between paths and watches; the kernel gives one directory one watch
// descriptor whatever the path used to reach it.
//
// When it fires. Events start a per-watch debounce timer (`debounce`, re-armed by each
// event, but never postponed beyond 10 x debounce after the first event of a burst). When it
// expires the paths are re-resolved and a cheap fingerprint of each is taken (stat through
// the symlinks: device, inode, size, mtime in ns). on_change runs once if a path that exists
// now differs from its fingerprint at the previous check (watch() takes the first one), or
// has reappeared. So:
//  - a chmod, or an event on a name that resolves to the same file, does not fire;
//  - a path that disappears does not fire by itself; its reappearance does;
//  - a path that does not exist yet at watch() time fires when it is created;
//  - a fingerprint taken within 2 s of the file's mtime is "racy" (a second write in the
//    same timestamp tick could look identical): the next event fires whatever stat says.
// The callback therefore means "may have changed", not "has changed": a caller for which a
// spurious reload matters compares content, e.g. with contentHash() (the config reload keeps
// the hash of the last content it loaded and ignores a change that hashes the same).
// Writers that keep a file open and write into it without closing (no IN_CLOSE_WRITE) are
// seen only when something else about the file changes.
//
// Errors never throw and never stop the process; they are logged at warn: inotify
// unavailable (fs.inotify.max_user_instances), a directory that cannot be watched
// (fs.inotify.max_user_watches, permissions), a path whose parent directory does not exist
// at watch() time (that path is ignored for the life of the watch: create the directory
// first), a symlink loop. watch() still returns an id; the affected paths just never fire.
// A path whose chain later breaks (a dangling symlink) keeps the directory where the
// missing name would appear watched, so it fires when that name comes back.
//
// Relative paths are made absolute against the working directory at watch() time.
//
// Usage (TLS, on the main thread):
//   FileWatcher watcher(io);  // 100 ms debounce
//   auto id = watcher.watch({cert_path, key_path}, [&] { reloadCertificate(); });
//   ...
//   watcher.unwatch(id);
// on_change runs on the io_context's thread, from a timer; it may call watch() and
// unwatch() (its own id included), but must not destroy the FileWatcher.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace ferry::core {

class FileWatcher {
 public:
  // 0 is never returned.
  using WatchId = uint64_t;

  explicit FileWatcher(boost::asio::io_context& io,
                       std::chrono::milliseconds debounce = std::chrono::milliseconds(100));
  // Drops every watch; no callback runs afterwards.
  ~FileWatcher();
  FileWatcher(const FileWatcher&) = delete;
  FileWatcher& operator=(const FileWatcher&) = delete;

  // Calls on_change (once per debounced burst) when any of `paths` may have changed.
  WatchId watch(std::vector<std::string> paths, std::function<void()> on_change);
  // Stops the watch: its callback never runs again. Unknown ids are ignored.
  void unwatch(WatchId id);

  // Lowercase hex SHA-256 of the file's bytes (64 characters), following symlinks; "" if the
  // file cannot be read. Reads the whole file: for config-sized files.
  static std::string contentHash(const std::string& path);
  // The same digest of bytes in memory (contentHash of a file with this content).
  static std::string textHash(std::string_view text);

  struct Impl;  // file_watcher.cc

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::core
