// Running Ferry in production: runtime.user (the privilege drop after binding), the log's
// format (runtime.log_format) and file (runtime.log_file, reopened on SIGUSR1), and health
// checks (listeners[].http.health_path, POST /healthcheck/fail and /healthcheck/ok).
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/reload_support.h"

using namespace ferry::testing;

namespace {

// ---- health checks

const std::string kToken = "tok-5be1d0a8c3f94e27";
const std::vector<std::string> kAuth = {"Authorization: Bearer " + kToken};

std::string healthConfig(uint16_t up, const std::string& runtime_extra = "") {
  return FerryConfig{.workers = 2,
                     .runtime_extra = runtime_extra,
                     .admin_extra = "  token_file: admin.token\n",
                     .http_extra = "      health_path: /healthz\n",
                     .clusters = {{"up", {up}}}}
      .yaml();
}

// ---- processes and users

bool isRoot() { return ::geteuid() == 0; }

// The lines "Key:\tvalue" of /proc/PID[/task/TID]/status.
std::map<std::string, std::string> procStatus(const std::string& path) {
  std::map<std::string, std::string> out;
  std::istringstream in(readFile(path));
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    out[line.substr(0, colon)] = v;
  }
  return out;
}

// Every thread of `pid` runs as uid/gid with CAP_NET_BIND_SERVICE alone (permitted, effective
// and ambient). The number of threads checked.
size_t checkDropped(pid_t pid, uid_t uid, gid_t gid) {
  const std::string ids_u = std::to_string(uid) + "\t" + std::to_string(uid) + "\t" + std::to_string(uid) + "\t" +
                            std::to_string(uid);
  const std::string ids_g = std::to_string(gid) + "\t" + std::to_string(gid) + "\t" + std::to_string(gid) + "\t" +
                            std::to_string(gid);
  std::vector<std::string> paths = {"/proc/" + std::to_string(pid) + "/status"};
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task"))
    paths.push_back(e.path().string() + "/status");
  for (const auto& p : paths) {
    auto st = procStatus(p);
    INFO(p);
    CHECK(st["Uid"] == ids_u);
    CHECK(st["Gid"] == ids_g);
    CHECK(st["CapEff"] == "0000000000000400");
    CHECK(st["CapPrm"] == "0000000000000400");
    CHECK(st["CapAmb"] == "0000000000000400");
  }
  return paths.size() - 1;
}

// `n` ports below 1024 on 127.0.0.1 that nothing has bound (tried by binding each, 900-1020).
std::vector<uint16_t> freeLowPorts(size_t n) {
  std::vector<uint16_t> out;
  for (uint16_t p = 900; p <= 1020 && out.size() < n; ++p) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(p);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) out.push_back(p);
    ::close(fd);
  }
  REQUIRE(out.size() == n);
  return out;
}

std::string lowListener(const std::string& name, uint16_t port, const std::string& cluster) {
  return httpListener(name, toCluster(cluster), "", "", "127.0.0.1:" + std::to_string(port));
}

// The port of the last "listening: <what>address=HOST:PORT" in `text` (0: none).
uint16_t portIn(const std::string& text, const std::string& what) {
  std::regex re("listening: " + what + "address=[0-9.]+:([0-9]+)");
  uint16_t port = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it)
    port = static_cast<uint16_t>(std::stoi((*it)[1]));
  return port;
}

// Whether any user may run the binary at `path` (every directory above it searchable by all).
bool othersCanRun(const std::string& path) {
  std::filesystem::path p = std::filesystem::absolute(path);
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0 || (st.st_mode & S_IXOTH) == 0) return false;
  for (p = p.parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path())
    if (::stat(p.c_str(), &st) != 0 || (st.st_mode & S_IXOTH) == 0) return false;
  return true;
}

}  // namespace

// ---- health_path and /healthcheck

TEST_CASE("health_path answers before routing; /healthcheck/fail and ok turn it and /ready", "[rtops][health]") {
  HttpUpstream up;
  auto f = FerryProcess::start(healthConfig(up.port()), {}, {{"admin.token", kToken + "\n"}});
  const uint16_t web = f->port("web");
  const uint16_t admin = f->adminPort();

  auto r = httpRequest(web, "GET", "/healthz");
  CHECK(r.status == 200);
  CHECK(r.body == "ok\n");
  CHECK(r.header("content-type") == "text/plain");
  CHECK(httpRequest(web, "GET", "/healthz?probe=1").status == 200);
  auto head = httpRequest(web, "HEAD", "/healthz");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  auto post = httpRequest(web, "POST", "/healthz", "x");
  CHECK(post.status == 405);
  CHECK(post.header("allow") == "GET, HEAD");
  // Only that path: the rest is routed.
  CHECK(httpRequest(web, "GET", "/healthz/deeper").body == "ok:/healthz/deeper");
  CHECK(httpRequest(web, "GET", "/other").body == "ok:/other");
  REQUIRE(up.waitRequests(2));
  CHECK(up.requestCount() == 2);  // no health check reached the upstream

  // Keep-alive: the health answer leaves the connection usable.
  auto c = TcpClient::connect(web);
  REQUIRE(c);
  CHECK(keepAliveGet(*c, "/healthz").status == 200);
  CHECK(keepAliveGet(*c, "/x").body == "ok:/x");

  // The admin endpoints: POST only, with the token.
  CHECK(httpRequest(admin, "GET", "/healthcheck/fail").status == 405);
  CHECK(httpRequest(admin, "GET", "/healthcheck/ok").status == 405);
  CHECK(httpRequest(admin, "POST", "/healthcheck/fail").status == 401);
  CHECK(httpRequest(admin, "POST", "/healthcheck/fail", "", {"Authorization: Bearer wrong"}).status == 401);
  CHECK(httpRequest(admin, "GET", "/ready").status == 200);
  CHECK(httpRequest(web, "GET", "/healthz").status == 200);

  auto fail = httpRequest(admin, "POST", "/healthcheck/fail", "", kAuth);
  REQUIRE(fail.status == 200);
  CHECK(httpRequest(admin, "GET", "/ready").status == 503);
  r = httpRequest(web, "GET", "/healthz");
  CHECK(r.status == 503);
  CHECK(r.body == "draining\n");
  CHECK(keepAliveGet(*c, "/healthz").status == 503);  // every worker sees it, old connections too
  CHECK(httpRequest(web, "HEAD", "/healthz").status == 503);
  CHECK(httpRequest(web, "GET", "/other").status == 200);  // traffic still flows
  CHECK(f->waitForLog("healthcheck: failing"));

  REQUIRE(httpRequest(admin, "POST", "/healthcheck/ok", "", kAuth).status == 200);
  CHECK(httpRequest(admin, "GET", "/ready").status == 200);
  CHECK(httpRequest(web, "GET", "/healthz").status == 200);
  CHECK(keepAliveGet(*c, "/healthz").status == 200);
}

TEST_CASE("health_path answers 503 during a drain while open connections still work", "[rtops][health][lifecycle]") {
  HttpUpstream up;
  auto f = FerryProcess::start(healthConfig(up.port(), "  drain_delay: 3s\n  drain_timeout: 5s\n"), {},
                               {{"admin.token", kToken + "\n"}});
  const uint16_t web = f->port("web");
  auto c = TcpClient::connect(web);
  REQUIRE(c);
  REQUIRE(keepAliveGet(*c, "/a").status == 200);
  REQUIRE(httpRequest(web, "GET", "/healthz").status == 200);

  f->signal(SIGTERM);
  REQUIRE(waitUntil([&] { return httpRequest(f->adminPort(), "GET", "/ready").status == 503; }, 2s));
  // A load balancer's probe on a new connection (the listener still accepts in drain_delay).
  auto r = httpRequest(web, "GET", "/healthz");
  CHECK(r.status == 503);
  CHECK(r.body == "draining\n");
  // The open connection still gets its answer, with the drain notice.
  r = keepAliveGet(*c, "/b");
  CHECK(r.status == 200);
  CHECK(r.body == "ok:/b");
  CHECK(r.header("connection") == "close");
  auto code = f->waitExit(10s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
}

// ---- log format and file

TEST_CASE("log_format json: every line is one JSON object", "[rtops][log]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.workers = 2, .runtime_extra = "  log_format: json\n", .clusters = {{"up", {up.port()}}}}.yaml());
  f->port("web");
  const uint16_t admin = f->adminPort();
  REQUIRE(f->waitForLog("started: 2 workers"));
  // A line with characters JSON has to escape: a reload that fails on a quoted unknown key.
  f->writeConfig("runtime:\n  workers: 2\n  log_format: json\n  \"we\\\"ird\\\\key\": 1\n");
  CHECK(httpRequest(admin, "POST", "/reload").status == 400);
  REQUIRE(f->waitForLog("rejected"));
  f->signal(SIGTERM);
  REQUIRE(f->waitExit(10s) == 0);

  std::istringstream in(f->log());
  std::string line;
  size_t lines = 0;
  bool listening = false, weird = false;
  const std::regex time_re(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  while (std::getline(in, line)) {
    INFO(line);
    auto j = parseJson(line);
    REQUIRE(j);
    REQUIRE(j->isObject());
    CHECK(std::regex_match((*j)["time"].str(), time_re));
    const std::string level = (*j)["level"].str();
    CHECK((level == "info" || level == "warn" || level == "error" || level == "debug"));
    REQUIRE((*j)["msg"].isString());
    if ((*j)["msg"].str().rfind("listening: listener=web address=127.0.0.1:", 0) == 0) listening = true;
    if ((*j)["msg"].str().find("we\"ird\\key") != std::string::npos) weird = true;
    ++lines;
  }
  CHECK(lines >= 5);
  CHECK(listening);
  CHECK(weird);
}

TEST_CASE("log_file: ferry logs to the file; SIGUSR1 reopens it after a rename", "[rtops][log]") {
  HttpUpstream up;
  auto f = FerryProcess::start(
      FerryConfig{.workers = 2, .runtime_extra = "  log_file: ferry.log\n", .clusters = {{"up", {up.port()}}}}.yaml());
  const std::string path = f->dir() + "/ferry.log";
  REQUIRE(waitUntil([&] { return readFile(path).find(" started: 2 workers") != std::string::npos; }, 10s));
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  CHECK(f->log().find("listening:") == std::string::npos);  // nothing on stderr
  const uint16_t admin = portIn(readFile(path), "admin ");
  REQUIRE(admin != 0);
  const uint16_t web = portIn(readFile(path), "listener=web ");
  CHECK(httpRequest(web, "GET", "/x").status == 200);

  // logrotate: rename, then SIGUSR1; lines from then on go to a new file at the path.
  REQUIRE(::rename(path.c_str(), (path + ".1").c_str()) == 0);
  f->signal(SIGUSR1);
  REQUIRE(waitUntil([&] { return readFile(path).find("SIGUSR1: reopened 1 log file") != std::string::npos; }, 5s));
  reloadOk(admin);
  REQUIRE(waitUntil([&] { return readFile(path).find("config reloaded (POST /reload)") != std::string::npos; }, 5s));
  const std::string old_text = readFile(path + ".1");
  CHECK(old_text.find(" started: 2 workers") != std::string::npos);
  CHECK(old_text.find("config reloaded") == std::string::npos);
  CHECK(old_text.find("SIGUSR1") == std::string::npos);
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  // Workers keep serving through it.
  CHECK(httpRequest(web, "GET", "/y").status == 200);

  // log_file cannot change by reload.
  std::string yaml = readFile(f->configPath());
  const std::string changed = std::regex_replace(yaml, std::regex("log_file: ferry.log"), "log_file: other.log");
  REQUIRE(changed != yaml);
  f->writeConfig(changed);
  auto errors = reloadRefused(admin);
  REQUIRE(errors.size() == 1);
  auto [line, col] = lineColOf(changed, "other.log");
  CHECK(errors[0] == f->configPath() + ":" + std::to_string(line) + ":" + std::to_string(col) +
                         ": runtime.log_file cannot change by reload (running '" + f->dir() +
                         "/ferry.log', now '" + f->dir() +
                         "/other.log'): restart, or upgrade the binary (--upgrade-from)");
}

// ---- runtime.user

TEST_CASE("runtime.user: root drops to nobody after binding, keeping CAP_NET_BIND_SERVICE", "[rtops][user]") {
  if (!isRoot()) {
    WARN("SKIPPED: runtime.user test needs root (the privilege drop and ports below 1024)");
    return;
  }
  const passwd* pw = ::getpwnam("nobody");
  REQUIRE(pw != nullptr);
  const uid_t uid = pw->pw_uid;
  const gid_t gid = pw->pw_gid;
  const auto ports = freeLowPorts(3);
  HttpUpstream up;
  const std::string top = head("  user: nobody\n", "", 2);
  auto f = FerryProcess::start(top + lowListener("low1", ports[0], "up") + clusters({{"up", {up.port()}}}));
  REQUIRE(f->port("low1") == ports[0]);
  const uint16_t admin = f->adminPort();
  REQUIRE(f->waitForLog(" started: 2 workers"));
  const std::string line = "running as user nobody (uid " + std::to_string(uid) + ", gid " + std::to_string(gid) +
                           "), keeping CAP_NET_BIND_SERVICE";
  CHECK(f->waitForLog(line));
  // The main thread and every worker thread.
  CHECK(checkDropped(f->pid(), uid, gid) >= 3);
  CHECK(httpRequest(ports[0], "GET", "/one").body == "ok:/one");

  // A reload binds another port below 1024 as nobody (the config must be readable by it).
  REQUIRE(::chmod(f->dir().c_str(), 0755) == 0);
  f->writeConfig(top + lowListener("low1", ports[0], "up") + lowListener("low2", ports[1], "up") +
                 clusters({{"up", {up.port()}}}));
  f->signal(SIGHUP);
  REQUIRE(f->waitForLog("config reloaded (SIGHUP)"));
  CHECK(f->port("low2") == ports[1]);
  CHECK(httpRequest(ports[1], "GET", "/two").body == "ok:/two");
  CHECK(httpRequest(ports[0], "GET", "/one").body == "ok:/one");

  // runtime.user cannot change by reload.
  const std::string other = head("  user: root\n", "", 2) + lowListener("low1", ports[0], "up") +
                            lowListener("low2", ports[1], "up") + clusters({{"up", {up.port()}}});
  f->writeConfig(other);
  auto errors = reloadRefused(admin);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("runtime.user cannot change by reload (running 'nobody', now 'root')") != std::string::npos);

  // A binary upgrade: the new process (exec'd by nobody) keeps the capability through the
  // ambient set, does not try to drop again, and can bind below 1024 on reload.
  if (!othersCanRun(ferryBin())) {
    WARN("SKIPPED the binary-upgrade part: nobody cannot run " << ferryBin());
    return;
  }
  f->writeConfig(top + lowListener("low1", ports[0], "up") + lowListener("low2", ports[1], "up") +
                 clusters({{"up", {up.port()}}}));
  f->signal(SIGUSR2);
  REQUIRE(f->waitForLog("upgrade: took over from", 15s));
  std::smatch m;
  const std::string log = f->log();
  REQUIRE(std::regex_search(log, m, std::regex("SIGUSR2: started .* as pid ([0-9]+)")));
  const pid_t child = static_cast<pid_t>(std::stoi(m[1]));
  CHECK(f->waitForLog("running as user nobody (uid " + std::to_string(uid) + ", gid " + std::to_string(gid) +
                      "), already; nothing to drop"));
  CHECK(checkDropped(child, uid, gid) >= 3);
  REQUIRE(f->waitExit(15s) == 0);  // the old one drained
  f->writeConfig(top + lowListener("low1", ports[0], "up") + lowListener("low2", ports[1], "up") +
                 lowListener("low3", ports[2], "up") + clusters({{"up", {up.port()}}}));
  REQUIRE(::kill(child, SIGHUP) == 0);
  REQUIRE(f->waitForLogCount("config reloaded (SIGHUP)", 2));
  CHECK(httpRequest(ports[2], "GET", "/three").body == "ok:/three");
  CHECK(httpRequest(ports[0], "GET", "/one").body == "ok:/one");
  REQUIRE(::kill(child, SIGTERM) == 0);
  CHECK(f->waitForLogCount("ferry stopped", 2));
}

TEST_CASE("runtime.user: a process that is neither root nor that user refuses to start", "[rtops][user]") {
  if (!isRoot() || ::access("/usr/bin/setpriv", X_OK) != 0 || !othersCanRun(ferryBin())) {
    WARN("SKIPPED: needs root, setpriv and a ferry binary any user may run");
    return;
  }
  const passwd* pw = ::getpwnam("nobody");
  REQUIRE(pw != nullptr);
  TempDir dir;
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
  auto as_nobody = [&](const std::string& user) {
    const std::string cfg = dir.write("ferry-" + user + ".yaml",
                                      "runtime:\n  user: " + user +
                                          "\nlisteners:\n  - name: t\n    address: 127.0.0.1:0\n"
                                          "    tcp: {cluster: c}\nclusters:\n  - name: c\n"
                                          "    endpoints: [{address: 127.0.0.1:9}]\n");
    return runProcess({"/usr/bin/setpriv", "--reuid=" + std::to_string(pw->pw_uid),
                       "--regid=" + std::to_string(pw->pw_gid), "--clear-groups", ferryBin(), "-c", cfg},
                      10s);
  };
  auto r = as_nobody("daemon");
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("runtime.user is 'daemon'") != std::string::npos);
  CHECK(r.err.find("not root") != std::string::npos);
}
