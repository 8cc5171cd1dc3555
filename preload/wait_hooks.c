/* The libc calls a program makes when it may be about to wait, interposed only to start the
 * control thread at the first of them (hot/launch.h: a process that waits lives on, and one that
 * waits from its start and never allocates again would otherwise never get its socket). Each
 * forwards to the next definition unchanged: arguments, results and errno are the program's.
 * Once the thread runs, a call costs one flag test more.
 * The fortified entry points (_FORTIFY_SOURCE: __read_chk, __poll_chk, ...) are what programs
 * built that way call instead of the plain ones. libc's own waits inside its functions are not
 * seen (stdio's reads, system's waitpid): the functions that wait that way are hooked instead,
 * those reading one character included (iostreams read std::cin through getc). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* hot/launch.h: set while the control thread is still to start; rsr_before_wait starts it when
 * this is a safe point; rsr_launch_due says whether the quiet period is over. */
__attribute__((visibility("hidden"))) extern _Atomic _Bool rsr_launch_pending;
__attribute__((visibility("hidden"))) void rsr_before_wait(void);
__attribute__((visibility("hidden"))) int rsr_launch_due(void);

/* Reading a regular file (or a block device) does not wait: during the quiet period such reads
 * start nothing (a short `cat`, a compiler reading its sources); afterwards every read does. */
static int fd_may_wait(int fd) {
  struct stat st;
  if (rsr_launch_due()) return 1;
  return fd < 0 || fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
}

/* A stream reads only when its buffer is empty (glibc's FILE keeps its read window public). */
static int stream_may_wait(FILE* f) { return f->_IO_read_ptr >= f->_IO_read_end && fd_may_wait(fileno(f)); }

#undef fread_unlocked /* a macro where stdio.h inlines it */
#undef fgets_unlocked
#undef getc
#undef getchar

#define RSR_EXPORT __attribute__((visibility("default")))

/* `waits`: whether this call may wait, asked only while the thread is still to start. */
#define RSR_HOOK(ret, name, params, args, waits)                                                       \
  RSR_EXPORT ret name params {                                                                         \
    static ret(*_Atomic next) params;                                                                  \
    if (atomic_load_explicit(&rsr_launch_pending, memory_order_acquire) && (waits)) rsr_before_wait(); \
    ret(*f) params = atomic_load_explicit(&next, memory_order_acquire);                                \
    if (!f) {                                                                                          \
      f = (ret(*) params)dlsym(RTLD_NEXT, #name);                                                      \
      atomic_store_explicit(&next, f, memory_order_release);                                           \
    }                                                                                                  \
    return f args;                                                                                     \
  }
#define RSR_WAIT_HOOK(ret, name, params, args) RSR_HOOK(ret, name, params, args, 1)

RSR_WAIT_HOOK(int, poll, (struct pollfd * fds, nfds_t n, int timeout), (fds, n, timeout))
RSR_WAIT_HOOK(int, __poll_chk, (struct pollfd * fds, nfds_t n, int timeout, size_t len), (fds, n, timeout, len))
RSR_WAIT_HOOK(int, ppoll, (struct pollfd * fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask),
              (fds, n, timeout, mask))
RSR_WAIT_HOOK(int, __ppoll_chk,
              (struct pollfd * fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask, size_t len),
              (fds, n, timeout, mask, len))
RSR_WAIT_HOOK(int, select, (int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout), (n, r, w, e, timeout))
RSR_WAIT_HOOK(int, pselect,
              (int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *timeout, const sigset_t *mask),
              (n, r, w, e, timeout, mask))
RSR_WAIT_HOOK(int, epoll_wait, (int fd, struct epoll_event *events, int n, int timeout), (fd, events, n, timeout))
RSR_WAIT_HOOK(int, epoll_pwait, (int fd, struct epoll_event *events, int n, int timeout, const sigset_t *mask),
              (fd, events, n, timeout, mask))
RSR_WAIT_HOOK(int, accept, (int fd, struct sockaddr *addr, socklen_t *len), (fd, addr, len))
RSR_WAIT_HOOK(int, accept4, (int fd, struct sockaddr *addr, socklen_t *len, int flags), (fd, addr, len, flags))
RSR_HOOK(ssize_t, read, (int fd, void *buf, size_t n), (fd, buf, n), fd_may_wait(fd))
RSR_HOOK(ssize_t, __read_chk, (int fd, void *buf, size_t n, size_t len), (fd, buf, n, len), fd_may_wait(fd))
RSR_WAIT_HOOK(ssize_t, recv, (int fd, void *buf, size_t n, int flags), (fd, buf, n, flags))
RSR_WAIT_HOOK(ssize_t, __recv_chk, (int fd, void *buf, size_t n, size_t len, int flags), (fd, buf, n, len, flags))
RSR_WAIT_HOOK(ssize_t, recvfrom, (int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *alen),
              (fd, buf, n, flags, addr, alen))
RSR_WAIT_HOOK(ssize_t, __recvfrom_chk,
              (int fd, void *buf, size_t n, size_t len, int flags, struct sockaddr *addr, socklen_t *alen),
              (fd, buf, n, len, flags, addr, alen))
RSR_WAIT_HOOK(ssize_t, recvmsg, (int fd, struct msghdr *msg, int flags), (fd, msg, flags))
RSR_WAIT_HOOK(int, nanosleep, (const struct timespec *want, struct timespec *left), (want, left))
RSR_WAIT_HOOK(int, clock_nanosleep, (clockid_t clock, int flags, const struct timespec *want, struct timespec *left),
              (clock, flags, want, left))
RSR_WAIT_HOOK(unsigned, sleep, (unsigned seconds), (seconds))
RSR_WAIT_HOOK(int, usleep, (useconds_t us), (us))
RSR_WAIT_HOOK(int, pause, (void), ())
RSR_WAIT_HOOK(int, sigsuspend, (const sigset_t *mask), (mask))
RSR_WAIT_HOOK(int, sigwait, (const sigset_t *set, int *sig), (set, sig))
RSR_WAIT_HOOK(int, sigwaitinfo, (const sigset_t *set, siginfo_t *info), (set, info))
RSR_WAIT_HOOK(int, sigtimedwait, (const sigset_t *set, siginfo_t *info, const struct timespec *timeout),
              (set, info, timeout))
RSR_WAIT_HOOK(pid_t, wait, (int *status), (status))
RSR_WAIT_HOOK(pid_t, waitpid, (pid_t pid, int *status, int options), (pid, status, options))
RSR_WAIT_HOOK(pid_t, wait3, (int *status, int options, struct rusage *usage), (status, options, usage))
RSR_WAIT_HOOK(pid_t, wait4, (pid_t pid, int *status, int options, struct rusage *usage), (pid, status, options, usage))
RSR_WAIT_HOOK(int, waitid, (idtype_t type, id_t id, siginfo_t *info, int options), (type, id, info, options))
RSR_WAIT_HOOK(int, pthread_join, (pthread_t thread, void **result), (thread, result))
RSR_WAIT_HOOK(int, system, (const char *command), (command))
RSR_WAIT_HOOK(int, pclose, (FILE*  stream), (stream))
RSR_HOOK(char *, fgets, (char *buf, int n, FILE* stream), (buf, n, stream), stream_may_wait(stream))
RSR_HOOK(char *, __fgets_chk, (char *buf, size_t len, int n, FILE* stream), (buf, len, n, stream),
         stream_may_wait(stream))
RSR_HOOK(char *, fgets_unlocked, (char *buf, int n, FILE* stream), (buf, n, stream), stream_may_wait(stream))
RSR_HOOK(ssize_t, getline, (char **line, size_t *cap, FILE* stream), (line, cap, stream), stream_may_wait(stream))
RSR_HOOK(ssize_t, getdelim, (char **line, size_t *cap, int delim, FILE* stream), (line, cap, delim, stream),
         stream_may_wait(stream))
RSR_HOOK(ssize_t, __getdelim, (char **line, size_t *cap, int delim, FILE* stream), (line, cap, delim, stream),
         stream_may_wait(stream))
RSR_HOOK(size_t, fread, (void *buf, size_t size, size_t n, FILE* stream), (buf, size, n, stream),
         stream_may_wait(stream))
RSR_HOOK(size_t, __fread_chk, (void *buf, size_t len, size_t size, size_t n, FILE* stream), (buf, len, size, n, stream),
         stream_may_wait(stream))
RSR_HOOK(size_t, fread_unlocked, (void *buf, size_t size, size_t n, FILE* stream), (buf, size, n, stream),
         stream_may_wait(stream))
RSR_HOOK(int, getc, (FILE*  stream), (stream), stream_may_wait(stream))
RSR_HOOK(int, fgetc, (FILE*  stream), (stream), stream_may_wait(stream))
RSR_HOOK(int, getchar, (void), (), stream_may_wait(stdin))
