// Integration harness, processes: environment, files, TempDir, runProcess/runFerry, FerryProcess.
#include <signal.h>
#if __has_include(<linux/close_range.h>)
#include <linux/close_range.h>
#endif
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <utility>

#include "tests/integration/harness.h"
#include "tests/integration/harness_internal.h"

namespace ferry::testing {

using namespace detail;

namespace {

std::string replaceAll(std::string s, std::string_view from, std::string_view to) {
  if (from.empty()) return s;
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

std::string getenvRequired(const char* name, const char* hint) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    throw HarnessError(std::string(name) + " is not set: " + hint);
  }
  return v;
}

int decodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string quoteArgv(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += '\'' + a + '\'';
  }
  return s;
}

std::string tail(const std::string& s, size_t max = 16000) {
  if (s.size() <= max) return s;
  return "...[" + std::to_string(s.size() - max) + " bytes cut]...\n" + s.substr(s.size() - max);
}

// fork+exec with stdin=/dev/null, stdout/stderr on the given fds, in a new process group,
// PR_SET_PDEATHSIG=SIGKILL, default signal dispositions and an empty signal mask. Throws
// HarnessError if exec fails (the reason is reported back through a CLOEXEC pipe).
pid_t spawn(const std::vector<std::string>& argv, int out_fd, int err_fd, const char* cwd) {
  if (argv.empty()) throw HarnessError("spawn: empty argv");
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const bool has_slash = argv[0].find('/') != std::string::npos;

  int errpipe[2];
  if (::pipe2(errpipe, O_CLOEXEC) != 0) throw HarnessError("pipe2: " + errnoStr(errno));
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(errpipe[0]);
    ::close(errpipe[1]);
    throw HarnessError("fork: " + errnoStr(e));
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    auto fail = [&](int stage) {
      int buf[2] = {stage, errno};
      ssize_t w = ::write(errpipe[1], buf, sizeof buf);
      (void)w;
      ::_exit(127);
    };
    ::setpgid(0, 0);
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(1);
    if (::getppid() != parent) ::_exit(127);
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s) {
      if (s != SIGKILL && s != SIGSTOP) ::sigaction(s, &sa, nullptr);
    }
    sigset_t empty;
    sigemptyset(&empty);
    ::sigprocmask(SIG_SETMASK, &empty, nullptr);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull < 0) fail(2);
    if (::dup2(devnull, 0) < 0) fail(2);
    if (devnull != 0) ::close(devnull);
    for (auto [from, to] : {std::pair{out_fd, 1}, std::pair{err_fd, 2}}) {
      if (from == to) {
        ::fcntl(to, F_SETFD, 0);
      } else if (::dup2(from, to) < 0) {
        fail(3);
      }
    }
    // Fds the test opened without O_CLOEXEC must not leak into the child (a leaked client
    // socket would keep a connection open behind the test's back).
#ifdef CLOSE_RANGE_CLOEXEC
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
#endif
    if (cwd != nullptr && ::chdir(cwd) != 0) fail(4);
    if (has_slash) {
      ::execv(cargv[0], cargv.data());
    } else {
      ::execvp(cargv[0], cargv.data());
    }
    fail(5);
  }
  // Parent. Also set the group here so the group exists before we might signal it.
  ::setpgid(pid, pid);
  ::close(errpipe[1]);
  int buf[2] = {0, 0};
  size_t got = 0;
  TimePoint deadline = Clock::now() + 10s;
  while (got < sizeof buf) {
    if (pollOne(errpipe[0], POLLIN, deadline) == 0) break;
    ssize_t r = ::read(errpipe[0], reinterpret_cast<char*>(buf) + got, sizeof buf - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  ::close(errpipe[0]);
  if (got > 0) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    static const char* stages[] = {"", "prctl", "open /dev/null", "dup2", "chdir", "exec"};
    int stage = (buf[0] >= 1 && buf[0] <= 5) ? buf[0] : 5;
    throw HarnessError("cannot run " + quoteArgv(argv) + ": " + stages[stage] + ": " +
                       errnoStr(buf[1]));
  }
  return pid;
}

int pidfdOpen(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Environment, files, TempDir

std::string ferryBin() {
  return getenvRequired("FERRY_BIN",
                        "run the integration tests via `meson test` or export FERRY_BIN=/path/to/ferry");
}

std::string srcDir() {
  return getenvRequired("FERRY_SRC",
                        "run the integration tests via `meson test` or export FERRY_SRC=<repo root>");
}

bool sanitized() {
  const char* s = std::getenv("FERRY_SANITIZED");
  return s && std::string(s) == "1";
}

std::string readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/ferry-test-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw HarnessError("mkdtemp: " + errnoStr(errno));
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, std::string_view content, unsigned mode) const {
  std::filesystem::path full = std::filesystem::path(path_) / name;
  std::error_code ec;
  std::filesystem::create_directories(full.parent_path(), ec);
  const std::string fs = full.string();
  // Write to a temporary name and rename, so a concurrently reading ferry never sees a torn file.
  const std::string tmp = fs + ".tmp-write";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw HarnessError("TempDir::write " + tmp + ": " + errnoStr(errno));
  size_t off = 0;
  while (off < content.size()) {
    ssize_t w = ::write(fd, content.data() + off, content.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      int e = errno;
      ::close(fd);
      throw HarnessError("TempDir::write " + tmp + ": " + errnoStr(e));
    }
    off += static_cast<size_t>(w);
  }
  ::fchmod(fd, mode);
  ::close(fd);
  if (::rename(tmp.c_str(), fs.c_str()) != 0) {
    throw HarnessError("TempDir::write rename " + fs + ": " + errnoStr(errno));
  }
  return fs;
}

// ---------------------------------------------------------------------------------------------
// runProcess / runFerry

RunResult runProcess(const std::vector<std::string>& argv, ms timeout) {
  int outp[2], errp[2];
  if (::pipe2(outp, O_CLOEXEC) != 0) throw HarnessError("pipe2: " + errnoStr(errno));
  if (::pipe2(errp, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(outp[0]);
    ::close(outp[1]);
    throw HarnessError("pipe2: " + errnoStr(e));
  }
  pid_t pid;
  try {
    pid = spawn(argv, outp[1], errp[1], nullptr);
  } catch (...) {
    for (int fd : {outp[0], outp[1], errp[0], errp[1]}) ::close(fd);
    throw;
  }
  ::close(outp[1]);
  ::close(errp[1]);
  int fds[2] = {outp[0], errp[0]};
  setNonBlocking(fds[0], true);
  setNonBlocking(fds[1], true);
  int pidfd = pidfdOpen(pid);  // readable when the child exits; -1 -> fall back to a short tick

  RunResult res;
  std::string* sinks[2] = {&res.out, &res.err};
  const TimePoint deadline = Clock::now() + timeout;
  bool exited = false;
  int status = 0;
  TimePoint exit_time{};
  char buf[65536];

  auto drain = [&](int i) {
    for (;;) {
      ssize_t r = ::read(fds[i], buf, sizeof buf);
      if (r > 0) {
        sinks[i]->append(buf, static_cast<size_t>(r));
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      closeFd(fds[i]);  // EOF or error
      return;
    }
  };

  for (;;) {
    if (!exited) {
      pid_t w = ::waitpid(pid, &status, WNOHANG);
      if (w == pid) {
        exited = true;
        exit_time = Clock::now();
        closeFd(pidfd);
      }
    }
    if (exited && fds[0] < 0 && fds[1] < 0) break;
    // A grandchild may keep the pipes open after the child exited: give it a grace period.
    if (exited && Clock::now() >= std::min(deadline, exit_time + 2s)) break;
    if (!exited && Clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      closeFd(pidfd);
      for (int i = 0; i < 2; ++i) {
        if (fds[i] >= 0) drain(i);
      }
      res.timed_out = true;
      exited = true;
      break;
    }
    pollfd p[3];
    int idx[3];
    nfds_t n = 0;
    for (int i = 0; i < 2; ++i) {
      if (fds[i] >= 0) {
        p[n] = {fds[i], POLLIN, 0};
        idx[n++] = i;
      }
    }
    if (pidfd >= 0) {
      p[n] = {pidfd, POLLIN, 0};
      idx[n++] = -1;
    }
    int wait_ms = remainingMs(exited ? std::min(deadline, exit_time + 2s) : deadline);
    if (!exited && pidfd < 0) wait_ms = std::min(wait_ms, 10);  // no pidfd: tick to notice exit
    int r = ::poll(p, n, wait_ms);
    if (r < 0 && errno != EINTR) throw HarnessError("poll: " + errnoStr(errno));
    for (nfds_t k = 0; r > 0 && k < n; ++k) {
      if (idx[k] >= 0 && p[k].revents != 0) drain(idx[k]);
    }
  }
  for (int i = 0; i < 2; ++i) {
    if (fds[i] >= 0) drain(i);
    closeFd(fds[i]);
  }
  closeFd(pidfd);
  res.exit_code = decodeWaitStatus(status);
  return res;
}

RunResult runFerry(const std::vector<std::string>& args, ms timeout) {
  std::vector<std::string> argv{ferryBin()};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = runProcess(argv, timeout);
  if (r.timed_out) {
    throw HarnessError("runFerry: " + quoteArgv(argv) + " did not exit within " +
                       std::to_string(timeout.count()) + " ms (killed)\n--- stdout ---\n" +
                       tail(r.out) + "\n--- stderr ---\n" + tail(r.err));
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// FerryProcess

struct FerryProcess::State {
  std::mutex mu;
  std::condition_variable cv;
  std::string log;
  bool output_closed = false;  // reader saw EOF on the output pipe
  bool exited = false;         // the child exited (observed with WNOWAIT: not reaped yet)
  int exit_code = -1;
  pid_t pid = -1;
  int out_fd = -1;
  int wake_rd = -1, wake_wr = -1;
  std::thread reader, waiter;
  std::string argv_str;
};

namespace {

void readerLoop(FerryProcess::State* st) {
  char buf[65536];
  bool stop = false;
  while (!stop) {
    pollfd p[2] = {{st->out_fd, POLLIN, 0}, {st->wake_rd, POLLIN, 0}};
    int r = ::poll(p, 2, -1);  // the destructor always wakes us through wake_rd
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents != 0) stop = true;  // final non-blocking drain below, then exit
    if (p[0].revents == 0 && !stop) continue;
    for (;;) {
      ssize_t n = ::read(st->out_fd, buf, sizeof buf);
      if (n > 0) {
        std::lock_guard<std::mutex> lk(st->mu);
        st->log.append(buf, static_cast<size_t>(n));
        st->cv.notify_all();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      std::lock_guard<std::mutex> lk(st->mu);  // EOF or error
      st->output_closed = true;
      st->cv.notify_all();
      stop = true;
      break;
    }
  }
  std::lock_guard<std::mutex> lk(st->mu);
  st->output_closed = true;
  st->cv.notify_all();
}

void waiterLoop(FerryProcess::State* st) {
  siginfo_t info;
  for (;;) {
    std::memset(&info, 0, sizeof info);
    // WNOWAIT: observe the exit but leave the zombie, so the pid (and process group id) cannot
    // be reused before the destructor has killed the group and reaped it.
    int r = ::waitid(P_PID, static_cast<id_t>(st->pid), &info, WEXITED | WNOWAIT);
    if (r == 0) break;
    if (errno == EINTR) continue;
    info.si_code = 0;
    break;
  }
  int code = -1;
  if (info.si_code == CLD_EXITED) {
    code = info.si_status;
  } else if (info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) {
    code = 128 + info.si_status;
  }
  std::lock_guard<std::mutex> lk(st->mu);
  st->exited = true;
  st->exit_code = code;
  st->cv.notify_all();
}

// Finds the last complete line containing needle followed by HOST:PORT; returns PORT.
std::optional<uint16_t> findListeningPort(const std::string& log, const std::string& needle) {
  std::optional<uint16_t> found;
  size_t end = log.rfind('\n');
  if (end == std::string::npos) return found;
  size_t pos = 0;
  while ((pos = log.find(needle, pos)) != std::string::npos && pos < end) {
    size_t a = pos + needle.size();
    size_t e = a;
    // (a JSON log line ends the message with a quote)
    while (e < log.size() && log[e] != '\n' && log[e] != ' ' && log[e] != '\t' && log[e] != '\r' && log[e] != '"') {
      ++e;
    }
    std::string addr = log.substr(a, e - a);
    pos = a;
    size_t colon = addr.rfind(':');
    if (colon == std::string::npos) continue;
    std::string p = addr.substr(colon + 1);
    if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), isDigit)) continue;
    unsigned long v = std::stoul(p);
    if (v == 0 || v > 65535) continue;
    found = static_cast<uint16_t>(v);
  }
  return found;
}

size_t countOccurrences(const std::string& hay, const std::string& needle) {
  if (needle.empty()) return 0;
  size_t n = 0, pos = 0;
  while ((pos = hay.find(needle, pos)) != std::string::npos) {
    ++n;
    pos += needle.size();
  }
  return n;
}

}  // namespace

FerryProcess::FerryProcess() : dir_(std::make_unique<TempDir>()), st_(std::make_shared<State>()) {}

void FerryProcess::spawnHere(const std::vector<std::string>& argv) {
  State& st = *st_;
  st.argv_str = quoteArgv(argv);
  int outp[2], wake[2];
  if (::pipe2(outp, O_CLOEXEC) != 0) throw HarnessError("pipe2: " + errnoStr(errno));
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    int e = errno;
    ::close(outp[0]);
    ::close(outp[1]);
    throw HarnessError("pipe2: " + errnoStr(e));
  }
  st.out_fd = outp[0];
  st.wake_rd = wake[0];
  st.wake_wr = wake[1];
  setNonBlocking(st.out_fd, true);
  try {
    st.pid = spawn(argv, outp[1], outp[1], dir_->path().c_str());
  } catch (...) {
    ::close(outp[1]);
    throw;  // ~FerryProcess closes the rest (no threads yet)
  }
  ::close(outp[1]);
  State* raw = st_.get();
  st.reader = std::thread(readerLoop, raw);
  st.waiter = std::thread(waiterLoop, raw);
}

std::unique_ptr<FerryProcess> FerryProcess::startCommand(const std::vector<std::string>& argv) {
  std::unique_ptr<FerryProcess> p(new FerryProcess());
  p->spawnHere(argv);
  return p;
}

std::unique_ptr<FerryProcess> FerryProcess::start(const std::string& yaml,
                                                  const std::vector<std::string>& extra_args,
                                                  std::map<std::string, std::string> extra_files) {
  const std::string bin = ferryBin();
  std::unique_ptr<FerryProcess> p(new FerryProcess());
  const std::string& d = p->dir_->path();
  for (const auto& [name, content] : extra_files) {
    p->dir_->write(name, replaceAll(content, "{dir}", d));
  }
  const std::string cfg = p->dir_->write("ferry.yaml", replaceAll(yaml, "{dir}", d));
  std::vector<std::string> argv{bin, "-c", cfg};
  for (const auto& a : extra_args) argv.push_back(replaceAll(a, "{dir}", d));
  p->spawnHere(argv);
  return p;
}

FerryProcess::~FerryProcess() {
  State& st = *st_;
  if (st.pid > 0) {
    // The child is never reaped before this point (waiterLoop uses WNOWAIT), so pid and pgid
    // are still ours: kill the whole group (grandchildren included), then reap.
    ::kill(-st.pid, SIGKILL);
    ::kill(st.pid, SIGKILL);
    if (st.waiter.joinable()) st.waiter.join();
    int status;
    while (::waitpid(st.pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (st.reader.joinable()) {
    // Let the reader pick up the last output (the pipe hits EOF once the group is gone).
    {
      std::unique_lock<std::mutex> lk(st.mu);
      st.cv.wait_for(lk, 2s, [&] { return st.output_closed; });
    }
    char c = 1;
    ssize_t w = ::write(st.wake_wr, &c, 1);
    (void)w;
    st.reader.join();
  }
  closeFd(st.out_fd);
  closeFd(st.wake_rd);
  closeFd(st.wake_wr);
  const char* env = std::getenv("FERRY_TEST_LOG");
  if (st.pid > 0 && (std::uncaught_exceptions() > 0 || (env != nullptr && std::string(env) == "1"))) {
    std::cerr << "---- log of " << st.argv_str << " (pid " << st.pid << ") ----\n"
              << tail(st.log, 64000) << "\n---- end of log ----" << std::endl;
  }
}

uint16_t FerryProcess::waitListening(const std::string& needle, const std::string& what,
                                     ms timeout) {
  State& st = *st_;
  const TimePoint deadline = Clock::now() + timeout;
  std::unique_lock<std::mutex> lk(st.mu);
  for (;;) {
    if (auto p = findListeningPort(st.log, needle)) return *p;
    // Exited and all output read: it will never log it.
    if (st.exited && st.output_closed) {
      throw HarnessError(what + ": " + st.argv_str + " exited with code " +
                         std::to_string(st.exit_code) + " without logging \"" + needle +
                         "HOST:PORT\"\n--- log ---\n" + tail(st.log));
    }
    if (st.cv.wait_until(lk, deadline) == std::cv_status::timeout) {
      if (auto p = findListeningPort(st.log, needle)) return *p;
      throw HarnessError(what + ": no \"" + needle + "HOST:PORT\" line from " + st.argv_str +
                         " within " + std::to_string(timeout.count()) + " ms" +
                         (st.exited ? " (exited with code " + std::to_string(st.exit_code) + ")"
                                    : "") +
                         "\n--- log ---\n" + tail(st.log));
    }
  }
}

uint16_t FerryProcess::port(const std::string& listener, ms timeout) {
  return waitListening("listening: listener=" + listener + " address=", "port(" + listener + ")",
                       timeout);
}

uint16_t FerryProcess::adminPort(ms timeout) {
  return waitListening("listening: admin address=", "adminPort()", timeout);
}

bool FerryProcess::waitForLogCount(const std::string& needle, size_t n, ms timeout) {
  State& st = *st_;
  std::unique_lock<std::mutex> lk(st.mu);
  return st.cv.wait_for(lk, timeout, [&] {
    return countOccurrences(st.log, needle) >= n || (st.exited && st.output_closed);
  }) && countOccurrences(st.log, needle) >= n;
}

bool FerryProcess::waitForLog(const std::string& needle, ms timeout) {
  return waitForLogCount(needle, 1, timeout);
}

size_t FerryProcess::countInLog(const std::string& needle) {
  std::lock_guard<std::mutex> lk(st_->mu);
  return countOccurrences(st_->log, needle);
}

std::string FerryProcess::log() {
  std::lock_guard<std::mutex> lk(st_->mu);
  return st_->log;
}

void FerryProcess::signal(int sig) {
  // Safe even after exit: the zombie is kept until the destructor, so the pid is not reused.
  ::kill(st_->pid, sig);
}

std::optional<int> FerryProcess::waitExit(ms timeout) {
  State& st = *st_;
  std::unique_lock<std::mutex> lk(st.mu);
  if (!st.cv.wait_for(lk, timeout, [&] { return st.exited; })) return std::nullopt;
  // The exit can be seen before the reader drained the pipe: give it a moment so log()
  // holds everything the process wrote (a grandchild holding the pipe would not close it).
  st.cv.wait_for(lk, std::chrono::seconds(2), [&] { return st.output_closed; });
  return st.exit_code;
}

bool FerryProcess::running() {
  std::lock_guard<std::mutex> lk(st_->mu);
  return !st_->exited;
}

pid_t FerryProcess::pid() const { return st_->pid; }
const std::string& FerryProcess::dir() const { return dir_->path(); }
std::string FerryProcess::configPath() const { return dir_->path() + "/ferry.yaml"; }

void FerryProcess::writeConfig(const std::string& yaml) {
  dir_->write("ferry.yaml", replaceAll(yaml, "{dir}", dir_->path()));
}

long FerryProcess::rssKb() const {
  std::ifstream f("/proc/" + std::to_string(st_->pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::strtol(line.c_str() + 6, nullptr, 10);
    }
  }
  return -1;
}

}  // namespace ferry::testing
