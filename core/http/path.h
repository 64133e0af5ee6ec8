// Request-target normalisation (docs/http.md, "Path normalisation"): the path
// the router matches on and the one forwarded upstream. Pure functions; thread-agnostic.
#pragma once

#include <string>
#include <string_view>

namespace ferry::core::http {

enum class PathResult { kOk, kInvalid };

// Splits an origin-form request-target ("/a/b?x=1") into a normalised path and the raw query.
//
// Path rules, applied in this order:
//  - The target must start with '/'. ("*" for OPTIONS and absolute-form are the codec's business;
//    they are kInvalid here.)
//  - A '#' anywhere in the target is kInvalid (a fragment is never part of a request-target).
//  - Bytes <= 0x20 (controls, space), 0x7F and >= 0x80 anywhere in the target are kInvalid.
//  - "%XX" escapes: a malformed escape (not two hex digits) or %00 is kInvalid. An escape of an
//    unreserved character (ALPHA DIGIT - . _ ~) is decoded to that character; %2F/%2f stays
//    encoded (as "%2F", never a segment separator); every other escape is kept encoded with its
//    hex digits upper-cased ("%3a" -> "%3A").
//  - merge_slashes: runs of '/' collapse to one (before dot-segment removal, as nginx does, so
//    "/a//../b" -> "/b").
//  - Dot segments ("." and "..", including ones written "%2E", "%2e%2E", ...) are removed as in
//    RFC 3986 5.2.4 ("/a/./b" -> "/a/b", "/a/b/.." -> "/a/", "/public/../admin" -> "/admin").
//    A ".." that would climb above the root ("/..", "/a/../..") is kInvalid.
// The query (from the first '?', '?' included, e.g. "?x=1", or "" when there is none) is copied
// verbatim into *query_out (no decoding, '%' not checked), so `*path_out + *query_out` is the
// target to forward. query_out may be nullptr.
// Fast path: a path with no '%', no segment starting with '.' and (with merge_slashes) no "//"
// is validated in one scan and copied unchanged.
// On kInvalid the outputs are unspecified. `target` must not point into *path_out or *query_out.
PathResult normalizePath(std::string_view target, bool merge_slashes, std::string* path_out,
                         std::string* query_out);

}  // namespace ferry::core::http
