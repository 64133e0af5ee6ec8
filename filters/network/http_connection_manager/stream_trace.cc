#include "filters/network/http_connection_manager/stream_trace.h"

#include <cstring>

namespace ferry::filters::network {
namespace tracing = core::tracing;

namespace {

// The authority without its port ("[v6]:443" -> "[v6]").
std::string_view hostOf(std::string_view authority) {
  const size_t colon = authority.rfind(':');
  if (colon == std::string_view::npos || authority.find(']', colon) != std::string_view::npos) return authority;
  return authority.substr(0, colon);
}

}  // namespace

void StreamTrace::start(const tracing::TracerConfig& cfg, core::http::RequestHeaders& h,
                        core::http::StreamInfo& info) {
  auto& t = info.trace;
  auto& gen = tracing::IdGenerator::local();
  tracing::Traceparent in;
  const std::string* tp = h.headers.get("traceparent");
  // One traceparent header, valid: the trace goes on (parent-based sampling). Otherwise a new
  // trace, sampled by sample_rate; a tracestate without its traceparent means nothing.
  if (tp != nullptr && h.headers.count("traceparent") == 1 && tracing::parseTraceparent(*tp, &in)) {
    std::memcpy(t.trace_id, in.trace_id, sizeof t.trace_id);
    std::memcpy(t.parent_id, in.parent_id, sizeof t.parent_id);
    t.has_parent = true;
    t.flags = in.flags & 0x03;  // sampled, random (level 2); bits not defined yet are cleared
  } else {
    if (h.headers.has("tracestate")) h.headers.remove("tracestate");
    gen.traceId(t.trace_id);
    const bool sampled = cfg.sample_rate >= 1.0 ||
                         (cfg.sample_rate > 0 && static_cast<double>(gen.next() >> 11) * 0x1.0p-53 < cfg.sample_rate);
    t.flags = sampled ? 1 : 0;
  }
  gen.spanId(t.span_id);
  t.active = true;
  char out[tracing::kTraceparentSize];
  tracing::formatTraceparent(t.trace_id, t.span_id, t.flags, out);
  h.headers.set("traceparent", std::string_view(out, sizeof out));
  if (!h.headers.has("x-request-id")) {
    char id[36];
    tracing::formatRequestId(t.trace_id, id);
    h.headers.add("x-request-id", std::string_view(id, sizeof id));
  }
  export_ = t.sampled() && cfg.exporter != nullptr;
  if (!export_) return;
  start_ns_ = tracing::monotonicNs();
  path_.assign(h.path, 0, h.path.find('?'));
  authority_ = h.authority;
}

void StreamTrace::finish(const tracing::TracerConfig& cfg, const core::http::RequestHeaders& h,
                         const core::http::StreamInfo& info, core::WorkerContext& w, std::string_view client_ip) {
  if (!export_ || w.tracing == nullptr) return;
  export_ = false;
  tracing::SpanRecord s;
  s.trace = &info.trace;
  s.start_unix_ns = tracing::unixNsFromMonotonic(start_ns_);
  s.end_unix_ns = tracing::unixNsFromMonotonic(tracing::monotonicNs());
  s.method = h.method;
  s.path = path_;
  s.scheme = h.scheme;
  s.server_address = hostOf(authority_);
  s.protocol_version = h.version_major == 2 ? "2" : h.version_minor == 0 ? "1.0" : "1.1";
  s.status = info.response_code;
  if (const std::string* ua = h.headers.get("user-agent")) s.user_agent = *ua;
  s.client_address = client_ip;
  if (const std::string* id = h.headers.get("x-request-id")) s.request_id = *id;
  s.response_flags = core::http::responseFlagName(info.flag);
  s.upstream_cluster = info.upstream_cluster;
  w.tracing->exporter(cfg.exporter).add(s);
}

}  // namespace ferry::filters::network
