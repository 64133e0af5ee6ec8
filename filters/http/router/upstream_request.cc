#include "filters/http/router/router_impl.h"

namespace ferry::filters::http {

void UpstreamRequest::start() {
  const uint64_t ticket = pool_.newStream(*this, *this, *this);
  // 0: the pool answered already, and the answer may have ended this try (and this object).
  if (ticket != 0) ticket_ = ticket;
}

void UpstreamRequest::reset() {
  if (ticket_ != 0) {
    const uint64_t t = ticket_;
    ticket_ = 0;
    pool_.cancel(t);
  }
  if (encoder_ != nullptr && !finished_) {
    core::http::RequestEncoder* e = encoder_;
    encoder_ = nullptr;
    e->resetStream(core::http::StreamResetReason::kLocalReset);
  }
  encoder_ = nullptr;
}

void UpstreamRequest::onPoolReady(core::http::RequestEncoder& encoder, bool reused) {
  ticket_ = 0;
  encoder_ = &encoder;
  reused_ = reused;
  router_.onUpstreamReady();
}

void UpstreamRequest::onPoolFailure(core::upstream::PoolFailure reason, std::string_view detail) {
  ticket_ = 0;
  router_.onUpstreamFailure(reason, detail);
}

void UpstreamRequest::decode1xxHeaders(core::http::ResponseHeadersPtr headers) {
  router_.onUpstream1xx(std::move(headers));
}

// The last piece of a response hands the stream back to the pool before the router hears of
// it: nothing may reset the stream after that.
void UpstreamRequest::decodeHeaders(core::http::ResponseHeadersPtr headers, bool end_stream) {
  if (end_stream) {
    finished_ = true;
    encoder_ = nullptr;
  }
  router_.onUpstreamHeaders(std::move(headers), end_stream);
}

void UpstreamRequest::decodeData(core::Buffer& data, bool end_stream) {
  if (end_stream) {
    finished_ = true;
    encoder_ = nullptr;
  }
  router_.onUpstreamData(data, end_stream);
}

void UpstreamRequest::decodeTrailers(core::http::HeaderMap trailers) {
  finished_ = true;
  encoder_ = nullptr;
  router_.onUpstreamTrailers(std::move(trailers));
}

void UpstreamRequest::onResetStream(core::http::StreamResetReason reason, std::string_view detail) {
  encoder_ = nullptr;
  finished_ = true;
  router_.onUpstreamReset(reason, detail);
}

void UpstreamRequest::onAboveWriteBufferHighWatermark() { router_.onUpstreamWatermark(true); }
void UpstreamRequest::onBelowWriteBufferLowWatermark() { router_.onUpstreamWatermark(false); }

}  // namespace ferry::filters::http
