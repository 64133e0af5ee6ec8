// The admin endpoints (docs/operations.md, "Admin API") on the server's AdminServer. Main thread.
#include <re2/re2.h>

#include <boost/asio/post.hpp>

#include <chrono>
#include <ctime>
#include <set>

#include "config/render.h"
#include "config/values.h"
#include "core/log.h"
#include "core/net/socket_util.h"
#include "core/redis/client.h"
#include "core/upstream/cluster_manager.h"
#include "proxy/admin/stats_view.h"
#include "proxy/dashboard/dashboard.h"
#include "proxy/server_impl.h"

namespace ferry::proxy {
namespace {

using config::jsonString;

const char* kText = "text/plain; charset=utf-8";
const char* kJson = "application/json";

int64_t nowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The plain-text index (GET /help; GET / before the dashboard).
const char* kHelp =
    "ferry admin\n"
    "  GET /                     dashboard (HTML)\n"
    "  GET /help                 this list\n"
    "  GET /ready\n"
    "  GET /metrics              Prometheus text\n"
    "  GET /stats[?filter=REGEX][&format=json]\n"
    "  GET /clusters             JSON\n"
    "  GET /listeners            JSON\n"
    "  GET /reloads              JSON: the last reloads\n"
    "  GET /config[?format=yaml]\n"
    "  POST /reload\n"
    "  PUT /config (admin.allow_config_push)\n"
    "  POST /healthcheck/fail\n"
    "  POST /healthcheck/ok\n"
    "  POST /logging?level=trace|debug|info|warn|error\n"
    "  POST /drain               drain and exit, as SIGTERM\n";

std::string isoTime(int64_t unix_ms) {
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1,
                t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, static_cast<int>(unix_ms % 1000));
  return buf;
}

// Compares in time independent of where the strings differ (the admin token).
bool sameSecret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

std::string errorsJson(const std::vector<std::string>& errors) {
  std::string out = "[";
  for (size_t i = 0; i < errors.size(); ++i) out += (i ? "," : "") + jsonString(errors[i]);
  return out + "]";
}

// POST /reload and PUT /config: 200 with what changed, 400 with every error.
AdminResponse reloadResponse(const ReloadOutcome& r) {
  if (r.ok) return AdminResponse{200, "application/json", r.summary_json + "\n"};
  return AdminResponse{400, "application/json",
                       "{\"result\":\"failure\",\"errors\":" + errorsJson(r.errors) + "}\n"};
}

}  // namespace

void Server::Impl::installAdminHandlers() {
  auto getOnly = [](AdminServer::Handler h) -> AdminServer::Handler {
    return [h](const AdminRequest& r) {
      if (r.method != "GET" && r.method != "HEAD") return AdminResponse{405, kText, "method not allowed\n"};
      return h(r);
    };
  };
  admin->handle("/ready", getOnly([this](const AdminRequest&) {
    if (draining) return AdminResponse{503, kText, "DRAINING\n"};
    if (health_failed.load(std::memory_order_relaxed)) return AdminResponse{503, kText, "FAILED\n"};
    if (ready && !cluster_manager->warming()) return AdminResponse{200, kText, "LIVE\n"};
    return AdminResponse{503, kText, "STARTING\n"};
  }));
  admin->handle("/metrics", getOnly([this](const AdminRequest&) {
    return AdminResponse{200, "text/plain; version=0.0.4; charset=utf-8", stats->prometheus()};
  }));
  // ?filter=REGEX (RE2, partial match on the metric name; percent-encoded), ?format=json.
  admin->handle("/stats", getOnly([this](const AdminRequest& r) {
    const std::string format = r.param("format");
    if (!format.empty() && format != "json" && format != "text")
      return AdminResponse{400, kText, "format: 'json' or 'text'\n"};
    std::unique_ptr<re2::RE2> filter;
    if (r.query.find("filter=") != std::string::npos) {
      std::string pattern;
      if (!percentDecode(r.param("filter"), &pattern)) return AdminResponse{400, kText, "filter: bad percent-encoding\n"};
      filter = std::make_unique<re2::RE2>(pattern, re2::RE2::Quiet);
      if (!filter->ok()) return AdminResponse{400, kText, "filter: bad regex: " + filter->error() + "\n"};
    }
    if (format == "json") return AdminResponse{200, kJson, statsJson(stats->prometheus(), filter.get(), nowUnixMs())};
    if (!filter) return AdminResponse{200, kText, stats->plain()};
    return AdminResponse{200, kText, filterStatsLines(stats->plain(), filter.get())};
  }));
  admin->handle("/clusters", getOnly([this](const AdminRequest&) {
    // The clusters, and the Redis targets (global_rate_limit) with their health.
    std::string out = cluster_manager->json();
    const size_t end = out.rfind('}');
    if (end != std::string::npos) out.insert(end, ",\"redis\":" + core::redis::targetsJson(*stats));
    return AdminResponse{200, kJson, std::move(out)};
  }));
  admin->handle("/listeners", getOnly([this](const AdminRequest&) { return AdminResponse{200, kJson, listenersJson()}; }));
  admin->handle("/reloads", getOnly([this](const AdminRequest&) { return AdminResponse{200, kJson, reloadsJson()}; }));
  // Mutations: POST/PUT only, Bearer token when admin.token_file is set.
  auto authorized = [this](const AdminRequest& r) {
    if (admin_token.empty()) return true;
    auto it = r.headers.find("authorization");
    return it != r.headers.end() && sameSecret(it->second, "Bearer " + admin_token);
  };
  admin->handle("/config", [this, authorized](const AdminRequest& r) {
    if (r.method == "GET" || r.method == "HEAD") {
      if (r.param("format") == "yaml") return AdminResponse{200, "application/yaml", rendered().yaml};
      return AdminResponse{200, "application/json", configJson()};
    }
    if (r.method != "PUT") return AdminResponse{405, kText, "method not allowed\n"};
    if (!authorized(r)) return AdminResponse{401, kText, "unauthorized\n"};
    if (!cfg.admin || !cfg.admin->allow_config_push)
      return AdminResponse{403, kText, "config push is disabled (admin.allow_config_push)\n"};
    return reloadResponse(reload("PUT /config", &r.body));
  });
  admin->handle("/reload", [this, authorized](const AdminRequest& r) {
    if (r.method != "POST") return AdminResponse{405, kText, "method not allowed\n"};
    if (!authorized(r)) return AdminResponse{401, kText, "unauthorized\n"};
    return reloadResponse(reload("POST /reload", nullptr));
  });
  // Take the process out of its load balancers' rotation (/ready and every listener's
  // health_path answer 503) without draining, and back.
  auto healthcheck = [this, authorized](bool fail) {
    return [this, authorized, fail](const AdminRequest& r) {
      if (r.method != "POST") return AdminResponse{405, kText, "method not allowed\n"};
      if (!authorized(r)) return AdminResponse{401, kText, "unauthorized\n"};
      const bool was = health_failed.exchange(fail, std::memory_order_relaxed);
      if (was != fail)
        FERRY_LOG(kInfo, "healthcheck: ", fail ? "failing (POST /healthcheck/fail): /ready and health paths answer 503"
                                                : "ok again (POST /healthcheck/ok)");
      return AdminResponse{200, kText, fail ? "healthcheck: failing\n" : "healthcheck: ok\n"};
    };
  };
  admin->handle("/healthcheck/fail", healthcheck(true));
  admin->handle("/healthcheck/ok", healthcheck(false));
  // The process log level, on every thread at once (workers read the same atomic). It stays
  // over reloads, as --log-level does, until the next POST /logging or a restart.
  admin->handle("/logging", [this, authorized](const AdminRequest& r) {
    if (r.method != "POST") return AdminResponse{405, kText, "method not allowed\n"};
    if (!authorized(r)) return AdminResponse{401, kText, "unauthorized\n"};
    const std::string name = r.param("level");
    auto level = config::parseLogLevel(name);
    if (!level) return AdminResponse{400, kText, "level: one of trace, debug, info, warn, error (got '" + name + "')\n"};
    const auto was = static_cast<config::LogLevel>(static_cast<int>(core::log::level()));
    options.log_level = *level;
    core::log::setLevel(static_cast<core::log::Level>(static_cast<int>(*level)));
    const std::string now = std::string(config::logLevelName(*level));
    FERRY_LOG(kWarn, "log level: ", now, " (was ", core::log::sv(config::logLevelName(was)), "; POST /logging)");
    return AdminResponse{200, kText, "log level: " + now + "\n"};
  });
  // Drain and exit 0, as SIGTERM does (the same steps); a second call changes nothing.
  admin->handle("/drain", [this, authorized](const AdminRequest& r) {
    if (r.method != "POST") return AdminResponse{405, kText, "method not allowed\n"};
    if (!authorized(r)) return AdminResponse{401, kText, "unauthorized\n"};
    // After this answer is written: the drain may end the process at once when nothing is open.
    asio::post(io, [this] { beginDrain("POST /drain"); });
    return AdminResponse{200, kText, draining ? "draining (already)\n" : "draining\n"};
  });
  admin->handle("/help", getOnly([](const AdminRequest&) { return AdminResponse{200, kText, kHelp}; }));
  admin->handle("/", getOnly([](const AdminRequest&) {
    return AdminResponse{200, "text/html; charset=utf-8", std::string(kDashboardHtml)};
  }));
}

void Server::Impl::recordReload(ReloadRecord r) {
  last_reload = r;
  reload_history.push_front(std::move(r));
  while (reload_history.size() > kReloadHistory) reload_history.pop_back();
}

std::string Server::Impl::reloadsJson() const {
  std::string out = "{\"version\":" + std::to_string(snapshot->version) + ",\"loaded_at\":\"" +
                    isoTime(snapshot->loaded_at_ms) + "\",\"reloads\":[";
  bool first = true;
  for (const auto& r : reload_history) {
    out += first ? "" : ",";
    first = false;
    out += "{\"at\":\"" + isoTime(r.at_ms) + "\",\"at_ms\":" + std::to_string(r.at_ms) +
           ",\"trigger\":" + jsonString(r.trigger) + ",\"result\":\"" + (r.ok ? "success" : "failure") +
           "\",\"version\":" + std::to_string(r.version) + ",\"errors\":" + errorsJson(r.errors) + "}";
  }
  return out + "]}\n";
}

std::string Server::Impl::listenersJson() const {
  std::string out = "{\"listeners\":[";
  for (size_t i = 0; i < snapshot->listeners.size(); ++i) {
    const auto& spec = *snapshot->listeners[i];
    const auto& l = spec.cfg;
    const auto& st = *spec.state;
    std::set<std::string> addrs;
    for (const auto& b : bound)
      if (b.cfg.name == l.name)
        for (int fd : b.fds) {
          sockaddr_storage sa{};
          if (core::net::localAddress(fd, &sa)) addrs.insert(core::net::formatSockaddr(sa));
        }
    if (i) out += ",";
    out += "{\"name\":" + jsonString(l.name) + ",\"address\":" + jsonString(l.address.text) + ",\"bound\":[";
    bool first = true;
    for (const auto& a : addrs) {
      out += (first ? "" : ",") + jsonString(a);
      first = false;
    }
    out += "],\"kind\":\"" + std::string(l.http ? "http" : "tcp") + "\",\"tls\":" + (l.tls ? "true" : "false");
    std::vector<std::string> alpn;
    if (l.tls) {
      alpn = l.tls->protocol.alpn;
      if (alpn.empty() && l.http)
        alpn = l.http->http2.enabled ? std::vector<std::string>{"h2", "http/1.1"} : std::vector<std::string>{"http/1.1"};
    }
    out += ",\"alpn\":[";
    for (size_t a = 0; a < alpn.size(); ++a) out += (a ? "," : "") + jsonString(alpn[a]);
    out += "],\"connections_active\":" + std::to_string(st.active.load(std::memory_order_relaxed)) +
           ",\"connections_total\":" + std::to_string(stats->value(st.stats.cx_total));
    if (l.http) {
      // The HTTP connection manager registered these; asking again returns its handles.
      const std::vector<std::pair<std::string, std::string>> lab = {{"listener", l.name}};
      out += ",\"requests\":" + std::to_string(stats->value(stats->counter("ferry_downstream_requests_received_total", lab))) +
             ",\"requests_active\":" + std::to_string(stats->value(stats->gauge("ferry_downstream_requests_active", lab))) +
             ",\"responses\":{";
      for (int cls = 1; cls <= 5; ++cls) {
        const std::string c = std::to_string(cls) + "xx";
        out += (cls > 1 ? ",\"" : "\"") + c + "\":" +
               std::to_string(stats->value(stats->counter("ferry_downstream_requests_total", {{"listener", l.name}, {"code", c}})));
      }
      out += "}";
    }
    out += "}";
  }
  return out + "]}\n";
}

const Server::Impl::Rendered& Server::Impl::rendered() const {
  // Rendered when first asked, once per config version (a big config is parsed again for it).
  if (!render_cache || render_cache->version != snapshot->version) {
    auto r = std::make_shared<Rendered>();
    r->version = snapshot->version;
    r->json = config::renderRedactedJson(snapshot->config.yaml).value_or("{}");
    r->yaml = config::renderRedactedYaml(snapshot->config.yaml).value_or("{}\n");
    render_cache = std::move(r);
  }
  return *render_cache;
}

std::string Server::Impl::configJson() const {
  std::string out = "{\"version\":" + std::to_string(snapshot->version) + ",\"hash\":\"" + snapshot->hash +
                    "\",\"loaded_at\":\"" + isoTime(snapshot->loaded_at_ms) +
                    "\",\"path\":" + jsonString(snapshot->config.path) + ",\"last_reload\":";
  if (last_reload.at_ms == 0) {
    out += "{\"at\":null,\"result\":null,\"trigger\":null,\"errors\":[]}";
  } else {
    out += "{\"at\":\"" + isoTime(last_reload.at_ms) + "\",\"result\":\"" +
           (last_reload.ok ? "success" : "failure") + "\",\"trigger\":" + jsonString(last_reload.trigger) +
           ",\"errors\":" + errorsJson(last_reload.errors) + "}";
  }
  out += ",\"config\":";
  out += rendered().json;
  out += "}\n";
  return out;
}

}  // namespace ferry::proxy
