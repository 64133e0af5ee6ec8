// HTTP/1.1 codecs over llhttp (strict mode): ServerCodec parses requests from a downstream
// connection and encodes responses; ClientCodec encodes requests to an upstream and parses its
// responses. Both turn wire bytes into the protocol-neutral model of header_map.h.
//
// Synchronous and I/O-free: the owner feeds received bytes to dispatch() and writes what the
// encode*() calls append to an output Buffer. Callbacks run from inside dispatch()/onEof() only,
// never from encode*(). A callback may call resume(), keepAlive() and the encode*() methods; it
// must not destroy the codec (nor call dispatch() re-entrantly: such a call is ignored).
// Worker-local, one per connection, owned by the HTTP/1 connection (or upstream client).
//
// Strictness: anything ambiguous in a request head is a protocol error before any part of that
// message reaches the callbacks; errors later in a body come after the body bytes that preceded
// them (the same callback sequence however the input is split). Each decision and its reason is
// listed at the top of server_codec.cc (requests), client_codec.cc (responses) and codec.cc (what
// llhttp checks and what the codec adds).
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "core/buffer.h"
#include "core/http/header_map.h"

namespace ferry::core::http::http1 {

struct CodecLimits {
  // Bound on a message head as received: request/status line, header lines, their CRLFs and any
  // empty lines before the request line. Also bounds a chunked trailer section and each run of
  // chunk framing (a chunk-size line with its extensions). Past it, server side: 431 for a head
  // or a trailer section, 400 for chunk framing; client side: a protocol error.
  size_t max_header_bytes = 60 * 1024;
  // Header field lines per head (Host included); likewise per trailer section.
  size_t max_headers = 100;
};

class ServerCodecCallbacks {
 public:
  virtual ~ServerCodecCallbacks() = default;
  // The whole request head, validated. end_stream: the request has no body (no Content-Length /
  // Content-Length: 0 and not chunked). For an Upgrade or CONNECT request end_stream is false and
  // the codec is upgraded(): what follows the head is tunnel data the owner reads from the buffer.
  virtual void onRequestHeaders(RequestHeadersPtr headers, bool end_stream) = 0;
  // De-chunked body bytes; the callee moves or drains them (the codec clears what is left).
  // end_stream on the last call, which may carry no data. Not called for requests without body.
  virtual void onRequestData(Buffer& data, bool end_stream) = 0;
  // Chunked trailers (non-empty). The request is then complete: there is NO onRequestData call
  // with end_stream after it. A chunked request without trailers ends with onRequestData(.., true).
  virtual void onRequestTrailers(HeaderMap trailers) = 0;
  // 400 (malformed / ambiguous) or 431 (head or trailers too large / too many fields). The codec
  // is dead afterwards: dispatch() does nothing; encode*() still work so that the owner can answer
  // (always with "connection: close") before closing.
  virtual void onProtocolError(int status, std::string_view detail) = 0;
};

// Downstream side: parses requests, encodes responses. See the file comment for threading.
class ServerCodec {
 public:
  explicit ServerCodec(ServerCodecCallbacks& cb, CodecLimits limits = {});
  ~ServerCodec();
  ServerCodec(const ServerCodec&) = delete;
  ServerCodec& operator=(const ServerCodec&) = delete;

  // Back to the state of a new codec under `limits` (same callbacks), keeping the memory the
  // parser has grown: a codec handed on to another connection, or to the next request of an
  // idle one.
  void reset(const CodecLimits& limits);
  // Bytes of a request were parsed and the request is not complete yet.
  bool inMessage() const;

  // Parses as much of `in` as it can and drains what it consumed. Stops, leaving the rest in `in`:
  // after each complete request (paused(); pipelining: answer it, then resume() and dispatch()
  // again), after an Upgrade/CONNECT request head (upgraded(); the rest are tunnel bytes), or on
  // error. Does nothing while paused, upgraded or dead. After a request that ends the connection
  // (keepAlive() false) was resumed, further input is discarded (drained) unparsed.
  void dispatch(Buffer& in);
  // After a complete request: allow parsing the next one. No-op unless paused().
  void resume();
  bool paused() const;
  bool upgraded() const;
  // The peer closed its side. Mid-request (head started or body incomplete): onProtocolError(400).
  // Idle between requests, paused, upgraded or dead: nothing.
  void onEof();
  // Whether the current request lets the connection carry another one: HTTP/1.1 unless
  // "Connection: close"; HTTP/1.0 only with "Connection: keep-alive". False after an error.
  bool keepAlive() const;
  // The connection ends after the current request's response (a drain, a request limit): the
  // response says "connection: close" and later input is discarded.
  void closeAfterResponse();

  // Response encoding, for the current (last parsed) request; appends to `out`.
  // Status line "HTTP/1.1 <status> <h.reason or reasonPhrase(status)>", then h.headers as stored
  // except transfer-encoding (the codec owns framing) and connection (written by the codec; a
  // caller's "connection: close" forces close). Framing: no body for HEAD requests, 1xx, 204, 304
  // (content-length dropped for 1xx/204, kept for HEAD/304); a 101 to an Upgrade request or a 2xx
  // to CONNECT is a tunnel (headers as given, data passed through raw); else a content-length of
  // the caller is kept (the body is then held to it: excess dropped, a short body forces close);
  // else end_stream -> "content-length: 0"; else HTTP/1.1 client -> "transfer-encoding: chunked";
  // else (HTTP/1.0) close-delimited. Adds "connection: close" when the connection will close
  // (responseNeedsClose()), "connection: keep-alive" to a persistent HTTP/1.0 client.
  // A 1xx other than 101 is written as an interim response (no framing, no state change).
  void encodeHeaders(const ResponseHeaders& h, bool end_stream, Buffer& out);
  // Chunked: "<hex size>\r\n" + the data moved (not copied) + "\r\n"; empty data writes nothing;
  // end_stream adds "0\r\n\r\n". Otherwise the data is moved as is. Bodyless responses: dropped.
  void encodeData(Buffer& data, bool end_stream, Buffer& out);
  // Ends the response. Chunked: "0\r\n" + trailer lines + "\r\n" (content-length,
  // transfer-encoding and host are never sent as trailers). Not chunked: trailers are dropped.
  void encodeTrailers(const HeaderMap& t, Buffer& out);
  // "HTTP/1.1 100 Continue\r\n\r\n"; nothing for an HTTP/1.0 client (RFC 9110 15.2).
  void encode100Continue(Buffer& out);
  // The connection must close after this response: the request asked for it (see keepAlive()),
  // the response is close-delimited or asked close, its content-length was not honoured, an
  // Upgrade/CONNECT request got no tunnel response, or the codec is dead.
  bool responseNeedsClose() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class ClientCodecCallbacks {
 public:
  virtual ~ClientCodecCallbacks() = default;
  // A final response head. end_stream: no body follows (HEAD request, 204, 304, content-length 0).
  // A 101 to an Upgrade request or a 2xx to CONNECT: end_stream false and the codec is upgraded().
  virtual void onResponseHeaders(ResponseHeadersPtr headers, bool end_stream) = 0;
  // A 1xx interim response (100, 102, 103, ...; not 101). Parsing goes on to the final response.
  virtual void onInformational(ResponseHeadersPtr headers) {}
  // De-chunked body bytes (callee moves/drains); end_stream on the last call (may be empty).
  virtual void onResponseData(Buffer& data, bool end_stream) = 0;
  // Chunked trailers (non-empty); the response is then complete (no end_stream data call).
  virtual void onResponseTrailers(HeaderMap trailers) = 0;
  // Malformed or unexpected response: the proxy answers 502. The codec is dead afterwards.
  virtual void onProtocolError(std::string_view detail) = 0;
};

// Upstream side: encodes requests, parses the responses (in order, one final response per request).
class ClientCodec {
 public:
  explicit ClientCodec(ClientCodecCallbacks& cb, CodecLimits limits = {});
  ~ClientCodec();
  ClientCodec(const ClientCodec&) = delete;
  ClientCodec& operator=(const ClientCodec&) = delete;

  // "<method> <path> HTTP/1.1", "host: <authority>", then h.headers except host and
  // transfer-encoding. Framing: a content-length of the caller is kept (and held to); else
  // !end_stream -> chunked; else "content-length: 0" for POST/PUT/PATCH. CONNECT
  // ("CONNECT <path or authority>") and Upgrade requests get no framing: data after the head is
  // tunnel data, passed raw. The method is remembered: HEAD -> the response has no body.
  void encodeHeaders(const RequestHeaders& h, bool end_stream, Buffer& out);
  void encodeData(Buffer& data, bool end_stream, Buffer& out);
  void encodeTrailers(const HeaderMap& t, Buffer& out);
  // Parses responses; drains what it consumed. Stops after a 101/CONNECT tunnel head (the rest
  // stays in `in`) or on error. Bytes with no request outstanding are a protocol error, except
  // after a response that ended the connection, where they are discarded.
  void dispatch(Buffer& in);
  // Upstream closed: completes a close-delimited body (onResponseData(empty, true)); a protocol
  // error if a response was partly received; nothing otherwise (also nothing when a request is
  // outstanding but no byte of its response arrived: the owner treats that as a reset).
  void onEof();
  // The connection may carry another request: the last response was HTTP/1.1 without
  // "connection: close" (or HTTP/1.0 with keep-alive), not close-delimited, fully read; the
  // request was fully sent and did not ask close; not upgraded, not dead.
  bool keepAlive() const;
  // No request outstanding and nothing partly parsed.
  bool idle() const;
  bool upgraded() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::core::http::http1
