// The plain transport: no handshake, no framing; bytes move between the raw and plaintext
// buffers without being copied.
#include "core/net/transport.h"

namespace ferry::core::net {
namespace {

class PlainTransport final : public TransportSocket {
 public:
  std::string_view name() const override { return "plain"; }
  bool passthrough() const override { return true; }
  bool ready() const override { return true; }
  TransportResult doRead(Buffer& raw_in, bool raw_eof, Buffer& plain_out, Buffer&) override {
    plain_out.move(raw_in);
    TransportResult r;
    r.end_stream = raw_eof;
    return r;
  }
  TransportResult doWrite(Buffer& plain_in, bool, Buffer& raw_out) override {
    raw_out.move(plain_in);
    return {};
  }
};

}  // namespace

std::unique_ptr<TransportSocket> makePlainTransport() { return std::make_unique<PlainTransport>(); }

TransportSocket* sharedPlainTransport() {
  static PlainTransport shared;  // stateless: safe to share between threads
  return &shared;
}

TransportPtr keepTransport(std::unique_ptr<TransportSocket> t) {
  if (t && dynamic_cast<PlainTransport*>(t.get()) != nullptr) return TransportPtr(sharedPlainTransport());
  return TransportPtr(t.release());
}

TransportFactory plainTransportFactory() { return [] { return makePlainTransport(); }; }

}  // namespace ferry::core::net
