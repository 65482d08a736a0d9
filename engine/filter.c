/* Filters on a space's slots, and the as-of rules.
 *
 * As-of reads (issue 4): a view of the space as it was at as_of. A memory is in
 * it when it was created by then (created_at, which for a semantic memory is
 * what consolidation says) and was not forgotten by then. Suppression is
 * judged at as_of from the times of the latest suppress and unsuppress. A
 * memory deleted or expired after as_of was there, but its content is erased:
 * it is never ranked, and list shows it as a redacted entry (list.c). Expiry
 * counts against the real now even in an as-of view, for the same reason.
 *
 * Versions (issue 20): a corrected memory keeps its superseded versions as slots. A view
 * of now sees only the current version; an as-of view sees the version that was current
 * at as_of: valid from valid_from (created_at for a first version) until valid_to.
 *
 * A memory outside any space (a gossiped semantic memory a partition answer ranks,
 * api/cluster_gossip_store.c) is judged by the same rules through its slot view
 * (mn_engine_filter_match), so a stand-in passes exactly what the space's recall would. */
#include "filter.h"

#include "filter_expr.h"

#include <string.h>

#include "mnemo/assert.h"
#include "mnemo/engine.h"

static bool has_tag(const mn__slot *s, const char *t)
{
    for (uint32_t i = 0; i < s->n_tags; i++)
        if (!strcmp(s->tags[i], t)) return true;
    return false;
}

bool mn__filter_suppressed_at(bool suppressed_now, int64_t suppressed_at_ms,
                              int64_t unsuppressed_at_ms, int64_t t_ms)
{
    if (suppressed_now) return suppressed_at_ms <= t_ms;
    return suppressed_at_ms && unsuppressed_at_ms && suppressed_at_ms <= t_ms &&
           t_ms < unsuppressed_at_ms;
}

bool mn__filter_version_current(const mn__slot *s, int64_t as_of_ms)
{
    if (as_of_ms == MN_TIME_UNSET) return !s->superseded;
    if (s->valid_from_ms > as_of_ms) return false;
    return !s->superseded || as_of_ms < s->valid_to_ms;
}

bool mn__filter_match(const mn__slot *s, const mn_filter_t *f, int64_t now_ms)
{
    if (s->state != SLOT_LIVE) return false;
    if (!mn__filter_version_current(s, f->as_of_ms)) return false;
    if (s->expires_at_ms && s->expires_at_ms <= now_ms) return false;
    bool suppressed = s->suppressed;
    if (f->as_of_ms != MN_TIME_UNSET) {
        if (s->created_at_ms > f->as_of_ms) return false;
        suppressed = mn__filter_suppressed_at(s->suppressed, s->suppressed_at_ms,
                                              s->unsuppressed_at_ms, f->as_of_ms);
    }
    if (suppressed && !f->include_suppressed) return false;
    if (f->kind >= 0 && s->kind != f->kind) return false;
    if (f->when_from_ms != MN_TIME_UNSET && s->when_ms < f->when_from_ms) return false;
    if (f->when_to_ms != MN_TIME_UNSET && s->when_ms >= f->when_to_ms) return false;
    if (s->confidence < f->min_confidence) return false;
    if (f->n_tags_any) {
        bool any = false;
        for (size_t i = 0; i < f->n_tags_any && !any; i++)
            any = has_tag(s, f->tags_any[i]);
        if (!any) return false;
    }
    for (size_t i = 0; i < f->n_tags_all; i++)
        if (!has_tag(s, f->tags_all[i])) return false;
    if (f->where && (!s->where || strcmp(s->where, f->where))) return false;
    if (f->session && (!s->session || strcmp(s->session, f->session))) return false;
    if (f->who) {
        bool any = false;
        for (uint32_t i = 0; i < s->n_who && !any; i++)
            any = !strcmp(s->who[i], f->who);
        if (!any) return false;
    }
    for (size_t i = 0; i < f->n_metadata; i++) {
        bool ok = false;
        for (uint32_t j = 0; j < s->n_metadata && !ok; j++)
            ok = !strcmp(s->metadata[j].key, f->metadata[i].key) &&
                 !strcmp(s->metadata[j].value, f->metadata[i].value);
        if (!ok) return false;
    }
    return !f->n_expr || mn__filter_expr_match(f->expr, f->n_expr, s);
}

mn__slot mn__filter_slot_of(const mn_memory_t *m)
{
    return (mn__slot){.id = m->id,
                      .state = SLOT_LIVE,
                      .kind = (uint8_t)m->kind,
                      .suppressed = m->suppressed,
                      .lifecycle = (uint8_t)m->lifecycle,
                      .superseded = m->superseded,
                      .valid_from_ms = m->valid_from_ms,
                      .valid_to_ms = m->valid_to_ms,
                      .suppressed_at_ms = m->suppressed_at_ms,
                      .unsuppressed_at_ms = m->unsuppressed_at_ms,
                      .confidence = m->confidence,
                      .when_ms = m->when_ms,
                      .created_at_ms = m->created_at_ms,
                      .expires_at_ms = m->expires_at_ms,
                      .tags = m->tags,
                      .n_tags = (uint32_t)m->n_tags,
                      .who = m->who,
                      .n_who = (uint32_t)m->n_who,
                      .where = m->where,
                      .session = m->session,
                      .metadata = m->metadata,
                      .n_metadata = (uint32_t)m->n_metadata,
                      .importance = m->importance};
}

bool mn_engine_filter_match(const mn_filter_t *f, const mn_memory_t *m, int64_t now_ms)
{
    /* m has no history: an as-of view of it cannot be told (the caller refuses as_of) */
    mn_assert(f->as_of_ms == MN_TIME_UNSET);
    const mn__slot s = mn__filter_slot_of(m);
    return mn__filter_match(&s, f, now_ms);
}

bool mn__filter_match_gone(uint8_t kind, int64_t when_ms, int64_t created_at_ms, int64_t gone_at_ms,
                           const mn_filter_t *f)
{
    if (f->as_of_ms == MN_TIME_UNSET) return false;
    if (created_at_ms > f->as_of_ms || gone_at_ms <= f->as_of_ms) return false;
    if (f->kind >= 0 && kind != f->kind) return false;
    if (f->when_from_ms != MN_TIME_UNSET && when_ms < f->when_from_ms) return false;
    if (f->when_to_ms != MN_TIME_UNSET && when_ms >= f->when_to_ms) return false;
    /* the rest of the memory is erased: a filter on it cannot be answered */
    if (f->n_tags_any || f->n_tags_all || f->n_metadata || f->who || f->where || f->session ||
        f->min_confidence > 0)
        return false;
    if (!f->n_expr) return true;
    const uint32_t kept = 1u << MN_FILTER_FIELD_KIND | 1u << MN_FILTER_FIELD_WHEN |
                          1u << MN_FILTER_FIELD_CREATED_AT;
    if (mn__filter_expr_fields(f->expr, f->n_expr) & ~kept) return false;
    mn__slot what_is_left = {.kind = kind, .when_ms = when_ms, .created_at_ms = created_at_ms};
    return mn__filter_expr_match(f->expr, f->n_expr, &what_is_left);
}

mn_err mn__filter_check_as_of(const mn_filter_t *f, int64_t now_ms, int64_t max_age_ms,
                              mn_error *err)
{
    if (f->as_of_ms == MN_TIME_UNSET) return MN_OK;
    if (f->as_of_ms > now_ms) return mn_error_set(err, MN_ERR_INVALID, "as_of: in the future");
    if (now_ms - f->as_of_ms > max_age_ms)
        return mn_error_set(
            err, MN_ERR_INVALID,
            "as_of: older than the %lld s this server keeps (engine.as_of_max_age_s)",
            (long long)(max_age_ms / 1000));
    return MN_OK;
}
