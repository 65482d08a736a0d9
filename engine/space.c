/* In-memory state of a space: a slot per live memory with the fields filters
 * need, vectors in one contiguous array (unit-normalised for cosine, so cosine
 * is a dot product), and an open-addressing id -> slot table. Freed slots are
 * reused. Callers hold sp->lock (write lock to mutate). */
#include "space.h"

#include "mnemo/assert.h"
#include "session_index.h"
#include "space_index.h"
#include "text/keyword.h"
#include "text/text.h"
#include "vec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDX_EMPTY 0u
#define IDX_DELETED UINT32_MAX

mn__space *mn__space_new(const mn_space_def_t *def, uint32_t sid)
{
    mn__space *sp = calloc(1, sizeof *sp);
    if (!sp) return NULL;
    sp->def = *def;
    sp->sid = sid;
    sp->epoch = 1;
    pthread_mutex_init(&sp->consolidate_mu, NULL);
    /* a definition stored before languages existed has none: english, like a
     * new space's default; a name this libstemmer lacks keeps folding only */
    if (!sp->def.text_language[0])
        snprintf(sp->def.text_language, sizeof sp->def.text_language, "english");
    int lang = mn_text_language_parse(sp->def.text_language);
    if (lang < 0) {
        lang = MN_TEXT_LANG_NONE;
        snprintf(sp->def.text_language, sizeof sp->def.text_language, "none");
    }
    sp->kw = mn_kw_new(lang);
    sp->sessions = mn__session_ix_new();
    if (!sp->kw || !sp->sessions) {
        mn_kw_free(sp->kw);
        mn__session_ix_free(sp->sessions);
        free(sp);
        return NULL;
    }
    atomic_init(&sp->refs, 1);
    atomic_init(&sp->dropped, false);
    atomic_init(&sp->repair_noted, false);
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* Writers (the commit thread) must not starve behind a stream of recalls. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&sp->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    return sp;
}

static void slot_clear(mn__slot *s)
{
    free(s->session);
    free(s->where);
    for (uint32_t i = 0; i < s->n_who; i++)
        free(s->who[i]);
    free(s->who);
    free(s->adj);
    for (uint32_t i = 0; i < s->n_tags; i++)
        free(s->tags[i]);
    free(s->tags);
    for (uint32_t i = 0; i < s->n_metadata; i++) {
        free(s->metadata[i].key);
        free(s->metadata[i].value);
    }
    free(s->metadata);
    memset(s, 0, sizeof *s);
}

void mn__space_free(mn__space *sp)
{
    if (!sp) return;
    mn__space_index_free(sp);
    for (uint32_t i = 0; i < sp->n_slots; i++)
        slot_clear(&sp->slots[i]);
    free(sp->slots);
    free(sp->vecs);
    free(sp->free_slots);
    free(sp->idx);
    mn_kw_free(sp->kw);
    mn__session_ix_free(sp->sessions);
    pthread_mutex_destroy(&sp->consolidate_mu);
    pthread_rwlock_destroy(&sp->lock);
    free(sp);
}

void mn__space_ref(mn__space *sp)
{
    int before = atomic_fetch_add(&sp->refs, 1);
    /* only a holder of a reference can make another: a space at 0 is freed */
    mn_assert(before > 0);
}

void mn__space_unref(mn__space *sp)
{
    if (!sp) return;
    int before = atomic_fetch_sub(&sp->refs, 1);
    mn_assert(before > 0);
    if (before == 1) mn__space_free(sp);
}

/* The live counts only fall for a slot that counted: never below 0. */
static void count_down(uint64_t *count)
{
    mn_assert(*count > 0);
    (*count)--;
}

static uint32_t id_hash(const mn_id_t *id)
{
    /* The tail of a v7 id is random: a good hash as it is. */
    uint32_t h;
    memcpy(&h, id->b + 12, 4);
    return h ^ ((uint32_t)id->b[11] << 24);
}

uint32_t mn__space_find(const mn__space *sp, const mn_id_t *id)
{
    if (!sp->idx_cap) return UINT32_MAX;
    uint32_t mask = sp->idx_cap - 1;
    for (uint32_t i = id_hash(id) & mask, n = 0; n < sp->idx_cap; i = (i + 1) & mask, n++) {
        uint32_t v = sp->idx[i];
        if (v == IDX_EMPTY) return UINT32_MAX;
        if (v != IDX_DELETED && memcmp(sp->slots[v - 1].id.b, id->b, 16) == 0) return v - 1;
    }
    return UINT32_MAX;
}

static void idx_put_raw(uint32_t *idx, uint32_t cap, const mn_id_t *id, uint32_t slot)
{
    uint32_t mask = cap - 1;
    uint32_t i = id_hash(id) & mask;
    while (idx[i] != IDX_EMPTY && idx[i] != IDX_DELETED)
        i = (i + 1) & mask;
    idx[i] = slot + 1;
}

static mn_err idx_grow(mn__space *sp)
{
    uint32_t ncap = sp->idx_cap ? sp->idx_cap * 2 : 1024;
    uint32_t *n = calloc(ncap, sizeof *n);
    if (!n) return MN_ERR_NOMEM;
    for (uint32_t i = 0; i < sp->idx_cap; i++) {
        uint32_t v = sp->idx[i];
        if (v != IDX_EMPTY && v != IDX_DELETED) idx_put_raw(n, ncap, &sp->slots[v - 1].id, v - 1);
    }
    free(sp->idx);
    sp->idx = n;
    sp->idx_cap = ncap;
    sp->idx_used = (uint32_t)sp->n_live;
    return MN_OK;
}

static mn_err slots_reserve(mn__space *sp)
{
    if (sp->n_slots < sp->cap) return MN_OK;
    uint32_t ncap = sp->cap ? sp->cap * 2 : 256;
    mn__slot *ns = realloc(sp->slots, (size_t)ncap * sizeof *ns);
    if (!ns) return MN_ERR_NOMEM;
    sp->slots = ns;
    float *nv = realloc(sp->vecs, (size_t)ncap * sp->def.dim * sizeof(float));
    if (!nv) return MN_ERR_NOMEM;
    sp->vecs = nv;
    sp->cap = ncap;
    return MN_OK;
}

static char *sdup(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

mn_err mn__space_insert(mn__space *sp, const mn_memory_t *m)
{
    return mn__space_insert_doc(sp, m, NULL, 0);
}

mn_err mn__space_insert_doc(mn__space *sp, const mn_memory_t *m, const uint8_t *kw, size_t kw_len)
{
    if (mn__space_find(sp, &m->id) != UINT32_MAX) return MN_OK; /* already there */
    if ((sp->idx_used + 1) * 4 >= sp->idx_cap * 3 && idx_grow(sp)) return MN_ERR_NOMEM;
    uint32_t slot;
    if (sp->n_free) {
        slot = sp->free_slots[--sp->n_free];
    } else {
        if (slots_reserve(sp)) return MN_ERR_NOMEM;
        slot = sp->n_slots++;
    }
    mn__slot *s = &sp->slots[slot];
    memset(s, 0, sizeof *s);
    s->id = m->id;
    s->state = SLOT_LIVE;
    s->kind = (uint8_t)m->kind;
    s->suppressed = m->suppressed;
    s->suppressed_at_ms = m->suppressed_at_ms;
    s->unsuppressed_at_ms = m->unsuppressed_at_ms;
    s->lifecycle = (uint8_t)m->lifecycle;
    s->has_vec = m->embedding != NULL;
    s->superseded = m->superseded;
    s->valid_from_ms = m->valid_from_ms;
    s->valid_to_ms = m->valid_to_ms;
    s->importance = m->importance;
    if (m->session) s->session = sdup(m->session);
    if (m->where) s->where = sdup(m->where);
    if (m->n_who) {
        s->who = calloc(m->n_who, sizeof(char *));
        for (size_t i = 0; s->who && i < m->n_who; i++)
            if ((s->who[i] = sdup(m->who[i]))) s->n_who++;
    }
    s->confidence = m->confidence;
    s->when_ms = m->when_ms;
    s->created_at_ms = m->created_at_ms;
    s->expires_at_ms = m->expires_at_ms;
    if (m->n_tags) {
        s->tags = calloc(m->n_tags, sizeof(char *));
        for (size_t i = 0; s->tags && i < m->n_tags; i++)
            if ((s->tags[i] = sdup(m->tags[i]))) s->n_tags++;
    }
    if (m->n_metadata) {
        s->metadata = calloc(m->n_metadata, sizeof(mn_kv_t));
        for (size_t i = 0; s->metadata && i < m->n_metadata; i++) {
            s->metadata[i].key = sdup(m->metadata[i].key);
            s->metadata[i].value = sdup(m->metadata[i].value);
            s->n_metadata++;
        }
    }
    float *v = sp->vecs + (size_t)slot * sp->def.dim;
    if (m->embedding)
        memcpy(v, m->embedding, sp->def.dim * sizeof(float));
    else
        memset(v, 0, sp->def.dim * sizeof(float));
    if (sp->def.metric == MN_METRIC_COSINE && s->has_vec) mn__vec_normalize(v, sp->def.dim);
    mn_err krc = MN_OK;
    if (kw)
        krc = mn_kw_add_encoded(sp->kw, slot, kw, kw_len);
    else if (m->content && m->content_len)
        krc = mn_kw_add(sp->kw, slot, &(mn_kw_text_t){MN__KW_TEXT_OF(m)});
    if (krc) {
        slot_clear(s);
        if (sp->n_free < sp->free_cap) sp->free_slots[sp->n_free++] = slot;
        return krc;
    }
    idx_put_raw(sp->idx, sp->idx_cap, &m->id, slot);
    sp->idx_used++;
    mn__space_index_note(sp, slot);
    /* out of memory here only costs a temporal link, never the memory */
    if (s->session) (void)mn__session_ix_add(sp->sessions, s->session, slot);
    sp->n_live++;
    if (m->kind == MN_KIND_SEMANTIC)
        sp->n_semantic++;
    else
        sp->n_episodic++;
    if (m->suppressed) sp->n_suppressed++;
    if (m->superseded) sp->n_superseded++;
    return MN_OK;
}

bool mn__space_remove(mn__space *sp, const mn_id_t *id)
{
    if (!sp->idx_cap) return false;
    uint32_t mask = sp->idx_cap - 1;
    for (uint32_t i = id_hash(id) & mask, n = 0; n < sp->idx_cap; i = (i + 1) & mask, n++) {
        uint32_t v = sp->idx[i];
        if (v == IDX_EMPTY) return false;
        if (v == IDX_DELETED || memcmp(sp->slots[v - 1].id.b, id->b, 16) != 0) continue;
        uint32_t slot = v - 1;
        mn__slot *s = &sp->slots[slot];
        count_down(&sp->n_live);
        count_down(s->kind == MN_KIND_SEMANTIC ? &sp->n_semantic : &sp->n_episodic);
        if (s->suppressed) count_down(&sp->n_suppressed);
        if (s->superseded) count_down(&sp->n_superseded);
        mn_kw_remove(sp->kw, slot);
        sp->idx[i] = IDX_DELETED;
        /* drop the other halves of this memory's edges */
        for (uint32_t a = 0; a < s->n_adj; a++) {
            uint32_t o = mn__space_find(sp, &s->adj[a].other);
            if (o == UINT32_MAX) continue;
            mn__slot *os = &sp->slots[o];
            for (uint32_t j = 0; j < os->n_adj; j++)
                if (!memcmp(os->adj[j].other.b, id->b, 16) && os->adj[j].kind == s->adj[a].kind &&
                    os->adj[j].out != s->adj[a].out) {
                    os->adj[j] = os->adj[--os->n_adj];
                    break;
                }
        }
        if (s->session) mn__session_ix_remove(sp->sessions, s->session, slot);
        slot_clear(s);
        mn__space_index_note(sp, slot);
        if (sp->n_free == sp->free_cap) {
            uint32_t nc = sp->free_cap ? sp->free_cap * 2 : 64;
            uint32_t *nf = realloc(sp->free_slots, nc * sizeof *nf);
            if (!nf) return true; /* slot leaks until restart; state stays correct */
            sp->free_slots = nf;
            sp->free_cap = nc;
        }
        sp->free_slots[sp->n_free++] = slot;
        return true;
    }
    return false;
}

mn_err mn__space_replace_doc(mn__space *sp, const mn_memory_t *m, const uint8_t *kw, size_t kw_len)
{
    uint32_t slot = mn__space_find(sp, &m->id);
    mn__adj *adj = NULL;
    uint32_t n_adj = 0, cap_adj = 0;
    mn_strength_t st = {0};
    if (slot != UINT32_MAX) {
        mn__slot *s = &sp->slots[slot];
        adj = s->adj;
        n_adj = s->n_adj;
        cap_adj = s->cap_adj;
        st.stability_days = s->stability_days;
        st.last_access_ms = s->last_access_ms;
        st.access_count = s->access_count;
        s->adj = NULL; /* keep the edges: remove must not unlink them */
        s->n_adj = s->cap_adj = 0;
        mn__space_remove(sp, &m->id);
    }
    mn_err rc = mn__space_insert_doc(sp, m, kw, kw_len);
    slot = mn__space_find(sp, &m->id);
    if (rc || slot == UINT32_MAX) {
        free(adj);
        return rc ? rc : MN_ERR_NOMEM;
    }
    mn__slot *s = &sp->slots[slot];
    s->adj = adj;
    s->n_adj = n_adj;
    s->cap_adj = cap_adj;
    s->stability_days = st.stability_days;
    s->last_access_ms = st.last_access_ms;
    s->access_count = st.access_count;
    return MN_OK;
}

void mn__space_set_suppressed(mn__space *sp, uint32_t slot, bool on)
{
    mn__slot *s = &sp->slots[slot];
    if (s->suppressed == on) return;
    s->suppressed = on;
    if (on)
        sp->n_suppressed++;
    else
        count_down(&sp->n_suppressed);
}

/* The other end's half of each edge now names the new version. */
static void rename_other_halves(mn__space *sp, const mn__slot *s, const mn_id_t *old_id)
{
    for (uint32_t a = 0; a < s->n_adj; a++) {
        uint32_t o = mn__space_find(sp, &s->adj[a].other);
        if (o == UINT32_MAX) continue;
        mn__slot *os = &sp->slots[o];
        for (uint32_t j = 0; j < os->n_adj; j++)
            if (!memcmp(os->adj[j].other.b, old_id->b, 16) && os->adj[j].kind == s->adj[a].kind &&
                os->adj[j].out != s->adj[a].out) {
                os->adj[j].other = s->id;
                break;
            }
    }
}

void mn__space_supersede(mn__space *sp, uint32_t from, uint32_t to, int64_t at_ms)
{
    mn__slot *old = &sp->slots[from], *s = &sp->slots[to];
    mn_assert(from != to && old->state == SLOT_LIVE && s->state == SLOT_LIVE);
    if (!old->superseded) sp->n_superseded++;
    old->superseded = 1;
    if (!old->valid_to_ms || old->valid_to_ms > at_ms) old->valid_to_ms = at_ms;
    /* the new version starts with no edges of its own: it takes the old one's */
    mn_assert(s->n_adj == 0);
    free(s->adj);
    s->adj = old->adj;
    s->n_adj = old->n_adj;
    s->cap_adj = old->cap_adj;
    old->adj = NULL;
    old->n_adj = old->cap_adj = 0;
    rename_other_halves(sp, s, &old->id);
    s->stability_days = old->stability_days;
    s->last_access_ms = old->last_access_ms;
    s->access_count = old->access_count;
}
