#include "core/upstream/health_checker.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <cstring>
#include <random>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "core/log.h"

namespace ferry::core::upstream {
namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr size_t kReadChunk = 4096;
// A status line longer than this is not one; stops a peer that streams bytes without a newline.
constexpr size_t kMaxStatusLine = 4096;
// The TCP check reads at most this much looking for cfg.expect.
constexpr size_t kMaxExpectRead = 64 * 1024;

// "HTTP/1.x NNN" followed by end of line or SP reason (which may be empty). Returns the
// status code, or -1 when the line is not a status line.
int parseStatusLine(std::string_view line) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || !digit(line[7]) || line[8] != ' ') return -1;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (!digit(line[i])) return -1;
    status = status * 10 + (line[i] - '0');
  }
  if (line.size() > 12 && line[12] != ' ') return -1;
  return status < 100 ? -1 : status;
}

// A short printable excerpt of what the peer sent, for the failure detail (debug log only).
std::string excerpt(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  return out;
}

}  // namespace

struct HealthChecker::Impl {
  // Shared with the completion handlers, so that a handler that runs after removeTarget or
  // after the checker is gone (Asio delivers operation_aborted later) still touches live
  // memory; it sees `alive == false` or an old generation and returns without a callback.
  struct Target {
    explicit Target(asio::io_context& io) : timer(io), socket(io) {}

    Impl* impl = nullptr;  // valid only while `alive`
    uint64_t id = 0;
    std::string address;
    tcp::endpoint endpoint;
    bool endpoint_ok = false;
    asio::steady_timer timer;  // the deadline while a check runs, else the wait for the next one
    tcp::socket socket;
    std::string out;  // bytes being written; owned here so a write never outlives its buffer
    std::string in;   // reply bytes received so far
    std::array<char, kReadChunk> chunk{};
    // Bumped whenever the timer or socket changes purpose (check start, check end, removal);
    // a handler captures it and ignores its completion if it no longer matches.
    uint64_t gen = 0;
    bool alive = true;
    bool healthy = true;
    uint32_t passes = 0;  // consecutive, counted while unhealthy
    uint32_t fails = 0;   // consecutive, counted while healthy
  };
  using TargetPtr = std::shared_ptr<Target>;

  // Held by shared_ptr so that a callback that destroys the checker does not destroy the
  // std::function that is running.
  struct Callbacks {
    OnChange on_change;
    OnResult on_result;
  };

  Impl(asio::io_context& io_in, const config::HealthCheckConfig& cfg_in, std::string default_host,
       OnChange on_change, OnResult on_result)
      : io(io_in),
        cfg(cfg_in),
        callbacks(std::make_shared<const Callbacks>(Callbacks{std::move(on_change), std::move(on_result)})),
        rng(std::random_device{}()) {
    if (cfg.type == config::HealthCheckConfig::Type::kHttp) {
      request = "GET " + (cfg.path.empty() ? std::string("/") : cfg.path) + " HTTP/1.1\r\nHost: " +
                (cfg.host.empty() ? default_host : cfg.host) +
                "\r\nUser-Agent: ferry-health-check\r\nConnection: close\r\n\r\n";
    }
  }

  ~Impl() {
    for (auto& [id, t] : targets) retire(*t);
  }

  static void retire(Target& t) {
    t.alive = false;
    ++t.gen;
    error_code ignored;
    t.socket.close(ignored);
    t.timer.cancel();
  }

  static bool stale(const Target& t, uint64_t gen) { return !t.alive || t.gen != gen; }

  void add(uint64_t id, const sockaddr_storage& addr, const std::string& address) {
    remove(id);  // ids are unique by contract; a repeated add restarts the host cleanly
    auto t = std::make_shared<Target>(io);
    t->impl = this;
    t->id = id;
    t->address = address;
    size_t len = addr.ss_family == AF_INET ? sizeof(sockaddr_in) : addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : 0;
    if (len != 0) {
      std::memcpy(t->endpoint.data(), &addr, len);
      t->endpoint.resize(len);
      t->endpoint_ok = true;
    }
    targets.emplace(id, t);
    startCheck(t);
  }

  void remove(uint64_t id) {
    auto it = targets.find(id);
    if (it == targets.end()) return;
    retire(*it->second);
    targets.erase(it);
  }

  static void startCheck(const TargetPtr& t) {
    Impl* impl = t->impl;
    uint64_t g = ++t->gen;
    t->in.clear();
    if (!t->endpoint_ok) {
      // Posted rather than finished here: addTarget must not run callbacks re-entrantly.
      asio::post(impl->io, [t, g] {
        if (!stale(*t, g)) finish(t, false, "unsupported address family");
      });
      return;
    }
    t->timer.expires_after(impl->cfg.timeout);
    t->timer.async_wait([t, g](const error_code& ec) {
      if (ec || stale(*t, g)) return;
      finish(t, false, "timeout");
    });
    t->socket.async_connect(t->endpoint, [t, g](const error_code& ec) {
      if (stale(*t, g)) return;
      if (ec) return finish(t, false, "connect: " + ec.message());
      onConnected(t, g);
    });
  }

  static void onConnected(const TargetPtr& t, uint64_t g) {
    const auto& cfg = t->impl->cfg;
    if (cfg.type == config::HealthCheckConfig::Type::kHttp) {
      t->out = t->impl->request;
      asio::async_write(t->socket, asio::buffer(t->out), [t, g](const error_code& ec, size_t) {
        if (stale(*t, g)) return;
        if (ec) return finish(t, false, "write: " + ec.message());
        readStatus(t, g);
      });
    } else if (!cfg.send.empty()) {
      t->out = cfg.send;
      asio::async_write(t->socket, asio::buffer(t->out), [t, g](const error_code& ec, size_t) {
        if (stale(*t, g)) return;
        if (ec) return finish(t, false, "write: " + ec.message());
        if (t->impl->cfg.expect.empty()) return finish(t, true, "");
        readExpect(t, g);
      });
    } else if (!cfg.expect.empty()) {
      readExpect(t, g);
    } else {
      finish(t, true, "");
    }
  }

  // HTTP: reads until the status line is complete; the headers and body are not needed.
  static void readStatus(const TargetPtr& t, uint64_t g) {
    t->socket.async_read_some(asio::buffer(t->chunk), [t, g](const error_code& ec, size_t n) {
      if (stale(*t, g)) return;
      size_t scanned = t->in.size();
      t->in.append(t->chunk.data(), n);
      size_t nl = t->in.find('\n', scanned);
      if (nl != std::string::npos) {
        std::string_view line(t->in.data(), nl);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        int status = parseStatusLine(line);
        if (status < 0) return finish(t, false, "malformed status line: " + excerpt(line));
        for (const auto& [lo, hi] : t->impl->cfg.expected_statuses)
          if (status >= lo && status <= hi) return finish(t, true, "");
        return finish(t, false, "unexpected status " + std::to_string(status));
      }
      if (t->in.size() > kMaxStatusLine) return finish(t, false, "malformed status line: too long");
      if (ec == asio::error::eof) {
        return finish(t, false, t->in.empty() ? "closed before status line"
                                              : "malformed status line: " + excerpt(t->in));
      }
      if (ec) return finish(t, false, "read: " + ec.message());
      readStatus(t, g);
    });
  }

  // TCP: reads until the reply so far contains cfg.expect, up to kMaxExpectRead bytes.
  static void readExpect(const TargetPtr& t, uint64_t g) {
    size_t room = std::min(t->chunk.size(), kMaxExpectRead - t->in.size());
    t->socket.async_read_some(asio::buffer(t->chunk.data(), room), [t, g](const error_code& ec, size_t n) {
      if (stale(*t, g)) return;
      const std::string& expect = t->impl->cfg.expect;
      // Search only the new bytes plus enough of the old ones for a match across reads.
      size_t from = t->in.size() >= expect.size() ? t->in.size() - expect.size() + 1 : 0;
      t->in.append(t->chunk.data(), n);
      if (t->in.find(expect, from) != std::string::npos) return finish(t, true, "");
      if (t->in.size() >= kMaxExpectRead) return finish(t, false, "expected reply not in the first 64 KiB");
      if (ec == asio::error::eof) return finish(t, false, "closed before the expected reply");
      if (ec) return finish(t, false, "read: " + ec.message());
      readExpect(t, g);
    });
  }

  // Ends the check in progress: closes the socket, applies the thresholds, runs the callbacks
  // and schedules the next check unless a callback removed the host or destroyed the checker.
  static void finish(const TargetPtr& t, bool passed, const std::string& detail) {
    Impl* impl = t->impl;
    ++t->gen;
    error_code ignored;
    t->socket.close(ignored);
    t->timer.cancel();
    if (t->in.capacity() > kReadChunk) std::string().swap(t->in);  // don't keep 64 KiB per host between checks
    t->in.clear();

    bool changed = false;
    if (passed) {
      t->fails = 0;
      if (!t->healthy && ++t->passes >= std::max<uint32_t>(1, impl->cfg.healthy_threshold)) {
        t->healthy = true;
        t->passes = 0;
        changed = true;
      }
    } else {
      t->passes = 0;
      if (t->healthy && ++t->fails >= std::max<uint32_t>(1, impl->cfg.unhealthy_threshold)) {
        t->healthy = false;
        t->fails = 0;
        changed = true;
      }
    }
    bool healthy = t->healthy;
    uint64_t id = t->id;
    if (changed) {
      FERRY_LOG(kDebug, "health check: host ", t->address, healthy ? " is healthy" : " is unhealthy",
                detail.empty() ? "" : " (", detail, detail.empty() ? "" : ")");
    }

    std::shared_ptr<const Callbacks> cbs = impl->callbacks;
    if (cbs->on_result) cbs->on_result(id, passed, detail);
    if (!t->alive) return;  // removed, re-added or the checker destroyed by the callback
    if (changed && cbs->on_change) cbs->on_change(id, healthy);
    if (!t->alive) return;
    impl->scheduleNext(t);
  }

  void scheduleNext(const TargetPtr& t) {
    config::Duration delay = cfg.interval;
    if (cfg.jitter.count() > 0) {
      delay += config::Duration(std::uniform_int_distribution<config::Duration::rep>(0, cfg.jitter.count())(rng));
    }
    uint64_t g = ++t->gen;
    t->timer.expires_after(delay);
    t->timer.async_wait([t, g](const error_code& ec) {
      if (ec || stale(*t, g)) return;
      startCheck(t);
    });
  }

  asio::io_context& io;
  config::HealthCheckConfig cfg;
  std::string request;  // HTTP: the whole request, the same for every check
  std::shared_ptr<const Callbacks> callbacks;
  std::unordered_map<uint64_t, TargetPtr> targets;
  std::mt19937_64 rng;
};

HealthChecker::HealthChecker(asio::io_context& io, const config::HealthCheckConfig& cfg, std::string default_host,
                             OnChange on_change, OnResult on_result)
    : impl_(std::make_unique<Impl>(io, cfg, std::move(default_host), std::move(on_change), std::move(on_result))) {}

HealthChecker::~HealthChecker() = default;

void HealthChecker::addTarget(uint64_t id, const sockaddr_storage& addr, const std::string& address) {
  impl_->add(id, addr, address);
}

void HealthChecker::removeTarget(uint64_t id) { impl_->remove(id); }

// A host that is not (or no longer) checked has no evidence against it: healthy.
bool HealthChecker::healthy(uint64_t id) const {
  auto it = impl_->targets.find(id);
  return it == impl_->targets.end() || it->second->healthy;
}

}  // namespace ferry::core::upstream
