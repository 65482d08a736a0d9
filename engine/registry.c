/* The space registry: binary search over an array sorted by name. Readers
 * (every operation's lookup) share the lock; the commit thread takes it for
 * writing only to insert or remove, so a lookup never waits for a write
 * group. A space taken out of the map lives on while operations hold it. */
#include "registry.h"

#include "mnemo/assert.h"

#include <stdlib.h>
#include <string.h>

void mn__registry_init(mn__registry *r)
{
    memset(r, 0, sizeof *r);
    pthread_rwlock_init(&r->lock, NULL);
}

void mn__registry_destroy(mn__registry *r)
{
    for (size_t i = 0; i < r->n; i++)
        mn__space_unref(r->spaces[i]);
    free(r->spaces);
    pthread_rwlock_destroy(&r->lock);
    memset(r, 0, sizeof *r);
}

/* Index of name in the map, or where it would go (*found false). Lock held. */
static size_t locate(const mn__registry *r, const char *name, bool *found)
{
    size_t lo = 0, hi = r->n;
    *found = false;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(r->spaces[mid]->def.name, name);
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

mn__space *mn__registry_acquire(mn__registry *r, const char *name)
{
    mn__space *sp = NULL;
    bool found;
    pthread_rwlock_rdlock(&r->lock);
    size_t i = locate(r, name, &found);
    if (found) {
        sp = r->spaces[i];
        mn__space_ref(sp);
    }
    pthread_rwlock_unlock(&r->lock);
    return sp;
}

mn__space **mn__registry_acquire_all(mn__registry *r, size_t *n)
{
    pthread_rwlock_rdlock(&r->lock);
    *n = r->n;
    mn__space **all = malloc((r->n ? r->n : 1) * sizeof *all);
    for (size_t i = 0; all && i < r->n; i++) {
        all[i] = r->spaces[i];
        mn__space_ref(all[i]);
    }
    pthread_rwlock_unlock(&r->lock);
    if (!all) *n = 0;
    return all;
}

void mn__registry_release_all(mn__space **spaces, size_t n)
{
    for (size_t i = 0; spaces && i < n; i++)
        mn__space_unref(spaces[i]);
    free(spaces);
}

mn_err mn__registry_insert(mn__registry *r, mn__space *sp)
{
    mn_err rc = MN_OK;
    bool found;
    pthread_rwlock_wrlock(&r->lock);
    size_t at = locate(r, sp->def.name, &found);
    /* names are unique: the commit thread checked the store before creating it */
    mn_assert(!found);
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 16;
        mn__space **grown = realloc(r->spaces, nc * sizeof *grown);
        if (!grown) {
            rc = MN_ERR_NOMEM;
            goto out;
        }
        r->spaces = grown;
        r->cap = nc;
    }
    memmove(&r->spaces[at + 1], &r->spaces[at], (r->n - at) * sizeof *r->spaces);
    r->spaces[at] = sp;
    r->n++;
out:
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

void mn__registry_remove(mn__registry *r, mn__space *sp)
{
    pthread_rwlock_wrlock(&r->lock);
    for (size_t i = 0; i < r->n; i++)
        if (r->spaces[i] == sp) {
            memmove(&r->spaces[i], &r->spaces[i + 1], (r->n - i - 1) * sizeof *r->spaces);
            r->n--;
            break;
        }
    pthread_rwlock_unlock(&r->lock);
}

void mn__registry_replace(mn__registry *r, mn__space *old, mn__space *sp)
{
    mn_assert(strcmp(old->def.name, sp->def.name) == 0);
    pthread_rwlock_wrlock(&r->lock);
    bool found = false;
    for (size_t i = 0; i < r->n && !found; i++)
        if (r->spaces[i] == old) {
            r->spaces[i] = sp;
            found = true;
        }
    pthread_rwlock_unlock(&r->lock);
    mn_assert(found);
}

size_t mn__registry_count(mn__registry *r)
{
    pthread_rwlock_rdlock(&r->lock);
    size_t n = r->n;
    pthread_rwlock_unlock(&r->lock);
    return n;
}

mn_err mn__registry_defs(mn__registry *r, mn_space_def_t **out, size_t *n, mn_error *err)
{
    mn_err rc = MN_OK;
    pthread_rwlock_rdlock(&r->lock);
    *n = r->n;
    *out = malloc((r->n ? r->n : 1) * sizeof **out);
    if (!*out) {
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < r->n; i++)
        (*out)[i] = r->spaces[i]->def;
out:
    pthread_rwlock_unlock(&r->lock);
    return rc;
}
