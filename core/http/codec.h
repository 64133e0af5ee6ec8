// Stream-level HTTP codec interfaces: what the connection manager and the router see of a
// wire protocol. A server connection turns bytes into per-stream request events (a
// RequestDecoder per stream) and gives each stream a ResponseEncoder; a client connection does
// the reverse. HTTP/1 (http1/) implements both today over llhttp; HTTP/2 implements the same
// over nghttp2. Filters and the router never see which one runs.
//
// Threading: worker-local, synchronous, no I/O of their own: a codec writes through the
// CodecIo it was made with, and is fed bytes by its owner. Callbacks run from inside
// dispatch() or an encode call.
//
// Add a codec: implement ServerConnection (and ClientConnection plus a StreamPool for
// upstreams), and have the connection manager pick it (by ALPN or the first bytes) and the
// cluster's pool use it. Nothing above changes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/buffer.h"
#include "core/http/filter.h"
#include "core/http/header_map.h"

namespace ferry::core {
class Poller;
}

namespace ferry::core::http {

enum class StreamResetReason {
  kLocalReset,             // this side gave up on the stream
  kRemoteReset,            // the peer reset the stream (HTTP/2 RST_STREAM)
  kConnectionTermination,  // the connection closed before the stream finished
  kProtocolError,          // the peer sent something malformed on the stream
  // The peer did not process the stream (HTTP/2 REFUSED_STREAM, or above a GOAWAY's last
  // stream id): it may be sent again.
  kRefusedStream,
};
const char* resetReasonName(StreamResetReason r);

// Events of one stream that both sides get. Worker-local; registered on the stream's encoder.
class StreamCallbacks {
 public:
  virtual ~StreamCallbacks() = default;
  // The stream is gone: reset by the peer, broken by a protocol error, or its connection
  // closed first. Nothing else is called for it afterwards and its encoder must not be used.
  // Not raised for a reset this side asked for (resetStream()).
  virtual void onResetStream(StreamResetReason reason, std::string_view detail) = 0;
  // The stream's send side passed its high watermark / fell under its low one (HTTP/1: the
  // connection's write buffer; HTTP/2: the stream's send window and buffer).
  virtual void onAboveWriteBufferHighWatermark() {}
  virtual void onBelowWriteBufferLowWatermark() {}
};

// The sending side of one stream. What a stream sends ends with end_stream on the headers or
// on data, or with trailers.
class StreamEncoder {
 public:
  virtual ~StreamEncoder() = default;
  virtual void encodeData(Buffer& data, bool end_stream) = 0;
  // Ends the stream's sending side.
  virtual void encodeTrailers(const HeaderMap& trailers) = 0;
  // Stops (counted) / resumes reading this stream's incoming side: flow control toward the
  // peer (HTTP/1: the connection's reads; HTTP/2: the stream's window).
  virtual void readDisable(bool disable) = 0;
  // Aborts the stream (HTTP/1: closes the connection; HTTP/2: RST_STREAM). No callback of
  // the stream runs afterwards.
  virtual void resetStream(StreamResetReason reason) = 0;
  virtual void setStreamCallbacks(StreamCallbacks* callbacks) = 0;
};

// Server side: the response of one request stream.
class ResponseEncoder : public StreamEncoder {
 public:
  virtual void encodeHeaders(const ResponseHeaders& headers, bool end_stream) = 0;
  // An interim (1xx, not 101) response ahead of the final one. HTTP/1 sends it to HTTP/1.1
  // clients, except a 100 when the codec already answered Expect: 100-continue itself.
  virtual void encode1xxHeaders(const ResponseHeaders& headers) = 0;
};

// Client side: the request of one upstream stream.
class RequestEncoder : public StreamEncoder {
 public:
  virtual void encodeHeaders(const RequestHeaders& headers, bool end_stream) = 0;
};

// Server side, per stream: the request as the codec decodes it. Implemented by the
// connection manager's stream.
class RequestDecoder {
 public:
  virtual ~RequestDecoder() = default;
  // Hop-by-hop headers are already gone (HTTP/1: RFC 9110 7.6.1, and the ones Connection
  // names; `te: trailers` stays); an upgrade request keeps Upgrade and "connection: upgrade".
  virtual void decodeHeaders(RequestHeadersPtr headers, bool end_stream) = 0;
  virtual void decodeData(Buffer& data, bool end_stream) = 0;
  // Ends the request.
  virtual void decodeTrailers(HeaderMap trailers) = 0;
  // The rest of the request is malformed (a bad chunk, oversized trailers): answer `status`
  // with `body` (or reset, if the response has begun). The connection closes after it.
  virtual void onDecodeError(int status, std::string_view body, ResponseFlag flag) = 0;
};

// Client side, per stream: the response. Implemented by the router's upstream request. A
// malformed response arrives as onResetStream(kProtocolError).
class ResponseDecoder {
 public:
  virtual ~ResponseDecoder() = default;
  virtual void decode1xxHeaders(ResponseHeadersPtr headers) = 0;
  // Hop-by-hop headers (and the ones Connection names) are already gone. After a 101 or a
  // 2xx to CONNECT, data both ways is the tunnel's.
  virtual void decodeHeaders(ResponseHeadersPtr headers, bool end_stream) = 0;
  virtual void decodeData(Buffer& data, bool end_stream) = 0;
  virtual void decodeTrailers(HeaderMap trailers) = 0;
};

// What a codec needs of the connection under it.
class CodecIo {
 public:
  virtual ~CodecIo() = default;
  virtual void write(Buffer& data, bool end_stream) = 0;
  // Ends the connection; flush: after what was written has gone out.
  virtual void closeConnection(bool flush) = 0;
  virtual void readDisable(bool disable) = 0;
  // The worker's event loop, for a codec that gathers what several streams encode during one
  // event into one serialisation (HTTP/2: one pass of nghttp2 for every response that an
  // event finished). Null: the codec writes at once.
  virtual Poller* poller() { return nullptr; }
};

class ServerConnectionCallbacks {
 public:
  virtual ~ServerConnectionCallbacks() = default;
  // A request stream begins; returns its decoder. The encoder lives until the stream ends.
  virtual RequestDecoder& newStream(ResponseEncoder& encoder) = 0;
  // The codec answered a request itself before any stream existed (a malformed head: 400 or
  // 431; an unsupported Expect: 417) and closes the connection after it. For stats and logs.
  virtual void onCodecError(int status, ResponseFlag flag, std::string_view detail) = 0;
  // A multiplexing codec (HTTP/2) answered one stream itself (a header list over the limit:
  // 431) and goes on with the others. For stats and logs.
  virtual void onStreamRejected(int status, ResponseFlag flag, std::string_view detail) {}
  // Whether the codec's own error answers carry x-ferry-flags (http.response_flags_header).
  virtual bool responseFlagsHeader() const { return false; }
};

class ServerConnection {
 public:
  virtual ~ServerConnection() = default;
  // Bytes from the client (moved in). end_stream: the client finished sending (FIN).
  // Called again with no bytes, from the event loop, to parse what waits (pendingInput()).
  virtual void dispatch(Buffer& data, bool end_stream) = 0;
  // Input waits that only a later dispatch() parses: pipelined requests behind a finished
  // one, or an EOF. The owner dispatches again (from the loop) after a stream ends.
  virtual bool pendingInput() const = 0;
  // Graceful drain: HTTP/1 puts "connection: close" on the next response and closes after
  // it; HTTP/2 sends its two-step GOAWAY.
  virtual void drainNotice() = 0;
  // Answers a failure outside any stream (a request head that did not arrive in time: 408)
  // and closes the connection: HTTP/1 writes a short response, HTTP/2 sends GOAWAY.
  virtual void sendConnectionError(int status, std::string_view body, ResponseFlag flag) = 0;
  // The connection's write buffer passed its high watermark / fell under its low one.
  virtual void onConnectionWatermark(bool above) = 0;
};

class ClientConnectionCallbacks {
 public:
  virtual ~ClientConnectionCallbacks() = default;
  // A stream ended: its response is complete (the decoder had its last call), or it was
  // reset. Called after the decoder's call returns. The connection takes another stream only
  // while reusable().
  virtual void onStreamEnd() = 0;
};

class ClientConnection {
 public:
  virtual ~ClientConnection() = default;
  // A new request stream whose response goes to `decoder`.
  virtual RequestEncoder& newStream(ResponseDecoder& decoder) = 0;
  // Bytes from the upstream. end_stream: it closed its side.
  virtual void dispatch(Buffer& data, bool end_stream) = 0;
  // The connection closed under its streams: each is reset (kConnectionTermination).
  virtual void onConnectionClosed(std::string_view detail) = 0;
  virtual void onConnectionWatermark(bool above) = 0;
  // Streams in flight, and how many more it takes now (HTTP/1: one at a time).
  virtual size_t activeStreams() const = 0;
  // The connection may carry another stream once the current ones end (HTTP/1: keep-alive;
  // HTTP/2: no GOAWAY yet).
  virtual bool reusable() const = 0;
  // Streams it may carry at once (HTTP/1: one; HTTP/2: the peer's and our own limit).
  virtual size_t streamCapacity() const { return 1; }
};

}  // namespace ferry::core::http
