// TransportSocket: the seam between a connection's raw bytes and its plaintext. Chosen when a
// socket is accepted (after the listener filters) or connected: the plain transport is a
// move; TLS drives its library over memory buffers. A transport never touches the socket:
// the Connection reads raw bytes through its I/O backend (SocketIo), hands them here, and
// sends what the transport puts in the raw output. It owns the handshake ("ready" only after
// it), plaintext it holds that has not become raw bytes yet, and the orderly shutdown
// (close_notify). Worker-local. Owned by its Connection.
//
// Add a transport: implement this interface (doRead/doWrite between the buffers, ready(),
// shutdown()), and give a TransportFactory for it to the listener spec (downstream) or the
// cluster (upstream). Nothing else changes: codecs and filters see plaintext.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/buffer.h"
#include "core/net/connection_info.h"

namespace ferry::core::net {

struct TransportResult {
  // The connection cannot go on (a failed handshake, a bad record): it is closed with
  // `error` as the reason.
  bool close = false;
  // The plaintext stream from the peer has ended (the peer's FIN, or TLS close_notify).
  bool end_stream = false;
  std::string error;
};

class TransportSocket {
 public:
  virtual ~TransportSocket() = default;
  // "plain", "tls", ... (logs).
  virtual std::string_view name() const = 0;

  // The socket is connected: an accepted one after its listener filters, an outgoing one
  // when its connect finished. A client transport starts its handshake here (bytes to send
  // go to raw_out).
  virtual TransportResult onConnected(Buffer& raw_out) { return {}; }
  // True once the handshake is complete (at once for plain). The Connection raises
  // ConnectionEvent::kConnected, and the listener starts the filter chain, only then.
  virtual bool ready() const = 0;
  // Raw bytes from the socket: the transport drains what it consumed from `raw_in` and
  // appends plaintext to `plain_out`. raw_eof: the peer's FIN follows raw_in. Bytes the
  // transport must send in answer (handshake, alerts) go to raw_out.
  virtual TransportResult doRead(Buffer& raw_in, bool raw_eof, Buffer& plain_out, Buffer& raw_out) = 0;
  // Plaintext to send: the transport drains what it took from `plain_in` and appends the raw
  // bytes to `raw_out`; what it cannot turn into raw bytes yet (before the handshake) it holds
  // and counts in bufferedBytes(). end_stream: no plaintext follows (TLS adds close_notify).
  virtual TransportResult doWrite(Buffer& plain_in, bool end_stream, Buffer& raw_out) = 0;
  // Plaintext held inside that has not become raw bytes yet (for watermarks and flushes).
  virtual size_t bufferedBytes() const { return 0; }
  // The connection is closing after a flush: bytes of an orderly shutdown go to raw_out.
  virtual void shutdown(Buffer& raw_out) {}
  // Raw bytes are the plaintext, unchanged (the plain transport): the connection may then
  // forward them without reading them (splice).
  virtual bool passthrough() const { return false; }
  // The negotiated application protocol (ALPN), "" when none.
  virtual std::string_view protocol() const { return {}; }
  // What the handshake established (TLS; after ready()), or null.
  virtual std::shared_ptr<const TlsSessionInfo> tlsInfo() const { return nullptr; }
  // The handshake did not finish within its time limit; the connection closes after this
  // (the transport counts it).
  virtual void onHandshakeTimeout() {}
};

// Makes the transport of one connection; cheap. Built once per snapshot.
using TransportFactory = std::function<std::unique_ptr<TransportSocket>()>;

// The plain transport: raw bytes are the plaintext (a move of buffer slices, no copy).
std::unique_ptr<TransportSocket> makePlainTransport();
// The plain transport keeps no state, so every connection can share one: a Connection given
// a plain transport keeps this one instead (and owns nothing).
TransportSocket* sharedPlainTransport();

// Owns a transport unless it is the shared plain one.
struct TransportDeleter {
  void operator()(TransportSocket* t) const {
    if (t != sharedPlainTransport()) delete t;
  }
};
using TransportPtr = std::unique_ptr<TransportSocket, TransportDeleter>;
// `t` as a Connection keeps it: the shared instance for the plain transport.
TransportPtr keepTransport(std::unique_ptr<TransportSocket> t);
TransportFactory plainTransportFactory();

}  // namespace ferry::core::net
