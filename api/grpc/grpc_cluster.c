/* ClusterSpaces (docs/grpc.md): the placement table of GET /v1/cluster/spaces, read from the
 * same document (the cluster's hook renders it; one source for both doors) and carried as
 * typed messages. ClusterGossip and ClusterHints: the documents of GET /v1/cluster/gossip and
 * GET /v1/cluster/hints the same way, their messages filled by field name (grpc_json.c). */
#include <stdlib.h>
#include <string.h>

#include "grpc_internal.h"

static char *str_of(api_arena *a, const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? api_arena_strndup(a, v->valuestring, strlen(v->valuestring)) : NULL;
}

/* The number field name of o into *out (false: absent or null). */
static bool num_of(const cJSON *o, const char *name, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v)) return false;
    *out = v->valuedouble;
    return true;
}

/* The strings of array name of o into *out / *n (arena). */
static void strs_of(api_arena *a, const cJSON *o, const char *name, char ***out, size_t *n)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, name);
    size_t k = (size_t)cJSON_GetArraySize(arr);
    *out = k ? (char **)g_ptrs(a, k) : NULL;
    *n = 0;
    for (const cJSON *x = arr ? arr->child : NULL; *out && x; x = x->next)
        if (cJSON_IsString(x))
            (*out)[(*n)++] = api_arena_strndup(a, x->valuestring, strlen(x->valuestring));
}

static Mnemo__V1__ClusterHolder *holder_out(api_arena *a, const cJSON *h)
{
    Mnemo__V1__ClusterHolder *o =
        G_NEW(a, Mnemo__V1__ClusterHolder, mnemo__v1__cluster_holder__init);
    if (!o) return NULL;
    o->node = str_of(a, h, "node");
    o->role = str_of(a, h, "role");
    o->has_down = true;
    o->down = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "down"));
    double v;
    if ((o->has_applied_lsn = num_of(h, "applied_lsn", &v))) o->applied_lsn = (uint64_t)v;
    if ((o->has_lag_entries = num_of(h, "lag_entries", &v))) o->lag_entries = (uint64_t)v;
    if ((o->has_lag_ms = num_of(h, "lag_ms", &v))) o->lag_ms = (int64_t)v;
    return o;
}

static Mnemo__V1__ClusterSpace *space_out(api_arena *a, const cJSON *e)
{
    Mnemo__V1__ClusterSpace *o = G_NEW(a, Mnemo__V1__ClusterSpace, mnemo__v1__cluster_space__init);
    if (!o) return NULL;
    o->name = str_of(a, e, "name");
    o->primary = str_of(a, e, "primary");
    double v;
    if ((o->has_epoch = num_of(e, "epoch", &v))) o->epoch = (uint64_t)v;
    if ((o->has_incarnation = num_of(e, "incarnation", &v))) o->incarnation = (uint64_t)v;
    strs_of(a, e, "replicas", &o->replicas, &o->n_replicas);
    strs_of(a, e, "flags", &o->flags, &o->n_flags);
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(e, "holders");
    size_t n = (size_t)cJSON_GetArraySize(hs);
    o->holders = n ? (Mnemo__V1__ClusterHolder **)g_ptrs(a, n) : NULL;
    for (const cJSON *h = hs ? hs->child : NULL; o->holders && h; h = h->next)
        if (!(o->holders[o->n_holders++] = holder_out(a, h))) return NULL;
    return o;
}

static Mnemo__V1__ClusterMember *member_out(api_arena *a, const cJSON *m)
{
    Mnemo__V1__ClusterMember *o =
        G_NEW(a, Mnemo__V1__ClusterMember, mnemo__v1__cluster_member__init);
    if (!o) return NULL;
    o->id = str_of(a, m, "id");
    o->zone = str_of(a, m, "zone");
    o->api = str_of(a, m, "api");
    o->peer = str_of(a, m, "peer");
    o->has_draining = true;
    o->draining = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "draining"));
    o->has_suspect = true;
    o->suspect = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "suspect"));
    return o;
}

static mn_err doc_out(api_arena *a, const cJSON *d, Mnemo__V1__ClusterSpacesResponse *o,
                      mn_error *err)
{
    o->self = str_of(a, d, "self");
    o->write_consistency = str_of(a, d, "write_consistency");
    o->zone = str_of(a, d, "zone");
    o->has_preview = true;
    o->preview = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "preview"));
    double v;
    if ((o->has_replication_factor = num_of(d, "replication_factor", &v)))
        o->replication_factor = (uint32_t)v;
    if ((o->has_under_replicated = num_of(d, "under_replicated", &v)))
        o->under_replicated = (uint32_t)v;
    if ((o->has_unavailable = num_of(d, "unavailable", &v))) o->unavailable = (uint32_t)v;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(d, "members");
    const cJSON *ss = cJSON_GetObjectItemCaseSensitive(d, "spaces");
    size_t nm = (size_t)cJSON_GetArraySize(ms), ns = (size_t)cJSON_GetArraySize(ss);
    o->members = nm ? (Mnemo__V1__ClusterMember **)g_ptrs(a, nm) : NULL;
    o->spaces = ns ? (Mnemo__V1__ClusterSpace **)g_ptrs(a, ns) : NULL;
    if ((nm && !o->members) || (ns && !o->spaces))
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (const cJSON *m = ms ? ms->child : NULL; m; m = m->next)
        if (!(o->members[o->n_members++] = member_out(a, m)))
            return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (const cJSON *e = ss ? ss->child : NULL; e; e = e->next)
        if (!(o->spaces[o->n_spaces++] = space_out(a, e)))
            return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    return MN_OK;
}

/* "a,b,c" of the request's names (arena), or NULL when it names none. */
static char *names_in(api_arena *a, const Mnemo__V1__ClusterSpacesRequest *q, mn_error *err)
{
    size_t len = 0;
    for (size_t i = 0; i < q->n_names; i++) {
        if (!q->names[i] || !mn_space_name_valid(q->names[i])) {
            mn_error_set(err, MN_ERR_INVALID, "names[%zu]: not a valid space name", i);
            return NULL;
        }
        len += strlen(q->names[i]) + 1;
    }
    char *out = q->n_names ? api_arena_alloc(a, len) : NULL;
    for (size_t i = 0, at = 0; out && i < q->n_names; i++) {
        size_t l = strlen(q->names[i]);
        memcpy(out + at, q->names[i], l);
        at += l;
        out[at++] = i + 1 < q->n_names ? ',' : '\0';
    }
    if (q->n_names && !out) mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    return out;
}

mn_err g_m_cluster_spaces(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                          mn_error *err)
{
    const Mnemo__V1__ClusterSpacesRequest *q = (const Mnemo__V1__ClusterSpacesRequest *)r;
    const api_cluster_hooks *h = c->api->cluster;
    if (!h || !h->cluster_spaces)
        return mn_error_set(err, MN_ERR_NOT_FOUND,
                            "this node runs alone ([cluster] enabled = false): it has no "
                            "placement table");
    char *names = names_in(&c->arena, q, err);
    if (err->code) return err->code;
    int status = 0;
    char *text = h->cluster_spaces(h->arg, names, &status, err);
    if (!text) return err->code ? err->code : mn_error_set(err, MN_ERR_UNAVAILABLE, "unavailable");
    cJSON *doc = cJSON_Parse(text);
    free(text);
    Mnemo__V1__ClusterSpacesResponse *o = G_NEW(&c->arena, Mnemo__V1__ClusterSpacesResponse,
                                                mnemo__v1__cluster_spaces_response__init);
    mn_err rc = doc && o ? doc_out(&c->arena, doc, o, err)
                         : mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    cJSON_Delete(doc);
    if (!rc) *resp = &o->base;
    return rc;
}

/* A cluster view: the hook's document (fn NULL: a single node, what it lacks) as a message
 * of type d. */
static mn_err view_out(gctx *c, api_cluster_doc_fn fn, const char *lacks,
                       const ProtobufCMessageDescriptor *d, ProtobufCMessage **resp, mn_error *err)
{
    const api_cluster_hooks *h = c->api->cluster;
    if (!h || !fn)
        return mn_error_set(err, MN_ERR_NOT_FOUND,
                            "this node runs alone ([cluster] enabled = false): it has no %s",
                            lacks);
    int status = 0;
    char *text = fn(h->arg, &status, err);
    if (!text) return err->code ? err->code : mn_error_set(err, MN_ERR_UNAVAILABLE, "unavailable");
    cJSON *doc = cJSON_Parse(text);
    free(text);
    mn_err rc = doc ? g_msg_from_json(&c->arena, d, doc, resp, err)
                    : mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    cJSON_Delete(doc);
    return rc;
}

mn_err g_m_cluster_gossip(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp,
                          mn_error *err)
{
    (void)r;
    const api_cluster_hooks *h = c->api->cluster;
    return view_out(c, h ? h->cluster_gossip : NULL, "gossip",
                    &mnemo__v1__cluster_gossip_response__descriptor, resp, err);
}

mn_err g_m_cluster_hints(gctx *c, const ProtobufCMessage *r, ProtobufCMessage **resp, mn_error *err)
{
    (void)r;
    const api_cluster_hooks *h = c->api->cluster;
    return view_out(c, h ? h->cluster_hints : NULL, "hints",
                    &mnemo__v1__cluster_hints_response__descriptor, resp, err);
}
