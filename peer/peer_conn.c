/* One TCP connection of the peer bus: the handshake, framing and writes.
 *
 * A frame is a u32 big-endian length (of what follows: the channel byte and
 * the payload), a channel byte and the payload. Both ends send a hello as
 * soon as the connection is up; with a key, each then sends the proof for
 * the other's hello (peer_hello.c) and takes user frames only once the
 * other's proof checked out. Until then a frame longer than PEER_CTL_MAX
 * closes the connection, so an unauthenticated peer cannot make us hold more
 * than that; after it, the bound is max_frame_bytes. With TLS on, the
 * connection first completes a TLS handshake (peer_tls.c) and everything
 * above runs inside the session: frames are sealed into records on the way
 * out and opened into rx on the way in.
 *
 * Invariants: a connection in CONN_CLOSING never reads, dispatches or writes
 * again; its memory is freed in the close callback, after libuv has called
 * back every write it held (cancelled ones included). */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "peer_internal.h"

peer_wreq *mn__peer_wreq_new(peer_node *node, uint8_t channel, const uint8_t *buf, size_t len)
{
    peer_wreq *w = malloc(sizeof *w + PEER_HDR_LEN + len);
    if (!w) return NULL;
    memset(w, 0, sizeof *w);
    w->node = node;
    w->len = w->frame_len = PEER_HDR_LEN + len;
    mn_put_be32(w->data, (uint32_t)(len + 1));
    w->data[4] = channel;
    if (len) memcpy(w->data + PEER_HDR_LEN, buf, len);
    return w;
}

peer_conn *mn__peer_conn_new(mn_peer_t *p, peer_node *node)
{
    peer_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (uv_tcp_init(p->loop, &c->tcp) != 0) {
        free(c);
        return NULL;
    }
    c->tcp.data = c;
    c->bus = p;
    c->node = node;
    c->opened_ms = mn_time_mono_ns() / 1000000;
    c->next = p->conns;
    if (p->conns) p->conns->prev = c;
    p->conns = c;
    p->open_handles++;
    if (!node) p->n_inbound++;
    return c;
}

static void on_closed(uv_handle_t *h)
{
    peer_conn *c = h->data;
    mn_peer_t *p = c->bus;
    if (c->prev) c->prev->next = c->next;
    if (c->next) c->next->prev = c->prev;
    if (p->conns == c) p->conns = c->next;
    if (!c->node) p->n_inbound--;
    mn__peer_tls_free(c);
    free(c->rx);
    free(c);
    mn__peer_handle_closed(p);
}

void mn__peer_conn_close(peer_conn *c, uint64_t *counter)
{
    if (c->state == CONN_CLOSING) return;
    bool was_open = c->state == CONN_OPEN;
    c->state = CONN_CLOSING;
    if (counter) (*counter)++;
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
    if (c->node && c->node->out == c) {
        c->node->out = NULL;
        mn__peer_node_lost(c->bus, c->node);
    }
    if (was_open || c->theirs.node[0])
        mn_log_debug("peer: connection %s %s closed", c->node ? "to" : "from",
                     c->node ? c->node->id : c->theirs.node);
}

static void on_write(uv_write_t *req, int status)
{
    peer_wreq *w = (peer_wreq *)req;
    peer_conn *c = req->handle->data;
    mn_peer_t *p = c->bus;
    if (w->node) {
        mn_assert(w->node->queued_bytes >= w->frame_len); /* added in mn_peer_send */
        w->node->queued_bytes -= w->frame_len;
    }
    if (status == 0) {
        p->stats.frames_sent += w->frame_len ? 1 : 0; /* 0: TLS handshake records */
        p->stats.bytes_sent += w->frame_len;
    } else if (status != UV_ECANCELED) {
        mn__peer_conn_close(c, &p->stats.closed_io);
    }
    free(w);
}

static void drop(peer_wreq *w)
{
    if (w->node) w->node->queued_bytes -= w->frame_len;
    free(w);
}

void mn__peer_conn_write_raw(peer_conn *c, peer_wreq *w)
{
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
    if (c->state == CONN_CLOSING || uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write))
        drop(w);
}

void mn__peer_conn_write(peer_conn *c, peer_wreq *w)
{
    mn_assert(c->state != CONN_CLOSING || !w->node); /* user frames go to open connections */
    if (c->ssl && c->state != CONN_CLOSING) {
        peer_wreq *sealed = mn__peer_tls_seal(c, w);
        if (!sealed) {
            drop(w);
            mn__peer_conn_close(c, &c->bus->stats.closed_tls);
            return;
        }
        w = sealed;
    }
    mn__peer_conn_write_raw(c, w);
}

static void write_control(peer_conn *c, const uint8_t *buf, size_t len)
{
    peer_wreq *w = mn__peer_wreq_new(NULL, 0, buf, len);
    if (w)
        mn__peer_conn_write(c, w);
    else
        mn__peer_conn_close(c, &c->bus->stats.closed_io);
}

/* ---- the handshake ---- */

static void opened(peer_conn *c)
{
    c->state = CONN_OPEN;
    c->bus->stats.handshakes++;
    mn_log_debug("peer: %s %s authenticated (version %u.%u)", c->node ? "to" : "from",
                 c->theirs.node, c->theirs.major, c->theirs.minor);
    if (c->node) mn__peer_node_opened(c->node);
}

static void on_hello(peer_conn *c, const uint8_t *buf, size_t len)
{
    mn_peer_t *p = c->bus;
    if (c->state != CONN_HELLO || mn_peer_hello_decode(buf, len, &c->theirs) != MN_OK ||
        c->theirs.major != MN_PEER_VERSION_MAJOR ||
        (c->node && strcmp(c->theirs.node, c->node->id) != 0)) {
        if (c->theirs.node[0])
            mn_log_warn("peer: refused a hello from %s (version %u.%u)", c->theirs.node,
                        c->theirs.major, c->theirs.minor);
        mn__peer_conn_close(c, &p->stats.closed_hello);
        return;
    }
    if (c->theirs.keyed != c->mine.keyed) {
        mn_log_warn("peer: %s %s a cluster key and this node %s", c->theirs.node,
                    c->theirs.keyed ? "has" : "has not", c->mine.keyed ? "has" : "has not");
        mn__peer_conn_close(c, &p->stats.closed_auth);
        return;
    }
    if (!c->mine.keyed) {
        opened(c);
        return;
    }
    uint8_t proof[1 + MN_PEER_MAC_LEN];
    proof[0] = PEER_CTL_PROOF;
    if (mn_peer_proof(p->key, &c->mine, &c->theirs, proof + 1) != MN_OK) {
        mn__peer_conn_close(c, &p->stats.closed_auth);
        return;
    }
    c->state = CONN_PROOF;
    write_control(c, proof, sizeof proof);
}

static void on_proof(peer_conn *c, const uint8_t *buf, size_t len)
{
    mn_peer_t *p = c->bus;
    uint8_t want[MN_PEER_MAC_LEN];
    if (c->state != CONN_PROOF || len != 1 + MN_PEER_MAC_LEN ||
        mn_peer_proof(p->key, &c->theirs, &c->mine, want) != MN_OK ||
        CRYPTO_memcmp(want, buf + 1, MN_PEER_MAC_LEN) != 0) {
        mn_log_warn("peer: %s did not prove the cluster key", c->theirs.node);
        mn__peer_conn_close(c, &p->stats.closed_auth);
        return;
    }
    opened(c);
}

static void on_frame(peer_conn *c, uint8_t channel, const uint8_t *buf, size_t len)
{
    mn_peer_t *p = c->bus;
    if (channel == 0) {
        if (len && buf[0] == PEER_CTL_HELLO)
            on_hello(c, buf, len);
        else if (len && buf[0] == PEER_CTL_PROOF)
            on_proof(c, buf, len);
        else
            mn__peer_conn_close(c, &p->stats.closed_protocol);
        return;
    }
    if (c->state != CONN_OPEN) {
        mn__peer_conn_close(c, &p->stats.closed_protocol);
        return;
    }
    p->stats.frames_received++;
    p->stats.bytes_received += PEER_HDR_LEN + len;
    if (!p->on[channel].fn) {
        /* a newer minor may speak a channel this node does not know */
        p->stats.dropped_unknown_channel++;
        return;
    }
    p->on[channel].fn(p->on[channel].arg, c->theirs.node, buf, len);
}

/* ---- reading ---- */

bool mn__peer_rx_reserve(peer_conn *c, size_t need)
{
    if (c->rx_cap >= need) return true;
    size_t cap = c->rx_cap ? c->rx_cap : 4096;
    while (cap < need)
        cap *= 2;
    uint8_t *rx = realloc(c->rx, cap);
    if (!rx) return false;
    c->rx = rx;
    c->rx_cap = cap;
    return true;
}

/* Handles every whole frame in rx; keeps the tail of a partial one. */
static void parse(peer_conn *c)
{
    mn_peer_t *p = c->bus;
    size_t off = 0;
    while (c->state != CONN_CLOSING && c->rx_len - off >= 4) {
        uint32_t len = mn_get_be32(c->rx + off);
        size_t limit = c->state == CONN_OPEN ? p->cfg.max_frame_bytes + 1 : PEER_CTL_MAX;
        if (len == 0 || len > limit) {
            mn_log_warn("peer: a frame of %u bytes from %s: over the bound, closing", len,
                        c->theirs.node[0] ? c->theirs.node : "an unauthenticated peer");
            mn__peer_conn_close(c, &p->stats.closed_oversize);
            return;
        }
        if (c->rx_len - off < 4 + (size_t)len) {
            if (!mn__peer_rx_reserve(c, 4 + (size_t)len))
                mn__peer_conn_close(c, &p->stats.closed_io);
            break;
        }
        const uint8_t *f = c->rx + off;
        off += 4 + (size_t)len;
        on_frame(c, f[4], f + PEER_HDR_LEN, len - 1);
    }
    if (c->state == CONN_CLOSING || off == 0) return; /* (rx is NULL before the first TLS read) */
    memmove(c->rx, c->rx + off, c->rx_len - off);
    c->rx_len -= off;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    peer_conn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)c->bus->scratch, sizeof c->bus->scratch);
}

static void send_hello(peer_conn *c);

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    peer_conn *c = s->data;
    if (n == 0 || c->state == CONN_CLOSING) return;
    if (n < 0) {
        mn__peer_conn_close(c, &c->bus->stats.closed_io);
        return;
    }
    if (c->state == CONN_SNIFF) {
        /* a TLS client's first record is a handshake (content type 22); a plaintext peer's
         * first bytes are its hello's length, whose top byte is 0 */
        if ((uint8_t)buf->base[0] == 22) {
            c->bus->stats.accepted_tls++;
            if (!mn__peer_tls_start(c)) return;
        } else {
            c->bus->stats.accepted_plain++;
            send_hello(c);
            if (c->state == CONN_CLOSING) return;
        }
    }
    if (c->ssl) {
        int r = mn__peer_tls_input(c, (const uint8_t *)buf->base, (size_t)n);
        if (r == 1) {
            send_hello(c);
            if (c->state != CONN_CLOSING) r = mn__peer_tls_input(c, NULL, 0);
        }
        if (r < 0 || c->state == CONN_CLOSING) return;
    } else {
        if (!mn__peer_rx_reserve(c, c->rx_len + (size_t)n)) {
            mn__peer_conn_close(c, &c->bus->stats.closed_io);
            return;
        }
        memcpy(c->rx + c->rx_len, buf->base, (size_t)n);
        c->rx_len += (size_t)n;
    }
    parse(c);
}

/* Our hello: at once on plain TCP, after the TLS handshake with TLS on. */
static void send_hello(peer_conn *c)
{
    mn_peer_t *p = c->bus;
    c->state = CONN_HELLO;
    c->mine.major = MN_PEER_VERSION_MAJOR;
    c->mine.minor = p->cfg.minor;
    c->mine.keyed = p->key[0] != 0;
    snprintf(c->mine.node, sizeof c->mine.node, "%s", p->node_id);
    if (RAND_bytes(c->mine.nonce, MN_PEER_NONCE_LEN) != 1) {
        mn__peer_conn_close(c, &p->stats.closed_io);
        return;
    }
    uint8_t hello[8 + MN_PEER_NONCE_LEN + MN_PEER_NODE_MAX];
    size_t n = mn_peer_hello_encode(&c->mine, hello, sizeof hello);
    mn_assert(n > 0); /* the buffer fits the longest id */
    write_control(c, hello, n);
}

void mn__peer_conn_start(peer_conn *c)
{
    c->opened_ms = mn_time_mono_ns() / 1000000;
    uv_tcp_nodelay(&c->tcp, 1);
    mn_peer_tls_mode_t mode = c->bus->cfg.tls_mode;
    bool tls = c->bus->tls && (c->node ? mode != MN_PEER_TLS_ACCEPT : mode == MN_PEER_TLS_REQUIRE);
    if (c->bus->tls && !c->node && mode != MN_PEER_TLS_REQUIRE) {
        c->state = CONN_SNIFF; /* both send first: wait for its first byte */
    } else {
        if (!c->node) {
            if (tls)
                c->bus->stats.accepted_tls++;
            else
                c->bus->stats.accepted_plain++;
        }
        if (!tls)
            send_hello(c);
        else if (!mn__peer_tls_start(c))
            return;
    }
    if (c->state != CONN_CLOSING) uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}
