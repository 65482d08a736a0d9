/* The order in which the origin of a recall over many spaces tries a space's copies
 * (docs/recall.md, "SWIM's view"): the route's order (cl_route_plan: the primary, then the
 * copies in rotation), regrouped by the standing of each copy's node: healthy first, then
 * overdue (a frame to it went past its hedge time: cluster_query.c), and last a node SWIM
 * suspects, which may well be dead and would only cost a hedge wait. A pure leaf
 * (tests/unit/test_cluster_query_order.c). */
#include "cluster_query_internal.h"

#include <string.h>

#include "mnemo/assert.h"

int clq_order_targets(cl_route_plan_t *p, const clq_copy *st)
{
    mn_assert(p->n >= 0 && p->n <= MN_SPACES_HOLDERS_MAX);
    int out[MN_SPACES_HOLDERS_MAX], n = 0, usable = 0;
    for (int g = CLQ_COPY_OK; g <= CLQ_COPY_SUSPECT; g++)
        for (int t = 0; t < p->n; t++)
            if ((int)st[t] == g) out[n++] = p->targets[t];
    for (int t = 0; t < p->n; t++)
        usable += st[t] != CLQ_COPY_SUSPECT;
    mn_assert(n == p->n); /* every standing is one of the three */
    memcpy(p->targets, out, (size_t)n * sizeof out[0]);
    return usable;
}
