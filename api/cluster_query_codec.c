/* The query channel's frames: the writer and the bounded reader, the header, the request
 * (cluster_query_wire.h says the form). A reader records its first fault and returns zeros
 * from then on, so a decoder reads on and checks once; nothing it returns points outside the
 * frame. */
#include "cluster_query_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLQ_STR_ABSENT 0xffffffffu

void clq_put(clq_w *w, const void *src, size_t n)
{
    if (w->oom || !n) return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *p = cap <= CLQ_FRAME_MAX ? realloc(w->p, cap) : NULL;
        if (!p) {
            w->oom = true;
            return;
        }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

void clq_u8(clq_w *w, uint8_t v)
{
    clq_put(w, &v, 1);
}

void clq_u32(clq_w *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    clq_put(w, b, 4);
}

void clq_u64(clq_w *w, uint64_t v)
{
    clq_u32(w, (uint32_t)v);
    clq_u32(w, (uint32_t)(v >> 32));
}

void clq_f32(clq_w *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    clq_u32(w, u);
}

void clq_f64(clq_w *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    clq_u64(w, u);
}

void clq_str(clq_w *w, const char *s, size_t n)
{
    if (!s) {
        clq_u32(w, CLQ_STR_ABSENT);
        return;
    }
    clq_u32(w, (uint32_t)n);
    clq_put(w, s, n);
    clq_u8(w, 0);
}

void clq_fail(clq_r *r, const char *what)
{
    if (!r->bad) r->bad = what;
}

bool clq_get(clq_r *r, void *dst, size_t n, const char *what)
{
    if (r->bad || n > r->len - r->off) {
        clq_fail(r, what);
        memset(dst, 0, n);
        return false;
    }
    memcpy(dst, r->p + r->off, n);
    r->off += n;
    return true;
}

uint8_t clq_ru8(clq_r *r, const char *what)
{
    uint8_t v = 0;
    clq_get(r, &v, 1, what);
    return v;
}

uint32_t clq_ru32(clq_r *r, const char *what)
{
    uint8_t b[4];
    clq_get(r, b, 4, what);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

uint64_t clq_ru64(clq_r *r, const char *what)
{
    uint64_t lo = clq_ru32(r, what);
    return lo | (uint64_t)clq_ru32(r, what) << 32;
}

float clq_rf32(clq_r *r, const char *what)
{
    uint32_t u = clq_ru32(r, what);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

double clq_rf64(clq_r *r, const char *what)
{
    uint64_t u = clq_ru64(r, what);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

const char *clq_rstr(clq_r *r, const char *what, size_t max, size_t *len)
{
    uint32_t n = clq_ru32(r, what);
    *len = 0;
    if (r->bad || n == CLQ_STR_ABSENT) return NULL;
    if (n > max || (size_t)n + 1 > r->len - r->off || r->p[r->off + n] != 0) {
        clq_fail(r, what);
        return NULL;
    }
    const char *s = (const char *)r->p + r->off;
    r->off += (size_t)n + 1;
    *len = n;
    return s;
}

uint32_t clq_rcount(clq_r *r, const char *what, uint32_t max)
{
    uint32_t n = clq_ru32(r, what);
    if (n > max) {
        clq_fail(r, what);
        return 0;
    }
    return r->bad ? 0 : n;
}

uint32_t clq_rlen(clq_r *r, const char *what, size_t unit)
{
    uint32_t n = clq_ru32(r, what);
    if (r->bad || (uint64_t)n * unit > r->len - r->off) {
        clq_fail(r, what);
        return 0;
    }
    return n;
}

int clq_frame_head(const uint8_t *buf, size_t len, uint64_t *id)
{
    if (len < 12 || buf[0] != 'M' || buf[1] != 'Q' || buf[2] != CLQ_VERSION) return 0;
    if (buf[3] != CLQ_REQUEST && buf[3] != CLQ_ANSWER) return 0;
    clq_r r = {buf, len, 4, NULL};
    *id = clq_ru64(&r, "id");
    return buf[3];
}

/* ---- the request ---- */

static void put_head(clq_w *w, int type, uint64_t id)
{
    clq_put(w, "MQ", 2);
    clq_u8(w, CLQ_VERSION);
    clq_u8(w, (uint8_t)type);
    clq_u64(w, id);
}

static mn_err finish(clq_w *w, uint8_t **out, size_t *len, mn_error *err)
{
    if (w->oom) {
        bool big = w->len > CLQ_FRAME_MAX / 2;
        free(w->p);
        return big ? mn_error_set(err, MN_ERR_TOO_LARGE, "query frame over %u bytes", CLQ_FRAME_MAX)
                   : mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    *out = w->p;
    *len = w->len;
    return MN_OK;
}

mn_err clq_request_encode(uint64_t id, uint32_t timeout_ms, const api_many_caller *c,
                          const char *const *spaces, size_t n, const mn_recall_req_t *req,
                          uint8_t **out, size_t *len, mn_error *err)
{
    clq_w w = {0};
    put_head(&w, CLQ_REQUEST, id);
    clq_u32(&w, timeout_ms);
    clq_u8(&w, (uint8_t)c->read);
    clq_u8(&w, (uint8_t)c->role);
    clq_str(&w, c->key_name, strlen(c->key_name));
    clq_u8(&w, c->every_space);
    clq_u32(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        clq_str(&w, spaces[i], strlen(spaces[i]));
    clq_put_recall(&w, req);
    return finish(&w, out, len, err);
}

static void read_caller(clq_r *r, clq_request *q)
{
    uint8_t read = clq_ru8(r, "read"), role = clq_ru8(r, "role");
    if (read > API_READ_NEAREST || role > MN_AUTH_ADMIN) clq_fail(r, "caller");
    q->caller.read = (api_read_pref)read;
    q->caller.role = (mn_auth_role_t)role;
    size_t n;
    const char *name = clq_rstr(r, "key name", API_MANY_KEY_NAME_MAX, &n);
    if (name) memcpy(q->caller.key_name, name, n + 1);
    q->caller.every_space = clq_ru8(r, "grant") != 0;
}

static void read_spaces(clq_r *r, clq_request *q)
{
    uint32_t n = clq_rcount(r, "spaces", MN_QUERY_SPACES_MAX);
    q->spaces = calloc(n ? n : 1, sizeof *q->spaces);
    if (!q->spaces) {
        clq_fail(r, "out of memory");
        return;
    }
    size_t at = 0;
    if (q->caller.every_space) memcpy(q->grant_spaces, "*", 2);
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        size_t len;
        const char *s = clq_rstr(r, "space", MN_SPACE_NAME_MAX, &len);
        if (!s || !mn_space_name_valid(s) || !(q->spaces[i] = strdup(s))) {
            clq_fail(r, "space name");
            break;
        }
        q->n = i + 1;
        if (q->caller.every_space) continue;
        at += (size_t)snprintf(q->grant_spaces + at, sizeof q->grant_spaces - at, "%s%s",
                               at ? "," : "", s);
    }
}

mn_err clq_request_decode(const uint8_t *buf, size_t len, clq_request *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    if (clq_frame_head(buf, len, &out->id) != CLQ_REQUEST)
        return mn_error_set(err, MN_ERR_CORRUPT, "query request: bad header");
    clq_r r = {buf, len, 12, NULL};
    out->timeout_ms = clq_ru32(&r, "timeout");
    read_caller(&r, out);
    read_spaces(&r, out);
    clq_blocks bl = {0};
    mn_recall_req_t q;
    clq_get_recall(&r, &bl, &q);
    if (!r.bad && r.off != len) r.bad = "trailing bytes";
    if (!r.bad && bl.oom) r.bad = "out of memory";
    if (!r.bad && !(out->req = mn_recall_req_dup(&q))) r.bad = "out of memory";
    clq_blocks_free(&bl);
    if (r.bad) {
        clq_request_clear(out);
        return mn_error_set(err, MN_ERR_CORRUPT, "query request: %s", r.bad);
    }
    return MN_OK;
}

void clq_request_clear(clq_request *r)
{
    for (size_t i = 0; r->spaces && i < r->n; i++)
        free(r->spaces[i]);
    free(r->spaces);
    mn_recall_req_free(r->req);
    r->spaces = NULL;
    r->n = 0;
    r->req = NULL;
}
