// Network (L4) filters: a chain per downstream connection, the last one terminal (tcp_proxy
// or the HTTP connection manager). Core drives the chain (core/net/listener.cc); filters/
// holds the implementations. Per-connection objects are made by a factory built once from
// config when a snapshot is built. Worker-local.
#pragma once

#include <functional>
#include <memory>

#include "core/buffer.h"
#include "core/event/worker_context.h"
#include "core/net/connection.h"
#include "core/net/connection_info.h"

namespace ferry::core::net {

enum class FilterStatus { kContinue, kStopIteration };

// What a network filter sees of its connection. Implemented by the listener's
// ActiveConnection.
class NetworkFilterCallbacks {
 public:
  virtual ~NetworkFilterCallbacks() = default;
  virtual Connection& connection() = 0;
  virtual const ConnectionInfo& info() const = 0;
  virtual WorkerContext& worker() = 0;
  // Writes toward the downstream client (through the chain's onWrite hooks).
  virtual void writeDownstream(Buffer& data, bool end_stream) = 0;
  // Bytes a filter spliced to the client's socket itself (Connection::spliceTo), for the
  // listener's byte counters.
  virtual void countSplicedToDownstream(size_t bytes) {}
  // The connection drains (its listener was removed or changed by a reload, or the process
  // drains): an HTTP response from now on closes it.
  virtual bool draining() const = 0;
};

class NetworkFilter {
 public:
  virtual ~NetworkFilter() = default;
  // Once, before any other call. Must not write or close.
  virtual void initialize(NetworkFilterCallbacks& callbacks) { callbacks_ = &callbacks; }
  // The connection is ready (listener filters and the transport handshake done).
  // kStopIteration holds later filters.
  virtual FilterStatus onNewConnection() { return FilterStatus::kContinue; }
  // Bytes from the client, in chain order. A filter that consumes them drains `data`.
  virtual FilterStatus onData(Buffer& data, bool end_stream) = 0;
  // Bytes toward the client, in reverse chain order.
  virtual FilterStatus onWrite(Buffer& data, bool end_stream) { return FilterStatus::kContinue; }
  // The downstream connection ended (kRemoteClose or kLocalClose). Must not touch it after.
  virtual void onDownstreamEvent(ConnectionEvent event) {}
  // The above-high / below-low watermark of the downstream write buffer.
  virtual void onDownstreamAboveWriteHighWatermark() {}
  virtual void onDownstreamBelowWriteLowWatermark() {}
  // Bytes from the client that went straight to where a filter spliced them
  // (Connection::spliceTo), instead of through onData.
  virtual void onDownstreamSpliced(size_t bytes) {}
  // The drain notice (once): the connection should end soon, at a point where nothing is lost
  // (an idle HTTP connection closes at once, a busy one after its response); whatever is still
  // open at the drain timeout is closed by the listener.
  virtual void onDrain() {}

 protected:
  NetworkFilterCallbacks* callbacks_ = nullptr;
};

// Makes the per-connection filter; cheap. Built once per config snapshot.
using NetworkFilterFactory = std::function<std::unique_ptr<NetworkFilter>()>;

}  // namespace ferry::core::net
