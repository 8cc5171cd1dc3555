// A program for rsrmemctl's end-to-end tests, run under librsrmem.so:
//   ctl-e2e-target exit N     exits with status N
//   ctl-e2e-target env NAME   prints $NAME
//   ctl-e2e-target wait       allocates from leak_some_memory(), then waits for a signal
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

static std::vector<char*> g_kept;

__attribute__((noinline)) void leak_some_memory(int blocks) {
  for (int i = 0; i < blocks; ++i) {
    char* p = static_cast<char*>(std::malloc(64 * 1024));
    std::memset(p, i, 64 * 1024);
    g_kept.push_back(p);
  }
}

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "exit") == 0) return std::atoi(argv[2]);
  if (argc == 3 && std::strcmp(argv[1], "env") == 0) {
    const char* v = std::getenv(argv[2]);
    std::printf("%s\n", v ? v : "(unset)");
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "wait") == 0) {
    leak_some_memory(64);
    for (;;) pause();
  }
  std::fprintf(stderr, "usage: %s exit N | env NAME | wait\n", argv[0]);
  return 2;
}
