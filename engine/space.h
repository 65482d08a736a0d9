/* The in-memory state of a space (space.c): its slots, vectors, id table and
 * indexes. Callers hold sp->lock (the write lock to change it); a space lives
 * while it has references (mn__space_ref / mn__space_unref). */
#ifndef MN_ENGINE_SPACE_H
#define MN_ENGINE_SPACE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "mnemo/engine.h"
#include "slot.h"
#include "text/keyword.h"

typedef struct mn__space {
    mn_space_def_t def;
    uint32_t sid;
    uint64_t epoch;      /* what new entries carry (replica.c: set with the role) */
    uint64_t last_lsn;   /* committed; written only by the commit thread */
    uint64_t last_epoch; /* the epoch of the entry at last_lsn (commit thread, write lock) */
    atomic_int role;     /* mn_space_role_t; changed on the commit thread (replica.c) */
    /* 0, or the monotonic instant (ns) from which a PRIMARY takes no write: its
     * replication core's lease lapses then (mn_engine_space_set_lease) */
    _Atomic int64_t lease_until_ns;
    uint64_t assigned_lsn; /* handed out in the current group (commit thread only) */
    uint64_t first_lsn;    /* oldest WAL entry kept (sweeper only after load) */
    atomic_int refs;       /* > 0 while the space lives; the last unref frees it */
    atomic_bool dropped;
    /* a rederive note (repair.c) may exist: set at load when one does and by each note,
     * never cleared while the space lives (so a space without notes reads none) */
    atomic_bool repair_noted;
    bool drop_staged; /* a drop is in the commit group being built (commit thread only) */

    pthread_rwlock_t lock; /* guards everything below */
    mn__slot *slots;
    float *vecs; /* dim floats per slot; cosine spaces hold unit vectors */
    uint32_t n_slots;
    uint32_t cap;
    uint32_t *free_slots;
    uint32_t n_free;
    uint32_t free_cap;
    /* id -> slot+1 open-addressing table (0 = empty, UINT32_MAX = deleted) */
    uint32_t *idx;
    uint32_t idx_cap;
    uint32_t idx_used;
    /* counts of live slots; none ever goes below 0 */
    uint64_t n_live, n_episodic, n_semantic, n_suppressed, n_tombstones;
    uint64_t n_superseded;  /* live slots of versions a correction replaced (counted in n_live) */
    struct mn_kw_index *kw; /* BM25 over content, keyed by slot */
    struct mn__session_ix *sessions; /* slots by context.session (temporal links) */
    /* HNSW index (space_index.c): NULL until the space reaches engine.hnsw_threshold; set
     * and replaced by the commit thread under the write lock, used by recall under the read lock */
    struct mn__space_index *ix;
    atomic_bool ix_queued;          /* waiting for the index thread (indexer.c) */
    atomic_bool ix_exists;          /* ix was set (it is never unset while the space lives) */
    pthread_mutex_t consolidate_mu; /* one consolidation of a space at a time */
} mn__space;

/* A new space with one reference (NULL when out of memory). */
mn__space *mn__space_new(const mn_space_def_t *def, uint32_t sid);
/* Frees a space nobody references (mn__space_unref does it at the last one). */
void mn__space_free(mn__space *sp);
void mn__space_ref(mn__space *sp);
/* Drops a reference; the last one frees the space. NULL is ignored. */
void mn__space_unref(mn__space *sp);
/* Lookup (caller holds lock). Returns slot index or UINT32_MAX. */
uint32_t mn__space_find(const mn__space *sp, const mn_id_t *id);
/* A memory's fields as the keyword index reads them, as an mn_kw_text_t's
 * initialisers: mn_kw_text_t t = {MN__KW_TEXT_OF(m)}. */
#define MN__KW_TEXT_OF(m)                                                                          \
    .content = (m)->content, .content_len = (m)->content_len, .tags = (m)->tags,                   \
    .n_tags = (m)->n_tags, .who = (m)->who, .n_who = (m)->n_who, .where = (m)->where

/* Inserts a live memory (caller holds the write lock). Takes the filter fields
 * and copies the vector (normalising it for cosine). */
mn_err mn__space_insert(mn__space *sp, const mn_memory_t *m);
/* The same with the memory's stored term list (keyword_store.c), so the keyword
 * index needs no tokenising (kw NULL: tokenise m->content). */
mn_err mn__space_insert_doc(mn__space *sp, const mn_memory_t *m, const uint8_t *kw, size_t kw_len);
/* Removes the slot of id if present (write lock). Returns true if it was there. */
bool mn__space_remove(mn__space *sp, const mn_id_t *id);
/* Replaces a live memory's indexed state (vector, keywords, filter fields),
 * keeping its associations; inserts it if absent (write lock). kw: its stored term
 * list (NULL: tokenise m->content). */
mn_err mn__space_replace_doc(mn__space *sp, const mn_memory_t *m, const uint8_t *kw, size_t kw_len);
void mn__space_set_suppressed(mn__space *sp, uint32_t slot, bool on);
/* A correction (versions): slot `from` is superseded at at_ms, and its associations and
 * strength pass to slot `to`, the new version (write lock). */
void mn__space_supersede(mn__space *sp, uint32_t from, uint32_t to, int64_t at_ms);

#endif
