/* Draining a node (`mnemo admin drain NODE`): the node announces "drain=1" in its SWIM
 * metadata, and every node's placement gives it no desired copy, so its primaries and
 * replicas move away (spaces/placement.c). POST /v1/cluster/drain {"node", "drain"} on any
 * node reaches the target (one signed internal hop, cl_route_call). The flag is kept in
 * <data_dir>/cluster_drain, so a drained node that restarts stays drained. Private to api/. */
#ifndef MN_API_CLUSTER_DRAIN_H
#define MN_API_CLUSTER_DRAIN_H

#include <stdatomic.h>
#include <stdbool.h>

#include "mnemo/err.h"
#include "mnemo/http.h"
#include "mnemo/swim.h"

struct cl_route; /* api/cluster_route.h */

typedef struct cl_drain {
    char path[4096]; /* <data_dir>/cluster_drain */
    char self[MN_SWIM_ID_MAX + 1];
    atomic_bool draining;   /* what this node announces */
    atomic_bool announce;   /* the loop thread must announce the metadata again */
    struct cl_route *route; /* the hop to another node (set before requests come) */
} cl_drain;

/* Reads the kept flag (absent: not draining). MN_ERR_IO when it cannot tell. */
mn_err cl_drain_init(cl_drain *d, const char *data_dir, const char *self, mn_error *err);
/* POST /v1/cluster/drain (ctx = the cl_drain), any thread. */
void cl_drain_handle(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);

#endif
