// DnsResolver: c-ares driven by a real io_context, against the test DNS server on loopback (the
// machine has no outside network). Every wait is bounded by a deadline (runUntil,
// tests/support/event_loop.h).
#include "core/upstream/dns_resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/dns_server.h"
#include "tests/support/event_loop.h"

using ferry::core::upstream::DnsResolver;
using ferry::testing::DnsServer;
using ferry::testing::runUntil;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Strings = std::vector<std::string>;

namespace {

struct Result {
  int calls = 0;
  bool ok = false;
  Strings addresses;
  std::string error;
};

DnsResolver::Callback capture(Result& r) {
  return [&r](bool ok, Strings addresses, std::string error) {
    ++r.calls;
    r.ok = ok;
    r.addresses = std::move(addresses);
    r.error = std::move(error);
  };
}

std::unique_ptr<DnsResolver> makeResolver(boost::asio::io_context& io, const Strings& servers,
                                          std::chrono::milliseconds timeout = 1000ms) {
  std::string error;
  auto r = DnsResolver::create(io, servers, timeout, &error);
  INFO("create: " << error);
  REQUIRE(r);
  return r;
}

// A UDP socket that is bound but never read: a DNS server that does not answer (and, being
// bound, does not make the kernel send port-unreachable either).
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    socklen_t len = sizeof(addr);
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentServer() { ::close(fd_); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// Addresses /etc/hosts gives `name`.
std::set<std::string> hostsEntries(const std::string& name) {
  std::set<std::string> out;
  std::ifstream in("/etc/hosts");
  std::string line;
  while (std::getline(in, line)) {
    line = line.substr(0, line.find('#'));
    std::istringstream fields(line);
    std::string addr, alias;
    if (!(fields >> addr)) continue;
    while (fields >> alias) {
      if (alias == name) out.insert(addr);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("dns: a name with two A records resolves to both addresses", "[dns]") {
  DnsServer dns;
  REQUIRE(dns.start());
  dns.setA("svc.ferry.test", {"10.0.0.1", "10.0.0.2"});
  boost::asio::io_context io;
  auto resolver = makeResolver(io, {dns.address()});
  Result r;
  resolver->resolve("svc.ferry.test", capture(r));
  REQUIRE(runUntil(io, [&] { return r.calls > 0; }, 5s));
  CHECK(r.ok);
  CHECK(r.error.empty());
  CHECK(r.addresses == Strings{"10.0.0.1", "10.0.0.2"});
  CHECK(dns.queries("svc.ferry.test") >= 1);
  // Nothing fires twice. Rather than run the loop for a while and see nothing happen, run it
  // until a later lookup (another name, so it goes to the server too) has its answer: its
  // questions go out after the first lookup finished, the server answers in order and the
  // callbacks are posted in order, so a second call for the first lookup would have come first.
  dns.setA("later.ferry.test", {"10.0.0.3"});
  Result later;
  resolver->resolve("later.ferry.test", capture(later));
  REQUIRE(runUntil(io, [&] { return later.calls > 0; }, 5s));
  CHECK(later.addresses == Strings{"10.0.0.3"});
  CHECK(r.calls == 1);
}

TEST_CASE("dns: the callback never runs inside resolve()", "[dns]") {
  DnsServer dns;
  REQUIRE(dns.start());
  dns.setA("svc.ferry.test", {"10.0.0.1"});
  boost::asio::io_context io;
  auto resolver = makeResolver(io, {dns.address()});
  // A DNS answer, a numeric name and /etc/hosts: c-ares answers the last two from inside
  // ares_getaddrinfo.
  std::string name = GENERATE(std::string("svc.ferry.test"), std::string("192.0.2.7"), std::string("localhost"));
  if (name == "localhost" && hostsEntries("localhost").empty()) {
    WARN("/etc/hosts has no localhost: skipped");
    return;
  }
  INFO(name);
  bool inside = false, called_inside = false;
  Result r;
  auto inner = capture(r);
  inside = true;
  resolver->resolve(name, [&](bool ok, Strings a, std::string e) {
    called_inside = inside;
    inner(ok, std::move(a), std::move(e));
  });
  inside = false;
  CHECK(r.calls == 0);
  REQUIRE(runUntil(io, [&] { return r.calls > 0; }, 5s));
  CHECK_FALSE(called_inside);
  CHECK(r.ok);
  if (name == "192.0.2.7") CHECK(r.addresses == Strings{"192.0.2.7"});
}

TEST_CASE("dns: NXDOMAIN fails with a reason", "[dns]") {
  DnsServer dns;
  REQUIRE(dns.start());
  dns.setFail("gone.ferry.test");
  boost::asio::io_context io;
  auto resolver = makeResolver(io, {dns.address()});
  Result unknown, failed;
  resolver->resolve("unknown.ferry.test", capture(unknown));
  resolver->resolve("gone.ferry.test", capture(failed));
  REQUIRE(runUntil(io, [&] { return unknown.calls > 0 && failed.calls > 0; }, 5s));
  for (Result* r : {&unknown, &failed}) {
    CHECK_FALSE(r->ok);
    CHECK(r->addresses.empty());
    CHECK(r->error == "Domain name not found");
  }
}

TEST_CASE("dns: a changed record is seen by the next lookup", "[dns]") {
  DnsServer dns;
  REQUIRE(dns.start());
  dns.setA("svc.ferry.test", {"10.0.0.1", "10.0.0.2"});
  boost::asio::io_context io;
  auto resolver = makeResolver(io, {dns.address()});
  Result first;
  resolver->resolve("svc.ferry.test", capture(first));
  REQUIRE(runUntil(io, [&] { return first.calls > 0; }, 5s));
  CHECK(first.addresses == Strings{"10.0.0.1", "10.0.0.2"});

  dns.setA("svc.ferry.test", {"10.0.0.3"});
  Result second;
  resolver->resolve("svc.ferry.test", capture(second));
  REQUIRE(runUntil(io, [&] { return second.calls > 0; }, 5s));
  CHECK(second.ok);
  CHECK(second.addresses == Strings{"10.0.0.3"});

  dns.remove("svc.ferry.test");
  Result third;
  resolver->resolve("svc.ferry.test", capture(third));
  REQUIRE(runUntil(io, [&] { return third.calls > 0; }, 5s));
  CHECK_FALSE(third.ok);
}

TEST_CASE("dns: IPv4 addresses come first, duplicates are removed", "[dns]") {
  DnsServer dns;
  REQUIRE(dns.start());
  dns.setA("dual.ferry.test", {"10.0.0.2", "10.0.0.1", "10.0.0.2"});
  dns.setAAAA("dual.ferry.test", {"2001:db8::1", "::1", "2001:db8::1"});
  boost::asio::io_context io;
  auto resolver = makeResolver(io, {dns.address()});
  Result r;
  resolver->resolve("dual.ferry.test", capture(r));
  REQUIRE(runUntil(io, [&] { return r.calls > 0; }, 5s));
  CHECK(r.ok);
  CHECK(r.addresses == Strings{"10.0.0.2", "10.0.0.1", "2001:db8::1", "::1"});
}

TEST_CASE("dns: a server that never answers fails after about timeout x tries", "[dns]") {
  SilentServer silent;
  boost::asio::io_context io;
  auto resolver = makeResolver(io, {silent.address()}, 200ms);
  Result r;
  auto start = Clock::now();
  resolver->resolve("svc.ferry.test", capture(r));
  REQUIRE(runUntil(io, [&] { return r.calls > 0; }, 5s));
  auto elapsed = Clock::now() - start;
  CHECK_FALSE(r.ok);
  CHECK(r.error == "Timeout while contacting DNS servers");
  // Two tries of 200ms; c-ares doubles the timeout of a repeat round over the same servers,
  // so 200 + 400ms. Upper bound generous for a loaded (sanitizer) machine.
  CHECK(elapsed >= 400ms);
  CHECK(elapsed < 2000ms);
}

TEST_CASE("dns: a silent first server falls over to the second", "[dns]") {
  SilentServer silent;
  DnsServer dns;
  REQUIRE(dns.start());
  dns.setA("svc.ferry.test", {"10.0.0.9"});
  boost::asio::io_context io;
  auto resolver = makeResolver(io, {silent.address(), dns.address()}, 200ms);
  Result r;
  resolver->resolve("svc.ferry.test", capture(r));
  REQUIRE(runUntil(io, [&] { return r.calls > 0; }, 5s));
  CHECK(r.ok);
  CHECK(r.addresses == Strings{"10.0.0.9"});
}

TEST_CASE("dns: destroying the resolver cancels its lookups without calling back", "[dns]") {
  boost::asio::io_context io;
  Result r;

  SECTION("a query in flight to a server that does not answer") {
    DnsServer dns;  // never answers these names, but counts the questions
    REQUIRE(dns.start());
    dns.setSilent("svc.ferry.test");
    dns.setSilent("other.ferry.test");
    auto resolver = makeResolver(io, {dns.address()}, 200ms);
    resolver->resolve("svc.ferry.test", capture(r));
    resolver->resolve("other.ferry.test", capture(r));
    // Both questions reached the server: the resolver's sockets are being watched now.
    REQUIRE(runUntil(io, [&] { return dns.queries("svc.ferry.test") > 0 && dns.queries("other.ferry.test") > 0; },
                     5s));
    resolver.reset();
    // Rather than run the loop for longer than the lookups could have taken, run it until a
    // probe lookup to the same silent server, with the same timeout and started after the
    // reset, has given up: the destroyed resolver's lookups started earlier, so they would have
    // timed out (and called back) before it.
    auto prober = makeResolver(io, {dns.address()}, 200ms);
    Result probe;
    prober->resolve("svc.ferry.test", capture(probe));
    REQUIRE(runUntil(io, [&] { return probe.calls > 0; }, 5s));
    CHECK_FALSE(probe.ok);
  }

  SECTION("an answer already in, its callback not yet run") {
    auto resolver = makeResolver(io, {});
    resolver->resolve("192.0.2.1", capture(r));  // answered inside resolve(), callback posted
    resolver.reset();
    // Rather than run the loop for a while: a probe's numeric lookup, made after the reset, is
    // answered and posted the same way, and the io_context runs posted handlers in order, so
    // the destroyed resolver's callback would have run before the probe's.
    auto prober = makeResolver(io, {});
    Result probe;
    prober->resolve("192.0.2.2", capture(probe));
    REQUIRE(runUntil(io, [&] { return probe.calls > 0; }, 5s));
  }

  SECTION("destroyed by the callback of another lookup") {
    DnsServer dns;
    REQUIRE(dns.start());
    dns.setA("a.ferry.test", {"10.0.0.1"});
    dns.setA("b.ferry.test", {"10.0.0.2"});
    auto resolver = makeResolver(io, {dns.address()});
    int first = 0;
    auto kill = [&](bool, Strings, std::string) {
      ++first;
      resolver.reset();
    };
    resolver->resolve("a.ferry.test", kill);
    resolver->resolve("b.ferry.test", kill);
    resolver->resolve("192.0.2.1", kill);
    REQUIRE(runUntil(io, [&] { return first > 0; }, 5s));
    // The other two lookups never call back. Rather than run the loop for a while: a probe
    // resolver asks the same server for both names after that and the loop runs until both
    // answers are in; the server answers in order, so the answers to the destroyed resolver's
    // questions came before them.
    auto prober = makeResolver(io, {dns.address()});
    Result pa, pb;
    prober->resolve("a.ferry.test", capture(pa));
    prober->resolve("b.ferry.test", capture(pb));
    REQUIRE(runUntil(io, [&] { return pa.calls > 0 && pb.calls > 0; }, 5s));
    CHECK(pa.ok);
    CHECK(pb.ok);
    CHECK(first == 1);
  }

  CHECK(r.calls == 0);
}

TEST_CASE("dns: localhost comes from /etc/hosts, not from the configured server", "[dns]") {
  std::set<std::string> expected = hostsEntries("localhost");
  if (expected.empty()) {
    WARN("/etc/hosts has no localhost: skipped");
    return;
  }
  DnsServer dns;  // knows nothing: NXDOMAIN if asked
  REQUIRE(dns.start());
  boost::asio::io_context io;
  auto resolver = makeResolver(io, {dns.address()});
  Result r;
  resolver->resolve("localhost", capture(r));
  REQUIRE(runUntil(io, [&] { return r.calls > 0; }, 5s));
  INFO(r.error);
  REQUIRE(r.ok);
  for (const auto& a : r.addresses) CHECK(expected.count(a) == 1);
  CHECK(dns.queries("localhost") == 0);
}

TEST_CASE("dns: resolver lists are checked at creation", "[dns]") {
  boost::asio::io_context io;
  std::string error;
  CHECK(DnsResolver::create(io, {"127.0.0.1"}, 100ms, &error));
  CHECK(DnsResolver::create(io, {"127.0.0.1:5353", "[::1]:5353"}, 100ms, &error));
  error.clear();
  CHECK_FALSE(DnsResolver::create(io, {"not an address"}, 100ms, &error));
  CHECK_FALSE(error.empty());
}

TEST_CASE("dns: finished lookups leave no work on the io_context", "[dns]") {
  DnsServer dns;
  REQUIRE(dns.start());
  dns.setA("svc.ferry.test", {"10.0.0.1"});
  boost::asio::io_context io;
  auto resolver = makeResolver(io, {dns.address()});
  Result r;
  resolver->resolve("svc.ferry.test", capture(r));
  // run() returns once nothing is pending: no socket wait or retry timer is left behind.
  auto start = Clock::now();
  io.run_for(3s);
  CHECK(r.calls == 1);
  CHECK(Clock::now() - start < 1s);
}

TEST_CASE("dns: an answer too big for UDP moves to TCP; no TCP server is a clean failure", "[dns]") {
  DnsServer dns;  // UDP only: the truncated answer sends c-ares to a TCP port nobody listens on
  REQUIRE(dns.start());
  Strings many;
  for (int i = 1; i <= 40; ++i) many.push_back("10.0.1." + std::to_string(i));
  dns.setA("big.ferry.test", many);
  boost::asio::io_context io;
  auto resolver = makeResolver(io, {dns.address()}, 200ms);
  Result r;
  resolver->resolve("big.ferry.test", capture(r));
  REQUIRE(runUntil(io, [&] { return r.calls > 0; }, 5s));
  INFO(r.error);
  CHECK_FALSE(r.ok);
  CHECK_FALSE(r.error.empty());
  // And the failed TCP connection leaves nothing behind: the io_context runs out of work
  // (run_for returns as soon as it does; 1 s is only the bound).
  io.restart();
  io.run_for(1s);
  CHECK(io.stopped());
}
