// TLS ClientHello parsing (RFC 8446 4.1.2, RFC 5246 7.4.1.2; SNI RFC 6066 3, ALPN RFC 7301):
// a pure function, no I/O, any thread. And the TLS inspector, a listener filter that reads
// the ClientHello of an accepted connection without terminating TLS or consuming any byte
// (worker-local): SNI passthrough on a `tcp` listener routes by the name it finds.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/net/listener_filter.h"
#include "core/stats.h"

namespace ferry::core::net {

// The records carrying the ClientHello (headers included) must end within this many bytes
// of the start of the stream, or the parse fails. Real ClientHellos are 200 B to 2 KiB (a
// post-quantum key share takes them to ~1.8 KiB; one record holds 16 KiB).
inline constexpr size_t kMaxClientHelloBytes = 64 * 1024;

struct ClientHelloInfo {
  // The first record header said "TLS handshake" (content type 0x16, major version 3). Set by
  // every call that sees those bytes, kError included: tells "not TLS" from "broken TLS".
  bool looked_like_tls = false;
  std::string server_name;         // SNI host_name, lower-cased; "" = no server_name extension
  std::vector<std::string> alpn;   // the offered protocols, in the client's order
};

enum class ClientHelloParse {
  kNeedMore,  // a valid prefix so far; read more bytes (never returned once len >= 64 KiB)
  kDone,      // *out is filled; the bytes are not "consumed": they stay the connection's
  kError,     // not a TLS ClientHello, or a malformed one: close the connection
};

// Parses the ClientHello at the start of data[0..len): one handshake message over one or
// more TLS records. Stateless: call again with the whole stream so far. On kDone fills *out;
// on kError sets *error to a short reason. Any out-parameter may be null.
ClientHelloParse parseClientHello(const uint8_t* data, size_t len, ClientHelloInfo* out,
                                  std::string* error);

// The inspector's counters, registered per listener on the main thread.
struct TlsInspectorStats {
  StatHandle client_hellos;  // ClientHellos read
  StatHandle errors;         // not TLS, malformed, or cut short by the client
  StatHandle timeouts;       // no complete ClientHello within the timeout
};

// Registers ferry_tls_inspector_{client_hellos,errors,timeouts}_total{listener}. Main thread.
TlsInspectorStats registerTlsInspectorStats(StatsStore& stats, const std::string& listener);

// The listener filter: waits for a complete ClientHello (up to kMaxClientHelloBytes; past
// `timeout`, 0 = none, the connection is closed), then sets ConnectionInfo's
// client hello (setClientHello: server name and offered protocols) and continues with every byte
// still in the buffer, so the transport (plain, for passthrough) gets the ClientHello. Not
// TLS or malformed: logged at debug, counted, closed.
ListenerFilterFactory tlsInspectorFilter(std::chrono::milliseconds timeout, TlsInspectorStats stats);

}  // namespace ferry::core::net
