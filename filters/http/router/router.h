// The router: the implicit last HTTP filter. Acts on the matched route: a direct response,
// a redirect, or forwarding to a cluster (weighted pick, round-robin host, the worker's
// connection pool), with prefix/host rewrites, header mutations, the route timeout and the
// error table of docs/http.md (404 NR, 503 UH/UF/UO, 502 UC/UPE, 504 UT).
// Worker-local; one per stream.
#pragma once

#include <memory>

#include "core/http/filter.h"

namespace ferry::filters::http {

std::unique_ptr<core::http::HttpFilter> makeRouter();

}  // namespace ferry::filters::http
