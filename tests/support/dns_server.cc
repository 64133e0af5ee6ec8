#include "tests/support/dns_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

namespace ferry::testing {

namespace {

constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypeAAAA = 28;
constexpr uint16_t kTypeAny = 255;
constexpr uint16_t kClassIn = 1;
constexpr uint8_t kRcodeFormErr = 1;
constexpr uint8_t kRcodeNxDomain = 3;
constexpr uint8_t kRcodeNotImp = 4;
constexpr size_t kHeaderSize = 12;
constexpr size_t kMaxUdp = 512;  // classic DNS over UDP; no EDNS here
constexpr int kPollMs = 20;      // how long stop() may wait for the thread

std::string normalize(const std::string& name) {
  std::string n = name;
  if (!n.empty() && n.back() == '.') n.pop_back();
  for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return n;
}

uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

void put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v & 0xff));
}

void put32(std::vector<uint8_t>& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v >> 16));
  put16(out, static_cast<uint16_t>(v & 0xffff));
}

}  // namespace

bool DnsServer::start(std::string* error) {
  if (fd_ >= 0) return true;
  auto fail = [&](const char* what) {
    if (error) *error = std::string(what) + ": " + std::strerror(errno);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return false;
  };
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return fail("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return fail("bind");
  socklen_t alen = sizeof(addr);
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) return fail("getsockname");
  port_ = ntohs(addr.sin_port);
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
  return true;
}

void DnsServer::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void DnsServer::setA(const std::string& name, std::vector<std::string> ipv4s) {
  std::lock_guard<std::mutex> lock(mu_);
  Record& r = records_[normalize(name)];
  r.fail = false;
  r.silent = false;
  r.a = std::move(ipv4s);
}

void DnsServer::setAAAA(const std::string& name, std::vector<std::string> ipv6s) {
  std::lock_guard<std::mutex> lock(mu_);
  Record& r = records_[normalize(name)];
  r.fail = false;
  r.aaaa = std::move(ipv6s);
}

void DnsServer::setFail(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  Record r;
  r.fail = true;
  records_[normalize(name)] = r;
}

void DnsServer::setSilent(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  Record r;
  r.silent = true;
  records_[normalize(name)] = r;
}

void DnsServer::remove(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  records_.erase(normalize(name));
}

int DnsServer::queries(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = queries_.find(normalize(name));
  return it == queries_.end() ? 0 : it->second;
}

void DnsServer::run() {
  uint8_t buf[1500];
  while (!stopping_) {
    // Polling with a short timeout instead of a wake-up pipe: stop() waits at most kPollMs.
    pollfd pfd{fd_, POLLIN, 0};
    int n = ::poll(&pfd, 1, kPollMs);
    if (n <= 0) continue;
    sockaddr_storage from{};
    socklen_t flen = sizeof(from);
    ssize_t len = ::recvfrom(fd_, buf, sizeof(buf), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &flen);
    if (len <= 0) continue;
    std::vector<uint8_t> reply = answer(buf, static_cast<size_t>(len));
    if (reply.empty()) continue;
    ::sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
  }
}

std::vector<uint8_t> DnsServer::answer(const uint8_t* q, size_t len) {
  if (len < kHeaderSize) return {};
  if (q[2] & 0x80) return {};  // a response, not a query: never answer those (no loops)
  uint8_t opcode = (q[2] >> 3) & 0x0f;
  uint8_t rd = q[2] & 0x01;

  std::vector<uint8_t> out;
  auto header = [&](uint8_t rcode, uint16_t qd, uint16_t an) {
    out.clear();
    out.push_back(q[0]);  // id
    out.push_back(q[1]);
    // QR, the query's opcode, AA (we are the authority for our names), RD copied; RA set.
    out.push_back(static_cast<uint8_t>(0x80 | (opcode << 3) | 0x04 | rd));
    out.push_back(static_cast<uint8_t>(0x80 | rcode));
    put16(out, qd);
    put16(out, an);
    put16(out, 0);  // authority
    put16(out, 0);  // additional
  };

  if (opcode != 0) {
    header(kRcodeNotImp, 0, 0);
    return out;
  }
  auto formErr = [&] {
    header(kRcodeFormErr, 0, 0);
    return out;
  };
  if (get16(q + 4) != 1) return formErr();

  // The question: uncompressed labels (a query has nothing to point back to), type, class.
  std::string name;
  size_t pos = kHeaderSize;
  while (true) {
    if (pos >= len) return formErr();
    uint8_t l = q[pos++];
    if (l == 0) break;
    if (l > 63 || pos + l > len || name.size() + l + 1 > 255) return formErr();
    if (!name.empty()) name += '.';
    name.append(reinterpret_cast<const char*>(q + pos), l);
    pos += l;
  }
  if (pos + 4 > len) return formErr();
  uint16_t qtype = get16(q + pos);
  uint16_t qclass = get16(q + pos + 2);
  pos += 4;
  const size_t question_end = pos;
  name = normalize(name);

  Record rec;
  bool known = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++queries_[name];
    auto it = records_.find(name);
    if (it != records_.end()) {
      known = true;
      rec = it->second;
    }
  }

  if (known && rec.silent) return {};  // the query goes unanswered: the client times out
  if (!known || rec.fail) {
    header(kRcodeNxDomain, 1, 0);
    out.insert(out.end(), q + kHeaderSize, q + question_end);
    return out;
  }

  // Answer records, each naming the question by a pointer to offset 12.
  std::vector<std::vector<uint8_t>> rrs;
  auto add = [&](int family, uint16_t type, const std::vector<std::string>& addrs) {
    for (const auto& a : addrs) {
      uint8_t raw[16];
      if (inet_pton(family, a.c_str(), raw) != 1) continue;
      size_t rdlen = family == AF_INET ? 4 : 16;
      std::vector<uint8_t> rr;
      put16(rr, 0xc000 | kHeaderSize);
      put16(rr, type);
      put16(rr, kClassIn);
      put32(rr, 1);  // TTL 1: tests re-resolve without waiting long
      put16(rr, static_cast<uint16_t>(rdlen));
      rr.insert(rr.end(), raw, raw + rdlen);
      rrs.push_back(std::move(rr));
    }
  };
  if (qclass == kClassIn || qclass == kTypeAny) {
    if (qtype == kTypeA || qtype == kTypeAny) add(AF_INET, kTypeA, rec.a);
    if (qtype == kTypeAAAA || qtype == kTypeAny) add(AF_INET6, kTypeAAAA, rec.aaaa);
  }

  // Fit the classic 512-byte UDP limit; if answers don't fit, say so with TC.
  size_t size = kHeaderSize + (question_end - kHeaderSize);
  uint16_t an = 0;
  bool truncated = false;
  for (const auto& rr : rrs) {
    if (size + rr.size() > kMaxUdp) {
      truncated = true;
      break;
    }
    size += rr.size();
    ++an;
  }
  header(0, 1, an);
  if (truncated) out[2] |= 0x02;
  out.insert(out.end(), q + kHeaderSize, q + question_end);
  for (uint16_t i = 0; i < an; ++i) out.insert(out.end(), rrs[i].begin(), rrs[i].end());
  return out;
}

}  // namespace ferry::testing
