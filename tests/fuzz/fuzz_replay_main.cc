// Runs a libFuzzer target without libFuzzer (the normal g++ build): every file of a seed
// corpus, then N deterministic pseudo-random inputs, half of them mutations of the seeds.
//   fuzz_replay <corpus dir> [N]
// Exits 0 if nothing crashed; a crash (or a trap on a broken invariant) kills the process.

#include <dirent.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// splitmix64: deterministic across runs and platforms.
uint64_t Next(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::vector<std::vector<uint8_t>> ReadCorpus(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') names.push_back(e->d_name);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  std::vector<std::vector<uint8_t>> out;
  for (const std::string& n : names) {
    std::ifstream f(dir + "/" + n, std::ios::binary);
    out.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <corpus dir> [random inputs]\n", argv[0]);
    return 2;
  }
  const std::vector<std::vector<uint8_t>> seeds = ReadCorpus(argv[1]);
  if (seeds.empty()) {
    std::fprintf(stderr, "no seeds in %s\n", argv[1]);
    return 1;
  }
  const long n = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 2000;
  for (const std::vector<uint8_t>& s : seeds) LLVMFuzzerTestOneInput(s.data(), s.size());

  uint64_t state = 0x5eed;
  for (long i = 0; i < n; ++i) {
    std::vector<uint8_t> input;
    if (i % 2 == 0) {
      input = seeds[Next(state) % seeds.size()];
      const int flips = 1 + static_cast<int>(Next(state) % 8);
      for (int f = 0; f < flips && !input.empty(); ++f) {
        input[Next(state) % input.size()] = static_cast<uint8_t>(Next(state));
      }
      const int extra = static_cast<int>(Next(state) % 4) * 4;  // append a few actions
      for (int e = 0; e < extra; ++e) input.push_back(static_cast<uint8_t>(Next(state)));
    } else {
      input.resize(24 + Next(state) % 2048);
      for (uint8_t& b : input) b = static_cast<uint8_t>(Next(state));
      input[16] = static_cast<uint8_t>(Next(state) % 2 == 0 ? 0 : input[16]);
    }
    LLVMFuzzerTestOneInput(input.data(), input.size());
  }
  std::printf("fuzz replay: %zu seeds and %ld generated inputs ran without a crash\n", seeds.size(),
              n);
  return 0;
}
