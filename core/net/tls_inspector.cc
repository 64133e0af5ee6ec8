// TLS ClientHello parser and the TLS inspector listener filter.
//
// The parser is stateless: callers re-invoke it with the whole stream received so far. It
// walks the record headers first (cheap, no copies) and rejects a stream as soon as a record
// header is impossible (not a handshake record, major version not 3, length 0 or above 2^14,
// a first handshake byte other than client_hello, a length past the 64 KiB limit); the body is
// parsed once the whole handshake message has arrived, in place when one record holds it
// (the common case), else from a copy reassembled from the fragments.
//
// Decisions where the specs leave room:
//  - Only the record headers' major version (3) is checked, not the minor (clients send
//    0x0301 in the first record for compatibility, 0x0303 later).
//  - Bytes after the ClientHello (rest of its record, later records) are not looked at.
//  - A ClientHello without extensions (SSL 3.0 / TLS 1.0 style) is valid: no SNI, no ALPN.
//  - server_name must hold exactly one entry, of type host_name, as OpenSSL and BoringSSL
//    require (RFC 6066 left the list's extensibility unusable). The name must be 1 to 255
//    bytes of letters, digits, '-', '.', '_' (no NUL, no bytes above 0x7F: it picks a route);
//    it is lower-cased. IP literals (RFC 6066 forbids them; some clients send them) and a
//    trailing dot are kept as sent.
//  - ALPN: a non-empty list of non-empty names, kept as opaque bytes.
//  - A repeated server_name or ALPN extension is an error (RFC 8446 4.2 forbids repeating
//    any extension; only the two that pick a route are checked). Other extensions are
//    skipped after their length is checked against the block.
#include "core/net/tls_inspector.h"

#include <algorithm>
#include <cstring>

#include "core/event/worker_context.h"
#include "core/log.h"
#include "core/net/listener.h"
#include "core/net/socket_util.h"

namespace ferry::core::net {
namespace {

constexpr uint8_t kHandshakeRecord = 22;
constexpr uint8_t kClientHelloType = 1;
constexpr size_t kRecordHeaderLen = 5;
constexpr size_t kMaxRecordLen = 16384;  // TLSPlaintext.length <= 2^14
constexpr size_t kHandshakeHeaderLen = 4;
constexpr uint16_t kExtServerName = 0;
constexpr uint16_t kExtAlpn = 16;
constexpr size_t kMaxHostNameLen = 255;

ClientHelloParse fail(std::string* error, const char* why) {
  if (error != nullptr) *error = why;
  return ClientHelloParse::kError;
}

// A bounds-checked cursor over [p, end): a read that does not fit fails and moves nothing.
class Reader {
 public:
  Reader() = default;
  Reader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  size_t left() const { return static_cast<size_t>(end_ - p_); }
  const uint8_t* data() const { return p_; }
  bool u8(uint8_t* v) {
    if (left() < 1) return false;
    *v = *p_++;
    return true;
  }
  bool u16(uint16_t* v) {
    if (left() < 2) return false;
    *v = static_cast<uint16_t>((p_[0] << 8) | p_[1]);
    p_ += 2;
    return true;
  }
  bool skip(size_t n) {
    if (left() < n) return false;
    p_ += n;
    return true;
  }
  // A vector with a 1- or 2-byte length prefix (RFC 8446 3.4): *sub covers its contents.
  bool vec8(Reader* sub) {
    uint8_t n = 0;
    return u8(&n) && take(n, sub);
  }
  bool vec16(Reader* sub) {
    uint16_t n = 0;
    return u16(&n) && take(n, sub);
  }

 private:
  bool take(size_t n, Reader* sub) {
    if (left() < n) return false;
    *sub = Reader(p_, n);
    p_ += n;
    return true;
  }
  const uint8_t* p_ = nullptr;
  const uint8_t* end_ = nullptr;
};

bool hostNameChar(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

// server_name (RFC 6066 3): ServerNameList server_name_list<1..2^16-1>, here exactly one
// host_name entry.
bool parseServerName(Reader ext, std::string* name, std::string* error) {
  Reader list, host;
  uint8_t type = 0;
  if (!ext.vec16(&list) || ext.left() != 0 || !list.u8(&type) || !list.vec16(&host) ||
      list.left() != 0 || type != 0) {
    fail(error, "bad server_name extension");
    return false;
  }
  if (host.left() == 0 || host.left() > kMaxHostNameLen ||
      !std::all_of(host.data(), host.data() + host.left(), hostNameChar)) {
    fail(error, "bad server name");
    return false;
  }
  name->assign(reinterpret_cast<const char*>(host.data()), host.left());
  for (char& c : *name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return true;
}

// application_layer_protocol_negotiation (RFC 7301 3.1):
// ProtocolName protocol_name_list<2..2^16-1>, ProtocolName<1..2^8-1>.
bool parseAlpn(Reader ext, std::vector<std::string>* alpn, std::string* error) {
  Reader list;
  if (!ext.vec16(&list) || ext.left() != 0 || list.left() == 0) {
    fail(error, "bad ALPN extension");
    return false;
  }
  while (list.left() > 0) {
    Reader name;
    if (!list.vec8(&name) || name.left() == 0) {
      fail(error, "bad ALPN extension");
      return false;
    }
    alpn->emplace_back(reinterpret_cast<const char*>(name.data()), name.left());
  }
  return true;
}

// The ClientHello body (after the 4-byte handshake header), RFC 8446 4.1.2 / RFC 5246
// 7.4.1.2: every length inside its parent, the extensions block exactly filling the rest.
ClientHelloParse parseBody(const uint8_t* body, size_t n, ClientHelloInfo* out,
                           std::string* error) {
  Reader r(body, n);
  uint8_t major = 0, minor = 0;
  if (!r.u8(&major) || !r.u8(&minor) || !r.skip(32)) return fail(error, "ClientHello too short");
  if (major != 3) return fail(error, "bad ClientHello version");
  Reader session, ciphers, compression;
  if (!r.vec8(&session) || session.left() > 32) return fail(error, "bad ClientHello session id");
  if (!r.vec16(&ciphers) || ciphers.left() == 0 || ciphers.left() % 2 != 0) {
    return fail(error, "bad ClientHello cipher suites");
  }
  if (!r.vec8(&compression) || compression.left() == 0) {
    return fail(error, "bad ClientHello compression methods");
  }
  ClientHelloInfo info;
  info.looked_like_tls = true;
  if (r.left() > 0) {
    Reader exts;
    if (!r.vec16(&exts) || r.left() != 0) return fail(error, "bad ClientHello extensions length");
    bool sawServerName = false, sawAlpn = false;
    while (exts.left() > 0) {
      uint16_t type = 0;
      Reader ext;
      if (!exts.u16(&type) || !exts.vec16(&ext)) return fail(error, "bad ClientHello extension length");
      if (type == kExtServerName) {
        if (sawServerName) return fail(error, "repeated server_name extension");
        sawServerName = true;
        if (!parseServerName(ext, &info.server_name, error)) return ClientHelloParse::kError;
      } else if (type == kExtAlpn) {
        if (sawAlpn) return fail(error, "repeated ALPN extension");
        sawAlpn = true;
        if (!parseAlpn(ext, &info.alpn, error)) return ClientHelloParse::kError;
      }
    }
  }
  if (out != nullptr) *out = std::move(info);
  return ClientHelloParse::kDone;
}

}  // namespace

ClientHelloParse parseClientHello(const uint8_t* data, size_t len, ClientHelloInfo* out,
                                  std::string* error) {
  if (out != nullptr) out->looked_like_tls = false;
  if (len >= 1 && data[0] != kHandshakeRecord) return fail(error, "not a TLS ClientHello");
  if (len >= 2 && data[1] != 3) return fail(error, "not a TLS ClientHello");
  if (len < 2) return ClientHelloParse::kNeedMore;
  if (out != nullptr) out->looked_like_tls = true;

  uint8_t hs[kHandshakeHeaderLen] = {};  // the handshake header, which may span records
  size_t have = 0;  // handshake bytes present so far, over all records
  size_t need = 0;  // the whole handshake message, once its header is in
  size_t pos = 0;   // the current record header
  for (;;) {
    // Another record needs a header and at least one byte of fragment inside the limit.
    if (pos + kRecordHeaderLen + 1 > kMaxClientHelloBytes) {
      return fail(error, "ClientHello longer than 64 KiB");
    }
    const size_t avail = len - pos;
    if (avail >= 1 && data[pos] != kHandshakeRecord) {
      return fail(error, "ClientHello interleaved with another record type");
    }
    if (avail >= 2 && data[pos + 1] != 3) return fail(error, "bad TLS record version");
    if (avail < kRecordHeaderLen) return ClientHelloParse::kNeedMore;
    const size_t recordLen = (static_cast<size_t>(data[pos + 3]) << 8) | data[pos + 4];
    if (recordLen == 0 || recordLen > kMaxRecordLen) return fail(error, "bad TLS record length");
    const size_t fragment = pos + kRecordHeaderLen;
    const size_t recordEnd = fragment + recordLen;
    if (recordEnd > kMaxClientHelloBytes) return fail(error, "ClientHello longer than 64 KiB");

    const size_t got = std::min(recordEnd, len) - fragment;
    for (size_t i = have; i < kHandshakeHeaderLen && i < have + got; ++i) {
      hs[i] = data[fragment + (i - have)];
    }
    have += got;
    if (have >= 1 && hs[0] != kClientHelloType) return fail(error, "not a TLS ClientHello");
    if (need == 0 && have >= kHandshakeHeaderLen) {
      need = kHandshakeHeaderLen + ((static_cast<size_t>(hs[1]) << 16) | (hs[2] << 8) | hs[3]);
      if (kRecordHeaderLen + need > kMaxClientHelloBytes) {
        return fail(error, "ClientHello longer than 64 KiB");
      }
    }
    if (need != 0 && have >= need) break;
    if (recordEnd > len) return ClientHelloParse::kNeedMore;
    pos = recordEnd;
  }

  if (pos == 0) {  // one record holds the whole message
    return parseBody(data + kRecordHeaderLen + kHandshakeHeaderLen, need - kHandshakeHeaderLen, out,
                     error);
  }
  // Reassemble the fragments (their record headers are checked above).
  std::vector<uint8_t> msg;
  msg.reserve(need);
  for (size_t p = 0; msg.size() < need;) {
    const size_t recordLen = (static_cast<size_t>(data[p + 3]) << 8) | data[p + 4];
    const size_t n = std::min(recordLen, need - msg.size());
    msg.insert(msg.end(), data + p + kRecordHeaderLen, data + p + kRecordHeaderLen + n);
    p += kRecordHeaderLen + recordLen;
  }
  return parseBody(msg.data() + kHandshakeHeaderLen, need - kHandshakeHeaderLen, out, error);
}

TlsInspectorStats registerTlsInspectorStats(StatsStore& stats, const std::string& listener) {
  const std::vector<std::pair<std::string, std::string>> labels = {{"listener", listener}};
  TlsInspectorStats s;
  s.client_hellos = stats.counter("ferry_tls_inspector_client_hellos_total", labels,
                                  "TLS ClientHellos read by the TLS inspector.");
  s.errors = stats.counter("ferry_tls_inspector_errors_total", labels,
                           "Connections the TLS inspector closed: not TLS, or a malformed or "
                           "truncated ClientHello.");
  s.timeouts = stats.counter("ferry_tls_inspector_timeouts_total", labels,
                             "Connections closed for no complete ClientHello in time.");
  return s;
}

namespace {

class TlsInspectorFilter final : public ListenerFilter {
 public:
  explicit TlsInspectorFilter(const TlsInspectorStats& stats) : stats_(stats) {}

  ListenerFilterStatus onData(Buffer& raw, bool end_stream, ListenerFilterContext& ctx) override {
    // Nothing drains the buffer while this filter runs (earlier filters are done, and this one
    // consumes nothing), so only the bytes past the copy are new.
    const size_t want = std::min(raw.length(), kMaxClientHelloBytes);
    if (want > seen_.size()) {
      const size_t old = seen_.size();
      seen_.resize(want);
      raw.copyOut(old, want - old, seen_.data() + old);
    }
    ClientHelloInfo hello;
    std::string why;
    switch (parseClientHello(seen_.data(), seen_.size(), &hello, &why)) {
      case ClientHelloParse::kNeedMore:
        if (!end_stream) return ListenerFilterStatus::kNeedMore;
        if (seen_.empty()) return ListenerFilterStatus::kClose;  // closed before a byte: no error
        why = "connection closed inside the ClientHello";
        break;
      case ClientHelloParse::kDone: {
        TlsClientHello seen;
        seen.server_name = std::move(hello.server_name);
        seen.alpn = std::move(hello.alpn);
        ctx.info.setClientHello(std::move(seen));
        ctx.worker.stats->inc(stats_.client_hellos);
        std::vector<uint8_t>().swap(seen_);  // the filter lives as long as the connection
        return ListenerFilterStatus::kContinue;
      }
      case ClientHelloParse::kError:
        break;
    }
    FERRY_LOG(kDebug, "listener ", ctx.listener.name, ": no TLS ClientHello from ",
              formatSockaddr(ctx.info.remote), ": ", why);
    ctx.worker.stats->inc(stats_.errors);
    return ListenerFilterStatus::kClose;
  }

  void onTimeout(ListenerFilterContext& ctx) override {
    FERRY_LOG(kDebug, "listener ", ctx.listener.name, ": no complete TLS ClientHello in time from ",
              formatSockaddr(ctx.info.remote), " (", seen_.size(), " bytes)");
    ctx.worker.stats->inc(stats_.timeouts);
  }

 private:
  const TlsInspectorStats stats_;
  std::vector<uint8_t> seen_;  // the stream's first bytes (up to kMaxClientHelloBytes)
};

}  // namespace

ListenerFilterFactory tlsInspectorFilter(std::chrono::milliseconds timeout, TlsInspectorStats stats) {
  return ListenerFilterFactory{
      [stats] { return std::make_unique<TlsInspectorFilter>(stats); }, timeout};
}

}  // namespace ferry::core::net
