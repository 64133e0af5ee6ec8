#include "filters/network/tcp_proxy/tcp_proxy.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "core/event/timer.h"
#include "core/log.h"
#include "core/net/proxy_protocol.h"
#include "core/net/socket_util.h"
#include "core/upstream/cluster.h"

namespace ferry::filters::network {
namespace {

using core::Buffer;
using core::net::Connection;
using core::net::ConnectionEvent;
using core::net::FilterStatus;
using core::net::NetworkFilter;

struct TcpProxySettings {
  std::shared_ptr<const core::upstream::Cluster> cluster;  // null: none (with sni_routes)
  // sni_routes: exact names, and "*.suffix" stored as "suffix"; sorted by name.
  using NameTable = std::vector<std::pair<std::string, std::shared_ptr<const core::upstream::Cluster>>>;
  NameTable exact, wildcard;
  core::StatHandle sni_unmatched;
  std::chrono::milliseconds idle_timeout{0};
  uint32_t buffer_limit = 1024 * 1024;
  bool splice = true;
  core::StatHandle spliced_bytes;  // ferry_tcp_spliced_bytes_total{listener}
};

class TcpProxy : public NetworkFilter {
 public:
  explicit TcpProxy(std::shared_ptr<const TcpProxySettings> s) : s_(std::move(s)), upstream_cb_(*this) {}
  ~TcpProxy() override {
    if (upstream_) {
      upstream_->setCallbacks(nullptr);
      // An upstream still flushing the client's last bytes finishes on its own: its pending
      // write wait keeps it alive until the buffer is out, then it closes.
      if (!upstream_->closing()) upstream_->close(Connection::CloseType::kNoFlush);
      releaseHost();
    }
  }

  // The cluster for this connection: by server name (the TLS inspector's, or the terminated
  // handshake's) when the listener has sni_routes, else the listener's.
  const core::upstream::Cluster* pickCluster() const {
    if (s_->exact.empty() && s_->wildcard.empty()) return s_->cluster.get();
    const auto& info = callbacks_->info();
    const std::string& name = info.tls() ? info.tls()->sni : info.requestedServerName();
    auto find = [](const TcpProxySettings::NameTable& t, std::string_view key) -> const core::upstream::Cluster* {
      auto it = std::lower_bound(t.begin(), t.end(), key, [](const auto& e, std::string_view k) { return e.first < k; });
      return it != t.end() && it->first == key ? it->second.get() : nullptr;
    };
    if (!name.empty()) {
      if (const auto* c = find(s_->exact, name)) return c;
      // *.example.com covers any name ending in .example.com (like virtual hosts).
      for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1))
        if (const auto* c = find(s_->wildcard, std::string_view(name).substr(dot + 1))) return c;
    }
    return s_->cluster.get();
  }

  FilterStatus onNewConnection() override {
    auto& w = callbacks_->worker();
    cluster_ = pickCluster();
    if (cluster_ == nullptr) {
      w.stats->inc(s_->sni_unmatched);
      const auto& info = callbacks_->info();
      FERRY_LOG(kDebug, "tcp_proxy: no sni route for server name '",
                info.tls() ? info.tls()->sni : info.requestedServerName(), "'");
      callbacks_->connection().close(Connection::CloseType::kNoFlush);
      return FilterStatus::kStopIteration;
    }
    const auto& cluster = *cluster_;
    core::upstream::PickContext pc;
    if (cluster.usesHash() && cluster.config().hash_on.kind == config::HashOnConfig::Kind::kSourceIp) {
      std::string ip = core::net::formatSockaddr(callbacks_->info().remote);
      ip.erase(ip.rfind(':'));  // the client's address without its port
      pc.hash = core::upstream::lb::hash64(ip);
    }
    const core::upstream::HostPtr* hp = w.lb->pick(cluster, pc);
    if (hp == nullptr) {
      w.stats->inc(cluster.stats().no_healthy);
      FERRY_LOG(kDebug, "tcp_proxy: cluster ", cluster.name(), " has no usable endpoint");
      callbacks_->connection().close(Connection::CloseType::kNoFlush);
      return FilterStatus::kStopIteration;
    }
    if (!cluster.tryAcquireConnection()) {
      w.stats->inc(cluster.stats().overflow_connections);
      FERRY_LOG(kDebug, "tcp_proxy: cluster ", cluster.name(), ": max_connections reached");
      callbacks_->connection().close(Connection::CloseType::kNoFlush);
      return FilterStatus::kStopIteration;
    }
    host_ptr_ = *hp;
    host_ = hp->get();
    // Hold client bytes until the upstream is there: nothing to forward to yet.
    callbacks_->connection().readDisable(true);
    read_held_ = true;
    auto transport = cluster.newTransport(*host_);
    if (transport)
      upstream_ = Connection::connect(*w.io, host_->addr, cluster.connectTimeout(), w.acct, std::move(transport));
    if (!upstream_) {
      cluster.releaseConnection();
      w.stats->inc(cluster.stats().connect_failures);
      w.stats->inc(host_->stats.connect_failures);
      FERRY_LOG(kWarn, "tcp_proxy: cannot create a socket for ", host_->address, ": ", std::strerror(errno));
      callbacks_->connection().close(Connection::CloseType::kNoFlush);
      return FilterStatus::kStopIteration;
    }
    upstream_->setCallbacks(&upstream_cb_);
    upstream_->setWriteBufferLimits(s_->buffer_limit);
    w.stats->inc(cluster.stats().cx_total);
    w.stats->inc(cluster.stats().cx_active);
    w.stats->inc(host_->stats.cx_total);
    w.stats->inc(host_->stats.cx_active);
    w.stats->inc(host_->stats.rq_active);
    if (cluster.lbPolicy() == config::LbPolicy::kLeastRequest) host_->rq_active.fetch_add(1, std::memory_order_relaxed);
    host_counted_ = true;
    if (cluster.sendProxyProtocol() != 0) {
      const auto& info = callbacks_->info();
      Buffer header;
      header.add(cluster.sendProxyProtocol() == 1 ? core::net::encodeProxyV1(info.remote, info.local)
                                                  : core::net::encodeProxyV2(info.remote, info.local));
      upstream_->writeRaw(header);  // before the transport's first bytes (a TLS ClientHello)
    }
    if (s_->idle_timeout.count() > 0) {
      last_activity_ = core::monotonicMs();
      idle_timer_ = std::make_unique<core::Timer>(*w.io, [this] { onIdleTimer(); });
      idle_timer_->enable(s_->idle_timeout);
    }
    return FilterStatus::kStopIteration;
  }

  // Client -> upstream.
  FilterStatus onData(Buffer& data, bool end_stream) override {
    touch();
    callbacks_->worker().stats->add(cluster_->stats().bytes_sent, static_cast<int64_t>(data.length()));
    if (upstream_ && !upstream_->closed()) {
      upstream_->write(data, end_stream);
    } else {
      data.clear();
    }
    return FilterStatus::kStopIteration;
  }

  void onDownstreamEvent(ConnectionEvent) override {
    downstream_closed_ = true;
    idle_timer_.reset();
    if (upstream_ && !upstream_->closed()) upstream_->close(Connection::CloseType::kFlushWrite);
  }
  void onDownstreamSpliced(size_t bytes) override {
    touch();
    auto& s = *callbacks_->worker().stats;
    s.add(cluster_->stats().bytes_sent, static_cast<int64_t>(bytes));
    s.add(s_->spliced_bytes, static_cast<int64_t>(bytes));
  }
  void onUpstreamSpliced(size_t bytes) {
    touch();
    auto& s = *callbacks_->worker().stats;
    s.add(cluster_->stats().bytes_received, static_cast<int64_t>(bytes));
    s.add(s_->spliced_bytes, static_cast<int64_t>(bytes));
    callbacks_->countSplicedToDownstream(bytes);
  }
  void onDownstreamAboveWriteHighWatermark() override {
    if (upstream_ && !upstream_->closed()) upstream_->readDisable(true);
  }
  void onDownstreamBelowWriteLowWatermark() override {
    if (upstream_ && !upstream_->closed()) upstream_->readDisable(false);
  }

  // Upstream -> client.
  void onUpstreamData(Buffer& data, bool end_stream) {
    touch();
    callbacks_->worker().stats->add(cluster_->stats().bytes_received, static_cast<int64_t>(data.length()));
    if (downstream_closed_) {
      data.clear();
      return;
    }
    callbacks_->writeDownstream(data, end_stream);
  }

  void onUpstreamEvent(ConnectionEvent event) {
    auto& w = callbacks_->worker();
    switch (event) {
      case ConnectionEvent::kConnected:
        cluster_->reportResult(*host_, core::upstream::UpstreamResult::kSuccess);
        // Plain TCP both ways: from here the bytes move socket to socket through kernel
        // pipes (splice), never copied into Ferry. Bytes already read keep their order.
        if (s_->splice && !downstream_closed_) {
          auto down = callbacks_->connection().shared_from_this();
          if (down->spliceTo(upstream_)) upstream_->spliceTo(down);
        }
        if (read_held_) {
          read_held_ = false;
          callbacks_->connection().readDisable(false);
        }
        return;
      case ConnectionEvent::kConnectFailed:
        w.stats->inc(cluster_->stats().connect_failures);
        w.stats->inc(host_->stats.connect_failures);
        cluster_->countError(*w.stats, *host_, core::upstream::UpstreamError::kConnectFailure);
        cluster_->reportResult(*host_, core::upstream::UpstreamResult::kLocalOriginFailure);
        FERRY_LOG(kDebug, "tcp_proxy: upstream ", host_->address, " of cluster ", cluster_->name(), ": ",
                  upstream_->closeReason());
        releaseHost();
        if (!downstream_closed_) callbacks_->connection().close(Connection::CloseType::kNoFlush);
        return;
      case ConnectionEvent::kRemoteClose:
      case ConnectionEvent::kLocalClose:
        releaseHost();
        // Send the client what the upstream already gave us, then close.
        if (!downstream_closed_) callbacks_->connection().close(Connection::CloseType::kFlushWrite);
        return;
    }
  }
  void onUpstreamAboveWriteHighWatermark() {
    if (!downstream_closed_) callbacks_->connection().readDisable(true);
  }
  void onUpstreamBelowWriteLowWatermark() {
    if (!downstream_closed_) callbacks_->connection().readDisable(false);
  }

 private:
  // The upstream connection's callbacks, forwarded to the filter.
  struct UpstreamCallbacks : core::net::ConnectionCallbacks {
    explicit UpstreamCallbacks(TcpProxy& p) : parent(p) {}
    void onData(Buffer& data, bool end_stream) override { parent.onUpstreamData(data, end_stream); }
    void onEvent(ConnectionEvent e) override { parent.onUpstreamEvent(e); }
    void onAboveWriteHighWatermark() override { parent.onUpstreamAboveWriteHighWatermark(); }
    void onBelowWriteLowWatermark() override { parent.onUpstreamBelowWriteLowWatermark(); }
    void onSpliced(size_t bytes) override { parent.onUpstreamSpliced(bytes); }
    TcpProxy& parent;
  };

  void touch() { last_activity_ = core::monotonicMs(); }

  // One timer per connection, re-armed only when it fires: activity just moves a stamp.
  void onIdleTimer() {
    int64_t idle_for = core::monotonicMs() - last_activity_;
    if (idle_for >= s_->idle_timeout.count()) {
      FERRY_LOG(kDebug, "tcp_proxy: idle timeout, closing");
      if (upstream_ && !upstream_->closed()) upstream_->close(Connection::CloseType::kNoFlush);
      if (!downstream_closed_) callbacks_->connection().close(Connection::CloseType::kNoFlush);
      return;
    }
    idle_timer_->enable(std::chrono::milliseconds(s_->idle_timeout.count() - idle_for));
  }

  void releaseHost() {
    if (!host_counted_) return;
    host_counted_ = false;
    auto& w = callbacks_->worker();
    w.stats->dec(cluster_->stats().cx_active);
    w.stats->dec(host_->stats.cx_active);
    w.stats->dec(host_->stats.rq_active);
    if (cluster_->lbPolicy() == config::LbPolicy::kLeastRequest)
      host_->rq_active.fetch_sub(1, std::memory_order_relaxed);
    cluster_->releaseConnection();
  }

  std::shared_ptr<const TcpProxySettings> s_;
  const core::upstream::Cluster* cluster_ = nullptr;  // picked at onNewConnection (s_ keeps it)
  UpstreamCallbacks upstream_cb_;
  core::upstream::HostPtr host_ptr_;  // keeps a host DNS removed alive
  const core::upstream::Host* host_ = nullptr;
  std::shared_ptr<Connection> upstream_;
  std::unique_ptr<core::Timer> idle_timer_;
  int64_t last_activity_ = 0;
  bool read_held_ = false;
  bool downstream_closed_ = false;
  bool host_counted_ = false;
};

}  // namespace

Registry::NetworkBuilder tcpProxyBuilder() {
  return [](const BuildContext& ctx, std::string* error) -> core::net::NetworkFilterFactory {
    const auto& listener = ctx.listener;
    const auto& tcp = *listener.tcp;
    auto s = std::make_shared<TcpProxySettings>();
    auto resolve = [&](const std::string& name) {
      auto c = ctx.clusters(name);
      if (!c) *error = "listener '" + listener.name + "': unknown cluster '" + name + "'";
      return c;
    };
    if (!tcp.cluster.empty() && !(s->cluster = resolve(tcp.cluster))) return {};
    for (const auto& r : tcp.sni_routes) {
      auto c = resolve(r.cluster);
      if (!c) return {};
      for (const auto& n : r.server_names) {
        if (n.rfind("*.", 0) == 0)
          s->wildcard.emplace_back(n.substr(2), c);
        else
          s->exact.emplace_back(n, c);
      }
    }
    auto byName = [](const auto& a, const auto& b) { return a.first < b.first; };
    std::sort(s->exact.begin(), s->exact.end(), byName);
    std::sort(s->wildcard.begin(), s->wildcard.end(), byName);
    if (!tcp.sni_routes.empty())
      s->sni_unmatched = ctx.stats.counter("ferry_tcp_sni_unmatched_total", {{"listener", listener.name}},
                                           "Connections closed because no sni_route matched their server name.");
    s->idle_timeout = tcp.idle_timeout;
    s->splice = tcp.splice;
    s->spliced_bytes = ctx.stats.counter("ferry_tcp_spliced_bytes_total", {{"listener", listener.name}},
                                         "Bytes the TCP proxy forwarded with splice(2), both directions.");
    s->buffer_limit = listener.buffer_limit_kb * 1024;
    std::shared_ptr<const TcpProxySettings> cs = s;
    return [cs]() -> std::unique_ptr<NetworkFilter> { return std::make_unique<TcpProxy>(cs); };
  };
}

}  // namespace ferry::filters::network
