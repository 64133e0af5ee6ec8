// HttpConnectionManager: see hcm.h. Internal header shared by hcm.cc and active_stream.cc.
#pragma once

#include <list>
#include <memory>
#include <string>

#include "core/event/deferred_deleter.h"
#include "core/event/timer.h"
#include "core/http/codec.h"
#include "core/net/network_filter.h"
#include "filters/network/http_connection_manager/active_stream.h"
#include "filters/network/http_connection_manager/hcm_config.h"

namespace ferry::filters::network {

class HttpConnectionManager : public core::net::NetworkFilter,
                              public http::ServerConnectionCallbacks,
                              public http::CodecIo {
 public:
  explicit HttpConnectionManager(std::shared_ptr<const HcmConfig> config);
  ~HttpConnectionManager() override;

  // NetworkFilter
  core::net::FilterStatus onNewConnection() override;
  core::net::FilterStatus onData(core::Buffer& data, bool end_stream) override;
  void onDownstreamEvent(core::net::ConnectionEvent event) override;
  void onDownstreamAboveWriteHighWatermark() override;
  void onDownstreamBelowWriteLowWatermark() override;
  void onDrain() override;

  // http::ServerConnectionCallbacks
  http::RequestDecoder& newStream(http::ResponseEncoder& encoder) override;
  void onCodecError(int status, http::ResponseFlag flag, std::string_view detail) override;

  // http::CodecIo
  void write(core::Buffer& data, bool end_stream) override { callbacks_->writeDownstream(data, end_stream); }
  void closeConnection(bool flush) override;
  void readDisable(bool disable) override;

  // For ActiveStream.
  const HcmConfig& config() const { return *config_; }
  core::WorkerContext& worker() { return callbacks_->worker(); }
  const core::net::ConnectionInfo& connectionInfo() const { return callbacks_->info(); }
  // The client's IP as text (for x-forwarded-for), formatted once per connection.
  const std::string& remoteIp();
  // The connection drains (reload or process drain): responses from now on close it.
  bool draining() { return callbacks_->draining(); }
  void drainNotice() { codec_->drainNotice(); }
  // A stream's response is complete, or the stream was reset: it leaves (destroyed once the
  // call stack unwinds) and the connection goes on with what waits.
  void onStreamDone(ActiveStream& stream);
  void onStreamRejected(int status, http::ResponseFlag flag, std::string_view detail) override;
  bool responseFlagsHeader() const override { return config_->http.response_flags_header; }
  // The connection's timer queue, for the streams' own timers.
  core::TimerQueue& timerQueue() { return idle_timer_->queue(); }
  // Stats for one finished request (`route`: its matched route, for per-route series).
  void recordRequest(const http::StreamInfo& info, const core::router::Route* route = nullptr);
  // A stream that ended without a complete response: only its flag is counted.
  void countFlag(http::ResponseFlag flag) {
    if (flag != http::ResponseFlag::kNone) worker().stats->inc(config_->stats.flags[static_cast<size_t>(flag)]);
  }
  // The access logs' line for one exchange (ended, reset or refused).
  void logRequest(http::LogContext& ctx) {
    if (config_->access_logs.empty()) return;
    ctx.connection = &connectionInfo();
    ctx.listener = config_->listener_name;
    for (const auto& log : config_->access_logs) log->log(worker(), ctx);
  }

 private:
  void armIdleTimer();
  void onIdleTimeout();
  void onHeadersTimeout();
  void dispatchPending();
  // Makes the codec: HTTP/2 when `http2`, HTTP/1.1 otherwise.
  void makeCodec(bool http2);

  std::shared_ptr<const HcmConfig> config_;
  std::unique_ptr<http::ServerConnection> codec_;  // made in onNewConnection
  ActiveStream* streams_ = nullptr;  // open streams, an intrusive list; owned (released unique_ptrs)
  std::unique_ptr<core::DeferredDeleter<ActiveStream>> finished_;  // made in onNewConnection
  std::unique_ptr<core::Timer> idle_timer_;
  std::unique_ptr<core::Timer> headers_timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::string remote_ip_;
  uint32_t requests_ = 0;
  bool dead_ = false;  // closed or closing: nothing more is parsed
  bool mid_request_ = false;  // bytes of a request head arrived and its stream has not started
  bool http2_ = false;
  bool drain_pending_ = false;  // a drain notice came before the codec was chosen
  core::Buffer first_bytes_;    // bytes read before the protocol is known (a preface prefix)
  http::http2::Stats h2_stats_;
};

}  // namespace ferry::filters::network
