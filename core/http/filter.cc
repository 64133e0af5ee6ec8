#include "core/http/filter.h"

namespace ferry::core::http {

const char* responseFlagName(ResponseFlag f) {
  switch (f) {
    case ResponseFlag::kNone: return "-";
    case ResponseFlag::kDownstreamProtocolError: return "DPE";
    case ResponseFlag::kRequestTimeout: return "DRT";
    case ResponseFlag::kBodyTooLarge: return "DBL";
    case ResponseFlag::kNoRoute: return "NR";
    case ResponseFlag::kNoHealthyUpstream: return "UH";
    case ResponseFlag::kUpstreamConnectFailure: return "UF";
    case ResponseFlag::kUpstreamOverflow: return "UO";
    case ResponseFlag::kUpstreamConnectionClosed: return "UC";
    case ResponseFlag::kUpstreamProtocolError: return "UPE";
    case ResponseFlag::kUpstreamTimeout: return "UT";
    case ResponseFlag::kDraining: return "DR";
    case ResponseFlag::kFaultInjected: return "FI";
    case ResponseFlag::kDelayInjected: return "DI";
    case ResponseFlag::kDownstreamConnectionTermination: return "DC";
    case ResponseFlag::kUpstreamResetAfterResponseStarted: return "UR";
    case ResponseFlag::kRateLimited: return "RL";
    case ResponseFlag::kRbacDenied: return "RBAC";
    case ResponseFlag::kStreamIdleTimeout: return "SI";
    case ResponseFlag::kRequestOverallTimeout: return "RQT";
    case ResponseFlag::kBasicAuthDenied: return "BA";
    case ResponseFlag::kGlobalRateLimited: return "GRL";
    case ResponseFlag::kRateLimitServiceError: return "RLSE";
    case ResponseFlag::kCount: break;
  }
  return "-";
}

const char* responseFlagDetails(ResponseFlag f) {
  switch (f) {
    case ResponseFlag::kNone: return "";
    case ResponseFlag::kDownstreamProtocolError: return "downstream_protocol_error";
    case ResponseFlag::kRequestTimeout: return "request_headers_timeout";
    case ResponseFlag::kBodyTooLarge: return "request_body_too_large";
    case ResponseFlag::kNoRoute: return "route_not_found";
    case ResponseFlag::kNoHealthyUpstream: return "no_healthy_upstream";
    case ResponseFlag::kUpstreamConnectFailure: return "upstream_connect_failure";
    case ResponseFlag::kUpstreamOverflow: return "upstream_overflow";
    case ResponseFlag::kUpstreamConnectionClosed: return "upstream_reset_before_response_started";
    case ResponseFlag::kUpstreamProtocolError: return "upstream_protocol_error";
    case ResponseFlag::kUpstreamTimeout: return "upstream_response_timeout";
    case ResponseFlag::kDraining: return "draining";
    case ResponseFlag::kFaultInjected: return "fault_injected";
    case ResponseFlag::kDelayInjected: return "delay_injected";
    case ResponseFlag::kDownstreamConnectionTermination: return "downstream_connection_termination";
    case ResponseFlag::kUpstreamResetAfterResponseStarted: return "upstream_reset_after_response_started";
    case ResponseFlag::kRateLimited: return "local_rate_limited";
    case ResponseFlag::kRbacDenied: return "rbac_access_denied";
    case ResponseFlag::kStreamIdleTimeout: return "stream_idle_timeout";
    case ResponseFlag::kRequestOverallTimeout: return "request_overall_timeout";
    case ResponseFlag::kBasicAuthDenied: return "basic_auth_denied";
    case ResponseFlag::kGlobalRateLimited: return "global_rate_limited";
    case ResponseFlag::kRateLimitServiceError: return "rate_limit_service_error";
    case ResponseFlag::kCount: break;
  }
  return "";
}

int grpcStatusFor(ResponseFlag f, int http_status) {
  // gRPC codes: 4 DEADLINE_EXCEEDED, 7 PERMISSION_DENIED, 8 RESOURCE_EXHAUSTED,
  // 12 UNIMPLEMENTED, 13 INTERNAL, 14 UNAVAILABLE, 16 UNAUTHENTICATED, 2 UNKNOWN.
  switch (f) {
    case ResponseFlag::kRbacDenied: return 7;
    case ResponseFlag::kBasicAuthDenied: return 16;  // UNAUTHENTICATED
    case ResponseFlag::kDownstreamProtocolError:
    case ResponseFlag::kUpstreamProtocolError: return 13;
    case ResponseFlag::kRequestTimeout:
    case ResponseFlag::kStreamIdleTimeout:
    case ResponseFlag::kRequestOverallTimeout:
    case ResponseFlag::kUpstreamTimeout: return 4;
    case ResponseFlag::kBodyTooLarge: return 8;
    case ResponseFlag::kNoRoute: return 12;
    case ResponseFlag::kNoHealthyUpstream:
    case ResponseFlag::kUpstreamConnectFailure:
    case ResponseFlag::kUpstreamOverflow:
    case ResponseFlag::kUpstreamConnectionClosed:
    case ResponseFlag::kDraining:
    case ResponseFlag::kRateLimited:
    case ResponseFlag::kGlobalRateLimited:
    case ResponseFlag::kRateLimitServiceError: return 14;  // 429 maps to UNAVAILABLE (gRPC's HTTP mapping)
    default: break;
  }
  // By HTTP status (the gRPC spec's HTTP-to-gRPC mapping).
  switch (http_status) {
    case 400: return 13;
    case 401: return 16;
    case 403: return 7;
    case 404: return 12;
    case 429:
    case 502:
    case 503:
    case 504: return 14;
    default: return 2;
  }
}

}  // namespace ferry::core::http
