// libFuzzer target for the downstream HTTP/2 session (every build also replays
// tests/fuzz/corpus/http2 through it with replay_main.cc). Input: byte 0 = limits and answer
// mode, byte 1 = chunk size for feeding, the rest = frames the client sends after its
// connection preface (which the target adds). Each request stream is answered by a fake
// connection manager (at once, or once the request ends; with a body, trailers or a reset).
// Traps (a crash libFuzzer reports) when:
// - a stream gets a callback after it was reset or after its request ended;
// - a delivered request lacks a method, or has a Host header besides :authority, or a header
//   name that is empty, upper-case or holds CR/LF/NUL;
// - the codec writes after it closed the connection.
// ASan/UBSan (the fuzz build) catch memory errors on top.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/http/http2/codec.h"

namespace {

using ferry::core::Buffer;
using namespace ferry::core::http;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

struct Io : CodecIo {
  bool closed = false;
  size_t written = 0;
  void write(Buffer& data, bool) override {
    check(!closed);
    written += data.length();
    data.clear();
  }
  void closeConnection(bool) override { closed = true; }
  void readDisable(bool) override {}
};

struct Stream : RequestDecoder, StreamCallbacks {
  ResponseEncoder* enc = nullptr;
  uint8_t mode = 0;
  bool request_done = false;
  bool reset = false;
  bool answered = false;

  void answer() {
    if (answered || reset || enc == nullptr) return;
    answered = true;
    ResponseHeaders h;
    h.status = 200;
    h.headers.add("content-type", "text/plain");
    switch (mode % 4) {
      case 0:
        enc->encodeHeaders(h, true);
        break;
      case 1: {
        enc->encodeHeaders(h, false);
        Buffer b;
        b.add(std::string(mode * 97, 'x'));
        enc->encodeData(b, true);
        break;
      }
      case 2: {
        enc->encodeHeaders(h, false);
        Buffer b;
        b.add("part");
        enc->encodeData(b, false);
        HeaderMap t;
        t.add("grpc-status", "0");
        enc->encodeTrailers(t);
        break;
      }
      default:
        enc->resetStream(StreamResetReason::kLocalReset);
        reset = true;
        break;
    }
  }

  void decodeHeaders(RequestHeadersPtr h, bool end_stream) override {
    check(!reset && !request_done);
    check(!h->method.empty() && !h->headers.has("host"));
    for (const auto& e : h->headers.entries()) {
      check(!e.name.empty());
      for (char c : e.name) check(c != '\r' && c != '\n' && c != '\0' && !(c >= 'A' && c <= 'Z'));
    }
    request_done = end_stream;
    if (end_stream || (mode & 0x10) != 0) answer();
  }
  void decodeData(Buffer& data, bool end_stream) override {
    check(!reset && !request_done);
    data.clear();
    request_done = end_stream;
    if (end_stream) answer();
  }
  void decodeTrailers(HeaderMap) override {
    check(!reset && !request_done);
    request_done = true;
    answer();
  }
  void onDecodeError(int, std::string_view, ResponseFlag) override { check(!reset); }
  void onResetStream(StreamResetReason, std::string_view) override {
    check(!reset);
    reset = true;
  }
};

struct Manager : ServerConnectionCallbacks {
  std::vector<std::unique_ptr<Stream>> streams;
  uint8_t mode = 0;
  RequestDecoder& newStream(ResponseEncoder& encoder) override {
    auto s = std::make_unique<Stream>();
    s->enc = &encoder;
    s->mode = static_cast<uint8_t>(mode + streams.size());
    encoder.setStreamCallbacks(s.get());
    streams.push_back(std::move(s));
    return *streams.back();
  }
  void onCodecError(int, ResponseFlag, std::string_view) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t mode = data[0];
  const size_t chunk = 1 + data[1] % 64;
  http2::Options o;
  if ((mode & 0x80) != 0) {  // small limits: the defences trip sooner
    o.max_concurrent_streams = 3;
    o.max_header_list_bytes = 256;
    o.max_headers = 8;
    o.max_continuations = 2;
    o.max_resets_burst = 3;
    o.max_outbound_control_frames = 8;
    o.initial_stream_window_size = 65535;
  }
  Io io;
  Manager mgr;
  mgr.mode = mode;
  auto conn = http2::makeServerConnection(io, mgr, o);
  std::string wire = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  wire.append(reinterpret_cast<const char*>(data + 2), size - 2);
  for (size_t pos = 0; pos < wire.size() && !io.closed; pos += chunk) {
    Buffer b;
    b.add(std::string_view(wire).substr(pos, chunk));
    conn->dispatch(b, false);
  }
  if (!io.closed && (mode & 0x20) != 0) conn->drainNotice();
  if (!io.closed) {
    Buffer none;
    conn->dispatch(none, true);
  }
  conn.reset();
  return 0;
}
