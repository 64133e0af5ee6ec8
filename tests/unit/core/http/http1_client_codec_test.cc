// HTTP/1 client codec tests (request encoding, response parsing at every split) and a
// client <-> server round trip.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/http/http1/codec.h"
#include "tests/unit/core/http/http1_test_util.h"

using ferry::core::Buffer;
using ferry::core::http::HeaderMap;
using ferry::core::http::RequestHeaders;
using ferry::core::http::ResponseHeaders;
using namespace ferry::core::http::http1;
using namespace ferry::test::http1;

namespace {

RequestHeaders request(const std::string& method, const std::string& path = "/") {
  RequestHeaders h;
  h.method = method;
  h.path = path;
  h.authority = "up";
  return h;
}

struct ClientRun {
  std::vector<std::string> events;
  std::string rest;
  bool keep_alive, idle, upgraded;
};

ClientRun runClient(const std::vector<RequestHeaders>& reqs, const std::vector<std::string>& chunks,
                    bool eof = false) {
  ClientRec rec;
  ClientCodec codec(rec);
  Buffer out, in;
  for (const auto& r : reqs) codec.encodeHeaders(r, true, out);
  for (const auto& c : chunks) {
    in.add(c);
    codec.dispatch(in);
  }
  if (eof) codec.onEof();
  return ClientRun{normalize(rec.evs), in.toString(), codec.keepAlive(), codec.idle(), codec.upgraded()};
}

void checkClientEverySplit(const std::vector<RequestHeaders>& reqs, const std::string& msg,
                           const std::vector<std::string>& expected, bool eof = false) {
  ClientRun whole = runClient(reqs, {msg}, eof);
  REQUIRE(whole.events == expected);
  for (const auto& parts : splits(msg)) {
    ClientRun r = runClient(reqs, parts, eof);
    INFO("split: first part " << parts[0].size());
    REQUIRE(r.events == whole.events);
    REQUIRE(r.rest == whole.rest);
    REQUIRE(r.keep_alive == whole.keep_alive);
  }
}

}  // namespace

TEST_CASE("http1 client: request encoding", "[http1]") {
  ClientRec rec;
  ClientCodec codec(rec);
  Buffer out;
  RequestHeaders get = request("GET", "/a?b");
  get.headers.add("Host", "ignored");
  get.headers.add("x-a", "1");
  codec.encodeHeaders(get, true, out);
  CHECK(out.toString() == "GET /a?b HTTP/1.1\r\nhost: up\r\nx-a: 1\r\n\r\n");
  out.clear();
  RequestHeaders post = request("POST", "/p");
  codec.encodeHeaders(post, true, out);
  CHECK(out.toString() == "POST /p HTTP/1.1\r\nhost: up\r\ncontent-length: 0\r\n\r\n");
  out.clear();
  RequestHeaders stream = request("PUT", "/bad path\r\n");
  stream.headers.add("transfer-encoding", "gzip");
  codec.encodeHeaders(stream, false, out);
  Buffer d;
  d.add("abc");
  codec.encodeData(d, false, out);
  HeaderMap t;
  t.add("x-t", "1");
  codec.encodeTrailers(t, out);
  CHECK(out.toString() ==
        "PUT /bad%20path%0D%0A HTTP/1.1\r\nhost: up\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n");
  out.clear();
  RequestHeaders cl = request("POST");
  cl.headers.add("content-length", "3");
  codec.encodeHeaders(cl, false, out);
  d.add("xyz");
  codec.encodeData(d, true, out);
  CHECK(out.toString() == "POST / HTTP/1.1\r\nhost: up\r\ncontent-length: 3\r\n\r\nxyz");
  out.clear();
  RequestHeaders connect = request("CONNECT", "");
  connect.authority = "db:5432";
  codec.encodeHeaders(connect, false, out);
  CHECK(out.toString() == "CONNECT db:5432 HTTP/1.1\r\nhost: db:5432\r\n\r\n");
}

// The request line and Host: runs of visible bytes copied whole, the rest escaped (target) or
// dropped (authority); Connection read across several fields for "upgrade" and "close";
// content-length used only when given once.
TEST_CASE("http1 client: request target, authority and Connection edge cases", "[http1]") {
  auto encode = [](const RequestHeaders& h, bool end) {
    ClientRec rec;
    ClientCodec codec(rec);
    Buffer out;
    codec.encodeHeaders(h, end, out);
    return std::make_pair(out.toString(), codec.keepAlive());
  };
  RequestHeaders odd = request("GET", std::string("/\x01" "a b\x7f\xc3\xa9/") + '\0' + "end");
  odd.authority = std::string("u p\tx\x01:8") + '\0';
  CHECK(encode(odd, true).first == "GET /%01a%20b%7F%C3%A9/%00end HTTP/1.1\r\nhost: upx:8\r\n\r\n");
  RequestHeaders up = request("GET", "/ws");
  up.headers.add("connection", "keep-alive");
  up.headers.add("connection", "Upgrade");
  up.headers.add("upgrade", "websocket");
  // An upgrade request's body is raw bytes: no framing header is added.
  CHECK(encode(up, false).first ==
        "GET /ws HTTP/1.1\r\nhost: up\r\nconnection: keep-alive\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n");
  RequestHeaders two = request("POST", "/p");
  two.headers.add("content-length", "3");
  two.headers.add("content-length", "3");
  CHECK(encode(two, false).first == "POST /p HTTP/1.1\r\nhost: up\r\ntransfer-encoding: chunked\r\n\r\n");
}

// The request head is written straight into the output buffer's tail when it fits in a slice,
// through a scratch string when not; a target that is all escapes (3 bytes for 1) and a head
// larger than a slice come out whole.
TEST_CASE("http1 client: heads after queued bytes and larger than a slice", "[http1]") {
  auto encode = [](const RequestHeaders& h, size_t queued) {
    ClientRec rec;
    ClientCodec codec(rec);
    Buffer out;
    out.add(std::string(queued, 'q'));
    codec.encodeHeaders(h, true, out);
    return out.toString().substr(queued);
  };
  for (size_t n : {size_t{10}, size_t{5000}, size_t{6000}}) {
    RequestHeaders h = request("GET", "/" + std::string(n, ' '));
    std::string escaped;
    for (size_t k = 0; k < n; ++k) escaped += "%20";
    for (size_t queued : {size_t{0}, size_t{Buffer::kSliceSize - 50}}) {
      INFO("target " << n << ", queued " << queued);
      CHECK(encode(h, queued) == "GET /" + escaped + " HTTP/1.1\r\nhost: up\r\n\r\n");
    }
  }
  RequestHeaders big = request("GET", "/b");
  std::string lines;
  for (int k = 0; k < 20; ++k) {
    const std::string v(1000, 'x');
    big.headers.add("x-" + std::to_string(k), v);
    lines += "x-" + std::to_string(k) + ": " + v + "\r\n";
  }
  CHECK(encode(big, 7) == "GET /b HTTP/1.1\r\nhost: up\r\n" + lines + "\r\n");
}

// Fields the HTTP/1 parser checked carry a mark, and the encoder writes them without checking
// them again; any change through the map clears the mark, so a field a filter breaks (CR, LF,
// a bad name) is still dropped when the head is written.
TEST_CASE("http1: parsed fields are marked checked; a change clears the mark and is checked again",
          "[http1]") {
  ServerRec srv;
  ServerCodec server(srv);
  Buffer in;
  in.add("GET /p HTTP/1.1\r\nHost: up\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\nX-D: 4\r\n\r\n");
  server.dispatch(in);
  REQUIRE(srv.last != nullptr);
  RequestHeaders& h = *srv.last;
  REQUIRE(h.headers.size() == 4);
  for (const auto& e : h.headers.entries()) CHECK(e.checked);
  HeaderMap copy;  // a copy keeps the marks of the bytes it copies
  copy = h.headers;
  for (const auto& e : copy.entries()) CHECK(e.checked);

  h.headers.mutableEntry(0).value.append("\r\nset-cookie: evil");  // through one entry
  h.headers.set("x-b", "two\nlines");                                // through set()
  h.headers.add("x-new", "ok");                                      // a new entry
  CHECK_FALSE(h.headers.entries()[0].checked);
  CHECK_FALSE(h.headers.entries()[1].checked);
  CHECK(h.headers.entries()[2].checked);
  CHECK_FALSE(h.headers.entries()[4].checked);

  ClientRec rec;
  ClientCodec client(rec);
  Buffer out;
  client.encodeHeaders(h, true, out);
  CHECK(out.toString() == "GET /p HTTP/1.1\r\nhost: up\r\nx-c: 3\r\nx-d: 4\r\nx-new: ok\r\n\r\n");

  // Every entry at once: a name made invalid is dropped too.
  for (auto& e : h.headers.mutableEntries())
    if (e.name == "x-c") e.name = "x c";
  for (const auto& e : h.headers.entries()) CHECK_FALSE(e.checked);
  Buffer out2;
  ClientCodec client2(rec);
  client2.encodeHeaders(h, true, out2);
  CHECK(out2.toString() == "GET /p HTTP/1.1\r\nhost: up\r\nx-d: 4\r\nx-new: ok\r\n\r\n");

  // A spare entry the map reuses starts without a mark.
  h.headers.clear();
  h.headers.add("x-z", "z");
  CHECK_FALSE(h.headers.entries()[0].checked);
}

TEST_CASE("http1 client: responses at every split", "[http1]") {
  SECTION("content-length") {
    checkClientEverySplit({request("GET")}, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
                          {"H 200 OK content-length=5 x-a=b", "D hello END"});
    CHECK(runClient({request("GET")}, {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"}).keep_alive);
  }
  SECTION("chunked with trailers") {
    checkClientEverySplit({request("GET")},
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5;x=y\r\npedia\r\n"
                          "0\r\nGrpc-Status: 0\r\n\r\n",
                          {"H 200 OK transfer-encoding=chunked", "D wikipedia", "T  grpc-status=0"});
  }
  SECTION("responses in recycled heads see nothing of the earlier ones") {
    const std::string long_value(40, 'a');
    checkClientEverySplit({request("GET"), request("GET"), request("GET")},
                          "HTTP/1.1 201 A Reason Longer Than Fifteen\r\nX-Only-In-The-First: " + long_value +
                              "\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
                              "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
                              "HTTP/1.1 204 No Content\r\n\r\n",
                          {"H 201 A Reason Longer Than Fifteen x-only-in-the-first=" + long_value +
                               " transfer-encoding=chunked",
                           "D abc", "T  x-trailer=t", "H 200 OK content-length=2", "D hi END",
                           "H 204 No Content END"});
  }
  SECTION("close-delimited, completed by EOF") {
    checkClientEverySplit({request("GET")}, "HTTP/1.1 200 OK\r\n\r\nuntil the end",
                          {"H 200 OK", "D until the end END"}, true);
    ClientRun r = runClient({request("GET")}, {"HTTP/1.1 200 OK\r\n\r\nuntil"}, true);
    CHECK_FALSE(r.keep_alive);
    ClientRun head_only = runClient({request("GET")}, {"HTTP/1.1 200 OK\r\n\r\n"}, true);
    CHECK(head_only.events == std::vector<std::string>{"H 200 OK", "D  END"});
  }
  SECTION("HEAD response has no body even with content-length") {
    checkClientEverySplit({request("HEAD"), request("GET")},
                          "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
                          {"H 200 OK content-length=10 END", "H 204 No Content END"});
  }
  SECTION("204 and 304 ignore content-length") {
    checkClientEverySplit({request("GET"), request("GET")},
                          "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n"
                          "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
                          {"H 304 Not Modified content-length=3 END", "H 200 OK content-length=3", "D abc END"});
  }
  SECTION("1xx interim responses, then the final one") {
    checkClientEverySplit({request("POST")},
                          "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                          "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
                          {"I 100", "I 103 link=</a>", "H 201 Created content-length=2", "D ok END"});
  }
  SECTION("101 upgrade: tunnel bytes stay in the buffer") {
    RequestHeaders ws = request("GET", "/ws");
    ws.headers.add("connection", "upgrade");
    ws.headers.add("upgrade", "websocket");
    checkClientEverySplit({ws}, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x01x",
                          {"H 101 Switching Protocols upgrade=websocket connection=Upgrade"});
    ClientRun r = runClient({ws}, {"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x01x"});
    CHECK(r.upgraded);
    CHECK(r.rest == "\x81\x01x");
    // 101 without an upgrade request is malformed.
    CHECK(runClient({request("GET")}, {"HTTP/1.1 101 Switching Protocols\r\n\r\n"}).events.back() == "E 502");
  }
  SECTION("CONNECT 200 is a tunnel") {
    RequestHeaders c = request("CONNECT", "h:1");
    ClientRun r = runClient({c}, {"HTTP/1.1 200 Connection Established\r\n\r\nRAW"});
    CHECK(r.events == std::vector<std::string>{"H 200 Connection Established"});
    CHECK(r.upgraded);
    CHECK(r.rest == "RAW");
  }
  SECTION("two responses in sequence on a kept-alive connection") {
    ClientRec rec;
    ClientCodec codec(rec);
    Buffer out, in;
    codec.encodeHeaders(request("GET", "/1"), true, out);
    CHECK_FALSE(codec.idle());
    in.add("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na");
    codec.dispatch(in);
    CHECK(codec.idle());
    CHECK(codec.keepAlive());
    codec.encodeHeaders(request("GET", "/2"), true, out);
    CHECK_FALSE(codec.keepAlive());
    in.add("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nb");
    codec.dispatch(in);
    CHECK(normalize(rec.evs) == std::vector<std::string>{"H 200 OK content-length=1", "D a END",
                                                        "H 200 OK content-length=1 connection=close", "D b END"});
    CHECK(codec.idle());
    CHECK_FALSE(codec.keepAlive());
  }
  SECTION("HTTP/1.0 response is not reused; unsent request body blocks reuse") {
    CHECK_FALSE(runClient({request("GET")}, {"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\na"}).keep_alive);
    ClientRec rec;
    ClientCodec codec(rec);
    Buffer out, in;
    codec.encodeHeaders(request("POST"), false, out);
    in.add("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n");
    codec.dispatch(in);
    CHECK(codec.idle());
    CHECK_FALSE(codec.keepAlive());
  }
}

TEST_CASE("http1 client: malformed responses", "[http1]") {
  const std::vector<std::string> bad = {
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 099 X\r\n\r\n",
      "HTTP/1.1 600 X\r\nContent-Length: 0\r\n\r\n",
      "HTTP/2 200 OK\r\n\r\n",
      "HTTP/1.1  200 OK\r\n\r\n",
      "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx",
      "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX-A: \x01\r\n\r\n",
      "HTTP/1.1 200 O\x01K\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "garbage\r\n\r\n",
  };
  for (const auto& msg : bad) {
    INFO(msg);
    for (const auto& parts : splits(msg)) {
      ClientRun r = runClient({request("GET")}, parts);
      REQUIRE(r.events.back() == "E 502");
      REQUIRE_FALSE(r.keep_alive);
    }
  }
  // A response with no request outstanding.
  CHECK(runClient({}, {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"}).events ==
        std::vector<std::string>{"E 502"});
  // Too large a head.
  CHECK(runClient({request("GET")}, {"HTTP/1.1 200 OK\r\nX: " + std::string(70000, 'a') + "\r\n\r\n"})
            .events.back() == "E 502");
}

TEST_CASE("http1 client: EOF", "[http1]") {
  CHECK(runClient({request("GET")}, {"HTTP/1.1 200 OK\r\nContent-Le"}, true).events ==
        std::vector<std::string>{"E 502"});
  CHECK(runClient({request("GET")}, {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"}, true).events ==
        std::vector<std::string>{"H 200 OK content-length=5", "D ab", "E 502"});
  CHECK(runClient({request("GET")}, {}, true).events.empty());  // outstanding, nothing received
  CHECK(runClient({}, {}, true).events.empty());
}

TEST_CASE("http1 client and server round trip", "[http1]") {
  ClientRec crec;
  ClientCodec client(crec);
  ServerRec srec;
  ServerCodec server(srec);
  Buffer wire;
  RequestHeaders req = request("POST", "/echo");
  req.headers.add("x-id", "7");
  client.encodeHeaders(req, false, wire);
  Buffer body;
  body.add("ping");
  client.encodeData(body, true, wire);
  server.dispatch(wire);
  REQUIRE(normalize(srec.evs) ==
          std::vector<std::string>{"H POST /echo @up 1.1 transfer-encoding=chunked x-id=7", "D ping END"});
  REQUIRE(server.paused());
  ResponseHeaders resp;
  resp.headers.add("x-r", "1");
  server.encodeHeaders(resp, false, wire);
  body.add("pong");
  server.encodeData(body, false, wire);
  HeaderMap t;
  t.add("x-t", "2");
  server.encodeTrailers(t, wire);
  client.dispatch(wire);
  CHECK(normalize(crec.evs) ==
        std::vector<std::string>{"H 200 OK transfer-encoding=chunked x-r=1", "D pong", "T  x-t=2"});
  CHECK(client.keepAlive());
  CHECK_FALSE(server.responseNeedsClose());
}


// As for requests (http1_codec_test.cc): the byte rules of response field names and values
// are llhttp's (strict mode), checked here for every byte at the start, middle and end of a
// name or value, in the head and in trailers, whole and one byte at a time: refused ones end
// in a protocol error (502) and the connection is not reused.
TEST_CASE("http1 client: field bytes in the head and in trailers are refused exactly as RFC 9110 says",
          "[http1]") {
  std::string wrong;
  for (const auto& c : fieldByteCases()) {
    const std::string head = "HTTP/1.1 200 OK\r\n" + c.line + "\r\nContent-Length: 0\r\n\r\n";
    const std::string trailers = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n" + c.line + "\r\n\r\n";
    for (const auto& msg : {head, trailers}) {
      std::vector<std::string> bytes;
      for (char ch : msg) bytes.emplace_back(1, ch);
      for (const auto& run : {runClient({request("GET")}, {msg}), runClient({request("GET")}, bytes)}) {
        const bool failed = !run.events.empty() && run.events.back() == "E 502";
        if (failed == c.allowed || (failed && run.keep_alive))
          wrong += std::string(&msg == &head ? "head " : "trailer ") + c.what + "; ";
      }
    }
  }
  INFO(wrong.substr(0, 3000));
  CHECK(wrong.empty());
}
