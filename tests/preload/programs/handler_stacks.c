/* Allocations inside a signal handler, whose stacks cross the kernel's signal frame (which the
 * library's walker leaves to libunwind). Prints "ready"; then for each line "signal" on stdin
 * raises SIGUSR1, whose handler keeps a 64 KiB block, and prints "done"; exits at EOF. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void* g_kept[64];
static volatile int g_count;

__attribute__((noinline)) static void on_signal(int sig) {
  (void)sig;
  if (g_count < 64) {
    g_kept[g_count] = malloc(65536);
    memset(g_kept[g_count], 1, 64);
    ++g_count;
  }
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGUSR1, &sa, NULL);
  setvbuf(stdout, NULL, _IONBF, 0);
  printf("ready\n");
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (strncmp(line, "signal", 6) == 0) {
      raise(SIGUSR1);
      printf("done\n");
    }
  }
  return 0;
}
