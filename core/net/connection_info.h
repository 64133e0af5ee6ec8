// ConnectionInfo: what is known about a downstream connection's endpoints. Filled at accept,
// refined by listener filters (the PROXY protocol names the real client), then read by the
// network and HTTP filters. Worker-local value.
#pragma once

#include <netinet/in.h>

namespace ferry::core::net {

// With PROXY protocol, `remote` is the client the header names and `direct_remote` the load
// balancer that connected.
struct ConnectionInfo {
  sockaddr_storage remote{};
  sockaddr_storage local{};
  sockaddr_storage direct_remote{};
  bool from_proxy_protocol = false;
};

}  // namespace ferry::core::net
