// HTTP/2 stream-level connections on nghttp2: the server side (ServerConnection) and the
// client side (ClientConnection) of core/http/codec.h, so the connection manager, filters and
// the router run unchanged over HTTP/2.
//
// - Sending: nghttp2_session_send() serialises into one Buffer per flush; DATA payloads are
//   moved from the stream's buffer without a copy (NGHTTP2_DATA_FLAG_NO_COPY); the owner's
//   connection corks what one event writes into one sendmsg.
// - Flow control: received DATA is consumed (the window reopened) only while the stream's
//   reader is not read-disabled, so a slow consumer stops the peer at one window per stream.
//   A stream's send buffer raises the watermark callbacks. While the connection's write
//   buffer is above its high watermark nothing more is serialised, so control frames a peer
//   provokes (PING and SETTINGS acknowledgements) queue in nghttp2 and trip its limit.
// - Edge defences (counted per Violation): rapid reset, CONTINUATION floods, header lists over
//   the size or count limit, control-frame (ack) floods, empty-frame floods, stream caps by
//   SETTINGS_MAX_CONCURRENT_STREAMS.
// - Drain: the two-step GOAWAY (2^31-1 with a PING, then the last stream id once the PING is
//   acknowledged); the connection closes once its streams are done.
//
// Threading: worker-local; no I/O of its own (writes through CodecIo).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/buffer.h"
#include "core/http/codec.h"
#include "core/stats.h"

namespace ferry::core::http::http2 {

// Limits and windows. Defaults below Envoy 1.36's (1024 streams, 16 MiB / 24 MiB windows).
struct Options {
  uint32_t max_concurrent_streams = 100;
  uint32_t initial_stream_window_size = 1 << 20;      // 1 MiB
  uint32_t initial_connection_window_size = 4 << 20;  // 4 MiB
  uint32_t hpack_table_size = 4096;                   // HPACK dynamic table, both directions
  uint32_t max_header_list_bytes = 60 * 1024;         // names + values of one header block
  uint32_t max_headers = 100;                         // fields of one header block
  uint32_t max_outbound_control_frames = 1000;        // queued PING/SETTINGS acks
  uint32_t max_consecutive_empty_frames = 1;          // DATA without payload nor END_STREAM
  uint32_t max_continuations = 8;                     // CONTINUATION frames per header block
  // Rapid reset (CVE-2023-44487): streams the peer resets before their response completes,
  // a token bucket of `max_resets_burst` refilled at `max_resets_per_second`.
  uint32_t max_resets_per_second = 100;
  uint32_t max_resets_burst = 200;
  // Client side: streams one upstream connection carries at once (also bounded by the
  // server's SETTINGS_MAX_CONCURRENT_STREAMS).
  uint32_t max_streams_per_connection = 100;
};

enum class Violation {
  kRapidReset,
  kContinuationFlood,
  kHeaderListTooLarge,
  kControlFrameFlood,
  kEmptyFrameFlood,
  kProtocolError,
  kCount,
};
const char* violationName(Violation v);

// Counters a codec bumps, in its worker's shard. Optional (null: not counted).
struct Stats {
  StatsShard* shard = nullptr;
  std::array<StatHandle, static_cast<size_t>(Violation::kCount)> violations{};
};

std::unique_ptr<ServerConnection> makeServerConnection(CodecIo& io, ServerConnectionCallbacks& callbacks,
                                                       const Options& options, const Stats* stats = nullptr);
std::unique_ptr<ClientConnection> makeClientConnection(CodecIo& io, ClientConnectionCallbacks& callbacks,
                                                       const Options& options = {}, const Stats* stats = nullptr);

// The client connection preface ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") at the start of `data`:
// kYes, kNo, or kNeedMore while what arrived is a strict prefix of it.
enum class PrefaceMatch { kNo, kYes, kNeedMore };
PrefaceMatch matchPreface(const Buffer& data);

}  // namespace ferry::core::http::http2
