// Content codings for the compression filter: Accept-Encoding negotiation (RFC 9110 12.5.3)
// and streaming gzip (zlib) and brotli encoders and decoders that work chunk by chunk on
// Buffers, writing straight into the output's slices. Worker-local objects; the state behind
// each encoder/decoder is allocated when it is made (only for streams that need one).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "core/buffer.h"

namespace ferry::filters::http::compression {

enum class Coding : uint8_t { kIdentity, kGzip, kBrotli };

// "gzip", "br", "identity": the Content-Encoding token.
const char* codingName(Coding c);
// The coding a Content-Encoding / config token names (case-insensitive; "x-gzip" is gzip);
// false when it is none of gzip, br, identity.
bool parseCoding(std::string_view token, Coding* out);

// Chooses the response coding among `offered` (most preferred first) from the value of the
// request's Accept-Encoding. Each offered coding weighs its own q-value if listed, else that of
// "*" if listed, else it is not acceptable; q=0 refuses. The highest weight wins, ties going to
// the earlier entry of `offered`. An explicitly listed "identity" with a higher weight than
// every offered coding wins too (no compression). Entries with a malformed q are ignored.
// kIdentity: compress with nothing.
Coding chooseCoding(std::string_view accept_encoding, std::span<const Coding> offered);

// A streaming compressor. Each call consumes all of `in` (leaving it empty) and appends to
// `out` everything it produces: flushed (the client can decode all it got so far) or, with
// `finish`, the end of the stream. False on an internal error.
class Encoder {
 public:
  virtual ~Encoder() = default;
  virtual bool encode(core::Buffer& in, core::Buffer& out, bool finish) = 0;
};
// gzip level 1-9; brotli quality 0-11 (size_hint: the expected input length, 0 unknown).
std::unique_ptr<Encoder> makeEncoder(Coding c, int level, uint64_t size_hint);

// A streaming decompressor with an output limit.
class Decoder {
 public:
  enum class Result { kOk, kTooLarge, kCorrupt };
  virtual ~Decoder() = default;
  // Consumes all of `in`, appending what it inflates to `out`; kTooLarge as soon as the total
  // output passes the limit (output is produced a slice at a time, so a bomb is stopped early).
  virtual Result decode(core::Buffer& in, core::Buffer& out) = 0;
  // The compressed stream ended properly (with all its input consumed).
  virtual bool finished() const = 0;
};
std::unique_ptr<Decoder> makeDecoder(Coding c, uint64_t max_output);

}  // namespace ferry::filters::http::compression
