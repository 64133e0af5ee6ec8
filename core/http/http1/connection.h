// HTTP/1.1 stream-level connections over the message codecs of codec.h: the server side
// (ServerConnection) and the client side (ClientConnection) of core/http/codec.h. They own
// everything HTTP/1-only: one stream at a time, pipelining, hop-by-hop header rules,
// Expect: 100-continue, upgrades (the stream becomes a raw tunnel after a 101), keep-alive
// and "connection: close", and the raw error writer for requests that fail before a stream
// exists. Worker-local; one per connection, owned by the connection manager (server) or the
// upstream pool's connection (client).
#pragma once

#include <memory>

#include "core/http/codec.h"
#include "core/http/http1/codec.h"

namespace ferry::core::http::http1 {

// The server side, as the connection manager keeps it: the HTTP/1 state of a downstream
// connection is needed only while a request is under way, so an idle connection gives it
// back (to a per-thread pool of these) and takes one again on its next byte.
class ReusableServerConnection : public ServerConnection {
 public:
  // Nothing under way: no request started or waiting, no EOF seen, not closing, draining or
  // tunnelling. A fresh connection (reset()) would behave the same from here.
  virtual bool idle() const = 0;
  // Back to the state of a new connection under `limits`, with the same CodecIo and
  // callbacks, keeping the memory the parser has grown.
  virtual void reset(const CodecLimits& limits) = 0;
};

std::unique_ptr<ReusableServerConnection> makeServerConnection(CodecIo& io, ServerConnectionCallbacks& callbacks,
                                                               const CodecLimits& limits);
std::unique_ptr<ClientConnection> makeClientConnection(CodecIo& io, ClientConnectionCallbacks& callbacks,
                                                       const CodecLimits& limits = {});

namespace detail {

// One stream's counted readDisable() over its connection's reads (HTTP/1 has no per-stream
// flow control): the disables the stream still holds when it ends are given back.
class StreamReads {
 public:
  explicit StreamReads(CodecIo& io) : io_(io) {}
  void disable(bool disable) {
    if (disable) {
      ++count_;
    } else if (count_ > 0) {
      --count_;
    } else {
      return;
    }
    io_.readDisable(disable);
  }
  void release() {
    while (count_ > 0) disable(false);
  }
  // Drops the count without giving anything back (the connection under it is gone or reset).
  void forget() { count_ = 0; }

 private:
  CodecIo& io_;
  int count_ = 0;
};

// Tells a stream that its connection's write buffer crossed a watermark.
inline void notifyWatermark(StreamCallbacks* cb, bool above) {
  if (cb == nullptr) return;
  if (above) {
    cb->onAboveWriteBufferHighWatermark();
  } else {
    cb->onBelowWriteBufferLowWatermark();
  }
}

}  // namespace detail

// RFC 9110 7.6.1: removes the hop-by-hop headers (connection, keep-alive, proxy-connection,
// transfer-encoding, te, trailer, upgrade, http2-settings) and every header the Connection
// header names. A TE that lists "trailers" becomes `te: trailers` (gRPC needs it); other TE
// values go. When `keep_upgrade`, the Upgrade header stays with "connection: upgrade".
void stripHopByHop(HeaderMap& headers, bool keep_upgrade);

}  // namespace ferry::core::http::http1
