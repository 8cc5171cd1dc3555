/* Starts a child program the way services do, then waits for EOF on stdin.
 * Usage: spawner fork-exec|posix_spawn|system <program>
 * Prints "child <pid>" (for system: the pid is found by the test from the child's own line).
 * The child inherits stdin and stdout, so it sees the same EOF and its lines reach the test. */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const char* mode = argv[1];
  char* child_argv[] = {argv[2], NULL};
  pid_t pid = -1;
  if (strcmp(mode, "fork-exec") == 0) {
    pid = fork();
    if (pid == 0) {
      execv(argv[2], child_argv);
      _exit(127);
    }
  } else if (strcmp(mode, "posix_spawn") == 0) {
    if (posix_spawn(&pid, argv[2], NULL, NULL, child_argv, environ) != 0) return 2;
  } else if (strcmp(mode, "system") == 0) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "exec %s", argv[2]);
    const int st = system(cmd); /* returns after stdin's EOF reaches the child */
    printf("system returned %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
  } else {
    return 2;
  }
  if (pid < 0) return 2;
  char line[64];
  snprintf(line, sizeof line, "child %d\n", (int)pid);
  if (write(1, line, strlen(line)) < 0) return 3;
  char buf[256];
  while (read(0, buf, sizeof buf) > 0) {
  }
  int st = 0;
  waitpid(pid, &st, 0);
  snprintf(line, sizeof line, "child exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  if (write(1, line, strlen(line)) < 0) return 3;
  return 0;
}
