/* The store of gossiped semantic memories (cluster_gossip.c feeds it under g->mu): per
 * space, the records the core holds, their payloads decoded, so that a recall can be
 * answered from them when the space's holders cannot be reached (partition mode,
 * docs/gossip.md "Partition mode"): the request's filter is the engine's own
 * (mn_engine_filter_match on the decoded memory, so a stand-in passes exactly what the
 * holder's recall would let through), and an as_of request gets none (no history is kept
 * here). Written behind to disk and read back at start
 * (cluster_gossip_save.c); peers bring back what a crash lost within a few rounds (and a
 * leader its own WAL).
 *
 * Invariants (under mu): g->sp sorted by name, each space's entries sorted by id and
 * unique; a space's live count is the number of its live entries (mn_assert_debug). */
#include "cluster_gossip_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "mnemo/wire.h"

#define CG_WORDS_MAX 64 /* cue words compared */
#define CG_WORD_MAX 48  /* bytes of one word */
/* a partition answer's confidence: the engine's formula (docs/recall.md section 6) with
 * retention unknown taken at its floor, 0.5 */
#define CG_PARTITION_FACTOR 0.5f

/* ---- spaces and entries ---- */

cg_space *cg_space_of(cl_gossip *g, const char *name, bool create)
{
    size_t lo = 0, hi = g->n_sp;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(g->sp[mid].name, name);
        if (c == 0) return &g->sp[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (!create || strlen(name) > MN_SPACE_NAME_MAX) return NULL;
    if (g->n_sp == g->cap_sp) {
        size_t cap = g->cap_sp ? 2 * g->cap_sp : 8;
        cg_space *p = realloc(g->sp, cap * sizeof *p);
        if (!p) return NULL;
        g->sp = p;
        g->cap_sp = cap;
    }
    memmove(&g->sp[lo + 1], &g->sp[lo], (g->n_sp - lo) * sizeof *g->sp);
    g->n_sp++;
    cg_space *s = &g->sp[lo];
    memset(s, 0, sizeof *s);
    memcpy(s->name, name, strlen(name) + 1);
    return s;
}

/* The index of id in s, or where it would go (*found false). */
static size_t entry_at(const cg_space *s, const mn_id_t *id, bool *found)
{
    size_t lo = 0, hi = s->n;
    *found = false;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = mn_id_cmp(&s->e[mid].id, id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

#ifndef NDEBUG
static bool space_ok(const cg_space *s)
{
    size_t live = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (i && mn_id_cmp(&s->e[i - 1].id, &s->e[i].id) >= 0) return false;
        live += s->e[i].live;
    }
    return live == s->live;
}
#endif

void cg_store_apply(cl_gossip *g, const char *space, const mn_gossip_record_t *rec)
{
    cg_space *s = cg_space_of(g, space, true);
    if (!s) return; /* out of memory: the core still has it; the next change retries */
    bool found;
    size_t at = entry_at(s, &rec->id, &found);
    if (!found) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 8;
            cg_entry *p = realloc(s->e, cap * sizeof *p);
            if (!p) return;
            s->e = p;
            s->cap = cap;
        }
        memmove(&s->e[at + 1], &s->e[at], (s->n - at) * sizeof *s->e);
        s->n++;
        memset(&s->e[at], 0, sizeof s->e[at]);
        s->e[at].id = rec->id;
    }
    cg_entry *e = &s->e[at];
    s->live -= e->live;
    mn_memory_clear(&e->mem);
    e->live = false;
    e->support_n = rec->support_n;
    if (!rec->forgotten_hlc && !rec->retired && rec->payload_len) {
        mn_memory_record_t mr;
        memset(&mr, 0, sizeof mr);
        mn_error err = {0};
        if (mn_wire_memory_decode(rec->payload, rec->payload_len, &mr, &err) == MN_OK) {
            e->mem = mr.mem;
            e->mem.id = rec->id;
            e->mem.kind = MN_KIND_SEMANTIC;
            e->mem.confidence = rec->confidence;
            e->live = true;
        } else {
            mn_log_warn("gossip: space %s: a semantic memory's payload does not decode: %s", space,
                        err.message);
        }
    }
    s->live += e->live;
    e->changed = true;
    g->dirty = true;
    mn_assert_debug(space_ok(s));
}

void cg_store_drop(cg_space *s, int64_t before_ms)
{
    size_t k = 0; /* entries are sorted by id, and a v7 id by its time first */
    while (k < s->n && mn_id_time_ms(&s->e[k].id) < before_ms) {
        s->live -= s->e[k].live;
        mn_memory_clear(&s->e[k].mem);
        k++;
    }
    memmove(s->e, s->e + k, (s->n - k) * sizeof *s->e);
    s->n -= k;
    mn_assert_debug(space_ok(s));
}

void cg_store_free(cl_gossip *g)
{
    for (size_t i = 0; i < g->n_sp; i++) {
        for (size_t j = 0; j < g->sp[i].n; j++)
            mn_memory_clear(&g->sp[i].e[j].mem);
        free(g->sp[i].e);
    }
    free(g->sp);
    g->sp = NULL;
    g->n_sp = g->cap_sp = 0;
}

/* ---- ranking ---- */

typedef struct cue_words {
    char w[CG_WORDS_MAX][CG_WORD_MAX + 1];
    size_t n;
} cue_words;

/* The next word of s (letters, digits and bytes >= 0x80, lowercased) into w; the position
 * after it, or NULL at the end. */
static const char *next_word(const char *s, const char *end, char *w, size_t cap)
{
    while (s < end && !(isalnum((unsigned char)*s) || (unsigned char)*s >= 0x80))
        s++;
    if (s >= end) return NULL;
    size_t n = 0;
    while (s < end && (isalnum((unsigned char)*s) || (unsigned char)*s >= 0x80)) {
        if (n < cap - 1) w[n++] = (char)tolower((unsigned char)*s);
        s++;
    }
    w[n] = 0;
    return s;
}

static void cue_split(const char *text, size_t len, cue_words *cw)
{
    cw->n = 0;
    const char *p = text, *end = text + len;
    char w[CG_WORD_MAX + 1];
    while (p && cw->n < CG_WORDS_MAX && (p = next_word(p, end, w, sizeof w))) {
        bool dup = strlen(w) < 2;
        for (size_t i = 0; i < cw->n && !dup; i++)
            dup = !strcmp(cw->w[i], w);
        if (!dup) memcpy(cw->w[cw->n++], w, sizeof w);
    }
}

/* The share of the cue's words that content holds. */
static float coverage(const cue_words *cw, const char *content, size_t len)
{
    if (!cw->n || !content) return 0;
    bool seen[CG_WORDS_MAX] = {0};
    size_t hits = 0;
    char w[CG_WORD_MAX + 1];
    const char *p = content, *end = content + len;
    while ((p = next_word(p, end, w, sizeof w)))
        for (size_t i = 0; i < cw->n; i++)
            if (!seen[i] && !strcmp(cw->w[i], w)) {
                seen[i] = true;
                hits++;
            }
    return (float)hits / (float)cw->n;
}

static float cosine(const float *a, const float *b, uint32_t dim)
{
    double ab = 0, aa = 0, bb = 0;
    for (uint32_t i = 0; i < dim; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? (float)(ab / sqrt(aa * bb)) : 0.0f;
}

typedef struct cand {
    const cg_entry *e;
    float score, similarity, keyword;
} cand;

static int cand_order(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return mn_id_cmp(&x->e->id, &y->e->id);
}

/* The match of e against the cue in [0, 1]: the mean of the vector's cosine (clamped at 0)
 * and the words' coverage, over the parts of the cue the memory can be compared on. */
static bool score_entry(const cg_entry *e, const mn_recall_req_t *req, const cue_words *cw, cand *c)
{
    c->e = e;
    c->similarity = c->keyword = NAN;
    float sum = 0;
    int parts = 0;
    if (req->embedding && req->dim && e->mem.embedding && e->mem.dim == req->dim) {
        c->similarity = cosine(req->embedding, e->mem.embedding, req->dim);
        sum += c->similarity > 0 ? c->similarity : 0;
        parts++;
    }
    if (cw->n) {
        c->keyword = coverage(cw, e->mem.content, e->mem.content_len);
        sum += c->keyword;
        parts++;
    }
    c->score = parts ? sum / (float)parts : 0;
    if (req->has_threshold && c->score < req->threshold) return false;
    return c->score > 0 || (!req->embedding && !cw->n);
}

static mn_err hit_of(const cand *c, mn_recall_hit_t *h)
{
    memset(h, 0, sizeof *h);
    const mn_memory_t *m = &c->e->mem;
    h->memory = *m;
    h->memory.content = m->content ? strndup(m->content, m->content_len) : NULL;
    h->memory.embedding = NULL; /* not copied: recall answers leave it out by default */
    h->memory.dim = 0;
    h->memory.who = NULL, h->memory.n_who = 0;
    h->memory.where = h->memory.session = NULL;
    h->memory.tags = NULL, h->memory.n_tags = 0;
    h->memory.metadata = NULL, h->memory.n_metadata = 0;
    h->memory.changed_by = h->memory.invalid_reason = NULL;
    h->memory.idempotency_key = NULL;
    h->memory.support = m->n_support ? malloc(m->n_support * sizeof *m->support) : NULL;
    if ((m->content && !h->memory.content) || (m->n_support && !h->memory.support)) {
        free(h->memory.content);
        free(h->memory.support);
        memset(h, 0, sizeof *h);
        return MN_ERR_NOMEM;
    }
    if (m->n_support) memcpy(h->memory.support, m->support, m->n_support * sizeof *m->support);
    h->score = c->score;
    h->distance = isnan(c->similarity) ? NAN : 1 - c->similarity;
    h->similarity = c->similarity;
    h->keyword = c->keyword;
    h->coverage = c->keyword;
    h->activation = NAN;
    h->retention = 1;
    h->seed = true;
    float enc = m->confidence > 1 ? 1 : m->confidence < 0 ? 0 : m->confidence;
    float match = c->score > 1 ? 1 : c->score;
    float support = c->e->support_n ? 1.0f - expf(-(float)c->e->support_n / 3.0f) : 1.0f;
    h->confidence.value = CG_PARTITION_FACTOR * match * enc * support;
    h->confidence.category = mn_confidence_category(h->confidence.value);
    h->confidence.reasons = MN_REASON_PARTITION | (match < 0.5f ? MN_REASON_LOW_SIMILARITY : 0) |
                            (enc < 0.9f ? MN_REASON_LOW_ENCODING_CONFIDENCE : 0) |
                            (support < 0.9f ? MN_REASON_LOW_SUPPORT : 0);
    return MN_OK;
}

/* The live entries of s that pass f, ranked against the cue, the best k into out->hits
 * (under mu). */
static mn_err rank(const cg_space *s, const mn_recall_req_t *req, const mn_filter_t *f,
                   int64_t now_ms, mn_recall_result_t *out)
{
    cue_words cw;
    cue_split(req->text ? req->text : "", req->text ? req->text_len : 0, &cw);
    uint32_t k = req->k ? req->k : 10;
    cand *cs = malloc(s->live * sizeof *cs);
    if (!cs) return MN_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        const cg_entry *e = &s->e[i];
        if (!e->live) continue;
        mn_assert(n < s->live); /* s->live counts the live entries: cs has room */
        if (mn_engine_filter_match(f, &e->mem, now_ms) && score_entry(e, req, &cw, &cs[n])) n++;
    }
    out->scanned = s->live;
    qsort(cs, n, sizeof *cs, cand_order);
    if (n > k) n = k;
    mn_err rc = MN_OK;
    if (n && !(out->hits = calloc(n, sizeof *out->hits))) rc = MN_ERR_NOMEM;
    for (size_t i = 0; rc == MN_OK && i < n; i++)
        if ((rc = hit_of(&cs[i], &out->hits[i])) == MN_OK) out->n_hits++;
    free(cs);
    return rc;
}

mn_err cl_gossip_recall(cl_gossip *g, const char *space, const mn_recall_req_t *req,
                        mn_recall_result_t *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    int64_t now_ms = mn_time_now_ms();
    mn_filter_t f; /* the engine's own: a stand-in passes what the holder's recall would */
    mn_err rc = mn_engine_recall_filter(req, now_ms, &f, out, err);
    if (rc != MN_OK) return rc;
    out->path = "partition";
    pthread_mutex_lock(&g->mu);
    const cg_space *s = cg_space_of(g, space, false);
    if (!s || !s->live)
        rc = mn_error_set(err, MN_ERR_NOT_FOUND,
                          "space \"%s\": this node holds no gossiped semantic memories of it",
                          space);
    else if (f.as_of_ms != MN_TIME_UNSET)
        rc = mn_error_set(err, MN_ERR_UNSUPPORTED,
                          "space \"%s\": as_of: its gossiped semantic memories keep no "
                          "history, so none stands in for the space as it was then",
                          space);
    else if ((rc = rank(s, req, &f, now_ms, out)) != MN_OK)
        mn_error_set(err, rc, "out of memory");
    pthread_mutex_unlock(&g->mu);
    if (rc != MN_OK) {
        mn_recall_result_clear(out);
        return rc;
    }
    out->recall_confidence = out->n_hits ? out->hits[0].confidence.value : 0;
    if (g->m_partition) mn_metrics_add(g->m_partition, NULL, 1);
    return MN_OK;
}
