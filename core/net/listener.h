// Listeners on a worker. ListenerState is the process-wide state of one listener (its counters
// and limits), kept across config snapshots; ListenerSpec is what one snapshot configures for
// it; ActiveListener is one listener's accepting socket on one worker (each worker has its own
// SO_REUSEPORT socket for the listener) with its open connections.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "config/model.h"
#include "core/event/deferred_deleter.h"
#include "core/event/poller.h"
#include "core/event/timer.h"
#include "core/event/worker_context.h"
#include "core/net/listener_filter.h"
#include "core/net/network_filter.h"
#include "core/net/per_ip_connections.h"
#include "core/net/transport.h"
#include "core/stats.h"

namespace ferry::core::http {
class RouteConfigProvider;
}

namespace ferry::core::net {

class ActiveConnection;

struct ListenerStats {
  StatHandle cx_total;
  StatHandle cx_active;
  StatHandle cx_overflow;  // refused by max_connections (listener or runtime)
  StatHandle cx_per_ip_overflow;  // refused by max_connections_per_ip
  StatHandle proxy_protocol_errors;
  StatHandle bytes_received;  // from downstream clients
  StatHandle bytes_sent;      // to downstream clients
};

// Process-wide state of one listener: outlives snapshots (proxy/ keeps one per listener name
// and hands the same object to every snapshot that has the listener). Its counters are
// relaxed atomics shared by the workers (limits may be, by design). Made on the main thread.
struct ListenerState {
  ListenerState(std::string name, StatsStore& stats);  // registers the listener's metrics
  const std::string name;
  ListenerStats stats;
  std::atomic<int64_t> active{0};  // open connections, for max_connections
  // Open connections per client IP; made (main thread) by the first snapshot that sets
  // max_connections_per_ip, then kept. Workers reach it through ListenerSpec::per_ip.
  std::shared_ptr<PerIpConnections> per_ip;
  // HTTP listeners: the route table and filter chain that each worker's requests take when
  // they start (core/http/route_config.h). Made by the HTTP connection manager's builder.
  std::shared_ptr<http::RouteConfigProvider> http_routes;
};

// Open downstream connections of the whole process (runtime.max_connections, drain). Outlives
// snapshots like ListenerState.
struct ProcessConnections {
  std::atomic<int64_t> active{0};
};

// One listener as one snapshot configures it: immutable, shared read-only by every worker.
// Built on the main thread by proxy/.
struct ListenerSpec {
  config::ListenerConfig cfg;
  std::shared_ptr<ListenerState> state;
  std::shared_ptr<ProcessConnections> process;
  uint64_t process_max_connections = 0;  // runtime.max_connections; 0 = unlimited
  std::shared_ptr<PerIpConnections> per_ip;  // state->per_ip when cfg.max_connections_per_ip > 0
  // What a connection runs through, in order: listener filters on the raw socket, then the
  // transport, then the network filter chain.
  std::vector<ListenerFilterFactory> listener_filters;
  std::chrono::milliseconds listener_filter_timeout{0};  // 0 = none
  TransportFactory transport;  // null = plain
  std::chrono::milliseconds handshake_timeout{0};  // the transport's handshake; 0 = none
  std::vector<NetworkFilterFactory> filter_factories;
  // Run on each worker (its 1-based index) when the spec is installed there, before the
  // listener accepts: installs per-worker parts of the snapshot (e.g. the HTTP route config).
  std::vector<std::function<void(size_t worker)>> worker_setup;
};

// Worker-local. Owned by the worker's runtime in the server.
class ActiveListener final : private PollHandler {
 public:
  // Takes ownership of the listening socket `fd`.
  ActiveListener(WorkerContext& ctx, std::shared_ptr<const ListenerSpec> spec, int fd);
  ~ActiveListener();
  ActiveListener(const ActiveListener&) = delete;
  ActiveListener& operator=(const ActiveListener&) = delete;

  void start();
  // Closes the listening socket: new connections are refused; open ones go on.
  void stopAccepting();
  // Connections accepted from now on run under `spec` (a reload that keeps this socket); open
  // ones keep the spec they were accepted with. The same listener name (ListenerState).
  void setSpec(std::shared_ptr<const ListenerSpec> spec);
  // The drain notice to every open connection (NetworkFilter::onDrain; their HTTP responses
  // carry Connection: close from now on). Those still open after `timeout` are closed; 0 = no
  // limit (the server's own drain ends them).
  void drainConnections(std::chrono::milliseconds timeout);
  // Runs (from the loop, not from a connection's call stack) once the listener has stopped
  // accepting and its last connection has closed: a retired listener can then go.
  void onEmpty(std::function<void()> cb);
  // Closes every open connection now.
  void closeAll();
  size_t connectionCount() const { return connection_count_; }
  WorkerContext& context() const { return ctx_; }
  const std::string& name() const { return spec_->state->name; }

  // Called by an ActiveConnection that has ended; it is destroyed soon after, outside the
  // call stack that ended it.
  void removeConnection(ActiveConnection* conn);

 private:
  void onPollEvents(uint32_t events) override;
  void onAcceptable();
  void accepted(int fd);
  void onDrainTimer();
  void checkEmpty();

  WorkerContext& ctx_;
  std::shared_ptr<const ListenerSpec> spec_;
  Poller& poller_;
  int lfd_;  // the listening socket, registered with the worker's Poller; -1 once closed
  bool registered_ = false;
  Timer retry_timer_;  // accept failed for lack of descriptors/memory: try again later
  ActiveConnection* connections_ = nullptr;  // open ones, linked through themselves; owned
  size_t connection_count_ = 0;
  DeferredDeleter<ActiveConnection> graveyard_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool accepting_ = false;
  Timer drain_timer_;  // closes drained connections whose deadline passed
  std::function<void()> on_empty_;
};

}  // namespace ferry::core::net
