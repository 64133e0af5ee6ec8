#include "filters/http/compression/coding.h"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <sys/uio.h>
#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/http/header_map.h"

namespace ferry::filters::http::compression {
using core::Buffer;
using core::http::HeaderMap;

const char* codingName(Coding c) {
  switch (c) {
    case Coding::kGzip: return "gzip";
    case Coding::kBrotli: return "br";
    case Coding::kIdentity: break;
  }
  return "identity";
}

bool parseCoding(std::string_view t, Coding* out) {
  if (HeaderMap::equalsIgnoreCase(t, "gzip") || HeaderMap::equalsIgnoreCase(t, "x-gzip")) {
    *out = Coding::kGzip;
  } else if (HeaderMap::equalsIgnoreCase(t, "br")) {
    *out = Coding::kBrotli;
  } else if (HeaderMap::equalsIgnoreCase(t, "identity")) {
    *out = Coding::kIdentity;
  } else {
    return false;
  }
  return true;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths; -1 if malformed.
int parseQ(std::string_view v) {
  if (v.empty() || (v[0] != '0' && v[0] != '1')) return -1;
  const bool one = v[0] == '1';
  int q = one ? 1000 : 0;
  if (v.size() == 1) return q;
  if (v[1] != '.' || v.size() > 5) return -1;
  int scale = 100;
  for (size_t i = 2; i < v.size(); ++i, scale /= 10) {
    const char c = v[i];
    if (c < '0' || c > '9' || (one && c != '0')) return -1;
    q += (c - '0') * scale;
  }
  return q;
}

}  // namespace

Coding chooseCoding(std::string_view header, std::span<const Coding> offered) {
  // Weights in thousandths; -1: not listed.
  int gzip = -1, br = -1, star = -1, identity = -1;
  while (!header.empty()) {
    const size_t comma = header.find(',');
    std::string_view element = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    const size_t semi = element.find(';');
    const std::string_view name = trim(element.substr(0, semi));
    if (name.empty()) continue;
    int q = 1000;
    bool valid = true;
    for (std::string_view params = semi == std::string_view::npos ? std::string_view{} : element.substr(semi + 1);
         !params.empty();) {
      const size_t next = params.find(';');
      std::string_view p = trim(params.substr(0, next));
      params = next == std::string_view::npos ? std::string_view{} : params.substr(next + 1);
      if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && trim(p.substr(1)).starts_with('=')) {
        std::string_view v = trim(p.substr(1));
        q = parseQ(trim(v.substr(1)));
        if (q < 0) valid = false;
      }
    }
    if (!valid) continue;
    int* slot = nullptr;
    Coding c;
    if (name == "*") {
      slot = &star;
    } else if (parseCoding(name, &c)) {
      slot = c == Coding::kGzip ? &gzip : c == Coding::kBrotli ? &br : &identity;
    }
    if (slot != nullptr && q > *slot) *slot = q;
  }
  Coding best = Coding::kIdentity;
  int best_q = 0;
  for (Coding c : offered) {
    int q = c == Coding::kGzip ? gzip : c == Coding::kBrotli ? br : -1;
    if (c == Coding::kIdentity) continue;
    if (q < 0) q = star < 0 ? 0 : star;
    if (q > best_q) {
      best = c;
      best_q = q;
    }
  }
  if (best_q == 0 || identity > best_q) return Coding::kIdentity;
  return best;
}

namespace {

// ---- memory: a per-thread cache of the libraries' blocks

// A compressed stream's state is a few large blocks (zlib's window, hash chains and pending
// buffer: 64 KiB each at the defaults; brotli's ring buffer and hash tables), of the same sizes
// response after response. Handing them back to malloc after every response costs more than
// compressing 10 kB (the heap top is trimmed and grown again, large blocks are mmapped), so
// freed blocks of 4 KiB and more wait in this thread's cache, up to kCacheBytes, for the next
// stream of the same kind. Smaller blocks go to malloc directly. A block freed on another
// thread joins that thread's cache (they are plain memory).
constexpr size_t kHeader = 16;  // the block's size, keeping malloc's 16-byte alignment
constexpr size_t kMinCached = 4096;
constexpr size_t kCacheBytes = size_t{2} << 20;

class BlockCache {
 public:
  ~BlockCache() {
    for (auto& b : bins_)
      for (void* p : b.blocks) std::free(p);
  }
  void* take(size_t n) {
    if (n >= kMinCached)
      for (auto& b : bins_)
        if (b.size == n && !b.blocks.empty()) {
          void* p = b.blocks.back();
          b.blocks.pop_back();
          bytes_ -= n;
          return p;
        }
    return std::malloc(n + kHeader);
  }
  void give(void* p, size_t n) {
    if (n >= kMinCached && bytes_ + n <= kCacheBytes) {
      Bin* bin = nullptr;
      for (auto& b : bins_)
        if (b.size == n) bin = &b;
      if (bin == nullptr) bin = &bins_.emplace_back(Bin{n, {}});
      bin->blocks.push_back(p);
      bytes_ += n;
      return;
    }
    std::free(p);
  }

 private:
  struct Bin {
    size_t size;
    std::vector<void*> blocks;
  };
  std::vector<Bin> bins_;
  size_t bytes_ = 0;
};

thread_local BlockCache t_blocks;

void* allocBlock(size_t n) {
  auto* p = static_cast<unsigned char*>(t_blocks.take(n));
  if (p == nullptr) return nullptr;
  std::memcpy(p, &n, sizeof n);
  return p + kHeader;
}
void freeBlock(void* q) {
  if (q == nullptr) return;
  auto* p = static_cast<unsigned char*>(q) - kHeader;
  size_t n;
  std::memcpy(&n, p, sizeof n);
  t_blocks.give(p, n);
}
voidpf zAlloc(voidpf, uInt items, uInt size) { return allocBlock(size_t{items} * size); }
void zFree(voidpf, voidpf p) { freeBlock(p); }
void* brAlloc(void*, size_t n) { return allocBlock(n); }
void brFree(void*, void* p) { freeBlock(p); }

// ---- gzip

class GzipEncoder final : public Encoder {
 public:
  GzipEncoder(int level, uint64_t size_hint) {
    // A window no larger than the body needs (as nginx does): less memory to set up.
    int wbits = 15, mem_level = 8;
    while (size_hint > 0 && wbits > 9 && size_hint < (uint64_t{1} << (wbits - 1)) - 262) {
      --wbits;
      --mem_level;
    }
    if (mem_level < 1) mem_level = 1;
    z_.zalloc = zAlloc;
    z_.zfree = zFree;
    ok_ = deflateInit2(&z_, level, Z_DEFLATED, wbits + 16, mem_level, Z_DEFAULT_STRATEGY) == Z_OK;
  }
  ~GzipEncoder() override {
    if (ok_) deflateEnd(&z_);
  }
  bool encode(Buffer& in, Buffer& out, bool finish) override {
    if (!ok_) return false;
    while (!in.empty()) {
      iovec v;
      in.gather(&v, 1);
      z_.next_in = static_cast<Bytef*>(v.iov_base);
      z_.avail_in = static_cast<uInt>(v.iov_len);
      while (z_.avail_in > 0)
        if (!pump(out, Z_NO_FLUSH)) return false;
      in.drain(v.iov_len);
    }
    // Flush: everything so far reaches the client now; finish: the stream's end and trailer.
    const int mode = finish ? Z_FINISH : Z_SYNC_FLUSH;
    for (;;) {
      int rc = 0;
      if (!pump(out, mode, &rc)) return false;
      if (finish ? rc == Z_STREAM_END : z_.avail_out != 0) return true;
    }
  }

 private:
  bool pump(Buffer& out, int mode, int* rc_out = nullptr) {
    iovec o;
    out.reserve(&o, 1);
    z_.next_out = static_cast<Bytef*>(o.iov_base);
    z_.avail_out = static_cast<uInt>(o.iov_len);
    const int rc = deflate(&z_, mode);
    out.commit(o.iov_len - z_.avail_out);
    if (rc_out != nullptr) *rc_out = rc;
    return rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR;
  }

  z_stream z_{};
  bool ok_ = false;
};

class GzipDecoder final : public Decoder {
 public:
  explicit GzipDecoder(uint64_t max) : max_(max) {
    z_.zalloc = zAlloc;
    z_.zfree = zFree;
    ok_ = inflateInit2(&z_, 15 + 16) == Z_OK;
  }
  ~GzipDecoder() override {
    if (ok_) inflateEnd(&z_);
  }
  Result decode(Buffer& in, Buffer& out) override {
    if (!ok_) return Result::kCorrupt;
    while (!in.empty()) {
      iovec v;
      in.gather(&v, 1);
      z_.next_in = static_cast<Bytef*>(v.iov_base);
      z_.avail_in = static_cast<uInt>(v.iov_len);
      do {
        if (finished_) {
          // Another gzip member follows (RFC 1952 allows several): decode it too.
          if (inflateReset(&z_) != Z_OK) return Result::kCorrupt;
          finished_ = false;
        }
        iovec o;
        out.reserve(&o, 1);
        z_.next_out = static_cast<Bytef*>(o.iov_base);
        z_.avail_out = static_cast<uInt>(o.iov_len);
        const int rc = inflate(&z_, Z_NO_FLUSH);
        const size_t produced = o.iov_len - z_.avail_out;
        out.commit(produced);
        total_ += produced;
        if (total_ > max_) return Result::kTooLarge;
        if (rc == Z_STREAM_END) {
          finished_ = true;
          if (z_.avail_in == 0) break;
        } else if (rc == Z_BUF_ERROR) {
          if (z_.avail_out != 0) break;  // no progress possible: needs more input
        } else if (rc != Z_OK) {
          return Result::kCorrupt;
        }
      } while (z_.avail_in > 0 || z_.avail_out == 0);
      in.drain(v.iov_len);
    }
    return Result::kOk;
  }
  bool finished() const override { return finished_; }

 private:
  z_stream z_{};
  bool ok_ = false;
  bool finished_ = false;
  uint64_t max_;
  uint64_t total_ = 0;
};

// ---- brotli

class BrotliEncoder final : public Encoder {
 public:
  BrotliEncoder(int quality, uint64_t size_hint) : st_(BrotliEncoderCreateInstance(brAlloc, brFree, nullptr)) {
    if (st_ == nullptr) return;
    BrotliEncoderSetParameter(st_, BROTLI_PARAM_QUALITY, static_cast<uint32_t>(quality));
    // A 256 KiB window (nginx's brotli uses 512 KiB; the library default is 4 MiB): bounded
    // memory per compressed stream.
    BrotliEncoderSetParameter(st_, BROTLI_PARAM_LGWIN, 18);
    BrotliEncoderSetParameter(st_, BROTLI_PARAM_MODE, BROTLI_MODE_TEXT);
    if (size_hint > 0 && size_hint < (1u << 30))
      BrotliEncoderSetParameter(st_, BROTLI_PARAM_SIZE_HINT, static_cast<uint32_t>(size_hint));
  }
  ~BrotliEncoder() override {
    if (st_ != nullptr) BrotliEncoderDestroyInstance(st_);
  }
  bool encode(Buffer& in, Buffer& out, bool finish) override {
    if (st_ == nullptr) return false;
    while (!in.empty()) {
      iovec v;
      in.gather(&v, 1);
      size_t avail_in = v.iov_len;
      const uint8_t* next_in = static_cast<const uint8_t*>(v.iov_base);
      while (avail_in > 0 || BrotliEncoderHasMoreOutput(st_))
        if (!pump(out, BROTLI_OPERATION_PROCESS, &avail_in, &next_in)) return false;
      in.drain(v.iov_len);
    }
    const BrotliEncoderOperation op = finish ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_FLUSH;
    size_t avail_in = 0;
    const uint8_t* next_in = nullptr;
    do {
      if (!pump(out, op, &avail_in, &next_in)) return false;
    } while (BrotliEncoderHasMoreOutput(st_) || (finish && !BrotliEncoderIsFinished(st_)));
    return true;
  }

 private:
  bool pump(Buffer& out, BrotliEncoderOperation op, size_t* avail_in, const uint8_t** next_in) {
    iovec o;
    out.reserve(&o, 1);
    size_t avail_out = o.iov_len;
    uint8_t* next_out = static_cast<uint8_t*>(o.iov_base);
    const bool ok = BrotliEncoderCompressStream(st_, op, avail_in, next_in, &avail_out, &next_out, nullptr);
    out.commit(o.iov_len - avail_out);
    return ok;
  }

  BrotliEncoderState* st_;
};

class BrotliDecoder final : public Decoder {
 public:
  explicit BrotliDecoder(uint64_t max) : st_(BrotliDecoderCreateInstance(brAlloc, brFree, nullptr)), max_(max) {}
  ~BrotliDecoder() override {
    if (st_ != nullptr) BrotliDecoderDestroyInstance(st_);
  }
  Result decode(Buffer& in, Buffer& out) override {
    if (st_ == nullptr) return Result::kCorrupt;
    while (!in.empty()) {
      iovec v;
      in.gather(&v, 1);
      if (finished_) return Result::kCorrupt;  // bytes after the end of the stream
      size_t avail_in = v.iov_len;
      const uint8_t* next_in = static_cast<const uint8_t*>(v.iov_base);
      for (;;) {
        iovec o;
        out.reserve(&o, 1);
        size_t avail_out = o.iov_len;
        uint8_t* next_out = static_cast<uint8_t*>(o.iov_base);
        const BrotliDecoderResult rc =
            BrotliDecoderDecompressStream(st_, &avail_in, &next_in, &avail_out, &next_out, nullptr);
        const size_t produced = o.iov_len - avail_out;
        out.commit(produced);
        total_ += produced;
        if (total_ > max_) return Result::kTooLarge;
        if (rc == BROTLI_DECODER_RESULT_ERROR) return Result::kCorrupt;
        if (rc == BROTLI_DECODER_RESULT_SUCCESS) {
          finished_ = true;
          if (avail_in > 0) return Result::kCorrupt;
          break;
        }
        if (rc == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) break;
        // NEEDS_MORE_OUTPUT: another slice.
      }
      in.drain(v.iov_len);
    }
    return Result::kOk;
  }
  bool finished() const override { return finished_; }

 private:
  BrotliDecoderState* st_;
  bool finished_ = false;
  uint64_t max_;
  uint64_t total_ = 0;
};

}  // namespace

std::unique_ptr<Encoder> makeEncoder(Coding c, int level, uint64_t size_hint) {
  switch (c) {
    case Coding::kGzip: return std::make_unique<GzipEncoder>(level, size_hint);
    case Coding::kBrotli: return std::make_unique<BrotliEncoder>(level, size_hint);
    case Coding::kIdentity: break;
  }
  return nullptr;
}

std::unique_ptr<Decoder> makeDecoder(Coding c, uint64_t max_output) {
  switch (c) {
    case Coding::kGzip: return std::make_unique<GzipDecoder>(max_output);
    case Coding::kBrotli: return std::make_unique<BrotliDecoder>(max_output);
    case Coding::kIdentity: break;
  }
  return nullptr;
}

}  // namespace ferry::filters::http::compression
