// The io_uring backend when Ferry is built without liburing: never available.
#include "core/event/uring.h"

#include "core/buffer.h"

namespace ferry::core {

struct Uring::Impl {};

Uring::Uring(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Uring::~Uring() = default;

bool Uring::probe(std::string* why) {
  *why = "this build has no io_uring support (liburing-dev was missing when it was configured)";
  return false;
}
std::unique_ptr<Uring> Uring::create(std::string* why, unsigned) {
  probe(why);
  return nullptr;
}
bool Uring::addPoll(int, PollHandler*) { return false; }
void Uring::removePoll(int, PollHandler*) {}
uint32_t Uring::open(int, UringSocket*) { return 0; }
void Uring::recv(uint32_t) {}
void Uring::cancelRecv(uint32_t) {}
void Uring::pollWritable(uint32_t) {}
void Uring::send(uint32_t, const Buffer&) {}
void Uring::close(uint32_t, Buffer*) {}
int Uring::wait(int, PollHandler*) { return 0; }
unsigned Uring::receiveBuffers() const { return 0; }

}  // namespace ferry::core
