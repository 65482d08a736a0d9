/* peer: the cluster's internal message bus (peer/, library mn_peer).
 *
 * Authenticated, framed TCP between the nodes of a cluster, on
 * cluster.bind:cluster.peer_port. Each node dials every node in its address
 * book (learnt from SWIM metadata "peer=HOST:PORT") and keeps that connection
 * up, redialling with exponential backoff and jitter; it sends over its own
 * outbound connection and receives over the ones others opened. A frame is
 * a u32 big-endian length, a channel byte and a payload; channel 0 carries
 * the handshake, channels 1.. the users' messages (mn_peer_on). Before any
 * user frame is accepted both sides prove they know cluster.key (HMAC-SHA256
 * over the other side's nonce and both node ids); without a key only the
 * hello is exchanged. With tls_cert, tls_key and tls_ca set, every connection
 * is TLS 1.3 first (OpenSSL over memory BIOs, peer_tls.c), both sides
 * presenting a certificate the other verifies against tls_ca (mutual TLS);
 * the hello and the proof then run inside it. docs/replication.md, "The peer
 * bus", has the format.
 *
 * One loop thread: every function here runs on the bus's loop thread. */
#ifndef MNEMO_PEER_H
#define MNEMO_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"

struct uv_loop_s;

#define MN_PEER_VERSION_MAJOR 1 /* a node refuses a hello of another major */
#define MN_PEER_VERSION_MINOR 0 /* any minor is accepted; unknown channels are ignored */
#define MN_PEER_NODE_MAX 64     /* bytes of a node id */

/* Channels of the cluster (the bus carries any 1..255). */
#define MN_PEER_CH_REPL 1   /* replication frames (spaces/, wire/repl.fbs) */
#define MN_PEER_CH_GOSSIP 2 /* anti-entropy gossip (issue 18) */
#define MN_PEER_CH_QUERY 3  /* scatter-gather queries (issue 19) */
/* channel 4: snapshot transfers (CREP_CH_SNAP, api/cluster_snap.h) */

typedef struct mn_peer mn_peer_t;

/* With TLS configured, how connections use it. A cluster switches TLS on without stopping
 * by three rolling restarts: every node to ACCEPT, then to PREFER, then to REQUIRE (and
 * off again in the reverse order); at each step every pair of nodes still connects. */
typedef enum {
    MN_PEER_TLS_REQUIRE = 0, /* both ways TLS; a plaintext peer is refused (the default) */
    MN_PEER_TLS_ACCEPT,      /* inbound TLS or plaintext (told by the first byte), dials plain */
    MN_PEER_TLS_PREFER,      /* inbound TLS or plaintext, dials TLS */
} mn_peer_tls_mode_t;

typedef struct mn_peer_config {
    const char *node_id;          /* this node, 1..MN_PEER_NODE_MAX printable bytes */
    const char *bind;             /* numeric IP to listen on ("127.0.0.1") */
    int port;                     /* TCP port; 0 = any free one (see mn_peer_port) */
    const char *key;              /* cluster key; NULL or "" = hello only, no proof */
    size_t max_frame_bytes;       /* a longer frame closes the connection (16 MiB + 4 KiB) */
    size_t queue_max_bytes;       /* per peer: bytes queued or being written (8 MiB);
                                   * a send beyond it is dropped and counted */
    int64_t handshake_timeout_ms; /* a connection not authenticated by then is closed (5000) */
    int64_t backoff_min_ms;       /* first redial delay (50) */
    int64_t backoff_max_ms;       /* redial delays double up to this (5000); each is drawn
                                   * uniformly in [d/2, d] (jitter) */
    size_t max_conns;             /* inbound connections at once; more are closed (256) */
    uint64_t seed;                /* the jitter's PRNG; 0 = from the OS */
    /* TLS (cluster.tls_cert, cluster.tls_key, cluster.tls_ca): all three PEM
     * file paths, or none (NULL or ""): plain TCP. Checked by mn_peer_new. */
    const char *tls_cert;        /* this node's certificate chain */
    const char *tls_key;         /* its private key */
    const char *tls_ca;          /* CA certificates a peer's certificate must chain to */
    mn_peer_tls_mode_t tls_mode; /* with TLS set: REQUIRE (the default), ACCEPT or PREFER */
    uint8_t minor;               /* the minor version this node announces (MN_PEER_VERSION_MINOR;
                                  * tests of rolling upgrades set another) */
} mn_peer_config_t;

void mn_peer_config_default(mn_peer_config_t *c);

typedef struct mn_peer_stats {
    uint64_t frames_sent, frames_received, bytes_sent, bytes_received;
    uint64_t dialed, accepted, handshakes; /* connections opened, authenticated */
    uint64_t redialed;                     /* outbound connections redialled at once
                                            * (mn_peer_redial: a node back alive) */
    uint64_t accepted_plain, accepted_tls; /* inbound connections started in plaintext or in
                                            * TLS (with tls_mode ACCEPT or PREFER the first
                                            * byte tells which) */
    uint64_t dropped_queue_full;           /* sends over a peer's queue bound */
    uint64_t dropped_no_addr;              /* sends to a node not in the address book */
    uint64_t dropped_unknown_channel;      /* frames for a channel nobody listens on */
    uint64_t closed_auth;                  /* wrong proof, or key on one side only */
    uint64_t closed_hello;                 /* malformed hello, other major, unexpected id */
    uint64_t closed_oversize;              /* a length over the bound (or a handshake frame
                                            * over its small bound) */
    uint64_t closed_protocol;              /* a user frame before authentication, a bad
                                            * control frame */
    uint64_t closed_timeout;               /* not authenticated within the handshake timeout */
    uint64_t closed_limit;                 /* over max_conns */
    uint64_t closed_io;                    /* read or write errors, and peers hanging up */
    uint64_t closed_tls;                   /* a failed TLS handshake (a plaintext peer, a
                                            * certificate the CA did not sign) or TLS error */
} mn_peer_stats_t;

/* fn: a frame of channel from node from_node (authenticated); buf is valid
 * during the call only. */
typedef void (*mn_peer_recv_fn)(void *arg, const char *from_node, const uint8_t *buf, size_t len);

/* Binds and listens; logs "peer: node ID listening on HOST:PORT". With TLS,
 * loads the certificate, key and CA first: MN_ERR_INVALID names the file
 * that does not load or the key that does not match the certificate. */
mn_err mn_peer_new(struct uv_loop_s *loop, const mn_peer_config_t *c, mn_peer_t **out,
                   mn_error *err);
/* Closes every connection and the listener; done (optional) runs once p is
 * freed. Queued frames are dropped. */
void mn_peer_close(mn_peer_t *p, void (*done)(void *arg), void *arg);

/* The port actually bound (the one asked, or the one picked for 0). */
int mn_peer_port(const mn_peer_t *p);

/* The address book: node is at host (numeric IP) : port; dials it now and
 * keeps a connection up. A changed address closes the old connection and
 * dials the new one. host NULL forgets the address (the node left): its
 * connection closes and its queued frames are dropped. */
mn_err mn_peer_set_addr(mn_peer_t *p, const char *node, const char *host, int port, mn_error *err);

/* Node came back (SWIM saw it dead, then alive): its outbound connection, if any, is closed
 * and dialled again at once, backoff reset. A connection that carried data into a partition
 * can stay "up" long after the heal while TCP backs its retransmissions off (chaos seed 57:
 * a node sent nothing for 25 s after the heal, its fetches stuck in such a socket, while it
 * heard the others over theirs). No address: nothing to do. */
void mn_peer_redial(mn_peer_t *p, const char *node);

/* Queues one frame of channel (1..255) for node. MN_ERR_NOT_FOUND: node has no
 * address; MN_ERR_BUSY: its queue is full; MN_ERR_INVALID: channel 0, or
 * len over the frame bound. Every refusal is counted; nothing blocks. */
mn_err mn_peer_send(mn_peer_t *p, const char *node, uint8_t channel, const uint8_t *buf,
                    size_t len);

/* Registers the receiver of a channel (1..255); NULL fn unregisters. */
void mn_peer_on(mn_peer_t *p, uint8_t channel, mn_peer_recv_fn fn, void *arg);

void mn_peer_stats(const mn_peer_t *p, mn_peer_stats_t *out);
/* Is the outbound connection to node authenticated now? */
bool mn_peer_connected(const mn_peer_t *p, const char *node);
/* Bytes queued for node (waiting or being written). */
size_t mn_peer_queued(const mn_peer_t *p, const char *node);

/* ---- the handshake, pure (peer_hello.c); exposed for tests ---- */

#define MN_PEER_NONCE_LEN 16
#define MN_PEER_MAC_LEN 32

typedef struct mn_peer_hello {
    uint8_t major, minor;
    bool keyed; /* the sender has a cluster key: a proof follows */
    uint8_t nonce[MN_PEER_NONCE_LEN];
    char node[MN_PEER_NODE_MAX + 1];
} mn_peer_hello_t;

/* A hello's payload (after the channel byte) into buf; returns its length. */
size_t mn_peer_hello_encode(const mn_peer_hello_t *h, uint8_t *buf, size_t cap);
/* MN_ERR_INVALID for anything malformed (the major is the caller's to judge). */
mn_err mn_peer_hello_decode(const uint8_t *buf, size_t len, mn_peer_hello_t *out);
/* The proof `prover` sends `verifier`: HMAC-SHA256(key, label, verifier's
 * nonce, prover's nonce, prover id, verifier id), ids length-prefixed. */
mn_err mn_peer_proof(const char *key, const mn_peer_hello_t *prover,
                     const mn_peer_hello_t *verifier, uint8_t mac[MN_PEER_MAC_LEN]);

#endif
