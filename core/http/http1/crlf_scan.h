// The vector search the HTTP/1 framing scan is built on (codec.cc). Its own header so that
// tests can reach it without llhttp's.
#pragma once

namespace ferry::core::http::http1::detail {

// The first CR or LF in [p, end), or end (SSE2: 16 bytes per step).
const char* findCrOrLf(const char* p, const char* end);

}  // namespace ferry::core::http::http1::detail
