#include <stdlib.h>
#include <unistd.h>
static void *blocks[20000];
__attribute__((noinline)) static void keep_blocks(void) {
  for (int i = 0; i < 20000; i++) blocks[i] = malloc(1024);
}
int main(void) { keep_blocks(); pause(); return blocks[0] == 0; }
