/* HTTP router: (method, pattern) -> handler.
 *
 * A pattern is "/"-separated segments, each either exact text or "{name}" (one non-empty
 * segment, percent-decoded into params[]). Routes are few (tens), so matching is a linear scan
 * over a flat array: no trie to keep consistent.
 *
 * Ranking: among patterns that match a path, the one with an exact segment where the other
 * has a parameter, at the first position where they differ, wins ("/v1/spaces/search" beats
 * "/v1/spaces/{space}"). Each pattern's shape is a bit mask (bit 63 - i set when segment i
 * is exact), so rank comparison is an integer comparison. The method is considered after the
 * shape: the best pattern *with this method* is chosen (chi-style), so a GET-only exact route
 * does not hide a POST route on a parameter pattern; 405 only when no pattern carries the
 * method. Trailing slash: "/a/b/" is "/a/b" (in patterns and paths); "//" never matches.
 *
 * Invariants: the router is immutable once the server runs (match is read-only and called on
 * the loop thread); every route has <= 64 segments and <= MN_HTTP_MAX_PARAMS parameters. */
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "mnemo/http.h"

#define MAX_SEGS 64
#define METHOD_MAX 15

typedef struct route {
    char method[METHOD_MAX + 1];
    char *pattern;
    char **segs; /* exact text, or NULL for a parameter */
    size_t n_segs;
    uint64_t exact_mask;
    mn_http_handler_fn fn;
    void *ctx;
} route;

struct mn_http_router {
    route *routes;
    size_t n, cap;
};

mn_http_router_t *mn_http_router_new(void)
{
    return calloc(1, sizeof(mn_http_router_t));
}

static void route_free(route *rt)
{
    for (size_t i = 0; i < rt->n_segs; i++)
        free(rt->segs[i]);
    free(rt->segs);
    free(rt->pattern);
}

void mn_http_router_free(mn_http_router_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++)
        route_free(&r->routes[i]);
    free(r->routes);
    free(r);
}

static bool method_valid(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > METHOD_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!((m[i] >= 'A' && m[i] <= 'Z') || m[i] == '-')) return false;
    return true;
}

/* Length of the path without one trailing slash (the root "/" keeps its slash). */
static size_t trimmed_len(const char *p)
{
    size_t n = strlen(p);
    if (n > 1 && p[n - 1] == '/') n--;
    return n;
}

/* Splits pattern into rt->segs. Returns MN_OK or MN_ERR_INVALID. */
static mn_err parse_pattern(const char *pattern, route *rt)
{
    if (pattern[0] != '/') return MN_ERR_INVALID;
    size_t n = trimmed_len(pattern);
    rt->segs = calloc(MAX_SEGS, sizeof(char *));
    if (!rt->segs) return MN_ERR_NOMEM;
    size_t n_params = 0;
    size_t i = 1;
    while (i < n) {
        size_t j = i;
        while (j < n && pattern[j] != '/')
            j++;
        size_t len = j - i;
        if (len == 0 || rt->n_segs == MAX_SEGS) return MN_ERR_INVALID;
        const char *seg = pattern + i;
        bool param = seg[0] == '{';
        for (size_t k = 0; k < len; k++) {
            bool brace = seg[k] == '{' || seg[k] == '}';
            bool allowed_brace = param && (k == 0 || k == len - 1);
            if (brace && !allowed_brace) return MN_ERR_INVALID;
        }
        if (param) {
            if (len < 3 || seg[len - 1] != '}') return MN_ERR_INVALID;
            if (++n_params > MN_HTTP_MAX_PARAMS) return MN_ERR_INVALID;
            rt->segs[rt->n_segs] = NULL;
        } else {
            rt->segs[rt->n_segs] = strndup(seg, len);
            if (!rt->segs[rt->n_segs]) return MN_ERR_NOMEM;
            rt->exact_mask |= 1ull << (63 - rt->n_segs);
        }
        rt->n_segs++;
        i = j + 1;
    }
    return MN_OK;
}

static bool same_shape(const route *a, const route *b)
{
    if (a->n_segs != b->n_segs || a->exact_mask != b->exact_mask) return false;
    for (size_t i = 0; i < a->n_segs; i++)
        if (a->segs[i] && strcmp(a->segs[i], b->segs[i]) != 0) return false;
    return true;
}

mn_err mn_http_router_add(mn_http_router_t *r, const char *method, const char *pattern,
                          mn_http_handler_fn fn, void *ctx)
{
    if (!r || !method || !pattern || !fn || !method_valid(method)) return MN_ERR_INVALID;
    route rt = {0};
    strcpy(rt.method, method);
    rt.fn = fn;
    rt.ctx = ctx;
    mn_err e = parse_pattern(pattern, &rt);
    if (e == MN_OK) {
        rt.pattern = strdup(pattern);
        if (!rt.pattern) e = MN_ERR_NOMEM;
    }
    for (size_t i = 0; e == MN_OK && i < r->n; i++)
        if (strcmp(r->routes[i].method, method) == 0 && same_shape(&r->routes[i], &rt))
            e = MN_ERR_EXISTS;
    if (e == MN_OK && r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        route *nr = realloc(r->routes, cap * sizeof(route));
        if (!nr) {
            e = MN_ERR_NOMEM;
        } else {
            r->routes = nr;
            r->cap = cap;
        }
    }
    if (e != MN_OK) {
        route_free(&rt);
        return e;
    }
    r->routes[r->n++] = rt;
    return MN_OK;
}

/* The decoded segments of a path. */
typedef struct split_path {
    char *buf;
    const char *segs[MAX_SEGS];
    size_t n;
} split_path;

/* False if the path cannot match any route (not absolute, "//", bad escape, too deep). */
static bool split(const char *path, split_path *sp)
{
    sp->buf = NULL;
    sp->n = 0;
    if (!path || path[0] != '/') return false;
    size_t n = trimmed_len(path);
    sp->buf = malloc(n + 1);
    if (!sp->buf) return false;
    char *out = sp->buf;
    size_t i = 1;
    while (i < n) {
        size_t j = i;
        while (j < n && path[j] != '/')
            j++;
        if (j == i || sp->n == MAX_SEGS) return false;
        ssize_t len = http_pct_decode(path + i, j - i, out, false);
        if (len <= 0) return false;
        sp->segs[sp->n++] = out;
        out += len + 1;
        i = j + 1;
    }
    return true;
}

static bool route_matches(const route *rt, const split_path *sp)
{
    if (rt->n_segs != sp->n) return false;
    for (size_t i = 0; i < sp->n; i++)
        if (rt->segs[i] && strcmp(rt->segs[i], sp->segs[i]) != 0) return false;
    return true;
}

/* Best-ranked route matching sp with this method, or NULL. */
static const route *best_with_method(const mn_http_router_t *r, const split_path *sp,
                                     const char *method)
{
    const route *best = NULL;
    for (size_t i = 0; i < r->n; i++) {
        const route *rt = &r->routes[i];
        if (strcmp(rt->method, method) != 0 || !route_matches(rt, sp)) continue;
        if (!best || rt->exact_mask > best->exact_mask) best = rt;
    }
    return best;
}

/* Appends method to the ", "-joined allow list unless present or out of room. */
static void allow_add(char *allow, size_t cap, const char *method)
{
    size_t ml = strlen(method);
    const char *p = allow;
    while (*p) {
        const char *e = strstr(p, ", ");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == ml && strncmp(p, method, ml) == 0) return;
        if (!e) break;
        p = e + 2;
    }
    size_t used = strlen(allow);
    size_t need = (used ? 2 : 0) + ml + 1;
    if (used + need > cap) return;
    if (used) {
        memcpy(allow + used, ", ", 2);
        used += 2;
    }
    memcpy(allow + used, method, ml + 1);
}

mn_http_route_result_t mn_http_router_match(const mn_http_router_t *r, const char *method,
                                          const char *path, mn_http_route_match_t *m)
{
    memset(m, 0, sizeof *m);
    if (!r || !method) return MN_HTTP_ROUTE_NOT_FOUND;
    split_path sp;
    if (!split(path, &sp)) {
        free(sp.buf);
        return MN_HTTP_ROUTE_NOT_FOUND;
    }
    const route *best = best_with_method(r, &sp, method);
    if (!best && strcmp(method, "HEAD") == 0) best = best_with_method(r, &sp, "GET");
    mn_http_route_result_t res = MN_HTTP_ROUTE_FOUND;
    if (best) {
        m->fn = best->fn;
        m->ctx = best->ctx;
        m->pattern = best->pattern;
        for (size_t i = 0; i < best->n_segs; i++) {
            if (best->segs[i]) continue;
            m->params[m->n_params] = strdup(sp.segs[i]);
            if (!m->params[m->n_params]) {
                /* Out of memory: report no route rather than a handler with holes. */
                mn_http_route_match_free(m);
                res = MN_HTTP_ROUTE_NOT_FOUND;
                break;
            }
            m->n_params++;
        }
    } else {
        bool any = false, has_get = false;
        for (size_t i = 0; i < r->n; i++) {
            const route *rt = &r->routes[i];
            if (!route_matches(rt, &sp)) continue;
            any = true;
            has_get |= strcmp(rt->method, "GET") == 0;
            allow_add(m->allow, sizeof m->allow, rt->method);
        }
        if (has_get) allow_add(m->allow, sizeof m->allow, "HEAD");
        res = any ? MN_HTTP_ROUTE_BAD_METHOD : MN_HTTP_ROUTE_NOT_FOUND;
    }
    free(sp.buf);
    return res;
}

bool mn_http_router_route(const mn_http_router_t *r, size_t i, const char **method,
                          const char **pattern)
{
    if (!r || i >= r->n) return false;
    *method = r->routes[i].method;
    *pattern = r->routes[i].pattern;
    return true;
}

void mn_http_route_match_free(mn_http_route_match_t *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n_params; i++)
        free(m->params[i]);
    memset(m, 0, sizeof *m);
}
