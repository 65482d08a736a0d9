/* The gossip core's private types, shared by its files: the record (record.c),
 * the sparse Merkle tree (tree.c), spaces and their records (space.c), the
 * core and its rounds (core.c), and the exchange of frames (exchange.c).
 * Naming: mn__gossip_* (docs/architecture.md, "Names"). */
#ifndef MNEMO_GOSSIP_INTERNAL_H
#define MNEMO_GOSSIP_INTERNAL_H

#include "mnemo/assert.h"
#include "mnemo/gossip.h"
#include "mnemo/wire_gossip.h"
#include "mnemo/wire_label.h"

/* ---- record.c ---- */
int mn__gossip_version_cmp(const mn_gossip_record_t *a, const mn_gossip_record_t *b);

/* ---- tree.c ---- */
typedef struct mn__gossip_node {
    uint32_t addr; /* level << 16 | index; UINT32_MAX = empty slot */
    uint32_t count;
    uint8_t digest[MN_GOSSIP_DIGEST_LEN];
} mn__gossip_node;

typedef struct mn__gossip_tree {
    mn__gossip_node *nodes; /* open addressing, cap a power of two */
    size_t n, cap;
} mn__gossip_tree;

void mn__gossip_tree_init(mn__gossip_tree *t);
void mn__gossip_tree_free(mn__gossip_tree *t);
/* Room for `more` new nodes (at a load of at most 3/4): after it, that
 * many new nodes cannot fail to fit. */
mn_err mn__gossip_tree_reserve(mn__gossip_tree *t, size_t more);
/* An entry in bucket changes from old_digest to new_digest (NULL: absent
 * before / after). MN_ERR_NOMEM leaves the tree unchanged. */
mn_err mn__gossip_tree_apply(mn__gossip_tree *t, uint64_t bucket, const uint8_t *old_digest,
                             const uint8_t *new_digest);
/* A node's digest and count (zero for an empty node). */
void mn__gossip_tree_node(const mn__gossip_tree *t, int level, uint32_t index,
                          uint8_t digest[MN_GOSSIP_DIGEST_LEN], uint32_t *count);
bool mn__gossip_tree_equal(const mn__gossip_tree *a, const mn__gossip_tree *b);
/* The index at level of the node holding bucket. */
uint32_t mn__gossip_index_at(uint64_t bucket, int level);

/* ---- space.c ---- */
typedef struct mn__gossip_rec {
    uint64_t bucket;
    uint8_t hash[MN_GOSSIP_DIGEST_LEN]; /* mn_gossip_record_hash(&r) */
    mn_gossip_record_t r;               /* arrays point into ids */
    mn_id_t ids[];                      /* support, then forgotten_eps, then the payload */
} mn__gossip_rec;

typedef struct mn__gossip_space {
    char name[MN_GOSSIP_SPACE_MAX + 1];
    size_t name_len;
    uint64_t bucket;
    mn__gossip_tree tree;
    mn__gossip_rec **recs; /* sorted by (bucket, id) */
    size_t n, cap;
    bool in_dir;                              /* n > 0: it has a directory entry */
    uint8_t dir_digest[MN_GOSSIP_DIGEST_LEN]; /* that entry's digest */
} mn__gossip_space;

typedef struct mn__gossip_dir {
    mn__gossip_space **spaces; /* every known space, sorted by (bucket, name) */
    size_t n, cap;
    mn__gossip_tree tree; /* over the spaces with records */
} mn__gossip_dir;

uint64_t mn__gossip_id_bucket(const mn_id_t *id);
uint64_t mn__gossip_name_bucket(const char *name, size_t len);
void mn__gossip_dir_free(mn__gossip_dir *d);
mn__gossip_space *mn__gossip_space_find(const mn__gossip_dir *d, const char *name, size_t len);
/* Finds or creates (NULL on allocation failure). */
mn__gossip_space *mn__gossip_space_get(mn__gossip_dir *d, const char *name, size_t len);
mn__gossip_rec *mn__gossip_rec_find(const mn__gossip_space *sp, const mn_id_t *id);
/* Merges a checked record into the space; *changed says whether its state
 * moved. MN_ERR_NOMEM leaves the space as it was. */
mn_err mn__gossip_space_merge(mn__gossip_dir *d, mn__gossip_space *sp, const mn_gossip_record_t *in,
                              bool *changed, const mn__gossip_rec **out);
/* Removes records[i] (tombstone collection). */
void mn__gossip_space_remove(mn__gossip_dir *d, mn__gossip_space *sp, size_t i);
/* [*first, *end) of the records (or spaces, for the directory) in a node. */
void mn__gossip_rec_range(const mn__gossip_space *sp, int level, uint32_t index, size_t *first,
                          size_t *end);
void mn__gossip_dir_range(const mn__gossip_dir *d, int level, uint32_t index, size_t *first,
                          size_t *end);
/* Rebuilds the directory's tree (and with deep, every space's) from its
 * entries and compares (O(n)). */
bool mn__gossip_dir_verify(const mn__gossip_dir *d, bool deep);
/* The same for one space. */
bool mn__gossip_space_verify(const mn__gossip_space *sp);
/* Is the space's directory entry (in_dir, its digest) the one its tree gives? */
bool mn__gossip_space_entry_ok(const mn__gossip_space *sp);
/* Rebuilds what is derived in a space from its records (their hashes, buckets and order,
 * the tree), then the directory (mn__gossip_dir_repair). MN_ERR_NOMEM leaves a tree as it
 * was. */
mn_err mn__gossip_space_repair(mn__gossip_dir *d, mn__gossip_space *sp);
/* Rebuilds the directory's entries (buckets, digests, order) and its tree from the spaces. */
mn_err mn__gossip_dir_repair(mn__gossip_dir *d);

/* ---- core.c ---- */
struct mn_gossip {
    char id[MN_GOSSIP_NODE_ID_MAX + 1];
    size_t id_len;
    mn_gossip_config_t cfg;
    mn_gossip_cb_t cb;
    mn_prng_t prng;
    char **peers;
    size_t n_peers;
    int64_t next_round_us;
    int64_t gc_before_ms; /* tombstones forgotten before this are refused */
    size_t check_next;    /* the space mn_gossip_check_next checks next */
    mn__gossip_dir dir;
    mn_gossip_stats_t stats;
    mn_wire_gossip_enc_t *enc;
    mn_wire_gossip_storage_t in; /* what a received frame decodes into */
    /* scratch for the frames we build (a received frame's pointers stay valid
     * while its replies are built) */
    mn_wire_gossip_node_t *out_nodes;  /* MN_WIRE_GOSSIP_MAX_NODES */
    mn_wire_gossip_record_t *out_recs; /* batch_max */
    uint8_t *out_keys, *out_digests;   /* 16 * MN_WIRE_GOSSIP_MAX_KEYS each */
    const char **out_names;            /* MN_WIRE_GOSSIP_MAX_KEYS */
    size_t *out_name_lens;
    uint8_t *rx; /* an 8-byte aligned copy of a misaligned frame */
    size_t rx_cap;
};

/* Encodes f (from = us) and sends it to peer `to`. */
void mn__gossip_send(mn_gossip_t *g, const char *to, size_t to_len, mn_wire_gossip_frame_t *f);
/* Starts an exchange: our directory root (of the spaces shared with peer) to peer. */
void mn__gossip_send_root(mn_gossip_t *g, const char *peer, size_t peer_len);
/* Is space (len bytes) exchanged with peer (peer_len bytes)? (cb.shares; NULL: yes.) */
bool mn__gossip_shares(const mn_gossip_t *g, const char *peer, size_t peer_len, const char *space,
                       size_t space_len);
/* A node of the directory's tree as peer sees it: over the spaces shared with it. */
void mn__gossip_dir_node_for(const mn_gossip_t *g, const char *peer, size_t peer_len, int level,
                             uint32_t index, uint8_t digest[MN_GOSSIP_DIGEST_LEN], uint32_t *count);

/* ---- exchange.c ---- */
void mn__gossip_handle(mn_gossip_t *g, const mn_wire_gossip_frame_t *f);

#endif
