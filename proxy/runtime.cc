#include "proxy/runtime.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/log.h"
#include "core/net/proxy_protocol.h"
#include "core/net/tls_inspector.h"
#include "core/upstream/cluster_manager.h"
#include "filters/registry.h"

namespace ferry::proxy {
namespace {

std::string filesHash(const std::vector<std::string>& files) {
  std::string out;
  for (const auto& f : files) out += f + "=" + core::FileWatcher::contentHash(f) + ";";
  return out;
}

bool sniInspected(const config::ListenerConfig& l) { return !l.tls && l.tcp && !l.tcp->sni_routes.empty(); }

}  // namespace

bool listenerChanged(const config::ListenerConfig& a, const config::ListenerConfig& b) {
  if (!(a.address == b.address) || !(a.tls == b.tls)) return true;
  if (a.proxy_protocol != b.proxy_protocol || (b.proxy_protocol && a.proxy_protocol_timeout != b.proxy_protocol_timeout))
    return true;
  if (a.http.has_value() != b.http.has_value() || a.tcp.has_value() != b.tcp.has_value()) return true;
  if (sniInspected(a) != sniInspected(b)) return true;
  if (sniInspected(b) && a.tcp->client_hello_timeout != b.tcp->client_hello_timeout) return true;
  return false;
}

std::string clusterFilesFingerprint(const config::ClusterConfig& c) {
  if (!c.tls) return "";
  std::vector<std::string> files;
  if (!c.tls->ca_file.empty()) files.push_back(c.tls->ca_file);
  if (c.tls->client_certificate) {
    files.push_back(c.tls->client_certificate->cert_file);
    files.push_back(c.tls->client_certificate->key_file);
  }
  return files.empty() ? "-" : filesHash(files);
}

std::shared_ptr<const core::upstream::Cluster> Snapshot::cluster(const std::string& name) const {
  for (const auto& c : clusters)
    if (c->name() == name) return c;
  return nullptr;
}

Runtime::Runtime(boost::asio::io_context& io, core::StatsStore& stats, const filters::Registry& registry,
                 size_t workers)
    : stats_(stats),
      registry_(registry),
      workers_(workers),
      clusters_(std::make_unique<core::upstream::ClusterManager>(io, stats)),
      buffered_bytes_(stats.gauge("ferry_buffered_bytes", {}, "Bytes held in connection write buffers.")),
      io_(io) {}

Runtime::~Runtime() = default;

std::shared_ptr<const Snapshot> Runtime::build(config::Config cfg, std::string* error) {
  auto snap = std::make_shared<Snapshot>();
  snap->version = ++versions_;
  snap->hash = core::FileWatcher::textHash(cfg.yaml);
  snap->loaded_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  for (const auto& c : cfg.clusters) {
    snap->clusters.push_back(clusters_->addOrUpdate(c, clusterFilesFingerprint(c)));
    if (!snap->clusters.back()->tlsError().empty()) {
      *error = "cluster '" + c.name + "': " + snap->clusters.back()->tlsError();
      return nullptr;
    }
  }
  const core::router::ClusterResolver resolve = [s = snap.get()](const std::string& name) { return s->cluster(name); };

  for (const auto& l : cfg.listeners) {
    auto& state = listeners_[l.name];
    if (!state) state = std::make_shared<core::net::ListenerState>(l.name, stats_);
    auto spec = std::make_shared<core::net::ListenerSpec>();
    spec->cfg = l;
    spec->state = state;
    spec->process = connections_;
    spec->process_max_connections = cfg.runtime.max_connections;
    if (l.max_connections_per_ip > 0) {
      if (!state->per_ip) state->per_ip = std::make_shared<core::net::PerIpConnections>();
      spec->per_ip = state->per_ip;
    }
    if (l.proxy_protocol) {
      spec->listener_filters.push_back(core::net::proxyProtocolFilter(l.proxy_protocol_timeout));
      spec->listener_filter_timeout = std::max(spec->listener_filter_timeout, spec->listener_filters.back().timeout);
    }
    spec->transport = core::net::plainTransportFactory();
    if (l.tls) {
      const TlsListener* t = tlsFor(l, error);
      if (t == nullptr) return nullptr;
      spec->transport = core::tls::ServerContextProvider::factory(t->provider);
      spec->handshake_timeout = l.tls->handshake_timeout;
      spec->worker_setup.push_back([p = t->provider, ctx = t->ctx](size_t w) { p->set(w, ctx); });
    } else if (l.tcp && !l.tcp->sni_routes.empty()) {
      // SNI passthrough: read the ClientHello's server name, leave the bytes as they are.
      spec->listener_filters.push_back(core::net::tlsInspectorFilter(
          l.tcp->client_hello_timeout, core::net::registerTlsInspectorStats(stats_, l.name)));
      spec->listener_filter_timeout = std::max(spec->listener_filter_timeout, spec->listener_filters.back().timeout);
    }
    const char* terminal = l.tcp ? "tcp_proxy" : l.http ? "http_connection_manager" : nullptr;
    const auto* builder = terminal ? registry_.network(terminal) : nullptr;
    if (!builder) {
      *error = "listener '" + l.name + "' has no supported protocol";
      return nullptr;
    }
    filters::BuildContext bctx{l, *state, workers_, spec->worker_setup, resolve, stats_, registry_, cfg.dir};
    auto factory = (*builder)(bctx, error);
    if (!factory) return nullptr;
    spec->filter_factories.push_back(std::move(factory));
    snap->listeners.push_back(std::move(spec));
  }
  snap->config = std::move(cfg);
  return snap;
}

std::vector<std::string> Runtime::removeClustersNotIn(const Snapshot& snap) {
  std::vector<std::string> gone;
  for (const auto& name : cluster_names_)
    if (!snap.cluster(name)) gone.push_back(name);
  for (const auto& name : gone) clusters_->remove(name);
  cluster_names_.clear();
  for (const auto& c : snap.clusters) cluster_names_.push_back(c->name());
  return gone;
}

const Runtime::TlsListener* Runtime::tlsFor(const config::ListenerConfig& l, std::string* error) {
  std::vector<std::string> alpn;
  if (l.http) alpn = l.http->http2.enabled ? std::vector<std::string>{"h2", "http/1.1"} : std::vector<std::string>{"http/1.1"};
  TlsListener& t = tls_[l.name];
  if (t.provider && t.cfg == *l.tls && t.default_alpn == alpn) {  // unchanged: kept
    // ... unless its files changed since: a new context, as a certificate watch makes it.
    if (filesHash(core::tls::watchedFiles(t.cfg)) != t.files_hash && !rebuildTls(l.name, t)) {
      *error = "listener '" + l.name + "': its TLS files changed and do not load (see the log)";
      return nullptr;
    }
    return &t;
  }
  std::vector<core::tls::BuildError> errors;
  auto ctx = core::tls::buildServerContext(*l.tls, l.name, alpn, &stats_, nullptr, &errors);
  if (!ctx) {
    *error = "listener '" + l.name + "': " + (errors.empty() ? std::string("TLS context") : errors.front().message);
    return nullptr;
  }
  if (watcher_ && t.watch != 0) watcher_->unwatch(t.watch);  // the listener's tls block changed
  t = TlsListener{};
  t.cfg = *l.tls;
  t.default_alpn = alpn;
  t.provider = std::make_shared<core::tls::ServerContextProvider>(workers_);
  t.ctx = std::move(ctx);
  t.provider->set(0, t.ctx);
  if (!l.tls->client_ca_file.empty()) t.ca_hash = core::FileWatcher::contentHash(l.tls->client_ca_file);
  t.files_hash = filesHash(core::tls::watchedFiles(t.cfg));
  const std::string help = "Certificate reloads after a file change, by result.";
  t.reload_success = stats_.counter("ferry_tls_certificate_reloads_total", {{"listener", l.name}, {"result", "success"}}, help);
  t.reload_failure = stats_.counter("ferry_tls_certificate_reloads_total", {{"listener", l.name}, {"result", "failure"}}, help);
  for (const auto& c : core::tls::certificates(*t.ctx))
    FERRY_LOG(kInfo, "listener ", l.name, ": certificate ", c.cert_file, " (", c.key_type, ", ",
              c.names.empty() ? std::string("no names") : c.names.front(), c.names.size() > 1 ? ", ..." : "", ")");
  // Watched from the moment the files are read, so a change before the workers start is
  // not missed (events are handled once the main loop runs).
  watchListener(l.name, t);
  return &t;
}

void Runtime::watchListener(const std::string& name, TlsListener& t) {
  if (!t.cfg.watch_certificates) return;
  if (!watcher_) watcher_ = std::make_unique<core::FileWatcher>(io_);
  t.watch = watcher_->watch(core::tls::watchedFiles(t.cfg), [this, name] { reloadCertificates(name); });
}

void Runtime::watchCertificates(PostToWorkers post) { post_ = std::move(post); }

bool Runtime::reloadCertificates(const std::string& listener) {
  auto it = tls_.find(listener);
  if (it == tls_.end()) return false;
  return rebuildTls(listener, it->second);
}

bool Runtime::rebuildTls(const std::string& listener, TlsListener& t) {
  const std::string files_hash = filesHash(core::tls::watchedFiles(t.cfg));
  std::vector<core::tls::BuildError> errors;
  // Sessions (tickets, the cache) survive a certificate change, but not a change of the CAs
  // client certificates were verified against: those start over with new keys.
  const std::string ca_hash =
      t.cfg.client_ca_file.empty() ? std::string() : core::FileWatcher::contentHash(t.cfg.client_ca_file);
  const bool same_ca = ca_hash == t.ca_hash;
  auto ctx = core::tls::buildServerContext(t.cfg, listener, t.default_alpn, &stats_, same_ca ? t.ctx.get() : nullptr,
                                           &errors);
  if (!ctx) {
    stats_.shard(0).inc(t.reload_failure);
    for (const auto& e : errors)
      FERRY_LOG(kError, "listener ", listener, ": certificate reload rejected, keeping the running certificates: ",
                e.message);
    return false;
  }
  t.ctx = ctx;
  t.ca_hash = ca_hash;
  t.files_hash = files_hash;
  if (post_) post_([p = t.provider, ctx](size_t w) { p->set(w, ctx); });
  t.provider->set(0, ctx);
  stats_.shard(0).inc(t.reload_success);
  FERRY_LOG(kInfo, "listener ", listener, ": certificates reloaded",
            same_ca ? "" : " (client CAs changed: earlier sessions are not resumed)");
  return true;
}

}  // namespace ferry::proxy
