/* Forks N children one after another and waits for each; a child allocates a little, lives
 * CHILD_MS milliseconds and _exit()s. Prints "child <pid>" for each and "done" at the end.
 *   forker N CHILD_MS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const int n = atoi(argv[1]), child_ms = atoi(argv[2]);
  for (int i = 0; i < n; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      char* p = malloc(4096);
      memset(p, 1, 4096);
      free(p);
      usleep((useconds_t)child_ms * 1000);
      _exit(0);
    }
    printf("child %d\n", (int)pid);
    fflush(stdout);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return 3;
  }
  printf("done\n");
  return 0;
}
