// libFuzzer target for the TLS ClientHello parser (every build also replays
// tests/fuzz/corpus/clienthello through it with replay_main.cc). Input: the first bytes of a
// connection. Traps (a crash libFuzzer reports) when:
// - kNeedMore comes back for 64 KiB or more, or kError without a reason;
// - the answer for the input and for the input less its last byte disagree: a prefix that is
//   done or failed must stay so with more bytes (done with the same result);
// - null out-parameters change the answer;
// - a delivered server name is not 1-255 bytes of [a-z0-9._-], or an ALPN name is empty.
#include <cstdint>
#include <string>

#include "core/net/tls_inspector.h"

namespace {

using ferry::core::net::ClientHelloInfo;
using ferry::core::net::ClientHelloParse;
using ferry::core::net::kMaxClientHelloBytes;
using ferry::core::net::parseClientHello;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool sameInfo(const ClientHelloInfo& a, const ClientHelloInfo& b) {
  return a.looked_like_tls == b.looked_like_tls && a.server_name == b.server_name && a.alpn == b.alpn;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ClientHelloInfo info;
  std::string error;
  const ClientHelloParse r = parseClientHello(data, size, &info, &error);
  check(parseClientHello(data, size, nullptr, nullptr) == r);
  check(r != ClientHelloParse::kError || !error.empty());
  check(r != ClientHelloParse::kNeedMore || size < kMaxClientHelloBytes);

  if (r == ClientHelloParse::kDone) {
    check(info.looked_like_tls);
    check(info.server_name.size() <= 255);
    for (char c : info.server_name) {
      check((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_');
    }
    for (const auto& p : info.alpn) check(!p.empty() && p.size() <= 255);
  }

  if (size > 0) {
    ClientHelloInfo shorter;
    std::string why;
    const ClientHelloParse p = parseClientHello(data, size - 1, &shorter, &why);
    if (p == ClientHelloParse::kDone) check(r == ClientHelloParse::kDone && sameInfo(info, shorter));
    if (p == ClientHelloParse::kError) check(r == ClientHelloParse::kError && error == why);
  }
  return 0;
}
