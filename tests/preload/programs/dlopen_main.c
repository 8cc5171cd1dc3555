/* dlopen/dlclose a C++ object in a loop from a C program, calling its allocating functions each
 * time, with blocks allocated by one loaded instance and freed by the next, and a thread using
 * the object while it is loaded. Usage: dlopen_main <payload.so> <iterations> */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef long (*work_fn)(int);
typedef void* (*make_fn)(size_t);
typedef void (*release_fn)(void*);

struct api {
  void* handle;
  work_fn work;
  make_fn make, make_aligned;
  release_fn release, release_aligned;
};

static int load(const char* path, struct api* a) {
  a->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!a->handle) {
    printf("FAIL dlopen: %s\n", dlerror());
    return 0;
  }
  a->work = (work_fn)dlsym(a->handle, "payload_work");
  a->make = (make_fn)dlsym(a->handle, "payload_make");
  a->release = (release_fn)dlsym(a->handle, "payload_release");
  a->make_aligned = (make_fn)dlsym(a->handle, "payload_make_aligned");
  a->release_aligned = (release_fn)dlsym(a->handle, "payload_release_aligned");
  if (!a->work || !a->make || !a->release || !a->make_aligned || !a->release_aligned) {
    printf("FAIL dlsym\n");
    return 0;
  }
  return 1;
}

static void* thread_work(void* arg) {
  struct api* a = arg;
  return (void*)(intptr_t)a->work(40);
}

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const char* path = argv[1];
  const int iterations = atoi(argv[2]);
  long total = 0;
  void* kept = NULL;
  void* kept_aligned = NULL;
  for (int i = 0; i < iterations; ++i) {
    struct api a;
    if (!load(path, &a)) return 1;
    total += a.work(30 + i % 50);
    if (kept) a.release(kept); /* allocated by the previous instance */
    if (kept_aligned) a.release_aligned(kept_aligned);
    kept = a.make(100 + (size_t)i);
    kept_aligned = a.make_aligned(64 + (size_t)i);
    if (((uintptr_t)kept_aligned & 255) != 0) {
      printf("FAIL aligned new from the object is not aligned\n");
      return 1;
    }
    if (i % 4 == 0) {
      pthread_t t;
      void* r;
      pthread_create(&t, NULL, thread_work, &a);
      pthread_join(t, &r);
      total += (long)(intptr_t)r;
    }
    if (dlclose(a.handle) != 0) {
      printf("FAIL dlclose: %s\n", dlerror());
      return 1;
    }
  }
  struct api a;
  if (!load(path, &a)) return 1;
  const unsigned char* k = kept;
  int intact = 1;
  for (int j = 0; j < 100 + iterations - 1; ++j)
    if (k[j] != (unsigned char)j) intact = 0;
  a.release(kept);
  a.release_aligned(kept_aligned);
  dlclose(a.handle);
  printf("iterations %d checksum %ld kept-block %s\n", iterations, total, intact ? "intact" : "CORRUPTED");
  return intact ? 0 : 1;
}
