// The HTTP/1 client side of core/http/codec.h: one stream at a time on an upstream connection.
//
// - A response's hop-by-hop headers, and the ones its Connection header names, are removed
//   before the stream sees it (a 101 keeps Upgrade with "connection: upgrade").
// - After a 101 (or a 2xx to CONNECT) the stream is a raw tunnel both ways; the upstream's FIN
//   ends it as the end of the response.
// - The stream ends when its response is complete (or on a reset); the connection can carry
//   another only if the message codec says keep-alive (the request was fully sent, neither side
//   asked to close, the response was not close-delimited).
// - The upstream closing before the response is complete resets the stream
//   (kConnectionTermination); a malformed response resets it with kProtocolError.
#include "core/http/http1/connection.h"

namespace ferry::core::http::http1 {
namespace {

class ClientConnectionImpl final : public ClientConnection, private ClientCodecCallbacks, private RequestEncoder {
 public:
  ClientConnectionImpl(CodecIo& io, ClientConnectionCallbacks& cb, const CodecLimits& limits)
      : io_(io), cb_(cb), codec_(*this, limits), reads_(io) {}

  // ClientConnection
  RequestEncoder& newStream(ResponseDecoder& decoder) override {
    decoder_ = &decoder;
    stream_cb_ = nullptr;
    return *this;
  }

  void dispatch(Buffer& data, bool end_stream) override {
    if (decoder_ == nullptr) {  // bytes for no stream: dropped (the owner treats an idle
      data.clear();              // connection that reads anything as closed)
      return;
    }
    if (!codec_.upgraded()) {
      codec_.dispatch(data);
      if (decoder_ == nullptr) {
        data.clear();
        return;
      }
    }
    if (codec_.upgraded()) {  // tunnel bytes, raw
      if (!data.empty() || end_stream) {
        decoder_->decodeData(data, end_stream);
        if (end_stream) endStream();
      }
      data.clear();
      return;
    }
    data.clear();
    if (!end_stream) return;
    // The upstream closed: that may complete a close-delimited response; otherwise the
    // stream lost its connection.
    codec_.onEof();
    if (decoder_ != nullptr) reset(StreamResetReason::kConnectionTermination, "upstream closed the connection");
  }

  void onConnectionClosed(std::string_view detail) override {
    if (decoder_ != nullptr) reset(StreamResetReason::kConnectionTermination, detail);
  }

  void onConnectionWatermark(bool above) override { detail::notifyWatermark(stream_cb_, above); }

  size_t activeStreams() const override { return decoder_ != nullptr ? 1 : 0; }
  bool reusable() const override { return !broken_ && codec_.keepAlive(); }

 private:
  // ClientCodecCallbacks
  void onResponseHeaders(ResponseHeadersPtr h, bool end_stream) override {
    stripHopByHop(h->headers, codec_.upgraded() && h->status == 101);
    decoder_->decodeHeaders(std::move(h), end_stream);
    if (end_stream) endStream();
  }
  void onInformational(ResponseHeadersPtr h) override {
    stripHopByHop(h->headers, false);
    decoder_->decode1xxHeaders(std::move(h));
  }
  void onResponseData(Buffer& data, bool end_stream) override {
    decoder_->decodeData(data, end_stream);
    if (end_stream) endStream();
  }
  void onResponseTrailers(HeaderMap trailers) override {
    decoder_->decodeTrailers(std::move(trailers));
    endStream();
  }
  void onProtocolError(std::string_view detail) override {
    broken_ = true;
    reset(StreamResetReason::kProtocolError, detail);
  }

  // RequestEncoder
  void encodeHeaders(const RequestHeaders& h, bool end_stream) override {
    Buffer out;
    codec_.encodeHeaders(h, end_stream, out);
    io_.write(out, false);
  }
  void encodeData(Buffer& data, bool end_stream) override {
    if (codec_.upgraded()) {  // the tunnel: the downstream's FIN becomes ours
      io_.write(data, end_stream);
      return;
    }
    Buffer out;
    codec_.encodeData(data, end_stream, out);
    io_.write(out, false);
  }
  void encodeTrailers(const HeaderMap& trailers) override {
    Buffer out;
    codec_.encodeTrailers(trailers, out);
    io_.write(out, false);
  }
  void readDisable(bool disable) override { reads_.disable(disable); }
  void resetStream(StreamResetReason) override {
    if (decoder_ == nullptr) return;
    decoder_ = nullptr;
    stream_cb_ = nullptr;
    broken_ = true;  // an HTTP/1 stream ends only with its connection
    io_.closeConnection(false);
  }
  void setStreamCallbacks(StreamCallbacks* callbacks) override { stream_cb_ = callbacks; }

  // The response is complete.
  void endStream() {
    if (decoder_ == nullptr) return;
    decoder_ = nullptr;
    stream_cb_ = nullptr;
    reads_.release();
    cb_.onStreamEnd();
  }

  void reset(StreamResetReason reason, std::string_view detail) {
    StreamCallbacks* scb = stream_cb_;
    decoder_ = nullptr;
    stream_cb_ = nullptr;
    broken_ = true;
    reads_.release();
    if (scb != nullptr) scb->onResetStream(reason, detail);
    cb_.onStreamEnd();
  }

  CodecIo& io_;
  ClientConnectionCallbacks& cb_;
  ClientCodec codec_;
  ResponseDecoder* decoder_ = nullptr;
  StreamCallbacks* stream_cb_ = nullptr;
  detail::StreamReads reads_;  // a stream that ends gives back the reads it held
  bool broken_ = false;  // a reset or a malformed response: never reused
};

}  // namespace

std::unique_ptr<ClientConnection> makeClientConnection(CodecIo& io, ClientConnectionCallbacks& callbacks,
                                                       const CodecLimits& limits) {
  return std::make_unique<ClientConnectionImpl>(io, callbacks, limits);
}

}  // namespace ferry::core::http::http1
