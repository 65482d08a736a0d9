/* Input validation for memories and filters. Every check names the field so a
 * client (often an LLM agent) can correct its request. Runs on the caller's
 * thread before anything reaches the commit queue. */
#include "validate.h"

#include "filter_expr.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define PFX_MAX 32

static void prefix(char *buf, size_t len, size_t index)
{
    if (index == SIZE_MAX)
        buf[0] = '\0';
    else
        snprintf(buf, len, "memories[%zu].", index);
}

static mn_err check_str(const char *s, size_t max, const char *pfx, const char *field,
                        mn_error *err)
{
    size_t n = strlen(s);
    if (n > max)
        return mn_error_set(err, MN_ERR_INVALID, "%s%s: longer than %zu bytes", pfx, field, max);
    if (!mn_utf8_valid(s, n))
        return mn_error_set(err, MN_ERR_INVALID, "%s%s: not valid UTF-8", pfx, field);
    return MN_OK;
}

mn_err mn__validate_memory(const mn__space *sp, const mn_memory_t *m, size_t index, mn_error *err)
{
    char pfx[PFX_MAX];
    prefix(pfx, sizeof pfx, index);
    if (!m->content) return mn_error_set(err, MN_ERR_INVALID, "%scontent: required", pfx);
    if (m->content_len > MN_CONTENT_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "%scontent: %zu bytes, the limit is %d", pfx,
                            m->content_len, MN_CONTENT_MAX);
    if (memchr(m->content, '\0', m->content_len))
        return mn_error_set(err, MN_ERR_INVALID, "%scontent: contains a NUL character", pfx);
    if (!mn_utf8_valid(m->content, m->content_len))
        return mn_error_set(err, MN_ERR_INVALID, "%scontent: not valid UTF-8", pfx);
    if (!m->embedding) {
        /* a text-only memory: found by keyword recall, skipped by vector recall */
        if (m->content_len == 0)
            return mn_error_set(err, MN_ERR_INVALID, "%sembedding: required when content is empty",
                                pfx);
    } else if (m->dim != sp->def.dim)
        return mn_error_set(err, MN_ERR_INVALID, "%sembedding: expected %u values, got %u", pfx,
                            sp->def.dim, m->dim);
    double norm = 0;
    for (uint32_t i = 0; m->embedding && i < m->dim; i++) {
        if (!isfinite(m->embedding[i]))
            return mn_error_set(err, MN_ERR_INVALID, "%sembedding[%u]: not a finite float32", pfx,
                                i);
        norm += (double)m->embedding[i] * m->embedding[i];
    }
    if (m->embedding && sp->def.metric == MN_METRIC_COSINE && !(norm > 0))
        return mn_error_set(err, MN_ERR_INVALID,
                            "%sembedding: the zero vector has no direction (cosine space)", pfx);
    if (m->kind != MN_KIND_EPISODIC && m->kind != MN_KIND_SEMANTIC)
        return mn_error_set(err, MN_ERR_INVALID, "%skind: must be episodic or semantic", pfx);
    if (!(m->confidence >= 0 && m->confidence <= 1))
        return mn_error_set(err, MN_ERR_INVALID, "%sconfidence: must be in [0, 1]", pfx);
    if (!(m->importance >= 0 && m->importance <= 1))
        return mn_error_set(err, MN_ERR_INVALID, "%simportance: must be in [0, 1]", pfx);
    if (!(m->emotional_valence >= -1 && m->emotional_valence <= 1))
        return mn_error_set(err, MN_ERR_INVALID, "%semotional_valence: must be in [-1, 1]", pfx);
    if (m->lifecycle > MN_LIFECYCLE_PERSISTENT)
        return mn_error_set(err, MN_ERR_INVALID, "%slifecycle: unknown class", pfx);
    if (m->ttl_seconds > (int64_t)100 * 365 * 86400)
        return mn_error_set(err, MN_ERR_INVALID, "%sttl_seconds: more than 100 years", pfx);
    if (m->when_ms != MN_TIME_UNSET &&
        (m->when_ms < -62135596800000LL || m->when_ms > 253402300799999LL))
        return mn_error_set(err, MN_ERR_INVALID, "%swhen: outside years 0001..9999", pfx);
    if (m->n_who > MN_WHO_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "%scontext.who: more than %d entries", pfx,
                            MN_WHO_MAX);
    mn_err rc;
    for (size_t i = 0; i < m->n_who; i++)
        if ((rc = check_str(m->who[i], MN_TAG_LEN_MAX, pfx, "context.who", err))) return rc;
    if (m->where && (rc = check_str(m->where, MN_METADATA_VALUE_MAX, pfx, "context.where", err)))
        return rc;
    if (m->session &&
        (rc = check_str(m->session, MN_METADATA_VALUE_MAX, pfx, "context.session", err)))
        return rc;
    if (m->n_tags > MN_TAGS_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "%stags: more than %d tags", pfx, MN_TAGS_MAX);
    for (size_t i = 0; i < m->n_tags; i++) {
        if ((rc = check_str(m->tags[i], MN_TAG_LEN_MAX, pfx, "tags", err))) return rc;
        if (!m->tags[i][0]) return mn_error_set(err, MN_ERR_INVALID, "%stags: empty tag", pfx);
    }
    if (m->n_metadata > MN_METADATA_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "%smetadata: more than %d keys", pfx,
                            MN_METADATA_MAX);
    for (size_t i = 0; i < m->n_metadata; i++) {
        if ((rc = check_str(m->metadata[i].key, MN_METADATA_KEY_MAX, pfx, "metadata key", err)))
            return rc;
        if ((rc = check_str(m->metadata[i].value, MN_METADATA_VALUE_MAX, pfx, "metadata value",
                            err)))
            return rc;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(m->metadata[i].key, m->metadata[j].key))
                return mn_error_set(err, MN_ERR_INVALID, "%smetadata: duplicate key \"%.64s\"", pfx,
                                    m->metadata[i].key);
    }
    if (m->idempotency_key) {
        if (!m->idempotency_key[0])
            return mn_error_set(err, MN_ERR_INVALID, "%sidempotency_key: empty", pfx);
        if ((rc = check_str(m->idempotency_key, MN_IDEMPOTENCY_KEY_MAX, pfx, "idempotency_key",
                            err)))
            return rc;
    }
    return MN_OK;
}

mn_err mn__validate_filter(const mn_filter_t *f, mn_error *err)
{
    if (f->kind != -1 && f->kind != MN_KIND_EPISODIC && f->kind != MN_KIND_SEMANTIC)
        return mn_error_set(err, MN_ERR_INVALID, "kind: must be episodic or semantic");
    if (!(f->min_confidence >= 0 && f->min_confidence <= 1))
        return mn_error_set(err, MN_ERR_INVALID, "min_confidence: must be in [0, 1]");
    if (f->when_from_ms != MN_TIME_UNSET && f->when_to_ms != MN_TIME_UNSET &&
        f->when_from_ms > f->when_to_ms)
        return mn_error_set(err, MN_ERR_INVALID, "when: from is after to");
    if (f->n_tags_any > MN_TAGS_MAX || f->n_tags_all > MN_TAGS_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "tags filter: more than %d tags", MN_TAGS_MAX);
    if (f->n_metadata > MN_METADATA_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "metadata filter: more than %d keys",
                            MN_METADATA_MAX);
    return mn__filter_expr_check(f->expr, f->n_expr, err);
}

mn_err mn__validate_consolidate_opts(const mn_consolidate_opts_t *o, mn_error *err)
{
    if (!o) return MN_OK;
    if (!(o->threshold >= 0 && o->threshold <= 1)) /* NaN fails too */
        return mn_error_set(err, MN_ERR_INVALID, "threshold: must be in 0..1 (0 = default)");
    if (o->min_support > MN_CONSOLIDATE_MIN_SUPPORT_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "min_support: must be in 0..%u (0 = default)",
                            MN_CONSOLIDATE_MIN_SUPPORT_MAX);
    if (!o->filter) return MN_OK;
    if (o->filter->as_of_ms != MN_TIME_UNSET)
        return mn_error_set(err, MN_ERR_INVALID,
                            "filter.as_of: consolidation works on the space as it is now");
    return mn__validate_filter(o->filter, err);
}
