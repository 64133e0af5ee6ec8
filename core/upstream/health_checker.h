// Active health checking of one cluster's hosts: HTTP (GET path, expected statuses) or TCP
// (connect, optionally send bytes and expect bytes back), every `interval` plus a random
// 0..jitter, each check bounded by `timeout`, with healthy/unhealthy thresholds. Runs on the
// main thread's io_context, once per process, over net::Connection and the cluster's
// transport (so a TLS upstream is checked over TLS); the owner (the cluster manager)
// publishes health changes to the workers. A host starts healthy and is checked at once.
// Main-thread only.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "config/model.h"
#include "core/net/transport.h"

namespace boost::asio {
class io_context;
}

namespace ferry::core::upstream {

class HealthChecker {
 public:
  // A host changed state: healthy after `healthy_threshold` consecutive passes while failed,
  // unhealthy after `unhealthy_threshold` consecutive failures while healthy.
  using OnChange = std::function<void(uint64_t id, bool healthy)>;
  // Every finished check (for counters): passed or not, and why not (for the debug log).
  using OnResult = std::function<void(uint64_t id, bool passed, const std::string& detail)>;

  // The transport of one check's connection to host `id` (null result: the check fails).
  using TransportFor = std::function<std::unique_ptr<net::TransportSocket>(uint64_t id)>;

  // default_host: the Host header when cfg.host is empty (the cluster name). transport: of
  // each check's connection (null: plain).
  HealthChecker(boost::asio::io_context& io, const config::HealthCheckConfig& cfg, std::string default_host,
                OnChange on_change, OnResult on_result, TransportFor transport = nullptr);
  ~HealthChecker();  // cancels every check; no callback runs afterwards
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Starts checking a host (id chosen by the caller, unique): it counts as healthy and its
  // first check starts at once.
  // `healthy`: the state it starts from (a host whose health check changed keeps its state:
  // the new checks need unhealthy_threshold failures, or healthy_threshold passes, to change it).
  void addTarget(uint64_t id, const sockaddr_storage& addr, const std::string& address, bool healthy = true);
  // Stops checking it; a check in progress is abandoned without callbacks.
  void removeTarget(uint64_t id);
  bool healthy(uint64_t id) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::core::upstream
