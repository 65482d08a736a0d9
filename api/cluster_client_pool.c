/* Idle keep-alive connections between nodes (cluster_client.c): an exchange that ended
 * cleanly gives its connection back, and the next one to the same address (and TLS
 * context) takes it instead of a new TCP connect and TLS handshake.
 *
 * Bounds: CL_POOL_SLOTS connections in all, CL_POOL_PER_ADDR per address, each idle at most
 * CL_POOL_IDLE_MS (well under the peer's http.idle_timeout_ms, 60 s by default, after which
 * it would close them). A taken connection is checked first: one the peer closed, or on
 * which anything arrived unasked, is readable and goes. The newest idle connection is
 * taken first (the least likely to have been closed). */
#include "cluster_client_pool.h"

#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mnemo/assert.h"
#include "mnemo/util.h"

#define CL_POOL_SLOTS 64
#define CL_POOL_PER_ADDR 8
#define CL_POOL_IDLE_MS 5000

typedef struct slot {
    bool used;
    char addr[CL_POOL_ADDR_MAX + 1];
    const void *tls;
    int fd;
    SSL *ssl;
    int64_t since_ns; /* monotonic: when it went idle */
} slot;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static slot pool[CL_POOL_SLOTS];

void cl__pool_close(int fd, void *ssl)
{
    if (ssl) {
        SSL_shutdown(ssl); /* close_notify, not waited for */
        SSL_free(ssl);
    }
    if (fd >= 0) close(fd);
}

static bool expired(const slot *s, int64_t now)
{
    return now - s->since_ns > (int64_t)CL_POOL_IDLE_MS * 1000000;
}

/* Frees s (under pool_mu); the caller closes what it held. */
static void release(slot *s, int *fd, SSL **ssl)
{
    *fd = s->fd;
    *ssl = s->ssl;
    s->used = false;
}

/* Closes the expired connections (under pool_mu, so the closes are quick non-blocking
 * calls: an SSL_shutdown only queues its alert). */
static void reap(int64_t now)
{
    for (size_t i = 0; i < CL_POOL_SLOTS; i++)
        if (pool[i].used && expired(&pool[i], now)) {
            int fd;
            SSL *ssl;
            release(&pool[i], &fd, &ssl);
            cl__pool_close(fd, ssl);
        }
}

/* Is an idle connection still good? Nothing may be readable on it: a peer that closed it
 * made it readable (EOF), and a peer never sends unasked. */
static bool still_good(int fd, SSL *ssl)
{
    if (ssl && SSL_pending(ssl) > 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
}

bool cl__pool_take(const char *addr, const void *tls, int *fd, void **ssl)
{
    *fd = -1;
    *ssl = NULL;
    for (;;) {
        int64_t now = mn_time_mono_ns();
        pthread_mutex_lock(&pool_mu);
        reap(now);
        slot *best = NULL;
        for (size_t i = 0; i < CL_POOL_SLOTS; i++) {
            slot *s = &pool[i];
            if (s->used && s->tls == tls && !strcmp(s->addr, addr) &&
                (!best || s->since_ns > best->since_ns))
                best = s;
        }
        SSL *s_ssl = NULL;
        int s_fd = -1;
        if (best) release(best, &s_fd, &s_ssl);
        pthread_mutex_unlock(&pool_mu);
        if (!best) return false;
        if (still_good(s_fd, s_ssl)) {
            *fd = s_fd;
            *ssl = s_ssl;
            return true;
        }
        /* closed here, so never handed out: the caller's fd stays -1 (a closed number in
         * it was used, and closed again, by the caller: another thread's file by then) */
        cl__pool_close(s_fd, s_ssl);
    }
}

void cl__pool_put(const char *addr, const void *tls, int fd, void *ssl)
{
    mn_assert(fd >= 0);
    if (strlen(addr) > CL_POOL_ADDR_MAX) {
        cl__pool_close(fd, ssl);
        return;
    }
    int64_t now = mn_time_mono_ns();
    int old_fd = -1;
    SSL *old_ssl = NULL;
    pthread_mutex_lock(&pool_mu);
    reap(now);
    slot *free_slot = NULL, *oldest = NULL, *oldest_here = NULL;
    size_t here = 0;
    for (size_t i = 0; i < CL_POOL_SLOTS; i++) {
        slot *s = &pool[i];
        if (!s->used) {
            if (!free_slot) free_slot = s;
            continue;
        }
        if (!oldest || s->since_ns < oldest->since_ns) oldest = s;
        if (s->tls == tls && !strcmp(s->addr, addr)) {
            here++;
            if (!oldest_here || s->since_ns < oldest_here->since_ns) oldest_here = s;
        }
    }
    /* full (for this address, or in all): the oldest idle connection makes room */
    slot *to = here >= CL_POOL_PER_ADDR ? oldest_here : free_slot ? free_slot : oldest;
    if (to->used) release(to, &old_fd, &old_ssl);
    to->used = true;
    snprintf(to->addr, sizeof to->addr, "%s", addr);
    to->tls = tls;
    to->fd = fd;
    to->ssl = ssl;
    to->since_ns = now;
    pthread_mutex_unlock(&pool_mu);
    if (old_fd >= 0) cl__pool_close(old_fd, old_ssl);
}

void cl__pool_drop(const void *tls)
{
    pthread_mutex_lock(&pool_mu);
    for (size_t i = 0; i < CL_POOL_SLOTS; i++)
        if (pool[i].used && (!tls || pool[i].tls == tls)) {
            int fd;
            SSL *ssl;
            release(&pool[i], &fd, &ssl);
            cl__pool_close(fd, ssl);
        }
    pthread_mutex_unlock(&pool_mu);
}

size_t cl__pool_idle(void)
{
    size_t n = 0;
    pthread_mutex_lock(&pool_mu);
    for (size_t i = 0; i < CL_POOL_SLOTS; i++)
        n += pool[i].used;
    pthread_mutex_unlock(&pool_mu);
    return n;
}
