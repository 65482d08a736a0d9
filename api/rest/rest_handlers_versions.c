/* HTTP handlers for corrections (docs/api.md, "Corrections"): PATCH a memory (a new
 * version), its history, and invalidation. They convert types and call the engine
 * (engine/versions.c), which judges every value.
 *
 * Who made a correction is the API key's configured name when auth is on (nothing a
 * client can claim in the body). A version precondition comes as the body's
 * expected_version or as an If-Match header holding the version number ("3" or 3). */
#include "rest_internal.h"

#include "api_forget.h"
#include "auth.h"
#include "embed/embed.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const update_fields[] = {"content",          "embedding",       "tags",
                                            "metadata",         "importance",      "context",
                                            "expected_version", "idempotency_key", "consistency",
                                            NULL};
static const char *const context_fields[] = {"who", "where", "session", NULL};
static const char *const invalidate_fields[] = {"by", "reason", "consistency", NULL};

const char *rest_caller_name(const mn_api_t *api, const mn_http_request_t *req)
{
    if (!api->auth || !mn_auth_enabled(api->auth)) return NULL;
    if (api->cluster && mn_http_header_get(req, "x-mnemo-hop-node")) {
        const char *name = api_request_key_name(api, req); /* vouched for by the node */
        return *name ? name : NULL;
    }
    const char *key = mn_auth_http_key(req);
    mn_auth_verdict_t v;
    /* the key was admitted already (the gate, or the MCP tool's own check): only its name */
    mn_auth_allow(api->auth, key, key ? strlen(key) : 0, MN_AUTH_OP_MEMORY_READ,
                  req->n_params ? req->params[0] : NULL, &v);
    return v.key_name && v.key_name[0] ? v.key_name : NULL;
}

/* If-Match: the version number the client expects, bare or quoted (0: no header). */
static mn_err if_match(const mn_http_request_t *req, uint32_t *out, mn_error *err)
{
    *out = 0;
    const char *h = mn_http_header_get(req, "if-match");
    if (!h) return MN_OK;
    size_t n = strlen(h);
    if (n >= 2 && h[0] == '"' && h[n - 1] == '"') h++, n -= 2;
    char buf[16];
    unsigned long v = 0;
    if (n && n < sizeof buf && h[0] >= '0' && h[0] <= '9') {
        memcpy(buf, h, n);
        buf[n] = '\0';
        char *end;
        errno = 0;
        v = strtoul(buf, &end, 10);
        if (*end || errno || v > UINT32_MAX) v = 0;
    }
    if (!v)
        return mn_error_set(err, MN_ERR_INVALID,
                            "If-Match: expected the version number the correction replaces, "
                            "e.g. \"2\"");
    *out = (uint32_t)v;
    return MN_OK;
}

static mn_err read_context(const cJSON *o, api_arena *a, mn_update_req_t *u, mn_error *err)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "context");
    if (!c || cJSON_IsNull(c)) return MN_OK;
    if (!cJSON_IsObject(c)) return mn_error_set(err, MN_ERR_INVALID, "context: expected an object");
    mn_err rc = api_check_fields(c, context_fields, "context.", err);
    u->has_who = cJSON_GetObjectItemCaseSensitive(c, "who") != NULL;
    u->has_where = cJSON_GetObjectItemCaseSensitive(c, "where") != NULL;
    u->has_session = cJSON_GetObjectItemCaseSensitive(c, "session") != NULL;
    if (!rc) rc = api_get_strings(c, "who", "context.", true, a, &u->who, &u->n_who, err);
    if (!rc) rc = api_get_string(c, "where", "context.", &u->where, err);
    if (!rc) rc = api_get_string(c, "session", "context.", &u->session, err);
    return rc;
}

/* The body of a PATCH into u (pointers into the body and the arena). */
static mn_err update_from_json(const cJSON *o, api_arena *a, mn_update_req_t *u, mn_error *err)
{
    mn_err rc = api_check_fields(o, update_fields, "", err);
    if (!rc) rc = api_get_string(o, "content", "", &u->content, err);
    if (u->content) u->content_len = strlen(u->content);
    float *emb = NULL;
    if (!rc) rc = api_get_floats(o, "embedding", "", a, &emb, &u->dim, err);
    u->embedding = emb;
    u->has_tags = cJSON_GetObjectItemCaseSensitive(o, "tags") != NULL;
    if (!rc) rc = api_get_strings(o, "tags", "", false, a, &u->tags, &u->n_tags, err);
    u->has_metadata = cJSON_GetObjectItemCaseSensitive(o, "metadata") != NULL;
    if (!rc) rc = api_get_string_map(o, "metadata", "", a, &u->metadata, &u->n_metadata, err);
    if (!rc) rc = api_get_float(o, "importance", "", &u->has_importance, &u->importance, err);
    if (!rc) rc = read_context(o, a, u, err);
    bool has_v = false;
    int64_t v = 0;
    if (!rc) rc = api_get_int(o, "expected_version", "", &has_v, &v, err);
    if (!rc && has_v && (v < 1 || v > UINT32_MAX))
        rc = mn_error_set(err, MN_ERR_INVALID, "expected_version: must be a version number >= 1");
    if (has_v) u->expected_version = (uint32_t)v;
    if (!rc) rc = api_get_string(o, "idempotency_key", "", &u->idempotency_key, err);
    return rc;
}

/* 200 with memory m, which it clears. */
static void respond_memory(mn_http_response_t *resp, mn_memory_t *m)
{
    api_jw w;
    jw_init(&w);
    rest_memory_to_json(&w, m);
    mn_memory_clear(m);
    jw_respond(&w, resp, 200);
}

/* A correction made durable here: 200 with m once it reached level (else 503); clears m. */
static void settle_and_respond(mn_api_t *api, const mn_http_request_t *req, int level,
                               mn_http_response_t *resp, mn_memory_t *m)
{
    if (rest_write_settled(api, req->params[0], level, resp))
        respond_memory(resp, m);
    else
        mn_memory_clear(m);
}

void rest_h_update(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    mn_id_t id;
    if (!rest_path_id(req, &id, resp)) return;
    cJSON *body = rest_body_in_space(api, req, resp);
    if (!body) return;
    api_arena a;
    api_arena_init(&a);
    mn_error err = {0};
    mn_update_req_t u = {0};
    uint32_t header_version = 0;
    int level = -1;
    mn_err rc = update_from_json(body, &a, &u, &err);
    if (!rc) rc = rest_consistency_body(body, &level, &err);
    if (!rc) rc = if_match(req, &header_version, &err);
    if (!rc && header_version && u.expected_version && header_version != u.expected_version)
        rc = mn_error_set(&err, MN_ERR_INVALID, "expected_version: %u, but If-Match says %u",
                          u.expected_version, header_version);
    if (header_version) u.expected_version = header_version;
    u.by = rest_caller_name(api, req);
    /* new words without a vector: the space's provider embeds them, as for a remember */
    u.drop_embedding = u.content && !u.embedding && mn_embed_space_uses(api->embed, req->params[0]);
    mn_memory_t m;
    if (!rc) rc = mn_engine_update(api->engine, req->params[0], &id, &u, &m, &err);
    if (!rc && u.drop_embedding)
        mn_embed_remembered(api->embed, req->params[0], &m, &m.version_id, 1);
    if (rest_done(resp, body, &a, rc, &err, API_CTX_MEMORY)) return;
    settle_and_respond(api, req, level, resp, &m);
}

void rest_h_history(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    mn_id_t id;
    if (!rest_query_none(req, resp, API_CTX_MEMORY) || !rest_path_id(req, &id, resp)) return;
    mn_error err = {0};
    mn_memory_t *vs;
    size_t n;
    mn_err rc = mn_engine_history(api->engine, req->params[0], &id, &vs, &n, &err);
    if (rest_failed(resp, rc, &err, API_CTX_MEMORY)) return;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "id");
    jw_id(&w, &id);
    jw_key(&w, "versions");
    jw_arr(&w);
    for (size_t i = 0; i < n; i++) {
        rest_memory_to_json(&w, &vs[i]);
        mn_memory_clear(&vs[i]);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
    free(vs);
    jw_respond(&w, resp, 200);
}

void rest_h_invalidate(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    mn_id_t id, by;
    if (!rest_path_id(req, &id, resp)) return;
    cJSON *body = rest_body(req, resp, API_CTX_MEMORY);
    if (!body) return;
    api_arena a;
    api_arena_init(&a);
    mn_error err = {0};
    const char *by_s = NULL, *reason = NULL;
    mn_err rc = api_check_fields(body, invalidate_fields, "", &err);
    if (!rc) rc = api_get_string(body, "by", "", &by_s, &err);
    if (!rc && by_s && mn_id_parse(by_s, strlen(by_s), &by))
        rc = mn_error_set(&err, MN_ERR_INVALID, "by: not a memory id");
    if (!rc) rc = api_get_string(body, "reason", "", &reason, &err);
    int level = -1;
    if (!rc) rc = rest_consistency_body(body, &level, &err);
    mn_memory_t m;
    if (!rc)
        rc = mn_engine_invalidate(api->engine, req->params[0], &id, by_s ? &by : NULL, reason, &m,
                                  &err);
    if (rest_done(resp, body, &a, rc, &err, API_CTX_MEMORY)) return;
    settle_and_respond(api, req, level, resp, &m);
}
