// HTTP/1 server codec tests: every accepted message is also fed split at every byte offset and
// byte by byte and must give the same callback sequence; every rejected one must fail the same
// way at every split, without any head having been delivered. Client side:
// http1_client_codec_test.cc.
#include "core/http/http1/codec.h"
#include "core/http/http1/connection.h"
#include "core/http/http1/crlf_scan.h"
#include "core/http/http1/field_chars.h"

#include <sys/uio.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/unit/core/http/http1_test_util.h"

using ferry::core::Buffer;
using ferry::core::http::HeaderMap;
using ferry::core::http::RequestHeaders;
using ferry::core::http::RequestHeadersPtr;
using ferry::core::http::ResponseHeaders;
using ferry::core::http::ResponseHeadersPtr;
using namespace ferry::core::http::http1;
using namespace ferry::test::http1;

namespace {

struct ServerRun {
  std::vector<std::string> events;
  std::string rest;
  int heads = 0;
  int error = 0;
  std::string detail;
  bool upgraded = false;
};

// Feeds the chunks in order; after each complete request it records "C" and resumes (the owner
// would answer first). The bytes left in the input (tunnel data) are returned in rest.
ServerRun runServer(const std::vector<std::string>& chunks, CodecLimits limits = {},
                    bool eof = false) {
  ServerRec rec;
  ServerCodec codec(rec, limits);
  Buffer in;
  for (const auto& c : chunks) {
    in.add(c);
    for (;;) {
      codec.dispatch(in);
      if (!codec.paused()) break;
      rec.evs.push_back({'C', codec.keepAlive() ? "ka" : "close"});
      codec.resume();
    }
  }
  if (eof) codec.onEof();
  return ServerRun{normalize(rec.evs), in.toString(), rec.heads, rec.error, rec.detail,
                   codec.upgraded()};
}


void checkAcceptedEverySplit(const std::string& msg, const std::vector<std::string>& expected,
                             const std::string& rest = "") {
  ServerRun whole = runServer({msg});
  CHECK(whole.error == 0);
  CHECK(whole.detail.empty());
  REQUIRE(whole.events == expected);
  CHECK(whole.rest == rest);
  for (const auto& parts : splits(msg)) {
    ServerRun r = runServer(parts);
    INFO("split: first part " << parts[0].size() << " bytes of " << msg.size());
    REQUIRE(r.events == whole.events);
    REQUIRE(r.rest == whole.rest);
  }
}

void checkRejectedEverySplit(const std::string& msg, int status, CodecLimits limits = {}) {
  ServerRun whole = runServer({msg}, limits);
  INFO("message: " << msg);
  REQUIRE(whole.error == status);
  CHECK(whole.heads == 0);
  for (const auto& parts : splits(msg)) {
    ServerRun r = runServer(parts, limits);
    INFO("split: first part " << parts[0].size());
    REQUIRE(r.error == status);
    REQUIRE(r.heads == 0);
  }
}

}  // namespace

TEST_CASE("http1 server: accepted requests give the same events at every split", "[http1]") {
  SECTION("simple GET") {
    checkAcceptedEverySplit("GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
                            {"H GET /a?b=c @example.com 1.1 accept=*/* END", "C ka"});
  }
  SECTION("header values: OWS trimmed, empty values, obs-text, case of names") {
    checkAcceptedEverySplit(
        "GET / HTTP/1.1\r\nHOST: h:8080\r\nX-A:   v  w \t\r\nX-Empty:\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
        {"H GET / @h:8080 1.1 x-a=v  w x-empty= x-obs=caf\xc3\xa9 END", "C ka"});
  }
  SECTION("Host anywhere in the head: the authority, never a field; the others keep their order") {
    // The request parser takes Host out when its line ends (first, middle, last, with OWS).
    checkAcceptedEverySplit("GET / HTTP/1.1\r\nA: 1\r\nHost: mid.example \t\r\nB: 2\r\nC: 3\r\n\r\n",
                            {"H GET / @mid.example 1.1 a=1 b=2 c=3 END", "C ka"});
    checkAcceptedEverySplit("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nhost: last:81\r\n\r\n",
                            {"H GET / @last:81 1.1 a=1 b=2 END", "C ka"});
    checkAcceptedEverySplit("GET / HTTP/1.0\r\nA: 1\r\n\r\n", {"H GET / @ 1.0 a=1 END", "C close"});
    // Trailers are not the head: a Host trailer stays a trailer, and a forbidden one.
    ServerRun t =
        runServer({"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nHost: t\r\n\r\n"});
    CHECK(t.error == 400);
    CHECK(t.detail == "forbidden trailer field");
  }
  SECTION("content-length body") {
    checkAcceptedEverySplit("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world",
                            {"H POST /p @h 1.1 content-length=11", "D hello world END", "C ka"});
  }
  SECTION("chunked with extensions and trailers") {
    checkAcceptedEverySplit(
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
        "5;ext=1\r\nhello\r\n6;a;b\r\n world\r\nA;q=\"x y\"\r\n0123456789\r\n0\r\n"
        "X-Checksum: abc\r\nX-Other: 1\r\n\r\n",
        {"H POST / @h 1.1 transfer-encoding=Chunked", "D hello world0123456789",
         "T  x-checksum=abc x-other=1", "C ka"});
  }
  SECTION("chunked without trailers ends with data end_stream") {
    checkAcceptedEverySplit(
        "PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        {"H PUT /u @h 1.1 transfer-encoding=chunked", "D abc END", "C ka"});
  }
  SECTION("pipelined requests are delivered one at a time") {
    checkAcceptedEverySplit(
        "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
        "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
        "\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n",
        {"H GET /1 @h 1.1 END", "C ka", "H POST /2 @h 1.1 content-length=3", "D abc END", "C ka",
         "H GET /3 @h 1.1 END", "C ka"});
  }
  SECTION("pipelined requests in recycled heads see nothing of the earlier ones") {
    // Heads come from a per-thread pool and the parser fills them in place: each request must
    // carry only its own method, target, authority, fields and trailers.
    const std::string long_value(40, 'a');
    checkAcceptedEverySplit(
        "POST /first/a/long/path/on/the/heap?query=string HTTP/1.1\r\nHost: first.example.com\r\n"
        "X-Only-In-The-First: " + long_value + "\r\nCookie: a=1; b=2\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n0\r\nX-Trailer-Only-In-The-First: t\r\n\r\n"
        "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
        "GET /3 HTTP/1.1\r\nHost: h3\r\nX-Three: 3\r\n\r\n"
        "PUT /4 HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nz",
        {"H POST /first/a/long/path/on/the/heap?query=string @first.example.com 1.1 x-only-in-the-first=" +
             long_value + " cookie=a=1; b=2 transfer-encoding=chunked",
         "D abc", "T  x-trailer-only-in-the-first=t", "C ka", "H GET /2 @h 1.1 END", "C ka",
         "H GET /3 @h3 1.1 x-three=3 END", "C ka", "H PUT /4 @h 1.1 content-length=1", "D z END", "C ka"});
  }
  SECTION("HTTP/1.0 keep-alive, then HTTP/1.0 close ends the connection") {
    checkAcceptedEverySplit(
        "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n"
        "GET /c HTTP/1.1\r\nHost: h\r\n\r\n",
        {"H GET /a @ 1.0 connection=keep-alive END", "C ka", "H GET /b @ 1.0 END", "C close"});
  }
  SECTION("Connection: close on HTTP/1.1: later bytes are discarded") {
    checkAcceptedEverySplit(
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGARBAGE",
        {"H GET / @h 1.1 connection=close END", "C close"});
  }
  SECTION("absolute-form target: path and authority from the URI") {
    checkAcceptedEverySplit("GET http://Example.com:81/x/y?z HTTP/1.1\r\nHost: other\r\n\r\n",
                            {"H GET /x/y?z @Example.com:81 1.1 END", "C ka"});
    checkAcceptedEverySplit("GET HTTPS://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n",
                            {"H GET /?q=1 @h 1.1 END", "C ka"});
  }
  SECTION("OPTIONS *") {
    checkAcceptedEverySplit("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
                            {"H OPTIONS * @h 1.1 END", "C ka"});
  }
  SECTION("leading empty lines before the request line are ignored") {
    checkAcceptedEverySplit("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
                            {"H GET / @h 1.1 END", "C ka"});
  }
  SECTION("websocket upgrade: head, then the tunnel bytes stay in the buffer") {
    checkAcceptedEverySplit(
        "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        "\x81\x05hello GET / HTTP/1.1\r\n\r\n",
        {"H GET /ws @h 1.1 connection=Upgrade upgrade=websocket"},
        "\x81\x05hello GET / HTTP/1.1\r\n\r\n");
  }
  SECTION("CONNECT: authority-form, tunnel bytes left") {
    checkAcceptedEverySplit("CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\nTUNNEL",
                            {"H CONNECT db.internal:5432 @db.internal:5432 1.1"}, "TUNNEL");
  }
  SECTION("an Upgrade request with a body is a plain request") {
    checkAcceptedEverySplit(
        "POST / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: foo\r\nContent-Length: 2\r\n\r\nhi",
        {"H POST / @h 1.1 connection=upgrade upgrade=foo content-length=2", "D hi END", "C ka"});
  }
  SECTION("Upgrade: h2c is not an upgrade: stripped") {
    checkAcceptedEverySplit(
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        "HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        {"H GET / @h 1.1 connection=Upgrade, HTTP2-Settings END", "C ka"});
  }
  SECTION("Expect: 100-continue: the head comes before the body") {
    checkAcceptedEverySplit(
        "PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nDATA",
        {"H PUT /f @h 1.1 expect=100-continue content-length=4", "D DATA END", "C ka"});
  }
  SECTION("other names with underscores pass") {
    checkAcceptedEverySplit("GET / HTTP/1.1\r\nHost: h\r\nX_Custom: 1\r\n\r\n",
                            {"H GET / @h 1.1 x_custom=1 END", "C ka"});
  }
  SECTION("IPv6 host and empty Host") {
    checkAcceptedEverySplit("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", {"H GET / @[::1]:8080 1.1 END", "C ka"});
    checkAcceptedEverySplit("GET / HTTP/1.1\r\nHost:\r\n\r\n", {"H GET / @ 1.1 END", "C ka"});
  }
}

TEST_CASE("http1 server: a body spanning many slices is delivered intact", "[http1]") {
  std::string body(3 * Buffer::kSliceSize + 1234, 'x');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  ServerRun r = runServer({"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(body.size()) +
                           "\r\n\r\n" + body + "GET / HTTP/1.1\r\nHost: h\r\n\r\n"});
  REQUIRE(r.error == 0);
  REQUIRE(r.events.size() == 5);
  CHECK(r.events[1] == "D " + body + " END");
  CHECK(r.events[3] == "H GET / @h 1.1 END");
}

TEST_CASE("http1 server: smuggling and malformed requests are rejected before any head", "[http1]") {
  struct Case {
    const char* name;
    std::string msg;
  };
  const std::string ok = "GET / HTTP/1.1\r\nHost: h\r\n";
  const std::vector<Case> cases = {
      {"CL + TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"TE + CL", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"},
      {"differing CL", ok + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
      {"identical CL twice (rejected, not merged)", ok + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"},
      {"CL list", ok + "Content-Length: 3, 3\r\n\r\nabc"},
      {"CL not a number", ok + "Content-Length: abc\r\n\r\n"},
      {"CL negative", ok + "Content-Length: -1\r\n\r\n"},
      {"CL plus sign", ok + "Content-Length: +3\r\n\r\nabc"},
      {"CL overflow", ok + "Content-Length: 99999999999999999999999\r\n\r\n"},
      {"TE gzip", ok + "Transfer-Encoding: gzip\r\n\r\n"},
      {"TE gzip, chunked", ok + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
      {"TE chunked, gzip", ok + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"},
      {"TE twice", ok + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"TE identity", ok + "Transfer-Encoding: identity\r\n\r\n"},
      {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"obs-fold SP", ok + "X-A: a\r\n b\r\n\r\n"},
      {"obs-fold HTAB", ok + "X-A: a\r\n\tb\r\n\r\n"},
      {"obs-fold after empty value", ok + "X-A:\r\n b\r\n\r\n"},
      {"obs-fold on Transfer-Encoding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"},
      {"SP before colon", ok + "Content-Length : 3\r\n\r\nabc"},
      {"HTAB before colon", ok + "X-A\t: b\r\n\r\n"},
      {"line starting with SP after request line", "GET / HTTP/1.1\r\n Host: h\r\n\r\n"},
      {"NUL in value", ok + std::string("X-A: a\0b\r\n\r\n", 12)},
      {"CTL in value", ok + "X-A: a\x01" "b\r\n\r\n"},
      {"DEL in value", ok + "X-A: a\x7f" "b\r\n\r\n"},
      {"CR in value", ok + "X-A: a\rb\r\n\r\n"},
      {"bad char in name", ok + "X@A: b\r\n\r\n"},
      {"space in name", ok + "X A: b\r\n\r\n"},
      {"empty name", ok + ": b\r\n\r\n"},
      {"unknown method", "FOO / HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"lower-case method", "get / HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"relative target", "GET a HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"fragment in target", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"backslash in target", "GET /a\\..\\b HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"non-ASCII in target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"userinfo in absolute-form", "GET http://u:p@h/ HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"other scheme", "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"empty authority", "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"asterisk for GET", "GET * HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"CONNECT origin-form", "CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"CONNECT without port", "CONNECT h HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"CONNECT with a body", "CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nContent-Length: 2\r\n\r\nhi"},
      {"double SP after method", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"double SP before version", "GET /  HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"SP after version", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n"},
      {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n"},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n"},
      {"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n"},
      {"RTSP", "GET / RTSP/1.0\r\n\r\n"},
      {"lower-case protocol", "GET / http/1.1\r\nHost: h\r\n\r\n"},
      {"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
      {"bare LF after request line", "GET / HTTP/1.1\nHost: h\r\n\r\n"},
      {"bare LF after header", ok + "X-A: b\n\r\n"},
      {"bare LF ending the head", ok + "\n"},
      {"bare CR in request line", "GET /\r HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"bare LF before request line", "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"missing Host on HTTP/1.1", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n"},
      {"two Host headers", ok + "Host: h\r\n\r\n"},
      {"two Host headers on HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"},
      {"invalid Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
      {"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@h\r\n\r\n"},
      {"Host with bad port", "GET / HTTP/1.1\r\nHost: h:8x\r\n\r\n"},
      {"underscore TE look-alike", ok + "Transfer_Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"underscore CL look-alike", ok + "content_length: 3\r\n\r\nabc"},
      {"chunked body: but invalid", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX: \x02\r\n\r\n"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    checkRejectedEverySplit(c.msg, 400);
  }
}

TEST_CASE("http1 server: errors inside a chunked body come after the head", "[http1]") {
  const std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::vector<std::string> bodies = {
      "fffffffffffffffff\r\n",           // chunk-size overflow
      "zz\r\nab\r\n0\r\n\r\n",            // not hex
      "5\r\nhelloXX0\r\n\r\n",            // no CRLF after data
      "5\nhello\r\n0\r\n\r\n",            // bare LF after size
      "5\r\nhello\r\n0\r\n\n",            // bare LF ending the message
      "5\r\nhello\r\n0\r\nA: b\n\r\n",    // bare LF in trailers
      "5\r\nhello\r\n0\r\nA: b\r\n c\r\n\r\n",  // obs-fold in trailers
      "5\r\nhello\r\n 0\r\n\r\n",         // whitespace before chunk size
      "5 \r\nhello\r\n0\r\n\r\n",         // whitespace after chunk size
      "5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n",  // framing field as trailer
      "5;a=b;c=d\r\nhello\r\n0\r\n\r\n",  // llhttp 8.1 limit: extension after a valued one
  };
  for (const auto& b : bodies) {
    INFO(b);
    const std::string msg = head + b;
    ServerRun whole = runServer({msg});
    REQUIRE(whole.error == 400);
    CHECK(whole.heads == 1);
    for (const auto& parts : splits(msg)) {
      ServerRun r = runServer(parts);
      REQUIRE(r.events == whole.events);  // the valid body bytes before the error, then E 400
      REQUIRE(r.events.back() == "E 400");
    }
  }
}

TEST_CASE("http1 server: 431 for too large or too many headers", "[http1]") {
  CodecLimits small;
  small.max_header_bytes = 256;
  small.max_headers = 5;
  const std::string big(300, 'v');
  checkRejectedEverySplit("GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + big + "\r\n\r\n", 431, small);
  checkRejectedEverySplit("GET /" + big + " HTTP/1.1\r\nHost: h\r\n\r\n", 431, small);
  checkRejectedEverySplit("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", 431,
                          small);
  checkRejectedEverySplit(std::string(300, '\n').replace(0, 300, 150, '\r').append("GET / HTTP/1.1\r\n"),
                          400, small);  // lone CRs: bare CR (400) before the limit
  std::string crlfs;
  for (int i = 0; i < 150; ++i) crlfs += "\r\n";
  checkRejectedEverySplit(crlfs + "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 431, small);
  // The earliest violation decides, however the input is split: a bare LF before the field
  // that is one too many is a 400.
  CodecLimits one;
  one.max_headers = 1;
  checkRejectedEverySplit("GET / HTTP/1.1\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", 400, one);
  checkRejectedEverySplit("GET / HTTP/1.1\r\nHost: h\nA: 1\r\nB: 2\r\n\r\n", 400, one);
  checkRejectedEverySplit("GET / HTTP/1.1\r\nHost: h\r\nA: 1\nB: 2\r\n\r\n", 431, one);  // the extra field comes first
  // Host counts toward max_headers wherever it sits, although it never enters the map.
  checkRejectedEverySplit("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nHost: h\r\n\r\n", 431,
                          small);
  CHECK(runServer({"GET / HTTP/1.1\r\nA: 1\r\nHost: h\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"}, small).error == 0);
  CHECK(runServer({"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"}, small).error == 0);
  // Exactly at the limit is fine.
  std::string line = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
  line += std::string(256 - line.size() - 4, 'a') + "\r\n\r\n";
  REQUIRE(line.size() == 256);
  CHECK(runServer({line}, small).error == 0);
  CHECK(runServer({line.substr(0, line.size() - 4) + "a\r\n\r\n"}, small).error == 431);

  // Defaults: 60 KiB and 100 headers.
  CHECK(runServer({"GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(61 * 1024, 'a') + "\r\n\r\n"}).error == 431);
  CHECK(runServer({"GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(50 * 1024, 'a') + "\r\n\r\n"}).error == 0);
  std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 99; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  CHECK(runServer({many + "\r\n"}).error == 0);  // 100 with Host
  CHECK(runServer({many + "X-Last: v\r\n\r\n"}).error == 431);

  SECTION("trailers have the same limits, after the head") {
    std::string msg = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n";
    for (int i = 0; i < 6; ++i) msg += "T" + std::to_string(i) + ": v\r\n";
    ServerRun r = runServer({msg + "\r\n"}, small);
    CHECK(r.error == 431);
    CHECK(r.heads == 1);
    r = runServer({"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " + big + "\r\n\r\n"},
                  small);
    CHECK(r.error == 431);
  }
}

TEST_CASE("http1 server: EOF", "[http1]") {
  CHECK(runServer({"GET / HTTP/1.1\r\nHost: h\r\n\r\n"}, {}, true).error == 0);
  CHECK(runServer({""}, {}, true).error == 0);
  CHECK(runServer({"GET / HTTP/1.1\r\nHo"}, {}, true).error == 400);
  ServerRun r = runServer({"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab"}, {}, true);
  CHECK(r.error == 400);
  CHECK(r.events == std::vector<std::string>{"H POST / @h 1.1 content-length=5", "D ab", "E 400"});
}

TEST_CASE("http1 server: dispatch stops while paused, resume goes on", "[http1]") {
  ServerRec rec;
  ServerCodec codec(rec);
  Buffer in;
  in.add("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  codec.dispatch(in);
  REQUIRE(codec.paused());
  REQUIRE(rec.heads == 1);
  CHECK(in.toString() == "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  codec.dispatch(in);
  CHECK(rec.heads == 1);
  codec.resume();
  codec.dispatch(in);
  CHECK(rec.heads == 2);
  CHECK(in.empty());
}

TEST_CASE("http1 server: an owner may answer and resume() from inside onRequestHeaders", "[http1]") {
  struct Sync : ServerRec {
    ServerCodec* codec = nullptr;
    Buffer out;
    void onRequestHeaders(RequestHeadersPtr h, bool end) override {
      ServerRec::onRequestHeaders(std::move(h), end);
      ResponseHeaders r;
      r.status = 204;
      codec->encodeHeaders(r, true, out);
      codec->resume();
    }
  } rec;
  ServerCodec codec(rec);
  rec.codec = &codec;
  Buffer in;
  in.add("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
  codec.dispatch(in);
  CHECK(rec.heads == 3);
  CHECK(in.empty());
  CHECK_FALSE(codec.paused());
  CHECK(rec.out.toString() == "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
}

namespace {

// A codec that has parsed `request` (complete, paused) for response-encoding tests.
struct Responder {
  ServerRec rec;
  ServerCodec codec{rec};
  explicit Responder(const std::string& request) {
    Buffer in;
    in.add(request);
    codec.dispatch(in);
  }
  std::string head(int status, std::vector<std::pair<std::string, std::string>> hs, bool end) {
    ResponseHeaders h;
    h.status = status;
    for (auto& [n, v] : hs) h.headers.add(n, v);
    Buffer out;
    codec.encodeHeaders(h, end, out);
    return out.toString();
  }
  std::string data(const std::string& d, bool end) {
    Buffer b, out;
    b.add(d);
    codec.encodeData(b, end, out);
    CHECK(b.empty());
    return out.toString();
  }
};

const char* kGet11 = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";

}  // namespace

// A head is written straight into the tail of the output buffer when it fits in one slice
// (after bytes already there, in a fresh slice when the tail is short) and through a scratch
// string when it is larger than a slice; the bytes are the same every way.
TEST_CASE("http1 server: heads after queued bytes, past a slice boundary and larger than a slice",
          "[http1]") {
  const std::string value(300, 'v');
  const std::string expect = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: " + value + "\r\n\r\n";
  for (size_t queued : {size_t{0}, size_t{5}, size_t{Buffer::kSliceSize - 100}, size_t{Buffer::kSliceSize}}) {
    Responder r(kGet11);
    ResponseHeaders h;
    h.status = 200;
    h.headers.add("content-length", "2");
    h.headers.add("x-a", value);
    Buffer out;
    const std::string before(queued, 'q');
    out.add(before);
    r.codec.encodeHeaders(h, false, out);
    INFO("queued " << queued);
    CHECK(out.toString() == before + expect);
  }
  // Larger than a slice: 40 fields of 1 KiB.
  Responder r(kGet11);
  ResponseHeaders big;
  big.status = 200;
  big.reason = "Fine";
  std::string lines;
  for (int k = 0; k < 40; ++k) {
    const std::string n = "x-" + std::to_string(k);
    const std::string v(1024, static_cast<char>('a' + k % 26));
    big.headers.add(n, v);
    lines += n + ": " + v + "\r\n";
  }
  Buffer out;
  out.add("q");
  r.codec.encodeHeaders(big, true, out);
  CHECK(out.toString() == "qHTTP/1.1 200 Fine\r\ncontent-length: 0\r\n" + lines + "\r\n");
  // A status of any width is written whole.
  Responder r2(kGet11);
  ResponseHeaders odd;
  odd.status = 2000000000;
  Buffer out2;
  r2.codec.encodeHeaders(odd, true, out2);
  CHECK(out2.toString().rfind("HTTP/1.1 2000000000 Unknown\r\n", 0) == 0);
}

TEST_CASE("http1 server: response framing", "[http1]") {
  SECTION("content-length kept") {
    Responder r(kGet11);
    CHECK(r.head(200, {{"Content-Length", "5"}, {"X-A", "b"}}, false) ==
          "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: b\r\n\r\n");
    CHECK(r.data("hello", true) == "hello");
    CHECK_FALSE(r.codec.responseNeedsClose());
  }
  SECTION("chunked when streaming to HTTP/1.1; empty data writes nothing") {
    Responder r(kGet11);
    CHECK(r.head(404, {}, false) == "HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n");
    CHECK(r.data("hello", false) == "5\r\nhello\r\n");
    CHECK(r.data("", false).empty());
    CHECK(r.data(std::string(26, 'z'), true) == "1a\r\n" + std::string(26, 'z') + "\r\n0\r\n\r\n");
    CHECK_FALSE(r.codec.responseNeedsClose());
  }
  SECTION("end_stream without content-length -> content-length: 0") {
    Responder r(kGet11);
    CHECK(r.head(503, {{"transfer-encoding", "chunked"}, {"connection", "keep-alive"}}, true) ==
          "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
  }
  SECTION("custom reason; invalid reason replaced") {
    Responder r(kGet11);
    ResponseHeaders h;
    h.status = 299;
    h.reason = "Fine Thanks";
    Buffer out;
    r.codec.encodeHeaders(h, true, out);
    CHECK(out.toString() == "HTTP/1.1 299 Fine Thanks\r\ncontent-length: 0\r\n\r\n");
    h.reason = "X\r\nSet-Cookie: evil";
    Buffer out2;
    r.codec.encodeHeaders(h, true, out2);
    CHECK(out2.toString() == "HTTP/1.1 299 Unknown\r\ncontent-length: 0\r\n\r\n");
  }
  SECTION("header values with CR/LF are never written") {
    Responder r(kGet11);
    CHECK(r.head(200, {{"x-evil", "a\r\nset-cookie: x"}, {"bad name", "v"}, {"x-ok", "v"}}, true) ==
          "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-ok: v\r\n\r\n");
  }
  SECTION("HEAD: no body, content-length kept") {
    Responder r("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK(r.head(200, {{"content-length", "1000"}}, false) ==
          "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n");
    CHECK(r.data("ignored", true).empty());
    CHECK_FALSE(r.codec.responseNeedsClose());
  }
  SECTION("204 drops content-length, 304 keeps it, neither has a body") {
    Responder r(kGet11);
    CHECK(r.head(204, {{"content-length", "3"}}, false) == "HTTP/1.1 204 No Content\r\n\r\n");
    CHECK(r.data("abc", true).empty());
    Responder r2(kGet11);
    CHECK(r2.head(304, {{"content-length", "3"}, {"etag", "\"x\""}}, true) ==
          "HTTP/1.1 304 Not Modified\r\ncontent-length: 3\r\netag: \"x\"\r\n\r\n");
  }
  SECTION("HTTP/1.0 keep-alive client") {
    Responder r("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(r.codec.keepAlive());
    CHECK(r.head(200, {{"content-length", "2"}}, false) ==
          "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n");
    CHECK_FALSE(r.codec.responseNeedsClose());
    Responder r2("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(r2.head(200, {}, false) == "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n");  // close-delimited
    CHECK(r2.data("abc", true) == "abc");
    CHECK(r2.codec.responseNeedsClose());
  }
  SECTION("HTTP/1.0 without keep-alive, and Connection: close on HTTP/1.1") {
    Responder r("GET / HTTP/1.0\r\n\r\n");
    CHECK_FALSE(r.codec.keepAlive());
    CHECK(r.codec.responseNeedsClose());
    CHECK(r.head(200, {{"content-length", "0"}}, true) ==
          "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    Responder r2("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    CHECK(r2.head(200, {}, true) == "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    CHECK(r2.codec.responseNeedsClose());
  }
  SECTION("the caller's connection: close forces close") {
    Responder r(kGet11);
    CHECK(r.head(200, {{"Connection", "close"}}, true) ==
          "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    CHECK(r.codec.responseNeedsClose());
    // In a second Connection field, or in a list, as well.
    Responder r2(kGet11);
    CHECK(r2.head(200, {{"connection", "keep-alive"}, {"connection", "x-a, Close"}}, true) ==
          "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    CHECK(r2.codec.responseNeedsClose());
    Responder r3(kGet11);
    CHECK(r3.head(200, {{"connection", "keep-alive"}}, true) == "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    CHECK_FALSE(r3.codec.responseNeedsClose());
  }
  SECTION("two content-length fields are not a length: chunked instead") {
    Responder r(kGet11);
    CHECK(r.head(200, {{"content-length", "3"}, {"content-length", "3"}}, false) ==
          "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
  }
  SECTION("content-length is held to: excess dropped, short body -> close") {
    Responder r(kGet11);
    r.head(200, {{"content-length", "3"}}, false);
    CHECK(r.data("abcdef", false) == "abc");
    CHECK(r.codec.responseNeedsClose());
    Responder r2(kGet11);
    r2.head(200, {{"content-length", "3"}}, false);
    CHECK(r2.data("ab", true) == "ab");
    CHECK(r2.codec.responseNeedsClose());
  }
  SECTION("trailers: chunked only") {
    Responder r(kGet11);
    r.head(200, {}, false);
    r.data("x", false);
    HeaderMap t;
    t.add("grpc-status", "0");
    t.add("content-length", "1");
    Buffer out;
    r.codec.encodeTrailers(t, out);
    CHECK(out.toString() == "0\r\ngrpc-status: 0\r\n\r\n");
    Responder r2(kGet11);
    r2.head(200, {{"content-length", "1"}}, false);
    r2.data("x", false);
    Buffer out2;
    r2.codec.encodeTrailers(t, out2);
    CHECK(out2.empty());
    CHECK_FALSE(r2.codec.responseNeedsClose());
  }
  SECTION("100-continue and interim responses") {
    Responder r("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    Buffer out;
    r.codec.encode100Continue(out);
    CHECK(out.toString() == "HTTP/1.1 100 Continue\r\n\r\n");
    CHECK(r.head(103, {{"link", "</s.css>"}}, false) ==
          std::string("HTTP/1.1 103 ") + ferry::core::http::reasonPhrase(103) + "\r\nlink: </s.css>\r\n\r\n");
    Responder r10("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    Buffer out10;
    r10.codec.encode100Continue(out10);
    CHECK(out10.empty());
  }
  SECTION("101 to an upgrade: tunnel; any other answer closes") {
    const char* ws = "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    Responder r(ws);
    REQUIRE(r.codec.upgraded());
    CHECK(r.head(101, {{"connection", "Upgrade"}, {"upgrade", "websocket"}}, false) ==
          "HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n");
    CHECK(r.data("\x81\x00", false) == "\x81\x00");
    CHECK_FALSE(r.codec.responseNeedsClose());
    Responder r2(ws);
    CHECK(r2.head(403, {}, true) == "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    CHECK(r2.codec.responseNeedsClose());
    Responder r3("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n");
    CHECK(r3.head(200, {{"content-length", "0"}}, false) == "HTTP/1.1 200 OK\r\n\r\n");
    CHECK(r3.data("tls bytes", false) == "tls bytes");
  }
  SECTION("after a protocol error: encode still works and closes") {
    Responder r("GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n");
    REQUIRE(r.rec.error == 400);
    CHECK(r.codec.responseNeedsClose());
    CHECK(r.head(400, {{"content-length", "0"}}, true) ==
          "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
  }
}

TEST_CASE("http1 encodeData moves payload slices without copying", "[http1]") {
  Responder r(kGet11);
  r.head(200, {}, false);
  Buffer data, out;
  data.add(std::string(Buffer::kSliceSize, 'p'));
  iovec before;
  REQUIRE(data.gather(&before, 1) == 1);
  r.codec.encodeData(data, false, out);
  iovec iov[4];
  const size_t n = out.gather(iov, 4);
  bool same_slice = false;
  for (size_t i = 0; i < n; ++i) same_slice |= iov[i].iov_base == before.iov_base;
  CHECK(same_slice);
  CHECK(out.length() == Buffer::kSliceSize + 4 + 2 + 2);
}

// The framing scan finds CR and LF 16 bytes at a time and takes a CRLF followed by an
// ordinary byte in stride: violations must be caught wherever they sit relative to those
// 16-byte steps and to the input's split points.
TEST_CASE("http1 server: the vectorised head scan catches every CR/LF violation at every offset", "[http1]") {
  for (size_t pad = 0; pad < 40; ++pad) {
    const std::string fill(pad, 'a');
    const std::string head = "GET /" + fill + " HTTP/1.1\r\nHost: h\r\nX-Pad: " + fill;
    INFO("pad " << pad);
    checkRejectedEverySplit(head + "\nX: y\r\n\r\n", 400);           // bare LF
    checkRejectedEverySplit(head + "\rX: y\r\n\r\n", 400);            // CR not followed by LF
    checkRejectedEverySplit(head + "\r\n folded\r\n\r\n", 400);       // obs-fold (SP)
    checkRejectedEverySplit(head + "\r\n\tfolded\r\n\r\n", 400);      // obs-fold (HTAB)
    checkRejectedEverySplit(head + "\r\nX: y\r\n\n", 400);            // the head ended by a bare LF
  }
  CHECK(ferry::core::http::http1::detail::findCrOrLf(nullptr, nullptr) == nullptr);
  for (size_t len = 0; len < 48; ++len)
    for (size_t at = 0; at <= len; ++at) {
      std::string s(len, 'x');
      if (at < len) s[at] = (at % 2) ? '\r' : '\n';
      CHECK(ferry::core::http::http1::detail::findCrOrLf(s.data(), s.data() + s.size()) == s.data() + at);
    }
}

// The codec leaves the byte rules of field names and values to llhttp (strict mode) and does
// not check parsed fields a second time: every byte at the start, middle and end of a name
// or value, in the head and in trailers, whole and fed one byte at a time, must be accepted
// or refused (400, no request delivered or no trailers) as RFC 9110 says.
TEST_CASE("http1 server: field bytes in the head and in trailers are refused exactly as RFC 9110 says",
          "[http1]") {
  std::string wrong;
  for (const auto& c : fieldByteCases()) {
    const std::string head = "GET / HTTP/1.1\r\nHost: h\r\n" + c.line + "\r\n\r\n";
    const std::string trailers =
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n" + c.line + "\r\n\r\n";
    std::vector<std::string> bytes;
    for (char ch : head) bytes.emplace_back(1, ch);
    for (const auto& run : {runServer({head}), runServer(bytes)}) {
      const bool ok = run.error == 0 && run.heads == 1;
      if (ok != c.allowed || (!ok && (run.error != 400 || run.heads != 0)))
        wrong += "head " + c.what + " (error " + std::to_string(run.error) + "); ";
    }
    bytes.clear();
    for (char ch : trailers) bytes.emplace_back(1, ch);
    for (const auto& run : {runServer({trailers}), runServer(bytes)}) {
      const bool ok = run.error == 0 && !run.events.empty() && run.events.back() == "C ka";
      if (ok != c.allowed || (!ok && run.error != 400))
        wrong += "trailer " + c.what + " (error " + std::to_string(run.error) + "); ";
    }
  }
  INFO(wrong.substr(0, 3000));
  CHECK(wrong.empty());
}

// stripHopByHop: the common "connection: keep-alive" alone takes a short path; everything
// else the full one. Both must leave exactly the end-to-end fields, in order.
TEST_CASE("http1: stripHopByHop keeps exactly the end-to-end fields", "[http1]") {
  struct Case {
    std::vector<std::pair<std::string, std::string>> in;
    std::string out;  // fmtHeaders of what is left
  };
  const std::vector<Case> cases = {
      {{{"a", "1"}, {"connection", "keep-alive"}, {"b", "2"}}, " a=1 b=2"},
      {{{"connection", "Keep-Alive"}}, ""},
      {{{"a", "1"}, {"connection", "keep-alive"}, {"keep-alive", "timeout=5"}, {"b", "2"}}, " a=1 b=2"},
      {{{"connection", "keep-alive, x-foo"}, {"x-foo", "f"}, {"b", "2"}}, " b=2"},
      {{{"connection", "keep-alive"}, {"connection", "x-foo"}, {"x-foo", "f"}, {"b", "2"}}, " b=2"},
      {{{"connection", "close"}, {"close", "c"}, {"b", "2"}}, " b=2"},
      {{{"connection", "keep-alive"}, {"transfer-encoding", "chunked"}, {"b", "2"}}, " b=2"},
      {{{"connection", "keep-alive"}, {"te", "trailers"}}, " te=trailers"},
      {{{"a", "1"}, {"b", "2"}}, " a=1 b=2"},
  };
  for (const auto& c : cases) {
    HeaderMap h;
    std::string in;
    for (const auto& [n, v] : c.in) {
      h.add(n, v);
      in += " " + n + "=" + v;
    }
    INFO("in:" << in);
    stripHopByHop(h, false);
    CHECK(fmtHeaders(h) == c.out);
  }
}
