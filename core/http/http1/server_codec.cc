// ServerCodec: downstream HTTP/1.x requests in, responses out.
//
// Request strictness decisions (each a 400 unless noted; none of the message reaches the
// callbacks before the head has fully validated):
// - Request line exactly "METHOD SP request-target SP HTTP/1.0|HTTP/1.1": extra spaces, RTSP,
//   HTTP/0.9 and HTTP/2.0 are a 400 (not 505: the contract maps malformed requests to 400).
// - Methods: those llhttp knows (GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH,
//   WebDAV...); any other token is a 400. "PRI * HTTP/2.0" (an h2c preface) is a 400 here:
//   preface detection belongs to the listener.
// - request-target: origin-form "/..." ; "*" only for OPTIONS; authority-form host:port only (and
//   always) for CONNECT; absolute-form "http(s)://authority[/path][?query]" accepted: path and
//   authority come from it (the Host header must still be present once for HTTP/1.1 but the
//   URI's authority wins, RFC 9112 3.2.2); userinfo in it is a 400. '#' (fragment) and '\' are
//   rejected (a backend that reads '\' as '/' would see a different path than the router did).
// - Host: required once for HTTP/1.1, at most once for HTTP/1.0; must be a valid authority
//   (may be empty, as RFC 9112 allows). Stored in RequestHeaders::authority, removed from headers.
// - Header names: token characters, non-empty; values: no CTL except HTAB, no DEL (obs-text
//   0x80-0xFF allowed, as RFC 9110 5.5 does). Whitespace before the colon, obs-fold, bare LF /
//   bare CR anywhere in the head, chunk lines or trailers: 400.
// - Content-Length: at most once (repeated identical values are rejected, not merged), digits
//   only, no overflow; with Transfer-Encoding: 400.
// - Transfer-Encoding: exactly one field line whose value is "chunked" (any case); anything else
//   (gzip, "gzip, chunked", "chunked, chunked") is a 400, as is any Transfer-Encoding in an
//   HTTP/1.0 request (RFC 9112 6.1: framing is faulty).
// - CONNECT with a body (Content-Length > 0 or Transfer-Encoding): 400 (CONNECT has no content;
//   the bytes after the head are the tunnel).
// - An Upgrade request carrying a body is handled as a plain request (the upgrade is ignored,
//   like nginx): the body is framed by its Content-Length/chunked and parsing goes on.
//   "Upgrade: h2c" is never an upgrade here: Ferry does not do h2c upgrades, so the upgrade,
//   http2-settings headers are removed and the request is an ordinary HTTP/1.1 request.
// - Limits: head bytes > max_header_bytes or header lines > max_headers: 431; the same for a
//   trailer section. A chunk line (size + extensions) longer than max_header_bytes: 400.
// - Chunk-size overflow and invalid chunk framing: 400 (llhttp).
// - Chunked trailers named content-length, transfer-encoding or host: 400.
// - Header names that become content-length, transfer-encoding or host when '_' is read as '-'
//   ("Transfer_Encoding"): 400. Other names with '_' pass.
#include <charconv>
#include <string>
#include <utility>

#include "core/http/http1/codec.h"
#include "core/http/http1/message_parser.h"

namespace ferry::core::http::http1 {

using namespace std::string_view_literals;

using detail::BodyEncoder;
using detail::MessageParser;
using detail::validAuthority;
using detail::validFieldName;

namespace {

bool validTargetChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f && c != '#' && c != '\\';
}

bool validPathAndQuery(std::string_view s) {
  for (char c : s)
    if (!validTargetChar(c)) return false;
  return true;
}

bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && HeaderMap::equalsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

// Fills path and authority from the request-target; returns an error detail or nullptr.
const char* parseTarget(std::string_view method, std::string_view target, RequestHeaders& h,
                        bool& absolute) {
  absolute = false;
  if (equals(method, "CONNECT")) {
    if (!validAuthority(target, true) || target.find('@') != std::string_view::npos)
      return "CONNECT needs an authority-form target (host:port)";
    h.path.assign(target);
    h.authority.assign(target);
    return nullptr;
  }
  if (equals(target, "*")) {
    if (!equals(method, "OPTIONS")) return "asterisk-form target is only for OPTIONS";
    h.path = "*";
    return nullptr;
  }
  if (target.front() == '/') {
    if (!validPathAndQuery(target)) return "invalid character in request-target";
    copyInto(h.path, target);
    return nullptr;
  }
  std::string_view rest;
  if (startsWithIgnoreCase(target, "http://")) {
    rest = target.substr(7);
  } else if (startsWithIgnoreCase(target, "https://")) {
    rest = target.substr(8);
  } else {
    return "invalid request-target";
  }
  const size_t auth_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, auth_end);
  std::string_view path = auth_end == std::string_view::npos ? std::string_view() : rest.substr(auth_end);
  if (authority.empty() || authority.find('@') != std::string_view::npos ||
      !validAuthority(authority, false))
    return "invalid authority in absolute-form request-target";
  if (!validPathAndQuery(path)) return "invalid character in request-target";
  if (path.empty() || path.front() == '?') h.path = "/";
  h.path.append(path);
  h.authority.assign(authority);
  absolute = true;
  return nullptr;
}

bool skipResponseHeader(std::string_view name) {
  return HeaderMap::equalsIgnoreCase(name, "transfer-encoding") ||
         HeaderMap::equalsIgnoreCase(name, "connection") ||
         HeaderMap::equalsIgnoreCase(name, "content-length");
}

bool skipTunnelResponseHeader(std::string_view name) {
  return HeaderMap::equalsIgnoreCase(name, "transfer-encoding") ||
         HeaderMap::equalsIgnoreCase(name, "content-length");
}

// "transfer_encoding" and friends: some backends (CGI-style gateways) map '_' to '-', and would
// then see a framing header that the codec did not (Envoy and nginx drop or reject these too).
bool lookAlikeOfFraming(std::string_view name) {
  std::string n(name);
  for (char& c : n)
    if (c == '_') c = '-';
  return n == "transfer-encoding" || n == "content-length" || n == "host";
}

bool validReason(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

struct ServerCodec::Impl {
  Impl(ServerCodecCallbacks& c, const CodecLimits& l) : cb(c), parser(HTTP_REQUEST, l) {}

  ServerCodecCallbacks& cb;
  MessageParser parser;
  RequestHeadersPtr next_head;  // the pooled head the parser fills (see prepareHead)
  bool dead = false;
  bool paused = false;
  bool upgraded = false;
  bool closing = false;  // a request that ends the connection was completed and resumed
  bool dispatching = false;
  bool body_in_progress = false;
  // The current request, as the response encoder needs it.
  bool have_request = false;
  int minor = 1;
  bool head_request = false;
  bool keep_alive = false;
  bool upgrade_request = false;
  bool connect_request = false;
  // The current response.
  BodyEncoder body_out;
  bool response_started = false;
  bool response_close = false;

  void fail(int status, std::string_view detail) {
    dead = true;
    keep_alive = false;
    body_in_progress = false;
    parser.body().clear();
    cb.onProtocolError(status, detail);
  }

  void flushBody(bool end_stream) {
    Buffer& body = parser.body();
    if (body.empty() && !end_stream) return;
    cb.onRequestData(body, end_stream);
    body.clear();
  }

  // The next request's header fields are parsed straight into a head from this thread's pool
  // (taken when its first bytes are about to be parsed, not while the connection idles), which
  // then goes to the stream as it is.
  void prepareHead(const Buffer& in) {
    if (next_head || in.empty() || parser.inMessage()) return;
    next_head = makeRequestHeaders();
    parser.setHeadTarget(&next_head->headers);
  }
  RequestHeadersPtr takeHead() {
    parser.setHeadTarget(nullptr);
    if (next_head) return std::move(next_head);
    RequestHeadersPtr h = makeRequestHeaders();
    h->headers.swap(parser.headers());
    return h;
  }

  // Validates the head; on success returns the request, else calls fail() and returns null.
  RequestHeadersPtr validateHead() {
    std::string_view line = parser.startLine();
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos ||
        sp1 == 0 || sp2 == sp1 + 1) {
      fail(400, "malformed request line");
      return nullptr;
    }
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    int vminor;
    if (equals(version, "HTTP/1.1")) {
      vminor = 1;
    } else if (equals(version, "HTTP/1.0")) {
      vminor = 0;
    } else {
      fail(400, "unsupported HTTP version");
      return nullptr;
    }
    if (parser.versionMajor() != 1 || parser.versionMinor() != vminor || !validFieldName(method)) {
      fail(400, "malformed request line");
      return nullptr;
    }

    RequestHeadersPtr h = takeHead();
    copyInto(h->method, method);
    h->version_major = 1;
    h->version_minor = vminor;
    HeaderMap& hm = h->headers;

    // The parser kept Host apart (see MessageParser::hostCount()).
    const size_t hosts = parser.hostCount();
    std::string* host = hosts > 0 ? &parser.host() : nullptr;
    size_t cls = 0, tes = 0;
    const std::string* te = nullptr;
    // Field bytes were checked by llhttp (strict mode: names are tokens; values have no CTL
    // but HTAB, no DEL), which leaves only the empty name to refuse here (see codec.cc).
    for (const auto& e : hm.entries()) {
      if (e.name.empty()) {
        fail(400, "invalid header name");
        return nullptr;
      }
      // Only a name as long as content-length (14) or transfer-encoding (17) can be one.
      if ((e.name.size() == 14 || e.name.size() == 17) && e.name.find('_') != std::string::npos &&
          lookAlikeOfFraming(e.name)) {
        fail(400, "underscore variant of a framing header");
        return nullptr;
      }
      if (equals(e.name, "content-length")) {
        ++cls;
      } else if (equals(e.name, "transfer-encoding")) {
        ++tes;
        te = &e.value;
      }
    }
    if (hosts > 1) {
      fail(400, "multiple Host headers");
      return nullptr;
    }
    if (hosts == 0 && vminor == 1) {
      fail(400, "missing Host header");
      return nullptr;
    }
    if (host != nullptr && !validAuthority(*host, false)) {
      fail(400, "invalid Host header");
      return nullptr;
    }
    if (cls > 1 || (cls > 0 && tes > 0)) {
      fail(400, "ambiguous message framing");
      return nullptr;
    }
    if (tes > 0) {
      if (vminor == 0) {
        fail(400, "Transfer-Encoding in an HTTP/1.0 request");
        return nullptr;
      }
      if (tes > 1 || !HeaderMap::equalsIgnoreCase(*te, "chunked")) {
        fail(400, "unsupported Transfer-Encoding");
        return nullptr;
      }
    }
    bool absolute = false;
    if (const char* why = parseTarget(method, target, *h, absolute)) {
      fail(400, why);
      return nullptr;
    }
    if (!absolute && !equals(h->method, "CONNECT") && host != nullptr) h->authority.swap(*host);
    return h;
  }

  void onHead(Buffer& in) {
    RequestHeadersPtr h = validateHead();
    if (!h) return;
    const bool connect = equals(h->method, "CONNECT");
    const bool has_body = parser.chunked() || parser.contentLength() > 0;
    bool upgrade = parser.upgrade();
    if (connect && (has_body || parser.hasTransferEncoding())) {
      fail(400, "CONNECT request with a body");
      return;
    }
    if (upgrade && !connect) {
      const std::string value = h->headers.getAll("upgrade");
      if (HeaderMap::equalsIgnoreCase(value, "h2c")) {
        h->headers.remove("upgrade");
        h->headers.remove("http2-settings");
        upgrade = false;
        parser.noUpgrade();
      } else if (has_body) {
        upgrade = false;
        parser.noUpgrade();
      }
    }

    have_request = true;
    minor = h->version_minor;
    head_request = equals(h->method, "HEAD");
    keep_alive = parser.shouldKeepAlive();
    upgrade_request = upgrade && !connect;
    connect_request = connect;
    response_started = false;
    response_close = false;
    body_out.start(BodyEncoder::Mode::kNone);

    if (upgrade) {
      upgraded = true;  // llhttp stays paused: the rest of `in` is the tunnel
      cb.onRequestHeaders(std::move(h), false);
      return;
    }
    if (!has_body) {
      if (parser.run(in) != MessageParser::Event::kMessageComplete) {
        fail(parser.errorStatus() ? parser.errorStatus() : 400, "malformed request");
        return;
      }
      paused = true;  // before the callback, which may answer and resume() at once
      cb.onRequestHeaders(std::move(h), true);
      return;
    }
    body_in_progress = true;
    cb.onRequestHeaders(std::move(h), false);
  }

  void onMessageComplete() {
    body_in_progress = false;
    paused = true;
    HeaderMap& trailers = parser.trailers();
    if (trailers.empty()) {
      flushBody(true);
      return;
    }
    flushBody(false);
    for (const auto& e : trailers.entries()) {
      const bool invalid = e.name.empty();  // bytes checked by llhttp, as in the head
      if (invalid || equals(e.name, "content-length") || equals(e.name, "transfer-encoding") ||
          equals(e.name, "host")) {
        paused = false;
        fail(400, invalid ? "invalid trailer field" : "forbidden trailer field");
        return;
      }
    }
    cb.onRequestTrailers(std::move(trailers));
    trailers.clear();
  }

  void dispatch(Buffer& in) {
    if (dispatching || dead || upgraded || paused) return;
    dispatching = true;
    while (!dead && !paused && !upgraded) {
      if (closing) {
        in.drain(in.length());
        break;
      }
      prepareHead(in);
      switch (parser.run(in)) {
        case MessageParser::Event::kNeedMore:
          if (body_in_progress) flushBody(false);
          dispatching = false;
          return;
        case MessageParser::Event::kError:
          if (body_in_progress) flushBody(false);  // the valid bytes before the error
          fail(parser.errorStatus(), parser.errorDetail());
          break;
        case MessageParser::Event::kHead:
          onHead(in);
          break;
        case MessageParser::Event::kMessageComplete:
          onMessageComplete();
          break;
      }
    }
    dispatching = false;
  }
};

ServerCodec::ServerCodec(ServerCodecCallbacks& cb, CodecLimits limits)
    : impl_(std::make_unique<Impl>(cb, limits)) {}
ServerCodec::~ServerCodec() = default;

void ServerCodec::reset(const CodecLimits& limits) {
  Impl& i = *impl_;
  i.parser.reset(limits);
  i.next_head.reset();
  i.dead = false;
  i.paused = false;
  i.upgraded = false;
  i.closing = false;
  i.dispatching = false;
  i.body_in_progress = false;
  i.have_request = false;
  i.minor = 1;
  i.head_request = false;
  i.keep_alive = false;
  i.upgrade_request = false;
  i.connect_request = false;
  i.body_out = BodyEncoder();
  i.response_started = false;
  i.response_close = false;
}

bool ServerCodec::inMessage() const { return impl_->parser.inMessage() || impl_->body_in_progress; }

void ServerCodec::dispatch(Buffer& in) { impl_->dispatch(in); }

void ServerCodec::resume() {
  if (!impl_->paused) return;
  impl_->paused = false;
  if (!impl_->keep_alive) impl_->closing = true;
}

bool ServerCodec::paused() const { return impl_->paused; }
bool ServerCodec::upgraded() const { return impl_->upgraded; }

void ServerCodec::onEof() {
  Impl& i = *impl_;
  if (i.dead || i.upgraded || i.closing) return;
  if (i.parser.inMessage()) i.fail(400, "connection closed in the middle of a request");
}

bool ServerCodec::keepAlive() const { return !impl_->dead && impl_->keep_alive; }

void ServerCodec::closeAfterResponse() { impl_->keep_alive = false; }

void ServerCodec::encodeHeaders(const ResponseHeaders& h, bool end_stream, Buffer& out) {
  Impl& i = *impl_;
  const int st = h.status;
  const bool interim = st >= 100 && st < 200 && st != 101;  // no framing, no state change
  if (interim && i.have_request && i.minor == 0) return;
  const std::string_view reason =
      !h.reason.empty() && validReason(h.reason) ? std::string_view(h.reason) : std::string_view(reasonPhrase(st));
  // The status line (at most 23 bytes and the reason), one framing line (at most 28 bytes, or
  // the content-length value the skipped field's own line already counts), a connection line
  // (24), the blank line and the fields: 128 covers the fixed parts with room to spare.
  detail::HeadSpace space(out, 128 + reason.size() + h.headers.byteSize() + 4 * h.headers.size());
  detail::HeadWriter w{space.start()};
  w.put("HTTP/1.1 "sv);
  w.p = std::to_chars(w.p, w.p + 11, st).ptr;
  w.put(' ');
  w.put(reason);
  w.put("\r\n"sv);

  if (interim) {
    w.p = detail::writeHeaderLines(w.p, h.headers, &skipResponseHeader);
    w.put("\r\n"sv);
    space.finish(w.p);
    return;
  }

  const bool tunnel = (st == 101 && i.upgrade_request) ||
                      (i.connect_request && st >= 200 && st < 300);
  bool close = i.dead || !i.keep_alive || i.upgrade_request || i.connect_request;
  if (tunnel) close = false;
  // One pass for the two fields framing depends on.
  static constexpr std::string_view kFraming[] = {"content-length", "connection"};
  HeaderMap::FieldRef f[2];
  h.headers.locate(kFraming, f);
  std::string joined;
  if (detail::hasToken(h.headers.list(kFraming[1], f[1], joined), "close")) close = true;

  uint64_t length = 0;
  const std::string* cl = f[0].count == 1 ? &h.headers.entries()[f[0].index].value : nullptr;
  const bool has_cl = cl != nullptr && detail::parseContentLength(*cl, length);
  const bool bodyless = i.head_request || st == 204 || st == 304 || st < 200;

  BodyEncoder::Mode mode;
  if (tunnel) {
    mode = BodyEncoder::Mode::kRaw;
  } else if (bodyless) {
    mode = BodyEncoder::Mode::kNone;
    if (has_cl && st != 204 && st >= 200) {
      w.put("content-length: "sv);
      w.put(*cl);
      w.put("\r\n"sv);
    }
  } else if (has_cl) {
    mode = BodyEncoder::Mode::kLength;
    w.put("content-length: "sv);
    w.put(*cl);
    w.put("\r\n"sv);
  } else if (end_stream) {
    mode = BodyEncoder::Mode::kLength;
    w.put("content-length: 0\r\n"sv);
  } else if (i.minor == 1) {
    mode = BodyEncoder::Mode::kChunked;
    w.put("transfer-encoding: chunked\r\n"sv);
  } else {
    mode = BodyEncoder::Mode::kRaw;  // close-delimited
    close = true;
  }
  w.p = detail::writeHeaderLines(w.p, h.headers, tunnel ? &skipTunnelResponseHeader : &skipResponseHeader);
  if (!tunnel) {
    if (close) {
      w.put("connection: close\r\n"sv);
    } else if (i.minor == 0) {
      w.put("connection: keep-alive\r\n"sv);
    }
  }
  w.put("\r\n"sv);
  space.finish(w.p);

  i.response_started = true;
  i.response_close = close;
  i.body_out.start(mode, length);
  if (end_stream) {
    Buffer empty;
    i.body_out.encodeData(empty, true, out);
  }
}

void ServerCodec::encodeData(Buffer& data, bool end_stream, Buffer& out) {
  impl_->body_out.encodeData(data, end_stream, out);
}

void ServerCodec::encodeTrailers(const HeaderMap& t, Buffer& out) {
  impl_->body_out.encodeTrailers(t, out);
}

void ServerCodec::encode100Continue(Buffer& out) {
  if (impl_->have_request && impl_->minor == 0) return;
  out.add("HTTP/1.1 100 Continue\r\n\r\n");
}

bool ServerCodec::responseNeedsClose() const {
  const Impl& i = *impl_;
  if (i.dead) return true;
  if (!i.response_started) return !i.keep_alive;
  return i.response_close || i.body_out.broken();
}

}  // namespace ferry::core::http::http1
