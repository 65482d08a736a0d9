/* The catalog's set of entries and its merge.
 *
 * For one name, entries are totally ordered (cl_catalog_entry_cmp): by
 * incarnation (created_at_ms), then by the definition's fields, then by
 * dropped_ms with live (0) lowest. The merge keeps the greatest, so it is a
 * join in a semilattice: commutative, associative and idempotent, and nodes
 * that merged the same entries in any order, any number of times, hold the
 * same set (a state-based CRDT, a last-writer-wins register per name;
 * Shapiro, Preguiça, Baquero, Zawirski, "Conflict-free replicated data
 * types", SSS 2011, §3.2). Consequences: a tombstone wins over the live entry
 * of its incarnation; a space created again after a drop is a later
 * incarnation and wins over the old tombstone.
 *
 * Within one incarnation (and definition) the fields merge each by its own
 * order: the later drop, the newer holder record (epoch, version), the known
 * creator. A product of joins is a join, so the set stays a CRDT.
 *
 * Collecting tombstones is not part of the merge (it reads the clock): the
 * live catalog collects those older than a horizon, after which a node that
 * still holds the old live entry could bring it back (docs/replication.md,
 * "The space catalog").
 *
 * Invariant (checked in Debug after each change): entries sorted by name,
 * strictly. */
#include <stdlib.h>
#include <string.h>

#include "cluster_catalog.h"
#include "mnemo/assert.h"

void cl_catalog_set_init(cl_catalog_set *s)
{
    memset(s, 0, sizeof *s);
}

void cl_catalog_set_free(cl_catalog_set *s)
{
    free(s->e);
    memset(s, 0, sizeof *s);
}

static mn_err reserve(cl_catalog_set *s, size_t n)
{
    if (n <= s->cap) return MN_OK;
    size_t cap = s->cap ? s->cap : 16;
    while (cap < n)
        cap *= 2;
    cl_catalog_entry *ne = realloc(s->e, cap * sizeof *ne);
    if (!ne) return MN_ERR_NOMEM;
    s->e = ne;
    s->cap = cap;
    return MN_OK;
}

mn_err cl_catalog_set_copy(cl_catalog_set *dst, const cl_catalog_set *src)
{
    if (reserve(dst, src->n) != MN_OK) return MN_ERR_NOMEM;
    if (src->n) memcpy(dst->e, src->e, src->n * sizeof *src->e);
    dst->n = src->n;
    return MN_OK;
}

#ifndef NDEBUG
static bool sorted(const cl_catalog_set *s)
{
    for (size_t i = 1; i < s->n; i++)
        if (strcmp(s->e[i - 1].def.name, s->e[i].def.name) >= 0) return false;
    return true;
}
#endif

/* Index of the first entry whose name is >= name. */
static size_t lower_bound(const cl_catalog_set *s, const char *name)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(s->e[mid].def.name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const cl_catalog_entry *cl_catalog_set_find(const cl_catalog_set *s, const char *name)
{
    size_t i = lower_bound(s, name);
    return i < s->n && strcmp(s->e[i].def.name, name) == 0 ? &s->e[i] : NULL;
}

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

/* The definition's fields in a fixed order (never memcmp: padding, floats). */
static int def_cmp(const mn_space_def_t *a, const mn_space_def_t *b)
{
    int c;
    if ((c = cmp_i64(a->dim, b->dim))) return c;
    if ((c = cmp_i64(a->metric, b->metric))) return c;
    if ((c = cmp_i64(a->default_lifecycle, b->default_lifecycle))) return c;
    if ((c = strcmp(a->text_language, b->text_language))) return c;
    if ((c = cmp_i64(a->embedding_model_set, b->embedding_model_set))) return c;
    if ((c = strcmp(a->embedding_model, b->embedding_model))) return c;
    if ((c = cmp_i64(a->dedup, b->dedup))) return c;
    if (a->dedup_threshold != b->dedup_threshold)
        return a->dedup_threshold < b->dedup_threshold ? -1 : 1;
    if ((c = cmp_i64(a->index.m, b->index.m))) return c;
    if ((c = cmp_i64(a->index.ef_construction, b->index.ef_construction))) return c;
    if ((c = cmp_i64(a->index.ef_search, b->index.ef_search))) return c;
    return cmp_i64(a->index.quantize, b->index.quantize);
}

/* The incarnation and its definition: entries equal here merge field by field. */
static int key_cmp(const cl_catalog_entry *a, const cl_catalog_entry *b)
{
    int c = cmp_i64(a->def.created_at_ms, b->def.created_at_ms);
    return c ? c : def_cmp(&a->def, &b->def);
}

int cl_catalog_entry_cmp(const cl_catalog_entry *a, const cl_catalog_entry *b)
{
    int c = key_cmp(a, b);
    if (!c) c = cmp_i64(a->dropped_ms, b->dropped_ms);
    return c;
}

/* One incarnation's fields joined into cur: the later drop, the newer record, the greater
 * creator (a known one over ""). Returns whether cur changed. */
static bool join_fields(cl_catalog_entry *cur, const cl_catalog_entry *in)
{
    bool changed = false;
    if (in->dropped_ms > cur->dropped_ms) {
        cur->dropped_ms = in->dropped_ms;
        changed = true;
    }
    if (mn_spaces_record_cmp(&in->rec, &cur->rec) > 0) {
        cur->rec = in->rec;
        changed = true;
    }
    if (strcmp(in->creator, cur->creator) > 0) {
        memcpy(cur->creator, in->creator, sizeof cur->creator);
        changed = true;
    }
    return changed;
}

mn_err cl_catalog_set_merge(cl_catalog_set *s, const cl_catalog_entry *in, bool *changed)
{
    if (changed) *changed = false;
    if (!mn_space_name_valid(in->def.name) || in->dropped_ms < 0) return MN_ERR_INVALID;
    size_t i = lower_bound(s, in->def.name);
    if (i < s->n && strcmp(s->e[i].def.name, in->def.name) == 0) {
        int c = key_cmp(in, &s->e[i]);
        if (c < 0 || (c == 0 && !join_fields(&s->e[i], in))) return MN_OK;
        if (c > 0) s->e[i] = *in;
    } else {
        if (reserve(s, s->n + 1) != MN_OK) return MN_ERR_NOMEM;
        memmove(&s->e[i + 1], &s->e[i], (s->n - i) * sizeof *s->e);
        s->e[i] = *in;
        s->n++;
    }
    mn_assert_debug(sorted(s));
    if (changed) *changed = true;
    return MN_OK;
}

size_t cl_catalog_set_collect(cl_catalog_set *s, int64_t before_ms)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (!(s->e[i].dropped_ms && s->e[i].dropped_ms < before_ms)) s->e[k++] = s->e[i];
    size_t gone = s->n - k;
    s->n = k;
    mn_assert_debug(sorted(s));
    return gone;
}

size_t cl_catalog_set_live(const cl_catalog_set *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += s->e[i].dropped_ms == 0;
    return n;
}
