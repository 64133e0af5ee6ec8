// The protocol-neutral HTTP message model shared by HTTP/1 and HTTP/2 codecs, filters and the
// router: header names are stored lower-case, order is kept, lookups are case-insensitive.
// Worker-local values; no I/O.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::core::http {

class HeaderMap {
 public:
  struct Entry {
    std::string name;   // lower-case
    std::string value;
  };

  // Appends (keeps an existing header of the same name: HTTP allows repeats).
  void add(std::string_view name, std::string_view value);
  // Replaces every header of that name with one entry (appended if absent).
  void set(std::string_view name, std::string_view value);
  // Removes every header of that name; returns how many were removed.
  size_t remove(std::string_view name);
  // Removes, in one pass, every entry for which pred(entry) holds (names are lower-case).
  template <typename Pred>
  size_t removeIf(Pred&& pred) {
    size_t kept = 0;
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (pred(entries_[i])) continue;
      if (kept != i) entries_[kept] = std::move(entries_[i]);
      ++kept;
    }
    const size_t removed = entries_.size() - kept;
    entries_.resize(kept);
    return removed;
  }
  // First value, or nullptr.
  const std::string* get(std::string_view name) const;
  bool has(std::string_view name) const { return get(name) != nullptr; }
  // Every value of that name joined with ", " (for list-valued headers); "" if absent.
  std::string getAll(std::string_view name) const;
  size_t count(std::string_view name) const;

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  // Sum of name and value lengths (for header size limits).
  size_t byteSize() const;
  const std::vector<Entry>& entries() const { return entries_; }
  std::vector<Entry>& entries() { return entries_; }
  void clear() { entries_.clear(); }

  // ASCII lower-case, for names.
  static std::string lower(std::string_view s);
  static bool equalsIgnoreCase(std::string_view a, std::string_view b);

 private:
  std::vector<Entry> entries_;
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

using RequestHeadersPtr = std::unique_ptr<RequestHeaders>;
using ResponseHeadersPtr = std::unique_ptr<ResponseHeaders>;

// The standard reason phrase for a status ("OK", "Not Found", ...; "Unknown" otherwise).
const char* reasonPhrase(int status);

}  // namespace ferry::core::http
