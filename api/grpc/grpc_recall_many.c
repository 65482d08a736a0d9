/* RecallMany: one cue over many spaces (docs/api.md, "Recall over many spaces"; the REST
 * door's POST /v1/recall). The RecallRequest inside is read as Recall reads it; the plan, the
 * run and the merge are api_recall_many's, shared by every door. */
#include "api_recall_many.h"
#include "grpc_internal.h"

#include <string.h>

#define OOM(err) mn_error_set((err), MN_ERR_NOMEM, "out of memory")

static mn_err request_in(gctx *c, const Mnemo__V1__RecallManyRequest *q, api_many_req *in,
                         mn_recall_req_t *rr, mn_error *err)
{
    if (!q->recall)
        return mn_error_set(err, MN_ERR_INVALID, "recall: required (the cue: text, embedding)");
    if (q->recall->space)
        return mn_error_set(err, MN_ERR_INVALID,
                            "recall.space: not used by RecallMany; name the spaces in spaces or "
                            "space_prefix");
    *in = (api_many_req){.key = c->key, .key_len = c->key_len};
    if (q->n_spaces) {
        in->names = (const char *const *)q->spaces;
        in->n_names = q->n_spaces;
    }
    in->prefix = q->space_prefix;
    in->timeout_ms = q->has_timeout_ms ? q->timeout_ms : MN_QUERY_TIMEOUT_MS_DEFAULT;
    mn_err rc = q->recall->read ? api_read_parse(q->recall->read, &in->read, err) : MN_OK;
    return rc ? rc : g_recall_in(c, q->recall, rr, err); /* read: each space's copy */
}

static mn_err missing_out(gctx *c, const api_many *m, char **names,
                          Mnemo__V1__RecallManyResponse *o, mn_error *err)
{
    size_t n = m->res.n_missing;
    o->missing = (Mnemo__V1__MissingSpace **)g_ptrs(&c->arena, n);
    if (n && !o->missing) return OOM(err);
    for (size_t i = 0; i < n; i++) {
        Mnemo__V1__MissingSpace *ms =
            G_NEW(&c->arena, Mnemo__V1__MissingSpace, mnemo__v1__missing_space__init);
        if (!ms) return OOM(err);
        ms->space = names[m->res.missing[i].space];
        ms->reason = (char *)m->res.missing[i].reason;
        ms->no_stand_in = (char *)m->res.missing[i].no_stand_in; /* NULL: not sent */
        o->missing[i] = ms;
    }
    o->n_missing = n;
    return MN_OK;
}

/* names: the plan's spaces copied into the arena (the response is encoded after the plan is
 * freed). */
static mn_err response_out(gctx *c, const api_many *m, char **names, const mn_recall_req_t *rr,
                           Mnemo__V1__RecallManyResponse *o, mn_error *err)
{
    const mn_query_result_t *res = &m->res;
    o->results = (Mnemo__V1__RecallHit **)g_ptrs(&c->arena, res->n_hits);
    if (res->n_hits && !o->results) return OOM(err);
    for (size_t i = 0; i < res->n_hits; i++) {
        Mnemo__V1__RecallHit *h = g_hit_out(&c->arena, &res->hits[i], rr->spread, rr->trace);
        if (!h) return OOM(err);
        h->space = names[res->hit_space[i]];
        o->results[i] = h;
    }
    o->n_results = res->n_hits;
    o->spaces = names;
    o->n_spaces = m->plan.n;
    o->has_reachable = o->has_recall_confidence = o->has_scanned = true;
    o->reachable = res->reachable;
    o->recall_confidence = res->recall_confidence;
    o->scanned = res->scanned;
    mn_err rc = missing_out(c, m, names, o, err);
    return rc ? rc : g_time_window_out(c, &res->window, &o->time_window, err);
}

mn_err g_m_recall_many(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp, mn_error *err)
{
    const Mnemo__V1__RecallManyRequest *q = (const Mnemo__V1__RecallManyRequest *)r;
    int64_t t0 = mn_time_mono_ns();
    api_many_req in;
    mn_recall_req_t rr;
    api_many m = {0};
    mn_err rc = request_in(c, q, &in, &rr, err);
    if (!rc) rc = api_recall_many(c->api, &in, &rr, &m, err);
    c->denied = rc && m.plan.denied[0];
    Mnemo__V1__RecallManyResponse *o =
        rc ? NULL
           : G_NEW(&c->arena, Mnemo__V1__RecallManyResponse, mnemo__v1__recall_many_response__init);
    if (!rc && !o) rc = OOM(err);
    /* the names live in the plan: the response is encoded after this returns, so copy them */
    char **names = rc ? NULL : (char **)g_ptrs(&c->arena, m.plan.n);
    if (!rc && m.plan.n && !names) rc = OOM(err);
    for (size_t i = 0; !rc && i < m.plan.n; i++)
        if (!(names[i] = api_arena_strndup(&c->arena, m.plan.spaces[i], strlen(m.plan.spaces[i]))))
            rc = OOM(err);
    if (!rc) rc = response_out(c, &m, names, &rr, o, err);
    if (!rc) {
        o->has_took_ms = true;
        o->took_ms = (double)(mn_time_mono_ns() - t0) / 1e6;
        *resp = &o->base;
    }
    api_many_clear(&m);
    return rc;
}
