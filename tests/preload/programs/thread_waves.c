/* Short-lived threads: 10 waves of 20 threads, each allocating and freeing 1,000 blocks of
 * 1 KiB (about a MiB: a sample or two at the default interval), then exiting. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void* member(void* arg) {
  (void)arg;
  for (int i = 0; i < 1000; ++i) {
    char* p = malloc(1024);
    memset(p, i, 16);
    free(p);
  }
  return NULL;
}

int main(void) {
  for (int wave = 0; wave < 10; ++wave) {
    pthread_t t[20];
    for (int i = 0; i < 20; ++i) pthread_create(&t[i], NULL, member, NULL);
    for (int i = 0; i < 20; ++i) pthread_join(t[i], NULL);
  }
  return 0;
}
