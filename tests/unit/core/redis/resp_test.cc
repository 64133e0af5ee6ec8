// The Redis client's RESP layer: hiredis's reader fed the way Ferry's connections deliver
// bytes (partial reads, several replies in one read, error replies), and command encoding.
#include <catch2/catch.hpp>

#include <string>

#include "core/redis/resp.h"

using namespace ferry::core::redis;

namespace {

// Every reply `reader` has now, as "type:value" strings.
std::vector<std::string> drain(RespReader& reader) {
  std::vector<std::string> out;
  for (;;) {
    ReplyPtr r;
    auto st = reader.next(&r);
    if (st == RespReader::Status::kNeedMore) break;
    REQUIRE(st == RespReader::Status::kReply);
    switch (r->type) {
      case REDIS_REPLY_STATUS: out.push_back("status:" + std::string(r->str, r->len)); break;
      case REDIS_REPLY_ERROR: out.push_back("error:" + std::string(r->str, r->len)); break;
      case REDIS_REPLY_STRING: out.push_back("string:" + std::string(r->str, r->len)); break;
      case REDIS_REPLY_INTEGER: out.push_back("int:" + std::to_string(r->integer)); break;
      case REDIS_REPLY_NIL: out.push_back("nil"); break;
      case REDIS_REPLY_ARRAY: {
        std::string s = "array:";
        for (size_t i = 0; i < r->elements; ++i)
          s += (i ? "," : "") + (r->element[i]->type == REDIS_REPLY_INTEGER ? std::to_string(r->element[i]->integer)
                                                                           : std::string("?"));
        out.push_back(s);
        break;
      }
      default: out.push_back("other"); break;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("resp: a reply split over many reads comes out whole, once", "[redis]") {
  RespReader reader;
  const std::string bytes = "*3\r\n:1\r\n:41\r\n:250\r\n";
  for (size_t i = 0; i + 1 < bytes.size(); ++i) {
    reader.feed(&bytes[i], 1);
    CHECK(drain(reader).empty());
  }
  reader.feed(&bytes.back(), 1);
  CHECK(drain(reader) == std::vector<std::string>{"array:1,41,250"});
  CHECK(drain(reader).empty());
}

TEST_CASE("resp: pipelined replies in one read come out in order", "[redis]") {
  RespReader reader;
  const std::string bytes =
      "+OK\r\n$40\r\n0123456789012345678901234567890123456789\r\n+PONG\r\n"
      "-NOSCRIPT No matching script. Please use EVAL.\r\n*3\r\n:0\r\n:0\r\n:999\r\n$-1\r\n:7\r\n";
  reader.feed(bytes.data(), bytes.size() - 3);  // the last reply is cut: held back
  CHECK(drain(reader) == std::vector<std::string>{"status:OK", "string:0123456789012345678901234567890123456789",
                                                  "status:PONG", "error:NOSCRIPT No matching script. Please use EVAL.",
                                                  "array:0,0,999", "nil"});
  reader.feed(bytes.data() + bytes.size() - 3, 3);
  CHECK(drain(reader) == std::vector<std::string>{"int:7"});
}

TEST_CASE("resp: error replies are replies; errorIs matches the code word", "[redis]") {
  RespReader reader;
  const std::string bytes = "-NOSCRIPT No matching script\r\n-ERR unknown command\r\n-NOSCRIPTX y\r\n";
  reader.feed(bytes.data(), bytes.size());
  std::vector<ReplyPtr> replies;
  for (;;) {
    ReplyPtr r;
    if (reader.next(&r) != RespReader::Status::kReply) break;
    replies.push_back(std::move(r));
  }
  REQUIRE(replies.size() == 3);
  CHECK(errorIs(*replies[0], "NOSCRIPT"));
  CHECK_FALSE(errorIs(*replies[0], "ERR"));
  CHECK(errorIs(*replies[1], "ERR"));
  CHECK_FALSE(errorIs(*replies[2], "NOSCRIPT"));
}

TEST_CASE("resp: a protocol error is reported, and reset() starts afresh", "[redis]") {
  RespReader reader;
  reader.feed("!bogus\r\n", 8);
  ReplyPtr r;
  CHECK(reader.next(&r) == RespReader::Status::kProtocolError);
  CHECK_FALSE(reader.error().empty());
  reader.reset();
  reader.feed(":5\r\n", 4);
  CHECK(drain(reader) == std::vector<std::string>{"int:5"});
}

TEST_CASE("resp: a Buffer of several slices is fed whole", "[redis]") {
  RespReader reader;
  ferry::core::Buffer b;
  std::string big(100000, 'x');
  std::string bytes = "$100000\r\n" + big + "\r\n:3\r\n";
  b.add(bytes);
  reader.feed(b);
  ReplyPtr r;
  REQUIRE(reader.next(&r) == RespReader::Status::kReply);
  CHECK(r->type == REDIS_REPLY_STRING);
  CHECK(std::string(r->str, r->len) == big);
  CHECK(drain(reader) == std::vector<std::string>{"int:3"});
}

TEST_CASE("resp: commands are RESP arrays of bulk strings", "[redis]") {
  CHECK(encodeCommand({"PING"}) == "*1\r\n$4\r\nPING\r\n");
  std::string out;
  CommandWriter(out).begin(4).arg("EVALSHA").arg("ab").arg(int64_t{1}).argConcat({"ferry:rl:d:", "k\r\n"});
  CHECK(out == "*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$14\r\nferry:rl:d:k\r\n\r\n");
  CHECK(encodeCommand({""}) == "*1\r\n$0\r\n\r\n");
  // SHA1 as SCRIPT LOAD reports it.
  CHECK(sha1Hex("return 1") == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}
