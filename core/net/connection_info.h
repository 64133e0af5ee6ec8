// ConnectionInfo: what is known about a downstream connection's endpoints. Filled at accept,
// refined by listener filters (the PROXY protocol names the real client, the TLS inspector
// reads the ClientHello), then by the transport (what its TLS handshake established), and
// read by the network and HTTP filters. Worker-local value.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace ferry::core::net {

// What a terminated TLS handshake established. Made once per handshake, immutable.
struct TlsSessionInfo {
  std::string version;  // "TLSv1.3"
  std::string cipher;   // OpenSSL's name, e.g. "TLS_AES_128_GCM_SHA256"
  std::string sni;      // the server name the client asked for ("" = none)
  std::string alpn;     // the negotiated application protocol ("" = none)
  bool resumed = false;
  // The client's certificate (mTLS), when one was presented and verified.
  bool peer_verified = false;
  std::string peer_subject;  // RFC 2253 form
  std::string peer_hash;     // SHA-256 of the DER certificate, lower-case hex
  std::vector<std::string> peer_dns;  // subjectAltName DNS entries
  std::vector<std::string> peer_uri;  // subjectAltName URI entries (SPIFFE ids)
};

// An IPv4 or IPv6 socket address in 24 bytes (a sockaddr_storage takes 128): what a
// connection keeps of its endpoints for as long as it lives. Converts both ways with
// sockaddr_storage; any other family keeps only the family (listeners are TCP).
class SocketAddress {
 public:
  SocketAddress() = default;
  SocketAddress(const sockaddr_storage& sa) { *this = sa; }  // NOLINT: converts implicitly
  SocketAddress& operator=(const sockaddr_storage& sa) {
    family_ = static_cast<uint16_t>(sa.ss_family);
    port_ = 0;
    scope_id_ = 0;
    std::memset(addr_, 0, sizeof addr_);
    if (sa.ss_family == AF_INET) {
      const auto& in = reinterpret_cast<const sockaddr_in&>(sa);
      port_ = in.sin_port;
      std::memcpy(addr_, &in.sin_addr, sizeof in.sin_addr);
    } else if (sa.ss_family == AF_INET6) {
      const auto& in6 = reinterpret_cast<const sockaddr_in6&>(sa);
      port_ = in6.sin6_port;
      scope_id_ = in6.sin6_scope_id;
      std::memcpy(addr_, &in6.sin6_addr, sizeof in6.sin6_addr);
    }
    return *this;
  }
  operator sockaddr_storage() const { return sockaddr(); }  // NOLINT: converts implicitly
  sockaddr_storage sockaddr() const {
    sockaddr_storage sa{};
    sa.ss_family = static_cast<sa_family_t>(family_);
    if (family_ == AF_INET) {
      auto& in = reinterpret_cast<sockaddr_in&>(sa);
      in.sin_port = port_;
      std::memcpy(&in.sin_addr, addr_, sizeof in.sin_addr);
    } else if (family_ == AF_INET6) {
      auto& in6 = reinterpret_cast<sockaddr_in6&>(sa);
      in6.sin6_port = port_;
      in6.sin6_scope_id = scope_id_;
      std::memcpy(&in6.sin6_addr, addr_, sizeof in6.sin6_addr);
    }
    return sa;
  }
  int family() const { return family_; }

 private:
  uint16_t family_ = AF_UNSPEC;
  uint16_t port_ = 0;  // network byte order
  uint32_t scope_id_ = 0;
  uint8_t addr_[16] = {};
};
static_assert(sizeof(SocketAddress) == 24);

// What the TLS inspector (a listener filter; the connection is not terminated) read of a
// ClientHello.
struct TlsClientHello {
  std::string server_name;  // "" when it had none
  std::vector<std::string> alpn;  // the protocols it offered
};

// With PROXY protocol, `remote` is the client the header names and directRemote() the load
// balancer that connected. Kept by every connection while it lives: compact (a plain
// connection's info is two addresses and a null pointer; what PROXY protocol, the TLS
// inspector and a TLS handshake add is one shared block, made only when they run).
struct ConnectionInfo {
  SocketAddress remote;
  SocketAddress local;

  // What the TLS handshake established when the listener terminates TLS (set once it is
  // done); null otherwise.
  const std::shared_ptr<const TlsSessionInfo>& tls() const {
    static const std::shared_ptr<const TlsSessionInfo> kNone;
    return extra_ ? extra_->tls : kNone;
  }
  void setTls(std::shared_ptr<const TlsSessionInfo> tls) {
    if (!tls && !extra_) return;
    Extra e = extra_ ? *extra_ : Extra{};
    e.tls = std::move(tls);
    extra_ = std::make_shared<const Extra>(std::move(e));
  }

  // The socket's peer: `remote` unless a PROXY header named another client.
  const SocketAddress& directRemote() const { return extra_ && extra_->proxied ? extra_->direct_remote : remote; }
  bool fromProxyProtocol() const { return extra_ && extra_->proxied; }
  // A PROXY header named the connection's endpoints: they become remote and local.
  void setProxied(const SocketAddress& client, const SocketAddress& destination) {
    Extra e = extra_ ? *extra_ : Extra{};
    e.direct_remote = remote;
    e.proxied = true;
    extra_ = std::make_shared<const Extra>(std::move(e));
    remote = client;
    local = destination;
  }

  // What the TLS inspector (a listener filter; the connection is not terminated) read.
  bool tlsClientHello() const { return extra_ && extra_->client_hello; }
  // The ClientHello's server name ("" when none, or no ClientHello was read).
  const std::string& requestedServerName() const {
    static const std::string kNone;
    return tlsClientHello() ? extra_->hello.server_name : kNone;
  }
  const std::vector<std::string>& requestedAlpn() const {
    static const std::vector<std::string> kNone;
    return tlsClientHello() ? extra_->hello.alpn : kNone;
  }
  void setClientHello(TlsClientHello hello) {
    Extra e = extra_ ? *extra_ : Extra{};
    e.client_hello = true;
    e.hello = std::move(hello);
    extra_ = std::make_shared<const Extra>(std::move(e));
  }

 private:
  struct Extra {
    SocketAddress direct_remote;
    bool proxied = false;
    bool client_hello = false;
    TlsClientHello hello;
    std::shared_ptr<const TlsSessionInfo> tls;
  };
  std::shared_ptr<const Extra> extra_;
};

}  // namespace ferry::core::net
