/* Private to the API layer (api/ and its doors api/rest, api/grpc, api/mcp): the state the
 * doors share, the request arena, the JSON writer and reader (api_json.c, json_parse.c),
 * the typed field and query readers and the error -> HTTP mapping (api_json.c). */
#ifndef MN_API_INTERNAL_H
#define MN_API_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "mnemo/api.h"
#include "mnemo/engine.h"
#include "mnemo/http.h"

struct mcp_server; /* api/mcp/mcp.h */
struct mn_embed;   /* api/embed/embed.h */
struct mn_query;   /* include/mnemo/query.h */

struct mn_api {
    mn_engine_t *engine;
    atomic_bool draining;
    /* observability (api/rest/rest_metrics.c, rest_openapi.c) */
    const mn_http_router_t *router; /* set by mn_api_register; read by GET /v1/admin/routes */
    struct mn_metrics_family *http_requests, *http_duration;
    int64_t started_ms;
    struct mcp_server *mcp; /* sessions and tools of POST /mcp */
    struct mn_embed *embed; /* the embedding provider, NULL when [embedding] is off */
    /* forget by filter (api_forget.c): its jobs, the audit log, the keys' names */
    struct api_jobs *jobs;
    struct api_audit *audit; /* NULL: no audit log */
    const struct mn_auth *auth; /* NULL: auth off (key names: audit lines, changed_by) */
    struct mn_query *query; /* recalls over many spaces: the pool, the holders (query_local.c) */
    /* cluster mode: set once by the cluster glue before the server listens; NULL in
     * single-node mode, where nothing below is ever called */
    const struct api_cluster_hooks *cluster;
    /* the gRPC door's part of a call another node forwarded (api/grpc/grpc_hop.c); NULL
     * when the gRPC door is off */
    const struct api_grpc_hop *grpc_hop;
    /* the REST routes as registered (mn_api_register): the router's context of the routing
     * entry (api/rest/rest_route.c), and where the MCP tools find the path of a handler */
    struct api_route_ctx *routes;
    size_t n_routes;
};

/* One REST route (api_server.c's table). */
typedef struct api_route {
    const char *method;
    const char *pattern;
    mn_http_handler_fn fn;
} api_route;
/* A route as mn_api_register registers it: the context of its routing entry. */
typedef struct api_route_ctx {
    api_route route;
    mn_api_t *api;
} api_route_ctx;

/* A read's preference (docs/api.md, "Cluster mode"): "read" in recall bodies, ?read= on get
 * and list. */
typedef enum { API_READ_PRIMARY = 0, API_READ_NEAREST = 1 } api_read_pref;

/* What the REST entry asks the cluster's route hook about one request. */
/* A copy further behind than this (ms) marks the recall answers it serves: every hit's
 * reasons say stale_replica, and the answer carries replica_lag_ms. */
#define API_STALE_REPLICA_MS 1000

typedef struct api_route_ask {
    const char *space; /* the space it is about (POST /v1/spaces: the name in the body) */
    const char *path;  /* its path (decoded), what a forward sends: "/v1/spaces/a/recall" */
    bool write;        /* it changes the space */
    bool create;       /* POST /v1/spaces: the space is born on its desired primary */
    api_read_pref read;
    /* a door that cannot forward (gRPC): where the request would go is answered instead, as
     * 421 wrong_node naming the node that serves it (or 503 when none can) */
    bool no_forward;
    const cJSON *tree; /* the body of an in-process request (printed when forwarded), or NULL */
    int64_t replica_lag_ms; /* out: served here from a replica this far behind; -1 = not one,
                             * or its lag is not known (past API_STALE_REPLICA_MS a recall's
                             * hits say stale_replica, in REST and gRPC alike) */
    /* a recall: its body's timeout_ms (the bound on reaching a copy of the space; 0 = the
     * forward timeout); with it, a recall no copy answers comes back false with unreachable
     * set (and why) instead of a 503, for the door to answer in partition mode */
    int64_t timeout_ms;
    bool unreachable;
    char why[300];
    /* a remember (docs/gossip.md "Partition mode"): with cluster.partition_writes = "accept",
     * one whose space's primary cannot be reached comes back false with hint set (and why)
     * instead of a 503, for the door to keep it as a hint (api_cluster_hooks.hint_remember) */
    bool hintable;
    bool hint;
    /* with hintable, when partition writes are accepted: the ids of its memories, chosen
     * before it is forwarded (api_hint_id(&hint_base, i)), so that a forward that reached the
     * primary although its answer timed out and the hint taken instead store the same ids */
    bool has_hint_base;
    mn_id_t hint_base;
} api_route_ask;

/* The id of memory i of a remember whose ids were chosen ahead (api_route_ask.hint_base):
 * base plus i in its low 48 bits (its time, version and variant bits kept). */
static inline mn_id_t api_hint_id(const mn_id_t *base, size_t i)
{
    mn_id_t id = *base;
    uint64_t low = 0;
    for (int k = 10; k < 16; k++)
        low = low << 8 | id.b[k];
    low = (low + i) & 0xffffffffffffULL;
    for (int k = 15; k >= 10; k--, low >>= 8)
        id.b[k] = (uint8_t)low;
    return id;
}
/* The header a forwarded remember carries its hint_base in (honoured on internal hops only). */
#define API_HINT_BASE_HEADER "x-mnemo-hint-base"

/* A gRPC call (unary, or a client stream's messages) another node forwarded here (POST /v1/spaces/{space}/grpc/{method}): the
 * REST door receives it, the gRPC door runs it (the doors cannot call each other directly). */
typedef struct api_grpc_hop {
    /* the operation of method ("Recall"); false for an unknown one or a server stream */
    bool (*op_of)(const char *method, mn_auth_op_t *op);
    /* runs method on body (its packed request; a client stream's messages each framed by a
     * u32 BE length) for the key named key_name (NULL: none); ids: the ids its sender chose
     * for a Remember (API_HINT_BASE_HEADER; NULL: none):
     * *out (malloc'd, *out_len bytes) is the envelope to answer; false when out of memory */
    bool (*run)(mn_api_t *api, const char *method, const char *key_name, const mn_id_t *ids,
                const uint8_t *body, size_t len, uint8_t **out, size_t *out_len);
} api_grpc_hop;

/* A cluster view's document (arg = api_cluster_hooks.arg): malloc'd JSON text, or NULL with
 * *status (503) and err set. */
typedef char *(*api_cluster_doc_fn)(void *arg, int *status, mn_error *err);

/* What the doors ask of the cluster (api/cluster_*.c implement them; the doors sit below
 * mn_api in the link order, so they call through these pointers). Any thread. */
typedef struct api_cluster_hooks {
    void *arg;
    /* Serves req elsewhere when this node must not serve it itself (a write on a non-primary,
     * a read whose preference this node cannot meet): forwards it and fills resp, returns
     * true; also true when it refuses req (a hop whose body does not match its signature,
     * no holder reachable: 503). false = serve it here. */
    bool (*route)(void *arg, const mn_http_request_t *req, mn_http_response_t *resp,
                  api_route_ask *ask);
    /* Blocks until space's log up to lsn has reached level (an mn_spaces_level_t: 0 one,
     * 1 quorum, 2 all; -1 = the client named none: cluster.write_consistency) or timeout_ms
     * ran out (-1 = cluster.write_timeout_ms): MN_ERR_UNAVAILABLE naming how many copies it
     * reached. epoch: the epoch of the entry at lsn when it was written (0 = not known); an
     * entry at lsn of another epoch by then (the local log was replaced in a change of
     * primary) is MN_ERR_UNAVAILABLE at once: the write did not happen. */
    mn_err (*write_wait)(void *arg, const char *space, uint64_t lsn, uint64_t epoch, int level,
                         int64_t timeout_ms, mn_error *err);
    /* The space catalog: a space was created / dropped through this node's engine (after
     * the engine call succeeded); every node learns its definition. May be NULL. */
    void (*space_created)(void *arg, const char *space);
    void (*space_dropped)(void *arg, const char *space);
    /* Every space of the cluster (the catalog's live ones, held here or not), as
     * mn_engine_space_list gives them: *out malloc'd, sorted by name. May be NULL (then the
     * doors list the engine's). */
    mn_err (*space_list)(void *arg, mn_space_def_t **out, size_t *n, mn_error *err);
    /* May the hop req (head and body checked again) run op on space, by the grant it
     * carries? MN_AUTH_NO_KEY when req is not a valid hop. */
    mn_auth_result_t (*hop_allow)(void *arg, const mn_http_request_t *req, mn_auth_op_t op,
                                  const char *space, mn_auth_verdict_t *v);
    /* Partition mode (docs/gossip.md): space's gossiped semantic memories on this node that
     * pass req's filter, ranked against req's cue (embedding cosine and/or words, at most
     * req->k), each hit with reason partition and a lowered confidence; out->path
     * "partition". MN_ERR_NOT_FOUND: none of space here; MN_ERR_UNSUPPORTED: none may stand
     * in for this request (as_of; the message says why). May be NULL. */
    mn_err (*partition_recall)(void *arg, const char *space, const mn_recall_req_t *req,
                               mn_recall_result_t *out, mn_error *err);
    /* May this node's own copy of space serve a read of preference read (a recall over many
     * spaces runs its local spaces without the route's checks)? MN_ERR_UNAVAILABLE (err says
     * why) for read=primary at a primary whose lease lapsed, as the route answers 503; else
     * MN_OK with *lag_ms: this copy's lag (a replica's own, or the time since a primary's
     * lease lapsed, for read=nearest), -1 when it is the primary or not known. May be NULL. */
    mn_err (*local_read)(void *arg, const char *space, api_read_pref read, int64_t *lag_ms,
                         mn_error *err);
    /* Partition mode for writes: keeps the n memories of a remember to space as a hint on
     * this node (durable before it returns), memory i with id api_hint_id(base, i) (ids_out; an
     * idempotency key of a hint pending here answers that hint's id), merged through the
     * primary once it is reachable. MN_ERR_LIMIT when cluster.partition_writes_max hints
     * are pending. May be NULL. */
    mn_err (*hint_remember)(void *arg, const char *space, const mn_memory_t *mems, size_t n,
                            const mn_id_t *base, mn_id_t *ids_out, mn_error *err);
    /* GET /v1/cluster/spaces's document (names: NULL, or "a,b" for the preview; modified):
     * malloc'd JSON text, or NULL with *status (422, 503) and err set. The gRPC and MCP
     * doors answer from it. May be NULL. */
    char *(*cluster_spaces)(void *arg, char *names, int *status, mn_error *err);
    /* GET /v1/cluster/gossip's and GET /v1/cluster/hints's documents, the same way (no
     * preview). May be NULL. */
    api_cluster_doc_fn cluster_gossip;
    api_cluster_doc_fn cluster_hints;
} api_cluster_hooks;

/* The spaces GET /v1/spaces and ListSpaces answer: the cluster's (its space_list hook) in
 * cluster mode, else the engine's. *out malloc'd, sorted by name. held (may be NULL): in
 * cluster mode a malloc'd array of n flags, "this node's engine holds it"; NULL otherwise. */
mn_err api_space_list(const mn_api_t *api, mn_space_def_t **out, size_t *n, bool **held,
                      mn_error *err);

/* ---- per-request arena: every allocation of one request, freed at once ---- */
typedef struct api_chunk api_chunk;
typedef struct api_arena {
    api_chunk *head;
} api_arena;
void api_arena_init(api_arena *a);
/* Zeroed, 16-byte aligned; NULL when out of memory. */
void *api_arena_alloc(api_arena *a, size_t n);
char *api_arena_strndup(api_arena *a, const char *s, size_t n);
void api_arena_free(api_arena *a);

/* ---- JSON writer into a growing buffer ---- */
#define API_JW_DEPTH 16
typedef struct api_jw {
    char *buf;
    size_t len, cap;
    bool oom;
    int depth;
    bool first[API_JW_DEPTH];
    bool after_key;
} api_jw;
void jw_init(api_jw *w);
void jw_free(api_jw *w);
void jw_obj(api_jw *w);
void jw_obj_end(api_jw *w);
void jw_arr(api_jw *w);
void jw_arr_end(api_jw *w);
void jw_key(api_jw *w, const char *key);
void jw_str(api_jw *w, const char *s);
void jw_strn(api_jw *w, const char *s, size_t n);
void jw_str_or_null(api_jw *w, const char *s);
void jw_int(api_jw *w, int64_t v);
void jw_uint(api_jw *w, uint64_t v);
/* Shortest text that reads back as the same float32; null if not finite. */
void jw_float(api_jw *w, float v);
void jw_double(api_jw *w, double v, int precision);
void jw_bool(api_jw *w, bool v);
void jw_null(api_jw *w);
/* A value that is JSON text already (written as it is). */
void jw_raw(api_jw *w, const char *json);
/* RFC 3339 UTC with milliseconds. */
void jw_time(api_jw *w, int64_t ms);
void jw_id(api_jw *w, const mn_id_t *id);
/* Hands the buffer to resp with status (503 if the writer ran out of memory). */
void jw_respond(api_jw *w, mn_http_response_t *resp, int status);
/* 200 with fn(arg)'s document, or its error status (503 when it names none). */
void api_respond_doc(mn_http_response_t *resp, api_cluster_doc_fn fn, void *arg);

/* ---- errors ---- */
/* Copies in to out (len bytes with the NUL) replacing bytes that are not valid UTF-8 by '?'
 * and never cutting a character in two. */
void api_utf8_sanitize(const char *in, char *out, size_t len);
/* What the route is about: names the 404 and 409 codes. */
typedef enum { API_CTX_SPACE, API_CTX_MEMORY, API_CTX_ADMIN } api_ctx;
/* The error code of docs/api.md, "Errors" ("space_not_found", ...) for an engine error whose
 * message is msg; *hint gets a hint or NULL. Every door (HTTP, gRPC, MCP) names errors so. */
const char *api_err_code(mn_err rc, const char *msg, api_ctx nf, const char **hint);
/* The message of an engine error, made valid UTF-8 in clean (len bytes); logs server faults. */
const char *api_err_message(mn_err rc, const mn_error *err, char *clean, size_t len);
/* Maps an engine error to its HTTP status and error body (docs/api.md, "Errors"). */
void api_respond_err(mn_http_response_t *resp, mn_err rc, const mn_error *err, api_ctx nf);
int api_http_status(mn_err rc);

/* ---- JSON documents in one arena (json_parse.c) ---- */
/* Nesting limit of api_json_parse: cJSON's CJSON_NESTING_LIMIT. */
#define API_JSON_DEPTH_MAX 1000
typedef enum {
    API_JSON_OK,
    API_JSON_SYNTAX,   /* not RFC 8259 JSON: offset is the first byte that cannot be read */
    API_JSON_TRAILING, /* one whole value, then more than whitespace at offset */
    API_JSON_DEPTH,    /* offset is the bracket that would nest deeper than the limit */
    API_JSON_NOMEM,
    API_JSON_LIMIT, /* a limit of api_json_opts: which in limit, where in path */
} api_json_status;
typedef enum {
    API_JSON_LIMIT_NONE,
    API_JSON_LIMIT_MEMBERS, /* count: members_max + 1 */
    API_JSON_LIMIT_FLOATS,  /* count: the values of the array */
    API_JSON_LIMIT_STRING,  /* count: the string's bytes (decoded) */
    API_JSON_LIMIT_NODES,   /* count: nodes_max + 1 */
} api_json_limit;
#define API_JSON_PATH_MAX 160
typedef struct api_json_result {
    api_json_status status;
    size_t offset;
    bool has_nul; /* a string holds \u0000 (its C string reads cut short there) */
    api_json_limit limit;
    size_t count;
    char path[API_JSON_PATH_MAX]; /* "memories[3].embedding"; "" = the document itself */
} api_json_result;
/* Limits applied while parsing (0 = none of that kind): a document past one is refused there,
 * before the rest of it is read into nodes. */
typedef struct api_json_opts {
    size_t depth_max;        /* nesting of arrays and objects; 0 = API_JSON_DEPTH_MAX */
    size_t members_max;      /* members of one array or object (compact arrays aside) */
    size_t floats_max;       /* values of one compact number array */
    size_t string_bytes_max; /* bytes of one string or key, decoded */
    size_t nodes_max;        /* nodes of the whole document */
    bool compact_floats;     /* all-number arrays as one node of float32 values */
    /* with compact_floats: every array inside the value of a member of this name stays
     * ordinary nodes of doubles (a filter's operands: times, exact numbers) */
    const char *plain_member;
} api_json_opts;
/* The type bit of a compact number array (a cJSON_Array without children): read it with
 * api_json_floats or api_json_array_size. cJSON_Print and cJSON_Duplicate see it as []. */
#define API_JSON_FLOATS (1 << 12)
/* Parses text[0..len) (NUL-terminated or not) as exactly one JSON value, strictly RFC 8259,
 * into a tree of ordinary cJSON nodes that all live in one arena owned by the root: read it
 * with any cJSON reader, never change it with cJSON functions, free it with api_json_free.
 * NULL on failure, with why and where in *res. */
cJSON *api_json_parse(const char *text, size_t len, api_json_result *res);
/* api_json_parse within the limits of o (NULL: none), compact number arrays if o says so. */
cJSON *api_json_parse_opts(const char *text, size_t len, const api_json_opts *o,
                           api_json_result *res);
/* Frees a tree of api_json_parse (NULL is fine). Not for cJSON_Parse trees, nor subtrees. */
void api_json_free(cJSON *root);
/* A root of its own (free it with api_json_free) for an object whose members stay where they
 * are and must outlive it: readers see obj's members, freeing it frees none of them. */
cJSON *api_json_borrow(const cJSON *obj);
/* True when v is a compact number array: its float32 values (in its tree) and count. */
bool api_json_floats(const cJSON *v, const float **out, size_t *n);
/* Elements of an array, compact or not; 0 if v is not an array. */
size_t api_json_array_size(const cJSON *v);
/* A malloc'd object (cJSON_Delete) whose members are cJSON references to obj's: members
 * may be detached from it, added to it and deleted with it without touching obj's tree.
 * NULL when out of memory. */
cJSON *api_json_refs(const cJSON *obj);

/* ---- request body ---- */
/* Limits of a request body (REST and MCP): nesting 32, 1000 members in an array or object
 * (MN_BATCH_MAX), strings of at most MN_CONTENT_MAX bytes, nodes_max nodes (256 per memory
 * of the largest batch), number arrays compact and at most floats_max long (a space's dim,
 * or MN_DIM_MAX when it is not known), except those inside a "filter" (ordinary doubles). */
#define API_BODY_DEPTH_MAX 32
#define API_BODY_NODES_MAX (MN_BATCH_MAX * 256)
void api_body_opts(api_json_opts *o, uint32_t dim);
/* Checks the Content-Type (415) and parses the body as JSON (400), which must
 * be an object. On failure the error is already in resp and NULL is returned.
 * The result is an api_json_parse tree: the caller frees it with api_json_free.
 * Bodies are read within api_body_opts(dim): past a limit, 422 naming the field (a number
 * array longer than dim: the engine's "embedding: expected <dim> values, got <n>") or 413
 * (too many nodes). dim 0: the space is unknown (MN_DIM_MAX bounds the arrays). */
cJSON *api_body_object(const mn_http_request_t *req, uint32_t dim, mn_http_response_t *resp);
/* The error body (status, code, message, hint) of a refused parse r of a request body. */
int api_json_refusal(const api_json_result *r, uint32_t dim, const char **code, char *msg,
                     size_t msg_len, const char **hint);

/* A request one door makes to another in-process (the MCP tools call the REST handlers)
 * with its body already parsed: the handler's api_body_object reads body as it is, with no
 * printing and no second parse. */
typedef struct api_inproc_req {
    mn_http_request_t http; /* what the handler gets */
    const cJSON *body;      /* an object, or NULL for no body; not owned */
} api_inproc_req;
/* Zeroes r and marks its http.body as standing for body. */
void api_inproc_init(api_inproc_req *r, const cJSON *body);
/* The body tree of an in-process request (api_inproc_req), NULL for any other request. */
const cJSON *api_inproc_tree(const mn_http_request_t *req);

/* ---- typed field readers: "prefix" + "field" name the value in messages ---- */
/* Fails with MN_ERR_INVALID "<pfx><name>: unknown field" on a member outside allowed
 * (NULL-terminated), or on a duplicate member. */
mn_err api_check_fields(const cJSON *obj, const char *const *allowed, const char *pfx,
                        mn_error *err);
/* Each reader: absent or null -> *present = false and MN_OK; a value of the
 * wrong type -> MN_ERR_INVALID "<pfx><name>: expected ...". */
mn_err api_get_string(const cJSON *obj, const char *name, const char *pfx, const char **out,
                      mn_error *err);
mn_err api_get_number(const cJSON *obj, const char *name, const char *pfx, bool *present,
                      double *out, mn_error *err);
mn_err api_get_float(const cJSON *obj, const char *name, const char *pfx, bool *present,
                     float *out, mn_error *err);
mn_err api_get_int(const cJSON *obj, const char *name, const char *pfx, bool *present,
                   int64_t *out, mn_error *err);
mn_err api_get_bool(const cJSON *obj, const char *name, const char *pfx, bool *present,
                    bool *out, mn_error *err);
/* An array of strings (a single string is accepted as one element when one_ok). */
mn_err api_get_strings(const cJSON *obj, const char *name, const char *pfx, bool one_ok,
                       api_arena *a, char ***out, size_t *n, mn_error *err);
/* An array of numbers as float32 (a compact array's values are not copied: *out points into
 * obj's tree, which must outlive it). */
mn_err api_get_floats(const cJSON *obj, const char *name, const char *pfx, api_arena *a,
                      float **out, uint32_t *n, mn_error *err);
/* An object of string values. */
mn_err api_get_string_map(const cJSON *obj, const char *name, const char *pfx, api_arena *a,
                          mn_kv_t **out, size_t *n, mn_error *err);
/* RFC 3339 string or integer milliseconds since the epoch. */
mn_err api_get_time(const cJSON *obj, const char *name, const char *pfx, bool *present,
                    int64_t *out, mn_error *err);
/* Converts a double to float32 without undefined behaviour (out of range -> +-inf). */
float api_to_float(double d);

/* ---- the filter language (api_filter.c; docs/api.md, "Filters") ---- */
/* Compiles the JSON filter v (the value of a request's "filter"; NULL or null: none) into
 * f->expr and f->n_expr, all of it (strings too) in the arena a. A bad filter is
 * MN_ERR_INVALID naming its path ("filter.or[0].tags.contains: expects a string"). */
mn_err api_filter_compile(const cJSON *v, api_arena *a, mn_filter_t *f, mn_error *err);
/* api_filter_compile of the JSON text[0..len) (a query parameter, a gRPC string). */
mn_err api_filter_from_text(const char *text, size_t len, api_arena *a, mn_filter_t *f,
                            mn_error *err);

/* ---- cluster-mode request options (docs/api.md, "Cluster mode") ---- */
/* "consistency": one | quorum | all -> 0 | 1 | 2 (an mn_spaces_level_t); else MN_ERR_INVALID
 * naming the field. */
mn_err api_consistency_parse(const char *v, int *level, mn_error *err);
/* "read": primary | nearest. */
mn_err api_read_parse(const char *v, api_read_pref *out, mn_error *err);

/* After a write the engine made durable here (api_cluster.c): in cluster mode, waits until
 * space's log, up to its last lsn now (*lsn), reached level (-1: the configured default);
 * MN_OK at once in single-node mode or when the space is gone. */
mn_err api_write_wait(mn_api_t *api, const char *space, int level, uint64_t *lsn, mn_error *err);

/* ---- query strings ---- */
typedef struct api_qparam {
    char *key;
    char *value;
} api_qparam;
/* Splits and percent-decodes a raw query string ('+' is a space). */
mn_err api_query_parse(const char *query, api_arena *a, api_qparam **out, size_t *n,
                       mn_error *err);
/* Parses the query of req, refusing parameters outside allowed (NULL-terminated,
 * may be NULL) and, when metadata_ok, other than "metadata.<key>". */
mn_err api_query_read(const mn_http_request_t *req, const char *const *allowed, bool metadata_ok,
                      api_arena *a, api_qparam **out, size_t *n, mn_error *err);
/* Parses a boolean query value: true/false/1/0. */
mn_err api_query_bool(const char *name, const char *v, bool *out, mn_error *err);
mn_err api_query_int(const char *name, const char *v, int64_t min, int64_t max, int64_t *out,
                     mn_error *err);
mn_err api_query_time(const char *name, const char *v, int64_t *out, mn_error *err);

#endif
