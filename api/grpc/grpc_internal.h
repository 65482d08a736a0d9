/* Private to the gRPC door (api/grpc/grpc_*.c): the server over the gRPC C core
 * (grpc_server.c), the method table and its handlers (grpc_methods.c), the
 * protobuf <-> engine conversions (grpc_convert.c) and the Watch stream
 * (grpc_watch.c). api/proto/mnemo/v1/mnemo.proto is the contract and
 * docs/grpc.md the reference.
 *
 * Like the HTTP handlers, the methods only translate: a decoded request message
 * into the engine's structs, one engine call, the result into a response
 * message. Every value check is the engine's; only what protobuf itself cannot
 * say (an enum number we do not know, a malformed id) is checked here. */
#ifndef MN_API_GRPC_INTERNAL_H
#define MN_API_GRPC_INTERNAL_H

#include <grpc/grpc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_internal.h"
#include "auth.h"
#include "grpc_server.h"
#include "mnemo/v1/mnemo.pb-c.h"

/* ---- handlers (grpc_methods.c) ---- */

/* What one call's handler works with: the engine, an arena for the response (freed with the
 * call), and the context that names a NOT_FOUND (space or memory). */
typedef struct gctx {
    mn_api_t *api;
    api_arena arena;
    const char *key_name;  /* the admitted key's configured name, or NULL (changed_by, audit) */
    const char *key;       /* the key presented (not NUL-terminated), or NULL: RecallMany asks */
    size_t key_len;        /* for each space it reads */
    bool denied;           /* set by a method: its error is PERMISSION_DENIED */
    const char *partition; /* Recall: no copy of the space answered (why); else NULL */
    int64_t replica_lag_ms; /* Recall: served here from a copy this far behind (ms); <= 0: none */
    /* partition writes: the call is kept as a hint with these ids (g_call_route set it) */
    const mn_id_t *hint_base;
    /* a Remember another node forwarded with the ids it chose (partition writes accepted
     * there): stored with them, so its hint stores nothing twice */
    const mn_id_t *ids;
} gctx;

/* A Recall's timeout_ms (cluster mode), as the REST body's: default and bound */
#define G_RECALL_TIMEOUT_MS 1000
#define G_RECALL_TIMEOUT_MAX_MS 600000

typedef enum { G_UNARY, G_CLIENT_STREAM, G_SERVER_STREAM } g_shape;

/* A unary method: req decoded; *resp built in c->arena. */
typedef mn_err (*g_unary_fn)(gctx *c, const ProtobufCMessage *req, ProtobufCMessage **resp,
                             mn_error *err);
/* A client-streaming method: every message of the stream, in order. */
typedef mn_err (*g_batch_fn)(gctx *c, ProtobufCMessage *const *reqs, size_t n,
                             ProtobufCMessage **resp, mn_error *err);

typedef struct g_method {
    const char *path; /* "/mnemo.v1.Mnemo/Recall" */
    g_shape shape;
    const ProtobufCMessageDescriptor *req;
    mn_auth_op_t op; /* what the method does, for mn_auth_allow */
    api_ctx nf; /* what a NOT_FOUND / EXISTS is about */
    g_unary_fn unary;
    g_batch_fn batch;
} g_method;

/* Recall (grpc_methods.c): a RecallRequest as the engine's request (its space aside), and the
 * time window of an answer (absent when none). */
mn_err g_recall_in(gctx *c, const Mnemo__V1__RecallRequest *q, mn_recall_req_t *rr, mn_error *err);
mn_err g_time_window_out(gctx *c, const mn_recall_result_t *res, Mnemo__V1__TimeWindow **out,
                         mn_error *err);
/* RecallMany: one cue over many spaces (grpc_recall_many.c). */
mn_err g_m_recall_many(gctx *c, const ProtobufCMessage *req, ProtobufCMessage **resp,
                       mn_error *err);

/* ClusterSpaces: the placement table (grpc_cluster.c). */
mn_err g_m_cluster_spaces(gctx *c, const ProtobufCMessage *req, ProtobufCMessage **resp,
                          mn_error *err);
/* ClusterGossip and ClusterHints: this node's gossip and hints views (grpc_cluster.c). */
mn_err g_m_cluster_gossip(gctx *c, const ProtobufCMessage *req, ProtobufCMessage **resp,
                          mn_error *err);
mn_err g_m_cluster_hints(gctx *c, const ProtobufCMessage *req, ProtobufCMessage **resp,
                         mn_error *err);
/* doc as a message of type d whose fields take doc's members of the same names (nested
 * messages and repeated fields too), built in a (grpc_json.c). */
mn_err g_msg_from_json(api_arena *a, const ProtobufCMessageDescriptor *d, const cJSON *doc,
                       ProtobufCMessage **out, mn_error *err);

/* Forget by filter and its jobs (grpc_forget.c). */
mn_err g_m_forget_where(gctx *c, const ProtobufCMessage *req, ProtobufCMessage **resp,
                        mn_error *err);
mn_err g_m_get_job(gctx *c, const ProtobufCMessage *req, ProtobufCMessage **resp, mn_error *err);
mn_err g_m_cancel_job(gctx *c, const ProtobufCMessage *req, ProtobufCMessage **resp,
                      mn_error *err);

/* The method of a request path, or NULL. */
const g_method *g_method_find(const char *path, size_t len);
/* Every method, for tests and docs: *n gets the count. */
const g_method *g_methods_all(size_t *n);
/* The most messages a client stream may send (RememberBatch). */
#define G_STREAM_MAX MN_BATCH_MAX

/* ---- conversions (grpc_convert.c): inputs point into the decoded message ---- */
mn_err g_memory_in(const Mnemo__V1__Memory *pm, const char *pfx, api_arena *a, mn_memory_t *m,
                   mn_error *err);
/* A correction's fields (UpdateMemory) into u, by clear's names too. */
mn_err g_update_in(const Mnemo__V1__UpdateMemoryRequest *q, api_arena *a, mn_update_req_t *u,
                   mn_error *err);
/* Output messages are built in the arena (NULL members on out-of-memory are caught by
 * g_oom). */
Mnemo__V1__Memory *g_memory_out(api_arena *a, const mn_memory_t *m);
mn_err g_filter_in(const Mnemo__V1__Filter *pf, api_arena *a, mn_filter_t *f, mn_error *err);
Mnemo__V1__RecallHit *g_hit_out(api_arena *a, const mn_recall_hit_t *h, bool spread, bool trace);
Mnemo__V1__Space *g_space_out(api_arena *a, const mn_space_def_t *d);
mn_err g_id_in(const char *s, const char *field, mn_id_t *id, mn_error *err);
char *g_id_out(api_arena *a, const mn_id_t *id);
/* Enum conversions: MN_ERR_INVALID naming field for a number we do not know. */
mn_err g_kind_in(Mnemo__V1__Kind k, bool allow_any, int *out, const char *field, mn_error *err);
Mnemo__V1__Kind g_kind_out(mn_kind_t k);
Mnemo__V1__EdgeKind g_edge_kind_out(uint8_t k);
mn_err g_edge_kind_in(Mnemo__V1__EdgeKind k, mn_edge_kind_t *out, const char *field, mn_error *err);
Mnemo__V1__Metric g_metric_out(mn_metric_t m);
Mnemo__V1__Lifecycle g_lifecycle_out(mn_lifecycle_t l);
mn_err g_lifecycle_in(Mnemo__V1__Lifecycle l, mn_lifecycle_t *out, const char *field, mn_error *err);
mn_err g_metric_in(Mnemo__V1__Metric m, mn_metric_t *out, mn_error *err);
/* Allocates n zeroed pointers in the arena (NULL when n is 0 or out of memory). */
void **g_ptrs(api_arena *a, size_t n);
/* A message of the given type in the arena, initialised, or NULL. */
void *g_msg(api_arena *a, size_t size, void (*init)(void *));
#define G_NEW(a, T, init_fn) ((T *)g_msg((a), sizeof(T), (void (*)(void *))(init_fn)))

/* ---- the Watch stream (grpc_watch.c) ---- */
typedef struct gcall gcall;
typedef struct gwatch_hub gwatch_hub;
gwatch_hub *g_watch_hub_new(int max_watches);
/* Ends every stream with a CLOSED event; new Watch calls are refused. */
void g_watch_hub_close(gwatch_hub *h);
/* After every watch call has ended (the server's shutdown is complete). */
void g_watch_hub_free(gwatch_hub *h);

/* ---- call plumbing shared by grpc_server.c and grpc_watch.c ---- */
typedef enum { GT_NEW, GT_RECV, GT_SEND, GT_FINISH, GT_CLOSE, GT_SHUTDOWN } gtag_kind;
typedef struct gtag {
    gtag_kind kind;
    gcall *call;
} gtag;

struct gcall {
    mn_grpc_t *srv;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    const g_method *m;
    gtag t_new, t_recv, t_send, t_finish, t_close;
    grpc_byte_buffer *recv_buf;
    grpc_byte_buffer *send_buf;
    int cancelled;     /* RECV_CLOSE_ON_SERVER result */
    bool initial_sent; /* SEND_INITIAL_METADATA went out */
    bool close_armed;  /* RECV_CLOSE_ON_SERVER is in flight or done */
    int64_t started_ns;
    const char *key_name; /* set by g_call_authorize: the key's configured name, or NULL */
    const char *key;      /* set by g_call_authorize: the key presented (in md), or NULL */
    size_t key_len;
    int level;            /* set by g_call_route: the request's consistency, -1 = default */
    bool forward;         /* set by g_call_route: another node serves this stream */
    char partition[300];  /* set by g_call_route: no copy answered a Recall (why), or "" */
    int64_t replica_lag_ms; /* set by g_call_route: served here from a copy this far behind */
    bool hinted;          /* set by g_call_route: kept here as a hint (partition writes) */
    mn_id_t hint_base;    /* with hinted: the ids chosen for it */
    size_t stream_bytes;  /* received so far */
    /* client stream: decoded messages so far */
    ProtobufCMessage **msgs;
    size_t n_msgs, cap_msgs;
    /* status being sent */
    grpc_status_code status;
    grpc_slice status_msg;
    grpc_metadata trailing[3];
    size_t n_trailing;
    char code[40];
    char hint[160];
    grpc_slice details_bin;
    /* the worker queue (grpc_server.c) */
    gcall *work_next;
    bool work_ok;
    /* Watch */
    struct gwatch *watch;
    atomic_int refs; /* outstanding ops + 1 while the state machine owns it */
};

/* The engine and the auth of the server (for grpc_watch.c). */
mn_api_t *g_srv_api(mn_grpc_t *g);
gwatch_hub *g_srv_hub(mn_grpc_t *g);
/* Checks the call's API key for its method's operation on space (NULL: none); on refusal
 * finishes the call with UNAUTHENTICATED / PERMISSION_DENIED and returns false. */
bool g_call_authorize(gcall *c, const char *space);
/* Finishes the call: initial metadata if not sent yet, resp (may be NULL) and the status of
 * rc (MN_OK = OK) with err's message. resp is packed at once (may live in an arena). */
void g_call_finish(gcall *c, mn_err rc, const mn_error *err, api_ctx nf,
                   const ProtobufCMessage *resp);
/* Finishes with an explicit gRPC status (no mnemo error code unless code is set). */
void g_call_finish_status(gcall *c, grpc_status_code st, const char *msg, const char *code,
                          const char *hint, const ProtobufCMessage *resp);
/* Drops one reference; the last frees the call. */
void g_call_unref(gcall *c);
/* Decodes the received message into the method's request type; NULL (err set, field path
 * after pfx) on a malformed one or one with a string that holds a NUL or is not UTF-8.
 * Free the result with protobuf_c_message_free_unpacked(m, &g_allocator). */
ProtobufCMessage *g_call_decode(gcall *c, const char *pfx, mn_error *err);
/* The same for a message of type d in buf (len bytes), received some other way. */
ProtobufCMessage *g_decode_bytes(const ProtobufCMessageDescriptor *d, const uint8_t *buf,
                                 size_t len, const char *pfx, mn_error *err);
/* Finishes the call OK with an already packed response message (copied). */
void g_call_finish_bytes(gcall *c, const uint8_t *buf, size_t len);
extern ProtobufCAllocator g_allocator;
/* Starts a batch; on failure logs and returns false (nothing was started). */
bool g_call_batch(gcall *c, const grpc_op *ops, size_t n, gtag *tag);
/* Packs a message into a new byte buffer (NULL on out-of-memory). */
grpc_byte_buffer *g_pack(const ProtobufCMessage *msg);

/* Watch handler entry: the request decoded and authorized; takes over the call. */
void g_watch_start(gcall *c, const Mnemo__V1__WatchRequest *req);
/* A completion of one of the watch's ops (send, finish or close). */
void g_watch_on_op(gcall *c, gtag_kind kind, bool ok);
/* Frees the watch of a call being freed. */
void g_watch_free(gcall *c);

/* ---- cluster mode (grpc_route.c) ---- */
/* The string field name of msg ("" when unset), or NULL when msg has no such field. */
const char *g_msg_string(const ProtobufCMessage *msg, const char *name);
/* Validates the request options of req (consistency, read) and, in cluster mode, whether
 * this node serves it: false when the call was answered (INVALID_ARGUMENT,
 * FAILED_PRECONDITION naming the node that serves it, UNAVAILABLE). */
bool g_call_route(gcall *c, mn_api_t *api, const ProtobufCMessage *req);
/* Finishes the call with st and the JSON error of an HTTP answer (its message, code and
 * hint; msg and code when it has none). */
void g_finish_http_error(gcall *c, const mn_http_response_t *resp, grpc_status_code st,
                         const char *msg, const char *code);
/* A client stream g_call_route found another node serves (c->forward), once it ended:
 * forwards its messages and finishes the call from the answer. false: this node serves it
 * after all (the placement moved meanwhile): run it here. */
bool g_call_forward_batch(gcall *c, mn_api_t *api);
/* After a successful write: waits for the level (mn_spaces_level_t; -1 = the default) of
 * req's space when req's method takes one (it has a consistency field). */
mn_err g_settle(mn_api_t *api, const ProtobufCMessage *req, int level, mn_error *err);

/* ---- a call forwarded from another node (grpc_hop.c) ----
 * The node a call reaches sends it, when another node serves its space, over a signed
 * internal hop (POST /v1/spaces/{space}/grpc/{method}, the packed request as the body; a
 * client stream's messages, once it ended, each after its u32 BE length); the
 * serving node runs the method and answers an envelope: G_HOP_MAGIC, the mn_err (i32 BE),
 * a denied flag (u8: PERMISSION_DENIED of RecallMany's kind), the message's length (u32 BE)
 * and bytes, then the packed response. The calling node finishes the call from it exactly
 * as if it had run the method itself. */
#define G_HOP_MAGIC "MNGH"
/* The serving node's part, for the REST door (mn_api.grpc_hop). */
extern const api_grpc_hop g_hop_serve;
/* The calling node's part: fills c's answer from a hop's HTTP response. */
void g_hop_finish(gcall *c, const mn_http_response_t *resp);
/* After a write method succeeded: waits for the request's level (methods with a
 * "consistency" field only); MN_ERR_UNAVAILABLE when it was not reached. */
mn_err g_call_settle(gcall *c, mn_api_t *api, const ProtobufCMessage *req, mn_error *err);

#endif
