// Internal to the HTTP/1 codec (included only by core/http/http1/*.cc, and by the codec micro
// benchmark, which times the framing scan against llhttp): the llhttp driver shared by
// ServerCodec and ClientCodec, and the encoding helpers. Not for other code: it pulls in
// llhttp.h.
#pragma once

#include <llhttp.h>

#include <cassert>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/buffer.h"
#include "core/http/http1/crlf_scan.h"
#include "core/http/http1/field_chars.h"
#include "core/http/http1/codec.h"
#include "core/http/header_map.h"

namespace ferry::core::http::http1::detail {

// Drives llhttp over a Buffer. run() stops at each event (head parsed, message complete), so the
// codecs validate and deliver outside llhttp's callbacks. Besides llhttp's own checks it scans
// every non-body byte (head, chunk framing, trailers) for bare LF, bare CR and obs-fold (which
// strict llhttp 8.1 lets through), captures the start line for exact validation, and enforces
// CodecLimits. Body bytes are moved (whole slices without copying) into body().
class MessageParser {
 public:
  enum class Event { kNeedMore, kHead, kMessageComplete, kError };

  MessageParser(llhttp_type_t type, const CodecLimits& limits);
  MessageParser(const MessageParser&) = delete;
  MessageParser& operator=(const MessageParser&) = delete;

  // Back to the state of a new parser (of the same type) under `limits`, keeping the memory
  // its strings and vectors have grown (a parser handed to another connection).
  void reset(const CodecLimits& limits);

  // Consumes from `in` until an event or until `in` is empty. After kHead the caller may adjust
  // llhttp (skipBody(), noUpgrade()) and calls run() again to go on; after kHead it must not
  // call run() if the rest is a tunnel. After kError the parser is dead.
  Event run(Buffer& in);
  // Upstream EOF: completes a close-delimited message (kMessageComplete) or reports kError if a
  // message was partly received; kNeedMore if idle.
  Event finish();

  // Valid after kHead until the next message begins.
  std::string_view startLine() const { return first_line_; }
  HeaderMap& headers() { return head_ != nullptr ? *head_ : own_headers_; }
  // Where the next message's header fields go: a map the codec takes from its pool before
  // the message begins (and moves on with the head), so the parser holds none between
  // messages. Null: the parser's own map.
  void setHeadTarget(HeaderMap* map) { head_ = map; }
  int versionMinor() const { return parser_.http_minor; }
  int versionMajor() const { return parser_.http_major; }
  uint16_t flags() const { return parser_.flags; }
  uint64_t contentLength() const { return parser_.content_length; }
  bool upgrade() const { return parser_.upgrade != 0; }
  bool chunked() const { return (parser_.flags & F_CHUNKED) != 0; }
  bool hasContentLength() const { return (parser_.flags & F_CONTENT_LENGTH) != 0; }
  bool hasTransferEncoding() const { return (parser_.flags & F_TRANSFER_ENCODING) != 0; }
  int statusCode() const { return parser_.status_code; }
  bool shouldKeepAlive() const { return llhttp_should_keep_alive(&parser_) != 0; }
  bool messageNeedsEof() const { return llhttp_message_needs_eof(&parser_) != 0; }
  // The next run() treats the message as bodyless (HEAD response, 204, 304).
  void skipBody() { parser_.flags |= F_SKIPBODY; }
  // The next run() parses the body instead of stopping for an upgrade.
  void noUpgrade() { parser_.upgrade = 0; }

  // Valid after kMessageComplete.
  Buffer& body() { return body_; }
  HeaderMap& trailers() { return trailers_; }
  bool keepAliveAtComplete() const { return keep_alive_at_complete_; }

  // Request parsers keep the Host field out of headers() (the server codec keeps it apart
  // anyway: taking it out when its line ends costs nothing, taking it out of the map later
  // shifts every field after it). Valid after kHead: how many Host lines the head had, and
  // the value of the first (trailing whitespace trimmed, otherwise unchecked).
  size_t hostCount() const { return hosts_; }
  std::string& host() { return host_; }

  // A message has started (bytes of it consumed) and is not complete.
  bool inMessage() const { return in_message_; }
  bool headDone() const { return head_done_; }

  // Runs only the framing scan (CR/LF rules, obs-fold, the size limit) over `bytes`, as if
  // they were the start of a message head: for the codec micro benchmark, which compares
  // its cost with llhttp's own parse of the same head. False on a violation.
  bool scanHeadOnly(std::string_view bytes) {
    prev_ = 0;
    framing_run_ = 0;
    first_line_done_ = false;
    first_line_.clear();
    return scanBytes(bytes.data(), bytes.data() + bytes.size());
  }

  int errorStatus() const { return error_status_; }
  const std::string& errorDetail() const { return error_detail_; }

 private:
  static int onMessageBegin(llhttp_t* p);
  static int onHeaderField(llhttp_t* p, const char* at, size_t n);
  static int onHeaderFieldComplete(llhttp_t* p);
  static int onHeaderValue(llhttp_t* p, const char* at, size_t n);
  static int onHeaderValueComplete(llhttp_t* p);
  static int onHeadersComplete(llhttp_t* p);
  static int onBody(llhttp_t* p, const char* at, size_t n);
  static int onMessageComplete(llhttp_t* p);
  static const llhttp_settings_t kSettings;

  // Scans the non-body bytes of one llhttp_execute() call; false (error set, scan_stop_ at the
  // offending byte) on a violation.
  bool scanFraming(const char* data, size_t consumed);
  bool scanBytes(const char* p, const char* end);
  bool scanFail(const char* at, int status, const char* detail);
  void bodySpanBoundary();
  void apply(Buffer& in, const char* data, size_t consumed, const char* stop);
  void resetMessage();
  void fail(int status, std::string detail);
  HeaderMap& fieldTarget() { return head_done_ ? trailers_ : headers(); }

  struct Span {
    const char* at;
    size_t n;
  };

  llhttp_t parser_;
  CodecLimits limits_;
  Event event_ = Event::kNeedMore;
  bool resume_pending_ = false;  // llhttp has non-consuming steps to run after a pause
  bool dead_ = false;
  bool in_message_ = false;
  bool head_done_ = false;
  bool in_field_ = false;
  bool first_line_done_ = false;
  bool trailers_started_ = false;  // the scanner passed the last-chunk line
  size_t line_len_ = 0;            // chunk framing line: size digits seen
  bool line_zero_ = true;          // ... all of them '0'
  bool line_size_done_ = false;    // ... the size ended (';' or CR)
  bool keep_alive_at_complete_ = false;
  char prev_ = 0;             // previous framing byte (0 after body bytes)
  size_t framing_run_ = 0;    // non-body bytes in a row (head; chunk framing; trailer section)
  const char* scan_stop_ = nullptr;
  std::string first_line_;
  HeaderMap* head_ = nullptr;  // see setHeadTarget()
  const bool divert_host_;     // a request parser: see hostCount()
  size_t hosts_ = 0;
  std::string host_;
  HeaderMap own_headers_;
  HeaderMap trailers_;
  Buffer body_;
  std::vector<Span> spans_;   // body spans of the current execute() call
  const char* cb_error_ = nullptr;  // set by a callback that failed llhttp_execute()
  int error_status_ = 0;
  std::string error_detail_;
};


// Body framing of one outgoing message.
class BodyEncoder {
 public:
  enum class Mode { kNone, kChunked, kLength, kRaw };
  void start(Mode mode, uint64_t length = 0) {
    mode_ = mode;
    remaining_ = length;
    short_or_excess_ = false;
    ended_ = false;
  }
  void encodeData(Buffer& data, bool end_stream, Buffer& out);
  void encodeTrailers(const HeaderMap& t, Buffer& out);
  Mode mode() const { return mode_; }
  bool ended() const { return ended_; }
  // A content-length was not honoured (excess dropped or body ended short): close after.
  bool broken() const { return short_or_excess_; }

 private:
  Mode mode_ = Mode::kNone;
  uint64_t remaining_ = 0;
  bool short_or_excess_ = false;
  bool ended_ = false;
};

// Writes "name: value\r\n" at p for each valid entry not skipped and returns the end; invalid
// entries (bad name, CR, LF, NUL...) are dropped so that a filter can never split a message.
// Needs room for h.byteSize() + 4 * h.size() bytes.
char* writeHeaderLines(char* p, const HeaderMap& h, bool (*skip)(std::string_view name));
// The same, appended to s.
void appendHeaderLines(std::string& s, const HeaderMap& h, bool (*skip)(std::string_view name));
// This thread's scratch string for building a message head (emptied; keeps its capacity, so
// encoding a head allocates nothing). The caller copies it out before encoding another.
std::string& headScratch();

// Writes a message head through a pointer, into room sized beforehand: no capacity check or
// length update per piece.
struct HeadWriter {
  char* p;
  void put(std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  }
  void put(char c) { *p++ = c; }
};

// Where a head of at most `bound` bytes is written: straight into the tail of `out` when the
// bound fits in one slice (the usual case: no copy), else this thread's scratch string, copied
// into `out` by finish(). Nothing else may change `out` before finish().
class HeadSpace {
 public:
  HeadSpace(Buffer& out, size_t bound) : out_(out), bound_(bound) {
    if (bound <= Buffer::kSliceSize) {
      start_ = reinterpret_cast<char*>(out.reserveContiguous(bound));
    } else {
      std::string& s = headScratch();
      s.resize(bound);
      start_ = s.data();
      scratch_ = true;
    }
  }
  HeadSpace(const HeadSpace&) = delete;
  HeadSpace& operator=(const HeadSpace&) = delete;
  char* start() const { return start_; }
  // The head is [start(), end).
  void finish(const char* end) {
    const auto n = static_cast<size_t>(end - start_);
    assert(n <= bound_);
    if (scratch_) {
      out_.add(start_, n);
    } else {
      out_.commitContiguous(n);
    }
  }

 private:
  Buffer& out_;
  size_t bound_;
  char* start_ = nullptr;
  bool scratch_ = false;
};
bool parseContentLength(std::string_view v, uint64_t& out);

}  // namespace ferry::core::http::http1::detail
