// A tiny authoritative DNS server for tests: UDP on 127.0.0.1, an ephemeral port, one thread.
// Answers A (and AAAA) queries from a map the test edits while it runs; unknown names and
// names set to fail get NXDOMAIN. Standard library + POSIX only: the integration tests link
// neither Ferry's core nor Asio.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ferry::testing {

class DnsServer {
 public:
  DnsServer() = default;
  ~DnsServer() { stop(); }
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // Binds 127.0.0.1:0 and starts answering. False (and *error says why) if the socket fails.
  bool start(std::string* error = nullptr);
  // Ends the thread (within one poll interval) and closes the socket. Idempotent.
  void stop();

  uint16_t port() const { return port_; }
  // "127.0.0.1:<port>", the form resolver lists take.
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Names are case-insensitive; a trailing dot is ignored. Answers carry TTL 1.
  // setA replaces the name's IPv4 answers (an empty list: NOERROR, no answers); its IPv6
  // answers stay (none unless setAAAA). Addresses must be numeric.
  void setA(const std::string& name, std::vector<std::string> ipv4s);
  void setAAAA(const std::string& name, std::vector<std::string> ipv6s);
  void setFail(const std::string& name);  // NXDOMAIN from now on
  void setSilent(const std::string& name);  // queries for it get no answer at all
  void remove(const std::string& name);   // unknown again: NXDOMAIN

  // Questions received for `name` so far, of any type (a getaddrinfo lookup asks A and AAAA).
  int queries(const std::string& name) const;

 private:
  struct Record {
    bool fail = false;
    bool silent = false;
    std::vector<std::string> a, aaaa;
  };

  void run();
  // Builds the reply to one datagram; empty if it is not worth answering.
  std::vector<uint8_t> answer(const uint8_t* q, size_t len);

  mutable std::mutex mu_;
  std::map<std::string, Record> records_;
  std::map<std::string, int> queries_;

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace ferry::testing
