// ClientCodec: requests out to an upstream, its responses in.
//
// Response strictness decisions (each an onProtocolError, which the proxy turns into a 502):
// - Status line exactly "HTTP/1.0|HTTP/1.1 SP 3DIGIT [SP reason]" (a missing reason, with or
//   without its SP, is tolerated as most clients do); status 100..599; reason without CTLs.
// - Header names/values, obs-fold, bare LF/CR, Content-Length (single, digits), Content-Length
//   with Transfer-Encoding: as on the server side. Transfer-Encoding other than exactly
//   "chunked" is rejected: a coding like "gzip, chunked" cannot be represented in the
//   protocol-neutral model (it is hop-by-hop), and a close-delimited "gzip" is just as opaque.
// - A 101 to a request that did not ask for an upgrade is an error; a 1xx never has a body, nor
//   has any response to HEAD, nor 204/304 whatever their Content-Length says.
// - Response bytes while no request is outstanding are an error (except after a response that
//   ended the connection: those are discarded).
#include <string>
#include <utility>
#include <vector>

#include "core/http/http1/codec.h"
#include "core/http/http1/message_parser.h"

namespace ferry::core::http::http1 {

using namespace std::string_view_literals;

using detail::BodyEncoder;
using detail::MessageParser;

namespace {

bool skipRequestHeader(std::string_view name) {
  return HeaderMap::equalsIgnoreCase(name, "host") ||
         HeaderMap::equalsIgnoreCase(name, "transfer-encoding") ||
         HeaderMap::equalsIgnoreCase(name, "content-length");
}

// Request-target bytes that are not visible ASCII are percent-encoded so that a rewrite can never
// break the request line.
bool visible(unsigned char c) { return c > 0x20 && c < 0x7f; }

// Runs of visible bytes are written whole; the rare others are escaped (at most 3 bytes for 1).
void writeTarget(detail::HeadWriter& w, std::string_view target) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  if (detail::allVisible(target)) {
    w.put(target);
    return;
  }
  size_t i = 0;
  while (i < target.size()) {
    size_t j = i;
    while (j < target.size() && visible(static_cast<unsigned char>(target[j]))) ++j;
    w.put(target.substr(i, j - i));
    if (j == target.size()) break;
    const auto c = static_cast<unsigned char>(target[j]);
    w.put('%');
    w.put(kHex[c >> 4]);
    w.put(kHex[c & 15]);
    i = j + 1;
  }
}

// The visible bytes of v; the others are dropped.
void writeVisible(detail::HeadWriter& w, std::string_view v) {
  if (detail::allVisible(v)) {
    w.put(v);
    return;
  }
  size_t i = 0;
  while (i < v.size()) {
    size_t j = i;
    while (j < v.size() && visible(static_cast<unsigned char>(v[j]))) ++j;
    w.put(v.substr(i, j - i));
    i = j + 1;  // past the invisible byte, which is dropped
  }
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

struct ClientCodec::Impl {
  struct Pending {
    bool head;
    bool connect;
    bool upgrade;
    bool close;
  };

  Impl(ClientCodecCallbacks& c, const CodecLimits& l) : cb(c), parser(HTTP_RESPONSE, l) {}

  ClientCodecCallbacks& cb;
  MessageParser parser;
  ResponseHeadersPtr next_head;  // the pooled head the parser fills (see prepareHead)
  // Requests sent whose responses are due, oldest first. A queue that empties (every
  // response in) starts over in the same storage: no allocation per request.
  struct PendingQueue {
    std::vector<Pending> items;
    size_t head = 0;
    bool empty() const { return head == items.size(); }
    const Pending& front() const { return items[head]; }
    void push_back(const Pending& p) { items.push_back(p); }
    void pop_front() {
      if (++head == items.size()) {
        items.clear();
        head = 0;
      }
    }
  };
  PendingQueue pending;
  bool dead = false;
  bool upgraded = false;
  bool closing = false;  // the last response ended the connection
  bool dispatching = false;
  bool body_in_progress = false;
  bool keep_alive_last = true;
  BodyEncoder body_out;
  bool request_started = false;

  void fail(std::string_view detail) {
    dead = true;
    body_in_progress = false;
    parser.body().clear();
    cb.onProtocolError(detail);
  }

  void flushBody(bool end_stream) {
    Buffer& body = parser.body();
    if (body.empty() && !end_stream) return;
    cb.onResponseData(body, end_stream);
    body.clear();
  }

  // As the server codec: the response's fields are parsed into a pooled head.
  void prepareHead(const Buffer& in) {
    if (next_head || in.empty() || parser.inMessage()) return;
    next_head = makeResponseHeaders();
    parser.setHeadTarget(&next_head->headers);
  }
  ResponseHeadersPtr takeHead() {
    parser.setHeadTarget(nullptr);
    if (next_head) return std::move(next_head);
    ResponseHeadersPtr h = makeResponseHeaders();
    h->headers.swap(parser.headers());
    return h;
  }

  ResponseHeadersPtr validateHead() {
    std::string_view line = parser.startLine();
    if (line.size() < 12 || (line.substr(0, 9) != "HTTP/1.1 " && line.substr(0, 9) != "HTTP/1.0 ") ||
        !isDigit(line[9]) || !isDigit(line[10]) || !isDigit(line[11]) ||
        (line.size() > 12 && line[12] != ' ')) {
      fail("malformed status line");
      return nullptr;
    }
    const int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    std::string_view reason = line.size() > 12 ? line.substr(13) : std::string_view();
    if (status < 100 || status > 599 || status != parser.statusCode() ||
        !detail::validFieldValue(reason)) {
      fail("malformed status line");
      return nullptr;
    }
    ResponseHeadersPtr h = takeHead();
    h->status = status;
    copyInto(h->reason, reason);
    size_t tes = 0;
    const std::string* te = nullptr;
    for (const auto& e : h->headers.entries()) {
      if (e.name.empty()) {  // field bytes were checked by llhttp (strict mode; see codec.cc)
        fail("invalid header in response");
        return nullptr;
      }
      if (equals(e.name, "transfer-encoding")) {
        ++tes;
        te = &e.value;
      }
    }
    if (tes > 0 && (tes > 1 || !HeaderMap::equalsIgnoreCase(*te, "chunked"))) {
      fail("unsupported Transfer-Encoding in response");
      return nullptr;
    }
    if (tes > 0 && h->headers.has("content-length")) {
      fail("ambiguous response framing");
      return nullptr;
    }
    return h;
  }

  // The rest of a bodyless message: llhttp completes it without consuming bytes.
  bool completeBodyless(Buffer& in) {
    if (parser.run(in) == MessageParser::Event::kMessageComplete) return true;
    fail(parser.errorDetail().empty() ? "malformed response" : parser.errorDetail());
    return false;
  }

  void finishResponse() {
    const Pending req = pending.front();
    pending.pop_front();
    keep_alive_last = parser.keepAliveAtComplete() && !req.close;
    if (!keep_alive_last) closing = true;
    body_in_progress = false;
  }

  void onHead(Buffer& in) {
    ResponseHeadersPtr h = validateHead();
    if (!h) return;
    if (pending.empty()) {
      fail("response with no request outstanding");
      return;
    }
    const Pending& req = pending.front();
    const int st = h->status;
    if (st == 101) {
      if (!req.upgrade) {
        fail("101 Switching Protocols to a request without Upgrade");
        return;
      }
      upgraded = true;  // llhttp stays paused: the rest of `in` is the tunnel
      pending.pop_front();
      cb.onResponseHeaders(std::move(h), false);
      return;
    }
    if (st < 200) {
      parser.skipBody();
      if (!completeBodyless(in)) return;
      cb.onInformational(std::move(h));
      return;
    }
    if (req.connect && st < 300) {
      upgraded = true;
      pending.pop_front();
      cb.onResponseHeaders(std::move(h), false);
      return;
    }
    const bool bodyless = req.head || st == 204 || st == 304;
    if (bodyless) parser.skipBody();
    if (bodyless || (!parser.chunked() && parser.hasContentLength() && parser.contentLength() == 0)) {
      if (!completeBodyless(in)) return;
      finishResponse();
      cb.onResponseHeaders(std::move(h), true);
      return;
    }
    body_in_progress = true;
    cb.onResponseHeaders(std::move(h), false);
  }

  void onMessageComplete() {
    HeaderMap& trailers = parser.trailers();
    if (!trailers.empty()) flushBody(false);
    for (const auto& e : trailers.entries()) {
      if (e.name.empty()) {  // bytes checked by llhttp, as in the head
        fail("invalid trailer field in response");
        return;
      }
    }
    finishResponse();
    if (trailers.empty()) {
      flushBody(true);
      return;
    }
    cb.onResponseTrailers(std::move(trailers));
    trailers.clear();
  }

  void dispatch(Buffer& in) {
    if (dispatching || dead || upgraded) return;
    dispatching = true;
    while (!dead && !upgraded) {
      if (closing) {
        in.drain(in.length());
        break;
      }
      if (pending.empty() && !parser.inMessage() && !in.empty()) {
        fail("response data with no request outstanding");
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
          fail(parser.errorDetail());
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

ClientCodec::ClientCodec(ClientCodecCallbacks& cb, CodecLimits limits)
    : impl_(std::make_unique<Impl>(cb, limits)) {}
ClientCodec::~ClientCodec() = default;

void ClientCodec::encodeHeaders(const RequestHeaders& h, bool end_stream, Buffer& out) {
  Impl& i = *impl_;
  const bool connect = equals(h.method, "CONNECT");
  // One pass for the fields framing and the connection's fate depend on.
  static constexpr std::string_view kFields[] = {"content-length", "connection", "upgrade"};
  HeaderMap::FieldRef f[3];
  h.headers.locate(kFields, f);
  std::string joined;
  const std::string_view connection = h.headers.list(kFields[1], f[1], joined);
  const bool upgrade = !connect && f[2].count > 0 && detail::hasToken(connection, "upgrade");

  // The request line (the target escaped at most 3 bytes for 1), host, one framing line (at
  // most 28 bytes, or the content-length value its skipped field's own line already counts),
  // the blank line and the fields: 128 covers the fixed parts with room to spare.
  detail::HeadSpace space(out, 128 + h.method.size() + 3 * h.path.size() + 2 * h.authority.size() +
                                   h.headers.byteSize() + 4 * h.headers.size());
  detail::HeadWriter w{space.start()};
  for (char c : h.method)
    if (detail::isTchar(static_cast<unsigned char>(c))) w.put(c);
  w.put(' ');
  if (connect) {
    writeVisible(w, h.path.empty() ? h.authority : h.path);
  } else if (h.path.empty()) {
    w.put('/');
  } else {
    writeTarget(w, h.path);
  }
  w.put(" HTTP/1.1\r\nhost: "sv);
  writeVisible(w, h.authority);
  w.put("\r\n"sv);

  uint64_t length = 0;
  const std::string* cl = f[0].count == 1 ? &h.headers.entries()[f[0].index].value : nullptr;
  const bool has_cl = cl != nullptr && detail::parseContentLength(*cl, length);
  BodyEncoder::Mode mode;
  if (connect || upgrade) {
    mode = BodyEncoder::Mode::kRaw;
  } else if (has_cl) {
    mode = BodyEncoder::Mode::kLength;
    w.put("content-length: "sv);
    w.put(*cl);
    w.put("\r\n"sv);
  } else if (!end_stream) {
    mode = BodyEncoder::Mode::kChunked;
    w.put("transfer-encoding: chunked\r\n"sv);
  } else {
    mode = BodyEncoder::Mode::kLength;
    if (equals(h.method, "POST") || equals(h.method, "PUT") || equals(h.method, "PATCH"))
      w.put("content-length: 0\r\n"sv);
  }
  w.p = detail::writeHeaderLines(w.p, h.headers, &skipRequestHeader);
  w.put("\r\n"sv);
  space.finish(w.p);

  i.pending.push_back(Impl::Pending{equals(h.method, "HEAD"), connect, upgrade,
                                    detail::hasToken(connection, "close")});
  i.request_started = true;
  i.body_out.start(mode, length);
  if (end_stream) {
    Buffer empty;
    i.body_out.encodeData(empty, true, out);
  }
}

void ClientCodec::encodeData(Buffer& data, bool end_stream, Buffer& out) {
  impl_->body_out.encodeData(data, end_stream, out);
}

void ClientCodec::encodeTrailers(const HeaderMap& t, Buffer& out) {
  impl_->body_out.encodeTrailers(t, out);
}

void ClientCodec::dispatch(Buffer& in) { impl_->dispatch(in); }

void ClientCodec::onEof() {
  Impl& i = *impl_;
  if (i.dead || i.upgraded) return;
  if (i.parser.inMessage()) {
    if (i.parser.finish() == MessageParser::Event::kMessageComplete && !i.pending.empty()) {
      i.onMessageComplete();
    } else {
      i.fail("upstream closed in the middle of a response");
    }
  }
  i.closing = true;
  i.keep_alive_last = false;
}

bool ClientCodec::keepAlive() const {
  const Impl& i = *impl_;
  return !i.dead && !i.upgraded && !i.closing && i.keep_alive_last && i.pending.empty() &&
         !i.parser.inMessage() && (!i.request_started || (i.body_out.ended() && !i.body_out.broken()));
}

bool ClientCodec::idle() const {
  return impl_->pending.empty() && !impl_->parser.inMessage();
}

bool ClientCodec::upgraded() const { return impl_->upgraded; }

}  // namespace ferry::core::http::http1
