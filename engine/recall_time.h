/* Time in a recall cue (recall_time.c, docs/recall.md §9): the text's time
 * expression turned into a window, and the boost of the words' ranking toward
 * the memories whose `when` lies in it. */
#ifndef MN_ENGINE_RECALL_TIME_H
#define MN_ENGINE_RECALL_TIME_H

#include "mnemo/engine.h"
#include "space.h"
#include "text/keyword.h"

/* The widening of a window on each bounded side (the day a thing is told is
 * often the day before or after the day it names). */
#define MN_RECALL_TIME_MARGIN_MS (24LL * 3600 * 1000)

typedef struct mn__time_plan {
    bool boost;      /* re-rank the words' hits (mn__recall_time_boost) */
    int64_t from_ms; /* the widened window, [from, to) */
    int64_t to_ms;
    float factor; /* the boost */
} mn__time_plan;

/* Reads req's time fields: checks them, finds the text's time expression and
 * reports it in out->time_window; with FILTER, *treq is req with its `when`
 * filter narrowed to the window, else a copy of req. Call after req's own
 * checks (a text cue is valid UTF-8). */
mn_err mn__recall_time_plan(const mn_recall_req_t *req, int64_t now_ms, mn_recall_req_t *treq,
                            mn__time_plan *tp, mn_recall_result_t *out, mn_error *err);

/* Boosts the words' ranking th[0..nt) (best first, at most cap) of sp under
 * the read lock: the in-window memories' BM25 times the factor, exactly over
 * the whole space (a second search finds the best in-window memories the first
 * one did not reach). Returns the new count; adds the memories it examined to
 * *scanned. */
size_t mn__recall_time_boost(const mn__space *sp, const mn__time_plan *tp,
                             const mn_recall_req_t *req, int64_t now_ms, mn_kw_hit_t *th, size_t nt,
                             size_t cap, uint64_t *scanned);

#endif
