// The protocol-neutral HTTP message model shared by HTTP/1 and HTTP/2 codecs, filters and the
// router: header names are stored lower-case, order is kept, lookups are case-insensitive.
// Worker-local values; no I/O.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry::core::http {

// `s == "literal"` on a std::string calls basic_string::compare out of line (a strlen and a
// memcmp, about 60 instructions a call), and string_view's own compare is not always
// inlined either; this compares the length, then the bytes with a memcmp of constant size
// that the compiler turns into a few loads. For the per-request comparisons of names and
// methods (takes a std::string or a string_view).
template <size_t N>
inline bool equals(std::string_view s, const char (&literal)[N]) noexcept {
  return s.size() == N - 1 && std::memcmp(s.data(), literal, N - 1) == 0;
}

// Makes `s` a copy of `v`, which must not point into `s`. clear() and append() take
// libstdc++'s short path (a capacity check and a copy), where assign() runs the general
// replace (overlap checks, a move), about 40 instructions more a call; a request stores a
// dozen fields and pseudo-fields this way.
inline void copyInto(std::string& s, std::string_view v) {
  s.clear();
  s.append(v.data(), v.size());
}

class HeaderMap {
 public:
  struct Entry {
    std::string name;   // lower-case
    std::string value;
    // Set by the HTTP/1 parser, on a field whose bytes it checked as RFC 9110 asks (a token
    // for the name; VCHAR, obs-text, SP and HTAB for the value), and by addMade() for a field
    // Ferry made itself, so that an HTTP/1 encoder writes it without checking it again. Any change made through the map clears
    // it: a new entry starts without it, set() clears it, and writes go through
    // mutableEntry() or mutableEntries(), which clear it first.
    bool checked = false;
    // Member swaps: cheaper than std::swap's three moves per string (removeIf shifts entries).
    void swapWith(Entry& o) noexcept {
      name.swap(o.name);
      value.swap(o.value);
      std::swap(checked, o.checked);
    }
  };

  HeaderMap() = default;
  HeaderMap(const HeaderMap& other) : entries_(other.entries().begin(), other.entries().end()), size_(other.size_) {}
  HeaderMap& operator=(const HeaderMap& other);
  HeaderMap(HeaderMap&& other) noexcept : entries_(std::move(other.entries_)), size_(other.size_) {
    other.entries_.clear();
    other.size_ = 0;
  }
  HeaderMap& operator=(HeaderMap&& other) noexcept {
    if (this != &other) {
      entries_ = std::move(other.entries_);
      size_ = other.size_;
      other.entries_.clear();
      other.size_ = 0;
    }
    return *this;
  }
  void swap(HeaderMap& other) noexcept {
    entries_.swap(other.entries_);
    std::swap(size_, other.size_);
  }

  // Appends (keeps an existing header of the same name: HTTP allows repeats).
  void add(std::string_view name, std::string_view value);
  // add() for a name that is lower-case already, which it does not lower-case again: a
  // literal, or an HTTP/2 field name (nghttp2 refuses a field name with an upper-case letter
  // before the codec sees it). Debug builds check the name.
  void addLowerCase(std::string_view name, std::string_view value);
  // addLowerCase() for a field whose bytes Ferry made itself (a lower-case literal name, a
  // value it formatted from its own data: an address, a request id), so valid by
  // construction: it is marked `checked`.
  void addMade(std::string_view name, std::string_view value);
  // Replaces every header of that name with one entry (appended if absent).
  void set(std::string_view name, std::string_view value);
  // Removes every header of that name; returns how many were removed.
  size_t remove(std::string_view name);
  // Removes, in one pass, every entry for which pred(entry) holds (names are lower-case).
  // The order of the others is kept.
  template <typename Pred>
  size_t removeIf(Pred&& pred) {
    size_t kept = 0;
    for (size_t i = 0; i < size_; ++i) {
      if (pred(entries_[i])) continue;
      if (kept != i) entries_[kept].swapWith(entries_[i]);  // the removed one keeps its strings' room
      ++kept;
    }
    const size_t removed = size_ - kept;
    size_ = kept;
    return removed;
  }
  // First value, or nullptr.
  const std::string* get(std::string_view name) const;
  bool has(std::string_view name) const { return get(name) != nullptr; }
  // Every value of that name joined with ", " (for list-valued headers); "" if absent.
  std::string getAll(std::string_view name) const;
  size_t count(std::string_view name) const;

  // Where a field first appears (its index in entries()) and how many times.
  struct FieldRef {
    size_t index = 0;
    size_t count = 0;
  };
  // Several names found in one pass over the map (compared ignoring case): found[k] is
  // names[k]'s. For the few fields a codec or the connection manager looks at per message.
  template <size_t K>
  void locate(const std::string_view (&names)[K], FieldRef (&found)[K]) const {
    for (size_t i = 0; i < size_; ++i) {
      const std::string& n = entries_[i].name;
      for (size_t k = 0; k < K; ++k) {
        if (!equalsIgnoreCase(n, names[k])) continue;
        if (found[k].count++ == 0) found[k].index = i;
        break;
      }
    }
  }
  // A located field as one comma-separated list: the value itself when the field appears
  // once, every value joined with ", " (made in `scratch`) when more often, "" when absent.
  std::string_view list(std::string_view name, const FieldRef& f, std::string& scratch) const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Sum of name and value lengths (for header size limits).
  size_t byteSize() const;
  std::span<const Entry> entries() const { return {entries_.data(), size_}; }
  // Entry i (< size()) for writing; its `checked` mark is cleared first.
  Entry& mutableEntry(size_t i) {
    entries_[i].checked = false;
    return entries_[i];
  }
  // Every entry for writing; every `checked` mark is cleared first.
  std::span<Entry> mutableEntries() {
    for (size_t i = 0; i < size_; ++i) entries_[i].checked = false;
    return {entries_.data(), size_};
  }
  // A new last entry with empty name and value, not checked (for a parser that appends to
  // them).
  Entry& appendEntry();
  // The last entry, as the parser fills it (the parser alone sets `checked`).
  Entry& back() { return entries_[size_ - 1]; }
  // Drops the last entry (its strings' storage is kept for reuse).
  void popBack() { --size_; }
  // Room for n entries (their strings grow as used).
  void reserve(size_t n) {
    if (entries_.capacity() < n) entries_.reserve(n);
  }
  // Empties the map. The entries' storage is kept for the next headers put here (a map
  // reused across requests allocates nothing once it has seen their sizes).
  void clear() { size_ = 0; }
  // clear(), and gives back storage beyond what one ordinary request needs (a map going
  // back to a pool keeps a bounded amount).
  void clearAndTrim();

  // ASCII lower-case, for names.
  static std::string lower(std::string_view s);
  // The same in place, 8 bytes per step (bytes outside A-Z are left as they are).
  static void lowerInPlace(char* p, size_t n);
  // Inline: most comparisons in a lookup end at the lengths.
  static bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    return a.size() == b.size() && sameIgnoreCase(a.data(), b.data(), a.size());
  }
  // n bytes of a and b equal, ASCII case ignored.
  static bool sameIgnoreCase(const char* a, const char* b, size_t n);

 private:
  // entries_[0, size_) are the headers; the entries after them are spare (cleared by reuse),
  // kept for the storage of their strings.
  std::vector<Entry> entries_;
  size_t size_ = 0;
};

struct RequestHeaders {
  std::string method;     // as received ("GET")
  std::string path;       // request-target in origin form ("/a?b"), or authority for CONNECT
  std::string authority;  // Host (HTTP/1) or :authority (HTTP/2)
  std::string scheme;     // "http" or "https": how the client reached us
  int version_major = 1;
  int version_minor = 1;  // HTTP/1.0 or 1.1 (2 for HTTP/2)
  HeaderMap headers;      // without Host (kept in authority)
};

struct ResponseHeaders {
  int status = 200;
  std::string reason;  // HTTP/1 reason phrase as received; empty = the standard one
  HeaderMap headers;
};

// Heads are recycled through a per-thread pool (like Buffer slices): the deleter of these
// pointers clears a head (keeping its strings' storage, within a bound) and keeps it for the
// next makeRequestHeaders() / makeResponseHeaders() on that thread, so a worker in steady
// state allocates no heads. A head made with std::make_unique converts and is recycled too.
struct HeadRecycler {
  HeadRecycler() = default;
  template <typename T>
  HeadRecycler(std::default_delete<T>) {}  // NOLINT: implicit, from std::unique_ptr<T>
  void operator()(RequestHeaders* h) const;
  void operator()(ResponseHeaders* h) const;
};
using RequestHeadersPtr = std::unique_ptr<RequestHeaders, HeadRecycler>;
using ResponseHeadersPtr = std::unique_ptr<ResponseHeaders, HeadRecycler>;
// An empty head from this thread's pool (a new one when the pool is empty).
RequestHeadersPtr makeRequestHeaders();
ResponseHeadersPtr makeResponseHeaders();

// The standard reason phrase for a status ("OK", "Not Found", ...; "Unknown" otherwise).
const char* reasonPhrase(int status);

}  // namespace ferry::core::http
