// A C++ service using the rsrmem C API through its C++ part (namespace rsrmem), driven by its
// test through stdin:
//   work          cache "catalog": 11 hits, 4 misses; leak ("session", "low"); scope "checkout"
//                 x10, each allocating and freeing 3 MiB with new[]; prints "result <n>"
//   threads N K   N threads at once: each records K hits on "shared" and K misses on "t<i>",
//                 and one hit on each of "race0".."race9"; prints "threads done"
//   deep          ten nested scopes "deep"; prints "deep tracked <n>" (the library keeps 8)
//   many          one miss on each of 70 caches "many0".."many69"; prints "many done"
//   headers       prints "headers <length> <text with \r\n shown as |>"
//   quit          exits
#include <rsrmem.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

unsigned long allocate_and_free(size_t n) {
  std::unique_ptr<char[]> p(new char[n]);
  std::memset(p.get(), 2, n);
  return static_cast<unsigned long>(p[n / 2]) + static_cast<unsigned long>(p[n - 1]);
}

unsigned long work() {
  for (int i = 0; i < 11; ++i) rsrmem::record_cache_operation("hit", "catalog");
  for (int i = 0; i < 4; ++i) rsrmem::record_cache_operation("miss", "catalog");
  rsrmem::record_memory_leak("session", "low");
  unsigned long result = 0;
  for (int i = 0; i < 10; ++i) {
    rsrmem::Scope scope("checkout");
    result += allocate_and_free(size_t{3} << 20);
  }
  return result;
}

void threads(int n, int k) {
  std::vector<std::thread> all;
  for (int i = 0; i < n; ++i) {
    all.emplace_back([i, k] {
      const std::string mine = "t" + std::to_string(i);
      for (int r = 0; r < 10; ++r) rsrmem::cache_hit(("race" + std::to_string(r)).c_str());
      for (int j = 0; j < k; ++j) {
        rsrmem::cache_hit("shared");
        rsrmem::cache_miss(mine.c_str());
      }
    });
  }
  for (auto& t : all) t.join();
}

int deep() {
  std::vector<uint64_t> tokens;
  for (int i = 0; i < 10; ++i) tokens.push_back(rsrmem_scope_begin("deep"));
  int tracked = 0;
  for (uint64_t t : tokens) tracked += t != 0;
  for (auto it = tokens.rbegin(); it != tokens.rend(); ++it) rsrmem_scope_end(*it);
  return tracked;
}

std::string shown(std::string s) {
  for (char& c : s)
    if (c == '\r' || c == '\n') c = '|';
  return s;
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("present %d version %d\n", rsrmem::present() ? 1 : 0, rsrmem_api_version());
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "work") {
      std::printf("result %lu\n", work());
    } else if (line.rfind("threads", 0) == 0) {
      int n = 0, k = 0;
      std::sscanf(line.c_str(), "threads %d %d", &n, &k);
      threads(n, k);
      std::printf("threads done\n");
    } else if (line == "deep") {
      std::printf("deep tracked %d\n", deep());
    } else if (line == "many") {
      for (int i = 0; i < 70; ++i) rsrmem::cache_miss(("many" + std::to_string(i)).c_str());
      std::printf("many done\n");
    } else if (line == "headers") {
      rsrmem::Scope scope("headers");
      std::unique_ptr<char[]> p(new char[100000]);
      std::memset(p.get(), 3, 100000);
      const std::string h = rsrmem::memory_headers();
      std::printf("headers %zu %s\n", h.size(), shown(h).c_str());
    } else if (line == "quit") {
      break;
    }
  }
  std::printf("bye\n");
  return 0;
}
