#include "core/net/listener.h"

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

#include "core/event/timer.h"
#include "core/log.h"
#include "core/net/proxy_protocol.h"
#include "core/net/socket_util.h"

namespace ferry::core::net {
namespace asio = boost::asio;

ListenerState::ListenerState(std::string n, StatsStore& stats) : name(std::move(n)) {
  const std::vector<std::pair<std::string, std::string>> labels = {{"listener", name}};
  this->stats.cx_total =
      stats.counter("ferry_downstream_connections_total", labels, "Downstream connections accepted.");
  this->stats.cx_active = stats.gauge("ferry_downstream_connections_active", labels, "Open downstream connections.");
  this->stats.cx_overflow = stats.counter("ferry_downstream_connections_overflow_total", labels,
                                          "Connections refused by max_connections.");
  this->stats.proxy_protocol_errors = stats.counter("ferry_downstream_proxy_protocol_errors_total", labels,
                                                    "Connections closed for a missing or bad PROXY header.");
  this->stats.bytes_received =
      stats.counter("ferry_downstream_bytes_received_total", labels, "Bytes received from clients.");
  this->stats.bytes_sent = stats.counter("ferry_downstream_bytes_sent_total", labels, "Bytes sent to clients.");
}

// One downstream connection: the listener filter stage (PROXY protocol) and then the
// network filter chain. Worker-local. Owned by its ActiveListener; holds its listener's spec
// (and through it the process-wide ListenerState) for as long as it lives.
class ActiveConnection : public ConnectionCallbacks, public NetworkFilterCallbacks {
 public:
  ActiveConnection(ActiveListener& listener, WorkerContext& ctx, std::shared_ptr<const ListenerSpec> spec,
                   std::shared_ptr<Connection> conn, const ConnectionInfo& ci)
      : listener_(listener), ctx_(ctx), spec_(std::move(spec)), cfg_(spec_->cfg), stats_(spec_->state->stats),
        conn_(std::move(conn)), ci_(ci) {}

  ~ActiveConnection() override {
    filters_.clear();  // filters close their upstreams first
    if (conn_) {
      conn_->setCallbacks(nullptr);
      conn_->close(Connection::CloseType::kNoFlush);
    }
  }

  std::list<std::unique_ptr<ActiveConnection>>::iterator self_;

  void start() {
    conn_->setCallbacks(this);
    conn_->setWriteBufferLimits(cfg_.buffer_limit_kb * 1024);
    if (cfg_.proxy_protocol) {
      awaiting_proxy_header_ = true;
      pp_timer_ = std::make_unique<Timer>(*ctx_.io, [this] {
        FERRY_LOG(kDebug, "listener ", cfg_.name, ": no PROXY header in time from ",
                  formatSockaddr(ci_.direct_remote));
        ctx_.stats->inc(stats_.proxy_protocol_errors);
        conn_->close(Connection::CloseType::kNoFlush);
      });
      if (cfg_.proxy_protocol_timeout.count() > 0) pp_timer_->enable(cfg_.proxy_protocol_timeout);
      conn_->startReading();
      return;
    }
    startFilters();
    if (!conn_->closed()) conn_->startReading();
  }

  // ConnectionCallbacks (downstream socket).
  void onData(Buffer& data, bool end_stream) override {
    if (awaiting_proxy_header_) {
      if (!parseProxyHeader(data, end_stream)) return;
      if (data.empty() && !end_stream) return;
    }
    ctx_.stats->add(stats_.bytes_received, static_cast<int64_t>(data.length()));
    for (auto& f : filters_) {
      if (f->onData(data, end_stream) == FilterStatus::kStopIteration) break;
    }
  }

  void onEvent(ConnectionEvent event) override {
    if (event != ConnectionEvent::kRemoteClose && event != ConnectionEvent::kLocalClose) return;
    pp_timer_.reset();
    for (auto& f : filters_) f->onDownstreamEvent(event);
    listener_.removeConnection(this);
  }

  void onAboveWriteHighWatermark() override {
    for (auto& f : filters_) f->onDownstreamAboveWriteHighWatermark();
  }
  void onBelowWriteLowWatermark() override {
    for (auto& f : filters_) f->onDownstreamBelowWriteLowWatermark();
  }

  // NetworkFilterCallbacks.
  Connection& connection() override { return *conn_; }
  const ConnectionInfo& info() const override { return ci_; }
  WorkerContext& worker() override { return ctx_; }
  void writeDownstream(Buffer& data, bool end_stream) override {
    for (auto it = filters_.rbegin(); it != filters_.rend(); ++it) {
      if ((*it)->onWrite(data, end_stream) == FilterStatus::kStopIteration) return;
    }
    ctx_.stats->add(stats_.bytes_sent, static_cast<int64_t>(data.length()));
    conn_->write(data, end_stream);
  }

  void close() { conn_->close(Connection::CloseType::kNoFlush); }

 private:
  // Returns true once the header is parsed (data then holds what follows it).
  bool parseProxyHeader(Buffer& data, bool end_stream) {
    constexpr size_t kMaxHeader = 4096;
    uint8_t head[kMaxHeader];
    size_t n = std::min(data.length(), kMaxHeader);
    data.copyOut(0, n, head);
    ProxyHeader hdr;
    size_t consumed = 0;
    std::string why;
    ProxyParse r = ferry::core::net::parseProxyHeader(head, n, &hdr, &consumed, &why);
    if (r == ProxyParse::kNeedMore && (n == kMaxHeader || end_stream)) {
      r = ProxyParse::kError;
      why = end_stream ? "connection closed inside the header" : "header too long";
    }
    if (r == ProxyParse::kNeedMore) return false;
    if (r == ProxyParse::kError) {
      FERRY_LOG(kDebug, "listener ", cfg_.name, ": bad PROXY header from ",
                formatSockaddr(ci_.direct_remote), ": ", why);
      ctx_.stats->inc(stats_.proxy_protocol_errors);
      data.clear();
      conn_->close(Connection::CloseType::kNoFlush);
      return false;
    }
    data.drain(consumed);
    awaiting_proxy_header_ = false;
    pp_timer_.reset();
    if (!hdr.local) {
      ci_.remote = hdr.src;
      ci_.local = hdr.dst;
      ci_.from_proxy_protocol = true;
    }
    startFilters();
    return !conn_->closed();
  }

  void startFilters() {
    filters_.reserve(spec_->filter_factories.size());
    for (const auto& make : spec_->filter_factories) {
      filters_.push_back(make());
      filters_.back()->initialize(*this);
    }
    for (auto& f : filters_) {
      if (f->onNewConnection() == FilterStatus::kStopIteration) break;
    }
  }

  ActiveListener& listener_;
  WorkerContext& ctx_;
  std::shared_ptr<const ListenerSpec> spec_;
  const config::ListenerConfig& cfg_;
  const ListenerStats& stats_;
  std::shared_ptr<Connection> conn_;
  ConnectionInfo ci_;
  std::vector<std::unique_ptr<NetworkFilter>> filters_;
  std::unique_ptr<Timer> pp_timer_;
  bool awaiting_proxy_header_ = false;
};

ActiveListener::ActiveListener(WorkerContext& ctx, std::shared_ptr<const ListenerSpec> spec, int fd)
    : ctx_(ctx),
      spec_(std::move(spec)),
      poller_(Poller::of(*ctx.io)),
      lfd_(fd),
      retry_timer_(*ctx.io, [this] { onAcceptable(); }),
      graveyard_(*ctx.io) {
  registered_ = poller_.add(lfd_, this);
  if (!registered_) FERRY_LOG(kError, "listener ", spec_->state->name, ": cannot watch the socket: ", std::strerror(errno));
}

ActiveListener::~ActiveListener() {
  *alive_ = false;
  stopAccepting();
  closeAll();
}

void ActiveListener::start() {
  accepting_ = true;
  onAcceptable();  // connections may already be queued
}

void ActiveListener::stopAccepting() {
  accepting_ = false;
  retry_timer_.disable();
  if (lfd_ < 0) return;
  if (registered_) poller_.remove(lfd_, this);
  registered_ = false;
  ::close(lfd_);
  lfd_ = -1;
}

void ActiveListener::closeAll() {
  // Closing raises events that move connections to the graveyard; take them out first.
  std::vector<ActiveConnection*> open;
  for (auto& c : connections_) open.push_back(c.get());
  for (auto* c : open) c->close();
}

void ActiveListener::onPollEvents(uint32_t) { onAcceptable(); }

void ActiveListener::onAcceptable() {
  if (!accepting_ || lfd_ < 0) return;
  // Accept everything queued (edge-triggered readiness: the next edge comes with the next
  // connection), up to a batch, then yield to the connections.
  for (int i = 0; i < 64; ++i) {
    int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      accepted(fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    // EMFILE/ENFILE/ENOBUFS and the like: the queued connections raise no new edge, so
    // look again shortly rather than wait for another connection to arrive.
    FERRY_LOG(kWarn, "listener ", spec_->state->name, ": accept: ", std::strerror(errno));
    retry_timer_.enable(std::chrono::milliseconds(100));
    return;
  }
  asio::post(*ctx_.io, [this, alive = alive_] {
    if (*alive) onAcceptable();
  });
}

void ActiveListener::accepted(int fd) {
  auto& stats = *ctx_.stats;
  ListenerState& state = *spec_->state;
  // Limits: process-wide counters (relaxed atomics, shared by workers by design).
  int64_t global = spec_->process->active.fetch_add(1, std::memory_order_relaxed) + 1;
  int64_t mine = state.active.fetch_add(1, std::memory_order_relaxed) + 1;
  bool over = (spec_->process_max_connections > 0 && global > static_cast<int64_t>(spec_->process_max_connections)) ||
              (spec_->cfg.max_connections > 0 && mine > static_cast<int64_t>(spec_->cfg.max_connections));
  if (over) {
    spec_->process->active.fetch_sub(1, std::memory_order_relaxed);
    state.active.fetch_sub(1, std::memory_order_relaxed);
    stats.inc(state.stats.cx_overflow);
    FERRY_LOG(kDebug, "listener ", spec_->state->name, ": connection limit reached, closing new connection");
    ::close(fd);
    return;
  }
  stats.inc(state.stats.cx_total);
  stats.inc(state.stats.cx_active);

  ConnectionInfo ci;
  peerAddress(fd, &ci.direct_remote);
  localAddress(fd, &ci.local);
  ci.remote = ci.direct_remote;
  auto conn = Connection::adopt(*ctx_.io, fd, ctx_.acct);
  auto ac = std::make_unique<ActiveConnection>(*this, ctx_, spec_, std::move(conn), ci);
  ActiveConnection* raw = ac.get();
  connections_.push_front(std::move(ac));
  raw->self_ = connections_.begin();
  raw->start();
}

void ActiveListener::removeConnection(ActiveConnection* conn) {
  auto it = conn->self_;
  if (it == connections_.end() || it->get() != conn) return;
  std::unique_ptr<ActiveConnection> dying = std::move(*it);
  connections_.erase(it);
  dying->self_ = connections_.end();
  ctx_.stats->dec(spec_->state->stats.cx_active);
  spec_->process->active.fetch_sub(1, std::memory_order_relaxed);
  spec_->state->active.fetch_sub(1, std::memory_order_relaxed);
  graveyard_.add(std::move(dying));
}

}  // namespace ferry::core::net
