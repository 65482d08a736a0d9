/* What every door asks of the cluster after a write (api_cluster_hooks, api_internal.h):
 * wait until the write reached the request's consistency level. */
#include "api_internal.h"

mn_err api_write_wait(mn_api_t *api, const char *space, int level, uint64_t *lsn, mn_error *err)
{
    const api_cluster_hooks *h = api->cluster;
    *lsn = 0;
    if (!h || !h->write_wait) return MN_OK;
    uint64_t last = 0, epoch = 0;
    /* the entry this request's write call made (the door called mn_engine_write_begin before
     * it): a log replaced since shows as another epoch at that lsn, and the wait fails */
    if (!mn_engine_write_taken(space, &last, &epoch)) {
        /* it wrote nothing (an exact duplicate, an idempotent retry, a forget of a forgotten
         * id): what it answered from is in the log up to its last entry now; gone since
         * (dropped): nothing left to wait for */
        if (mn_engine_space_position(api->engine, space, &last, &epoch, NULL) != MN_OK)
            return MN_OK;
    }
    *lsn = last;
    return h->write_wait(h->arg, space, last, epoch, level, -1, err);
}
