// The compiled, immutable configuration of one HTTP listener as one snapshot has it: the
// connection-level settings and stat handles, pinned by a connection when it is accepted,
// and the provider from which each request takes the route table and filter chain current
// when it starts. Built on the main thread with the snapshot; shared read-only by every
// connection of the listener on every worker.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/model.h"
#include "core/router/route_table.h"
#include "core/stats.h"
#include "core/http/access_log.h"
#include "core/http/codec.h"
#include "core/http/filter.h"
#include "core/http/http2/codec.h"
#include "core/http/route_config.h"
#include "core/tracing/exporter.h"

namespace ferry::filters::network {
namespace http = core::http;

struct HcmStats {
  core::StatHandle rq_total;
  core::StatHandle rq_active;
  std::array<core::StatHandle, 6> rq_by_class;  // [1..5] = 1xx..5xx
  std::array<core::StatHandle, static_cast<size_t>(http::ResponseFlag::kCount)> flags;  // by ResponseFlag
  core::HistogramHandle duration;
  core::HistogramHandle response_size;  // response body bytes
  // HTTP/2 edge-defence trips, by kind.
  std::array<core::StatHandle, static_cast<size_t>(http::http2::Violation::kCount)> h2_violations;
  core::StatHandle h2_connections;  // HTTP/2 connections accepted
  // ferry_downstream_timeouts_total{listener,timeout}: request_headers, request, stream_idle.
  core::StatHandle timeout_headers, timeout_request, timeout_stream_idle;
};

struct HcmConfig {
  std::string listener_name;
  config::HttpConfig http;  // connection-level settings (timeouts, limits) are read from here
  // Kept by the listener's state across snapshots; per-worker current route config.
  std::shared_ptr<const http::RouteConfigProvider> routes;
  HcmStats stats;
  std::vector<std::shared_ptr<const http::AccessLog>> access_logs;  // http.access_log, in order
  http::http2::Options h2;  // from http.http2 and the header limits
  std::shared_ptr<const core::tracing::TracerConfig> tracing;  // http.tracing; null: none
  // Makes the codec of a connection; null: HTTP/2 when ALPN says h2 or the first bytes are
  // the HTTP/2 preface (and http2 is enabled), HTTP/1.1 otherwise. Tests put a fake codec here.
  std::function<std::unique_ptr<http::ServerConnection>(http::CodecIo&, http::ServerConnectionCallbacks&)> codec;
};

}  // namespace ferry::filters::network
