/* Private to peer/: the bus, its nodes (address book entries) and connections. */
#ifndef MN_PEER_INTERNAL_H
#define MN_PEER_INTERNAL_H

#include <uv.h>

#include "mnemo/peer.h"
#include "mnemo/util.h"

#define PEER_HDR_LEN 5 /* u32 BE length (channel byte + payload), channel */
#define PEER_CTL_HELLO 1
#define PEER_CTL_PROOF 2
#define PEER_HELLO_KEYED 1u
#define PEER_CTL_MAX 256 /* bound on any frame before authentication */
#define PEER_RX_CHUNK 65536

/* A frame waiting for, or being written to, a node's outbound connection. */
typedef struct peer_wreq {
    uv_write_t req;
    struct peer_node *node; /* NULL: a control frame, outside the queue bound */
    struct peer_wreq *next; /* in node->pending while not handed to libuv */
    size_t frame_len;       /* the frame's bytes (queue bound, stats); 0: TLS records only */
    size_t len;             /* bytes in data: the frame, or its TLS records */
    uint8_t data[];
} peer_wreq;

typedef enum {
    CONN_CONNECTING = 0, /* outbound, before connect completes */
    CONN_SNIFF,          /* inbound, TLS optional: its first byte says TLS or plaintext */
    CONN_TLS,            /* the TLS handshake, before our hello */
    CONN_HELLO,          /* our hello sent, waiting for theirs */
    CONN_PROOF,          /* hellos exchanged, waiting for their proof */
    CONN_OPEN,           /* authenticated: user frames flow */
    CONN_CLOSING,
} peer_conn_state;

typedef struct peer_conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    struct mn_peer *bus;
    struct peer_node *node; /* outbound: the node dialled; NULL for inbound */
    struct peer_conn *prev, *next;
    peer_conn_state state;
    int64_t opened_ms; /* monotonic: for the handshake deadline */
    mn_peer_hello_t mine, theirs;
    struct ssl_st *ssl; /* NULL: plain TCP */
    uint8_t *rx;
    size_t rx_len, rx_cap;
} peer_conn;

typedef struct peer_node {
    struct mn_peer *bus;
    char id[MN_PEER_NODE_MAX + 1];
    char host[64];
    int port; /* 0 = no address */
    peer_conn *out;
    uv_timer_t redial;
    bool redial_armed;
    int64_t backoff_ms;
    peer_wreq *pending, *pending_tail; /* waiting for the connection to open */
    size_t queued_bytes;               /* pending + handed to libuv and not yet written */
} peer_node;

struct mn_peer {
    uv_loop_t *loop;
    mn_peer_config_t cfg;
    char node_id[MN_PEER_NODE_MAX + 1];
    char key[256];
    char bind[64];
    int port;
    struct ssl_ctx_st *tls; /* NULL: plain TCP */
    uv_tcp_t listener;
    uv_timer_t sweep; /* handshake deadlines */
    peer_node **nodes;
    size_t n_nodes, cap_nodes;
    peer_conn *conns; /* every connection, both directions */
    size_t n_inbound;
    struct {
        mn_peer_recv_fn fn;
        void *arg;
    } on[256];
    mn_peer_stats_t stats;
    mn_prng_t prng;
    bool closing;
    int open_handles;
    void (*done)(void *arg);
    void *done_arg;
    uint8_t scratch[PEER_RX_CHUNK];
};

bool mn__peer_id_ok(const char *s, size_t n);

/* peer_conn.c */
peer_conn *mn__peer_conn_new(mn_peer_t *p, peer_node *node);
void mn__peer_conn_start(peer_conn *c); /* accepted or connected: send hello, read */
/* Closes c (idempotent); *counter (a stats field, may be NULL) counts why. */
void mn__peer_conn_close(peer_conn *c, uint64_t *counter);
/* Hands a frame to libuv on an open connection (sealed in TLS records when
 * c->ssl); frees it on failure. */
void mn__peer_conn_write(peer_conn *c, peer_wreq *w);
/* Hands w's bytes to libuv as they are; frees it on failure. */
void mn__peer_conn_write_raw(peer_conn *c, peer_wreq *w);
bool mn__peer_rx_reserve(peer_conn *c, size_t need);
peer_wreq *mn__peer_wreq_new(peer_node *node, uint8_t channel, const uint8_t *buf, size_t len);

/* peer_tls.c: TLS through memory BIOs; ciphertext moves with the functions above */
/* The bus's context from c's tls_* files; *out NULL when TLS is off. */
mn_err mn__peer_tls_ctx_new(const mn_peer_config_t *c, struct ssl_ctx_st **out, mn_error *err);
void mn__peer_tls_ctx_free(struct ssl_ctx_st *ctx);
/* Starts the handshake on a connected or accepted c (state CONN_TLS); false:
 * c is closed. */
bool mn__peer_tls_start(peer_conn *c);
void mn__peer_tls_free(peer_conn *c);
/* Ciphertext from the socket: 1 the handshake just finished, 0 keep going,
 * -1 c is closed. Once finished, the plaintext is appended to c->rx. */
int mn__peer_tls_input(peer_conn *c, const uint8_t *buf, size_t len);
/* w's frame as TLS records in a new wreq (w is freed); NULL: failed, w kept. */
peer_wreq *mn__peer_tls_seal(peer_conn *c, peer_wreq *w);

/* peer_bus.c */
void mn__peer_node_opened(peer_node *n);             /* outbound authenticated */
void mn__peer_node_lost(mn_peer_t *p, peer_node *n); /* outbound closed: redial */
void mn__peer_handle_closed(mn_peer_t *p);           /* one of the bus's handles closed */

#endif
