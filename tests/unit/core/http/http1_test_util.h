// Helpers shared by the HTTP/1 codec tests: recording callbacks and input splitting.
#pragma once

#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/http/http1/codec.h"

namespace ferry::test::http1 {

using ferry::core::Buffer;
using ferry::core::http::HeaderMap;
using ferry::core::http::RequestHeadersPtr;
using ferry::core::http::ResponseHeadersPtr;

struct Ev {
  char kind;  // H head, I informational, D data, T trailers, C request complete (paused), E error
  std::string text;
  bool end = false;
};

inline std::string fmtHeaders(const HeaderMap& h) {
  std::string s;
  for (const auto& e : h.entries()) s += " " + e.name + "=" + e.value;
  return s;
}

// Merges consecutive data events: how body bytes are grouped depends on the split points.
inline std::vector<std::string> normalize(const std::vector<Ev>& evs) {
  std::vector<std::string> out;
  std::string data;
  bool in_data = false;
  for (const Ev& e : evs) {
    if (e.kind == 'D') {
      data += e.text;
      in_data = true;
      if (e.end) {
        out.push_back("D " + data + " END");
        data.clear();
        in_data = false;
      }
      continue;
    }
    if (in_data) out.push_back("D " + data);
    data.clear();
    in_data = false;
    out.push_back(std::string(1, e.kind) + " " + e.text + (e.end ? " END" : ""));
  }
  if (in_data) out.push_back("D " + data);
  return out;
}

struct ServerRec : ferry::core::http::http1::ServerCodecCallbacks {
  std::vector<Ev> evs;
  int heads = 0;
  int error = 0;
  std::string detail;
  RequestHeadersPtr last;
  void onRequestHeaders(RequestHeadersPtr h, bool end) override {
    ++heads;
    evs.push_back({'H', h->method + " " + h->path + " @" + h->authority + " 1." +
                            std::to_string(h->version_minor) + fmtHeaders(h->headers),
                   end});
    last = std::move(h);
  }
  void onRequestData(Buffer& d, bool end) override {
    evs.push_back({'D', d.toString(), end});
    d.drain(d.length());
  }
  void onRequestTrailers(HeaderMap t) override { evs.push_back({'T', fmtHeaders(t)}); }
  void onProtocolError(int status, std::string_view d) override {
    error = status;
    detail = std::string(d);
    evs.push_back({'E', std::to_string(status)});
  }
};

inline std::vector<std::vector<std::string>> splits(const std::string& msg) {
  std::vector<std::vector<std::string>> out;
  for (size_t k = 1; k < msg.size(); ++k) out.push_back({msg.substr(0, k), msg.substr(k)});
  std::vector<std::string> bytes;
  for (char c : msg) bytes.emplace_back(1, c);
  out.push_back(bytes);
  return out;
}

struct ClientRec : ferry::core::http::http1::ClientCodecCallbacks {
  std::vector<Ev> evs;
  int errors = 0;
  void onResponseHeaders(ResponseHeadersPtr h, bool end) override {
    evs.push_back({'H', std::to_string(h->status) + " " + h->reason + fmtHeaders(h->headers), end});
  }
  void onInformational(ResponseHeadersPtr h) override {
    evs.push_back({'I', std::to_string(h->status) + fmtHeaders(h->headers)});
  }
  void onResponseData(Buffer& d, bool end) override {
    evs.push_back({'D', d.toString(), end});
    d.drain(d.length());
  }
  void onResponseTrailers(HeaderMap t) override { evs.push_back({'T', fmtHeaders(t)}); }
  void onProtocolError(std::string_view) override {
    ++errors;
    evs.push_back({'E', "502"});
  }
};

}  // namespace ferry::test::http1

namespace ferry::test::http1 {

// One header line with `b` put at the start, in the middle or at the end of its name (or
// value), and whether RFC 9110 allows it there: names are tokens, values are VCHAR, obs-text,
// SP and HTAB (leading and trailing SP/HTAB are optional whitespace, not part of the value).
// A ':' after the first byte of a name only ends the name early, so it is left out (empty
// `line`).
struct FieldCase {
  std::string line;  // "name: value" without CRLF; empty: not a case
  bool allowed;
  std::string what;
};

inline std::vector<FieldCase> fieldByteCases() {
  auto tchar = [](unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos);
  };
  auto vchar = [](unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); };
  std::vector<FieldCase> out;
  const char* where[] = {"start", "middle", "end"};
  for (int pos = 0; pos < 3; ++pos)
    for (int b = 0; b < 256; ++b) {
      const std::string c(1, static_cast<char>(b));
      const std::string tag = std::string(where[pos]) + " byte " + std::to_string(b);
      if (!(pos > 0 && b == ':')) {
        const std::string name = (pos == 0 ? "" : "x-a") + c + (pos == 2 ? "" : "b");
        out.push_back({name + ": v", tchar(static_cast<unsigned char>(b)), "name, " + tag});
      }
      const std::string value = (pos == 0 ? "" : "a") + c + (pos == 2 ? "" : "b");
      out.push_back({"x-v: " + value, vchar(static_cast<unsigned char>(b)), "value, " + tag});
    }
  return out;
}

}  // namespace ferry::test::http1
