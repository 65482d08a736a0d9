/* Recall over many spaces (issue 19; docs/recall.md §11): plan, scatter, gather, merge.
 *
 * A request names its spaces (a list, or a prefix expanded against the spaces the node knows
 * that the caller may read: mn_query_plan). mn_query_run sends the cue to each space's holder
 * in parallel on a bounded pool of threads, gathers the answers that came back by the
 * deadline, lists the others as missing (with why), merges the hits by score (ties by id),
 * removes duplicates, keeps the top k, and lowers every confidence by how much of the data
 * the missing spaces hold (mn_query_missing_factor).
 *
 * A holder is whoever answers for a space: in single-node mode the one local holder, which
 * runs mn_engine_recall; in cluster mode (issue 16) a remote holder reached over the peer port
 * plugs in as another mn_query_holder_t with its own executor. The module knows nothing of
 * HTTP, auth or the network: the caller passes the names it knows and a may_read check. */
#ifndef MNEMO_QUERY_H
#define MNEMO_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/engine.h"
#include "mnemo/err.h"

#define MN_QUERY_SPACES_MAX 256 /* spaces of one request, after prefix expansion */
#define MN_QUERY_TIMEOUT_MS_DEFAULT 1000
#define MN_QUERY_TIMEOUT_MS_MAX 60000
#define MN_QUERY_THREADS_DEFAULT 8

/* ---- planning (query_plan.c) ---- */

typedef bool (*mn_query_may_read_fn)(void *arg, const char *space);

typedef struct mn_query_plan_in {
    const char *const *names; /* the request's "spaces", or NULL */
    size_t n_names;
    const char *prefix;       /* the request's "space_prefix", or NULL (exactly one of the two) */
    const char *const *known; /* every space this node knows of, any order */
    size_t n_known;
    mn_query_may_read_fn may_read; /* NULL: every space may be read */
    void *may_read_arg;
} mn_query_plan_in_t;

typedef struct mn_query_plan {
    char **spaces; /* sorted by name, no duplicates; malloc'd (mn_query_plan_clear) */
    size_t n;
    /* on MN_ERR_INVALID for a refusal of auth: the first named space (by name) the caller may
     * not read, else ""; the doors answer 403 naming it */
    char denied[MN_SPACE_NAME_MAX + 1];
} mn_query_plan_t;

/* The spaces a request searches. A list: each a valid space name, duplicates dropped, at
 * most MN_QUERY_SPACES_MAX, each readable (else MN_ERR_INVALID with out->denied set, checked
 * before whether it exists, so a refusal says nothing of that), each known (else
 * MN_ERR_NOT_FOUND naming the first unknown one). A prefix: the known spaces that start with
 * it and may be read (none is an empty plan, not an error), at most MN_QUERY_SPACES_MAX. Every
 * other fault is MN_ERR_INVALID naming the field ("spaces", "space_prefix"). */
mn_err mn_query_plan(const mn_query_plan_in_t *in, mn_query_plan_t *out, mn_error *err);
void mn_query_plan_clear(mn_query_plan_t *p);

/* ---- holders and their executors ---- */

/* One space's answer, as an executor fills it. */
typedef struct mn_query_answer {
    mn_err rc; /* MN_OK: res holds the space's recall */
    mn_error err;
    mn_recall_result_t res;
    /* rc not MN_OK: why the space is missing, one of MN_QUERY_MISSING_* (static); NULL: told
     * by rc (MN_ERR_NOT_FOUND not_found, MN_ERR_UNAVAILABLE / CLOSED / BUSY unavailable, any
     * other error). rc MN_OK with missing set: a stand-in answered for the space (the
     * gossiped semantic memories, MN_QUERY_MISSING_PARTITION): its hits are merged, but the
     * space is listed as missing with that reason and counts as not reached */
    const char *missing;
    /* rc not MN_OK: why this node's gossiped semantic memories of the space, which it holds,
     * did not stand in for it, one of MN_QUERY_NO_STAND_IN_* (static); NULL: none held, or no
     * stand-in was asked */
    const char *no_stand_in;
} mn_query_answer_t;

/* Runs the recall req over spaces[0 .. n) (all of one holder; n <= its batch_max) and fills
 * out[i] for spaces[i] (out zeroed). Runs on a pool thread; req, the names and caller (the
 * run's caller bytes, mn_query_run_opts_t; NULL when none) live until it returns. Should
 * return by deadline_ns (mn_time_mono_ns) when it can wait on anything (a remote executor
 * must: its answer is dropped after that anyway); a local recall cannot be interrupted and
 * simply runs. */
typedef void (*mn_query_exec_fn)(void *arg, const char *const *spaces, size_t n,
                                 const mn_recall_req_t *req, const void *caller,
                                 int64_t deadline_ns, mn_query_answer_t *out);

typedef struct mn_query_holder {
    const char *name; /* "local", or a node's name (logs); copied */
    mn_query_exec_fn exec;
    void *arg;
    uint32_t batch_max; /* spaces per exec call: 1 = each space its own job (local) */
} mn_query_holder_t;

/* Which holder (an index into mn_query_opts_t.holders) answers for space. */
typedef uint32_t (*mn_query_locate_fn)(void *arg, const char *space);

typedef struct mn_query_opts {
    uint32_t threads;                 /* the pool; 0 = MN_QUERY_THREADS_DEFAULT */
    /* with more than one holder, the other holders' jobs run on a pool of their own of this
     * many threads (0 = threads), so waiting on other nodes never starves this node's
     * spaces */
    uint32_t remote_threads;
    const mn_query_holder_t *holders; /* copied; at least one; [0] is this node */
    size_t n_holders;
    mn_query_locate_fn locate; /* NULL: every space on holders[0] */
    void *locate_arg;
} mn_query_opts_t;

typedef struct mn_query mn_query_t;
mn_err mn_query_new(const mn_query_opts_t *o, mn_query_t **out, mn_error *err);
/* Stops the pool: jobs still queued are dropped, running ones finish first. Call it after
 * every mn_query_run returned, and before what the executors use (the engine) goes away. */
void mn_query_free(mn_query_t *q);

/* ---- running (query_run.c) and merging (query_merge.c) ---- */

/* Why a space is missing from an answer. */
#define MN_QUERY_MISSING_TIMEOUT "timeout"         /* no answer by the deadline */
#define MN_QUERY_MISSING_UNAVAILABLE "unavailable" /* its holder could not be reached */
#define MN_QUERY_MISSING_NOT_FOUND "not_found"     /* dropped after the plan was made */
#define MN_QUERY_MISSING_ERROR "error"             /* it failed (the log says how) */
#define MN_QUERY_MISSING_NOT_HELD "not_held"       /* the node asked does not hold it (moved) */
#define MN_QUERY_MISSING_PARTITION "partition" /* no copy answered; gossip stood in (issue 18) */
#define MN_QUERY_MISSING_SUSPECT "suspect"     /* every copy on a node SWIM suspects: not asked */

/* Why gossip did not stand in for a missing space although this node holds its semantic
 * memories. */
#define MN_QUERY_NO_STAND_IN_AS_OF "as_of" /* the request reads as of a time: no history kept */

typedef struct mn_query_missing {
    uint32_t space;          /* index into the run's spaces */
    const char *reason;      /* one of MN_QUERY_MISSING_* (static) */
    const char *no_stand_in; /* the answer's no_stand_in (static), or NULL */
} mn_query_missing_t;

typedef struct mn_query_result {
    mn_recall_hit_t *hits; /* merged, best first: real before stand-ins, score desc, id asc */
    uint32_t *hit_space;   /* hits[i] came from spaces[hit_space[i]] */
    size_t n_hits;
    mn_query_missing_t *missing; /* in the order of spaces */
    size_t n_missing;
    float reachable;         /* r: the share of the data answered (mn_query_reachable) */
    float recall_confidence; /* the best merged hit's confidence, after the factor; 0 if none */
    uint64_t scanned;        /* candidates examined, summed over the answered spaces */
    /* the time window the text named, as the first answered space read it */
    mn_recall_result_t window;
} mn_query_result_t;
void mn_query_result_clear(mn_query_result_t *r);

/* Runs req over spaces[0 .. n) (a plan's), with weights[i] the amount of data spaces[i] holds
 * (its live memories; a negative weight is unknown and counts as the mean of the known ones;
 * NULL: every space weighs 1), for at most timeout_ms (1..MN_QUERY_TIMEOUT_MS_MAX). req is
 * copied: it may go away when this returns, even while a late job still runs. A space that
 * answers MN_ERR_INVALID (a cue that does not fit it: a wrong dimension) fails the whole run
 * with that error, its message prefixed by "space <name>: ". */
mn_err mn_query_run(mn_query_t *q, const char *const *spaces, const double *weights, size_t n,
                    const mn_recall_req_t *req, int64_t timeout_ms, mn_query_result_t *out,
                    mn_error *err);

/* mn_query_run with more options. */
typedef struct mn_query_run_opts {
    const double *weights; /* as mn_query_run's */
    int64_t timeout_ms;    /* as mn_query_run's */
    const void *caller;    /* bytes copied for the run and handed to every executor (the
                            * key's grant and read preference of cluster mode), or NULL */
    size_t caller_len;
    /* leave every confidence as its space gave it (no factor, no missing_partition): a node
     * answering its part of another node's run, where the origin applies the factor once */
    bool no_penalty;
} mn_query_run_opts_t;
mn_err mn_query_run_ex(mn_query_t *q, const char *const *spaces, size_t n,
                       const mn_recall_req_t *req, const mn_query_run_opts_t *o,
                       mn_query_result_t *out, mn_error *err);

/* r, the reachable share: the answered spaces' weight over the total (1 when the total is 0).
 * weights as mn_query_run's; answered[i] says whether space i answered. */
float mn_query_reachable(const double *weights, const bool *answered, size_t n);
/* The factor every confidence of a run is multiplied by: 0.5 + 0.5 r (docs/recall.md §11). */
float mn_query_missing_factor(float reachable);
/* Lowers c by mn_query_missing_factor(reachable), adds MN_REASON_MISSING_PARTITION and sets its
 * category again. */
void mn_query_confidence_missing(mn_confidence_t *c, float reachable);

/* Merges the answers of n spaces into out (hits, hit_space, n_hits): every hit of every
 * answer with rc MN_OK, the spaces' own answers first and the stand-ins' (an answer with
 * missing set) after every one of them, each group by score descending, ties by id
 * ascending, then by space index; a memory id seen again is dropped; at most k kept. The
 * hits move out of the answers (their res is left empty); the hits not kept are freed. */
mn_err mn_query_merge(mn_query_answer_t *answers, size_t n, uint32_t k, mn_query_result_t *out,
                      mn_error *err);

#endif
