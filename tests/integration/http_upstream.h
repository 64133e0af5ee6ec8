// A fake HTTP/1.1 upstream for integration tests: a FakeUpstream whose handler reads
// requests in a keep-alive loop (Content-Length and chunked bodies), records each one, and
// answers with what a per-test responder returns (or a raw byte string, to misbehave).
// Thread-safe recording; every wait bounded.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace ferry::testing {

struct UpstreamRequest {
  std::string method;
  std::string target;
  std::string version;       // "HTTP/1.1"
  std::string raw_head;      // the request head as received
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;          // de-chunked
  bool chunked = false;
  std::vector<std::pair<std::string, std::string>> trailers;  // chunked trailers, names lower-cased
  int connection_index = 0;  // which accepted connection (0-based) carried it
  // The upstream's end of that connection, for a test that watches the socket (e.g. its send
  // queue). Owned by the upstream; valid while the connection is open.
  int fd = -1;
  std::string header(const std::string& name) const;  // first value or ""
  bool hasHeader(const std::string& name) const;
};

// What the fake upstream does for one request.
struct UpstreamAction {
  std::string raw;             // bytes to write back (a whole response, or garbage)
  bool close_after = false;    // close the connection after writing (FIN)
  bool reset = false;          // close with RST instead of answering
  bool stall = false;          // write nothing and wait until the peer closes
  std::function<void(int fd)> custom;  // takes over the connection (e.g. websocket echo)
};

class HttpUpstream {
 public:
  using Responder = std::function<UpstreamAction(const UpstreamRequest&)>;
  // Default responder: 200 with body "ok:<target>" and content-length.
  explicit HttpUpstream(Responder responder = nullptr, const std::string& ip = "127.0.0.1", uint16_t port = 0);

  uint16_t port() const { return server_->port(); }
  size_t connections() const { return server_->accepted(); }
  std::vector<UpstreamRequest> requests() const;
  size_t requestCount() const;
  bool waitRequests(size_t n, ms timeout = 10s) const;
  FakeUpstream& server() { return *server_; }

  // Response helpers.
  static std::string response(int status, const std::string& body,
                              const std::vector<std::string>& extra_headers = {});
  static UpstreamAction ok(const std::string& body) { return UpstreamAction{response(200, body)}; }

 private:
  void serve(int fd, int index);
  struct State {
    mutable std::mutex mu;
    mutable std::condition_variable cv;
    std::vector<UpstreamRequest> requests;
    int next_index = 0;
  };
  Responder responder_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
  std::unique_ptr<FakeUpstream> server_;
};

}  // namespace ferry::testing
