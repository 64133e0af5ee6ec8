// ActiveStream: one HTTP request/response exchange in a connection manager. It is the
// codec's RequestDecoder and talks to the codec only through the stream's ResponseEncoder; it
// runs the filter chain (configured filters, then the router) for the request in order and
// for the response in reverse, with stop / stop-and-buffer / resume both ways
// (FilterIteration), and local replies (gRPC-aware). Protocol-neutral: nothing here knows
// HTTP/1 from HTTP/2. Worker-local. Owned by its HttpConnectionManager.
#pragma once

#include <list>
#include <memory>
#include <new>
#include <optional>
#include <utility>
#include <vector>

#include "core/event/timer.h"
#include "core/pooled.h"
#include "core/http/codec.h"
#include "core/http/filter.h"
#include "core/http/header_map.h"
#include "core/http/route_config.h"
#include "filters/network/http_connection_manager/filter_iteration.h"
#include "filters/network/http_connection_manager/hcm_config.h"
#include "filters/network/http_connection_manager/stream_trace.h"

namespace ferry::filters::network {

class HttpConnectionManager;

class ActiveStream;

// The callbacks one filter gets: the stream's, plus which filter it is (so that resume()
// continues what this filter holds).
class FilterSlot final : public http::FilterCallbacks {
 public:
  FilterSlot(ActiveStream& stream, size_t index) : s_(stream), index_(index) {}
  void resume() override;
  void resumeResponse() override;
  void sendLocalReply(int status, std::string_view body, http::ResponseFlag flag) override;
  core::WorkerContext& worker() override;
  http::RequestHeaders& requestHeaders() override;
  const core::router::Route* route() override;
  http::StreamInfo& streamInfo() override;
  const std::string& downstreamRemoteIp() override;
  const core::net::ConnectionInfo& downstreamConnection() override;
  const std::string& trustedClientIp() override;
  void encode1xxHeaders(http::ResponseHeadersPtr headers) override;
  void encodeHeaders(http::ResponseHeadersPtr headers, bool end_stream) override;
  void encodeData(core::Buffer& data, bool end_stream) override;
  void encodeTrailers(http::HeaderMap trailers) override;
  void setDownstreamReadDisabled(bool disabled) override;
  void resetStream() override;
  void addResponseDataBeforeTrailers(core::Buffer& data) override;

 private:
  ActiveStream& s_;
  size_t index_;
};

// ActiveStream's memory comes from a per-worker free list (core/pooled.h): a keep-alive
// connection's next request gets a freshly constructed stream in a recycled block.
class ActiveStream : public http::RequestDecoder,
                     public http::StreamCallbacks,
                     public core::PerThreadPooled<ActiveStream> {
 public:
  ActiveStream(HttpConnectionManager& hcm, http::ResponseEncoder& encoder);
  ~ActiveStream() override;

  // http::RequestDecoder (from the codec)
  void decodeHeaders(http::RequestHeadersPtr headers, bool end_stream) override;
  void decodeData(core::Buffer& data, bool end_stream) override;
  void decodeTrailers(http::HeaderMap trailers) override;
  void onDecodeError(int status, std::string_view body, http::ResponseFlag flag) override;

  // http::StreamCallbacks (from the codec or the connection manager)
  void onResetStream(http::StreamResetReason reason, std::string_view detail) override;
  void onAboveWriteBufferHighWatermark() override { onDownstreamWatermark(true); }
  void onBelowWriteBufferLowWatermark() override { onDownstreamWatermark(false); }

  // What filters call, through their FilterSlot (filter index `index` for the resumes).
  void resumeRequest(size_t index);
  void resumeResponse(size_t index);
  void sendLocalReply(int status, std::string_view body, http::ResponseFlag flag);
  core::WorkerContext& worker();
  http::RequestHeaders& requestHeaders() { return *request_headers_; }
  const core::router::Route* route() { return route_; }
  http::StreamInfo& streamInfo() { return info_; }
  const std::string& downstreamRemoteIp();
  const core::net::ConnectionInfo& downstreamConnection();
  const std::string& trustedClientIp();
  void encode1xxHeaders(http::ResponseHeadersPtr headers);
  void encodeHeaders(http::ResponseHeadersPtr headers, bool end_stream);
  void encodeData(core::Buffer& data, bool end_stream);
  void encodeTrailers(http::HeaderMap trailers);
  void setDownstreamReadDisabled(bool disabled);
  void resetStream();
  void addResponseDataBeforeTrailers(size_t index, core::Buffer& data);

  // The connection is going away (or the stream is done): tell filters, once.
  void destroyFilters();
  bool requestComplete() const { return request_complete_; }
  bool responseComplete() const { return response_complete_; }

  // The connection manager's intrusive list of open streams (no allocation per stream).
  ActiveStream* prev_ = nullptr;
  ActiveStream* next_ = nullptr;
  bool listed_ = false;

 private:
  // The request and response directions drive the same FilterIteration machinery.
  struct RequestHooks final : FilterIteration::Hooks {
    explicit RequestHooks(ActiveStream& s) : s(s) {}
    http::FilterStatus iterHeaders(size_t pos, bool end_stream) override;
    http::FilterStatus iterData(size_t pos, core::Buffer& data, bool end_stream) override;
    http::FilterStatus iterTrailers(size_t pos) override;
    bool iterAborted() override { return s.local_reply_sent_ || s.destroyed_; }
    void onHold(bool held) override;
    ActiveStream& s;
  };
  struct ResponseHooks final : FilterIteration::Hooks {
    explicit ResponseHooks(ActiveStream& s) : s(s) {}
    http::FilterStatus iterHeaders(size_t pos, bool end_stream) override;
    http::FilterStatus iterData(size_t pos, core::Buffer& data, bool end_stream) override;
    http::FilterStatus iterTrailers(size_t pos) override;
    bool iterAborted() override { return s.destroyed_ || s.response_replaced_; }
    void onHold(bool held) override;
    ActiveStream& s;
  };

  struct Entry {
    Entry(ActiveStream& s, size_t index, std::unique_ptr<http::HttpFilter> f) : filter(std::move(f)), slot(s, index) {}
    std::unique_ptr<http::HttpFilter> filter;
    FilterSlot slot;
  };
  // The chain's entries, sized once (reserve) before the first add and never moved (filters
  // hold their slot). Up to kInline live inside the stream: no allocation per stream.
  class Chain {
   public:
    static constexpr size_t kInline = 8;
    Chain() = default;
    Chain(const Chain&) = delete;
    Chain& operator=(const Chain&) = delete;
    ~Chain() {
      for (size_t i = size_; i > 0; --i) data_[i - 1].~Entry();
      if (data_ != inlineData()) ::operator delete(static_cast<void*>(data_));
    }
    void reserve(size_t n) {  // once, while empty
      if (n <= cap_ || size_ != 0) return;
      data_ = static_cast<Entry*>(::operator new(n * sizeof(Entry)));
      cap_ = n;
    }
    template <typename... Args>
    Entry& emplace_back(Args&&... args) {  // within the reserved size
      return *new (data_ + size_++) Entry(std::forward<Args>(args)...);
    }
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    Entry& operator[](size_t i) { return data_[i]; }
    Entry& back() { return data_[size_ - 1]; }
    Entry* begin() { return data_; }
    Entry* end() { return data_ + size_; }

   private:
    Entry* inlineData() { return reinterpret_cast<Entry*>(inline_); }
    alignas(Entry) unsigned char inline_[kInline * sizeof(Entry)];
    Entry* data_ = inlineData();
    size_t size_ = 0;
    size_t cap_ = kInline;
  };
  void addFilter(std::unique_ptr<http::HttpFilter> filter);
  void applyRouteOverrides();
  // The response filter of response position `pos` (reverse order, the router excluded), and
  // back.
  http::HttpFilter& responseFilter(size_t pos) { return *filters_[filters_.size() - 2 - pos].filter; }
  size_t responsePosition(size_t index) const { return filters_.size() - 2 - index; }
  bool isResponseSink(size_t pos) const { return pos + 1 == filters_.size(); }

  // The sink of the response: the codec's encoder.
  void writeHeaders(bool end_stream);
  void writeData(core::Buffer& data, bool end_stream);
  void writeTrailers();
  void complete();
  void onDownstreamWatermark(bool above);
  // Slow-client timeouts: stream_idle_timeout (re-armed by bytes either way) and
  // request_timeout (until the request's last byte).
  void onActivity() {
    if (idle_ms_.count() > 0) idle_timer_.enable(idle_ms_);
  }
  void onStreamIdleTimeout();
  void onRequestTimeout();
  void timedOut(http::ResponseFlag flag, std::string_view body);
  // The listener's health_path: answered here, before the filters and the routes.
  void answerHealthCheck(const std::string& method);

  HttpConnectionManager& hcm_;
  http::ResponseEncoder* encoder_;  // null once the stream ended or was reset
  // The route table and filter chain current when the request started (held until it ends).
  core::LocalRef<http::HttpRouteConfig> route_config_;
  http::RequestHeadersPtr request_headers_;
  std::optional<http::HeaderMap> request_trailers_;
  http::ResponseHeadersPtr response_headers_;
  std::optional<http::HeaderMap> response_trailers_;
  const core::router::Route* route_ = nullptr;
  // The client address found in the trusted x-forwarded-for hops ("" = the connection's).
  std::string trusted_client_ip_;
  Chain filters_;  // configured filters + router
  http::StreamInfo info_;
  StreamTrace trace_;
  std::chrono::milliseconds idle_ms_{0};
  core::Timer idle_timer_;
  std::optional<core::Timer> request_timer_;  // only with a request_timeout
  RequestHooks request_hooks_{*this};
  ResponseHooks response_hooks_{*this};
  FilterIteration request_{request_hooks_};
  FilterIteration response_{response_hooks_};

  bool request_complete_ = false;
  bool response_started_ = false;  // headers reached the encoder
  bool response_complete_ = false;
  bool local_reply_sent_ = false;
  bool response_replaced_ = false;  // a local reply replaced a response held by a filter
  bool destroyed_ = false;
  bool grpc_ = false;
  bool downstream_held_ = false;  // reads paused for request bytes held at a filter
  bool upstream_held_ = false;    // the router told to pause for response bytes held at a filter
};

}  // namespace ferry::filters::network
