/* A gRPC call forwarded between the nodes of a cluster (grpc_internal.h has the envelope): a
 * unary call, or a client stream once it ended (its messages framed). The calling node packs
 * the request and sends it over a signed internal hop of
 * the HTTP API (grpc_route.c); the serving node's REST door admits the hop and hands it here
 * (g_hop_serve, through mn_api.grpc_hop); the method runs as it would for a local call, its
 * write waits for its level, and the envelope carries back the result: the mn_err and its
 * message, so the calling node builds the same status, code, hint and details as the
 * serving node would have, or the packed response. */
#include "grpc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define G_HOP_HEAD 13 /* magic, rc, denied, message length */

/* ---- the serving node ---- */

/* A method a forward may carry: unary, or a client stream (its messages framed). */
static const g_method *hop_method(const char *name)
{
    char path[96];
    int n = snprintf(path, sizeof path, "/mnemo.v1.Mnemo/%s", name);
    const g_method *m = n > 0 && (size_t)n < sizeof path ? g_method_find(path, (size_t)n) : NULL;
    return m && m->shape != G_SERVER_STREAM ? m : NULL;
}

static bool hop_op_of(const char *method, mn_auth_op_t *op)
{
    const g_method *m = hop_method(method);
    if (m) *op = m->op;
    return m != NULL;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The envelope of a result: rc with msg, or OK with resp (may be NULL). */
static bool envelope(mn_err rc, bool denied, const char *msg, const ProtobufCMessage *resp,
                     uint8_t **out, size_t *out_len)
{
    size_t ml = rc ? strlen(msg) : 0;
    size_t rl = !rc && resp ? protobuf_c_message_get_packed_size(resp) : 0;
    uint8_t *b = malloc(G_HOP_HEAD + ml + rl);
    if (!b) return false;
    memcpy(b, G_HOP_MAGIC, 4);
    put_be32(b + 4, (uint32_t)(int32_t)rc);
    b[8] = denied;
    put_be32(b + 9, (uint32_t)ml);
    memcpy(b + G_HOP_HEAD, msg, ml);
    if (rl) protobuf_c_message_pack(resp, b + G_HOP_HEAD + ml);
    *out = b;
    *out_len = G_HOP_HEAD + ml + rl;
    return true;
}

/* A stream's messages from a forward's body ([u32 BE length][bytes] each): *n decoded into
 * msgs (G_STREAM_MAX of them at most), or an error naming the one at fault. */
static mn_err decode_stream(const g_method *m, const uint8_t *body, size_t len,
                            ProtobufCMessage **msgs, size_t *n, mn_error *err)
{
    *n = 0;
    for (size_t at = 0; at < len;) {
        if (*n == G_STREAM_MAX)
            return mn_error_set(err, MN_ERR_INVALID, "more than %d messages in one stream",
                                G_STREAM_MAX);
        if (len - at < 4 || get_be32(body + at) > len - at - 4)
            return mn_error_set(err, MN_ERR_INVALID, "malformed request: a cut stream frame");
        size_t k = get_be32(body + at);
        char pfx[32];
        snprintf(pfx, sizeof pfx, "memories[%zu].", *n);
        if (!(msgs[*n] = g_decode_bytes(m->req, body + at + 4, k, pfx, err))) return err->code;
        (*n)++;
        at += 4 + k;
    }
    return *n ? MN_OK : mn_error_set(err, MN_ERR_INVALID, "the stream sent no message");
}

/* Runs m on its messages (one for a unary call) as a local call would, its write waiting for
 * the first message's level. */
static mn_err run_method(gctx *ctx, const g_method *m, ProtobufCMessage **msgs, size_t n,
                         ProtobufCMessage **resp, mn_error *err)
{
    int level = -1;
    const char *v = g_msg_string(msgs[0], "consistency");
    mn_err rc = v && *v ? api_consistency_parse(v, &level, err) : MN_OK;
    mn_engine_write_begin(); /* the level is waited for on the entry this call made */
    if (!rc && m->shape == G_UNARY) rc = m->unary(ctx, msgs[0], resp, err);
    if (!rc && m->shape == G_CLIENT_STREAM) rc = m->batch(ctx, msgs, n, resp, err);
    if (!rc && mn_auth_op_role(m->op) >= MN_AUTH_WRITE)
        rc = g_settle(ctx->api, msgs[0], level, err);
    return rc;
}

static bool hop_run(mn_api_t *api, const char *method, const char *key_name, const mn_id_t *ids,
                    const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
    const g_method *m = hop_method(method);
    mn_error err = {0};
    if (!m) {
        mn_error_set(&err, MN_ERR_NOT_FOUND, "no gRPC method %.80s to forward", method);
        return envelope(MN_ERR_NOT_FOUND, false, err.message, NULL, out, out_len);
    }
    size_t cap = m->shape == G_CLIENT_STREAM ? G_STREAM_MAX : 1, n = 0;
    ProtobufCMessage **msgs = calloc(cap, sizeof *msgs);
    if (!msgs) return false;
    mn_err rc = MN_OK;
    if (m->shape == G_CLIENT_STREAM)
        rc = decode_stream(m, body, len, msgs, &n, &err);
    else if ((msgs[0] = g_decode_bytes(m->req, body, len, "", &err)))
        n = 1;
    else
        rc = err.code;
    gctx ctx = {.api = api, .key_name = key_name, .ids = ids};
    api_arena_init(&ctx.arena);
    ProtobufCMessage *resp = NULL;
    if (!rc) rc = run_method(&ctx, m, msgs, n, &resp, &err);
    bool ok = envelope(rc, ctx.denied, err.message, resp, out, out_len);
    api_arena_free(&ctx.arena);
    for (size_t i = 0; i < n; i++)
        protobuf_c_message_free_unpacked(msgs[i], &g_allocator);
    free(msgs);
    return ok;
}

const api_grpc_hop g_hop_serve = {.op_of = hop_op_of, .run = hop_run};

const struct api_grpc_hop *mn_grpc_hop_service(void)
{
    return &g_hop_serve;
}

/* ---- the calling node ---- */

static grpc_status_code status_of_http(int status)
{
    switch (status) {
    case 400:
    case 413:
    case 422:
        return GRPC_STATUS_INVALID_ARGUMENT;
    case 401:
        return GRPC_STATUS_UNAUTHENTICATED;
    case 403:
        return GRPC_STATUS_PERMISSION_DENIED;
    case 404:
        return GRPC_STATUS_UNIMPLEMENTED; /* a node without the route: an older one */
    case 503:
        return GRPC_STATUS_UNAVAILABLE;
    default:
        return status >= 500 ? GRPC_STATUS_INTERNAL : GRPC_STATUS_FAILED_PRECONDITION;
    }
}

/* An answer that is not an envelope: the hop was refused (by the gate, the route, a node
 * without the route) or nothing answered; its JSON error says why. */
static void finish_refused(gcall *c, const mn_http_response_t *resp)
{
    g_finish_http_error(c, resp, status_of_http(resp->status),
                        "the node that serves the space did not answer", "unavailable");
}

void g_hop_finish(gcall *c, const mn_http_response_t *resp)
{
    const uint8_t *b = (const uint8_t *)resp->body;
    size_t n = resp->body_len;
    if (resp->status != 200 || !b || n < G_HOP_HEAD || memcmp(b, G_HOP_MAGIC, 4) != 0 ||
        get_be32(b + 9) > n - G_HOP_HEAD) {
        finish_refused(c, resp);
        return;
    }
    mn_err rc = (mn_err)(int32_t)get_be32(b + 4);
    size_t ml = get_be32(b + 9);
    if (rc == MN_OK) {
        g_call_finish_bytes(c, b + G_HOP_HEAD + ml, n - G_HOP_HEAD - ml);
        return;
    }
    mn_error err = {.code = rc};
    snprintf(err.message, sizeof err.message, "%.*s", (int)ml, (const char *)b + G_HOP_HEAD);
    if (b[8]) /* RecallMany's kind: a space the key may not read */
        g_call_finish_status(c, GRPC_STATUS_PERMISSION_DENIED, err.message, "permission_denied",
                             "a key reads the spaces its [[auth.keys]] entry lists", NULL);
    else
        g_call_finish(c, rc, &err, c->m->nf, NULL);
}
