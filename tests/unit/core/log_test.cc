// core/log: the text and JSON line formats, and ReopenableFile (the log file's reopen).
#include "core/log.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/reopenable_file.h"
#include "tests/integration/json.h"

using ferry::core::ReopenableFile;
namespace flog = ferry::core::log;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Dir {
  std::string path;
  Dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ferry-log-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~Dir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("log: text lines", "[core][log]") {
  // 2026-01-02T03:04:05.678Z
  const int64_t ms = 1767323045678;
  CHECK(flog::formatLine(flog::Format::kText, flog::Level::kWarn, "hello", ms, 0) ==
        "[2026-01-02T03:04:05.678Z] [warn] hello");
  CHECK(flog::formatLine(flog::Format::kText, flog::Level::kInfo, "x", ms, 3) == "[2026-01-02T03:04:05.678Z] [info] x");
}

TEST_CASE("log: json lines are one valid object with escaped strings", "[core][log]") {
  const int64_t ms = 1767323045678;
  const std::string msg = std::string("quote \" backslash \\ newline \n tab \t cr \r nul ") + '\0' +
                          " bell \x07 del \x7f utf8 \xc3\xa9";
  const std::string line = flog::formatLine(flog::Format::kJson, flog::Level::kError, msg, ms, 0);
  CHECK(line.find('\n') == std::string::npos);
  auto j = ferry::testing::parseJson(line);
  REQUIRE(j);
  CHECK((*j)["time"].str() == "2026-01-02T03:04:05.678Z");
  CHECK((*j)["level"].str() == "error");
  CHECK((*j)["msg"].str() == msg);
  CHECK_FALSE(j->has("worker"));
  CHECK(line == "{\"time\":\"2026-01-02T03:04:05.678Z\",\"level\":\"error\",\"msg\":\"quote \\\" backslash \\\\ "
                "newline \\n tab \\t cr \\r nul \\u0000 bell \\u0007 del \\u007f utf8 \xc3\xa9\"}");

  auto w = ferry::testing::parseJson(flog::formatLine(flog::Format::kJson, flog::Level::kInfo, "up", ms, 4));
  REQUIRE(w);
  CHECK((*w)["worker"].num() == 4);
  CHECK((*w)["level"].str() == "info");
}

TEST_CASE("log: setOutput and setFormat direct write()", "[core][log]") {
  Dir d;
  const std::string path = d.path + "/out.log";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  REQUIRE(fd >= 0);
  flog::setOutput(fd);
  flog::setFormat(flog::Format::kJson);
  FERRY_LOG(kError, "to the file ", 42);
  flog::setFormat(flog::Format::kText);
  flog::setOutput(STDERR_FILENO);
  ::close(fd);
  const std::string text = slurp(path);
  REQUIRE(!text.empty());
  CHECK(text.back() == '\n');
  auto j = ferry::testing::parseJson(text.substr(0, text.size() - 1));
  REQUIRE(j);
  CHECK((*j)["msg"].str() == "to the file 42");
}

TEST_CASE("ReopenableFile: reopen after a rename keeps the descriptor number", "[core][log]") {
  Dir d;
  const std::string path = d.path + "/ferry.log";
  std::string err;
  auto f = ReopenableFile::open(path, 0640, &err);
  REQUIRE(f);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  CHECK((::fcntl(f->fd(), F_GETFD) & FD_CLOEXEC) != 0);
  CHECK((::fcntl(f->fd(), F_GETFL) & O_APPEND) != 0);
  const int number = f->fd();
  f->write("one\n");
  REQUIRE(::rename(path.c_str(), (path + ".1").c_str()) == 0);
  f->write("two\n");  // still the renamed file
  std::vector<std::string> errors;
  CHECK(ReopenableFile::reopenAll(&errors) >= 1);
  CHECK(errors.empty());
  CHECK(f->fd() == number);
  CHECK((::fcntl(f->fd(), F_GETFD) & FD_CLOEXEC) != 0);
  f->write("three\n");
  CHECK(slurp(path + ".1") == "one\ntwo\n");
  CHECK(slurp(path) == "three\n");

  // A path that cannot be opened again (a directory now): an error, and the file in use stays.
  REQUIRE(::rename(path.c_str(), (path + ".2").c_str()) == 0);
  REQUIRE(::mkdir(path.c_str(), 0755) == 0);
  CHECK_FALSE(f->reopen(&err));
  CHECK(err.find("cannot open " + path) == 0);
  f->write("four\n");
  CHECK(slurp(path + ".2") == "three\nfour\n");
  CHECK_FALSE(ReopenableFile::open(d.path + "/no/such/dir.log", 0640, &err));
  CHECK(err.find("cannot open") == 0);
}
