/* Routing in cluster mode (docs/api.md, "Cluster mode"; docs/replication.md, "Routing").
 *
 * Any node takes any request about any space. The REST entry (api/rest/rest_route.c) asks
 * cl_route_request where the request must run, from this node's placement table
 * (cl_spaces_lookup):
 *   - a write runs on the space's primary; a space creation on the primary the placement
 *     would give the new name, so the space is born where it is led;
 *   - a read with read=primary (the default: read-your-writes) too, falling back to a live
 *     replica in rotation whose lag is known, or this node's own, when the primary does not
 *     answer (read=nearest also takes copies of unknown lag);
 *   - a read with read=nearest runs here when this node holds a copy in rotation (the
 *     primary, or a full replica that knows it is at most 10 s behind: it follows a primary
 *     whose appends it hears; past 1 s its recall hits say stale_replica), else as
 *     read=primary; a primary whose lease lapsed counts the time since the lapse as its lag;
 *     a replica that serves a forwarded read says its lag the same way;
 *   - a space the table does not know runs here (single-node behaviour: 404 if absent),
 *     except a space of the catalog this node does not hold while its placement has not
 *     started (a moment after a start): 503, to retry.
 * A forward is an internal hop: signed with the cluster key (api/cluster_hop.c), carrying
 * the grant of the client's API key, never the key. A hop is never forwarded again: the
 * node it reaches serves it (if its table disagrees, the engine's own role check decides).
 *
 * Failures: connect failures (nothing was sent) are retried with exponential backoff and
 * jitter; a node that failed breaker_failures times in a row has its circuit breaker open
 * for breaker_open_ms, then one probe goes through (half-open) and its result closes or
 * reopens it. A write whose forward may have reached the primary is never re-sent: it
 * answers 503 saying so (remember's idempotency_key makes the client's retry safe). */
#include "cluster_route.h"

#include "cluster_client.h"
#include "cluster_replay.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mnemo/assert.h"
#include "mnemo/metrics.h"
#include "mnemo/util.h"

#define BREAKERS_MAX 64
#define TARGET_MAX 1024

typedef struct breaker {
    char node[MN_SPACES_NODE_MAX + 1];
    int failures;          /* in a row */
    int64_t open_until_ms; /* 0 = closed */
    bool probing;          /* half-open: one request is trying the node */
} breaker;

struct cl_route {
    cl_spaces *cs;
    cl_route_opts o;
    char *key;
    const mn_auth_t *auth;
    pthread_mutex_t mu; /* guards what follows */
    breaker br[BREAKERS_MAX];
    size_t n_br;
    mn_prng_t prng;
    cl_replay *replay; /* the hops the gate admitted lately */
    mn_idgen_t idgen;  /* partition writes: the ids of a hintable write, chosen ahead */
    void *tls;         /* HTTPS to other nodes: the client context; NULL: plain HTTP */
    mn_metrics_family_t *m_forwards, *m_breaker, *m_refused, *m_retries;
};

void cl_route_opts_default(cl_route_opts *o)
{
    memset(o, 0, sizeof *o);
    o->cluster_key = "";
    o->forward_timeout_ms = 5000;
    o->connect_timeout_ms = 1000;
    o->retries = 2;
    o->backoff_ms = 20;
    o->breaker_failures = 3;
    o->breaker_open_ms = 2000;
}

static const char *const result_label[] = {"result"};

mn_err cl_route_new(cl_spaces *cs, const cl_route_opts *o, cl_route **out, mn_error *err)
{
    cl_route *rt = calloc(1, sizeof *rt);
    if (!rt || !(rt->key = strdup(o->cluster_key ? o->cluster_key : "")) ||
        !(rt->replay = cl_replay_new(2 * CL_HOP_SKEW_MS))) {
        if (rt) free(rt->key);
        free(rt);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    rt->cs = cs;
    rt->o = *o;
    if (o->https && !(rt->tls = cl_http_tls_new(o->tls_ca, o->tls_chain, err))) {
        cl_replay_free(rt->replay);
        free(rt->key);
        free(rt);
        return err->code;
    }
    if (rt->o.connect_timeout_ms > rt->o.forward_timeout_ms)
        rt->o.connect_timeout_ms = rt->o.forward_timeout_ms;
    pthread_mutex_init(&rt->mu, NULL);
    mn_prng_seed(&rt->prng, mn_random_seed());
    mn_idgen_init(&rt->idgen, mn_random_seed());
    mn_metrics_t *m = mn_metrics_process();
    rt->m_forwards = mn_metrics_counter(
        m, "mnemo_route_forwards_total",
        "Requests this node sent to another node (cluster routing): ok = answered there, "
        "failed = no node answered (503).",
        result_label, 1);
    rt->m_breaker = mn_metrics_counter(m, "mnemo_route_breaker_opens_total",
                                       "Times a peer's circuit breaker opened.", NULL, 0);
    rt->m_retries = mn_metrics_counter(
        m, "mnemo_route_retries_total",
        "Connect attempts repeated while forwarding (nothing had been sent).", NULL, 0);
    rt->m_refused =
        mn_metrics_counter(m, "mnemo_route_hops_refused_total",
                           "Internal hops refused: bad signature, clock, grant or body.", NULL, 0);
    *out = rt;
    return MN_OK;
}

void cl_route_free(cl_route *rt)
{
    if (!rt) return;
    pthread_mutex_destroy(&rt->mu);
    mn_idgen_destroy(&rt->idgen);
    cl_http_tls_free(rt->tls);
    cl_replay_free(rt->replay);
    free(rt->key);
    free(rt);
}

void cl_route_set_auth(cl_route *rt, const mn_auth_t *auth)
{
    rt->auth = auth;
}

/* One more in metric family f (label: its one label's value, or NULL for none). */
static void count(mn_metrics_family_t *f, const char *label)
{
    const char *v[] = {label};
    if (f) mn_metrics_add(f, label ? v : NULL, 1);
}

/* ---- circuit breakers (under mu) ---- */

static breaker *breaker_of(cl_route *rt, const char *node)
{
    for (size_t i = 0; i < rt->n_br; i++)
        if (!strcmp(rt->br[i].node, node)) return &rt->br[i];
    if (rt->n_br == BREAKERS_MAX) return NULL; /* untracked: always tried */
    breaker *b = &rt->br[rt->n_br++];
    memset(b, 0, sizeof *b);
    snprintf(b->node, sizeof b->node, "%s", node);
    return b;
}

/* May a request go to node now? Closed: yes; open: no until open_until_ms, then one probe. */
static bool breaker_admit(cl_route *rt, const char *node, int64_t now_ms)
{
    pthread_mutex_lock(&rt->mu);
    breaker *b = breaker_of(rt, node);
    bool ok = !b || !b->open_until_ms || (now_ms >= b->open_until_ms && !b->probing);
    if (b && b->open_until_ms && ok) b->probing = true;
    pthread_mutex_unlock(&rt->mu);
    return ok;
}

static void breaker_result(cl_route *rt, const char *node, bool ok, int64_t now_ms)
{
    pthread_mutex_lock(&rt->mu);
    breaker *b = breaker_of(rt, node);
    bool opened = false;
    if (b && ok) {
        b->failures = 0;
        b->open_until_ms = 0;
        b->probing = false;
    } else if (b) {
        b->failures++;
        if (b->probing || b->failures >= rt->o.breaker_failures) {
            opened = !b->open_until_ms || b->probing;
            b->open_until_ms = now_ms + rt->o.breaker_open_ms;
            b->probing = false;
        }
    }
    pthread_mutex_unlock(&rt->mu);
    if (opened) {
        mn_log_warn("route: circuit breaker of node %s open for %lld ms", node,
                    (long long)rt->o.breaker_open_ms);
        count(rt->m_breaker, NULL);
    }
}

/* ---- the plan: where a request runs ---- */

typedef cl_route_plan_t plan;

static bool in_rotation(const cl_holder *h)
{
    return h->role == MN_SPACES_PRIMARY ||
           (h->role == MN_SPACES_REPLICA && h->lag_ms <= CL_ROUTE_OUT_OF_ROTATION_MS);
}

/* A copy a read=primary read may fall back to when the primary does not answer: one whose
 * lag the table knows and that is in rotation. A copy of unknown lag may be any distance
 * behind (a replica cut off, or a restarted one), and read=primary promises
 * read-your-writes; read=nearest accepts it. */
static bool known_fresh(const cl_holder *h)
{
    return h->role == MN_SPACES_PRIMARY || (h->role == MN_SPACES_REPLICA && h->lag_ms >= 0 &&
                                            h->lag_ms <= CL_ROUTE_OUT_OF_ROTATION_MS);
}

static bool reachable(const cl_holder *h)
{
    return h->alive && h->api[0];
}

bool cl_route_plan(const char *self, const api_route_ask *ask, const cl_placement *pl, plan *p)
{
    /* a placement holds at most MN_SPACES_HOLDERS_MAX holders (cl_spaces_lookup checks it
     * where it copies them), so the targets fit */
    mn_assert(pl->n_holders >= 0 && pl->n_holders <= MN_SPACES_HOLDERS_MAX);
    memset(p, 0, sizeof *p);
    p->local_lag_ms = -1;
    int me = -1, primary = pl->n_holders && pl->holders[0].role == MN_SPACES_PRIMARY ? 0 : -1;
    for (int i = 0; i < pl->n_holders; i++)
        if (!strcmp(pl->holders[i].node, self)) me = i;
    if (me >= 0 && me == primary) return p->local_primary = true;
    /* this node's own copy serves first only when it knows its lag (it follows a primary it
     * hears from); a copy of unknown lag is a fallback when the primary does not answer */
    bool mine = me >= 0 && known_fresh(&pl->holders[me]);
    if (!ask->write && ask->read == API_READ_NEAREST && mine) {
        p->local_lag_ms = pl->holders[me].lag_ms;
        return true;
    }
    if (primary >= 0 && reachable(&pl->holders[0])) p->targets[p->n++] = 0;
    if (!ask->write) {
        bool (*fresh)(const cl_holder *) =
            ask->read == API_READ_NEAREST ? in_rotation : known_fresh;
        for (int i = 0; i < pl->n_holders; i++)
            if (i != primary && i != me && pl->holders[i].role == MN_SPACES_REPLICA &&
                fresh(&pl->holders[i]) && reachable(&pl->holders[i]))
                p->targets[p->n++] = i;
        p->local_fallback = me >= 0 && fresh(&pl->holders[me]);
        if (p->local_fallback) p->local_lag_ms = pl->holders[me].lag_ms;
    }
    if (p->n == 0 && !p->local_fallback)
        snprintf(p->why, sizeof p->why, "%s",
                 primary < 0  ? "it has no primary now (an election is pending)"
                 : ask->write ? "its primary is not reachable (down, or its API address unknown)"
                              : "no copy of it is reachable");
    return false;
}

/* ---- one forward ---- */

/* The body an in-process request's tree stands for, as plain cJSON (compact number arrays
 * made ordinary arrays): NULL when out of memory. */
static cJSON *plain_copy(const cJSON *v)
{
    const float *f;
    size_t n;
    if (api_json_floats(v, &f, &n)) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; arr && i < n; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(f[i]));
        return arr;
    }
    if (!cJSON_IsArray(v) && !cJSON_IsObject(v)) return cJSON_Duplicate(v, false);
    cJSON *out = cJSON_IsArray(v) ? cJSON_CreateArray() : cJSON_CreateObject();
    for (const cJSON *c = v->child; out && c; c = c->next) {
        cJSON *item = plain_copy(c);
        if (!item) {
            cJSON_Delete(out);
            return NULL;
        }
        if (cJSON_IsArray(v))
            cJSON_AddItemToArray(out, item);
        else
            cJSON_AddItemToObject(out, c->string, item);
    }
    return out;
}

/* path percent-encoded (every byte outside the unreserved set and '/'), then ?query. */
static bool make_target(const char *path, const char *query, char *out, size_t cap)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("-._~/", *p);
        if (n + 4 >= cap) return false;
        n += plain ? (size_t)snprintf(out + n, cap - n, "%c", *p)
                   : (size_t)snprintf(out + n, cap - n, "%%%02X", *p);
    }
    if (query && *query) n += (size_t)snprintf(out + n, cap - n, "?%s", query);
    return n < cap;
}

/* What the forward carries (the signed identity and the body), built once. */
typedef struct hop {
    cl_hop_identity id;
    cl_hop_sig sig;
    const char *body;
    size_t body_len;
    char *owned; /* the printed in-process body */
    char target[TARGET_MAX];
    cl_http_header headers[CL_HOP_HEADERS + 4];
    char hint_base[MN_ID_TEXT_LEN + 1];
    size_t n_headers;
} hop;

/* Fills h for req: 0, or an HTTP status with msg (the grant cannot be told, no memory). */
static int hop_init(cl_route *rt, const mn_http_request_t *req, const api_route_ask *ask, hop *h,
                    char *msg, size_t msg_len)
{
    memset(h, 0, sizeof *h);
    const char *key = mn_auth_http_key(req);
    mn_auth_grant_t g;
    char spaces[CL_HOP_SPACES_MAX + 1];
    if (!mn_auth_grant_of(rt->auth, key, key ? strlen(key) : 0, ask->space, spaces, sizeof spaces,
                          &g) ||
        !cl_hop_encode_key(g.name, h->id.key)) {
        snprintf(msg, msg_len, "the API key cannot be vouched for to another node");
        return 401;
    }
    snprintf(h->id.node, sizeof h->id.node, "%s", cl_spaces_self(rt->cs));
    snprintf(h->id.role, sizeof h->id.role, "%s", mn_auth_role_name(g.role));
    snprintf(h->id.spaces, sizeof h->id.spaces, "%s", g.spaces);
    if (ask->tree) {
        cJSON *plain = plain_copy(ask->tree);
        h->owned = plain ? cJSON_PrintUnformatted(plain) : NULL;
        cJSON_Delete(plain);
        if (!h->owned) {
            snprintf(msg, msg_len, "out of memory");
            return 503;
        }
        h->body = h->owned;
        h->body_len = strlen(h->owned);
    } else if (req->body && req->body_len) {
        h->body = req->body;
        h->body_len = req->body_len;
    }
    if (!make_target(ask->path, req->query, h->target, sizeof h->target)) {
        snprintf(msg, msg_len, "the request's path and query are too long to forward");
        return 414;
    }
    cl_hop_sign(rt->key, &h->id, req->method, ask->path, req->query, h->body, h->body_len,
                mn_time_now_ms(), &h->sig);
    memcpy(h->headers, h->sig.headers, sizeof h->sig.headers);
    h->n_headers = CL_HOP_HEADERS;
    h->headers[h->n_headers++] = (cl_http_header){"x-request-id", req->request_id};
    if (h->body) h->headers[h->n_headers++] = (cl_http_header){"content-type", "application/json"};
    const char *if_match = mn_http_header_get(req, "if-match");
    if (if_match) h->headers[h->n_headers++] = (cl_http_header){"if-match", if_match};
    if (ask->has_hint_base) { /* the primary stores the ids a hint would have */
        mn_id_format(&ask->hint_base, h->hint_base);
        h->headers[h->n_headers++] = (cl_http_header){API_HINT_BASE_HEADER, h->hint_base};
    }
    return 0;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* The client's bounds for one forwarded exchange, within budget_ms when > 0 (a recall's
 * timeout_ms). */
static void http_opts(const cl_route *rt, int64_t budget_ms, cl_http_opts *o)
{
    cl_http_opts_default(o);
    o->connect_timeout_ms = rt->o.connect_timeout_ms;
    o->io_timeout_ms = o->total_timeout_ms = rt->o.forward_timeout_ms;
    if (budget_ms > 0 && budget_ms < o->total_timeout_ms) {
        o->io_timeout_ms = o->total_timeout_ms = budget_ms;
        if (o->connect_timeout_ms > budget_ms) o->connect_timeout_ms = budget_ms;
    }
}

/* One node, retrying connect failures (nothing was sent) with backoff and jitter. */
static cl_http_fail attempt(cl_route *rt, const cl_holder *to, const mn_http_request_t *req,
                            const hop *h, int64_t deadline_ms, cl_http_resp *out, mn_error *err)
{
    cl_http_opts o;
    cl_http_req r = {.method = req->method,
                     .addr = to->api,
                     .target = h->target,
                     .headers = h->headers,
                     .n_headers = h->n_headers,
                     .body = h->body,
                     .body_len = h->body_len,
                     .tls = rt->tls};
    for (int a = 0;; a++) {
        int64_t budget = deadline_ms ? deadline_ms - mn_time_now_ms() : 0;
        if (deadline_ms && budget <= 0) {
            snprintf(err->message, sizeof err->message, "timeout_ms ran out");
            return CL_HTTP_CONNECT; /* nothing sent this time */
        }
        http_opts(rt, budget, &o);
        cl_http_fail f = cl_http_do(&r, &o, out, err);
        if (f != CL_HTTP_CONNECT || a >= rt->o.retries) return f;
        pthread_mutex_lock(&rt->mu);
        double jitter = 0.5 + mn_prng_double(&rt->prng); /* 0.5 .. 1.5 */
        pthread_mutex_unlock(&rt->mu);
        count(rt->m_retries, NULL);
        sleep_ms((int64_t)((double)(rt->o.backoff_ms << a) * jitter));
    }
}

/* resp becomes the answer the other node gave (its body taken from hr). */
static void relay(const cl_route *rt, cl_http_resp *hr, mn_http_response_t *resp)
{
    static const char *const keep[] = {
        "x-mnemo-served-by", "x-mnemo-replica-lag-ms", "retry-after", "location", "etag",
        "www-authenticate"};
    const char *ct = hr->content_type;
    bool json = !ct || !strncmp(ct, "application/json", 16);
    mn_http_respond(resp, hr->status, json ? "application/json" : "text/plain; charset=utf-8",
                    hr->body ? hr->body : "", hr->body_len);
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        char *v = cl_http_resp_header(hr, keep[i]);
        if (v) mn_http_add_header(resp, keep[i], v);
        free(v);
    }
    mn_http_add_header(resp, "x-mnemo-via", cl_spaces_self(rt->cs));
}

static void unavailable(mn_http_response_t *resp, const char *msg, const char *hint)
{
    mn_http_respond_error(resp, 503, "unavailable", msg, hint);
    mn_http_add_header(resp, "retry-after", "1");
}

/* A write the primary could not be reached for, kept here as a hint (the door stores it)
 * when partition writes are accepted: true, with ask->hint and ask->why set. */
static bool hint_instead(const cl_route *rt, api_route_ask *ask, const char *why)
{
    if (!ask->write || !ask->hintable || !rt->o.partition_accept) return false;
    ask->hint = true;
    snprintf(ask->why, sizeof ask->why, "space \"%.64s\": %.200s", ask->space, why);
    return true;
}

/* Tries p's targets in order. true: resp holds the answer (or a 503); false: none answered
 * and this node's copy may serve the read. */
static bool forward(cl_route *rt, const mn_http_request_t *req, mn_http_response_t *resp,
                    api_route_ask *ask, const cl_placement *pl, const plan *p)
{
    char msg[400];
    hop h;
    int status = hop_init(rt, req, ask, &h, msg, sizeof msg);
    if (status) {
        mn_http_respond_error(resp, status, status == 401 ? "unauthenticated" : "unavailable", msg,
                              NULL);
        free(h.owned);
        return true;
    }
    char tried[300] = "";
    size_t tl = 0;
    bool sent = false;
    int64_t deadline = ask->timeout_ms > 0 ? mn_time_now_ms() + ask->timeout_ms : 0;
    for (int i = 0; i < p->n && !sent; i++) {
        const cl_holder *to = &pl->holders[p->targets[i]];
        mn_error err = {0};
        cl_http_resp hr;
        cl_http_fail f = CL_HTTP_CONNECT;
        if (!breaker_admit(rt, to->node, mn_time_now_ms()))
            snprintf(err.message, sizeof err.message, "circuit breaker open");
        else if ((f = attempt(rt, to, req, &h, deadline, &hr, &err)) == CL_HTTP_OK) {
            breaker_result(rt, to->node, true, mn_time_now_ms());
            relay(rt, &hr, resp);
            cl_http_resp_free(&hr);
            count(rt->m_forwards, "ok");
            free(h.owned);
            return true;
        } else {
            breaker_result(rt, to->node, false, mn_time_now_ms());
        }
        if (tl < sizeof tried)
            tl +=
                (size_t)snprintf(tried + tl, sizeof tried - tl, "%s%s %s (%s)", tl ? "; " : "",
                                 p->targets[i] == 0 ? "primary" : "replica", to->node, err.message);
        /* a write the primary may have received is not sent anywhere else */
        sent = ask->write && f != CL_HTTP_CONNECT && f != CL_HTTP_BAD_ADDR;
    }
    free(h.owned);
    if (p->local_fallback && !sent) return false;
    count(rt->m_forwards, "failed");
    if (hint_instead(rt, ask, p->n ? tried : p->why)) return false; /* the door keeps a hint */
    if (!ask->write && ask->timeout_ms > 0) { /* a recall: the door answers in partition mode */
        ask->unreachable = true;
        snprintf(ask->why, sizeof ask->why, "space \"%.64s\": %s%.200s", ask->space,
                 p->n ? "no copy answered: " : "", p->n ? tried : p->why);
        return false;
    }
    if (sent)
        snprintf(msg, sizeof msg,
                 "space \"%s\": its primary did not answer in time (%s): the write may or may "
                 "not have been applied",
                 ask->space, tried);
    else if (p->n)
        snprintf(msg, sizeof msg, "space \"%s\": no copy answered: %s", ask->space, tried);
    else
        snprintf(msg, sizeof msg, "space \"%s\": %s", ask->space, p->why);
    unavailable(resp, msg,
                ask->write ? "retry later; remember with the same idempotency_key stores "
                             "nothing twice"
                           : "retry later, or read with read=nearest from a node that holds a "
                             "copy");
    return true;
}

/* A door that cannot forward: which node serves the request (421), or 503 when none can. */
static bool redirect(const cl_route *rt, mn_http_response_t *resp, api_route_ask *ask,
                     const cl_placement *pl, const plan *p)
{
    char msg[400];
    if (p->n == 0 && !p->local_fallback) {
        if (hint_instead(rt, ask, p->why)) return false;
        snprintf(msg, sizeof msg, "space \"%s\": %s", ask->space, p->why);
        unavailable(resp, msg, "retry later");
        return true;
    }
    if (p->n == 0) return false; /* only this node's own copy can serve the read */
    const cl_holder *to = &pl->holders[p->targets[0]];
    snprintf(msg, sizeof msg,
             "space \"%s\" is served by node %s (its %s, HTTP API at %s): connect to it, or "
             "use the HTTP API, which forwards",
             ask->space, to->node, p->targets[0] == 0 ? "primary" : "replica", to->api);
    mn_http_respond_error(resp, 421, "wrong_node", msg,
                          ask->write ? "writes run on the space's primary"
                                     : "or read with read=nearest from a node that holds a copy");
    mn_http_add_header(resp, "x-mnemo-node", to->node);
    return true;
}

/* ---- the hook ---- */

/* A read at the primary (read-your-writes) is served only while this node's lease as the
 * space's primary holds, the bound its writes have too (mn_engine_space_writable): a node
 * that resumes from a pause, or was cut off, may still name itself the primary in its table
 * while a newer epoch took writes it lacks. false: refused (503, retry). */
static bool primary_read_allowed(cl_route *rt, const char *space, mn_http_response_t *resp)
{
    mn_error err = {0};
    mn_err rc = cl_spaces_leads_now(rt->cs, space, &err);
    if (rc == MN_OK || rc == MN_ERR_NOT_FOUND) return true; /* (a missing space: its 404) */
    unavailable(resp, err.message,
                "this node is learning who leads the space now; retry, or read with "
                "read=nearest");
    return false;
}

/* A read served from a copy lag_ms behind (-1: the primary's, or not known): the door marks
 * its answer (stale_replica past API_STALE_REPLICA_MS) and the header says it. */
static void say_lag(api_route_ask *ask, mn_http_response_t *resp, int64_t lag_ms)
{
    ask->replica_lag_ms = lag_ms;
    if (lag_ms < 0) return;
    char lag[24];
    snprintf(lag, sizeof lag, "%lld", (long long)lag_ms);
    mn_http_add_header(resp, "x-mnemo-replica-lag-ms", lag);
}

/* A forwarded read served here: this node's copy's lag when it is a replica of the space. */
static void own_lag(cl_route *rt, api_route_ask *ask, mn_http_response_t *resp)
{
    cl_placement pl;
    if (!cl_spaces_lookup(rt->cs, ask->space, false, &pl)) return;
    const char *self = cl_spaces_self(rt->cs);
    for (int i = 0; i < pl.n_holders; i++)
        if (!strcmp(pl.holders[i].node, self) && pl.holders[i].role == MN_SPACES_REPLICA)
            say_lag(ask, resp, pl.holders[i].lag_ms);
}

bool cl_route_request(cl_route *rt, const mn_http_request_t *req, mn_http_response_t *resp,
                      api_route_ask *ask)
{
    const char *self = cl_spaces_self(rt->cs);
    if (cl_hop_present(req)) {
        /* the gate checked its head; the body is checked here, before anything runs */
        mn_error err = {0};
        if (cl_hop_verify_body(req, &err)) {
            count(rt->m_refused, NULL);
            mn_http_respond_error(resp, 401, "unauthenticated", err.message, NULL);
            return true;
        }
        /* never forwarded twice: served here whatever this node's table says, saying how
         * far behind this node's copy is when it follows (a read sent to a replica) */
        mn_http_add_header(resp, "x-mnemo-served-by", self);
        if (!ask->write) own_lag(rt, ask, resp);
        return false;
    }
    cl_placement pl;
    plan p = {.local_lag_ms = -1};
    bool found = cl_spaces_lookup(rt->cs, ask->space, ask->create, &pl);
    if (!found && !ask->create && cl_spaces_not_placed_yet(rt->cs, ask->space)) {
        char msg[MN_SPACE_NAME_MAX + 128];
        snprintf(msg, sizeof msg,
                 "space %s: this node has no copy and has not placed spaces yet (its view of "
                 "the cluster is settling): retry",
                 ask->space);
        unavailable(resp, msg, NULL);
        return true;
    }
    /* unknown here, or a creation of a space this node holds already: served (refused) here */
    if (!found || (ask->create && !pl.preview) || cl_route_plan(self, ask, &pl, &p)) {
        if (p.local_primary && !ask->write && ask->read == API_READ_PRIMARY &&
            !primary_read_allowed(rt, ask->space, resp))
            return true;
        if (p.local_primary && !ask->write && ask->read == API_READ_NEAREST) {
            /* read=nearest at a primary whose lease lapsed: its copy may miss a newer
             * primary's writes, made only after the lapse (a vote waits out lease and grace),
             * so it is at most that far behind: said as a replica's lag would be */
            int64_t lapsed = cl_spaces_lapsed_ms(rt->cs, ask->space);
            if (lapsed >= 0) p.local_lag_ms = lapsed;
        }
        mn_http_add_header(resp, "x-mnemo-served-by", self);
        say_lag(ask, resp, p.local_lag_ms);
        return false;
    }
    if (ask->write && ask->hintable && rt->o.partition_accept) {
        ask->hint_base = mn_idgen_next(&rt->idgen, mn_time_now_ms());
        ask->has_hint_base = true;
    }
    if (ask->no_forward) return redirect(rt, resp, ask, &pl, &p);
    if (forward(rt, req, resp, ask, &pl, &p)) return true;
    if (ask->unreachable || ask->hint) return false; /* the door answers in partition mode */
    /* no other copy answered a read: this node's own, in rotation, serves it */
    mn_http_add_header(resp, "x-mnemo-served-by", self);
    say_lag(ask, resp, p.local_lag_ms);
    return false;
}

/* ---- the cluster's own calls ---- */

cl_http_fail cl_route_call(cl_route *rt, const char *node, const char *method, const char *target,
                           const char *body, size_t body_len, cl_http_resp *out, mn_error *err)
{
    cl_holder to = {0};
    memset(out, 0, sizeof *out);
    if (!cl_spaces_node_api(rt->cs, node, to.api, sizeof to.api)) {
        mn_error_set(err, MN_ERR_UNAVAILABLE, "node %s: no API address known", node);
        return CL_HTTP_BAD_ADDR;
    }
    if (!breaker_admit(rt, node, mn_time_now_ms())) {
        mn_error_set(err, MN_ERR_UNAVAILABLE, "node %s: circuit breaker open", node);
        return CL_HTTP_CONNECT;
    }
    char path[TARGET_MAX];
    const char *q = strchr(target, '?');
    snprintf(path, sizeof path, "%.*s", (int)(q ? q - target : (ptrdiff_t)strlen(target)), target);
    hop h;
    memset(&h, 0, sizeof h);
    snprintf(h.id.node, sizeof h.id.node, "%s", cl_spaces_self(rt->cs));
    snprintf(h.id.role, sizeof h.id.role, "admin");
    snprintf(h.id.key, sizeof h.id.key, "-");
    snprintf(h.id.spaces, sizeof h.id.spaces, "*");
    snprintf(h.target, sizeof h.target, "%s", target);
    h.body = body;
    h.body_len = body_len;
    cl_hop_sign(rt->key, &h.id, method, path, q ? q + 1 : "", body, body_len, mn_time_now_ms(),
                &h.sig);
    memcpy(h.headers, h.sig.headers, sizeof h.sig.headers);
    h.n_headers = CL_HOP_HEADERS;
    if (body) h.headers[h.n_headers++] = (cl_http_header){"content-type", "application/json"};
    cl_http_opts o;
    http_opts(rt, 0, &o);
    cl_http_req r = {.method = method,
                     .addr = to.api,
                     .target = h.target,
                     .headers = h.headers,
                     .n_headers = h.n_headers,
                     .body = body,
                     .body_len = body_len,
                     .tls = rt->tls};
    cl_http_fail f = cl_http_do(&r, &o, out, err);
    breaker_result(rt, node, f == CL_HTTP_OK, mn_time_now_ms());
    return f;
}

/* ---- the gate ---- */

static mn_auth_role_t role_of(const char *name)
{
    static const mn_auth_role_t roles[] = {MN_AUTH_OPEN, MN_AUTH_READ, MN_AUTH_WRITE,
                                           MN_AUTH_ADMIN};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (!strcmp(name, mn_auth_role_name(roles[i]))) return roles[i];
    return MN_AUTH_OPEN;
}

static bool refuse(cl_route *rt, mn_http_response_t *resp, int status, const char *msg)
{
    count(rt->m_refused, NULL);
    mn_log_warn("route: internal hop refused: %s", msg);
    mn_http_respond_error(resp, status, status == 401 ? "unauthenticated" : "permission_denied",
                          msg, NULL);
    return false;
}

bool cl_route_gate(void *arg, const mn_http_request_t *req, mn_http_response_t *resp)
{
    cl_route *rt = arg;
    if (!cl_hop_present(req))
        return !mn_auth_enabled(rt->auth) || mn_auth_http_gate((void *)rt->auth, req, resp);
    cl_hop_identity id;
    mn_error err = {0};
    if (cl_hop_verify_head(rt->key, req, mn_time_now_ms(), &id, &err))
        return refuse(rt, resp, 401, err.message);
    mn_auth_grant_t g = {role_of(id.role), id.key, id.spaces};
    mn_auth_verdict_t v;
    mn_auth_op_t op = mn_auth_route_op(req->method, req->route);
    mn_auth_result_t res = mn_auth_allow_grant(rt->auth, &g, op, mn_auth_http_space(req), &v);
    if (res != MN_AUTH_OK) return refuse(rt, resp, res == MN_AUTH_NO_KEY ? 401 : 403, v.message);
    /* a hop is admitted once: a second one with its signature is a replay */
    pthread_mutex_lock(&rt->mu);
    bool again =
        cl_replay_seen(rt->replay, mn_http_header_get(req, "x-mnemo-hop-sig"), mn_time_now_ms());
    pthread_mutex_unlock(&rt->mu);
    if (again) return refuse(rt, resp, 401, "internal hop: replayed (its signature was seen)");
    snprintf(resp->principal, sizeof resp->principal, "hop:%.30s", id.node);
    return true;
}

mn_auth_result_t cl_route_hop_allow(cl_route *rt, const mn_http_request_t *req, mn_auth_op_t op,
                                    const char *space, mn_auth_verdict_t *v)
{
    memset(v, 0, sizeof *v);
    v->key_name = "";
    cl_hop_identity id;
    mn_error err = {0};
    /* the gate admitted the head once (and counted its signature); its body is checked here,
     * as the routing step checks it for the routes it sees */
    if (!cl_hop_present(req) || cl_hop_verify_head(rt->key, req, mn_time_now_ms(), &id, &err) ||
        cl_hop_verify_body(req, &err)) {
        snprintf(v->message, sizeof v->message, "%.150s",
                 err.message[0] ? err.message : "not an internal hop");
        return v->result = MN_AUTH_NO_KEY;
    }
    mn_auth_grant_t g = {role_of(id.role), id.key, id.spaces};
    return mn_auth_allow_grant(rt->auth, &g, op, space, v);
}
