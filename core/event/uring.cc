#include "core/event/uring.h"

#include <liburing.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "core/buffer.h"
#include "core/event/poller.h"

namespace ferry::core {

namespace {

constexpr unsigned kEntries = 1024;    // submission queue; the completion queue is 4x
constexpr unsigned kBufCount = 256;    // provided receive buffers at most (a power of two)
constexpr unsigned kBufStep = 32;      // provided at first, and added each time they run out
constexpr unsigned kBufSize = 16384;   // each: one receive completion carries up to this
constexpr uint16_t kBufGroup = 0;
constexpr unsigned kMaxFixed = 65536;  // file table size, within RLIMIT_NOFILE
constexpr size_t kSendIovecs = 64;
constexpr unsigned kBatch = 256;       // completions copied out per round

// user_data: op (8 bits) | generation (24 bits) | slot (32 bits).
enum Op : uint8_t { kIgnore = 0, kPoll, kRecv, kSend, kPollOut, kUnregister, kPollRemove };

uint64_t tag(Op op, uint32_t gen, uint32_t slot) {
  return (static_cast<uint64_t>(op) << 56) | (static_cast<uint64_t>(gen & 0xFFFFFF) << 32) | slot;
}

std::string errText(const char* what, int err) { return std::string(what) + ": " + std::strerror(err); }

// Plain poll bits to the EPOLL bits handlers expect (the same values on Linux, spelled out).
uint32_t toEpoll(int mask) {
  uint32_t e = 0;
  if (mask & POLLIN) e |= EPOLLIN;
  if (mask & POLLOUT) e |= EPOLLOUT;
  if (mask & POLLRDHUP) e |= EPOLLRDHUP;
  if (mask & POLLHUP) e |= EPOLLHUP;
  if (mask & POLLERR) e |= EPOLLERR;
  return e;
}

// A ring with the cheapest task-work mode the kernel offers: completions are run only when
// the worker asks for them (DEFER_TASKRUN, 6.1+), else without interrupting it (COOP), else
// plainly.
int initRing(io_uring* ring) {
  const unsigned modes[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_COOP_TASKRUN, 0};
  int r = -EINVAL;
  for (unsigned mode : modes) {
    io_uring_params p{};
    p.flags = mode | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = kEntries * 4;
    r = io_uring_queue_init_params(kEntries, ring, &p);
    if (r != -EINVAL) break;
  }
  return r;
}

}  // namespace

struct SendOp {
  msghdr msg{};
  iovec iov[kSendIovecs];
  Buffer keep;  // the bytes of a socket that closed with this send in flight
  uint32_t index = 0;  // in Impl::all_sends
};

constexpr uint32_t kNoSend = 0xFFFFFFFF;

// One per registered socket or polled descriptor: 24 bytes (idle memory counts it).
struct Slot {
  void* owner = nullptr;  // the UringSocket, or the PollHandler (is_poll); null once gone
  int fd = -1;
  uint32_t gen = 0;
  uint32_t send = kNoSend;  // the send in flight (an index in Impl::all_sends)
  uint16_t inflight = 0;    // requests that will still complete
  uint8_t is_poll : 1 = 0;
  uint8_t fixed : 1 = 0;
  uint8_t used : 1 = 0;
  uint8_t recv_armed : 1 = 0;
  uint8_t pollout_armed : 1 = 0;

  UringSocket* sock() const { return is_poll ? nullptr : static_cast<UringSocket*>(owner); }
  PollHandler* poll() const { return is_poll ? static_cast<PollHandler*>(owner) : nullptr; }
  void setSock(UringSocket* s) { owner = s, is_poll = 0; }
  void setPoll(PollHandler* h) { owner = h, is_poll = 1; }
};
static_assert(sizeof(Slot) <= 24, "a slot per connection: keep it small");

// Slots by index in chunks that never move (a slot's address stays valid while handlers open
// more sockets) and that grow with the number of sockets, not by doubling.
class SlotTable {
 public:
  size_t size() const { return size_; }
  Slot& operator[](size_t i) { return chunks_[i >> kShift][i & kMask]; }
  const Slot& operator[](size_t i) const { return chunks_[i >> kShift][i & kMask]; }
  void emplace_back() {
    if ((size_ & kMask) == 0) chunks_.push_back(std::make_unique<Slot[]>(kChunk));
    ++size_;
  }

 private:
  static constexpr size_t kShift = 9;
  static constexpr size_t kChunk = size_t{1} << kShift;
  static constexpr size_t kMask = kChunk - 1;
  std::vector<std::unique_ptr<Slot[]>> chunks_;
  size_t size_ = 0;
};

struct Uring::Impl {
  io_uring ring{};
  bool ring_ok = false;
  io_uring_buf_ring* br = nullptr;
  size_t br_bytes = 0;
  uint8_t* bufs = nullptr;  // kBufCount x kBufSize, mapped; pages are touched only once provided
  unsigned provided = 0;    // buffers handed to the kernel so far (they stay in the ring)
  unsigned fixed_cap = 0;  // file table size (0: no fixed files)
  SlotTable slots;
  std::vector<uint32_t> free_slots;
  std::vector<SendOp*> free_sends;
  std::vector<SendOp*> all_sends;
  unsigned pending_sqes = 0;
  static constexpr int kMinusOne = -1;  // read by the kernel when an unregister is issued

  ~Impl() {
    if (ring_ok) {
      // Cancel what is in flight and let it finish before the memory it uses goes away.
      if (io_uring_sqe* sqe = io_uring_get_sqe(&ring)) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
        io_uring_sqe_set_data64(sqe, tag(kIgnore, 0, 0));
      }
      for (int round = 0; round < 20 && inflightTotal() > 0; ++round) {
        __kernel_timespec ts{0, 10 * 1000 * 1000};
        io_uring_cqe* cqe = nullptr;
        io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, nullptr);
        drainQuietly();
      }
      io_uring_queue_exit(&ring);
    }
    if (br) ::munmap(br, br_bytes);
    if (bufs) ::munmap(bufs, static_cast<size_t>(kBufCount) * kBufSize);
    for (SendOp* op : all_sends) delete op;
  }

  size_t inflightTotal() const {
    size_t n = 0;
    for (size_t i = 0; i < slots.size(); ++i) n += slots[i].inflight;
    return n;
  }
  void drainQuietly() {
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      const uint64_t ud = cqe->user_data;
      const auto op = static_cast<Op>(ud >> 56);
      const auto idx = static_cast<uint32_t>(ud);
      const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
      if (op != kIgnore && idx < slots.size() && !more && slots[idx].inflight > 0) --slots[idx].inflight;
      ++seen;
    }
    io_uring_cq_advance(&ring, seen);
  }

  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring);
    if (s == nullptr) {
      io_uring_submit(&ring);  // the queue is full: hand it over now
      s = io_uring_get_sqe(&ring);
    }
    return s;  // never null after a submit with a 1024-entry queue
  }

  int fdFor(const Slot& s, uint32_t idx) const { return s.fixed ? static_cast<int>(idx) : s.fd; }
  static void fixedFlag(io_uring_sqe* q, const Slot& s) {
    if (s.fixed) q->flags |= IOSQE_FIXED_FILE;
  }

  uint32_t allocSlot() {
    uint32_t idx;
    if (!free_slots.empty()) {
      idx = free_slots.back();
      free_slots.pop_back();
    } else {
      idx = static_cast<uint32_t>(slots.size());
      slots.emplace_back();
    }
    Slot& s = slots[idx];
    const uint32_t gen = s.gen + 1;
    s = Slot{};
    s.gen = gen;
    s.used = true;
    return idx;
  }
  void maybeFree(uint32_t idx) {
    Slot& s = slots[idx];
    if (s.used && s.owner == nullptr && s.inflight == 0) {
      s.used = false;
      free_slots.push_back(idx);
    }
  }

  SendOp* acquireSend() {
    if (free_sends.empty()) {
      auto* op = new SendOp;
      op->index = static_cast<uint32_t>(all_sends.size());
      all_sends.push_back(op);
      return op;
    }
    SendOp* op = free_sends.back();
    free_sends.pop_back();
    return op;
  }
  void releaseSend(SendOp* op) {
    op->keep.clear();
    free_sends.push_back(op);
  }

  // Hands the kernel kBufStep more buffers, up to kBufCount: the ring starts small, so a
  // worker that never sees many receives at once touches few buffer pages (idle memory),
  // and grows when a receive finds none left (-ENOBUFS). False when all are provided.
  bool provideMore(unsigned step = kBufStep) {
    if (provided >= kBufCount) return false;
    const unsigned n = std::min(step, kBufCount - provided);
    for (unsigned i = 0; i < n; ++i) {
      const unsigned bid = provided + i;
      io_uring_buf_ring_add(br, bufs + static_cast<size_t>(bid) * kBufSize, kBufSize, static_cast<uint16_t>(bid),
                            io_uring_buf_ring_mask(kBufCount), static_cast<int>(i));
    }
    io_uring_buf_ring_advance(br, static_cast<int>(n));
    provided += n;
    return true;
  }

  void recycle(uint16_t bid) {
    io_uring_buf_ring_add(br, bufs + static_cast<size_t>(bid) * kBufSize, kBufSize, bid,
                          io_uring_buf_ring_mask(kBufCount), 0);
    io_uring_buf_ring_advance(br, 1);
  }

  void armPoll(uint32_t idx) {
    Slot& s = slots[idx];
    io_uring_sqe* q = sqe();
    io_uring_prep_poll_multishot(q, s.fd, POLLIN | POLLRDHUP);
    io_uring_sqe_set_data64(q, tag(kPoll, s.gen, idx));
    ++s.inflight;
  }
  void armRecv(uint32_t idx) {
    Slot& s = slots[idx];
    if (s.recv_armed) return;
    io_uring_sqe* q = sqe();
    io_uring_prep_recv_multishot(q, fdFor(s, idx), nullptr, 0, 0);
    fixedFlag(q, s);
    q->flags |= IOSQE_BUFFER_SELECT;
    q->buf_group = kBufGroup;
    io_uring_sqe_set_data64(q, tag(kRecv, s.gen, idx));
    s.recv_armed = true;
    ++s.inflight;
  }
  // Ends a removed handler's multishot poll. The completion of the removal is watched: a poll
  // caught while it fires answers -EALREADY and would stay armed (holding its file open).
  void removePollOf(uint32_t idx) {
    io_uring_sqe* q = sqe();
    io_uring_prep_poll_remove(q, tag(kPoll, slots[idx].gen, idx));
    io_uring_sqe_set_data64(q, tag(kPollRemove, slots[idx].gen, idx));
  }
  void cancel(uint32_t idx, Op op) {
    io_uring_sqe* q = sqe();
    io_uring_prep_cancel64(q, tag(op, slots[idx].gen, idx), 0);
    io_uring_sqe_set_data64(q, tag(kIgnore, 0, 0));
  }

  void complete(const io_uring_cqe& c);
};

namespace {
bool setupBuffers(Uring::Impl& im, unsigned first_buffers, std::string* why) {
  im.br_bytes = kBufCount * sizeof(io_uring_buf);
  void* mem = ::mmap(nullptr, im.br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    *why = errText("mmap", errno);
    return false;
  }
  im.br = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(mem);
  reg.ring_entries = kBufCount;
  reg.bgid = kBufGroup;
  if (int r = io_uring_register_buf_ring(&im.ring, &reg, 0); r != 0) {
    *why = errText("provided-buffer ring", -r);
    return false;
  }
  void* bufs = ::mmap(nullptr, static_cast<size_t>(kBufCount) * kBufSize, PROT_READ | PROT_WRITE,
                      MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (bufs == MAP_FAILED) {
    *why = errText("mmap (receive buffers)", errno);
    return false;
  }
  im.bufs = static_cast<uint8_t*>(bufs);
  io_uring_buf_ring_init(im.br);
  im.provideMore(std::max(1u, first_buffers));
  return true;
}

// Multishot receive into a provided buffer, on a socket pair: what the backend relies on.
bool tryReceive(Uring::Impl& im, std::string* why) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
    *why = errText("socketpair", errno);
    return false;
  }
  uint32_t idx = im.allocSlot();
  im.slots[idx].fd = sv[0];
  im.armRecv(idx);
  bool ok = false;
  if (::write(sv[1], "x", 1) == 1) {
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{1, 0};
    int r = io_uring_submit_and_wait_timeout(&im.ring, &cqe, 1, &ts, nullptr);
    if (r < 0 || cqe == nullptr) {
      *why = errText("waiting for a receive", r < 0 ? -r : ETIME);
    } else if (cqe->res != 1 || !(cqe->flags & IORING_CQE_F_BUFFER)) {
      *why = cqe->res < 0 ? errText("multishot receive", -cqe->res) : "multishot receive: unexpected result";
    } else if (!(cqe->flags & IORING_CQE_F_MORE)) {
      *why = "multishot receive not supported (kernel 6.0 or newer needed)";
    } else {
      ok = true;
    }
    if (cqe != nullptr) {
      if (cqe->flags & IORING_CQE_F_BUFFER) im.recycle(static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
      if (!(cqe->flags & IORING_CQE_F_MORE)) --im.slots[idx].inflight, im.slots[idx].recv_armed = false;
      io_uring_cqe_seen(&im.ring, cqe);
    }
  } else {
    *why = errText("write", errno);
  }
  // Closing the peer ends the receive (EOF); collect that completion too.
  ::close(sv[1]);
  for (int i = 0; i < 20 && im.slots[idx].inflight > 0; ++i) {
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{0, 50 * 1000 * 1000};
    if (io_uring_submit_and_wait_timeout(&im.ring, &cqe, 1, &ts, nullptr) < 0 || cqe == nullptr) continue;
    if (cqe->flags & IORING_CQE_F_BUFFER) im.recycle(static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
    if (!(cqe->flags & IORING_CQE_F_MORE)) --im.slots[idx].inflight;
    io_uring_cqe_seen(&im.ring, cqe);
  }
  im.slots[idx].recv_armed = false;
  im.slots[idx].owner = nullptr;
  ::close(sv[0]);
  im.maybeFree(idx);
  return ok;
}
}  // namespace

Uring::Uring(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Uring::~Uring() = default;

std::unique_ptr<Uring> Uring::create(std::string* why, unsigned first_buffers) {
  auto im = std::make_unique<Impl>();
  if (int r = initRing(&im->ring); r != 0) {
    *why = errText("io_uring_setup", -r);
    return nullptr;
  }
  im->ring_ok = true;
  if (!(im->ring.features & IORING_FEAT_EXT_ARG)) {
    *why = "io_uring without timed waits (kernel 5.11 or newer needed)";
    return nullptr;
  }
  if (!setupBuffers(*im, first_buffers, why)) return nullptr;
  if (!tryReceive(*im, why)) return nullptr;
  rlimit rl{};
  unsigned cap = kMaxFixed;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) cap = std::min<rlim_t>(cap, rl.rlim_cur);
  if (cap > 0 && io_uring_register_files_sparse(&im->ring, cap) == 0) im->fixed_cap = cap;
  return std::unique_ptr<Uring>(new Uring(std::move(im)));
}

bool Uring::probe(std::string* why) { return create(why) != nullptr; }

unsigned Uring::receiveBuffers() const { return impl_->provided; }

bool Uring::addPoll(int fd, PollHandler* handler) {
  Impl& im = *impl_;
  uint32_t idx = im.allocSlot();
  im.slots[idx].fd = fd;
  im.slots[idx].setPoll(handler);
  im.armPoll(idx);
  return true;
}

void Uring::removePoll(int fd, PollHandler* handler) {
  Impl& im = *impl_;
  for (uint32_t i = 0; i < im.slots.size(); ++i) {
    Slot& s = im.slots[i];
    if (s.used && s.poll() == handler && s.fd == fd) {
      s.owner = nullptr;
      if (s.inflight > 0) im.removePollOf(i);
      im.maybeFree(i);
      return;
    }
  }
}

uint32_t Uring::open(int fd, UringSocket* sock) {
  Impl& im = *impl_;
  uint32_t idx = im.allocSlot();
  Slot& s = im.slots[idx];
  s.fd = fd;
  s.setSock(sock);
  if (idx < im.fixed_cap && io_uring_register_files_update(&im.ring, idx, &fd, 1) == 1) s.fixed = true;
  return idx;
}

void Uring::recv(uint32_t slot) { impl_->armRecv(slot); }

void Uring::cancelRecv(uint32_t slot) {
  if (!impl_->slots[slot].recv_armed) return;
  impl_->cancel(slot, kRecv);
  // At once, not with the next wait: until then every wait would keep receiving into the
  // inbox of a connection that is not reading. Rare (backpressure only).
  io_uring_submit(&impl_->ring);
}

void Uring::pollWritable(uint32_t slot) {
  Impl& im = *impl_;
  Slot& s = im.slots[slot];
  io_uring_sqe* q = im.sqe();
  io_uring_prep_poll_add(q, im.fdFor(s, slot), POLLOUT);
  Impl::fixedFlag(q, s);
  io_uring_sqe_set_data64(q, tag(kPollOut, s.gen, slot));
  s.pollout_armed = true;
  ++s.inflight;
}

void Uring::send(uint32_t slot, const Buffer& data) {
  Impl& im = *impl_;
  Slot& s = im.slots[slot];
  SendOp* op = im.acquireSend();
  const size_t n = data.gather(op->iov, kSendIovecs);
  io_uring_sqe* q = im.sqe();
  if (n == 1) {
    // One piece (a response head and a small body share a slice): a plain send, which spares
    // the kernel copying and checking a msghdr and its iovec array.
    io_uring_prep_send(q, im.fdFor(s, slot), op->iov[0].iov_base, op->iov[0].iov_len, MSG_NOSIGNAL);
  } else {
    op->msg = msghdr{};
    op->msg.msg_iov = op->iov;
    op->msg.msg_iovlen = n;
    io_uring_prep_sendmsg(q, im.fdFor(s, slot), &op->msg, MSG_NOSIGNAL);
  }
  Impl::fixedFlag(q, s);
  io_uring_sqe_set_data64(q, tag(kSend, s.gen, slot));
  s.send = op->index;
  ++s.inflight;
}

void Uring::close(uint32_t slot, Buffer* in_flight) {
  Impl& im = *impl_;
  Slot& s = im.slots[slot];
  s.owner = nullptr;
  if (s.send != kNoSend) {
    if (in_flight != nullptr) im.all_sends[s.send]->keep.move(*in_flight);
    im.cancel(slot, kSend);
  }
  if (s.recv_armed) im.cancel(slot, kRecv);
  if (s.pollout_armed) im.cancel(slot, kPollOut);
  if (s.fixed) {
    // The table's reference goes with this request; the slot waits for it, so a new socket
    // never lands in an entry that is about to be cleared.
    io_uring_sqe* q = im.sqe();
    io_uring_prep_files_update(q, const_cast<int*>(&Impl::kMinusOne), 1, static_cast<int>(slot));
    io_uring_sqe_set_data64(q, tag(kUnregister, s.gen, slot));
    ++s.inflight;
    s.fixed = false;
  }
  im.maybeFree(slot);
}

void Uring::Impl::complete(const io_uring_cqe& c) {
  const uint64_t ud = c.user_data;
  const auto op = static_cast<Op>(ud >> 56);
  if (op == kIgnore) return;
  const auto idx = static_cast<uint32_t>(ud);
  const uint32_t gen = static_cast<uint32_t>(ud >> 32) & 0xFFFFFF;
  const bool more = (c.flags & IORING_CQE_F_MORE) != 0;
  const bool has_buf = (c.flags & IORING_CQE_F_BUFFER) != 0;
  const auto bid = static_cast<uint16_t>(c.flags >> IORING_CQE_BUFFER_SHIFT);
  if (idx >= slots.size() || (slots[idx].gen & 0xFFFFFF) != gen) {  // cannot happen: slots wait
    if (has_buf) recycle(bid);
    return;
  }
  Slot* s = &slots[idx];
  if (op == kPollRemove) {  // not a request of the slot's own: inflight does not count it
    if (c.res == -EALREADY && s->poll() == nullptr && s->inflight > 0) removePollOf(idx);
    return;
  }
  if (!more && s->inflight > 0) --s->inflight;
  switch (op) {
    case kPoll:
      if (s->poll() == nullptr && more) {
        removePollOf(idx);  // removed, but still armed: end it
      } else if (s->poll() != nullptr) {
        PollHandler* h = s->poll();
        if (!more && c.res != -ECANCELED) armPoll(idx);  // ended by the kernel: poll on
        if (c.res > 0) h->onPollEvents(toEpoll(c.res));
        else if (c.res < 0 && c.res != -ECANCELED) h->onPollEvents(EPOLLERR);
      }
      break;
    case kRecv: {
      if (!more) s->recv_armed = false;
      if (c.res == -ENOBUFS) provideMore();  // before the socket arms its receive again
      UringSocket* sock = s->sock();
      const uint8_t* data = has_buf ? bufs + static_cast<size_t>(bid) * kBufSize : nullptr;
      if (sock != nullptr) sock->onUringRecv(data, c.res, more);
      if (has_buf) recycle(bid);
      break;
    }
    case kSend: {
      SendOp* sop = s->send == kNoSend ? nullptr : all_sends[s->send];
      s->send = kNoSend;
      UringSocket* sock = s->sock();
      if (sop != nullptr) releaseSend(sop);
      if (sock != nullptr) sock->onUringSent(c.res);
      break;
    }
    case kPollOut:
      s->pollout_armed = false;
      if (s->sock() != nullptr) s->sock()->onUringWritable(c.res);
      break;
    case kUnregister:
    case kIgnore:
    case kPollRemove:
      break;
  }
  // Handlers may have opened sockets (slots may have moved): look the slot up again.
  maybeFree(idx);
}

int Uring::wait(int timeout_ms, PollHandler* first) {
  Impl& im = *impl_;
  io_uring_cqe* cqe = nullptr;
  if (timeout_ms == 0) {
    io_uring_submit_and_get_events(&im.ring);
  } else if (timeout_ms < 0) {
    io_uring_submit_and_wait(&im.ring, 1);
  } else {
    __kernel_timespec ts{timeout_ms / 1000, static_cast<long long>(timeout_ms % 1000) * 1000000};
    io_uring_submit_and_wait_timeout(&im.ring, &cqe, 1, &ts, nullptr);
  }
  int handled = 0;
  io_uring_cqe batch[kBatch];
  for (;;) {
    unsigned n = 0;
    unsigned head;
    io_uring_for_each_cqe(&im.ring, head, cqe) {
      batch[n++] = *cqe;
      if (n == kBatch) break;
    }
    if (n == 0) break;
    io_uring_cq_advance(&im.ring, n);
    if (first != nullptr) {
      for (unsigned i = 0; i < n; ++i) {
        const auto idx = static_cast<uint32_t>(batch[i].user_data);
        if (static_cast<Op>(batch[i].user_data >> 56) == kPoll && idx < im.slots.size() && im.slots[idx].poll() == first) {
          im.complete(batch[i]);
          batch[i].user_data = tag(kIgnore, 0, 0);
        }
      }
    }
    for (unsigned i = 0; i < n; ++i) im.complete(batch[i]);
    handled += static_cast<int>(n);
    if (n < kBatch) break;
  }
  return handled;
}

}  // namespace ferry::core
