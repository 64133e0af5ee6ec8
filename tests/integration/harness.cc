#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#if __has_include(<linux/close_range.h>)
#include <linux/close_range.h>
#endif
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <list>
#include <sstream>
#include <thread>
#include <utility>

namespace ferry::testing {

namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// Ignore SIGPIPE in the test process: writes to a closed peer return EPIPE instead of killing it.
const bool kSigpipeIgnored = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isXDigit(char c) { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

std::string errnoStr(int e) { return std::strerror(e); }

// Milliseconds until the deadline, rounded up (so poll never returns before it), clamped.
int remainingMs(TimePoint deadline) {
  auto now = Clock::now();
  if (now >= deadline) return 0;
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count();
  long long msv = (us + 999) / 1000;
  return msv > INT_MAX ? INT_MAX : static_cast<int>(msv);
}

// Polls one fd until an event or the deadline; returns revents (0 on timeout).
short pollOne(int fd, short events, TimePoint deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, remainingMs(deadline));
    if (r > 0) return p.revents;
    if (r == 0) {
      if (Clock::now() >= deadline) return 0;
      continue;
    }
    if (errno == EINTR) continue;
    return POLLERR;
  }
}

void closeFd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

void setNonBlocking(int fd, bool on) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0) return;
  ::fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}

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

bool startsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Environment, TempDir

std::string ferryBin() {
  return getenvRequired("FERRY_BIN",
                        "run the integration tests via `meson test` or export FERRY_BIN=/path/to/ferry");
}

std::string srcDir() {
  return getenvRequired("FERRY_SRC",
                        "run the integration tests via `meson test` or export FERRY_SRC=<repo root>");
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
    while (e < log.size() && log[e] != '\n' && log[e] != ' ' && log[e] != '\t' && log[e] != '\r') {
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

// ---------------------------------------------------------------------------------------------
// TcpClient

std::unique_ptr<TcpClient> TcpClient::connect(uint16_t port, ms timeout, int recv_buffer) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw HarnessError("socket: " + errnoStr(errno));
  if (recv_buffer > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &recv_buffer, sizeof recv_buffer);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const TimePoint deadline = Clock::now() + timeout;
  int r = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  if (r != 0 && errno != EINPROGRESS && errno != EINTR) {
    ::close(fd);
    return nullptr;
  }
  if (r != 0) {
    if (pollOne(fd, POLLOUT, deadline) == 0) {
      ::close(fd);
      return nullptr;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      ::close(fd);
      return nullptr;
    }
  }
  return std::unique_ptr<TcpClient>(new TcpClient(fd));
}

TcpClient::~TcpClient() { closeFd(fd_); }

bool TcpClient::sendAll(std::string_view data, ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (w > 0) {
      off += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      short ev = pollOne(fd_, POLLOUT, deadline);
      if (ev == 0) return false;
      continue;  // POLLERR/POLLHUP: the next send reports the error
    }
    return false;  // EPIPE / ECONNRESET / ...
  }
  return true;
}

bool TcpClient::fill(TimePoint deadline) {
  if (eof_ || reset_ || fd_ < 0) return false;
  char buf[65536];
  for (;;) {
    ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
    if (r > 0) {
      pending_.append(buf, static_cast<size_t>(r));
      return true;
    }
    if (r == 0) {
      eof_ = true;
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (pollOne(fd_, POLLIN, deadline) == 0) return false;
      continue;
    }
    reset_ = true;
    return false;
  }
}

std::string TcpClient::recvExactly(size_t n, ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  while (pending_.size() < n && fill(deadline)) {
  }
  size_t k = std::min(n, pending_.size());
  std::string out = pending_.substr(0, k);
  pending_.erase(0, k);
  return out;
}

std::string TcpClient::recvUntilClose(ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  while (fill(deadline)) {
  }
  return std::exchange(pending_, std::string());
}

std::string TcpClient::recvSome(ms timeout) {
  if (pending_.empty()) fill(Clock::now() + timeout);
  return std::exchange(pending_, std::string());
}

bool TcpClient::waitClosed(ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  pending_.clear();
  while (fill(deadline)) pending_.clear();
  return eof_ || reset_;
}

bool TcpClient::peerClosedOrReset(ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  while (fill(deadline)) {
  }
  return eof_ || reset_;
}

void TcpClient::shutdownWrite() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void TcpClient::setRecvBuffer(int bytes) {
  if (fd_ >= 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

void TcpClient::close() { closeFd(fd_); }

void TcpClient::resetClose() {
  if (fd_ < 0) return;
  linger lg{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  closeFd(fd_);
}

// ---------------------------------------------------------------------------------------------
// Received

std::string Received::data() const {
  std::lock_guard<std::mutex> lk(mu_);
  return data_;
}
size_t Received::size() const {
  std::lock_guard<std::mutex> lk(mu_);
  return data_.size();
}
bool Received::eof() const {
  std::lock_guard<std::mutex> lk(mu_);
  return ended_ > 0;
}
bool Received::reset() const {
  std::lock_guard<std::mutex> lk(mu_);
  return reset_;
}
bool Received::waitBytes(size_t n, ms timeout) const {
  std::unique_lock<std::mutex> lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return data_.size() >= n; });
}
bool Received::waitEof(ms timeout) const {
  std::unique_lock<std::mutex> lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return ended_ > 0; });
}
void Received::append(std::string_view bytes) {
  std::lock_guard<std::mutex> lk(mu_);
  data_.append(bytes);
  cv_.notify_all();
}
void Received::markEnded(bool by_reset) {
  std::lock_guard<std::mutex> lk(mu_);
  ++ended_;
  reset_ = reset_ || by_reset;
  cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// FakeUpstream

struct FakeUpstream::Impl {
  Handler handler;
  int listen_fd = -1;
  uint16_t port = 0;
  int wake_rd = -1, wake_wr = -1;
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  size_t accepted = 0;
  bool stopping = false;
  bool stop_listening = false;
  bool listening_closed = false;
  struct Conn {
    int fd = -1;
    bool done = false;
    std::thread th;
  };
  std::list<Conn> conns;
  std::thread acceptor;

  void wake() {
    char c = 1;
    ssize_t w = ::write(wake_wr, &c, 1);
    (void)w;
  }

  void runConn(Conn* c) {
    try {
      handler(c->fd);
    } catch (...) {
      // Handlers must not assert; swallow so one bad connection cannot terminate the binary.
    }
    std::lock_guard<std::mutex> lk(mu);
    closeFd(c->fd);
    c->done = true;
  }

  void reapDone() {  // with mu held: join finished handler threads
    for (auto it = conns.begin(); it != conns.end();) {
      if (it->done) {
        it->th.join();
        it = conns.erase(it);
      } else {
        ++it;
      }
    }
  }

  void acceptLoop() {
    for (;;) {
      bool lclosed;
      {
        std::lock_guard<std::mutex> lk(mu);
        if (stopping) break;
        if (stop_listening && !listening_closed) {
          closeFd(listen_fd);
          listening_closed = true;
          cv.notify_all();
        }
        lclosed = listening_closed;
      }
      pollfd p[2] = {{wake_rd, POLLIN, 0}, {listen_fd, POLLIN, 0}};
      int r = ::poll(p, lclosed ? 1 : 2, -1);  // woken through wake_rd by stop/destructor
      if (r < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (p[0].revents != 0) {
        char buf[64];
        while (::read(wake_rd, buf, sizeof buf) > 0) {
        }
        continue;
      }
      if (lclosed || p[1].revents == 0) continue;
      int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);  // blocking conn fd
      if (fd < 0) continue;  // EAGAIN (listen fd is non-blocking), ECONNABORTED, ...
      std::lock_guard<std::mutex> lk(mu);
      reapDone();
      if (stopping) {
        ::close(fd);
        break;
      }
      conns.emplace_back();
      Conn* c = &conns.back();
      c->fd = fd;
      ++accepted;
      c->th = std::thread([this, c] { runConn(c); });
      cv.notify_all();
    }
    std::lock_guard<std::mutex> lk(mu);
    closeFd(listen_fd);
    listening_closed = true;
    cv.notify_all();
  }
};

FakeUpstream::FakeUpstream(Handler handler) : impl_(std::make_shared<Impl>()) {
  Impl& im = *impl_;
  im.handler = std::move(handler);
  im.listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (im.listen_fd < 0) throw HarnessError("socket: " + errnoStr(errno));
  int one = 1;
  ::setsockopt(im.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (::bind(im.listen_fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::listen(im.listen_fd, 1024) != 0 ||
      ::getsockname(im.listen_fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    int e = errno;
    closeFd(im.listen_fd);
    throw HarnessError("FakeUpstream bind/listen: " + errnoStr(e));
  }
  im.port = ntohs(sa.sin_port);
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    int e = errno;
    closeFd(im.listen_fd);
    throw HarnessError("pipe2: " + errnoStr(e));
  }
  im.wake_rd = wake[0];
  im.wake_wr = wake[1];
  im.acceptor = std::thread([p = impl_.get()] { p->acceptLoop(); });
}

FakeUpstream::~FakeUpstream() {
  Impl& im = *impl_;
  {
    std::lock_guard<std::mutex> lk(im.mu);
    im.stopping = true;
  }
  im.wake();
  im.acceptor.join();
  {
    // Unblock handlers: reads return 0, writes fail. The fds stay valid (closed by runConn
    // under the same mutex), so this never touches a recycled descriptor.
    std::lock_guard<std::mutex> lk(im.mu);
    for (auto& c : im.conns) {
      if (c.fd >= 0) ::shutdown(c.fd, SHUT_RDWR);
    }
  }
  // The list is no longer modified by anyone else; join without holding the mutex.
  for (auto& c : im.conns) {
    if (c.th.joinable()) c.th.join();
  }
  closeFd(im.wake_rd);
  closeFd(im.wake_wr);
}

uint16_t FakeUpstream::port() const { return impl_->port; }

size_t FakeUpstream::accepted() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->accepted;
}

bool FakeUpstream::waitAccepted(size_t n, ms timeout) const {
  std::unique_lock<std::mutex> lk(impl_->mu);
  return impl_->cv.wait_for(lk, timeout, [&] { return impl_->accepted >= n; });
}

void FakeUpstream::stopListening() {
  Impl& im = *impl_;
  std::unique_lock<std::mutex> lk(im.mu);
  im.stop_listening = true;
  im.wake();
  if (!im.cv.wait_for(lk, 10s, [&] { return im.listening_closed; })) {
    throw HarnessError("FakeUpstream::stopListening: acceptor did not respond");
  }
}

bool FakeUpstream::writeAll(int fd, std::string_view data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    off += static_cast<size_t>(w);
  }
  return true;
}

std::string FakeUpstream::readSome(int fd, size_t max) {
  std::string buf(max, '\0');
  for (;;) {
    ssize_t r = ::recv(fd, buf.data(), max, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return {};
    buf.resize(static_cast<size_t>(r));
    return buf;
  }
}

FakeUpstream::Handler FakeUpstream::echo() {
  return [](int fd) {
    char buf[65536];
    for (;;) {
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return;  // reset
      if (r == 0) break;
      if (!writeAll(fd, std::string_view(buf, static_cast<size_t>(r)))) return;
    }
    ::shutdown(fd, SHUT_WR);
  };
}

FakeUpstream::Handler FakeUpstream::sink(std::shared_ptr<Received> rec) {
  return [rec](int fd) {
    char buf[65536];
    for (;;) {
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        rec->markEnded(r < 0);
        return;
      }
      rec->append(std::string_view(buf, static_cast<size_t>(r)));
    }
  };
}

FakeUpstream::Handler FakeUpstream::closeImmediately() {
  return [](int) {};
}

FakeUpstream::Handler FakeUpstream::reply(std::string response, std::shared_ptr<Received> request) {
  return [response = std::move(response), request](int fd) {
    std::string head;
    char buf[65536];
    while (head.find("\r\n\r\n") == std::string::npos) {
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      head.append(buf, static_cast<size_t>(r));
      if (request) request->append(std::string_view(buf, static_cast<size_t>(r)));
    }
    writeAll(fd, response);
    ::shutdown(fd, SHUT_WR);
    // Drain until the peer closes (so our close does not turn into a RST), bounded.
    const TimePoint deadline = Clock::now() + 10s;
    for (;;) {
      short ev = pollOne(fd, POLLIN, deadline);
      if (ev == 0) break;
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      if (request) request->append(std::string_view(buf, static_cast<size_t>(r)));
    }
    if (request) request->markEnded();
  };
}

// ---------------------------------------------------------------------------------------------
// unusedPort

uint16_t unusedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw HarnessError("socket: " + errnoStr(errno));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    int e = errno;
    ::close(fd);
    throw HarnessError("unusedPort: " + errnoStr(e));
  }
  ::close(fd);
  return ntohs(sa.sin_port);
}

// ---------------------------------------------------------------------------------------------
// HTTP

std::string HttpResponse::header(std::string_view name) const {
  std::string_view h = headers;
  while (!h.empty()) {
    size_t e = h.find("\r\n");
    std::string_view line = h.substr(0, e);
    h = e == std::string_view::npos ? std::string_view() : h.substr(e + 2);
    size_t colon = line.find(':');
    if (colon == name.size() && startsWithNoCase(line, name)) {
      return std::string(trim(line.substr(colon + 1)));
    }
  }
  return "";
}

bool HttpResponse::hasHeader(std::string_view name) const {
  std::string_view h = headers;
  while (!h.empty()) {
    size_t e = h.find("\r\n");
    std::string_view line = h.substr(0, e);
    h = e == std::string_view::npos ? std::string_view() : h.substr(e + 2);
    size_t colon = line.find(':');
    if (colon == name.size() && startsWithNoCase(line, name)) return true;
  }
  return false;
}

namespace {

enum class Parse { kIncomplete, kComplete, kError };

// Decodes a chunked body starting at raw[pos]. kComplete when the terminating chunk and
// trailers have been read.
Parse decodeChunked(std::string_view raw, size_t pos, std::string& body, std::string& err) {
  body.clear();
  for (;;) {
    size_t eol = raw.find("\r\n", pos);
    if (eol == std::string_view::npos) return Parse::kIncomplete;
    std::string_view sz = raw.substr(pos, eol - pos);
    sz = sz.substr(0, sz.find(';'));
    sz = trim(sz);
    if (sz.empty() || sz.size() > 15 || !std::all_of(sz.begin(), sz.end(), isXDigit)) {
      err = "bad chunk size line: " + std::string(raw.substr(pos, eol - pos));
      return Parse::kError;
    }
    size_t n = std::stoul(std::string(sz), nullptr, 16);
    pos = eol + 2;
    if (n == 0) {
      // Trailers until an empty line.
      for (;;) {
        size_t e = raw.find("\r\n", pos);
        if (e == std::string_view::npos) return Parse::kIncomplete;
        if (e == pos) return Parse::kComplete;
        pos = e + 2;
      }
    }
    if (raw.size() < pos + n + 2) return Parse::kIncomplete;
    body.append(raw.substr(pos, n));
    if (raw.substr(pos + n, 2) != "\r\n") {
      err = "chunk not followed by CRLF";
      return Parse::kError;
    }
    pos += n + 2;
  }
}

Parse parseResponse(std::string_view raw, bool closed, bool head_request, HttpResponse& out) {
  out = HttpResponse{};
  size_t start = 0;
  for (;;) {
    size_t head_end = raw.find("\r\n\r\n", start);
    if (head_end == std::string_view::npos) {
      out.error = raw.size() == start ? "no response" : "incomplete response head";
      return closed ? Parse::kError : Parse::kIncomplete;
    }
    std::string_view head = raw.substr(start, head_end - start);
    size_t sl_end = head.find("\r\n");
    std::string_view status_line = head.substr(0, sl_end);
    // "HTTP/1.x NNN[ reason]"
    if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || status_line[8] != ' ' ||
        !std::isdigit(static_cast<unsigned char>(status_line[9])) ||
        !std::isdigit(static_cast<unsigned char>(status_line[10])) ||
        !std::isdigit(static_cast<unsigned char>(status_line[11])) ||
        (status_line.size() > 12 && status_line[12] != ' ')) {
      out.error = "bad status line: " + std::string(status_line);
      return Parse::kError;
    }
    int status = std::stoi(std::string(status_line.substr(9, 3)));
    std::string headers =
        sl_end == std::string_view::npos ? std::string() : std::string(head.substr(sl_end + 2));
    size_t body_start = head_end + 4;
    if (status >= 100 && status < 200 && status != 101) {  // interim response: skip
      start = body_start;
      continue;
    }
    HttpResponse r;
    r.status = status;
    r.headers = std::move(headers);
    std::string_view rest = raw.substr(body_start);
    if (head_request || status == 204 || status == 304 || status == 101) {
      out = std::move(r);
      return Parse::kComplete;
    }
    std::string te = r.header("Transfer-Encoding");
    std::transform(te.begin(), te.end(), te.begin(), ::tolower);
    if (te.find("chunked") != std::string::npos) {
      std::string err;
      Parse p = decodeChunked(raw, body_start, r.body, err);
      if (p == Parse::kError) {
        out.error = err;
        return p;
      }
      if (p == Parse::kIncomplete) {
        out.error = "incomplete chunked body";
        return closed ? Parse::kError : Parse::kIncomplete;
      }
      out = std::move(r);
      return Parse::kComplete;
    }
    if (r.hasHeader("Content-Length")) {
      std::string cl = r.header("Content-Length");
      if (cl.empty() || cl.size() > 18 || !std::all_of(cl.begin(), cl.end(), isDigit)) {
        out.error = "bad Content-Length: " + cl;
        return Parse::kError;
      }
      size_t n = std::stoull(cl);
      if (rest.size() < n) {
        out.error = "body shorter than Content-Length (" + std::to_string(rest.size()) + " < " +
                    cl + ")";
        return closed ? Parse::kError : Parse::kIncomplete;
      }
      r.body = std::string(rest.substr(0, n));
      out = std::move(r);
      return Parse::kComplete;
    }
    if (!closed) return Parse::kIncomplete;  // close-delimited body
    r.body = std::string(rest);
    out = std::move(r);
    return Parse::kComplete;
  }
}

}  // namespace

HttpResponse parseHttpResponse(std::string_view raw, bool complete, bool head_request) {
  HttpResponse r;
  Parse p = parseResponse(raw, complete, head_request, r);
  if (p != Parse::kComplete) {
    std::string err = r.error.empty() ? "incomplete response" : r.error;
    r = HttpResponse{};
    r.error = err;
  }
  return r;
}

HttpResponse httpRequest(uint16_t port, const std::string& method, const std::string& path,
                         const std::string& body, const std::vector<std::string>& extra_headers,
                         ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  HttpResponse res;
  auto left = [&] { return ms(remainingMs(deadline)); };
  auto client = TcpClient::connect(port, left());
  if (!client) {
    res.error = "connect to 127.0.0.1:" + std::to_string(port) + " failed";
    return res;
  }
  bool has_host = false, has_conn = false, has_len = false, has_te = false;
  for (const auto& h : extra_headers) {
    has_host |= startsWithNoCase(h, "host:");
    has_conn |= startsWithNoCase(h, "connection:");
    has_len |= startsWithNoCase(h, "content-length:");
    has_te |= startsWithNoCase(h, "transfer-encoding:");
  }
  std::string req = method + " " + path + " HTTP/1.1\r\n";
  if (!has_host) req += "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
  if (!has_conn) req += "Connection: close\r\n";
  if (!has_len && !has_te &&
      (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")) {
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  for (const auto& h : extra_headers) req += h + "\r\n";
  req += "\r\n";
  req += body;
  if (!client->sendAll(req, left())) {
    // The server may have answered and closed early (e.g. 413): still try to read a response.
  }
  std::string raw;
  const bool head = method == "HEAD";
  for (;;) {
    std::string chunk = client->recvSome(left());
    raw += chunk;
    bool closed = client->closedByPeer();
    HttpResponse r;
    Parse p = parseResponse(raw, closed, head, r);
    if (p == Parse::kComplete) return r;
    if (p == Parse::kError) {
      res.error = r.error;
      return res;
    }
    if (chunk.empty() && !closed) {  // deadline passed
      res.error = "timed out after " + std::to_string(timeout.count()) + " ms (" + r.error +
                  "); got " + std::to_string(raw.size()) + " bytes";
      return res;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Prometheus

namespace {

bool isNameStart(char c, bool colon_ok) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || (colon_ok && c == ':');
}
bool isNameChar(char c, bool colon_ok) {
  return isNameStart(c, colon_ok) || std::isdigit(static_cast<unsigned char>(c));
}

std::optional<double> parseValue(std::string_view v) {
  if (v == "+Inf" || v == "Inf") return HUGE_VAL;
  if (v == "-Inf") return -HUGE_VAL;
  if (v == "NaN") return std::nan("");
  if (v.empty()) return std::nullopt;
  std::string s(v);
  // strtod also accepts "inf", "nan", hex floats: restrict to decimal syntax first.
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.' && c != 'e' && c != 'E' &&
        c != '+' && c != '-') {
      return std::nullopt;
    }
  }
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return d;
}

// Parses one sample line; returns {key, value} or nullopt.
std::optional<std::pair<std::string, double>> parseSample(std::string_view line) {
  size_t i = 0;
  if (i >= line.size() || !isNameStart(line[i], true)) return std::nullopt;
  while (i < line.size() && isNameChar(line[i], true)) ++i;
  if (i < line.size() && line[i] == '{') {
    ++i;
    for (;;) {
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      if (i >= line.size() || !isNameStart(line[i], false)) return std::nullopt;
      while (i < line.size() && isNameChar(line[i], false)) ++i;
      if (i >= line.size() || line[i] != '=') return std::nullopt;
      ++i;
      if (i >= line.size() || line[i] != '"') return std::nullopt;
      ++i;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i];
        if (c == '\\') {
          if (i + 1 >= line.size()) return std::nullopt;
          char e = line[i + 1];
          if (e != '\\' && e != '"' && e != 'n') return std::nullopt;
          i += 2;
          continue;
        }
        ++i;
        if (c == '"') {
          closed = true;
          break;
        }
      }
      if (!closed) return std::nullopt;
      if (i < line.size() && line[i] == ',') {
        ++i;
        continue;
      }
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      return std::nullopt;
    }
  }
  std::string key(line.substr(0, i));
  if (i >= line.size() || (line[i] != ' ' && line[i] != '\t')) return std::nullopt;
  std::string_view rest = trim(line.substr(i));
  size_t sp = rest.find_first_of(" \t");
  std::string_view val = rest.substr(0, sp);
  auto v = parseValue(val);
  if (!v) return std::nullopt;
  if (sp != std::string_view::npos) {
    std::string_view ts = trim(rest.substr(sp));
    if (!ts.empty() && ts[0] == '-') ts.remove_prefix(1);
    if (ts.empty() || !std::all_of(ts.begin(), ts.end(), isDigit)) return std::nullopt;
  }
  return std::make_pair(std::move(key), *v);
}

}  // namespace

std::optional<std::map<std::string, double>> parsePrometheus(std::string_view text) {
  std::map<std::string, double> out;
  while (!text.empty()) {
    size_t e = text.find('\n');
    std::string_view line = text.substr(0, e);
    text = e == std::string_view::npos ? std::string_view() : text.substr(e + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    auto s = parseSample(t);
    if (!s) return std::nullopt;
    if (!out.emplace(std::move(s->first), s->second).second) return std::nullopt;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// randomBytes

std::string randomBytes(size_t n, uint32_t seed) {
  std::string out(n, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ull ^ seed;
  size_t i = 0;
  while (i < n) {
    // splitmix64
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    for (int k = 0; k < 8 && i < n; ++k, ++i) out[i] = static_cast<char>((z >> (8 * k)) & 0xFF);
  }
  return out;
}

}  // namespace ferry::testing
