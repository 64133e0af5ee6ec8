#include "core/http/codec.h"

namespace ferry::core::http {

const char* resetReasonName(StreamResetReason r) {
  switch (r) {
    case StreamResetReason::kLocalReset: return "local reset";
    case StreamResetReason::kRemoteReset: return "remote reset";
    case StreamResetReason::kConnectionTermination: return "connection termination";
    case StreamResetReason::kProtocolError: return "protocol error";
    case StreamResetReason::kRefusedStream: return "refused stream";
  }
  return "unknown";
}

}  // namespace ferry::core::http
