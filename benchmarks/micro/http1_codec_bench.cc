// HTTP/1.1 codec micro benchmarks: the per-message cost of ServerCodec (parse a request head,
// encode a response) and ClientCodec (encode a request, parse a response head + small body).
//
// Every iteration copies the message into the input Buffer first (Buffer::add, as a read would)
// and then dispatches it: the figures are "bytes in a Buffer -> callbacks delivered", including
// the allocation of the RequestHeaders/ResponseHeaders the codec hands over. One codec is reused
// across iterations (keep-alive), as on a persistent connection.
#include <string>
#include <string_view>

#include "benchmarks/micro/micro.h"
#include "core/buffer.h"
#include "core/http/header_map.h"
#include "core/http/http1/codec.h"
#include "core/http/http1/message_parser.h"

using ferry::core::Buffer;
using ferry::core::http::HeaderMap;
using ferry::core::http::RequestHeaders;
using ferry::core::http::RequestHeadersPtr;
using ferry::core::http::ResponseHeaders;
using ferry::core::http::ResponseHeadersPtr;
using namespace ferry::core::http::http1;

namespace {

// What wrk sends, plus the usual proxy-facing headers: 6 header lines, ~210 bytes.
constexpr std::string_view kRequest =
    "GET /api/v1/items?id=42 HTTP/1.1\r\n"
    "Host: www.example.com:8080\r\n"
    "User-Agent: wrk/4.2.0\r\n"
    "Accept: */*\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Connection: keep-alive\r\n"
    "X-Request-Id: 7f9c2ba4-e88f-11ea-adc1-0242ac120002\r\n"
    "\r\n";

// A small nginx-like response: 5 header lines and a 13-byte body.
constexpr std::string_view kBody = "Hello, World!";
constexpr std::string_view kResponse =
    "HTTP/1.1 200 OK\r\n"
    "Server: nginx/1.22.1\r\n"
    "Date: Tue, 04 Jun 2024 10:00:00 GMT\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "Connection: keep-alive\r\n"
    "\r\n"
    "Hello, World!";

struct ServerSink : ServerCodecCallbacks {
  size_t heads = 0;
  size_t header_count = 0;
  int error = 0;
  RequestHeadersPtr last;
  void onRequestHeaders(RequestHeadersPtr h, bool end_stream) override {
    ++heads;
    header_count += h->headers.size() + (end_stream ? 1 : 0);
    last = std::move(h);
  }
  void onRequestData(Buffer& data, bool) override { data.drain(data.length()); }
  void onRequestTrailers(HeaderMap) override {}
  void onProtocolError(int status, std::string_view) override { error = status; }
};

struct ClientSink : ClientCodecCallbacks {
  size_t heads = 0;
  size_t completes = 0;
  size_t body_bytes = 0;
  bool error = false;
  ResponseHeadersPtr last;
  void onResponseHeaders(ResponseHeadersPtr h, bool end_stream) override {
    ++heads;
    if (end_stream) ++completes;
    last = std::move(h);
  }
  void onResponseData(Buffer& data, bool end_stream) override {
    body_bytes += data.length();
    data.drain(data.length());
    if (end_stream) ++completes;
  }
  void onResponseTrailers(HeaderMap) override { ++completes; }
  void onProtocolError(std::string_view) override { error = true; }
};

// The request the proxy sends upstream for kRequest (the HCM adds x-forwarded-for).
RequestHeaders upstreamRequest() {
  RequestHeaders h;
  h.method = "GET";
  h.path = "/api/v1/items?id=42";
  h.authority = "www.example.com:8080";
  h.headers.add("user-agent", "wrk/4.2.0");
  h.headers.add("accept", "*/*");
  h.headers.add("accept-encoding", "gzip, deflate");
  h.headers.add("x-request-id", "7f9c2ba4-e88f-11ea-adc1-0242ac120002");
  h.headers.add("x-forwarded-for", "10.1.2.3");
  return h;
}

ResponseHeaders downstreamResponse() {
  ResponseHeaders h;
  h.status = 200;
  h.headers.add("server", "nginx/1.22.1");
  h.headers.add("date", "Tue, 04 Jun 2024 10:00:00 GMT");
  h.headers.add("content-type", "text/plain");
  h.headers.add("content-length", "13");
  return h;
}

// One request through the server codec: add to the input, dispatch, resume (keep-alive).
size_t serverParseOne(ServerCodec& codec, ServerSink& sink, Buffer& in) {
  in.add(kRequest);
  codec.dispatch(in);
  codec.resume();
  return sink.heads;
}

}  // namespace

TEST_CASE("http1 codec", "[micro][http1]") {
  // Sanity: the messages parse as intended, so the benchmarks measure the success path.
  {
    ServerSink s;
    ServerCodec codec(s);
    Buffer in;
    for (int k = 0; k < 3; ++k) serverParseOne(codec, s, in);
    REQUIRE(s.error == 0);
    REQUIRE(s.heads == 3);
    REQUIRE(in.empty());
    REQUIRE(s.last->method == "GET");
    REQUIRE(s.last->authority == "www.example.com:8080");
    REQUIRE(s.last->headers.size() == 5);  // host moved to authority

    ClientSink c;
    ClientCodec client(c);
    Buffer out, rin;
    RequestHeaders req = upstreamRequest();
    for (int k = 0; k < 3; ++k) {
      client.encodeHeaders(req, true, out);
      rin.add(kResponse);
      client.dispatch(rin);
    }
    REQUIRE_FALSE(c.error);
    REQUIRE(c.heads == 3);
    REQUIRE(c.completes == 3);
    REQUIRE(c.body_bytes == 3 * kBody.size());
    REQUIRE(client.keepAlive());
    REQUIRE(out.toString().substr(0, 33) == "GET /api/v1/items?id=42 HTTP/1.1\r");
  }

  ServerSink ssink;
  ServerCodec server(ssink);
  Buffer sin, sout;
  const ResponseHeaders resp = downstreamResponse();

  BENCHMARK("server: parse GET head, 6 headers") { return serverParseOne(server, ssink, sin); };

  BENCHMARK("server: parse GET + encode 200 with 13 B body") {
    serverParseOne(server, ssink, sin);
    Buffer body;
    body.add(kBody);
    server.encodeHeaders(resp, false, sout);
    server.encodeData(body, true, sout);
    const size_t n = sout.length();
    sout.drain(n);
    return n;
  };

  // The head is read twice: by llhttp, and by the framing scan that refuses what llhttp's
  // strict mode still lets through (bare LF, obs-fold). The scan should cost at most a quarter
  // of llhttp's parse of the same head.
  {
    llhttp_settings_t settings;
    llhttp_settings_init(&settings);  // no callbacks: llhttp's own parse and nothing else
    llhttp_t parser;
    llhttp_init(&parser, HTTP_REQUEST, &settings);
    for (int k = 0; k < 3; ++k) REQUIRE(llhttp_execute(&parser, kRequest.data(), kRequest.size()) == HPE_OK);
    BENCHMARK("head: llhttp alone, GET head, 6 headers") {
      llhttp_reset(&parser);  // as between keep-alive requests
      return llhttp_execute(&parser, kRequest.data(), kRequest.size());
    };
    ferry::core::http::http1::detail::MessageParser scanner(HTTP_REQUEST, CodecLimits{});
    REQUIRE(scanner.scanHeadOnly(kRequest));
    BENCHMARK("head: framing scan alone, same head") { return scanner.scanHeadOnly(kRequest); };
  }

  ClientSink csink;
  ClientCodec client(csink);
  Buffer c_out, c_in;
  const RequestHeaders req = upstreamRequest();

  // Encoding alone: each encodeHeaders() also queues the request as outstanding, so a fresh
  // codec per sample (outside the timed part) keeps the queue from growing without bound.
  BENCHMARK_ADVANCED("client: encode GET head, 5 headers")(Catch::Benchmark::Chronometer meter) {
    ClientSink sink;
    ClientCodec codec(sink);
    Buffer out;
    meter.measure([&] {
      codec.encodeHeaders(req, true, out);
      const size_t n = out.length();
      out.drain(n);
      return n;
    });
  };

  // Parsing alone: the requests are encoded before the timed part (a few bytes of state each:
  // the ClientCodec keeps outstanding requests in a deque).
  BENCHMARK_ADVANCED("client: parse 200 head + 13 B body")(Catch::Benchmark::Chronometer meter) {
    ClientSink sink;
    ClientCodec codec(sink);
    Buffer out, in;
    for (int k = 0; k < meter.runs(); ++k) {
      codec.encodeHeaders(req, true, out);
      out.drain(out.length());
    }
    meter.measure([&] {
      in.add(kResponse);
      codec.dispatch(in);
      return sink.completes;
    });
    if (sink.error || sink.completes != static_cast<size_t>(meter.runs()))
      FAIL("client codec did not complete every response");
  };

  BENCHMARK("client: encode GET + parse 200 with 13 B body") {
    client.encodeHeaders(req, true, c_out);
    c_out.drain(c_out.length());
    c_in.add(kResponse);
    client.dispatch(c_in);
    return csink.completes;
  };

  // The benchmarks ran on the success path throughout.
  CHECK(ssink.error == 0);
  CHECK(sin.empty());
  CHECK_FALSE(csink.error);
  CHECK(csink.completes == csink.heads);
}
