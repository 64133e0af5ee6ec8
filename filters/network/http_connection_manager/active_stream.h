// ActiveStream: one HTTP request/response exchange inside a connection manager: the filter
// chain (configured filters, then the router), request hooks in order, response hooks in
// reverse, stop/resume, local replies. Worker-local. Owned by its HttpConnectionManager.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "core/http/header_map.h"
#include "core/http/filter.h"
#include "core/http/route_config.h"
#include "filters/network/http_connection_manager/hcm_config.h"

namespace ferry::filters::network {

class HttpConnectionManager;

class ActiveStream : public http::FilterCallbacks {
 public:
  ActiveStream(HttpConnectionManager& hcm, core::http::RequestHeadersPtr headers);
  ~ActiveStream() override;

  // Request side, from the codec (or the tunnel after an upgrade).
  void decodeHeaders(bool end_stream);
  void decodeData(core::Buffer& data, bool end_stream);
  void decodeTrailers(core::http::HeaderMap trailers);

  // http::FilterCallbacks
  void resume() override;
  void sendLocalReply(int status, std::string_view body, http::ResponseFlag flag) override;
  core::WorkerContext& worker() override;
  core::http::RequestHeaders& requestHeaders() override { return *request_headers_; }
  const core::router::Route* route() override { return route_; }
  http::StreamInfo& streamInfo() override { return info_; }
  const std::string& downstreamRemoteIp() override;
  void encodeHeaders(core::http::ResponseHeadersPtr headers, bool end_stream) override;
  void encodeData(core::Buffer& data, bool end_stream) override;
  void encodeTrailers(core::http::HeaderMap trailers) override;
  void setDownstreamReadDisabled(bool disabled) override;
  void resetStream() override;

  // Downstream write buffer watermarks, for the router's flow control.
  void onDownstreamWatermark(bool above);
  // The connection is going away (or the stream is done): tell filters, once.
  void destroyFilters();

  bool requestComplete() const { return request_complete_; }
  bool responseComplete() const { return response_complete_; }
  bool responseStarted() const { return response_started_; }
  bool isUpgrade() const { return upgrade_; }
  bool isHeadRequest() const { return head_request_; }

 private:
  void iterateRequestHeaders(size_t from);
  void iterateRequestData(core::Buffer& data, bool end_stream, size_t from);
  void iterateRequestTrailers(size_t from);
  void finishEncodeHeaders(core::http::ResponseHeaders& h, bool end_stream);
  void complete();

  HttpConnectionManager& hcm_;
  // The route table and filter chain current when the request started (held until it ends).
  core::LocalRef<http::HttpRouteConfig> route_config_;
  core::http::RequestHeadersPtr request_headers_;
  const core::router::Route* route_ = nullptr;
  std::vector<std::unique_ptr<http::HttpFilter>> filters_;  // configured filters + router
  http::StreamInfo info_;

  // Request-side iteration state.
  enum class Phase { kHeaders, kData, kTrailers, kDone };
  Phase req_phase_ = Phase::kHeaders;
  size_t req_stopped_at_ = SIZE_MAX;    // filter that returned kStop (headers/data/trailers)
  size_t data_buffering_at_ = SIZE_MAX;  // filter that returned kStopAndBuffer
  bool headers_end_stream_ = false;
  core::Buffer held_;                    // data held for a stopped or buffering filter
  bool held_end_stream_ = false;
  core::Buffer waiting_body_;            // body that arrived while headers were stopped
  bool waiting_end_stream_ = false;
  std::optional<core::http::HeaderMap> trailers_;
  bool trailers_waiting_ = false;

  bool request_complete_ = false;
  bool response_started_ = false;
  bool response_complete_ = false;
  bool local_reply_sent_ = false;
  bool upgrade_ = false;
  bool head_request_ = false;
  bool destroyed_ = false;
  bool grpc_ = false;
};

}  // namespace ferry::filters::network
