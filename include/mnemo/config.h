/* mnemo configuration: defaults, then a TOML file, then MNEMO_<TABLE>_<KEY> environment
 * variables. Every key, its type, default, range and doc live in one table in
 * api/config/config.c; mnemo.example.toml documents them for operators and docs/config.md
 * explains the rules. */
#ifndef MNEMO_CONFIG_H
#define MNEMO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mnemo/err.h"

/* An array of strings: items[0..count) malloc'd, owned by the config. */
typedef struct mn_config_strlist {
    char **items;
    size_t count;
} mn_config_strlist_t;

typedef struct mn_config_http {
    char *bind;               /* "127.0.0.1" */
    int64_t port;             /* 7700; 0 = ephemeral */
    int64_t max_body_bytes;   /* 16 MiB */
    int64_t max_header_bytes; /* 64 KiB */
    int64_t max_connections;  /* 1024 */
    int64_t idle_timeout_ms;  /* 60000 */
    int64_t max_pipelined;    /* 64 */
    int64_t max_pipelined_bytes; /* 16 MiB: request bytes one connection holds unanswered */
    int64_t max_inflight_bytes;  /* 256 MiB: request bodies the server holds */
    int64_t max_streams;         /* 256 event streams (outside max_connections) */
    int64_t max_streams_per_key; /* 16 per API key; 0 = no per-key cap */
    int64_t stream_max_lifetime_s; /* 3600; 0 = streams never expire */
    int64_t worker_threads;   /* 16 */
    int64_t request_timeout_ms; /* 30000: a request's headers + body must arrive within it */
    char *tls_cert;             /* "" = plain HTTP; else a PEM certificate chain file */
    char *tls_key;              /* PEM private key of tls_cert; set both or neither */
} mn_config_http_t;

/* [grpc]: the gRPC API (api/proto/mnemo/v1/mnemo.proto, docs/grpc.md). */
typedef struct mn_config_grpc {
    bool enabled;                   /* true */
    char *bind;                     /* "127.0.0.1" */
    int64_t port;                   /* 7701; 0 = ephemeral */
    int64_t threads;                /* 16 */
    int64_t max_message_bytes;      /* 16 MiB */
    int64_t max_concurrent_streams; /* 256 per connection */
    int64_t max_watches;            /* 1024 */
    int64_t handshake_timeout_ms;   /* 30000: slow clients are closed */
    int64_t idle_timeout_ms;        /* 600000 */
    char *tls_cert;                 /* "" = plaintext */
    char *tls_key;
} mn_config_grpc_t;

typedef struct mn_config_storage {
    char *data_dir;          /* "./data" */
    int64_t block_cache_mb;  /* 256 */
    int64_t write_buffer_mb; /* 64 */
    bool sync;               /* true: fsync every write batch */
    int64_t wal_retain_entries; /* 100000 per space; 0 = keep all */
} mn_config_storage_t;

typedef struct mn_config_engine {
    char *default_lifecycle;       /* "ephemeral" | "session" | "persistent" (default) */
    int64_t ephemeral_ttl_seconds; /* 3600 */
    int64_t session_ttl_seconds;   /* 86400 */
    int64_t expiry_interval_ms;    /* 1000 */
    double link_threshold;         /* 0.8: semantic auto-link at this similarity or more */
    int64_t link_max;              /* 5 semantic links per memory; 0 = none */
    int64_t temporal_window_ms;    /* 3600000: link consecutive episodes of a session */
    double initial_stability_days; /* 7.0: forgetting-curve stability of a new memory */
    int64_t as_of_max_age_s;       /* 2592000: how far back as-of reads may look */
    int64_t consolidate_interval_s; /* 3600: scheduled consolidation; 0 = on demand only */
    double consolidate_threshold;  /* 0.75: cosine similarity to join a cluster */
    int64_t consolidate_min_support; /* 3 episodes make a semantic memory */
    int64_t hnsw_threshold;        /* 2000: spaces this large recall through HNSW */
    int64_t hnsw_m;                /* 16 */
    int64_t hnsw_ef_construction;  /* 200 */
    int64_t hnsw_ef_search;        /* 64 */
    bool hnsw_quantize;            /* false: int8 codes with exact re-ranking */
    int64_t hnsw_save_interval_s;  /* 60: background save of changed graphs; 0 = at shutdown */
    int64_t max_spaces;            /* 10000: creating one more space is refused */
} mn_config_engine_t;

typedef struct mn_config_log {
    char *level;  /* "debug" | "info" (default) | "warn" | "error" */
    char *format; /* "text" (default) | "json" */
} mn_config_log_t;

typedef struct mn_config_cluster {
    bool enabled;            /* false: single node */
    char *node_id;           /* "" = generated and persisted in the data dir by the cluster code */
    char *bind;              /* "127.0.0.1" */
    int64_t swim_port;       /* 7946 */
    mn_config_strlist_t seeds; /* "host:port" of nodes to join; empty = start a new cluster */
    char *key;               /* cluster HMAC key; "" = none */
    char *profile;           /* "lan" (default) | "fast" */
    int64_t forward_timeout_ms; /* 5000: one forwarded request (any node serves any space) */
    /* placement (docs/replication.md); served by GET /v1/cluster/spaces */
    int64_t replication_factor;    /* 3: copies of each space, the primary included (1..7) */
    int64_t rebalance_concurrency; /* 4: spaces gaining a copy for balance at once */
    char *zone;                    /* "" = none; copies of a space spread over zones */
    int64_t peer_port;             /* 7702: the peer bus's TCP port (replication); 0 = any */
    char *tls_cert;                /* "" = plain peer bus; else PEM chain (mutual TLS) */
    char *tls_key;                 /* PEM private key of tls_cert */
    char *tls_ca;                  /* PEM CA a peer's certificate must chain to */
    char *tls_mode;                /* "require" | "accept" | "prefer" (mn_peer_tls_mode_t) */
    char *write_consistency;       /* "quorum" | "one" | "all": the level of a write naming none */
    int64_t write_timeout_ms;      /* 2000: a write waits this long for its level, then 503 */
    /* the space catalog (api/cluster_catalog.c, docs/replication.md "The space catalog") */
    int64_t catalog_sync_interval_ms; /* 2000: anti-entropy with one random member this often */
    int64_t catalog_tombstone_ttl_s;  /* 604800: a drop's tombstone is kept this long */
    /* partition mode for writes (docs/gossip.md "Partition mode", api/cluster_hints.c) */
    char *partition_writes;       /* "reject" (503) | "accept" (a hint, merged after the heal) */
    int64_t partition_writes_max; /* 10000: hints pending on this node at most */
    /* recall over many spaces (docs/recall.md "Hedge budget", api/cluster_query_budget.c) */
    int64_t hedge_budget_percent; /* 10: hedged frames at most this % of first sends (+ floor) */
    int64_t leave_handover_ms; /* 5000: a stopping node waits this long for its primaries to go */
} mn_config_cluster_t;

/* [cluster.swim]: overrides of the profile's SWIM timings (0 = the profile's value). */
typedef struct mn_config_cluster_swim {
    int64_t probe_interval_ms;
    int64_t probe_timeout_ms;
    int64_t suspicion_mult;
    int64_t gossip_interval_ms;
    int64_t push_pull_interval_ms;
    bool lifeguard; /* true: Lifeguard (health multiplier, dynamic suspicion, buddy) */
} mn_config_cluster_swim_t;

/* [gossip]: anti-entropy of semantic memories between nodes (cluster mode; docs/gossip.md). */
typedef struct mn_config_gossip {
    char *scope;         /* "cluster" (default): every node keeps every space's; "holders" */
    int64_t interval_ms; /* 1000: a round this often */
    int64_t fanout;      /* 3: peers per round */
} mn_config_gossip_t;

/* [mcp]: the MCP endpoint POST /mcp (docs/api.md, "MCP"). */
typedef struct mn_config_mcp {
    int64_t max_sessions;              /* 1024: sessions in the table */
    int64_t max_sessions_per_key;      /* 256: more evicts the key's least recently used */
    int64_t session_idle_s;            /* 3600: a session unused this long ends */
    int64_t default_dim;               /* 384: dim of a space that remember creates */
    int64_t max_body_bytes;            /* 1 MiB: one POST /mcp (http.max_body_bytes still applies) */
    char *default_space;               /* "default": the space of tools given none */
    mn_config_strlist_t allowed_origins; /* browser origins allowed besides loopback */
} mn_config_mcp_t;

/* [embedding]: an OpenAI-compatible POST /v1/embeddings provider for memories and recalls
 * that come with text only (api/embed/embed.h, docs/config.md). Off while url is "". */
typedef struct mn_config_embedding {
    char *url;           /* "" = off; http://host:port/path or https://... (the endpoint) */
    char *model;         /* the "model" of each request; required with url */
    int64_t dim;         /* values per vector; required with url; spaces of this dim use it */
    mn_config_strlist_t spaces; /* names of the spaces that use it ("*" = every one of dim) */
    int64_t batch_size;  /* 32 texts per request */
    int64_t timeout_ms;  /* 10000: one request (a recall waits at most this) */
    int64_t max_backlog; /* 10000 memories (ids) queued; more wait for the backfill scan */
    int64_t retry_max_ms; /* 30000: the longest wait between retries (backoff doubles to it) */
    int64_t backfill_interval_s; /* 60: scan for memories without a vector this often */
    char *api_key_env;   /* "" = no key; else the environment variable holding it */
    char *ca_file;       /* "" = the system's CA certificates (https) */
} mn_config_embedding_t;

/* [[auth.keys]]: one API key of the HTTP API (api/auth.h checks requests against them). */
typedef struct mn_config_auth_key {
    char *name;               /* "" = unnamed; shown in logs, never the key itself */
    char *sha256;             /* 64 hex digits: SHA-256 of the key */
    char *role;               /* "read" | "write" | "admin" */
    mn_config_strlist_t spaces; /* space names the key may use; "*" = every space */
} mn_config_auth_key_t;

/* An array of tables. Every such type has exactly this layout (items, count): config.c
 * handles them through one generic view. */
typedef struct mn_config_auth_keys {
    mn_config_auth_key_t *items; /* malloc'd, owned by the config */
    size_t count;
} mn_config_auth_keys_t;

typedef struct mn_config_auth {
    bool enabled;             /* false: every request is allowed (loopback only, or --insecure) */
    mn_config_auth_keys_t keys; /* [[auth.keys]] */
} mn_config_auth_t;

/* [audit]: the audit log of bulk operations (forget by filter; docs/config.md). */
typedef struct mn_config_audit {
    char *path; /* "" = <data_dir>/audit.jsonl; "off" = none */
} mn_config_audit_t;

typedef struct mn_config {
    mn_config_http_t http;
    mn_config_grpc_t grpc;
    mn_config_auth_t auth;
    mn_config_storage_t storage;
    mn_config_engine_t engine;
    mn_config_log_t log;
    mn_config_cluster_t cluster;
    mn_config_cluster_swim_t cluster_swim;
    mn_config_mcp_t mcp;
    mn_config_embedding_t embedding;
    mn_config_audit_t audit;
    mn_config_gossip_t gossip;
} mn_config_t;

/* Fills c (overwriting whatever it held) with the defaults, then the values of the TOML file
 * at path (if path is not NULL), then the MNEMO_<TABLE>_<KEY> variables of envp (a
 * NULL-terminated "NAME=value" array like environ; NULL = none). Unknown keys, wrong types
 * and out-of-range values are errors: MN_ERR_PARSE / MN_ERR_INVALID with
 * "file:line:col: ..." or "MNEMO_X_Y: ..." in err; MN_ERR_IO if the file cannot be read.
 * On failure c is left zeroed; mn_config_free(c) is safe either way. */
mn_err mn_config_load(mn_config_t *c, const char *path, char **envp, mn_error *err);

/* Frees every string of c and zeroes it. Safe on a zeroed or already freed config. */
void mn_config_free(mn_config_t *c);

/* Sets one key, "table.key", from text parsed as the key's type (what an environment variable
 * holds: integers/floats/booleans as TOML literals, strings verbatim, string arrays
 * comma-separated or as a TOML array). origin prefixes error messages. */
mn_err mn_config_set(mn_config_t *c, const char *name, const char *text, const char *origin,
                     mn_error *err);

/* Writes the effective configuration as a TOML document, with each key's doc as a comment.
 * Secrets (cluster.key) are not printed, only whether they are set. Arrays of tables
 * ([[auth.keys]]) follow the other keys of their table. */
void mn_config_dump(const mn_config_t *c, FILE *out);

#endif
