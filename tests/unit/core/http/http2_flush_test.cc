// The HTTP/2 server codec gathers the responses that one event of the worker's loop finishes
// into one serialisation: while the Poller dispatches, a stream's encodeHeaders / encodeData
// queue their frames in nghttp2, and the codec writes them all once the event's handlers have
// returned. Outside a dispatch (and with a CodecIo that has no Poller) it writes at once. A
// codec destroyed with its flush still queued leaves nothing behind for the Poller to run.
#include <nghttp2/nghttp2.h>

#include <boost/asio/io_context.hpp>
#include <cctype>
#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/event/poller.h"
#include "core/http/http2/codec.h"
#include "tests/support/eventfd_recorder.h"

using ferry::core::Buffer;
using ferry::core::Poller;
using namespace ferry::core::http;

namespace {

struct Io : CodecIo {
  Poller* loop = nullptr;
  std::vector<std::string> writes;  // one entry per write() call
  bool closed = false;
  void write(Buffer& data, bool) override {
    writes.push_back(data.toString());
    data.clear();
  }
  void closeConnection(bool) override { closed = true; }
  void readDisable(bool) override {}
  Poller* poller() override { return loop; }
};

struct Stream : RequestDecoder, StreamCallbacks {
  ResponseEncoder* enc = nullptr;
  bool request_done = false;
  void decodeHeaders(RequestHeadersPtr, bool end_stream) override { request_done = end_stream; }
  void decodeData(Buffer& data, bool end_stream) override {
    data.clear();
    request_done = end_stream;
  }
  void decodeTrailers(HeaderMap) override { request_done = true; }
  void onDecodeError(int, std::string_view, ResponseFlag) override {}
  void onResetStream(StreamResetReason, std::string_view) override { enc = nullptr; }

  void answer(const std::string& body) {
    ResponseHeaders h;
    h.status = 200;
    h.headers.add("content-type", "text/plain");
    enc->encodeHeaders(h, false);
    Buffer b;
    b.add(body);
    enc->encodeData(b, true);
  }
};

struct Manager : ServerConnectionCallbacks {
  std::vector<std::unique_ptr<Stream>> streams;
  RequestDecoder& newStream(ResponseEncoder& encoder) override {
    streams.push_back(std::make_unique<Stream>());
    streams.back()->enc = &encoder;
    encoder.setStreamCallbacks(streams.back().get());
    return *streams.back();
  }
  void onCodecError(int, ResponseFlag, std::string_view) override {}
};

// A plain nghttp2 client: sends GETs, and collects each stream's status and body.
struct Client {
  struct Response {
    std::string status;
    std::string body;
    bool closed = false;
    std::vector<std::pair<std::string, std::string>> fields;  // every field, pseudo ones too
  };
  nghttp2_session* session = nullptr;
  std::string out;
  std::map<int32_t, Response> responses;

  Client() {
    nghttp2_session_callbacks* cbs;
    REQUIRE(nghttp2_session_callbacks_new(&cbs) == 0);
    nghttp2_session_callbacks_set_send_callback(
        cbs, [](nghttp2_session*, const uint8_t* data, size_t len, int, void* self) -> ssize_t {
          static_cast<Client*>(self)->out.append(reinterpret_cast<const char*>(data), len);
          return static_cast<ssize_t>(len);
        });
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t namelen, const uint8_t* value,
                size_t valuelen, uint8_t, void* self) -> int {
          static_cast<Client*>(self)->responses[f->hd.stream_id].fields.emplace_back(
              std::string(reinterpret_cast<const char*>(name), namelen),
              std::string(reinterpret_cast<const char*>(value), valuelen));
          if (std::string(reinterpret_cast<const char*>(name), namelen) == ":status") {
            static_cast<Client*>(self)->responses[f->hd.stream_id].status.assign(
                reinterpret_cast<const char*>(value), valuelen);
          }
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* self) -> int {
          static_cast<Client*>(self)->responses[id].body.append(reinterpret_cast<const char*>(data), len);
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cbs, [](nghttp2_session*, int32_t id, uint32_t, void* self) -> int {
          static_cast<Client*>(self)->responses[id].closed = true;
          return 0;
        });
    REQUIRE(nghttp2_session_client_new(&session, cbs, this) == 0);
    nghttp2_session_callbacks_del(cbs);
    REQUIRE(nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, nullptr, 0) == 0);
  }
  ~Client() { nghttp2_session_del(session); }

  void get() {
    const nghttp2_nv nv[] = {
        {(uint8_t*)":method", (uint8_t*)"GET", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t*)":scheme", (uint8_t*)"http", 7, 4, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t*)":authority", (uint8_t*)"example.com", 10, 11, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t*)":path", (uint8_t*)"/", 5, 1, NGHTTP2_NV_FLAG_NONE},
    };
    REQUIRE(nghttp2_submit_request(session, nullptr, nv, 4, nullptr, nullptr) > 0);
  }
  // What the client has to send, with the connection preface first.
  std::string take() {
    REQUIRE(nghttp2_session_send(session) == 0);
    return std::exchange(out, std::string());
  }
  void receive(const std::string& bytes) {
    REQUIRE(nghttp2_session_mem_recv(session, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) ==
            static_cast<ssize_t>(bytes.size()));
  }
};

// Sets up a server codec with two request streams open (no response yet).
struct Fixture {
  boost::asio::io_context ctx;
  Poller& poller = Poller::of(ctx);
  Io io;
  Manager mgr;
  Client client;
  std::unique_ptr<ServerConnection> conn;
  std::string log;
  ferry::testing::EventFdRecorder event{log, 'e'};

  Fixture() {
    poller.driveExternally();
    io.loop = &poller;
    conn = http2::makeServerConnection(io, mgr, http2::Options{});
    client.get();
    client.get();
    Buffer in;
    in.add(client.take());
    conn->dispatch(in, false);  // not inside a Poller dispatch
    REQUIRE(mgr.streams.size() == 2);
    REQUIRE(mgr.streams[0]->request_done);
    REQUIRE(mgr.streams[1]->request_done);
    client.receive(all());  // the server's SETTINGS and acknowledgement
    REQUIRE(poller.add(event.fd, &event));
    poller.wait(0);  // the registration's writable edge
  }
  ~Fixture() { poller.remove(event.fd, &event); }
  std::string all() {
    std::string s;
    for (auto& w : io.writes) s += w;
    io.writes.clear();
    return s;
  }
};

}  // namespace

TEST_CASE("http2 server: responses finished in one event are serialised once, after it", "[http2][codec]") {
  Fixture f;
  size_t writes_inside = 99;
  f.event.on_dispatch = [&] {
    f.mgr.streams[0]->answer("first");
    f.mgr.streams[1]->answer("second");
    writes_inside = f.io.writes.size();
  };
  f.event.signal();
  f.poller.wait(1000);
  CHECK(writes_inside == 0);     // nothing serialised while the event's handler ran
  CHECK(f.io.writes.size() == 1);  // both responses in one write once it returned
  f.client.receive(f.all());
  CHECK(f.client.responses[1].status == "200");
  CHECK(f.client.responses[1].body == "first");
  CHECK(f.client.responses[1].closed);
  CHECK(f.client.responses[3].status == "200");
  CHECK(f.client.responses[3].body == "second");
  CHECK(f.client.responses[3].closed);
}

TEST_CASE("http2 server: outside an event dispatch a response is written at once", "[http2][codec]") {
  Fixture f;
  f.mgr.streams[0]->answer("now");
  CHECK(f.io.writes.size() >= 1);
  f.client.receive(f.all());
  CHECK(f.client.responses[1].body == "now");
  CHECK(f.client.responses[1].closed);

  SECTION("and with a CodecIo that has no Poller, inside a dispatch too") {
    f.io.loop = nullptr;
    size_t writes_inside = 0;
    f.event.on_dispatch = [&] {
      f.mgr.streams[1]->answer("later");
      writes_inside = f.io.writes.size();
    };
    f.event.signal();
    f.poller.wait(1000);
    CHECK(writes_inside >= 1);
    f.client.receive(f.all());
    CHECK(f.client.responses[3].body == "later");
    CHECK(f.client.responses[3].closed);
  }
}

TEST_CASE("http2 server: a codec destroyed with its flush queued leaves the Poller nothing to run", "[http2][codec]") {
  Fixture f;
  f.event.on_dispatch = [&] {
    f.mgr.streams[0]->answer("gone");
    f.conn.reset();  // before the Poller runs the queued flush (ASan would see it run on freed memory)
  };
  f.event.signal();
  f.poller.wait(1000);
  CHECK(f.conn == nullptr);
  CHECK(f.io.writes.empty());
}

// Names most responses carry are handed to nghttp2 from static storage (no copy, no
// lower-casing pass), the others as stored: each arrives exactly as the map holds it, in
// order, with its value.
TEST_CASE("http2 server: every field name arrives as stored, static or not", "[http2][codec]") {
  Fixture f;
  ResponseHeaders h;
  h.status = 203;
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"Date", "Tue, 08 Dec 2026 00:00:00 GMT"}, {"ETag", "\"x\""}, {"vary", "accept"},
      {"server", "up"}, {"location", "/l"}, {"set-cookie", "a=1"}, {"set-cookie", "b=2"},
      {"content-type", "text/plain"}, {"cache-control", "no-store"}, {"last-modified", "then"},
      {"accept-ranges", "bytes"}, {"content-length", "3"}, {"content-encoding", "identity"},
      {"x-other", "o"}, {"dat", "d"}, {"servers", "s"}, {"content-typE", "t"}};
  for (const auto& [n, v] : fields) h.headers.add(n, v);
  f.mgr.streams[0]->enc->encodeHeaders(h, false);
  Buffer b;
  b.add("abc");
  f.mgr.streams[0]->enc->encodeData(b, true);
  f.client.receive(f.all());
  const auto& got = f.client.responses[1].fields;
  REQUIRE(got.size() == fields.size() + 1);
  CHECK(got[0] == std::make_pair(std::string(":status"), std::string("203")));
  for (size_t i = 0; i < fields.size(); ++i) {
    std::string lower = fields[i].first;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    CHECK(got[i + 1].first == lower);
    CHECK(got[i + 1].second == fields[i].second);
  }
  CHECK(f.client.responses[1].body == "abc");
}
