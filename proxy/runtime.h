// The runtime: turns configs into snapshots, and keeps the state a new snapshot must not lose,
// keyed by name: each listener's ListenerState (connection counts, stats, the HTTP route
// provider), the clusters (ClusterManager: hosts, health, outlier state, breaker counts; pools
// follow host identity), the process-wide connection count.
//
// Snapshot: the immutable, compiled form of one config: listener specs with their filter
// factories, the clusters the routes and filters resolved. Built on the main thread, then
// shared read-only with every worker (shared_ptr<const>); an old snapshot dies with its last
// user. Main thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/model.h"
#include "core/event/file_watcher.h"
#include "core/net/listener.h"
#include "core/tls/tls.h"
#include "core/stats.h"
#include "core/upstream/cluster.h"

namespace boost::asio {
class io_context;
}
namespace ferry::core::upstream {
class ClusterManager;
}
namespace ferry::filters {
class Registry;
}

namespace ferry::proxy {

struct Snapshot {
  config::Config config;
  uint64_t version = 0;
  std::string hash;          // SHA-256 of the YAML text, hex (what sha256sum says of the file)
  int64_t loaded_at_ms = 0;  // unix time
  std::vector<std::shared_ptr<const core::net::ListenerSpec>> listeners;
  std::vector<std::shared_ptr<const core::upstream::Cluster>> clusters;

  std::shared_ptr<const core::upstream::Cluster> cluster(const std::string& name) const;
};

// Reload semantics for a listener a new config keeps by name (its socket is kept when its
// address is the same): true when its open connections must drain, because its address, TLS
// settings, listener filters (PROXY protocol, the SNI inspector) or protocol changed. Any
// other change (limits, HTTP settings, routes) applies to later connections or requests and
// lets the open ones run on.
bool listenerChanged(const config::ListenerConfig& before, const config::ListenerConfig& after);

// A digest of the content of the files a cluster's TLS block names ("" without TLS).
std::string clusterFilesFingerprint(const config::ClusterConfig& c);

class Runtime {
 public:
  // `workers`: the worker count (per-worker slots are sized for it).
  Runtime(boost::asio::io_context& io, core::StatsStore& stats, const filters::Registry& registry, size_t workers);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Compiles `cfg`, reusing the state of every listener and cluster whose name it already
  // knows (an unchanged cluster is the same object; a changed one is updated in place, see
  // ClusterManager::addOrUpdate). Clusters the config no longer names are left alone: removing
  // them is a step of the reload that commits the new snapshot. Returns null and sets *error
  // if a filter cannot be built.
  std::shared_ptr<const Snapshot> build(config::Config cfg, std::string* error);

  // Certificate and key files of TLS listeners (watch_certificates) are watched from the
  // build that reads them: a change builds the listener's TLS context again (keeping its
  // ticket keys) and installs it on every worker through `post` (set here, once the workers
  // run; it runs a function on every worker with its 1-based index and returns once all ran
  // it), then counts and logs the reload. A pair that does not load is logged and counted,
  // and the running one stays.
  using PostToWorkers = std::function<void(std::function<void(size_t worker)>)>;
  void watchCertificates(PostToWorkers post);
  // Builds a listener's TLS context again from its files (what a file change does). False
  // when it does not load.
  bool reloadCertificates(const std::string& listener);

  // The TLS context new connections of a listener get (null: none), for tests and dumps.
  std::shared_ptr<const core::tls::ServerContext> tlsContext(const std::string& listener) const {
    auto it = tls_.find(listener);
    return it == tls_.end() ? nullptr : it->second.ctx;
  }

  // After a snapshot is installed: clusters it does not name are removed (they drain: their
  // hosts leave, pools close once idle). Returns their names.
  std::vector<std::string> removeClustersNotIn(const Snapshot& snap);

  core::upstream::ClusterManager& clusters() { return *clusters_; }
  const std::shared_ptr<core::net::ProcessConnections>& connections() const { return connections_; }
  core::StatHandle bufferedBytes() const { return buffered_bytes_; }

 private:
  struct TlsListener;
  // The listener's TLS state, built (or kept, when its tls block did not change).
  const TlsListener* tlsFor(const config::ListenerConfig& l, std::string* error);
  void watchListener(const std::string& name, TlsListener& t);
  bool rebuildTls(const std::string& listener, TlsListener& t);

  core::StatsStore& stats_;
  const filters::Registry& registry_;
  size_t workers_;
  uint64_t versions_ = 0;
  std::unique_ptr<core::upstream::ClusterManager> clusters_;
  std::vector<std::string> cluster_names_;  // of the installed snapshot (removeClustersNotIn)
  std::map<std::string, std::shared_ptr<core::net::ListenerState>> listeners_;
  // TLS termination per listener name: kept while its `tls` block stays the same, so its
  // SSL_CTX and ticket keys (and so resumption) survive other changes.
  struct TlsListener {
    config::TlsConfig cfg;
    std::vector<std::string> default_alpn;
    std::shared_ptr<core::tls::ServerContextProvider> provider;
    std::shared_ptr<const core::tls::ServerContext> ctx;  // the newest; workers get it by post
    core::FileWatcher::WatchId watch = 0;
    core::StatHandle reload_success, reload_failure;
    std::string ca_hash;  // of client_ca_file's content: a changed CA starts new ticket keys
    std::string files_hash;  // of every file the block names, when the context was built
  };
  std::map<std::string, TlsListener> tls_;
  std::shared_ptr<core::net::ProcessConnections> connections_ = std::make_shared<core::net::ProcessConnections>();
  core::StatHandle buffered_bytes_;
  boost::asio::io_context& io_;
  std::unique_ptr<core::FileWatcher> watcher_;
  PostToWorkers post_;
};

}  // namespace ferry::proxy
