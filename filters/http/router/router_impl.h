// The router's internals, shared by router.cc (the routing decision, retries, timeouts, the
// request body kept for a retry) and upstream_request.cc (one attempt: a stream from a host's
// pool). Protocol-neutral: it sends the request through a RequestEncoder and gets the response
// as ResponseDecoder events, whatever the upstream speaks. Worker-local; one per stream.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/event/timer.h"
#include "core/http/codec.h"
#include "core/http/filter.h"
#include "core/pooled.h"
#include "core/router/route_table.h"
#include "core/upstream/cluster.h"
#include "core/upstream/stream_pool.h"

namespace ferry::filters::http {

class Router;

// One try of the request on one host: asks the host's pool for a stream, sends the request
// the router hands it, and passes the response back. Embedded in the Router (no allocation
// per request); a retry makes a new one.
class UpstreamRequest final : public core::http::ResponseDecoder,
                              public core::http::StreamCallbacks,
                              public core::upstream::StreamPoolCallbacks {
 public:
  UpstreamRequest(Router& router, core::upstream::StreamPool& pool) : router_(router), pool_(pool) {}
  ~UpstreamRequest() override { reset(); }

  // Asks the pool for a stream. The pool may answer at once (onPoolReady / onPoolFailure run
  // before this returns, and may destroy this object): touch nothing after calling it.
  void start();
  // Ends the try without waiting for its response: withdraws a waiting request, or resets a
  // stream in progress (HTTP/1: closes its connection). A finished stream is left alone.
  void reset();
  // The stream to send the request on; null while waiting for the pool, after the response
  // ended, or after a reset.
  core::http::RequestEncoder* encoder() const { return encoder_; }
  bool reused() const { return reused_; }
  core::upstream::StreamPool& pool() const { return pool_; }

  // StreamPoolCallbacks
  void onPoolReady(core::http::RequestEncoder& encoder, bool reused) override;
  void onPoolFailure(core::upstream::PoolFailure reason, std::string_view detail) override;
  // ResponseDecoder
  void decode1xxHeaders(core::http::ResponseHeadersPtr headers) override;
  void decodeHeaders(core::http::ResponseHeadersPtr headers, bool end_stream) override;
  void decodeData(core::Buffer& data, bool end_stream) override;
  void decodeTrailers(core::http::HeaderMap trailers) override;
  // StreamCallbacks
  void onResetStream(core::http::StreamResetReason reason, std::string_view detail) override;
  void onAboveWriteBufferHighWatermark() override;
  void onBelowWriteBufferLowWatermark() override;

 private:
  Router& router_;
  core::upstream::StreamPool& pool_;
  uint64_t ticket_ = 0;  // while waiting for the pool
  core::http::RequestEncoder* encoder_ = nullptr;
  bool reused_ = false;
  bool finished_ = false;  // the response ended: the stream belongs to the pool again
};

// Made per stream; its memory comes from a per-worker free list (core/pooled.h).
class Router final : public core::http::HttpFilter, public core::PerThreadPooled<Router> {
 public:
  ~Router() override { onDestroy(); }

  core::http::FilterStatus onRequestHeaders(core::http::RequestHeaders& h, bool end_stream) override;
  core::http::FilterStatus onRequestBody(core::Buffer& data, bool end_stream) override;
  core::http::FilterStatus onRequestTrailers(core::http::HeaderMap& trailers) override;
  void onDownstreamWatermark(bool above) override;
  void onDestroy() override;

  // From the UpstreamRequest of the current try.
  void onUpstreamReady();
  void onUpstreamFailure(core::upstream::PoolFailure reason, std::string_view detail);
  void onUpstream1xx(core::http::ResponseHeadersPtr headers);
  void onUpstreamHeaders(core::http::ResponseHeadersPtr headers, bool end_stream);
  void onUpstreamData(core::Buffer& data, bool end_stream);
  void onUpstreamTrailers(core::http::HeaderMap trailers);
  void onUpstreamReset(core::http::StreamResetReason reason, std::string_view detail);
  void onUpstreamWatermark(bool above);

 private:
  enum class RetryOn { kConnectFailure, kReset, kPerTryTimeout, kStatus };

  void startAttempt();
  void endAttempt();
  void releaseRetrySlot();
  void retainBody(const core::Buffer& data);
  bool maybeRetry(RetryOn why, int status);
  std::optional<uint64_t> hashKey(const core::http::RequestHeaders& h, const config::HashOnConfig& on);
  void onTimeout();
  void onPerTryTimeout();
  void fail(int status, std::string_view body, core::http::ResponseFlag flag);
  // The response is over (or given up): timers off, the try ends.
  void finishUpstream();
  // Drops the current try: withdraws or resets it (unless its stream finished).
  void dropUpstream();
  void countUpstream(int status);
  void countHost(int status);
  void sendDirect(int status, const std::string& body, const std::string& location);
  void sendRedirect(const core::http::RequestHeaders& h);

  const core::router::Route* entry_ = nullptr;  // held by the stream's route table
  const config::RouteConfig* route_ = nullptr;
  const core::upstream::Cluster* cluster_ = nullptr;  // held by the route
  const core::upstream::Host* host_ = nullptr;        // kept alive by its pool
  std::optional<UpstreamRequest> upstream_;
  std::optional<core::Timer> timeout_;      // the route timeout, over all tries
  std::optional<core::Timer> try_timeout_;  // per_try_timeout
  std::optional<core::Timer> backoff_;      // until the next retry
  core::Buffer body_;  // request body that arrived before the stream was ready
  bool body_end_ = false;
  std::optional<core::http::HeaderMap> trailers_;
  // Retries.
  const config::RetryConfig* retry_ = nullptr;
  uint32_t retries_left_ = 0;
  uint32_t attempts_ = 0;   // retries started
  core::Buffer retained_;   // the request body sent so far, for a retry
  std::optional<core::http::HeaderMap> kept_trailers_;
  std::optional<uint64_t> hash_;
  int64_t attempt_start_us_ = 0;  // when the current try's request went upstream
  uint32_t attempt_id_ = 0;  // bumped per try (a try may end while its request is being sent)
  int downstream_full_ = 0;  // the client's side cannot take more (counted): upstream reads paused
  bool retain_ = false;
  bool idempotent_ = true;
  bool retry_slot_ = false;
  bool attempt_active_ = false;
  bool count_active_ = false;  // host_->rq_active was incremented
  bool request_counted_ = false;
  bool request_end_ = false;
  bool request_sent_ = false;
  bool headers_sent_ = false;
  bool response_started_ = false;
  bool done_ = false;
  bool destroyed_ = false;
  bool stale_retry_ = false;
  bool body_streamed_ = false;
  bool held_downstream_ = false;
  bool held_upstream_full_ = false;
};

}  // namespace ferry::filters::http
