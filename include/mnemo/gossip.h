/* gossip: Merkle-tree anti-entropy of consolidated (semantic) memories
 * between the nodes of a cluster, as a sans-IO core: no sockets, clocks,
 * threads or engine. The caller feeds it (now, frame) and (now), tells it
 * which peers exist, and hands it local changes; frames leave through a
 * callback, and so does every record a merge changed.
 *
 * Each space has a 16-ary Merkle tree of depth 3 over its records (semantic
 * memories and their tombstones), and the spaces themselves sit in one more
 * tree of the same shape (the directory), so two nodes that agree exchange
 * one 16-byte root per round whatever their number of spaces. A round sends
 * the directory root to `fanout` random peers; where roots differ the two
 * sides descend only the differing branches, list the entries of small
 * subtrees, and push and pull the differing records in bounded batches.
 * Records merge by a rule that is commutative, associative and idempotent
 * (gossip_record.c), so any order of deliveries leaves the same state and
 * the same roots. docs/gossip.md has the design, the size model and the
 * figures; simnet/ drives the core in tests. */
#ifndef MNEMO_GOSSIP_H
#define MNEMO_GOSSIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"
#include "mnemo/util.h"

#define MN_GOSSIP_DIGEST_LEN 16           /* bytes of every digest: SHA-256 truncated to 128 bits */
#define MN_GOSSIP_TREE_FANOUT 16          /* children of an inner node */
#define MN_GOSSIP_TREE_DEPTH 3            /* levels below the root: 16^3 = 4096 leaves */
#define MN_GOSSIP_SUPPORT_MAX 64          /* supporting episode ids a record carries (the lowest) */
#define MN_GOSSIP_FORGOTTEN_MAX 64        /* forgotten episode ids a record carries (the lowest) */
#define MN_GOSSIP_NODE_ID_MAX 64          /* bytes of a node id */
#define MN_GOSSIP_SPACE_MAX 64            /* bytes of a space name */
#define MN_GOSSIP_PAYLOAD_MAX (64u << 10) /* bytes of a record's payload */
#define MN_GOSSIP_PUSH_BYTES (1u << 20)   /* payload bytes that end a push frame */

/* A semantic memory as gossip carries it. Its state is a join of three
 * parts: the version (the winner of a total order, below), two grow-only
 * sets of episode ids, and a tombstone that absorbs everything.
 *
 *  - version: (epoch, hlc, support_n, confidence, retired, digest,
 *    payload_len), compared in that order, the larger wins; the payload
 *    (the engine's bytes of the semantic memory: text, vector, fields, so a
 *    node that holds no episodes can still answer from it) belongs to the
 *    version and travels with it. epoch is the space's primary term that
 *    derived it and hlc its clock then: one primary per epoch makes (epoch,
 *    hlc) a causal order (a re-derivation after a forget has less support and
 *    must still win); the rest orders versions with equal stamps.
 *  - support: the lowest MN_GOSSIP_SUPPORT_MAX ids of the union of every
 *    version's supporting episodes (sorted, unique); forgotten_eps likewise
 *    for episodes forgotten since. The effective support is support minus
 *    forgotten_eps, on every node, even before the re-derived version comes.
 *  - forgotten_hlc != 0: a client forgot the memory. Tombstones win: the
 *    record keeps only its id and the largest forgotten_hlc, and no merge
 *    brings it back. Retirement by consolidation (retired = true) is only a
 *    version: a later version revives the memory, as the engine does. */
typedef struct mn_gossip_record {
    mn_id_t id; /* the lowest supporting episode's id (the engine's key) */
    /* of the memory's content: with a payload, its SHA-256 truncated (checked),
     * so equal digests mean equal payloads; without one, the engine's */
    uint8_t digest[MN_GOSSIP_DIGEST_LEN];
    float confidence; /* [0, 1], +0.0 not -0.0 */
    uint64_t epoch;
    mn_hlc_ts_t hlc;
    uint32_t support_n; /* episodes the version was derived from (may exceed the list) */
    bool retired;
    mn_hlc_ts_t forgotten_hlc;
    const mn_id_t *support;
    size_t n_support;
    const mn_id_t *forgotten_eps;
    size_t n_forgotten_eps;
    const uint8_t *payload; /* NULL when payload_len is 0 */
    size_t payload_len;     /* 0..MN_GOSSIP_PAYLOAD_MAX */
} mn_gossip_record_t;

/* The digest a payload must carry: SHA-256 of the bytes, truncated. */
void mn_gossip_payload_digest(const uint8_t *payload, size_t len,
                              uint8_t out[MN_GOSSIP_DIGEST_LEN]);

/* MN_ERR_INVALID (naming the field) unless r is a well-formed record: ids
 * sorted and unique within bounds, confidence in range, a payload within
 * bounds whose digest matches, a tombstone with no version fields, sets or
 * payload, hlc != 0 for a live version. */
mn_err mn_gossip_record_check(const mn_gossip_record_t *r, mn_error *err);

/* The record's Merkle digest: SHA-256 (truncated) of its canonical bytes, so
 * equal states give equal digests on every node. */
void mn_gossip_record_hash(const mn_gossip_record_t *r, uint8_t out[MN_GOSSIP_DIGEST_LEN]);

/* out = merge(a, b) (same id, both checked). out's id arrays point to
 * support_buf / forgotten_buf (MN_GOSSIP_*_MAX entries each, not aliasing
 * a's or b's arrays). */
void mn_gossip_record_merge(const mn_gossip_record_t *a, const mn_gossip_record_t *b,
                            mn_gossip_record_t *out, mn_id_t *support_buf, mn_id_t *forgotten_buf);

/* Byte-for-byte equality of two states. */
bool mn_gossip_record_equal(const mn_gossip_record_t *a, const mn_gossip_record_t *b);

typedef struct mn_gossip_config {
    int64_t interval_ms;   /* a round this often, +-10 % jitter (1000) */
    int fanout;            /* peers per round, 1..16 (3) */
    uint32_t batch_max;    /* records in one push, ids in one pull, 1..1024 (64); a push also
                            * ends past MN_GOSSIP_PUSH_BYTES of payloads */
    uint32_t summary_max;  /* a differing subtree this small is listed, not descended, 1..1024
                            * (32) */
    uint32_t spaces_max;   /* differing spaces descended per exchange, 1..1024 (16) */
    int64_t gc_horizon_ms; /* tombstones older than this are collected; must outlast any partition
                            * you tolerate, >= 1 h (7 days) */
} mn_gossip_config_t;

void mn_gossip_config_default(mn_gossip_config_t *c);
mn_err mn_gossip_config_check(const mn_gossip_config_t *c, mn_error *err);

typedef struct mn_gossip_cb {
    void *user;
    /* One frame for peer `to` (a node id given to mn_gossip_set_peers). The
     * transport adds authentication; the frame carries a CRC32C. */
    void (*send)(void *user, const char *to, const uint8_t *frame, size_t len);
    /* A merge from a peer changed a record (rec: the new state, valid during
     * the call). NULL = not told. */
    void (*changed)(void *user, const char *space, const mn_gossip_record_t *rec);
    /* May a record of space with this id, received from a peer, join our copy? NULL =
     * every one. The server refuses the records of a space the cluster dropped, and those
     * older than the space's current incarnation (docs/gossip.md, "Dropped spaces"). */
    bool (*admit)(void *user, const char *space, const mn_id_t *id);
    /* Per-space peer sets: is space exchanged with peer? NULL = every space with every
     * peer. When set, an exchange with a peer sees only the spaces shared with it: the
     * directory root and summaries are taken over those spaces alone (so two nodes that
     * agree on them show equal roots, whatever else each holds), and frames about another
     * space from that peer are ignored (its pushed records counted as refused). Both sides
     * must answer alike for a space to converge (the server: both hold it, from the
     * placement table; docs/gossip.md, "In the server"). */
    bool (*shares)(void *user, const char *peer, const char *space);
} mn_gossip_cb_t;

typedef struct mn_gossip_stats {
    uint64_t rounds; /* rounds started */
    uint64_t frames_sent, bytes_sent;
    uint64_t frames_received, bytes_received;
    uint64_t frames_rejected; /* frames that failed to decode or came from our own id, and
                               * received records that failed mn_gossip_record_check */
    uint64_t entries_pushed;  /* records sent */
    uint64_t entries_pulled;  /* records received */
    uint64_t entries_changed; /* received records that changed our state */
    uint64_t peers_differing; /* exchanges that found a differing directory root */
    uint64_t tombstones_collected;
    uint64_t entries_refused; /* received records the admit callback refused */
    uint64_t entries_dropped; /* records removed by mn_gossip_drop */
    uint64_t trees_checked;   /* spaces mn_gossip_check_next compared with a rebuild */
    uint64_t trees_repaired;  /* ... found different and rebuilt (the directory counts as one) */
} mn_gossip_stats_t;

typedef struct mn_gossip mn_gossip_t;

/* A core for node node_id; seed drives peer choice and jitter. The first
 * round is due within one interval of now_us (a random phase). */
mn_err mn_gossip_new(const char *node_id, const mn_gossip_config_t *cfg, const mn_gossip_cb_t *cb,
                     uint64_t seed, int64_t now_us, mn_gossip_t **out, mn_error *err);
void mn_gossip_free(mn_gossip_t *g);

/* The peers rounds choose from (copied; our own id is skipped). */
mn_err mn_gossip_set_peers(mn_gossip_t *g, const char *const *ids, size_t n, mn_error *err);

/* A local change (the engine consolidated, retired or forgot): merged into
 * the space's copy; the space is created at its first record. */
mn_err mn_gossip_put(mn_gossip_t *g, const char *space, const mn_gossip_record_t *rec,
                     mn_error *err);

/* A received frame. Bad frames are counted and dropped. */
void mn_gossip_on_message(mn_gossip_t *g, int64_t now_us, const uint8_t *buf, size_t len);
/* Runs a round when one is due. */
void mn_gossip_on_tick(mn_gossip_t *g, int64_t now_us);
int64_t mn_gossip_next_deadline(const mn_gossip_t *g);

/* Collects tombstones forgotten before wall_ms - gc_horizon_ms, and refuses
 * such old tombstones from then on (they would be collected at once). */
void mn_gossip_gc(mn_gossip_t *g, int64_t wall_ms);

/* Removes space's records whose id was made before before_ms (INT64_MAX: all of them),
 * as if never held: no tombstone is left, so the host must also refuse them from then on
 * (the admit callback). Returns how many went. */
size_t mn_gossip_drop(mn_gossip_t *g, const char *space, int64_t before_ms);

/* A space's root and record count (space NULL or "": the directory's, count
 * = spaces). An unknown space has a zero root and count 0. */
void mn_gossip_root(const mn_gossip_t *g, const char *space, uint8_t root[MN_GOSSIP_DIGEST_LEN],
                    uint64_t *count);
/* The current state of one record; its arrays stay valid until the space
 * changes. MN_ERR_NOT_FOUND when absent. */
mn_err mn_gossip_get(const mn_gossip_t *g, const char *space, const mn_id_t *id,
                     mn_gossip_record_t *out);
size_t mn_gossip_space_count(const mn_gossip_t *g);
void mn_gossip_stats(const mn_gossip_t *g, mn_gossip_stats_t *out);

/* Debug check (O(n)): every tree equals a from-scratch rebuild of it.
 * Always compiled; mn_assert_debug calls it after every change. */
bool mn_gossip_verify(const mn_gossip_t *g);

/* The always-on check, a little at a time (docs/gossip.md, "The Merkle trees"): compares
 * the next space, round-robin, with a rebuild from its records (their hashes, order and
 * tree, and its directory entry), and once per round of all spaces the directory's tree
 * (when that differs, every space is checked before it is rebuilt). A part that differs
 * (memory corruption, or a bug) is rebuilt from the records, counted in trees_repaired, and
 * named in bad (the space, or "" for the directory): false. True when all checked out.
 * O(records of one space), but for the directory's check. */
bool mn_gossip_check_next(mn_gossip_t *g, char bad[MN_GOSSIP_SPACE_MAX + 1]);

#endif
