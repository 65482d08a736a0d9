/* Vectors that arrive after their memory: the engine's side of the embedding
 * provider (api/embed). A memory remembered with words only is found by its
 * words at once; the provider computes its vector later, off the
 * acknowledgement path, and mn_engine_embed writes it as an embed WAL entry
 * (apply.c: apply_embed), so replicas and restarts see it. From then on the
 * memory is ranked by vector, indexed by the HNSW thread and linked by the
 * background linker exactly as if it had come with the vector.
 *
 * mn_engine_unembedded is the backfill's scan: the live memories still
 * without a vector, so none is left without one once the provider answers. */
#include "background.h"
#include "commit.h"
#include "engine_internal.h"
#include "replica.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

mn_err mn_engine_embed(mn_engine_t *e, const char *space, const mn_id_t *ids,
                       const float *const *vecs, uint32_t dim, size_t n, mn_err *rcs, mn_error *err)
{
    if (n == 0) return MN_OK;
    if (n > MN_BATCH_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "embed: %zu in one call, the limit is %d", n,
                            MN_BATCH_MAX);
    mn__space *sp = space ? mn__registry_acquire(&e->reg, space) : NULL;
    if (!sp)
        return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", space ? space : "");
    mn_err rc = mn__space_writable(sp, err);
    if (!rc && dim != sp->def.dim)
        rc = mn_error_set(err, MN_ERR_INVALID, "embedding: expected %u values, got %u", sp->def.dim,
                          dim);
    mn__pending *ps = NULL, **pp = NULL;
    if (!rc && (!(ps = calloc(n, sizeof *ps)) || !(pp = calloc(n, sizeof *pp))))
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    size_t m = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        /* the checks of a remembered embedding (validate.c): finite, and a
         * direction in a cosine space */
        double norm = 0;
        bool finite = true;
        for (uint32_t j = 0; j < dim; j++) {
            finite = finite && isfinite(vecs[i][j]);
            norm += (double)vecs[i][j] * vecs[i][j];
        }
        if (!finite) {
            rcs[i] = MN_ERR_INVALID;
            continue;
        }
        if (sp->def.metric == MN_METRIC_COSINE && !(norm > 0)) {
            rcs[i] = MN_ERR_INVALID;
            continue;
        }
        /* derived data, without fsync: a crash loses at most vectors, which
         * the backfill computes again */
        mn__pending_init(&ps[i], MN_WAL_OP_EMBED, sp, false);
        ps[i].entry.op.embed.id = ids[i];
        ps[i].entry.op.embed.embedding = (float *)vecs[i];
        ps[i].entry.op.embed.dim = dim;
        pp[m++] = &ps[i];
        rcs[i] = MN_ERR_INTERNAL; /* until committed */
    }
    if (!rc && m) {
        mn__commit_submit_many(e, pp, m);
        mn_id_t *linked = malloc(m * sizeof *linked);
        size_t nl = 0;
        for (size_t i = 0; i < n; i++) {
            if (ps[i].entry.type != MN_WAL_OP_EMBED) continue; /* refused above */
            rcs[i] = ps[i].rc;
            if (!ps[i].rc && linked) linked[nl++] = ids[i];
        }
        /* semantic links, as for a memory that came with its vector */
        if (nl) mn__linker_enqueue(e, sp, linked, nl);
        free(linked);
    }
    free(pp);
    free(ps);
    mn__space_unref(sp);
    return rc;
}

mn_err mn_engine_unembedded(mn_engine_t *e, const char *space, uint32_t *cursor, size_t max,
                            mn_id_t *out, size_t *n, mn_error *err)
{
    *n = 0;
    mn__space *sp = space ? mn__registry_acquire(&e->reg, space) : NULL;
    if (!sp)
        return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", space ? space : "");
    /* a replica's vectors come from its primary's embed entries: no backfill here */
    if (mn__space_writable(sp, err)) {
        mn__space_unref(sp);
        return MN_ERR_UNAVAILABLE;
    }
    pthread_rwlock_rdlock(&sp->lock);
    uint32_t s = *cursor;
    for (; s < sp->n_slots && *n < max; s++) {
        const mn__slot *sl = &sp->slots[s];
        if (sl->state == SLOT_LIVE && !sl->has_vec) out[(*n)++] = sl->id;
    }
    *cursor = s < sp->n_slots ? s : UINT32_MAX;
    pthread_rwlock_unlock(&sp->lock);
    mn__space_unref(sp);
    return MN_OK;
}
