// The connection manager's part of tracing (docs/tracing-section.md): per stream, W3C Trace
// Context in (continue a valid traceparent, or start a trace), traceparent (and, when absent,
// x-request-id) out to the upstream, and at the end a sampled server span to the worker's
// OTLP exporter. Worker-local; one per ActiveStream, idle unless the listener has `tracing`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/event/worker_context.h"
#include "core/http/filter.h"
#include "core/http/header_map.h"
#include "core/tracing/exporter.h"

namespace ferry::filters::network {

class StreamTrace {
 public:
  // At the request head (path normalised, before routing): fills info.trace, sets traceparent
  // (removes tracestate when the incoming traceparent was not valid) and x-request-id when the
  // request has none (the trace id in UUID layout).
  void start(const core::tracing::TracerConfig& cfg, core::http::RequestHeaders& h, core::http::StreamInfo& info);
  // The stream is over (completed or reset): a sampled span goes to the exporter.
  void finish(const core::tracing::TracerConfig& cfg, const core::http::RequestHeaders& h,
              const core::http::StreamInfo& info, core::WorkerContext& w, std::string_view client_ip);

 private:
  // What the router may rewrite (prefix_rewrite, host_rewrite): kept as the client sent it.
  std::string path_;
  std::string authority_;
  int64_t start_ns_ = 0;
  bool export_ = false;  // sampled, and the listener exports spans
};

}  // namespace ferry::filters::network
