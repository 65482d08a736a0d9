/* Private state of the SWIM core, shared by the files of swim/. */
#ifndef MN_SWIM_INTERNAL_H
#define MN_SWIM_INTERNAL_H

#include <openssl/evp.h>

#include "mnemo/assert.h"
#include "mnemo/swim.h"
#include "mnemo/util.h"
#include "mnemo/wire_swim.h"

#define SWIM_US_PER_MS 1000
#define SWIM_NEVER INT64_MAX
#define SWIM_MAX_CONFIRM 16  /* Lifeguard confirmations remembered per suspicion */
#define SWIM_MAX_INDIRECT 64 /* ping-reqs served at once */
#define SWIM_MAX_HELPERS 16  /* ping-reqs sent per probe */
#define SWIM_QUEUE_MAX 1024  /* queued broadcasts */
#define SWIM_SYNC_SEEN 32    /* recent sync exchanges answered */
#define SWIM_VERIFY_MAX 16   /* suspects waiting for our own probe */
#define SWIM_MAX_ANSWER 4    /* corrections sent back for one received packet */
#define SWIM_RECHECK_PINGS 3 /* pings of an expired, unverified suspect before it is dead */
#define SWIM_HDR_LEN 8
#define SWIM_TAG_LEN 32
#define SWIM_MAGIC0 'M'
#define SWIM_MAGIC1 'S'
#define SWIM_VERSION 1
#define SWIM_HDR_FLAG_AUTH 1

_Static_assert(MN_SWIM_META_MAX == MN_WIRE_SWIM_META_MAX && MN_SWIM_META_MAX <= 255,
               "metadata fits the wire and a uint8_t length");

typedef struct swim_member {
    char id[MN_SWIM_ID_MAX + 1];
    uint8_t id_len;
    uint32_t hash;
    mn_swim_addr_t addr;
    uint64_t inc;
    uint8_t state; /* mn_swim_state_t */
    int64_t changed_us;
    /* suspicion (state == SUSPECT) */
    int64_t susp_start_us, susp_deadline_us, susp_min_us, susp_max_us;
    int susp_k;                               /* confirmations wanted */
    int susp_n;                               /* confirmations counted */
    uint32_t susp_from[SWIM_MAX_CONFIRM + 1]; /* accuser hashes; [0] = originator */
    int susp_nfrom;
    bool susp_verified;        /* our own probe failed during this suspicion ... */
    int64_t susp_failed_at_us; /* ... last at this time */
    bool susp_expired;   /* verify: the timer ran out without a recent failure: being rechecked */
    uint8_t check_pings; /* recheck pings sent (answered ones reset it) */
    uint32_t check_seq;  /* the last one's sequence number */
    char meta[MN_SWIM_META_MAX]; /* from the newest incarnation that carried any */
    uint8_t meta_len;
} swim_member;

/* One queued membership update (TransmitLimitedQueue of memberlist). */
typedef struct swim_bcast {
    char id[MN_SWIM_ID_MAX + 1];
    uint8_t id_len;
    char from[MN_SWIM_ID_MAX + 1];
    uint8_t from_len;
    mn_swim_addr_t addr;
    uint64_t inc;
    uint8_t state;
    char meta[MN_SWIM_META_MAX];
    uint8_t meta_len;
    int transmits;
    uint64_t order; /* insertion counter: newer first among equal transmits */
} swim_bcast;

/* A ping-req we serve: we ping target for requester and forward the answer. */
typedef struct swim_indirect {
    bool used;
    bool want_nack;
    uint32_t our_seq, their_seq;
    mn_swim_addr_t reply_to;
    int64_t deadline_us;
} swim_indirect;

enum { PROBE_IDLE = 0, PROBE_DIRECT, PROBE_RETRY, PROBE_INDIRECT };

struct mn_swim {
    mn_swim_config_t cfg;
    mn_swim_callbacks_t cb;
    mn_prng_t prng;
    swim_member *self;
    bool leaving;

    /* member table: members[] in probe order (shuffled per round); tab[] an
     * open-addressing index by id hash (linear probing, backward-shift delete). */
    swim_member **members;
    size_t n, cap;
    swim_member **tab;
    size_t tab_cap;
    size_t probe_idx;
    size_t n_state[4];

    /* members in SUSPECT with a running timer */
    swim_member **suspects;
    size_t n_suspects, cap_suspects;

    /* broadcast queue */
    swim_bcast *queue;
    size_t n_queue;
    uint64_t queue_order;

    /* the current probe */
    int probe_phase;
    char probe_id[MN_SWIM_ID_MAX + 1];
    uint64_t probe_inc; /* the target's incarnation when the probe began */
    bool probe_verify;  /* a check of someone else's accusation: direct pings only */
    uint32_t probe_seq;
    int64_t probe_start_us, probe_deadline_us;
    int probe_expected_nacks, probe_nacks;
    int64_t next_probe_at_us;
    uint32_t next_seq;
    int awareness;

    swim_indirect indirect[SWIM_MAX_INDIRECT];
    size_t n_indirect; /* slots in use */

    /* suspects heard of from others, to probe ourselves next (FIFO ring) */
    char verify[SWIM_VERIFY_MAX][MN_SWIM_ID_MAX + 1];
    size_t verify_head, n_verify;
    /* members the packet being handled had stale news about (ourselves, or a
     * member that left): our entries for them go back to its sender */
    swim_member *answer[SWIM_MAX_ANSWER];
    size_t n_answer;

    int64_t next_gossip_at_us, next_sync_at_us, next_reclaim_at_us;

    /* join */
    mn_swim_addr_t *seeds;
    size_t n_seeds;
    int64_t next_join_at_us;

    /* syncs started with unknown or dead senders: (src hash, time) */
    uint32_t contact_hash[SWIM_SYNC_SEEN];
    int64_t contact_at_us[SWIM_SYNC_SEEN];
    int64_t next_behind_sync_us; /* rate limit of syncs because a peer knows more members */

    /* sync replies already sent: (src hash, seq) */
    uint64_t sync_seen[SWIM_SYNC_SEEN];
    size_t sync_seen_pos;

    /* codec */
    mn_wire_swim_enc_t *enc;
    EVP_MAC_CTX *mac;
    bool auth;
    uint64_t rx_body[(MN_SWIM_MAX_PACKET + 7) / 8];
    uint8_t tx[MN_SWIM_MAX_PACKET];
    mn_wire_swim_entry_t scratch[MN_WIRE_SWIM_MAX_ENTRIES];
    mn_wire_swim_entry_t rx_entries[MN_WIRE_SWIM_MAX_ENTRIES];
    swim_member **pick; /* scratch for random choices, cap entries */

    mn_swim_stats_t stats;
};

/* swim_members.c: the member table and the state machine of one member. */
/* Remember to send m's entry back to the sender of the packet being handled. */
void mn__swim_answer(mn_swim_t *s, swim_member *m);
uint32_t mn__swim_hash(const char *id, size_t len);
swim_member *mn__swim_find(const mn_swim_t *s, const char *id, size_t len);
swim_member *mn__swim_add(mn_swim_t *s, const char *id, size_t len, int64_t now_us);
void mn__swim_remove(mn_swim_t *s, swim_member *m);
void mn__swim_set_state(mn_swim_t *s, swim_member *m, uint8_t st, int64_t now_us);
size_t mn__swim_live_count(const mn_swim_t *s); /* alive + suspect, self included */
void mn__swim_reclaim(mn_swim_t *s, int64_t now_us);
/* Applies one membership update (from gossip or, with from_sync, a state row). */
void mn__swim_apply(mn_swim_t *s, const mn_wire_swim_entry_t *e, const char *sender,
                    size_t sender_len, bool from_sync, int64_t now_us);
/* Our probe of m, begun when m was at incarnation inc, failed: accuse it. */
void mn__swim_suspect_local(mn_swim_t *s, swim_member *m, uint64_t inc, int64_t now_us);
void mn__swim_refute(mn_swim_t *s, uint64_t accused_inc, int64_t now_us);
void mn__swim_check_suspicions(mn_swim_t *s, int64_t now_us);
int64_t mn__swim_suspicion_deadline(const mn_swim_t *s);
void mn__swim_awareness(mn_swim_t *s, int delta);
/* Queue m for a verification probe (verify); pop the next still-suspect one. */
void mn__swim_verify_push(mn_swim_t *s, const swim_member *m);
swim_member *mn__swim_verify_pop(mn_swim_t *s);
int64_t mn__swim_scaled(const mn_swim_t *s, int64_t base_us);

/* swim_queue.c: broadcasts */
void mn__swim_queue_member(mn_swim_t *s, const swim_member *m, const char *from, size_t from_len);
/* Fills up to cap entries into out (fewest transmits first); returns count. */
size_t mn__swim_queue_peek(mn_swim_t *s, mn_wire_swim_entry_t *out, size_t cap);
/* The first n peeked entries were sent: count a transmit, drop exhausted ones. */
void mn__swim_queue_sent(mn_swim_t *s, size_t n);
/* Some queued update has been sent fewer than `below` times. */
bool mn__swim_queue_fresh(const mn_swim_t *s, int below);
bool mn__swim_queue_has(const mn_swim_t *s, const char *id, size_t len, uint8_t state);
void mn__swim_entry_from_member(const swim_member *m, mn_wire_swim_entry_t *e);

/* swim_packet.c: framing, HMAC, send and receive */
mn_err mn__swim_mac_init(mn_swim_t *s, const uint8_t *key, size_t len);
void mn__swim_mac_free(mn_swim_t *s);
/* Encodes msg (piggybacking queued updates in the room left, after any
 * preset updates), frames, signs and sends it. Returns state rows sent. */
size_t mn__swim_send(mn_swim_t *s, const mn_swim_addr_t *to, mn_wire_swim_msg_t *msg,
                     bool piggyback);
/* Checks framing and tag, decodes into s->rx_entries. */
mn_err mn__swim_receive(mn_swim_t *s, const uint8_t *buf, size_t len, mn_wire_swim_msg_t *msg);

/* swim_core.c */
/* Pings suspect m (recheck of an expired suspicion) and sets its deadline one
 * probe timeout ahead. */
void mn__swim_recheck_ping(mn_swim_t *s, swim_member *m, int64_t now_us);

#endif
