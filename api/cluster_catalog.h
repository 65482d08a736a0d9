/* The space catalog (cluster mode): every node knows every space's definition
 * (its creation options and creation time) and every drop (a tombstone), so
 * that every node places the same names (api/cluster_spaces.c). Private to api/.
 *
 * Three parts:
 *  - the set (cluster_catalog_set.c): entries sorted by name and their merge,
 *    a join over a total order (deterministic, commutative, idempotent);
 *  - the codec and the file (cluster_catalog_json.c): entries as JSON, the
 *    catalog kept in <data_dir>/cluster_catalog.json (fsync + rename);
 *  - the live catalog (cluster_catalog.c): the hooks of a create and a drop, a
 *    push to every alive member, anti-entropy with a random member, and the
 *    routes GET and POST /v1/cluster/catalog. docs/replication.md, "The space
 *    catalog", says why each rule is what it is. */
#ifndef MN_API_CLUSTER_CATALOG_H
#define MN_API_CLUSTER_CATALOG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/config.h"
#include "mnemo/engine.h"
#include "mnemo/err.h"
#include "mnemo/http.h"
#include "mnemo/spaces.h"
#include "mnemo/swim.h"

/* ---- the set ---- */

/* One space as the catalog knows it. def.created_at_ms (the engine's, carried in the
 * space's WAL so that every copy has the same) names the incarnation: a name dropped and
 * created again is a new incarnation. dropped_ms: 0 = live, else a tombstone. creator: the
 * node that created it (wrote its lsn 1; "" = not known: a catalog of an older version, or
 * a copy learned from the engine). rec: its holder record, as its primary published it
 * (epoch 0 = none yet; docs/replication.md, "Holder records"). */
typedef struct cl_catalog_entry {
    mn_space_def_t def;
    int64_t dropped_ms;
    char creator[MN_SWIM_ID_MAX + 1];
    mn_spaces_record_t rec;
} cl_catalog_entry;

/* Entries sorted by name, one per name. */
typedef struct cl_catalog_set {
    cl_catalog_entry *e;
    size_t n, cap;
} cl_catalog_set;

void cl_catalog_set_init(cl_catalog_set *s);
void cl_catalog_set_free(cl_catalog_set *s);
/* dst (initialised) becomes a copy of src. */
mn_err cl_catalog_set_copy(cl_catalog_set *dst, const cl_catalog_set *src);
const cl_catalog_entry *cl_catalog_set_find(const cl_catalog_set *s, const char *name);
/* The order the merge keeps the greatest of, for two entries of one name: the later
 * incarnation (created_at_ms), then the definition's fields in a fixed order (two creations
 * in the same ms), then dropped_ms (0, live, is the least: a tombstone wins over the live
 * entry of its incarnation, and the later of two tombstones wins). <0, 0, >0. */
int cl_catalog_entry_cmp(const cl_catalog_entry *a, const cl_catalog_entry *b);
/* Merges in into s: s keeps, for in's name, the greater of its entry and in by
 * (created_at_ms, definition); for one incarnation and definition, each of dropped_ms, rec
 * (mn_spaces_record_cmp) and creator is the greater of the two (a join of joins). *changed
 * (may be NULL) says whether s changed. MN_ERR_INVALID for a bad name, MN_ERR_NOMEM. */
mn_err cl_catalog_set_merge(cl_catalog_set *s, const cl_catalog_entry *in, bool *changed);
/* Removes the tombstones dropped before before_ms; returns how many. */
size_t cl_catalog_set_collect(cl_catalog_set *s, int64_t before_ms);
/* Live entries. */
size_t cl_catalog_set_live(const cl_catalog_set *s);

/* ---- the codec (cluster_catalog_json.c) ---- */

/* An entry as a JSON object: the fields of POST /v1/spaces with their stored values, plus
 * "created_at_ms", "dropped_at_ms" (null: live), "creator" (null: not known) and "record"
 * (null: none; else {"epoch", "version", "holders": [{"node", "role"}]}). */
cJSON *cl_catalog_entry_json(const cl_catalog_entry *e);
/* TEST ONLY: every entry written from now on carries the string field name too, as a node
 * one minor version ahead may add one (MNEMO_TEST_PEER_MINOR above this build's). */
void cl_catalog_json_test_field(const char *name);
/* Reads an entry; MN_ERR_INVALID names the field ("<pfx>dim: ..."). Fields it does not
 * know are ignored (a newer minor version's). */
mn_err cl_catalog_entry_from_json(const cJSON *o, const char *pfx, cl_catalog_entry *out,
                                  mn_error *err);
/* {"spaces": [entries]} into s (merged: a document may name a space twice). */
mn_err cl_catalog_set_from_json(const cJSON *doc, cl_catalog_set *s, mn_error *err);
/* {"spaces": [entries]} as text (cJSON_free; NULL: no memory); file: pretty, with the
 * file's "format". */
char *cl_catalog_set_text(const cl_catalog_set *s, bool file);
/* The digest of a set: hex SHA-256 of its entries' canonical JSON in name order (65 bytes
 * with the NUL). Equal sets have equal digests on every node. */
void cl_catalog_set_digest(const cl_catalog_set *s, char out[65]);
/* Writes s to path (a temporary file, fsync, rename, fsync of the folder). */
mn_err cl_catalog_save(const cl_catalog_set *s, const char *path, mn_error *err);
/* Loads path into s (merged); a missing file is an empty catalog. MN_ERR_CORRUPT names the
 * file and the fault. */
mn_err cl_catalog_load(const char *path, cl_catalog_set *s, mn_error *err);

/* ---- the live catalog (cluster_catalog.c) ---- */

typedef struct cl_catalog cl_catalog;
struct cl_route; /* api/cluster_route.h */

/* An alive member other than this node, with its API address ("HOST:PORT", for logs). */
typedef struct cl_catalog_member {
    char id[MN_SWIM_ID_MAX + 1];
    char api[MN_SWIM_META_MAX + 1];
} cl_catalog_member;

/* Loads <data_dir>/cluster_catalog.json, merges in the spaces of engine (a space the engine
 * holds is live unless a tombstone covers it), drops the engine's copies that a tombstone
 * covers, and saves. */
mn_err cl_catalog_new(const mn_config_t *c, mn_engine_t *engine, const char *self_id,
                      cl_catalog **out, mn_error *err);
/* Starts the sync thread (cluster.catalog_sync_interval_ms), which calls the other nodes
 * through rt (signed internal hops; rt outlives cat). */
mn_err cl_catalog_start(cl_catalog *cat, struct cl_route *rt, mn_error *err);
/* Stops the sync thread (if started) and frees. No hook or handler may run during or
 * after it. */
void cl_catalog_free(cl_catalog *cat);

/* The hooks of api_cluster_hooks (any thread, after the engine call succeeded): records
 * the space (read from the engine) or its tombstone, saves, and pushes it to every alive
 * member (on the sync thread, at once). */
void cl_catalog_created(cl_catalog *cat, const char *space);
void cl_catalog_dropped(cl_catalog *cat, const char *space);
/* The live spaces, sorted by name: *out malloc'd (free()). */
mn_err cl_catalog_list(cl_catalog *cat, mn_space_def_t **out, size_t *n, mn_error *err);
/* The live names, sorted: *out malloc'd (free()), one block (the strings live in it). */
mn_err cl_catalog_names(cl_catalog *cat, const char ***out, size_t *n, mn_error *err);

/* What the catalog knows of a name (any thread): never heard of; live, *created_ms its
 * incarnation (def.created_at_ms); or dropped (its latest incarnation has a tombstone). */
typedef enum { CL_CATALOG_UNKNOWN, CL_CATALOG_LIVE, CL_CATALOG_DROPPED } cl_catalog_state;
cl_catalog_state cl_catalog_state_of(cl_catalog *cat, const char *space, int64_t *created_ms);
/* The clock skew between nodes that a space's incarnation check tolerates (docs/gossip.md,
 * "Dropped spaces"): the same bound as a signed hop's (CL_HOP_SKEW_MS). */
#define CL_CATALOG_SKEW_MS 30000
/* What of space made (by its id's wall clock, ms) before this time is not, or no longer, the
 * cluster's: everything once the space is dropped (INT64_MAX), what is older than its live
 * incarnation less CL_CATALOG_SKEW_MS, nothing of a name not heard of yet (INT64_MIN). The
 * rule gossiped records and pending hints both follow. Any thread. */
int64_t cl_catalog_stale_before(cl_catalog *cat, const char *space);

/* A live space as placement takes it (cl_catalog_placing). */
typedef struct cl_catalog_place {
    char name[MN_SPACE_NAME_MAX + 1];
    char creator[MN_SWIM_ID_MAX + 1];
    mn_spaces_record_t rec;
    int64_t created_ms; /* the incarnation */
} cl_catalog_place;
/* The live spaces with their creators and records, sorted by name: *out malloc'd (free()). */
mn_err cl_catalog_placing(cl_catalog *cat, cl_catalog_place **out, size_t *n, mn_error *err);
/* The primary of spaces[i] publishes recs[i] (any thread): each merged into its live entry,
 * then one save and one push to every alive member. A space without a live entry or a bad
 * record is skipped (logged); returns how many changed the catalog. */
size_t cl_catalog_publish(cl_catalog *cat, const char *const *spaces,
                          const mn_spaces_record_t *recs, size_t n);
/* Whether node is known to hold (merged, durably) a record of space at least as new as rec:
 * it answered a push of it, or its digest equalled this node's since. This node holds its
 * own. */
bool cl_catalog_record_held(cl_catalog *cat, const char *space, const char *node,
                            const mn_spaces_record_t *rec);
/* Loop thread: the alive members (this node excluded) the sync thread talks to. */
void cl_catalog_set_members(cl_catalog *cat, const cl_catalog_member *m, size_t n);

/* GET /v1/cluster/catalog[?digest=1] and POST /v1/cluster/catalog (ctx = the catalog). */
void cl_catalog_handle_get(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void cl_catalog_handle_post(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);

#endif
