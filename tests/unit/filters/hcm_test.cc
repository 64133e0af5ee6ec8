// The HTTP connection manager and ActiveStream against a fake codec: several streams at once,
// each talking only to its own encoder; the route config a request takes when it starts;
// filter iteration both ways (stop, stop-and-buffer, resume, trailers, local replies that
// replace a held response); resets; drain; 1xx. The downstream connection is a real socket
// pair; no network peer is needed.
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/model.h"
#include "core/http/codec.h"
#include "core/http/route_config.h"
#include "core/net/connection.h"
#include "core/net/listener.h"
#include "core/stats.h"
#include "filters/network/http_connection_manager/connection_manager.h"
#include "filters/network/http_connection_manager/hcm.h"
#include "filters/registry.h"

using namespace ferry;
using core::Buffer;
using core::http::FilterStatus;
using core::http::HeaderMap;
namespace http = core::http;

namespace {

// ---- the fake codec

struct FakeEncoder : http::ResponseEncoder {
  std::vector<std::string> log;
  http::StreamCallbacks* cb = nullptr;
  int read_disabled = 0;
  void encodeHeaders(const http::ResponseHeaders& h, bool end) override {
    log.push_back("headers " + std::to_string(h.status) + (end ? " end" : ""));
  }
  void encode1xxHeaders(const http::ResponseHeaders& h) override { log.push_back("1xx " + std::to_string(h.status)); }
  void encodeData(Buffer& d, bool end) override {
    log.push_back("data " + d.toString() + (end ? " end" : ""));
    d.clear();
  }
  void encodeTrailers(const HeaderMap&) override { log.push_back("trailers"); }
  void readDisable(bool disable) override { read_disabled += disable ? 1 : -1; }
  void resetStream(http::StreamResetReason) override { log.push_back("reset"); }
  void setStreamCallbacks(http::StreamCallbacks* c) override { cb = c; }
};

struct FakeCodec : http::ServerConnection {
  explicit FakeCodec(http::ServerConnectionCallbacks& c) : cb(c) {}
  http::ServerConnectionCallbacks& cb;
  std::vector<std::unique_ptr<FakeEncoder>> encoders;
  int drains = 0;
  // A new stream, as a multiplexing codec would open it.
  http::RequestDecoder& open() {
    encoders.push_back(std::make_unique<FakeEncoder>());
    return cb.newStream(*encoders.back());
  }
  void dispatch(Buffer& data, bool) override { data.clear(); }
  bool pendingInput() const override { return false; }
  void drainNotice() override { ++drains; }
  void sendConnectionError(int, std::string_view, http::ResponseFlag) override {}
  void onConnectionWatermark(bool) override {}
};

// ---- filters that follow a script and record what they see

struct Script {
  FilterStatus req_headers = FilterStatus::kContinue;
  FilterStatus req_data = FilterStatus::kContinue;
  FilterStatus req_trailers = FilterStatus::kContinue;
  FilterStatus resp_headers = FilterStatus::kContinue;
  FilterStatus resp_data = FilterStatus::kContinue;
  FilterStatus resp_trailers = FilterStatus::kContinue;
  // data hooks return kContinue once end_stream is seen (a buffering filter's last call)
  bool continue_at_end = false;
};

struct TestFilter : http::HttpFilter {
  TestFilter(std::string n, Script s) : name(std::move(n)), script(s) {}
  std::string name;
  Script script;
  std::vector<std::string> log;
  std::string xfcc, xfp;  // the request's x-forwarded-client-cert ("<none>") and -proto
  bool destroyed = false;
  http::FilterCallbacks& cb() { return *callbacks_; }
  FilterStatus onRequestHeaders(http::RequestHeaders& h, bool end) override {
    log.push_back(std::string("req-headers") + (end ? " end" : ""));
    const std::string* x = h.headers.get("x-forwarded-client-cert");
    xfcc = x != nullptr ? *x : "<none>";
    xfp = h.headers.get("x-forwarded-proto") ? *h.headers.get("x-forwarded-proto") : "";
    return script.req_headers;
  }
  FilterStatus onRequestBody(Buffer& d, bool end) override {
    log.push_back("req-data " + d.toString() + (end ? " end" : ""));
    if (script.continue_at_end && end) return FilterStatus::kContinue;
    return script.req_data;
  }
  FilterStatus onRequestTrailers(HeaderMap&) override {
    log.push_back("req-trailers");
    return script.req_trailers;
  }
  FilterStatus onResponseHeaders(http::ResponseHeaders& h, bool end) override {
    log.push_back("resp-headers " + std::to_string(h.status) + (end ? " end" : ""));
    return script.resp_headers;
  }
  FilterStatus onResponseBody(Buffer& d, bool end) override {
    log.push_back("resp-data " + d.toString() + (end ? " end" : ""));
    if (script.continue_at_end && end) return FilterStatus::kContinue;
    return script.resp_data;
  }
  FilterStatus onResponseTrailers(HeaderMap&) override {
    log.push_back("resp-trailers");
    return script.resp_trailers;
  }
  void onDestroy() override { destroyed = true; }
};

// The terminal filter: takes what reaches it; the test answers through it.
struct Sink : TestFilter {
  Sink() : TestFilter("sink", Script{FilterStatus::kStop, FilterStatus::kStop, FilterStatus::kStop}) {}
  void respond(int status, const std::string& body, bool trailers = false) {
    auto h = std::make_unique<http::ResponseHeaders>();
    h->status = status;
    cb().encodeHeaders(std::move(h), body.empty() && !trailers);
    if (body.empty() && !trailers) return;
    Buffer b;
    b.add(body);
    cb().encodeData(b, !trailers);
    if (trailers) cb().encodeTrailers(HeaderMap{});
  }
};

struct Fixture {
  explicit Fixture(config::HttpConfig::ForwardClientCert xfcc = config::HttpConfig::ForwardClientCert::kSanitize,
                   bool real_codec = false)
      : stats(2) {
    http.forward_client_cert = xfcc;
    filters::registerBuiltins(registry);
    http.virtual_hosts.push_back(config::VirtualHostConfig{});
    auto& vh = http.virtual_hosts.back();
    vh.name = "all";
    vh.domains = {"*"};
    config::RouteConfig r;
    r.match.value = "/";
    r.direct_response = config::DirectResponseConfig{200, "direct"};
    vh.routes.push_back(r);
    listener.name = "web";
    listener.http = http;
    state = std::make_shared<core::net::ListenerState>("web", stats);
    core::router::ClusterResolver none = [](const std::string&) { return nullptr; };
    filters::BuildContext bctx{listener, *state, 1, setup, none, stats, registry};
    std::string err;
    auto built = filters::network::buildHcmConfig(bctx, &err);
    REQUIRE(built);
    auto cfg = std::make_shared<filters::network::HcmConfig>(*built);
    if (!real_codec) {
      cfg->codec = [this](http::CodecIo&, http::ServerConnectionCallbacks& cb) {
        auto c = std::make_unique<FakeCodec>(cb);
        codec = c.get();
        return c;
      };
    }
    hcm_config = cfg;
    publish({});

    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    peer = sv[1];
    ctx.io = &io;
    ctx.stats = &stats.shard(1);
    ctx.draining = &draining;
    conn = core::net::Connection::adopt(io, sv[0], {});
    Buffer none_ahead;
    conn->setTransport(core::net::makePlainTransport(), none_ahead);
    net_cb.fixture = this;
    conn->setCallbacks(&net_cb);
    hcm = std::make_unique<filters::network::HttpConnectionManager>(hcm_config);
    hcm->initialize(net_cb);
    hcm->onNewConnection();
    REQUIRE((codec != nullptr) != real_codec);
    if (real_codec) conn->startReading();  // bytes from the peer socket reach the manager
  }

  // Runs the io_context until `done` (bounded: 5 s).
  template <typename Pred>
  bool runUntil(Pred done) {
    for (int i = 0; i < 500 && !done(); ++i) io.run_for(std::chrono::milliseconds(10));
    return done();
  }
  void send(const std::string& bytes) { REQUIRE(::write(peer, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size())); }
  // What the client has received so far, once it ends with `tail` (bounded).
  std::string receiveUntil(const std::string& tail) {
    runUntil([&] {
      char b[4096];
      ssize_t n;
      while ((n = ::read(peer, b, sizeof b)) > 0) received.append(b, static_cast<size_t>(n));
      return received.size() >= tail.size() && received.compare(received.size() - tail.size(), tail.size(), tail) == 0;
    });
    return received;
  }
  std::string received;
  ~Fixture() {
    hcm.reset();
    conn->setCallbacks(nullptr);
    conn->close(core::net::Connection::CloseType::kNoFlush);
    ::close(peer);
  }

  // Installs a route config whose filters follow `scripts` (then the sink), as a snapshot
  // install would on this worker (slot 0).
  void publish(std::vector<Script> scripts, std::string tag = "") {
    auto rc = std::make_shared<http::HttpRouteConfig>();
    std::string err;
    rc->routes = core::router::RouteTable::build(http, &err);
    for (size_t i = 0; i < scripts.size(); ++i) {
      Script s = scripts[i];
      std::string name = tag + "f" + std::to_string(i);
      rc->filters.push_back([this, s, name] {
        auto f = std::make_unique<TestFilter>(name, s);
        made.push_back(f.get());
        return f;
      });
    }
    rc->terminal = [this] {
      auto f = std::make_unique<Sink>();
      sinks.push_back(f.get());
      return f;
    };
    state->http_routes->set(0, rc);
  }

  static std::unique_ptr<http::RequestHeaders> get(const std::string& path = "/") {
    auto h = std::make_unique<http::RequestHeaders>();
    h->method = "GET";
    h->path = path;
    h->authority = "x";
    return h;
  }

  struct NetCallbacks : core::net::NetworkFilterCallbacks, core::net::ConnectionCallbacks {
    Fixture* fixture = nullptr;
    core::net::ConnectionInfo ci;
    core::net::Connection& connection() override { return *fixture->conn; }
    const core::net::ConnectionInfo& info() const override { return ci; }
    core::WorkerContext& worker() override { return fixture->ctx; }
    void writeDownstream(Buffer& data, bool end_stream) override { fixture->conn->write(data, end_stream); }
    bool draining() const override { return fixture->draining; }
    void onData(Buffer& d, bool end) override { fixture->hcm->onData(d, end); }
    void onEvent(core::net::ConnectionEvent e) override {
      if (e == core::net::ConnectionEvent::kLocalClose || e == core::net::ConnectionEvent::kRemoteClose)
        fixture->hcm->onDownstreamEvent(e);
    }
  };

  boost::asio::io_context io;
  core::StatsStore stats;
  filters::Registry registry;
  config::HttpConfig http;
  config::ListenerConfig listener;
  std::shared_ptr<core::net::ListenerState> state;
  std::vector<std::function<void(size_t)>> setup;
  std::shared_ptr<const filters::network::HcmConfig> hcm_config;
  core::WorkerContext ctx;
  bool draining = false;
  std::shared_ptr<core::net::Connection> conn;
  int peer = -1;
  NetCallbacks net_cb;
  std::unique_ptr<filters::network::HttpConnectionManager> hcm;
  FakeCodec* codec = nullptr;
  std::vector<TestFilter*> made;
  std::vector<Sink*> sinks;
};

using Log = std::vector<std::string>;

Buffer buf(const std::string& s) {
  Buffer b;
  b.add(s);
  return b;
}

}  // namespace

TEST_CASE("hcm: streams at once, each with its own encoder; a reset of one leaves the other", "[hcm]") {
  Fixture f;
  auto& d1 = f.codec->open();
  d1.decodeHeaders(Fixture::get("/one"), false);
  auto& d2 = f.codec->open();
  d2.decodeHeaders(Fixture::get("/two"), true);
  REQUIRE(f.sinks.size() == 2);
  // The second answers first: only its encoder hears of it.
  f.sinks[1]->respond(200, "two");
  CHECK(f.codec->encoders[1]->log == Log{"headers 200", "data two end"});
  CHECK(f.codec->encoders[0]->log.empty());
  // The first is reset by a filter: its encoder only.
  f.sinks[0]->cb().resetStream();
  CHECK(f.codec->encoders[0]->log == Log{"reset"});
  CHECK(f.sinks[0]->destroyed);
  CHECK(f.stats.value(f.hcm_config->stats.rq_active) == 0);
  CHECK(f.stats.value(f.hcm_config->stats.rq_total) == 2);
}

TEST_CASE("hcm: a request takes the route config current when it starts; keep-alive sees a change",
          "[hcm]") {
  Fixture f;
  f.publish({Script{FilterStatus::kStop}}, "A");
  auto& d1 = f.codec->open();
  d1.decodeHeaders(Fixture::get(), true);
  f.publish({Script{FilterStatus::kStop}}, "B");
  auto& d2 = f.codec->open();
  d2.decodeHeaders(Fixture::get(), true);
  REQUIRE(f.made.size() == 2);
  CHECK(f.made[0]->name == "Af0");
  CHECK(f.made[1]->name == "Bf0");
  // The first request still runs with A's chain: resuming it reaches its own sink.
  REQUIRE(f.sinks.size() == 2);
  CHECK(f.sinks[0]->log.empty());
  f.made[0]->cb().resume();
  CHECK(f.sinks[0]->log == Log{"req-headers end"});
  f.sinks[0]->respond(204, "");
  CHECK(f.codec->encoders[0]->log == Log{"headers 204 end"});
}

TEST_CASE("hcm: request headers stopped: the body waits unseen and reads pause; resume sends both",
          "[hcm][iteration]") {
  Fixture f;
  f.publish({Script{FilterStatus::kStop}});
  auto& d = f.codec->open();
  d.decodeHeaders(Fixture::get(), false);
  Buffer b = buf("abc");
  d.decodeData(b, false);
  auto* filter = f.made[0];
  CHECK(filter->log == Log{"req-headers"});  // the body was not shown to it
  CHECK(f.codec->encoders[0]->read_disabled == 1);
  CHECK(f.sinks.size() == 1);
  CHECK(f.sinks[0]->log.empty());
  filter->cb().resume();
  CHECK(f.codec->encoders[0]->read_disabled == 0);
  CHECK(filter->log == Log{"req-headers", "req-data abc"});
  CHECK(f.sinks[0]->log == Log{"req-headers", "req-data abc"});
  Buffer more = buf("de");
  d.decodeData(more, true);
  CHECK(f.sinks[0]->log.back() == "req-data de end");
}

TEST_CASE("hcm: headers stopped to buffer the body: the filter sees all of it, then headers and body go on",
          "[hcm][iteration]") {
  Fixture f;
  Script buffering{FilterStatus::kStopAndBuffer, FilterStatus::kStopAndBuffer};
  buffering.continue_at_end = true;
  f.publish({Script{}, buffering});
  auto& d = f.codec->open();
  d.decodeHeaders(Fixture::get(), false);
  Buffer a = buf("ab");
  d.decodeData(a, false);
  Buffer c = buf("cd");
  d.decodeData(c, true);
  CHECK(f.made[0]->log == Log{"req-headers", "req-data ab", "req-data cd end"});
  CHECK(f.made[1]->log == Log{"req-headers", "req-data ab", "req-data abcd end"});
  // Nothing reached the sink before the whole body: then the headers, then all of it.
  CHECK(f.sinks[0]->log == Log{"req-headers", "req-data abcd end"});
  CHECK(f.codec->encoders[0]->read_disabled == 0);  // a buffering filter bounds itself
}

TEST_CASE("hcm: trailers wait behind held data and end a buffering filter's body", "[hcm][iteration]") {
  Fixture f;
  SECTION("buffering: the trailers end the body, it goes on, then the trailers") {
    f.publish({Script{FilterStatus::kContinue, FilterStatus::kStopAndBuffer}});
    auto& d = f.codec->open();
    d.decodeHeaders(Fixture::get(), false);
    Buffer a = buf("xy");
    d.decodeData(a, false);
    CHECK(f.sinks[0]->log == Log{"req-headers"});
    d.decodeTrailers(HeaderMap{});
    CHECK(f.made[0]->log == Log{"req-headers", "req-data xy", "req-trailers"});
    CHECK(f.sinks[0]->log == Log{"req-headers", "req-data xy", "req-trailers"});
  }
  SECTION("stopped: the trailers wait unseen until resume, after the data") {
    f.publish({Script{FilterStatus::kContinue, FilterStatus::kStop}});
    auto& d = f.codec->open();
    d.decodeHeaders(Fixture::get(), false);
    Buffer a = buf("xy");
    d.decodeData(a, false);
    d.decodeTrailers(HeaderMap{});
    CHECK(f.made[0]->log == Log{"req-headers", "req-data xy"});
    CHECK(f.codec->encoders[0]->read_disabled == 1);
    f.made[0]->cb().resume();
    CHECK(f.made[0]->log == Log{"req-headers", "req-data xy", "req-trailers"});
    CHECK(f.sinks[0]->log == Log{"req-headers", "req-data xy", "req-trailers"});
    CHECK(f.codec->encoders[0]->read_disabled == 0);
  }
}

TEST_CASE("hcm: response headers held by a filter reach the encoder on resumeResponse, data behind them",
          "[hcm][iteration]") {
  Fixture f;
  f.publish({Script{FilterStatus::kContinue, FilterStatus::kContinue, FilterStatus::kContinue, FilterStatus::kStop}});
  auto& d = f.codec->open();
  d.decodeHeaders(Fixture::get(), true);
  f.sinks[0]->respond(200, "body");
  auto& enc = *f.codec->encoders[0];
  CHECK(enc.log.empty());
  CHECK(f.made[0]->log == Log{"req-headers end", "resp-headers 200"});  // the data waits, unseen
  CHECK(f.sinks[0]->log.size() == 1);
  f.made[0]->cb().resumeResponse();
  CHECK(enc.log == Log{"headers 200", "data body end"});
  CHECK(f.made[0]->log == Log{"req-headers end", "resp-headers 200", "resp-data body end"});
}

TEST_CASE("hcm: response data stop-and-buffer: the filter gets all of it and passes it whole",
          "[hcm][iteration]") {
  Fixture f;
  Script s{FilterStatus::kContinue, FilterStatus::kContinue, FilterStatus::kContinue, FilterStatus::kContinue,
           FilterStatus::kStopAndBuffer};
  s.continue_at_end = true;
  f.publish({s});
  auto& d = f.codec->open();
  d.decodeHeaders(Fixture::get(), true);
  auto h = std::make_unique<http::ResponseHeaders>();
  f.sinks[0]->cb().encodeHeaders(std::move(h), false);
  Buffer a = buf("he");
  f.sinks[0]->cb().encodeData(a, false);
  Buffer b = buf("llo");
  f.sinks[0]->cb().encodeData(b, true);
  CHECK(f.made[0]->log == Log{"req-headers end", "resp-headers 200", "resp-data he", "resp-data hello end"});
  CHECK(f.codec->encoders[0]->log == Log{"headers 200", "data hello end"});
}

TEST_CASE("hcm: a held response pauses the upstream side; a local reply replaces it, unfiltered",
          "[hcm][iteration]") {
  Fixture f;
  Script hold{FilterStatus::kContinue, FilterStatus::kContinue, FilterStatus::kContinue, FilterStatus::kContinue,
              FilterStatus::kStop};
  f.publish({hold});
  auto& d = f.codec->open();
  d.decodeHeaders(Fixture::get(), true);
  auto h = std::make_unique<http::ResponseHeaders>();
  f.sinks[0]->cb().encodeHeaders(std::move(h), false);
  Buffer a = buf("partial");
  f.sinks[0]->cb().encodeData(a, false);
  CHECK(f.codec->encoders[0]->log == Log{"headers 200"});
  // The filter decides the response must not go out: a local reply takes its place.
  f.made[0]->cb().sendLocalReply(502, "replaced\n", http::ResponseFlag::kUpstreamProtocolError);
  // Headers had reached the encoder already: the only honest answer is a reset.
  CHECK(f.codec->encoders[0]->log == Log{"headers 200", "reset"});

  // Before the headers reach the encoder, the local reply replaces the response.
  Script hold_headers{FilterStatus::kContinue, FilterStatus::kContinue, FilterStatus::kContinue, FilterStatus::kStop};
  f.publish({hold_headers});
  auto& d2 = f.codec->open();
  d2.decodeHeaders(Fixture::get(), true);
  auto h2 = std::make_unique<http::ResponseHeaders>();
  f.sinks[1]->cb().encodeHeaders(std::move(h2), true);
  CHECK(f.codec->encoders[1]->log.empty());
  f.made[1]->cb().sendLocalReply(502, "replaced\n", http::ResponseFlag::kUpstreamProtocolError);
  CHECK(f.codec->encoders[1]->log == Log{"headers 502", "data replaced\n end"});
  CHECK(f.made[1]->log == Log{"req-headers end", "resp-headers 200 end"});  // not run for the reply
}

TEST_CASE("hcm: the connection closing resets every stream and destroys their filters", "[hcm]") {
  Fixture f;
  f.publish({Script{FilterStatus::kStop}});
  f.codec->open().decodeHeaders(Fixture::get(), false);
  f.codec->open().decodeHeaders(Fixture::get(), false);
  REQUIRE(f.made.size() == 2);
  f.conn->close(core::net::Connection::CloseType::kNoFlush);
  CHECK(f.made[0]->destroyed);
  CHECK(f.made[1]->destroyed);
  CHECK(f.stats.value(f.hcm_config->stats.rq_active) == 0);
}

TEST_CASE("hcm: while the worker drains, each stream gives the codec a drain notice before its response",
          "[hcm]") {
  Fixture f;
  auto& d = f.codec->open();
  d.decodeHeaders(Fixture::get(), true);
  CHECK(f.codec->drains == 0);
  f.draining = true;
  f.sinks[0]->respond(200, "x");
  CHECK(f.codec->drains == 1);
  f.codec->open().decodeHeaders(Fixture::get(), true);  // a new stream while draining
  CHECK(f.codec->drains == 2);
}

TEST_CASE("hcm: the drain notice closes an idle connection at once and a busy one after its response",
          "[hcm]") {
  SECTION("idle between requests") {
    Fixture f;
    auto& d = f.codec->open();
    d.decodeHeaders(Fixture::get(), true);
    f.sinks[0]->respond(200, "x");
    REQUIRE_FALSE(f.conn->closed());
    f.hcm->onDrain();
    CHECK(f.conn->closed());
  }
  SECTION("a request under way") {
    Fixture f;
    f.codec->open().decodeHeaders(Fixture::get(), true);
    f.hcm->onDrain();
    CHECK_FALSE(f.conn->closed());
    CHECK(f.codec->drains == 1);  // its response closes the connection
  }
  SECTION("no request yet: the first one is served, with the notice") {
    Fixture f;
    f.hcm->onDrain();
    CHECK_FALSE(f.conn->closed());
    CHECK(f.codec->drains == 1);
  }
  SECTION("part of a request head has arrived") {
    Fixture f;
    Buffer part;
    part.add("GET / HT");
    f.hcm->onData(part, false);
    f.hcm->onDrain();
    CHECK_FALSE(f.conn->closed());
    CHECK(f.codec->drains == 1);
  }
}

TEST_CASE("hcm: 1xx headers go to the encoder ahead of the response", "[hcm]") {
  Fixture f;
  auto& d = f.codec->open();
  d.decodeHeaders(Fixture::get(), true);
  auto early = std::make_unique<http::ResponseHeaders>();
  early->status = 103;
  f.sinks[0]->cb().encode1xxHeaders(std::move(early));
  f.sinks[0]->respond(200, "");
  CHECK(f.codec->encoders[0]->log == Log{"1xx 103", "headers 200 end"});
}

TEST_CASE("hcm: a decode error answers through the stream with the codec's status", "[hcm]") {
  Fixture f;
  auto& d = f.codec->open();
  d.decodeHeaders(Fixture::get(), false);
  d.onDecodeError(400, "bad request\n", http::ResponseFlag::kDownstreamProtocolError);
  CHECK(f.codec->encoders[0]->log == Log{"headers 400", "data bad request\n end"});
  CHECK(f.stats.value(f.hcm_config->stats.flags[static_cast<size_t>(http::ResponseFlag::kDownstreamProtocolError)]) == 1);
}

namespace {

// A connection whose TLS handshake verified a client certificate.
std::shared_ptr<core::net::TlsSessionInfo> mtls() {
  auto t = std::make_shared<core::net::TlsSessionInfo>();
  t->version = "TLSv1.3";
  t->peer_verified = true;
  t->peer_hash = "ab12";
  t->peer_subject = "CN=client,O=Acme\\, Inc";
  t->peer_uri = {"spiffe://acme/client"};
  t->peer_dns = {"client.acme"};
  return t;
}

std::string xfccSeen(config::HttpConfig::ForwardClientCert mode, std::shared_ptr<core::net::TlsSessionInfo> tls,
                     const char* from_client, std::string* proto = nullptr) {
  Fixture f(mode);
  f.net_cb.ci.setTls(std::move(tls));
  auto h = Fixture::get();
  if (from_client != nullptr) h->headers.add("x-forwarded-client-cert", from_client);
  f.codec->open().decodeHeaders(std::move(h), true);
  REQUIRE(f.sinks.size() == 1);
  if (proto != nullptr) *proto = f.sinks[0]->xfp;
  return f.sinks[0]->xfcc;
}

}  // namespace

TEST_CASE("hcm: x-forwarded-client-cert follows forward_client_cert; a client cannot forge it", "[hcm][tls]") {
  using F = config::HttpConfig::ForwardClientCert;
  const std::string mine = "Hash=ab12;Subject=\"CN=client,O=Acme\\\\, Inc\";URI=spiffe://acme/client;DNS=client.acme";
  const char* forged = "Hash=ff;Subject=\"CN=admin\"";
  std::string proto;
  // Plain connections: every mode but always_forward_only drops what the client sent.
  for (F m : {F::kSanitize, F::kSanitizeSet, F::kAppendForward, F::kForwardOnly})
    CHECK(xfccSeen(m, nullptr, forged, &proto) == "<none>");
  CHECK(proto == "http");
  CHECK(xfccSeen(F::kAlwaysForwardOnly, nullptr, forged) == forged);
  // TLS without a client certificate counts as not mTLS.
  auto no_cert = std::make_shared<core::net::TlsSessionInfo>();
  CHECK(xfccSeen(F::kSanitizeSet, no_cert, forged, &proto) == "<none>");
  CHECK(proto == "https");
  // mTLS.
  CHECK(xfccSeen(F::kSanitize, mtls(), forged) == "<none>");
  CHECK(xfccSeen(F::kSanitizeSet, mtls(), forged) == mine);
  CHECK(xfccSeen(F::kSanitizeSet, mtls(), nullptr) == mine);
  CHECK(xfccSeen(F::kAppendForward, mtls(), forged) == std::string(forged) + "," + mine);
  CHECK(xfccSeen(F::kAppendForward, mtls(), nullptr) == mine);
  CHECK(xfccSeen(F::kForwardOnly, mtls(), forged) == forged);
}

// Idle connections are most connections: between requests an HTTP/1 connection gives its HTTP
// state (codec, parser, streams) back to the worker's pool and takes it again on its next byte.
TEST_CASE("hcm: the manager an idle connection keeps is small", "[hcm][idle]") {
  // Config pointer, session pointer, request count, flags and one timer hook.
  STATIC_REQUIRE(sizeof(filters::network::HttpConnectionManager) <= 72);
}

TEST_CASE("hcm: an idle HTTP/1 connection holds no HTTP state; its next byte brings it back", "[hcm][idle]") {
  Fixture f(config::HttpConfig::ForwardClientCert::kSanitize, /*real_codec=*/true);
  CHECK_FALSE(f.hcm->holdsHttpState());  // accepted, not a byte yet
  f.send("GET /one HTTP/1.1\r\nhost: x\r\n\r\n");
  REQUIRE(f.runUntil([&] { return f.sinks.size() == 1; }));
  CHECK(f.hcm->holdsHttpState());
  f.sinks[0]->respond(200, "first");
  CHECK(f.receiveUntil("first").find("HTTP/1.1 200") == 0);
  REQUIRE(f.runUntil([&] { return !f.hcm->holdsHttpState(); }));
  CHECK(filters::network::HttpConnectionManager::pooledSessions() >= 1);
  CHECK_FALSE(f.conn->closed());

  SECTION("the next request is parsed from scratch and answered") {
    f.received.clear();
    f.send("GET /two HTTP/1.1\r\nhost: x\r\n\r\n");
    REQUIRE(f.runUntil([&] { return f.sinks.size() == 2; }));
    CHECK(f.hcm->holdsHttpState());
    CHECK(f.sinks[1]->cb().requestHeaders().path == "/two");
    f.sinks[1]->respond(200, "second");
    CHECK(f.receiveUntil("second").find("HTTP/1.1 200") == 0);
    REQUIRE(f.runUntil([&] { return !f.hcm->holdsHttpState(); }));
  }
  SECTION("a request head split over reads keeps the state until the request is done") {
    f.send("GET /thr");
    REQUIRE(f.runUntil([&] { return f.hcm->holdsHttpState(); }));
    for (int i = 0; i < 5; ++i) f.io.run_for(std::chrono::milliseconds(2));
    CHECK(f.hcm->holdsHttpState());  // a partial head is state
    CHECK(f.sinks.size() == 1);
    f.send("ee HTTP/1.1\r\nhost: x\r\n\r\n");
    REQUIRE(f.runUntil([&] { return f.sinks.size() == 2; }));
    CHECK(f.sinks[1]->cb().requestHeaders().path == "/three");
    f.sinks[1]->respond(204, "");
    REQUIRE(f.runUntil([&] { return !f.hcm->holdsHttpState(); }));
  }
  SECTION("pipelined requests are answered in order, then the state goes") {
    f.received.clear();
    f.send("GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\n\r\n");
    REQUIRE(f.runUntil([&] { return f.sinks.size() == 2; }));
    f.sinks[1]->respond(200, "aaa");
    REQUIRE(f.runUntil([&] { return f.sinks.size() == 3; }));  // the second, after the first
    CHECK(f.hcm->holdsHttpState());
    CHECK(f.sinks[2]->cb().requestHeaders().path == "/b");
    f.sinks[2]->respond(200, "bbb");
    const std::string got = f.receiveUntil("bbb");
    CHECK(got.find("aaa") < got.find("bbb"));
    REQUIRE(f.runUntil([&] { return !f.hcm->holdsHttpState(); }));
  }
  SECTION("the client's FIN while idle closes the connection") {
    ::shutdown(f.peer, SHUT_WR);
    REQUIRE(f.runUntil([&] { return f.conn->closed(); }));
  }
  SECTION("a drain notice while idle closes at once") {
    f.hcm->onDrain();
    CHECK(f.conn->closed());
  }
}
