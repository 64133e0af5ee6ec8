#include "core/http/http2/session.h"

#include <sys/uio.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/asan.h"

namespace ferry::core::http::http2 {

const char* violationName(Violation v) {
  switch (v) {
    case Violation::kRapidReset: return "rapid_reset";
    case Violation::kContinuationFlood: return "continuation_flood";
    case Violation::kHeaderListTooLarge: return "header_list_too_large";
    case Violation::kControlFrameFlood: return "control_frame_flood";
    case Violation::kEmptyFrameFlood: return "empty_frame_flood";
    case Violation::kProtocolError: return "protocol_error";
    case Violation::kCount: break;
  }
  return "unknown";
}

namespace {
constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
}

PrefaceMatch matchPreface(const Buffer& data) {
  const size_t n = std::min(data.length(), kPreface.size());
  char head[24];
  data.copyOut(0, n, head);
  if (std::memcmp(head, kPreface.data(), n) != 0) return PrefaceMatch::kNo;
  return n == kPreface.size() ? PrefaceMatch::kYes : PrefaceMatch::kNeedMore;
}

namespace detail {

bool isConnectionSpecific(std::string_view n) {
  switch (n.size()) {
    case 2: return equals(n, "te");
    case 4: return equals(n, "host");  // :authority carries it
    case 7: return equals(n, "upgrade") || equals(n, "trailer");
    case 10: return equals(n, "connection") || equals(n, "keep-alive");
    case 14: return equals(n, "http2-settings");
    case 16: return equals(n, "proxy-connection");
    case 17: return equals(n, "transfer-encoding");
    default: return false;
  }
}

namespace {
// The same name in static storage when it is one most responses carry, else nullptr.
const char* staticName(std::string_view n) {
  switch (n.size()) {
    case 4:
      if (equals(n, "date")) return "date";
      if (equals(n, "etag")) return "etag";
      if (equals(n, "vary")) return "vary";
      return nullptr;
    case 6: return equals(n, "server") ? "server" : nullptr;
    case 8: return equals(n, "location") ? "location" : nullptr;
    case 10: return equals(n, "set-cookie") ? "set-cookie" : nullptr;
    case 12: return equals(n, "content-type") ? "content-type" : nullptr;
    case 13:
      if (equals(n, "cache-control")) return "cache-control";
      if (equals(n, "last-modified")) return "last-modified";
      if (equals(n, "accept-ranges")) return "accept-ranges";
      return nullptr;
    case 14: return equals(n, "content-length") ? "content-length" : nullptr;
    case 16: return equals(n, "content-encoding") ? "content-encoding" : nullptr;
    default: return nullptr;
  }
}
}  // namespace

void NvList::addFields(const HeaderMap& h) {
  for (const auto& e : h.entries()) {
    if (e.name.empty() || e.name[0] == ':') continue;
    if (isConnectionSpecific(e.name)) {
      if (equals(e.name, "te") && HeaderMap::equalsIgnoreCase(e.value, "trailers")) addLiteralName("te", "trailers");
      continue;
    }
    if (const char* name = staticName(e.name)) {
      push(std::string_view(name, e.name.size()), e.value, NGHTTP2_NV_FLAG_NO_COPY_NAME);
    } else {
      add(e.name, e.value);
    }
  }
}

std::string_view statusText(int status, char (&buf)[4]) {
  if (status < 100 || status > 999) status = 500;
  buf[0] = static_cast<char>('0' + status / 100);
  buf[1] = static_cast<char>('0' + status / 10 % 10);
  buf[2] = static_cast<char>('0' + status % 10);
  buf[3] = 0;
  return std::string_view(buf, 3);
}

Violation violationOf(int e) {
  switch (e) {
    case NGHTTP2_ERR_FLOODED: return Violation::kControlFrameFlood;
    case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS: return Violation::kContinuationFlood;
    default: return Violation::kProtocolError;
  }
}

namespace {

ssize_t readBody(nghttp2_session* session, int32_t stream_id, uint8_t*, size_t length, uint32_t* flags,
                 nghttp2_data_source* source, void*) {
  auto* body = static_cast<OutBody*>(source->ptr);
  const size_t avail = body->data.length();
  if (avail == 0 && !body->end) {
    body->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  const size_t n = std::min(avail, length);
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (n == avail && body->end) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (body->has_trailers) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      NvList nv;
      nv.addFields(body->trailers);
      if (nghttp2_submit_trailer(session, stream_id, nv.data(), nv.size()) != 0) {
        *flags &= ~NGHTTP2_DATA_FLAG_NO_END_STREAM;  // end the stream without them
      }
      body->has_trailers = false;
    }
  }
  return static_cast<ssize_t>(n);
}

}  // namespace

nghttp2_data_provider dataProvider(OutBody* body) {
  nghttp2_data_provider p;
  p.source.ptr = body;
  p.read_callback = readBody;
  return p;
}

struct Trampolines {
  static Session& self(void* ud) { return *static_cast<Session*>(ud); }
  static ssize_t send(nghttp2_session*, const uint8_t* data, size_t len, int, void* ud) {
    self(ud).out_.add(data, len);
    return static_cast<ssize_t>(len);
  }
  static int sendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                      nghttp2_data_source* source, void* ud) {
    Session& s = self(ud);
    auto* body = static_cast<OutBody*>(source->ptr);
    s.out_.add(framehd, 9);
    const size_t pad = frame->data.padlen;
    if (pad > 0) {
      const uint8_t padlen = static_cast<uint8_t>(pad - 1);
      s.out_.add(&padlen, 1);
    }
    s.out_.move(body->data, length);  // the payload itself: no copy
    if (pad > 1) {
      static const uint8_t zeros[256] = {};
      s.out_.add(zeros, pad - 1);
    }
    s.onBodySent(frame->hd.stream_id);
    return 0;
  }
  static int beginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
    return self(ud).onBeginHeaders(frame);
  }
  static int header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                    const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
    return self(ud).onHeader(frame, std::string_view(reinterpret_cast<const char*>(name), namelen),
                             std::string_view(reinterpret_cast<const char*>(value), valuelen));
  }
  static int frameRecv(nghttp2_session*, const nghttp2_frame* frame, void* ud) { return self(ud).onFrameRecv(frame); }
  static int dataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len, void* ud) {
    return self(ud).onDataChunk(stream_id, data, len);
  }
  static int frameSent(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
    self(ud).onFrameSent(frame);
    return 0;
  }
  static int streamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* ud) {
    return self(ud).onStreamClose(stream_id, error_code);
  }
};

namespace {

nghttp2_session_callbacks* callbacks() {
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* c;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_send_callback(c, Trampolines::send);
    nghttp2_session_callbacks_set_send_data_callback(c, Trampolines::sendData);
    nghttp2_session_callbacks_set_on_begin_headers_callback(c, Trampolines::beginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(c, Trampolines::header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, Trampolines::frameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, Trampolines::dataChunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, Trampolines::streamClose);
    nghttp2_session_callbacks_set_on_frame_send_callback(c, Trampolines::frameSent);
    return c;
  }();
  return cbs;
}

}  // namespace

Session::~Session() { destroySession(); }

void Session::destroySession() {
  if (session_ != nullptr) nghttp2_session_del(session_);
  session_ = nullptr;
}

namespace {

// nghttp2's memory, recycled per thread: a session makes and frees a few small blocks for
// every stream (the stream, its header fields, the outbound DATA item), which would be a
// malloc and a free each. Blocks come in size classes and go back to their thread's free
// list (at most kMaxFree per class; a burst beyond it goes back to malloc). Each block starts
// with a 16-byte header naming its class, which keeps nghttp2's pointers 16-byte aligned.
// A session lives on one worker thread; a block freed on another thread would simply join
// that thread's list. Under AddressSanitizer the blocks on a list are poisoned.
constexpr size_t kHeader = 16;
constexpr size_t kClassSize[] = {64, 128, 256, 512, 1024, 2048, 4096};  // usable bytes
constexpr size_t kClasses = sizeof kClassSize / sizeof kClassSize[0];
constexpr uint32_t kUnpooled = 0xFFFFFFFF;
constexpr size_t kMaxFree = 1024;

struct FreeNode {
  FreeNode* next;
};

void poisonBlock(void* base, size_t cls) { asanPoison(base, kHeader + kClassSize[cls]); }
void unpoisonBlock(void* base, size_t cls) { asanUnpoison(base, kHeader + kClassSize[cls]); }

struct H2MemPool {
  FreeNode* head[kClasses] = {};
  size_t count[kClasses] = {};
  ~H2MemPool() {
    gone = true;
    for (size_t c = 0; c < kClasses; ++c)
      while (head[c] != nullptr) {
        FreeNode* n = head[c];
        unpoisonBlock(n, c);
        head[c] = n->next;
        std::free(n);
      }
  }
  // Set when this thread's pool is destroyed (trivially destructible: readable after).
  static inline thread_local bool gone = false;
};
thread_local H2MemPool tl_h2mem;

uint32_t& classOf(void* user) { return *reinterpret_cast<uint32_t*>(static_cast<uint8_t*>(user) - kHeader); }

void* h2Malloc(size_t size, void*) {
  size_t c = 0;
  while (c < kClasses && kClassSize[c] < size) ++c;
  void* base = nullptr;
  if (c == kClasses || H2MemPool::gone) {
    base = std::malloc(kHeader + size);
    if (base == nullptr) return nullptr;
    c = kUnpooled;
  } else if (FreeNode* n = tl_h2mem.head[c]; n != nullptr) {
    unpoisonBlock(n, c);
    tl_h2mem.head[c] = n->next;
    --tl_h2mem.count[c];
    base = n;
  } else {
    base = std::malloc(kHeader + kClassSize[c]);
    if (base == nullptr) return nullptr;
  }
  *static_cast<uint32_t*>(base) = static_cast<uint32_t>(c);
  return static_cast<uint8_t*>(base) + kHeader;
}

void h2Free(void* ptr, void*) {
  if (ptr == nullptr) return;
  const uint32_t c = classOf(ptr);
  void* base = static_cast<uint8_t*>(ptr) - kHeader;
  if (c == kUnpooled || H2MemPool::gone || tl_h2mem.count[c] >= kMaxFree) {
    std::free(base);
    return;
  }
  auto* n = static_cast<FreeNode*>(base);
  n->next = tl_h2mem.head[c];
  tl_h2mem.head[c] = n;
  ++tl_h2mem.count[c];
  poisonBlock(base, c);
}

void* h2Calloc(size_t n, size_t size, void* ud) {
  if (size != 0 && n > (SIZE_MAX - kHeader) / size) return nullptr;
  void* p = h2Malloc(n * size, ud);
  if (p != nullptr) std::memset(p, 0, n * size);
  return p;
}

void* h2Realloc(void* ptr, size_t size, void* ud) {
  if (ptr == nullptr) return h2Malloc(size, ud);
  if (size == 0) {
    h2Free(ptr, ud);
    return nullptr;
  }
  const uint32_t c = classOf(ptr);
  if (c != kUnpooled && size <= kClassSize[c]) return ptr;
  if (c == kUnpooled) {
    void* base = std::realloc(static_cast<uint8_t*>(ptr) - kHeader, kHeader + size);
    return base == nullptr ? nullptr : static_cast<uint8_t*>(base) + kHeader;
  }
  void* p = h2Malloc(size, ud);
  if (p == nullptr) return nullptr;
  std::memcpy(p, ptr, kClassSize[c]);
  h2Free(ptr, ud);
  return p;
}

nghttp2_mem h2_mem{nullptr, h2Malloc, h2Free, h2Calloc, h2Realloc};

}  // namespace

nghttp2_mem* sessionMemory() { return &h2_mem; }

void Session::init(bool server, const Options& o) {
  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  // Windows are reopened by hand, as the stream's reader takes the bytes (flow control).
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_outbound_ack(opt, o.max_outbound_control_frames);
  nghttp2_option_set_max_continuations(opt, o.max_continuations);
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, o.hpack_table_size);
  nghttp2_option_set_max_send_header_block_length(opt, 256 * 1024);
  // Rapid reset is counted by the server connection itself (with a metric); this is only
  // nghttp2's own backstop, far above it.
  nghttp2_option_set_stream_reset_rate_limit(opt, 10000, 1000);
  if (!server) nghttp2_option_set_peer_max_concurrent_streams(opt, o.max_streams_per_connection);
  if (server) {
    nghttp2_session_server_new3(&session_, callbacks(), this, opt, sessionMemory());
  } else {
    nghttp2_session_client_new3(&session_, callbacks(), this, opt, sessionMemory());
  }
  nghttp2_option_del(opt);

  nghttp2_settings_entry settings[5];
  size_t n = 0;
  settings[n++] = {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, o.initial_stream_window_size};
  settings[n++] = {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, o.hpack_table_size};
  settings[n++] = {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, o.max_header_list_bytes};
  settings[n++] = server ? nghttp2_settings_entry{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, o.max_concurrent_streams}
                         : nghttp2_settings_entry{NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
  // RFC 7540's priority tree is not used (RFC 9113 deprecates it): said to the peer (RFC 9218
  // 2.1), and nghttp2 then keeps no tree and no closed streams for it. PRIORITY frames and
  // HEADERS priorities are still accepted, and ignored.
  settings[n++] = {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, n);
  if (o.initial_connection_window_size > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE) {
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                          static_cast<int32_t>(o.initial_connection_window_size));
  }
}

int Session::receive(Buffer& data) {
  iovec iov[8];
  while (!data.empty()) {
    const size_t n = data.gather(iov, 8);
    size_t used = 0;
    for (size_t i = 0; i < n; ++i) {
      const ssize_t rv =
          nghttp2_session_mem_recv(session_, static_cast<const uint8_t*>(iov[i].iov_base), iov[i].iov_len);
      if (rv < 0) {
        data.clear();
        return static_cast<int>(rv);
      }
      used += iov[i].iov_len;
    }
    data.drain(used);
  }
  return 0;
}

int Session::serialize() { return nghttp2_session_send(session_); }

}  // namespace detail
}  // namespace ferry::core::http::http2
