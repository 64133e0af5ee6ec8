// FileWatcher: real inotify on a temporary directory, a real io_context, a 20 ms debounce.
// Every wait is bounded (runUntil); "does not fire" is a wait whose condition stays false.
#include "core/event/file_watcher.h"

#include <stdlib.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/event_loop.h"

using ferry::core::FileWatcher;
using ferry::testing::runUntil;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/ferry_file_watcher_XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path = p;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
  std::string path;
};

// Truncates and writes; the close is the IN_CLOSE_WRITE.
void writeFile(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  f.close();
  REQUIRE(f.good());
}

// Writes a temporary file next to `path` and renames it over `path`.
void replaceFile(const std::string& path, const std::string& content) {
  writeFile(path + ".tmp", content);
  fs::rename(path + ".tmp", path);
}

// What the kubelet's atomic writer does: a new timestamped directory with the files, a
// `..data_tmp` symlink to it, renamed over `..data`.
void swapData(const TempDir& dir, const std::string& version, const std::string& content) {
  fs::create_directory(dir / version);
  writeFile(dir / version + "/cert.pem", content);
  fs::create_symlink(version, dir / "..data_tmp");
  fs::rename(dir / "..data_tmp", dir / "..data");
}

constexpr auto kQuiet = 200ms;  // 10 debounces: long enough for a stray fire to show

struct Fixture {
  boost::asio::io_context io;
  TempDir dir;
  FileWatcher watcher{io, 20ms};  // destroyed first

  // Runs the loop until `count` reaches `want` (bounded).
  bool fires(const int& count, int want) {
    return runUntil(io, [&] { return count >= want; });
  }
  // Runs the loop for kQuiet and reports whether `count` stayed at `stays`.
  bool quiet(const int& count, int stays) {
    return !runUntil(io, [&] { return count != stays; }, kQuiet);
  }
};

}  // namespace

TEST_CASE("file_watcher: overwriting a file in place fires once", "[file_watcher]") {
  Fixture f;
  std::string cert = f.dir / "cert.pem";
  writeFile(cert, "v1");
  int count = 0;
  f.watcher.watch({cert}, [&] { ++count; });
  writeFile(cert, "version 2");
  REQUIRE(f.fires(count, 1));
  CHECK(f.quiet(count, 1));
}

TEST_CASE("file_watcher: an atomic rename over the file fires", "[file_watcher]") {
  Fixture f;
  std::string cert = f.dir / "cert.pem";
  writeFile(cert, "v1");
  int count = 0;
  f.watcher.watch({cert}, [&] { ++count; });
  replaceFile(cert, "version 2");
  REQUIRE(f.fires(count, 1));
  CHECK(f.quiet(count, 1));
  replaceFile(cert, "version three");
  REQUIRE(f.fires(count, 2));
}

TEST_CASE("file_watcher: a Kubernetes ..data swap fires, and so does the next one", "[file_watcher]") {
  Fixture f;
  fs::create_directory(f.dir / "..2026_a");
  writeFile(f.dir / "..2026_a/cert.pem", "a");
  fs::create_symlink("..2026_a", f.dir / "..data");
  fs::create_symlink("..data/cert.pem", f.dir / "cert.pem");
  int count = 0;
  f.watcher.watch({f.dir / "cert.pem"}, [&] { ++count; });

  swapData(f.dir, "..2026_b", "bb");
  fs::remove_all(f.dir / "..2026_a");  // the kubelet removes the old version
  REQUIRE(f.fires(count, 1));
  CHECK(f.quiet(count, 1));

  swapData(f.dir, "..2026_c", "ccc");
  fs::remove_all(f.dir / "..2026_b");
  REQUIRE(f.fires(count, 2));
  CHECK(f.quiet(count, 2));

  // Re-armed on the new version's directory: a write there is seen too.
  writeFile(f.dir / "..2026_c/cert.pem", "cccc");
  REQUIRE(f.fires(count, 3));
}

TEST_CASE("file_watcher: a symlink moved to a file in another directory fires, and follows it", "[file_watcher]") {
  Fixture f;
  fs::create_directory(f.dir / "a");
  fs::create_directory(f.dir / "b");
  writeFile(f.dir / "a/real.pem", "a");
  writeFile(f.dir / "b/real.pem", "bb");
  fs::create_symlink("a/real.pem", f.dir / "cert.pem");
  int count = 0;
  f.watcher.watch({f.dir / "cert.pem"}, [&] { ++count; });

  fs::create_symlink("b/real.pem", f.dir / "cert.tmp");
  fs::rename(f.dir / "cert.tmp", f.dir / "cert.pem");
  REQUIRE(f.fires(count, 1));

  writeFile(f.dir / "a/real.pem", "no longer the target");
  CHECK(f.quiet(count, 1));
  writeFile(f.dir / "b/real.pem", "the target");
  REQUIRE(f.fires(count, 2));
}

TEST_CASE("file_watcher: a burst of writes fires once, a quiet period after the last", "[file_watcher]") {
  Fixture f;
  FileWatcher slow(f.io, 200ms);  // longer than the gaps below, even on a loaded machine
  std::string cert = f.dir / "cert.pem";
  writeFile(cert, "v0");
  int count = 0;
  slow.watch({cert}, [&] { ++count; });
  auto last_write = std::chrono::steady_clock::now();
  for (int i = 1; i <= 5; ++i) {
    writeFile(cert, "version " + std::to_string(i));
    last_write = std::chrono::steady_clock::now();
    // Let the loop see this write before the next one (each restarts the quiet period).
    CHECK_FALSE(runUntil(f.io, [&] { return count > 0; }, 10ms));
  }
  REQUIRE(f.fires(count, 1));
  CHECK(std::chrono::steady_clock::now() - last_write >= 200ms);
  CHECK(f.quiet(count, 1));
}

TEST_CASE("file_watcher: a change to another file in the same directory does not fire", "[file_watcher]") {
  Fixture f;
  std::string cert = f.dir / "cert.pem";
  writeFile(cert, "v1");
  int count = 0;
  f.watcher.watch({cert}, [&] { ++count; });
  writeFile(f.dir / "other.pem", "x");
  replaceFile(f.dir / "cert.pem.bak", "y");
  fs::remove(f.dir / "other.pem");
  CHECK(f.quiet(count, 0));
  writeFile(cert, "version 2");  // the watch is live
  REQUIRE(f.fires(count, 1));
}

TEST_CASE("file_watcher: a chmod that leaves the file as it was does not fire", "[file_watcher]") {
  Fixture f;
  std::string cert = f.dir / "cert.pem";
  writeFile(cert, "v1");
  // An mtime well in the past: the fingerprint is not "racy" (see file_watcher.h).
  fs::last_write_time(cert, fs::file_time_type::clock::now() - 1h);
  int count = 0;
  f.watcher.watch({cert}, [&] { ++count; });
  fs::permissions(cert, fs::perms::owner_read | fs::perms::owner_write);  // IN_ATTRIB
  CHECK(f.quiet(count, 0));
  writeFile(cert, "version 2");
  REQUIRE(f.fires(count, 1));
}

TEST_CASE("file_watcher: unwatch stops firing; other watches of the file go on", "[file_watcher]") {
  Fixture f;
  std::string cert = f.dir / "cert.pem";
  writeFile(cert, "v1");
  int a = 0, b = 0, self = 0;
  auto ida = f.watcher.watch({cert}, [&] { ++a; });
  f.watcher.watch({cert}, [&] { ++b; });
  FileWatcher::WatchId ids = 0;
  ids = f.watcher.watch({cert}, [&] {
    ++self;
    f.watcher.unwatch(ids);  // from its own callback
  });
  f.watcher.unwatch(ida);
  writeFile(cert, "version 2");
  REQUIRE(f.fires(b, 1));
  REQUIRE(f.fires(self, 1));
  writeFile(cert, "version three");
  REQUIRE(f.fires(b, 2));
  CHECK(f.quiet(b, 2));
  CHECK(a == 0);
  CHECK(self == 1);
}

TEST_CASE("file_watcher: two watches of one file both fire", "[file_watcher]") {
  Fixture f;
  std::string cert = f.dir / "cert.pem";
  std::string key = f.dir / "key.pem";
  writeFile(cert, "c");
  writeFile(key, "k");
  int a = 0, b = 0;
  f.watcher.watch({cert, key}, [&] { ++a; });
  f.watcher.watch({cert}, [&] { ++b; });
  writeFile(cert, "cert 2");
  REQUIRE(runUntil(f.io, [&] { return a == 1 && b == 1; }));
  writeFile(key, "key 2");  // only the first watches the key
  REQUIRE(f.fires(a, 2));
  CHECK(f.quiet(a, 2));
  CHECK(b == 1);
}

TEST_CASE("file_watcher: a deleted file fires when it is created again", "[file_watcher]") {
  Fixture f;
  std::string cert = f.dir / "cert.pem";
  writeFile(cert, "v1");
  int count = 0;
  f.watcher.watch({cert}, [&] { ++count; });
  fs::remove(cert);
  CHECK(f.quiet(count, 0));  // a disappearance alone does not fire
  writeFile(cert, "v1");     // even with the same content
  REQUIRE(f.fires(count, 1));
  CHECK(f.quiet(count, 1));
}

TEST_CASE("file_watcher: a same-size write within the timestamp tick of the last check fires", "[file_watcher]") {
  Fixture f;
  std::string cert = f.dir / "cert.pem";
  writeFile(cert, "v1");  // just written: the fingerprint watch() takes is "racy"
  auto mtime = fs::last_write_time(cert);
  int count = 0;
  f.watcher.watch({cert}, [&] { ++count; });
  writeFile(cert, "v2");           // same inode, same size
  fs::last_write_time(cert, mtime);  // and, as within one tick, the same mtime
  REQUIRE(f.fires(count, 1));
}

TEST_CASE("file_watcher: a file whose directory is removed fires when both come back", "[file_watcher]") {
  Fixture f;
  fs::create_directory(f.dir / "sub");
  std::string cert = f.dir / "sub/cert.pem";
  writeFile(cert, "v1");
  int count = 0;
  f.watcher.watch({cert}, [&] { ++count; });
  fs::remove_all(f.dir / "sub");  // the kernel drops the directory's watch (IN_IGNORED)
  CHECK(f.quiet(count, 0));
  fs::create_directory(f.dir / "sub");
  CHECK(f.quiet(count, 0));
  writeFile(cert, "v2");
  REQUIRE(f.fires(count, 1));
}

TEST_CASE("file_watcher: a file that does not exist yet fires when it is created", "[file_watcher]") {
  Fixture f;
  int count = 0;
  f.watcher.watch({f.dir / "later.pem"}, [&] { ++count; });
  replaceFile(f.dir / "later.pem", "here");
  REQUIRE(f.fires(count, 1));
}

TEST_CASE("file_watcher: a path in a missing directory never fires, its watch still works", "[file_watcher]") {
  Fixture f;
  std::string cert = f.dir / "cert.pem";
  writeFile(cert, "v1");
  int count = 0;
  auto id = f.watcher.watch({f.dir / "missing/cert.pem", cert}, [&] { ++count; });
  CHECK(id != 0);
  fs::create_directory(f.dir / "missing");
  writeFile(f.dir / "missing/cert.pem", "x");
  CHECK(f.quiet(count, 0));
  writeFile(cert, "version 2");  // the other path of the watch is watched
  REQUIRE(f.fires(count, 1));
  f.watcher.unwatch(id);
}

TEST_CASE("file_watcher: contentHash is equal for equal content and differs otherwise", "[file_watcher]") {
  TempDir dir;
  writeFile(dir / "a", "same bytes\n");
  writeFile(dir / "b", "same bytes\n");
  writeFile(dir / "c", "same bytes!");
  writeFile(dir / "empty", "");
  std::string a = FileWatcher::contentHash(dir / "a");
  CHECK(a.size() == 64);
  CHECK(a == FileWatcher::contentHash(dir / "b"));
  CHECK(a != FileWatcher::contentHash(dir / "c"));
  CHECK(FileWatcher::contentHash(dir / "empty") ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");  // SHA-256("")
  CHECK(FileWatcher::contentHash(dir / "missing").empty());
  fs::create_symlink("a", dir / "link");
  CHECK(FileWatcher::contentHash(dir / "link") == a);
}
