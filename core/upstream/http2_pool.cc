// The HTTP/2 stream pool: many streams per connection, per host, per worker.
//
// - A request takes a stream on the busiest connection that still has room (streams per
//   connection: the server's SETTINGS_MAX_CONCURRENT_STREAMS and Ferry's own cap), so idle
//   connections can time out; when none has room it waits on a connection being made, or
//   opens a new one (circuit breakers: each waiting request holds one of the cluster's
//   pending requests, each connection one of its connections).
// - A connection that received GOAWAY, or reached the cluster's max_requests_per_connection,
//   takes no new streams and closes once its streams are done; streams the server refused
//   are reset with kRefusedStream, which the router sends again.
// - A connection without streams closes after the cluster's idle_timeout.
#include <algorithm>
#include <list>
#include <vector>

#include "core/event/timer.h"
#include "core/http/http2/codec.h"
#include "core/log.h"
#include "core/net/connection.h"
#include "core/upstream/pool_connection.h"
#include "core/upstream/stream_pool.h"

namespace ferry::core::upstream {
namespace {

using net::ConnectionEvent;

class Http2Pool;

class H2Client final : public PoolConnection {
 public:
  H2Client(Http2Pool& pool, std::shared_ptr<net::Connection> conn) : PoolConnection(std::move(conn)), pool_(pool) {
    codec_ = http::http2::makeClientConnection(*this, *this);
  }

  // net::ConnectionCallbacks
  void onData(Buffer& data, bool end_stream) override { codec_->dispatch(data, end_stream); }
  void onEvent(ConnectionEvent event) override;
  // http::ClientConnectionCallbacks
  void onStreamEnd() override;

  bool hasRoom() const {
    return connected_ && !draining_ && !conn_->closed() && !conn_->closing() && codec_->reusable() &&
           codec_->activeStreams() < codec_->streamCapacity();
  }

  Http2Pool& pool_;
  uint32_t streams_ = 0;   // streams it has carried
  size_t waiting_ = 0;     // requests waiting for it to connect
  bool connected_ = false;
  bool draining_ = false;  // no new streams (max requests reached, host removed)
  std::unique_ptr<Timer> idle_timer_;
  std::list<std::unique_ptr<H2Client>>::iterator self_;
};

class Http2Pool final : public StreamPool {
 public:
  Http2Pool(PoolManager& manager, std::shared_ptr<const Cluster> cluster, HostPtr host, std::string proxy_header)
      : manager_(manager),
        ctx_(manager.ctx()),
        cluster_(std::move(cluster)),
        host_(std::move(host)),
        proxy_header_(std::move(proxy_header)),
        graveyard_(*ctx_.io) {}
  ~Http2Pool() override {
    pending_.clear();
    clients_.clear();
  }

  uint64_t newStream(http::ResponseDecoder& decoder, http::StreamCallbacks& stream_cb,
                     StreamPoolCallbacks& cb) override {
    // The busiest connection with room: the others may go idle and close.
    H2Client* best = nullptr;
    for (auto& c : clients_) {
      if (!c->hasRoom()) continue;
      if (best == nullptr || c->codec_->activeStreams() > best->codec_->activeStreams()) best = c.get();
    }
    if (best != nullptr) {
      attach(*best, decoder, stream_cb, cb);
      return 0;
    }
    if (!cluster_->tryAcquirePending()) {
      ctx_.stats->inc(cluster_->stats().overflow_pending);
      cb.onPoolFailure(PoolFailure::kOverflow, "max_pending_requests reached");
      return 0;
    }
    // A connection on its way with room for one more waiter.
    H2Client* target = nullptr;
    for (auto& c : clients_) {
      if (!c->connected_ && !c->conn_->closed() && c->waiting_ < c->codec_->streamCapacity()) {
        target = c.get();
        break;
      }
    }
    if (target == nullptr) {
      PoolFailure why{};
      const char* detail = "";
      target = connect(&why, &detail);
      if (target == nullptr) {
        cluster_->releasePending();
        cb.onPoolFailure(why, detail);
        return 0;
      }
    }
    ++target->waiting_;
    const uint64_t ticket = next_ticket_++;
    pending_.push_back(Pending{ticket, &decoder, &stream_cb, &cb, target});
    return ticket;
  }

  void cancel(uint64_t ticket) override {
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->ticket != ticket) continue;
      --it->client->waiting_;
      pending_.erase(it);
      cluster_->releasePending();
      return;
    }
  }

  const Host& host() const override { return *host_; }
  const Cluster& cluster() const override { return *cluster_; }
  void setCluster(std::shared_ptr<const Cluster> cluster) override { cluster_ = std::move(cluster); }
  bool unused() const override { return clients_.empty() && pending_.empty(); }
  void closeIdle() override {
    std::vector<H2Client*> idle;
    for (auto& c : clients_) {
      c->draining_ = true;  // busy ones close once their streams end
      if (c->connected_ && c->codec_->activeStreams() == 0) idle.push_back(c.get());
    }
    for (H2Client* c : idle) c->conn_->close(net::Connection::CloseType::kNoFlush);
  }

  void onConnected(H2Client& c) {
    c.connected_ = true;
    // Its waiters, up to what it takes; the rest wait for another connection.
    std::vector<Pending> mine;
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->client == &c) {
        mine.push_back(*it);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    c.waiting_ = 0;
    for (const Pending& p : mine) {
      cluster_->releasePending();
      if (c.hasRoom()) {
        attach(c, *p.decoder, *p.stream_cb, *p.cb);
      } else {
        // Over its capacity (the server allows fewer streams): ask again.
        if (newStreamFor(p) != 0) continue;
      }
    }
    if (c.codec_->activeStreams() == 0) armIdle(c);
  }

  void onConnectFailed(H2Client& c, bool timeout) {
    ctx_.stats->inc(cluster_->stats().connect_failures);
    ctx_.stats->inc(host_->stats.connect_failures);
    cluster_->countError(*ctx_.stats, *host_, UpstreamError::kConnectFailure);
    const std::string reason = c.conn_->closeReason();
    std::vector<StreamPoolCallbacks*> failed;
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->client == &c) {
        failed.push_back(it->cb);
        cluster_->releasePending();
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    destroy(c);
    for (StreamPoolCallbacks* cb : failed)
      cb->onPoolFailure(timeout ? PoolFailure::kConnectTimeout : PoolFailure::kConnectFailure, reason);
  }

  void onClosed(H2Client& c) { destroy(c); }

  void onStreamEnd(H2Client& c) {
    if (c.conn_->closed() || c.codec_->activeStreams() > 0) return;
    const uint32_t max_requests = cluster_->maxRequestsPerConnection();
    if (max_requests > 0 && c.streams_ >= max_requests) c.draining_ = true;
    if (c.draining_ || !c.codec_->reusable() || host_->removed.load(std::memory_order_relaxed)) {
      c.conn_->close(net::Connection::CloseType::kFlushWrite);
      return;
    }
    armIdle(c);
  }

 private:
  struct Pending {
    uint64_t ticket;
    http::ResponseDecoder* decoder;
    http::StreamCallbacks* stream_cb;
    StreamPoolCallbacks* cb;
    H2Client* client;
  };
  // A waiter its connection could not take: another connection, or a failure.
  uint64_t newStreamFor(const Pending& p) { return newStream(*p.decoder, *p.stream_cb, *p.cb); }

  // A new connection, or null with the reason (a circuit breaker, or no socket).
  H2Client* connect(PoolFailure* why, const char** detail) {
    if (!cluster_->tryAcquireConnection()) {
      ctx_.stats->inc(cluster_->stats().overflow_connections);
      *why = PoolFailure::kOverflow;
      *detail = "max_connections reached";
      return nullptr;
    }
    auto conn = connectUpstream(ctx_, *cluster_, *host_, proxy_header_);
    if (!conn) {
      cluster_->releaseConnection();
      *why = PoolFailure::kConnectFailure;
      *detail = "cannot create a socket";
      return nullptr;
    }
    clients_.push_front(std::make_unique<H2Client>(*this, std::move(conn)));
    H2Client* c = clients_.front().get();
    c->self_ = clients_.begin();
    return c;
  }

  void armIdle(H2Client& c) {
    if (cluster_->poolIdleTimeout().count() <= 0) return;
    if (!c.idle_timer_) {
      H2Client* pc = &c;
      c.idle_timer_ = std::make_unique<Timer>(*ctx_.io, [pc] {
        if (pc->codec_->activeStreams() == 0) pc->conn_->close(net::Connection::CloseType::kFlushWrite);
      });
    }
    c.idle_timer_->enable(cluster_->poolIdleTimeout());
  }

  void attach(H2Client& c, http::ResponseDecoder& decoder, http::StreamCallbacks& stream_cb, StreamPoolCallbacks& cb) {
    if (c.idle_timer_) c.idle_timer_->disable();
    const bool reused = c.streams_ > 0;
    ++c.streams_;
    const uint32_t max_requests = cluster_->maxRequestsPerConnection();
    if (max_requests > 0 && c.streams_ >= max_requests) c.draining_ = true;
    http::RequestEncoder& encoder = c.codec_->newStream(decoder);
    encoder.setStreamCallbacks(&stream_cb);
    cb.onPoolReady(encoder, reused);
  }

  void destroy(H2Client& c) {
    if (c.self_ == clients_.end()) return;
    // Requests still waiting for it (it closed before connecting) fail like a connect failure.
    ctx_.stats->dec(cluster_->stats().cx_active);
    ctx_.stats->dec(host_->stats.cx_active);
    cluster_->releaseConnection();
    c.idle_timer_.reset();
    std::unique_ptr<H2Client> dying = std::move(*c.self_);
    clients_.erase(c.self_);
    dying->self_ = clients_.end();
    graveyard_.add(std::move(dying));
    if (unused()) manager_.onPoolUnused(*this);
  }

  PoolManager& manager_;
  WorkerContext& ctx_;
  std::shared_ptr<const Cluster> cluster_;
  HostPtr host_;
  std::string proxy_header_;
  std::list<std::unique_ptr<H2Client>> clients_;
  std::list<Pending> pending_;
  DeferredDeleter<H2Client> graveyard_;
  uint64_t next_ticket_ = 1;
};

void H2Client::onEvent(ConnectionEvent event) {
  switch (event) {
    case ConnectionEvent::kConnected:
      pool_.onConnected(*this);
      return;
    case ConnectionEvent::kConnectFailed:
      pool_.onConnectFailed(*this, conn_->closeReason().rfind("connect timeout", 0) == 0);
      return;
    case ConnectionEvent::kRemoteClose:
    case ConnectionEvent::kLocalClose:
      if (!connected_) {  // closed before it connected (e.g. its TLS handshake failed)
        pool_.onConnectFailed(*this, false);
        return;
      }
      codec_->onConnectionClosed(conn_->closeReason());
      pool_.onClosed(*this);
      return;
  }
}

void H2Client::onStreamEnd() { pool_.onStreamEnd(*this); }

}  // namespace

std::unique_ptr<StreamPool> makeHttp2Pool(PoolManager& manager, std::shared_ptr<const Cluster> cluster, HostPtr host,
                                          std::string proxy_header) {
  return std::make_unique<Http2Pool>(manager, std::move(cluster), std::move(host), std::move(proxy_header));
}

}  // namespace ferry::core::upstream
