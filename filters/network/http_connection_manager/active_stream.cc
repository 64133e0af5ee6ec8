#include "filters/network/http_connection_manager/active_stream.h"

#include <algorithm>
#include <random>

#include "core/http/path.h"
#include "core/log.h"
#include "core/net/socket_util.h"
#include "filters/http/router/router.h"
#include "filters/network/http_connection_manager/connection_manager.h"

namespace ferry::filters::network {
using core::Buffer;
using core::http::HeaderMap;
using http::FilterStatus;

namespace {

constexpr size_t kNone = SIZE_MAX;

// Hop-by-hop headers (RFC 9110 7.6.1) and their relatives: never forwarded.
constexpr std::string_view kHopByHop[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                                          "te", "trailer", "upgrade", "http2-settings"};

// Writes a fresh UUID v4 into `id` (36 bytes, no terminator).
void newRequestId(char (&id)[36]) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t a = rng(), b = rng();
  // RFC 4122 version 4 layout.
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  // 8-4-4-4-12 hex digits, formatted by hand (no printf on the request path).
  static constexpr char kHex[] = "0123456789abcdef";
  std::fill(std::begin(id), std::end(id), '-');
  size_t pos = 0;
  auto put = [&](uint64_t v, int digits) {
    for (int i = digits - 1; i >= 0; --i) id[pos++] = kHex[(v >> (4 * i)) & 0xf];
  };
  put(a >> 32, 8);
  ++pos;
  put(a >> 16, 4);
  ++pos;
  put(a, 4);
  ++pos;
  put(b >> 48, 4);
  ++pos;
  put(b, 12);
}

}  // namespace

ActiveStream::ActiveStream(HttpConnectionManager& hcm, core::http::RequestHeadersPtr headers)
    : hcm_(hcm), request_headers_(std::move(headers)) {}

ActiveStream::~ActiveStream() { destroyFilters(); }

core::WorkerContext& ActiveStream::worker() { return hcm_.worker(); }
const std::string& ActiveStream::downstreamRemoteIp() { return hcm_.remoteIp(); }

void ActiveStream::decodeHeaders(bool end_stream) {
  auto& h = *request_headers_;
  const auto& cfg = hcm_.config();
  info_.start_ms = core::monotonicMs();
  head_request_ = h.method == "HEAD";
  if (const auto* ct = h.headers.get("content-type"))
    grpc_ = ct->rfind("application/grpc", 0) == 0;
  headers_end_stream_ = end_stream;
  if (end_stream) request_complete_ = true;
  upgrade_ = hcm_.codec().upgraded();

  // The route table and filters are the ones current now (a keep-alive connection's next
  // request sees a newer snapshot's). Filters first, so even a rejected request runs through
  // a well-formed stream.
  route_config_ = cfg.routes->current(hcm_.worker().worker_index);
  for (const auto& make : route_config_->filters) filters_.push_back(make());
  filters_.push_back(filters::http::makeRouter());
  for (auto& f : filters_) f->setCallbacks(*this);

  if (h.method == "CONNECT") {
    hcm_.setCloseAfterResponse();
    sendLocalReply(405, "CONNECT is not supported\n", http::ResponseFlag::kNone);
    return;
  }
  std::string path, query;
  if (core::http::normalizePath(h.path, cfg.http.merge_slashes, &path, &query) != core::http::PathResult::kOk) {
    hcm_.setCloseAfterResponse();
    sendLocalReply(400, "bad request path\n", http::ResponseFlag::kDownstreamProtocolError);
    return;
  }
  h.path = path + query;
  h.scheme = "http";

  // Hop-by-hop headers and the ones the client named in Connection are not forwarded; an
  // upgrade keeps "upgrade" and says "connection: upgrade".
  std::string upgrade_value;
  if (upgrade_) {
    if (const auto* u = h.headers.get("upgrade")) upgrade_value = *u;
  }
  if (const auto* conn = h.headers.get("connection")) {
    std::string list = h.headers.getAll("connection");
    std::vector<std::string> named;
    size_t pos = 0;
    while (pos <= list.size()) {
      size_t comma = list.find(',', pos);
      std::string item = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
      if (b != std::string::npos) named.push_back(item.substr(b, e - b + 1));
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    (void)conn;
    for (const auto& n : named) h.headers.remove(n);
  }
  for (auto name : kHopByHop) h.headers.remove(name);
  if (upgrade_ && !upgrade_value.empty()) {
    h.headers.set("upgrade", upgrade_value);
    h.headers.set("connection", "upgrade");
  }

  // Expect: 100-continue is answered here (the client may wait for it before the body).
  if (const auto* expect = h.headers.get("expect")) {
    if (HeaderMap::equalsIgnoreCase(*expect, "100-continue")) {
      h.headers.remove("expect");
      if (!end_stream) {
        Buffer out;
        hcm_.codec().encode100Continue(out);
        hcm_.writeDownstream(out, false);
      }
    } else {
      hcm_.setCloseAfterResponse();
      sendLocalReply(417, "unsupported expectation\n", http::ResponseFlag::kNone);
      return;
    }
  }

  // x-forwarded-for gets the client (the PROXY protocol's when present); x-forwarded-proto
  // is ours unless a trusted front proxy set it.
  const std::string& ip = hcm_.remoteIp();
  std::string xff = h.headers.getAll("x-forwarded-for");
  h.headers.set("x-forwarded-for", xff.empty() ? ip : xff + ", " + ip);
  if (cfg.http.xff_trusted_hops == 0 || !h.headers.has("x-forwarded-proto")) h.headers.set("x-forwarded-proto", h.scheme);
  if (!h.headers.has("x-request-id")) {
    char id[36];
    newRequestId(id);
    h.headers.add("x-request-id", std::string_view(id, sizeof id));
  }

  std::string_view route_path(h.path.data(), path.size());
  route_ = route_config_->routes->find(h.authority, h.method, route_path, h.headers).route;
  iterateRequestHeaders(0);
}

void ActiveStream::iterateRequestHeaders(size_t from) {
  for (size_t i = from; i < filters_.size(); ++i) {
    FilterStatus st = filters_[i]->onRequestHeaders(*request_headers_, headers_end_stream_);
    if (local_reply_sent_ || destroyed_) return;
    if (i + 1 == filters_.size()) break;  // the router is terminal
    if (st != FilterStatus::kContinue) {
      req_phase_ = Phase::kHeaders;
      req_stopped_at_ = i;
      return;
    }
  }
  req_stopped_at_ = kNone;
  req_phase_ = Phase::kData;
  if (!waiting_body_.empty() || waiting_end_stream_) {
    Buffer b;
    b.move(waiting_body_);
    bool end = waiting_end_stream_;
    waiting_end_stream_ = false;
    hcm_.setReadDisabled(false);
    iterateRequestData(b, end, 0);
    if (local_reply_sent_ || destroyed_) return;
  }
  if (trailers_waiting_) {
    trailers_waiting_ = false;
    iterateRequestTrailers(0);
  }
}

void ActiveStream::decodeData(Buffer& data, bool end_stream) {
  info_.request_body_bytes += data.length();
  if (end_stream) request_complete_ = true;
  if (local_reply_sent_ || destroyed_ || response_complete_) {
    data.clear();
    return;
  }
  if (req_phase_ == Phase::kHeaders) {
    // Headers are held by a filter: keep the body until it resumes. Reading pauses so this
    // stays small.
    bool was_empty = waiting_body_.empty();
    waiting_body_.move(data);
    waiting_end_stream_ = waiting_end_stream_ || end_stream;
    if (was_empty && !waiting_body_.empty()) hcm_.setReadDisabled(true);
    return;
  }
  iterateRequestData(data, end_stream, 0);
}

void ActiveStream::iterateRequestData(Buffer& data, bool end_stream, size_t from) {
  Buffer* cur = &data;
  for (size_t i = from; i < filters_.size(); ++i) {
    if (i == req_stopped_at_ && req_phase_ == Phase::kData) {
      held_.move(*cur);
      held_end_stream_ = held_end_stream_ || end_stream;
      return;  // waiting for resume()
    }
    if (i == data_buffering_at_) {
      if (cur != &held_) held_.move(*cur);
      cur = &held_;
    }
    FilterStatus st = filters_[i]->onRequestBody(*cur, end_stream);
    if (local_reply_sent_ || destroyed_) return;
    if (i + 1 == filters_.size()) return;  // the router consumed it
    if (st == FilterStatus::kStopAndBuffer) {
      if (cur != &held_) held_.move(*cur);
      data_buffering_at_ = i;
      return;
    }
    if (st == FilterStatus::kStop) {
      if (cur != &held_) held_.move(*cur);
      held_end_stream_ = end_stream;
      req_stopped_at_ = i;
      return;
    }
    if (i == data_buffering_at_) data_buffering_at_ = kNone;
  }
}

void ActiveStream::decodeTrailers(HeaderMap trailers) {
  request_complete_ = true;
  trailers_ = std::move(trailers);
  if (local_reply_sent_ || destroyed_ || response_complete_) return;
  if (req_phase_ == Phase::kHeaders) {
    trailers_waiting_ = true;
    return;
  }
  iterateRequestTrailers(0);
}

void ActiveStream::iterateRequestTrailers(size_t from) {
  req_phase_ = Phase::kTrailers;
  for (size_t i = from; i < filters_.size(); ++i) {
    FilterStatus st = filters_[i]->onRequestTrailers(*trailers_);
    if (local_reply_sent_ || destroyed_) return;
    if (i == data_buffering_at_) {
      // Trailers end the body: what a buffering filter held goes on now.
      data_buffering_at_ = kNone;
      Buffer b;
      b.move(held_);
      if (!b.empty()) {
        req_phase_ = Phase::kData;
        iterateRequestData(b, false, i + 1);
        req_phase_ = Phase::kTrailers;
        if (local_reply_sent_ || destroyed_) return;
      }
    }
    if (i + 1 == filters_.size()) break;
    if (st != FilterStatus::kContinue) {
      req_stopped_at_ = i;
      return;
    }
  }
  req_phase_ = Phase::kDone;
}

void ActiveStream::resume() {
  if (local_reply_sent_ || destroyed_ || req_stopped_at_ == kNone) return;
  size_t i = req_stopped_at_;
  req_stopped_at_ = kNone;
  switch (req_phase_) {
    case Phase::kHeaders:
      iterateRequestHeaders(i + 1);
      return;
    case Phase::kData: {
      Buffer b;
      b.move(held_);
      bool end = held_end_stream_;
      held_end_stream_ = false;
      iterateRequestData(b, end, i + 1);
      if (!local_reply_sent_ && !destroyed_ && trailers_ && req_stopped_at_ == kNone) iterateRequestTrailers(0);
      return;
    }
    case Phase::kTrailers:
      iterateRequestTrailers(i + 1);
      return;
    case Phase::kDone:
      return;
  }
}

void ActiveStream::sendLocalReply(int status, std::string_view body, http::ResponseFlag flag) {
  if (destroyed_) return;
  if (response_started_) {
    resetStream();
    return;
  }
  local_reply_sent_ = true;
  info_.flag = flag;
  if (!request_complete_) hcm_.setCloseAfterResponse();
  auto h = std::make_unique<core::http::ResponseHeaders>();
  if (grpc_) {
    // gRPC clients get a trailers-only response (CONTRACT.md's error table).
    h->status = 200;
    h->headers.add("content-type", "application/grpc");
    h->headers.add("grpc-status", std::to_string(http::grpcStatusFor(flag, status)));
    std::string msg(body);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
    h->headers.add("grpc-message", msg);
    h->headers.add("content-length", "0");
    info_.response_code = status;
    encodeHeaders(std::move(h), true);
    return;
  }
  h->status = status;
  h->headers.add("content-type", "text/plain");
  h->headers.add("content-length", std::to_string(body.size()));
  if (body.empty()) {
    encodeHeaders(std::move(h), true);
    return;
  }
  encodeHeaders(std::move(h), false);
  if (destroyed_) return;
  Buffer b;
  b.add(body);
  encodeData(b, true);
}

void ActiveStream::encodeHeaders(core::http::ResponseHeadersPtr headers, bool end_stream) {
  if (destroyed_ || response_started_) return;
  response_started_ = true;
  if (info_.response_code == 0 || !local_reply_sent_) info_.response_code = headers->status;
  for (size_t i = filters_.size() - 1; i-- > 0;) {
    filters_[i]->onResponseHeaders(*headers, end_stream);
    if (destroyed_) return;
  }
  finishEncodeHeaders(*headers, end_stream);
}

void ActiveStream::finishEncodeHeaders(core::http::ResponseHeaders& h, bool end_stream) {
  bool tunnel = h.status == 101 && upgrade_;
  if (!tunnel && upgrade_) hcm_.setCloseAfterResponse();  // refused upgrade: the codec stays paused
  auto& w = hcm_.worker();
  if (w.draining && *w.draining) hcm_.setCloseAfterResponse();
  if (hcm_.closeAfterResponse() && !tunnel) h.headers.set("connection", "close");
  Buffer out;
  hcm_.codec().encodeHeaders(h, end_stream, out);
  // Stats are recorded before the last bytes go out, so a client that has its response
  // also sees it counted.
  if (end_stream && !tunnel) hcm_.recordRequest(info_);
  hcm_.writeDownstream(out, false);
  if (tunnel) {
    hcm_.enterTunnel();
    return;
  }
  if (end_stream) complete();
}

void ActiveStream::complete() {
  response_complete_ = true;
  for (auto& f : filters_) f->onComplete(info_);
  hcm_.onStreamComplete();
}

void ActiveStream::encodeData(Buffer& data, bool end_stream) {
  if (destroyed_ || response_complete_) {
    data.clear();
    return;
  }
  info_.response_body_bytes += data.length();
  if (hcm_.tunneling()) {
    if (end_stream) hcm_.recordRequest(info_);
    hcm_.writeDownstream(data, end_stream);
    if (end_stream) complete();
    return;
  }
  for (size_t i = filters_.size() - 1; i-- > 0;) {
    filters_[i]->onResponseBody(data, end_stream);
    if (destroyed_) return;
  }
  Buffer out;
  hcm_.codec().encodeData(data, end_stream, out);
  if (end_stream) hcm_.recordRequest(info_);
  hcm_.writeDownstream(out, false);
  if (end_stream) complete();
}

void ActiveStream::encodeTrailers(HeaderMap trailers) {
  if (destroyed_ || response_complete_) return;
  for (size_t i = filters_.size() - 1; i-- > 0;) {
    filters_[i]->onResponseTrailers(trailers);
    if (destroyed_) return;
  }
  Buffer out;
  hcm_.codec().encodeTrailers(trailers, out);
  hcm_.recordRequest(info_);
  hcm_.writeDownstream(out, false);
  complete();
}

void ActiveStream::setDownstreamReadDisabled(bool disabled) { hcm_.setReadDisabled(disabled); }

void ActiveStream::resetStream() {
  if (destroyed_) return;
  hcm_.closeConnection(false);
}

void ActiveStream::onDownstreamWatermark(bool above) {
  for (auto& f : filters_) f->onDownstreamWatermark(above);
}

void ActiveStream::destroyFilters() {
  if (destroyed_) return;
  destroyed_ = true;
  for (auto& f : filters_) f->onDestroy();
}

}  // namespace ferry::filters::network
