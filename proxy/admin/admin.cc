#include "proxy/admin/admin.h"

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cctype>

#include "core/http/header_map.h"
#include "core/log.h"
#include "core/net/socket_util.h"

namespace ferry::proxy {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxBodyBytes = 8 * 1024 * 1024;
constexpr auto kRequestTimeout = std::chrono::seconds(10);

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

std::string AdminRequest::param(const std::string& name) const {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    std::string kv = query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    size_t eq = kv.find('=');
    if (kv.substr(0, eq) == name) return eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return "";
}

struct AdminServer::Impl {
  explicit Impl(asio::io_context& ctx) : io(ctx), acceptor(ctx) {}
  asio::io_context& io;
  tcp::acceptor acceptor;
};

// One admin connection: read one request (bounded size and time), answer, close.
class AdminServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(AdminServer& server, tcp::socket sock)
      : server_(server), sock_(std::move(sock)), timer_(sock_.get_executor()) {}

  void start() {
    timer_.expires_after(kRequestTimeout);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->respond(AdminResponse{408, "text/plain; charset=utf-8", "request timeout\n"});
    });
    read();
  }

 private:
  void read() {
    sock_.async_read_some(asio::buffer(chunk_), [self = shared_from_this()](const boost::system::error_code& ec,
                                                                             size_t n) {
      if (ec) {
        self->close();
        return;
      }
      self->data_.append(self->chunk_, n);
      self->parse();
    });
  }

  void parse() {
    if (done_) return;
    if (header_end_ == std::string::npos) {
      header_end_ = data_.find("\r\n\r\n");
      if (header_end_ == std::string::npos) {
        if (data_.size() > kMaxHeaderBytes) {
          respond(AdminResponse{431, "text/plain; charset=utf-8", "request headers too large\n"});
          return;
        }
        read();
        return;
      }
      if (!parseHead()) {
        respond(AdminResponse{400, "text/plain; charset=utf-8", "bad request\n"});
        return;
      }
    }
    size_t have = data_.size() - (header_end_ + 4);
    if (have < content_length_) {
      read();
      return;
    }
    req_.body = data_.substr(header_end_ + 4, content_length_);
    respond(server_.dispatch(req_));
  }

  bool parseHead() {
    std::string head = data_.substr(0, header_end_);
    size_t eol = head.find("\r\n");
    std::string line = head.substr(0, eol);
    size_t sp1 = line.find(' ');
    size_t sp2 = line.rfind(' ');
    if (sp1 == std::string::npos || sp2 == sp1) return false;
    req_.method = line.substr(0, sp1);
    std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (target.empty() || target[0] != '/') return false;
    size_t q = target.find('?');
    req_.path = target.substr(0, q);
    if (q != std::string::npos) req_.query = target.substr(q + 1);
    size_t pos = eol == std::string::npos ? head.size() : eol + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      std::string h = head.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
      size_t colon = h.find(':');
      if (colon == std::string::npos || colon == 0) return false;
      req_.headers[core::http::HeaderMap::lower(h.substr(0, colon))] = trim(h.substr(colon + 1));
      if (e == std::string::npos) break;
      pos = e + 2;
    }
    auto cl = req_.headers.find("content-length");
    if (cl != req_.headers.end()) {
      if (cl->second.empty() || cl->second.find_first_not_of("0123456789") != std::string::npos ||
          cl->second.size() > 10)
        return false;
      content_length_ = std::stoull(cl->second);
      if (content_length_ > kMaxBodyBytes) return false;
    }
    if (req_.headers.count("transfer-encoding")) return false;  // admin takes Content-Length only
    return true;
  }

  void respond(const AdminResponse& r) {
    if (done_) return;
    done_ = true;
    timer_.cancel();
    out_ = "HTTP/1.1 " + std::to_string(r.status) + " " + core::http::reasonPhrase(r.status) + "\r\n";
    out_ += "Content-Type: " + r.content_type + "\r\n";
    out_ += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
    out_ += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
    if (req_.method != "HEAD") out_ += r.body;
    asio::async_write(sock_, asio::buffer(out_),
                      [self = shared_from_this()](const boost::system::error_code&, size_t) { self->close(); });
  }

  void close() {
    boost::system::error_code ec;
    timer_.cancel();
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
  }

  AdminServer& server_;
  tcp::socket sock_;
  asio::steady_timer timer_;
  char chunk_[4096];
  std::string data_;
  std::string out_;
  size_t header_end_ = std::string::npos;
  size_t content_length_ = 0;
  bool done_ = false;
  AdminRequest req_;
};

AdminServer::AdminServer(asio::io_context& io) : impl_(std::make_unique<Impl>(io)) {}
AdminServer::~AdminServer() { stop(); }

bool AdminServer::start(const sockaddr_storage& addr, std::string* error) {
  // No SO_REUSEPORT: a second process must not silently share the admin port.
  int fd = core::net::listenSocket(addr, 128, false, error);
  if (fd < 0) return false;
  return adopt(fd, error);
}

bool AdminServer::adopt(int fd, std::string* error) {
  sockaddr_storage addr{};
  if (!core::net::localAddress(fd, &addr)) {
    *error = "not a socket";
    ::close(fd);
    return false;
  }
  boost::system::error_code ec;
  impl_->acceptor.assign(addr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
  if (ec) {
    *error = ec.message();
    ::close(fd);
    return false;
  }
  bound_ = addr;
  accept();
  return true;
}

int AdminServer::nativeHandle() { return impl_->acceptor.is_open() ? impl_->acceptor.native_handle() : -1; }

void AdminServer::stop() {
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
}

void AdminServer::accept() {
  impl_->acceptor.async_accept([this](const boost::system::error_code& ec, tcp::socket sock) {
    if (ec == asio::error::operation_aborted || !impl_->acceptor.is_open()) return;
    if (!ec) std::make_shared<Session>(*this, std::move(sock))->start();
    accept();
  });
}

AdminResponse AdminServer::dispatch(const AdminRequest& req) {
  auto it = handlers_.find(req.path);
  if (it == handlers_.end()) return AdminResponse{404, "text/plain; charset=utf-8", "not found\n"};
  return it->second(req);
}

}  // namespace ferry::proxy
