// What the HTTP/2 server and client connections share: the nghttp2 session wrapper (options
// from Options, send into one Buffer with DATA moved without copies, receive from a Buffer),
// header-block building with limits, and header lists for nghttp2 (nv arrays). Internal to
// core/http/http2/.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/buffer.h"
#include "core/http/codec.h"
#include "core/http/header_map.h"
#include "core/http/http2/codec.h"

namespace ferry::core::http::http2::detail {

// An outgoing stream's body: what waits to be framed, whether the end follows, trailers.
struct OutBody {
  Buffer data;
  bool end = false;
  bool has_trailers = false;
  HeaderMap trailers;
  bool deferred = false;  // nghttp2 was told NGHTTP2_ERR_DEFERRED: resume on new data
};

// The flow-control and send-buffer state of one stream, the same on both sides.
struct StreamFlow {
  static constexpr size_t kHighWatermark = 1 << 20;  // the stream's unsent body
  static constexpr size_t kLowWatermark = kHighWatermark / 2;
  OutBody out;
  int read_disabled = 0;
  size_t unconsumed = 0;  // received while read-disabled: acknowledged later
  bool above = false;

  // A received DATA payload of n bytes: how many to acknowledge now (0 while read-disabled).
  size_t received(size_t n) {
    if (read_disabled == 0) return n;
    unconsumed += n;
    return 0;
  }
  // The reader's readDisable(): how many bytes to acknowledge now.
  size_t readDisable(bool disable) {
    if (disable) {
      ++read_disabled;
      return 0;
    }
    if (read_disabled == 0 || --read_disabled > 0) return 0;
    return release();
  }
  // What waits unacknowledged (the stream ends or the reader resumed).
  size_t release() {
    const size_t n = unconsumed;
    unconsumed = 0;
    return n;
  }
  // Ends the body with trailers.
  void endWithTrailers(const HeaderMap& t) {
    out.end = true;
    out.has_trailers = true;
    out.trailers = t;
  }
  // Raises the stream's watermark callbacks when its unsent body crossed a watermark.
  void checkWatermark(StreamCallbacks* cb) {
    const size_t len = out.data.length();
    if (!above && len > kHighWatermark) {
      above = true;
      if (cb != nullptr) cb->onAboveWriteBufferHighWatermark();
    } else if (above && len < kLowWatermark) {
      above = false;
      if (cb != nullptr) cb->onBelowWriteBufferLowWatermark();
    }
  }
};

// Counts calls into a connection; when the outermost returns, the streams nghttp2 closed
// meanwhile (its graveyard_) are destroyed. `Conn` has `int depth_` and a `graveyard_`.
template <typename Conn>
struct DepthGuard {
  explicit DepthGuard(Conn& c) : c(c) { ++c.depth_; }
  ~DepthGuard() {
    if (--c.depth_ == 0) c.graveyard_.clear();
  }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;
  Conn& c;
};

// Bumps a violation counter (stats may be null).
inline void countViolation(const Stats* stats, Violation v) {
  if (stats != nullptr && stats->shard != nullptr) stats->shard->inc(stats->violations[static_cast<size_t>(v)]);
}

// Gathers the fields of one incoming header block with the limits of Options. Past a limit the
// block is marked too large and the rest of it is dropped (memory stays bounded).
struct HeaderBlock {
  size_t bytes = 0;
  uint32_t count = 0;
  bool too_large = false;
  // Accounts for one field; false when the block is (now) over a limit.
  bool account(size_t name_len, size_t value_len, const Options& o) {
    if (too_large) return false;
    bytes += name_len + value_len;
    ++count;
    if (bytes > o.max_header_list_bytes || count > o.max_headers) too_large = true;
    return !too_large;
  }
  void reset() { *this = HeaderBlock(); }
};

// A list of nghttp2_nv pointing into strings this object or the caller keeps alive until the
// submit call returns (nghttp2 copies them), except names in static storage, which nghttp2
// keeps pointing at (NGHTTP2_NV_FLAG_NO_COPY_NAME: no copy, and no lower-casing pass).
class NvList {
 public:
  void add(std::string_view name, std::string_view value) { push(name, value, NGHTTP2_NV_FLAG_NONE); }
  // A lower-case literal name (":status", "content-length").
  template <size_t N>
  void addLiteralName(const char (&name)[N], std::string_view value) {
    push(std::string_view(name, N - 1), value, NGHTTP2_NV_FLAG_NO_COPY_NAME);
  }
  // Regular fields of `h`, without connection-specific ones (RFC 9113 8.2.2) and pseudo names.
  void addFields(const HeaderMap& h);
  const nghttp2_nv* data() const { return heap_.empty() ? inline_ : heap_.data(); }
  size_t size() const { return size_; }

 private:
  void push(std::string_view name, std::string_view value, uint8_t flags) {
    nghttp2_nv nv;
    nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(name.data()));
    nv.namelen = name.size();
    nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(value.data()));
    nv.valuelen = value.size();
    nv.flags = flags;
    if (size_ < kInline) {
      inline_[size_++] = nv;
      return;
    }
    if (heap_.empty()) heap_.assign(inline_, inline_ + kInline);  // a long list: on the heap from here
    heap_.push_back(nv);
    ++size_;
  }
  // Most header blocks fit: no allocation per message.
  static constexpr size_t kInline = 32;
  nghttp2_nv inline_[kInline];
  std::vector<nghttp2_nv> heap_;
  size_t size_ = 0;
};

// Connection-specific fields never sent in HTTP/2 (RFC 9113 8.2.2). `te` is allowed only as
// "trailers" and is handled by the caller.
bool isConnectionSpecific(std::string_view name);

// The status as three ASCII digits (for :status).
std::string_view statusText(int status, char (&buf)[4]);

// The memory functions every session is made with: small blocks recycled through per-thread
// free lists by size class (a stream's blocks are reused by the next stream), larger ones
// from malloc.
nghttp2_mem* sessionMemory();

// The nghttp2 session both sides wrap: callbacks are forwarded to these virtuals.
class Session {
 public:
  virtual ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

 protected:
  Session() = default;
  // Creates the session (server or client), sends the initial SETTINGS (and the connection
  // window) into the queue.
  void init(bool server, const Options& o);
  // Feeds every byte of `data` to the session (drained); returns 0 or the first nghttp2 error.
  int receive(Buffer& data);
  // Deletes the session (from the owner's destructor, before its own members go).
  void destroySession();
  // Serialises what nghttp2 has queued into out_; returns 0 or an nghttp2 error.
  int serialize();

  virtual int onBeginHeaders(const nghttp2_frame* frame) = 0;
  virtual int onHeader(const nghttp2_frame* frame, std::string_view name, std::string_view value) = 0;
  virtual int onFrameRecv(const nghttp2_frame* frame) = 0;
  virtual int onDataChunk(int32_t stream_id, const uint8_t* data, size_t len) = 0;
  virtual int onStreamClose(int32_t stream_id, uint32_t error_code) = 0;
  // DATA of `stream_id` left its OutBody (for send-side watermarks).
  virtual void onBodySent(int32_t stream_id) {}
  // A frame was serialised (after onBodySent for DATA).
  virtual void onFrameSent(const nghttp2_frame* frame) {}

  nghttp2_session* session_ = nullptr;
  Buffer out_;  // serialised frames waiting for the owner to write them

 private:
  friend struct Trampolines;
};

// The data provider reading a stream's OutBody (DATA payloads moved, not copied).
nghttp2_data_provider dataProvider(OutBody* body);

// The flood a fatal receive error stands for (kProtocolError for the rest).
Violation violationOf(int nghttp2_error);

}  // namespace ferry::core::http::http2::detail
