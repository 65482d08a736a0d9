/* The catalog's sync thread (pushes, anti-entropy, reconciliation with the
 * engine, tombstone collection), its lifecycle, and the routes
 * GET /v1/cluster/catalog[?digest=1] and POST /v1/cluster/catalog.
 *
 * Every call is a signed internal hop (cl_route_call: role admin, the
 * forward timeout, the member's circuit breaker, no retry).
 * The thread wakes at once when a hook queued entries (a push: POST of the
 * changed entries to every alive member, failures only logged:
 * anti-entropy repairs them) and every interval for a round with one
 * random alive member: GET its digest; if it differs, GET its catalog,
 * merge it, and POST ours back if the digests still differ (push-pull, so
 * either side's news reaches the other in one round). */
#include "cluster_catalog_internal.h"

#include "api_internal.h"
#include "cluster_client.h"
#include "cluster_route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/util.h"

/* ---- JSON documents ---- */

/* The set of a JSON text into s; false (logged) when it is not a catalog. */
static bool parse_set(const char *from, const char *text, size_t len, cl_catalog_set *s)
{
    api_json_result res;
    cJSON *doc = api_json_parse(text, len, &res);
    mn_error err = {0};
    bool ok = doc && cl_catalog_set_from_json(doc, s, &err) == MN_OK;
    if (!ok) mn_log_warn("catalog: %s sent no catalog: %s", from, doc ? err.message : "not JSON");
    api_json_free(doc);
    return ok;
}

/* ---- pushes and pulls ---- */

/* One signed call of this node to m (cl_route_call: its breaker, the forward timeout). A
 * 200's body into out (free()); false when m could not be asked or did not say 200. */
static bool call_member(cl_catalog *cat, const cl_catalog_member *m, const char *method,
                        const char *target, const char *body, char **out, size_t *len)
{
    cl_http_resp r;
    mn_error err = {0};
    cl_http_fail f = cl_route_call(cl__catalog_route(cat), m->id, method, target, body,
                                   body ? strlen(body) : 0, &r, &err);
    if (f != CL_HTTP_OK) {
        mn_log_debug("catalog: %s %s on %s failed: %s", method, target, m->id, err.message);
        return false;
    }
    bool ok = r.status == 200;
    if (!ok) mn_log_warn("catalog: %s %s refused by %s: HTTP %d", method, target, m->id, r.status);
    if (ok && out) {
        *out = r.body;
        *len = r.body_len;
        r.body = NULL;
    }
    cl_http_resp_free(&r);
    return ok;
}

static bool push_to(cl_catalog *cat, const cl_catalog_member *m, const char *doc)
{
    return call_member(cat, m, "POST", "/v1/cluster/catalog", doc, NULL, NULL);
}

static void push(cl_catalog *cat, const cl_catalog_set *pending, const cl_catalog_member *m,
                 size_t n)
{
    char *doc = cl_catalog_set_text(pending, false);
    if (!doc) {
        mn_log_warn("catalog: out of memory building a push");
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (push_to(cat, &m[i], doc)) cl__catalog_held(cat, m[i].id, pending);
    cJSON_free(doc);
}

/* The "digest" of GET ?digest=1 into out; false when the member cannot say. */
static bool remote_digest(cl_catalog *cat, const cl_catalog_member *m, char out[65])
{
    char *body = NULL;
    size_t len = 0;
    if (!call_member(cat, m, "GET", "/v1/cluster/catalog?digest=1", NULL, &body, &len))
        return false;
    api_json_result res;
    cJSON *doc = api_json_parse(body, len, &res);
    const cJSON *d = doc ? cJSON_GetObjectItemCaseSensitive(doc, "digest") : NULL;
    bool ok = cJSON_IsString(d) && strlen(d->valuestring) == 64;
    if (ok) memcpy(out, d->valuestring, 65);
    api_json_free(doc);
    free(body);
    return ok;
}

/* One anti-entropy round with m. */
static void exchange(cl_catalog *cat, const cl_catalog_member *m)
{
    char theirs[65], ours[65];
    if (!remote_digest(cat, m, theirs)) return;
    cl__catalog_digest(cat, ours);
    if (!strcmp(ours, theirs)) {
        cl__catalog_held_all(cat, m->id); /* it has every record this node has */
        return;
    }
    char *body = NULL;
    size_t len = 0;
    if (!call_member(cat, m, "GET", "/v1/cluster/catalog", NULL, &body, &len)) return;
    cl_catalog_set in;
    cl_catalog_set_init(&in);
    if (parse_set(m->id, body, len, &in)) {
        size_t k = cl__catalog_merge_all(cat, &in, false);
        if (k) mn_log_info("catalog: learned %zu entries from %s", k, m->id);
    }
    free(body);
    cl_catalog_set_free(&in);
    cl__catalog_digest(cat, ours);
    if (!strcmp(ours, theirs)) {
        cl__catalog_held_all(cat, m->id);
        return;
    }
    cl_catalog_set mine;
    cl_catalog_set_init(&mine);
    if (cl__catalog_copy(cat, &mine) == MN_OK) {
        char *doc = cl_catalog_set_text(&mine, false);
        if (doc && push_to(cat, m, doc)) cl__catalog_held(cat, m->id, &mine);
        cJSON_free(doc);
    }
    cl_catalog_set_free(&mine);
}

/* ---- the thread ---- */

static void round_of(cl_catalog *cat, mn_prng_t *rng)
{
    cl_catalog_member m;
    if (cl__catalog_pick(cat, rng, &m)) exchange(cat, &m);
    cl__catalog_reconcile(cat);
    cl__catalog_collect(cat, mn_time_now_ms());
}

void *cl__catalog_thread(void *arg)
{
    cl_catalog *cat = arg;
    mn_prng_t rng;
    mn_prng_seed(&rng, mn_random_seed());
    int64_t next_ms = mn_time_now_ms();
    for (;;) {
        cl_catalog_set pending;
        cl_catalog_member *members = NULL;
        size_t n = 0;
        bool stop = cl__catalog_wait(cat, next_ms, &pending, &members, &n);
        if (stop) {
            cl_catalog_set_free(&pending);
            free(members);
            return NULL;
        }
        if (pending.n) push(cat, &pending, members, n);
        cl_catalog_set_free(&pending);
        free(members);
        if (mn_time_now_ms() >= next_ms) {
            round_of(cat, &rng);
            next_ms = mn_time_now_ms() + cl__catalog_interval_ms(cat);
        }
    }
}

/* ---- routes ---- */

static const char *const get_params[] = {"digest", NULL};

void cl_catalog_handle_get(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    cl_catalog *cat = ctx;
    api_arena a;
    api_arena_init(&a);
    api_qparam *q = NULL;
    size_t nq = 0;
    bool digest_only = false;
    mn_error err = {0};
    mn_err rc = api_query_read(req, get_params, false, &a, &q, &nq, &err);
    for (size_t i = 0; !rc && i < nq; i++)
        rc = api_query_bool("digest", q[i].value, &digest_only, &err);
    api_arena_free(&a);
    if (rc) {
        mn_http_respond_error(resp, 422, "invalid_argument", err.message, NULL);
        return;
    }
    char *body = cl__catalog_render(cat, !digest_only);
    if (!body) {
        mn_http_respond_error(resp, 503, "unavailable", "out of memory", NULL);
        return;
    }
    mn_http_respond(resp, 200, NULL, body, strlen(body));
    cJSON_free(body);
}

void cl_catalog_handle_post(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    cl_catalog *cat = ctx;
    mn_error herr = {0};
    if (cl_hop_present(req) && cl_hop_verify_body(req, &herr) != MN_OK) {
        mn_http_respond_error(resp, 401, "unauthenticated", herr.message, NULL);
        return;
    }
    api_json_result res;
    cJSON *doc = api_json_parse(req->body ? req->body : "", req->body_len, &res);
    if (!cJSON_IsObject(doc)) {
        api_json_free(doc);
        mn_http_respond_error(resp, 400, "invalid_json", "the body must be a JSON object", NULL);
        return;
    }
    cl_catalog_set in;
    cl_catalog_set_init(&in);
    mn_error err = {0};
    mn_err rc = api_check_fields(doc, (const char *const[]){"spaces", NULL}, "", &err);
    if (!rc) rc = cl_catalog_set_from_json(doc, &in, &err);
    api_json_free(doc);
    if (rc) {
        cl_catalog_set_free(&in);
        mn_http_respond_error(resp, rc == MN_ERR_NOMEM ? 503 : 422,
                              rc == MN_ERR_NOMEM ? "unavailable" : "invalid_argument", err.message,
                              NULL);
        return;
    }
    size_t k = cl__catalog_merge_all(cat, &in, false);
    cl_catalog_set_free(&in);
    char buf[160], digest[65];
    cl__catalog_digest(cat, digest);
    int n = snprintf(buf, sizeof buf, "{\"merged\":%zu,\"digest\":\"%s\"}", k, digest);
    mn_http_respond(resp, 200, NULL, buf, (size_t)n);
}
