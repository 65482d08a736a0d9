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

#include "mnemo/err.h"
#include "mnemo/util.h"

#define MN_TIME_UNSET INT64_MIN
#define MN_SPACE_NAME_MAX 64
#define MN_DIM_MAX 4096
#define MN_CONTENT_MAX (64 * 1024)
#define MN_K_MAX 1000
#define MN_BATCH_MAX 1000
#define MN_TAGS_MAX 64
#define MN_TAG_LEN_MAX 256
#define MN_METADATA_MAX 64
#define MN_METADATA_KEY_MAX 256
#define MN_METADATA_VALUE_MAX 4096
#define MN_WHO_MAX 32
#define MN_IDEMPOTENCY_KEY_MAX 256

typedef enum { MN_METRIC_COSINE = 0, MN_METRIC_L2 = 1, MN_METRIC_DOT = 2 } mn_metric;
typedef enum { MN_KIND_EPISODIC = 0, MN_KIND_SEMANTIC = 1 } mn_kind;
typedef enum {
    MN_LIFECYCLE_UNSET = 0, /* input only: take the space default */
    MN_LIFECYCLE_EPHEMERAL = 1,
    MN_LIFECYCLE_SESSION = 2,
    MN_LIFECYCLE_PERSISTENT = 3,
} mn_lifecycle;
typedef enum { MN_FORGET_DELETE = 0, MN_FORGET_SUPPRESS = 1 } mn_forget_mode;

const char *mn_metric_name(mn_metric m);
mn_err mn_metric_parse(const char *s, mn_metric *out);
const char *mn_kind_name(mn_kind k);
mn_err mn_kind_parse(const char *s, mn_kind *out);
const char *mn_lifecycle_name(mn_lifecycle l);
mn_err mn_lifecycle_parse(const char *s, mn_lifecycle *out);
/* [a-z0-9][a-z0-9_-]{0,63} */
bool mn_space_name_valid(const char *name);

typedef struct mn_kv {
    char *key;
    char *value;
} mn_kv;

typedef struct mn_space_def {
    char name[MN_SPACE_NAME_MAX + 1];
    uint32_t dim;
    mn_metric metric;
    mn_lifecycle default_lifecycle; /* UNSET on create means persistent */
    int64_t created_at_ms;          /* set by the engine */
} mn_space_def;

typedef struct mn_space_stats {
    mn_space_def def;
    uint64_t memories;   /* live (not tombstoned, not expired), including suppressed */
    uint64_t episodic;
    uint64_t semantic;
    uint64_t suppressed;
    uint64_t tombstones;
    uint64_t epoch;
    uint64_t last_lsn;
    uint64_t vector_bytes; /* in-memory vector storage */
} mn_space_stats;

/* A memory. As input to remember, only the caller-settable fields are read; the
 * engine sets id, created_at_ms, expires_at_ms. As output, every pointer is
 * owned by the struct: release with mn_memory_clear. */
typedef struct mn_memory {
    mn_id_t id;
    mn_kind kind;
    char *content;
    size_t content_len;
    float *embedding; /* dim floats, or NULL in outputs that skip it */
    uint32_t dim;
    int64_t when_ms;       /* event time; MN_TIME_UNSET on input = created_at */
    int64_t created_at_ms;
    float confidence;        /* encoding confidence 0..1 (default 1) */
    float importance;        /* 0..1 (default 0.5) */
    float emotional_valence; /* -1..1 (default 0) */
    char **who;
    size_t n_who;
    char *where;   /* may be NULL */
    char *session; /* may be NULL */
    char **tags;
    size_t n_tags;
    mn_kv *metadata;
    size_t n_metadata;
    mn_lifecycle lifecycle;
    int64_t expires_at_ms; /* 0 = never */
    bool suppressed;
    /* input only */
    char *idempotency_key; /* may be NULL */
    int64_t ttl_seconds;   /* < 0 = unset; overrides the lifecycle's TTL; 0 = no expiry */
} mn_memory_t;

/* Sets the defaults above on a zeroed input memory. */
void mn_memory_init(mn_memory_t *m);
/* Frees every owned pointer and zeroes the struct. */
void mn_memory_clear(mn_memory_t *m);

typedef struct mn_filter {
    char **tags_any; /* at least one of these tags */
    size_t n_tags_any;
    char **tags_all; /* every one of these tags */
    size_t n_tags_all;
    mn_kv *metadata; /* metadata[key] == value for each pair */
    size_t n_metadata;
    int kind;             /* -1 = any, else mn_kind */
    int64_t when_from_ms; /* inclusive; MN_TIME_UNSET = open */
    int64_t when_to_ms;   /* exclusive; MN_TIME_UNSET = open */
    float min_confidence; /* encoding confidence >= this */
    bool include_suppressed;
} mn_filter_t;
void mn_filter_init(mn_filter_t *f);

/* Bits of mn_confidence.reasons: what lowered a result's confidence. */
enum {
    MN_REASON_LOW_SIMILARITY = 1u << 0,
    MN_REASON_LOW_ENCODING_CONFIDENCE = 1u << 1,
    MN_REASON_EXPIRING_SOON = 1u << 2,
};
#define MN_REASON_COUNT 3
const char *mn_reason_name(unsigned bit_index);

typedef struct mn_confidence {
    float value;        /* 0..1 */
    const char *category; /* "high" | "medium" | "low" | "very_low" (static) */
    uint32_t reasons;   /* MN_REASON_* bits */
} mn_confidence;

typedef struct mn_recall_req {
    const float *embedding;
    uint32_t dim;
    uint32_t k;          /* 1..MN_K_MAX (0 = default 10) */
    bool has_threshold;
    float threshold;     /* minimum score */
    mn_filter_t filter;
    bool include_embedding;
} mn_recall_req;

typedef struct mn_recall_hit {
    mn_memory_t memory;
    float score;      /* cosine: cos; dot: a.b; l2: 1 / (1 + euclidean distance) */
    float distance;   /* l2: euclidean distance; cosine: 1 - cos; dot: -a.b */
    mn_confidence confidence;
} mn_recall_hit;

typedef struct mn_recall_result {
    mn_recall_hit *hits; /* best first */
    size_t n_hits;
    const char *path;    /* "exact" (static) */
    uint64_t scanned;    /* candidates examined */
} mn_recall_result;
void mn_recall_result_clear(mn_recall_result *r);

typedef struct mn_list_req {
    mn_filter_t filter;
    uint32_t limit;       /* 1..1000 (0 = default 100) */
    const char *cursor;   /* from a previous mn_list_result.next, or NULL */
    bool include_embedding;
} mn_list_req;

typedef struct mn_list_result {
    mn_memory_t *memories; /* in (when, id) order */
    size_t n;
    char *next;            /* cursor for the next page, NULL at the end */
} mn_list_result;
void mn_list_result_clear(mn_list_result *r);

typedef int64_t (*mn_clock_fn)(void *arg); /* wall time in ms */

typedef struct mn_engine_options {
    const char *data_dir;
    size_t block_cache_bytes;
    size_t write_buffer_bytes;
    bool sync;                    /* fsync acknowledged persistent/session writes (default true) */
    int64_t ephemeral_ttl_s;      /* default 3600 */
    int64_t session_ttl_s;        /* default 86400 */
    int64_t expiry_interval_ms;   /* sweeper period (default 1000); 0 = no sweeper thread */
    mn_lifecycle default_lifecycle; /* for spaces created without one (default persistent) */
    mn_clock_fn clock;            /* NULL = mn_time_now_ms */
    void *clock_arg;
} mn_engine_options;
void mn_engine_options_default(mn_engine_options *o);

typedef struct mn_engine mn_engine_t;

/* Opens (creating if needed) the store under o->data_dir and loads every space. */
mn_err mn_engine_open(const mn_engine_options *o, mn_engine_t **out, mn_error *err);
/* Waits for in-flight writes, flushes and closes the store. */
void mn_engine_close(mn_engine_t *e);

mn_err mn_engine_space_create(mn_engine_t *e, const mn_space_def *def, mn_space_def *out,
                              mn_error *err);
mn_err mn_engine_space_get(mn_engine_t *e, const char *name, mn_space_stats *out, mn_error *err);
/* *out is malloc'd (free()), sorted by name. */
mn_err mn_engine_space_list(mn_engine_t *e, mn_space_def **out, size_t *n, mn_error *err);
/* Drops the space and all its data. */
mn_err mn_engine_space_drop(mn_engine_t *e, const char *name, mn_error *err);

/* Remembers n memories atomically (all or nothing). ids_out[i] is the id of
 * mems[i]; a memory whose idempotency_key was seen before in the space gets the
 * earlier id and is not written again. Returns once durable (per lifecycle). */
mn_err mn_engine_remember(mn_engine_t *e, const char *space, const mn_memory_t *mems, size_t n,
                          mn_id_t *ids_out, mn_error *err);
/* Fills *out (clear with mn_memory_clear). MN_ERR_GONE if forgotten. */
mn_err mn_engine_get(mn_engine_t *e, const char *space, const mn_id_t *id, bool with_embedding,
                     mn_memory_t *out, mn_error *err);
mn_err mn_engine_forget(mn_engine_t *e, const char *space, const mn_id_t *id, mn_forget_mode mode,
                        mn_error *err);
/* Reverses a suppress. */
mn_err mn_engine_unsuppress(mn_engine_t *e, const char *space, const mn_id_t *id, mn_error *err);
mn_err mn_engine_recall(mn_engine_t *e, const char *space, const mn_recall_req *req,
                        mn_recall_result *out, mn_error *err);
mn_err mn_engine_list(mn_engine_t *e, const char *space, const mn_list_req *req,
                      mn_list_result *out, mn_error *err);
/* Deletes (through the forget path) every memory whose expiry has passed; returns count. */
mn_err mn_engine_expire(mn_engine_t *e, size_t *expired, mn_error *err);

/* Engine-wide figures. */
typedef struct mn_engine_stats {
    uint64_t spaces;
    uint64_t commits;        /* WriteBatches written */
    uint64_t synced_commits; /* of which fsynced */
    uint64_t entries;        /* WAL entries written */
    uint64_t max_group;      /* largest group commit, in requests */
} mn_engine_stats;
void mn_engine_get_stats(mn_engine_t *e, mn_engine_stats *out);

#endif
