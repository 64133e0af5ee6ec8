// libFuzzer target for the HTTP/1 codecs (every build also replays tests/fuzz/corpus/http1 through
// it with replay_main.cc). Input: byte 0 = mode and limits, byte 1 = request kind (client mode),
// the rest = wire bytes. Traps (a crash libFuzzer reports) when:
// - any callback comes after onProtocolError, or an error status is not 400/431;
// - feeding the bytes whole, in random chunks or byte by byte gives different callback sequences;
// - a delivered request breaks an invariant: method a token, path origin-form/"*"/CONNECT
//   authority, no Host in headers, one Content-Length at most, Transfer-Encoding only "chunked",
//   names/values free of CR/LF/NUL, a Content-Length body delivered exactly;
// - a delivered request, re-encoded by ClientCodec, does not parse back to the same request;
// - the response ServerCodec encodes for a request does not parse back in ClientCodec.
#include <cstdint>
#include <string>
#include <vector>

#include "core/http/http1/codec.h"

namespace {

using ferry::core::Buffer;
using ferry::core::http::HeaderMap;
using ferry::core::http::RequestHeaders;
using ferry::core::http::RequestHeadersPtr;
using ferry::core::http::ResponseHeaders;
using ferry::core::http::ResponseHeadersPtr;
using namespace ferry::core::http::http1;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool clean(const std::string& s) {
  for (char c : s)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  return true;
}

bool tokenChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string fmt(const HeaderMap& h, bool framing) {
  std::string s;
  for (const auto& e : h.entries()) {
    if (!framing && (e.name == "content-length" || e.name == "transfer-encoding")) continue;
    s += e.name + ": " + e.value + "\n";
  }
  return s;
}

struct ServerSink : ServerCodecCallbacks {
  std::string log;
  bool dead = false;
  std::vector<RequestHeaders> heads;
  uint64_t expect_body = 0;
  uint64_t got_body = 0;
  bool counting = false;

  void onRequestHeaders(RequestHeadersPtr h, bool end) override {
    check(!dead);
    check(!h->method.empty() && !h->path.empty() && clean(h->path) && clean(h->authority));
    for (char c : h->method) check(tokenChar(c));
    check(h->path[0] == '/' || h->path == "*" || (h->method == "CONNECT" && h->path == h->authority));
    check(!h->headers.has("host") && h->headers.count("content-length") <= 1);
    for (const auto& e : h->headers.entries()) check(!e.name.empty() && clean(e.name) && clean(e.value));
    const std::string* cl = h->headers.get("content-length");
    if (const std::string* te = h->headers.get("transfer-encoding")) {
      check(HeaderMap::equalsIgnoreCase(*te, "chunked") && cl == nullptr && !end);
    }
    counting = cl != nullptr && !end;
    expect_body = counting ? std::stoull(*cl) : 0;
    got_body = 0;
    log += "\nH " + h->method + " " + h->path + " " + h->authority + (end ? " END\n" : "\n") +
           fmt(h->headers, true);
    heads.push_back(*h);
  }
  void onRequestData(Buffer& d, bool end) override {
    check(!dead);
    got_body += d.length();
    if (counting) check(got_body <= expect_body && (!end || got_body == expect_body));
    log += d.toString();
    if (end) log += "\nEND";
    d.clear();
  }
  void onRequestTrailers(HeaderMap t) override {
    check(!dead && !t.empty());
    log += "\nT " + fmt(t, true);
  }
  void onProtocolError(int status, std::string_view) override {
    check(!dead && (status == 400 || status == 431));
    dead = true;
    log += "\nE " + std::to_string(status);
  }
};

struct ClientSink : ClientCodecCallbacks {
  std::string log;
  bool dead = false;
  int finals = 0;
  void onResponseHeaders(ResponseHeadersPtr h, bool end) override {
    check(!dead && h->status >= 100 && h->status <= 599 && clean(h->reason));
    ++finals;
    log += "\nH " + std::to_string(h->status) + (end ? " END\n" : "\n") + fmt(h->headers, true);
  }
  void onInformational(ResponseHeadersPtr h) override {
    check(!dead && h->status >= 100 && h->status < 200 && h->status != 101);
    log += "\nI " + std::to_string(h->status);
  }
  void onResponseData(Buffer& d, bool end) override {
    check(!dead);
    log += d.toString();
    if (end) log += "\nEND";
    d.clear();
  }
  void onResponseTrailers(HeaderMap t) override {
    check(!dead && !t.empty());
    log += "\nT " + fmt(t, true);
  }
  void onProtocolError(std::string_view) override {
    check(!dead);
    dead = true;
    log += "\nE";
  }
};

// Chunk sizes: seed 0 = everything at once, 1 = byte by byte, else pseudo-random 1..64.
struct Chunker {
  uint32_t state;
  size_t next(size_t left) {
    if (state == 0) return left;
    if (state == 1) return 1;
    state = state * 1664525u + 1013904223u;
    size_t n = 1 + (state >> 24) % 64;
    return n < left ? n : left;
  }
};

// The response the server side encodes for a complete request must parse back in a client.
void checkResponseRoundTrip(ServerCodec& server, const RequestHeaders& req) {
  ClientSink cs;
  ClientCodec client(cs);
  Buffer ignored, wire, body;
  RequestHeaders probe;
  probe.method = req.method;
  probe.path = "/";
  client.encodeHeaders(probe, true, ignored);
  ResponseHeaders r;
  r.headers.add("x-fuzz", "1");
  server.encodeHeaders(r, false, wire);
  body.add("hello");
  server.encodeData(body, false, wire);
  HeaderMap t;
  t.add("x-t", "2");
  server.encodeTrailers(t, wire);
  const bool close_delimited = server.responseNeedsClose();
  client.dispatch(wire);
  if (close_delimited) client.onEof();
  check(!cs.dead && cs.finals == 1);
  // HEAD: no body; otherwise the body arrives (the trailers only when chunked).
  check((cs.log.find("hello") == std::string::npos) == (req.method == "HEAD"));
}

// A delivered request re-encoded by the client side parses back to the same request.
void checkRequestRoundTrip(const RequestHeaders& req) {
  ClientSink unused;
  ClientCodec client(unused);
  Buffer wire;
  client.encodeHeaders(req, true, wire);
  ServerSink again;
  CodecLimits roomy;  // the re-encoding may add a field ("content-length: 0" for a POST)
  roomy.max_headers += 2;
  roomy.max_header_bytes *= 2;
  ServerCodec server(again, roomy);
  server.dispatch(wire);
  check(!again.dead && again.heads.size() == 1);
  const RequestHeaders& b = again.heads[0];
  check(b.method == req.method && b.path == req.path && b.authority == req.authority);
  check(fmt(b.headers, false) == fmt(req.headers, false) ||
        // an Upgrade request with a body was parsed as a plain request; without its body it
        // is an upgrade again, which drops nothing but may differ only in framing fields.
        req.headers.has("upgrade"));
}

std::string runServer(const uint8_t* data, size_t size, const CodecLimits& limits, uint32_t seed,
                      bool verify) {
  ServerSink sink;
  ServerCodec codec(sink, limits);
  Buffer in;
  Chunker chunker{seed};
  size_t pos = 0;
  size_t responded = 0;
  while (pos < size && !sink.dead) {
    const size_t n = chunker.next(size - pos);
    in.add(data + pos, n);
    pos += n;
    for (;;) {
      codec.dispatch(in);
      if (!codec.paused()) break;
      sink.log += "\nC";
      if (verify && sink.heads.size() > responded) {
        checkResponseRoundTrip(codec, sink.heads.back());
        responded = sink.heads.size();
      }
      codec.resume();
    }
    if (codec.upgraded()) break;
  }
  codec.onEof();
  if (codec.upgraded()) {
    in.add(data + pos, size - pos);
    sink.log += "\nU " + in.toString();
  }
  if (verify)
    for (const auto& h : sink.heads) checkRequestRoundTrip(h);
  return sink.log;
}

std::string runClient(const uint8_t* data, size_t size, uint8_t kind, uint32_t seed) {
  ClientSink sink;
  ClientCodec codec(sink);
  Buffer out, in;
  static const char* const kMethods[] = {"GET", "HEAD", "CONNECT", "GET", "POST"};
  const int requests = 1 + (kind >> 4) % 3;
  for (int i = 0; i < requests; ++i) {
    RequestHeaders r;
    r.method = kMethods[(kind + i) % 5];
    r.path = r.method == "CONNECT" ? "h:1" : "/";
    r.authority = "up";
    if ((kind + i) % 5 == 3) {
      r.headers.add("connection", "upgrade");
      r.headers.add("upgrade", "websocket");
    }
    codec.encodeHeaders(r, true, out);
  }
  Chunker chunker{seed};
  size_t pos = 0;
  while (pos < size && !sink.dead && !codec.upgraded()) {
    const size_t n = chunker.next(size - pos);
    in.add(data + pos, n);
    pos += n;
    codec.dispatch(in);
  }
  codec.onEof();
  if (codec.upgraded()) {
    in.add(data + pos, size - pos);
    sink.log += "\nU " + in.toString();
  }
  sink.log += codec.keepAlive() ? "\nKA" : "\nCLOSE";
  return sink.log;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t mode = data[0];
  const uint8_t kind = data[1];
  data += 2;
  size -= 2;
  const uint32_t seed = 2 + kind * 2654435761u;
  if (mode & 1) {
    const std::string whole = runClient(data, size, kind, 0);
    check(runClient(data, size, kind, seed) == whole);
    if (size < 4096) check(runClient(data, size, kind, 1) == whole);
    return 0;
  }
  CodecLimits limits;
  if (mode & 2) {  // small limits reach the 431 paths
    limits.max_header_bytes = 32 + (mode >> 2) * 8;
    limits.max_headers = 1 + (mode >> 2) % 8;
  }
  const std::string whole = runServer(data, size, limits, 0, true);
  check(runServer(data, size, limits, seed, false) == whole);
  if (size < 4096) check(runServer(data, size, limits, 1, false) == whole);
  return 0;
}
