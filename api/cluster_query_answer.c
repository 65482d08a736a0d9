/* The answer on the query channel: per space its outcome (or why it is missing), what it
 * scanned, the time window it read, and its hits, each with the memory as the store encodes
 * a record (verified on decode) plus the fields a recall adds (strength, scores, the path of
 * spreading, the confidence, the folded duplicates). */
#include "cluster_query_wire.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/wire.h"

#define CLQ_HITS_MAX MN_K_MAX
#define CLQ_DUPS_MAX 4096

static const char *const MISSING[] = {NULL,
                                      MN_QUERY_MISSING_TIMEOUT,
                                      MN_QUERY_MISSING_UNAVAILABLE,
                                      MN_QUERY_MISSING_NOT_FOUND,
                                      MN_QUERY_MISSING_ERROR,
                                      MN_QUERY_MISSING_NOT_HELD,
                                      MN_QUERY_MISSING_PARTITION};
#define N_MISSING (sizeof MISSING / sizeof MISSING[0])
static const char *const UNITS[] = {"day", "week", "month", "year", "range"};
static const char *const APPLIED[] = {"boost", "filter", "none"};

static uint8_t code_of(const char *const *tab, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (tab[i] && !strcmp(tab[i], s)) return (uint8_t)(i + 1);
    return 0;
}

static const char *name_of(clq_r *r, const char *const *tab, size_t n, uint8_t code)
{
    if (code > n) clq_fail(r, "a name code");
    return code && code <= n ? tab[code - 1] : NULL;
}

/* ---- writing ---- */

static void put_window(clq_w *w, const mn_recall_result_t *res)
{
    clq_u8(w, res->has_time_window);
    if (!res->has_time_window) return;
    clq_u8(w, res->time_window.has_from);
    clq_u8(w, res->time_window.has_to);
    clq_u64(w, (uint64_t)res->time_window.from_ms);
    clq_u64(w, (uint64_t)res->time_window.to_ms);
    clq_str(w, res->time_window.text, strlen(res->time_window.text));
    clq_u8(w, code_of(UNITS, 5, res->time_window.unit));
    clq_u8(w, code_of(APPLIED, 3, res->time_window.applied));
}

static void put_memory(clq_w *w, const mn_memory_t *m)
{
    mn_memory_record_t rec = {
        .mem = *m, .tombstone = m->forgotten, .forgotten_at_ms = m->forgotten_at_ms};
    uint8_t *buf = NULL;
    size_t len = 0;
    if (mn_wire_memory_encode(&rec, m->embedding != NULL, &buf, &len)) {
        w->oom = true;
        return;
    }
    clq_u32(w, (uint32_t)len);
    clq_put(w, buf, len);
    free(buf);
    clq_u8(w, m->consolidated);
    clq_f32(w, m->stability_days);
    clq_u64(w, (uint64_t)m->last_access_ms);
    clq_u32(w, m->access_count);
    clq_put(w, m->version_id.b, 16);
}

static void put_hit(clq_w *w, const mn_recall_hit_t *h)
{
    put_memory(w, &h->memory);
    const float f[] = {h->score,    h->distance,   h->similarity, h->keyword,
                       h->coverage, h->activation, h->retention,  h->confidence.value};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        clq_f32(w, f[i]);
    clq_u32(w, h->confidence.reasons);
    clq_u8(w, h->seed);
    clq_u32(w, h->n_via);
    for (uint32_t i = 0; i < h->n_via && i < MN_MAX_HOPS; i++) {
        clq_put(w, h->via[i].from.b, 16);
        clq_u8(w, h->via[i].kind);
        clq_f32(w, h->via[i].weight);
    }
    clq_u32(w, h->duplicates);
    clq_u32(w, h->duplicate_ids ? h->duplicates : 0);
    for (uint32_t i = 0; h->duplicate_ids && i < h->duplicates; i++)
        clq_put(w, h->duplicate_ids[i].b, 16);
}

mn_err clq_answer_encode(uint64_t id, const char *const *spaces, const mn_query_answer_t *ans,
                         size_t n, uint8_t **out, size_t *len, mn_error *err)
{
    clq_w w = {0};
    clq_put(&w, "MQ", 2);
    clq_u8(&w, CLQ_VERSION);
    clq_u8(&w, CLQ_ANSWER);
    clq_u64(&w, id);
    clq_u32(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const mn_query_answer_t *a = &ans[i];
        clq_str(&w, spaces[i], strlen(spaces[i]));
        clq_u32(&w, (uint32_t)a->rc);
        clq_str(&w, a->err.message, a->rc ? strlen(a->err.message) : 0);
        clq_u8(&w, code_of(MISSING + 1, N_MISSING - 1, a->missing));
        clq_u64(&w, a->res.scanned);
        put_window(&w, &a->res);
        size_t hits = a->rc == MN_OK ? a->res.n_hits : 0;
        clq_u32(&w, (uint32_t)hits);
        for (size_t j = 0; j < hits; j++)
            put_hit(&w, &a->res.hits[j]);
    }
    if (w.oom) {
        free(w.p);
        return mn_error_set(err, w.len > CLQ_FRAME_MAX / 2 ? MN_ERR_TOO_LARGE : MN_ERR_NOMEM,
                            "query answer: over %u bytes or out of memory", CLQ_FRAME_MAX);
    }
    *out = w.p;
    *len = w.len;
    return MN_OK;
}

/* ---- reading ---- */

static void get_window(clq_r *r, mn_recall_result_t *res)
{
    res->has_time_window = clq_ru8(r, "window") != 0;
    if (!res->has_time_window) return;
    res->time_window.has_from = clq_ru8(r, "window") != 0;
    res->time_window.has_to = clq_ru8(r, "window") != 0;
    res->time_window.from_ms = (int64_t)clq_ru64(r, "window");
    res->time_window.to_ms = (int64_t)clq_ru64(r, "window");
    size_t n;
    const char *s = clq_rstr(r, "window", MN_RECALL_TIME_TEXT_MAX, &n);
    if (s) memcpy(res->time_window.text, s, n + 1);
    res->time_window.unit = name_of(r, UNITS, 5, clq_ru8(r, "window"));
    res->time_window.applied = name_of(r, APPLIED, 3, clq_ru8(r, "window"));
}

static void get_memory(clq_r *r, mn_memory_t *m)
{
    uint32_t len = clq_rlen(r, "memory", 1);
    mn_memory_record_t rec;
    mn_error e;
    if (r->bad || mn_wire_memory_decode(r->p + r->off, len, &rec, &e)) {
        clq_fail(r, "memory record");
        return;
    }
    r->off += len;
    *m = rec.mem;
    m->forgotten = rec.tombstone;
    m->forgotten_at_ms = rec.forgotten_at_ms;
    m->consolidated = clq_ru8(r, "memory") != 0;
    m->stability_days = clq_rf32(r, "memory");
    m->last_access_ms = (int64_t)clq_ru64(r, "memory");
    m->access_count = clq_ru32(r, "memory");
    clq_get(r, m->version_id.b, 16, "memory");
}

static void get_hit(clq_r *r, mn_recall_hit_t *h)
{
    get_memory(r, &h->memory);
    float *f[] = {&h->score,    &h->distance,   &h->similarity, &h->keyword,
                  &h->coverage, &h->activation, &h->retention,  &h->confidence.value};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        *f[i] = clq_rf32(r, "hit");
    if (!(h->confidence.value >= 0.0f && h->confidence.value <= 1.0f)) clq_fail(r, "confidence");
    h->confidence.category = mn_confidence_category(h->confidence.value);
    h->confidence.reasons = clq_ru32(r, "hit");
    h->seed = clq_ru8(r, "hit") != 0;
    h->n_via = clq_rcount(r, "via", MN_MAX_HOPS);
    for (uint32_t i = 0; i < h->n_via; i++) {
        clq_get(r, h->via[i].from.b, 16, "via");
        h->via[i].kind = clq_ru8(r, "via");
        h->via[i].weight = clq_rf32(r, "via");
    }
    h->duplicates = clq_ru32(r, "duplicates");
    uint32_t ids = clq_rcount(r, "duplicates", CLQ_DUPS_MAX);
    if (ids && ids != h->duplicates) clq_fail(r, "duplicates");
    h->duplicate_ids = ids && !r->bad ? calloc(ids, sizeof *h->duplicate_ids) : NULL;
    if (ids && !r->bad && !h->duplicate_ids) clq_fail(r, "out of memory");
    for (uint32_t i = 0; h->duplicate_ids && i < ids; i++)
        clq_get(r, h->duplicate_ids[i].b, 16, "duplicates");
}

static void get_space(clq_r *r, clq_space_answer *s)
{
    size_t n;
    const char *name = clq_rstr(r, "space", MN_SPACE_NAME_MAX, &n);
    if (name) memcpy(s->space, name, n + 1);
    int32_t rc = (int32_t)clq_ru32(r, "rc");
    s->a.rc = rc > 0 || rc < MN_ERR_UNAVAILABLE ? MN_ERR_INTERNAL : (mn_err)rc;
    const char *msg = clq_rstr(r, "message", sizeof s->a.err.message - 1, &n);
    if (msg) memcpy(s->a.err.message, msg, n + 1);
    s->a.err.code = s->a.rc;
    s->a.missing = name_of(r, MISSING + 1, N_MISSING - 1, clq_ru8(r, "missing"));
    s->a.res.scanned = clq_ru64(r, "scanned");
    get_window(r, &s->a.res);
    uint32_t hits = clq_rcount(r, "hits", CLQ_HITS_MAX);
    if (hits && s->a.rc != MN_OK) clq_fail(r, "hits of a failed space");
    s->a.res.hits = hits && !r->bad ? calloc(hits, sizeof *s->a.res.hits) : NULL;
    if (hits && !r->bad && !s->a.res.hits) clq_fail(r, "out of memory");
    for (uint32_t i = 0; s->a.res.hits && i < hits && !r->bad; i++) {
        get_hit(r, &s->a.res.hits[i]);
        s->a.res.n_hits = i + 1; /* what clear frees: a memory read in part included */
    }
}

mn_err clq_answer_decode(const uint8_t *buf, size_t len, clq_space_answer **out, size_t *n,
                         mn_error *err)
{
    *out = NULL;
    *n = 0;
    uint64_t id;
    if (clq_frame_head(buf, len, &id) != CLQ_ANSWER)
        return mn_error_set(err, MN_ERR_CORRUPT, "query answer: bad header");
    clq_r r = {buf, len, 12, NULL};
    uint32_t c = clq_rcount(&r, "spaces", MN_QUERY_SPACES_MAX);
    clq_space_answer *a = calloc(c ? c : 1, sizeof *a);
    if (!a) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    size_t got = 0;
    for (; got < c && !r.bad; got++)
        get_space(&r, &a[got]);
    if (!r.bad && r.off != len) r.bad = "trailing bytes";
    if (r.bad) {
        clq_answers_free(a, got);
        return mn_error_set(err, MN_ERR_CORRUPT, "query answer: %s", r.bad);
    }
    *out = a;
    *n = got;
    return MN_OK;
}

void clq_answers_free(clq_space_answer *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++)
        mn_recall_result_clear(&a[i].a.res);
    free(a);
}
