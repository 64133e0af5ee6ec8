// Network (L4) filters: a chain per downstream connection, the last one terminal
// (tcp_proxy now, the HTTP connection manager later). Per-connection objects are made by a
// factory built once from config at snapshot time. Worker-local.
#pragma once

#include <netinet/in.h>

#include <functional>
#include <memory>

#include "core/buffer.h"
#include "core/event/worker_context.h"
#include "core/net/connection.h"

namespace ferry::filters {

enum class FilterStatus { kContinue, kStopIteration };

// Addresses of a downstream connection. With PROXY protocol, `remote` is the client the
// header names and `direct_remote` the load balancer that connected.
struct ConnectionInfo {
  sockaddr_storage remote{};
  sockaddr_storage local{};
  sockaddr_storage direct_remote{};
  bool from_proxy_protocol = false;
};

// What a network filter sees of its connection. Implemented by the listener's
// ActiveConnection.
class NetworkFilterCallbacks {
 public:
  virtual ~NetworkFilterCallbacks() = default;
  virtual core::net::Connection& connection() = 0;
  virtual const ConnectionInfo& info() const = 0;
  virtual core::WorkerContext& worker() = 0;
  // Writes toward the downstream client (through the chain's onWrite hooks).
  virtual void writeDownstream(core::Buffer& data, bool end_stream) = 0;
};

class NetworkFilter {
 public:
  virtual ~NetworkFilter() = default;
  // Once, before any other call. Must not write or close.
  virtual void initialize(NetworkFilterCallbacks& callbacks) { callbacks_ = &callbacks; }
  // The connection is ready (listener filters done). kStopIteration holds later filters.
  virtual FilterStatus onNewConnection() { return FilterStatus::kContinue; }
  // Bytes from the client, in chain order. A filter that consumes them drains `data`.
  virtual FilterStatus onData(core::Buffer& data, bool end_stream) = 0;
  // Bytes toward the client, in reverse chain order.
  virtual FilterStatus onWrite(core::Buffer& data, bool end_stream) { return FilterStatus::kContinue; }
  // The downstream connection ended (kRemoteClose or kLocalClose). Must not touch it after.
  virtual void onDownstreamEvent(core::net::ConnectionEvent event) {}
  // The above-high / below-low watermark of the downstream write buffer.
  virtual void onDownstreamAboveWriteHighWatermark() {}
  virtual void onDownstreamBelowWriteLowWatermark() {}

 protected:
  NetworkFilterCallbacks* callbacks_ = nullptr;
};

// Makes the per-connection filter; cheap. Built once per config snapshot.
using NetworkFilterFactory = std::function<std::unique_ptr<NetworkFilter>()>;

}  // namespace ferry::filters
