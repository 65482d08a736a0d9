/* What every door asks of the cluster after a write (api_cluster_hooks, api_internal.h):
 * wait until the write reached the request's consistency level. */
#include "api_internal.h"

mn_err api_write_wait(mn_api_t *api, const char *space, int level, uint64_t *lsn, mn_error *err)
{
    const api_cluster_hooks *h = api->cluster;
    *lsn = 0;
    if (!h || !h->write_wait) return MN_OK;
    mn_space_stats_t st;
    /* gone since (dropped): nothing left to wait for */
    if (mn_engine_space_get(api->engine, space, &st, NULL) != MN_OK) return MN_OK;
    /* the space's last lsn now: at or past this write's (a later write only waits longer) */
    *lsn = st.last_lsn;
    return h->write_wait(h->arg, space, st.last_lsn, level, -1, err);
}
