// Every built-in filter, listed once.
#include "filters/network/tcp_proxy/tcp_proxy.h"
#include "filters/registry.h"

namespace ferry::filters {

void registerBuiltins(Registry& registry) {
  registry.addNetwork("tcp_proxy", network::tcpProxyBuilder());
}

}  // namespace ferry::filters
