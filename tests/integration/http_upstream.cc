#include "tests/integration/http_upstream.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

namespace ferry::testing {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Reads until `buf` holds at least `n` bytes; false on EOF/error.
bool fillTo(int fd, std::string& buf, size_t n) {
  while (buf.size() < n) {
    std::string s = FakeUpstream::readSome(fd);
    if (s.empty()) return false;
    buf += s;
  }
  return true;
}

// Reads until `buf` contains `delim` (returns its position) or EOF (npos).
size_t readUntil(int fd, std::string& buf, const std::string& delim, size_t from = 0) {
  for (;;) {
    size_t p = buf.find(delim, from);
    if (p != std::string::npos) return p;
    std::string s = FakeUpstream::readSome(fd);
    if (s.empty()) return std::string::npos;
    buf += s;
  }
}

}  // namespace

std::string UpstreamRequest::header(const std::string& name) const {
  std::string n = lower(name);
  for (const auto& [k, v] : headers)
    if (k == n) return v;
  return "";
}

bool UpstreamRequest::hasHeader(const std::string& name) const {
  std::string n = lower(name);
  for (const auto& [k, v] : headers)
    if (k == n) return true;
  return false;
}

std::string HttpUpstream::response(int status, const std::string& body, const std::vector<std::string>& extra) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " X\r\n";
  bool has_len = false;
  for (const auto& h : extra) {
    r += h + "\r\n";
    if (lower(h).rfind("content-length:", 0) == 0 || lower(h).rfind("transfer-encoding:", 0) == 0) has_len = true;
  }
  if (!has_len && status != 204 && status != 304 && status >= 200) r += "content-length: " + std::to_string(body.size()) + "\r\n";
  r += "\r\n" + body;
  return r;
}

HttpUpstream::HttpUpstream(Responder responder, const std::string& ip, uint16_t port)
    : responder_(std::move(responder)) {
  if (!responder_) responder_ = [](const UpstreamRequest& r) { return ok("ok:" + r.target); };
  auto st = state_;
  server_ = std::make_unique<FakeUpstream>([this, st](int fd) {
    int index;
    {
      std::lock_guard<std::mutex> lk(st->mu);
      index = st->next_index++;
    }
    serve(fd, index);
  }, ip, port);
}

void HttpUpstream::serve(int fd, int index) {
  std::string buf;
  for (;;) {
    size_t end = readUntil(fd, buf, "\r\n\r\n");
    if (end == std::string::npos) return;
    UpstreamRequest req;
    req.connection_index = index;
    req.fd = fd;
    req.raw_head = buf.substr(0, end + 4);
    std::string head = buf.substr(0, end);
    buf.erase(0, end + 4);
    size_t eol = head.find("\r\n");
    std::string line = head.substr(0, eol);
    size_t s1 = line.find(' '), s2 = line.rfind(' ');
    req.method = line.substr(0, s1);
    req.target = line.substr(s1 + 1, s2 - s1 - 1);
    req.version = line.substr(s2 + 1);
    size_t pos = eol == std::string::npos ? head.size() : eol + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      std::string h = head.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
      size_t c = h.find(':');
      std::string v = c == std::string::npos ? "" : h.substr(c + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
      req.headers.emplace_back(lower(h.substr(0, c)), v);
      if (e == std::string::npos) break;
      pos = e + 2;
    }
    bool upgrade = !req.header("upgrade").empty();
    if (lower(req.header("transfer-encoding")) == "chunked") {
      req.chunked = true;
      for (;;) {
        size_t le = readUntil(fd, buf, "\r\n");
        if (le == std::string::npos) return;
        size_t size = std::stoul(buf.substr(0, le), nullptr, 16);
        buf.erase(0, le + 2);
        if (size == 0) {
          size_t te = readUntil(fd, buf, "\r\n");  // trailers, then CRLF
          while (te != std::string::npos && te != 0) {
            std::string t = buf.substr(0, te);
            size_t c = t.find(':');
            std::string v = c == std::string::npos ? "" : t.substr(c + 1);
            v.erase(0, v.find_first_not_of(" \t"));
            req.trailers.emplace_back(lower(t.substr(0, c)), v);
            buf.erase(0, te + 2);
            te = readUntil(fd, buf, "\r\n");
          }
          if (te == std::string::npos) return;
          buf.erase(0, 2);
          break;
        }
        if (!fillTo(fd, buf, size + 2)) return;
        req.body += buf.substr(0, size);
        buf.erase(0, size + 2);
      }
    } else if (!req.header("content-length").empty()) {
      size_t n = std::stoul(req.header("content-length"));
      if (!fillTo(fd, buf, n)) return;
      req.body = buf.substr(0, n);
      buf.erase(0, n);
    }
    UpstreamAction act = responder_(req);
    {
      std::lock_guard<std::mutex> lk(state_->mu);
      state_->requests.push_back(req);
    }
    state_->cv.notify_all();
    if (act.custom) {
      act.custom(fd);
      return;
    }
    if (act.reset) {
      linger lg{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      ::shutdown(fd, SHUT_RDWR);
      return;
    }
    if (act.stall) {
      while (!FakeUpstream::readSome(fd).empty()) {
      }
      return;
    }
    if (!FakeUpstream::writeAll(fd, act.raw)) return;
    if (act.close_after || upgrade) {
      ::shutdown(fd, SHUT_WR);
      while (!FakeUpstream::readSome(fd).empty()) {
      }
      return;
    }
  }
}

std::vector<UpstreamRequest> HttpUpstream::requests() const {
  std::lock_guard<std::mutex> lk(state_->mu);
  return state_->requests;
}

size_t HttpUpstream::requestCount() const {
  std::lock_guard<std::mutex> lk(state_->mu);
  return state_->requests.size();
}

bool HttpUpstream::waitRequests(size_t n, ms timeout) const {
  std::unique_lock<std::mutex> lk(state_->mu);
  return state_->cv.wait_for(lk, timeout, [&] { return state_->requests.size() >= n; });
}

}  // namespace ferry::testing
