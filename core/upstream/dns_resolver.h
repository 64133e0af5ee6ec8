// Asynchronous DNS resolution with c-ares, driven by the main thread's io_context (its sockets
// are watched through Asio), so the data path never waits on DNS. Optional resolvers
// ("127.0.0.1:5353") replace the system's (/etc/resolv.conf), so tests can use a DNS server
// they start. Main-thread only.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace ferry::core::upstream {

class DnsResolver {
 public:
  // ok: at least one address; addresses: numeric IPs ("10.0.0.1", "::1"), deduplicated, in
  // answer order (IPv4 first). On failure, error says why ("NXDOMAIN", "timeout", ...).
  using Callback = std::function<void(bool ok, std::vector<std::string> addresses, std::string error)>;

  // servers: "ip:port" or "ip" (port 53) or "[v6]:port"; empty = the system's resolvers.
  // timeout: per query attempt. Returns null and sets *error when c-ares cannot be set up.
  static std::unique_ptr<DnsResolver> create(boost::asio::io_context& io, const std::vector<std::string>& servers,
                                             std::chrono::milliseconds timeout, std::string* error);
  virtual ~DnsResolver() = default;  // pending lookups are cancelled; their callbacks never run

  // Looks up A and AAAA records of `hostname` (also /etc/hosts). The callback runs later on
  // the io_context's thread, never inside resolve().
  virtual void resolve(const std::string& hostname, Callback cb) = 0;
};

}  // namespace ferry::core::upstream
