// A file opened by path for appending (the log file; later the access logs) whose descriptor
// number never changes: reopen() opens the path again and dup2()s the new file onto that
// number, which the kernel does atomically, so writers on other threads keep calling write()
// on the same number and each line lands whole in the old file or the new one. SIGUSR1 calls
// reopenAll() (logrotate: the old file was renamed; the path is created again).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::core {

class ReopenableFile {
 public:
  // Opens (creates, mode `mode`) `path` for appending, O_CLOEXEC. owner/group other than -1:
  // a file this call creates gets them (a root process about to drop to a user). Null and
  // *error on failure.
  static std::unique_ptr<ReopenableFile> open(const std::string& path, mode_t mode, std::string* error,
                                              uid_t owner = static_cast<uid_t>(-1),
                                              gid_t group = static_cast<gid_t>(-1));
  ~ReopenableFile();
  ReopenableFile(const ReopenableFile&) = delete;
  ReopenableFile& operator=(const ReopenableFile&) = delete;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // Opens the path again onto the same descriptor. False and *error (the old file stays).
  bool reopen(std::string* error);
  // One line (or more) with one write(2) where the kernel allows.
  void write(std::string_view data) const;

  // Reopens every open ReopenableFile of the process; the number reopened, errors appended.
  // Main thread (files are opened and closed there).
  static size_t reopenAll(std::vector<std::string>* errors);

 private:
  ReopenableFile(std::string path, int fd, mode_t mode) : path_(std::move(path)), fd_(fd), mode_(mode) {}
  std::string path_;
  int fd_;
  mode_t mode_;
};

}  // namespace ferry::core
