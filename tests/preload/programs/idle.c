/* Prints "ready <pid>", allocates a little, then waits for EOF on stdin and exits 0.
 * The target for socket, permission and exec tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
  void* keep = malloc(12345);
  char line[64];
  snprintf(line, sizeof line, "ready %d\n", (int)getpid());
  if (write(1, line, strlen(line)) < 0) return 3;
  char buf[256];
  while (read(0, buf, sizeof buf) > 0) {
  }
  free(keep);
  return 0;
}
