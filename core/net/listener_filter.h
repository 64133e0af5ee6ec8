// Listener filters: the first stage of an accepted connection, on the raw socket before any
// transport exists: the PROXY protocol today (the real client address), later the TLS
// inspector (SNI and ALPN without terminating) and the h2c preface check. They read the first
// bytes; what they leave unread goes to the transport as raw bytes, ahead of everything read
// later. Worker-local; one per connection, made by a factory built with the snapshot.
//
// Add a listener filter: implement ListenerFilter, and have proxy/ (the runtime) put its
// factory into the listener spec when the listener's config asks for it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "core/buffer.h"
#include "core/net/connection_info.h"

namespace ferry::core {
struct WorkerContext;
}

namespace ferry::core::net {

struct ListenerState;

enum class ListenerFilterStatus {
  kNeedMore,  // wants more bytes (the connection keeps reading)
  kContinue,  // done: the next listener filter, or the transport and network filters
  kClose,     // refuse the connection (the filter counted and logged why)
};

// What a listener filter may use: the connection's addresses (to rewrite), its worker (stats
// shard, logs) and its listener's process-wide state (stat handles).
struct ListenerFilterContext {
  ConnectionInfo& info;
  WorkerContext& worker;
  const ListenerState& listener;
};

class ListenerFilter {
 public:
  virtual ~ListenerFilter() = default;
  // The raw bytes read so far (earlier filters drained what they consumed); the filter drains
  // what it consumes. end_stream: the peer closed; no more bytes come.
  virtual ListenerFilterStatus onData(Buffer& raw, bool end_stream, ListenerFilterContext& ctx) = 0;
  // The listener's listener-filter timeout passed first: the connection is closed after this.
  virtual void onTimeout(ListenerFilterContext& ctx) {}
};

struct ListenerFilterFactory {
  std::function<std::unique_ptr<ListenerFilter>()> make;
  // How long the filter may wait for its bytes (0: no limit); the stage's limit is the
  // largest of its filters'.
  std::chrono::milliseconds timeout{0};
};

}  // namespace ferry::core::net
