/* The engine's spaces by name (registry.c): a sorted array under a
 * reader-writer lock. The map holds one reference to each space; a lookup
 * returns another, which the caller drops with mn__space_unref. Only the
 * commit thread (and start-up, before it runs) inserts and removes. */
#ifndef MN_ENGINE_REGISTRY_H
#define MN_ENGINE_REGISTRY_H

#include <pthread.h>

#include "space.h"

typedef struct mn__registry {
    pthread_rwlock_t lock; /* guards the array, not the spaces */
    mn__space **spaces;    /* sorted by name */
    size_t n, cap;
} mn__registry;

void mn__registry_init(mn__registry *r);
/* Drops the map's references and frees the map (nothing else uses it). */
void mn__registry_destroy(mn__registry *r);
/* The space called name with a reference, or NULL. */
mn__space *mn__registry_acquire(mn__registry *r, const char *name);
/* Every space, each with a reference, in a malloc'd array (NULL when out of
 * memory); mn__registry_release_all drops the references and frees it. */
mn__space **mn__registry_acquire_all(mn__registry *r, size_t *n);
void mn__registry_release_all(mn__space **spaces, size_t n);
/* Adds sp, taking over the caller's reference (MN_ERR_NOMEM). */
mn_err mn__registry_insert(mn__registry *r, mn__space *sp);
/* Takes sp out of the map; the caller drops the map's reference. */
void mn__registry_remove(mn__registry *r, mn__space *sp);
/* Puts sp (taking over the caller's reference) where old is, in one step: a lookup finds
 * one or the other, never neither. The caller drops the map's reference to old. */
void mn__registry_replace(mn__registry *r, mn__space *old, mn__space *sp);
size_t mn__registry_count(mn__registry *r);
/* The definitions of every space, in name order (*out malloc'd). */
mn_err mn__registry_defs(mn__registry *r, mn_space_def_t **out, size_t *n, mn_error *err);

#endif
