#include "core/redis/resp.h"

#include <hiredis/read.h>
#include <openssl/sha.h>
#include <sys/uio.h>

#include <charconv>
#include <new>

namespace ferry::core::redis {

RespReader::RespReader() : r_(redisReaderCreate()) {
  if (r_ == nullptr) throw std::bad_alloc();
}

RespReader::~RespReader() { redisReaderFree(r_); }

void RespReader::feed(const char* data, size_t n) {
  if (n > 0) redisReaderFeed(r_, data, n);
}

void RespReader::feed(const Buffer& b) {
  iovec iov[64];
  const size_t n = b.gather(iov, 64);
  size_t seen = 0;
  for (size_t i = 0; i < n; ++i) {
    feed(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    seen += iov[i].iov_len;
  }
  if (seen < b.length()) {  // more slices than iovecs: copy the rest out
    std::string rest(b.length() - seen, '\0');
    b.copyOut(seen, rest.size(), rest.data());
    feed(rest.data(), rest.size());
  }
}

RespReader::Status RespReader::next(ReplyPtr* out) {
  void* reply = nullptr;
  if (redisReaderGetReply(r_, &reply) != REDIS_OK) return Status::kProtocolError;
  if (reply == nullptr) return Status::kNeedMore;
  out->reset(static_cast<redisReply*>(reply));
  return Status::kReply;
}

std::string RespReader::error() const { return r_->err ? std::string(r_->errstr) : std::string(); }

void RespReader::reset() {
  redisReaderFree(r_);
  r_ = redisReaderCreate();
  if (r_ == nullptr) throw std::bad_alloc();
}

void CommandWriter::number(char prefix, int64_t v) {
  char buf[24];
  buf[0] = prefix;
  auto [end, ec] = std::to_chars(buf + 1, buf + sizeof buf, v);
  out_.append(buf, static_cast<size_t>(end - buf));
  out_.append("\r\n", 2);
}

CommandWriter& CommandWriter::begin(size_t n) {
  number('*', static_cast<int64_t>(n));
  return *this;
}

CommandWriter& CommandWriter::arg(std::string_view s) {
  number('$', static_cast<int64_t>(s.size()));
  out_.append(s.data(), s.size());
  out_.append("\r\n", 2);
  return *this;
}

CommandWriter& CommandWriter::arg(int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return arg(std::string_view(buf, static_cast<size_t>(end - buf)));
}

CommandWriter& CommandWriter::argConcat(std::initializer_list<std::string_view> parts) {
  size_t n = 0;
  for (auto p : parts) n += p.size();
  number('$', static_cast<int64_t>(n));
  for (auto p : parts) out_.append(p.data(), p.size());
  out_.append("\r\n", 2);
  return *this;
}

std::string encodeCommand(std::initializer_list<std::string_view> args) {
  std::string out;
  CommandWriter w(out);
  w.begin(args.size());
  for (auto a : args) w.arg(a);
  return out;
}

std::string sha1Hex(std::string_view data) {
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * SHA_DIGEST_LENGTH);
  for (unsigned char c : md) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

bool errorIs(const redisReply& r, std::string_view code) {
  if (r.type != REDIS_REPLY_ERROR || r.str == nullptr) return false;
  std::string_view s(r.str, r.len);
  return s.size() >= code.size() && s.substr(0, code.size()) == code &&
         (s.size() == code.size() || s[code.size()] == ' ');
}

}  // namespace ferry::core::redis
