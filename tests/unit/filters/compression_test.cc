// The compression filter's codings: Accept-Encoding negotiation (q-values, "*", identity,
// the configured preference) and the streaming encoders/decoders (round trips, flushes that
// decode as they come, the output limit, corrupt input).
#include <zlib.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "filters/http/compression/coding.h"

using namespace ferry::filters::http::compression;
using ferry::core::Buffer;

namespace {

const std::vector<Coding> kBrGzip{Coding::kBrotli, Coding::kGzip};
const std::vector<Coding> kGzipBr{Coding::kGzip, Coding::kBrotli};

Coding choose(std::string_view ae, const std::vector<Coding>& offered = kBrGzip) { return chooseCoding(ae, offered); }

std::string textOf(size_t n) {
  std::string s;
  for (size_t i = 0; s.size() < n; ++i) s += "{\"id\":" + std::to_string(i) + ",\"name\":\"item " + std::to_string(i * 7) + "\"},";
  s.resize(n);
  return s;
}

std::string encodeAll(Coding c, int level, const std::vector<std::string>& chunks) {
  auto enc = makeEncoder(c, level, 0);
  REQUIRE(enc);
  std::string out;
  for (size_t i = 0; i < chunks.size(); ++i) {
    Buffer in, o;
    in.add(chunks[i]);
    REQUIRE(enc->encode(in, o, i + 1 == chunks.size()));
    CHECK(in.empty());
    out += o.toString();
  }
  return out;
}

Decoder::Result decodeAll(Coding c, const std::string& data, std::string* out, uint64_t max = 1u << 30,
                          bool* finished = nullptr) {
  auto dec = makeDecoder(c, max);
  Buffer in, o;
  in.add(data);
  auto r = dec->decode(in, o);
  *out = o.toString();
  if (finished != nullptr) *finished = dec->finished();
  return r;
}

}  // namespace

TEST_CASE("Accept-Encoding: q-values, wildcards and the configured preference", "[compression]") {
  // Equal weights: the configured order decides.
  CHECK(choose("gzip, br") == Coding::kBrotli);
  CHECK(choose("gzip, br", kGzipBr) == Coding::kGzip);
  CHECK(choose("gzip, deflate, br, zstd") == Coding::kBrotli);
  // Weights decide first.
  CHECK(choose("br;q=0.5, gzip") == Coding::kGzip);
  CHECK(choose("br;q=0.9, gzip;q=0.8") == Coding::kBrotli);
  CHECK(choose("br;q=0.001, gzip;q=0.002") == Coding::kGzip);
  CHECK(choose("gzip;q=1.000, br;q=0.999") == Coding::kGzip);
  // q=0 refuses, in any spelling.
  CHECK(choose("gzip;q=0") == Coding::kIdentity);
  CHECK(choose("br;q=0.000, gzip;q=0.0") == Coding::kIdentity);
  CHECK(choose("br;q=0, gzip") == Coding::kGzip);
  // Only what is offered.
  CHECK(choose("br", {Coding::kGzip}) == Coding::kIdentity);
  CHECK(choose("deflate, zstd, compress") == Coding::kIdentity);
  // "*": everything not listed, at its weight.
  CHECK(choose("*") == Coding::kBrotli);
  CHECK(choose("*;q=0.5, gzip") == Coding::kGzip);
  CHECK(choose("br;q=0, *") == Coding::kGzip);
  CHECK(choose("*;q=0") == Coding::kIdentity);
  CHECK(choose("*;q=0, gzip;q=0.1") == Coding::kGzip);
  // identity: only an explicitly listed, heavier identity beats the compressed ones.
  CHECK(choose("identity") == Coding::kIdentity);
  CHECK(choose("gzip;q=0.5, identity") == Coding::kIdentity);
  CHECK(choose("gzip, identity") == Coding::kGzip);
  CHECK(choose("gzip;q=0.5") == Coding::kGzip);
  CHECK(choose("identity;q=0, gzip;q=0.3") == Coding::kGzip);
  // Case, spacing, x-gzip, other parameters, repeats (the heaviest counts).
  CHECK(choose("GZIP ; Q=0.7 , BR ; q=0.6") == Coding::kGzip);
  CHECK(choose("x-gzip") == Coding::kGzip);
  CHECK(choose("br;level=3;q=0.2, gzip;q=0.1") == Coding::kBrotli);
  CHECK(choose("gzip;q=0.1, br;q=0.2, gzip;q=0.3") == Coding::kGzip);
  CHECK(choose(" , ,gzip,, ") == Coding::kGzip);
  // Malformed q-values: the entry is ignored.
  CHECK(choose("br;q=2, gzip;q=0.1") == Coding::kGzip);
  CHECK(choose("br;q=1.5, gzip;q=0.1") == Coding::kGzip);
  CHECK(choose("br;q=0.1234, gzip;q=0.1") == Coding::kGzip);
  CHECK(choose("br;q=abc, gzip;q=0.1") == Coding::kGzip);
  CHECK(choose("br;q=, gzip;q=0.1") == Coding::kGzip);
  CHECK(choose("br;q=-1") == Coding::kIdentity);
  CHECK(choose("br;q=0.5") == Coding::kBrotli);
  // Nothing acceptable.
  CHECK(choose("") == Coding::kIdentity);
  CHECK(choose(";q=1") == Coding::kIdentity);
}

TEST_CASE("codings: gzip and brotli round trips, chunk by chunk", "[compression]") {
  const std::string a = textOf(20000), b = textOf(70000), c = "tail";
  for (Coding coding : {Coding::kGzip, Coding::kBrotli}) {
    INFO(codingName(coding));
    for (int level : {1, 6, 9}) {
      const std::string z = encodeAll(coding, level, {a, b, c});
      CHECK(z.size() < (a.size() + b.size()) / 3);
      std::string out;
      bool finished = false;
      CHECK(decodeAll(coding, z, &out, 1u << 30, &finished) == Decoder::Result::kOk);
      CHECK(finished);
      CHECK(out == a + b + c);
    }
    // An empty body still makes a whole stream.
    std::string out;
    bool finished = false;
    CHECK(decodeAll(coding, encodeAll(coding, 6, {""}), &out, 1u << 30, &finished) == Decoder::Result::kOk);
    CHECK(finished);
    CHECK(out.empty());
  }
}

TEST_CASE("codings: each chunk is flushed so what came so far decodes", "[compression]") {
  for (Coding coding : {Coding::kGzip, Coding::kBrotli}) {
    INFO(codingName(coding));
    auto enc = makeEncoder(coding, 6, 0);
    auto dec = makeDecoder(coding, 1u << 30);
    std::string decoded;
    for (const std::string& part : {std::string("first part, "), textOf(3000), std::string("third")}) {
      Buffer in, z, o;
      in.add(part);
      REQUIRE(enc->encode(in, z, false));
      REQUIRE(dec->decode(z, o) == Decoder::Result::kOk);
      decoded += o.toString();
      CHECK(decoded.size() >= part.size());
      CHECK(decoded.ends_with(part));  // all of it, before the stream ends
      CHECK_FALSE(dec->finished());
    }
    Buffer none, z, o;
    REQUIRE(enc->encode(none, z, true));
    REQUIRE(dec->decode(z, o) == Decoder::Result::kOk);
    CHECK(o.empty());
    CHECK(dec->finished());
  }
}

TEST_CASE("codings: the decoder's output limit stops a bomb early; corrupt input is refused", "[compression]") {
  const std::string zeros(8u << 20, '\0');
  for (Coding coding : {Coding::kGzip, Coding::kBrotli}) {
    INFO(codingName(coding));
    const std::string bomb = encodeAll(coding, 9, {zeros});
    CHECK(bomb.size() < 64 * 1024);
    std::string out;
    CHECK(decodeAll(coding, bomb, &out, 1u << 20) == Decoder::Result::kTooLarge);
    CHECK(out.size() <= (1u << 20) + Buffer::kSliceSize);  // stopped within a slice of the limit
    CHECK(decodeAll(coding, bomb, &out, 8u << 20) == Decoder::Result::kOk);  // exactly at the limit
    // Garbage, and garbage after a whole stream.
    CHECK(decodeAll(coding, "this is not compressed at all", &out) == Decoder::Result::kCorrupt);
    CHECK(decodeAll(coding, encodeAll(coding, 6, {"x"}) + "trailing junk", &out) == Decoder::Result::kCorrupt);
    // Truncated: fine so far, but not finished.
    const std::string z = encodeAll(coding, 6, {textOf(5000)});
    bool finished = true;
    CHECK(decodeAll(coding, z.substr(0, z.size() - 3), &out, 1u << 30, &finished) == Decoder::Result::kOk);
    CHECK_FALSE(finished);
  }
  // Several gzip members in a row decode as one body (RFC 1952).
  std::string out;
  bool finished = false;
  CHECK(decodeAll(Coding::kGzip, encodeAll(Coding::kGzip, 6, {"one "}) + encodeAll(Coding::kGzip, 6, {"two"}), &out,
                  1u << 30, &finished) == Decoder::Result::kOk);
  CHECK(out == "one two");
  CHECK(finished);
}
