/* The primary as the authority for its spaces' holders (cluster mode): on the loop thread,
 * after each placement step, this node publishes the holder record of every space its
 * replication core leads (docs/replication.md, "Holder records"). Private to api/. */
#ifndef MN_API_CLUSTER_SPACES_AUTH_H
#define MN_API_CLUSTER_SPACES_AUTH_H

#include "cluster_catalog.h"
#include "cluster_repl.h"
#include "mnemo/spaces.h"

typedef struct cl_authority cl_authority;

mn_err cl_authority_new(cl_catalog *catalog, cl_repl *repl, const char *self, cl_authority **out,
                        mn_error *err);
void cl_authority_free(cl_authority *a);

/* Loop thread: the caught-up copies the core reported go to the driver (before its update). */
void cl_authority_take_caught_up(cl_authority *a, mn_spaces_driver_t *d);
/* Loop thread, after the driver's update over view: for each space the core leads at an
 * epoch the catalog's record is behind, the first record of that epoch (the holders the core
 * was elected among, this node primary); for each space it leads by its record, the next
 * record the driver proposes — a voter change only once a majority of the current record's
 * voters holds it (the catalog says who does) for CL_AUTH_ADOPT_MS. Each is published
 * through the catalog (saved, pushed to every member at once). */
void cl_authority_tick(cl_authority *a, mn_spaces_driver_t *d, const mn_spaces_member_t *view,
                       size_t n_view);

#endif
