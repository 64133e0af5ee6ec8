// What the HTTP/2 integration tests share (http2_test.cc, http2_defence_test.cc,
// http2_flow_drain_test.cc): the python raw-frame clients in tests/integration/h2/
// (hyperframe + hpack from python3-h2, run with /usr/bin/python3: the python3 on PATH may not
// see Debian's packages), each printing one "RESULT <json>" line; long-running ones run as a
// child whose log the test watches, and wait for SIGUSR1 where the test has to act in between.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <cctype>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <regex>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_upstream.h"
#include "tests/integration/json.h"
#include "tests/integration/test_certs.h"
#include "tests/integration/tls_test_support.h"

namespace ferry::testing::h2test {

inline const std::string kPython = "/usr/bin/python3";

inline std::string script(const std::string& name) { return srcDir() + "/tests/integration/h2/" + name; }

// The JSON of the last "RESULT " line of a script's output.
inline std::optional<Json> resultOf(const std::string& out) {
  const size_t p = out.rfind("RESULT ");
  if (p == std::string::npos) return std::nullopt;
  size_t e = out.find('\n', p);
  return parseJson(out.substr(p + 7, e == std::string::npos ? std::string::npos : e - p - 7));
}

// Runs tests/integration/h2/<name> --port <port> <args...> to completion; its RESULT.
inline Json runScript(const std::string& name, uint16_t port, const std::vector<std::string>& args = {}, ms timeout = 20s) {
  std::vector<std::string> argv{kPython, script(name), "--port", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = runProcess(argv, timeout);
  INFO(name << " exit " << r.exit_code << "\nstdout:\n" << r.out << "\nstderr:\n" << r.err);
  REQUIRE(!r.timed_out);
  REQUIRE(r.exit_code == 0);
  auto j = resultOf(r.out);
  REQUIRE(j.has_value());
  return *j;
}

// A script left running (its output is the child's log).
inline std::unique_ptr<FerryProcess> startScript(const std::string& name, uint16_t port, const std::vector<std::string>& args = {}) {
  std::vector<std::string> argv{kPython, script(name), "--port", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  return FerryProcess::startCommand(argv);
}

inline std::string violationKey(const std::string& kind, const std::string& listener = "web") {
  return "ferry_http2_violations_total{listener=\"" + listener + "\",kind=\"" + kind + "\"}";
}

inline bool truthy(const Json& j) { return std::holds_alternative<bool>(j.v) && std::get<bool>(j.v); }

inline double metric(FerryProcess& f, const std::string& key) { return metricValue(f, key); }

// Waits until the counter is above `than`; its last value.
inline double waitAbove(FerryProcess& f, const std::string& key, double than, ms timeout = 5s) {
  double v = kMetricAbsent;
  waitUntil([&] { return (v = metric(f, key)) > than; }, timeout, 20ms);
  return v;
}

// The list of [last_stream_id, error_code] pairs a script reports.
inline std::vector<std::pair<double, double>> goaways(const Json& j) {
  std::vector<std::pair<double, double>> out;
  for (const auto& g : j["goaways"].arr()) out.emplace_back(g.arr().at(0).num(), g.arr().at(1).num());
  return out;
}

inline constexpr double kEnhanceYourCalm = 11;
inline constexpr double kRefusedStream = 7;

// Ferry still runs and serves an h2c request on a new connection.
inline void stillServes(FerryProcess& f, uint16_t port) {
  REQUIRE(f.running());
  Json g = runScript("get.py", port, {"--path", "/still-there"});
  CHECK(g["status"].num() == 200);
  CHECK(g["body"].str() == "ok:/still-there");
}

// SIGTERM: ferry exits 0 (under the sanitizers, also without a leak or error report at exit).
inline void exitsCleanly(FerryProcess& f) {
  f.signal(SIGTERM);
  auto code = f.waitExit(20s);
  const std::string log = f.log();
  INFO("ferry's log, the end:\n" << log.substr(log.size() > 6000 ? log.size() - 6000 : 0));
  REQUIRE(code.has_value());
  CHECK(*code == 0);
}

// The flood checks: ferry counted the violation, ended the connection with GOAWAY
// ENHANCE_YOUR_CALM and still serves.
inline void floodHandled(FerryProcess& f, uint16_t port, const Json& j, const std::string& kind, double before) {
  INFO("kind " << kind);
  CHECK(truthy(j["closed"]));
  CHECK(waitAbove(f, violationKey(kind), before) > before);
  auto g = goaways(j);
  REQUIRE(!g.empty());
  CHECK(g.back().second == kEnhanceYourCalm);
  stillServes(f, port);
}

inline std::string h2cConfig(uint16_t upstream, const std::string& http_extra = "", const std::string& runtime_extra = "") {
  return FerryConfig{.runtime_extra = runtime_extra, .http_extra = http_extra, .clusters = {{"up", {upstream}}}}.yaml();
}

// curl against ferry: "<http_version> <status>" (curl's -w), the response head (-D) and the body.
struct CurlResult {
  int exit_code = -1;
  std::string version;
  int status = 0;
  std::string headers;  // raw, as curl's -D wrote them
  std::string body;
  std::string err;
  // The first value of a header (case-insensitive name, value trimmed), "" when absent.
  std::string header(const std::string& name) const {
    const std::string want = lower(name) + ":";
    size_t pos = 0;
    while (pos < headers.size()) {
      size_t end = headers.find("\r\n", pos);
      if (end == std::string::npos) end = headers.size();
      const std::string line = headers.substr(pos, end - pos);
      if (lower(line).rfind(want, 0) == 0) {
        std::string v = line.substr(want.size());
        while (!v.empty() && v.front() == ' ') v.erase(0, 1);
        while (!v.empty() && (v.back() == ' ' || v.back() == '\r')) v.pop_back();
        return v;
      }
      pos = end + 2;
    }
    return "";
  }
  bool has(const std::string& name) const { return lower("\n" + headers).find("\n" + lower(name) + ":") != std::string::npos; }

 private:
  static std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
};
inline CurlResult curl(const TempDir& dir, std::vector<std::string> args) {
  const std::string body_file = dir.path() + "/curl-body";
  const std::string head_file = dir.path() + "/curl-headers";
  std::vector<std::string> argv{"curl", "-sS", "-o", body_file, "-D", head_file, "-w", "%{http_version} %{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = runProcess(argv, 10s);
  CurlResult c;
  c.exit_code = r.exit_code;
  c.err = r.err;
  const size_t sp = r.out.find(' ');
  if (sp != std::string::npos) {
    c.version = r.out.substr(0, sp);
    c.status = std::atoi(r.out.c_str() + sp + 1);
  }
  c.body = readFile(body_file);
  c.headers = readFile(head_file);
  return c;
}

// Holds an upstream handler back until the test releases it (or the test ends).
struct Release {
  std::mutex& mu;
  std::condition_variable& cv;
  bool& open;
  void operator()() {
    {
      std::lock_guard<std::mutex> lk(mu);
      open = true;
    }
    cv.notify_all();
  }
  ~Release() { (*this)(); }
};

}  // namespace ferry::testing::h2test
