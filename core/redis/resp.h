// RESP (the Redis protocol) for Ferry's own Redis client: replies are parsed by hiredis's
// reader (redisReader: feed bytes, take whole replies; it keeps partial input itself), and
// commands are written here as RESP arrays of bulk strings. No socket, no hiredis
// connection: the bytes travel over Ferry's non-blocking connections (client.h).
// Any thread; one reader per connection.
#pragma once

#include <hiredis/hiredis.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "core/buffer.h"

namespace ferry::core::redis {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

class RespReader {
 public:
  RespReader();
  ~RespReader();
  RespReader(const RespReader&) = delete;
  RespReader& operator=(const RespReader&) = delete;

  // Appends bytes (hiredis copies them); a reply may arrive in any number of pieces.
  void feed(const char* data, size_t n);
  // Every byte of `b` (not drained).
  void feed(const Buffer& b);

  enum class Status { kReply, kNeedMore, kProtocolError };
  // The next whole reply, in the order the server sent them (error replies are replies).
  Status next(ReplyPtr* out);
  // hiredis's message after kProtocolError.
  std::string error() const;
  // Forgets buffered input and any error (a new connection).
  void reset();

 private:
  redisReader* r_;
};

// Writes commands (RESP arrays of bulk strings) into a string, reusing its capacity.
class CommandWriter {
 public:
  explicit CommandWriter(std::string& out) : out_(out) {}
  // Starts a command of `n` arguments (the name counts).
  CommandWriter& begin(size_t n);
  CommandWriter& arg(std::string_view s);
  CommandWriter& arg(int64_t v);
  // A bulk string whose bytes are the concatenation of the parts (a key with its prefix).
  CommandWriter& argConcat(std::initializer_list<std::string_view> parts);

 private:
  void number(char prefix, int64_t v);
  std::string& out_;
};

// One command from its arguments.
std::string encodeCommand(std::initializer_list<std::string_view> args);

// Lower-case hex SHA1 of a script (what SCRIPT LOAD answers and EVALSHA names).
std::string sha1Hex(std::string_view data);

// An error reply's first word ("NOSCRIPT", "ERR", "WRONGTYPE", ...).
bool errorIs(const redisReply& r, std::string_view code);

}  // namespace ferry::core::redis
