/* Shared by the files of the live catalog (cluster_catalog.c: the state, hooks and
 * lifecycle; cluster_catalog_sync.c: the thread and the routes). Private. */
#ifndef MN_API_CLUSTER_CATALOG_INTERNAL_H
#define MN_API_CLUSTER_CATALOG_INTERNAL_H

#include "cluster_catalog.h"
#include "mnemo/util.h"

/* The route the sync thread calls other nodes through. */
struct cl_route *cl__catalog_route(const cl_catalog *cat);
/* The digest of the current set (65 bytes with the NUL). */
void cl__catalog_digest(cl_catalog *cat, char out[65]);
/* Merges every entry of in (queueing the changed ones for a push when push), saves when
 * something changed; returns how many entries changed the set. */
size_t cl__catalog_merge_all(cl_catalog *cat, const cl_catalog_set *in, bool push);
/* A copy of the current set into out (initialised). */
mn_err cl__catalog_copy(cl_catalog *cat, cl_catalog_set *out);
/* node answered 200 to a push of sent (merged it): it holds each record in it. */
void cl__catalog_held(cl_catalog *cat, const char *node, const cl_catalog_set *sent);
/* node's digest equals this node's: it holds every record this node has. */
void cl__catalog_held_all(cl_catalog *cat, const char *node);
/* A random alive member into m; false when there is none. */
bool cl__catalog_pick(cl_catalog *cat, mn_prng_t *rng, cl_catalog_member *m);
/* Merges the engine's spaces in, drops the engine copies a tombstone covers. */
void cl__catalog_reconcile(cl_catalog *cat);
/* Collects the tombstones dropped before now_ms - the horizon (saves if any went). */
void cl__catalog_collect(cl_catalog *cat, int64_t now_ms);
/* Sync thread: waits until stop, queued pushes, or deadline_ms. Takes the queued entries
 * into *pending (initialised here) and a copy of the members (free()). true = stop. */
bool cl__catalog_wait(cl_catalog *cat, int64_t deadline_ms, cl_catalog_set *pending,
                      cl_catalog_member **members, size_t *n);
int64_t cl__catalog_interval_ms(const cl_catalog *cat);
/* The body of GET /v1/cluster/catalog (cJSON_free); entries only when full. NULL: no
 * memory. */
char *cl__catalog_render(cl_catalog *cat, bool full);
/* The sync thread's body (arg = the catalog). */
void *cl__catalog_thread(void *arg);

#endif
