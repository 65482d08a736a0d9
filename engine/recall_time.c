/* Time in a recall cue: the window the text names (text/when.c), reported to
 * the caller, then used as a boost of the words' ranking (the default of the
 * doors) or as a filter. Measured on REALTALK (docs/recall.md §9): for the
 * questions that name a day, boosting the memories told within a day of it
 * (recall@10 0.42 -> 0.68) beats keeping only them (0.61), which drops the
 * evidence told just outside. */
#include "recall_time.h"

#include "filter.h"
#include "mnemo/assert.h"
#include "validate.h"
#include "text/when.h"

#include <stdlib.h>
#include <string.h>

const char *mn_recall_time_name(mn_recall_time_t t)
{
    switch (t) {
    case MN_RECALL_TIME_OFF:
        return "off";
    case MN_RECALL_TIME_BOOST:
        return "boost";
    case MN_RECALL_TIME_FILTER:
        return "filter";
    }
    return "off";
}

mn_err mn_recall_time_parse(const char *s, mn_recall_time_t *out)
{
    if (!strcmp(s, "off"))
        *out = MN_RECALL_TIME_OFF;
    else if (!strcmp(s, "boost"))
        *out = MN_RECALL_TIME_BOOST;
    else if (!strcmp(s, "filter"))
        *out = MN_RECALL_TIME_FILTER;
    else
        return MN_ERR_INVALID;
    return MN_OK;
}

static int64_t widen(int64_t t, int64_t by)
{
    if (by < 0) return t < INT64_MIN - by ? INT64_MIN : t + by;
    return t > INT64_MAX - by ? INT64_MAX : t + by;
}

mn_err mn__recall_time_plan(const mn_recall_req_t *req, int64_t now_ms, mn_recall_req_t *treq,
                            mn__time_plan *tp, mn_recall_result_t *out, mn_error *err)
{
    *treq = *req;
    memset(tp, 0, sizeof *tp);
    if (req->time != MN_RECALL_TIME_OFF && req->time != MN_RECALL_TIME_BOOST &&
        req->time != MN_RECALL_TIME_FILTER)
        return mn_error_set(err, MN_ERR_INVALID, "time: must be off, boost or filter");
    tp->factor = req->time_boost > 0 ? req->time_boost : MN_RECALL_TIME_BOOST_DEFAULT;
    if (!(req->time_boost == 0 ||
          (req->time_boost >= 1 && req->time_boost <= MN_RECALL_TIME_BOOST_MAX)))
        return mn_error_set(err, MN_ERR_INVALID, "time_boost: must be in 1..%g",
                            (double)MN_RECALL_TIME_BOOST_MAX);
    if (req->time == MN_RECALL_TIME_OFF || !req->text) return MN_OK;
    int64_t ref = req->has_time_ref                       ? req->time_ref_ms
                  : req->filter.as_of_ms != MN_TIME_UNSET ? req->filter.as_of_ms
                                                          : now_ms;
    mn_text_when_t w;
    if (!mn_text_when_find(req->text, req->text_len, ref, &w)) return MN_OK;
    mn_assert(w.start + w.len <= req->text_len);
    out->has_time_window = true;
    out->time_window.has_from = w.has_from;
    out->time_window.has_to = w.has_to;
    out->time_window.from_ms = w.from_ms;
    out->time_window.to_ms = w.to_ms;
    size_t n = w.len;
    if (n > MN_RECALL_TIME_TEXT_MAX) { /* cut at a character boundary */
        n = MN_RECALL_TIME_TEXT_MAX;
        while (n && ((unsigned char)req->text[w.start + n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out->time_window.text, req->text + w.start, n);
    out->time_window.text[n] = 0;
    out->time_window.unit = mn_text_when_unit_name(w.unit);
    /* Not used (measured, docs/recall.md §9): a year names when an event
     * happened, not when it was told; an open range ("before May 5") covers
     * most of a conversation and only moved evidence out of the top k. */
    if (w.unit == MN_TEXT_WHEN_YEAR || !w.has_from || !w.has_to) {
        out->time_window.applied = "none";
        return MN_OK;
    }
    out->time_window.applied = mn_recall_time_name(req->time);
    tp->from_ms = widen(w.from_ms, -MN_RECALL_TIME_MARGIN_MS);
    tp->to_ms = widen(w.to_ms, MN_RECALL_TIME_MARGIN_MS);
    if (req->time == MN_RECALL_TIME_BOOST) {
        tp->boost = true;
        return MN_OK;
    }
    /* filter: the window meets the request's own `when` range */
    mn_filter_t *f = &treq->filter;
    if (f->when_from_ms == MN_TIME_UNSET || f->when_from_ms < tp->from_ms)
        f->when_from_ms = tp->from_ms;
    if (f->when_to_ms == MN_TIME_UNSET || f->when_to_ms > tp->to_ms) f->when_to_ms = tp->to_ms;
    return MN_OK;
}

mn_err mn_engine_recall_filter(const mn_recall_req_t *req, int64_t now_ms, mn_filter_t *f,
                               mn_recall_result_t *out, mn_error *err)
{
    mn_err rc = mn__validate_filter(&req->filter, err);
    if (rc) return rc;
    if (req->text && (req->text_len > MN_CONTENT_MAX || !mn_utf8_valid(req->text, req->text_len)))
        return mn_error_set(err, MN_ERR_INVALID, "text: not valid UTF-8 or longer than %d bytes",
                            MN_CONTENT_MAX);
    mn_recall_req_t treq;
    mn__time_plan tp;
    if ((rc = mn__recall_time_plan(req, now_ms, &treq, &tp, out, err))) return rc;
    *f = treq.filter; /* narrowed to the text's window under FILTER; a boost ranks, not filters */
    return MN_OK;
}

static bool in_window(const mn__time_plan *tp, int64_t when_ms)
{
    return when_ms >= tp->from_ms && when_ms < tp->to_ms;
}

typedef struct win_arg {
    const mn__space *sp;
    const mn_filter_t *f;
    const mn__time_plan *tp;
    int64_t now;
} win_arg;

static bool accept_in_window(void *arg, uint32_t slot)
{
    const win_arg *a = arg;
    if (slot >= a->sp->n_slots) return false;
    const mn__slot *s = &a->sp->slots[slot];
    return in_window(a->tp, s->when_ms) && mn__filter_match(s, a->f, a->now);
}

/* Best first: score, then slot (as the keyword index orders its hits). */
static int hit_best_first(const void *a, const void *b)
{
    const mn_kw_hit_t *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

size_t mn__recall_time_boost(const mn__space *sp, const mn__time_plan *tp,
                             const mn_recall_req_t *req, int64_t now_ms, mn_kw_hit_t *th, size_t nt,
                             size_t cap, uint64_t *scanned)
{
    mn_assert(nt <= cap && cap <= MN_K_MAX);
    if (!tp->boost || !cap) return nt;
    mn_kw_hit_t win[MN_K_MAX], all[2 * MN_K_MAX];
    win_arg wa = {sp, &req->filter, tp, now_ms};
    size_t nw = mn_kw_search(sp->kw, req->text, req->text_len, accept_in_window, &wa, cap, win);
    *scanned += nw;
    /* an in-window hit of the first ranking is among the window's own best
     * (the same order restricted), so it is taken from there, boosted */
    size_t n = 0;
    for (size_t i = 0; i < nt; i++)
        if (!in_window(tp, sp->slots[th[i].slot].when_ms)) all[n++] = th[i];
    for (size_t i = 0; i < nw; i++) {
        all[n] = win[i];
        all[n++].score *= tp->factor;
    }
    qsort(all, n, sizeof *all, hit_best_first);
    if (n > cap) n = cap;
    memcpy(th, all, n * sizeof *th);
    return n;
}
