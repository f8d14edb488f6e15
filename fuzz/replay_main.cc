// Replays a fuzz target's corpus without libFuzzer, so every normal build (g++) checks that
// the saved inputs still don't crash. Usage: <target> FILE_OR_DIR...
#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static int run_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return 1;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string data = ss.str();
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  return 0;
}

int main(int argc, char** argv) {
  int files = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (::stat(argv[i], &st) != 0) {
      std::fprintf(stderr, "missing corpus %s\n", argv[i]);
      return 1;
    }
    if (S_ISDIR(st.st_mode)) {
      DIR* d = ::opendir(argv[i]);
      while (struct dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        if (run_file(std::string(argv[i]) + "/" + e->d_name) != 0) return 1;
        files++;
      }
      ::closedir(d);
    } else {
      if (run_file(argv[i]) != 0) return 1;
      files++;
    }
  }
  // Empty input always runs too: the smallest edge case.
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(""), 0);
  std::printf("replayed %d corpus files\n", files);
  return files > 0 ? 0 : 1;
}
