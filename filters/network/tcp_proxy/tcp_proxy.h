// tcp_proxy: the terminal L4 filter. Connects to a cluster host (round robin), then copies
// bytes both ways unchanged, propagating half-close (FIN) each way and backpressure (a side
// whose write buffer passes its high watermark stops reads on the other side).
// Worker-local; one per downstream connection.
#pragma once

#include "filters/registry.h"

namespace ferry::filters::network {

Registry::NetworkBuilder tcpProxyBuilder();

}  // namespace ferry::filters::network
