// HTTP filters: one class for both directions with no-op defaults. Request hooks run in
// configured order, response hooks in reverse; the router is the implicit last filter.
// Filters never see the wire version: HTTP/1 and HTTP/2 feed the same model. Core defines
// the interface (the connection manager drives it); filters/ holds the implementations.
// Worker-local; one filter object per stream, made by a factory built at config time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/buffer.h"
#include "core/event/worker_context.h"
#include "core/net/connection_info.h"
#include "core/http/header_map.h"
#include "core/tracing/trace_context.h"

namespace ferry::core::router {
struct Route;
}

namespace ferry::core::http {

enum class FilterStatus {
  kContinue,  // pass on to the next filter
  // Stop here: what the filter stopped waits at it until it calls resume() (resumeResponse()
  // in response hooks) or sendLocalReply(). From a headers hook, the body waits too, unseen
  // by the filter, and reading from the client (or upstream) pauses meanwhile.
  kStop,
  // From a headers hook: hold the headers, but give me the body as it arrives (returning
  // kContinue from the body hook lets the headers go on, then the body). From a body hook:
  // hold this data and call me again with all of it when more arrives (end_stream on the
  // last call), until I return kContinue. The filter bounds what it buffers itself.
  kStopAndBuffer,
};

// Why a response was generated locally (the error table of docs/http.md); "-" when none.
enum class ResponseFlag {
  kNone,
  kDownstreamProtocolError,   // DPE 400/431
  kRequestTimeout,            // DRT 408
  kBodyTooLarge,              // DBL 413
  kNoRoute,                   // NR 404
  kNoHealthyUpstream,         // UH 503
  kUpstreamConnectFailure,    // UF 503
  kUpstreamOverflow,          // UO 503
  kUpstreamConnectionClosed,  // UC 502
  kUpstreamProtocolError,     // UPE 502
  kUpstreamTimeout,           // UT 504
  kDraining,                  // DR 503
  kFaultInjected,             // FI (fault filter abort; status from config)
  kDelayInjected,             // DI (fault filter delay; not an error)
  kDownstreamConnectionTermination,  // DC: the client went away before the response ended
  kUpstreamResetAfterResponseStarted,  // UR: the response was cut off (upstream reset or closed)
  kRateLimited,               // RL 429 (local_rate_limit; in shadow mode on the forwarded request)
  kRbacDenied,                // RBAC 403: refused by the rbac filter
  kStreamIdleTimeout,         // SI 408 (or a reset once the response started): stream_idle_timeout
  kRequestOverallTimeout,     // RQT 408: the request did not arrive within request_timeout
  kBasicAuthDenied,           // BA 401: no, malformed or wrong credentials (basic_auth filter)
  kGlobalRateLimited,         // GRL 429: global_rate_limit (in shadow mode on the forwarded request)
  kRateLimitServiceError,     // RLSE 429: global_rate_limit could not ask Redis and failure_mode is deny
  kCount,
};
const char* responseFlagName(ResponseFlag f);
// The flag's long form for %RESPONSE_CODE_DETAILS% ("no_healthy_upstream"); "" for kNone.
const char* responseFlagDetails(ResponseFlag f);
// The grpc-status a locally generated response carries toward a gRPC client.
int grpcStatusFor(ResponseFlag f, int http_status);

// Per-stream facts gathered for logs and stats.
struct StreamInfo {
  int64_t start_us = 0;  // monotonic (core::monotonicUs), when the request head arrived
  int response_code = 0;
  ResponseFlag flag = ResponseFlag::kNone;
  // Why the response is what it is, when not the flag's own details: "direct_response",
  // "redirect", "health_path", "via_upstream". A static string.
  const char* details = nullptr;
  int64_t response_start_us = 0;     // monotonic, when the response head went out (0 = never)
  int64_t upstream_service_us = -1;  // request sent upstream -> response head, last attempt
  std::string upstream_cluster;
  std::string upstream_host;
  uint64_t request_body_bytes = 0;
  uint64_t response_body_bytes = 0;
  bool grpc = false;  // content-type application/grpc...
  tracing::TraceContext trace;  // trace id, span id, sampled (listeners with `tracing`)
};

// What a filter may do with its stream. Implemented by the connection manager.
class FilterCallbacks {
 public:
  virtual ~FilterCallbacks() = default;
  // Continues the request after this filter stopped it (headers, data it holds, trailers):
  // they go on to the next filter. Not from inside the hook that returned the stop.
  virtual void resume() = 0;
  // The same for the response, after this filter stopped it in a response hook.
  virtual void resumeResponse() = 0;
  // Ends the stream with a locally generated response (gRPC-aware), from any hook. After it
  // the filter gets no more request hooks. A filter must return kStop after calling it.
  virtual void sendLocalReply(int status, std::string_view body, ResponseFlag flag) = 0;
  virtual WorkerContext& worker() = 0;
  virtual RequestHeaders& requestHeaders() = 0;
  // The matched route (with its clusters resolved), or nullptr (no route: the router answers
  // 404). Valid for the stream's life: the stream holds the route table it started with.
  virtual const router::Route* route() = 0;
  virtual StreamInfo& streamInfo() = 0;
  // The client's IP as text (after PROXY protocol, before x-forwarded-for).
  virtual const std::string& downstreamRemoteIp() = 0;
  // The downstream connection's addresses (after PROXY protocol).
  virtual const net::ConnectionInfo& downstreamConnection() = 0;
  // The client's IP as text after PROXY protocol and the trusted x-forwarded-for hops: with
  // `xff_trusted_hops: N` > 0, the Nth address from the right of the x-forwarded-for the
  // request arrived with (the one the outermost trusted proxy appended); otherwise, and when
  // that header has fewer than N addresses or the one found is not an IP address,
  // downstreamRemoteIp(). What access rules on a client address match.
  virtual const std::string& trustedClientIp() = 0;

  // For the terminal filter (the router): the response toward the client. Response hooks of
  // the other filters run (in reverse order) before it is written. An interim 1xx goes straight
  // to the codec (which decides whether the client gets it).
  virtual void encode1xxHeaders(ResponseHeadersPtr headers) = 0;
  virtual void encodeHeaders(ResponseHeadersPtr headers, bool end_stream) = 0;
  virtual void encodeData(Buffer& data, bool end_stream) = 0;
  virtual void encodeTrailers(HeaderMap trailers) = 0;
  // Flow control: stop/resume reading the client while the upstream cannot take more.
  virtual void setDownstreamReadDisabled(bool disabled) = 0;
  // Aborts the exchange after the response started (its framing cannot be completed): the
  // client connection is closed.
  virtual void resetStream() = 0;
  // From this filter's onResponseTrailers only: `data` goes on (through the response filters
  // after this one, to the client) before the trailers, e.g. the end of a compressed stream.
  // `data` is consumed.
  virtual void addResponseDataBeforeTrailers(Buffer& data) = 0;
};

class HttpFilter {
 public:
  virtual ~HttpFilter() = default;
  // Once, before any hook.
  virtual void setCallbacks(FilterCallbacks& cb) { callbacks_ = &cb; }

  virtual FilterStatus onRequestHeaders(RequestHeaders& headers, bool end_stream) { return FilterStatus::kContinue; }
  virtual FilterStatus onRequestBody(Buffer& data, bool end_stream) { return FilterStatus::kContinue; }
  virtual FilterStatus onRequestTrailers(HeaderMap& trailers) { return FilterStatus::kContinue; }
  virtual FilterStatus onResponseHeaders(ResponseHeaders& headers, bool end_stream) { return FilterStatus::kContinue; }
  virtual FilterStatus onResponseBody(Buffer& data, bool end_stream) { return FilterStatus::kContinue; }
  virtual FilterStatus onResponseTrailers(HeaderMap& trailers) { return FilterStatus::kContinue; }
  // The client's write buffer passed its high watermark (true) or fell under the low one.
  virtual void onDownstreamWatermark(bool above) {}
  // The stream is over (completed or reset); for logging. Must not call back.
  virtual void onComplete(const StreamInfo& info) {}
  // The stream is going away: cancel timers and pending work. Called exactly once.
  virtual void onDestroy() {}

 protected:
  FilterCallbacks* callbacks_ = nullptr;
};

// Makes the per-stream filter; cheap. Built once per config snapshot.
using HttpFilterFactory = std::function<std::unique_ptr<HttpFilter>()>;

}  // namespace ferry::core::http
