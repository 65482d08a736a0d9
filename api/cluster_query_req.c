/* A recall request (mn_recall_req_t) on the query channel: every field a recall reads, the
 * filter and its expression included, so the remote node runs exactly the recall the origin
 * parsed. Read back, strings point into the frame and arrays live in a few blocks until the
 * request is copied (mn_recall_req_dup); the engine checks the expression's shape
 * (mn__validate_filter) as it does for every request. */
#include "cluster_query_wire.h"

#include <stdlib.h>
#include <string.h>

#define CLQ_STRS_MAX 1024 /* tags, metadata pairs of one filter */

void *clq_alloc(clq_blocks *bl, size_t n)
{
    void *p = bl->n < sizeof bl->b / sizeof bl->b[0] ? calloc(1, n ? n : 1) : NULL;
    if (!p) {
        bl->oom = true;
        return NULL;
    }
    bl->b[bl->n++] = p;
    return p;
}

void clq_blocks_free(clq_blocks *bl)
{
    for (size_t i = 0; i < bl->n; i++)
        free(bl->b[i]);
    bl->n = 0;
}

static void put_opt(clq_w *w, const char *s)
{
    clq_str(w, s, s ? strlen(s) : 0);
}

static void put_strs(clq_w *w, char *const *s, size_t n)
{
    clq_u32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        put_opt(w, s[i]);
}

static void put_expr(clq_w *w, const mn_filter_node_t *e, uint32_t n)
{
    clq_u32(w, e ? n : 0);
    for (uint32_t i = 0; e && i < n; i++) {
        const mn_filter_node_t *x = &e[i];
        uint8_t b[4] = {x->type, x->field, x->op, x->exists};
        clq_put(w, b, 4);
        clq_u32(w, x->size);
        put_opt(w, x->key);
        clq_u32(w, x->n_vals);
        for (uint32_t v = 0; v < x->n_vals; v++) {
            put_opt(w, x->vals[v].s);
            clq_f64(w, x->vals[v].num);
            clq_u8(w, x->vals[v].has_num);
        }
    }
}

static void put_filter(clq_w *w, const mn_filter_t *f)
{
    put_strs(w, f->tags_any, f->n_tags_any);
    put_strs(w, f->tags_all, f->n_tags_all);
    clq_u32(w, (uint32_t)f->n_metadata);
    for (size_t i = 0; i < f->n_metadata; i++) {
        put_opt(w, f->metadata[i].key);
        put_opt(w, f->metadata[i].value);
    }
    clq_u32(w, (uint32_t)f->kind);
    clq_u64(w, (uint64_t)f->when_from_ms);
    clq_u64(w, (uint64_t)f->when_to_ms);
    clq_f32(w, f->min_confidence);
    clq_u8(w, f->include_suppressed);
    put_opt(w, f->who);
    put_opt(w, f->where);
    put_opt(w, f->session);
    clq_u64(w, (uint64_t)f->as_of_ms);
    put_expr(w, f->expr, f->n_expr);
}

void clq_put_recall(clq_w *w, const mn_recall_req_t *q)
{
    clq_u32(w, q->embedding ? q->dim : 0);
    for (uint32_t i = 0; q->embedding && i < q->dim; i++)
        clq_f32(w, q->embedding[i]);
    clq_str(w, q->text, q->text ? q->text_len : 0);
    clq_f32(w, q->vector_weight);
    clq_f32(w, q->text_weight);
    clq_u32(w, q->k);
    uint8_t flags[9] = {q->has_threshold, q->include_embedding, q->spread,
                        q->trace,         q->reinforce,         q->exact,
                        q->has_time_ref,  q->keep_duplicates,   (uint8_t)q->time};
    clq_put(w, flags, sizeof flags);
    clq_f32(w, q->threshold);
    clq_u32(w, q->max_hops);
    clq_f32(w, q->hop_decay);
    clq_f32(w, q->min_activation);
    clq_u32(w, q->max_visited);
    clq_u32(w, q->ef);
    clq_f32(w, q->time_boost);
    clq_u64(w, (uint64_t)q->time_ref_ms);
    put_filter(w, &q->filter);
}

/* ---- reading ---- */

static const char *get_opt(clq_r *r, const char *what)
{
    size_t n;
    return clq_rstr(r, what, CLQ_FRAME_MAX, &n);
}

static char **get_strs(clq_r *r, clq_blocks *bl, size_t *n, const char *what)
{
    uint32_t c = clq_rcount(r, what, CLQ_STRS_MAX);
    char **s = c ? clq_alloc(bl, c * sizeof *s) : NULL;
    for (uint32_t i = 0; s && i < c && !r->bad; i++)
        if (!(s[i] = (char *)get_opt(r, what))) clq_fail(r, what);
    *n = s ? c : 0;
    return s;
}

static void get_expr(clq_r *r, clq_blocks *bl, mn_filter_t *f)
{
    uint32_t n = clq_rcount(r, "filter nodes", MN_FILTER_NODES_MAX);
    mn_filter_node_t *e = n ? clq_alloc(bl, n * sizeof *e) : NULL;
    uint32_t vals = 0;
    for (uint32_t i = 0; e && i < n && !r->bad; i++) {
        uint8_t b[4];
        clq_get(r, b, 4, "filter node");
        e[i] = (mn_filter_node_t){.type = b[0], .field = b[1], .op = b[2], .exists = b[3] != 0};
        e[i].size = clq_ru32(r, "filter node");
        e[i].key = get_opt(r, "filter key");
        e[i].n_vals = clq_rcount(r, "filter values", MN_FILTER_VALUES_MAX);
        if ((vals += e[i].n_vals) > MN_FILTER_VALUES_MAX) clq_fail(r, "filter values");
        mn_filter_value_t *v =
            e[i].n_vals && !r->bad ? clq_alloc(bl, e[i].n_vals * sizeof *v) : NULL;
        for (uint32_t j = 0; v && j < e[i].n_vals; j++) {
            v[j].s = get_opt(r, "filter value");
            v[j].num = clq_rf64(r, "filter value");
            v[j].has_num = clq_ru8(r, "filter value") != 0;
        }
        e[i].vals = v;
        if (e[i].n_vals && !v) e[i].n_vals = 0;
    }
    f->expr = e;
    f->n_expr = e && !r->bad ? n : 0;
}

static void get_filter(clq_r *r, clq_blocks *bl, mn_filter_t *f)
{
    mn_filter_init(f);
    f->tags_any = get_strs(r, bl, &f->n_tags_any, "tags_any");
    f->tags_all = get_strs(r, bl, &f->n_tags_all, "tags_all");
    uint32_t m = clq_rcount(r, "metadata", CLQ_STRS_MAX);
    f->metadata = m ? clq_alloc(bl, m * sizeof *f->metadata) : NULL;
    for (uint32_t i = 0; f->metadata && i < m && !r->bad; i++) {
        f->metadata[i].key = (char *)get_opt(r, "metadata");
        f->metadata[i].value = (char *)get_opt(r, "metadata");
        if (!f->metadata[i].key || !f->metadata[i].value) clq_fail(r, "metadata");
    }
    f->n_metadata = f->metadata ? m : 0;
    f->kind = (int)clq_ru32(r, "kind");
    f->when_from_ms = (int64_t)clq_ru64(r, "when");
    f->when_to_ms = (int64_t)clq_ru64(r, "when");
    f->min_confidence = clq_rf32(r, "min_confidence");
    f->include_suppressed = clq_ru8(r, "include_suppressed") != 0;
    f->who = get_opt(r, "who");
    f->where = get_opt(r, "where");
    f->session = get_opt(r, "session");
    f->as_of_ms = (int64_t)clq_ru64(r, "as_of");
    get_expr(r, bl, f);
}

static void get_cue(clq_r *r, clq_blocks *bl, mn_recall_req_t *q)
{
    q->dim = clq_rlen(r, "dim", 4);
    float *e = q->dim ? clq_alloc(bl, q->dim * sizeof *e) : NULL;
    for (uint32_t i = 0; e && i < q->dim; i++)
        e[i] = clq_rf32(r, "embedding");
    q->embedding = e;
    if (!e) q->dim = 0;
    q->text = clq_rstr(r, "text", CLQ_FRAME_MAX, &q->text_len);
}

void clq_get_recall(clq_r *r, clq_blocks *bl, mn_recall_req_t *q)
{
    memset(q, 0, sizeof *q);
    get_cue(r, bl, q);
    q->vector_weight = clq_rf32(r, "weights");
    q->text_weight = clq_rf32(r, "weights");
    q->k = clq_ru32(r, "k");
    uint8_t f[9];
    clq_get(r, f, sizeof f, "flags");
    q->has_threshold = f[0], q->include_embedding = f[1], q->spread = f[2], q->trace = f[3];
    q->reinforce = f[4], q->exact = f[5], q->has_time_ref = f[6], q->keep_duplicates = f[7];
    if (f[8] > MN_RECALL_TIME_FILTER) clq_fail(r, "time");
    q->time = (mn_recall_time_t)f[8];
    q->threshold = clq_rf32(r, "threshold");
    q->max_hops = clq_ru32(r, "max_hops");
    q->hop_decay = clq_rf32(r, "hop_decay");
    q->min_activation = clq_rf32(r, "min_activation");
    q->max_visited = clq_ru32(r, "max_visited");
    q->ef = clq_ru32(r, "ef");
    q->time_boost = clq_rf32(r, "time_boost");
    q->time_ref_ms = (int64_t)clq_ru64(r, "time_ref");
    get_filter(r, bl, &q->filter);
}
