#include "core/upstream/cluster.h"

#include "core/tls/tls.h"

#include <algorithm>

namespace ferry::core::upstream {

Cluster::Cluster(const config::ClusterConfig& cfg, size_t index, StatsStore& stats,
                 std::shared_ptr<ClusterCounters> counters)
    : cfg_(cfg), name_(cfg.name), index_(index),
      c_(counters ? std::move(counters) : std::make_shared<ClusterCounters>()) {
  if (cfg.tls) {
    std::vector<tls::BuildError> errors;
    tls_ = tls::buildClientContext(*cfg.tls, name_, &stats, &errors);
    for (const auto& e : errors) tls_error_ += (tls_error_.empty() ? "" : "; ") + e.message;
  }
  const std::vector<std::pair<std::string, std::string>> labels = {{"cluster", name_}};
  auto counter = [&](const char* name, const char* help) { return stats.counter(name, labels, help); };
  auto gauge = [&](const char* name, const char* help) { return stats.gauge(name, labels, help); };
  stats_.cx_total = counter("ferry_upstream_connections_total", "Upstream connections opened.");
  stats_.cx_active = gauge("ferry_upstream_connections_active", "Open upstream connections.");
  stats_.connect_failures =
      counter("ferry_upstream_connect_failures_total", "Upstream connects refused, failed or timed out.");
  stats_.rq_time = stats.histogram(
      "ferry_upstream_request_duration_seconds", labels,
      latencyBounds(),
      "Time from sending a request upstream to its response head.");
  stats_.bytes_sent = counter("ferry_upstream_bytes_sent_total", "Bytes sent to upstreams.");
  stats_.bytes_received = counter("ferry_upstream_bytes_received_total", "Bytes received from upstreams.");
  for (int cls = 1; cls <= 5; ++cls)
    stats_.rq_by_class[cls] = stats.counter("ferry_upstream_requests_total",
                                            {{"cluster", name_}, {"code", std::to_string(cls) + "xx"}},
                                            "Upstream HTTP responses by status class.");
  stats_.rq_active = gauge("ferry_upstream_requests_active", "Requests in flight to the cluster.");
  stats_.rq_retry = counter("ferry_upstream_retries_total", "Retries sent.");
  stats_.rq_retry_overflow =
      counter("ferry_upstream_retry_overflow_total", "Retries not sent: max_retries or the retry budget.");
  stats_.rq_per_try_timeout = counter("ferry_upstream_per_try_timeouts_total", "Attempts ended by per_try_timeout.");
  const char* kOverflowHelp = "Requests refused at once by a circuit breaker (503 UO).";
  stats_.overflow_connections = stats.counter("ferry_upstream_circuit_breaker_overflow_total",
                                              {{"cluster", name_}, {"breaker", "max_connections"}}, kOverflowHelp);
  stats_.overflow_pending = stats.counter("ferry_upstream_circuit_breaker_overflow_total",
                                          {{"cluster", name_}, {"breaker", "max_pending_requests"}}, kOverflowHelp);
  stats_.overflow_requests = stats.counter("ferry_upstream_circuit_breaker_overflow_total",
                                           {{"cluster", name_}, {"breaker", "max_requests"}}, kOverflowHelp);
  stats_.no_healthy = counter("ferry_upstream_no_healthy_total", "Requests answered 503 UH: no usable endpoint.");
  stats_.healthy = gauge("ferry_cluster_endpoints_healthy", "Usable endpoints per cluster (healthy, not ejected).");
  stats_.ejected = gauge("ferry_cluster_endpoints_ejected", "Endpoints ejected by outlier detection.");
  stats_.ejections = counter("ferry_cluster_outlier_ejections_total", "Outlier-detection ejections.");
  stats_.hc_success = stats.counter("ferry_cluster_health_checks_total", {{"cluster", name_}, {"result", "success"}},
                                    "Active health checks by result.");
  stats_.hc_failure = stats.counter("ferry_cluster_health_checks_total", {{"cluster", name_}, {"result", "failure"}},
                                    "Active health checks by result.");
  stats_.health_transitions =
      counter("ferry_cluster_health_transitions_total", "Endpoints turning healthy or unhealthy (active checks).");
  stats_.dns_success = stats.counter("ferry_cluster_dns_resolutions_total", {{"cluster", name_}, {"result", "success"}},
                                     "DNS resolutions of the cluster's hostnames by result.");
  stats_.dns_failure = stats.counter("ferry_cluster_dns_resolutions_total", {{"cluster", name_}, {"result", "failure"}},
                                     "DNS resolutions of the cluster's hostnames by result.");
  static constexpr const char* kErrorKinds[kUpstreamErrorKinds] = {"connect_failure", "reset", "timeout", "protocol"};
  for (int k = 0; k < kUpstreamErrorKinds; ++k)
    stats_.errors[k] = stats.counter("ferry_upstream_errors_total", {{"cluster", name_}, {"kind", kErrorKinds[k]}},
                                     "Upstream tries that failed without a response, by kind.");
  stats_.pools = gauge("ferry_upstream_pools", "Upstream connection pools: one per endpoint per worker that used it.");
  stats_.panic = counter("ferry_cluster_panic_requests_total",
                         "Requests balanced over all endpoints because health fell below panic_threshold.");
}

bool Cluster::tryAcquireRetry() const {
  const auto& cb = cfg_.circuit_breakers;
  if (!cb.retry_budget) return tryAcquire(c_->retries, cb.max_retries);
  // Budget: active retries at most percent% of active requests, or min_retry_concurrency.
  int64_t active = c_->rq_active.load(std::memory_order_relaxed);
  auto allowed = static_cast<int64_t>(static_cast<double>(active) * cb.retry_budget->percent / 100.0);
  allowed = std::max<int64_t>(allowed, cb.retry_budget->min_retry_concurrency);
  if (c_->retries.fetch_add(1, std::memory_order_relaxed) >= allowed) {
    c_->retries.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void Cluster::reportResult(const Host& host, UpstreamResult result) const {
  if (!cfg_.outlier_detection || sink_ == nullptr) return;
  const auto& od = *cfg_.outlier_detection;
  switch (result) {
    case UpstreamResult::kSuccess:
      // Plain loads first: the common case writes nothing, so healthy hosts' cache lines
      // stay shared between workers.
      if (host.consecutive_5xx.load(std::memory_order_relaxed) != 0)
        host.consecutive_5xx.store(0, std::memory_order_relaxed);
      if (host.consecutive_gateway.load(std::memory_order_relaxed) != 0)
        host.consecutive_gateway.store(0, std::memory_order_relaxed);
      return;
    case UpstreamResult::k5xx:
      if (host.consecutive_gateway.load(std::memory_order_relaxed) != 0)
        host.consecutive_gateway.store(0, std::memory_order_relaxed);
      break;
    case UpstreamResult::kGatewayError:
    case UpstreamResult::kLocalOriginFailure:
      // Exactly at the threshold: one report per run of failures.
      if (od.consecutive_gateway_failure > 0 &&
          host.consecutive_gateway.fetch_add(1, std::memory_order_relaxed) + 1 == od.consecutive_gateway_failure)
        sink_->onOutlier(index_, host.id, true);
      break;
  }
  if (od.consecutive_5xx > 0 &&
      host.consecutive_5xx.fetch_add(1, std::memory_order_relaxed) + 1 == od.consecutive_5xx)
    sink_->onOutlier(index_, host.id, false);
}

ClusterLb::ClusterLb(size_t clusters, uint64_t seed) : slots_(clusters), rng_(seed) {}

void ClusterLb::setState(size_t cluster_index, std::shared_ptr<const LbState> state) {
  if (cluster_index >= slots_.size()) slots_.resize(cluster_index + 1);
  auto& slot = slots_[cluster_index];
  slot.rr.assign(state ? state->levels.size() : 0, {});
  slot.state = std::move(state);
}

size_t ClusterLb::pickInLevel(const Cluster& cluster, size_t level_index, const PickContext& ctx) {
  const LbLevel& level = slots_[cluster.index()].state->levels[level_index];
  const size_t n = level.hosts.size();
  if (n == 1) return 0;
  switch (cluster.lbPolicy()) {
    case config::LbPolicy::kRoundRobin: {
      auto& cursor = slots_[cluster.index()].rr[level_index];
      if (level.equal_weights) {
        // Smooth WRR with equal weights is plain rotation: O(1) instead of a pass over hosts.
        if (cursor.empty()) cursor.push_back(static_cast<int64_t>(rng_.below(n)));  // workers start apart
        size_t i = static_cast<size_t>(cursor[0]) % n;
        cursor[0] = static_cast<int64_t>((i + 1) % n);
        return i;
      }
      return lb::pickSmoothWrr(level.weighted, cursor);
    }
    case config::LbPolicy::kLeastRequest:
      return lb::pickLeastRequest(level.weighted, level.random, level.equal_weights,
                                  cluster.config().least_request_choices, rng_, [&level](size_t i) {
                                    return level.hosts[i]->rq_active.load(std::memory_order_relaxed);
                                  });
    case config::LbPolicy::kRandom:
      return level.equal_weights ? rng_.below(n) : level.random.pick(rng_.next());
    case config::LbPolicy::kRingHash:
      if (!ctx.hash) return level.equal_weights ? rng_.below(n) : level.random.pick(rng_.next());
      if (level.has_full) {
        int32_t i = level.full_to_usable[level.full_ring.pick(*ctx.hash)];
        if (i >= 0) return static_cast<size_t>(i);
      }
      return level.ring.pick(*ctx.hash);
    case config::LbPolicy::kMaglev:
      if (!ctx.hash) return level.equal_weights ? rng_.below(n) : level.random.pick(rng_.next());
      if (level.has_full) {
        int32_t i = level.full_to_usable[level.full_maglev.pick(*ctx.hash)];
        if (i >= 0) return static_cast<size_t>(i);
      }
      return level.maglev.pick(*ctx.hash);
  }
  return 0;
}

const HostPtr* ClusterLb::pick(const Cluster& cluster, const PickContext& ctx) {
  if (cluster.index() >= slots_.size()) return nullptr;
  const LbState* st = slots_[cluster.index()].state.get();
  if (st == nullptr || st->levels.empty()) return nullptr;
  size_t level = 0;
  if (st->levels.size() > 1) {
    // Priority load: level i takes load[i] percent of the requests.
    uint64_t r = rng_.below(100);
    uint64_t acc = 0;
    for (level = 0; level + 1 < st->levels.size(); ++level) {
      acc += st->load[level];
      if (r < acc) break;
    }
  }
  size_t i = pickInLevel(cluster, level, ctx);
  const LbLevel* lv = &st->levels[level];
  if (ctx.avoid != nullptr && lv->hosts[i].get() == ctx.avoid) {
    // A retry: prefer another host. Hash policies re-hash the key; the others pick again.
    PickContext again = ctx;
    for (uint64_t attempt = 1; attempt <= 3 && lv->hosts[i].get() == ctx.avoid; ++attempt) {
      if (again.hash) again.hash = lb::hash64(std::string_view(reinterpret_cast<const char*>(&*ctx.hash), 8), attempt);
      if (lv->hosts.size() > 1) {
        i = pickInLevel(cluster, level, again);
      } else if (st->levels.size() > 1) {
        level = (level + 1) % st->levels.size();
        lv = &st->levels[level];
        i = pickInLevel(cluster, level, again);
      }
    }
  }
  return &lv->hosts[i];
}

}  // namespace ferry::core::upstream

namespace ferry::core::upstream {

std::unique_ptr<net::TransportSocket> Cluster::newTransport(const std::string& hostname,
                                                            const std::string& address) const {
  if (tls_) return tls::newClientTransport(tls_, hostname, address);
  if (cfg_.tls) return nullptr;  // the TLS context did not build (tlsError())
  return net::makePlainTransport();
}

}  // namespace ferry::core::upstream
