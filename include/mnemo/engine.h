/* The mnemo engine: memory spaces, remember / recall / forget on RocksDB.
 *
 * Every mutation becomes one WAL entry (space, epoch, lsn, hlc, op), written in
 * the same RocksDB WriteBatch as the state it changes; applying an entry is the
 * only way state changes. All functions are thread-safe and may block (disk,
 * fsync): never call them on the libuv loop thread. */
#ifndef MNEMO_ENGINE_H
#define MNEMO_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mnemo/err.h"
#include "mnemo/metrics.h"
#include "mnemo/model.h"
#include "mnemo/util.h"

typedef enum {
    MN_RECALL_TIME_OFF = 0,
    MN_RECALL_TIME_BOOST = 1,
    MN_RECALL_TIME_FILTER = 2,
} mn_recall_time_t;
const char *mn_recall_time_name(mn_recall_time_t t);
mn_err mn_recall_time_parse(const char *s, mn_recall_time_t *out);
#define MN_RECALL_TIME_BOOST_DEFAULT 3.0f
#define MN_RECALL_TIME_BOOST_MAX 1000.0f
#define MN_RECALL_TIME_TEXT_MAX 95

/* A recall cue: an embedding, words, or both. With both, the vector and the
 * keyword rankings are fused by reciprocal rank fusion (RRF, k = 60):
 * score = vector_weight / (60 + vector rank) + text_weight / (60 + text rank). */
typedef struct mn_recall_req {
    const float *embedding; /* NULL for a text-only cue */
    uint32_t dim;
    const char *text;       /* NULL for a vector-only cue; UTF-8 */
    size_t text_len;
    float vector_weight;    /* RRF weights; 0 and 0 mean 1 and 1 */
    float text_weight;
    uint32_t k;          /* 1..MN_K_MAX (0 = default 10) */
    bool has_threshold;
    float threshold;     /* minimum similarity (vector score; keyword coverage for text-only) */
    mn_filter_t filter;
    bool include_embedding;
    /* Spreading activation (the doors default it on; zeroed here it is off;
     * docs/recall.md §4): the cue's top max(2k, 50) seed it, each with its own
     * score mapped onto [0, 1] in the cue's order (its base); an association
     * j -> i offers i base_i + S (a_j - base_i), S = hop_decay x edge weight x
     * a fan factor (half backwards along a temporal edge), and i keeps the best
     * offer (a max, not a sum). A memory fires in the round after it rose, for
     * up to max_hops rounds; rises under min_activation are ignored and at most
     * max_visited memories take part. Activation (in [0, 1]) ranks the results
     * (score). */
    bool spread;
    uint32_t max_hops;     /* 0 = default 2; at most MN_MAX_HOPS */
    float hop_decay;       /* 0 = default 0.75 */
    float min_activation;  /* 0 = default 0.1 */
    uint32_t max_visited;  /* 0 = default 1000 */
    bool trace;            /* fill mn_recall_hit_t.via */
    /* Strengthen the returned memories (spacing effect), in the background. */
    bool reinforce;
    /* Vector ranking: spaces at or above engine.hnsw_threshold use the HNSW index
     * unless exact is set (or a filter is so selective that a scan is cheaper);
     * ef is the search width (0 = engine.hnsw_ef_search; raised to k). */
    bool exact;
    uint32_t ef;
    /* Time named in the text (docs/recall.md §9; the doors default it to
     * boost, zeroed here it is off): the text's first time expression ("on 7
     * Jan 2024", "last May", "two weeks ago"), resolved against time_ref_ms
     * (else filter.as_of_ms, else now), widened by a day on each bounded side.
     * BOOST multiplies the words' score (BM25) of the memories whose `when`
     * lies in it by time_boost; FILTER keeps only them. A year ("in 2017",
     * "last year"), which names when an event happened rather than when it
     * was told, and an open range ("before May 5") are reported, not used. */
    mn_recall_time_t time;
    float time_boost; /* > 1; 0 = default MN_RECALL_TIME_BOOST_DEFAULT */
    bool has_time_ref;
    int64_t time_ref_ms;
    /* Near-duplicates (duplicate edges, space option dedup_threshold) fold into
     * the best-ranked of their group, which carries how many (docs/recall.md
     * §10) unless keep_duplicates is set (the doors' collapse_duplicates: false). */
    bool keep_duplicates;
} mn_recall_req_t;

#define MN_EF_MAX 10000

#define MN_MAX_HOPS 4

/* One step of the path that activated a memory: from `from` along an edge. */
typedef struct mn_via_step {
    mn_id_t from;
    uint8_t kind; /* mn_edge_kind_t */
    float weight;
} mn_via_step_t;

typedef struct mn_recall_hit {
    mn_memory_t memory;
    /* vector-only: the similarity (cosine: cos; dot: a.b; l2: 1 / (1 + distance));
     * text-only: the BM25 score; hybrid: the RRF score; with spread: the
     * activation, in [0, 1]. */
    float score;
    float distance;   /* vector distance (l2: euclidean; cosine: 1 - cos; dot: -a.b); NAN if none */
    float similarity; /* vector similarity as above, NAN if not ranked by vector */
    float keyword;    /* BM25 score, NAN if not ranked by text */
    float coverage;   /* idf-weighted share of the query words the memory contains, or NAN */
    float activation; /* with spread: the cue's match + the associative bonus, capped at 1; else NAN */
    float retention;  /* forgetting curve at recall time, in [0, 1] */
    bool seed;        /* ranked by the cue itself (not only reached through associations) */
    mn_via_step_t via[MN_MAX_HOPS]; /* with trace: the path from a seed, nearest step last */
    uint32_t n_via;
    mn_confidence_t confidence;
    /* near-duplicates folded into this hit (malloc'd ids, best-ranked first) */
    mn_id_t *duplicate_ids;
    uint32_t duplicates;
} mn_recall_hit_t;

typedef struct mn_recall_result {
    mn_recall_hit_t *hits; /* best first */
    size_t n_hits;
    const char *path;    /* "exact", "hnsw", "keyword", "exact+keyword" or "hnsw+keyword" (static) */
    uint64_t scanned;    /* candidates examined */
    /* How far to trust the recall as a whole: the best result's confidence
     * (0 when nothing came back). */
    float recall_confidence;
    /* The time window the cue's text named (time not off), as understood:
     * [from, to) before widening, the expression as written (cut to
     * MN_RECALL_TIME_TEXT_MAX bytes), its unit ("day", "week", "month",
     * "year", "range") and what was done with it ("boost", "filter", or
     * "none" for a year). */
    bool has_time_window;
    struct {
        bool has_from, has_to;
        int64_t from_ms, to_ms;
        char text[MN_RECALL_TIME_TEXT_MAX + 1];
        const char *unit;    /* static */
        const char *applied; /* static */
    } time_window;
} mn_recall_result_t;
void mn_recall_result_clear(mn_recall_result_t *r);
/* A deep copy of req (the cue, the text, the filter and its expression) that lives on its
 * own: for recalls that may run after the request that made req is gone (query/, a recall
 * over many spaces). NULL when out of memory. Free it with mn_recall_req_free. */
mn_recall_req_t *mn_recall_req_dup(const mn_recall_req_t *req);
void mn_recall_req_free(mn_recall_req_t *r);

typedef struct mn_list_req {
    mn_filter_t filter;
    uint32_t limit;       /* 1..1000 (0 = default 100) */
    const char *cursor;   /* from a previous mn_list_result_t.next, or NULL */
    bool include_embedding;
} mn_list_req_t;

typedef struct mn_list_result {
    mn_memory_t *memories; /* in (when, id) order */
    size_t n;
    char *next;            /* cursor for the next page, NULL at the end */
} mn_list_result_t;
void mn_list_result_clear(mn_list_result_t *r);

typedef struct mn_consolidate_opts {
    float threshold;      /* cosine similarity to join a cluster (0 = default 0.75) */
    uint32_t min_support; /* episodes a new semantic memory needs (0 = default 3) */
    /* Scope (NULL = the whole run). The run still clusters every eligible episode;
     * it then applies only the changes to clusters with a member that matches
     * (for a retirement: whose stored support lists a matching episode) and
     * leaves the others for a later run (mn_consolidate_result_t.skipped). So
     * every memory written is the one an unscoped run would write. No as_of. */
    const mn_filter_t *filter;
} mn_consolidate_opts_t;


typedef int64_t (*mn_clock_fn)(void *arg); /* wall time in ms */

/* The default of mn_engine_options_t.max_spaces. */
#define MN_ENGINE_MAX_SPACES_DEFAULT 10000

typedef struct mn_engine_options {
    const char *data_dir;
    size_t block_cache_bytes;
    size_t write_buffer_bytes;
    bool sync;                    /* fsync acknowledged persistent/session writes (default true) */
    int64_t ephemeral_ttl_s;      /* default 3600 */
    int64_t session_ttl_s;        /* default 86400 */
    int64_t expiry_interval_ms;   /* sweeper period (default 1000); 0 = no sweeper thread */
    mn_lifecycle_t default_lifecycle; /* for spaces created without one (default persistent) */
    uint64_t wal_retain_entries;  /* per space; older entries are trimmed by the sweeper
                                     (default 100000; 0 = keep every entry) */
    float link_threshold;         /* semantic auto-link when similarity >= this (default 0.8) */
    uint32_t link_max;            /* at most this many semantic links per memory (default 5;
                                     0 = no semantic auto-links) */
    int64_t temporal_window_ms;   /* link to the session's previous episode when it happened
                                     within this window (default 3600000; 0 = never) */
    int64_t as_of_max_age_ms;     /* how far back an as-of read may look (default 30 days) */
    int64_t consolidate_interval_ms; /* scheduled consolidation of every space (default 1 h;
                                        0 = only on demand) */
    mn_consolidate_opts_t consolidate; /* used by the schedule */
    float initial_stability_days; /* forgetting-curve stability of a new memory of importance
                                     0.5 (default 7; scaled by 0.5 + importance) */
    /* HNSW vector index per space, built once a space holds hnsw_threshold memories
     * (0 = default 2000; UINT32_MAX = never). The parameters of spaces created
     * without their own (mn_space_def_t.index): links per node (0 = 16), build and
     * search widths (0 = 200 and 64), int8 codes with exact re-ranking (default off). */
    uint32_t hnsw_threshold;
    uint32_t hnsw_m;
    uint32_t hnsw_ef_construction;
    uint32_t hnsw_ef_search;
    bool hnsw_quantize;
    int64_t hnsw_save_interval_ms; /* a changed graph is saved this often by the index thread
                                      (default 60 s; 0 = only at shutdown) */
    /* Start on a damaged data dir with what is readable (mnemo serve --salvage):
     * the damage is logged, counted and reported (mn_engine_space_damage,
     * mn_engine_salvaged) instead of refusing to open. */
    bool salvage;
    /* Spaces the store may hold (0 = default 10000): creating one more fails with
     * MN_ERR_LIMIT. Checked on the commit thread, so concurrent creates cannot pass it. */
    uint64_t max_spaces;
    /* Cluster mode: every space the store holds opens as a REPLICA (no client or
     * background writes) until mn_engine_space_set_role makes it PRIMARY. Default false:
     * every space is PRIMARY, as in single-node mode. */
    bool spaces_start_replica;
    mn_clock_fn clock;            /* NULL = mn_time_now_ms */
    void *clock_arg;
} mn_engine_options_t;
void mn_engine_options_default(mn_engine_options_t *o);

typedef struct mn_engine mn_engine_t;

/* Opens (creating if needed) the store under o->data_dir and loads every space. */
mn_err mn_engine_open(const mn_engine_options_t *o, mn_engine_t **out, mn_error *err);
/* Waits for in-flight writes, flushes and closes the store. */
void mn_engine_close(mn_engine_t *e);

/* The names text_language accepts, comma-separated ("none,arabic,...", static). */
const char *mn_engine_text_languages(void);
/* Checks a space's embedding_model (n bytes of s): at most MN_EMBEDDING_MODEL_MAX bytes of
 * printable ASCII ("" is fine: none). MN_ERR_INVALID names the fault. */
mn_err mn_engine_embedding_model_check(const char *s, size_t n, mn_error *err);
mn_err mn_engine_space_create(mn_engine_t *e, const mn_space_def_t *def, mn_space_def_t *out,
                              mn_error *err);
mn_err mn_engine_space_get(mn_engine_t *e, const char *name, mn_space_stats_t *out, mn_error *err);
/* *out is malloc'd (free()), sorted by name. */
mn_err mn_engine_space_list(mn_engine_t *e, mn_space_def_t **out, size_t *n, mn_error *err);
/* Drops the space and all its data. */
mn_err mn_engine_space_drop(mn_engine_t *e, const char *name, mn_error *err);
/* Drops this node's copy of a space whatever its role (cluster mode: a copy the space's
 * holder record no longer lists, api/cluster_repl_drop.c); the entry is not handed to the WAL
 * hook. Its data and indexes go as with a drop; a restart does not bring it back. */
mn_err mn_engine_space_discard(mn_engine_t *e, const char *name, mn_error *err);

/* Remembers n memories atomically (all or nothing). ids_out[i] is the id of
 * mems[i]; a memory whose idempotency_key was seen before in the space gets the
 * earlier id and is not written again. Returns once durable (per lifecycle). */
mn_err mn_engine_remember(mn_engine_t *e, const char *space, const mn_memory_t *mems, size_t n,
                          mn_id_t *ids_out, mn_error *err);
/* mn_engine_remember that also says, in dup_out[i] (when not NULL), whether
 * mems[i] was an exact duplicate (space option dedup "exact", docs/api.md
 * "Duplicates"): then ids_out[i] is the live memory it equals, or the earlier
 * memory of the same batch, and nothing was written for it. An idempotency key
 * seen before wins: its id is the answer and dup_out[i] is false. */
mn_err mn_engine_remember_dedup(mn_engine_t *e, const char *space, const mn_memory_t *mems,
                                size_t n, mn_id_t *ids_out, bool *dup_out, mn_error *err);
/* mn_engine_remember for memories accepted elsewhere under partition (a hint, docs/gossip.md
 * "Partition mode"): each keeps its id (required) and created_at_ms (0 = now); an id stored
 * or forgotten here already is left as it is (a re-sent hint changes nothing), and an
 * idempotency key seen before answers its id. dup_out NULL: no exact-duplicate verdict (a
 * hint's ids stand); else as mn_engine_remember_dedup. */
mn_err mn_engine_remember_hinted(mn_engine_t *e, const char *space, const mn_memory_t *mems,
                                 size_t n, mn_id_t *ids_out, bool *dup_out, mn_error *err);
/* Fills *out (clear with mn_memory_clear). MN_ERR_GONE if forgotten. */
mn_err mn_engine_get(mn_engine_t *e, const char *space, const mn_id_t *id, bool with_embedding,
                     mn_memory_t *out, mn_error *err);
/* The kind of memory id in space, live or forgotten (a forgotten memory's record keeps its
 * kind): for readers of the WAL, whose forget entries name an id only (the gossip feeder,
 * docs/gossip.md). MN_ERR_NOT_FOUND when the space holds no record of id. */
mn_err mn_engine_kind(mn_engine_t *e, const char *space, const mn_id_t *id, mn_kind_t *out,
                      mn_error *err);
/* Suppresses, or deletes for good (content and vector erased, the WAL
 * included). Deleting an episode re-derives, in the same write, the semantic
 * memories that list it from their other episodes (or retires them when too
 * few are left); deleting a semantic memory, live or retired, keeps its
 * cluster from ever getting one again. MN_ERR_GONE if forgotten already. */
mn_err mn_engine_forget(mn_engine_t *e, const char *space, const mn_id_t *id, mn_forget_mode_t mode,
                        mn_error *err);
/* ---- corrections and their history (versions.c; docs/api.md, "Corrections") ---- */
/* What a correction changes; every field left out is carried over from the current
 * version (the embedding too: send a new one with new content). Pointers are borrowed. */
typedef struct mn_update_req {
    const char *content; /* NULL: keep */
    size_t content_len;
    const float *embedding; /* NULL: keep */
    uint32_t dim;
    bool has_tags;
    char **tags;
    size_t n_tags;
    bool has_metadata; /* replaces the whole map */
    mn_kv_t *metadata;
    size_t n_metadata;
    bool has_importance;
    float importance;
    /* context: each part given replaces that part (where or session NULL: cleared) */
    bool has_who, has_where, has_session;
    char **who;
    size_t n_who;
    const char *where;
    const char *session;
    /* with content and no embedding: the new version has no vector (an embedding provider
     * computes one, api/embed) instead of carrying the old one over */
    bool drop_embedding;
    uint32_t expected_version;   /* 0: none; else MN_ERR_CONFLICT unless it is the current one */
    const char *idempotency_key; /* a retry with the key answers with the version it wrote */
    const char *by;              /* who corrects (the API key's name), or NULL */
} mn_update_req_t;
/* Writes a new version of memory id (its lineage id, or any of its versions' ids) that
 * supersedes the current one: same lineage, version + 1, valid from now, one WAL entry.
 * The old version is kept (as-of reads and the history see it). Episodes only (a semantic
 * memory is consolidation's). Concurrent corrections are serialised: without
 * expected_version a correction that lost the race is rebuilt on the winner's version.
 * *out (may be NULL) is the new version as get shows it (clear with mn_memory_clear). */
mn_err mn_engine_update(mn_engine_t *e, const char *space, const mn_id_t *id,
                        const mn_update_req_t *req, mn_memory_t *out, mn_error *err);
/* mn_engine_get as of a time (MN_TIME_UNSET: now): the version of memory id that was current
 * then. MN_ERR_NOT_FOUND when it did not exist yet; as_of is held to the ranges of
 * filter.as_of_ms (not in the future, within engine.as_of_max_age). */
mn_err mn_engine_get_as_of(mn_engine_t *e, const char *space, const mn_id_t *id, int64_t as_of_ms,
                           bool with_embedding, mn_memory_t *out, mn_error *err);
/* Every version of memory id, oldest first (*out malloc'd: mn_memory_clear each, then
 * free), as get shows them: id is the lineage, version_id each version's own. */
mn_err mn_engine_history(mn_engine_t *e, const char *space, const mn_id_t *id, mn_memory_t **out,
                         size_t *n, mn_error *err);
/* Another memory contradicts memory id: its current version gets valid_to = now (and by,
 * reason), and is kept: recall ranks it lower with the reason "superseded". by (may be
 * NULL) must be a live memory of the space. Invalidating again changes nothing. *out (may
 * be NULL) is the memory as get shows it then. */
mn_err mn_engine_invalidate(mn_engine_t *e, const char *space, const mn_id_t *id,
                            const mn_id_t *by, const char *reason, mn_memory_t *out,
                            mn_error *err);
#define MN_INVALID_REASON_MAX 1024

/* ---- forget by filter (forget_where.c; docs/api.md, "Forget by filter") ---- */
/* Ids per forget batch WAL entry (one commit each): at most MN_FORGET_CHUNK, and with a
 * pace at least MN_FORGET_CHUNK_MIN. */
#define MN_FORGET_CHUNK 1000
#define MN_FORGET_CHUNK_MIN 50
/* The selection, a snapshot: the ids (*ids malloc'd, free(); a corrected memory's
 * lineage id, as reads show it) of the memories of space that f matches now, in one pass under the space's read lock; mode delete takes
 * suppressed memories too, mode suppress leaves them out (nothing to do). Memories
 * written after it are not in it. MN_ERR_INVALID for a bad mode or an as-of filter. */
mn_err mn_engine_forget_select(mn_engine_t *e, const char *space, const mn_filter_t *f,
                               mn_forget_mode_t mode, mn_id_t **ids, size_t *n, mn_error *err);
typedef struct mn_forget_progress {
    size_t total;     /* ids to go through */
    size_t done;      /* ids gone through so far */
    size_t forgotten; /* of which this run forgot (the rest were gone already) */
    uint64_t chunks;  /* forget batch entries committed */
} mn_forget_progress_t;
/* Called after each chunk; returning false stops the run before the next one. */
typedef bool (*mn_forget_progress_fn)(void *arg, const mn_forget_progress_t *p);
/* Forgets ids[0..n) of space with mode, a chunk at a time: each chunk is one forget batch
 * WAL entry, committed (fsynced) on its own, so recalls and writes go on between chunks.
 * pace_ms 0: chunks of MN_FORGET_CHUNK; else each chunk is sized from the last one's commit
 * time to take about pace_ms (within [MN_FORGET_CHUNK_MIN, MN_FORGET_CHUNK]): the longest a
 * writer queued behind a chunk waits. Each id is forgotten as mn_engine_forget would; an id
 * gone by then is skipped. fn (may be NULL) is called after each chunk. *out says how far it
 * got, also on failure (the chunks committed stay). */
mn_err mn_engine_forget_ids(mn_engine_t *e, const char *space, mn_forget_mode_t mode,
                            const mn_id_t *ids, size_t n, uint32_t pace_ms,
                            mn_forget_progress_fn fn, void *arg, mn_forget_progress_t *out,
                            mn_error *err);
/* Adds client associations (kind causal or explicit; weight in (0, 1]) atomically.
 * Both ends must be live memories of the space. */
mn_err mn_engine_associate(mn_engine_t *e, const char *space, const mn_edge_t *edges, size_t n,
                           mn_error *err);
/* Consolidation: related episodes become semantic memories (see docs/recall.md). */


typedef struct mn_consolidate_result {
    uint64_t candidates; /* episodes examined (every eligible one: clusters are recomputed) */
    uint32_t created;    /* new semantic memories (and retired ones whose cluster is back) */
    uint32_t updated;    /* semantic memories whose support (or summary) changed */
    uint32_t episodes;   /* episodes supporting the created and updated ones */
    mn_id_t *ids;        /* created and updated semantic memories (free()) */
    size_t n_ids;
    uint32_t retired; /* semantic memories retired: their cluster is gone */
    uint32_t skipped; /* changes (creates, updates, retirements) outside the filter: left */
} mn_consolidate_result_t;

/* Clusters the episodes of a space into semantic memories, updating those a
 * cluster already has (reconsolidation) and retiring those whose cluster is
 * gone, in one WAL entry. Deterministic: the live semantic memories (ids and
 * bytes) are a function of the episodes and of the semantic memories clients
 * deleted, whatever order they arrived in and whenever earlier runs (and
 * forgets) happened. CPU-heavy: call off the event loop. */
mn_err mn_engine_consolidate(mn_engine_t *e, const char *space, const mn_consolidate_opts_t *opts,
                             mn_consolidate_result_t *out, mn_error *err);

/* ---- cognitive operations (cognitive.c) ---- */

/* Recognition (familiarity without recall): is the cue something the space has
 * seen? familiarity = the best match in [0, 1] (vector similarity mapped to
 * [0, 1], or keyword coverage) among the top candidates. */
typedef struct mn_recognize_req {
    const float *embedding;
    uint32_t dim;
    const char *text;
    size_t text_len;
    float threshold; /* recognized when familiarity >= this (0 = default 0.85) */
    mn_filter_t filter;
} mn_recognize_req_t;
typedef struct mn_recognize_result {
    bool recognized;
    float familiarity;
    bool has_best;
    mn_id_t best; /* the most familiar memory, when has_best */
} mn_recognize_result_t;
mn_err mn_engine_recognize(mn_engine_t *e, const char *space, const mn_recognize_req_t *req,
                           mn_recognize_result_t *out, mn_error *err);

/* Reminiscing: episodes by time window, who, where, session and optionally a
 * topic (words), in time order. */
typedef struct mn_reminisce_req {
    mn_filter_t filter;  /* kind defaults to episodic when left at -1 */
    const char *topic;   /* words, or NULL */
    size_t topic_len;
    uint32_t limit;      /* 1..1000 (0 = default 50) */
    bool include_embedding;
} mn_reminisce_req_t;
mn_err mn_engine_reminisce(mn_engine_t *e, const char *space, const mn_reminisce_req_t *req,
                           mn_list_result_t *out, mn_error *err);

/* Pattern completion: from a partial memory (some of content, embedding,
 * context, tags), the most likely whole memories and, for each field the cue
 * left out, the most likely value with a confidence (the weighted share of the
 * candidates that agree, times the best candidate's confidence). */
typedef enum {
    MN_FIELD_CONTENT = 0,
    MN_FIELD_WHO,
    MN_FIELD_WHERE,
    MN_FIELD_SESSION,
    MN_FIELD_TAGS,
    MN_FIELD_COUNT
} mn_field_t;
const char *mn_field_name(mn_field_t f);
typedef struct mn_field_guess {
    mn_field_t field;
    char *value;      /* tags: comma-separated */
    float confidence;
} mn_field_guess_t;
typedef struct mn_complete_result {
    mn_recall_result_t candidates;
    mn_field_guess_t fields[MN_FIELD_COUNT];
    size_t n_fields;
} mn_complete_result_t;
void mn_complete_result_clear(mn_complete_result_t *r);
mn_err mn_engine_complete(mn_engine_t *e, const char *space, const mn_memory_t *partial,
                          uint32_t k, mn_complete_result_t *out, mn_error *err);

/* Reads a space's WAL: fn gets each entry with lsn >= from_lsn in lsn order
 * (framed bytes as stored; valid only during the call), at most max entries
 * (0 = all); fn returns non-zero to stop. A from_lsn >= 1 below the first entry
 * the space still holds (trimmed by storage.wal_retain_entries, mn_engine_trim_wal;
 * mn_space_stats_t.wal_first_lsn) fails with MN_ERR_GONE before fn sees anything:
 * the reader needs a snapshot. from_lsn 0 reads from the first entry kept; one past
 * the last entry reads nothing. */
typedef int (*mn_wal_fn)(void *arg, uint64_t lsn, const uint8_t *bytes, size_t len);
mn_err mn_engine_wal_read(mn_engine_t *e, const char *space, uint64_t from_lsn, size_t max,
                          mn_wal_fn fn, void *arg, mn_error *err);

/* ---- replication (replica.c; docs/replication.md, "The engine's side") ---- */
/* A space's role on this node. PRIMARY takes client writes, and its new entries carry
 * the epoch set last; a REPLICA takes entries only through mn_engine_replicate. */
typedef enum { MN_SPACE_PRIMARY = 0, MN_SPACE_REPLICA = 1 } mn_space_role_t;
/* Sets space's role. epoch (0 = keep the current) is the epoch the space's new entries
 * carry while PRIMARY; it may not go below the epoch of its last entry (MN_ERR_CONFLICT).
 * On a REPLICA every client write fails with MN_ERR_UNAVAILABLE ("space S: this node is not
 * its primary") and the background writers (reinforcement, links, consolidation, expiry)
 * skip the space. Ordered with the writes: those queued before it get the old role. */
mn_err mn_engine_space_set_role(mn_engine_t *e, const char *space, mn_space_role_t role,
                                uint64_t epoch, mn_error *err);
/* Cluster mode: a PRIMARY takes no write (MN_ERR_UNAVAILABLE, "lease ... lapsed") from
 * the monotonic instant until_ns (mn_time_mono_ns) on, as its replication core takes no
 * write past its lease; 0 = no such bound (the default). Checked where the commit thread
 * stages each write, so a write either passed it or was refused before it was applied. */
mn_err mn_engine_space_set_lease(mn_engine_t *e, const char *space, int64_t until_ns,
                                 mn_error *err);
/* As the two above, for the incarnation incarnation of the name only (its created_at_ms; 0 =
 * whichever): MN_ERR_NOT_FOUND when the space of that name is another one. The replication
 * core of a dropped space must not set the role of the space created again under its name. */
mn_err mn_engine_space_set_role_of(mn_engine_t *e, const char *space, int64_t incarnation,
                                   mn_space_role_t role, uint64_t epoch, mn_error *err);
mn_err mn_engine_space_set_lease_of(mn_engine_t *e, const char *space, int64_t incarnation,
                                    int64_t until_ns, mn_error *err);
/* Would the space take a client write now (its role is primary and its lease, if any, has
 * not lapsed)? MN_OK, MN_ERR_UNAVAILABLE saying why not, or MN_ERR_NOT_FOUND. */
mn_err mn_engine_space_writable(mn_engine_t *e, const char *space, mn_error *err);
/* How long ago the lease of a space this node leads lapsed, in ms (its copy may miss the
 * writes of a newer primary since then, and of none before: docs/replication.md, "Lease");
 * -1 when the lease holds, no lease is set, the role is replica or the space is absent. */
int64_t mn_engine_space_lapsed_ms(mn_engine_t *e, const char *space);
/* The space's role on this node. */
mn_err mn_engine_space_role(mn_engine_t *e, const char *space, mn_space_role_t *role,
                            mn_error *err);
/* What a door waits on after a write (a consistency level): the entry its own call made.
 * mn_engine_write_begin forgets the calling thread's last write; mn_engine_write_taken then
 * gives the lsn and epoch of the last entry of space that a write call of this thread
 * committed since (false: none, e.g. an exact duplicate or an idempotent retry, which wrote
 * nothing). Thread-local: the write call and the wait run on one thread. */
void mn_engine_write_begin(void);
bool mn_engine_write_taken(const char *space, uint64_t *lsn, uint64_t *epoch);
/* The lsn of the space's last entry and that entry's epoch. */
mn_err mn_engine_space_position(mn_engine_t *e, const char *space, uint64_t *last_lsn,
                                uint64_t *epoch, mn_error *err);
/* Stores n entries of space's primary (framed bytes, as mn_engine_wal_read gives them) at
 * their lsns first_lsn, first_lsn + 1, ...: each verified and decoded, applied through the
 * engine's apply path keeping its lsn, epoch, hlc and ids, and stored as the bytes given;
 * all in one commit group with one fsync (a missing space's creation goes first, alone).
 * first_lsn must be the space's last lsn + 1 (a missing space is at 0), the entries' own lsns
 * consecutive from it and their epochs never below the last entry's: else MN_ERR_CONFLICT ("space
 * S: expected lsn X, got Y") and nothing changes. A space-create entry at lsn 1 creates a missing
 * space, as a REPLICA; a space-drop entry drops it. No dedup judgement and no re-derivation run on
 * these entries (the primary made them, and ships their results as entries of their own); an entry
 * that changes nothing here (its memory was erased since: the primary stripped it) is stored all
 * the same. On an error past the checks, the entries before the failing one stay stored. */
mn_err mn_engine_replicate(mn_engine_t *e, const char *space, uint64_t first_lsn,
                           const uint8_t *const *entries, const size_t *lens, size_t n,
                           mn_error *err);
/* Called on the commit thread once per entry after its group's write (with the hook set,
 * every group is fsynced when engine sync is on), in lsn order per space: client writes,
 * background writes and replicated entries alike. Must be quick, must not block and must
 * not call the engine. */
typedef void (*mn_wal_hook_fn)(void *arg, const char *space, uint64_t epoch, uint64_t lsn);
/* Sets (fn NULL: clears) the hook; call it before writes start or between them. */
void mn_engine_set_wal_hook(mn_engine_t *e, mn_wal_hook_fn fn, void *arg);

/* ---- space snapshots (snapshot*.c; docs/replication.md, "Snapshots") ----
 * A space exported at one RocksDB snapshot as a sequence of chunks, each checksummed
 * (CRC32C) and bounded in size, for a replica whose primary no longer holds the entries
 * it needs (or whose log forked): the space's keys of every column family without the
 * sid, its definition and its WAL position. The HNSW graph is not shipped: the receiver
 * rebuilds it from the vectors. */
typedef struct mn_snapshot mn_snapshot_t;
typedef struct mn_snapshot_install mn_snapshot_install_t;
typedef struct mn_snapshot_info {
    uint64_t id;         /* random, names this export (chunks of two exports never mix) */
    uint64_t last_lsn;   /* the space's position in the snapshot */
    uint64_t last_epoch; /* the epoch of the entry at last_lsn */
    uint64_t first_lsn;  /* the oldest WAL entry the snapshot holds */
} mn_snapshot_info_t;
#define MN_SNAPSHOT_CHUNK_DEFAULT (512u * 1024u)
#define MN_SNAPSHOT_CHUNK_MAX (8u * 1024u * 1024u)
/* Exports space at this moment. chunk_bytes bounds a chunk's payload (0: the default;
 * a record larger than it travels alone). The snapshot pins RocksDB's files until closed:
 * hold it briefly. MN_ERR_NOT_FOUND: no such space. */
mn_err mn_engine_snapshot_open(mn_engine_t *e, const char *space, size_t chunk_bytes,
                               mn_snapshot_t **out, mn_error *err);
void mn_engine_snapshot_info(const mn_snapshot_t *s, mn_snapshot_info_t *out);
/* Chunk seq into *out (malloc'd; free()), *last true for the final one. Any chunk up to one
 * past the last made may be asked again (a transfer that broke resumes there):
 * MN_ERR_INVALID beyond that or past the end. */
mn_err mn_engine_snapshot_chunk(mn_snapshot_t *s, uint32_t seq, uint8_t **out, size_t *len,
                                bool *last, mn_error *err);
void mn_engine_snapshot_close(mn_snapshot_t *s);
/* The snapshot id and sequence number a chunk says it has (its checksum is not checked):
 * false if it is too short or not a chunk. */
bool mn_engine_snapshot_chunk_peek(const uint8_t *buf, size_t len, uint64_t *id, uint32_t *seq);

/* Installs a snapshot of space exported by another engine. The chunks are staged under a
 * space id of their own, so the space as it is here stays whole until _finish swaps the two
 * in one write (a staging left by a crash is deleted at the next start). space must be
 * missing here or a REPLICA (MN_ERR_CONFLICT). */
mn_err mn_engine_snapshot_install_begin(mn_engine_t *e, const char *space,
                                        mn_snapshot_install_t **out, mn_error *err);
/* Takes the next chunk: its seq must be _next's. MN_ERR_CORRUPT (checksum, format) or
 * MN_ERR_CONFLICT (another export, another seq, another space): nothing taken, the install
 * goes on (ask for the chunk again, or abort). */
mn_err mn_engine_snapshot_install_chunk(mn_snapshot_install_t *in, const uint8_t *buf, size_t len,
                                        mn_error *err);
/* The sequence number the install wants next; the export's id (0 before the first chunk). */
uint32_t mn_engine_snapshot_install_next(const mn_snapshot_install_t *in);
uint64_t mn_engine_snapshot_install_id(const mn_snapshot_install_t *in);
/* Has the last chunk been taken? */
bool mn_engine_snapshot_install_complete(const mn_snapshot_install_t *in);
/* After the last chunk: the staged space replaces space here (a REPLICA at the snapshot's
 * epoch; its keyword index, registries and strengths loaded from the staged keys, its
 * vector index rebuilt in the background), in one synced write. *info: the snapshot's.
 * Frees in whatever the result; on failure the space here is as it was. */
mn_err mn_engine_snapshot_install_finish(mn_snapshot_install_t *in, mn_snapshot_info_t *info,
                                         mn_error *err);
/* Drops the staged chunks and frees in (NULL is ignored). */
void mn_engine_snapshot_install_abort(mn_snapshot_install_t *in);

/* Applies an entry from another engine's WAL (framed bytes) to the space of
 * the same name here, as a new local entry: memory ids, times and links are
 * kept; anything already stored or forgotten here stays as it is. Space
 * creation entries are refused (create the space first). */
mn_err mn_engine_ingest(mn_engine_t *e, const uint8_t *bytes, size_t len, mn_error *err);

/* ---- vectors computed after the memory (embedding.c; api/embed is the caller) ---- */
/* Gives memories remembered without an embedding their vectors (vecs[i]: dim floats for
 * ids[i]), one embed WAL entry each, committed together without fsync; each is then ranked
 * by vector, indexed and linked as if it had come with the memory. rcs[i] is each one's
 * result: MN_ERR_GONE (forgotten first: it never gets a vector), MN_ERR_NOT_FOUND,
 * MN_ERR_EXISTS (it has a vector already), MN_ERR_INVALID (not finite, or the zero vector
 * in a cosine space). Returns an error for the whole call (unknown space, wrong dim). */
mn_err mn_engine_embed(mn_engine_t *e, const char *space, const mn_id_t *ids,
                       const float *const *vecs, uint32_t dim, size_t n, mn_err *rcs,
                       mn_error *err);
/* The backfill's scan: up to max live memories of space without a vector into out (*n of
 * them), from *cursor (0 = the start); *cursor becomes where the next call goes on, or
 * UINT32_MAX after the last. */
mn_err mn_engine_unembedded(mn_engine_t *e, const char *space, uint32_t *cursor, size_t max,
                            mn_id_t *out, size_t *n, mn_error *err);

/* Blocks until the background work queued so far is done: semantic links of
 * remembered memories, reinforcements of recalled ones, and vector-index
 * inserts (tests and tools). */
void mn_engine_wait_background(mn_engine_t *e);
/* The associations of a memory (both directions): *out malloc'd (free()). */
typedef struct mn_assoc {
    mn_id_t other;
    uint8_t kind;
    uint8_t outgoing; /* 1: this memory is the edge's `from` */
    float weight;
} mn_assoc_t;
mn_err mn_engine_associations(mn_engine_t *e, const char *space, const mn_id_t *id,
                              mn_assoc_t **out, size_t *n, mn_error *err);
/* Reverses a suppress. */
mn_err mn_engine_unsuppress(mn_engine_t *e, const char *space, const mn_id_t *id, mn_error *err);
mn_err mn_engine_recall(mn_engine_t *e, const char *space, const mn_recall_req_t *req,
                        mn_recall_result_t *out, mn_error *err);
/* ---- a recall's filter outside a space (recall_time.c, filter.c): for memories the engine
 * does not hold, such as the gossiped semantic memories a partition answer ranks
 * (docs/gossip.md, "Partition mode") ---- */
/* The filter a recall of req applies, checked as mn_engine_recall checks it: req->filter,
 * narrowed to the window of the text's time expression when req->time is FILTER. The window
 * read is reported in out->time_window as a recall reports it. f borrows req's pointers.
 * MN_ERR_INVALID for what mn_engine_recall refuses. */
mn_err mn_engine_recall_filter(const mn_recall_req_t *req, int64_t now_ms, mn_filter_t *f,
                               mn_recall_result_t *out, mn_error *err);
/* Does m pass f (from mn_engine_recall_filter) at now_ms, judged as mn_engine_recall judges
 * a live memory of a space: suppression, expiry, kind, when, tags, metadata, context,
 * confidence, the expression? f->as_of_ms must be unset: m carries no history. */
bool mn_engine_filter_match(const mn_filter_t *f, const mn_memory_t *m, int64_t now_ms);
/* Memories in (when, id) order, a page at a time. With filter.as_of_ms, a memory
 * deleted or expired after as_of comes as a redacted entry: forgotten set, id,
 * kind, when, created_at and forgotten_at only (content ""). */
mn_err mn_engine_list(mn_engine_t *e, const char *space, const mn_list_req_t *req,
                      mn_list_result_t *out, mn_error *err);
/* Deletes (through the forget path) every memory whose expiry has passed; returns count. */
mn_err mn_engine_expire(mn_engine_t *e, size_t *expired, mn_error *err);

/* Deletes WAL entries older than each space's newest wal_retain_entries (the
 * sweeper calls this; exposed for tests and tools). */
mn_err mn_engine_trim_wal(mn_engine_t *e, mn_error *err);

/* Writes a consistent RocksDB checkpoint (hard links where possible) of the
 * whole store into dir, which must not exist yet. A backup: open it as a data dir. */
mn_err mn_engine_checkpoint(mn_engine_t *e, const char *dir, mn_error *err);

/* ---- damage (damage.c, check.c; runbooks/single-node.md, "Damaged data directory") ---- */
/* Why space name runs with less than was acknowledged after a salvage start
 * (what was dropped and where), or NULL when it is whole. The string lives as
 * long as the engine. */
const char *mn_engine_space_damage(mn_engine_t *e, const char *name);
/* What a salvage start dropped, for the node (NULL: nothing was dropped). The
 * string lives as long as the engine. */
const char *mn_engine_salvaged(mn_engine_t *e);

/* What mnemo check found. */
typedef struct mn_engine_check_report {
    uint64_t spaces, wal_entries, records, vectors, keyword_lists, graphs;
    uint64_t problems; /* damage found: 0 means the data dir is whole */
} mn_engine_check_report_t;
/* Verifies the data dir offline (no server may run on it): RocksDB's files and
 * log, every WAL entry (checksum, decode, lsns dense per space), memory record,
 * vector, keyword list and graph file. Prints each problem and a summary to out.
 * MN_OK when it could look (rep->problems says what it found). */
mn_err mn_engine_check(const char *data_dir, FILE *out, mn_engine_check_report_t *rep,
                       mn_error *err);

/* Engine-wide figures. */
typedef struct mn_engine_stats {
    uint64_t spaces;
    uint64_t commits;        /* WriteBatches written */
    uint64_t synced_commits; /* of which fsynced */
    uint64_t entries;        /* WAL entries written */
    uint64_t max_group;      /* largest group commit, in requests */
    uint64_t links;          /* semantic links made by the background linker */
    uint64_t links_dropped;  /* background jobs dropped because the queue was full */
    uint64_t reinforced;     /* memories reinforced */
} mn_engine_stats_t;
void mn_engine_get_stats(mn_engine_t *e, mn_engine_stats_t *out);

/* ---- metrics (engine_metrics.c): the figures behind GET /metrics ---- */
typedef struct mn_space_metrics {
    char name[MN_SPACE_NAME_MAX + 1];
    uint64_t episodic, semantic; /* live memories by kind (suppressed included) */
    uint64_t suppressed, tombstones;
    uint64_t hnsw_nodes;         /* searchable nodes of the HNSW index (0: no index yet) */
    uint64_t hnsw_bytes;         /* memory the index holds */
    uint64_t keyword_docs;       /* memories in the keyword (BM25) index */
    uint64_t keyword_terms;      /* distinct words in it */
    uint64_t vector_bytes;       /* in-memory vector storage */
    uint64_t last_lsn;
} mn_space_metrics_t;

typedef struct mn_store_cf_metrics {
    const char *name;           /* column family: "wal", "memories", ... (static) */
    uint64_t live_sst_bytes;
    uint64_t pending_compaction_bytes;
    uint64_t memtable_bytes;
} mn_store_cf_metrics_t;

#define MN_STORE_CF_MAX 8
typedef struct mn_engine_metrics {
    mn_engine_stats_t stats;
    /* successful calls, nanoseconds */
    mn_hist_snapshot_t remember_ns, recall_ns, consolidate_ns;
    mn_hist_snapshot_t commit_write_ns; /* the RocksDB write of one group, with its fsync if any */
    mn_hist_snapshot_t group_entries;   /* WAL entries per group commit */
    mn_hist_snapshot_t group_synced;    /* WAL entries per fsynced group commit */
    mn_space_metrics_t *spaces;         /* malloc'd, sorted by name */
    size_t n_spaces;
    mn_store_cf_metrics_t cf[MN_STORE_CF_MAX];
    size_t n_cf;
    uint64_t block_cache_usage, block_cache_capacity, block_cache_pinned;
    uint64_t rocksdb_wal_bytes;       /* RocksDB's own log files (*.log) in the data dir */
    uint64_t running_compactions, background_errors;
} mn_engine_metrics_t;
/* Fills *out (release with mn_engine_metrics_clear). Cheap: counters, a read
 * lock per space and a few RocksDB property reads. */
mn_err mn_engine_get_metrics(mn_engine_t *e, mn_engine_metrics_t *out, mn_error *err);
void mn_engine_metrics_clear(mn_engine_metrics_t *m);

/* ---- space events (events.c): the stream behind SSE and gRPC Watch ---- */
typedef enum {
    MN_EVENT_REMEMBER = 1,    /* a memory was written: id, memory_kind */
    MN_EVENT_FORGET,          /* id, forget_mode, expired */
    MN_EVENT_UNSUPPRESS,      /* id */
    MN_EVENT_ASSOCIATE,       /* count edges */
    MN_EVENT_CONSOLIDATE,     /* a semantic memory was made or updated: id, count = support */
    MN_EVENT_RECALL,          /* summary: count results, path, recall_confidence */
    /* final events: nothing follows them */
    MN_EVENT_DROPPED,         /* the subscriber fell behind its queue and was dropped */
    MN_EVENT_SPACE_DROPPED,   /* the space was dropped */
    MN_EVENT_CLOSED,          /* the engine is closing */
    /* not final (after the final ones so their numbers stay): a correction wrote a new
     * version: id (the memory's lineage id), count = the new version number */
    MN_EVENT_UPDATE,
} mn_event_kind_t;
const char *mn_event_kind_name(mn_event_kind_t k); /* "remember", ... */

typedef struct mn_event {
    uint64_t seq;             /* per subscription, from 1, no gaps */
    mn_event_kind_t kind;
    int64_t at_ms;            /* wall time the event was published */
    uint64_t lsn;             /* WAL position of the change (0 for recall and final events) */
    mn_id_t id;
    uint8_t memory_kind;      /* mn_kind_t */
    uint8_t forget_mode;      /* mn_forget_mode_t */
    bool expired;             /* forget by TTL expiry */
    uint32_t count;
    float recall_confidence;
    char path[16];            /* recall path */
} mn_event_t;

typedef struct mn_engine_sub mn_engine_sub_t;
/* Called with the engine's event lock held when the queue turns non-empty or the
 * stream ends: must be quick and must not call back into the engine (uv_async_send). */
typedef void (*mn_event_notify_fn)(void *arg);
/* Subscribes to the events of a space (MN_ERR_NOT_FOUND if unknown). queue_cap
 * bounds the events held for the subscriber (0 = 1024); when it is full the
 * subscriber is dropped: it receives what was queued, then MN_EVENT_DROPPED. */
mn_err mn_engine_subscribe(mn_engine_t *e, const char *space, uint32_t queue_cap,
                           mn_event_notify_fn notify, void *notify_arg, mn_engine_sub_t **out,
                           mn_error *err);
/* mn_engine_subscribe with the filter language: filter->expr (copied; NULL or no expression
 * = every event) selects the remember and consolidate events whose memory matches it, judged
 * on the memory as written; the other events (forget, unsuppress, associate, recall) name no
 * memory's fields and all pass. The filter's other members are not read. MN_ERR_INVALID for
 * a malformed expression. */
mn_err mn_engine_subscribe_filtered(mn_engine_t *e, const char *space, uint32_t queue_cap,
                                    const mn_filter_t *filter, mn_event_notify_fn notify,
                                    void *notify_arg, mn_engine_sub_t **out, mn_error *err);
/* Takes up to max queued events into out, waiting up to timeout_ms for the first
 * (0: no wait; < 0: until one comes). Returns the count; *ended turns true once
 * a final event has been taken (later calls return 0 at once). */
size_t mn_engine_sub_next(mn_engine_sub_t *s, mn_event_t *out, size_t max, int timeout_ms,
                          bool *ended);
/* Wakes a waiting mn_engine_sub_next (it returns 0). */
void mn_engine_sub_wake(mn_engine_sub_t *s);
/* Ends the subscription; no notify runs after it returns. mn_engine_close ends
 * every subscription with MN_EVENT_CLOSED; they must still be unsubscribed (after
 * the close, or before it, never at the same time). */
void mn_engine_unsubscribe(mn_engine_sub_t *s);

#endif
