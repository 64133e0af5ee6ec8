// HttpConnectionManager: see hcm.h. Internal header shared by hcm.cc and active_stream.cc.
//
// Idle connections are most connections, so the manager is in two parts. The manager itself
// (one per downstream connection, about 100 bytes) keeps what must outlive a request: the
// config, the request count, the drain and dead flags, and one timer hook (the first request's
// head timeout, then the keep-alive idle timeout: never both at once). The HTTP state (the
// codec with its parser, the open and finished streams, the client's IP text, the bytes read
// before the protocol is known) is a Session, taken from a per-thread pool when a request's
// first byte arrives and given back once the connection is idle again (HTTP/1: its response
// done and nothing waiting); the pool keeps the codec and its grown memory, so this costs no
// allocation. HTTP/2 (and a codec a test supplies) keeps its session for the connection's
// lifetime.
#pragma once

#include <list>
#include <memory>
#include <string>

#include "core/event/poller.h"
#include "core/event/timer.h"
#include "core/http/codec.h"
#include "core/net/network_filter.h"
#include "filters/network/http_connection_manager/active_stream.h"
#include "filters/network/http_connection_manager/hcm_config.h"

namespace ferry::filters::network {

class HttpConnectionManager : public core::net::NetworkFilter, private core::TimerHook {
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

  // For ActiveStream (a stream exists only while the session does).
  const HcmConfig& config() const { return *config_; }
  core::WorkerContext& worker() { return callbacks_->worker(); }
  const core::net::ConnectionInfo& connectionInfo() const { return callbacks_->info(); }
  // The client's IP as text (for x-forwarded-for), formatted once per session.
  const std::string& remoteIp();
  // The connection drains (reload or process drain): responses from now on close it.
  bool draining() { return callbacks_->draining(); }
  void drainNotice();
  // A stream's response is complete, or the stream was reset: it leaves (destroyed once the
  // call stack unwinds) and the connection goes on with what waits.
  void onStreamDone(ActiveStream& stream);
  // The worker's timer queue, for the streams' own timers.
  core::TimerQueue& timerQueue() { return worker().timers(); }
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

  // Whether the connection holds HTTP state now (tests: an idle HTTP/1 connection holds none).
  bool holdsHttpState() const { return session_ != nullptr; }
  // Sessions waiting in this thread's pool (tests, diagnostics).
  static size_t pooledSessions();

  class Session;

 private:
  friend class Session;
  enum class Wait : uint8_t { kNone, kHeaders, kIdle };  // what the timer hook is armed for

  // The codec's callbacks (through the session).
  http::RequestDecoder& newStream(http::ResponseEncoder& encoder);
  void onCodecError(int status, http::ResponseFlag flag, std::string_view detail);
  void onStreamRejected(int status, http::ResponseFlag flag, std::string_view detail);
  void closeConnection(bool flush);
  void readDisable(bool disable);

  void onTimer() override;
  void arm(Wait what, std::chrono::milliseconds d);
  void disarm();
  void armIdleTimer();
  void onIdleTimeout();
  void onHeadersTimeout();
  // Takes a session from the pool (if none is held).
  Session& session();
  // Gives the session back (destroying its finished streams first).
  void releaseSession();
  // After a stream ended, from the loop: destroys finished streams, parses what waits, and
  // lets an idle HTTP/1 connection give its session back.
  void afterStreams();
  // Makes the codec: HTTP/2 when `http2`, HTTP/1.1 otherwise.
  void makeCodec(bool http2);

  // Small members first: they fit in the timer hook's tail padding.
  Wait wait_ : 2 = Wait::kNone;
  bool dead_ : 1 = false;  // closed or closing: nothing more is parsed
  bool http2_ : 1 = false;
  bool drain_pending_ : 1 = false;  // a drain notice to give to the next codec made
  uint32_t requests_ = 0;
  // The listener's spec, which its ActiveConnection holds while this filter lives, keeps the
  // config alive (the filter factory holds it); a pointer is enough.
  const HcmConfig* config_;
  Session* session_ = nullptr;  // null while idle (HTTP/1) and before the first byte
};

}  // namespace ferry::filters::network
