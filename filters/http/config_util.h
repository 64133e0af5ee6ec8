// Small helpers for HTTP filters that parse their own `config:` block with NodeReader: lists
// and the token checks several filters share. Main thread (config load), header-only.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/node_reader.h"

namespace ferry::filters::http {

// The items of the list `f`, each as a Field under the list's key (so that messages read
// "expected a string for 'allow_methods'"). Not a list: a type error and nullopt. An empty list
// is an error when `non_empty` ("'k' must not be empty").
inline std::optional<std::vector<config::NodeReader::Field>> listItems(config::NodeReader& r,
                                                                       const config::NodeReader::Field& f,
                                                                       bool non_empty = true) {
  if (f.value->kind != config::ConfigNode::Kind::kList) {
    r.typeError(f, "a list");
    return std::nullopt;
  }
  if (non_empty && f.value->items.empty()) {
    r.error(f.value->mark, config::NodeReader::quote(f.key) + " must not be empty");
    return std::nullopt;
  }
  std::vector<config::NodeReader::Field> out;
  out.reserve(f.value->items.size());
  for (const auto& item : f.value->items) out.push_back({f.key, f.key_mark, &item});
  return out;
}

// An HTTP token (RFC 9110 5.6.2): method and header names.
inline bool isHttpToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

inline std::string lowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace ferry::filters::http
