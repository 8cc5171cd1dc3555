/* Says whether this process loaded librsrmem and what LD_PRELOAD it was given:
 * "probe maps=<0|1> env=[<LD_PRELOAD>]". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  int mapped = 0;
  FILE* maps = fopen("/proc/self/maps", "r");
  char line[4096];
  while (maps && fgets(line, sizeof line, maps))
    if (strstr(line, "librsrmem")) mapped = 1;
  if (maps) fclose(maps);
  const char* env = getenv("LD_PRELOAD");
  printf("probe maps=%d env=[%s]\n", mapped, env ? env : "");
  return 0;
}
