/* The hedge budget of the query channel's origin (docs/recall.md, "Hedge budget"): a token
 * bucket in the manner of gRPC's retry throttling (gRFC A6, "Retry Throttling": successes
 * add a fraction of a token, retries cost one, retries stop while the bucket is low). Here
 * every first send adds percent/100 of a token and a hedge takes a whole one, so over any
 * stretch of traffic hedges stay near percent % of first sends (Dean & Barroso, "The Tail
 * at Scale", CACM 2013: hedging after the p95 costs about 5 % more requests); time adds
 * CLQ_BUDGET_FLOOR_PER_S so that a quiet node may still hedge, and the bucket holds at most
 * CLQ_BUDGET_BURST (the window it remembers). A pure leaf: the caller passes the clock and
 * holds the lock (tests/unit/test_cluster_query_budget.c).
 *
 * Invariant (mn_assert where tokens change): 0 <= tokens <= CLQ_BUDGET_BURST. */
#include "cluster_query_internal.h"

#include "mnemo/assert.h"

static void refill(clq_budget *b, int64_t now_ns)
{
    if (now_ns > b->at_ns) {
        b->tokens += (double)(now_ns - b->at_ns) * b->floor_per_ns;
        b->at_ns = now_ns;
    }
    if (b->tokens > CLQ_BUDGET_BURST) b->tokens = CLQ_BUDGET_BURST;
    mn_assert(b->tokens >= 0.0 && b->tokens <= CLQ_BUDGET_BURST);
}

void clq_budget_init(clq_budget *b, int64_t percent, int64_t now_ns)
{
    mn_assert(percent >= 0 && percent <= 100);
    bool on = percent > 0; /* 0: no hedge at all, the floor included */
    *b = (clq_budget){.tokens = on ? CLQ_BUDGET_BURST : 0.0,
                      .per_send = (double)percent / 100.0,
                      .floor_per_ns = on ? CLQ_BUDGET_FLOOR_PER_S / 1e9 : 0.0,
                      .at_ns = now_ns};
}

void clq_budget_sent(clq_budget *b, int64_t now_ns)
{
    refill(b, now_ns);
    b->tokens += b->per_send;
    if (b->tokens > CLQ_BUDGET_BURST) b->tokens = CLQ_BUDGET_BURST;
    mn_assert(b->tokens >= 0.0 && b->tokens <= CLQ_BUDGET_BURST);
}

bool clq_budget_take(clq_budget *b, int64_t now_ns)
{
    refill(b, now_ns);
    if (b->tokens < 1.0) return false;
    b->tokens -= 1.0;
    mn_assert(b->tokens >= 0.0);
    return true;
}
