// W3C Trace Context (https://www.w3.org/TR/trace-context/): the ids of one request's span, the
// `traceparent` parser and formatter, and the id generator. Pure functions and plain data,
// except IdGenerator (one per thread: no locks) and the clock helpers.
#pragma once

#include "core/random.h"
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ferry::core::tracing {

// The trace of one stream, as the connection manager decided it (StreamInfo::trace). All
// zero and `active` false when the listener has no `tracing` block.
struct TraceContext {
  uint8_t trace_id[16] = {};
  uint8_t span_id[8] = {};    // Ferry's span
  uint8_t parent_id[8] = {};  // the caller's span (from a valid incoming traceparent)
  uint8_t flags = 0;          // trace-flags sent upstream (bit 0: sampled)
  bool active = false;        // ids are set
  bool has_parent = false;    // the trace was continued from the request's traceparent
  bool sampled() const { return (flags & 1) != 0; }

  // Lower-case hex, for logs: 32, 16 and 16 characters.
  std::string traceIdHex() const;
  std::string spanIdHex() const;
  std::string parentIdHex() const;  // "" without a parent
};

// What a valid traceparent carries.
struct Traceparent {
  uint8_t version = 0;
  uint8_t trace_id[16] = {};
  uint8_t parent_id[8] = {};
  uint8_t flags = 0;
};

// Parses a traceparent header value. Valid: "VV-<32 hex>-<16 hex>-<2 hex>", lower-case hex
// only, version not ff, trace-id and parent-id not all zero. Version 00 must be exactly 55
// characters; a higher version may carry more after a '-' at position 55 (ignored, as the
// spec asks). False for anything else.
bool parseTraceparent(std::string_view value, Traceparent* out);

// Writes "00-<trace>-<span>-<flags>" (55 characters, no terminator).
inline constexpr size_t kTraceparentSize = 55;
void formatTraceparent(const uint8_t (&trace_id)[16], const uint8_t (&span_id)[8], uint8_t flags,
                       char (&out)[kTraceparentSize]);

// The trace id in the UUID layout 8-4-4-4-12 (36 characters, lower-case hex, no terminator):
// the x-request-id Ferry generates on a traced listener. Removing the dashes gives the trace id.
void formatRequestId(const uint8_t (&trace_id)[16], char (&out)[36]);

// Lower-case hex of n bytes into out (2n characters).
void toHex(const uint8_t* in, size_t n, char* out);

// Random ids from a thread-local xoshiro256** generator seeded with 256 bits from getrandom(2)
// on first use. Never all zero.
class IdGenerator {
 public:
  static IdGenerator& local();
  uint64_t next();
  // 122 random bits in the layout of a UUID version 4 (version nibble 4, variant 10): the
  // request id made from it is a valid UUID v4, and its last 7 bytes are random, as W3C Trace
  // Context level 2 expects of a random trace id.
  void traceId(uint8_t (&out)[16]);
  void spanId(uint8_t (&out)[8]);

 private:
  IdGenerator();
  Rng rng_;
};

// CLOCK_MONOTONIC in nanoseconds (fine-grained, unlike core::monotonicMs).
int64_t monotonicNs();
// A monotonic time as Unix time in nanoseconds: the offset between the two clocks is read once
// per process, so span times within a process stay consistent even if the wall clock steps.
int64_t unixNsFromMonotonic(int64_t mono_ns);

}  // namespace ferry::core::tracing
