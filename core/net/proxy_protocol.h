// PROXY protocol v1 (text) and v2 (binary) header parsing and encoding
// (haproxy.org proxy-protocol.txt): pure functions, no I/O, any thread. And the listener
// filter that reads the header off an accepted connection (worker-local).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>

#include "core/net/listener_filter.h"

namespace ferry::core::net {

struct ProxyHeader {
  // true for v1 "UNKNOWN" and v2 LOCAL / AF_UNSPEC: use the socket's own addresses.
  bool local = false;
  sockaddr_storage src{};  // AF_INET or AF_INET6 when !local
  sockaddr_storage dst{};
  int version = 0;         // 1 or 2
};

enum class ProxyParse {
  kNeedMore,  // a valid prefix so far; read more bytes (v1 max 107 bytes, v2 16 + len)
  kDone,      // *consumed bytes form the header; *out is filled
  kError,     // not a PROXY header, or malformed: close the connection
};

// Parses a header at the start of data[0..len). On kDone sets *consumed and *out.
// On kError sets *error to a short reason.
ProxyParse parseProxyHeader(const uint8_t* data, size_t len, ProxyHeader* out, size_t* consumed,
                            std::string* error);

// The header a proxy sends upstream for a connection from src to dst (both AF_INET or both
// AF_INET6; mixed families are sent as IPv6 with v4-mapped addresses).
std::string encodeProxyV1(const sockaddr_storage& src, const sockaddr_storage& dst);
std::string encodeProxyV2(const sockaddr_storage& src, const sockaddr_storage& dst);

// The listener filter for `proxy_protocol: true`: reads a v1 or v2 header (up to 4 KiB) off
// the raw socket and makes its source and destination the connection's remote and local
// addresses (LOCAL/UNKNOWN keep the socket's). A missing, bad or late header (past
// `timeout`; 0 = none) closes the connection and counts ferry_downstream_proxy_protocol_errors.
ListenerFilterFactory proxyProtocolFilter(std::chrono::milliseconds timeout);

}  // namespace ferry::core::net
