/* The state the origin (cluster_query.c) and the serving side (cluster_query_serve.c) of the
 * query channel share. Private to api/cluster_query*.c.
 *
 * Invariants (mn_assert where they change): n_flights counts the list flights and stays at
 * most CLQ_FLIGHTS_MAX; inbox_bytes is the sum of the frames queued in the flights' inboxes
 * and stays at most CLQ_INBOX_MAX; sq_n counts the serve queue and stays at most
 * CLQ_SERVE_QUEUE_MAX. All under mu. */
#ifndef MN_API_CLUSTER_QUERY_INTERNAL_H
#define MN_API_CLUSTER_QUERY_INTERNAL_H

#include <pthread.h>

#include "cluster_query.h"
#include "cluster_query_wire.h"
#include "cluster_repl.h"
#include "cluster_route.h"
#include "mnemo/metrics.h"
#include "mnemo/peer.h"

#define CLQ_FLIGHTS_MAX 128       /* runs waiting on other nodes at once */
#define CLQ_INBOX_MAX (64u << 20) /* answer bytes queued for them */
#define CLQ_SERVE_THREADS 2       /* batches of other nodes run at once */
#define CLQ_SERVE_QUEUE_MAX 64    /* batches waiting for them; more are answered "busy" */
#define CLQ_NODES_MAX 64          /* nodes whose latency is kept */
#define CLQ_SAMPLES 64            /* latencies kept per node (the p95's window) */
#define CLQ_SAMPLES_MIN 8         /* fewer: hedge at CLQ_HEDGE_UNKNOWN_MS (or half the time left) */
#define CLQ_HEDGE_MEDIANS 3       /* hedge at min(p95, this many medians) */
#define CLQ_HEDGE_FLOOR_NS 1000000LL    /* ... but never before 1 ms */
#define CLQ_HEDGE_UNKNOWN_NS 50000000LL /* a node of too few samples: after 50 ms */
#define CLQ_OVERDUE_HOLD_NS 500000000LL /* an overdue node is tried last this long */
#define CLQ_BUDGET_PERCENT 10           /* cluster.hedge_budget_percent's default */
#define CLQ_BUDGET_BURST 10.0           /* hedges the budget holds at most (and at start) */
#define CLQ_BUDGET_FLOOR_PER_S 1.0      /* ... and gains a second, whatever the traffic */

/* The hedge budget (cluster_query_budget.c): a first send adds percent/100 of a token, a
 * hedge takes one, time adds CLQ_BUDGET_FLOOR_PER_S; 0 <= tokens <= CLQ_BUDGET_BURST.
 * percent 0: no token ever (no hedge). */
typedef struct clq_budget {
    double tokens, per_send, floor_per_ns;
    int64_t at_ns; /* the clock of the last refill (monotonic) */
} clq_budget;
void clq_budget_init(clq_budget *b, int64_t percent, int64_t now_ns);
/* A first send went out at now_ns. */
void clq_budget_sent(clq_budget *b, int64_t now_ns);
/* May a hedge go out at now_ns? true takes its token. */
bool clq_budget_take(clq_budget *b, int64_t now_ns);

/* The standing of a copy's node when a space is planned, best first (cluster_query_order.c). */
typedef enum {
    CLQ_COPY_OK = 0,  /* alive, answering */
    CLQ_COPY_OVERDUE, /* a frame to it went past its hedge time lately (clq_lat.overdue_ns) */
    CLQ_COPY_SUSPECT, /* SWIM suspects it */
} clq_copy;
/* Orders p's targets by st (st[t] the standing of p->targets[t]): healthy, then overdue,
 * then suspect, each group in the route's order. Returns how many are not suspect (0: every
 * copy is on a node SWIM suspects). */
int clq_order_targets(cl_route_plan_t *p, const clq_copy *st);

typedef struct clq_inbox {
    struct clq_inbox *next;
    char from[MN_PEER_NODE_MAX + 1];
    int64_t at_ns;
    size_t len;
    uint8_t data[];
} clq_inbox;

typedef struct clq_flight {
    struct clq_flight *next;
    uint64_t id;
    pthread_cond_t cv; /* CLOCK_MONOTONIC: an answer came, or closing */
    clq_inbox *in;
    clq_inbox **in_tail;
} clq_flight;

typedef struct clq_lat {
    char node[MN_PEER_NODE_MAX + 1];
    int64_t ns[CLQ_SAMPLES];
    uint32_t n, at;
    /* when a frame to the node passed its hedge time unanswered (0 = none since it last
     * answered a run): the node is tried after its spaces' other copies for
     * CLQ_OVERDUE_HOLD_NS, or until it answers a run in time; then it is tried first again
     * (and hedged as usual). An answer after its run ended does not clear it: slow is not
     * recovered. */
    int64_t overdue_ns;
} clq_lat;

typedef struct clq_job {
    struct clq_job *next;
    char from[MN_PEER_NODE_MAX + 1];
    int64_t deadline_ns;
    clq_request *req;
} clq_job;

typedef enum {
    CLQ_M_SENT = 0,         /* request frames sent */
    CLQ_M_ANSWERED,         /* answer frames taken by a waiting run */
    CLQ_M_TIMED_OUT,        /* spaces missing for want of an answer by the deadline */
    CLQ_M_HEDGED,           /* request frames sent to a second holder after the first's p95 */
    CLQ_M_SERVED,           /* batches of other nodes answered */
    CLQ_M_BUSY,             /* batches of other nodes refused: the serve queue was full */
    CLQ_M_MALFORMED,        /* frames dropped: not a query frame, or one that does not decode */
    CLQ_M_LATE,             /* answers for a run that had ended (or over the inbox bound) */
    CLQ_M_REROUTED,         /* spaces sent to another copy first: their first node was overdue */
    CLQ_M_REROUTED_SUSPECT, /* ... their first node was one SWIM suspects */
    CLQ_M_SUSPECT,          /* spaces not sent: every copy on a node SWIM suspects */
    CLQ_M_HEDGE_REFUSED,    /* hedges not sent: the budget was spent */
    CLQ_M_COUNT
} clq_metric;

struct cl_query {
    mn_api_t *api;
    struct cl_repl *repl;
    cl_spaces *cs;
    pthread_mutex_t mu;
    bool closing;
    uint64_t next_id;
    clq_flight *flights;
    size_t n_flights;
    size_t inbox_bytes;
    int active; /* remote executors running */
    pthread_cond_t idle;
    clq_lat lat[CLQ_NODES_MAX];
    size_t n_lat;
    /* serving */
    mn_query_t *local; /* this node's spaces only, for other nodes' batches */
    pthread_t threads[CLQ_SERVE_THREADS];
    size_t n_threads;
    clq_job *sq_head, **sq_tail;
    size_t sq_n;
    pthread_cond_t sq_cv;
    int64_t test_delay_ms;           /* MNEMO_TEST_QUERY_DELAY_MS */
    cl_query_partition_fn partition; /* the stand-in for spaces no copy answered, or NULL */
    clq_budget budget;               /* under mu */
    void *partition_arg;
    mn_metrics_family_t *m;
};

void clq_count(cl_query *q, clq_metric m, uint64_t n);
/* How long after sending a frame to a node to hedge it, from the node's last n (at most
 * CLQ_SAMPLES) answer latencies (docs/recall.md, "Hedging"): min(p95, CLQ_HEDGE_MEDIANS x
 * median), at least CLQ_HEDGE_FLOOR_NS; CLQ_HEDGE_UNKNOWN_NS with fewer than
 * CLQ_SAMPLES_MIN. A pure function (tests/unit/test_cluster_query_hedge.c). */
int64_t clq_hedge_wait_ns(const int64_t *lat, uint32_t n);

/* cluster_query_serve.c */
mn_err clq_serve_start(cl_query *q, mn_error *err);
/* Stops the serve threads (queued batches are dropped unanswered); mu not held. */
void clq_serve_stop(cl_query *q);
/* The frame callback of the channel (the replication thread). */
void clq_on_frame(void *arg, const char *from, const uint8_t *buf, size_t len);

#endif
