// The HTTP/2 flood defences against the real ferry binary, each with its counter: rapid reset,
// CONTINUATION, header lists and trailers over the limits, control frames from a client that
// does not read, empty DATA frames. Helpers in http2_support.h.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <regex>

#include "tests/integration/http2_support.h"

using namespace ferry::testing;
using namespace ferry::testing::h2test;


// ---- 6: flood defences

TEST_CASE("http2: rapid reset ends the connection with GOAWAY ENHANCE_YOUR_CALM", "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const uint16_t port = f->port("web");
  const double before = metric(*f, violationKey("rapid_reset"));
  REQUIRE(before >= 0);
  Json j = runScript("rapid_reset.py", port, {"--streams", "1000"});
  INFO(j["sent"].num());
  floodHandled(*f, port, j, "rapid_reset", before);
  // The burst (200) passed before the connection ended: nothing less trips it.
  CHECK(j["sent"].num() >= 200);
  exitsCleanly(*f);
}

TEST_CASE("http2: cancelling fewer streams than max_resets_burst is not a rapid reset", "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const uint16_t port = f->port("web");
  const double before = metric(*f, violationKey("rapid_reset"));
  REQUIRE(before >= 0);
  // 150 cancelled streams, then a request on the same connection: served.
  Json j = runScript("rapid_reset.py", port, {"--streams", "150", "--then-get"});
  CHECK(j["sent"].num() == 150);
  CHECK(j["get"]["status"].num() == 200);
  CHECK(j["get"]["body"].str() == "ok:/after-resets");
  CHECK(goaways(j).empty());
  CHECK(!truthy(j["closed"]));
  CHECK(metric(*f, violationKey("rapid_reset")) == before);
  exitsCleanly(*f);
}

TEST_CASE("http2: a CONTINUATION flood ends the connection (max_continuations 8)", "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const uint16_t port = f->port("web");
  const double before = metric(*f, violationKey("continuation_flood"));
  REQUIRE(before >= 0);
  // 50,000 frames of 1 kB: far more than the kernel and ferry's receive buffers can take in
  // before ferry reads the 9th frame and closes (on io_uring the provided-buffer ring alone
  // holds 4 MiB, so a 1 MB flood could be absorbed whole by a slow, sanitized ferry).
  Json j = runScript("continuation_flood.py", port, {"--frames", "50000", "--field", "1000"});
  REQUIRE(j["connections"].arr().size() == 1);
  const Json& c = j["connections"].arr()[0];
  CHECK(c["sent"].num() < 50000);  // ferry closed before the flood was over
  CHECK(up.requestCount() == 0);   // the header block never completed
  floodHandled(*f, port, c, "continuation_flood", before);
  exitsCleanly(*f);
}

// With max_continuations 1000, each header block is ~16 MB of fields before the limit ends it:
// past max_request_headers_kb the fields are dropped as they are decoded, so ferry's memory does
// not follow.
TEST_CASE("http2: 16 MB header blocks in CONTINUATION frames do not grow ferry's memory", "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port(), "      http2:\n        max_continuations: 1000\n"));
  const uint16_t port = f->port("web");
  const double before = metric(*f, violationKey("continuation_flood"));
  REQUIRE(before >= 0);
  const long rss_before = f->rssKb();
  Json many = runScript("continuation_flood.py", port, {"--frames", "1010", "--field", "16000", "--connections", "4"}, 30s);
  REQUIRE(many["connections"].arr().size() == 4);
  for (const auto& one : many["connections"].arr()) {
    CHECK(one["sent"].num() >= 1000);  // the limit, not something earlier, ended it
    auto g = goaways(one);
    CHECK((!g.empty() && g.back().second == kEnhanceYourCalm));
  }
  CHECK(waitMetric(f->adminPort(), violationKey("continuation_flood"), before + 4));
  CHECK(up.requestCount() == 0);
  if (!sanitized()) {
    const long rss_after = f->rssKb();
    INFO("rss before " << rss_before << " kB, after " << rss_after << " kB");
    CHECK(rss_after - rss_before < 8 * 1024);
  }
  stillServes(*f, port);
  exitsCleanly(*f);
}

TEST_CASE("http2: a header list over max_request_headers_kb or max_headers gets 431 on its stream; the connection "
          "goes on",
          "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port(), "      max_request_headers_kb: 1\n      max_headers: 20\n"));
  const uint16_t port = f->port("web");
  const std::vector<std::vector<std::string>> cases{{"--size", "4096"}, {"--fields", "40"}};
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO("case " << cases[i][0]);
    const double before = metric(*f, violationKey("header_list_too_large"));
    REQUIRE(before >= 0);
    Json j = runScript("header_list.py", port, cases[i]);
    CHECK(j["big"]["status"].num() == 431);
    CHECK(j["small"]["status"].num() == 200);
    CHECK(j["small"]["body"].str() == "ok:/after");
    CHECK(goaways(j).empty());
    CHECK(!truthy(j["closed"]));
    CHECK(waitAbove(*f, violationKey("header_list_too_large"), before) == before + 1);
    // Only the second request went upstream.
    REQUIRE(up.waitRequests(i + 1));
    CHECK(up.requestCount() == i + 1);
    CHECK(up.requests()[i].target == "/after");
  }
  stillServes(*f, port);
  exitsCleanly(*f);
}

TEST_CASE("http2: request trailers over max_request_headers_kb reset their stream; the connection goes on",
          "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port(), "      max_request_headers_kb: 1\n"));
  const uint16_t port = f->port("web");
  const double before = metric(*f, violationKey("header_list_too_large"));
  REQUIRE(before >= 0);
  Json j = runScript("big_trailers.py", port, {"--size", "4096"});
  CHECK(j["big"]["reset"].num() == 1);  // PROTOCOL_ERROR
  CHECK(j["big"]["status"].isNull());
  CHECK(j["small"]["status"].num() == 200);
  CHECK(j["small"]["body"].str() == "ok:/after");
  CHECK(goaways(j).empty());
  CHECK(waitAbove(*f, violationKey("header_list_too_large"), before) == before + 1);
  // The upstream never got a complete /big-trailers request.
  REQUIRE(up.waitRequests(1));
  for (const auto& r : up.requests()) CHECK(r.target != "/big-trailers");
  stillServes(*f, port);
  exitsCleanly(*f);
}

// nghttp2 counts an acknowledgement from the frame that asks for it until it is serialised,
// and the codec serialises after each read (up to 256 KiB: 15420 PINGs) unless the connection's
// write buffer is above its high watermark (1 MiB). With max_outbound_control_frames above what
// one read can carry, only acknowledgements held back by a client that does not read trip it.
// The client still reads nothing afterwards: ferry must not wait for it to take the GOAWAY.
TEST_CASE("http2: PING and SETTINGS floods from a client that does not read end the connection (control_frame_flood)",
          "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port(), "      http2:\n        max_outbound_control_frames: 20000\n"));
  const uint16_t port = f->port("web");
  const uint16_t admin = f->adminPort();
  for (const std::string frame : {"ping", "settings"}) {
    INFO("frame " << frame);
    const double before = metric(*f, violationKey("control_frame_flood"));
    REQUIRE(before >= 0);
    auto client = startScript("ping_flood.py", port, {"--frame", frame, "--count", "2000000", "--batch", "100", "--hold"});
    REQUIRE(client->waitForLog("SENT", 30s));
    CHECK(waitAbove(*f, violationKey("control_frame_flood"), before) == before + 1);
    // Gone, with its buffers, although the client has not read a byte.
    CHECK(waitMetric(admin, "ferry_downstream_connections_active{listener=\"web\"}", 0, 5s));
    CHECK(waitMetric(admin, "ferry_buffered_bytes", 0, 5s));
    client->signal(SIGUSR1);
    auto code = client->waitExit(20s);
    const std::string log = client->log();
    INFO(log);
    REQUIRE(code.has_value());
    REQUIRE(*code == 0);
    auto j = resultOf(log);
    REQUIRE(j.has_value());
    INFO("sent " << (*j)["sent"].num() << " frames, " << (*j)["sent_bytes"].num() << " bytes; acks read "
                 << (*j)["acks"].num());
    CHECK(truthy((*j)["write_failed"]));   // ferry closed the connection under the client's writes
    CHECK(!truthy((*j)["send_blocked"]));  // ...and never stopped reading before that
    CHECK((*j)["sent"].num() < 2000000);
    // The acknowledgements had to fill ferry's write buffer past 1 MiB first.
    CHECK((*j)["sent_bytes"].num() > (1 << 20));
    CHECK(truthy((*j)["closed"]));
    stillServes(*f, port);
  }
  exitsCleanly(*f);
}

TEST_CASE("http2: a flood of empty DATA frames ends the connection", "[http2][flood]") {
  HttpUpstream up;
  auto f = FerryProcess::start(h2cConfig(up.port()));
  const uint16_t port = f->port("web");
  const double before = metric(*f, violationKey("empty_frame_flood"));
  REQUIRE(before >= 0);
  Json j = runScript("empty_frames.py", port, {"--frames", "100"});
  floodHandled(*f, port, j, "empty_frame_flood", before);
  exitsCleanly(*f);
}
