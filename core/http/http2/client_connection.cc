// The HTTP/2 client side of core/http/codec.h: many request streams on one upstream
// connection (see codec.h for the rules both sides keep).
//
// - A stream is made by newStream() and gets its id when its headers are submitted.
// - The response's 1xx, final headers, DATA and trailers go to the stream's decoder as they
//   complete; the stream ends for the pool (onStreamEnd) once its response is complete or it
//   was reset. A response that completes while the request is still being sent ends the
//   request side with RST_STREAM(NO_ERROR).
// - GOAWAY: no new streams (reusable() turns false); streams above its last stream id, and
//   streams the server refuses, are reset with kRefusedStream: they never reached the
//   upstream's application, so the router may send them again.
#include <algorithm>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/http/http2/session.h"
#include "core/log.h"

namespace ferry::core::http::http2 {
namespace {

using detail::HeaderBlock;
using detail::NvList;
using detail::OutBody;

class ClientConnectionImpl;

class ClientStream final : public RequestEncoder {
 public:
  ClientStream(ClientConnectionImpl& conn, ResponseDecoder& decoder) : conn_(conn), decoder_(&decoder) {}

  // RequestEncoder
  void encodeHeaders(const RequestHeaders& headers, bool end_stream) override;
  void encodeData(Buffer& data, bool end_stream) override;
  void encodeTrailers(const HeaderMap& trailers) override;
  void readDisable(bool disable) override;
  void resetStream(StreamResetReason reason) override;
  void setStreamCallbacks(StreamCallbacks* callbacks) override { cb_ = callbacks; }

  ClientConnectionImpl& conn_;
  int32_t id_ = -1;  // until the headers are submitted
  ResponseDecoder* decoder_;  // null once the stream is over for it
  StreamCallbacks* cb_ = nullptr;
  ResponseHeadersPtr response_;
  HeaderMap trailers_;
  HeaderBlock block_;
  bool final_headers_ = false;  // the final (non-1xx) response head arrived
  bool in_trailers_ = false;
  Buffer body_in_;
  detail::StreamFlow flow_;  // windows, the unsent body, watermarks
  bool local_end_ = false;  // the request's last frame is queued
  bool done_ = false;       // the pool has been told (complete or reset)
};

class ClientConnectionImpl final : public ClientConnection, private detail::Session {
 public:
  ClientConnectionImpl(CodecIo& io, ClientConnectionCallbacks& cb, const Options& o, const Stats* stats)
      : io_(io), cb_(cb), options_(o), stats_(stats) {
    init(false, o);
  }
  ~ClientConnectionImpl() override {
    destroying_ = true;
    destroySession();
  }

  using Depth = detail::DepthGuard<ClientConnectionImpl>;
  friend Depth;

  // ClientConnection
  RequestEncoder& newStream(ResponseDecoder& decoder) override {
    auto s = std::make_unique<ClientStream>(*this, decoder);
    ClientStream& ref = *s;
    unsubmitted_.push_back(std::move(s));
    ++active_;
    return ref;
  }

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
      fail(detail::violationOf(rv), nghttp2_strerror(rv));
      return;
    }
    if (end_stream) {
      dead_ = true;
      resetAll(StreamResetReason::kConnectionTermination, "upstream closed the connection");
      return;
    }
    flush();
  }

  void onConnectionClosed(std::string_view detail) override {
    Depth d(*this);
    dead_ = true;
    resetAll(StreamResetReason::kConnectionTermination, detail);
  }

  void onConnectionWatermark(bool above) override {
    Depth d(*this);
    write_blocked_ = above;
    forEachLive([&](ClientStream& s) {
      if (s.cb_ == nullptr) return;
      if (above) {
        s.cb_->onAboveWriteBufferHighWatermark();
      } else {
        s.cb_->onBelowWriteBufferLowWatermark();
      }
    });
    if (!above) flush();
  }

  size_t activeStreams() const override { return active_; }
  bool reusable() const override { return !dead_ && !goaway_; }
  size_t streamCapacity() const override {
    const uint32_t remote = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    return std::max<size_t>(1, std::min<uint32_t>(remote, options_.max_streams_per_connection));
  }

  // For ClientStream.
  void flush();
  nghttp2_session* session() { return session_; }
  bool dead() const { return dead_; }
  void submitted(ClientStream& s) {
    auto it = std::find_if(unsubmitted_.begin(), unsubmitted_.end(), [&](const auto& p) { return p.get() == &s; });
    if (it == unsubmitted_.end()) return;
    streams_.emplace(s.id_, std::move(*it));
    unsubmitted_.erase(it);
  }
  void consume(ClientStream& s, size_t n) {
    if (n > 0 && !dead_ && s.id_ > 0) nghttp2_session_consume(session_, s.id_, n);
  }
  void bodyQueued(ClientStream& s) {
    if (s.flow_.out.deferred && s.id_ > 0) {
      s.flow_.out.deferred = false;
      nghttp2_session_resume_data(session_, s.id_);
    }
    checkSendWatermark(s);
  }
  void checkSendWatermark(ClientStream& s) { s.flow_.checkWatermark(s.cb_); }
  // The stream is over for the pool: told once, after the decoder's last call.
  void finish(ClientStream& s) {
    if (s.done_) return;
    s.done_ = true;
    s.decoder_ = nullptr;
    s.cb_ = nullptr;
    if (active_ > 0) --active_;
    if (s.id_ < 0) bury(s);
    cb_.onStreamEnd();
  }
  // A stream that never got an id (its headers were not submitted) leaves at once.
  void bury(ClientStream& s) {
    auto it = std::find_if(unsubmitted_.begin(), unsubmitted_.end(), [&](const auto& p) { return p.get() == &s; });
    if (it == unsubmitted_.end()) return;
    graveyard_.push_back(std::move(*it));
    unsubmitted_.erase(it);
  }
  void reset(ClientStream& s, StreamResetReason reason, std::string_view detail) {
    if (s.done_) return;
    StreamCallbacks* cb = s.cb_;
    s.decoder_ = nullptr;
    s.cb_ = nullptr;
    if (cb != nullptr) cb->onResetStream(reason, detail);
    finish(s);
  }

 private:
  ClientStream* find(int32_t id) {
    return static_cast<ClientStream*>(nghttp2_session_get_stream_user_data(session_, id));
  }
  template <typename F>
  void forEachLive(F&& f) {
    std::vector<ClientStream*> live;
    for (auto& [id, s] : streams_)
      if (!s->done_) live.push_back(s.get());
    for (auto& s : unsubmitted_)
      if (!s->done_) live.push_back(s.get());
    for (ClientStream* s : live) f(*s);
  }

  // detail::Session
  int onBeginHeaders(const nghttp2_frame* f) override {
    if (f->hd.type != NGHTTP2_HEADERS) return 0;
    ClientStream* s = find(f->hd.stream_id);
    if (s == nullptr) return 0;
    s->block_.reset();
    if (s->final_headers_) {
      s->in_trailers_ = true;
    } else {
      s->response_ = makeResponseHeaders();
    }
    return 0;
  }

  int onHeader(const nghttp2_frame* f, std::string_view name, std::string_view value) override {
    ClientStream* s = find(f->hd.stream_id);
    if (s == nullptr || s->done_) return 0;
    if (!s->block_.account(name.size(), value.size(), options_)) return 0;
    if (s->in_trailers_) {
      s->trailers_.addLowerCase(name, value);
      return 0;
    }
    if (equals(name, ":status")) {
      int st = 0;
      for (char c : value) st = st * 10 + (c - '0');
      s->response_->status = st;
      return 0;
    }
    if (!name.empty() && name[0] == ':') return 0;
    s->response_->headers.addLowerCase(name, value);
    return 0;
  }

  int onFrameRecv(const nghttp2_frame* f) override {
    switch (f->hd.type) {
      case NGHTTP2_HEADERS: {
        ClientStream* s = find(f->hd.stream_id);
        if (s == nullptr || s->done_) return 0;
        const bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        if (s->block_.too_large) {
          count(Violation::kHeaderListTooLarge);
          nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id_, NGHTTP2_PROTOCOL_ERROR);
          reset(*s, StreamResetReason::kProtocolError, "upstream header list too large");
          return 0;
        }
        if (s->in_trailers_) {
          s->decoder_->decodeTrailers(std::move(s->trailers_));
          responseDone(*s);
          return 0;
        }
        ResponseHeadersPtr h = std::move(s->response_);
        if (h->status >= 100 && h->status < 200) {
          s->decoder_->decode1xxHeaders(std::move(h));
          return 0;
        }
        s->final_headers_ = true;
        s->decoder_->decodeHeaders(std::move(h), end);
        if (end) responseDone(*s);
        return 0;
      }
      case NGHTTP2_DATA: {
        ClientStream* s = find(f->hd.stream_id);
        if (s == nullptr || s->done_) return 0;
        const bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        consume(*s, s->flow_.received(s->body_in_.length()));
        s->decoder_->decodeData(s->body_in_, end);
        s->body_in_.clear();
        if (end) responseDone(*s);
        return 0;
      }
      case NGHTTP2_GOAWAY:
        goaway_ = true;  // streams above its last stream id are closed by nghttp2 (REFUSED_STREAM)
        return 0;
      default:
        return 0;
    }
  }

  int onDataChunk(int32_t id, const uint8_t* data, size_t len) override {
    ClientStream* s = find(id);
    if (s == nullptr || s->done_) {
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
    std::unique_ptr<ClientStream> s = std::move(it->second);
    streams_.erase(it);
    nghttp2_session_set_stream_user_data(session_, id, nullptr);
    ClientStream& ref = *s;
    graveyard_.push_back(std::move(s));
    if (!ref.done_) {
      if (error_code == NGHTTP2_REFUSED_STREAM) {
        reset(ref, StreamResetReason::kRefusedStream, "upstream refused the stream");
      } else if (error_code == NGHTTP2_NO_ERROR) {
        reset(ref, StreamResetReason::kConnectionTermination, "upstream closed the stream");
      } else {
        reset(ref, StreamResetReason::kRemoteReset, nghttp2_http2_strerror(error_code));
      }
    }
    return 0;
  }

  void onBodySent(int32_t id) override {
    if (ClientStream* s = find(id)) checkSendWatermark(*s);
  }

  // The response is complete: the request side ends too if it has not (RFC 9113 8.1).
  void responseDone(ClientStream& s) {
    if (!s.local_end_) {
      s.local_end_ = true;
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id_, NGHTTP2_NO_ERROR);
    }
    consume(s, s.flow_.release());
    finish(s);
  }

  void count(Violation v) { detail::countViolation(stats_, v); }

  void fail(Violation v, std::string_view why) {
    if (dead_) return;
    count(v);
    FERRY_LOG(kDebug, "http2 upstream: connection error: ", log::sv(why));
    nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
    dead_ = true;
    if (serialize() == 0 && !out_.empty()) io_.write(out_, false);
    out_.clear();
    resetAll(StreamResetReason::kProtocolError, why);
    io_.closeConnection(true);
  }

  void resetAll(StreamResetReason reason, std::string_view why) {
    forEachLive([&](ClientStream& s) { reset(s, reason, why); });
  }

  CodecIo& io_;
  ClientConnectionCallbacks& cb_;
  const Options options_;
  const Stats* stats_;
  absl::flat_hash_map<int32_t, std::unique_ptr<ClientStream>> streams_;
  std::vector<std::unique_ptr<ClientStream>> unsubmitted_;
  std::vector<std::unique_ptr<ClientStream>> graveyard_;
  size_t active_ = 0;
  int depth_ = 0;
  bool in_dispatch_ = false;
  bool write_blocked_ = false;
  bool dead_ = false;
  bool goaway_ = false;
  bool destroying_ = false;
};

void ClientConnectionImpl::flush() {
  if (dead_ || in_dispatch_ || write_blocked_) return;
  const int rv = serialize();
  if (rv != 0) {
    fail(detail::violationOf(rv), nghttp2_strerror(rv));
    return;
  }
  if (!out_.empty()) io_.write(out_, false);
  if (goaway_ && active_ == 0 && nghttp2_session_want_write(session_) == 0) {
    dead_ = true;
    io_.closeConnection(true);
  }
}

// ---- ClientStream (the request side)

void ClientStream::encodeHeaders(const RequestHeaders& h, bool end_stream) {
  ClientConnectionImpl::Depth d(conn_);
  if (done_ || id_ > 0) return;
  if (conn_.dead()) {
    conn_.reset(*this, StreamResetReason::kConnectionTermination, "upstream connection closed");
    return;
  }
  NvList nv;
  nv.addLiteralName(":method", h.method);
  const bool connect = equals(h.method, "CONNECT");
  if (!connect) {
    nv.addLiteralName(":scheme", h.scheme.empty() ? std::string_view("http") : std::string_view(h.scheme));
    nv.addLiteralName(":path", h.path);
  }
  nv.addLiteralName(":authority", h.authority);
  nv.addFields(h.headers);
  if (end_stream) local_end_ = true;
  nghttp2_data_provider p = detail::dataProvider(&flow_.out);
  const int32_t id = nghttp2_submit_request(conn_.session(), nullptr, nv.data(), nv.size(), end_stream ? nullptr : &p, this);
  if (id < 0) {
    conn_.reset(*this, StreamResetReason::kLocalReset, nghttp2_strerror(id));
    return;
  }
  id_ = id;
  conn_.submitted(*this);
  conn_.flush();
}

void ClientStream::encodeData(Buffer& data, bool end_stream) {
  ClientConnectionImpl::Depth d(conn_);
  if (done_ || local_end_ || id_ < 0) {
    data.clear();
    return;
  }
  flow_.out.data.move(data);
  if (end_stream) {
    flow_.out.end = true;
    local_end_ = true;
  }
  conn_.bodyQueued(*this);
  conn_.flush();
}

void ClientStream::encodeTrailers(const HeaderMap& trailers) {
  ClientConnectionImpl::Depth d(conn_);
  if (done_ || local_end_ || id_ < 0) return;
  flow_.endWithTrailers(trailers);
  local_end_ = true;
  conn_.bodyQueued(*this);
  conn_.flush();
}

void ClientStream::readDisable(bool disable) {
  ClientConnectionImpl::Depth d(conn_);
  if (const size_t n = flow_.readDisable(disable); n > 0) {
    conn_.consume(*this, n);
    conn_.flush();
  }
}

void ClientStream::resetStream(StreamResetReason) {
  ClientConnectionImpl::Depth d(conn_);
  if (done_) return;
  conn_.consume(*this, flow_.release());
  const int32_t id = id_;
  decoder_ = nullptr;
  cb_ = nullptr;
  conn_.finish(*this);  // no callback for a reset this side asked for
  if (id > 0 && !conn_.dead()) {
    nghttp2_submit_rst_stream(conn_.session(), NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    conn_.flush();
  }
}

}  // namespace

std::unique_ptr<ClientConnection> makeClientConnection(CodecIo& io, ClientConnectionCallbacks& callbacks,
                                                       const Options& options, const Stats* stats) {
  return std::make_unique<ClientConnectionImpl>(io, callbacks, options, stats);
}

}  // namespace ferry::core::http::http2
