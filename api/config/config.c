/* mnemo configuration: binds a TOML document (api/config/toml.c) and MNEMO_* environment variables
 * to struct mn_config through ONE static table of keys (KEYS below).
 *
 * Order: defaults, then the file, then the environment; each layer replaces whole values.
 * Invariants: every field of mn_config_t appears exactly once in KEYS (mn_config_free and
 * mn_config_dump rely on it); every value stored in the struct has passed its key's type,
 * range, choice and check rules; defaults are checked by the same rules on every load, so
 * a bad default fails loudly (MN_ERR_INTERNAL) instead of shipping.
 * Errors name where the value came from: "file:line:col: ..." or "MNEMO_HTTP_PORT: ...". */
#include "mnemo/config.h"

#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/model.h"
#include "toml.h"

typedef enum { K_STRING, K_INT, K_FLOAT, K_BOOL, K_STRINGS, K_TABLES } kind;

typedef struct cfg_key {
    const char *table;   /* "http"; a nested table is written "a.b" */
    const char *key;     /* "port" */
    kind type;
    size_t off;          /* offset of the field in mn_config_t */
    const char *s;       /* default of K_STRING; K_STRINGS: comma-separated, NULL = empty */
    int64_t i;           /* default of K_INT */
    double f;            /* default of K_FLOAT */
    bool b;              /* default of K_BOOL */
    int64_t min, max;    /* K_INT range, inclusive */
    double fmin, fmax;   /* K_FLOAT range, inclusive */
    const char *choices; /* K_STRING: allowed values "a|b|c", NULL = any */
    const char *(*check)(const char *s); /* strings: NULL if s is fine, else why not */
    bool secret;                         /* never printed by mn_config_dump */
    bool required;                       /* field of a table element: must be given */
    const struct cfg_key *fields;        /* K_TABLES: the keys of one element, offsets in it */
    size_t n_fields;
    size_t elem_size;                    /* K_TABLES: sizeof one element */
    const char *doc;                     /* one line for mn_config_dump */
} cfg_key;

/* Generic view of an array-of-tables field (mn_config_auth_keys_t and its kind). */
typedef struct cfg_tables {
    void *items;
    size_t count;
} cfg_tables;
_Static_assert(sizeof(cfg_tables) == sizeof(mn_config_auth_keys_t) &&
                   offsetof(cfg_tables, count) == offsetof(mn_config_auth_keys_t, count),
               "arrays of tables share one layout");

static const char *check_nonempty(const char *s)
{
    return *s ? NULL : "must not be empty";
}

static const char *check_hostport(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return "must be host:port";
    const char *d = colon + 1;
    long port = 0;
    if (!*d || strlen(d) > 5) return "must be host:port (port 1..65535)";
    for (; *d; d++) {
        if (*d < '0' || *d > '9') return "must be host:port (port 1..65535)";
        port = port * 10 + (*d - '0');
    }
    return port >= 1 && port <= 65535 ? NULL : "must be host:port (port 1..65535)";
}

/* FIELD(f, T): offset of mn_config_t field f, which must have type T (else a compile error). */
#define FIELD(f, T)                                                                              \
    (offsetof(mn_config_t, f) + 0 * sizeof(char[_Generic(((mn_config_t *)0)->f, T: 1, default: -1)]))
#define KSTR(t, k, f, def, chk, d)                                                               \
    {t, k, K_STRING, FIELD(f, char *), .s = def, .check = chk, .doc = d}
#define KENUM(t, k, f, def, ch, d) {t, k, K_STRING, FIELD(f, char *), .s = def, .choices = ch, .doc = d}
#define KSECRET(t, k, f, d) {t, k, K_STRING, FIELD(f, char *), .s = "", .secret = true, .doc = d}
#define KINT(t, k, f, def, lo, hi, d)                                                            \
    {t, k, K_INT, FIELD(f, int64_t), .i = def, .min = lo, .max = hi, .doc = d}
#define KFLOAT(t, k, fld, def, lo, hi, d)                                                        \
    {t, k, K_FLOAT, FIELD(fld, double), .f = def, .fmin = lo, .fmax = hi, .doc = d}
#define KBOOL(t, k, f, def, d) {t, k, K_BOOL, FIELD(f, bool), .b = def, .doc = d}
#define KLIST(t, k, f, def, chk, d)                                                              \
    {t, k, K_STRINGS, FIELD(f, mn_config_strlist_t), .s = def, .check = chk, .doc = d}
#define KTABLES(t, k, f, T, E, flds, d)                                                          \
    {t, k, K_TABLES, FIELD(f, T), .fields = flds, .n_fields = sizeof flds / sizeof flds[0],      \
     .elem_size = sizeof(E), .doc = d}
/* EFIELD(E, f, T): offset of field f of element struct E, which must have type T. */
#define EFIELD(E, f, T)                                                                          \
    (offsetof(E, f) + 0 * sizeof(char[_Generic(((E *)0)->f, T: 1, default: -1)]))

/* "" (off), or http(s)://host[:port][/path]: the rest is judged where it is used
 * (api/embed/embed_http.c). */
static const char *check_url(const char *s)
{
    if (!*s) return NULL;
    const char *h = !strncmp(s, "http://", 7) ? s + 7 : !strncmp(s, "https://", 8) ? s + 8 : NULL;
    if (!h) return "must start with http:// or https://";
    if (!*h || *h == '/' || *h == ':') return "has no host";
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) return "must not hold spaces or control bytes";
    return NULL;
}

/* "" or a zone label: up to 64 bytes of [A-Za-z0-9._:-] (it travels in SWIM metadata). */
static const char *check_zone(const char *s)
{
    if (strlen(s) > 64) return "must be at most 64 bytes";
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("._:-", *p)))
            return "may only hold letters, digits and . _ : -";
    return NULL;
}

/* "" or an environment variable's name: [A-Za-z_][A-Za-z0-9_]* */
static const char *check_env_name(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!(isalpha((unsigned char)*p) || *p == '_' || (p > s && isdigit((unsigned char)*p))))
            return "must be the name of an environment variable (the key itself never goes in "
                   "the file)";
    return NULL;
}

static const char *check_sha256(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n])) return "must be 64 hex digits (sha256sum of the key)";
    return n == 64 ? NULL : "must be 64 hex digits (sha256sum of the key)";
}

/* The keys of one [[auth.keys]] element ("table" is the array's full name, for messages). */
static const cfg_key AUTH_KEY_FIELDS[] = {
    {"auth.keys", "name", K_STRING, EFIELD(mn_config_auth_key_t, name, char *), .s = "",
     .doc = "label in logs"},
    {"auth.keys", "sha256", K_STRING, EFIELD(mn_config_auth_key_t, sha256, char *),
     .check = check_sha256, .required = true, .doc = "SHA-256 of the key, hex"},
    {"auth.keys", "role", K_STRING, EFIELD(mn_config_auth_key_t, role, char *),
     .choices = "read|write|admin", .required = true, .doc = "what the key may do"},
    {"auth.keys", "spaces", K_STRINGS, EFIELD(mn_config_auth_key_t, spaces, mn_config_strlist_t),
     .check = check_nonempty, .required = true, .doc = "spaces the key may use, \"*\" = all"},
};

#define MIB (1024 * 1024)
#define DAY_MS (86400 * 1000)
#define MAX_TTL_S (INT64_MAX / 1000) /* a TTL must still fit in int64 milliseconds */

/* THE KEYS. To add one: add the field to its struct in include/mnemo/config.h, add ONE line
 * here (keys of a table stay together, tables in the order the dump prints them), and add it
 * with its default and a comment to mnemo.example.toml (test_config checks both agree).
 * Everything else follows: file binding, MNEMO_<TABLE>_<KEY> override, range checks, dump.
 *   KSTR(table, key, field, default, check fn or NULL, doc)
 *   KENUM(table, key, field, default, "a|b|c", doc)      a string from a fixed set
 *   KSECRET(table, key, field, doc)                      a string never dumped (default "")
 *   KINT(table, key, field, default, min, max, doc)      int64_t, inclusive range
 *   KFLOAT(table, key, field, default, min, max, doc)    double, inclusive range
 *   KBOOL(table, key, field, default, doc)
 *   KLIST(table, key, field, "a,b" or NULL, check fn or NULL, doc)  mn_config_strlist_t
 *   KTABLES(table, key, field, array type, element type, FIELDS, doc)  [[table.key]]
 *     an array of tables whose elements have the keys FIELDS (a static cfg_key array with
 *     EFIELD offsets; .required fields must be given, the others default). It must be the
 *     last key of its table (the dump prints [[table.key]] after the table's other keys).
 *     In the environment it is a TOML array of inline tables:
 *     MNEMO_AUTH_KEYS='[{sha256 = "...", role = "read", spaces = ["*"]}]'
 * A new table "x" (or nested "x.y") needs nothing but its keys; its struct goes in mn_config_t. */
static const cfg_key KEYS[] = {
    KSTR("http", "bind", http.bind, "127.0.0.1", check_nonempty, "address the HTTP API listens on"),
    KINT("http", "port", http.port, 7700, 0, 65535, "HTTP port (0 = any free port)"),
    KINT("http", "max_body_bytes", http.max_body_bytes, 16 * MIB, 1024, 1024 * MIB,
         "larger request bodies get 413"),
    KINT("http", "max_header_bytes", http.max_header_bytes, 65536, 1024, 16 * MIB,
         "larger request line + headers get 431"),
    KINT("http", "max_connections", http.max_connections, 1024, 1, 1000000,
         "further connections are closed at once"),
    KINT("http", "idle_timeout_ms", http.idle_timeout_ms, 60000, 100, DAY_MS,
         "close keep-alive connections idle this long"),
    KINT("http", "max_pipelined", http.max_pipelined, 64, 1, 4096,
         "queued requests per connection before reading pauses"),
    KINT("http", "max_pipelined_bytes", http.max_pipelined_bytes, 16 * MIB, 65536, 1024 * MIB,
         "request bytes one connection may hold unanswered before reading pauses"),
    KINT("http", "max_inflight_bytes", http.max_inflight_bytes, 256 * MIB, 1024,
         (int64_t)64 * 1024 * MIB,
         "request bodies held by the server; past it new bodies get 503 (>= max_body_bytes)"),
    KINT("http", "max_streams", http.max_streams, 256, 1, 100000,
         "open event streams (SSE), outside max_connections; more get 503"),
    KINT("http", "max_streams_per_key", http.max_streams_per_key, 16, 0, 100000,
         "open event streams per API key (auth on); more get 429; 0 = no per-key cap"),
    KINT("http", "stream_max_lifetime_s", http.stream_max_lifetime_s, 3600, 0, 86400 * 7,
         "an event stream is ended after this (clients reconnect); 0 = never"),
    KINT("http", "worker_threads", http.worker_threads, 16, 1, 1024,
         "threads running request handlers"),
    KINT("http", "request_timeout_ms", http.request_timeout_ms, 30000, 100, DAY_MS,
         "a request's headers + body must arrive within this, else 408"),
    KSTR("http", "tls_cert", http.tls_cert, "", NULL,
         "PEM certificate chain for HTTPS; \"\" = plain HTTP"),
    KSTR("http", "tls_key", http.tls_key, "", NULL, "PEM private key of tls_cert"),

    KBOOL("grpc", "enabled", grpc.enabled, true, "serve the gRPC API (mnemo.v1.Mnemo)"),
    KSTR("grpc", "bind", grpc.bind, "127.0.0.1", check_nonempty,
         "address the gRPC API listens on"),
    KINT("grpc", "port", grpc.port, 7701, 0, 65535, "gRPC port (0 = any free port)"),
    KINT("grpc", "threads", grpc.threads, 16, 1, 256,
         "worker threads that run the gRPC handlers (two more poll the network)"),
    KINT("grpc", "max_message_bytes", grpc.max_message_bytes, 16 * 1024 * 1024, 1024,
         1024 * 1024 * 1024, "largest request message; larger ones get RESOURCE_EXHAUSTED"),
    KINT("grpc", "max_concurrent_streams", grpc.max_concurrent_streams, 256, 1, 100000,
         "calls in flight on one HTTP/2 connection"),
    KINT("grpc", "max_watches", grpc.max_watches, 1024, 1, 65536, "open Watch streams at most"),
    KINT("grpc", "handshake_timeout_ms", grpc.handshake_timeout_ms, 30000, 100, DAY_MS,
         "a connection's TLS/HTTP/2 handshake must complete within this, else it is closed"),
    KINT("grpc", "idle_timeout_ms", grpc.idle_timeout_ms, 600000, 1000, DAY_MS,
         "a connection without calls this long is closed (clients reconnect)"),
    KSTR("grpc", "tls_cert", grpc.tls_cert, "", NULL,
         "PEM certificate chain for gRPC over TLS; \"\" = plaintext"),
    KSTR("grpc", "tls_key", grpc.tls_key, "", NULL, "PEM private key of grpc.tls_cert"),

    KBOOL("auth", "enabled", auth.enabled, false,
          "require an API key (Authorization: Bearer) on the HTTP API"),
    KTABLES("auth", "keys", auth.keys, mn_config_auth_keys_t, mn_config_auth_key_t, AUTH_KEY_FIELDS,
            "API keys: [[auth.keys]] tables with name, sha256, role, spaces"),

    KSTR("storage", "data_dir", storage.data_dir, "./data", check_nonempty,
         "directory of the RocksDB store, WALs and node identity"),
    KINT("storage", "block_cache_mb", storage.block_cache_mb, 256, 1, 1024 * 1024,
         "RocksDB block cache size"),
    KINT("storage", "write_buffer_mb", storage.write_buffer_mb, 64, 1, 64 * 1024,
         "RocksDB memtable size"),
    KBOOL("storage", "sync", storage.sync, true, "fsync every write before acknowledging it"),
    KINT("storage", "wal_retain_entries", storage.wal_retain_entries, 100000, 0, INT64_MAX,
         "WAL entries kept per space (0 = all)"),

    KENUM("engine", "default_lifecycle", engine.default_lifecycle, "persistent",
          "ephemeral|session|persistent", "lifecycle of memories that do not name one"),
    KINT("engine", "ephemeral_ttl_seconds", engine.ephemeral_ttl_seconds, 3600, 1, MAX_TTL_S,
         "ephemeral memories expire after this long"),
    KINT("engine", "session_ttl_seconds", engine.session_ttl_seconds, 86400, 1, MAX_TTL_S,
         "session memories expire after this long"),
    KINT("engine", "expiry_interval_ms", engine.expiry_interval_ms, 1000, 10, DAY_MS,
         "how often expired memories are swept"),
    KFLOAT("engine", "link_threshold", engine.link_threshold, 0.8, 0.0, 1.0,
           "semantic auto-link when similarity is at least this"),
    KINT("engine", "link_max", engine.link_max, 5, 0, 100,
         "semantic links per new memory (0 = none)"),
    KINT("engine", "temporal_window_ms", engine.temporal_window_ms, 3600000, 0, DAY_MS,
         "link a session's consecutive episodes this close in time (0 = never)"),
    KFLOAT("engine", "initial_stability_days", engine.initial_stability_days, 7.0, 0.01, 36500.0,
           "forgetting-curve stability of a new memory of importance 0.5"),
    KINT("engine", "as_of_max_age_s", engine.as_of_max_age_s, 2592000, 0, MAX_TTL_S,
         "how far back as-of reads may look"),
    KINT("engine", "consolidate_interval_s", engine.consolidate_interval_s, 3600, 0, MAX_TTL_S,
         "consolidate every space this often (0 = only on demand)"),
    KFLOAT("engine", "consolidate_threshold", engine.consolidate_threshold, 0.75, 0.01, 1.0,
           "cosine similarity an episode needs to join a cluster"),
    KINT("engine", "consolidate_min_support", engine.consolidate_min_support, 3, 1, 100000,
         "episodes a new semantic memory needs"),
    KINT("engine", "hnsw_threshold", engine.hnsw_threshold, 2000, 1, INT32_MAX,
         "spaces with this many vectors recall through the HNSW index"),
    KINT("engine", "hnsw_m", engine.hnsw_m, 16, MN_INDEX_M_MIN, MN_INDEX_M_MAX,
         "HNSW links per node (M) of spaces created without one"),
    KINT("engine", "hnsw_ef_construction", engine.hnsw_ef_construction, 200, MN_INDEX_EFC_MIN,
         MN_INDEX_EF_MAX, "HNSW build-time search width of spaces created without one"),
    KINT("engine", "hnsw_ef_search", engine.hnsw_ef_search, 64, 1, MN_INDEX_EF_MAX,
         "HNSW query-time search width of spaces created without one (a request may pass ef)"),
    KBOOL("engine", "hnsw_quantize", engine.hnsw_quantize, false,
          "int8 codes in the index, exact re-ranking of candidates (spaces created without it)"),
    KINT("engine", "hnsw_save_interval_s", engine.hnsw_save_interval_s, 60, 0, 31536000,
         "save a changed HNSW graph this often, in the background (0 = only at shutdown)"),
    KINT("engine", "max_spaces", engine.max_spaces, 10000, 1, 1000000,
         "spaces the store may hold; creating one more is refused (409 limit_reached)"),

    KENUM("log", "level", log.level, "info", "debug|info|warn|error", "least severe level logged"),
    KENUM("log", "format", log.format, "text", "text|json", "log line format"),

    KBOOL("cluster", "enabled", cluster.enabled, false, "false = single node, no SWIM/replication"),
    KSTR("cluster", "node_id", cluster.node_id, "", NULL,
         "\"\" = generated once and kept in the data dir"),
    KSTR("cluster", "bind", cluster.bind, "127.0.0.1", check_nonempty,
         "address for SWIM (UDP) and internal traffic"),
    KINT("cluster", "swim_port", cluster.swim_port, 7946, 0, 65535, "SWIM UDP port"),
    KLIST("cluster", "seeds", cluster.seeds, NULL, check_hostport,
          "host:port of nodes to join; empty = start a new cluster"),
    KSECRET("cluster", "key", cluster.key, "shared HMAC key of the cluster; \"\" = none"),
    KENUM("cluster", "profile", cluster.profile, "lan", "lan|fast", "SWIM timing profile"),
    KINT("cluster", "forward_timeout_ms", cluster.forward_timeout_ms, 5000, 100, 600000,
         "a request forwarded to the node that serves it must be answered within this"),
    KINT("cluster", "replication_factor", cluster.replication_factor, 3, 1, 7,
         "copies of each space, the primary included"),
    KINT("cluster", "rebalance_concurrency", cluster.rebalance_concurrency, 4, 1, 1024,
         "spaces gaining a copy for balance at once"),
    KSTR("cluster", "zone", cluster.zone, "", check_zone,
         "failure-domain label; copies of a space spread over zones (\"\" = none)"),
    KINT("cluster", "peer_port", cluster.peer_port, 7702, 0, 65535,
         "TCP port of the peer bus (replication); 0 = any free port, announced in SWIM"),
    KSTR("cluster", "tls_cert", cluster.tls_cert, "", NULL,
         "PEM certificate chain of this node for TLS on the peer bus; \"\" = plain TCP "
         "(set tls_cert, tls_key and tls_ca together)"),
    KSTR("cluster", "tls_key", cluster.tls_key, "", NULL, "PEM private key of cluster.tls_cert"),
    KSTR("cluster", "tls_ca", cluster.tls_ca, "", NULL,
         "PEM CA certificates; a peer's certificate must chain to one (mutual TLS)"),
    KENUM("cluster", "tls_mode", cluster.tls_mode, "require", "require|accept|prefer",
          "with TLS set: require it both ways; accept TLS or plaintext and dial plain; accept "
          "both and dial TLS (switch a running cluster: accept, then prefer, then require)"),
    KENUM("cluster", "partition_writes", cluster.partition_writes, "reject", "reject|accept",
          "a remember whose space's primary is unreachable: 503, or kept here as a hint"),
    KINT("cluster", "partition_writes_max", cluster.partition_writes_max, 10000, 1, 1000000,
         "hints pending on this node at most; past it a partition write gets 503"),
    KENUM("cluster", "write_consistency", cluster.write_consistency, "quorum", "one|quorum|all",
          "copies a write reaches before it is acknowledged when its request names no level"),
    KINT("cluster", "write_timeout_ms", cluster.write_timeout_ms, 2000, 1, 600000,
         "how long a write waits for its consistency level before 503 unavailable"),
    KINT("cluster", "catalog_sync_interval_ms", cluster.catalog_sync_interval_ms, 2000, 100,
         3600000, "anti-entropy of the space catalog with one random member this often"),
    KINT("cluster", "hedge_budget_percent", cluster.hedge_budget_percent, 10, 0, 100,
         "a recall over many spaces hedges at most this % of the frames it sends first (plus "
         "one a second); 0 = never hedge"),
    KINT("cluster", "leave_handover_ms", cluster.leave_handover_ms, 5000, 0, 600000,
         "a node stopping (SIGTERM) hands the spaces it leads over for at most this long "
         "before it leaves; 0 = leave at once (they fail over)"),
    KINT("cluster", "catalog_tombstone_ttl_s", cluster.catalog_tombstone_ttl_s, 604800, 60,
         315360000, "a dropped space's tombstone is kept this long (a node down longer must be "
         "wiped before it rejoins)"),
    KINT("cluster.swim", "probe_interval_ms", cluster_swim.probe_interval_ms, 0, 0, 600000,
         "SWIM probe period (0 = the profile's)"),
    KINT("cluster.swim", "probe_timeout_ms", cluster_swim.probe_timeout_ms, 0, 0, 600000,
         "wait for an ack before retrying / asking helpers (0 = the profile's)"),
    KINT("cluster.swim", "suspicion_mult", cluster_swim.suspicion_mult, 0, 0, 100,
         "min suspicion = mult * log10(N) * probe period (0 = the profile's)"),
    KINT("cluster.swim", "gossip_interval_ms", cluster_swim.gossip_interval_ms, 0, 0, 600000,
         "period of gossip datagrams (0 = the profile's)"),
    KINT("cluster.swim", "push_pull_interval_ms", cluster_swim.push_pull_interval_ms, 0, 0,
         DAY_MS, "period of full-state syncs (0 = the profile's)"),
    KBOOL("cluster.swim", "lifeguard", cluster_swim.lifeguard, true,
          "false = plain SWIM (fixed suspicion timeout, no health multiplier)"),

    KENUM("gossip", "scope", gossip.scope, "cluster", "cluster|holders",
          "which nodes keep a space's gossiped semantic memories: every node, or its holders"),
    KINT("gossip", "interval_ms", gossip.interval_ms, 1000, 100, 600000,
         "a gossip round (one root to each of fanout peers) this often, +-10 % jitter"),
    KINT("gossip", "fanout", gossip.fanout, 3, 1, 16, "peers one gossip round talks to"),

    KINT("mcp", "max_sessions", mcp.max_sessions, 1024, 1, 65536,
         "MCP sessions kept, all keys together; when full of live sessions, initialize is "
         "refused"),
    KINT("mcp", "max_sessions_per_key", mcp.max_sessions_per_key, 256, 1, 65536,
         "MCP sessions one API key holds; one more evicts that key's least recently used"),
    KINT("mcp", "session_idle_s", mcp.session_idle_s, 3600, 1, 30 * 86400,
         "an MCP session unused this long ends (404, the client initializes again)"),
    KINT("mcp", "default_dim", mcp.default_dim, 384, 1, 4096,
         "dim of a space created by the remember tool without an embedding"),
    KINT("mcp", "max_body_bytes", mcp.max_body_bytes, MIB, 1024, 1024 * MIB,
         "largest POST body on /mcp; larger gets 413 before it is parsed (http.max_body_bytes "
         "still bounds what is read)"),
    KSTR("mcp", "default_space", mcp.default_space, "default", check_nonempty,
         "space of MCP tools called without a space"),
    KLIST("mcp", "allowed_origins", mcp.allowed_origins, NULL, NULL,
          "browser Origins allowed on /mcp besides loopback ones, e.g. https://app.example"),

    KSTR("embedding", "url", embedding.url, "", check_url,
         "OpenAI-compatible embeddings endpoint, e.g. http://127.0.0.1:11434/v1/embeddings; "
         "\"\" = off"),
    KSTR("embedding", "model", embedding.model, "", NULL, "model named in each request"),
    KINT("embedding", "dim", embedding.dim, 0, 0, MN_DIM_MAX,
         "values per vector (required with url); spaces of this dim use the provider"),
    KLIST("embedding", "spaces", embedding.spaces, "*", check_nonempty,
          "spaces that use the provider when their dim matches (\"*\" = all)"),
    KINT("embedding", "batch_size", embedding.batch_size, 32, 1, 2048, "texts per request"),
    KINT("embedding", "timeout_ms", embedding.timeout_ms, 10000, 10, 600000,
         "one request to the provider; a recall waits at most this for its cue's vector"),
    KINT("embedding", "max_backlog", embedding.max_backlog, 10000, 1, 10000000,
         "memories queued for a vector (ids, ~100 bytes each); more wait for the backfill scan"),
    KINT("embedding", "retry_max_ms", embedding.retry_max_ms, 30000, 10, 3600000,
         "longest wait between retries while the provider fails (backoff doubles up to it)"),
    KINT("embedding", "backfill_interval_s", embedding.backfill_interval_s, 60, 1, 86400,
         "scan for memories still without a vector this often"),
    KSTR("embedding", "api_key_env", embedding.api_key_env, "", check_env_name,
         "environment variable holding the provider's API key (sent as Bearer); \"\" = none"),
    KSTR("embedding", "ca_file", embedding.ca_file, "", NULL,
         "PEM CA certificates for an https url; \"\" = the system's"),
    KSTR("audit", "path", audit.path, "", NULL,
         "JSON lines of bulk operations (forget by filter): \"\" = <data_dir>/audit.jsonl, "
         "\"off\" = none"),
};
#define N_KEYS (sizeof KEYS / sizeof KEYS[0])

/* ---- names ---- */

#define NAME_MAX_LEN 128

static void full_name(const cfg_key *k, char *buf, size_t len)
{
    snprintf(buf, len, "%s.%s", k->table, k->key);
}

static void env_name(const cfg_key *k, char *buf, size_t len)
{
    int n = snprintf(buf, len, "MNEMO_%s_%s", k->table, k->key);
    for (int i = 0; i < n && (size_t)i < len; i++)
        buf[i] = buf[i] == '.' ? '_' : (char)toupper((unsigned char)buf[i]);
}

/* The key that name_of (full_name or env_name) calls name, or NULL. */
static const cfg_key *find_named(void (*name_of)(const cfg_key *, char *, size_t), const char *name)
{
    char buf[NAME_MAX_LEN];
    for (size_t i = 0; i < N_KEYS; i++) {
        name_of(&KEYS[i], buf, sizeof buf);
        if (strcmp(buf, name) == 0) return &KEYS[i];
    }
    return NULL;
}

static const cfg_key *find_key(const char *name)
{
    return find_named(full_name, name);
}

/* Is name a table of KEYS, or a parent of one ("cluster" for "cluster.swim")? */
static bool is_table(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *t = KEYS[i].table;
        if (strncmp(t, name, n) == 0 && (t[n] == '\0' || t[n] == '.')) return true;
    }
    return false;
}

/* Levenshtein distance, capped at 9 (names are short). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 9;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb] > 9 ? 9 : row[lb];
}

/* " (did you mean \"x\"?)" for the closest known key or table, or "". env: compare env names. */
static void suggest(const char *name, bool env, char *buf, size_t len)
{
    char best[NAME_MAX_LEN] = "", cand[NAME_MAX_LEN];
    size_t best_d = 3; /* suggest only within 2 edits */
    for (size_t i = 0; i < N_KEYS; i++) {
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 0) {
                if (env)
                    env_name(&KEYS[i], cand, sizeof cand);
                else
                    full_name(&KEYS[i], cand, sizeof cand);
            } else if (env) {
                continue;
            } else {
                snprintf(cand, sizeof cand, "%s", KEYS[i].table);
            }
            size_t d = edit_distance(name, cand);
            if (d > 0 && d < best_d) {
                best_d = d;
                snprintf(best, sizeof best, "%s", cand);
            }
        }
    }
    if (best[0])
        snprintf(buf, len, " (did you mean \"%s\"?)", best);
    else
        buf[0] = '\0';
}

/* ---- values ---- */

/* A value on its way into the struct: built from TOML or text, checked, then moved in. */
typedef struct cfg_val {
    char *s;
    int64_t i;
    double f;
    bool b;
    mn_config_strlist_t l;
    cfg_tables t;
    const cfg_key *tk; /* the K_TABLES key t was built for (to free its elements) */
} cfg_val;

static void strlist_free(mn_config_strlist_t *l)
{
    for (size_t i = 0; i < l->count; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static void fields_free(const cfg_key *keys, size_t n, void *base);

static void tables_free(const cfg_key *k, cfg_tables *t)
{
    for (size_t i = 0; i < t->count; i++)
        fields_free(k->fields, k->n_fields, (char *)t->items + i * k->elem_size);
    free(t->items);
    t->items = NULL;
    t->count = 0;
}

/* Frees the strings, lists and arrays of tables of the n keys' fields in the struct at base. */
static void fields_free(const cfg_key *keys, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++) {
        void *p = (char *)base + keys[i].off;
        if (keys[i].type == K_STRING) {
            free(*(char **)p);
            *(char **)p = NULL;
        }
        if (keys[i].type == K_STRINGS) strlist_free((mn_config_strlist_t *)p);
        if (keys[i].type == K_TABLES) {
            cfg_tables t;
            memcpy(&t, p, sizeof t);
            tables_free(&keys[i], &t);
            memcpy(p, &t, sizeof t);
        }
    }
}

static void val_free(cfg_val *v)
{
    free(v->s);
    v->s = NULL;
    strlist_free(&v->l);
    if (v->tk) tables_free(v->tk, &v->t);
}

static mn_err nomem(mn_error *err)
{
    return mn_error_set(err, MN_ERR_NOMEM, "config: out of memory");
}

static mn_err strlist_push(mn_config_strlist_t *l, const char *s, size_t len, mn_error *err)
{
    char **ni = realloc(l->items, (l->count + 1) * sizeof *ni);
    if (!ni) return nomem(err);
    l->items = ni;
    char *c = malloc(len + 1);
    if (!c) return nomem(err);
    memcpy(c, s, len);
    c[len] = '\0';
    l->items[l->count++] = c;
    return MN_OK;
}

/* "a, b,c" -> ["a","b","c"]; blanks around items are dropped, empty items skipped. */
static mn_err split_list(const char *s, mn_config_strlist_t *out, mn_error *err)
{
    while (s && *s) {
        const char *end = strchr(s, ',');
        if (!end) end = s + strlen(s);
        const char *a = s, *b = end;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (b > a) {
            mn_err rc = strlist_push(out, a, (size_t)(b - a), err);
            if (rc) return rc;
        }
        s = *end ? end + 1 : end;
    }
    return MN_OK;
}

static const char *expects(kind t)
{
    switch (t) {
    case K_STRING: return "a string";
    case K_INT: return "an integer";
    case K_FLOAT: return "a number";
    case K_BOOL: return "a boolean";
    case K_STRINGS: return "an array of strings";
    case K_TABLES: return "an array of tables";
    }
    return "?";
}

static const char *a_type(mn_toml_type_t t)
{
    switch (t) {
    case MN_TOML_TABLE: return "a table";
    case MN_TOML_ARRAY: return "an array";
    case MN_TOML_STRING: return "a string";
    case MN_TOML_INTEGER: return "an integer";
    case MN_TOML_FLOAT: return "a float";
    case MN_TOML_BOOL: return "a boolean";
    }
    return "?";
}

static bool has_nul(const mn_toml_value_t *v)
{
    return strlen(v->u.str.ptr) != v->u.str.len;
}

static mn_err tables_from_toml(const cfg_key *k, const mn_toml_value_t *v, const char *file,
                               cfg_val *out, mn_error *err);

/* Converts a TOML value to the key's type; where = "file:line:col" of v. */
static mn_err from_toml(const cfg_key *k, const mn_toml_value_t *v, const char *file, cfg_val *out,
                        mn_error *err)
{
    char fn[NAME_MAX_LEN];
    full_name(k, fn, sizeof fn);
    bool ok = false;
    switch (k->type) {
    case K_STRING:
        if ((ok = v->type == MN_TOML_STRING) && !has_nul(v) && !(out->s = strdup(v->u.str.ptr)))
            return nomem(err);
        break;
    case K_INT:
        if ((ok = v->type == MN_TOML_INTEGER)) out->i = v->u.i;
        break;
    case K_FLOAT:
        if (v->type == MN_TOML_INTEGER) out->f = (double)v->u.i;
        if (v->type == MN_TOML_FLOAT) out->f = v->u.f;
        ok = v->type == MN_TOML_INTEGER || v->type == MN_TOML_FLOAT;
        break;
    case K_BOOL:
        if ((ok = v->type == MN_TOML_BOOL)) out->b = v->u.b;
        break;
    case K_STRINGS:
        if (!(ok = v->type == MN_TOML_ARRAY)) break;
        for (size_t j = 0; j < v->u.arr.len; j++) {
            const mn_toml_value_t *e = v->u.arr.items[j];
            if (e->type != MN_TOML_STRING)
                return mn_error_set(err, MN_ERR_INVALID,
                                    "%s:%d:%d: %s expects an array of strings, got %s element",
                                    file, e->line, e->col, fn, a_type(e->type));
            if (has_nul(e))
                return mn_error_set(err, MN_ERR_INVALID, "%s:%d:%d: %s must not contain NUL",
                                    file, e->line, e->col, fn);
            mn_err rc = strlist_push(&out->l, e->u.str.ptr, e->u.str.len, err);
            if (rc) return rc;
        }
        break;
    case K_TABLES:
        if ((ok = v->type == MN_TOML_ARRAY)) return tables_from_toml(k, v, file, out, err);
        break;
    }
    if (!ok)
        return mn_error_set(err, MN_ERR_INVALID, "%s:%d:%d: %s expects %s, got %s", file, v->line,
                            v->col, fn, expects(k->type), a_type(v->type));
    if (k->type == K_STRING && has_nul(v))
        return mn_error_set(err, MN_ERR_INVALID, "%s:%d:%d: %s must not contain NUL", file,
                            v->line, v->col, fn);
    return MN_OK;
}

/* Converts environment text to the key's type; where = the variable's name. */
static mn_err from_text(const cfg_key *k, const char *text, const char *where, cfg_val *out,
                        mn_error *err)
{
    char fn[NAME_MAX_LEN];
    full_name(k, fn, sizeof fn);
    if (k->type == K_STRING) {
        if (!(out->s = strdup(text))) return nomem(err);
        return MN_OK;
    }
    if (k->type == K_BOOL) {
        if (!strcmp(text, "true") || !strcmp(text, "1")) {
            out->b = true;
            return MN_OK;
        }
        if (!strcmp(text, "false") || !strcmp(text, "0")) {
            out->b = false;
            return MN_OK;
        }
        return mn_error_set(err, MN_ERR_INVALID, "%s: %s expects true or false, got \"%.40s\"",
                            where, fn, text);
    }
    const char *t = text;
    while (isspace((unsigned char)*t)) t++;
    if (k->type == K_STRINGS && *t != '[') return split_list(text, &out->l, err);

    mn_toml_value_t *v = NULL;
    mn_error perr;
    mn_err rc = mn_toml_parse_value(text, strlen(text), where, &v, &perr);
    if (rc == MN_ERR_NOMEM) return nomem(err);
    if (rc) {
        if (k->type == K_STRINGS) return mn_error_set(err, rc, "%s", perr.message);
        return mn_error_set(err, MN_ERR_INVALID, "%s: %s expects %s, got \"%.40s\"", where, fn,
                            expects(k->type), text);
    }
    bool ok = (k->type == K_INT && v->type == MN_TOML_INTEGER) ||
              (k->type == K_FLOAT && (v->type == MN_TOML_INTEGER || v->type == MN_TOML_FLOAT)) ||
              (k->type == K_STRINGS && v->type == MN_TOML_ARRAY) ||
              (k->type == K_TABLES && v->type == MN_TOML_ARRAY);
    if (!ok) {
        mn_toml_free(v);
        return mn_error_set(err, MN_ERR_INVALID, "%s: %s expects %s, got \"%.40s\"", where, fn,
                            expects(k->type), text);
    }
    if (k->type == K_TABLES) {
        /* positions in the text read "MNEMO_AUTH_KEYS:1:7: ..." */
        rc = tables_from_toml(k, v, where, out, err);
        mn_toml_free(v);
        return rc;
    }
    if (k->type == K_INT) out->i = v->u.i;
    if (k->type == K_FLOAT) out->f = v->type == MN_TOML_INTEGER ? (double)v->u.i : v->u.f;
    for (size_t j = 0; k->type == K_STRINGS && j < v->u.arr.len; j++) {
        const mn_toml_value_t *e = v->u.arr.items[j];
        rc = e->type == MN_TOML_STRING
                 ? strlist_push(&out->l, e->u.str.ptr, e->u.str.len, err)
                 : mn_error_set(err, MN_ERR_INVALID, "%s: %s expects an array of strings", where,
                                fn);
        if (rc) break;
    }
    mn_toml_free(v);
    return rc;
}

static bool in_choices(const char *choices, const char *s)
{
    size_t n = strlen(s);
    for (const char *c = choices; c && *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && strncmp(c, s, n) == 0) return true;
        c = bar ? bar + 1 : c + len;
    }
    return false;
}

static mn_err check_string(const cfg_key *k, const char *s, const char *where, mn_err code,
                           mn_error *err)
{
    char fn[NAME_MAX_LEN];
    full_name(k, fn, sizeof fn);
    if (k->choices && !in_choices(k->choices, s))
        return mn_error_set(err, code, "%s: %s must be one of %s, got \"%.40s\"", where, fn,
                            k->choices, s);
    const char *why = k->check ? k->check(s) : NULL;
    if (why) return mn_error_set(err, code, "%s: %s %s, got \"%.40s\"", where, fn, why, s);
    return MN_OK;
}

/* The key's range / choice / check rules. */
static mn_err validate(const cfg_key *k, const cfg_val *v, const char *where, mn_err code,
                       mn_error *err)
{
    char fn[NAME_MAX_LEN];
    full_name(k, fn, sizeof fn);
    switch (k->type) {
    case K_INT:
        if (v->i < k->min || v->i > k->max)
            return mn_error_set(err, code, "%s: %s must be in %lld..%lld, got %lld", where, fn,
                                (long long)k->min, (long long)k->max, (long long)v->i);
        return MN_OK;
    case K_FLOAT:
        if (!(v->f >= k->fmin && v->f <= k->fmax))
            return mn_error_set(err, code, "%s: %s must be in %g..%g, got %g", where, fn, k->fmin,
                                k->fmax, v->f);
        return MN_OK;
    case K_STRING:
        return check_string(k, v->s, where, code, err);
    case K_STRINGS:
        for (size_t j = 0; j < v->l.count; j++) {
            mn_err rc = check_string(k, v->l.items[j], where, code, err);
            if (rc) return rc;
        }
        return MN_OK;
    case K_BOOL:
    case K_TABLES: /* every element was checked when it was built */
        return MN_OK;
    }
    return MN_OK;
}

/* Moves v into the field for k of the struct at base (mn_config_t or a table element),
 * freeing what the field held. */
static void store(void *base, const cfg_key *k, cfg_val *v)
{
    void *p = (char *)base + k->off;
    switch (k->type) {
    case K_STRING:
        free(*(char **)p);
        *(char **)p = v->s;
        v->s = NULL;
        break;
    case K_INT: *(int64_t *)p = v->i; break;
    case K_FLOAT: *(double *)p = v->f; break;
    case K_BOOL: *(bool *)p = v->b; break;
    case K_STRINGS:
        strlist_free((mn_config_strlist_t *)p);
        *(mn_config_strlist_t *)p = v->l;
        v->l = (mn_config_strlist_t){0};
        break;
    case K_TABLES: {
        cfg_tables old;
        memcpy(&old, p, sizeof old);
        tables_free(k, &old);
        memcpy(p, &v->t, sizeof v->t);
        v->t = (cfg_tables){0};
        break;
    }
    }
}

/* Checks v against k's rules and stores it; v is consumed either way. */
static mn_err check_and_store(void *base, const cfg_key *k, cfg_val *v, const char *where,
                              mn_err code, mn_error *err)
{
    mn_err rc = validate(k, v, where, code, err);
    if (!rc) store(base, k, v);
    val_free(v);
    return rc;
}

/* ---- layers ---- */

/* Stores the default of each of the n keys in the struct at base (mn_config_t or a table
 * element); required fields and arrays of tables start empty. */
static mn_err apply_defaults(const cfg_key *keys, size_t n, void *base, mn_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const cfg_key *k = &keys[i];
        if (k->type == K_TABLES && i + 1 < n && strcmp(keys[i + 1].table, k->table) == 0)
            return mn_error_set(err, MN_ERR_INTERNAL, "config: %s.%s must end its table",
                                k->table, k->key);
        if (k->required || k->type == K_TABLES) continue;
        cfg_val v = {.i = k->i, .f = k->f, .b = k->b};
        mn_err rc = MN_OK;
        if (k->type == K_STRING && !(v.s = strdup(k->s ? k->s : ""))) rc = nomem(err);
        if (k->type == K_STRINGS) rc = split_list(k->s, &v.l, err);
        if (rc) {
            val_free(&v);
            return rc;
        }
        rc = check_and_store(base, k, &v, "default", MN_ERR_INTERNAL, err);
        if (rc) return rc;
    }
    return MN_OK;
}

/* The field key of array-of-tables key k named name, or NULL; *idx gets its index. */
static const cfg_key *find_field(const cfg_key *k, const mn_toml_entry_t *e, size_t *idx)
{
    for (size_t m = 0; m < k->n_fields; m++)
        if (strlen(e->key) == e->key_len && strcmp(k->fields[m].key, e->key) == 0) {
            *idx = m;
            return &k->fields[m];
        }
    return NULL;
}

/* Builds one element of k at elem from the TOML table tv: defaults, its keys, then the check
 * that every required key was given (index i for messages). */
static mn_err element_from_toml(const cfg_key *k, const mn_toml_value_t *tv, size_t i,
                                const char *file, void *elem, mn_error *err)
{
    char fn[NAME_MAX_LEN];
    full_name(k, fn, sizeof fn);
    mn_err rc = apply_defaults(k->fields, k->n_fields, elem, err);
    if (rc) return rc;
    bool seen[16] = {false};
    assert(k->n_fields <= 16);
    for (size_t j = 0; j < tv->u.table.len; j++) {
        const mn_toml_entry_t *e = &tv->u.table.entries[j];
        size_t m = 0;
        const cfg_key *f = find_field(k, e, &m);
        if (!f) {
            char known[NAME_MAX_LEN] = "";
            for (size_t q = 0; q < k->n_fields; q++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                         q ? ", " : "", k->fields[q].key);
            return mn_error_set(err, MN_ERR_INVALID, "%s:%d:%d: unknown key \"%s.%s\" (%s has %s)",
                                file, e->line, e->col, fn, e->key, fn, known);
        }
        seen[m] = true;
        cfg_val fv = {0};
        rc = from_toml(f, e->value, file, &fv, err);
        if (!rc) {
            char where[MN_ERROR_MSG_MAX];
            snprintf(where, sizeof where, "%s:%d:%d", file, e->value->line, e->value->col);
            rc = check_and_store(elem, f, &fv, where, MN_ERR_INVALID, err);
        }
        val_free(&fv);
        if (rc) return rc;
    }
    for (size_t m = 0; m < k->n_fields; m++)
        if (k->fields[m].required && !seen[m])
            return mn_error_set(err, MN_ERR_INVALID, "%s:%d:%d: %s[%zu] lacks \"%s\" (required)",
                                file, tv->line, tv->col, fn, i, k->fields[m].key);
    return MN_OK;
}

/* Builds the elements of array-of-tables key k from the TOML array v (file names where v
 * came from, for messages). */
static mn_err tables_from_toml(const cfg_key *k, const mn_toml_value_t *v, const char *file,
                               cfg_val *out, mn_error *err)
{
    char fn[NAME_MAX_LEN];
    full_name(k, fn, sizeof fn);
    out->tk = k;
    if (v->u.arr.len == 0) return MN_OK;
    out->t.items = calloc(v->u.arr.len, k->elem_size);
    if (!out->t.items) return nomem(err);
    for (size_t i = 0; i < v->u.arr.len; i++) {
        const mn_toml_value_t *tv = v->u.arr.items[i];
        if (tv->type != MN_TOML_TABLE)
            return mn_error_set(err, MN_ERR_INVALID,
                                "%s:%d:%d: %s expects an array of tables, got %s element", file,
                                tv->line, tv->col, fn, a_type(tv->type));
        out->t.count = i + 1; /* from here on val_free frees this element too */
        mn_err rc = element_from_toml(k, tv, i, file, (char *)out->t.items + i * k->elem_size, err);
        if (rc) return rc;
    }
    return MN_OK;
}

/* Reports entry e (full name `name`), which matches no key or table: names its first leaf,
 * e.g. "htp.port" for [htp] port = 1, or the empty table it ends in. */
static mn_err unknown(const mn_toml_entry_t *e, const char *name, const char *file, mn_error *err)
{
    char full[NAME_MAX_LEN], hint[NAME_MAX_LEN + 24];
    snprintf(full, sizeof full, "%s", name);
    while (e->value->type == MN_TOML_TABLE && e->value->u.table.len > 0) {
        e = &e->value->u.table.entries[0];
        size_t n = strlen(full);
        snprintf(full + n, sizeof full - n, ".%s", e->key);
    }
    suggest(full, false, hint, sizeof hint);
    if (e->value->type == MN_TOML_TABLE)
        return mn_error_set(err, MN_ERR_INVALID, "%s:%d:%d: unknown table [%s]%s", file,
                            e->value->line, e->value->col, full, hint);
    return mn_error_set(err, MN_ERR_INVALID, "%s:%d:%d: unknown key \"%s\"%s", file, e->line,
                        e->col, full, hint);
}

/* Walks table t (at dotted path `path`, "" for the root) and binds every leaf to its key. */
static mn_err apply_table(mn_config_t *c, const mn_toml_value_t *t, const char *path,
                          const char *file, mn_error *err)
{
    for (size_t i = 0; i < t->u.table.len; i++) {
        const mn_toml_entry_t *e = &t->u.table.entries[i];
        char name[NAME_MAX_LEN];
        int n = snprintf(name, sizeof name, "%s%s%s", path, *path ? "." : "", e->key);
        bool odd = n < 0 || (size_t)n >= sizeof name || strlen(e->key) != e->key_len ||
                   strchr(e->key, '.');
        const cfg_key *k = odd ? NULL : find_key(name);
        mn_err rc;
        if (k) {
            cfg_val v = {0};
            rc = from_toml(k, e->value, file, &v, err);
            if (!rc) {
                char where[MN_ERROR_MSG_MAX];
                snprintf(where, sizeof where, "%s:%d:%d", file, e->value->line, e->value->col);
                rc = check_and_store(c, k, &v, where, MN_ERR_INVALID, err);
            }
            val_free(&v);
        } else if (!odd && is_table(name)) {
            if (e->value->type != MN_TOML_TABLE)
                return mn_error_set(err, MN_ERR_INVALID,
                                    "%s:%d:%d: \"%s\" must be a table, got %s", file, e->line,
                                    e->col, name, a_type(e->value->type));
            rc = apply_table(c, e->value, name, file, err);
        } else {
            rc = unknown(e, name, file, err);
        }
        if (rc) return rc;
    }
    return MN_OK;
}

static const cfg_key *find_env_key(const char *name)
{
    return find_named(env_name, name);
}

/* Does name start with MNEMO_<TABLE>_ for a known table? (Then it must be a known key.) */
static bool in_env_namespace(const char *name)
{
    char en[NAME_MAX_LEN];
    for (size_t i = 0; i < N_KEYS; i++) {
        env_name(&KEYS[i], en, sizeof en);
        size_t prefix = strlen("MNEMO_") + strlen(KEYS[i].table) + 1;
        if (strncmp(en, name, prefix) == 0) return true;
    }
    return false;
}

static mn_err apply_env(mn_config_t *c, char **envp, mn_error *err)
{
    for (size_t i = 0; envp[i]; i++) {
        const char *eq = strchr(envp[i], '=');
        if (strncmp(envp[i], "MNEMO_", 6) != 0 || !eq) continue;
        char name[NAME_MAX_LEN];
        size_t len = (size_t)(eq - envp[i]);
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, envp[i], len);
        name[len] = '\0';
        const cfg_key *k = find_env_key(name);
        if (!k) {
            if (!in_env_namespace(name)) continue;
            char hint[NAME_MAX_LEN + 24];
            suggest(name, true, hint, sizeof hint);
            return mn_error_set(err, MN_ERR_INVALID, "%s: no such configuration key%s", name,
                                hint);
        }
        cfg_val v = {0};
        mn_err rc = from_text(k, eq + 1, name, &v, err);
        if (!rc) rc = check_and_store(c, k, &v, name, MN_ERR_INVALID, err);
        val_free(&v);
        if (rc) return rc;
    }
    return MN_OK;
}

/* ---- public ---- */

mn_err mn_config_load(mn_config_t *c, const char *path, char **envp, mn_error *err)
{
    memset(c, 0, sizeof *c);
    mn_err rc = apply_defaults(KEYS, N_KEYS, c, err);
    if (!rc && path) {
        mn_toml_value_t *doc = NULL;
        rc = mn_toml_parse_file(path, &doc, err);
        if (!rc) rc = apply_table(c, doc, "", path, err);
        mn_toml_free(doc);
    }
    if (!rc && envp) rc = apply_env(c, envp, err);
    if (rc) mn_config_free(c);
    return rc;
}

mn_err mn_config_set(mn_config_t *c, const char *name, const char *text, const char *origin,
                     mn_error *err)
{
    const cfg_key *k = find_key(name);
    if (!origin) origin = name;
    if (!k) {
        char hint[NAME_MAX_LEN + 24];
        suggest(name, false, hint, sizeof hint);
        return mn_error_set(err, MN_ERR_INVALID, "%s: unknown key \"%s\"%s", origin, name, hint);
    }
    cfg_val v = {0};
    mn_err rc = from_text(k, text, origin, &v, err);
    if (!rc) rc = check_and_store(c, k, &v, origin, MN_ERR_INVALID, err);
    val_free(&v);
    return rc;
}

void mn_config_free(mn_config_t *c)
{
    fields_free(KEYS, N_KEYS, c);
    memset(c, 0, sizeof *c);
}

static void dump_float(double d, FILE *out)
{
    if (isnan(d)) {
        fputs("nan", out);
        return;
    }
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", d);
    fputs(buf, out);
    if (!strpbrk(buf, ".eEn")) fputs(".0", out); /* "inf" contains 'n' */
}

/* "key = value" of key k whose field is at p (secrets: whether they are set). */
static void dump_value(const cfg_key *k, const void *p, FILE *out)
{
    const char *s = k->type == K_STRING ? *(char *const *)p : NULL;
    if (k->secret && s && *s) {
        fprintf(out, "# %s = (set, not shown)\n", k->key);
        return;
    }
    fprintf(out, "%s = ", k->key);
    switch (k->type) {
    case K_STRING:
        mn_toml_fput_string(out, s ? s : "", s ? strlen(s) : 0);
        break;
    case K_INT: fprintf(out, "%lld", (long long)*(const int64_t *)p); break;
    case K_FLOAT: dump_float(*(const double *)p, out); break;
    case K_BOOL: fputs(*(const bool *)p ? "true" : "false", out); break;
    case K_STRINGS: {
        const mn_config_strlist_t *l = p;
        fputc('[', out);
        for (size_t j = 0; j < l->count; j++) {
            if (j) fputs(", ", out);
            mn_toml_fput_string(out, l->items[j], strlen(l->items[j]));
        }
        fputc(']', out);
        break;
    }
    case K_TABLES: break; /* dump_tables */
    }
    fputc('\n', out);
}

/* [[table.key]] blocks, one per element. */
static void dump_tables(const cfg_key *k, const void *p, FILE *out)
{
    cfg_tables t;
    memcpy(&t, p, sizeof t);
    if (t.count == 0) fprintf(out, "# (no [[%s.%s]])\n", k->table, k->key);
    for (size_t i = 0; i < t.count; i++) {
        fprintf(out, "[[%s.%s]]\n", k->table, k->key);
        const char *elem = (const char *)t.items + i * k->elem_size;
        for (size_t j = 0; j < k->n_fields; j++)
            dump_value(&k->fields[j], elem + k->fields[j].off, out);
    }
}

void mn_config_dump(const mn_config_t *c, FILE *out)
{
    const char *table = NULL;
    for (size_t i = 0; i < N_KEYS; i++) {
        const cfg_key *k = &KEYS[i];
        const void *p = (const char *)c + k->off;
        if (!table || strcmp(table, k->table) != 0) {
            fprintf(out, "%s[%s]\n", table ? "\n" : "", k->table);
            table = k->table;
        }
        fprintf(out, "# %s", k->doc);
        if (k->type == K_INT)
            fprintf(out, " [%lld..%lld]", (long long)k->min, (long long)k->max);
        if (k->type == K_FLOAT) fprintf(out, " [%g..%g]", k->fmin, k->fmax);
        if (k->choices) fprintf(out, " (%s)", k->choices);
        fputc('\n', out);
        if (k->type == K_TABLES)
            dump_tables(k, p, out);
        else
            dump_value(k, p, out);
    }
}
