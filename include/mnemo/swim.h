/* SWIM membership and failure detection with Lifeguard (Das et al. 2002;
 * Dadgar et al. 2018), as a sans-IO core plus a thin libuv adapter.
 *
 * The core (mn_swim_t) never touches sockets, clocks or threads: the caller
 * feeds it received datagrams (mn_swim_on_packet) and timer ticks
 * (mn_swim_on_tick) with the current time, and it emits datagrams and
 * membership events through the callbacks given at creation. Times are
 * microseconds on any monotonic clock the caller chooses; randomness comes
 * from a seed given at creation. The core is not thread-safe: call it from
 * one thread (the adapter's loop, or the simulator).
 *
 * The adapter (mnemo/swim_uv.h, its own library mn_swim_uv) binds a UDP
 * socket on a libuv loop and drives one core. See docs/swim.md for the protocol, the wire format
 * and tuning. */
#ifndef MNEMO_SWIM_H
#define MNEMO_SWIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"

#define MN_SWIM_ID_MAX 64       /* bytes in a node id */
#define MN_SWIM_ADDR_TEXT 56    /* buffer size for mn_swim_addr_format */
#define MN_SWIM_MAX_PACKET 1400 /* default and upper bound of a datagram */
#define MN_SWIM_MIN_PACKET 512
#define MN_SWIM_META_MAX 128 /* bytes of a member's metadata (MN_WIRE_SWIM_META_MAX) */

typedef enum {
    MN_SWIM_ALIVE = 0,
    MN_SWIM_SUSPECT = 1,
    MN_SWIM_DEAD = 2,
    MN_SWIM_LEFT = 3,
} mn_swim_state_t;

/* "alive" | "suspect" | "dead" | "left". */
const char *mn_swim_state_name(mn_swim_state_t s);

/* An IPv4 or IPv6 endpoint. */
typedef struct mn_swim_addr {
    uint8_t family; /* 4 or 6; 0 = unset */
    uint16_t port;
    uint8_t ip[16]; /* IPv4 in ip[0..3], rest zero */
} mn_swim_addr_t;

/* Parses a numeric "a.b.c.d:port" or "[v6]:port". */
mn_err mn_swim_addr_parse(const char *s, mn_swim_addr_t *out);
/* Writes "a.b.c.d:port" / "[v6]:port" into buf (>= MN_SWIM_ADDR_TEXT bytes). */
void mn_swim_addr_format(const mn_swim_addr_t *a, char *buf, size_t len);
bool mn_swim_addr_equal(const mn_swim_addr_t *a, const mn_swim_addr_t *b);

/* Every timing and fan-out of the protocol. Start from a profile and adjust. */
typedef struct mn_swim_config {
    int64_t probe_interval_ms;   /* one probe per interval (times the health multiplier) */
    int64_t probe_timeout_ms;    /* wait for a direct ack before asking k helpers */
    int indirect_checks;         /* k helpers for ping-req */
    int suspicion_mult;          /* min suspicion = mult * max(1, log10 N) * probe interval */
    int suspicion_max_mult;      /* Lifeguard: suspicion starts at max = this * min */
    int suspicion_confirmations; /* Lifeguard: confirmations to reach min; -1 = mult - 2 */
    int awareness_max;           /* Lifeguard: health multiplier saturates at this */
    int64_t gossip_interval_ms;  /* send queued updates to gossip_nodes peers this often */
    int gossip_nodes;
    int gossip_transmits;          /* gossip datagrams go out only while some queued update has
                                    * been sent fewer times than this (its first fan-out; later
                                    * sends ride on pings and acks); 0 = while any is queued */
    int retransmit_mult;           /* each update is sent mult * ceil(log10(N + 1)) times */
    int64_t push_pull_interval_ms; /* full-state sync with one random member; 0 = off */
    int64_t gossip_to_dead_ms;     /* keep gossiping to a dead member this long */
    int64_t dead_reclaim_ms;       /* forget dead/left members after this long */
    int64_t join_retry_ms;         /* resend join to the seeds while no peer is known */
    int max_packet;                /* bytes per datagram, MN_SWIM_MIN_PACKET..MN_SWIM_MAX_PACKET */
    bool lifeguard;                /* false: plain SWIM with a fixed suspicion timeout */
    bool verify;                   /* check accusations before believing them: probe a member
                                    * reported suspect in our next probe slot, and take a death
                                    * notice about a member we hold alive as a suspicion */
} mn_swim_config_t;

/* Fills out with the named profile: "lan" (memberlist LAN: 1 s probe, 500 ms
 * timeout, suspicion mult 4) or "fast" (160 ms probe, 60 ms timeout, suspicion
 * mult 2, gossip datagrams for the first fan-out only). MN_ERR_INVALID otherwise. */
mn_err mn_swim_config_profile(const char *name, mn_swim_config_t *out);
/* Checks ranges; MN_ERR_INVALID with a message naming the field. */
mn_err mn_swim_config_check(const mn_swim_config_t *c, mn_error *err);

/* A member changed state in this node's view (or was seen for the first time). */
typedef struct mn_swim_event {
    const char *id; /* NUL-terminated, valid during the callback */
    mn_swim_addr_t addr;
    mn_swim_state_t state;
    mn_swim_state_t old_state; /* meaningless when is_new */
    bool is_new;
    uint64_t incarnation;
    int64_t now_us;
} mn_swim_event_t;

typedef struct mn_swim_callbacks {
    void *user;
    /* Sends one datagram; buf is only valid during the call. Required. */
    void (*send)(void *user, const mn_swim_addr_t *to, const uint8_t *buf, size_t len);
    /* Membership change. Optional. Must not call back into the core except the
     * read-only accessors (member count/get/find, stats). */
    void (*event)(void *user, const mn_swim_event_t *ev);
} mn_swim_callbacks_t;

typedef struct mn_swim_opts {
    const char *node_id; /* 1..MN_SWIM_ID_MAX bytes, printable UTF-8 */
    mn_swim_addr_t addr; /* the address peers reach this node at */
    const uint8_t *key;  /* cluster HMAC-SHA256 key; NULL/0 = unauthenticated */
    size_t key_len;
    uint64_t incarnation; /* starting incarnation (e.g. wall-clock seconds at start) */
    uint64_t seed;        /* PRNG seed: probe order, helpers, gossip targets */
    mn_swim_config_t config;
    mn_swim_callbacks_t cb;
    /* This node's metadata: 0..MN_SWIM_META_MAX bytes of printable UTF-8, opaque
     * to SWIM, carried with every entry about this node (memberlist's "meta").
     * Change it later with mn_swim_set_meta. */
    const char *meta;
    size_t meta_len;
} mn_swim_opts_t;

typedef struct mn_swim mn_swim_t;

mn_err mn_swim_new(const mn_swim_opts_t *o, int64_t now_us, mn_swim_t **out, mn_error *err);
void mn_swim_free(mn_swim_t *s);

/* Contacts the seeds (full-state sync with each) and keeps retrying every
 * join_retry_ms while no other member is alive. Seeds equal to our own
 * address are skipped. Replaces any previous seed list. */
mn_err mn_swim_join(mn_swim_t *s, int64_t now_us, const mn_swim_addr_t *seeds, size_t n);
/* Graceful leave: announces "left" and stops probing. Keep driving the core
 * until mn_swim_leave_done (or a deadline) before closing the socket. */
void mn_swim_leave(mn_swim_t *s, int64_t now_us);
bool mn_swim_leave_done(const mn_swim_t *s);

/* Feeds a received datagram. Packets that fail the HMAC or the verifier are
 * dropped and counted. */
void mn_swim_on_packet(mn_swim_t *s, int64_t now_us, const mn_swim_addr_t *from, const uint8_t *buf,
                       size_t len);
/* Runs everything due at or before now_us. */
void mn_swim_on_tick(mn_swim_t *s, int64_t now_us);
/* When on_tick must next be called (absolute, microseconds). Changes after
 * any call into the core. */
int64_t mn_swim_next_deadline(const mn_swim_t *s);

typedef struct mn_swim_member_info {
    char id[MN_SWIM_ID_MAX + 1];
    mn_swim_addr_t addr;
    mn_swim_state_t state;
    uint64_t incarnation;
    int64_t changed_us; /* core time of the last state change */
    bool self;
    char meta[MN_SWIM_META_MAX + 1]; /* NUL-terminated; "" = none known */
    size_t meta_len;
} mn_swim_member_info_t;

/* The member table, this node included. Index order is unspecified and changes
 * when the core runs; copy what you need. */
size_t mn_swim_member_count(const mn_swim_t *s);
bool mn_swim_member_get(const mn_swim_t *s, size_t i, mn_swim_member_info_t *out);
bool mn_swim_member_find(const mn_swim_t *s, const char *id, mn_swim_member_info_t *out);
/* Members (self included) currently in state st. */
size_t mn_swim_count_state(const mn_swim_t *s, mn_swim_state_t st);
const char *mn_swim_self_id(const mn_swim_t *s);
uint64_t mn_swim_incarnation(const mn_swim_t *s);
/* Replaces this node's metadata and announces it: the incarnation goes up by
 * one and the new alive entry is gossiped, so every member learns it (a
 * member takes the metadata of the newest incarnation it has seen of a node).
 * MN_ERR_INVALID for too long or non-printable metadata. */
mn_err mn_swim_set_meta(mn_swim_t *s, int64_t now_us, const char *meta, size_t len);
/* Lifeguard local health score, 0 = healthy .. awareness_max-1. */
int mn_swim_health(const mn_swim_t *s);

typedef struct mn_swim_stats {
    uint64_t packets_sent, bytes_sent, packets_recv, bytes_recv;
    uint64_t dropped_auth;        /* missing or wrong HMAC tag */
    uint64_t dropped_verify;      /* bad framing, verifier or value check failed */
    uint64_t dropped_misdirected; /* ping for another node id */
    uint64_t probes, probe_failures, indirect_probes, nacks_recv;
    uint64_t suspicions_raised;  /* this node's probe failed and it accused the target */
    uint64_t suspect_events;     /* members entering suspect in this node's view */
    uint64_t dead_events;        /* members entering dead in this node's view */
    uint64_t suspicion_rechecks; /* verify: a suspicion timer ran out without a recent failure
                                  * of our own probe of the member: probed again, not killed */
    uint64_t confirmations;      /* independent suspicion confirmations counted */
    uint64_t refutations;        /* this node refuted an accusation about itself */
    uint64_t syncs_sent, syncs_recv;
    uint64_t updates_sent, updates_recv;
    /* datagrams sent by kind: [1] ping [2] ack [3] ping-req [4] nack [5] gossip [6] sync;
     * every datagram the core sends is in exactly one of these */
    uint64_t sent_kind[8];
    /* finer split of some kinds (each also counted in sent_kind) */
    uint64_t sent_ping_again;    /* direct pings after the first one of a probe */
    uint64_t sent_ping_relay;    /* pings sent on behalf of someone's ping-req */
    uint64_t sent_ping_recheck;  /* pings rechecking an expired suspicion (verify) */
    uint64_t sent_ack_relay;     /* acks forwarded to a ping-req's sender */
    uint64_t sent_gossip_answer; /* gossip datagrams correcting a sender's stale news */
    uint64_t sent_sync_reply;    /* sync datagrams answering a peer's sync */
} mn_swim_stats_t;
void mn_swim_stats_get(const mn_swim_t *s, mn_swim_stats_t *out);

#endif
