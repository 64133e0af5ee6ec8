#include "core/http/header_map.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace ferry::core::http {
namespace {
inline char lowerChar(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighs = kOnes * 0x80;

// The word with its bytes A-Z lower-cased. Per byte, without carries between bytes (each is
// below 0x80 before the additions): the high bit of (b + 0x3f) says b >= 'A', of (b + 0x25)
// says b > 'Z'; bytes of 0x80 and above are not letters. 0x80 >> 2 == 0x20: 'A' -> 'a'.
inline uint64_t lowerWord(uint64_t w) {
  const uint64_t low7 = w & ~kHighs;
  return w | (((low7 + kOnes * 0x3f) & ~(low7 + kOnes * 0x25) & ~w & kHighs) >> 2);
}

inline uint64_t load8(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

// 4 <= n <= 8 bytes as one word: the first four and the last four (they overlap when n < 8;
// lower-casing and comparing byte by byte do not mind a byte seen twice).
inline uint64_t loadEnds(const char* p, size_t n) {
  uint32_t a, b;
  std::memcpy(&a, p, 4);
  std::memcpy(&b, p + n - 4, 4);
  return a | (static_cast<uint64_t>(b) << 32);
}
}  // namespace

std::string HeaderMap::lower(std::string_view s) {
  std::string out(s);
  lowerInPlace(out.data(), out.size());
  return out;
}

// Words of 8 bytes, and the short tail as one more (overlapping) word rather than byte by
// byte: names are mostly 4-16 bytes, where a byte loop cost as much as the words.
void HeaderMap::lowerInPlace(char* p, size_t n) {
  if (n >= 8) {
    auto step = [](char* at) {
      const uint64_t w = load8(at);
      const uint64_t l = lowerWord(w);
      if (l != w) std::memcpy(at, &l, 8);
    };
    size_t i = 0;
    for (; i + 8 <= n; i += 8) step(p + i);
    if (i < n) step(p + n - 8);
    return;
  }
  if (n >= 4) {
    const uint64_t w = loadEnds(p, n);
    const uint64_t l = lowerWord(w);
    if (l == w) return;
    const auto a = static_cast<uint32_t>(l), b = static_cast<uint32_t>(l >> 32);
    std::memcpy(p + n - 4, &b, 4);
    std::memcpy(p, &a, 4);
    return;
  }
  for (size_t i = 0; i < n; ++i) p[i] = lowerChar(p[i]);
}

bool HeaderMap::sameIgnoreCase(const char* a, const char* b, size_t n) {
  auto same = [](uint64_t x, uint64_t y) { return x == y || lowerWord(x) == lowerWord(y); };
  if (n >= 8) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
      if (!same(load8(a + i), load8(b + i))) return false;
    return i == n || same(load8(a + n - 8), load8(b + n - 8));
  }
  if (n >= 4) return same(loadEnds(a, n), loadEnds(b, n));
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i] && lowerChar(a[i]) != lowerChar(b[i])) return false;
  return true;
}

HeaderMap& HeaderMap::operator=(const HeaderMap& other) {
  if (this == &other) return *this;
  clear();
  for (const auto& e : other.entries()) {
    Entry& to = appendEntry();
    to.name.assign(e.name);
    to.value.assign(e.value);
    to.checked = e.checked;  // the same bytes
  }
  return *this;
}

namespace {
// Out of line, so that the common case below (a spare entry to reuse) needs no registers
// saved for the vector's reallocation.
[[gnu::noinline, gnu::cold]] void growEntries(std::vector<HeaderMap::Entry>& entries) { entries.emplace_back(); }
}  // namespace

HeaderMap::Entry& HeaderMap::appendEntry() {
  if (size_ == entries_.size()) {
    growEntries(entries_);
  } else {
    entries_[size_].name.clear();
    entries_[size_].value.clear();
    entries_[size_].checked = false;
  }
  return entries_[size_++];
}

namespace {
// A new last entry holding name and value as given.
HeaderMap::Entry& appendCopy(HeaderMap& map, std::string_view name, std::string_view value) {
  HeaderMap::Entry& e = map.appendEntry();  // empty strings: append() is the cheap copy
  e.name.append(name.data(), name.size());
  e.value.append(value.data(), value.size());
  return e;
}
}  // namespace

void HeaderMap::add(std::string_view name, std::string_view value) {
  Entry& e = appendCopy(*this, name, value);
  lowerInPlace(e.name.data(), e.name.size());
}

void HeaderMap::addLowerCase(std::string_view name, std::string_view value) {
  assert(std::none_of(name.begin(), name.end(), [](char c) { return c >= 'A' && c <= 'Z'; }));
  appendCopy(*this, name, value);
}

void HeaderMap::addMade(std::string_view name, std::string_view value) {
  assert(std::none_of(name.begin(), name.end(), [](char c) { return c >= 'A' && c <= 'Z'; }));
  appendCopy(*this, name, value).checked = true;
}

void HeaderMap::set(std::string_view name, std::string_view value) {
  bool done = false;
  removeIf([&](Entry& e) {
    if (!equalsIgnoreCase(e.name, name)) return false;
    if (done) return true;
    e.value.assign(value);
    e.checked = false;
    done = true;
    return false;
  });
  if (!done) add(name, value);
}

size_t HeaderMap::remove(std::string_view name) {
  return removeIf([&](const Entry& e) { return equalsIgnoreCase(e.name, name); });
}

void HeaderMap::clearAndTrim() {
  // What a map keeps between uses: enough entries and string room for an ordinary head;
  // anything beyond (a huge cookie, a hundred headers) is given back.
  constexpr size_t kMaxEntries = 32;
  constexpr size_t kMaxBytes = 8192;
  size_ = 0;
  if (entries_.size() > kMaxEntries) entries_.resize(kMaxEntries);
  size_t bytes = 0;
  for (auto& e : entries_) {
    bytes += e.name.capacity() + e.value.capacity();
    if (bytes > kMaxBytes) {
      bytes -= e.name.capacity() + e.value.capacity();
      e.name = std::string();
      e.value = std::string();
    }
  }
}

const std::string* HeaderMap::get(std::string_view name) const {
  for (const auto& e : entries())
    if (equalsIgnoreCase(e.name, name)) return &e.value;
  return nullptr;
}

std::string HeaderMap::getAll(std::string_view name) const {
  std::string out;
  for (const auto& e : entries()) {
    if (!equalsIgnoreCase(e.name, name)) continue;
    if (!out.empty()) out += ", ";
    out += e.value;
  }
  return out;
}

std::string_view HeaderMap::list(std::string_view name, const FieldRef& f, std::string& scratch) const {
  if (f.count == 0) return {};
  if (f.count == 1) return entries_[f.index].value;
  scratch = getAll(name);
  return scratch;
}

size_t HeaderMap::count(std::string_view name) const {
  size_t n = 0;
  for (const auto& e : entries())
    if (equalsIgnoreCase(e.name, name)) ++n;
  return n;
}

size_t HeaderMap::byteSize() const {
  size_t n = 0;
  for (const auto& e : entries()) n += e.name.size() + e.value.size();
  return n;
}

namespace {

// This thread's spare heads (cleared). Bounded: a burst of concurrent requests beyond it
// frees what it does not give back.
template <typename T>
struct HeadPool {
  static constexpr size_t kMax = 128;
  std::vector<T*> free;
  HeadPool() { free.reserve(kMax); }
  ~HeadPool() {
    for (T* h : free) delete h;
    free.clear();
    gone = true;
  }
  static inline thread_local bool gone = false;  // trivially destructible: readable after ~HeadPool
};
thread_local HeadPool<RequestHeaders> tl_request_heads;
thread_local HeadPool<ResponseHeaders> tl_response_heads;

template <typename T>
void recycle(HeadPool<T>& pool, T* h) {
  if (HeadPool<T>::gone || pool.free.size() >= HeadPool<T>::kMax) {
    delete h;
    return;
  }
  pool.free.push_back(h);
}

}  // namespace

void HeadRecycler::operator()(RequestHeaders* h) const {
  if (HeadPool<RequestHeaders>::gone) {
    delete h;
    return;
  }
  h->method.clear();
  h->path.clear();
  h->authority.clear();
  h->scheme.clear();
  h->version_major = 1;
  h->version_minor = 1;
  h->headers.clearAndTrim();
  recycle(tl_request_heads, h);
}

void HeadRecycler::operator()(ResponseHeaders* h) const {
  if (HeadPool<ResponseHeaders>::gone) {
    delete h;
    return;
  }
  h->status = 200;
  h->reason.clear();
  h->headers.clearAndTrim();
  recycle(tl_response_heads, h);
}

RequestHeadersPtr makeRequestHeaders() {
  auto& pool = tl_request_heads;
  if (HeadPool<RequestHeaders>::gone || pool.free.empty()) return RequestHeadersPtr(new RequestHeaders());
  RequestHeaders* h = pool.free.back();
  pool.free.pop_back();
  return RequestHeadersPtr(h);
}

ResponseHeadersPtr makeResponseHeaders() {
  auto& pool = tl_response_heads;
  if (HeadPool<ResponseHeaders>::gone || pool.free.empty()) return ResponseHeadersPtr(new ResponseHeaders());
  ResponseHeaders* h = pool.free.back();
  pool.free.pop_back();
  return ResponseHeadersPtr(h);
}

const char* reasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 203: return "Non-Authoritative Information";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 406: return "Not Acceptable";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace ferry::core::http
