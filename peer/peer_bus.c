/* The peer bus: the listener, the address book and its outbound connections.
 *
 * Each node in the address book has at most one outbound connection; frames
 * for it wait in its pending list until that connection is authenticated
 * (peer_conn.c), and every byte pending or handed to libuv counts against
 * queue_max_bytes: a send beyond it is dropped and counted (the replication
 * core resends what matters). A lost connection is redialled after a delay
 * that doubles from backoff_min_ms to backoff_max_ms, drawn in [d/2, d] so
 * that nodes restarting together do not dial in step; a handshake resets it.
 *
 * Invariants: node->out is either NULL or a connection not closing; the bus
 * is freed only once every handle it opened has closed. */
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "peer_internal.h"

#define SWEEP_MS 100

void mn_peer_config_default(mn_peer_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->bind = "127.0.0.1";
    c->max_frame_bytes = (16u << 20) + 4096;
    c->queue_max_bytes = 8u << 20;
    c->handshake_timeout_ms = 5000;
    c->backoff_min_ms = 50;
    c->backoff_max_ms = 5000;
    c->max_conns = 256;
    c->minor = MN_PEER_VERSION_MINOR;
}

static int64_t now_ms(void)
{
    return mn_time_mono_ns() / 1000000;
}

static bool sockaddr_of(const char *host, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return true;
    return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0;
}

/* ---- freeing ---- */

static void drop_pending(peer_node *n)
{
    for (peer_wreq *w = n->pending, *next; w; w = next) {
        next = w->next;
        mn_assert(n->queued_bytes >= w->frame_len);
        n->queued_bytes -= w->frame_len;
        free(w);
    }
    n->pending = n->pending_tail = NULL;
}

static void bus_free(mn_peer_t *p)
{
    void (*done)(void *) = p->done;
    void *arg = p->done_arg;
    for (size_t i = 0; i < p->n_nodes; i++)
        free(p->nodes[i]);
    free(p->nodes);
    mn__peer_tls_ctx_free(p->tls);
    free(p);
    if (done) done(arg);
}

void mn__peer_handle_closed(mn_peer_t *p)
{
    mn_assert(p->open_handles > 0);
    if (--p->open_handles == 0 && p->closing) bus_free(p);
}

static void on_handle_closed(uv_handle_t *h)
{
    mn__peer_handle_closed(h->data);
}

static void on_node_timer_closed(uv_handle_t *h)
{
    mn__peer_handle_closed(((peer_node *)h->data)->bus);
}

/* ---- dialling ---- */

static void dial(peer_node *n, mn_peer_t *p);

static void on_redial(uv_timer_t *t)
{
    peer_node *n = t->data;
    mn_peer_t *p = n->bus;
    n->redial_armed = false;
    dial(n, p);
}

void mn__peer_node_lost(mn_peer_t *p, peer_node *n)
{
    if (p->closing || !n->port || n->redial_armed) return;
    int64_t d = n->backoff_ms ? n->backoff_ms * 2 : p->cfg.backoff_min_ms;
    if (d > p->cfg.backoff_max_ms) d = p->cfg.backoff_max_ms;
    n->backoff_ms = d;
    int64_t wait_ms = d / 2 + (int64_t)mn_prng_below(&p->prng, (uint64_t)(d - d / 2) + 1);
    n->redial_armed = true;
    uv_timer_start(&n->redial, on_redial, (uint64_t)wait_ms, 0);
}

void mn__peer_node_opened(peer_node *n)
{
    n->backoff_ms = 0;
    peer_wreq *w = n->pending;
    n->pending = n->pending_tail = NULL;
    while (w && n->out) {
        peer_wreq *next = w->next;
        w->next = NULL;
        mn__peer_conn_write(n->out, w);
        w = next;
    }
    /* the connection closed while flushing: keep the rest for the next one */
    n->pending = w;
    for (n->pending_tail = w; n->pending_tail && n->pending_tail->next;)
        n->pending_tail = n->pending_tail->next;
}

static void on_connect(uv_connect_t *req, int status)
{
    peer_conn *c = req->data;
    if (c->state == CONN_CLOSING) return;
    if (status < 0) {
        mn__peer_conn_close(c, &c->bus->stats.closed_io);
        return;
    }
    mn__peer_conn_start(c);
}

static void dial(peer_node *n, mn_peer_t *p)
{
    if (p->closing || n->out || !n->port) return;
    struct sockaddr_storage ss;
    if (!sockaddr_of(n->host, n->port, &ss)) return; /* checked by set_addr */
    peer_conn *c = mn__peer_conn_new(p, n);
    if (!c) {
        mn__peer_node_lost(p, n);
        return;
    }
    n->out = c;
    p->stats.dialed++;
    c->connect.data = c;
    int rc = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&ss, on_connect);
    if (rc != 0) mn__peer_conn_close(c, &p->stats.closed_io);
}

/* ---- accepting ---- */

static void on_connection(uv_stream_t *server, int status)
{
    mn_peer_t *p = server->data;
    if (status < 0 || p->closing) return;
    peer_conn *c = mn__peer_conn_new(p, NULL);
    if (!c) return;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        mn__peer_conn_close(c, &p->stats.closed_io);
        return;
    }
    p->stats.accepted++;
    if (p->n_inbound > p->cfg.max_conns) {
        mn__peer_conn_close(c, &p->stats.closed_limit);
        return;
    }
    mn__peer_conn_start(c);
}

/* Closes connections still unauthenticated past the handshake timeout (slowloris). */
static void on_sweep(uv_timer_t *t)
{
    mn_peer_t *p = t->data;
    int64_t now = now_ms();
    for (peer_conn *c = p->conns, *next; c; c = next) {
        next = c->next;
        if (c->state != CONN_OPEN && c->state != CONN_CLOSING &&
            now - c->opened_ms > p->cfg.handshake_timeout_ms)
            mn__peer_conn_close(c, &p->stats.closed_timeout);
    }
}

/* ---- public ---- */

static mn_err check_config(const mn_peer_config_t *c, mn_error *err)
{
    if (!c->node_id || !mn__peer_id_ok(c->node_id, strlen(c->node_id)))
        return mn_error_set(err, MN_ERR_INVALID, "peer: node id must be 1..%d printable bytes",
                            MN_PEER_NODE_MAX);
    if (!c->bind || strlen(c->bind) >= 64 || c->port < 0 || c->port > 65535)
        return mn_error_set(err, MN_ERR_INVALID, "peer: bad bind address or port");
    if (c->key && strlen(c->key) >= 256)
        return mn_error_set(err, MN_ERR_INVALID, "peer: the cluster key is over 255 bytes");
    if (c->max_frame_bytes < 64 || c->max_frame_bytes > (1u << 30) || c->queue_max_bytes < 64 ||
        c->handshake_timeout_ms <= 0 || c->backoff_min_ms <= 0 ||
        c->backoff_max_ms < c->backoff_min_ms || c->max_conns == 0)
        return mn_error_set(err, MN_ERR_INVALID, "peer: a bound or timeout is out of range");
    bool tls = c->tls_cert && *c->tls_cert;
    if (c->tls_mode != MN_PEER_TLS_REQUIRE && (c->tls_mode != MN_PEER_TLS_ACCEPT || !tls) &&
        (c->tls_mode != MN_PEER_TLS_PREFER || !tls))
        return mn_error_set(err, MN_ERR_INVALID,
                            "peer: cluster.tls_mode accept or prefer needs cluster.tls_cert, "
                            "cluster.tls_key and cluster.tls_ca");
    return MN_OK;
}

static mn_err listen_on(mn_peer_t *p, mn_error *err)
{
    struct sockaddr_storage ss;
    if (!sockaddr_of(p->bind, p->port, &ss))
        return mn_error_set(err, MN_ERR_INVALID, "peer: bind address \"%s\" is not a numeric IP",
                            p->bind);
    int rc = uv_tcp_bind(&p->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&p->listener, 128, on_connection);
    if (rc != 0)
        return mn_error_set(err, MN_ERR_IO, "peer: cannot listen on TCP %s:%d: %s", p->bind,
                            p->port, uv_strerror(rc));
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&p->listener, (struct sockaddr *)&bound, &blen);
    p->port = ntohs(((struct sockaddr_in *)&bound)->sin_port); /* same offset in sockaddr_in6 */
    return MN_OK;
}

mn_err mn_peer_new(uv_loop_t *loop, const mn_peer_config_t *c, mn_peer_t **out, mn_error *err)
{
    *out = NULL;
    mn_err rc = check_config(c, err);
    if (rc != MN_OK) return rc;
    mn_peer_t *p = calloc(1, sizeof *p);
    if (!p) return mn_error_set(err, MN_ERR_NOMEM, "peer: out of memory");
    p->loop = loop;
    p->cfg = *c;
    snprintf(p->node_id, sizeof p->node_id, "%s", c->node_id);
    snprintf(p->key, sizeof p->key, "%s", c->key ? c->key : "");
    snprintf(p->bind, sizeof p->bind, "%s", c->bind);
    p->port = c->port;
    mn_prng_seed(&p->prng, c->seed ? c->seed : mn_random_seed());
    rc = mn__peer_tls_ctx_new(c, &p->tls, err);
    if (rc != MN_OK) {
        free(p);
        return rc;
    }
    p->cfg.tls_cert = p->cfg.tls_key = p->cfg.tls_ca = NULL; /* loaded: not kept */
    uv_tcp_init(loop, &p->listener);
    uv_timer_init(loop, &p->sweep);
    p->listener.data = p->sweep.data = p;
    p->open_handles = 2;
    rc = listen_on(p, err);
    if (rc != MN_OK) {
        mn_peer_close(p, NULL, NULL);
        return rc;
    }
    uv_timer_start(&p->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    mn_log_info("peer: node %s listening on %s%s%s:%d (%s, %s, version %d.%d)", p->node_id,
                strchr(p->bind, ':') ? "[" : "", p->bind, strchr(p->bind, ':') ? "]" : "", p->port,
                p->key[0] ? "cluster key" : "no key",
                !p->tls                                 ? "plain TCP"
                : p->cfg.tls_mode == MN_PEER_TLS_ACCEPT ? "mutual TLS or plain in, plain out"
                : p->cfg.tls_mode == MN_PEER_TLS_PREFER ? "mutual TLS or plain in, TLS out"
                                                        : "mutual TLS",
                MN_PEER_VERSION_MAJOR, p->cfg.minor);
    *out = p;
    return MN_OK;
}

void mn_peer_close(mn_peer_t *p, void (*done)(void *arg), void *arg)
{
    if (!p || p->closing) return;
    p->closing = true;
    p->done = done;
    p->done_arg = arg;
    uv_close((uv_handle_t *)&p->listener, on_handle_closed);
    uv_close((uv_handle_t *)&p->sweep, on_handle_closed);
    for (size_t i = 0; i < p->n_nodes; i++) {
        drop_pending(p->nodes[i]);
        uv_close((uv_handle_t *)&p->nodes[i]->redial, on_node_timer_closed);
    }
    for (peer_conn *c = p->conns, *next; c; c = next) {
        next = c->next;
        mn__peer_conn_close(c, NULL);
    }
}

int mn_peer_port(const mn_peer_t *p)
{
    return p->port;
}

static peer_node *find(const mn_peer_t *p, const char *node)
{
    for (size_t i = 0; i < p->n_nodes; i++)
        if (strcmp(p->nodes[i]->id, node) == 0) return p->nodes[i];
    return NULL;
}

static peer_node *add_node(mn_peer_t *p, const char *node)
{
    if (p->n_nodes == p->cap_nodes) {
        size_t cap = p->cap_nodes ? p->cap_nodes * 2 : 8;
        peer_node **nodes = realloc(p->nodes, cap * sizeof *nodes);
        if (!nodes) return NULL;
        p->nodes = nodes;
        p->cap_nodes = cap;
    }
    peer_node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->bus = p;
    snprintf(n->id, sizeof n->id, "%s", node);
    uv_timer_init(p->loop, &n->redial);
    n->redial.data = n;
    p->open_handles++;
    p->nodes[p->n_nodes++] = n;
    return n;
}

/* Closes n's outbound connection (a redial is scheduled when it closes), drops its queued
 * frames if asked (it has no address now), and dials now. */
static void redial_now(mn_peer_t *p, peer_node *n, bool drop)
{
    n->backoff_ms = 0;
    if (n->redial_armed) uv_timer_stop(&n->redial);
    n->redial_armed = false;
    if (n->out) mn__peer_conn_close(n->out, NULL); /* schedules a redial when addressed */
    if (drop) drop_pending(n);
    dial(n, p);
}

void mn_peer_redial(mn_peer_t *p, const char *node)
{
    peer_node *n = p->closing || !node ? NULL : find(p, node);
    if (!n || !n->port) return;
    p->stats.redialed++;
    redial_now(p, n, false);
}

mn_err mn_peer_set_addr(mn_peer_t *p, const char *node, const char *host, int port, mn_error *err)
{
    if (p->closing) return mn_error_set(err, MN_ERR_BUSY, "peer: closing");
    if (!node || !mn__peer_id_ok(node, strlen(node)))
        return mn_error_set(err, MN_ERR_INVALID, "peer: bad node id");
    struct sockaddr_storage ss;
    if (host && (strlen(host) >= 64 || port < 1 || port > 65535 || !sockaddr_of(host, port, &ss)))
        return mn_error_set(err, MN_ERR_INVALID, "peer: %s: \"%.64s:%d\" is not a numeric address",
                            node, host, port);
    peer_node *n = find(p, node);
    if (!n && !host) return MN_OK;
    if (!n && !(n = add_node(p, node))) return mn_error_set(err, MN_ERR_NOMEM, "peer: no memory");
    if (host && n->port == port && strcmp(n->host, host) == 0) return MN_OK;
    snprintf(n->host, sizeof n->host, "%s", host ? host : "");
    n->port = host ? port : 0;
    redial_now(p, n, !host);
    return MN_OK;
}

mn_err mn_peer_send(mn_peer_t *p, const char *node, uint8_t channel, const uint8_t *buf, size_t len)
{
    if (channel == 0 || len > p->cfg.max_frame_bytes || p->closing) return MN_ERR_INVALID;
    peer_node *n = find(p, node);
    if (!n || !n->port) {
        p->stats.dropped_no_addr++;
        return MN_ERR_NOT_FOUND;
    }
    if (n->queued_bytes + PEER_HDR_LEN + len > p->cfg.queue_max_bytes) {
        p->stats.dropped_queue_full++;
        return MN_ERR_BUSY;
    }
    peer_wreq *w = mn__peer_wreq_new(n, channel, buf, len);
    if (!w) {
        p->stats.dropped_queue_full++;
        return MN_ERR_NOMEM;
    }
    n->queued_bytes += w->frame_len;
    if (n->out && n->out->state == CONN_OPEN) {
        mn__peer_conn_write(n->out, w);
        return MN_OK;
    }
    if (n->pending_tail)
        n->pending_tail->next = w;
    else
        n->pending = w;
    n->pending_tail = w;
    return MN_OK;
}

void mn_peer_on(mn_peer_t *p, uint8_t channel, mn_peer_recv_fn fn, void *arg)
{
    if (channel == 0) return;
    p->on[channel].fn = fn;
    p->on[channel].arg = arg;
}

void mn_peer_stats(const mn_peer_t *p, mn_peer_stats_t *out)
{
    *out = p->stats;
}

bool mn_peer_connected(const mn_peer_t *p, const char *node)
{
    peer_node *n = find(p, node);
    return n && n->out && n->out->state == CONN_OPEN;
}

size_t mn_peer_queued(const mn_peer_t *p, const char *node)
{
    peer_node *n = find(p, node);
    return n ? n->queued_bytes : 0;
}
