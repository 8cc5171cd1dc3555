/* A daemon's start: after "go" on stdin it gives up every descriptor it did not open itself, the
 * way daemons do, then writes 4,000 records to its own data file while allocating (through a
 * frame without unwind information, and in a signal handler, whose stack the library's walker
 * leaves to libunwind: libunwind is loaded and validates addresses through its pipe), reads the
 * file back and reports whether every record is intact.
 *   closeall_writer close_range|close_loop|dup2 DATA_FILE
 * close_range: close_range(3, ~0U); close_loop: close() on 3..sysconf(_SC_OPEN_MAX);
 * dup2: the data file is dup2()ed over every number from 3 to 8191 (replacing whatever the
 * library had there), and written through its first number. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "nocfi.h"

enum { kRecords = 4000, kRecordBytes = 64, kDup2Top = 8192, kOwn = 32 };

static void on_signal(int sig) {
  (void)sig;
  free(nocfi_alloc(2048));
}

static void record(char* out, int i) {
  memset(out, '.', kRecordBytes);
  const int n = snprintf(out, kRecordBytes, "record %06d of the program's own data", i);
  out[n] = ' ';
  out[kRecordBytes - 1] = '\n';
}

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const char* mode = argv[1];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGUSR1, &sa, NULL);
  for (int i = 0; i < 1000; ++i) free(nocfi_alloc(4096));
  for (int i = 0; i < 64; ++i) raise(SIGUSR1);
  printf("ready\n");
  fflush(stdout);
  char line[32];
  if (!fgets(line, sizeof line, stdin)) return 3;

  if (strcmp(mode, "close_range") == 0) {
    close_range(3, ~0U, 0);
  } else if (strcmp(mode, "close_loop") == 0) {
    const long top = sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < (top > 0 && top < 1 << 20 ? top : 1 << 20); ++fd) close((int)fd);
  }
  const int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return 4;
  if (strcmp(mode, "dup2") == 0) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < kDup2Top + 64) return 7;
    rl.rlim_cur = kDup2Top + 64;
    setrlimit(RLIMIT_NOFILE, &rl);
    for (int n = 3; n < kDup2Top; ++n)
      if (n != fd) dup2(fd, n);
  }
  /* Its own descriptors take the lowest free numbers, as the files and sockets of a daemon do;
   * the records go out through all of them (they share one file offset). */
  int own[kOwn];
  own[0] = fd;
  for (int i = 1; i < kOwn; ++i) own[i] = dup(fd);
  char rec[kRecordBytes];
  for (int i = 0; i < kRecords; ++i) {
    /* Enough allocation between records that samples, captures and libunwind all run. */
    for (int k = 0; k < 8; ++k) free(nocfi_alloc(1024 + (size_t)k * 512));
    if (i % 40 == 0) raise(SIGUSR1);
    record(rec, i);
    if (write(own[i % kOwn], rec, kRecordBytes) != kRecordBytes) return 5;
  }
  if (lseek(fd, 0, SEEK_SET) != 0) return 6;
  int intact = 0;
  char got[kRecordBytes];
  for (int i = 0; i < kRecords; ++i) {
    if (read(fd, got, kRecordBytes) != kRecordBytes) break;
    record(rec, i);
    if (memcmp(got, rec, kRecordBytes) != 0) break;
    ++intact;
  }
  const off_t size = lseek(fd, 0, SEEK_END);
  printf("records %d intact, file %lld bytes\n", intact, (long long)size);
  fflush(stdout);
  if (!fgets(line, sizeof line, stdin)) return 0;
  return 0;
}
