/* Private structures of the engine: the store handles, the in-memory state of
 * a space, and the commit queue. */
#ifndef MN_ENGINE_INTERNAL_H
#define MN_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <rocksdb/c.h>

#include "mnemo/engine.h"
#include "mnemo/wire.h"

/* ---- store (store.c) ---- */
enum { CF_DEFAULT = 0, CF_META, CF_WAL, CF_MEMORIES, CF_VECTORS, CF_INDEX, CF_KEYWORDS, CF_COUNT };

typedef struct mn_store {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_column_family_handle_t *cf[CF_COUNT];
    rocksdb_cache_t *cache;
    rocksdb_block_based_table_options_t *table_opts;
    rocksdb_filterpolicy_t *filter; /* owned by table_opts */
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wsync;
    rocksdb_writeoptions_t *wnosync;
} mn_store;

mn_err mn_store_open(mn_store *s, const mn_engine_options *o, mn_error *err);
void mn_store_close(mn_store *s);
/* Get into a malloc'd buffer (*val NULL when absent). */
mn_err mn_store_get(mn_store *s, int cf, const void *key, size_t klen, char **val, size_t *vlen,
                    mn_error *err);
/* Get seeing the batch's own writes over the DB. */
mn_err mn_store_get_wi(mn_store *s, rocksdb_writebatch_wi_t *b, int cf, const void *key,
                       size_t klen, char **val, size_t *vlen, mn_error *err);
mn_err mn_store_write(mn_store *s, rocksdb_writebatch_wi_t *b, bool sync, mn_error *err);
/* A plain batch (a group with range deletions, which indexed batches cannot hold). */
mn_err mn_store_write_batch(mn_store *s, rocksdb_writebatch_t *b, bool sync, mn_error *err);

/* Keys: every per-space key starts with the 4-byte big-endian space id. */
#define KEY_SID_LEN 4
#define KEY_MEM_LEN (KEY_SID_LEN + 16)
#define KEY_WAL_LEN (KEY_SID_LEN + 8)
#define KEY_TIME_LEN (KEY_SID_LEN + 1 + 8 + 16)
void mn_key_mem(uint8_t *k, uint32_t sid, const mn_id_t *id);
void mn_key_wal(uint8_t *k, uint32_t sid, uint64_t lsn);
void mn_key_time(uint8_t *k, uint32_t sid, int64_t when_ms, const mn_id_t *id);
/* 'k' idempotency index key: sid | 'k' | key bytes. Returns length; k holds >= 5 + len. */
size_t mn_key_idem(uint8_t *k, uint32_t sid, const char *key);
void mn_key_sid(uint8_t *k, uint32_t sid);
/* As-of index of forgotten memories (deleted or expired), so as-of reads can show
 * that something was there: sid | 'g' | when | id -> kind u8, created_at be64,
 * gone_at be64 (the key has the time index's layout), and for pruning
 * sid | 'G' | gone_at | id -> when be64. Entries older than engine.as_of_max_age
 * are pruned (list.c). */
#define GONE_VALUE_LEN 17
void mn_key_gone(uint8_t *k, uint32_t sid, int64_t when_ms, const mn_id_t *id);
void mn_key_gone_by_time(uint8_t *k, uint32_t sid, int64_t gone_ms, const mn_id_t *id);
/* 'w' key: sid | 'w' | id -> be64 lsns of the WAL entries carrying the memory. */
#define KEY_WALREF_LEN (KEY_SID_LEN + 1 + 16)
void mn_key_walref(uint8_t *k, uint32_t sid, const mn_id_t *id);
/* Order-preserving encoding of a signed 64-bit time. */
uint64_t mn_key_time_bits(int64_t t);
int64_t mn_key_time_from_bits(uint64_t b);

/* ---- in-memory space (space.c) ---- */
enum { SLOT_FREE = 0, SLOT_LIVE = 1 };

/* One end of an association, kept on both memories. */
typedef struct mn_adj {
    mn_id_t other;
    float weight;
    uint8_t kind; /* mn_edge_kind */
    uint8_t out;  /* 1: this memory is the edge's `from` */
} mn_adj;

/* What recall and list need to filter without touching the store. */
typedef struct mn_slot {
    mn_id_t id;
    uint8_t state;
    uint8_t kind;
    uint8_t suppressed;
    uint8_t lifecycle;
    uint8_t has_vec; /* memories may be text-only */
    int64_t suppressed_at_ms;   /* latest suppress (0 = never): as-of reads */
    int64_t unsuppressed_at_ms; /* latest unsuppress (0 = never) */
    float confidence;
    int64_t when_ms;
    int64_t created_at_ms;
    int64_t expires_at_ms;
    char **tags;
    uint32_t n_tags;
    uint32_t n_metadata;
    mn_kv *metadata;
    char *session; /* context.session, for temporal links */
    char *where;
    char **who;
    uint32_t n_who;
    float importance;
    float stability_days; /* 0 = never reinforced (initial stability applies) */
    int64_t last_access_ms;
    uint32_t access_count;
    mn_adj *adj;
    uint32_t n_adj, cap_adj;
} mn_slot;

typedef struct mn_space {
    mn_space_def def;
    uint32_t sid;
    uint64_t epoch;
    uint64_t last_lsn;     /* committed; written only by the commit thread */
    uint64_t assigned_lsn; /* handed out in the current group (commit thread only) */
    uint64_t first_lsn;    /* oldest WAL entry kept (sweeper only after load) */
    atomic_int refs;
    atomic_bool dropped;
    bool drop_staged; /* a drop is in the commit group being built (commit thread only) */

    pthread_rwlock_t lock; /* guards everything below */
    mn_slot *slots;
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
    uint64_t n_live, n_episodic, n_semantic, n_suppressed, n_tombstones;
    struct mn_kw_index *kw; /* BM25 over content, keyed by slot */
    struct mn_session_ix *sessions; /* slots by context.session (temporal links) */
    /* HNSW index (space_index.c): NULL until the space reaches engine.hnsw_threshold; set
     * and replaced by the commit thread under the write lock, used by recall under the read lock */
    struct mn_space_index *ix;
    atomic_bool ix_queued; /* waiting for the index thread (indexer.c) */
    atomic_bool ix_exists; /* ix was set (it is never unset while the space lives) */
    pthread_mutex_t consolidate_mu; /* one consolidation of a space at a time */
} mn_space;

mn_space *mn_space_new(const mn_space_def *def, uint32_t sid);
void mn_space_free(mn_space *sp);
/* Lookup (caller holds lock). Returns slot index or UINT32_MAX. */
uint32_t mn_space_find(const mn_space *sp, const mn_id_t *id);
/* Inserts a live memory (caller holds the write lock). Takes the filter fields
 * and copies the vector (normalising it for cosine). */
mn_err mn_space_insert(mn_space *sp, const mn_memory_t *m);
/* The same with the memory's stored term list (keyword_store.c), so the keyword
 * index needs no tokenising (kw NULL: tokenise m->content). */
mn_err mn_space_insert_doc(mn_space *sp, const mn_memory_t *m, const uint8_t *kw, size_t kw_len);
/* Removes the slot of id if present (write lock). Returns true if it was there. */
bool mn_space_remove(mn_space *sp, const mn_id_t *id);
/* Replaces a live memory's indexed state (vector, keywords, filter fields),
 * keeping its associations; inserts it if absent (write lock). */
mn_err mn_space_replace(mn_space *sp, const mn_memory_t *m);
mn_err mn_space_replace_doc(mn_space *sp, const mn_memory_t *m, const uint8_t *kw, size_t kw_len);
void mn_space_set_suppressed(mn_space *sp, uint32_t slot, bool on);
/* Records edge e on both endpoints if both are live (write lock); an edge of the
 * same kind between the same pair has its weight replaced. */
void mn_space_link(mn_space *sp, const mn_edge *e);
/* Semantic memory sem lists episodes ids[n] (sorted): a consolidation edge from
 * each live one, and none from an episode it no longer lists (write lock). */
void mn_space_link_supports(mn_space *sp, const mn_id_t *sem, const mn_id_t *ids, size_t n);
/* Auto-links for a memory (read lock held): up to link_max semantic
 * neighbours whose similarity is >= link_threshold among the candidate slots
 * cands[n_cands] (NULL: every slot), and the previous episode of its session
 * within the temporal window, looking at the space and at the earlier memories
 * `batch` of the same request. Appends to *edges (realloc'd). */
mn_err mn_space_autolink(const mn_space *sp, const mn_memory_t *m, const mn_memory_t *batch,
                         size_t n_batch, const uint32_t *cands, size_t n_cands,
                         float link_threshold, uint32_t link_max, int64_t temporal_window_ms,
                         int64_t now, mn_edge **edges, size_t *n, size_t *cap);
/* Similarity in [0, 1] of two stored vectors' scores for metric m. */
float mn_vec_match(mn_metric m, float score);
/* Normalises v in place to unit length; returns false for a zero vector. */
bool mn_vec_normalize(float *v, uint32_t dim);
/* Fixed-order portable kernels: bit-identical everywhere (consolidation). */
float mn_vec_dot(const float *a, const float *b, uint32_t dim);
float mn_vec_l2sq(const float *a, const float *b, uint32_t dim);
/* The fastest kernels this CPU has (AVX2/AVX-512): for ranking. */
float mn_vec_dot_fast(const float *a, const float *b, uint32_t dim);
float mn_vec_l2sq_fast(const float *a, const float *b, uint32_t dim);

/* ---- commit queue (commit.c) ---- */
/* A memory's encoded term list, made once by apply and used twice: stored in
 * the keywords family, and added to the in-memory index. */
typedef struct mn_kw_buf {
    uint8_t *buf; /* malloc'd; NULL for a memory without content */
    size_t len;
} mn_kw_buf;

typedef struct mn_pending {
    bool has_entry;     /* the committer wrote entry in this group */
    bool *accepted;     /* remember: per memory of entry, written or not */
    mn_memory_t *compact; /* remember: the accepted subset the entry carries */
    mn_kw_buf *kw;        /* remember, consolidate: per memory of entry */
    size_t n_kw;
    mn_wal_entry entry; /* op filled by the caller; lsn/epoch/hlc by the committer */
    mn_space *sp;       /* referenced by the caller for the op's life */
    bool sync;
    /* remember: per memory, the id to report (from idempotency or the new id) */
    mn_id_t *ids_out;
    bool foreign;       /* the entry comes from another engine's log (mn_engine_ingest) */
    bool keep_accepted; /* the caller reads (and frees) accepted after the commit */
    bool derived;       /* made by the commit thread (a re-derivation): it frees it */
    /* filled by apply: the change in the space's tombstone count, and the
     * semantic memories that listed an episode this entry erased (re-derived
     * at the end of the group, commit.c) */
    int64_t tombstones;
    mn_id_t *rederive;
    size_t n_rederive, cap_rederive;
    /* results */
    mn_err rc;
    mn_error err;
    bool done;
    struct mn_pending *next;
} mn_pending;

typedef struct mn_engine {
    mn_engine_options opts;
    char *data_dir;
    mn_store store;
    mn_idgen_t idgen;
    mn_hlc_t hlc;

    pthread_rwlock_t spaces_lock;
    mn_space **spaces; /* sorted by name */
    size_t n_spaces;
    size_t cap_spaces;
    uint32_t next_sid; /* commit thread only */

    /* commit queue */
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;    /* committer waits for work */
    pthread_cond_t done_cv; /* callers wait for their op */
    mn_pending *q_head, *q_tail;
    size_t q_len; /* ops queued (test hook) */
    bool q_hold;  /* test hook: the committer takes no group while set */
    bool stopping;
    bool failed; /* a store write failed: refuse further writes */
    pthread_t committer;

    /* expiry sweeper */
    pthread_t sweeper;
    bool sweeper_running;
    bool sw_stop; /* guarded by sw_mu */
    int64_t last_consolidate_ms; /* sweeper thread only (monotonic ms) */
    pthread_mutex_t sw_mu;
    pthread_cond_t sw_cv;

    /* semantic linker (linker.c) */
    pthread_t linker;
    bool linker_running;
    pthread_mutex_t lk_mu;
    pthread_cond_t lk_cv;      /* work arrived or stop */
    pthread_cond_t lk_idle_cv; /* queue drained */
    struct mn_link_job *lk_jobs;
    size_t lk_n, lk_cap, lk_busy;
    bool lk_stop;

    /* index thread (indexer.c) */
    pthread_t ixr_thread;
    bool ixr_running;
    pthread_mutex_t ixr_mu;
    pthread_cond_t ixr_cv, ixr_idle_cv;
    mn_space **ixr_q; /* spaces with index work, each referenced */
    size_t ixr_n, ixr_cap;
    bool ixr_busy, ixr_stop;

    /* event subscribers (events.c) */
    pthread_mutex_t ev_mu;
    struct mn_engine_sub *ev_subs;
    atomic_uint ev_n_subs;

    /* figures */
    atomic_uint_fast64_t n_commits, n_synced, n_entries, max_group;
    atomic_uint_fast64_t n_links, n_links_dropped, n_reinforced;
    /* operation histograms (engine_metrics.c) */
    mn_histogram h_remember, h_recall, h_consolidate, h_write, h_group, h_group_synced;
} mn_engine;

int64_t mn_engine_now(const mn_engine *e);
/* 422 for an as-of time in the future or older than as_of_max_age_ms. */
mn_err mn_engine_check_as_of(const mn_engine *e, const mn_filter_t *f, int64_t now, mn_error *err);
/* Space lookup with a reference (release with mn_engine_space_release). */
mn_space *mn_engine_space_acquire(mn_engine *e, const char *name);
void mn_engine_space_release(mn_engine *e, mn_space *sp);

/* Queues p, waits until committed; returns p->rc. */
mn_err mn_commit_submit(mn_engine *e, mn_pending *p);
/* Several at once (one group); waits for all. */
void mn_commit_submit_many(mn_engine *e, mn_pending **ps, size_t n);
mn_err mn_commit_start(mn_engine *e, mn_error *err);
void mn_commit_stop(mn_engine *e);
/* Test hook: while held, the commit thread takes no new group, so the writers
 * that arrive queue up and are committed as one group on release. */
void mn_commit_hold(mn_engine *e, bool hold);
/* Ops queued and not yet taken by the commit thread (test hook). */
size_t mn_commit_queued(mn_engine *e);

/* ---- apply (apply.c): the only way state changes ---- */
/* Adds the store mutations of p->entry (and the entry itself) to the group's
 * batch. Runs on the commit thread before the write; reads see earlier entries
 * of the same group through the indexed batch. For a remember or consolidate,
 * p->accepted[i] says whether memory i was applied (false: its id is
 * tombstoned or already there, or it lists a forgotten episode) and p->kw
 * (NULL or one per memory) receives each written memory's term list for
 * mn_apply_memory. Sets p->tombstones and p->rederive; errors go to p->err. */
mn_err mn_apply_entry(mn_engine *e, mn_pending *p, rocksdb_writebatch_wi_t *b);
/* The range deletions of entry (a space drop), appended to the group's plain
 * batch b after the point mutations of mn_apply_entry: everything stored under
 * the space's prefix goes, except the drop entry itself, which stays as the
 * last entry of the dropped space's WAL. */
mn_err mn_apply_ranges(mn_engine *e, mn_space *sp, const mn_wal_entry *entry,
                       rocksdb_writebatch_t *b);
/* Replaces memory id in a decoded remember or consolidate entry by its erased
 * stub (id, kind, when, created_at, forgotten_at = at_ms, retired) and drops
 * the entry's edges that touch it. False if the entry does not carry it (or
 * carries it erased already). */
bool mn_wal_strip_memory(mn_wal_entry *en, const mn_id_t *id, int64_t at_ms, bool retired);
/* After the batch is durable: the in-memory effects of p->entry. */
void mn_apply_memory(mn_engine *e, mn_pending *p);
/* A memory record as the batch sees it (*found false when there is none). */
mn_err mn_apply_read_record(mn_engine *e, rocksdb_writebatch_wi_t *b, mn_space *sp,
                            const mn_id_t *id, mn_memory_record *rec, bool *found, mn_error *err);

/* ---- consolidation (consolidate.c) ---- */
/* Re-derives the semantic memories ids[n] (sorted) from the supports they still
 * have, as the batch sees them (commit thread, for the episodes a group erased):
 * each one that lost a support becomes what a run builds from the rest (the
 * keywords it still has a support for), or a retired stub (forgotten at at_ms)
 * below the engine's consolidate_min_support. *out (malloc'd, clear each) gets
 * the memories that changed. */
mn_err mn_consolidate_rederive(mn_engine *e, mn_space *sp, rocksdb_writebatch_wi_t *b,
                               const mn_id_t *ids, size_t n, int64_t at_ms, mn_memory_t **out,
                               size_t *n_out, mn_error *err);
/* Was semantic memory id made by consolidation (a version 8 id, derived from its key)? */
bool mn_consolidate_made(const mn_id_t *id);

/* ---- validation (validate.c) ---- */
mn_err mn_validate_memory(const mn_space *sp, const mn_memory_t *m, size_t index, mn_error *err);
mn_err mn_validate_filter(const mn_filter_t *f, mn_error *err);

/* Reads a memory record from the store (MN_ERR_GONE for a tombstone). */
mn_err mn_engine_read_memory(mn_engine *e, mn_space *sp, const mn_id_t *id, bool with_embedding,
                             mn_memory_t *out, mn_error *err);
/* Deletes expired ids of sp through the forget path, as one commit group. */
mn_err mn_engine_forget_expired(mn_engine *e, mn_space *sp, const mn_id_t *ids, size_t n);
/* Key of an association: sid | 'a' | from | to | kind (one pair may be linked
 * by several kinds, e.g. temporal one way and semantic the other). */
#define KEY_EDGE_LEN (KEY_SID_LEN + 1 + 32 + 1)
void mn_key_edge(uint8_t *k, uint32_t sid, const mn_id_t *from, const mn_id_t *to, uint8_t kind);

/* Does a live slot pass the filter at time now? (caller holds sp->lock) An
 * as-of filter sees the memory as it was at as_of: created by then, suppressed
 * then or not; a memory expired by now never passes (its content is gone). */
bool mn_filter_match(const mn_slot *s, const mn_filter_t *f, int64_t now);
/* Was a memory suppressed at time t, given whether it is now and the times of
 * its latest suppress and unsuppress? (A suppression older than its recorded
 * time counts from the start: the safe side.) */
bool mn_suppressed_at(bool suppressed_now, int64_t suppressed_at, int64_t unsuppressed_at,
                      int64_t t);
/* Does a memory forgotten at gone_at belong in an as-of view (f->as_of_ms set)?
 * Only kind and the when range can be checked on what is left of it, so a
 * filter on anything else (tags, metadata, context, confidence) leaves it out. */
bool mn_filter_match_gone(uint8_t kind, int64_t when_ms, int64_t created_at_ms, int64_t gone_at_ms,
                          const mn_filter_t *f);
/* Deletes as-of index entries too old for any as-of read (sweeper). */
mn_err mn_engine_prune_gone(mn_engine *e, mn_error *err);

/* ---- background jobs: semantic linking and reinforcement (background.c) ---- */
mn_err mn_linker_start(mn_engine *e, mn_error *err);
void mn_linker_stop(mn_engine *e);
/* Queues newly remembered memories of sp for semantic linking. */
void mn_linker_enqueue(mn_engine *e, mn_space *sp, const mn_id_t *ids, size_t n);
/* Queues recalled memories of sp for reinforcement as of at_ms. */
void mn_reinforce_enqueue(mn_engine *e, mn_space *sp, const mn_id_t *ids, size_t n, int64_t at_ms);

/* ---- decay (decay.c) ---- */
/* Retention in [0, 1] after elapsed_ms for a stability in days (power-law curve). */
float mn_retention(float stability_days, int64_t elapsed_ms);
/* The strength after a recall at at_ms (spacing effect). */
mn_strength mn_reinforce(const mn_strength *cur, int64_t at_ms);
/* Initial stability of a memory of this importance. */
float mn_initial_stability(float initial_days, float importance);
/* A slot's current strength (caller holds the lock). */
void mn_slot_strength(const mn_space *sp, uint32_t slot, float initial_days, mn_strength *out);
/* Key of a memory's strength: sid | 's' | id -> f32 stability, i64 last access, u32 count. */
#define KEY_STRENGTH_LEN (KEY_SID_LEN + 1 + 16)
#define STRENGTH_VALUE_LEN 16
void mn_key_strength(uint8_t *k, uint32_t sid, const mn_id_t *id);

/* Key of a consolidated episode: sid | 'c' | episode id -> the ids of the
 * semantic memories that list it (16 bytes each, sorted; the key goes with the
 * last one). */
#define KEY_CONSOLIDATED_LEN (KEY_SID_LEN + 1 + 16)
void mn_key_consolidated(uint8_t *k, uint32_t sid, const mn_id_t *id);

/* ---- index thread (indexer.c) ---- */
mn_err mn_indexer_start(mn_engine *e, mn_error *err);
/* Finishes the queued index work, then stops the thread. */
void mn_indexer_stop(mn_engine *e);
/* Queues sp for index work (no lock needed; at most once while queued). */
void mn_indexer_kick(mn_engine *e, mn_space *sp);
/* Blocks until no index work is queued or running. */
void mn_indexer_wait(mn_engine *e);

/* ---- events (events.c) ---- */
void mn_events_init(mn_engine *e);
/* Ends every subscription with MN_EVENT_CLOSED (engine close). */
void mn_events_close(mn_engine *e);
/* True when someone listens (cheap: check before building an event). */
bool mn_events_wanted(mn_engine *e);
void mn_events_publish(mn_engine *e, const char *space, const mn_event *ev);
/* Ends the subscriptions of space (every space when NULL) with a final event. */
void mn_events_end(mn_engine *e, const char *space, mn_event_kind kind);
/* The events of an applied WAL entry. */
void mn_events_from_entry(mn_engine *e, const mn_wal_entry *en, const bool *accepted);

/* ---- metrics (engine_metrics.c) ---- */
void mn_engine_metrics_init(mn_engine *e);
/* Observes ns since t0_ns (mn_time_mono_ns) into h when rc is MN_OK; returns rc. */
mn_err mn_engine_timed(mn_histogram *h, int64_t t0_ns, mn_err rc);

/* ---- load (load.c) ---- */
mn_err mn_engine_load(mn_engine *e, mn_error *err);

#endif
