// Replays fuzz corpora through a LLVMFuzzerTestOneInput without libFuzzer, so any compiler
// (and the ASan+UBSan CI build) runs every corpus file as a regression test.
// Usage: <binary> FILE_OR_DIR...   Exit 0 when every input ran (a crash aborts the process).
#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {
size_t runFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return 1;
}
size_t runPath(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "replay: cannot stat %s\n", path.c_str());
    return 0;
  }
  if (!S_ISDIR(st.st_mode)) return runFile(path);
  size_t n = 0;
  DIR* d = ::opendir(path.c_str());
  if (!d) return 0;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    n += runPath(path + "/" + name);
  }
  ::closedir(d);
  return n;
}
}  // namespace

int main(int argc, char** argv) {
  size_t n = 0;
  for (int i = 1; i < argc; ++i) n += runPath(argv[i]);
  std::printf("replayed %zu inputs\n", n);
  return n > 0 ? 0 : 1;
}
