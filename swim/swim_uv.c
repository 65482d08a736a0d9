/* libuv adapter for the SWIM core: one UDP socket and one timer on the
 * caller's loop. Every datagram and timer expiry is handed to the core with
 * the monotonic clock (uv_hrtime, microseconds); after each call the timer is
 * re-armed to the core's next deadline. Seeds are "host:port"; they are
 * resolved asynchronously (every address of a name is a seed) at start and
 * again every 30 s while the node knows no peer, so seeds may come up later.
 *
 * Invariants: the core is only touched from the loop thread; the adapter
 * frees itself after its handles have closed (stop or close), never before. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "mnemo/swim_uv.h"
#include "mnemo/util.h"

#define RESOLVE_EVERY_MS 30000
#define MAX_SEED_ADDRS 256

struct mn_swim_uv {
    uv_loop_t *loop;
    uv_udp_t udp;
    uv_timer_t timer;
    uv_timer_t resolve_timer;
    mn_swim_t *core;
    mn_swim_addr_t addr;
    mn_swim_callbacks_t user;
    int64_t mono0_us, wall0_ms;
    /* seeds */
    char **seeds;
    size_t n_seeds;
    size_t resolving; /* getaddrinfo requests in flight */
    mn_swim_addr_t found[MAX_SEED_ADDRS];
    size_t n_found;
    /* shutdown */
    bool stopping, closing;
    int64_t stop_deadline_us;
    int open_handles;
    void (*done)(void *arg);
    void *done_arg;
    char rx[65536];
};

typedef struct resolve_req {
    uv_getaddrinfo_t req;
    mn_swim_uv_t *u;
    uint16_t port;
} resolve_req;

static int64_t clock_now_us(void)
{
    return (int64_t)(uv_hrtime() / 1000);
}

static void to_sockaddr(const mn_swim_addr_t *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (a->family == 4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(a->port);
        memcpy(&s4->sin_addr, a->ip, 4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a->port);
        memcpy(&s6->sin6_addr, a->ip, 16);
    }
}

static bool from_sockaddr(const struct sockaddr *sa, mn_swim_addr_t *a)
{
    memset(a, 0, sizeof *a);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        a->family = 4;
        a->port = ntohs(s4->sin_port);
        memcpy(a->ip, &s4->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        a->family = 6;
        a->port = ntohs(s6->sin6_port);
        memcpy(a->ip, &s6->sin6_addr, 16);
        return true;
    }
    return false;
}

static void on_send(void *user, const mn_swim_addr_t *to, const uint8_t *buf, size_t len)
{
    mn_swim_uv_t *u = user;
    if (u->closing) return;
    struct sockaddr_storage ss;
    to_sockaddr(to, &ss);
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    /* UDP is lossy anyway: a full socket buffer drops the datagram */
    (void)uv_udp_try_send(&u->udp, &b, 1, (const struct sockaddr *)&ss);
}

static void on_event(void *user, const mn_swim_event_t *ev)
{
    mn_swim_uv_t *u = user;
    char a[MN_SWIM_ADDR_TEXT];
    mn_swim_addr_format(&ev->addr, a, sizeof a);
    mn_log_info("swim: member %s (%s) %s -> %s, incarnation %llu", ev->id, a,
                ev->is_new ? "new" : mn_swim_state_name(ev->old_state),
                mn_swim_state_name(ev->state), (unsigned long long)ev->incarnation);
    if (u->user.event) u->user.event(u->user.user, ev);
}

/* Frees u once its handles are closed and no name lookup is in flight. */
static void maybe_free(mn_swim_uv_t *u)
{
    if (!u->closing || u->open_handles > 0 || u->resolving > 0) return;
    void (*done)(void *) = u->done;
    void *arg = u->done_arg;
    mn_swim_free(u->core);
    for (size_t i = 0; i < u->n_seeds; i++)
        free(u->seeds[i]);
    free(u->seeds);
    free(u);
    if (done) done(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    mn_swim_uv_t *u = h->data;
    u->open_handles--;
    maybe_free(u);
}

static void close_all(mn_swim_uv_t *u)
{
    if (u->closing) return;
    u->closing = true;
    uv_udp_recv_stop(&u->udp);
    u->open_handles = 3;
    uv_close((uv_handle_t *)&u->udp, on_handle_closed);
    uv_close((uv_handle_t *)&u->timer, on_handle_closed);
    uv_close((uv_handle_t *)&u->resolve_timer, on_handle_closed);
}

static void on_timer(uv_timer_t *t);

static void rearm(mn_swim_uv_t *u)
{
    if (u->closing) return;
    int64_t now_us = clock_now_us();
    int64_t deadline_us = mn_swim_next_deadline(u->core);
    if (u->stopping && u->stop_deadline_us < deadline_us) deadline_us = u->stop_deadline_us;
    int64_t wait_ms = deadline_us <= now_us ? 0 : (deadline_us - now_us + 999) / 1000;
    if (wait_ms > 60000) wait_ms = 60000;
    uv_timer_start(&u->timer, on_timer, (uint64_t)wait_ms, 0);
}

static void on_timer(uv_timer_t *t)
{
    mn_swim_uv_t *u = t->data;
    int64_t now_us = clock_now_us();
    mn_swim_on_tick(u->core, now_us);
    if (u->stopping && (mn_swim_leave_done(u->core) || now_us >= u->stop_deadline_us)) {
        close_all(u);
        return;
    }
    rearm(u);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    mn_swim_uv_t *u = h->data;
    (void)suggested;
    *buf = uv_buf_init(u->rx, sizeof u->rx);
}

static void on_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *sa,
                    unsigned flags)
{
    mn_swim_uv_t *u = h->data;
    if (n <= 0 || !sa || u->closing || (flags & UV_UDP_PARTIAL)) return;
    mn_swim_addr_t from;
    if (!from_sockaddr(sa, &from)) return;
    mn_swim_on_packet(u->core, clock_now_us(), &from, (const uint8_t *)buf->base, (size_t)n);
    rearm(u);
}

/* ---- seeds ---- */

size_t mn_swim_uv_add_resolved(const struct addrinfo *res, uint16_t port, mn_swim_addr_t *found,
                               size_t *n, size_t cap)
{
    size_t added = 0;
    for (const struct addrinfo *ai = res; ai && *n < cap; ai = ai->ai_next) {
        mn_swim_addr_t a;
        if (!ai->ai_addr || !from_sockaddr(ai->ai_addr, &a)) continue;
        a.port = port;
        bool dup = false;
        for (size_t i = 0; i < *n; i++)
            dup |= mn_swim_addr_equal(&found[i], &a);
        if (dup) continue;
        found[(*n)++] = a;
        added++;
    }
    return added;
}

static void resolve_done(mn_swim_uv_t *u)
{
    if (u->closing || u->stopping) return;
    mn_swim_join(u->core, clock_now_us(), u->found, u->n_found);
    rearm(u);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    resolve_req *r = (resolve_req *)req;
    mn_swim_uv_t *u = r->u;
    if (status == 0) {
        mn_swim_uv_add_resolved(res, r->port, u->found, &u->n_found, MAX_SEED_ADDRS);
    } else if (!u->closing) {
        mn_log_warn("swim: cannot resolve a seed: %s", uv_strerror(status));
    }
    uv_freeaddrinfo(res);
    free(r);
    if (--u->resolving == 0) {
        resolve_done(u);
        maybe_free(u);
    }
}

/* Splits "host:port" / "[v6]:port" into host (NUL-terminated) and port. */
static bool split_hostport(const char *s, char *host, size_t cap, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return false;
    const char *h = s, *e = colon;
    if (s[0] == '[') {
        if (colon[-1] != ']') return false;
        h = s + 1;
        e = colon - 1;
    }
    if ((size_t)(e - h) >= cap || e == h) return false;
    memcpy(host, h, (size_t)(e - h));
    host[e - h] = 0;
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || p < 1 || p > 65535) return false;
    *port = (uint16_t)p;
    return true;
}

static void resolve_seeds(mn_swim_uv_t *u)
{
    if (u->resolving || u->closing || u->stopping || !u->n_seeds) return;
    u->n_found = 0;
    u->resolving = 1; /* held until every request is issued */
    for (size_t i = 0; i < u->n_seeds; i++) {
        char host[256];
        uint16_t port;
        if (!split_hostport(u->seeds[i], host, sizeof host, &port)) continue;
        resolve_req *r = calloc(1, sizeof *r);
        if (!r) continue;
        r->u = u;
        r->port = port;
        struct addrinfo hints;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_DGRAM;
        u->resolving++;
        if (uv_getaddrinfo(u->loop, &r->req, on_resolved, host, NULL, &hints) != 0) {
            u->resolving--;
            free(r);
        }
    }
    if (--u->resolving == 0) resolve_done(u);
}

static void on_resolve_timer(uv_timer_t *t)
{
    mn_swim_uv_t *u = t->data;
    /* re-resolve only while alone: seeds may have come up, or moved */
    if (mn_swim_count_state(u->core, MN_SWIM_ALIVE) +
            mn_swim_count_state(u->core, MN_SWIM_SUSPECT) <=
        1)
        resolve_seeds(u);
}

/* ---- public ---- */

static mn_err pick_advertise(const char *bind, int port, mn_swim_addr_t *out, mn_error *err)
{
    char text[80];
    bool v6 = strchr(bind, ':') != NULL;
    snprintf(text, sizeof text, v6 ? "[%s]:%d" : "%s:%d", bind, port ? port : 1);
    if (mn_swim_addr_parse(text, out) != MN_OK)
        return mn_error_set(err, MN_ERR_INVALID, "swim: bind address \"%s\" is not a numeric IP",
                            bind);
    static const uint8_t zero[16];
    if (memcmp(out->ip, zero, 16) != 0) return MN_OK;
    /* a wildcard bind: advertise the first external IPv4 address, else loopback */
    uv_interface_address_t *ifs = NULL;
    int n = 0;
    out->family = 4;
    memset(out->ip, 0, 16);
    out->ip[0] = 127;
    out->ip[3] = 1;
    if (uv_interface_addresses(&ifs, &n) == 0) {
        for (int i = 0; i < n; i++)
            if (!ifs[i].is_internal && ifs[i].address.address4.sin_family == AF_INET) {
                memcpy(out->ip, &ifs[i].address.address4.sin_addr, 4);
                break;
            }
        uv_free_interface_addresses(ifs, n);
    }
    return MN_OK;
}

mn_err mn_swim_uv_start(uv_loop_t *loop, const mn_swim_uv_opts_t *o, mn_swim_uv_t **out,
                        mn_error *err)
{
    if (!loop || !o || !out || !o->bind)
        return mn_error_set(err, MN_ERR_INVALID, "swim: no options");
    *out = NULL;
    if (o->port < 0 || o->port > 65535)
        return mn_error_set(err, MN_ERR_INVALID, "swim: port %d out of range", o->port);
    mn_swim_addr_t adv;
    mn_err rc = pick_advertise(o->bind, o->port, &adv, err);
    if (rc != MN_OK) return rc;
    mn_swim_uv_t *u = calloc(1, sizeof *u);
    if (!u) return mn_error_set(err, MN_ERR_NOMEM, "swim: out of memory");
    u->loop = loop;
    u->user = o->cb;
    u->udp.data = u->timer.data = u->resolve_timer.data = u;

    struct sockaddr_storage ss;
    mn_swim_addr_t bind_addr;
    char text[80];
    snprintf(text, sizeof text, strchr(o->bind, ':') ? "[%s]:%d" : "%s:%d", o->bind,
             o->port ? o->port : 1);
    mn_swim_addr_parse(text, &bind_addr);
    bind_addr.port = (uint16_t)o->port;
    to_sockaddr(&bind_addr, &ss);
    int uerr = uv_udp_init(loop, &u->udp);
    if (uerr != 0) {
        free(u);
        return mn_error_set(err, MN_ERR_IO, "swim: cannot open a UDP socket: %s",
                            uv_strerror(uerr));
    }
    uerr = uv_udp_bind(&u->udp, (const struct sockaddr *)&ss, 0);
    if (uerr != 0) {
        /* the handle exists: it is freed from its close callback */
        u->open_handles = 1;
        u->closing = true;
        uv_close((uv_handle_t *)&u->udp, on_handle_closed);
        return mn_error_set(err, MN_ERR_IO, "swim: cannot bind UDP %s:%d: %s", o->bind, o->port,
                            uv_strerror(uerr));
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_udp_getsockname(&u->udp, (struct sockaddr *)&bound, &blen);
    mn_swim_addr_t b;
    from_sockaddr((struct sockaddr *)&bound, &b);
    adv.port = b.port;
    u->addr = adv;

    mn_swim_opts_t so = {
        .node_id = o->node_id,
        .addr = adv,
        .key = (const uint8_t *)o->key,
        .key_len = o->key ? strlen(o->key) : 0,
        .incarnation = (uint64_t)(mn_time_now_ms() / 1000), /* a restart outranks its past */
        .seed = mn_random_seed(),
        .config = o->config,
        .cb = {.user = u, .send = on_send, .event = on_event},
        .meta = o->meta,
        .meta_len = o->meta ? strlen(o->meta) : 0,
    };
    u->mono0_us = clock_now_us();
    u->wall0_ms = mn_time_now_ms();
    rc = mn_swim_new(&so, u->mono0_us, &u->core, err);
    if (rc == MN_OK && o->n_seeds) {
        u->seeds = calloc(o->n_seeds, sizeof *u->seeds);
        if (!u->seeds) rc = mn_error_set(err, MN_ERR_NOMEM, "swim: out of memory");
        for (size_t i = 0; rc == MN_OK && i < o->n_seeds; i++) {
            u->seeds[i] = strdup(o->seeds[i] ? o->seeds[i] : "");
            if (!u->seeds[i]) rc = mn_error_set(err, MN_ERR_NOMEM, "swim: out of memory");
            u->n_seeds = i + 1;
        }
    }
    uv_timer_init(loop, &u->timer);
    uv_timer_init(loop, &u->resolve_timer);
    if (rc != MN_OK) {
        close_all(u);
        return rc;
    }
    uv_udp_recv_start(&u->udp, on_alloc, on_recv);
    resolve_seeds(u);
    uv_timer_start(&u->resolve_timer, on_resolve_timer, RESOLVE_EVERY_MS, RESOLVE_EVERY_MS);
    rearm(u);
    char a[MN_SWIM_ADDR_TEXT];
    mn_swim_addr_format(&u->addr, a, sizeof a);
    mn_log_info("swim: node %s listening on %s (%zu seeds)", o->node_id, a, o->n_seeds);
    *out = u;
    return MN_OK;
}

void mn_swim_uv_stop(mn_swim_uv_t *u, int64_t timeout_ms, void (*done)(void *arg), void *arg)
{
    if (!u || u->closing || u->stopping) return;
    u->done = done;
    u->done_arg = arg;
    u->stopping = true;
    int64_t now_us = clock_now_us();
    u->stop_deadline_us = now_us + (timeout_ms > 0 ? timeout_ms : 0) * 1000;
    mn_swim_leave(u->core, now_us);
    if (mn_swim_leave_done(u->core) || timeout_ms <= 0) {
        mn_swim_on_tick(u->core, now_us); /* send the announcement at least once */
        close_all(u);
        return;
    }
    rearm(u);
}

void mn_swim_uv_close(mn_swim_uv_t *u, void (*done)(void *arg), void *arg)
{
    if (!u || u->closing) return;
    u->done = done;
    u->done_arg = arg;
    close_all(u);
}

mn_swim_t *mn_swim_uv_core(mn_swim_uv_t *u)
{
    return u ? u->core : NULL;
}

mn_swim_addr_t mn_swim_uv_addr(const mn_swim_uv_t *u)
{
    return u->addr;
}

int64_t mn_swim_uv_wall_ms(const mn_swim_uv_t *u, int64_t core_us)
{
    return u->wall0_ms + (core_us - u->mono0_us) / 1000;
}

mn_err mn_swim_uv_set_meta(mn_swim_uv_t *u, const char *meta)
{
    mn_err rc = mn_swim_set_meta(u->core, clock_now_us(), meta, meta ? strlen(meta) : 0);
    if (rc == MN_OK) rearm(u);
    return rc;
}
