#include "core/tracing/trace_context.h"

#include <sys/random.h>
#include <time.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace ferry::core::tracing {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// Lower-case hex only (the spec's HEXDIGLC); -1 otherwise.
int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool parseHex(std::string_view s, uint8_t* out) {
  for (size_t i = 0; i < s.size() / 2; ++i) {
    int hi = hexValue(s[2 * i]), lo = hexValue(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

bool allZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != 0) return false;
  return true;
}


std::string hexString(const uint8_t* p, size_t n) {
  std::string s(2 * n, '0');
  toHex(p, n, s.data());
  return s;
}

}  // namespace

std::string TraceContext::traceIdHex() const { return active ? hexString(trace_id, 16) : std::string(); }
std::string TraceContext::spanIdHex() const { return active ? hexString(span_id, 8) : std::string(); }
std::string TraceContext::parentIdHex() const { return has_parent ? hexString(parent_id, 8) : std::string(); }

void toHex(const uint8_t* in, size_t n, char* out) {
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[in[i] >> 4];
    out[2 * i + 1] = kHex[in[i] & 0xf];
  }
}

bool parseTraceparent(std::string_view v, Traceparent* out) {
  // 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01
  if (v.size() < kTraceparentSize) return false;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return false;
  uint8_t version;
  if (!parseHex(v.substr(0, 2), &version) || version == 0xff) return false;
  if (version == 0 ? v.size() != kTraceparentSize : (v.size() > kTraceparentSize && v[kTraceparentSize] != '-'))
    return false;
  Traceparent t;
  t.version = version;
  if (!parseHex(v.substr(3, 32), t.trace_id) || !parseHex(v.substr(36, 16), t.parent_id) ||
      !parseHex(v.substr(53, 2), &t.flags))
    return false;
  if (allZero(t.trace_id, 16) || allZero(t.parent_id, 8)) return false;
  *out = t;
  return true;
}

void formatTraceparent(const uint8_t (&trace_id)[16], const uint8_t (&span_id)[8], uint8_t flags,
                       char (&out)[kTraceparentSize]) {
  out[0] = '0';
  out[1] = '0';
  out[2] = '-';
  toHex(trace_id, 16, out + 3);
  out[35] = '-';
  toHex(span_id, 8, out + 36);
  out[52] = '-';
  toHex(&flags, 1, out + 53);
}

void formatRequestId(const uint8_t (&trace_id)[16], char (&out)[36]) {
  char hex[32];
  toHex(trace_id, 16, hex);
  size_t o = 0;
  for (size_t i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out[o++] = '-';
    out[o++] = hex[i];
  }
}

IdGenerator& IdGenerator::local() {
  thread_local IdGenerator g;
  return g;
}

namespace {
// 256 bits from getrandom(2); the clock when it fails (never expected on Linux >= 3.17), which
// Rng expands with splitmix64.
Rng seededRng(const void* self) {
  uint64_t state[4] = {};
  size_t got = 0;
  auto* p = reinterpret_cast<unsigned char*>(state);
  while (got < sizeof state) {
    ssize_t n = ::getrandom(p + got, sizeof state - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      break;
    }
  }
  if (got < sizeof state)
    return Rng(static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
               reinterpret_cast<uintptr_t>(self));
  return Rng(state);
}
}  // namespace

IdGenerator::IdGenerator() : rng_(seededRng(this)) {}

uint64_t IdGenerator::next() { return rng_.next(); }

void IdGenerator::traceId(uint8_t (&out)[16]) {
  uint64_t a = next(), b = next();
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<uint8_t>(a >> (56 - 8 * i));
    out[8 + i] = static_cast<uint8_t>(b >> (56 - 8 * i));
  }
}

void IdGenerator::spanId(uint8_t (&out)[8]) {
  uint64_t a;
  do {
    a = next();
  } while (a == 0);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(a >> (56 - 8 * i));
}

int64_t monotonicNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t unixNsFromMonotonic(int64_t mono_ns) {
  static const int64_t offset = [] {
    timespec rt;
    ::clock_gettime(CLOCK_REALTIME, &rt);
    return static_cast<int64_t>(rt.tv_sec) * 1000000000 + rt.tv_nsec - monotonicNs();
  }();
  return mono_ns + offset;
}

}  // namespace ferry::core::tracing
