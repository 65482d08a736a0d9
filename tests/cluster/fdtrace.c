/* fdtrace: a preloaded library (LD_PRELOAD) for the chaos harness that catches a descriptor
 * used after its owner closed it.
 *
 * A thread that closes a descriptor twice closes, the second time, whatever the number
 * names by then: another thread's file or socket (the numbers are reused at once, lowest
 * first). The victim then fails with EBADF, or worse, its bytes go to the wrong file. Each
 * successful close() here notes the closing thread and its stack under the number; a
 * close(), fsync() or write() that fails with EBADF prints, to stderr (the node's log), its
 * own stack and the stack of the last close of that number, between "fdtrace: begin" and
 * "fdtrace: end". chaos.py --fdtrace LIB preloads it in every node and counts each report as
 * a violation (tests/cluster/README.md). Not linked into mnemo; a debugging aid only.
 *
 * Cost: a backtrace per close (microseconds), nothing on the success path of the others. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FDT_MAX 65536 /* numbers above are not traced */
#define FDT_DEPTH 24

typedef struct closer {
    void *frames[FDT_DEPTH];
    int n;
    long tid;
} closer;

static closer last[FDT_MAX];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int (*real_close)(int);
static int (*real_fsync)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static _Thread_local int inside; /* backtrace() itself may close (its first call loads code) */
static int ready;                /* set once the first backtrace() is done */

static void resolve(void)
{
    if (!real_close) real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
    if (!real_fsync) real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if (!real_write)
        real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
}

__attribute__((constructor)) static void fdt_init(void)
{
    resolve();
    void *f[2];
    inside = 1;
    (void)backtrace(f, 2);
    inside = 0;
    ready = 1;
}

static void say(const char *s, size_t n)
{
    while (n) {
        ssize_t w = real_write(2, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void report(const char *call, int fd)
{
    if (!ready || inside) return;
    inside = 1;
    void *now[FDT_DEPTH];
    int n = backtrace(now, FDT_DEPTH);
    char line[160];
    pthread_mutex_lock(&mu);
    int l = snprintf(line, sizeof line, "fdtrace: begin: %s(%d) failed with EBADF in thread %ld\n",
                     call, fd, (long)syscall(SYS_gettid));
    say(line, (size_t)l);
    backtrace_symbols_fd(now, n, 2);
    if (fd >= 0 && fd < FDT_MAX && last[fd].n) {
        l = snprintf(line, sizeof line, "fdtrace: the last close of %d, in thread %ld:\n", fd,
                     last[fd].tid);
        say(line, (size_t)l);
        backtrace_symbols_fd(last[fd].frames, last[fd].n, 2);
    }
    say("fdtrace: end\n", 13);
    pthread_mutex_unlock(&mu);
    inside = 0;
}

int close(int fd)
{
    resolve();
    if (!ready || inside) return real_close(fd);
    closer c;
    inside = 1;
    c.n = backtrace(c.frames, FDT_DEPTH);
    inside = 0;
    int rc = real_close(fd);
    int e = errno;
    if (rc == 0 && fd >= 0 && fd < FDT_MAX) {
        c.tid = (long)syscall(SYS_gettid);
        pthread_mutex_lock(&mu);
        last[fd] = c;
        pthread_mutex_unlock(&mu);
    } else if (rc != 0 && e == EBADF) {
        report("close", fd);
    }
    errno = e;
    return rc;
}

int fsync(int fd)
{
    resolve();
    int rc = real_fsync(fd);
    int e = errno;
    if (rc != 0 && e == EBADF) report("fsync", fd);
    errno = e;
    return rc;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    resolve();
    ssize_t rc = real_write(fd, buf, n);
    int e = errno;
    if (rc < 0 && e == EBADF) report("write", fd);
    errno = e;
    return rc;
}
