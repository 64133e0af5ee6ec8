// The compression filter over loopback: gzip and brotli responses decode (in this binary, with
// zlib and libbrotlidec) to the upstream's exact bytes, a streamed response reaches the client
// chunk by chunk, Accept-Encoding q-values and every skip, Vary and ETag, trailers, HTTP/2
// (curl --compressed), and request decompression with its 413 against bombs and 400 for
// corrupt bodies.
#include <brotli/decode.h>
#include <brotli/encode.h>
#include <zlib.h>

#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>

#include "tests/integration/config_builder.h"
#include "tests/integration/harness.h"
#include "tests/integration/http2_support.h"
#include "tests/integration/http_upstream.h"

namespace ferry::testing {
namespace {

// Inflates a gzip stream. `complete`: it must end properly; otherwise whatever decodes so far.
std::optional<std::string> gunzip(const std::string& z, bool complete = true) {
  z_stream s{};
  if (inflateInit2(&s, 15 + 16) != Z_OK) return std::nullopt;
  std::string out;
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(z.data()));
  s.avail_in = static_cast<uInt>(z.size());
  int rc = Z_OK;
  char buf[16384];
  do {
    s.next_out = reinterpret_cast<Bytef*>(buf);
    s.avail_out = sizeof buf;
    rc = inflate(&s, Z_SYNC_FLUSH);
    out.append(buf, sizeof buf - s.avail_out);
  } while (rc == Z_OK && (s.avail_in > 0 || s.avail_out == 0));
  inflateEnd(&s);
  if (rc == Z_STREAM_END && s.avail_in == 0) return out;
  if (!complete && (rc == Z_OK || rc == Z_BUF_ERROR)) return out;
  return std::nullopt;
}

std::optional<std::string> unbrotli(const std::string& z) {
  BrotliDecoderState* st = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
  std::string out;
  size_t avail_in = z.size();
  const uint8_t* next_in = reinterpret_cast<const uint8_t*>(z.data());
  BrotliDecoderResult rc;
  uint8_t buf[16384];
  do {
    size_t avail_out = sizeof buf;
    uint8_t* next_out = buf;
    rc = BrotliDecoderDecompressStream(st, &avail_in, &next_in, &avail_out, &next_out, nullptr);
    out.append(reinterpret_cast<char*>(buf), sizeof buf - avail_out);
  } while (rc == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT);
  BrotliDecoderDestroyInstance(st);
  if (rc != BROTLI_DECODER_RESULT_SUCCESS || avail_in != 0) return std::nullopt;
  return out;
}

std::string gzipOf(const std::string& data, int level = 6) {
  z_stream s{};
  REQUIRE(deflateInit2(&s, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&s, data.size()), '\0');
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  s.avail_in = static_cast<uInt>(data.size());
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&s, Z_FINISH) == Z_STREAM_END);
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

std::string brotliOf(const std::string& data) {
  size_t n = BrotliEncoderMaxCompressedSize(data.size());
  std::string out(n, '\0');
  REQUIRE(BrotliEncoderCompress(9, 22, BROTLI_MODE_GENERIC, data.size(), reinterpret_cast<const uint8_t*>(data.data()),
                                &n, reinterpret_cast<uint8_t*>(out.data())));
  out.resize(n);
  return out;
}

// About `n` bytes of JSON.
std::string jsonOf(size_t n) {
  std::string s = "[";
  for (size_t i = 0; s.size() < n; ++i)
    s += (i ? "," : "") + std::string("{\"id\":") + std::to_string(i) + ",\"name\":\"item number " +
         std::to_string(i * 31 % 977) + "\",\"tags\":[\"a\",\"b\"]}";
  return s + "]";
}

std::string filterYaml(const std::string& config = "") { return httpFilterYaml("compression", config, false); }

// ferry_compression_total{listener,result}: gzip, br, decompressed, request_too_large,
// request_malformed, in that order.
Counts compressionCounts(FerryProcess& f, const std::string& listener = "web") {
  return outcomeCounts(f, "ferry_compression_total", {"gzip", "br", "decompressed", "request_too_large", "request_malformed"},
                       listener);
}

// Every header line of a raw head with this name (lower-case), values trimmed.
std::vector<std::string> headerValues(const std::string& head, const std::string& name) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    if (e == std::string::npos) e = head.size();
    std::string line = head.substr(pos, e - pos);
    pos = e + 2;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string n = line.substr(0, colon);
    for (auto& ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (n != name) continue;
    std::string v = line.substr(colon + 1);
    while (!v.empty() && v.front() == ' ') v.erase(0, 1);
    out.push_back(v);
  }
  return out;
}

const std::string kJson = jsonOf(10000);

// The upstream for the negotiation and skip tests: answers by path.
UpstreamAction respond(const UpstreamRequest& r) {
  const std::vector<std::string> json{"content-type: application/json", "etag: \"v1\""};
  if (r.method == "HEAD")
    return UpstreamAction{"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 10000\r\n\r\n"};
  if (r.target == "/json") return UpstreamAction{HttpUpstream::response(200, kJson, json)};
  if (r.target == "/html")
    return UpstreamAction{HttpUpstream::response(200, kJson, {"Content-Type: TEXT/HTML; charset=utf-8",
                                                               "vary: Origin", "etag: W/\"weak\""})};
  if (r.target == "/small") return UpstreamAction{HttpUpstream::response(200, kJson.substr(0, 255), json)};
  if (r.target == "/png") return UpstreamAction{HttpUpstream::response(200, kJson, {"content-type: image/png"})};
  if (r.target == "/encoded")
    return UpstreamAction{HttpUpstream::response(200, kJson, {"content-type: text/plain", "content-encoding: zstd"})};
  if (r.target == "/no-transform")
    return UpstreamAction{
        HttpUpstream::response(200, kJson, {"content-type: text/plain", "cache-control: public, no-transform"})};
  if (r.target == "/range")
    return UpstreamAction{HttpUpstream::response(
        206, kJson.substr(0, 1000), {"content-type: text/plain", "content-range: bytes 0-999/10000"})};
  if (r.target == "/204") return UpstreamAction{HttpUpstream::response(204, "", {"content-type: text/plain"})};
  if (r.target == "/304")
    return UpstreamAction{HttpUpstream::response(304, "", {"content-type: text/plain", "etag: \"v1\""})};
  if (r.target == "/vary-ae")
    return UpstreamAction{
        HttpUpstream::response(200, kJson, {"content-type: text/plain", "Vary: accept-encoding, origin"})};
  if (r.target == "/chunked") {  // unknown length, already small: compressed anyway
    return UpstreamAction{
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"};
  }
  return UpstreamAction{HttpUpstream::response(404, "no\n")};
}

HttpResponse get(uint16_t port, const std::string& path, const std::string& ae, const std::string& method = "GET") {
  std::vector<std::string> h;
  if (!ae.empty()) h.push_back("Accept-Encoding: " + ae);
  return httpRequest(port, method, path, "", h);
}

}  // namespace

TEST_CASE("compression: gzip and brotli responses decode to the upstream's bytes", "[compression]") {
  HttpUpstream up(respond);
  auto f = FerryProcess::start(FerryConfig{.http_extra = filterYaml(), .clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t p = f->port("web");

  auto gz = get(p, "/json", "gzip");
  REQUIRE(gz.status == 200);
  CHECK(gz.header("content-encoding") == "gzip");
  CHECK_FALSE(gz.hasHeader("content-length"));
  CHECK(gz.header("transfer-encoding") == "chunked");
  CHECK(gz.header("vary") == "Accept-Encoding");
  CHECK(gz.header("etag") == "W/\"v1\"");
  CHECK(gz.body.size() < kJson.size() / 4);
  CHECK(gunzip(gz.body) == kJson);

  auto br = get(p, "/json", "gzip, deflate, br");  // equal weights: br is configured first
  REQUIRE(br.status == 200);
  CHECK(br.header("content-encoding") == "br");
  CHECK(unbrotli(br.body) == kJson);

  // A media type with parameters and odd case matches; an existing Vary gets ours appended; a
  // weak ETag stays as it is.
  auto html = get(p, "/html", "br");
  REQUIRE(html.status == 200);
  CHECK(html.header("content-encoding") == "br");
  CHECK(headerValues(html.headers, "vary") == std::vector<std::string>{"Origin", "Accept-Encoding"});
  CHECK(html.header("etag") == "W/\"weak\"");
  CHECK(unbrotli(html.body) == kJson);

  // Unknown length (chunked from the upstream): compressed whatever its size.
  auto ch = get(p, "/chunked", "gzip");
  CHECK(ch.header("content-encoding") == "gzip");
  CHECK(gunzip(ch.body) == "hello");
  CHECK(compressionCounts(*f) == Counts{2, 2, 0, 0, 0});
}

TEST_CASE("compression: Accept-Encoding q-values choose the coding or none", "[compression]") {
  HttpUpstream up(respond);
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = filterYaml("{algorithms: [gzip, br]}"), .clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t p = f->port("web");
  struct Case {
    std::string ae;
    std::string coding;  // "" = identity
  };
  for (const Case& c : std::vector<Case>{
           {"br, gzip", "gzip"},  // configured order among equals
           {"br;q=1, gzip;q=0.8", "br"},
           {"gzip;q=0, br;q=0.1", "br"},
           {"gzip;q=0, br;q=0", ""},
           {"*", "gzip"},
           {"*;q=0.5, br", "br"},
           {"*;q=0", ""},
           {"identity", ""},
           {"gzip;q=0.5, identity", ""},
           {"deflate, zstd", ""},
           {"", ""},
       }) {
    INFO("Accept-Encoding: " << c.ae);
    auto r = get(p, "/json", c.ae);
    REQUIRE(r.status == 200);
    CHECK(r.header("content-encoding") == c.coding);
    CHECK(r.header("vary") == "Accept-Encoding");  // compressible, compressed or not
    if (c.coding.empty()) {
      CHECK(r.body == kJson);
      CHECK(r.header("content-length") == std::to_string(kJson.size()));
      CHECK(r.header("etag") == "\"v1\"");
    } else {
      CHECK((c.coding == "gzip" ? gunzip(r.body) : unbrotli(r.body)) == kJson);
    }
  }
  CHECK(compressionCounts(*f) == Counts{2, 3, 0, 0, 0});  // identity answers are not counted
}

TEST_CASE("compression: what is never compressed", "[compression]") {
  HttpUpstream up(respond);
  auto f = FerryProcess::start(FerryConfig{.http_extra = filterYaml(), .clusters = {{"up", {up.port()}}}}.yaml());
  const uint16_t p = f->port("web");
  struct Case {
    std::string path;
    int status;
    bool vary;  // compressible by type and otherwise: Vary even though not compressed here
  };
  for (const Case& c : std::vector<Case>{
           {"/small", 200, false},         // Content-Length 255 < min_content_length 256
           {"/png", 200, false},           // type not in content_types
           {"/encoded", 200, false},       // already encoded
           {"/no-transform", 200, false},  // Cache-Control: no-transform
           {"/range", 206, false},         // a range
           {"/204", 204, false},
           {"/304", 304, false},
       }) {
    INFO(c.path);
    auto r = get(p, c.path, "gzip, br");
    REQUIRE(r.status == c.status);
    CHECK(r.header("content-encoding") == (c.path == "/encoded" ? "zstd" : ""));
    CHECK(r.hasHeader("vary") == c.vary);
    if (c.status == 200 || c.status == 206) {
      CHECK(r.hasHeader("content-length"));
      CHECK(r.body == (c.path == "/small" ? kJson.substr(0, 255) : c.path == "/range" ? kJson.substr(0, 1000) : kJson));
    }
  }
  // HEAD: the head of the identity response, untouched.
  auto c = TcpClient::connect(p);
  REQUIRE(c);
  REQUIRE(c->sendAll("HEAD /head HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"));
  auto h = readHttpResponse(*c, true);
  REQUIRE(h.status == 200);
  CHECK_FALSE(h.hasHeader("content-encoding"));
  CHECK(h.header("content-length") == "10000");
  // A Vary that has accept-encoding already is not added to.
  auto v = get(p, "/vary-ae", "gzip");
  CHECK(v.header("content-encoding") == "gzip");
  CHECK(headerValues(v.headers, "vary") == std::vector<std::string>{"accept-encoding, origin"});
  CHECK(gunzip(v.body) == kJson);
  CHECK(compressionCounts(*f) == Counts{1, 0, 0, 0, 0});  // only /vary-ae
}

TEST_CASE("compression: a streamed response reaches the client chunk by chunk, then the trailers",
          "[compression]") {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  const std::string part1 = "event: first\ndata: " + std::string(300, 'a') + "\n\n";
  const std::string part2 = jsonOf(40000);
  HttpUpstream up([&](const UpstreamRequest&) {
    UpstreamAction a;
    a.custom = [&](int fd) {
      auto chunk = [](const std::string& s) {
        char len[32];
        std::snprintf(len, sizeof len, "%zx\r\n", s.size());
        return std::string(len) + s + "\r\n";
      };
      FakeUpstream::writeAll(fd, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n" +
                                     chunk(part1));
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait_for(lk, 10s, [&] { return open; });
      }
      FakeUpstream::writeAll(fd, chunk(part2) + "0\r\nx-checksum: abc\r\n\r\n");
      while (!FakeUpstream::readSome(fd).empty()) {
      }
    };
    return a;
  });
  h2test::Release release{mu, cv, open};
  auto f = FerryProcess::start(FerryConfig{.http_extra = filterYaml(), .clusters = {{"up", {up.port()}}}}.yaml());
  auto c = TcpClient::connect(f->port("web"));
  REQUIRE(c);
  REQUIRE(c->sendAll("GET /events HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"));
  // Before the upstream sends the rest, the client can decode all of the first chunk.
  std::string raw;
  std::string decoded;
  auto firstPartHere = [&] {
    raw += c->recvSome(50ms);
    const size_t hdr = raw.find("\r\n\r\n");
    if (hdr == std::string::npos) return false;
    // De-chunk the complete chunks so far.
    std::string body;
    size_t pos = hdr + 4;
    for (;;) {
      const size_t e = raw.find("\r\n", pos);
      if (e == std::string::npos) break;
      const size_t n = std::strtoul(raw.c_str() + pos, nullptr, 16);
      if (n == 0 || e + 2 + n + 2 > raw.size()) break;
      body += raw.substr(e + 2, n);
      pos = e + 2 + n + 2;
    }
    auto d = gunzip(body, false);
    decoded = d.value_or("");
    return decoded == part1;
  };
  REQUIRE(waitUntil(firstPartHere, 5s, 1ms));
  const std::string head = raw.substr(0, raw.find("\r\n\r\n"));
  CHECK(headerValues(head + "\r\n", "content-encoding") == std::vector<std::string>{"gzip"});
  CHECK(headerValues(head + "\r\n", "transfer-encoding") == std::vector<std::string>{"chunked"});
  release();
  raw += c->recvUntilClose(10s);
  auto r = parseHttpResponse(raw);
  REQUIRE(r.status == 200);
  CHECK(gunzip(r.body) == part1 + part2);  // a whole gzip stream, ended before the trailers
  CHECK(raw.find("\r\n0\r\nx-checksum: abc\r\n\r\n") != std::string::npos);
  CHECK(compressionCounts(*f) == Counts{1, 0, 0, 0, 0});
}

TEST_CASE("compression: HTTP/2 clients get compressed responses (curl --compressed)", "[compression][http2]") {
  HttpUpstream up(respond);
  auto f = FerryProcess::start(FerryConfig{.http_extra = filterYaml(), .clusters = {{"up", {up.port()}}}}.yaml());
  TempDir dir;
  const std::string url = "http://127.0.0.1:" + std::to_string(f->port("web"));
  for (const std::string ae : {"br", "gzip"}) {
    INFO(ae);
    // --compressed decodes what it gets; -H chooses what is offered; r.headers is the head.
    auto r = h2test::curl(dir, {"--http2-prior-knowledge", "--compressed", "-H", "accept-encoding: " + ae, url + "/json"});
    REQUIRE(r.exit_code == 0);
    CHECK(r.version == "2");
    CHECK(r.status == 200);
    CHECK(r.body == kJson);
    const std::string& head = r.headers;
    CHECK(headerValues(head, "content-encoding") == std::vector<std::string>{ae});
    CHECK(headerValues(head, "content-length").empty());
    CHECK(headerValues(head, "vary") == std::vector<std::string>{"Accept-Encoding"});
  }
  // The raw bytes are compressed (curl without --compressed leaves them as they came).
  auto raw = h2test::curl(dir, {"--http2-prior-knowledge", "-H", "accept-encoding: gzip", url + "/json"});
  REQUIRE(raw.status == 200);
  CHECK(gunzip(raw.body) == kJson);
  CHECK(compressionCounts(*f) == Counts{2, 1, 0, 0, 0});
}

TEST_CASE("compression: request bodies are inflated; a bomb gets 413, a corrupt body 400", "[compression]") {
  const std::string payload = jsonOf(50000);
  HttpUpstream up([](const UpstreamRequest& r) {
    return HttpUpstream::ok("len=" + std::to_string(r.body.size()) + " ce=" + r.header("content-encoding") +
                            " cl=" + r.header("content-length") + " chunked=" + (r.chunked ? "1" : "0"));
  });
  auto f = FerryProcess::start(
      FerryConfig{.http_extra = filterYaml("{request_decompression: {enabled: true, max_bytes: 1048576}}"),
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
  const uint16_t p = f->port("web");
  const std::string expect = "len=" + std::to_string(payload.size()) + " ce= cl= chunked=1";
  auto gz = httpRequest(p, "POST", "/up", gzipOf(payload), {"Content-Encoding: gzip"});
  REQUIRE(gz.status == 200);
  CHECK(gz.body == expect);
  auto br = httpRequest(p, "POST", "/up", brotliOf(payload), {"Content-Encoding: BR"});
  REQUIRE(br.status == 200);
  CHECK(br.body == expect);
  REQUIRE(up.waitRequests(2));
  CHECK(up.requests()[0].body == payload);
  CHECK(up.requests()[1].body == payload);
  // Another coding passes through untouched.
  auto other = httpRequest(p, "POST", "/up", "abc", {"Content-Encoding: zstd"});
  CHECK(other.body == "len=3 ce=zstd cl=3 chunked=0");
  CHECK(compressionCounts(*f) == Counts{0, 0, 2, 0, 0});  // zstd: not ours, not counted

  // A bomb: 64 MiB of zeros in about 64 KiB of gzip, or far less brotli; refused at 1 MiB.
  const std::string zeros(64u << 20, '\0');
  for (const auto& [ce, bomb] : {std::pair<std::string, std::string>{"gzip", gzipOf(zeros, 9)}, {"br", brotliOf(zeros)}}) {
    INFO(ce << " bomb of " << bomb.size() << " bytes");
    CHECK(bomb.size() < 128 * 1024);
    auto r = httpRequest(p, "POST", "/bomb", bomb, {"Content-Encoding: " + ce});
    CHECK(r.status == 413);
  }
  CHECK(metricValue(*f, "ferry_downstream_response_flags_total{listener=\"web\",flag=\"DBL\"}") == 2);
  CHECK(compressionCounts(*f) == Counts{0, 0, 4, 2, 0});  // a bomb is started, then refused

  // Corrupt and truncated bodies: 400.
  auto bad = httpRequest(p, "POST", "/bad", "definitely not gzip", {"Content-Encoding: gzip"});
  CHECK(bad.status == 400);
  const std::string z = gzipOf(payload);
  auto cut = httpRequest(p, "POST", "/cut", z.substr(0, z.size() - 8), {"Content-Encoding: gzip"});
  CHECK(cut.status == 400);
  CHECK(metricValue(*f, "ferry_downstream_response_flags_total{listener=\"web\",flag=\"DPE\"}") == 2);
  CHECK(compressionCounts(*f) == Counts{0, 0, 6, 2, 2});
  // Only the good requests reached the upstream whole (a refused one may have started).
  for (const auto& r : up.requests())
    if (r.target == "/up") CHECK((r.body == payload || r.body == "abc"));

  // HTTP/2 too.
  TempDir dir;
  const std::string file = dir.write("body.gz", gzipOf(payload));
  auto h2 = h2test::curl(dir, {"--http2-prior-knowledge", "-H", "content-encoding: gzip", "--data-binary", "@" + file,
                               "http://127.0.0.1:" + std::to_string(p) + "/up"});
  REQUIRE(h2.status == 200);
  CHECK(h2.version == "2");
  CHECK(h2.body == expect);
  const std::string bomb_file = dir.write("bomb.gz", gzipOf(zeros, 9));
  auto h2bomb = h2test::curl(dir, {"--http2-prior-knowledge", "-H", "content-encoding: gzip", "--data-binary",
                                   "@" + bomb_file, "http://127.0.0.1:" + std::to_string(p) + "/bomb"});
  CHECK(h2bomb.status == 413);
  CHECK(compressionCounts(*f) == Counts{0, 0, 8, 3, 2});
}

TEST_CASE("compression: request decompression is off by default", "[compression]") {
  HttpUpstream up([](const UpstreamRequest& r) { return HttpUpstream::ok("ce=" + r.header("content-encoding")); });
  auto f = FerryProcess::start(FerryConfig{.http_extra = filterYaml(), .clusters = {{"up", {up.port()}}}}.yaml());
  const std::string z = gzipOf("hello");
  auto r = httpRequest(f->port("web"), "POST", "/up", z, {"Content-Encoding: gzip"});
  REQUIRE(r.status == 200);
  CHECK(r.body == "ce=gzip");
  REQUIRE(up.waitRequests(1));
  CHECK(up.requests()[0].body == z);
  CHECK(compressionCounts(*f) == Counts{0, 0, 0, 0, 0});
}

TEST_CASE("compression: a route disables the filter or runs it with other algorithms and min_content_length",
          "[compression][filter_override]") {
  const std::string big = jsonOf(30000);
  HttpUpstream up([&](const UpstreamRequest& r) {
    const std::vector<std::string> json{"content-type: application/json"};
    const bool is_big = r.target.size() >= 4 && r.target.compare(r.target.size() - 4, 4, "/big") == 0;
    return UpstreamAction{HttpUpstream::response(200, is_big ? big : kJson, json)};
  });
  auto f = FerryProcess::start(
      FerryConfig{.listener = "edge",
                  .http_extra = filterYaml(),
                  .routes = overrideRoutes("compression", "{algorithms: [gzip], min_content_length: 20000}"),
                  .clusters = {{"up", {up.port()}}}}
          .yaml());
  const uint16_t p = f->port("edge");
  const std::string ae = "gzip, br";
  // The listener's config: br first, from 256 bytes.
  auto r = get(p, "/json", ae);
  CHECK(r.header("content-encoding") == "br");
  CHECK(unbrotli(r.body) == kJson);
  // Disabled: identity, and no Vary either (the filter never ran).
  for (const std::string path : {"/off/json", "/off/big"}) {
    INFO(path);
    auto o = get(p, path, ae);
    REQUIRE(o.status == 200);
    CHECK_FALSE(o.hasHeader("content-encoding"));
    CHECK_FALSE(o.hasHeader("vary"));
    CHECK(o.body == (path == "/off/big" ? big : kJson));
  }
  // The route's config: gzip only, from 20000 bytes.
  auto small = get(p, "/alt/json", ae);
  CHECK_FALSE(small.hasHeader("content-encoding"));
  CHECK(small.header("content-length") == std::to_string(kJson.size()));
  auto large = get(p, "/alt/big", ae);
  CHECK(large.header("content-encoding") == "gzip");
  CHECK(gunzip(large.body) == big);
  CHECK(compressionCounts(*f, "edge") == Counts{1, 1, 0, 0, 0});
  // HTTP/2 takes the same routes.
  TempDir dir;
  const std::string url = "http://127.0.0.1:" + std::to_string(p);
  auto h2 = h2test::curl(dir, {"--http2-prior-knowledge", "--compressed", "-H", "accept-encoding: br, gzip", url + "/alt/big"});
  CHECK(h2.version == "2");
  CHECK(h2.header("content-encoding") == "gzip");
  CHECK(h2.body == big);
  auto h2off = h2test::curl(dir, {"--http2-prior-knowledge", "-H", "accept-encoding: br, gzip", url + "/off/big"});
  CHECK_FALSE(h2off.has("content-encoding"));
  CHECK(h2off.body == big);
  CHECK(compressionCounts(*f, "edge") == Counts{2, 1, 0, 0, 0});
}

}  // namespace ferry::testing
