// HttpConnectionManager: see hcm.h. Internal header shared by hcm.cc and active_stream.cc.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/event/deferred_deleter.h"
#include "core/event/timer.h"
#include "core/http/http1/codec.h"
#include "filters/network/http_connection_manager/active_stream.h"
#include "filters/network/http_connection_manager/hcm_config.h"
#include "core/net/network_filter.h"

namespace ferry::filters::network {

class HttpConnectionManager : public core::net::NetworkFilter, public core::http::http1::ServerCodecCallbacks {
 public:
  explicit HttpConnectionManager(std::shared_ptr<const HcmConfig> config);
  ~HttpConnectionManager() override;

  // NetworkFilter
  core::net::FilterStatus onNewConnection() override;
  core::net::FilterStatus onData(core::Buffer& data, bool end_stream) override;
  void onDownstreamEvent(core::net::ConnectionEvent event) override;
  void onDownstreamAboveWriteHighWatermark() override;
  void onDownstreamBelowWriteLowWatermark() override;

  // ServerCodecCallbacks
  void onRequestHeaders(core::http::RequestHeadersPtr headers, bool end_stream) override;
  void onRequestData(core::Buffer& data, bool end_stream) override;
  void onRequestTrailers(core::http::HeaderMap trailers) override;
  void onProtocolError(int status, std::string_view detail) override;

  // For ActiveStream.
  const HcmConfig& config() const { return *config_; }
  core::WorkerContext& worker() { return callbacks_->worker(); }
  const core::net::ConnectionInfo& connectionInfo() const { return callbacks_->info(); }
  // The client's IP as text (for x-forwarded-for), formatted once per connection.
  const std::string& remoteIp();
  core::http::http1::ServerCodec& codec() { return codec_; }
  void writeDownstream(core::Buffer& data, bool end_stream) { callbacks_->writeDownstream(data, end_stream); }
  void setReadDisabled(bool disabled);
  // The response is fully written: finish the stream, then go on with the next request.
  void onStreamComplete();
  // Tear the connection down (a protocol error or a reset after the response started).
  void closeConnection(bool flush);
  // Response headers must say "connection: close" and the connection closes after it.
  bool closeAfterResponse() const { return close_after_response_; }
  void setCloseAfterResponse() { close_after_response_ = true; }
  // After a 101: raw bytes both ways.
  void enterTunnel();
  bool tunneling() const { return tunnel_; }
  // Stats for one finished request.
  void recordRequest(const http::StreamInfo& info);

 private:
  void dispatch();
  void armIdleTimer();
  std::string remote_ip_;
  void onIdleTimeout();
  void onHeadersTimeout();
  // A response written without a stream or codec (protocol errors, 408): then close.
  void sendRawErrorAndClose(int status, std::string_view body, http::ResponseFlag flag);
  // Moves the current stream out; it is destroyed once the call stack unwinds.
  void retireStream();

  std::shared_ptr<const HcmConfig> config_;
  core::http::http1::ServerCodec codec_;
  core::Buffer pending_;  // bytes read but not yet parsed (pipelined requests wait here)
  std::unique_ptr<ActiveStream> stream_;
  std::unique_ptr<core::DeferredDeleter<ActiveStream>> finished_;  // made in onNewConnection
  std::unique_ptr<core::Timer> idle_timer_;
  std::unique_ptr<core::Timer> headers_timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  uint32_t requests_ = 0;
  int read_disabled_ = 0;
  bool eof_ = false;
  bool dead_ = false;  // a protocol error or close: nothing more is parsed
  bool close_after_response_ = false;
  bool tunnel_ = false;
  bool in_dispatch_ = false;
  bool downstream_above_high_ = false;
};

}  // namespace ferry::filters::network
