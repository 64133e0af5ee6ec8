#include "core/upstream/dns_resolver.h"

#include <arpa/inet.h>
#include <ares.h>
#include <fcntl.h>
#include <netinet/in.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <utility>

namespace ferry::core::upstream {
namespace asio = boost::asio;

namespace {

// ares_library_init is a no-op on Linux today, but the API requires it once per process.
bool libraryInit(std::string* error) {
  static int status = ares_library_init(ARES_LIB_INIT_ALL);
  if (status != ARES_SUCCESS && error) *error = std::string("c-ares init: ") + ares_strerror(status);
  return status == ARES_SUCCESS;
}

std::string joinServers(const std::vector<std::string>& servers) {
  std::string csv;
  for (const auto& s : servers) {
    if (!csv.empty()) csv += ',';
    csv += s;
  }
  return csv;
}

// Numeric addresses of a getaddrinfo answer: deduplicated, IPv4 before IPv6, answer order within
// a family (the lookup asks for no RFC 6724 sorting).
std::vector<std::string> numericAddresses(const ares_addrinfo* result) {
  std::vector<std::string> v4, v6;
  auto add = [](std::vector<std::string>& into, std::string a) {
    for (const auto& x : into) {
      if (x == a) return;
    }
    into.push_back(std::move(a));
  };
  for (const ares_addrinfo_node* n = result ? result->nodes : nullptr; n; n = n->ai_next) {
    char buf[INET6_ADDRSTRLEN];
    if (n->ai_family == AF_INET && n->ai_addr) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(n->ai_addr);
      if (inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf))) add(v4, buf);
    } else if (n->ai_family == AF_INET6 && n->ai_addr) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(n->ai_addr);
      if (inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf))) add(v6, buf);
    }
  }
  for (auto& a : v6) v4.push_back(std::move(a));
  return v4;
}

// Everything the c-ares channel and the Asio waits share. Only DnsResolverImpl owns it; Asio
// handlers hold weak references, so a wait that completes (as cancelled) after the resolver
// is gone finds nothing and touches no freed memory.
class Core : public std::enable_shared_from_this<Core> {
 public:
  explicit Core(asio::io_context& io) : io_(io), timer_(io) {}
  ~Core() { shutdown(); }

  bool init(const std::vector<std::string>& servers, std::chrono::milliseconds timeout, std::string* error) {
    ares_options opts{};
    opts.sock_state_cb = &Core::onSockState;
    opts.sock_state_cb_data = this;
    opts.timeout = static_cast<int>(std::max<int64_t>(1, timeout.count()));
    opts.tries = 2;
    char lookups[] = "fb";  // /etc/hosts first, then DNS
    opts.lookups = lookups;
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS;
    int status = ares_init_options(&channel_, &opts, mask);
    if (status != ARES_SUCCESS) {
      channel_ = nullptr;
      if (error) *error = std::string("c-ares: ") + ares_strerror(status);
      return false;
    }
    // c-ares opens its sockets without SOCK_CLOEXEC; every other Ferry socket has it.
    ares_set_socket_callback(
        channel_, [](ares_socket_t fd, int, void*) { return ::fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 ? 0 : -1; }, nullptr);
    if (!servers.empty()) {
      std::string csv = joinServers(servers);
      status = ares_set_servers_ports_csv(channel_, csv.c_str());
      if (status != ARES_SUCCESS) {
        if (error) *error = "bad DNS resolver list '" + csv + "': " + ares_strerror(status);
        return false;
      }
    }
    return true;
  }

  void resolve(const std::string& hostname, DnsResolver::Callback cb) {
    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;
    // No RFC 6724 sorting: it connect()s a UDP socket per address, synchronously, to learn
    // source addresses; callers want answer order anyway.
    hints.ai_flags = ARES_AI_NOSORT;
    auto* req = new Request{this, std::move(cb)};
    // May call onResult right here (numeric names, /etc/hosts): onResult posts, so the user's
    // callback still runs later.
    ares_getaddrinfo(channel_, hostname.c_str(), nullptr, &hints, &Core::onResult, req);
    updateTimer();
  }

  // Stops everything before the memory goes: Asio lets go of c-ares' fds first (Asio must never
  // close them, and epoll must forget them before c-ares closes them), then ares_destroy fails
  // the pending queries with ARES_EDESTRUCTION, which onResult swallows.
  void shutdown() {
    if (!channel_) return;
    destroying_ = true;
    for (auto& [fd, w] : watches_) w->sd.release();
    watches_.clear();
    timer_.cancel();
    ares_destroy(channel_);
    channel_ = nullptr;
  }

 private:
  struct Request {
    Core* core;
    DnsResolver::Callback cb;
  };

  // One c-ares socket as Asio sees it. gen tells a recycled fd number from the socket a
  // completed wait was started for.
  struct Watch {
    Watch(asio::io_context& io, uint64_t g) : sd(io), gen(g) {}
    asio::posix::stream_descriptor sd;
    uint64_t gen;
    bool want_read = false, want_write = false;
    bool read_pending = false, write_pending = false;
  };

  static void onSockState(void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<Core*>(data)->sockState(fd, readable != 0, writable != 0);
  }

  void sockState(int fd, bool readable, bool writable) {
    if (destroying_) return;
    auto it = watches_.find(fd);
    if (!readable && !writable) {
      // c-ares closes the fd right after this: Asio lets go of it (cancelling its waits) first.
      if (it != watches_.end()) {
        it->second->sd.release();
        watches_.erase(it);
      }
      return;
    }
    if (it == watches_.end()) {
      auto w = std::make_unique<Watch>(io_, ++next_gen_);
      boost::system::error_code ec;
      w->sd.assign(fd, ec);
      // Unwatchable (cannot really happen for a fresh socket): the query then times out.
      if (ec) return;
      it = watches_.emplace(fd, std::move(w)).first;
    }
    Watch& w = *it->second;
    w.want_read = readable;
    w.want_write = writable;
    arm(w);
  }

  // Starts the waits c-ares asked for that aren't running. A wait no longer wanted is left to
  // complete: c-ares ignores an fd it has nothing for.
  void arm(Watch& w) {
    int fd = w.sd.native_handle();
    if (w.want_read && !w.read_pending) {
      w.read_pending = true;
      w.sd.async_wait(asio::posix::descriptor_base::wait_read,
                      [weak = weak_from_this(), fd, gen = w.gen](const boost::system::error_code& ec) {
                        if (auto self = weak.lock()) self->onReady(fd, gen, /*write=*/false, ec);
                      });
    }
    if (w.want_write && !w.write_pending) {
      w.write_pending = true;
      w.sd.async_wait(asio::posix::descriptor_base::wait_write,
                      [weak = weak_from_this(), fd, gen = w.gen](const boost::system::error_code& ec) {
                        if (auto self = weak.lock()) self->onReady(fd, gen, /*write=*/true, ec);
                      });
    }
  }

  void onReady(int fd, uint64_t gen, bool write, const boost::system::error_code& ec) {
    auto it = watches_.find(fd);
    if (it == watches_.end() || it->second->gen != gen) return;  // released: c-ares closed it
    (write ? it->second->write_pending : it->second->read_pending) = false;
    if (ec == asio::error::operation_aborted) return;
    // Other errors too: c-ares reads/writes, sees the socket error and fails over.
    if (write) {
      ares_process_fd(channel_, ARES_SOCKET_BAD, fd);
    } else {
      ares_process_fd(channel_, fd, ARES_SOCKET_BAD);
    }
    // ares_process_fd may have closed the fd (and a new socket may have its number).
    it = watches_.find(fd);
    if (it != watches_.end()) arm(*it->second);
    updateTimer();
  }

  // c-ares keeps no timer of its own: ares_timeout says when the next retry or give-up is due.
  void updateTimer() {
    if (!channel_ || destroying_) return;
    timeval tv{};
    if (!ares_timeout(channel_, nullptr, &tv)) {
      timer_.cancel();
      return;
    }
    timer_.expires_after(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
    timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (ec == asio::error::operation_aborted) return;
      if (auto self = weak.lock()) {
        ares_process_fd(self->channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        self->updateTimer();
      }
    });
  }

  static void onResult(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
    std::unique_ptr<Request> req(static_cast<Request*>(arg));
    Core* core = req->core;
    std::vector<std::string> addresses;
    std::string error;
    if (status == ARES_SUCCESS) {
      addresses = numericAddresses(result);
      if (addresses.empty()) error = "no addresses";
    } else {
      error = ares_strerror(status);
    }
    if (result) ares_freeaddrinfo(result);
    // Destruction: the owner asked for silence. ARES_EDESTRUCTION only comes from ares_destroy.
    if (core->destroying_ || status == ARES_EDESTRUCTION) return;
    // Always posted, also when c-ares answers from inside ares_process_fd: the user's callback
    // may destroy the resolver, which must not happen inside a c-ares call.
    asio::post(core->io_, [weak = core->weak_from_this(), cb = std::move(req->cb), addresses = std::move(addresses),
                           error = std::move(error)]() mutable {
      if (weak.expired()) return;  // resolver destroyed since the answer came in
      bool ok = !addresses.empty();
      cb(ok, std::move(addresses), std::move(error));
    });
  }

  asio::io_context& io_;
  asio::steady_timer timer_;
  ares_channel channel_ = nullptr;
  bool destroying_ = false;
  uint64_t next_gen_ = 0;
  std::unordered_map<int, std::unique_ptr<Watch>> watches_;
};

class DnsResolverImpl final : public DnsResolver {
 public:
  explicit DnsResolverImpl(std::shared_ptr<Core> core) : core_(std::move(core)) {}
  ~DnsResolverImpl() override { core_->shutdown(); }

  void resolve(const std::string& hostname, Callback cb) override { core_->resolve(hostname, std::move(cb)); }

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace

std::unique_ptr<DnsResolver> DnsResolver::create(asio::io_context& io, const std::vector<std::string>& servers,
                                                 std::chrono::milliseconds timeout, std::string* error) {
  if (!libraryInit(error)) return nullptr;
  auto core = std::make_shared<Core>(io);
  if (!core->init(servers, timeout, error)) return nullptr;
  return std::make_unique<DnsResolverImpl>(std::move(core));
}

}  // namespace ferry::core::upstream
