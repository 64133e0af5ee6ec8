// Every built-in filter, listed once.
#include "filters/http/basic_auth/basic_auth_filter.h"
#include "filters/http/buffer/buffer_filter.h"
#include "filters/http/compression/compression_filter.h"
#include "filters/http/cors/cors_filter.h"
#include "filters/http/fault/fault_filter.h"
#include "filters/http/global_rate_limit/global_rate_limit.h"
#include "filters/http/local_rate_limit/local_rate_limit.h"
#include "filters/http/rbac/rbac_filter.h"
#include "filters/network/http_connection_manager/hcm.h"
#include "filters/network/tcp_proxy/tcp_proxy.h"
#include "filters/registry.h"

namespace ferry::filters {

void registerBuiltins(Registry& registry) {
  registry.addNetwork("tcp_proxy", network::tcpProxyBuilder());
  registry.addNetwork("http_connection_manager", network::httpConnectionManagerBuilder());
  registry.addHttp("buffer", http::bufferFilterBuilder());
  registry.addHttp("compression", http::compressionFilterBuilder());
  registry.addHttp("fault", http::faultFilterBuilder());
  registry.addHttp("local_rate_limit", http::localRateLimitFilterBuilder());
  registry.addHttp("global_rate_limit", http::globalRateLimitFilterBuilder());
  registry.addHttp("cors", http::corsFilterBuilder());
  registry.addHttp("rbac", http::rbacFilterBuilder());
  registry.addHttp("basic_auth", http::basicAuthFilterBuilder());
}

}  // namespace ferry::filters
