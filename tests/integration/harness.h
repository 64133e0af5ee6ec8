// Integration-test harness for Ferry: runs the ferry binary, fake upstreams and raw clients on
// 127.0.0.1, with every wait bounded by a deadline.
//
// Conventions:
//  - Harness misuse and unrecoverable setup failures (FERRY_BIN unset, exec failed, ferry exited
//    before logging its port, runFerry timed out...) throw HarnessError. Catch2 reports it as a
//    test failure with the message (which includes ferry's log where relevant).
//  - Everything that waits takes a timeout; none of it sleeps (waitUntil, for conditions nothing
//    signals, re-checks at a fixed interval until its deadline).
//  - Call FerryProcess::start/startCommand from the test's (main) thread: the child gets
//    PR_SET_PDEATHSIG=SIGKILL, which fires when the *thread* that spawned it exits.
//  - No Catch2 assertions (REQUIRE/CHECK) inside FakeUpstream handlers: they run on other
//    threads. Record what you need (e.g. into a Received) and assert on the test thread.
//  - SIGPIPE is ignored in the test process (set up by the harness); child processes get it back
//    at its default disposition.
//
// The implementation is split by concern: harness.cc (SIGPIPE, waitUntil, randomBytes),
// harness_process.cc (environment, files, TempDir, runProcess/runFerry, FerryProcess),
// harness_net.cc (TcpClient, Received, FakeUpstream, RefusingPort) and harness_http.cc (HTTP
// client and parser, Prometheus parser, /metrics helpers); harness_internal.h holds what they
// share. Ferry configs for the tests come from config_builder.h (FerryConfig). For TLS:
// test_certs.h (CA, certificates, PEM files), tls_client.h (TlsClient, httpsGet) and
// tls_upstream.h (TlsUpstream, a TLS backend).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::testing {

using ms = std::chrono::milliseconds;
using namespace std::chrono_literals;

struct HarnessError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// $FERRY_BIN (throws HarnessError if unset or empty).
std::string ferryBin();
// $FERRY_SRC (throws HarnessError if unset or empty).
std::string srcDir();
// True if $FERRY_SANITIZED is "1" (ferry is built with sanitizers: memory figures such as
// rssKb() are not meaningful).
bool sanitized();

// The whole content of the file at path ("" if it cannot be read).
std::string readFile(const std::string& path);

// Evaluates pred() until it returns true, pausing `every` between evaluations, for at most
// `timeout`: true as soon as pred() holds, false if it still does not at the deadline (pred is
// evaluated at least once). For conditions nothing signals (an atomic flag set by another
// thread, a metric, a port refusing connections); prefer a blocking wait with a deadline
// (Received::waitBytes, FerryProcess::waitForLog, ...) where one exists.
bool waitUntil(const std::function<bool()>& pred, ms timeout, ms every = 10ms);

// A fresh directory /tmp/ferry-test-XXXXXX, removed recursively in the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes (overwrites) path()/name, creating parent directories; returns the full path.
  std::string write(const std::string& name, std::string_view content, unsigned mode = 0644) const;

 private:
  std::string path_;
};

// Sets an environment variable for the scope of a test, restoring the old value afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

struct RunResult {
  int exit_code = -1;  // exit status, or 128+signal if killed by a signal
  std::string out;
  std::string err;
  bool timed_out = false;  // the deadline passed: the process (group) was SIGKILLed
};

// Runs argv (argv[0] is a path, or a name looked up in PATH) to completion with stdin on
// /dev/null, capturing stdout and stderr separately. On timeout it SIGKILLs the process and its
// process group and returns with timed_out = true (exit_code 137). Throws if exec fails.
RunResult runProcess(const std::vector<std::string>& argv, ms timeout = 10s);

// runProcess({ferryBin(), args...}); throws HarnessError (with the output so far) on timeout.
RunResult runFerry(const std::vector<std::string>& args, ms timeout = 10s);

// A long-running child (normally ferry) with stdout+stderr captured into one log.
// The child runs in its own process group with its TempDir as the working directory.
class FerryProcess {
 public:
  // Writes `yaml` to <dir>/ferry.yaml and each extra_files entry to <dir>/<name>, then runs
  // `ferry -c <dir>/ferry.yaml <extra_args...>`. Every "{dir}" in yaml, extra_args and the
  // extra files' contents is replaced by the TempDir path first (e.g. `cert: {dir}/cert.pem`).
  static std::unique_ptr<FerryProcess> start(const std::string& yaml,
                                             const std::vector<std::string>& extra_args = {},
                                             std::map<std::string, std::string> extra_files = {});
  // Runs an arbitrary argv the same way (used by start; lets the harness be tested without
  // ferry). Nothing is written to the TempDir.
  static std::unique_ptr<FerryProcess> startCommand(const std::vector<std::string>& argv);

  // SIGKILLs the process group if still there, reaps, joins the reader. If the destructor runs
  // during exception unwinding (a failed REQUIRE) or FERRY_TEST_LOG=1, the log goes to stderr.
  ~FerryProcess();
  FerryProcess(const FerryProcess&) = delete;
  FerryProcess& operator=(const FerryProcess&) = delete;

  // Waits for a complete log line containing `listening: listener=<NAME> address=HOST:PORT` and
  // returns PORT (of the last such line at that moment). Throws HarnessError, with the log, if
  // the process exits first or the deadline passes.
  uint16_t port(const std::string& listener, ms timeout = 10s);
  // Same for `listening: admin address=HOST:PORT`.
  uint16_t adminPort(ms timeout = 10s);
  // Waits until the log contains `needle` (anywhere, from the start of the log). False on
  // timeout or if the process exited (and its output ended) without logging it.
  bool waitForLog(const std::string& needle, ms timeout = 10s);
  // Number of occurrences of needle in the log so far (e.g. to wait for a 2nd "reloaded").
  size_t countInLog(const std::string& needle);
  // Waits until countInLog(needle) >= n.
  bool waitForLogCount(const std::string& needle, size_t n, ms timeout = 10s);
  std::string log();

  // To the process only (not its group). Safe after it exited: the zombie is reaped only by
  // the destructor, so the pid cannot have been reused.
  void signal(int sig);
  // Exit code (or 128+signal) once the process has exited; nullopt if still running at the
  // deadline. Can be called repeatedly.
  std::optional<int> waitExit(ms timeout = 10s);
  bool running();
  pid_t pid() const;
  const std::string& dir() const;  // the TempDir (also the working directory)
  std::string configPath() const;  // <dir>/ferry.yaml
  void writeConfig(const std::string& yaml);  // atomically replaces ferry.yaml ({dir} expanded)
  long rssKb() const;                         // VmRSS from /proc/PID/status; -1 if unavailable

  struct State;

 private:
  FerryProcess();
  void spawnHere(const std::vector<std::string>& argv);
  uint16_t waitListening(const std::string& needle, const std::string& what, ms timeout);
  std::unique_ptr<TempDir> dir_;
  std::shared_ptr<State> st_;
};

// A client socket to 127.0.0.1:port (non-blocking underneath; every call has a deadline).
// sendAll() may run on one thread while one receiving call runs on another; otherwise use from
// one thread at a time.
class TcpClient {
 public:
  // nullptr if the connection is refused or not established within the timeout.
  // recv_buffer > 0 sets SO_RCVBUF before connecting (so the TCP window is small from the start).
  static std::unique_ptr<TcpClient> connect(uint16_t port, ms timeout = 5s, int recv_buffer = 0);
  ~TcpClient();
  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;

  // False if the deadline passes or the connection fails before everything was written.
  bool sendAll(std::string_view data, ms timeout = 10s);
  // Exactly n bytes, or fewer if the deadline passes / the peer closes or resets first.
  std::string recvExactly(size_t n, ms timeout = 10s);
  // Everything until EOF/reset, or what arrived before the deadline.
  std::string recvUntilClose(ms timeout = 10s);
  // Waits up to timeout for data and returns what is available (possibly a partial message);
  // empty on timeout or EOF/reset.
  std::string recvSome(ms timeout);
  // True once the peer closed (EOF) or reset the connection; data arriving meanwhile is
  // discarded. False on timeout.
  bool waitClosed(ms timeout);
  // Like waitClosed but keeps data arriving meanwhile for later recv* calls.
  bool peerClosedOrReset(ms timeout);

  // Puts bytes back in front of what the next recv* call returns (a reader that took more than
  // one message gives the rest back).
  void unread(std::string_view bytes) { pending_.insert(0, bytes); }
  void shutdownWrite();
  void setRecvBuffer(int bytes);
  void close();       // orderly close (FIN); the object becomes unusable
  void resetClose();  // SO_LINGER 0 + close: sends RST
  int fd() const { return fd_; }
  bool sawEof() const { return eof_; }      // the peer's FIN was read
  bool sawReset() const { return reset_; }  // a read/write failed with ECONNRESET/EPIPE etc.
  bool closedByPeer() const { return eof_ || reset_; }

 private:
  explicit TcpClient(int fd) : fd_(fd) {}
  // Reads once (after waiting until deadline) into pending_; false on timeout or EOF/reset.
  bool fill(std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
  std::string pending_;
  bool eof_ = false;
  bool reset_ = false;
};

// Thread-safe record of the bytes a FakeUpstream handler received.
class Received {
 public:
  std::string data() const;
  size_t size() const;
  bool eof() const;    // at least one connection recording here ended (EOF or error)
  bool reset() const;  // ...and one of them ended with an error (e.g. ECONNRESET)
  bool waitBytes(size_t n, ms timeout = 10s) const;  // size() >= n
  bool waitEof(ms timeout = 10s) const;
  // For handlers:
  void append(std::string_view bytes);
  void markEnded(bool by_reset = false);

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::string data_;
  int ended_ = 0;
  bool reset_ = false;
};

// Listens on 127.0.0.1:<ephemeral> and runs `handler(fd)` on its own thread for each accepted
// connection. The fd is blocking and owned by the harness: handlers must not close it (they may
// shutdown() it); it is closed when the handler returns. The destructor shuts the listening
// socket and every open connection down (so blocked reads return 0), then joins all threads.
class FakeUpstream {
 public:
  using Handler = std::function<void(int fd)>;
  // Listens on ip:port (a loopback address; port 0 = an ephemeral one).
  explicit FakeUpstream(Handler handler, const std::string& ip = "127.0.0.1", uint16_t port = 0);
  ~FakeUpstream();
  FakeUpstream(const FakeUpstream&) = delete;
  FakeUpstream& operator=(const FakeUpstream&) = delete;

  uint16_t port() const;
  size_t accepted() const;
  bool waitAccepted(size_t n, ms timeout = 10s) const;
  // Closes the listening socket (new connections are refused); returns once it is closed.
  void stopListening();

  // Echoes until EOF, then shuts its write side down (and returns: the fd is closed).
  static Handler echo();
  // Appends everything received to *rec until EOF/error, then marks it ended.
  static Handler sink(std::shared_ptr<Received> rec);
  // Closes the connection at once.
  static Handler closeImmediately();
  // Reads until the end of a request head ("\r\n\r\n"; into *request if given), writes
  // `response`, shuts its write side down and drains until the peer closes (max 10s).
  static Handler reply(std::string response, std::shared_ptr<Received> request = nullptr);

  // Blocking-fd helpers for custom handlers (MSG_NOSIGNAL; retry on EINTR).
  static bool writeAll(int fd, std::string_view data);
  // One read() of up to max bytes; empty on EOF or error.
  static std::string readSome(int fd, size_t max = 65536);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// A port on 127.0.0.1 that refuses connections for as long as this object lives: it holds a
// socket bound to 127.0.0.1:<ephemeral> that never listens, so a connect() to port() gets a RST
// (ECONNREFUSED). The port stays taken meanwhile (no SO_REUSEADDR/SO_REUSEPORT: nothing else
// can bind it, nor get it as an ephemeral port), unlike a port that was bound and closed again.
// Keep the object alive as long as anything (e.g. ferry's config) uses the port.
class RefusingPort {
 public:
  RefusingPort();
  ~RefusingPort();
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;

  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

struct HttpResponse {
  int status = 0;       // 0: no (parsable) response; see error
  std::string headers;  // the raw header lines after the status line, "\r\n"-separated
  std::string body;     // de-chunked
  std::string error;    // why status is 0
  // First value of the header (case-insensitive name, value trimmed); "" if absent.
  std::string header(std::string_view name) const;
  bool hasHeader(std::string_view name) const;
};

// One HTTP/1.1 request with "Connection: close" (and Host, unless given in extra_headers;
// Content-Length when a body is given or the method is POST/PUT/PATCH). Reads until the response
// is complete (Content-Length, chunked) or the server closes. Interim 1xx responses are skipped.
HttpResponse httpRequest(uint16_t port, const std::string& method, const std::string& path,
                         const std::string& body = "",
                         const std::vector<std::string>& extra_headers = {}, ms timeout = 5s);

// Parses a raw response stream. `complete` says the stream ended (so a close-delimited body is
// whole). status 0 + error if malformed or incomplete.
HttpResponse parseHttpResponse(std::string_view raw, bool complete = true, bool head_request = false);

// Reads one response (head + body by Content-Length, chunked or up to the close; interim 1xx
// skipped) from a kept-alive connection, e.g. after a request written with TcpClient::sendAll.
// Bytes that arrive in the same read after the response (a pipelined next response) stay in the
// client for the next read. status 0 + error if it
// is malformed, or still incomplete when the peer closes or the deadline passes. head_request:
// a HEAD's response has no body.
HttpResponse readHttpResponse(TcpClient& c, bool head_request = false, ms timeout = 5s);

// Prometheus text exposition -> { "name{labels as written}" or "name" : value }. Comment (#) and
// blank lines are skipped; an optional timestamp is accepted and ignored. nullopt if any line is
// malformed or a sample repeats.
std::optional<std::map<std::string, double>> parsePrometheus(std::string_view text);

// ferry's GET /metrics on the admin port. Ferry's samples are counters and gauges, never
// negative, so metricValue reports failures as negative values:
inline constexpr double kMetricAbsent = -1;      // /metrics has no sample with that key
inline constexpr double kMetricUnreadable = -2;  // no 200 answer, or not valid Prometheus text

// One scrape; the value of the sample `key` (as parsePrometheus keys it: "name{labels as
// written}" or "name"), kMetricAbsent or kMetricUnreadable. An assertion such as
// `metricValue(f, k) == 3` thus fails in both error cases.
double metricValue(uint16_t admin_port, const std::string& key);
double metricValue(FerryProcess& f, const std::string& key);  // on f.adminPort()

// Scrapes /metrics until the sample `key` is present with value `want` (true), or the deadline
// passes (false). No pause between scrapes: each one is a round trip to ferry.
bool waitMetric(uint16_t admin_port, const std::string& key, double want, ms timeout = 5s);

// A filter's outcome counters (NAME{listener="LISTENER",result="R"}, filters/http/
// outcome_counters.h) from one scrape: the value for each of `results`, in that order, with
// kMetricAbsent / kMetricUnreadable as metricValue has them. Compare with a whole vector, e.g.
// `outcomeCounts(*f, "ferry_rbac_requests_total", {"allowed", "denied"}) == Counts{2, 1}`, so
// that every result is checked at once.
using Counts = std::vector<double>;
Counts outcomeCounts(FerryProcess& f, const std::string& name, const std::vector<std::string>& results,
                     const std::string& listener = "web");

// n deterministic pseudo-random bytes (all 256 values occur) from seed.
std::string randomBytes(size_t n, uint32_t seed);

}  // namespace ferry::testing
