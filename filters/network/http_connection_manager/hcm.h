// The HTTP connection manager: the terminal network filter of an `http` listener. It runs the
// HTTP/1 codec, one ActiveStream per request (pipelined requests are answered in order), the
// HTTP filter chain with the router last, and the connection's timeouts.
// Worker-local; one per downstream connection.
#pragma once

#include <memory>

#include "filters/network/http_connection_manager/hcm_config.h"
#include "filters/registry.h"

namespace ferry::filters::network {

// Builds the network filter factory for an http listener (registered as
// "http_connection_manager" in builtin.cc).
Registry::NetworkBuilder httpConnectionManagerBuilder();

// Makes the HcmConfig of a listener (route table, filter factories, stats).
std::shared_ptr<const HcmConfig> buildHcmConfig(const BuildContext& ctx, std::string* error);

}  // namespace ferry::filters::network
