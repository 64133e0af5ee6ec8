#include "filters/http/buffer/buffer_filter.h"

#include <cstdlib>

#include "core/pooled.h"

namespace ferry::filters::http {
using namespace core::http;
using core::Buffer;
namespace {

class BufferFilter : public HttpFilter, public core::PerThreadPooled<BufferFilter> {
 public:
  explicit BufferFilter(uint64_t max) : max_(max) {}

  FilterStatus onRequestHeaders(RequestHeaders& h, bool end_stream) override {
    headers_ = &h;
    if (end_stream) return FilterStatus::kContinue;
    // A declared length over the limit is refused before any body is read.
    if (const auto* cl = h.headers.get("content-length")) {
      char* end = nullptr;
      unsigned long long n = std::strtoull(cl->c_str(), &end, 10);
      if (end && *end == '\0' && n > max_) {
        callbacks_->sendLocalReply(413, "request body too large\n", ResponseFlag::kBodyTooLarge);
        return FilterStatus::kStop;
      }
    }
    // The headers wait here while the body is collected: they go upstream with the body's
    // length, so nothing of the request leaves before the whole body is here.
    return FilterStatus::kStopAndBuffer;
  }

  FilterStatus onRequestBody(Buffer& data, bool end_stream) override {
    // `data` holds everything buffered so far (the manager keeps it between calls).
    if (data.length() > max_) {
      callbacks_->sendLocalReply(413, "request body too large\n", ResponseFlag::kBodyTooLarge);
      return FilterStatus::kStop;
    }
    if (!end_stream) return FilterStatus::kStopAndBuffer;
    // The whole body is here: forward it with a length instead of chunks.
    headers_->headers.remove("transfer-encoding");
    headers_->headers.set("content-length", std::to_string(data.length()));
    return FilterStatus::kContinue;
  }

  FilterStatus onRequestTrailers(HeaderMap&) override { return FilterStatus::kContinue; }

 private:
  uint64_t max_;
  RequestHeaders* headers_ = nullptr;
};

}  // namespace

std::optional<BufferFilterConfig> parseBufferFilterConfig(const config::HttpFilterConfig& entry,
                                                          config::NodeReader& r) {
  BufferFilterConfig c;
  if (!entry.config) return c;
  const size_t before = r.errorCount();
  auto f = r.fields({"config", entry.mark, &*entry.config}, "in buffer config", {"max_request_bytes"});
  if (auto* x = f.get("max_request_bytes"))
    if (auto v = r.getUint(*x, 1, uint64_t{1} << 30)) c.max_request_bytes = *v;
  if (r.errorCount() != before) return std::nullopt;
  return c;
}

Registry::HttpBuilder bufferFilterBuilder() {
  return [](const config::HttpFilterConfig& entry, config::NodeReader& reader, const HttpBuildContext&) -> HttpFilterFactory {
    auto c = parseBufferFilterConfig(entry, reader);
    if (!c) return {};
    uint64_t max = c->max_request_bytes;
    return [max] { return std::make_unique<BufferFilter>(max); };
  };
}

}  // namespace ferry::filters::http
