#include "proxy/upgrade.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "core/log.h"
#include "core/net/socket_util.h"

namespace ferry::proxy {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {
constexpr const char* kVersion = "1";
constexpr size_t kMaxFrame = 1 << 20;      // inventory text
constexpr size_t kMaxRequestFrame = 256;   // HELLO, DRAIN: what old accepts from new
constexpr size_t kMaxFdsPerMessage = 253;  // SCM_MAX_FD
constexpr uint64_t kMaxFds = 1 << 16;      // what new accepts in one inventory
constexpr auto kConnectRetry = std::chrono::milliseconds(20);

void closeAll(std::vector<int>* fds) {
  for (int fd : *fds) ::close(fd);
  fds->clear();
}

std::string errnoText(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t at; (at = s.find(sep, pos)) != std::string::npos; pos = at + 1) out.push_back(s.substr(pos, at - pos));
  out.push_back(s.substr(pos));
  return out;
}

bool parseNumber(const std::string& s, uint64_t max, uint64_t* out) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  *out = std::stoull(s);
  return *out <= max;
}

// Percent-encodes bytes that would break the line format; "" is "-" (and "-" is "%2D").
std::string encodeField(const std::string& s) {
  if (s.empty()) return "-";
  if (s == "-") return "%2D";
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f || c == '%') {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

bool decodeField(const std::string& s, std::string* out) {
  out->clear();
  if (s == "-") return true;
  auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      *out += s[i];
      continue;
    }
    if (i + 2 >= s.size() || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0) return false;
    *out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
    i += 2;
  }
  return true;
}

std::string frame(const std::string& payload) {
  uint32_t n = static_cast<uint32_t>(payload.size());
  std::string out{static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                  static_cast<char>(n)};
  return out + payload;
}

// Takes one frame off the front of *buf: 1 taken, 0 not complete yet, -1 empty or too large.
int takeFrame(std::string* buf, size_t max, std::string* payload) {
  if (buf->size() < 4) return 0;
  auto byte = [&](int i) { return static_cast<uint32_t>(static_cast<unsigned char>((*buf)[i])); };
  uint32_t n = byte(0) << 24 | byte(1) << 16 | byte(2) << 8 | byte(3);
  if (n == 0 || n > max) return -1;
  if (buf->size() < 4 + size_t{n}) return 0;
  payload->assign(*buf, 4, n);
  buf->erase(0, 4 + size_t{n});
  return 1;
}

bool isPath(const std::string& name_or_path) { return name_or_path.find('/') != std::string::npos; }

std::string describe(const std::string& name_or_path) {
  return isPath(name_or_path) ? name_or_path : "@" + name_or_path;
}

bool peerCredentials(int fd, ucred* cred) {
  socklen_t len = sizeof *cred;
  return ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) == 0;
}

bool uidAllowed(uid_t uid) { return uid == ::geteuid() || uid == 0; }

// A socket file that nobody listens on (left by a process that died).
bool staleSocketFile(const std::string& path, const sockaddr_un& addr, socklen_t len) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  bool refused = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0 && errno == ECONNREFUSED;
  ::close(fd);
  return refused;
}

// Blocking helpers for the new side, on a non-blocking socket, bounded by `deadline`.

bool waitFor(int fd, short events, Clock::time_point deadline, std::string* error) {
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      *error = "timed out";
      return false;
    }
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 60'000)));
    if (r > 0) return true;  // readiness, or an error/hangup that the next call reports
    if (r < 0 && errno != EINTR) {
      *error = errnoText("poll");
      return false;
    }
  }
}

bool writeAll(int fd, const std::string& data, Clock::time_point deadline, std::string* error) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      off += static_cast<size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!waitFor(fd, POLLOUT, deadline, error)) return false;
    } else if (errno != EINTR) {
      *error = errnoText("write");
      return false;
    }
  }
  return true;
}

// Received fds, closed unless taken.
struct FdQueue {
  ~FdQueue() {
    for (int fd : fds) ::close(fd);
  }
  std::deque<int> fds;
};

// Reads one frame into *payload. Fds arrive with the first byte of the frame that carries
// them, in order, and are appended to *fds.
bool readFrame(int fd, std::string* pending, FdQueue* fds, Clock::time_point deadline, std::string* payload,
               std::string* error) {
  for (;;) {
    int r = takeFrame(pending, kMaxFrame, payload);
    if (r > 0) return true;
    if (r < 0) {
      *error = "malformed message from the old process";
      return false;
    }
    if (!waitFor(fd, POLLIN, deadline, error)) return false;
    char buf[16384];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl;
    msg.msg_controllen = sizeof ctrl;
    ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      *error = errnoText("read");
      return false;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds->fds.push_back(received);
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
      *error = "file descriptors were dropped in transit (RLIMIT_NOFILE too low?)";
      return false;
    }
    if (n == 0) {
      *error = "the old process closed the connection";
      return false;
    }
    pending->append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

std::string upgradeSocketName(pid_t pid) { return "ferry-upgrade-" + std::to_string(pid); }

bool parseUpgradeTarget(const std::string& arg, UpgradeTarget* out, std::string* error) {
  uint64_t pid = 0;
  if (!arg.empty() && arg.find_first_not_of("0123456789") == std::string::npos) {
    if (!parseNumber(arg, INT32_MAX, &pid) || pid == 0) {
      *error = "upgrade target \"" + arg + "\" is not a valid PID";
      return false;
    }
    *out = UpgradeTarget{static_cast<pid_t>(pid), upgradeSocketName(static_cast<pid_t>(pid))};
    return true;
  }
  if (isPath(arg)) {
    sockaddr_un addr;
    socklen_t len;
    if (!core::net::unixSockaddr(arg, false, &addr, &len)) {
      *error = "upgrade socket path \"" + arg + "\" is too long for a Unix socket";
      return false;
    }
    *out = UpgradeTarget{0, arg};
    return true;
  }
  *error = "upgrade target \"" + arg + "\" is neither a PID nor a socket path (a path contains '/')";
  return false;
}

// ---- Old side ----

struct UpgradeServer::Impl : std::enable_shared_from_this<Impl> {
  Impl(UpgradeServer& s, asio::io_context& ctx) : owner(s), io(ctx), retry(ctx) {}
  void accept();
  void onAcceptable();

  UpgradeServer& owner;
  asio::io_context& io;
  std::optional<asio::posix::stream_descriptor> listener;
  asio::steady_timer retry;  // after an accept error such as EMFILE
  std::string path;          // the socket file to remove on stop (path form)
  std::set<std::shared_ptr<Session>> sessions;
};

// One connection from a new process: HELLO, the inventory, then DRAIN (or EOF, or a timeout).
class UpgradeServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(UpgradeServer& server, pid_t pid)
      : server_(&server), desc_(server.impl_->io), timer_(server.impl_->io), pid_(pid) {}
  ~Session() { dropQueued(); }

  bool assign(int fd) {
    boost::system::error_code ec;
    desc_.assign(fd, ec);
    if (ec) ::close(fd);
    return !ec;
  }

  void start() {
    arm(server_->io_timeout, "HELLO");
    read();
  }

  // Idempotent. Forgets the server: nothing runs after this but handlers that return.
  void close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    boost::system::error_code ec;
    desc_.close(ec);
    dropQueued();
    if (server_ != nullptr) server_->impl_->sessions.erase(shared_from_this());
    server_ = nullptr;
  }

 private:
  enum class State { kHello, kSending, kWaitDrain, kAcking, kRefusing };
  struct Out {
    std::string bytes;
    std::vector<int> fds;  // our duplicates, closed once sent
    size_t sent = 0;
  };

  void fail(const std::string& why) {
    FERRY_LOG(kWarn, "upgrade: connection from pid ", pid_, ": ", why, "; closed it, still serving");
    close();
  }

  // Re-arming replaces the previous deadline, even one whose handler is already queued.
  void arm(std::chrono::milliseconds d, const char* waiting_for) {
    timer_.expires_after(d);
    timer_.async_wait(
        [self = shared_from_this(), gen = ++timer_gen_, waiting_for](const boost::system::error_code& ec) {
          if (!ec && !self->closed_ && gen == self->timer_gen_)
            self->fail(std::string("timed out waiting for ") + waiting_for);
        });
  }

  void read() {
    desc_.async_wait(asio::posix::descriptor_base::wait_read,
                     [self = shared_from_this()](const boost::system::error_code& ec) {
                       if (self->closed_) return;
                       if (ec) {
                         self->fail(ec.message());
                         return;
                       }
                       self->onReadable();
                     });
  }

  void onReadable() {
    char buf[512];
    for (;;) {
      ssize_t n = ::recv(desc_.native_handle(), buf, sizeof buf, MSG_DONTWAIT);  // fds sent to us are dropped
      if (n == 0) {
        if (state_ == State::kHello) {
          FERRY_LOG(kInfo, "upgrade: pid ", pid_, " closed the connection before HELLO");
        } else {
          FERRY_LOG(kWarn, "upgrade: new process ", pid_, " went away before DRAIN; still serving");
        }
        close();
        return;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        fail(errnoText("read"));
        return;
      }
      in_.append(buf, static_cast<size_t>(n));
      std::string msg;
      for (int r; !closed_ && (r = takeFrame(&in_, kMaxRequestFrame, &msg)) != 0;) {
        if (r < 0) {
          fail("malformed message");
          return;
        }
        onMessage(msg);
      }
      if (closed_) return;
    }
    read();
  }

  void onMessage(const std::string& msg) {
    std::vector<std::string> f = split(msg, ' ');
    if (state_ == State::kHello && f[0] == "HELLO" && f.size() == 3) {
      uint64_t hello_pid = 0;
      if (f[1] != kVersion) {
        FERRY_LOG(kWarn, "upgrade: pid ", pid_, " speaks protocol version ", f[1], ", we speak ", kVersion);
        state_ = State::kRefusing;
        send(Out{frame("ERROR unsupported protocol version " + f[1] + ", this process speaks " + kVersion), {}});
      } else if (!parseNumber(f[2], INT32_MAX, &hello_pid)) {
        fail("malformed HELLO");
      } else {
        sendInventory();
      }
    } else if (state_ == State::kWaitDrain && msg == "DRAIN") {
      state_ = State::kAcking;
      arm(server_->io_timeout, "the peer to read DRAINING");
      send(Out{frame("DRAINING"), {}});
    } else {
      fail("unexpected message \"" + msg.substr(0, 40) + "\"");
    }
  }

  void sendInventory() {
    Inventory inv = server_->inventory ? server_->inventory() : Inventory{};
    if (closed_) return;
    std::vector<int> dups;
    size_t total = 0;
    for (const auto& item : inv) total += item.fds.size();
    std::string text = "INVENTORY " + std::string(kVersion) + " " + std::to_string(::getpid()) + " " +
                       std::to_string(inv.size()) + " " + std::to_string(total);
    for (const auto& item : inv) {
      text += "\n" + encodeField(item.kind) + " " + encodeField(item.name) + " " + encodeField(item.address) + " " +
              std::to_string(item.fds.size());
      for (int fd : item.fds) {
        int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (dup < 0) {
          std::string err = errnoText("dup of a listening socket");
          closeAll(&dups);
          fail(err);
          return;
        }
        dups.push_back(dup);
      }
    }
    if (text.size() > kMaxFrame) {
      closeAll(&dups);
      fail("inventory too large");
      return;
    }
    FERRY_LOG(kInfo, "upgrade: sending the inventory (", inv.size(), " items, ", total, " fds) to new process ", pid_);
    state_ = State::kSending;
    arm(server_->io_timeout, "the peer to read the inventory");
    out_.push_back(Out{frame(text), {}});
    for (size_t at = 0; at < dups.size(); at += kMaxFdsPerMessage) {
      size_t n = std::min(kMaxFdsPerMessage, dups.size() - at);
      out_.push_back(
          Out{frame("FDS " + std::to_string(n)), std::vector<int>(dups.begin() + at, dups.begin() + at + n)});
    }
    flush();
  }

  void send(Out out) {
    out_.push_back(std::move(out));
    flush();
  }

  void flush() {
    while (!out_.empty()) {
      Out& o = out_.front();
      iovec iov{o.bytes.data() + o.sent, o.bytes.size() - o.sent};
      alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)] = {};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      if (!o.fds.empty()) {
        msg.msg_control = ctrl;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * o.fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * o.fds.size());
        std::memcpy(CMSG_DATA(c), o.fds.data(), sizeof(int) * o.fds.size());
      }
      ssize_t n = ::sendmsg(desc_.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          waitWritable();
          return;
        }
        fail(errnoText("write"));
        return;
      }
      closeAll(&o.fds);  // in flight with the first byte: the peer gets its own copies
      o.sent += static_cast<size_t>(n);
      if (o.sent == o.bytes.size()) out_.pop_front();
    }
    onFlushed();
  }

  void waitWritable() {
    desc_.async_wait(asio::posix::descriptor_base::wait_write,
                     [self = shared_from_this()](const boost::system::error_code& ec) {
                       if (self->closed_) return;
                       if (ec) {
                         self->fail(ec.message());
                         return;
                       }
                       self->flush();
                     });
  }

  void onFlushed() {
    if (state_ == State::kSending) {
      state_ = State::kWaitDrain;
      arm(server_->drain_timeout, "DRAIN");
    } else if (state_ == State::kAcking) {
      FERRY_LOG(kInfo, "upgrade: new process ", pid_, " is serving; draining");
      auto on_drain = server_->on_drain;  // the callback may stop or destroy the server
      pid_t pid = pid_;
      close();
      if (on_drain) on_drain(pid);
    } else if (state_ == State::kRefusing) {
      close();
    }
  }

  void dropQueued() {
    for (auto& o : out_) closeAll(&o.fds);
    out_.clear();
  }

  UpgradeServer* server_;
  asio::posix::stream_descriptor desc_;
  asio::steady_timer timer_;
  pid_t pid_;  // SO_PEERCRED, in our pid namespace
  State state_ = State::kHello;
  bool closed_ = false;
  uint64_t timer_gen_ = 0;
  std::string in_;
  std::deque<Out> out_;
};

UpgradeServer::UpgradeServer(asio::io_context& io) : impl_(std::make_shared<Impl>(*this, io)) {}
UpgradeServer::~UpgradeServer() { stop(); }

bool UpgradeServer::start(const std::string& name_or_path, std::string* error) {
  if (impl_->listener) {
    *error = "upgrade socket already listening";
    return false;
  }
  sockaddr_un addr;
  socklen_t len;
  bool path = isPath(name_or_path);
  if (!core::net::unixSockaddr(name_or_path, !path, &addr, &len)) {
    *error = "bad upgrade socket name \"" + name_or_path + "\"";
    return false;
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = errnoText("socket");
    return false;
  }
  int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len);
  if (rc != 0 && errno == EADDRINUSE && path && staleSocketFile(name_or_path, addr, len)) {
    ::unlink(name_or_path.c_str());
    rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len);
  }
  if (rc != 0 || ::listen(fd, 16) != 0) {
    *error = errnoText(rc != 0 ? "bind" : "listen") + " (upgrade socket " + describe(name_or_path) + ")";
    ::close(fd);
    if (rc == 0 && path) ::unlink(name_or_path.c_str());
    return false;
  }
  boost::system::error_code ec;
  impl_->listener.emplace(impl_->io);
  impl_->listener->assign(fd, ec);
  if (ec) {
    *error = "upgrade socket: " + ec.message();
    ::close(fd);
    impl_->listener.reset();
    if (path) ::unlink(name_or_path.c_str());
    return false;
  }
  if (path) impl_->path = name_or_path;
  impl_->accept();
  FERRY_LOG(kInfo, "upgrade: listening on ", describe(name_or_path));
  return true;
}

void UpgradeServer::stop() {
  if (impl_->listener) {
    boost::system::error_code ec;
    impl_->listener->close(ec);
    impl_->listener.reset();
    impl_->retry.cancel();
  }
  if (!impl_->path.empty()) ::unlink(impl_->path.c_str());
  impl_->path.clear();
  auto sessions = std::move(impl_->sessions);
  impl_->sessions.clear();
  for (const auto& s : sessions) s->close();
}

void UpgradeServer::Impl::accept() {
  listener->async_wait(asio::posix::descriptor_base::wait_read,
                       [weak = weak_from_this()](const boost::system::error_code& ec) {
                         auto self = weak.lock();
                         if (!self || !self->listener || ec == asio::error::operation_aborted) return;
                         self->onAcceptable();
                       });
}

void UpgradeServer::Impl::onAcceptable() {
  for (;;) {
    int fd = ::accept4(listener->native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      FERRY_LOG(kWarn, "upgrade: accept: ", std::strerror(errno), "; retrying in 1s");
      retry.expires_after(std::chrono::seconds(1));
      retry.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (self && !ec && self->listener) self->accept();
      });
      return;
    }
    ucred cred{};
    if (!peerCredentials(fd, &cred) || !uidAllowed(cred.uid)) {
      FERRY_LOG(kWarn, "upgrade: refused a connection from uid ", cred.uid, " (pid ", cred.pid, "): only root and uid ",
                ::geteuid(), " may take over");
      ::close(fd);
      continue;
    }
    auto session = std::make_shared<Session>(owner, cred.pid);
    if (!session->assign(fd)) continue;
    sessions.insert(session);
    session->start();
  }
  accept();
}

// ---- New side ----

UpgradeSession::~UpgradeSession() { close(); }

UpgradeSession::UpgradeSession(UpgradeSession&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), timeout_(other.timeout_), pending_(std::move(other.pending_)) {}

UpgradeSession& UpgradeSession::operator=(UpgradeSession&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    timeout_ = other.timeout_;
    pending_ = std::move(other.pending_);
  }
  return *this;
}

void UpgradeSession::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  pending_.clear();
}

bool UpgradeSession::sendDrain(std::string* error) {
  if (fd_ < 0) {
    *error = "no connection to the old process";
    return false;
  }
  auto deadline = Clock::now() + timeout_;
  FdQueue fds;
  std::string reply, err;
  bool ok = writeAll(fd_, frame("DRAIN"), deadline, &err) && readFrame(fd_, &pending_, &fds, deadline, &reply, &err);
  close();
  if (!ok) {
    *error = "DRAIN: " + err;
    return false;
  }
  if (reply != "DRAINING") {
    *error = "DRAIN: unexpected reply \"" + reply.substr(0, 80) + "\"";
    return false;
  }
  return true;
}

bool fetchInventory(const UpgradeTarget& target, std::chrono::milliseconds timeout, UpgradeSession* session,
                    Inventory* out, std::string* error) {
  out->clear();
  const auto deadline = Clock::now() + timeout;
  const std::string where = describe(target.socket);
  sockaddr_un addr;
  socklen_t len;
  if (!core::net::unixSockaddr(target.socket, !isPath(target.socket), &addr, &len)) {
    *error = "bad upgrade socket name \"" + target.socket + "\"";
    return false;
  }
  UpgradeSession conn;  // closes the connection on every early return
  conn.timeout_ = timeout;
  for (;;) {  // old may not be listening yet
    conn.fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (conn.fd_ < 0) {
      *error = errnoText("socket");
      return false;
    }
    if (::connect(conn.fd_, reinterpret_cast<const sockaddr*>(&addr), len) == 0) break;
    int err = errno;
    conn.close();
    bool retry = err == ECONNREFUSED || err == ENOENT || err == EAGAIN;
    if (!retry || Clock::now() + kConnectRetry >= deadline) {
      *error = "connect " + where + ": " + std::strerror(err) + (retry ? " (until the timeout)" : "");
      return false;
    }
    std::this_thread::sleep_for(kConnectRetry);
  }

  ucred cred{};
  if (!peerCredentials(conn.fd_, &cred)) {
    *error = errnoText("SO_PEERCRED");
    return false;
  }
  if (!uidAllowed(cred.uid)) {
    *error = where + " belongs to uid " + std::to_string(cred.uid) + ", neither root nor us";
    return false;
  }
  if (target.pid != 0 && cred.pid != target.pid) {
    *error = where + " is held by pid " + std::to_string(cred.pid) + ", not " + std::to_string(target.pid);
    return false;
  }

  FdQueue fds;
  std::string msg;
  if (!writeAll(conn.fd_, frame("HELLO " + std::string(kVersion) + " " + std::to_string(::getpid())), deadline,
                error) ||
      !readFrame(conn.fd_, &conn.pending_, &fds, deadline, &msg, error)) {
    *error = where + ": " + *error;
    return false;
  }
  if (msg.rfind("ERROR ", 0) == 0) {
    *error = where + ": the old process says: " + msg.substr(6);
    return false;
  }
  std::vector<std::string> lines = split(msg, '\n');
  std::vector<std::string> head = split(lines[0], ' ');
  uint64_t items = 0, total = 0, ignored = 0;
  if (head.size() != 5 || head[0] != "INVENTORY" || head[1] != kVersion || !parseNumber(head[2], INT32_MAX, &ignored) ||
      !parseNumber(head[3], kMaxFds, &items) || !parseNumber(head[4], kMaxFds, &total) || lines.size() != items + 1) {
    *error = where + ": malformed inventory \"" + lines[0].substr(0, 80) + "\"";
    return false;
  }
  Inventory inv(items);
  std::vector<size_t> counts(items);
  uint64_t sum = 0;
  for (size_t i = 0; i < items; ++i) {
    std::vector<std::string> f = split(lines[i + 1], ' ');
    uint64_t n = 0;
    if (f.size() != 4 || !decodeField(f[0], &inv[i].kind) || !decodeField(f[1], &inv[i].name) ||
        !decodeField(f[2], &inv[i].address) || !parseNumber(f[3], kMaxFds, &n)) {
      *error = where + ": malformed inventory item \"" + lines[i + 1].substr(0, 80) + "\"";
      return false;
    }
    counts[i] = n;
    sum += n;
  }
  if (sum != total) {
    *error = where + ": inventory items hold " + std::to_string(sum) + " fds, not " + std::to_string(total);
    return false;
  }

  FdQueue got;
  while (got.fds.size() < total) {
    if (!readFrame(conn.fd_, &conn.pending_, &fds, deadline, &msg, error)) {
      *error = where + ": " + *error;
      return false;
    }
    std::vector<std::string> f = split(msg, ' ');
    uint64_t n = 0;
    if (f.size() != 2 || f[0] != "FDS" || !parseNumber(f[1], kMaxFdsPerMessage, &n) || n == 0 ||
        n > total - got.fds.size() || n > fds.fds.size()) {
      *error = where + ": unexpected message \"" + msg.substr(0, 80) + "\" while receiving fds";
      return false;
    }
    for (uint64_t i = 0; i < n; ++i) {
      got.fds.push_back(fds.fds.front());
      fds.fds.pop_front();
    }
  }
  if (!fds.fds.empty()) {
    *error = where + ": received more fds than the inventory lists";
    return false;
  }
  for (size_t i = 0; i < items; ++i) {
    for (size_t k = 0; k < counts[i]; ++k) {
      inv[i].fds.push_back(got.fds.front());
      got.fds.pop_front();
    }
  }
  *out = std::move(inv);
  if (session != nullptr) *session = std::move(conn);
  return true;
}

}  // namespace ferry::proxy
