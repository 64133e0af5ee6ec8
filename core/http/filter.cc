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
  }
  return "-";
}

int grpcStatusFor(ResponseFlag f, int http_status) {
  // gRPC codes: 4 DEADLINE_EXCEEDED, 8 RESOURCE_EXHAUSTED, 12 UNIMPLEMENTED, 13 INTERNAL,
  // 14 UNAVAILABLE, 2 UNKNOWN.
  switch (f) {
    case ResponseFlag::kDownstreamProtocolError:
    case ResponseFlag::kUpstreamProtocolError: return 13;
    case ResponseFlag::kRequestTimeout:
    case ResponseFlag::kUpstreamTimeout: return 4;
    case ResponseFlag::kBodyTooLarge: return 8;
    case ResponseFlag::kNoRoute: return 12;
    case ResponseFlag::kNoHealthyUpstream:
    case ResponseFlag::kUpstreamConnectFailure:
    case ResponseFlag::kUpstreamOverflow:
    case ResponseFlag::kUpstreamConnectionClosed:
    case ResponseFlag::kDraining: return 14;
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
