#include "filters/http/compression/compression_filter.h"

#include <cstdlib>
#include <memory>

#include "core/pooled.h"

namespace ferry::filters::http {
using namespace core::http;
using compression::Coding;
using core::Buffer;
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The comma-separated list `v` has `token` (any case).
bool hasToken(std::string_view v, std::string_view token) {
  while (!v.empty()) {
    const size_t comma = v.find(',');
    std::string_view t = trim(v.substr(0, comma));
    // Cache-Control directives may carry "=value"; the name is what counts.
    t = trim(t.substr(0, t.find('=')));
    if (HeaderMap::equalsIgnoreCase(t, token)) return true;
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return false;
}

bool hasTokenIn(const HeaderMap& h, std::string_view name, std::string_view token) {
  for (const auto& e : h.entries())
    if (e.name == name && hasToken(e.value, token)) return true;
  return false;
}

class CompressionFilter : public HttpFilter, public core::PerThreadPooled<CompressionFilter> {
 public:
  explicit CompressionFilter(std::shared_ptr<const CompressionFilterConfig> c) : c_(std::move(c)) {}

  FilterStatus onRequestHeaders(RequestHeaders& h, bool end_stream) override {
    head_ = h.method == "HEAD";
    if (!c_->request_decompression || end_stream) return FilterStatus::kContinue;
    const std::string* ce = h.headers.get("content-encoding");
    Coding coding;
    // One coding we know (a list of several passes through untouched, as does any other).
    if (ce == nullptr || h.headers.count("content-encoding") != 1 || !compression::parseCoding(trim(*ce), &coding) ||
        coding == Coding::kIdentity)
      return FilterStatus::kContinue;
    decoder_ = compression::makeDecoder(coding, c_->request_max_bytes);
    c_->counters.inc(*callbacks_, CompressionFilterConfig::kDecompressed);
    h.headers.remove("content-encoding");
    h.headers.remove("content-length");  // the inflated body goes on chunked (HTTP/1)
    return FilterStatus::kContinue;
  }

  FilterStatus onRequestBody(Buffer& data, bool end_stream) override {
    if (!decoder_) return FilterStatus::kContinue;
    Buffer out;
    switch (decoder_->decode(data, out)) {
      case compression::Decoder::Result::kTooLarge:
        decoder_.reset();
        c_->counters.inc(*callbacks_, CompressionFilterConfig::kRequestTooLarge);
        callbacks_->sendLocalReply(413, "request body too large\n", ResponseFlag::kBodyTooLarge);
        return FilterStatus::kStop;
      case compression::Decoder::Result::kCorrupt:
        return refuseCorrupt();
      case compression::Decoder::Result::kOk:
        break;
    }
    if (end_stream && !decoder_->finished()) return refuseCorrupt();
    data.move(out);
    return FilterStatus::kContinue;
  }

  FilterStatus onRequestTrailers(HeaderMap&) override {
    if (decoder_ && !decoder_->finished()) return refuseCorrupt();
    return FilterStatus::kContinue;
  }

  FilterStatus onResponseHeaders(ResponseHeaders& h, bool end_stream) override {
    if (end_stream || head_) return FilterStatus::kContinue;
    const int st = h.status;
    if (st < 200 || st == 204 || st == 206 || st == 304) return FilterStatus::kContinue;
    const std::string* ct = h.headers.get("content-type");
    if (ct == nullptr || !c_->compressibleType(*ct)) return FilterStatus::kContinue;
    if (h.headers.has("content-encoding") || h.headers.has("content-range") ||
        hasTokenIn(h.headers, "cache-control", "no-transform"))
      return FilterStatus::kContinue;
    uint64_t length = 0;
    if (const std::string* cl = h.headers.get("content-length")) {
      char* end = nullptr;
      length = std::strtoull(cl->c_str(), &end, 10);
      if (end != nullptr && *end == '\0' && length < c_->min_content_length) return FilterStatus::kContinue;
    }
    // Compressible: caches must key on Accept-Encoding, whether this client gets it compressed
    // or not (nginx's gzip_vary).
    if (!hasTokenIn(h.headers, "vary", "accept-encoding") && !hasTokenIn(h.headers, "vary", "*"))
      h.headers.add("vary", "Accept-Encoding");
    const HeaderMap& req = callbacks_->requestHeaders().headers;
    const std::string* ae = req.get("accept-encoding");
    if (ae == nullptr) return FilterStatus::kContinue;
    const Coding coding = req.count("accept-encoding") == 1
                              ? compression::chooseCoding(*ae, c_->algorithms)
                              : compression::chooseCoding(req.getAll("accept-encoding"), c_->algorithms);
    if (coding == Coding::kIdentity) return FilterStatus::kContinue;
    c_->counters.inc(*callbacks_, coding == Coding::kGzip ? CompressionFilterConfig::kGzip : CompressionFilterConfig::kBrotli);
    encoder_ = compression::makeEncoder(coding, coding == Coding::kGzip ? c_->gzip_level : c_->brotli_quality, length);
    h.headers.remove("content-length");
    h.headers.set("content-encoding", compression::codingName(coding));
    // The bytes differ from the identity representation's: a strong validator must not match.
    if (const std::string* etag = h.headers.get("etag"); etag != nullptr && !etag->empty() && etag->front() == '"')
      h.headers.set("etag", "W/" + *etag);
    return FilterStatus::kContinue;
  }

  FilterStatus onResponseBody(Buffer& data, bool end_stream) override {
    if (!encoder_) return FilterStatus::kContinue;
    Buffer out;
    if (!encoder_->encode(data, out, end_stream)) {
      encoder_.reset();
      callbacks_->resetStream();
      return FilterStatus::kStop;
    }
    if (end_stream) encoder_.reset();  // done: its memory goes now
    data.move(out);
    return FilterStatus::kContinue;
  }

  FilterStatus onResponseTrailers(HeaderMap&) override {
    if (!encoder_) return FilterStatus::kContinue;
    // Trailers end the body: the end of the compressed stream goes before them.
    Buffer in, out;
    const bool ok = encoder_->encode(in, out, true);
    encoder_.reset();
    if (!ok) {
      callbacks_->resetStream();
      return FilterStatus::kStop;
    }
    callbacks_->addResponseDataBeforeTrailers(out);
    return FilterStatus::kContinue;
  }

  void onDestroy() override {
    encoder_.reset();
    decoder_.reset();
  }

 private:
  FilterStatus refuseCorrupt() {
    decoder_.reset();
    c_->counters.inc(*callbacks_, CompressionFilterConfig::kRequestMalformed);
    callbacks_->sendLocalReply(400, "malformed request body encoding\n", ResponseFlag::kDownstreamProtocolError);
    return FilterStatus::kStop;
  }

  std::shared_ptr<const CompressionFilterConfig> c_;
  std::unique_ptr<compression::Encoder> encoder_;
  std::unique_ptr<compression::Decoder> decoder_;
  bool head_ = false;
};

// "type/subtype" or "type/*" (or "*/*"): visible characters, no parameters.
bool validMediaRange(std::string_view s) {
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == s.size()) return false;
  for (char ch : s)
    if (ch <= 0x20 || ch >= 0x7f || ch == ';' || ch == ',') return false;
  const std::string_view type = s.substr(0, slash), sub = s.substr(slash + 1);
  if (sub.find('/') != std::string_view::npos) return false;
  if (type.find('*') != std::string_view::npos && !(type == "*" && sub == "*")) return false;
  return sub == "*" || sub.find('*') == std::string_view::npos;
}

}  // namespace

bool CompressionFilterConfig::compressibleType(std::string_view v) const {
  const std::string_view media = trim(v.substr(0, v.find(';')));
  for (const auto& t : content_types) {
    if (t.prefix) {
      if (media.size() > t.text.size() && HeaderMap::equalsIgnoreCase(media.substr(0, t.text.size()), t.text))
        return true;
    } else if (HeaderMap::equalsIgnoreCase(media, t.text)) {
      return true;
    }
  }
  return false;
}

const std::vector<std::string>& defaultCompressibleTypes() {
  static const std::vector<std::string> kTypes{
      "text/*",
      "application/json",
      "application/javascript",
      "application/xml",
      "application/xhtml+xml",
      "application/rss+xml",
      "application/atom+xml",
      "application/ld+json",
      "application/manifest+json",
      "application/problem+json",
      "application/wasm",
      "image/svg+xml",
  };
  return kTypes;
}

namespace {

void addType(CompressionFilterConfig& c, std::string_view s) {
  std::string t = HeaderMap::lower(s);
  if (t == "*/*") {
    c.content_types.push_back({"", true});
  } else if (t.ends_with("/*")) {
    t.pop_back();
    c.content_types.push_back({std::move(t), true});
  } else {
    c.content_types.push_back({std::move(t), false});
  }
}

}  // namespace

std::optional<CompressionFilterConfig> parseCompressionFilterConfig(const config::HttpFilterConfig& entry,
                                                                    config::NodeReader& r) {
  using Field = config::NodeReader::Field;
  using Kind = config::ConfigNode::Kind;
  CompressionFilterConfig c;
  const size_t before = r.errorCount();
  bool types_set = false;
  if (entry.config) {
    const Field root{"config", entry.mark, &*entry.config};
    if (!r.isMap(root, true)) return std::nullopt;
    auto f = r.fields(root, "in compression config",
                      {"algorithms", "min_content_length", "content_types", "level", "gzip_level", "brotli_quality",
                       "request_decompression"});
    if (const auto* x = f.get("algorithms")) {
      if (x->value->kind != Kind::kList) {
        r.typeError(*x, "a list of br, gzip");
      } else if (x->value->items.empty()) {
        r.error(x->value->mark, "'algorithms' must not be empty");
      } else {
        c.algorithms.clear();
        for (const auto& item : x->value->items) {
          const Field it{x->key, item.mark, &item};
          auto s = r.getString(it);
          if (!s) continue;
          Coding coding;
          if (!compression::parseCoding(*s, &coding) || coding == Coding::kIdentity || *s == "x-gzip") {
            r.error(item.mark, "unknown compression algorithm " + config::NodeReader::quote(*s) + " (use br, gzip)");
            continue;
          }
          bool dup = false;
          for (Coding k : c.algorithms) dup = dup || k == coding;
          if (dup) {
            r.error(item.mark, "compression algorithm " + config::NodeReader::quote(*s) + " listed twice");
            continue;
          }
          c.algorithms.push_back(coding);
        }
      }
    }
    if (const auto* x = f.get("min_content_length"))
      if (auto v = r.getUint(*x, 0, uint64_t{1} << 40)) c.min_content_length = *v;
    if (const auto* x = f.get("content_types")) {
      if (x->value->kind != Kind::kList) {
        r.typeError(*x, "a list of media types");
      } else if (x->value->items.empty()) {
        r.error(x->value->mark, "'content_types' must not be empty");
      } else {
        types_set = true;
        for (const auto& item : x->value->items) {
          const Field it{x->key, item.mark, &item};
          auto s = r.getString(it);
          if (!s) continue;
          if (!validMediaRange(*s)) {
            r.error(item.mark, "invalid media type " + config::NodeReader::quote(*s) +
                                   " in content_types (use type/subtype or type/*, without parameters)");
            continue;
          }
          addType(c, *s);
        }
      }
    }
    // `level` sets both (gzip level N, brotli quality N - 2, at least 1); the specific keys win.
    if (const auto* x = f.get("level"))
      if (auto v = r.getUint(*x, 1, 9)) {
        c.gzip_level = static_cast<int>(*v);
        c.brotli_quality = std::max(1, static_cast<int>(*v) - 2);
      }
    if (const auto* x = f.get("gzip_level"))
      if (auto v = r.getUint(*x, 1, 9)) c.gzip_level = static_cast<int>(*v);
    if (const auto* x = f.get("brotli_quality"))
      if (auto v = r.getUint(*x, 0, 11)) c.brotli_quality = static_cast<int>(*v);
    if (const auto* x = f.get("request_decompression"); x != nullptr && r.isMap(*x, true)) {
      auto df = r.fields(*x, "in request_decompression", {"enabled", "max_bytes"});
      if (const auto* y = df.get("enabled"))
        if (auto v = r.getBool(*y)) c.request_decompression = *v;
      if (const auto* y = df.get("max_bytes"))
        if (auto v = r.getUint(*y, 1, uint64_t{1} << 40)) c.request_max_bytes = *v;
    }
  }
  if (!types_set)
    for (const auto& t : defaultCompressibleTypes()) addType(c, t);
  if (r.errorCount() != before) return std::nullopt;
  return c;
}

Registry::HttpBuilder compressionFilterBuilder() {
  return [](const config::HttpFilterConfig& entry, config::NodeReader& reader,
            const HttpBuildContext& ctx) -> HttpFilterFactory {
    auto parsed = parseCompressionFilterConfig(entry, reader);
    if (!parsed) return {};
    parsed->counters.registerAll(ctx, "ferry_compression_total",
                                 {"gzip", "br", "decompressed", "request_too_large", "request_malformed"},
                                 "Responses the compression filter compressed, and request bodies it decompressed "
                                 "or refused.");
    auto c = std::make_shared<const CompressionFilterConfig>(std::move(*parsed));
    return [c] { return std::make_unique<CompressionFilter>(c); };
  };
}

}  // namespace ferry::filters::http
