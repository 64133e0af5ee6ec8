#include "core/redis/client.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <mutex>

#include "core/event/timer.h"
#include "core/event/worker_context.h"
#include "core/log.h"
#include "core/net/connection.h"
#include "core/net/socket_util.h"
#include "core/net/transport.h"

namespace ferry::core::redis {
namespace {

constexpr int64_t kBackoffBaseMs = 100;
constexpr int64_t kBackoffMaxMs = 2000;

// Round trips on loopback are tens of microseconds: finer buckets than latencyBounds().
const std::vector<double>& roundTripBounds() {
  static const std::vector<double> b = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                        0.01,   0.025,   0.05,   0.1,   0.25,   1};
  return b;
}

std::string jsonEscape(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

struct Registry {
  std::mutex mu;
  std::vector<std::shared_ptr<Target>> targets;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: workers may still hold targets at exit
  return *r;
}

}  // namespace

const char* resultName(Result r) {
  switch (r) {
    case Result::kOk: return "ok";
    case Result::kError: return "error";
    case Result::kTimeout: return "timeout";
    case Result::kClosed: return "closed";
  }
  return "error";
}

bool TargetConfig::operator==(const TargetConfig& o) const {
  return address == o.address && net::sockaddrLen(addr) == net::sockaddrLen(o.addr) &&
         std::memcmp(&addr, &o.addr, net::sockaddrLen(addr)) == 0 && timeout == o.timeout &&
         connect_timeout == o.connect_timeout && connections == o.connections && password == o.password;
}

Target::Target(TargetConfig cfg) : cfg_(std::move(cfg)) {}

void Target::registerStats(StatsStore& s) {
  if (registered_) return;
  const std::vector<std::pair<std::string, std::string>> l = {{"redis", cfg_.address}};
  auto with = [&](const char* k, const char* v) {
    auto x = l;
    x.emplace_back(k, v);
    return x;
  };
  stats_.workers_up = s.gauge("ferry_redis_workers_up", l,
                              "Workers with at least one ready connection to this Redis (0: down everywhere).");
  stats_.connections_ready = s.gauge("ferry_redis_connections_ready", l, "Ready connections to this Redis.");
  const char* conn_help = "Connections to this Redis: became ready, failed before ready, lost after ready.";
  stats_.connects = s.counter("ferry_redis_connections_total", with("event", "ready"), conn_help);
  stats_.connect_failures = s.counter("ferry_redis_connections_total", with("event", "failed"), conn_help);
  stats_.disconnects = s.counter("ferry_redis_connections_total", with("event", "lost"), conn_help);
  const char* rq_help =
      "Requests to this Redis by result (ok, error, timeout, closed; unavailable: refused at once, no ready "
      "connection).";
  for (size_t i = 0; i < kResultCount; ++i)
    stats_.requests[i] = s.counter("ferry_redis_requests_total", with("result", resultName(static_cast<Result>(i))),
                                   rq_help);
  stats_.unavailable = s.counter("ferry_redis_requests_total", with("result", "unavailable"), rq_help);
  stats_.noscript = s.counter("ferry_redis_noscript_total", l, "NOSCRIPT replies (the script was loaded again).");
  stats_.round_trip = s.histogram("ferry_redis_round_trip_seconds", l, roundTripBounds(),
                                  "Time from sending a request to this Redis to its reply.");
  registered_ = true;
}

void Target::workerUp() {
  workers_up_.fetch_add(1, std::memory_order_relaxed);
  if (logged_.exchange(1) != 1) FERRY_LOG(kInfo, "redis ", cfg_.address, ": up");
}

void Target::workerDown(bool was_up, std::string_view reason) {
  if (was_up) workers_up_.fetch_sub(1, std::memory_order_relaxed);
  if (logged_.exchange(2) != 2)
    FERRY_LOG(kWarn, "redis ", cfg_.address, ": down (", log::sv(reason), "); failure_mode applies until it is back");
}

std::shared_ptr<Target> target(const TargetConfig& cfg) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (auto& t : r.targets)
    if (t->config() == cfg) return t;
  r.targets.push_back(std::make_shared<Target>(cfg));
  return r.targets.back();
}

std::string targetsJson(const StatsStore& stats) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::string out = "[";
  bool first = true;
  for (auto& t : r.targets) {
    if (!t->registered()) continue;
    const auto& s = t->stats();
    auto v = [&](StatHandle h) { return std::to_string(stats.value(h)); };
    if (!first) out += ",";
    first = false;
    out += "{\"name\":" + jsonEscape(t->name()) + ",\"workers_up\":" + v(s.workers_up) +
           ",\"connections_ready\":" + v(s.connections_ready) + ",\"timeout_ms\":" +
           std::to_string(t->config().timeout.count()) + ",\"requests\":{";
    for (size_t i = 0; i < kResultCount; ++i)
      out += std::string("\"") + resultName(static_cast<Result>(i)) + "\":" + v(s.requests[i]) + ",";
    out += "\"unavailable\":" + v(s.unavailable) + "},\"connect_failures\":" + v(s.connect_failures) +
           ",\"disconnects\":" + v(s.disconnects) + ",\"noscript\":" + v(s.noscript) + "}";
  }
  return out + "]";
}

// One pipelined connection of a worker's Client.
class ClientConn final : public net::ConnectionCallbacks {
 public:
  ClientConn(Client& client, WorkerContext& worker)
      : client_(client),
        worker_(worker),
        timer_(*worker.io, [this] { onTimer(); }),
        sweep_(*worker.io, [this] { onSweep(); }) {}
  ~ClientConn() override {
    if (conn_) {
      conn_->setCallbacks(nullptr);
      conn_->close(net::Connection::CloseType::kNoFlush);
    }
    for (auto& p : pending_)
      if (p.req) p.req->conn_ = nullptr;
  }

  bool ready() const { return state_ == State::kReady; }
  bool connecting() const { return state_ == State::kConnecting; }

  void start() {
    state_ = State::kConnecting;
    const auto& cfg = client_.target_.config();
    conn_ = net::Connection::connect(*worker_.io, cfg.addr, cfg.connect_timeout, worker_.acct,
                                     net::makePlainTransport());
    if (!conn_) {
      state_ = State::kIdle;
      client_.connLost(false, "cannot create a socket");
      scheduleReconnect();
      return;
    }
    conn_->setCallbacks(this);
    timer_.enable(cfg.connect_timeout);  // connect and handshake
    std::string& out = scratch();
    out.clear();
    CommandWriter w(out);
    if (!cfg.password.empty()) {
      w.begin(2).arg("AUTH").arg(cfg.password);
      push(Pending{nullptr, 0, now(), Kind::kAuth, nullptr});
    }
    for (const Script* s : client_.scripts_) {
      w.begin(3).arg("SCRIPT").arg("LOAD").arg(s->body);
      push(Pending{nullptr, 0, now(), Kind::kLoad, s});
      loaded_.push_back(s);
    }
    w.begin(1).arg("PING");
    push(Pending{nullptr, 0, now(), Kind::kPing, nullptr});
    write(out);
  }

  void sendUser(Request& req, const Script* script, int64_t deadline_us) {
    // A failure raised while writing is handled from the loop, not inside this call (callers
    // are told: never a callback from inside the send).
    sending_ = true;
    if (script != nullptr && std::find(loaded_.begin(), loaded_.end(), script) == loaded_.end()) {
      loadScript(script);
      loaded_.push_back(script);
    }
    const int64_t t = now();
    int64_t deadline = t + client_.target_.config().timeout.count() * 1000;
    if (deadline_us > 0 && deadline_us < deadline) deadline = deadline_us;
    req.conn_ = this;
    req.seq_ = push(Pending{&req, deadline, t, Kind::kUser, script});
    write(req.cmd_);
    sending_ = false;
    if (!deferred_failure_.empty()) {
      timer_.enable(std::chrono::milliseconds(0));
      return;
    }
    if (!sweep_.enabled() || deadline < sweep_at_us_) armSweep();
  }

  void cancel(Request& req) {
    const uint64_t i = req.seq_ - head_seq_;
    if (i < pending_.size() && pending_[i].req == &req) pending_[i].req = nullptr;
    req.conn_ = nullptr;
  }

  // net::ConnectionCallbacks
  void onData(Buffer& data, bool end_stream) override {
    reader_.feed(data);
    data.drain(data.length());
    const uint64_t gen = gen_;
    for (;;) {
      ReplyPtr reply;
      const auto st = reader_.next(&reply);
      if (st == RespReader::Status::kNeedMore) break;
      if (st == RespReader::Status::kProtocolError) return fail("protocol error: " + reader_.error());
      if (pending_.empty()) return fail("a reply nobody asked for");
      handle(std::move(reply));
      if (gen != gen_) return;  // failed (or restarted) meanwhile
    }
    if (end_stream) fail("closed by redis");
  }

  void onEvent(net::ConnectionEvent e) override {
    if (sending_ && e != net::ConnectionEvent::kConnected) {  // raised inside write(): fail from the loop
      deferred_failure_ = conn_ && !conn_->closeReason().empty() ? conn_->closeReason() : std::string("write failed");
      return;
    }
    switch (e) {
      case net::ConnectionEvent::kConnected:
        return;
      case net::ConnectionEvent::kConnectFailed:
        return fail(conn_ ? conn_->closeReason() : std::string("connect failed"));
      case net::ConnectionEvent::kRemoteClose:
      case net::ConnectionEvent::kLocalClose:
        return fail("connection closed" + (conn_ && !conn_->closeReason().empty() ? ": " + conn_->closeReason()
                                                                                  : std::string()));
    }
  }

 private:
  enum class State { kIdle, kConnecting, kReady };
  enum class Kind : uint8_t { kUser, kAuth, kLoad, kPing };
  struct Pending {
    Request* req;          // kUser: null once cancelled or timed out (the reply is still awaited)
    int64_t deadline_us;   // kUser
    int64_t sent_us;
    Kind kind;
    const Script* script;  // kUser (EVALSHA) and kLoad
  };

  static int64_t now() { return monotonicUs(); }
  static std::string& scratch() {
    thread_local std::string s;
    return s;
  }
  const Target::Stats& stats() const { return client_.target_.stats(); }
  void add(StatHandle h, int64_t n = 1) {
    if (worker_.stats) worker_.stats->add(h, n);
  }

  uint64_t push(const Pending& p) {
    pending_.push_back(p);
    return head_seq_ + pending_.size() - 1;
  }
  Pending pop() {
    Pending p = pending_.front();
    pending_.pop_front();
    ++head_seq_;
    return p;
  }

  void write(const std::string& s) {
    if (!conn_) return;
    Buffer b;
    b.add(s);
    conn_->write(b, false);
  }

  void loadScript(const Script* s) {
    std::string& out = scratch();
    out.clear();
    CommandWriter(out).begin(3).arg("SCRIPT").arg("LOAD").arg(s->body);
    push(Pending{nullptr, 0, now(), Kind::kLoad, s});
    write(out);
  }

  void complete(Request* req, const redisReply* reply, Result r) {
    req->conn_ = nullptr;
    add(stats().requests[static_cast<size_t>(r)]);
    req->onRedisReply(reply, r);
  }

  void handle(ReplyPtr reply) {
    Pending p = pop();
    const bool is_error = reply->type == REDIS_REPLY_ERROR;
    switch (p.kind) {
      case Kind::kAuth:
        if (is_error) fail("AUTH refused: " + std::string(reply->str, reply->len));
        return;
      case Kind::kLoad:
        if (is_error) fail("SCRIPT LOAD failed: " + std::string(reply->str, reply->len));
        return;
      case Kind::kPing:
        if (is_error) return fail("PING failed: " + std::string(reply->str, reply->len));
        if (state_ != State::kConnecting) return;
        state_ = State::kReady;
        timer_.disable();
        backoff_ms_ = kBackoffBaseMs;
        client_.connReady();
        return;
      case Kind::kUser:
        break;
    }
    if (worker_.stats) worker_.stats->observe(stats().round_trip, now() - p.sent_us);
    if (p.req == nullptr) return;  // timed out or cancelled: dropped
    if (p.script != nullptr && errorIs(*reply, "NOSCRIPT")) {
      add(stats().noscript);
      if (!p.req->cmd_.empty() && p.deadline_us > 0 && !retried(p)) {
        // Redis lost the script (restart, SCRIPT FLUSH): load it again and retry once, on
        // this connection, keeping the request's deadline.
        loadScript(p.script);
        Request* req = p.req;
        req->seq_ = push(Pending{req, -p.deadline_us, now(), Kind::kUser, p.script});
        write(req->cmd_);
        if (!sweep_.enabled()) armSweep();
        return;
      }
    }
    complete(p.req, reply.get(), is_error ? Result::kError : Result::kOk);
  }
  // A retried request carries its deadline negated.
  static bool retried(const Pending& p) { return p.deadline_us < 0; }
  static int64_t deadline(const Pending& p) { return p.deadline_us < 0 ? -p.deadline_us : p.deadline_us; }

  // A reply outstanding this long means the connection is stuck: it is dropped.
  int64_t stuckUs() const {
    return std::max<int64_t>(10 * client_.target_.config().timeout.count() * 1000, 1000000);
  }

  void armSweep() {
    // Deadlines are in FIFO order except for retried requests (they keep their first one):
    // look at every live request (a connection has few in flight).
    int64_t at = -1;
    for (const auto& p : pending_)
      if (p.kind == Kind::kUser && p.req != nullptr && (at < 0 || deadline(p) < at)) at = deadline(p);
    if (!pending_.empty() && state_ == State::kReady) {
      const int64_t stuck = pending_.front().sent_us + stuckUs();
      at = at < 0 ? stuck : std::min(at, stuck);
    }
    if (at < 0) {
      sweep_.disable();
      return;
    }
    sweep_at_us_ = at;
    const int64_t ms = std::max<int64_t>(0, (at - now() + 999) / 1000);
    sweep_.enable(std::chrono::milliseconds(ms));
  }

  void onSweep() {
    const int64_t t = now();
    const uint64_t gen = gen_;
    for (size_t i = 0; i < pending_.size(); ++i) {
      Pending& p = pending_[i];
      if (p.kind != Kind::kUser || p.req == nullptr || deadline(p) > t) continue;
      Request* req = p.req;
      p.req = nullptr;
      complete(req, nullptr, Result::kTimeout);
      if (gen != gen_) return;
    }
    if (!pending_.empty() && state_ == State::kReady && t - pending_.front().sent_us >= stuckUs())
      return fail("no reply for " + std::to_string(stuckUs() / 1000) + "ms");
    armSweep();
  }

  void onTimer() {
    if (!deferred_failure_.empty()) {
      std::string reason;
      reason.swap(deferred_failure_);
      return fail(reason);
    }
    if (state_ == State::kIdle) return start();                 // the backoff is over
    if (state_ == State::kConnecting) fail("connect timeout");  // connect + handshake
  }

  void scheduleReconnect() {
    // Exponential backoff with +-25% jitter, so workers and instances do not reconnect in step.
    const int64_t base = backoff_ms_;
    backoff_ms_ = std::min(backoff_ms_ * 2, kBackoffMaxMs);
    client_.rng_ = client_.rng_ * 6364136223846793005ULL + 1442695040888963407ULL;
    const int64_t jitter = static_cast<int64_t>((client_.rng_ >> 33) % static_cast<uint64_t>(base / 2 + 1)) - base / 4;
    timer_.enable(std::chrono::milliseconds(std::max<int64_t>(1, base + jitter)));
  }

  void fail(std::string reason) {
    const bool was_ready = state_ == State::kReady;
    deferred_failure_.clear();
    ++gen_;
    state_ = State::kIdle;
    if (conn_) {
      auto c = std::move(conn_);
      c->setCallbacks(nullptr);
      c->close(net::Connection::CloseType::kNoFlush);
    }
    reader_.reset();
    loaded_.clear();
    std::deque<Pending> failed;
    failed.swap(pending_);
    head_seq_ += failed.size();
    sweep_.disable();
    timer_.disable();
    scheduleReconnect();
    client_.connLost(was_ready, reason);
    for (auto& p : failed)
      if (p.kind == Kind::kUser && p.req != nullptr) complete(p.req, nullptr, Result::kClosed);
  }

  Client& client_;
  WorkerContext& worker_;
  State state_ = State::kIdle;
  std::shared_ptr<net::Connection> conn_;
  RespReader reader_;
  std::deque<Pending> pending_;
  uint64_t head_seq_ = 1;  // the sequence number of pending_.front()
  uint64_t gen_ = 0;       // bumped by fail()
  bool sending_ = false;   // inside sendUser()
  int64_t sweep_at_us_ = 0;  // when sweep_ is due
  std::string deferred_failure_;  // a failure raised inside sendUser(), handled by timer_
  std::vector<const Script*> loaded_;  // scripts loaded on this connection
  int64_t backoff_ms_ = kBackoffBaseMs;
  Timer timer_;  // kConnecting: connect + handshake deadline; kIdle: reconnect backoff
  Timer sweep_;  // the oldest live request's deadline (or the stuck check)
};

Client& Client::forWorker(Target& target, WorkerContext& worker) {
  thread_local std::vector<std::pair<Target*, std::unique_ptr<Client>>> clients;
  for (auto& [t, c] : clients)
    if (t == &target) return *c;
  clients.emplace_back(&target, std::make_unique<Client>(target, worker));
  return *clients.back().second;
}

Client::Client(Target& target, WorkerContext& worker)
    : target_(target), worker_(worker), rng_(reinterpret_cast<uintptr_t>(this) ^ static_cast<uint64_t>(monotonicUs())) {
  const uint32_t n = std::max<uint32_t>(1, target.config().connections);
  for (uint32_t i = 0; i < n; ++i) conns_.push_back(std::make_unique<ClientConn>(*this, worker));
  for (auto& c : conns_) c->start();
}

Client::~Client() = default;

ClientConn* Client::pick() {
  const size_t n = conns_.size();
  for (size_t i = 0; i < n; ++i) {
    ClientConn* c = conns_[(rr_ + i) % n].get();
    if (c->ready()) {
      rr_ = (rr_ + i + 1) % n;
      return c;
    }
  }
  if (!failed_once_)  // still starting: wait (within the timeout) for the first handshake
    for (auto& c : conns_)
      if (c->connecting()) return c.get();
  return nullptr;
}

bool Client::send(Request& req, const Script* script, int64_t deadline_us) {
  ClientConn* c = pick();
  if (c == nullptr) {
    if (worker_.stats) worker_.stats->inc(target_.stats().unavailable);
    return false;
  }
  c->sendUser(req, script, deadline_us);
  return true;
}

bool Client::evalsha(Request& req, const Script& script, std::initializer_list<std::string_view> keys,
                     std::initializer_list<int64_t> args, int64_t deadline_us) {
  if (req.conn_ != nullptr) cancel(req);
  if (std::find(scripts_.begin(), scripts_.end(), &script) == scripts_.end()) scripts_.push_back(&script);
  req.cmd_.clear();
  CommandWriter w(req.cmd_);
  w.begin(3 + keys.size() + args.size()).arg("EVALSHA").arg(script.sha).arg(static_cast<int64_t>(keys.size()));
  for (auto k : keys) w.arg(k);
  for (auto a : args) w.arg(a);
  return send(req, &script, deadline_us);
}

bool Client::command(Request& req, std::initializer_list<std::string_view> args, int64_t deadline_us) {
  if (req.conn_ != nullptr) cancel(req);
  req.cmd_.clear();
  CommandWriter w(req.cmd_);
  w.begin(args.size());
  for (auto a : args) w.arg(a);
  return send(req, nullptr, deadline_us);
}

void Client::cancel(Request& req) {
  if (req.conn_ != nullptr) req.conn_->cancel(req);
}

void Client::connReady() {
  const auto& s = target_.stats();
  if (worker_.stats) {
    worker_.stats->inc(s.connects);
    worker_.stats->inc(s.connections_ready);
  }
  if (++ready_ == 1) {
    if (worker_.stats) worker_.stats->inc(s.workers_up);
    target_.workerUp();
  }
}

void Client::connLost(bool was_ready, std::string_view reason) {
  const auto& s = target_.stats();
  if (worker_.stats) worker_.stats->inc(was_ready ? s.disconnects : s.connect_failures);
  if (was_ready) {
    if (worker_.stats) worker_.stats->dec(s.connections_ready);
    if (--ready_ == 0) {
      if (worker_.stats) worker_.stats->dec(s.workers_up);
      failed_once_ = true;
      target_.workerDown(true, reason);
    }
    return;
  }
  if (ready_ == 0 && !failed_once_) {  // never up on this worker: the first failure is news
    failed_once_ = true;
    target_.workerDown(false, reason);
  }
}

}  // namespace ferry::core::redis
