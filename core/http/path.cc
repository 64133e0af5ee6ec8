#include "core/http/path.h"

#include "core/http/header_map.h"

namespace ferry::core::http {
namespace {

// Bytes never allowed in a request-target: controls, space, DEL, non-ASCII, and '#'.
constexpr bool forbidden(unsigned char c) { return c <= 0x20 || c >= 0x7F || c == '#'; }

inline int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

constexpr char kHex[] = "0123456789ABCDEF";

// Percent-decoding pass (see path.h). Never produces a '/' that was not there.
bool decode(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c != '%') {
      out->push_back(c);
      continue;
    }
    if (i + 2 >= in.size()) return false;  // fewer than two hex digits left
    int hi = hexValue(in[i + 1]);
    int lo = hexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    unsigned char v = static_cast<unsigned char>(hi * 16 + lo);
    if (v == 0) return false;
    if (unreserved(v)) {
      out->push_back(static_cast<char>(v));
    } else {
      out->push_back('%');
      out->push_back(kHex[hi]);
      out->push_back(kHex[lo]);
    }
    i += 2;
  }
  return true;
}

// Dot-segment removal (RFC 3986 5.2.4, but climbing above the root fails) and optional slash
// merging. `in` starts with '/'.
bool removeDots(std::string_view in, bool merge_slashes, std::string* out) {
  out->clear();
  out->reserve(in.size());
  size_t pos = 1;  // past the leading '/'
  while (true) {
    size_t slash = in.find('/', pos);
    bool last = slash == std::string_view::npos;
    std::string_view seg = in.substr(pos, last ? std::string_view::npos : slash - pos);
    if (seg.size() == 1 && seg[0] == '.') {
      if (last) out->push_back('/');
    } else if (seg.size() == 2 && seg[0] == '.' && seg[1] == '.') {
      if (out->empty()) return false;  // above the root
      out->resize(out->rfind('/'));
      if (last) out->push_back('/');
    } else if (seg.empty() && merge_slashes && !last) {
      // "//": dropped
    } else {
      out->push_back('/');
      out->append(seg);
    }
    if (last) break;
    pos = slash + 1;
  }
  if (out->empty()) out->push_back('/');
  return true;
}

}  // namespace

PathResult normalizePath(std::string_view target, bool merge_slashes, std::string* path_out,
                         std::string* query_out) {
  if (target.empty() || target[0] != '/') return PathResult::kInvalid;
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q);
  for (char c : query)
    if (forbidden(static_cast<unsigned char>(c))) return PathResult::kInvalid;

  // One scan: validate, and see whether anything needs rewriting.
  bool slow = false;
  char prev = 0;
  for (char c : path) {
    if (forbidden(static_cast<unsigned char>(c))) return PathResult::kInvalid;
    if (c == '%' || (c == '.' && prev == '/') || (c == '/' && prev == '/' && merge_slashes))
      slow = true;
    prev = c;
  }
  // The target never points into the outputs (copyInto's condition).
  if (query_out) copyInto(*query_out, query);
  if (!slow) {
    copyInto(*path_out, path);
    return PathResult::kOk;
  }
  std::string decoded;
  if (!decode(path, &decoded)) return PathResult::kInvalid;
  if (!removeDots(decoded, merge_slashes, path_out)) return PathResult::kInvalid;
  return PathResult::kOk;
}

}  // namespace ferry::core::http
