/* Placement inside `mnemo serve` (cluster mode): the loop thread steps this
 * node's placement table (spaces/, mn_spaces_driver) from the SWIM view and
 * the spaces of the catalog (every space of the cluster, api/cluster_catalog.c);
 * GET /v1/cluster/spaces serves it from a snapshot. Private to api/. */
#ifndef MN_API_CLUSTER_SPACES_H
#define MN_API_CLUSTER_SPACES_H

#include "cluster_catalog.h"
#include "mnemo/config.h"
#include "mnemo/engine.h"
#include "mnemo/err.h"
#include "mnemo/http.h"
#include "mnemo/spaces.h"
#include "mnemo/swim.h"

typedef struct cl_spaces cl_spaces;

struct cl_repl;

/* The SWIM metadata of this node: "api=HOST:PORT;zone=Z;peer=HOST:PORT;drain=1", each part
 * only when known or set (api, peer NULL = not known yet; zone "" = none; drain=1 while it
 * drains). */
void cl_spaces_meta(const char *zone, const char *api, const char *peer, bool draining, char *buf,
                    size_t len);
/* The value of key in "k=v;k=v" metadata, into out ("" when absent). */
void cl_meta_get(const char *meta, const char *key, char *out, size_t cap);

/* catalog: the names to place (borrowed; it outlives cs). */
mn_err cl_spaces_new(const mn_config_t *c, mn_engine_t *engine, cl_catalog *catalog,
                     const char *self_id, cl_spaces **out, mn_error *err);
void cl_spaces_free(cl_spaces *cs);
/* Replication runs (loop thread, before the first tick): each tick hands repl the table and
 * the members, and records the primaries its core elected in the table (the driver no
 * longer settles the failovers of spaces this node holds). */
void cl_spaces_set_repl(cl_spaces *cs, struct cl_repl *repl);
/* Loop thread: steps the table over the alive and suspect members of the
 * SWIM core (this node included) and the catalog's spaces, then publishes it;
 * gives the catalog the members it syncs with. */
void cl_spaces_tick(cl_spaces *cs, const mn_swim_t *core);
/* GET /v1/cluster/spaces (any thread). */
void cl_spaces_handle(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
/* Its document (names: NULL, or a comma-separated preview list, modified): malloc'd JSON
 * text, or NULL with *status (422 bad names, 503) and err set. Any thread. */
char *cl_spaces_render(cl_spaces *cs, char *names, int *status, mn_error *err);

/* ---- lookups for routing (any thread) ---- */

/* How far behind the primary a copy is, in ms (-1 = not known); space and node as placed.
 * Called from thread-pool threads: must be thread-safe and quick. */
typedef int64_t (*cl_lag_fn)(void *arg, const char *space, const char *node);
/* Where holders' lags come from (the replication core); none set: every lag is -1. */
void cl_spaces_set_lag_source(cl_spaces *cs, cl_lag_fn fn, void *arg);
/* Adds "copy" to o: this node's replication core's state of the space st describes, as
 * of now_us (the core's clock; cluster_spaces_copy.c, docs/api.md). */
struct cJSON;
void cl_spaces_add_copy(struct cJSON *o, const mn_spaces_repl_status_t *st, int64_t now_us);
/* This node's id. */
const char *cl_spaces_self(const cl_spaces *cs);
/* A live space of the catalog that this node neither holds nor has placed yet: its
 * placement starts once its view settled (about a second after a start). Any thread. */
bool cl_spaces_not_placed_yet(cl_spaces *cs, const char *space);
/* May this node serve a read of space as its primary now: does its engine take writes
 * (mn_engine_space_writable: the primary's role, within the core's lease plus the grace
 * CL_REPL_LEASE_GRACE_US, which the voters wait out before they elect another)? MN_OK, or
 * why not. */
mn_err cl_spaces_leads_now(cl_spaces *cs, const char *space, mn_error *err);
/* ms since this node's lease as the space's primary lapsed; -1: it holds, or not the primary. */
int64_t cl_spaces_lapsed_ms(cl_spaces *cs, const char *space);

typedef struct cl_holder {
    char node[MN_SPACES_NODE_MAX + 1];
    char api[MN_SWIM_META_MAX + 1]; /* its HTTP API address ("api=" of its metadata), "" = none */
    mn_spaces_role_t role;
    bool alive;     /* in the current view (alive or suspect) and not marked down */
    bool suspect;   /* in the view, but SWIM suspects it (it may be dead: tried last) */
    int64_t lag_ms; /* -1 = not known */
} cl_holder;

typedef struct cl_placement {
    uint64_t epoch;
    bool preview; /* not placed yet: where it would go (?names= preview) */
    int n_holders;
    cl_holder holders[MN_SPACES_HOLDERS_MAX]; /* holders[0] is the primary if its role says so */
} cl_placement;

/* The HTTP API address node announces ("api=" of its SWIM metadata) into out (cap bytes):
 * false when node is not in the current view or has announced none. */
bool cl_spaces_node_api(cl_spaces *cs, const char *node, char *out, size_t cap);

/* The placement of space in the published table: false when the table does not know it
 * (unless preview: then where the space would be placed if it were created now). */
bool cl_spaces_lookup(cl_spaces *cs, const char *space, bool preview, cl_placement *out);

#endif
