// Replays a libFuzzer target without libFuzzer, for the normal test run (g++, and the ASan+UBSan
// build of `make test`): every file of the directories (or files) given as arguments, then a fixed
// number of deterministic pseudo-random mutations of each (bit flips, truncations, byte
// insertions/deletions/overwrites, splices of two seeds), so the replay is more than the happy path.
// Same seed, same inputs, every run. A crash, an assert or a sanitizer report fails the test.
//
//   fuzz_<name>_replay [--mutations N] DIR_OR_FILE...
#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
// Present in a sanitizer build: called before a sanitizer report ends the process.
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace {

// splitmix64: small, fast, and the same on every platform.
struct Rng {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  size_t Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(Next() % n); }
};

// Bytes that tend to matter to the parsers: structure characters and boundary values.
constexpr unsigned char kInteresting[] = {0x00, 0x7f, 0x80, 0xff, 0x7e, '\r', '\n', ' ', ':', '"',
                                          '\\', '{', '}', '[', ']', ',', '/', '?', '#', '%', '.',
                                          '=', '@', '*', '0', '9', 'a', 'Z'};

// The input being run, written to ./replay-crash-input when the run dies (a failed check, a
// crash, a sanitizer report), so that it can be debugged and added to the corpus.
const std::string* g_current = nullptr;

void DumpCurrent() {
  if (g_current == nullptr) return;
  if (FILE* f = std::fopen("replay-crash-input", "wb")) {
    std::fwrite(g_current->data(), 1, g_current->size(), f);
    std::fclose(f);
  }
  std::fprintf(stderr, "replay: the failing input (%zu bytes) is in ./replay-crash-input\n",
               g_current->size());
}

void OnSignal(int sig) {
  DumpCurrent();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void Run(const std::string& input) {
  // A copy in its own allocation, so ASan sees any read past the end.
  std::vector<uint8_t> copy(input.begin(), input.end());
  g_current = &input;
  LLVMFuzzerTestOneInput(copy.empty() ? nullptr : copy.data(), copy.size());
  g_current = nullptr;
}

std::string Mutate(const std::string& seed, const std::vector<std::string>& all, Rng& rng) {
  std::string s = seed;
  const size_t edits = 1 + rng.Below(4);
  for (size_t e = 0; e < edits; ++e) {
    switch (rng.Below(8)) {
      case 0:  // flip one bit
        if (!s.empty()) s[rng.Below(s.size())] ^= static_cast<char>(1u << rng.Below(8));
        break;
      case 1:  // truncate
        s.resize(rng.Below(s.size() + 1));
        break;
      case 2:  // insert a random byte
        s.insert(s.begin() + static_cast<long>(rng.Below(s.size() + 1)),
                 static_cast<char>(rng.Below(256)));
        break;
      case 3:  // insert an interesting byte
        s.insert(s.begin() + static_cast<long>(rng.Below(s.size() + 1)),
                 static_cast<char>(kInteresting[rng.Below(sizeof(kInteresting))]));
        break;
      case 4:  // overwrite a byte with an interesting one
        if (!s.empty()) {
          s[rng.Below(s.size())] = static_cast<char>(kInteresting[rng.Below(sizeof(kInteresting))]);
        }
        break;
      case 5:  // delete a range
        if (!s.empty()) {
          const size_t at = rng.Below(s.size());
          s.erase(at, 1 + rng.Below(std::min<size_t>(16, s.size() - at)));
        }
        break;
      case 6:  // duplicate a range
        if (!s.empty() && s.size() < 64 * 1024) {
          const size_t at = rng.Below(s.size());
          const std::string piece = s.substr(at, 1 + rng.Below(32));
          s.insert(rng.Below(s.size() + 1), piece);
        }
        break;
      case 7: {  // splice: this seed's head with another seed's tail
        const std::string& other = all[rng.Below(all.size())];
        s = s.substr(0, rng.Below(s.size() + 1)) + other.substr(rng.Below(other.size() + 1));
        break;
      }
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGABRT, OnSignal);
  std::signal(SIGSEGV, OnSignal);
  std::signal(SIGBUS, OnSignal);
  std::signal(SIGFPE, OnSignal);
  if (__sanitizer_set_death_callback != nullptr) __sanitizer_set_death_callback(DumpCurrent);
  size_t mutations = 3000;
  std::vector<std::string> seeds;
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--mutations" && i + 1 < argc) {
      mutations = std::strtoul(argv[++i], nullptr, 10);
      continue;
    }
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(arg)) {
      for (const auto& entry : std::filesystem::directory_iterator(arg)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
      std::sort(files.begin(), files.end());  // directory order is not stable
    } else if (std::filesystem::is_regular_file(arg)) {
      files.push_back(arg);
    } else {
      std::fprintf(stderr, "replay: %s: no such file or directory\n", arg.c_str());
      return 2;
    }
    for (const auto& file : files) {
      std::ifstream in(file, std::ios::binary);
      seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      names.push_back(file.string());
    }
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "replay: no input files\n");
    return 2;
  }
  Run(std::string());
  for (size_t i = 0; i < seeds.size(); ++i) Run(seeds[i]);
  Rng rng{0x5eed5eed5eedULL};
  size_t runs = seeds.size() + 1;
  for (size_t i = 0; i < seeds.size(); ++i) {
    for (size_t m = 0; m < mutations; ++m) {
      Run(Mutate(seeds[i], seeds, rng));
      ++runs;
    }
  }
  std::printf("replay: %zu seed files, %zu inputs run, no failure\n", seeds.size(), runs);
  return 0;
}
