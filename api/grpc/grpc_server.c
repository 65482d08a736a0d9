/* The gRPC server of mnemo over the gRPC C core (grpc/grpc.h).
 *
 * One completion queue, polled by G_POLLERS threads. In the C core those
 * threads also drive the network I/O (accepts, handshakes, HTTP/2 frames), so
 * they never block: a received request goes to a queue that `threads` worker
 * threads take from and run the handler on (engine calls block on disk and
 * fsync). The libuv loop of the HTTP server is never involved. Every call is a
 * small state machine driven by the tags of its batches:
 *
 *   NEW (grpc_server_request_call) -> RECV (the request message; client
 *   streams loop here until the client half-closes) -> the handler -> FINISH
 *   (initial metadata, response, status, RECV_CLOSE_ON_SERVER) -> freed.
 *
 * Watch (server streaming) hands the call to grpc_watch.c after its request.
 * As many request_call tags as workers are kept armed, so calls are accepted in
 * parallel. Errors follow docs/grpc.md: the engine's error becomes a gRPC status
 * whose message is the HTTP error's, with the HTTP error code in the trailing
 * metadata `mnemo-error-code` and in `grpc-status-details-bin` (an
 * ErrorStatus, wire-compatible with google.rpc.Status + ErrorInfo).
 *
 * API keys are the HTTP API's (api/auth.h): `authorization: Bearer <key>`
 * metadata, the method's role, the request's `space`. Shutdown: stop accepting
 * (grpc_server_shutdown_and_notify), end Watch streams with a CLOSED event,
 * wait for in-flight calls up to a grace period, cancel the rest, then shut the
 * queue down and join the pollers, then the workers (their queue is empty by
 * then: every call has completed). */
#include "grpc_internal.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mnemo/assert.h"
#include "mnemo/util.h"

/* Pollers: enough to keep I/O moving while one is busy in a (short) completion. */
#define G_POLLERS 2

struct mn_grpc {
    mn_api_t *api;
    const mn_auth_t *auth;
    grpc_server *server;
    grpc_completion_queue *cq;
    pthread_t pollers[G_POLLERS];
    int n_pollers;
    /* workers and their queue of calls whose request arrived (gcall.work_next) */
    pthread_t *workers;
    int n_workers;
    pthread_mutex_t wlock;
    pthread_cond_t wcond;
    gcall *whead, *wtail;
    bool wstop;
    int port;
    size_t max_message_bytes;
    atomic_bool shutting_down;
    gtag t_shutdown;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool shutdown_done;
    gwatch_hub *hub;
    mn_metrics_family_t *requests, *duration;
};

mn_api_t *g_srv_api(mn_grpc_t *g)
{
    return g->api;
}

gwatch_hub *g_srv_hub(mn_grpc_t *g)
{
    return g->hub;
}

int mn_grpc_port(const mn_grpc_t *g)
{
    return g->port;
}

/* ---- calls ---- */

static void arm(mn_grpc_t *g)
{
    if (atomic_load(&g->shutting_down)) return;
    gcall *c = calloc(1, sizeof *c);
    if (!c) {
        mn_log_error("grpc: out of memory accepting a call");
        return;
    }
    c->srv = g;
    c->t_new = (gtag){GT_NEW, c};
    c->t_recv = (gtag){GT_RECV, c};
    c->t_send = (gtag){GT_SEND, c};
    c->t_finish = (gtag){GT_FINISH, c};
    c->t_close = (gtag){GT_CLOSE, c};
    atomic_init(&c->refs, 1);
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    grpc_call_error e =
        grpc_server_request_call(g->server, &c->call, &c->details, &c->md, g->cq, g->cq, &c->t_new);
    if (e != GRPC_CALL_OK) {
        /* only when the server is shutting down */
        grpc_call_details_destroy(&c->details);
        grpc_metadata_array_destroy(&c->md);
        free(c);
    }
}

static void call_free(gcall *c)
{
    if (c->watch) g_watch_free(c);
    for (size_t i = 0; i < c->n_msgs; i++)
        protobuf_c_message_free_unpacked(c->msgs[i], &g_allocator);
    free(c->msgs);
    if (c->recv_buf) grpc_byte_buffer_destroy(c->recv_buf);
    if (c->send_buf) grpc_byte_buffer_destroy(c->send_buf);
    grpc_slice_unref(c->status_msg);
    grpc_slice_unref(c->details_bin);
    for (size_t i = 0; i < c->n_trailing; i++)
        grpc_slice_unref(c->trailing[i].value);
    if (c->call) grpc_call_unref(c->call);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    free(c);
}

void g_call_unref(gcall *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1) call_free(c);
}

bool g_call_batch(gcall *c, const grpc_op *ops, size_t n, gtag *tag)
{
    atomic_fetch_add(&c->refs, 1);
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
    if (e == GRPC_CALL_OK) return true;
    atomic_fetch_sub(&c->refs, 1);
    mn_log_warn("grpc: starting a batch failed (%d)", (int)e);
    return false;
}

grpc_byte_buffer *g_pack(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice s = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

/* Decoded requests are allocated with their size in front, so a string protobuf-c cut at
 * a NUL byte (it copies len bytes and terminates them) can be told from one that ended
 * there: strlen(s) + 1 must be its allocation. */
typedef struct g_hdr {
    size_t n;
    size_t pad; /* keeps what follows 16-byte aligned */
} g_hdr;

static void *g_alloc(void *data, size_t n)
{
    (void)data;
    g_hdr *h = malloc(sizeof *h + n);
    if (!h) return NULL;
    h->n = n;
    return h + 1;
}

static void g_free(void *data, void *p)
{
    (void)data;
    if (p) free((g_hdr *)p - 1);
}

ProtobufCAllocator g_allocator = {g_alloc, g_free, NULL};

/* Every string of m (nested messages included) must be NUL-free UTF-8, as the HTTP API
 * requires of JSON strings. The first offender is named with its field path. */
static mn_err check_strings(const ProtobufCMessage *m, const char *pfx, mn_error *err)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        const char *member = (const char *)m + f->offset;
        bool rep = f->label == PROTOBUF_C_LABEL_REPEATED;
        size_t n = rep ? *(const size_t *)((const char *)m + f->quantifier_offset) : 1;
        void *const *items = rep ? *(void *const *const *)member : (void *const *)member;
        for (size_t j = 0; j < n; j++) {
            const void *v = items ? items[j] : NULL;
            if (!v) continue;
            char path[96];
            if (rep)
                snprintf(path, sizeof path, "%s%s[%zu]", pfx, f->name, j);
            else
                snprintf(path, sizeof path, "%s%s", pfx, f->name);
            if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                char sub[100];
                snprintf(sub, sizeof sub, "%s.", path);
                mn_err rc = check_strings(v, sub, err);
                if (rc) return rc;
                continue;
            }
            const char *str = v;
            size_t len = ((const g_hdr *)str - 1)->n - 1;
            if (strlen(str) != len)
                return mn_error_set(err, MN_ERR_INVALID, "%s: contains a NUL character", path);
            if (!mn_utf8_valid(str, len))
                return mn_error_set(err, MN_ERR_INVALID, "%s: not valid UTF-8", path);
        }
    }
    return MN_OK;
}

ProtobufCMessage *g_decode_bytes(const ProtobufCMessageDescriptor *d, const uint8_t *buf,
                                 size_t len, const char *pfx, mn_error *err)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, &g_allocator, len, buf);
    if (!m) {
        mn_error_set(err, MN_ERR_INVALID, "malformed request: not a valid %s message", d->name);
        return NULL;
    }
    if (check_strings(m, pfx, err)) {
        protobuf_c_message_free_unpacked(m, &g_allocator);
        return NULL;
    }
    return m;
}

ProtobufCMessage *g_call_decode(gcall *c, const char *pfx, mn_error *err)
{
    grpc_byte_buffer_reader r;
    ProtobufCMessage *m = NULL;
    bool over = false, read = false;
    if (grpc_byte_buffer_reader_init(&r, c->recv_buf)) {
        read = true;
        grpc_slice s = grpc_byte_buffer_reader_readall(&r);
        grpc_byte_buffer_reader_destroy(&r);
        /* a client stream holds all its messages until it ends: bound them together, as
         * HTTP bounds a batch's body */
        c->stream_bytes += GRPC_SLICE_LENGTH(s);
        over = c->stream_bytes > c->srv->max_message_bytes;
        if (!over)
            m = g_decode_bytes(c->m->req, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s), pfx, err);
        grpc_slice_unref(s);
    }
    grpc_byte_buffer_destroy(c->recv_buf);
    c->recv_buf = NULL;
    if (over)
        mn_error_set(err, MN_ERR_TOO_LARGE,
                     "the stream's messages exceed grpc.max_message_bytes (%zu bytes) in all",
                     c->srv->max_message_bytes);
    else if (!read)
        mn_error_set(err, MN_ERR_INVALID, "malformed request: not a valid %s message",
                     c->m->req->name);
    return m;
}

static const char *status_name(grpc_status_code st)
{
    static const char *const names[] = {"OK",
                                        "CANCELLED",
                                        "UNKNOWN",
                                        "INVALID_ARGUMENT",
                                        "DEADLINE_EXCEEDED",
                                        "NOT_FOUND",
                                        "ALREADY_EXISTS",
                                        "PERMISSION_DENIED",
                                        "RESOURCE_EXHAUSTED",
                                        "FAILED_PRECONDITION",
                                        "ABORTED",
                                        "OUT_OF_RANGE",
                                        "UNIMPLEMENTED",
                                        "INTERNAL",
                                        "UNAVAILABLE",
                                        "DATA_LOSS",
                                        "UNAUTHENTICATED"};
    return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "UNKNOWN";
}

static grpc_status_code status_of(mn_err rc)
{
    switch (rc) {
    case MN_OK:
        return GRPC_STATUS_OK;
    case MN_ERR_INVALID:
    case MN_ERR_PARSE:
        return GRPC_STATUS_INVALID_ARGUMENT;
    case MN_ERR_NOT_FOUND:
    case MN_ERR_GONE:
        return GRPC_STATUS_NOT_FOUND;
    case MN_ERR_EXISTS:
        return GRPC_STATUS_ALREADY_EXISTS;
    case MN_ERR_CONFLICT:
        return GRPC_STATUS_ABORTED;
    case MN_ERR_TOO_LARGE:
    case MN_ERR_LIMIT:
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case MN_ERR_CLOSED:
    case MN_ERR_BUSY:
    case MN_ERR_UNAVAILABLE:
    case MN_ERR_NOMEM:
        return GRPC_STATUS_UNAVAILABLE;
    case MN_ERR_UNSUPPORTED:
        return GRPC_STATUS_UNIMPLEMENTED;
    default:
        return GRPC_STATUS_INTERNAL;
    }
}

/* The ErrorStatus of grpc-status-details-bin (google.rpc.Status-compatible). */
static grpc_slice details_bin(grpc_status_code st, const char *msg, const char *code,
                              const char *hint)
{
    Mnemo__V1__ErrorInfo info = MNEMO__V1__ERROR_INFO__INIT;
    Mnemo__V1__ErrorInfo__MetadataEntry hint_e = MNEMO__V1__ERROR_INFO__METADATA_ENTRY__INIT;
    Mnemo__V1__ErrorInfo__MetadataEntry *entries[1] = {&hint_e};
    info.reason = (char *)code;
    info.domain = "mnemo";
    if (hint) {
        hint_e.key = "hint";
        hint_e.value = (char *)hint;
        info.metadata = entries;
        info.n_metadata = 1;
    }
    size_t ilen = protobuf_c_message_get_packed_size(&info.base);
    uint8_t *ibuf = malloc(ilen ? ilen : 1);
    if (!ibuf) return grpc_empty_slice();
    protobuf_c_message_pack(&info.base, ibuf);
    Mnemo__V1__ErrorDetail d = MNEMO__V1__ERROR_DETAIL__INIT;
    d.type_url = "type.googleapis.com/google.rpc.ErrorInfo";
    d.has_value = true;
    d.value.data = ibuf;
    d.value.len = ilen;
    Mnemo__V1__ErrorDetail *ds[1] = {&d};
    Mnemo__V1__ErrorStatus s = MNEMO__V1__ERROR_STATUS__INIT;
    s.has_code = true;
    s.code = (int32_t)st;
    s.message = (char *)msg;
    s.details = ds;
    s.n_details = 1;
    grpc_slice out = grpc_slice_malloc(protobuf_c_message_get_packed_size(&s.base));
    protobuf_c_message_pack(&s.base, GRPC_SLICE_START_PTR(out));
    free(ibuf);
    return out;
}

static void observe(gcall *c, grpc_status_code st)
{
    mn_grpc_t *g = c->srv;
    const char *method = c->m ? strrchr(c->m->path, '/') + 1 : "unknown";
    const char *values[] = {method, status_name(st)};
    int64_t ns = mn_time_mono_ns() - c->started_ns;
    mn_metrics_add(g->requests, values, 1);
    mn_metrics_observe(g->duration, values, ns > 0 ? (uint64_t)ns : 0);
    mn_log_level_t level =
        st == GRPC_STATUS_INTERNAL || st == GRPC_STATUS_UNKNOWN ? MN_LOG_WARN : MN_LOG_DEBUG;
    if (!mn_log_enabled(level)) return;
    double ms = (double)ns / 1e6;
    mn_log_field_t f[] = {
        {.key = "grpc_method", .str = method, .in_msg = true},
        {.key = "grpc_status", .str = values[1], .in_msg = true},
        {.key = "duration_ms", .num = (double)(int64_t)(ms * 1000) / 1000, .in_msg = true},
    };
    mn_log_with(level, f, 3, "grpc %s %s %.3fms", method, values[1], ms);
}

static void finish_buf(gcall *c, grpc_status_code st, const char *msg, const char *code,
                       const char *hint, grpc_byte_buffer *resp);

void g_call_finish_status(gcall *c, grpc_status_code st, const char *msg, const char *code,
                          const char *hint, const ProtobufCMessage *resp)
{
    finish_buf(c, st, msg, code, hint, resp && st == GRPC_STATUS_OK ? g_pack(resp) : NULL);
}

void g_call_finish_bytes(gcall *c, const uint8_t *buf, size_t len)
{
    grpc_slice s = grpc_slice_from_copied_buffer((const char *)buf, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    finish_buf(c, GRPC_STATUS_OK, "", NULL, NULL, bb);
}

/* Finishes the call with status st and, when st is OK, the message resp (taken over). */
static void finish_buf(gcall *c, grpc_status_code st, const char *msg, const char *code,
                       const char *hint, grpc_byte_buffer *resp)
{
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->initial_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n++].data.send_initial_metadata.count = 0;
        c->initial_sent = true;
    }
    if (resp) {
        mn_assert(st == GRPC_STATUS_OK);
        c->send_buf = resp;
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->send_buf;
    }
    c->status = st;
    c->status_msg = grpc_slice_from_copied_string(msg ? msg : "");
    if (code) {
        snprintf(c->code, sizeof c->code, "%s", code);
        c->trailing[c->n_trailing].key = grpc_slice_from_static_string("mnemo-error-code");
        c->trailing[c->n_trailing++].value = grpc_slice_from_copied_string(c->code);
        if (hint) {
            snprintf(c->hint, sizeof c->hint, "%s", hint);
            c->trailing[c->n_trailing].key = grpc_slice_from_static_string("mnemo-error-hint");
            c->trailing[c->n_trailing++].value = grpc_slice_from_copied_string(c->hint);
        }
        c->details_bin = details_bin(st, msg ? msg : "", c->code, hint);
        c->trailing[c->n_trailing].key = grpc_slice_from_static_string("grpc-status-details-bin");
        c->trailing[c->n_trailing++].value = grpc_slice_ref(c->details_bin);
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = st;
    ops[n].data.send_status_from_server.status_details = &c->status_msg;
    ops[n].data.send_status_from_server.trailing_metadata = c->trailing;
    ops[n++].data.send_status_from_server.trailing_metadata_count = c->n_trailing;
    if (!c->close_armed) {
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
        c->close_armed = true;
    }
    observe(c, st);
    if (!g_call_batch(c, ops, n, &c->t_finish)) {
        /* the call is gone (cancelled before we could answer): just let it go */
        grpc_call_cancel(c->call, NULL);
        g_call_unref(c);
    }
}

void g_call_finish(gcall *c, mn_err rc, const mn_error *err, api_ctx nf,
                   const ProtobufCMessage *resp)
{
    if (rc == MN_OK) {
        g_call_finish_status(c, GRPC_STATUS_OK, "", NULL, NULL, resp);
        return;
    }
    char clean[MN_ERROR_MSG_MAX * 2];
    const char *hint;
    api_err_message(rc, err, clean, sizeof clean);
    const char *code = api_err_code(rc, clean, nf, &hint);
    if (hint && !strncmp(hint, "list spaces", 11))
        hint = "list spaces with ListSpaces; create one with CreateSpace";
    g_call_finish_status(c, status_of(rc), clean, code, hint, NULL);
}

/* ---- auth ---- */

static bool slice_eq(grpc_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return GRPC_SLICE_LENGTH(s) == n && !memcmp(GRPC_SLICE_START_PTR(s), lit, n);
}

bool g_call_authorize(gcall *c, const char *space)
{
    const mn_auth_t *auth = c->srv->auth;
    if (!auth || !mn_auth_enabled(auth)) return true;
    const char *key = NULL;
    size_t key_len = 0;
    for (size_t i = 0; i < c->md.count; i++) {
        if (!slice_eq(c->md.metadata[i].key, "authorization")) continue;
        const char *v = (const char *)GRPC_SLICE_START_PTR(c->md.metadata[i].value);
        size_t n = GRPC_SLICE_LENGTH(c->md.metadata[i].value);
        if (n > 7 && !strncasecmp(v, "bearer ", 7)) {
            key = v + 7;
            key_len = n - 7;
            while (key_len && *key == ' ')
                key++, key_len--;
        } else {
            key = "";
            key_len = 0;
        }
    }
    c->key = key;
    c->key_len = key_len;
    /* a space name that is not valid cannot be in any key's list: check it as such */
    mn_auth_verdict_t v;
    switch (mn_auth_allow(auth, key, key_len, c->m->op, space, &v)) {
    case MN_AUTH_OK:
        c->key_name = v.key_name && v.key_name[0] ? v.key_name : NULL;
        return true;
    case MN_AUTH_NO_KEY:
    case MN_AUTH_BAD_KEY:
        g_call_finish_status(c, GRPC_STATUS_UNAUTHENTICATED, v.message, "unauthenticated",
                             "send metadata authorization: Bearer <key>", NULL);
        return false;
    case MN_AUTH_ROLE_DENIED:
    case MN_AUTH_SPACE_DENIED:
        break;
    }
    g_call_finish_status(c, GRPC_STATUS_PERMISSION_DENIED, v.message, "permission_denied", v.hint,
                         NULL);
    return false;
}

/* The `space` of a request message, or NULL (CreateSpace, ListSpaces, ...). */
static const char *request_space(const ProtobufCMessage *msg)
{
    return g_msg_string(msg, "space");
}

/* ---- the state machine ---- */

static void run_unary(gcall *c, ProtobufCMessage *req)
{
    gctx ctx = {.api = c->srv->api,
                .key_name = c->key_name,
                .key = c->key,
                .key_len = c->key_len,
                .partition = c->partition[0] ? c->partition : NULL,
                .replica_lag_ms = c->replica_lag_ms};
    ctx.hint_base = c->hinted ? &c->hint_base : NULL;
    api_arena_init(&ctx.arena);
    ProtobufCMessage *resp = NULL;
    mn_error err = {0};
    mn_engine_write_begin(); /* a write's level is waited for on the entry this call made */
    mn_err rc = c->m->unary(&ctx, req, &resp, &err);
    /* a hint is durable here; its merge waits for the space's level on the primary */
    if (!rc && !c->hinted && mn_auth_op_role(c->m->op) >= MN_AUTH_WRITE)
        rc = g_call_settle(c, c->srv->api, req, &err);
    if (rc && ctx.denied) /* RecallMany: a space the key may not read */
        g_call_finish_status(c, GRPC_STATUS_PERMISSION_DENIED, err.message, "permission_denied",
                             "a key reads the spaces its [[auth.keys]] entry lists", NULL);
    else
        g_call_finish(c, rc, &err, c->m->nf, resp);
    api_arena_free(&ctx.arena);
}

static void run_batch(gcall *c)
{
    gctx ctx = {.api = c->srv->api, .key_name = c->key_name, .key = c->key, .key_len = c->key_len};
    api_arena_init(&ctx.arena);
    ProtobufCMessage *resp = NULL;
    mn_error err = {0};
    mn_engine_write_begin();
    mn_err rc = c->m->batch(&ctx, c->msgs, c->n_msgs, &resp, &err);
    /* the first message's level and space */
    if (!rc) rc = g_call_settle(c, c->srv->api, c->msgs[0], &err);
    g_call_finish(c, rc, &err, c->m->nf, resp);
    api_arena_free(&ctx.arena);
}

static void recv_next(gcall *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_buf;
    if (!g_call_batch(c, &op, 1, &c->t_recv)) g_call_unref(c);
}

static void on_new(gcall *c)
{
    c->started_ns = mn_time_mono_ns();
    const char *path = (const char *)GRPC_SLICE_START_PTR(c->details.method);
    size_t len = GRPC_SLICE_LENGTH(c->details.method);
    c->m = g_method_find(path, len);
    if (!c->m) {
        char msg[200];
        snprintf(msg, sizeof msg, "unknown method %.*s (see api/proto/mnemo/v1/mnemo.proto)",
                 (int)(len > 120 ? 120 : len), path);
        g_call_finish_status(c, GRPC_STATUS_UNIMPLEMENTED, msg, "not_found", NULL, NULL);
        return;
    }
    recv_next(c);
}

static void on_recv(gcall *c, bool ok)
{
    if (!ok) { /* the call broke before its message arrived */
        g_call_unref(c);
        return;
    }
    const g_method *m = c->m;
    if (!c->recv_buf) { /* the client half-closed */
        if (m->shape == G_CLIENT_STREAM && c->n_msgs > 0) {
            if (!c->forward || !g_call_forward_batch(c, c->srv->api)) run_batch(c);
        } else {
            mn_error err;
            mn_error_set(&err, MN_ERR_INVALID, "%s",
                         m->shape == G_CLIENT_STREAM ? "the stream sent no message"
                                                     : "no request message");
            g_call_finish(c, MN_ERR_INVALID, &err, m->nf, NULL);
        }
        return;
    }
    char pfx[32] = "";
    if (m->shape == G_CLIENT_STREAM) snprintf(pfx, sizeof pfx, "memories[%zu].", c->n_msgs);
    mn_error err = {0};
    ProtobufCMessage *req = g_call_decode(c, pfx, &err);
    if (!req) {
        g_call_finish(c, err.code, &err, m->nf, NULL);
        return;
    }
    switch (m->shape) {
    case G_UNARY:
        if (g_call_authorize(c, request_space(req)) && g_call_route(c, c->srv->api, req))
            run_unary(c, req);
        protobuf_c_message_free_unpacked(req, &g_allocator);
        return;
    case G_SERVER_STREAM:
        if (g_call_authorize(c, request_space(req)))
            g_watch_start(c, (const Mnemo__V1__WatchRequest *)req);
        protobuf_c_message_free_unpacked(req, &g_allocator);
        return;
    case G_CLIENT_STREAM:
        if (c->n_msgs == 0 &&
            !(g_call_authorize(c, request_space(req)) && g_call_route(c, c->srv->api, req))) {
            protobuf_c_message_free_unpacked(req, &g_allocator);
            return;
        }
        if (c->n_msgs == G_STREAM_MAX) {
            protobuf_c_message_free_unpacked(req, &g_allocator);
            mn_error_set(&err, MN_ERR_INVALID, "more than %d messages in one stream", G_STREAM_MAX);
            g_call_finish(c, MN_ERR_INVALID, &err, m->nf, NULL);
            return;
        }
        if (c->n_msgs == c->cap_msgs) {
            size_t cap = c->cap_msgs ? c->cap_msgs * 2 : 16;
            ProtobufCMessage **v = realloc(c->msgs, cap * sizeof *v);
            if (!v) {
                protobuf_c_message_free_unpacked(req, &g_allocator);
                g_call_finish(c, MN_ERR_NOMEM, NULL, m->nf, NULL);
                return;
            }
            c->msgs = v;
            c->cap_msgs = cap;
        }
        c->msgs[c->n_msgs++] = req;
        recv_next(c);
        return;
    }
}

static void on_event(mn_grpc_t *g, gtag *t, bool ok)
{
    gcall *c = t->call;
    switch (t->kind) {
    case GT_SHUTDOWN:
        pthread_mutex_lock(&g->lock);
        g->shutdown_done = true;
        pthread_cond_broadcast(&g->cond);
        pthread_mutex_unlock(&g->lock);
        return;
    case GT_NEW:
        if (!ok) { /* shutting down: the tag came back without a call */
            call_free(c);
            return;
        }
        arm(g);
        on_new(c);
        return;
    case GT_RECV:
        if (ok && c->recv_buf && c->m->shape == G_CLIENT_STREAM) {
            /* a message of a client stream: decoding it and asking for the next calls no
             * engine function, so it is done here; the stream's end goes to a worker */
            on_recv(c, ok);
            g_call_unref(c);
            return;
        }
        /* the handler may block: a worker runs it */
        c->work_ok = ok;
        c->work_next = NULL;
        pthread_mutex_lock(&g->wlock);
        if (g->wtail)
            g->wtail->work_next = c;
        else
            g->whead = c;
        g->wtail = c;
        pthread_cond_signal(&g->wcond);
        pthread_mutex_unlock(&g->wlock);
        return;
    case GT_FINISH:
    case GT_SEND:
    case GT_CLOSE:
        if (c->watch) {
            g_watch_on_op(c, t->kind, ok);
        } else if (t->kind == GT_FINISH) {
            g_call_unref(c); /* the state machine's own reference */
        }
        g_call_unref(c);
        return;
    }
}

static void *poller_main(void *arg)
{
    mn_grpc_t *g = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type == GRPC_OP_COMPLETE) on_event(g, ev.tag, ev.success != 0);
    }
    return NULL;
}

static void *worker_main(void *arg)
{
    mn_grpc_t *g = arg;
    pthread_mutex_lock(&g->wlock);
    for (;;) {
        while (!g->whead && !g->wstop)
            pthread_cond_wait(&g->wcond, &g->wlock);
        if (!g->whead) break; /* stopping and drained */
        gcall *c = g->whead;
        g->whead = c->work_next;
        if (!g->whead) g->wtail = NULL;
        pthread_mutex_unlock(&g->wlock);
        on_recv(c, c->work_ok);
        g_call_unref(c); /* the RECV batch's reference */
        pthread_mutex_lock(&g->wlock);
    }
    pthread_mutex_unlock(&g->wlock);
    return NULL;
}

static void stop_workers(mn_grpc_t *g)
{
    pthread_mutex_lock(&g->wlock);
    g->wstop = true;
    pthread_cond_broadcast(&g->wcond);
    pthread_mutex_unlock(&g->wlock);
    for (int i = 0; i < g->n_workers; i++)
        pthread_join(g->workers[i], NULL);
    free(g->workers);
    g->workers = NULL;
    g->n_workers = 0;
    pthread_mutex_destroy(&g->wlock);
    pthread_cond_destroy(&g->wcond);
}

/* ---- lifecycle ---- */

static char *read_file(const char *path, mn_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mn_error_set(err, MN_ERR_IO, "grpc: cannot read %s", path);
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) break;
        if (len + 1 == cap) {
            char *nb = cap < (16u << 20) ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        mn_error_set(err, MN_ERR_IO, "grpc: %s is too large", path);
        return NULL;
    }
    buf[len] = 0;
    return buf;
}

static grpc_server_credentials *credentials(const mn_grpc_options_t *o, mn_error *err)
{
    bool cert = o->tls_cert && o->tls_cert[0], key = o->tls_key && o->tls_key[0];
    if (!cert && !key) return grpc_insecure_server_credentials_create();
    if (cert != key) {
        mn_error_set(err, MN_ERR_INVALID, "grpc.tls_cert and grpc.tls_key: set both or neither");
        return NULL;
    }
    char *chain = read_file(o->tls_cert, err);
    if (!chain) return NULL;
    char *pkey = read_file(o->tls_key, err);
    if (!pkey) {
        free(chain);
        return NULL;
    }
    grpc_ssl_pem_key_cert_pair pair = {.private_key = pkey, .cert_chain = chain};
    grpc_server_credentials *cr = grpc_ssl_server_credentials_create(NULL, &pair, 1, 0, NULL);
    memset(pkey, 0, strlen(pkey));
    free(pkey);
    free(chain);
    if (!cr) mn_error_set(err, MN_ERR_INVALID, "grpc: cannot use %s / %s", o->tls_cert, o->tls_key);
    return cr;
}

static const char *const grpc_labels[] = {"method", "code"};

/* A server not listening yet: its settings, locks and metric families. NULL if out of memory. */
static mn_grpc_t *server_new(mn_api_t *api, const mn_auth_t *auth, const mn_grpc_options_t *o)
{
    mn_grpc_t *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->api = api;
    g->auth = auth;
    g->max_message_bytes = o->max_message_bytes;
    g->t_shutdown = (gtag){GT_SHUTDOWN, NULL};
    atomic_init(&g->shutting_down, false);
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    pthread_mutex_init(&g->wlock, NULL);
    pthread_cond_init(&g->wcond, NULL);
    mn_metrics_t *reg = mn_metrics_process();
    g->requests = mn_metrics_counter(reg, "mnemo_grpc_requests_total",
                                     "gRPC calls by method and status code.", grpc_labels, 2);
    g->duration = mn_metrics_histogram(reg, "mnemo_grpc_request_duration_seconds",
                                       "gRPC call latency from the call's arrival to its status.",
                                       grpc_labels, 2, mn_hist_latency_ns, MN_HIST_LATENCY_N, 1e-9);
    return g;
}

/* Frees a server that never started its threads (after grpc_init). */
static void server_free(mn_grpc_t *g)
{
    grpc_shutdown();
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->wlock);
    pthread_cond_destroy(&g->wcond);
    free(g);
}

static grpc_arg int_arg(const char *key, int value)
{
    grpc_arg a = {.type = GRPC_ARG_INTEGER, .key = (char *)key};
    a.value.integer = value;
    return a;
}

/* Creates the gRPC server and its completion queue and binds the port (not started yet). On
 * failure nothing of them is left. */
static mn_err server_listen(mn_grpc_t *g, const mn_grpc_options_t *o, mn_error *err)
{
    grpc_server_credentials *cr = credentials(o, err);
    if (!cr) return err ? err->code : MN_ERR_INVALID;
    grpc_arg args[] = {
        int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, (int)o->max_message_bytes),
        int_arg(GRPC_ARG_MAX_CONCURRENT_STREAMS, o->max_concurrent_streams),
        int_arg(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                o->handshake_timeout_ms > 0 ? o->handshake_timeout_ms : 30000),
        int_arg(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                o->idle_timeout_ms > 0 ? o->idle_timeout_ms : 600000),
    };
    grpc_channel_args ca = {.num_args = sizeof args / sizeof args[0], .args = args};
    g->server = grpc_server_create(&ca, NULL);
    g->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(g->server, g->cq, NULL);
    char addr[320];
    snprintf(addr, sizeof addr, strchr(o->bind, ':') ? "[%s]:%d" : "%s:%d", o->bind, o->port);
    g->port = grpc_server_add_http2_port(g->server, addr, cr);
    grpc_server_credentials_release(cr);
    mn_err rc = MN_OK;
    if (g->port <= 0) {
        rc = mn_error_set(err, MN_ERR_IO, "grpc: cannot listen on %s", addr);
    } else if (!(g->hub = g_watch_hub_new(o->max_watches))) {
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    if (rc) {
        grpc_server_shutdown_and_notify(g->server, g->cq, &g->t_shutdown);
        grpc_server_cancel_all_calls(g->server);
        grpc_completion_queue_shutdown(g->cq);
        while (grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_server_destroy(g->server);
        grpc_completion_queue_destroy(g->cq);
    }
    return rc;
}

/* Starts the workers and the pollers; false if a thread could not be created (those that were
 * are counted in n_workers / n_pollers for mn_grpc_stop). */
static bool start_threads(mn_grpc_t *g, int workers)
{
    g->workers = calloc((size_t)workers, sizeof *g->workers);
    bool started = g->workers != NULL;
    for (int i = 0; started && i < workers; i++) {
        if (pthread_create(&g->workers[i], NULL, worker_main, g))
            started = false;
        else
            g->n_workers++;
    }
    for (int i = 0; started && i < G_POLLERS; i++) {
        if (pthread_create(&g->pollers[i], NULL, poller_main, g))
            started = false;
        else
            g->n_pollers++;
    }
    return started;
}

mn_err mn_grpc_start(mn_api_t *api, const mn_auth_t *auth, const mn_grpc_options_t *o,
                     mn_grpc_t **out, mn_error *err)
{
    *out = NULL;
    mn_grpc_t *g = server_new(api, auth, o);
    if (!g) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    grpc_init();
    mn_err rc = server_listen(g, o, err);
    if (rc) {
        server_free(g);
        return rc;
    }
    grpc_server_start(g->server);
    if (!start_threads(g, o->threads > 0 ? o->threads : 1)) {
        mn_grpc_stop(g, 0);
        return mn_error_set(err, MN_ERR_NOMEM, "grpc: cannot start threads");
    }
    for (int i = 0; i < g->n_workers; i++)
        arm(g);
    mn_log_info("grpc listening on %s%s:%d (%s)", strchr(o->bind, ':') ? "[" : "", o->bind, g->port,
                o->tls_cert && o->tls_cert[0] ? "tls" : "plaintext");
    *out = g;
    return MN_OK;
}

void mn_grpc_shutdown_begin(mn_grpc_t *g)
{
    if (atomic_exchange(&g->shutting_down, true)) return;
    grpc_server_shutdown_and_notify(g->server, g->cq, &g->t_shutdown);
    g_watch_hub_close(g->hub);
}

static bool wait_shutdown(mn_grpc_t *g, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&g->lock);
    while (!g->shutdown_done)
        if (pthread_cond_timedwait(&g->cond, &g->lock, &ts)) break;
    bool done = g->shutdown_done;
    pthread_mutex_unlock(&g->lock);
    return done;
}

void mn_grpc_stop(mn_grpc_t *g, int64_t grace_ms)
{
    if (!g) return;
    mn_grpc_shutdown_begin(g);
    if (!wait_shutdown(g, grace_ms)) {
        mn_log_warn("grpc: calls still running after %lld ms: cancelling them",
                    (long long)grace_ms);
        grpc_server_cancel_all_calls(g->server);
        if (!wait_shutdown(g, 10000)) mn_log_error("grpc: shutdown did not complete");
    }
    grpc_completion_queue_shutdown(g->cq);
    for (int i = 0; i < g->n_pollers; i++)
        pthread_join(g->pollers[i], NULL);
    if (g->n_pollers == 0) { /* no thread ever polled: drain here */
        while (grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN) {
        }
    }
    stop_workers(g); /* every call has completed: their queue is empty */
    grpc_server_destroy(g->server);
    grpc_completion_queue_destroy(g->cq);
    g_watch_hub_free(g->hub);
    grpc_shutdown();
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
    free(g);
    mn_log_info("grpc server stopped");
}
