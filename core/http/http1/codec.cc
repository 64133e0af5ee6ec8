// The llhttp driver shared by the HTTP/1 server and client codecs, and the encoding helpers.
//
// How strictness is split between llhttp (8.1, LLHTTP_STRICT_MODE=1) and this file:
// - llhttp rejects: unknown methods, invalid request-target bytes (CTL, SP, non-ASCII), invalid
//   header-name bytes and whitespace before the colon, CTL/DEL in values, CR without LF inside
//   header lines, duplicate Content-Length (even identical), malformed or overflowing
//   Content-Length, Content-Length together with Transfer-Encoding, "chunked" not last,
//   invalid chunk sizes and their overflow, data after a chunk not followed by CRLF.
// - llhttp accepts (and we reject, here or in the codecs): obs-fold (it even hides the fold when
//   the first line of the value is empty), bare LF ending the request/status line, the header
//   section or the last chunk, an empty header name, "GET  /  HTTP/1.1" (extra spaces), the
//   RTSP/1.0 protocol, HTTP/0.9 and HTTP/2.0 request lines, status codes under 100, any
//   Transfer-Encoding other than exactly "chunked", '#' and '\' in the request-target.
// - Parsed field names and values are not checked byte by byte again: llhttp's strict rules are
//   RFC 9110's (token names; values of VCHAR, obs-text, SP and HTAB), which the codec tests
//   prove for every byte at every place in heads and trailers. The codecs refuse the empty
//   name llhttp lets through. A parsed field is marked `checked` (HeaderMap::Entry); fields
//   without the mark are checked when written (writeHeaderLines), as they come from elsewhere
//   (filters, HTTP/2), and any change through the map clears the mark.
// - Every byte that is not body (head, chunk-size lines, trailers) goes through scanBytes():
//   a LF must follow a CR, a CR must precede a LF, and no line may start with SP or HTAB (that is
//   obs-fold in a header or trailer section, and garbage anywhere else).
// - Known llhttp 8.1 limits: a chunk extension after a valued one (";a=b;c=d") and quoted-pair in
//   a quoted chunk-extension value are rejected (400). Both are practically unused.
#include "core/http/http1/message_parser.h"

#include <sys/uio.h>

#include <cassert>
#include <cstdio>
#include <cstring>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace ferry::core::http::http1::detail {

using namespace std::string_view_literals;
namespace {

MessageParser* self(llhttp_t* p) { return static_cast<MessageParser*>(p->data); }

constexpr char kEmpty[1] = {0};

}  // namespace

// 16 bytes per step with SSE2 (every x86-64 has it): compare against CR and LF, OR the masks,
// take the first set bit. Loads stay inside [p, end): the tail goes byte by byte.
const char* findCrOrLf(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const int mask = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  while (p < end && *p != '\r' && *p != '\n') ++p;
  return p;
}

const llhttp_settings_t MessageParser::kSettings = [] {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_message_begin = &MessageParser::onMessageBegin;
  s.on_header_field = &MessageParser::onHeaderField;
  s.on_header_field_complete = &MessageParser::onHeaderFieldComplete;
  s.on_header_value = &MessageParser::onHeaderValue;
  s.on_header_value_complete = &MessageParser::onHeaderValueComplete;
  s.on_headers_complete = &MessageParser::onHeadersComplete;
  s.on_body = &MessageParser::onBody;
  s.on_message_complete = &MessageParser::onMessageComplete;
  return s;
}();

MessageParser::MessageParser(llhttp_type_t type, const CodecLimits& limits)
    : limits_(limits), divert_host_(type == HTTP_REQUEST) {
  llhttp_init(&parser_, type, &kSettings);
  parser_.data = this;
}

void MessageParser::reset(const CodecLimits& limits) {
  const auto type = static_cast<llhttp_type_t>(parser_.type);
  llhttp_init(&parser_, type, &kSettings);
  parser_.data = this;
  limits_ = limits;
  event_ = Event::kNeedMore;
  resume_pending_ = false;
  dead_ = false;
  resetMessage();
  in_field_ = false;
  keep_alive_at_complete_ = false;
  prev_ = 0;
  scan_stop_ = nullptr;
  head_ = nullptr;
  own_headers_.clear();
  trailers_.clear();
  body_.clear();
  spans_.clear();
  cb_error_ = nullptr;
  error_status_ = 0;
  error_detail_.clear();
}

int MessageParser::onMessageBegin(llhttp_t* p) {
  MessageParser* s = self(p);
  s->in_message_ = true;
  s->headers().clear();
  // A map new to this work gets room for an ordinary head at once (not 1, 2, 4, 8...); a
  // recycled one has it already.
  s->headers().reserve(16);
  s->hosts_ = 0;
  s->host_.clear();
  s->trailers_.clear();
  s->in_field_ = false;
  // The start line is captured by scanBytes() after this execute() call returns; bytes of it
  // consumed by earlier calls (a split start line) are already in first_line_ and must stay.
  return 0;
}

int MessageParser::onHeaderField(llhttp_t* p, const char* at, size_t n) {
  MessageParser* s = self(p);
  HeaderMap& target = s->fieldTarget();
  if (!s->in_field_) {
    s->in_field_ = true;
    target.appendEntry();
  }
  target.back().name.append(at, n);
  return 0;
}

// The field count is checked here, at the colon, not in the span callback above: llhttp calls
// span callbacks at positions that depend on how the input is split, and the outcome must not.
int MessageParser::onHeaderFieldComplete(llhttp_t* p) {
  MessageParser* s = self(p);
  s->in_field_ = false;
  HeaderMap& target = s->fieldTarget();
  if (target.size() + (s->head_done_ ? 0 : s->hosts_) > s->limits_.max_headers) {  // Host counts
    s->cb_error_ = s->head_done_ ? "too many trailer fields" : "too many header fields";
    return -1;  // a 431, unless the scanner finds an earlier violation
  }
  std::string& name = target.back().name;
  HeaderMap::lowerInPlace(name.data(), name.size());
  return 0;
}

int MessageParser::onHeaderValue(llhttp_t* p, const char* at, size_t n) {
  self(p)->fieldTarget().back().value.append(at, n);
  return 0;
}

int MessageParser::onHeaderValueComplete(llhttp_t* p) {
  MessageParser* s = self(p);
  HeaderMap& target = s->fieldTarget();
  // llhttp skips leading OWS but keeps trailing OWS in the value.
  std::string& v = target.back().value;
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
  // Its bytes are checked: by llhttp (strict) and by scanBytes() before the head or trailers
  // are delivered (a message that fails never is), so an encoder need not check it again.
  // llhttp lets an empty name through, which the codecs refuse; it is never marked.
  target.back().checked = !target.back().name.empty();
  if (s->divert_host_ && !s->head_done_ && equals(target.back().name, "host")) {
    if (++s->hosts_ == 1) s->host_.swap(v);
    target.popBack();
  }
  return 0;
}

int MessageParser::onHeadersComplete(llhttp_t* p) {
  self(p)->event_ = Event::kHead;
  return HPE_PAUSED;  // validated and delivered outside llhttp; run() resumes
}

int MessageParser::onBody(llhttp_t* p, const char* at, size_t n) {
  if (n > 0) self(p)->spans_.push_back(Span{at, n});
  return 0;
}

int MessageParser::onMessageComplete(llhttp_t* p) {
  MessageParser* s = self(p);
  s->keep_alive_at_complete_ = llhttp_should_keep_alive(p) != 0;
  s->event_ = Event::kMessageComplete;
  return HPE_PAUSED;
}

void MessageParser::fail(int status, std::string detail) {
  dead_ = true;
  if (error_status_ == 0) {
    error_status_ = status;
    error_detail_ = std::move(detail);
  }
}

// Every decision here depends only on the bytes scanned so far (never on llhttp callback state,
// which may run ahead within one execute() call), so the outcome is the same however the input
// is split.
bool MessageParser::scanBytes(const char* p, const char* end) {
  for (; p < end; ++p) {
    if (!head_done_ && prev_ != '\r' && prev_ != '\n') {
      // Fast path: ordinary head bytes, and the CRLFs between lines when the next line
      // starts with an ordinary byte (the common case: a vector search per line). Everything
      // else (a lone CR or LF, obs-fold, the empty line that ends the head, a CRLF at the end
      // of the input) goes one byte at a time below.
      const char* q = p;
      for (;;) {
        const char* r = findCrOrLf(q, end);
        if (!first_line_done_) first_line_.append(q, static_cast<size_t>(r - q));
        if (end - r > 2 && r[0] == '\r' && r[1] == '\n' && r[2] != ' ' && r[2] != '\t' && r[2] != '\r' &&
            r[2] != '\n') {
          // Empty lines before the start line are skipped (RFC 9112 2.2).
          if (!first_line_done_ && !first_line_.empty()) first_line_done_ = true;
          q = r + 2;
          continue;
        }
        q = r;
        break;
      }
      if (q != p) {
        const size_t run = static_cast<size_t>(q - p);
        if (framing_run_ + run > limits_.max_header_bytes)
          return scanFail(p + (limits_.max_header_bytes - framing_run_), 431,
                          "message head larger than max_header_bytes");
        framing_run_ += run;
        prev_ = q[-1];
        p = q - 1;  // the loop's ++p lands on the CR/LF (or end)
        continue;
      }
    }
    const char c = *p;
    if (prev_ == '\r' && c != '\n') return scanFail(p, 400, "CR not followed by LF");
    if (c == '\n' && prev_ != '\r') return scanFail(p, 400, "bare LF");
    if (prev_ == '\n' && (c == ' ' || c == '\t'))
      return scanFail(p, 400, "line starting with whitespace (obs-fold)");
    prev_ = c;
    ++framing_run_;
    if (!head_done_) {
      if (framing_run_ > limits_.max_header_bytes)
        return scanFail(p, 431, "message head larger than max_header_bytes");
      if (first_line_done_) continue;
      if (c == '\n') {
        // Empty lines before the start line are skipped (RFC 9112 2.2).
        if (!first_line_.empty()) first_line_done_ = true;
      } else if (c != '\r') {
        first_line_.push_back(c);
      }
      continue;
    }
    if (trailers_started_) {
      if (framing_run_ > limits_.max_header_bytes)
        return scanFail(p, 431, "trailer section larger than max_header_bytes");
      continue;
    }
    if (framing_run_ > limits_.max_header_bytes)
      return scanFail(p, 400, "chunk framing longer than max_header_bytes");
    // Chunk framing: a line whose size is all zeros is the last chunk; trailers follow it.
    if (c == '\n') {
      if (line_len_ > 0 && line_zero_) {
        trailers_started_ = true;
        framing_run_ = 0;
      }
      line_len_ = 0;
      line_zero_ = true;
      line_size_done_ = false;
    } else if (!line_size_done_) {
      if (c == '\r' || c == ';') {
        line_size_done_ = true;
      } else {
        ++line_len_;
        line_zero_ = line_zero_ && c == '0';
      }
    }
  }
  return true;
}

bool MessageParser::scanFail(const char* at, int status, const char* detail) {
  scan_stop_ = at;
  fail(status, detail);
  return false;
}

void MessageParser::bodySpanBoundary() {
  prev_ = 0;
  framing_run_ = 0;
  line_len_ = 0;
  line_zero_ = true;
  line_size_done_ = false;
}

bool MessageParser::scanFraming(const char* data, size_t consumed) {
  const char* p = data;
  const char* end = data + consumed;
  scan_stop_ = end;
  for (const Span& s : spans_) {
    if (!scanBytes(p, s.at)) return false;
    bodySpanBoundary();
    p = s.at + s.n;
  }
  return scanBytes(p, end);
}

// Framing bytes are drained; body bytes before `stop` move to body_ (whole slices, no copy).
void MessageParser::apply(Buffer& in, const char* data, size_t consumed, const char* stop) {
  size_t cursor = 0;
  for (const Span& s : spans_) {
    if (s.at >= stop) break;
    const size_t off = static_cast<size_t>(s.at - data);
    in.drain(off - cursor);
    body_.move(in, s.n);
    cursor = off + s.n;
  }
  in.drain(consumed - cursor);
}

void MessageParser::resetMessage() {
  in_message_ = false;
  head_done_ = false;
  first_line_done_ = false;
  first_line_.clear();
  framing_run_ = 0;
  trailers_started_ = false;
  line_len_ = 0;
  line_zero_ = true;
  line_size_done_ = false;
}

MessageParser::Event MessageParser::run(Buffer& in) {
  for (;;) {
    if (dead_) return Event::kError;
    iovec iov;
    const size_t n = in.gather(&iov, 1);
    if (n == 0 && !resume_pending_) return Event::kNeedMore;
    const char* data = n ? static_cast<const char*>(iov.iov_base) : kEmpty;
    const size_t len = n ? iov.iov_len : 0;
    resume_pending_ = false;
    spans_.clear();
    event_ = Event::kNeedMore;

    const llhttp_errno_t err = llhttp_execute(&parser_, data, len);
    size_t consumed = len;
    if (err == HPE_PAUSED) {
      consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
      llhttp_resume(&parser_);
      resume_pending_ = true;  // llhttp continues with non-consuming steps (after_headers...)
    } else if (err != HPE_OK) {
      const char* pos = llhttp_get_error_pos(&parser_);
      consumed = pos >= data && pos <= data + len ? static_cast<size_t>(pos - data) : 0;
    }
    // The scanner sees the bytes up to where llhttp stopped; the earliest violation wins, and
    // the body bytes before it are kept (they are delivered before the error, as they would
    // have been had the input arrived split there).
    const bool scanned = scanFraming(data, consumed);
    apply(in, data, consumed, scan_stop_);
    if (!scanned) return Event::kError;
    if (err != HPE_OK && err != HPE_PAUSED) {
      if (cb_error_ != nullptr) {
        fail(431, cb_error_);
        return Event::kError;
      }
      std::string detail = llhttp_errno_name(err);
      if (const char* reason = llhttp_get_error_reason(&parser_)) {
        detail += ": ";
        detail += reason;
      }
      fail(400, std::move(detail));
      return Event::kError;
    }
    if (event_ == Event::kHead) {
      head_done_ = true;
      framing_run_ = 0;
      return Event::kHead;
    }
    if (event_ == Event::kMessageComplete) {
      resetMessage();
      return Event::kMessageComplete;
    }
  }
}

MessageParser::Event MessageParser::finish() {
  if (dead_) return Event::kError;
  if (!in_message_) return Event::kNeedMore;
  event_ = Event::kNeedMore;
  const llhttp_errno_t err = llhttp_finish(&parser_);
  if (event_ == Event::kMessageComplete && (err == HPE_PAUSED || err == HPE_OK)) {
    resetMessage();
    return Event::kMessageComplete;
  }
  fail(400, "connection closed in the middle of a message");
  return Event::kError;
}

// ---- character classes and small parsers ----

namespace {
// Byte classes by table: one load per byte on the per-request path.
struct CharTables {
  bool tchar[256] = {};
  bool field_value[256] = {};
  bool reg_name[256] = {};  // reg-name of RFC 3986 3.2.2: unreserved, sub-delims, '%'
  constexpr CharTables() {
    for (int c = 0; c < 256; ++c) {
      tchar[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      reg_name[c] = tchar[c];
      field_value[c] = !((c < 0x20 && c != '\t') || c == 0x7f);
    }
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) tchar[static_cast<unsigned char>(c)] = true;
    for (char c : std::string_view("-._~!$&'()*+,;=%")) reg_name[static_cast<unsigned char>(c)] = true;
  }
};
constexpr CharTables kChars;
}  // namespace

bool isTchar(unsigned char c) { return kChars.tchar[c]; }

namespace {
// A word-at-a-time fast path for field values (SWAR: 8 or 4 bytes per step, no SIMD
// instructions needed). It accepts only the common case (every byte printable ASCII) and
// leaves everything else to the exact table check. (Names have an SSE2 fast path below: their
// character set takes three range tests, which on 16 lanes at once cost less than the table.)
// W is uint64_t or uint32_t; bytes are checked independently (no addition below carries out
// of its byte, since every byte is below 0x80 when it is made).
template <typename W>
constexpr W ones() {
  return static_cast<W>(~W{0}) / 0xff;  // 0x0101...01
}
template <typename W>
constexpr W highs() {
  return ones<W>() * 0x80;
}
// Every byte of w in [Low, 0x7e] (Low is 0x20 for printable ASCII, 0x21 for visible).
template <unsigned Low, typename W>
bool rangeWord(W w) {
  if ((w & highs<W>()) != 0) return false;
  const W ge_low = (w + ones<W>() * (0x80 - Low)) & highs<W>();  // byte >= Low
  const W is_del = (w + ones<W>()) & highs<W>();                 // byte == 0x7f
  return ge_low == highs<W>() && is_del == 0;
}
template <typename W>
W loadWord(const char* p) {
  W w;
  std::memcpy(&w, p, sizeof w);
  return w;
}
// Every byte of s in [Low, 0x7e], by whole words (the last one overlapping); false when s is
// shorter than 4 bytes or any word fails, which only means "use the exact check".
template <unsigned Low>
bool wordsInRange(std::string_view s) {
  const char* p = s.data();
  const size_t n = s.size();
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8)
      if (!rangeWord<Low>(loadWord<uint64_t>(p + i))) return false;
    return rangeWord<Low>(loadWord<uint64_t>(p + n - 8));
  }
  if (n >= 4) return rangeWord<Low>(loadWord<uint32_t>(p)) && rangeWord<Low>(loadWord<uint32_t>(p + n - 4));
  return false;
}
bool printableFast(std::string_view s) { return wordsInRange<0x20>(s); }
}  // namespace

bool allVisible(std::string_view s) {
  if (s.size() >= 4) return wordsInRange<0x21>(s);
  for (char c : s)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) return false;
  return true;
}

namespace {
// Every lane of v a lower-case letter, a digit or '-', the bytes of nearly every stored name
// (names are kept lower-cased): three range tests over 16 lanes at once. Unsigned ranges are
// tested with signed compares by moving the range's start to -128.
bool commonNameBytes(__m128i v) {
  const __m128i letter = _mm_cmplt_epi8(_mm_add_epi8(v, _mm_set1_epi8(static_cast<char>(0x80 - 'a'))),
                                        _mm_set1_epi8(static_cast<char>(-128 + 26)));
  const __m128i digit = _mm_cmplt_epi8(_mm_add_epi8(v, _mm_set1_epi8(static_cast<char>(0x80 - '0'))),
                                       _mm_set1_epi8(static_cast<char>(-128 + 10)));
  const __m128i dash = _mm_cmpeq_epi8(v, _mm_set1_epi8('-'));
  return _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(letter, digit), dash)) == 0xFFFF;
}
// The common case of a name of 4 bytes or more, its bytes loaded as overlapping pieces that
// fill all 16 lanes; false means "use the exact check".
bool commonName(std::string_view s) {
  const char* p = s.data();
  const size_t n = s.size();
  if (n > 16) {
    for (size_t i = 0; i + 16 < n; i += 16)
      if (!commonNameBytes(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)))) return false;
    return commonNameBytes(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + n - 16)));
  }
  if (n >= 8) {
    const auto lo = static_cast<long long>(loadWord<uint64_t>(p));
    const auto hi = static_cast<long long>(loadWord<uint64_t>(p + n - 8));
    return commonNameBytes(_mm_set_epi64x(hi, lo));
  }
  if (n >= 4) {
    const auto lo = static_cast<int>(loadWord<uint32_t>(p));
    const auto hi = static_cast<int>(loadWord<uint32_t>(p + n - 4));
    return commonNameBytes(_mm_set_epi32(hi, lo, hi, lo));
  }
  return false;
}
}  // namespace

bool validFieldName(std::string_view s) {
  if (s.empty()) return false;
  if (commonName(s)) return true;
  bool ok = true;
  for (char c : s) ok &= kChars.tchar[static_cast<unsigned char>(c)];
  return ok;
}

bool validFieldValue(std::string_view s) {
  if (printableFast(s)) return true;
  bool ok = true;
  for (char c : s) ok &= kChars.field_value[static_cast<unsigned char>(c)];
  return ok;
}

namespace {
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isHex(char c) { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool isRegNameChar(char c) { return kChars.reg_name[static_cast<unsigned char>(c)]; }
}  // namespace

bool validAuthority(std::string_view s, bool require_port) {
  if (s.empty()) return !require_port;
  size_t host_end;
  if (s[0] == '[') {
    host_end = s.find(']');
    if (host_end == std::string_view::npos || host_end == 1) return false;
    for (size_t i = 1; i < host_end; ++i)
      if (!isHex(s[i]) && s[i] != ':' && s[i] != '.') return false;
    ++host_end;
  } else {
    host_end = s.find(':');
    if (host_end == std::string_view::npos) host_end = s.size();
    if (host_end == 0) return false;
    for (size_t i = 0; i < host_end; ++i)
      if (!isRegNameChar(s[i])) return false;
  }
  if (host_end == s.size()) return !require_port;
  if (s[host_end] != ':') return false;
  std::string_view port = s.substr(host_end + 1);
  if (port.empty()) return !require_port;
  if (port.size() > 5) return false;
  for (char c : port)
    if (!isDigit(c)) return false;
  return true;
}

bool hasToken(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (HeaderMap::equalsIgnoreCase(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

bool parseContentLength(std::string_view v, uint64_t& out) {
  if (v.empty() || v.size() > 19) return false;
  uint64_t n = 0;
  for (char c : v) {
    if (!isDigit(c)) return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  out = n;
  return true;
}

std::string& headScratch() {
  thread_local std::string s;
  s.clear();
  return s;
}

char* writeHeaderLines(char* p, const HeaderMap& h, bool (*skip)(std::string_view)) {
  for (const auto& e : h.entries()) {
    if (skip != nullptr && skip(e.name)) continue;
    assert(!e.checked || (validFieldName(e.name) && validFieldValue(e.value)));
    if (!e.checked && (!validFieldName(e.name) || !validFieldValue(e.value))) continue;
    std::memcpy(p, e.name.data(), e.name.size());
    p += e.name.size();
    p[0] = ':';
    p[1] = ' ';
    p += 2;
    std::memcpy(p, e.value.data(), e.value.size());
    p += e.value.size();
    p[0] = '\r';
    p[1] = '\n';
    p += 2;
  }
  return p;
}

void appendHeaderLines(std::string& s, const HeaderMap& h, bool (*skip)(std::string_view)) {
  // Sized once for every line, written through a pointer, then cut to what was written.
  const size_t at = s.size();
  s.resize(at + h.byteSize() + 4 * h.size());
  char* const start = s.data() + at;
  s.resize(at + static_cast<size_t>(writeHeaderLines(start, h, skip) - start));
}

// ---- BodyEncoder ----

namespace {
bool skipTrailer(std::string_view name) {
  return HeaderMap::equalsIgnoreCase(name, "content-length") ||
         HeaderMap::equalsIgnoreCase(name, "transfer-encoding") ||
         HeaderMap::equalsIgnoreCase(name, "host");
}
}  // namespace

void BodyEncoder::encodeData(Buffer& data, bool end_stream, Buffer& out) {
  if (ended_) {
    data.drain(data.length());
    return;
  }
  switch (mode_) {
    case Mode::kNone:
      data.drain(data.length());
      break;
    case Mode::kRaw:
      out.move(data);
      break;
    case Mode::kLength: {
      const uint64_t n = data.length();
      if (n > remaining_) {
        short_or_excess_ = true;
        out.move(data, static_cast<size_t>(remaining_));
        data.drain(data.length());
        remaining_ = 0;
      } else {
        out.move(data);
        remaining_ -= n;
      }
      if (end_stream && remaining_ > 0) short_or_excess_ = true;
      break;
    }
    case Mode::kChunked:
      if (!data.empty()) {
        char line[24];
        const int len = std::snprintf(line, sizeof(line), "%zx\r\n", data.length());
        out.add(line, static_cast<size_t>(len));
        out.move(data);
        out.add("\r\n", 2);
      }
      if (end_stream) out.add("0\r\n\r\n", 5);
      break;
  }
  if (end_stream) ended_ = true;
}

void BodyEncoder::encodeTrailers(const HeaderMap& t, Buffer& out) {
  if (ended_) return;
  ended_ = true;
  if (mode_ == Mode::kChunked) {
    std::string s = "0\r\n";
    appendHeaderLines(s, t, &skipTrailer);
    s.append("\r\n"sv);
    out.add(s);
  } else if (mode_ == Mode::kLength && remaining_ > 0) {
    short_or_excess_ = true;
  }
}

}  // namespace ferry::core::http::http1::detail
