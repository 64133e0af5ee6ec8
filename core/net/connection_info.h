// ConnectionInfo: what is known about a downstream connection's endpoints. Filled at accept,
// refined by listener filters (the PROXY protocol names the real client, the TLS inspector
// reads the ClientHello), then by the transport (what its TLS handshake established), and
// read by the network and HTTP filters. Worker-local value.
#pragma once

#include <netinet/in.h>

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

// With PROXY protocol, `remote` is the client the header names and `direct_remote` the load
// balancer that connected.
struct ConnectionInfo {
  sockaddr_storage remote{};
  sockaddr_storage local{};
  sockaddr_storage direct_remote{};
  bool from_proxy_protocol = false;
  // Set by the TLS inspector (a listener filter; the connection is not terminated): the
  // ClientHello's server name ("" when it had none) and the protocols it offered.
  bool tls_client_hello = false;
  std::string requested_server_name;
  std::vector<std::string> requested_alpn;
  // Set when the listener terminates TLS, once the handshake is done.
  std::shared_ptr<const TlsSessionInfo> tls;
};

}  // namespace ferry::core::net
