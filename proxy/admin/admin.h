// AdminServer: a small HTTP/1.1 server for the admin API (one request per connection,
// answered with Connection: close). Main-thread only, on the main io_context. Handlers are
// registered by path by the Server; they run on the main thread.
#pragma once

#include <netinet/in.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace ferry::proxy {

struct AdminRequest {
  std::string method;
  std::string path;   // without the query
  std::string query;  // after '?', undecoded
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  // The value of query parameter `name`, or "" (no percent-decoding: admin params are plain).
  std::string param(const std::string& name) const;
};

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class AdminServer {
 public:
  using Handler = std::function<AdminResponse(const AdminRequest&)>;

  explicit AdminServer(boost::asio::io_context& io);
  ~AdminServer();

  // Binds and starts accepting. Returns false with *error on failure.
  bool start(const sockaddr_storage& addr, std::string* error);
  // Starts accepting on a listening socket made elsewhere (handed over by the process a
  // binary upgrade replaces); takes ownership of `fd`. False with *error if it is not one.
  bool adopt(int fd, std::string* error);
  // Stops accepting (requests being answered finish). The socket closes unless another
  // process holds it too (a binary upgrade: the new process goes on accepting on it).
  void stop();
  // The listening socket (for a binary upgrade's inventory); -1 once stopped.
  int nativeHandle();
  // The bound address (port resolved when 0 was asked for).
  const sockaddr_storage& address() const { return bound_; }

  // Exact-path handler. Unknown paths answer 404.
  void handle(const std::string& path, Handler h) { handlers_[path] = std::move(h); }

 private:
  struct Impl;
  class Session;
  void accept();
  AdminResponse dispatch(const AdminRequest& req);

  std::unique_ptr<Impl> impl_;
  std::map<std::string, Handler> handlers_;
  sockaddr_storage bound_{};
};

}  // namespace ferry::proxy
