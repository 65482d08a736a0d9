/* Which spaces the doors list: in cluster mode every space of the cluster (the catalog,
 * through the space_list hook, api/cluster_catalog.c) and which of them this node's engine
 * holds; else the engine's. */
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

/* held[i]: does local (sorted by name) hold defs[i].name (defs sorted by name too)? */
static void mark_held(const mn_space_def_t *defs, size_t n, const mn_space_def_t *local,
                      size_t n_local, bool *held)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        while (j < n_local && strcmp(local[j].name, defs[i].name) < 0)
            j++;
        held[i] = j < n_local && strcmp(local[j].name, defs[i].name) == 0;
    }
}

mn_err api_space_list(const mn_api_t *api, mn_space_def_t **out, size_t *n, bool **held,
                      mn_error *err)
{
    if (held) *held = NULL;
    if (!api->cluster || !api->cluster->space_list)
        return mn_engine_space_list(api->engine, out, n, err);
    mn_err rc = api->cluster->space_list(api->cluster->arg, out, n, err);
    if (rc || !held) return rc;
    mn_space_def_t *local = NULL;
    size_t n_local = 0;
    rc = mn_engine_space_list(api->engine, &local, &n_local, err);
    *held = rc ? NULL : calloc(*n ? *n : 1, sizeof **held);
    if (!rc && !*held) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    if (!rc) mark_held(*out, *n, local, n_local, *held);
    free(local);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}
