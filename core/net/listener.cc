#include "core/net/listener.h"

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

#include "core/event/timer.h"
#include "core/log.h"
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
  this->stats.cx_per_ip_overflow =
      stats.counter("ferry_downstream_connections_per_ip_overflow_total", labels,
                    "Connections refused by max_connections_per_ip.");
  this->stats.proxy_protocol_errors = stats.counter("ferry_downstream_proxy_protocol_errors_total", labels,
                                                    "Connections closed for a missing or bad PROXY header.");
  this->stats.bytes_received =
      stats.counter("ferry_downstream_bytes_received_total", labels, "Bytes received from clients.");
  this->stats.bytes_sent = stats.counter("ferry_downstream_bytes_sent_total", labels, "Bytes sent to clients.");
}

// One downstream connection, in three stages: listener filters on the raw socket (PROXY
// protocol), the transport's handshake, then the network filter chain. Worker-local. Owned by
// its ActiveListener; holds its listener's spec (and through it the process-wide
// ListenerState) for as long as it lives.
class ActiveConnection : public ConnectionCallbacks, public NetworkFilterCallbacks {
 public:
  ActiveConnection(ActiveListener& listener, WorkerContext& ctx, std::shared_ptr<const ListenerSpec> spec,
                   std::shared_ptr<Connection> conn, const ConnectionInfo& ci)
      : listener_(listener), ctx_(ctx), spec_(std::move(spec)), stats_(spec_->state->stats),
        conn_(std::move(conn)), ci_(ci) {}

  ~ActiveConnection() override {
    filters_.clear();  // filters close their upstreams first
    if (conn_) {
      conn_->setCallbacks(nullptr);
      conn_->close(Connection::CloseType::kNoFlush);
    }
  }

  std::list<std::unique_ptr<ActiveConnection>>::iterator self_;
  uint32_t per_ip_slot_ = PerIpConnections::kNoSlot;  // counted in spec().per_ip

  void start() {
    conn_->setCallbacks(this);
    conn_->setWriteBufferLimits(spec_->cfg.buffer_limit_kb * 1024);
    if (!spec_->listener_filters.empty()) {
      stage_ = Stage::kListenerFilters;
      for (const auto& f : spec_->listener_filters) listener_filters_.push_back(f.make());
      if (spec_->listener_filter_timeout.count() > 0) {
        lf_timer_ = std::make_unique<Timer>(*ctx_.io, [this] { onListenerFilterTimeout(); });
        lf_timer_->enable(spec_->listener_filter_timeout);
      }
      conn_->startReading();
      return;
    }
    Buffer none;
    startTransport(none);
  }

  // ConnectionCallbacks (downstream socket).
  void onData(Buffer& data, bool end_stream) override {
    if (stage_ == Stage::kListenerFilters) {
      runListenerFilters(data, end_stream);
      return;
    }
    if (stage_ != Stage::kFilters) {  // the transport is still shaking hands
      data.clear();
      if (end_stream) conn_->close(Connection::CloseType::kNoFlush);
      return;
    }
    ctx_.stats->add(stats_.bytes_received, static_cast<int64_t>(data.length()));
    for (auto& f : filters_) {
      if (f->onData(data, end_stream) == FilterStatus::kStopIteration) break;
    }
  }

  void onEvent(ConnectionEvent event) override {
    if (event == ConnectionEvent::kConnected) {  // the transport's handshake is done
      if (stage_ == Stage::kHandshake) startFilters();
      return;
    }
    if (event != ConnectionEvent::kRemoteClose && event != ConnectionEvent::kLocalClose) return;
    lf_timer_.reset();
    for (auto& f : filters_) f->onDownstreamEvent(event);
    listener_.removeConnection(this);
  }

  void onSpliced(size_t bytes) override {
    ctx_.stats->add(stats_.bytes_received, static_cast<int64_t>(bytes));
    for (auto& f : filters_) f->onDownstreamSpliced(bytes);
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

  void countSplicedToDownstream(size_t bytes) override {
    ctx_.stats->add(stats_.bytes_sent, static_cast<int64_t>(bytes));
  }

  bool draining() const override { return draining_ || (ctx_.draining != nullptr && *ctx_.draining); }
  void close() { conn_->close(Connection::CloseType::kNoFlush); }
  // The drain notice; `deadline_ms` (monotonic; 0 = none): closed by the listener after it.
  void drain(int64_t deadline_ms) {
    if (deadline_ms > 0 && (drain_deadline_ms_ == 0 || deadline_ms < drain_deadline_ms_))
      drain_deadline_ms_ = deadline_ms;
    if (draining_) return;
    draining_ = true;
    if (stage_ != Stage::kFilters) return;  // the chain is not up yet: its first response closes
    // A filter may close the connection from here: that removes it only later (graveyard).
    for (size_t i = 0; i < filters_.size() && !conn_->closed(); ++i) filters_[i]->onDrain();
  }
  int64_t drainDeadline() const { return drain_deadline_ms_; }
  const ListenerSpec& spec() const { return *spec_; }

 private:
  enum class Stage { kListenerFilters, kHandshake, kFilters };

  ListenerFilterContext listenerFilterContext() { return ListenerFilterContext{ci_, ctx_, *spec_->state}; }

  void runListenerFilters(Buffer& data, bool end_stream) {
    read_ahead_.move(data);
    ListenerFilterContext lctx = listenerFilterContext();
    while (next_listener_filter_ < listener_filters_.size()) {
      switch (listener_filters_[next_listener_filter_]->onData(read_ahead_, end_stream, lctx)) {
        case ListenerFilterStatus::kNeedMore:
          if (end_stream) conn_->close(Connection::CloseType::kNoFlush);  // no more will come
          return;
        case ListenerFilterStatus::kClose:
          conn_->close(Connection::CloseType::kNoFlush);
          return;
        case ListenerFilterStatus::kContinue:
          ++next_listener_filter_;
          break;
      }
    }
    lf_timer_.reset();
    // What the filters did not consume is the first raw input of the transport.
    startTransport(read_ahead_);
  }

  void onListenerFilterTimeout() {
    ListenerFilterContext lctx = listenerFilterContext();
    if (next_listener_filter_ < listener_filters_.size())
      listener_filters_[next_listener_filter_]->onTimeout(lctx);
    conn_->close(Connection::CloseType::kNoFlush);
  }

  void startTransport(Buffer& read_ahead) {
    stage_ = Stage::kHandshake;
    conn_->setTransport(spec_->transport ? spec_->transport() : makePlainTransport(), read_ahead);
    if (conn_->closed()) return;
    if (conn_->transportReady()) {
      startFilters();
    } else if (spec_->handshake_timeout.count() > 0) {
      lf_timer_ = std::make_unique<Timer>(*ctx_.io, [this] {
        if (stage_ != Stage::kHandshake) return;
        FERRY_LOG(kDebug, "listener ", spec_->state->name, ": ", std::string(conn_->transport()->name()),
                  " handshake timed out");
        conn_->transport()->onHandshakeTimeout();
        conn_->close(Connection::CloseType::kNoFlush);
      });
      lf_timer_->enable(spec_->handshake_timeout);
    }
    if (!conn_->closed()) conn_->startReading();  // a no-op if listener filters started it
  }

  void startFilters() {
    stage_ = Stage::kFilters;
    lf_timer_.reset();
    ci_.tls = conn_->transport() ? conn_->transport()->tlsInfo() : nullptr;
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
  const ListenerStats& stats_;
  std::shared_ptr<Connection> conn_;
  ConnectionInfo ci_;
  Stage stage_ = Stage::kFilters;
  std::vector<std::unique_ptr<ListenerFilter>> listener_filters_;
  size_t next_listener_filter_ = 0;
  Buffer read_ahead_;  // raw bytes the listener filters have seen and not consumed
  std::unique_ptr<Timer> lf_timer_;
  std::vector<std::unique_ptr<NetworkFilter>> filters_;
  bool draining_ = false;
  int64_t drain_deadline_ms_ = 0;
};

ActiveListener::ActiveListener(WorkerContext& ctx, std::shared_ptr<const ListenerSpec> spec, int fd)
    : ctx_(ctx),
      spec_(std::move(spec)),
      poller_(Poller::of(*ctx.io)),
      lfd_(fd),
      retry_timer_(*ctx.io, [this] { onAcceptable(); }),
      graveyard_(*ctx.io),
      drain_timer_(*ctx.io, [this] { onDrainTimer(); }) {
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
  checkEmpty();
}

void ActiveListener::setSpec(std::shared_ptr<const ListenerSpec> spec) { spec_ = std::move(spec); }

void ActiveListener::drainConnections(std::chrono::milliseconds timeout) {
  const int64_t deadline = timeout.count() > 0 ? monotonicMs() + timeout.count() : 0;
  std::vector<ActiveConnection*> open;
  for (auto& c : connections_) open.push_back(c.get());
  for (auto* c : open) c->drain(deadline);  // may close some: they leave through the graveyard
  if (deadline > 0) onDrainTimer();
}

void ActiveListener::onDrainTimer() {
  const int64_t now = monotonicMs();
  int64_t next = 0;
  std::vector<ActiveConnection*> expired;
  for (auto& c : connections_) {
    const int64_t d = c->drainDeadline();
    if (d == 0) continue;
    if (d <= now) {
      expired.push_back(c.get());
    } else if (next == 0 || d < next) {
      next = d;
    }
  }
  if (!expired.empty())
    FERRY_LOG(kInfo, "listener ", spec_->state->name, ": drain timeout: closing ", expired.size(), " connection",
              expired.size() == 1 ? "" : "s");
  for (auto* c : expired) c->close();
  if (next > 0) drain_timer_.enable(std::chrono::milliseconds(next - now));
}

void ActiveListener::onEmpty(std::function<void()> cb) {
  on_empty_ = std::move(cb);
  checkEmpty();
}

void ActiveListener::checkEmpty() {
  if (!on_empty_ || lfd_ >= 0 || !connections_.empty()) return;
  asio::post(*ctx_.io, [this, alive = alive_] {
    if (*alive && on_empty_ && lfd_ < 0 && connections_.empty()) {
      auto cb = std::move(on_empty_);
      on_empty_ = nullptr;
      cb();  // may destroy this listener
    }
  });
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
  ConnectionInfo ci;
  peerAddress(fd, &ci.direct_remote);
  // Per client IP: the socket's peer (decided at accept, before any PROXY header is read).
  uint32_t per_ip_slot = PerIpConnections::kNoSlot;
  if (spec_->per_ip && spec_->cfg.max_connections_per_ip > 0) {
    if (uint64_t k = PerIpConnections::key(ci.direct_remote); k != 0) {
      per_ip_slot = spec_->per_ip->acquire(k, spec_->cfg.max_connections_per_ip);
      if (per_ip_slot == PerIpConnections::kOver) {
        spec_->process->active.fetch_sub(1, std::memory_order_relaxed);
        state.active.fetch_sub(1, std::memory_order_relaxed);
        stats.inc(state.stats.cx_per_ip_overflow);
        FERRY_LOG(kDebug, "listener ", spec_->state->name, ": per-IP connection limit reached, closing new connection");
        ::close(fd);
        return;
      }
    }
  }
  stats.inc(state.stats.cx_total);
  stats.inc(state.stats.cx_active);

  localAddress(fd, &ci.local);
  ci.remote = ci.direct_remote;
  auto conn = Connection::adopt(*ctx_.io, fd, ctx_.acct);
  auto ac = std::make_unique<ActiveConnection>(*this, ctx_, spec_, std::move(conn), ci);
  ActiveConnection* raw = ac.get();
  raw->per_ip_slot_ = per_ip_slot;
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
  // The counts the connection's own spec raised (the listener's may be newer).
  const ListenerSpec& spec = dying->spec();
  ctx_.stats->dec(spec.state->stats.cx_active);
  spec.process->active.fetch_sub(1, std::memory_order_relaxed);
  spec.state->active.fetch_sub(1, std::memory_order_relaxed);
  if (spec.per_ip) spec.per_ip->release(dying->per_ip_slot_);
  graveyard_.add(std::move(dying));
  checkEmpty();
}

}  // namespace ferry::core::net
