#include "core/reopenable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace ferry::core {
namespace {

std::mutex g_mu;
std::vector<ReopenableFile*>& registry() {
  static auto* files = new std::vector<ReopenableFile*>();
  return *files;
}

int openAppend(const std::string& path, mode_t mode, bool* created, std::string* error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC, mode);
  *created = false;
  if (fd < 0 && errno == ENOENT) {
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    *created = fd >= 0;
    if (fd < 0 && errno == EEXIST) fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC, mode);
  }
  if (fd < 0) *error = "cannot open " + path + ": " + std::strerror(errno);
  return fd;
}

}  // namespace

std::unique_ptr<ReopenableFile> ReopenableFile::open(const std::string& path, mode_t mode, std::string* error,
                                                     uid_t owner, gid_t group) {
  bool created = false;
  int fd = openAppend(path, mode, &created, error);
  if (fd < 0) return nullptr;
  if (created && (owner != static_cast<uid_t>(-1) || group != static_cast<gid_t>(-1)) &&
      ::fchown(fd, owner, group) != 0) {
    *error = "cannot chown " + path + ": " + std::strerror(errno);
    ::close(fd);
    return nullptr;
  }
  std::unique_ptr<ReopenableFile> f(new ReopenableFile(path, fd, mode));
  std::lock_guard<std::mutex> lock(g_mu);
  registry().push_back(f.get());
  return f;
}

ReopenableFile::~ReopenableFile() {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto& r = registry();
    r.erase(std::remove(r.begin(), r.end(), this), r.end());
  }
  ::close(fd_);
}

bool ReopenableFile::reopen(std::string* error) {
  bool created = false;
  int fd = openAppend(path_, mode_, &created, error);
  if (fd < 0) return false;
  // dup2 closes the old file and puts the new one on the same number in one step: a write()
  // on another thread goes to one or the other, never to a closed or reused descriptor.
  int r;
  do {
    r = ::dup3(fd, fd_, O_CLOEXEC);
  } while (r < 0 && (errno == EINTR || errno == EBUSY));
  const int saved = errno;
  ::close(fd);
  if (r < 0) {
    *error = "cannot reopen " + path_ + ": " + std::strerror(saved);
    return false;
  }
  return true;
}

void ReopenableFile::write(std::string_view data) const {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::write(fd_, data.data() + off, data.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += static_cast<size_t>(w);
  }
}

size_t ReopenableFile::reopenAll(std::vector<std::string>* errors) {
  std::lock_guard<std::mutex> lock(g_mu);
  size_t n = 0;
  for (ReopenableFile* f : registry()) {
    std::string err;
    if (f->reopen(&err)) ++n;
    else errors->push_back(err);
  }
  return n;
}

}  // namespace ferry::core
