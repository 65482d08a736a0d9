/* The mnemo data model: spaces, memories, filters, confidence. Shared by the
 * engine, the wire codecs and the API layers (types only; functions live in engine/). */
#ifndef MNEMO_MODEL_H
#define MNEMO_MODEL_H

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

typedef enum { MN_METRIC_COSINE = 0, MN_METRIC_L2 = 1, MN_METRIC_DOT = 2 } mn_metric_t;
typedef enum { MN_KIND_EPISODIC = 0, MN_KIND_SEMANTIC = 1 } mn_kind_t;
typedef enum {
    MN_LIFECYCLE_UNSET = 0, /* input only: take the space default */
    MN_LIFECYCLE_EPHEMERAL = 1,
    MN_LIFECYCLE_SESSION = 2,
    MN_LIFECYCLE_PERSISTENT = 3,
} mn_lifecycle_t;
typedef enum { MN_FORGET_DELETE = 0, MN_FORGET_SUPPRESS = 1 } mn_forget_mode_t;

const char *mn_metric_name(mn_metric_t m);
mn_err mn_metric_parse(const char *s, mn_metric_t *out);
const char *mn_kind_name(mn_kind_t k);
mn_err mn_kind_parse(const char *s, mn_kind_t *out);
const char *mn_lifecycle_name(mn_lifecycle_t l);
mn_err mn_lifecycle_parse(const char *s, mn_lifecycle_t *out);
/* [a-z0-9][a-z0-9_-]{0,63} */
bool mn_space_name_valid(const char *name);

/* Associations between memories. */
typedef enum {
    MN_EDGE_TEMPORAL = 0,      /* next/previous episode of the same session */
    MN_EDGE_SEMANTIC = 1,      /* similar content, linked when remembered */
    MN_EDGE_CAUSAL = 2,        /* from a client: from caused to */
    MN_EDGE_EXPLICIT = 3,      /* from a client: related */
    MN_EDGE_CONSOLIDATION = 4, /* episode <-> the semantic memory it supports */
    MN_EDGE_DUPLICATE = 5,     /* a near-duplicate -> its canonical (older) memory */
} mn_edge_kind_t;
#define MN_EDGE_KINDS 6
const char *mn_edge_kind_name(mn_edge_kind_t k);
mn_err mn_edge_kind_parse(const char *s, mn_edge_kind_t *out);

typedef struct mn_edge {
    mn_id_t from;
    mn_id_t to;
    uint8_t kind;  /* mn_edge_kind_t */
    float weight;  /* (0, 1] */
} mn_edge_t;

/* How strongly a memory is held: its forgetting curve's stability, grown each
 * time it is recalled with reinforce (see docs/recall.md). */
typedef struct mn_strength {
    mn_id_t id;
    float stability_days;
    int64_t last_access_ms;
    uint32_t access_count;
} mn_strength_t;

typedef struct mn_kv {
    char *key;
    char *value;
} mn_kv_t;

/* A space's HNSW index parameters (docs/hnsw.md). On create, a 0 field takes
 * the engine default (engine.hnsw_m, ...); the space stores the values it got. */
typedef enum { MN_QUANTIZE_DEFAULT = 0, MN_QUANTIZE_NONE = 1, MN_QUANTIZE_INT8 = 2 } mn_quantize_t;
#define MN_INDEX_M_MIN 4
#define MN_INDEX_M_MAX 64
#define MN_INDEX_EFC_MIN 8
#define MN_INDEX_EF_MAX 4096
typedef struct mn_index_def {
    uint32_t m;               /* links per node (2m on layer 0): 4..64, default 16 */
    uint32_t ef_construction; /* build search width: 8..4096, default 200 */
    uint32_t ef_search;       /* search width when a recall names none: 1..4096, default 64 */
    mn_quantize_t quantize;     /* int8 codes for traversal with exact re-ranking, default none */
} mn_index_def_t;

/* Exact duplicates on the way in (docs/api.md, "Duplicates"): EXACT (the default,
 * and what a space made before the option has) answers a remember whose normalised
 * content, context and embedding equal a live memory's with that memory's id. */
typedef enum { MN_DEDUP_EXACT = 0, MN_DEDUP_OFF = 1 } mn_dedup_mode_t;
const char *mn_dedup_mode_name(mn_dedup_mode_t m);
mn_err mn_dedup_mode_parse(const char *s, mn_dedup_mode_t *out);

#define MN_TEXT_LANGUAGE_MAX 31
#define MN_EMBEDDING_MODEL_MAX 128 /* bytes of printable ASCII */
typedef struct mn_space_def {
    char name[MN_SPACE_NAME_MAX + 1];
    /* keyword search's stemming: "none" or a Snowball language ("english",
     * "french", ...); "" on create means "english" (docs/recall.md §1) */
    char text_language[MN_TEXT_LANGUAGE_MAX + 1];
    uint32_t dim;
    mn_metric_t metric;
    mn_lifecycle_t default_lifecycle; /* UNSET on create means persistent */
    int64_t created_at_ms;          /* set by the engine */
    mn_index_def_t index;
    /* the embedding model whose vectors the space holds (docs/config.md, "Embedding
     * provider"): set = recorded ("" = none: the provider never embeds for it); unset =
     * none recorded (a space made before the field or without a provider) */
    bool embedding_model_set;
    char embedding_model[MN_EMBEDDING_MODEL_MAX + 1];
    mn_dedup_mode_t dedup;
    /* near-duplicates: a new memory whose similarity to an older one is >= this
     * is linked to it by a duplicate edge; 0 = off (the default), else (0, 1] */
    float dedup_threshold;
} mn_space_def_t;

typedef struct mn_space_stats {
    mn_space_def_t def;
    uint64_t memories;   /* live (not tombstoned, not expired), including suppressed */
    uint64_t episodic;
    uint64_t semantic;
    uint64_t suppressed;
    uint64_t tombstones;
    uint64_t epoch;
    uint64_t last_lsn;
    uint64_t wal_first_lsn; /* oldest WAL entry kept (see storage.wal_retain_entries) */
    uint64_t vector_bytes; /* in-memory vector storage */
    /* HNSW index: "none" (below engine.hnsw_threshold), "catching_up" (the index
     * thread has pending work: recalls rank that part exactly) or "ready" */
    const char *index_state;
    uint64_t index_nodes;   /* vectors in the graph */
    uint64_t index_pending; /* changes the index thread has not applied yet */
} mn_space_stats_t;

/* A memory. As input to remember, only the caller-settable fields are read; the
 * engine sets id, created_at_ms, expires_at_ms. As output, every pointer is
 * owned by the struct: release with mn_memory_clear. */
typedef struct mn_memory {
    mn_id_t id;
    mn_kind_t kind;
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
    mn_kv_t *metadata;
    size_t n_metadata;
    mn_lifecycle_t lifecycle;
    int64_t expires_at_ms; /* 0 = never */
    bool suppressed;
    int64_t suppressed_at_ms;   /* last suppress, 0 = never (as-of reads) */
    int64_t unsuppressed_at_ms; /* last unsuppress, 0 = never */
    /* output only: a forgotten memory (deleted or expired) seen by an as-of read,
     * or an erased memory in a WAL entry: id, kind, when, created_at and
     * forgotten_at are all it has (content is "", no embedding) */
    bool forgotten;
    int64_t forgotten_at_ms;
    /* with forgotten: a semantic memory that consolidation retired (its cluster
     * is gone), not one a client forgot; a later run may bring its id back */
    bool retired;
    /* semantic memories: the episodes that support it (sorted by id) */
    mn_id_t *support;
    size_t n_support;
    /* output only: an episode that a semantic memory has absorbed */
    bool consolidated;
    /* output only: strength (stability 0 = never reinforced: the initial value applies) */
    float stability_days;
    int64_t last_access_ms;
    uint32_t access_count;
    /* input only */
    char *idempotency_key; /* may be NULL */
    int64_t ttl_seconds;   /* < 0 = unset; overrides the lifecycle's TTL; 0 = no expiry */
    /* Versions (docs/api.md, "Corrections"): a correction (mn_engine_update) writes a new
     * version with a record of its own; the old one is kept, superseded. The lineage is the
     * id its first version got, and the id reads show. Zero ids and times mean "unset". */
    mn_id_t lineage;       /* the first version's id; zero in a first version (its own id) */
    uint32_t version;      /* 1-based; 0 in records written before versions: 1 */
    mn_id_t supersedes;    /* the version this one replaced; zero in a first version */
    int64_t valid_from_ms; /* when this version became current; 0 = created_at */
    int64_t valid_to_ms;   /* when it stopped being valid (superseded or invalidated); 0 = valid */
    bool superseded;       /* a later version replaced it at valid_to */
    uint32_t changed;      /* MN_CHANGED_* bits: the fields this version changed */
    char *changed_by;      /* who wrote this version (the API key's name), or NULL */
    mn_id_t invalidated_by; /* invalidated: the memory that contradicts it (zero: none named) */
    char *invalid_reason;   /* invalidated: why, or NULL */
    /* output only: the id of this version's own record (reads show the lineage as id) */
    mn_id_t version_id;
} mn_memory_t;

/* Bits of mn_memory_t.changed: the fields a correction may change. */
enum {
    MN_CHANGED_CONTENT = 1u << 0,
    MN_CHANGED_EMBEDDING = 1u << 1,
    MN_CHANGED_TAGS = 1u << 2,
    MN_CHANGED_METADATA = 1u << 3,
    MN_CHANGED_IMPORTANCE = 1u << 4,
    MN_CHANGED_CONTEXT = 1u << 5,
};
#define MN_CHANGED_COUNT 6
/* "content", "embedding", "tags", "metadata", "importance", "context" (static). */
const char *mn_changed_name(unsigned bit_index);

/* Sets the defaults above on a zeroed input memory. */
void mn_memory_init(mn_memory_t *m);
/* Frees every owned pointer and zeroes the struct. */
void mn_memory_clear(mn_memory_t *m);

/* The filter language (docs/api.md, "Filters"), compiled by the doors from JSON into an
 * array of nodes in prefix order: node i's subtree is nodes[i .. i + size), its children
 * the subtrees that follow it one after another. The engine checks the shape
 * (mn__validate_filter) and evaluates it against each candidate (engine/filter_expr.c). */
typedef enum { MN_FILTER_AND = 0, MN_FILTER_OR = 1, MN_FILTER_NOT = 2, MN_FILTER_LEAF = 3 } mn_filter_type_t;
typedef enum {
    MN_FILTER_FIELD_TAGS = 0,
    MN_FILTER_FIELD_WHO,     /* context.who */
    MN_FILTER_FIELD_WHERE,   /* context.where */
    MN_FILTER_FIELD_SESSION, /* context.session */
    MN_FILTER_FIELD_METADATA, /* metadata.<key> */
    MN_FILTER_FIELD_KIND,     /* operand: mn_kind_t in num */
    MN_FILTER_FIELD_LIFECYCLE, /* operand: mn_lifecycle_t in num */
    MN_FILTER_FIELD_IMPORTANCE,
    MN_FILTER_FIELD_WHEN,       /* operand: ms since the epoch in num */
    MN_FILTER_FIELD_CREATED_AT, /* operand: ms since the epoch in num */
    MN_FILTER_FIELDS
} mn_filter_field_t;
typedef enum {
    MN_FILTER_OP_EQ = 0,
    MN_FILTER_OP_NE,  /* exactly not eq: true on a missing field */
    MN_FILTER_OP_IN,  /* eq one of the operands */
    MN_FILTER_OP_NIN, /* exactly not in */
    MN_FILTER_OP_GT,
    MN_FILTER_OP_GTE,
    MN_FILTER_OP_LT,
    MN_FILTER_OP_LTE,
    MN_FILTER_OP_CONTAINS, /* tags, who: holds every operand */
    MN_FILTER_OP_EXISTS,   /* the field is present (tags, who: non-empty) == exists */
    MN_FILTER_OPS
} mn_filter_op_t;
#define MN_FILTER_NODES_MAX 256  /* nodes of one expression */
#define MN_FILTER_DEPTH_MAX 10   /* and/or/not nesting (a leaf under 10 of them at most) */
#define MN_FILTER_VALUES_MAX 1024 /* operands of one expression */
typedef struct mn_filter_value {
    const char *s; /* a string operand, or NULL for a number */
    double num;    /* the number, or the number s reads as when has_num */
    bool has_num;
} mn_filter_value_t;
typedef struct mn_filter_node {
    uint8_t type;  /* mn_filter_type_t */
    uint8_t field; /* leaves: mn_filter_field_t */
    uint8_t op;    /* leaves: mn_filter_op_t */
    bool exists;   /* op exists: the wanted answer */
    uint32_t size; /* nodes of the subtree, this one included (1 for a leaf) */
    const char *key; /* metadata.<key>: the key */
    const mn_filter_value_t *vals; /* operands: 1 (eq ... lte), 1+ (contains), 0+ (in, nin) */
    uint32_t n_vals;
} mn_filter_node_t;
/* Does op apply to field? Ordering (gt ... lte) to metadata, importance, when and
 * created_at; contains to tags and who; eq, ne, in, nin and exists to every field. */
bool mn_filter_op_applies(mn_filter_field_t field, mn_filter_op_t op);
/* Does s read as a number for the filter language: [+-]digits[.digits][(e|E)[+-]digits]
 * (a digit on at least one side of the point), finite? The number goes to *out. */
bool mn_filter_number(const char *s, double *out);

typedef struct mn_filter {
    char **tags_any; /* at least one of these tags */
    size_t n_tags_any;
    char **tags_all; /* every one of these tags */
    size_t n_tags_all;
    mn_kv_t *metadata; /* metadata[key] == value for each pair */
    size_t n_metadata;
    int kind;             /* -1 = any, else mn_kind_t */
    int64_t when_from_ms; /* inclusive; MN_TIME_UNSET = open */
    int64_t when_to_ms;   /* exclusive; MN_TIME_UNSET = open */
    float min_confidence; /* encoding confidence >= this */
    bool include_suppressed;
    const char *who;      /* context.who contains this, or NULL */
    const char *where;    /* context.where equals this, or NULL */
    const char *session;  /* context.session equals this, or NULL */
    /* As-of (time travel): see the space as it was at this wall time: memories
     * created by then and not forgotten by then, suppressed or not as they were
     * then. One deleted or expired after it has no content any more: recall
     * never ranks it, list returns it redacted (forgotten set). MN_TIME_UNSET = now. */
    int64_t as_of_ms;
    /* An expression of the filter language, ANDed with the members above (NULL = none; not
     * owned: it lives as long as the request). */
    const mn_filter_node_t *expr;
    uint32_t n_expr;
} mn_filter_t;
void mn_filter_init(mn_filter_t *f);

/* Bits of mn_confidence_t.reasons: what lowered a result's confidence. */
enum {
    MN_REASON_LOW_SIMILARITY = 1u << 0,
    MN_REASON_LOW_ENCODING_CONFIDENCE = 1u << 1,
    MN_REASON_ASSOCIATIVE = 1u << 2, /* reached only through associations */
    MN_REASON_DECAYED = 1u << 3,     /* retention below 0.7: not recalled for a long time */
    MN_REASON_LOW_SUPPORT = 1u << 4, /* a semantic memory of few episodes (support < 0.9) */
    /* the cue was text only and the space's embedding provider could not embed it in
     * time: ranked by words alone (api/embed) */
    MN_REASON_EMBEDDING_UNAVAILABLE = 1u << 5,
    /* invalidated (mn_engine_invalidate): another memory contradicts it, since valid_to */
    MN_REASON_SUPERSEDED = 1u << 6,
    /* a recall over many spaces (query/) could not search them all: some are listed as
     * missing, and the confidence is lowered by how much of the data they hold */
    MN_REASON_MISSING_PARTITION = 1u << 7,
    /* in a cluster, the space's holders could not be reached: the answer comes from the
     * semantic memories this node got by gossip (issue 18), without the episodes */
    MN_REASON_PARTITION = 1u << 8,
    /* in a cluster, served by a copy more than 1 s behind its primary (a recall over many
     * spaces; a single-space recall's doors say it from the route's lag) */
    MN_REASON_STALE_REPLICA = 1u << 9,
};
#define MN_REASON_COUNT 10
const char *mn_reason_name(unsigned bit_index);
/* The category of a confidence value: "high" (>= 0.8), "medium" (>= 0.6), "low" (>= 0.3) or
 * "very_low" (static). */
const char *mn_confidence_category(float value);

typedef struct mn_confidence {
    float value;        /* 0..1 */
    const char *category; /* "high" | "medium" | "low" | "very_low" (static) */
    uint32_t reasons;   /* MN_REASON_* bits */
} mn_confidence_t;

#endif
