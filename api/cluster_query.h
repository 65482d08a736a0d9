/* Recall over many spaces in cluster mode: the remote holder of query/ (include/mnemo/query.h)
 * over the peer bus's query channel, and the serving side that answers other nodes' batches
 * (docs/recall.md §11, "Cluster mode"). Private to api/.
 *
 * The origin plans each space as a single-space read of its preference is routed
 * (cl_route_plan): served here, or sent to its first target (copies on nodes SWIM suspects
 * last; every copy suspected: missing at once, "suspect"); the spaces of one target go in
 * one frame; after the target's observed p95 the spaces it has not answered go to their next
 * target (a hedge; the first answer wins); a space without an answer by the deadline is
 * missing ("timeout"). The serving node checks the grant the frame carries, runs the batch
 * on its own pool (its holder is local only) and answers per space. */
#ifndef MN_API_CLUSTER_QUERY_H
#define MN_API_CLUSTER_QUERY_H

#include "api_internal.h"
#include "cluster_spaces.h"
#include "mnemo/err.h"

typedef struct cl_query cl_query;
struct cl_repl;

/* Attaches the query channel to repl and gives api->query the remote holder. Loop thread,
 * before the doors take requests. */
mn_err cl_query_new(mn_api_t *api, struct cl_repl *repl, cl_spaces *cs, cl_query **out,
                    mn_error *err);
/* Gives api->query back its local holder alone, ends the runs waiting on other nodes and
 * stops serving (every thread that posts on repl is done when it returns). After the doors
 * stopped, before cl_repl_stop. */
void cl_query_close(cl_query *q);
/* After cl_repl_stop (no frame arrives any more). */
void cl_query_free(cl_query *q);

/* The stand-in for a space no copy answered (issue 18: this node's gossiped semantic memories
 * of it, ranked for req; MN_ERR_NOT_FOUND when it has none): any thread, quick. Its answer is
 * merged and the space listed as missing with the reason "partition". */
typedef mn_err (*cl_query_partition_fn)(void *arg, const char *space, const mn_recall_req_t *req,
                                        mn_recall_result_t *out, mn_error *err);
/* Sets the stand-in (NULL: none, the default). Before the doors take requests. */
void cl_query_set_partition(cl_query *q, cl_query_partition_fn fn, void *arg);
/* Hedges at most percent (0..100, cluster.hedge_budget_percent) of first sends, plus a floor
 * (docs/recall.md, "Hedge budget"); 0: none. Before the doors take requests. */
void cl_query_set_hedge_budget(cl_query *q, int64_t percent);

#endif
