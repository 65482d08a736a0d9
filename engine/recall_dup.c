/* A recall request that owns everything it points to (mn_recall_req_dup): a recall over many
 * spaces (query/) hands one to its jobs, which may still be running when the request that
 * made it has been answered ("timeout") and its memory freed.
 *
 * The copy is one struct and a list of malloc'd blocks, each freed once by
 * mn_recall_req_free; the expression is copied by filter_expr.c (one block). */
#include <stdlib.h>
#include <string.h>

#include "filter_expr.h"
#include "mnemo/engine.h"

typedef struct owned_req {
    mn_recall_req_t req; /* first: mn_recall_req_free gets its address */
    void **blocks;
    size_t n_blocks, cap_blocks;
    bool oom;
} owned_req;

static void *keep(owned_req *o, void *p)
{
    if (!p) {
        o->oom = true;
        return NULL;
    }
    if (o->n_blocks == o->cap_blocks) {
        size_t cap = o->cap_blocks ? 2 * o->cap_blocks : 16;
        void **b = realloc(o->blocks, cap * sizeof *b);
        if (!b) {
            free(p);
            o->oom = true;
            return NULL;
        }
        o->blocks = b;
        o->cap_blocks = cap;
    }
    o->blocks[o->n_blocks++] = p;
    return p;
}

static void *copy_bytes(owned_req *o, const void *src, size_t n)
{
    if (!src) return NULL;
    void *p = keep(o, malloc(n ? n : 1));
    if (p && n) memcpy(p, src, n);
    return p;
}

static char *copy_str(owned_req *o, const char *s)
{
    return s ? copy_bytes(o, s, strlen(s) + 1) : NULL;
}

static char **copy_strs(owned_req *o, char *const *v, size_t n)
{
    if (!v || !n) return NULL;
    char **out = keep(o, calloc(n, sizeof *out));
    for (size_t i = 0; out && i < n; i++)
        out[i] = copy_str(o, v[i]);
    return out;
}

static void copy_filter(owned_req *o, mn_filter_t *f)
{
    f->tags_any = copy_strs(o, f->tags_any, f->n_tags_any);
    f->tags_all = copy_strs(o, f->tags_all, f->n_tags_all);
    if (f->metadata && f->n_metadata) {
        mn_kv_t *kv = keep(o, calloc(f->n_metadata, sizeof *kv));
        for (size_t i = 0; kv && i < f->n_metadata; i++) {
            kv[i].key = copy_str(o, f->metadata[i].key);
            kv[i].value = copy_str(o, f->metadata[i].value);
        }
        f->metadata = kv;
    }
    f->who = copy_str(o, f->who);
    f->where = copy_str(o, f->where);
    f->session = copy_str(o, f->session);
    if (f->expr && f->n_expr) f->expr = keep(o, mn__filter_expr_dup(f->expr, f->n_expr));
}

mn_recall_req_t *mn_recall_req_dup(const mn_recall_req_t *req)
{
    owned_req *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->req = *req;
    mn_recall_req_t *r = &o->req;
    if (req->embedding) r->embedding = copy_bytes(o, req->embedding, req->dim * sizeof(float));
    if (req->text) {
        char *t = keep(o, malloc(req->text_len + 1)); /* text may end without a NUL */
        if (t) {
            memcpy(t, req->text, req->text_len);
            t[req->text_len] = '\0';
        }
        r->text = t;
    }
    copy_filter(o, &r->filter);
    if (o->oom) {
        mn_recall_req_free(r);
        return NULL;
    }
    return r;
}

void mn_recall_req_free(mn_recall_req_t *r)
{
    if (!r) return;
    owned_req *o = (owned_req *)(void *)r;
    for (size_t i = 0; i < o->n_blocks; i++)
        free(o->blocks[i]);
    free(o->blocks);
    free(o);
}
