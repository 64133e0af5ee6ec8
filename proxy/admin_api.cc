// The admin endpoints (docs/operations.md, "Admin API") on the server's AdminServer. Main thread.
#include <ctime>

#include "config/render.h"
#include "core/log.h"
#include "config/values.h"
#include "core/upstream/cluster_manager.h"
#include "proxy/server_impl.h"

namespace ferry::proxy {
namespace {

using config::jsonString;

const char* kText = "text/plain; charset=utf-8";

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
  admin->handle("/stats", getOnly([this](const AdminRequest&) { return AdminResponse{200, kText, stats->plain()}; }));
  admin->handle("/clusters", getOnly([this](const AdminRequest&) {
    return AdminResponse{200, "application/json", cluster_manager->json()};
  }));
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
  admin->handle("/", getOnly([](const AdminRequest&) {
    return AdminResponse{200, kText,
                         "ferry admin\n  GET /ready\n  GET /metrics\n  GET /stats\n  GET /clusters\n"
                         "  GET /config[?format=yaml]\n  POST /reload\n  PUT /config (admin.allow_config_push)\n"
                         "  POST /healthcheck/fail\n  POST /healthcheck/ok\n"};
  }));
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
