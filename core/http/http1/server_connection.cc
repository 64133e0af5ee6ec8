// The HTTP/1 server side of core/http/codec.h: requests in order, one stream at a time.
//
// - Pipelining: bytes after a complete request wait in `pending_` until its response is done;
//   the owner dispatches again from the event loop (pendingInput()).
// - Hop-by-hop headers of a request are removed before the stream sees it (stripHopByHop).
// - Expect: 100-continue is answered here at once (HTTP/1.1 clients only) and the header is
//   removed; an upstream's own 100 is then dropped. Any other expectation: 417, raw.
// - Upgrade: the request keeps Upgrade; bytes after its head wait until the response: a 101
//   turns the stream into a raw tunnel both ways, anything else closes the connection after it.
// - A request that fails before a stream exists (malformed head: 400; too large: 431) and the
//   owner's connection errors (408) are written raw, with "connection: close", then the
//   connection closes. After a stream exists, errors go to its decoder (onDecodeError).
// - The connection closes after a response when the request or response asked for it, the
//   response was sent before the request was complete, a drain was noticed, or it was a tunnel.
#include <string>

#include "core/http/http1/connection.h"
#include "core/http/http1/field_chars.h"

namespace ferry::core::http::http1 {
namespace {

class ServerConnectionImpl final : public ReusableServerConnection,
                                   private ServerCodecCallbacks,
                                   private ResponseEncoder {
 public:
  ServerConnectionImpl(CodecIo& io, ServerConnectionCallbacks& cb, const CodecLimits& limits)
      : io_(io), cb_(cb), codec_(*this, limits), reads_(io) {}

  // ReusableServerConnection
  bool idle() const override {
    return !dead_ && !closed_ && !tunnel_ && !drain_ && !eof_ && !in_parse_ && decoder_ == nullptr &&
           pending_.empty() && !codec_.inMessage();
  }
  void reset(const CodecLimits& limits) override {
    codec_.reset(limits);
    pending_.clear();
    decoder_ = nullptr;
    stream_cb_ = nullptr;
    reads_.forget();
    eof_ = dead_ = closed_ = drain_ = tunnel_ = in_parse_ = false;
    upgrade_ = request_complete_ = response_started_ = sent_100_ = false;
  }

  // ServerConnection
  void dispatch(Buffer& data, bool end_stream) override {
    if (dead_) {
      data.clear();
      return;
    }
    if (tunnel_) {
      if (decoder_ != nullptr && (!data.empty() || end_stream)) decoder_->decodeData(data, end_stream);
      data.clear();
      return;
    }
    pending_.move(data);
    if (end_stream) eof_ = true;
    parse();
  }
  bool pendingInput() const override { return !dead_ && !tunnel_ && (!pending_.empty() || eof_); }
  void drainNotice() override {
    drain_ = true;
    if (decoder_ != nullptr && !response_started_) codec_.closeAfterResponse();
  }
  void sendConnectionError(int status, std::string_view body, ResponseFlag flag) override {
    if (dead_ || decoder_ != nullptr) return;
    writeRawError(status, body, flag);
  }
  void onConnectionWatermark(bool above) override { detail::notifyWatermark(stream_cb_, above); }

 private:
  // Parses what waits, one request at a time.
  void parse() {
    if (in_parse_) return;
    in_parse_ = true;
    while (!dead_ && !tunnel_) {
      if (codec_.paused()) {
        if (decoder_ != nullptr) break;  // answer the current request first (pipelining keeps order)
        codec_.resume();
      }
      const size_t before = pending_.length();
      if (before == 0) break;
      codec_.dispatch(pending_);
      if (dead_) break;
      if (codec_.upgraded()) break;  // the rest are tunnel bytes, sent once the response agrees
      if (pending_.length() == before && !codec_.paused()) break;  // needs more bytes
    }
    in_parse_ = false;
    if (dead_ || tunnel_ || !eof_ || !pending_.empty()) return;
    if (decoder_ == nullptr) {
      codec_.onEof();  // mid-head: a protocol error (400); idle: nothing
      if (!dead_) close(true);  // the client is done and nothing is in flight
    } else if (!request_complete_ && !codec_.upgraded()) {
      codec_.onEof();  // mid-body: a protocol error, answered through the stream
    }
  }

  // ServerCodecCallbacks
  void onRequestHeaders(RequestHeadersPtr h, bool end_stream) override {
    upgrade_ = codec_.upgraded();
    request_complete_ = end_stream;
    response_started_ = false;
    sent_100_ = false;
    stripHopByHop(h->headers, upgrade_);
    if (const std::string* expect = h->headers.get("expect")) {
      if (!HeaderMap::equalsIgnoreCase(*expect, "100-continue")) {
        cb_.onCodecError(417, ResponseFlag::kNone, "unsupported expectation");
        writeRawError(417, "unsupported expectation\n", ResponseFlag::kNone);
        return;
      }
      h->headers.remove("expect");
      if (!end_stream) {  // the client may wait for it before sending the body
        Buffer out;
        codec_.encode100Continue(out);  // nothing for an HTTP/1.0 client
        sent_100_ = !out.empty();
        if (sent_100_) io_.write(out, false);
      }
    }
    if (drain_) codec_.closeAfterResponse();
    decoder_ = &cb_.newStream(*this);
    decoder_->decodeHeaders(std::move(h), end_stream);
  }

  void onRequestData(Buffer& data, bool end_stream) override {
    if (end_stream) request_complete_ = true;
    if (decoder_ == nullptr) {
      data.clear();
      return;
    }
    decoder_->decodeData(data, end_stream);
  }

  void onRequestTrailers(HeaderMap trailers) override {
    request_complete_ = true;
    if (decoder_ != nullptr) decoder_->decodeTrailers(std::move(trailers));
  }

  void onProtocolError(int status, std::string_view detail) override {
    const std::string_view body = status == 431 ? "request headers too large\n" : "bad request\n";
    if (decoder_ == nullptr) {
      cb_.onCodecError(status, ResponseFlag::kDownstreamProtocolError, detail);
      writeRawError(status, body, ResponseFlag::kDownstreamProtocolError);
      return;
    }
    if (response_started_) {  // mid-response: the framing cannot be trusted any more
      dead_ = true;
      close(false);
      return;
    }
    // Mid-request (e.g. a bad chunk): the stream answers; the connection closes after it
    // (the codec is dead, so the response says "connection: close").
    dead_ = true;
    decoder_->onDecodeError(status, body, ResponseFlag::kDownstreamProtocolError);
  }

  // ResponseEncoder
  void encodeHeaders(const ResponseHeaders& h, bool end_stream) override {
    if (decoder_ == nullptr || response_started_) return;
    response_started_ = true;
    const bool tunnel = h.status == 101 && upgrade_;
    Buffer out;
    codec_.encodeHeaders(h, end_stream, out);
    io_.write(out, false);
    if (tunnel) {
      enterTunnel();
      return;
    }
    if (end_stream) endStream();
  }

  void encode1xxHeaders(const ResponseHeaders& h) override {
    if (decoder_ == nullptr || response_started_ || h.status == 101 || h.status < 100 || h.status >= 200) return;
    if (h.status == 100 && sent_100_) return;  // the client already has one, from us
    Buffer out;
    codec_.encodeHeaders(h, false, out);  // an interim response; nothing to an HTTP/1.0 client
    if (!out.empty()) io_.write(out, false);
  }

  void encodeData(Buffer& data, bool end_stream) override {
    if (decoder_ == nullptr || !response_started_) {
      data.clear();
      return;
    }
    if (tunnel_) {
      io_.write(data, end_stream);
      if (end_stream) endStream();
      return;
    }
    Buffer out;
    codec_.encodeData(data, end_stream, out);
    io_.write(out, false);
    if (end_stream) endStream();
  }

  void encodeTrailers(const HeaderMap& trailers) override {
    if (decoder_ == nullptr || !response_started_) return;
    Buffer out;
    codec_.encodeTrailers(trailers, out);
    io_.write(out, false);
    endStream();
  }

  void readDisable(bool disable) override {
    if (decoder_ != nullptr) reads_.disable(disable);
  }

  void resetStream(StreamResetReason) override {
    if (decoder_ == nullptr) return;
    decoder_ = nullptr;
    stream_cb_ = nullptr;
    dead_ = true;  // HTTP/1 has no way to end one stream alone
    close(false);
  }

  void setStreamCallbacks(StreamCallbacks* callbacks) override { stream_cb_ = callbacks; }

  // The response is complete: the stream is over.
  void endStream() {
    decoder_ = nullptr;
    stream_cb_ = nullptr;
    reads_.release();  // what the stream still held back is its own business
    // A response sent before the whole request arrived ends the connection: what follows on
    // the wire cannot be told apart from a new request.
    if (dead_ || tunnel_ || drain_ || !request_complete_ || codec_.responseNeedsClose()) {
      dead_ = true;
      close(true);
    }
  }

  void enterTunnel() {
    tunnel_ = true;
    // Bytes the client sent after its upgrade request are the first tunnel bytes.
    if (!pending_.empty() && decoder_ != nullptr) {
      Buffer first;
      first.move(pending_);
      decoder_->decodeData(first, false);
    }
    if (eof_ && decoder_ != nullptr) {
      Buffer none;
      decoder_->decodeData(none, true);
    }
  }

  void writeRawError(int status, std::string_view body, ResponseFlag flag) {
    dead_ = true;
    pending_.clear();
    std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reasonPhrase(status) +
                       "\r\ncontent-type: text/plain\r\ncontent-length: " + std::to_string(body.size()) +
                       "\r\nconnection: close\r\n";
    if (flag != ResponseFlag::kNone && cb_.responseFlagsHeader())
      head += std::string("x-ferry-flags: ") + responseFlagName(flag) + "\r\n";
    head += "\r\n";
    Buffer out;
    out.add(head);
    out.add(body);
    io_.write(out, true);
    close(true);
  }

  void close(bool flush) {
    if (closed_) return;
    closed_ = true;
    io_.closeConnection(flush);
  }

  CodecIo& io_;
  ServerConnectionCallbacks& cb_;
  ServerCodec codec_;
  Buffer pending_;  // bytes read but not yet parsed (pipelined requests wait here)
  RequestDecoder* decoder_ = nullptr;  // the current stream's; null between requests
  StreamCallbacks* stream_cb_ = nullptr;
  detail::StreamReads reads_;
  bool eof_ = false;
  bool dead_ = false;  // a protocol error, a reset or a close: nothing more is parsed
  bool closed_ = false;
  bool drain_ = false;
  bool tunnel_ = false;
  bool in_parse_ = false;
  bool upgrade_ = false;
  bool request_complete_ = false;
  bool response_started_ = false;
  bool sent_100_ = false;
};

// Hop-by-hop headers (RFC 9110 7.6.1) and their relatives: never forwarded. Names in the map
// are lower-case.
bool isHopByHop(std::string_view n) {
  switch (n.size()) {
    case 2: return equals(n, "te");
    case 7: return equals(n, "trailer") || equals(n, "upgrade");
    case 10: return equals(n, "connection") || equals(n, "keep-alive");
    case 14: return equals(n, "http2-settings");
    case 16: return equals(n, "proxy-connection");
    case 17: return equals(n, "transfer-encoding");
    default: return false;
  }
}

}  // namespace

void stripHopByHop(HeaderMap& h, bool keep_upgrade) {
  // One pass to see what is there: most messages have at most a Connection header.
  const HeaderMap::Entry* connection = nullptr;
  const std::string* upgrade = nullptr;
  size_t n_hop = 0;
  bool te_trailers = false;
  for (const auto& e : h.entries()) {
    if (!isHopByHop(e.name)) continue;
    ++n_hop;
    if (equals(e.name, "connection")) {
      if (connection == nullptr) connection = &e;
    } else if (equals(e.name, "upgrade")) {
      if (upgrade == nullptr) upgrade = &e.value;
    } else if (equals(e.name, "te")) {
      // TE keeps only "trailers" (what gRPC needs); other codings are this hop's business.
      te_trailers = te_trailers || detail::hasToken(e.value, "trailers");
    }
  }
  if (n_hop == 0) return;
  if (n_hop == 1 && connection != nullptr && HeaderMap::equalsIgnoreCase(connection->value, "keep-alive")) {
    // The usual case (most HTTP/1.1 servers send it): the field names only itself.
    h.removeIf([&](const HeaderMap::Entry& e) { return &e == connection; });
    return;
  }
  // The headers the sender named in Connection are hop-by-hop too (any case; "te" stays
  // under the rule above).
  std::string list = connection != nullptr ? h.getAll("connection") : std::string();
  constexpr size_t kInline = 8;
  std::string_view named[kInline];  // no allocation for the usual short lists
  size_t n_named = 0;
  for (size_t pos = 0; pos < list.size();) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string_view item(list.data() + pos, comma - pos);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty() && !isHopByHop(item) && !HeaderMap::equalsIgnoreCase(item, "te")) {
      if (n_named < kInline) {
        named[n_named++] = item;
      } else {
        h.remove(item);  // a long list: the rest one by one
      }
    }
    pos = comma + 1;
  }
  std::string upgrade_value = keep_upgrade && upgrade != nullptr ? *upgrade : std::string();
  h.removeIf([&](const HeaderMap::Entry& e) {
    if (isHopByHop(e.name)) return true;
    for (size_t i = 0; i < n_named; ++i)
      if (HeaderMap::equalsIgnoreCase(e.name, named[i])) return true;
    return false;
  });
  if (te_trailers) h.add("te", "trailers");
  if (!upgrade_value.empty()) {
    h.add("upgrade", upgrade_value);
    h.add("connection", "upgrade");
  }
}

std::unique_ptr<ReusableServerConnection> makeServerConnection(CodecIo& io, ServerConnectionCallbacks& callbacks,
                                                               const CodecLimits& limits) {
  return std::make_unique<ServerConnectionImpl>(io, callbacks, limits);
}

}  // namespace ferry::core::http::http1
