#include "core/upstream/cluster_manager.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

#include "config/values.h"
#include "core/log.h"
#include "core/net/socket_util.h"
#include "core/upstream/dns_resolver.h"
#include "core/upstream/health_checker.h"

namespace ferry::core::upstream {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

using config::jsonString;

int64_t msSince(Clock::time_point t, Clock::time_point now) {
  return std::chrono::duration_cast<milliseconds>(now - t).count();
}

}  // namespace

// Main-thread state of one host.
struct HostEntry {
  std::shared_ptr<Host> host;
  size_t endpoint = 0;           // index in the cluster's config endpoints
  bool hc_healthy = true;        // active health checks (a host starts healthy)
  bool ejected = false;          // outlier detection
  uint32_t ejections = 0;        // times ejected, for the growing ejection time
  Clock::time_point returned_at;
  std::optional<Clock::time_point> warm_from;  // slow start: ramping since then
  std::unique_ptr<asio::steady_timer> eject_timer;

  bool usable() const { return hc_healthy && !ejected; }
};

// Main-thread state of one cluster, kept as long as a cluster of that name is configured.
struct ClusterEntry {
  std::shared_ptr<const Cluster> cluster;  // replaced (same index, same counters) on update
  std::vector<std::unique_ptr<HostEntry>> hosts;
  std::shared_ptr<const LbState> state;
  std::unique_ptr<HealthChecker> checker;
  std::unique_ptr<DnsResolver> resolver;
  std::unique_ptr<asio::steady_timer> dns_timer;
  std::unique_ptr<asio::steady_timer> warm_timer;
  size_t dns_outstanding = 0;
  bool dns_warming = false;  // the first round of lookups has not finished
};

struct ClusterManager::Impl {
  Impl(asio::io_context& i, StatsStore& s) : io(i), stats(s) {}

  asio::io_context& io;
  StatsStore& stats;
  std::map<std::string, std::unique_ptr<ClusterEntry>> by_name;
  std::vector<ClusterEntry*> by_index;  // by Cluster::index(); null once removed (never reused)
  Publish publish;
  bool started = false;
  bool stopped = false;
  uint64_t next_host_id = 1;

  StatsShard& mainShard() { return stats.shard(0); }
  void setGauge(StatHandle h, int64_t v) { mainShard().add(h, v - mainShard().get(h)); }

  std::unique_ptr<HostEntry> makeHost(ClusterEntry& ce, size_t endpoint, const sockaddr_storage& addr,
                                      const std::string& hostname) {
    const auto& ep = ce.cluster->config().endpoints[endpoint];
    auto h = std::make_shared<Host>();
    h->id = next_host_id++;
    h->addr = addr;
    h->address = net::formatSockaddr(addr);
    h->hostname = hostname;
    h->weight = ep.weight == 0 ? 1 : ep.weight;
    h->priority = ep.priority;
    const std::vector<std::pair<std::string, std::string>> l = {{"cluster", ce.cluster->name()},
                                                                {"endpoint", h->address}};
    auto& st = h->stats;
    st.cx_total = stats.counter("ferry_upstream_endpoint_connections_total", l, "Connections per endpoint.");
    st.cx_active = stats.gauge("ferry_upstream_endpoint_connections_active", l, "Open connections per endpoint.");
    st.connect_failures =
        stats.counter("ferry_upstream_endpoint_connect_failures_total", l, "Connect failures per endpoint.");
    st.rq_active = stats.gauge("ferry_upstream_endpoint_requests_active", l, "Requests in flight per endpoint.");
    for (int cls = 1; cls <= 5; ++cls)
      st.rq_by_class[cls] = stats.counter(
          "ferry_upstream_endpoint_requests_total",
          {{"cluster", ce.cluster->name()}, {"endpoint", h->address}, {"code", std::to_string(cls) + "xx"}},
          "Upstream HTTP responses per endpoint by status class.");
    st.errors = stats.counter("ferry_upstream_endpoint_errors_total", l,
                              "Connect failures, resets, timeouts and protocol errors per endpoint.");
    st.healthy = stats.gauge("ferry_upstream_endpoint_healthy", l, "1 when the endpoint takes traffic.");
    st.ejections = stats.counter("ferry_upstream_endpoint_ejections_total", l, "Outlier ejections per endpoint.");
    st.health_transitions = stats.counter("ferry_upstream_endpoint_health_transitions_total", l,
                                          "Active-check transitions (healthy <-> unhealthy) per endpoint.");
    st.hc_failures =
        stats.counter("ferry_upstream_endpoint_health_check_failures_total", l, "Failed health checks per endpoint.");
    auto e = std::make_unique<HostEntry>();
    e->host = std::move(h);
    e->endpoint = endpoint;
    e->returned_at = Clock::now();
    setGauge(e->host->stats.healthy, 1);
    return e;
  }

  HostEntry* find(ClusterEntry& ce, uint64_t id) {
    for (auto& h : ce.hosts)
      if (h->host->id == id) return h.get();
    return nullptr;
  }

  // Rebuilds the cluster's table from its hosts' state and publishes it.
  void rebuild(ClusterEntry& ce) {
    const auto& cfg = ce.cluster->config();
    const auto now = Clock::now();
    const int64_t window = cfg.slow_start.count();
    std::map<uint32_t, std::vector<HostEntry*>> by_level;
    for (auto& h : ce.hosts) by_level[h->host->priority].push_back(h.get());
    std::vector<lb::LevelWeights> weights;
    for (auto& [prio, hosts] : by_level) {
      lb::LevelWeights w;
      for (auto* h : hosts) {
        w.total += h->host->weight;
        if (h->usable()) w.healthy += h->host->weight;
      }
      weights.push_back(w);
    }
    auto st = std::make_shared<LbState>();
    st->host_count = ce.hosts.size();
    uint32_t health = lb::normalizedHealth(weights);
    st->panic = cfg.panic_threshold > 0 && !ce.hosts.empty() && health < cfg.panic_threshold;
    std::vector<uint32_t> load = lb::priorityLoad(weights);
    bool warming = false;
    size_t level_index = 0;
    for (auto& [prio, hosts] : by_level) {
      uint32_t share = st->panic ? (level_index == 0 ? 100 : 0) : load[level_index];
      ++level_index;
      if (share == 0) continue;
      LbLevel lv;
      lv.priority = prio;
      std::vector<lb::WeightedHost> full;  // every host of the level, for hash policies
      std::vector<int32_t> full_to_usable;
      for (auto* h : hosts) {
        if (ce.cluster->usesHash()) {
          full.push_back(lb::WeightedHost{h->host->weight, lb::hash64(h->host->address)});
          full_to_usable.push_back(st->panic || h->usable() ? static_cast<int32_t>(lv.hosts.size()) : -1);
        }
        if (!st->panic && !h->usable()) continue;
        // With slow start, weights get two more digits so a ramp from 10% shows even on
        // weight-1 hosts.
        uint32_t weight = window > 0 ? h->host->weight * 100 : h->host->weight;
        if (window > 0 && h->warm_from) {
          int64_t elapsed = msSince(*h->warm_from, now);
          if (elapsed >= window) {
            h->warm_from.reset();
          } else {
            weight = lb::slowStartWeight(weight, elapsed, window);
            warming = true;
          }
        }
        lv.hosts.push_back(h->host);
        lv.weighted.push_back(lb::WeightedHost{weight, lb::hash64(h->host->address)});
      }
      if (lv.hosts.empty()) continue;
      for (const auto& w : lv.weighted) lv.equal_weights = lv.equal_weights && w.weight == lv.weighted[0].weight;
      lv.has_full = full.size() > lv.hosts.size();
      if (lv.has_full) lv.full_to_usable = std::move(full_to_usable);
      switch (cfg.lb_policy) {
        case config::LbPolicy::kRingHash:
          lv.ring = lb::RingHash(lv.weighted, cfg.ring_size);
          if (lv.has_full) lv.full_ring = lb::RingHash(full, cfg.ring_size);
          lv.random = lb::WeightedRandom(lv.weighted);
          break;
        case config::LbPolicy::kMaglev:
          lv.maglev = lb::Maglev(lv.weighted);
          if (lv.has_full) lv.full_maglev = lb::Maglev(full);
          lv.random = lb::WeightedRandom(lv.weighted);
          break;
        case config::LbPolicy::kRandom:
        case config::LbPolicy::kLeastRequest:
          lv.random = lb::WeightedRandom(lv.weighted);
          break;
        case config::LbPolicy::kRoundRobin:
          break;
      }
      st->levels.push_back(std::move(lv));
      st->load.push_back(share);
    }
    // Loads of the levels kept sum to 100 unless rounding dropped a level: give the rest to
    // the first.
    uint32_t sum = 0;
    for (uint32_t l : st->load) sum += l;
    if (!st->load.empty() && sum != 100) st->load[0] += 100 - std::min<uint32_t>(sum, 100);

    size_t usable = 0, ejected = 0;
    for (auto& h : ce.hosts) {
      usable += h->usable() ? 1 : 0;
      ejected += h->ejected ? 1 : 0;
      setGauge(h->host->stats.healthy, h->usable() ? 1 : 0);
    }
    setGauge(ce.cluster->stats().healthy, static_cast<int64_t>(usable));
    setGauge(ce.cluster->stats().ejected, static_cast<int64_t>(ejected));
    ce.state = std::move(st);
    if (publish) publish(ce.cluster->index(), ce.state);
    if (warming) scheduleWarm(ce);
  }

  // While some host ramps up, the table is rebuilt every twentieth of the window.
  void scheduleWarm(ClusterEntry& ce) {
    if (!publish || stopped) return;
    if (!ce.warm_timer) ce.warm_timer = std::make_unique<asio::steady_timer>(io);
    if (ce.warm_timer->expiry() > Clock::now()) return;  // already pending
    auto step = std::max<int64_t>(ce.cluster->config().slow_start.count() / 20, 50);
    ce.warm_timer->expires_after(milliseconds(step));
    ce.warm_timer->async_wait([this, &ce](const boost::system::error_code& ec) {
      if (!ec && !stopped) rebuild(ce);
    });
  }

  void startWarm(ClusterEntry& ce, HostEntry& h) {
    if (ce.cluster->config().slow_start.count() > 0) h.warm_from = Clock::now();
  }

  // ---- lifecycle of one cluster ----

  // Health checks and DNS of a cluster, once the manager runs.
  void startEntry(ClusterEntry& ce) {
    startChecker(ce);
    startDns(ce);
  }

  void startChecker(ClusterEntry& ce) {
    const auto& cfg = ce.cluster->config();
    if (!cfg.health_check) return;
    ClusterEntry* cep = &ce;
    ce.checker = std::make_unique<HealthChecker>(
        io, *cfg.health_check, cfg.name, [this, cep](uint64_t id, bool healthy) { onHealthChange(*cep, id, healthy); },
        [this, cep](uint64_t id, bool passed, const std::string& detail) {
          mainShard().inc(passed ? cep->cluster->stats().hc_success : cep->cluster->stats().hc_failure);
          if (!passed) {
            if (HostEntry* h = find(*cep, id)) {
              mainShard().inc(h->host->stats.hc_failures);
              FERRY_LOG(kDebug, "cluster ", cep->cluster->name(), ": health check of ", h->host->address,
                        " failed: ", detail);
            }
          }
        },
        [this, cep](uint64_t id) -> std::unique_ptr<net::TransportSocket> {
          const HostEntry* h = find(*cep, id);
          return h != nullptr ? cep->cluster->newTransport(*h->host) : nullptr;
        });
    for (auto& h : ce.hosts) ce.checker->addTarget(h->host->id, h->host->addr, h->host->address, h->hc_healthy);
  }

  void startDns(ClusterEntry& ce) {
    const auto& cfg = ce.cluster->config();
    bool dns = std::any_of(cfg.endpoints.begin(), cfg.endpoints.end(), [](const auto& e) { return !e.hostname.empty(); });
    if (!dns) return;
    std::vector<std::string> servers;
    for (const auto& a : cfg.dns_resolvers) servers.push_back(a.text);
    std::string err;
    ce.resolver = DnsResolver::create(io, servers, milliseconds(1000), &err);
    if (!ce.resolver) {
      FERRY_LOG(kError, "cluster ", cfg.name, ": DNS resolver: ", err);
      return;
    }
    ce.dns_warming = true;
    resolveAll(ce);
  }

  // Cancels everything the cluster has running; no callback of it runs afterwards.
  void stopEntry(ClusterEntry& ce) {
    ce.checker.reset();
    stopDns(ce);
    ce.warm_timer.reset();
    for (auto& h : ce.hosts) h->eject_timer.reset();
  }

  void stopDns(ClusterEntry& ce) {
    ce.resolver.reset();  // pending lookups are cancelled without callbacks
    ce.dns_timer.reset();
    ce.dns_outstanding = 0;
    ce.dns_warming = false;
  }

  // Takes a host out of the cluster: no more checks, out of the next table; workers close its
  // idle connections and free its pools once the last request on it is done.
  std::vector<std::unique_ptr<HostEntry>>::iterator retireHost(ClusterEntry& ce,
                                                               std::vector<std::unique_ptr<HostEntry>>::iterator it) {
    HostEntry& h = **it;
    if (ce.checker) ce.checker->removeTarget(h.host->id);
    setGauge(h.host->stats.healthy, 0);
    h.host->removed.store(true, std::memory_order_relaxed);  // published with the next table
    return ce.hosts.erase(it);
  }

  // A changed config for an existing cluster: a new Cluster object with the same index and
  // counters; hosts whose address (or DNS name) is still configured keep their identity,
  // health, outlier state and pools; others leave, new ones join. Health checks restart only
  // when their settings changed, DNS lookups when the named endpoints or resolvers did.
  void update(ClusterEntry& ce, const config::ClusterConfig& cfg, const std::string& files_fingerprint) {
    const config::ClusterConfig old = ce.cluster->config();
    auto cluster = std::make_shared<Cluster>(cfg, ce.cluster->index(), stats, ce.cluster->counters());
    cluster->setFilesFingerprint(files_fingerprint);
    cluster->setOutlierSink(ce.cluster->outlierSink());
    ce.cluster = std::move(cluster);
    FERRY_LOG(kInfo, "cluster ", cfg.name, ": updated");

    // Endpoints by identity: an IP endpoint by its address, a DNS one by name and port.
    std::map<std::string, size_t> static_eps, dns_eps;
    for (size_t i = 0; i < cfg.endpoints.size(); ++i) {
      const auto& ep = cfg.endpoints[i];
      if (ep.hostname.empty()) {
        sockaddr_storage ss{};
        net::makeSockaddr(ep.address.host, ep.address.port, &ss);
        static_eps.emplace(net::formatSockaddr(ss), i);
      } else {
        dns_eps.emplace(ep.hostname + ":" + std::to_string(ep.address.port), i);
      }
    }
    for (auto it = ce.hosts.begin(); it != ce.hosts.end();) {
      Host& host = *(*it)->host;
      auto& eps = host.hostname.empty() ? static_eps : dns_eps;
      auto found = eps.find(host.hostname.empty() ? host.address
                                                  : host.hostname + ":" + std::to_string(net::sockaddrPort(host.addr)));
      if (found == eps.end()) {
        FERRY_LOG(kInfo, "cluster ", cfg.name, ": endpoint ", host.address, " removed");
        it = retireHost(ce, it);
        continue;
      }
      const auto& ep = cfg.endpoints[found->second];
      (*it)->endpoint = found->second;
      host.weight = ep.weight == 0 ? 1 : ep.weight;  // read by the main thread only (tables)
      host.priority = ep.priority;
      if (host.hostname.empty()) static_eps.erase(found);  // what is left is new
      ++it;
    }
    for (const auto& [address, i] : static_eps) {
      const auto& ep = cfg.endpoints[i];
      sockaddr_storage ss{};
      net::makeSockaddr(ep.address.host, ep.address.port, &ss);
      ce.hosts.push_back(makeHost(ce, i, ss, ""));
      if (ce.checker && old.health_check == cfg.health_check)
        ce.checker->addTarget(ce.hosts.back()->host->id, ss, ce.hosts.back()->host->address);
    }
    if (!(old.health_check == cfg.health_check)) {
      ce.checker.reset();
      // The new checks go on from each host's current health; without checks, every host is.
      if (!cfg.health_check)
        for (auto& h : ce.hosts) h->hc_healthy = true;
      if (started && !stopped) startChecker(ce);
    }
    std::vector<std::string> old_names, new_names;
    for (const auto& e : old.endpoints) old_names.push_back(e.hostname + ":" + std::to_string(e.address.port));
    for (const auto& e : cfg.endpoints) new_names.push_back(e.hostname + ":" + std::to_string(e.address.port));
    if (old_names != new_names || !(old.dns_resolvers == cfg.dns_resolvers) || old.dns_refresh != cfg.dns_refresh) {
      stopDns(ce);
      if (started && !stopped) startDns(ce);
    }
    rebuild(ce);
  }

  // ---- active health checks ----
  void onHealthChange(ClusterEntry& ce, uint64_t id, bool healthy) {
    HostEntry* h = find(ce, id);
    if (h == nullptr || h->hc_healthy == healthy) return;
    h->hc_healthy = healthy;
    mainShard().inc(ce.cluster->stats().health_transitions);
    mainShard().inc(h->host->stats.health_transitions);
    FERRY_LOG(kInfo, "cluster ", ce.cluster->name(), ": endpoint ", h->host->address, " is now ",
              healthy ? "healthy" : "unhealthy", " (health check)");
    if (healthy) startWarm(ce, *h);
    rebuild(ce);
  }

  // ---- outlier detection ----
  void eject(ClusterEntry& ce, uint64_t id, bool gateway) {
    const auto& od = *ce.cluster->config().outlier_detection;
    HostEntry* h = find(ce, id);
    if (h == nullptr || h->ejected) return;
    // Reset the host's counters: the next run of failures starts from zero.
    h->host->consecutive_5xx.store(0, std::memory_order_relaxed);
    h->host->consecutive_gateway.store(0, std::memory_order_relaxed);
    size_t ejected = 0;
    for (auto& o : ce.hosts) ejected += o->ejected ? 1 : 0;
    // max_ejection_percent, but one host may always be ejected (Envoy's rule).
    if (ejected > 0 && (ejected + 1) * 100 > ce.hosts.size() * od.max_ejection_percent) {
      FERRY_LOG(kDebug, "cluster ", ce.cluster->name(), ": not ejecting ", h->host->address,
                ": max_ejection_percent reached");
      return;
    }
    const auto now = Clock::now();
    // A host that behaved for max_ejection_time since it last returned starts over at base.
    if (h->ejections > 0 && now - h->returned_at > od.max_ejection_time) h->ejections = 0;
    ++h->ejections;
    auto duration = std::min<int64_t>(od.base_ejection_time.count() * h->ejections, od.max_ejection_time.count());
    h->ejected = true;
    mainShard().inc(ce.cluster->stats().ejections);
    mainShard().inc(h->host->stats.ejections);
    FERRY_LOG(kInfo, "cluster ", ce.cluster->name(), ": endpoint ", h->host->address, " ejected for ",
              config::formatDuration(milliseconds(duration)), " (consecutive ",
              gateway ? "gateway errors" : "5xx", ")");
    if (!h->eject_timer) h->eject_timer = std::make_unique<asio::steady_timer>(io);
    h->eject_timer->expires_after(milliseconds(duration));
    uint64_t hid = h->host->id;
    h->eject_timer->async_wait([this, &ce, hid](const boost::system::error_code& ec) {
      if (ec || stopped) return;
      HostEntry* back = find(ce, hid);
      if (back == nullptr || !back->ejected) return;
      back->ejected = false;
      back->returned_at = Clock::now();
      FERRY_LOG(kInfo, "cluster ", ce.cluster->name(), ": endpoint ", back->host->address, " returns");
      startWarm(ce, *back);
      rebuild(ce);
    });
    rebuild(ce);
  }

  // ---- DNS ----
  void resolveAll(ClusterEntry& ce) {
    if (stopped || !ce.resolver || ce.dns_outstanding > 0) return;
    const auto& eps = ce.cluster->config().endpoints;
    for (size_t i = 0; i < eps.size(); ++i) {
      if (eps[i].hostname.empty()) continue;
      ++ce.dns_outstanding;
      ce.resolver->resolve(eps[i].hostname, [this, &ce, i](bool ok, std::vector<std::string> addrs, std::string err) {
        onResolved(ce, i, ok, std::move(addrs), err);
      });
    }
  }

  void onResolved(ClusterEntry& ce, size_t endpoint, bool ok, std::vector<std::string> addrs,
                  const std::string& err) {
    if (stopped) return;
    const auto& ep = ce.cluster->config().endpoints[endpoint];
    std::vector<sockaddr_storage> wanted;
    for (const auto& a : addrs) {
      sockaddr_storage ss{};
      if (net::makeSockaddr(a, ep.address.port, &ss)) wanted.push_back(ss);
    }
    if (!ok || wanted.empty()) {
      mainShard().inc(ce.cluster->stats().dns_failure);
      FERRY_LOG(kWarn, "cluster ", ce.cluster->name(), ": cannot resolve ", ep.hostname, ": ",
                ok ? std::string("no usable address") : err, "; keeping the last good set");
    } else {
      mainShard().inc(ce.cluster->stats().dns_success);
      updateDnsHosts(ce, endpoint, wanted);
    }
    if (--ce.dns_outstanding == 0) {
      if (ce.dns_warming) {
        ce.dns_warming = false;
        FERRY_LOG(kInfo, "cluster ", ce.cluster->name(), ": first DNS round done, ", ce.hosts.size(), " endpoint",
                  ce.hosts.size() == 1 ? "" : "s");
      }
      scheduleDns(ce);
    }
  }

  void updateDnsHosts(ClusterEntry& ce, size_t endpoint, const std::vector<sockaddr_storage>& wanted) {
    std::set<std::string> want;
    for (const auto& ss : wanted) want.insert(net::formatSockaddr(ss));
    bool changed = false;
    // Removed addresses leave the table; requests in flight keep their host (shared_ptr).
    for (auto it = ce.hosts.begin(); it != ce.hosts.end();) {
      HostEntry& h = **it;
      if (h.endpoint == endpoint && !h.host->hostname.empty() && want.count(h.host->address) == 0) {
        FERRY_LOG(kInfo, "cluster ", ce.cluster->name(), ": ", h.host->hostname, " no longer resolves to ",
                  h.host->address);
        it = retireHost(ce, it);
        changed = true;
      } else {
        ++it;
      }
    }
    const std::string& name = ce.cluster->config().endpoints[endpoint].hostname;
    for (const auto& ss : wanted) {
      std::string text = net::formatSockaddr(ss);
      bool have = std::any_of(ce.hosts.begin(), ce.hosts.end(), [&](const auto& h) {
        return h->endpoint == endpoint && h->host->address == text;
      });
      if (have) continue;
      auto e = makeHost(ce, endpoint, ss, name);
      FERRY_LOG(kInfo, "cluster ", ce.cluster->name(), ": ", name, " resolves to ", text);
      // A later addition warms up; the first round's addresses take traffic at full weight.
      if (!ce.dns_warming) startWarm(ce, *e);
      if (ce.checker) ce.checker->addTarget(e->host->id, e->host->addr, e->host->address);
      ce.hosts.push_back(std::move(e));
      changed = true;
    }
    if (changed) rebuild(ce);
  }

  void scheduleDns(ClusterEntry& ce) {
    if (stopped) return;
    if (!ce.dns_timer) ce.dns_timer = std::make_unique<asio::steady_timer>(io);
    ce.dns_timer->expires_after(ce.cluster->config().dns_refresh);
    ce.dns_timer->async_wait([this, &ce](const boost::system::error_code& ec) {
      if (!ec) resolveAll(ce);
    });
  }
};

ClusterManager::ClusterManager(asio::io_context& io, StatsStore& stats) : impl_(std::make_unique<Impl>(io, stats)) {}

ClusterManager::~ClusterManager() { stop(); }

std::shared_ptr<const Cluster> ClusterManager::addOrUpdate(const config::ClusterConfig& cfg,
                                                           const std::string& files_fingerprint) {
  auto& I = *impl_;
  auto it = I.by_name.find(cfg.name);
  if (it != I.by_name.end()) {
    ClusterEntry& ce = *it->second;
    if (!(ce.cluster->config() == cfg) || ce.cluster->filesFingerprint() != files_fingerprint)
      I.update(ce, cfg, files_fingerprint);
    return ce.cluster;
  }
  auto entry = std::make_unique<ClusterEntry>();
  ClusterEntry& ce = *entry;
  auto made = std::make_shared<Cluster>(cfg, I.by_index.size(), I.stats);
  made->setFilesFingerprint(files_fingerprint);
  ce.cluster = std::move(made);
  ce.cluster->setOutlierSink(this);
  I.by_index.push_back(&ce);
  I.by_name.emplace(cfg.name, std::move(entry));
  const auto& eps = cfg.endpoints;
  for (size_t i = 0; i < eps.size(); ++i) {
    if (!eps[i].hostname.empty()) continue;
    sockaddr_storage ss{};
    net::makeSockaddr(eps[i].address.host, eps[i].address.port, &ss);
    ce.hosts.push_back(I.makeHost(ce, i, ss, ""));
  }
  I.rebuild(ce);
  if (I.started && !I.stopped) I.startEntry(ce);
  return ce.cluster;
}

void ClusterManager::remove(const std::string& name) {
  auto& I = *impl_;
  auto it = I.by_name.find(name);
  if (it == I.by_name.end()) return;
  ClusterEntry& ce = *it->second;
  FERRY_LOG(kInfo, "cluster ", name, ": removed");
  I.stopEntry(ce);
  while (!ce.hosts.empty()) I.retireHost(ce, ce.hosts.begin());
  I.setGauge(ce.cluster->stats().healthy, 0);
  I.setGauge(ce.cluster->stats().ejected, 0);
  const size_t index = ce.cluster->index();
  I.by_index[index] = nullptr;
  I.by_name.erase(it);
  // Workers drop the table; their pools of the removed hosts close once idle.
  if (I.publish) I.publish(index, nullptr);
}

std::shared_ptr<const Cluster> ClusterManager::find(const std::string& name) const {
  auto it = impl_->by_name.find(name);
  return it == impl_->by_name.end() ? nullptr : it->second->cluster;
}

size_t ClusterManager::slotCount() const { return impl_->by_index.size(); }

std::shared_ptr<const LbState> ClusterManager::state(size_t cluster_index) const {
  const auto& v = impl_->by_index;
  return cluster_index < v.size() && v[cluster_index] != nullptr ? v[cluster_index]->state : nullptr;
}

void ClusterManager::start(Publish publish) {
  auto& I = *impl_;
  I.publish = std::move(publish);
  I.started = true;
  for (ClusterEntry* ce : I.by_index)
    if (ce != nullptr) I.startEntry(*ce);
}

bool ClusterManager::warming() const {
  for (const auto& [name, ce] : impl_->by_name)
    if (ce->dns_warming) return true;
  return false;
}

void ClusterManager::stop() {
  auto& I = *impl_;
  if (I.stopped) return;
  I.stopped = true;
  for (auto& [name, ce] : I.by_name) I.stopEntry(*ce);
}

void ClusterManager::onOutlier(size_t cluster_index, uint64_t host_id, bool gateway) const {
  Impl* I = impl_.get();
  asio::post(I->io, [I, cluster_index, host_id, gateway] {
    if (I->stopped || cluster_index >= I->by_index.size() || I->by_index[cluster_index] == nullptr) return;
    I->eject(*I->by_index[cluster_index], host_id, gateway);
  });
}

namespace {
// Unix milliseconds as ISO 8601 UTC ("2026-01-02T03:04:05.678Z").
std::string isoUtc(int64_t unix_ms) {
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                t.tm_hour, t.tm_min, t.tm_sec, static_cast<int>(unix_ms % 1000));
  return buf;
}
}  // namespace

std::string ClusterManager::json() const {
  const auto& I = *impl_;
  static constexpr const char* kCheckTypes[] = {"http", "tcp", "grpc"};
  const auto steady_now = Clock::now();
  const int64_t unix_now = std::chrono::duration_cast<milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count();
  static constexpr const char* kPolicies[] = {"round_robin", "least_request", "random", "ring_hash", "maglev"};
  std::string out = "{\"clusters\":[";
  bool first_cluster = true;
  for (const ClusterEntry* cep : I.by_index) {
    if (cep == nullptr) continue;
    const auto& ce = *cep;
    const auto& c = *ce.cluster;
    const auto& s = c.stats();
    auto v = [&](StatHandle h) { return std::to_string(I.stats.value(h)); };
    if (!first_cluster) out += ",";
    first_cluster = false;
    out += "{\"name\":" + jsonString(c.name()) + ",\"lb_policy\":\"" +
           kPolicies[static_cast<int>(c.lbPolicy())] + "\",";
    out += "\"connect_timeout\":\"" + config::formatDuration(c.connectTimeout()) + "\",";
    const auto& cc = c.config();
    out += "\"protocol\":" + jsonString(cc.protocol) + ",\"tls\":" + (cc.tls ? "true" : "false") + ",";
    out += "\"health_check\":" +
           (cc.health_check ? "\"" + std::string(kCheckTypes[static_cast<int>(cc.health_check->type)]) + "\""
                            : std::string("null")) +
           ",\"outlier_detection\":" + (cc.outlier_detection ? "true" : "false") + ",";
    out += "\"panic\":" + std::string(ce.state && ce.state->panic ? "true" : "false") + ",";
    out += "\"endpoints_healthy\":" + v(s.healthy) + ",\"endpoints_ejected\":" + v(s.ejected) + ",";
    out += "\"connections_active\":" + v(s.cx_active) + ",\"connect_failures\":" + v(s.connect_failures) + ",";
    out += "\"requests_active\":" + std::to_string(c.activeRequests()) +
           ",\"pending_requests\":" + std::to_string(c.pendingRequests()) +
           ",\"retries_active\":" + std::to_string(c.activeRetries()) + ",\"retries\":" + v(s.rq_retry) +
           ",\"retry_overflow\":" + v(s.rq_retry_overflow) + ",\"per_try_timeouts\":" + v(s.rq_per_try_timeout) +
           ",\"no_healthy\":" + v(s.no_healthy) + ",\"ejections\":" + v(s.ejections) +
           ",\"health_transitions\":" + v(s.health_transitions) + ",";
    out += "\"circuit_breaker_overflow\":{\"max_connections\":" + v(s.overflow_connections) +
           ",\"max_pending_requests\":" + v(s.overflow_pending) + ",\"max_requests\":" + v(s.overflow_requests) +
           "},";
    out += "\"health_checks\":{\"success\":" + v(s.hc_success) + ",\"failure\":" + v(s.hc_failure) + "},";
    out += "\"errors\":{\"connect_failure\":" + v(s.errors[0]) + ",\"reset\":" + v(s.errors[1]) +
           ",\"timeout\":" + v(s.errors[2]) + ",\"protocol\":" + v(s.errors[3]) + "},";
    out += "\"dns\":{\"success\":" + v(s.dns_success) + ",\"failure\":" + v(s.dns_failure) + "},";
    out += "\"requests\":{";
    for (int cls = 1; cls <= 5; ++cls)
      out += std::string(cls > 1 ? "," : "") + "\"" + std::to_string(cls) + "xx\":" + v(s.rq_by_class[cls]);
    out += "},\"endpoints\":[";
    for (size_t j = 0; j < ce.hosts.size(); ++j) {
      const HostEntry& e = *ce.hosts[j];
      const Host& h = *e.host;
      if (j) out += ",";
      std::string health = !e.hc_healthy ? "unhealthy" : e.ejected ? "ejected" : "healthy";
      out += "{\"address\":" + jsonString(h.address) + ",";
      if (!h.hostname.empty()) out += "\"hostname\":" + jsonString(h.hostname) + ",";
      out += "\"weight\":" + std::to_string(h.weight) + ",\"priority\":" + std::to_string(h.priority) +
             ",\"health\":\"" + health + "\",\"active_health\":\"" + (e.hc_healthy ? "healthy" : "unhealthy") +
             "\",\"ejected\":" + (e.ejected ? "true" : "false") + ",\"slow_start\":" + (e.warm_from ? "true" : "false") +
             ",\"ejections\":" + v(h.stats.ejections) + ",\"health_check_failures\":" + v(h.stats.hc_failures) +
             ",\"health_transitions\":" + v(h.stats.health_transitions) +
             ",\"requests_active\":" + v(h.stats.rq_active) +
             ",\"errors\":" + v(h.stats.errors) + ",\"requests\":{";
      for (int cls = 1; cls <= 5; ++cls)
        out += std::string(cls > 1 ? "," : "") + "\"" + std::to_string(cls) + "xx\":" + v(h.stats.rq_by_class[cls]);
      out += "},\"connections_total\":" + v(h.stats.cx_total) + ",\"connections_active\":" + v(h.stats.cx_active) +
             ",\"connect_failures\":" + v(h.stats.connect_failures);
      // Outlier state: until when an ejected endpoint stays out (its timer's expiry, as wall time).
      out += ",\"outlier\":{\"ejected\":" + std::string(e.ejected ? "true" : "false") + ",\"ejected_until\":";
      if (e.ejected && e.eject_timer) {
        const int64_t left = std::max<int64_t>(0, msSince(steady_now, e.eject_timer->expiry()));
        out += "\"" + isoUtc(unix_now + left) + "\",\"remaining_ms\":" + std::to_string(left);
      } else {
        out += "null,\"remaining_ms\":0";
      }
      out += ",\"ejection_count\":" + v(h.stats.ejections) + "}}";
    }
    out += "]}";
  }
  out += "]}\n";
  return out;
}

}  // namespace ferry::core::upstream
