/* Slots by session: an open-addressing table (linear probing) of session name
 * -> array of slots. A session whose last slot leaves keeps its entry with no
 * slots until the next growth, which drops such entries; so the table never
 * needs tombstones and stays bounded by the sessions alive at the last growth. */
#include "session_index.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char *key; /* NULL = empty */
    uint32_t *slots;
    uint32_t n, cap;
} entry;

struct mn__session_ix {
    entry *t;
    size_t cap;  /* power of two, or 0 */
    size_t used; /* entries with a key */
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

mn__session_ix *mn__session_ix_new(void)
{
    return calloc(1, sizeof(mn__session_ix));
}

void mn__session_ix_free(mn__session_ix *x)
{
    if (!x) return;
    for (size_t i = 0; i < x->cap; i++) {
        free(x->t[i].key);
        free(x->t[i].slots);
    }
    free(x->t);
    free(x);
}

static entry *find(const mn__session_ix *x, const char *key)
{
    if (!x->cap) return NULL;
    size_t mask = x->cap - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
        entry *e = &x->t[i];
        if (!e->key) return NULL;
        if (!strcmp(e->key, key)) return e;
    }
}

static int grow(mn__session_ix *x)
{
    size_t live = 0;
    for (size_t i = 0; i < x->cap; i++)
        live += x->t[i].key && x->t[i].n;
    size_t nc = 16;
    while (nc < (live + 1) * 2)
        nc *= 2;
    entry *nt = calloc(nc, sizeof *nt);
    if (!nt) return -1;
    for (size_t i = 0; i < x->cap; i++) {
        entry *e = &x->t[i];
        if (!e->key) continue;
        if (!e->n) { /* empty session: dropped here */
            free(e->key);
            free(e->slots);
            continue;
        }
        size_t j = hash(e->key) & (nc - 1);
        while (nt[j].key)
            j = (j + 1) & (nc - 1);
        nt[j] = *e;
    }
    free(x->t);
    x->t = nt;
    x->cap = nc;
    x->used = live;
    return 0;
}

int mn__session_ix_add(mn__session_ix *x, const char *session, uint32_t slot)
{
    entry *e = find(x, session);
    if (!e) {
        if ((x->used + 1) * 4 > x->cap * 3 && grow(x)) return -1;
        size_t mask = x->cap - 1;
        size_t i = hash(session) & mask;
        while (x->t[i].key)
            i = (i + 1) & mask;
        e = &x->t[i];
        if (!(e->key = strdup(session))) return -1;
        x->used++;
    }
    if (e->n == e->cap) {
        uint32_t nc = e->cap ? e->cap * 2 : 4;
        uint32_t *s = realloc(e->slots, nc * sizeof *s);
        if (!s) return -1;
        e->slots = s;
        e->cap = nc;
    }
    e->slots[e->n++] = slot;
    return 0;
}

void mn__session_ix_remove(mn__session_ix *x, const char *session, uint32_t slot)
{
    entry *e = find(x, session);
    if (!e) return;
    for (uint32_t i = 0; i < e->n; i++)
        if (e->slots[i] == slot) {
            e->slots[i] = e->slots[--e->n];
            return;
        }
}

const uint32_t *mn__session_ix_slots(const mn__session_ix *x, const char *session, size_t *n)
{
    entry *e = find(x, session);
    *n = e ? e->n : 0;
    return e && e->n ? e->slots : NULL;
}
