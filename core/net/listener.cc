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
//
// Kept small (an open connection is mostly an idle one): what only the listener-filter and
// handshake stages need (and a drain deadline) is a Startup made for them and dropped once the
// filter chain runs (kept only for a deadline);
// the filter chain holds its one usual filter inline; the listener links its connections
// through the connections themselves.
class ActiveConnection : public ConnectionCallbacks, public NetworkFilterCallbacks {
  enum class Stage : uint8_t { kListenerFilters, kHandshake, kFilters };

 public:
  ActiveConnection(ActiveListener& listener, std::shared_ptr<const ListenerSpec> spec,
                   std::shared_ptr<Connection> conn, const ConnectionInfo& ci)
      : listener_(listener), spec_(std::move(spec)), conn_(std::move(conn)), ci_(ci) {}

  ~ActiveConnection() override {
    filters_.clear();  // filters close their upstreams first
    if (conn_) {
      conn_->setCallbacks(nullptr);
      conn_->close(Connection::CloseType::kNoFlush);
    }
  }

  // The listener's list of open connections (intrusive).
  ActiveConnection* prev_ = nullptr;
  ActiveConnection* next_ = nullptr;
  bool listed_ = false;

 private:
  Stage stage_ = Stage::kFilters;  // (small members together: no padding between them)
  bool draining_ = false;

 public:
  uint32_t per_ip_slot_ = PerIpConnections::kNoSlot;  // counted in spec().per_ip

  void start() {
    conn_->setCallbacks(this);
    conn_->setWriteBufferLimits(spec_->cfg.buffer_limit_kb * 1024);
    if (!spec_->listener_filters.empty()) {
      stage_ = Stage::kListenerFilters;
      Startup& st = startup();
      for (const auto& f : spec_->listener_filters) st.listener_filters.push_back(f.make());
      if (spec_->listener_filter_timeout.count() > 0) {
        st.timer = std::make_unique<Timer>(ctx().timers(), [this] { onListenerFilterTimeout(); });
        st.timer->enable(spec_->listener_filter_timeout);
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
    ctx().stats->add(stats().bytes_received, static_cast<int64_t>(data.length()));
    for (size_t i = 0; i < filters_.size(); ++i) {
      if (filters_[i]->onData(data, end_stream) == FilterStatus::kStopIteration) break;
    }
  }

  void onEvent(ConnectionEvent event) override {
    if (event == ConnectionEvent::kConnected) {  // the transport's handshake is done
      if (stage_ == Stage::kHandshake) startFilters();
      return;
    }
    if (event != ConnectionEvent::kRemoteClose && event != ConnectionEvent::kLocalClose) return;
    if (startup_) startup_->timer.reset();
    for (size_t i = 0; i < filters_.size(); ++i) filters_[i]->onDownstreamEvent(event);
    listener_.removeConnection(this);
  }

  void onSpliced(size_t bytes) override {
    ctx().stats->add(stats().bytes_received, static_cast<int64_t>(bytes));
    for (size_t i = 0; i < filters_.size(); ++i) filters_[i]->onDownstreamSpliced(bytes);
  }

  void onAboveWriteHighWatermark() override {
    for (size_t i = 0; i < filters_.size(); ++i) filters_[i]->onDownstreamAboveWriteHighWatermark();
  }
  void onBelowWriteLowWatermark() override {
    for (size_t i = 0; i < filters_.size(); ++i) filters_[i]->onDownstreamBelowWriteLowWatermark();
  }

  // NetworkFilterCallbacks.
  Connection& connection() override { return *conn_; }
  const ConnectionInfo& info() const override { return ci_; }
  WorkerContext& worker() override { return ctx(); }
  void writeDownstream(Buffer& data, bool end_stream) override {
    for (size_t i = filters_.size(); i > 0; --i) {
      if (filters_[i - 1]->onWrite(data, end_stream) == FilterStatus::kStopIteration) return;
    }
    ctx().stats->add(stats().bytes_sent, static_cast<int64_t>(data.length()));
    conn_->write(data, end_stream);
  }

  void countSplicedToDownstream(size_t bytes) override {
    ctx().stats->add(stats().bytes_sent, static_cast<int64_t>(bytes));
  }

  bool draining() const override {
    const WorkerContext& w = listener_.context();
    return draining_ || (w.draining != nullptr && *w.draining);
  }
  void close() { conn_->close(Connection::CloseType::kNoFlush); }
  // The drain notice; `deadline_ms` (monotonic; 0 = none): closed by the listener after it.
  void drain(int64_t deadline_ms) {
    if (deadline_ms > 0 && (drainDeadline() == 0 || deadline_ms < drainDeadline()))
      startup().drain_deadline_ms = deadline_ms;
    if (draining_) return;
    draining_ = true;
    if (stage_ != Stage::kFilters) return;  // the chain is not up yet: its first response closes
    // A filter may close the connection from here: that removes it only later (graveyard).
    for (size_t i = 0; i < filters_.size() && !conn_->closed(); ++i) filters_[i]->onDrain();
  }
  int64_t drainDeadline() const { return startup_ ? startup_->drain_deadline_ms : 0; }
  const ListenerSpec& spec() const { return *spec_; }

 private:
  // The listener-filter and handshake stages' state.
  struct Startup {
    std::vector<std::unique_ptr<ListenerFilter>> listener_filters;
    size_t next_listener_filter = 0;
    Buffer read_ahead;  // raw bytes the listener filters have seen and not consumed
    std::unique_ptr<Timer> timer;  // listener_filter_timeout, then the handshake timeout
    int64_t drain_deadline_ms = 0;  // drain(): closed by the listener after it (0 = none)
  };
  Startup& startup() {
    if (!startup_) startup_ = std::make_unique<Startup>();
    return *startup_;
  }

  // The network filters, the first (usually the only one) inline.
  class Filters {
   public:
    size_t size() const { return (first_ ? 1 : 0) + (more_ ? more_->size() : 0); }
    NetworkFilter* operator[](size_t i) const { return i == 0 ? first_.get() : (*more_)[i - 1].get(); }
    void push_back(std::unique_ptr<NetworkFilter> f) {
      if (!first_) {
        first_ = std::move(f);
        return;
      }
      if (!more_) more_ = std::make_unique<std::vector<std::unique_ptr<NetworkFilter>>>();
      more_->push_back(std::move(f));
    }
    void reserve(size_t n) {
      if (n > 1) {
        if (!more_) more_ = std::make_unique<std::vector<std::unique_ptr<NetworkFilter>>>();
        more_->reserve(n - 1);
      }
    }
    // In chain order, as a vector's clear() does.
    void clear() {
      first_.reset();
      more_.reset();
    }

   private:
    std::unique_ptr<NetworkFilter> first_;
    std::unique_ptr<std::vector<std::unique_ptr<NetworkFilter>>> more_;
  };

  WorkerContext& ctx() const { return listener_.context(); }
  const ListenerStats& stats() const { return spec_->state->stats; }

  ListenerFilterContext listenerFilterContext() { return ListenerFilterContext{ci_, ctx(), *spec_->state}; }

  void runListenerFilters(Buffer& data, bool end_stream) {
    Startup& st = startup();
    st.read_ahead.move(data);
    ListenerFilterContext lctx = listenerFilterContext();
    while (st.next_listener_filter < st.listener_filters.size()) {
      switch (st.listener_filters[st.next_listener_filter]->onData(st.read_ahead, end_stream, lctx)) {
        case ListenerFilterStatus::kNeedMore:
          if (end_stream) conn_->close(Connection::CloseType::kNoFlush);  // no more will come
          return;
        case ListenerFilterStatus::kClose:
          conn_->close(Connection::CloseType::kNoFlush);
          return;
        case ListenerFilterStatus::kContinue:
          ++st.next_listener_filter;
          break;
      }
    }
    st.timer.reset();
    // What the filters did not consume is the first raw input of the transport.
    startTransport(st.read_ahead);
  }

  void onListenerFilterTimeout() {
    ListenerFilterContext lctx = listenerFilterContext();
    Startup& st = startup();
    if (st.next_listener_filter < st.listener_filters.size())
      st.listener_filters[st.next_listener_filter]->onTimeout(lctx);
    conn_->close(Connection::CloseType::kNoFlush);
  }

  void startTransport(Buffer& read_ahead) {
    stage_ = Stage::kHandshake;
    conn_->setTransport(spec_->transport ? spec_->transport() : makePlainTransport(), read_ahead);
    if (conn_->closed()) return;
    if (conn_->transportReady()) {
      startFilters();
    } else if (spec_->handshake_timeout.count() > 0) {
      Startup& st = startup();
      st.timer = std::make_unique<Timer>(ctx().timers(), [this] {
        if (stage_ != Stage::kHandshake) return;
        FERRY_LOG(kDebug, "listener ", spec_->state->name, ": ", std::string(conn_->transport()->name()),
                  " handshake timed out");
        conn_->transport()->onHandshakeTimeout();
        conn_->close(Connection::CloseType::kNoFlush);
      });
      st.timer->enable(spec_->handshake_timeout);
    }
    if (!conn_->closed()) conn_->startReading();  // a no-op if listener filters started it
  }

  void startFilters() {
    stage_ = Stage::kFilters;
    // The listener filters and the read-ahead are done with.
    if (startup_ && startup_->drain_deadline_ms == 0) {
      startup_.reset();
    } else if (startup_) {
      startup_->listener_filters.clear();
      startup_->read_ahead.clear();
      startup_->timer.reset();
    }
    if (conn_->transport()) ci_.setTls(conn_->transport()->tlsInfo());
    filters_.reserve(spec_->filter_factories.size());
    for (const auto& make : spec_->filter_factories) {
      filters_.push_back(make());
      filters_[filters_.size() - 1]->initialize(*this);
    }
    for (size_t i = 0; i < filters_.size(); ++i) {
      if (filters_[i]->onNewConnection() == FilterStatus::kStopIteration) break;
    }
  }

  ActiveListener& listener_;
  std::shared_ptr<const ListenerSpec> spec_;
  std::shared_ptr<Connection> conn_;
  ConnectionInfo ci_;
  std::unique_ptr<Startup> startup_;  // only before the filter chain runs, or with a drain deadline
  Filters filters_;
};

// An idle plain HTTP/1.1 connection is this, its Connection and its HTTP connection manager:
// together at most 0.5 kB with malloc's headers (docs/performance.md, "Idle memory").
static_assert(sizeof(ActiveConnection) <= 168, "ActiveConnection grew: idle connections cost more");

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
  // Closing removed them all; anything still listed goes now.
  while (connections_ != nullptr) {
    ActiveConnection* c = connections_;
    connections_ = c->next_;
    c->listed_ = false;
    delete c;
  }
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
  for (ActiveConnection* c = connections_; c != nullptr; c = c->next_) open.push_back(c);
  for (auto* c : open) c->drain(deadline);  // may close some: they leave through the graveyard
  if (deadline > 0) onDrainTimer();
}

void ActiveListener::onDrainTimer() {
  const int64_t now = monotonicMs();
  int64_t next = 0;
  std::vector<ActiveConnection*> expired;
  for (ActiveConnection* c = connections_; c != nullptr; c = c->next_) {
    const int64_t d = c->drainDeadline();
    if (d == 0) continue;
    if (d <= now) {
      expired.push_back(c);
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
  if (!on_empty_ || lfd_ >= 0 || connections_ != nullptr) return;
  asio::post(*ctx_.io, [this, alive = alive_] {
    if (*alive && on_empty_ && lfd_ < 0 && connections_ == nullptr) {
      auto cb = std::move(on_empty_);
      on_empty_ = nullptr;
      cb();  // may destroy this listener
    }
  });
}

void ActiveListener::closeAll() {
  // Closing raises events that move connections to the graveyard; take them out first.
  std::vector<ActiveConnection*> open;
  for (ActiveConnection* c = connections_; c != nullptr; c = c->next_) open.push_back(c);
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
  sockaddr_storage addr{};
  peerAddress(fd, &addr);
  ci.remote = addr;
  // Per client IP: the socket's peer (decided at accept, before any PROXY header is read).
  uint32_t per_ip_slot = PerIpConnections::kNoSlot;
  if (spec_->per_ip && spec_->cfg.max_connections_per_ip > 0) {
    if (uint64_t k = PerIpConnections::key(addr); k != 0) {
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

  sockaddr_storage local{};
  localAddress(fd, &local);
  ci.local = local;
  auto conn = Connection::adopt(*ctx_.io, fd, ctx_.acct);
  auto* raw = new ActiveConnection(*this, spec_, std::move(conn), ci);  // owned by the list
  raw->per_ip_slot_ = per_ip_slot;
  raw->next_ = connections_;
  if (connections_ != nullptr) connections_->prev_ = raw;
  connections_ = raw;
  raw->listed_ = true;
  ++connection_count_;
  raw->start();
}

void ActiveListener::removeConnection(ActiveConnection* conn) {
  if (!conn->listed_) return;
  conn->listed_ = false;
  (conn->prev_ != nullptr ? conn->prev_->next_ : connections_) = conn->next_;
  if (conn->next_ != nullptr) conn->next_->prev_ = conn->prev_;
  conn->prev_ = conn->next_ = nullptr;
  --connection_count_;
  std::unique_ptr<ActiveConnection> dying(conn);
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
