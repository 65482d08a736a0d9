/* HNSW approximate nearest-neighbour index of one space (private to the engine).
 *
 * Nodes are the engine's slot numbers. Vectors are either read from the
 * caller's array (`ext`: *ext is the base of dim floats per slot, re-read at
 * every operation so the caller may move it while no operation runs) or
 * copied into the index. Distances are "smaller is nearer": l2 = squared
 * euclidean, cosine = 1 - dot of unit vectors, dot = -dot.
 *
 * Thread safety: any number of searches run in parallel with inserts and
 * removes (per-node seqlocks; an rwlock is taken exclusively only to grow the
 * arrays, to overwrite the vector of a reused slot, and to save). Two
 * operations on the same slot at once are the caller's error. In ext mode the
 * caller must not change the vector of a slot while any operation may read it
 * (a live or removed node): write a reused slot's vector while no search runs,
 * then call mn_hnsw_insert. */
#ifndef MN_HNSW_H
#define MN_HNSW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"
#include "mnemo/model.h"

typedef struct mn_hnsw_params {
    uint32_t dim;
    mn_metric_t metric;
    uint32_t M;               /* links per node on upper layers, 2M on layer 0 (0 = 16) */
    uint32_t ef_construction; /* 0 = 200 */
    uint32_t ef_search;       /* default ef of a search (0 = 64) */
    bool quantize;            /* int8 codes for traversal, exact re-ranking of the pool */
    uint64_t seed;            /* level draws */
} mn_hnsw_params_t;

typedef struct mn_hnsw mn_hnsw_t;

/* A search's filter: true if slot may be returned (rejected nodes are still
 * traversed). Called under the index's shared lock, from the searching thread. */
typedef bool (*mn_hnsw_accept_fn)(void *arg, uint32_t slot);

typedef struct mn_hnsw_hit {
    float dist;
    uint32_t slot;
} mn_hnsw_hit_t;

typedef struct mn_hnsw_stats {
    uint64_t visited;  /* nodes whose distance was computed */
    uint64_t rejected; /* visited nodes the filter (or a removal) excluded */
} mn_hnsw_stats_t;

/* Creates an empty index. ext: see above (NULL = the index copies vectors). */
mn_err mn_hnsw_new(const mn_hnsw_params_t *p, float *const *ext, mn_hnsw_t **out, mn_error *err);
void mn_hnsw_free(mn_hnsw_t *h);
/* Grows the arrays for slots < n at once (optional; inserts grow by 1.5x). */
mn_err mn_hnsw_reserve(mn_hnsw_t *h, uint32_t n, mn_error *err);

/* Adds slot with vector vec (dim floats; in ext mode it must be the slot's
 * vector in the caller's array). A live slot is updated (re-linked); a removed
 * one is reused. Cosine: vec must be unit length. */
mn_err mn_hnsw_insert(mn_hnsw_t *h, uint32_t slot, const float *vec, mn_error *err);
/* Removes slot (no-op if absent): marks it and repairs the lists of its
 * neighbours. The node keeps its links for traversal until the slot is reused. */
mn_err mn_hnsw_remove(mn_hnsw_t *h, uint32_t slot);
bool mn_hnsw_contains(mn_hnsw_t *h, uint32_t slot);

/* The k nearest accepted live nodes to q (best first) into out[k]; returns
 * how many. ef 0 = the index default; ef < k is raised to k. accept NULL =
 * every live node. stats may be NULL. */
size_t mn_hnsw_search(mn_hnsw_t *h, const float *q, uint32_t k, uint32_t ef, mn_hnsw_accept_fn accept,
                      void *arg, mn_hnsw_hit_t *out, mn_hnsw_stats_t *stats);
/* Share of live nodes the filter accepts, from up to `samples` random live
 * nodes (1.0 for an empty index). Lets the caller take the exact path when a
 * filter is very selective. */
double mn_hnsw_selectivity(mn_hnsw_t *h, mn_hnsw_accept_fn accept, void *arg, uint32_t samples,
                           uint64_t seed);

typedef struct mn_hnsw_info {
    mn_hnsw_params_t params; /* with defaults filled in */
    uint64_t live;         /* searchable nodes */
    uint64_t removed;      /* removed, not yet reused */
    uint32_t max_level;
    uint64_t bytes;        /* memory held by the index (own vectors and codes included) */
    uint64_t vector_bytes; /* of which float vectors the index owns */
    const char *simd;      /* kernel level in use */
} mn_hnsw_info_t;
void mn_hnsw_get_info(mn_hnsw_t *h, mn_hnsw_info_t *out);

/* ---- persistence (hnsw_persist.c) ---- */
/* A label per live node saved with the graph (the engine: the memory id and
 * a checksum of the vector the node was inserted with), so a loader can map
 * nodes to new slot numbers and tell which no longer match. */
#define MN_HNSW_LABEL_LEN 20
typedef void (*mn_hnsw_label_fn)(void *arg, uint32_t slot, uint8_t label[MN_HNSW_LABEL_LEN]);
/* Maps a saved node to its slot now, or UINT32_MAX to drop it. Files of
 * format 1 have 16-byte labels: the last 4 bytes read as zero. */
typedef uint32_t (*mn_hnsw_remap_fn)(void *arg, uint32_t saved_slot,
                                     const uint8_t label[MN_HNSW_LABEL_LEN]);

/* Writes the graph (own vectors and codes included) to path atomically (temp
 * file, fsync, rename, fsync of the directory), stamped with lsn (the WAL
 * position it reflects, for the caller) and checksummed with CRC32C. label
 * may be NULL (zero labels). Waits for running inserts and removes and holds
 * new ones off until done; searches run alongside. */
mn_err mn_hnsw_save(mn_hnsw_t *h, const char *path, uint64_t lsn, mn_hnsw_label_fn label, void *arg,
                    mn_error *err);
/* Reads a saved graph. MN_ERR_NOT_FOUND if path is absent; MN_ERR_CORRUPT if
 * a checksum or a structural check fails, or its dim/metric/M/quantize differ
 * from p's (the caller then rebuilds). remap NULL keeps slot numbers (and
 * removed nodes). With remap, only the live nodes it maps are kept (a second
 * node mapped to the same slot is dropped); a kept node that linked to a
 * dropped one has the lost links replaced from the dropped node's links, as a
 * removal repairs them (hnsw.c), which reads the vectors: in ext mode *ext
 * must hold every kept slot's vector. ext as in new. *dropped (may be NULL)
 * counts the saved live nodes not kept. */
mn_err mn_hnsw_load(const char *path, const mn_hnsw_params_t *p, float *const *ext,
                    mn_hnsw_remap_fn remap, void *arg, uint64_t *lsn, mn_hnsw_t **out,
                    uint64_t *dropped, mn_error *err);

#endif
