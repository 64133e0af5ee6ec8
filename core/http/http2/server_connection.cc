// The HTTP/2 server side of core/http/codec.h (see codec.h for the rules it keeps).
//
// One Stream per request: it gathers the request's header block (with limits), hands the
// request to the connection manager (newStream + decodeHeaders), passes DATA frames on as they
// complete, and is the stream's ResponseEncoder. A stream nghttp2 closes moves to a graveyard
// that is emptied when the outermost call into the codec returns, so an encoder call that
// ends its own stream is safe.
#include <algorithm>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/event/poller.h"
#include "core/event/timer.h"
#include "core/pooled.h"
#include "core/http/http2/session.h"
#include "core/log.h"

namespace ferry::core::http::http2 {
namespace {

using detail::HeaderBlock;
using detail::NvList;
using detail::OutBody;

class ServerConnectionImpl;

// Made and destroyed once per request: its memory is recycled per thread.
class Stream final : public ResponseEncoder, public PerThreadPooled<Stream> {
 public:
  Stream(ServerConnectionImpl& conn, int32_t id) : conn_(conn), id_(id) {}

  // ResponseEncoder
  void encodeHeaders(const ResponseHeaders& headers, bool end_stream) override;
  void encode1xxHeaders(const ResponseHeaders& headers) override;
  void encodeData(Buffer& data, bool end_stream) override;
  void encodeTrailers(const HeaderMap& trailers) override;
  void readDisable(bool disable) override;
  void resetStream(StreamResetReason reason) override;
  void setStreamCallbacks(StreamCallbacks* callbacks) override { cb_ = callbacks; }

  ServerConnectionImpl& conn_;
  const int32_t id_;
  RequestHeadersPtr request_ = makeRequestHeaders();
  HeaderBlock block_;
  HeaderMap trailers_;
  bool in_trailers_ = false;
  RequestDecoder* decoder_ = nullptr;  // null before the headers and once the stream is over for it
  StreamCallbacks* cb_ = nullptr;
  Buffer body_in_;               // DATA payload of the frame being received
  bool remote_end_ = false;
  detail::StreamFlow flow_;  // windows, the unsent body, watermarks
  bool response_started_ = false;
  bool local_end_ = false;       // the response's last frame is queued
  bool reset_ = false;           // reset by this side (or a local 431): no more callbacks
};

class ServerConnectionImpl final : public ServerConnection, private detail::Session, private DeferredAction {
 public:
  ServerConnectionImpl(CodecIo& io, ServerConnectionCallbacks& cb, const Options& o, const Stats* stats)
      : io_(io), cb_(cb), options_(o), stats_(stats) {
    init(true, o);
    reset_tokens_ = o.max_resets_burst;
    reset_refill_ms_ = monotonicMs();
  }
  ~ServerConnectionImpl() override {
    if (deferred_on_ != nullptr) deferred_on_->cancelDeferred(this);
    destroying_ = true;
    destroySession();
  }

  // ServerConnection
  void dispatch(Buffer& data, bool end_stream) override {
    Depth d(*this);
    if (dead_) {
      data.clear();
      return;
    }
    in_dispatch_ = true;
    const int rv = receive(data);
    in_dispatch_ = false;
    if (rv != 0) {
      fatal(detail::violationOf(rv), nghttp2_strerror(rv));
      return;
    }
    if (end_stream) eof_ = true;
    flush();
  }
  bool pendingInput() const override { return false; }
  void drainNotice() override {
    Depth d(*this);
    if (dead_ || drain_started_) return;
    drain_started_ = true;
    // Step one: "no new streams soon"; the final GOAWAY follows the PING's acknowledgement,
    // once every stream the client sent meanwhile has arrived.
    nghttp2_submit_shutdown_notice(session_);
    nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, kDrainPing);
    flush();
  }
  void sendConnectionError(int, std::string_view, ResponseFlag) override {
    Depth d(*this);
    if (dead_) return;
    nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
    flush();
    close(true);
  }
  void onConnectionWatermark(bool above) override {
    Depth d(*this);
    write_blocked_ = above;
    for (auto& [id, s] : streams_) {
      if (s->cb_ != nullptr && !s->reset_) {
        if (above) {
          s->cb_->onAboveWriteBufferHighWatermark();
        } else {
          s->cb_->onBelowWriteBufferLowWatermark();
        }
      }
    }
    if (!above) flush();
  }

  // For Stream.
  using Depth = detail::DepthGuard<ServerConnectionImpl>;
  friend Depth;
  void flush();
  // For a stream's response: flush() once the current event has been handled, so that every
  // response the event finished (each upstream answer is its own event) goes through nghttp2
  // in one pass; at once outside the worker's event dispatch.
  void flushSoon() {
    if (deferred_on_ != nullptr) return;
    Poller* p = io_.poller();
    if (p == nullptr || !p->dispatching() || in_dispatch_) {
      flush();
      return;
    }
    deferred_on_ = p;
    p->defer(this);
  }
  void runDeferred() override {
    Depth d(*this);
    deferred_on_ = nullptr;
    flush();
  }
  void consume(Stream& s, size_t n) {
    if (n > 0 && !dead_) nghttp2_session_consume(session_, s.id_, n);
  }
  nghttp2_session* session() { return session_; }
  bool dead() const { return dead_; }
  void bodyQueued(Stream& s) {
    if (s.flow_.out.deferred) {
      s.flow_.out.deferred = false;
      nghttp2_session_resume_data(session_, s.id_);
    }
    checkSendWatermark(s);
  }
  void count(Violation v) { detail::countViolation(stats_, v); }
  void checkSendWatermark(Stream& s) { s.flow_.checkWatermark(s.cb_); }

 private:
  static constexpr uint8_t kDrainPing[8] = {'f', 'e', 'r', 'r', 'y', 'd', 'r', 'n'};

  // The stream of a frame's callbacks. A request's HEADERS frame calls back once per field,
  // and its DATA, sent and closed callbacks follow: the last stream found is kept, which spares
  // nghttp2's stream map a lookup per callback (forgotten when that stream closes).
  Stream* find(int32_t id) {
    if (id == last_id_ && id != 0) return last_;
    auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session_, id));
    if (s != nullptr) {
      last_id_ = id;
      last_ = s;
    }
    return s;
  }

  // detail::Session
  int onBeginHeaders(const nghttp2_frame* f) override {
    if (f->hd.type != NGHTTP2_HEADERS) return 0;
    if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      auto s = std::make_unique<Stream>(*this, f->hd.stream_id);
      nghttp2_session_set_stream_user_data(session_, f->hd.stream_id, s.get());
      last_id_ = f->hd.stream_id;
      last_ = s.get();
      streams_.emplace(f->hd.stream_id, std::move(s));
      return 0;
    }
    if (Stream* s = find(f->hd.stream_id)) {  // trailers
      s->in_trailers_ = true;
      s->block_.reset();
    }
    return 0;
  }

  int onHeader(const nghttp2_frame* f, std::string_view name, std::string_view value) override {
    Stream* s = find(f->hd.stream_id);
    if (s == nullptr || s->reset_) return 0;
    if (!s->block_.account(name.size(), value.size(), options_)) return 0;  // dropped; answered at the end
    if (s->in_trailers_) {
      s->trailers_.addLowerCase(name, value);
      return 0;
    }
    RequestHeaders& h = *s->request_;
    if (!name.empty() && name[0] == ':') {
      if (equals(name, ":method")) {
        copyInto(h.method, value);
      } else if (equals(name, ":path")) {
        copyInto(h.path, value);
      } else if (equals(name, ":authority")) {
        copyInto(h.authority, value);
      } else if (equals(name, ":scheme")) {
        copyInto(h.scheme, value);
      }
      return 0;  // :protocol (extended CONNECT) is not enabled, so nghttp2 refuses it
    }
    if (equals(name, "host")) {
      if (h.authority.empty()) copyInto(h.authority, value);
      return 0;
    }
    h.headers.addLowerCase(name, value);
    return 0;
  }

  int onFrameRecv(const nghttp2_frame* f) override {
    switch (f->hd.type) {
      case NGHTTP2_HEADERS: {
        Stream* s = find(f->hd.stream_id);
        if (s == nullptr || s->reset_) return 0;
        const bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        if (s->in_trailers_) {
          s->remote_end_ = true;
          if (s->block_.too_large) {
            count(Violation::kHeaderListTooLarge);
            s->resetStream(StreamResetReason::kProtocolError);
            if (s->decoder_ != nullptr) {
              StreamCallbacks* cb = s->cb_;
              s->decoder_ = nullptr;
              if (cb != nullptr) cb->onResetStream(StreamResetReason::kProtocolError, "request trailers too large");
            }
            return 0;
          }
          if (s->decoder_ != nullptr) s->decoder_->decodeTrailers(std::move(s->trailers_));
          return 0;
        }
        startRequest(*s, end);
        return 0;
      }
      case NGHTTP2_DATA: {
        const bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        if (f->hd.length == 0 && !end) {
          if (++empty_frames_ > options_.max_consecutive_empty_frames) {
            fatalLater(Violation::kEmptyFrameFlood, "too many empty DATA frames");
            return NGHTTP2_ERR_CALLBACK_FAILURE;
          }
        } else {
          empty_frames_ = 0;
        }
        Stream* s = find(f->hd.stream_id);
        if (s == nullptr) return 0;
        if (end) s->remote_end_ = true;
        deliver(*s, end);
        return 0;
      }
      case NGHTTP2_RST_STREAM: {
        Stream* s = find(f->hd.stream_id);
        if (s != nullptr && !s->local_end_ && !s->reset_ && !takeResetToken()) {
          fatalLater(Violation::kRapidReset, "too many streams reset by the client");
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        return 0;
      }
      case NGHTTP2_PING:
        if ((f->hd.flags & NGHTTP2_FLAG_ACK) != 0 && drain_started_ && !final_goaway_ &&
            std::equal(kDrainPing, kDrainPing + 8, f->ping.opaque_data)) {
          final_goaway_ = true;
          nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                                NGHTTP2_NO_ERROR, nullptr, 0);
        }
        return 0;
      default:
        return 0;
    }
  }

  int onDataChunk(int32_t id, const uint8_t* data, size_t len) override {
    Stream* s = find(id);
    if (s == nullptr || s->reset_ || s->decoder_ == nullptr) {
      // Nobody reads it: give the window back at once.
      nghttp2_session_consume(session_, id, len);
      return 0;
    }
    s->body_in_.add(data, len);
    return 0;
  }

  int onStreamClose(int32_t id, uint32_t error_code) override {
    if (destroying_) return 0;
    auto it = streams_.find(id);
    if (it == streams_.end()) return 0;
    std::unique_ptr<Stream> s = std::move(it->second);
    streams_.erase(it);
    nghttp2_session_set_stream_user_data(session_, id, nullptr);
    if (last_id_ == id) {
      last_id_ = 0;
      last_ = nullptr;
    }
    if (s->decoder_ != nullptr && !s->reset_) {
      StreamCallbacks* cb = s->cb_;
      s->decoder_ = nullptr;
      s->cb_ = nullptr;
      if (cb != nullptr) {
        cb->onResetStream(error_code == NGHTTP2_NO_ERROR ? StreamResetReason::kConnectionTermination
                                                         : StreamResetReason::kRemoteReset,
                          error_code == NGHTTP2_NO_ERROR ? "stream closed" : nghttp2_http2_strerror(error_code));
      }
    }
    graveyard_.push_back(std::move(s));
    return 0;
  }

  // The response's last frame left while the request is still arriving: RFC 9113 8.1 lets
  // the server end the stream (RST_STREAM NO_ERROR) so the client stops sending.
  void onFrameSent(const nghttp2_frame* f) override {
    if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) return;
    if (f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS) return;
    Stream* s = find(f->hd.stream_id);
    if (s != nullptr && !s->remote_end_)
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
  }

  void onBodySent(int32_t id) override {
    if (Stream* s = find(id)) checkSendWatermark(*s);
  }

  void startRequest(Stream& s, bool end) {
    RequestHeaders& h = *s.request_;
    if (s.block_.too_large) {  // answered here; the stream never reaches the connection manager
      count(Violation::kHeaderListTooLarge);
      s.reset_ = true;
      char st[4];
      NvList nv;
      nv.addLiteralName(":status", detail::statusText(431, st));
      nv.addLiteralName("content-length", "0");
      nghttp2_submit_response(session_, s.id_, nv.data(), nv.size(), nullptr);
      cb_.onStreamRejected(431, ResponseFlag::kDownstreamProtocolError, "request header list too large");
      return;
    }
    h.version_major = 2;
    h.version_minor = 0;
    // RFC 9113 8.2.3: cookie crumbs become one header again for HTTP/1 hops.
    if (h.headers.count("cookie") > 1) {
      std::string joined;
      for (const auto& e : h.headers.entries()) {
        if (!equals(e.name, "cookie")) continue;
        if (!joined.empty()) joined += "; ";
        joined += e.value;
      }
      h.headers.set("cookie", joined);
    }
    if (const std::string* expect = h.headers.get("expect")) {
      const bool cont = HeaderMap::equalsIgnoreCase(*expect, "100-continue");
      h.headers.remove("expect");
      if (cont && !end) {
        char st[4];
        NvList nv;
        nv.addLiteralName(":status", detail::statusText(100, st));
        nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, s.id_, nullptr, nv.data(), nv.size(), nullptr);
      }
    }
    s.remote_end_ = end;
    s.decoder_ = &cb_.newStream(s);
    s.decoder_->decodeHeaders(std::move(s.request_), end);
  }

  // A DATA frame is complete: its payload goes to the stream's reader.
  void deliver(Stream& s, bool end) {
    if (s.decoder_ == nullptr) {
      s.body_in_.clear();
      return;
    }
    consume(s, s.flow_.received(s.body_in_.length()));  // later while read-disabled
    s.decoder_->decodeData(s.body_in_, end);
    s.body_in_.clear();
  }

  bool takeResetToken() {
    const int64_t now = monotonicMs();
    const int64_t elapsed = now - reset_refill_ms_;
    if (elapsed > 0) {
      const double add = static_cast<double>(elapsed) * options_.max_resets_per_second / 1000.0;
      reset_tokens_ = std::min<double>(options_.max_resets_burst, reset_tokens_ + add);
      reset_refill_ms_ = now;
    }
    if (reset_tokens_ < 1) return false;
    reset_tokens_ -= 1;
    return true;
  }

  // From inside an nghttp2 callback: the callback fails (nghttp2 returns an error from
  // mem_recv), and dispatch() then ends the connection with this reason.
  void fatalLater(Violation v, const char* why) {
    pending_violation_ = v;
    pending_why_ = why;
  }

  void fatal(Violation v, std::string_view why) {
    if (pending_violation_) {
      v = *pending_violation_;
      why = pending_why_;
    }
    if (dead_) return;
    count(v);
    FERRY_LOG(kDebug, "http2: closing the connection: ", violationName(v), ": ", log::sv(why));
    const uint32_t code = v == Violation::kProtocolError ? NGHTTP2_PROTOCOL_ERROR : NGHTTP2_ENHANCE_YOUR_CALM;
    nghttp2_session_terminate_session(session_, code);
    // A peer that does not read (the write buffer is above its high watermark, as it is for
    // every control-frame flood) would never take the GOAWAY: waiting for the buffer to drain
    // would keep the connection and its buffered bytes for as long as the peer likes.
    const bool peer_reads = !write_blocked_;
    write_blocked_ = false;  // the GOAWAY goes out if the socket takes it
    dead_ = true;
    if (serialize() == 0 && !out_.empty()) io_.write(out_, false);
    out_.clear();
    resetAll("connection error");
    close(peer_reads);
  }

  void resetAll(std::string_view why) {
    std::vector<StreamCallbacks*> cbs;
    for (auto& [id, s] : streams_) {
      if (s->decoder_ != nullptr && !s->reset_ && s->cb_ != nullptr) cbs.push_back(s->cb_);
      s->decoder_ = nullptr;
      s->cb_ = nullptr;
      s->reset_ = true;
    }
    for (StreamCallbacks* cb : cbs) cb->onResetStream(StreamResetReason::kConnectionTermination, why);
  }

  void close(bool flush) {
    if (closed_) return;
    closed_ = true;
    io_.closeConnection(flush);
  }

  CodecIo& io_;
  ServerConnectionCallbacks& cb_;
  const Options options_;
  const Stats* stats_;
  absl::flat_hash_map<int32_t, std::unique_ptr<Stream>> streams_;
  int32_t last_id_ = 0;  // find()'s last answer (0: none)
  Stream* last_ = nullptr;
  std::vector<std::unique_ptr<Stream>> graveyard_;
  int depth_ = 0;
  uint32_t empty_frames_ = 0;
  double reset_tokens_ = 0;
  int64_t reset_refill_ms_ = 0;
  std::optional<Violation> pending_violation_;
  const char* pending_why_ = "";
  bool in_dispatch_ = false;
  bool write_blocked_ = false;
  bool dead_ = false;
  bool closed_ = false;
  bool eof_ = false;
  bool drain_started_ = false;
  bool final_goaway_ = false;
  bool destroying_ = false;
  Poller* deferred_on_ = nullptr;  // a flushSoon() is queued there
};

void ServerConnectionImpl::flush() {
  if (dead_ || in_dispatch_) return;
  if (!write_blocked_) {
    const int rv = serialize();
    if (rv != 0) {
      fatal(detail::violationOf(rv), nghttp2_strerror(rv));
      return;
    }
    if (!out_.empty()) io_.write(out_, false);
  }
  // Done: nghttp2 has nothing more to read or write (a GOAWAY both ways, or the final drain
  // GOAWAY with no stream left), or the client closed its side with nothing in flight.
  const bool idle = nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0;
  if (idle || (eof_ && streams_.empty()) || (final_goaway_ && streams_.empty() && nghttp2_session_want_write(session_) == 0)) {
    dead_ = true;
    resetAll("connection closed");
    close(true);
  }
}

// ---- Stream (the response side)

void Stream::encodeHeaders(const ResponseHeaders& h, bool end_stream) {
  ServerConnectionImpl::Depth d(conn_);
  if (reset_ || response_started_ || conn_.dead()) return;
  response_started_ = true;
  char st[4];
  NvList nv;
  nv.addLiteralName(":status", detail::statusText(h.status, st));
  nv.addFields(h.headers);
  if (end_stream) {
    local_end_ = true;
    decoder_ = nullptr;  // the connection manager is done with this stream
    cb_ = nullptr;
    nghttp2_submit_response(conn_.session(), id_, nv.data(), nv.size(), nullptr);
  } else {
    nghttp2_data_provider p = detail::dataProvider(&flow_.out);
    nghttp2_submit_response(conn_.session(), id_, nv.data(), nv.size(), &p);
  }
  conn_.flushSoon();
}

void Stream::encode1xxHeaders(const ResponseHeaders& h) {
  ServerConnectionImpl::Depth d(conn_);
  if (reset_ || response_started_ || conn_.dead() || h.status < 100 || h.status >= 200 || h.status == 101) return;
  char st[4];
  NvList nv;
  nv.addLiteralName(":status", detail::statusText(h.status, st));
  nv.addFields(h.headers);
  nghttp2_submit_headers(conn_.session(), NGHTTP2_FLAG_NONE, id_, nullptr, nv.data(), nv.size(), nullptr);
  conn_.flush();
}

void Stream::encodeData(Buffer& data, bool end_stream) {
  ServerConnectionImpl::Depth d(conn_);
  if (reset_ || !response_started_ || local_end_ || conn_.dead()) {
    data.clear();
    return;
  }
  flow_.out.data.move(data);
  if (end_stream) {
    flow_.out.end = true;
    local_end_ = true;
    decoder_ = nullptr;
    cb_ = nullptr;
  }
  conn_.bodyQueued(*this);
  conn_.flushSoon();
}

void Stream::encodeTrailers(const HeaderMap& trailers) {
  ServerConnectionImpl::Depth d(conn_);
  if (reset_ || !response_started_ || local_end_ || conn_.dead()) return;
  flow_.endWithTrailers(trailers);
  local_end_ = true;
  decoder_ = nullptr;
  cb_ = nullptr;
  conn_.bodyQueued(*this);
  conn_.flushSoon();
}

void Stream::readDisable(bool disable) {
  ServerConnectionImpl::Depth d(conn_);
  if (const size_t n = flow_.readDisable(disable); n > 0) {
    conn_.consume(*this, n);
    conn_.flush();
  }
}

void Stream::resetStream(StreamResetReason reason) {
  ServerConnectionImpl::Depth d(conn_);
  if (reset_) return;
  reset_ = true;
  decoder_ = nullptr;
  cb_ = nullptr;
  conn_.consume(*this, flow_.release());
  if (conn_.dead()) return;
  nghttp2_submit_rst_stream(conn_.session(), NGHTTP2_FLAG_NONE, id_,
                            reason == StreamResetReason::kProtocolError ? NGHTTP2_PROTOCOL_ERROR : NGHTTP2_CANCEL);
  conn_.flush();
}

}  // namespace

std::unique_ptr<ServerConnection> makeServerConnection(CodecIo& io, ServerConnectionCallbacks& callbacks,
                                                       const Options& options, const Stats* stats) {
  return std::make_unique<ServerConnectionImpl>(io, callbacks, options, stats);
}

}  // namespace ferry::core::http::http2
