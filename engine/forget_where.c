/* Forget by filter (issue 20, part 2): a consistent selection, then chunks.
 *
 * mn_engine_forget_select snapshots the ids the filter matches in one pass over
 * the space's slots under its read lock (the filter is judged by
 * mn__filter_match, as recall and list judge it); memories written after the
 * pass are not in the snapshot, so a run never touches them.
 * mn_engine_forget_ids then forgets the snapshot a chunk at a time (MN_FORGET_CHUNK ids,
 * or with a pace as many as commit in about pace_ms, judged from the chunk before): each
 * chunk is one forget batch WAL entry (apply.c: each id as the single
 * forget it stands for), committed and fsynced as a group of its own. Between
 * chunks the commit queue takes other writers' ops and the space's lock is
 * free, so a million-memory delete is many short commits rather than one batch that
 * stalls the space: a writer that arrives during a chunk waits for that chunk only, which
 * the pace bounds in time whatever the machine's load. A chunk acknowledged is durable; a crash or
 * a stop between chunks leaves the rest of the selection untouched (a run is not resumed: run it
 * again, the filter selects what is left). */
#include "commit.h"
#include "engine_internal.h"
#include "replica.h"
#include "filter.h"
#include "mnemo/assert.h"
#include "versions.h"

#include <stdlib.h>
#include <string.h>

/* A progress line in the log every this many chunks. */
#define LOG_EVERY_CHUNKS 100

static mn_err check_mode(mn_forget_mode_t mode, mn_error *err)
{
    if (mode != MN_FORGET_DELETE && mode != MN_FORGET_SUPPRESS)
        return mn_error_set(err, MN_ERR_INVALID, "mode: must be delete or suppress");
    return MN_OK;
}

/* Appends the matching live slots' ids of sp (read lock held) to *ids; *later the bit
 * i set when slot id i may be a later version of a corrected memory (its valid_from set:
 * a first version's is 0 unless ingested so), *later NULL when none may be. */
static mn_err collect(const mn__space *sp, const mn_filter_t *f, int64_t now_ms, mn_id_t **ids,
                      size_t *n, uint8_t **later, mn_error *err)
{
    size_t cap = 0;
    for (uint32_t i = 0; i < sp->n_slots; i++) {
        if (!mn__filter_match(&sp->slots[i], f, now_ms)) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            mn_id_t *grown = realloc(*ids, cap * sizeof **ids);
            if (!grown) return mn_error_set(err, MN_ERR_NOMEM, "out of memory selecting");
            *ids = grown;
        }
        if (sp->slots[i].valid_from_ms && !*later && !(*later = calloc(sp->n_slots / 8 + 1, 1)))
            return mn_error_set(err, MN_ERR_NOMEM, "out of memory selecting");
        if (sp->slots[i].valid_from_ms) (*later)[*n / 8] |= (uint8_t)(1u << (*n % 8));
        (*ids)[(*n)++] = sp->slots[i].id;
    }
    return MN_OK;
}

/* The selection's version ids as clients name them: lineage ids (a forget of one erases
 * the whole lineage, apply.c). Store reads, outside the space's lock. */
static void to_lineages(mn_engine_t *e, const mn__space *sp, mn_id_t *ids, size_t n,
                        const uint8_t *later)
{
    for (size_t i = 0; later && i < n; i++)
        if (later[i / 8] & (1u << (i % 8)))
            ids[i] = mn__versions_lineage_of(&e->store, sp, &ids[i]);
}

mn_err mn_engine_forget_select(mn_engine_t *e, const char *space, const mn_filter_t *f,
                               mn_forget_mode_t mode, mn_id_t **ids, size_t *n, mn_error *err)
{
    *ids = NULL;
    *n = 0;
    mn_err rc = check_mode(mode, err);
    if (rc) return rc;
    if (f->as_of_ms != MN_TIME_UNSET)
        return mn_error_set(err, MN_ERR_INVALID, "as_of: a forget acts on the present");
    mn__space *sp = space ? mn__registry_acquire(&e->reg, space) : NULL;
    if (!sp)
        return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", space ? space : "");
    mn_filter_t sel = *f;
    /* a delete takes what is hidden too; a suppress has nothing to do there */
    sel.include_suppressed = mode == MN_FORGET_DELETE;
    int64_t now_ms = mn__now(e);
    uint8_t *later = NULL;
    pthread_rwlock_rdlock(&sp->lock);
    rc = collect(sp, &sel, now_ms, ids, n, &later, err);
    pthread_rwlock_unlock(&sp->lock);
    if (!rc) to_lineages(e, sp, *ids, *n, later);
    free(later);
    mn__space_unref(sp);
    if (rc) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

/* One chunk as one forget batch entry; *forgotten is how many it changed. */
static mn_err forget_chunk(mn_engine_t *e, mn__space *sp, mn_forget_mode_t mode, const mn_id_t *ids,
                           size_t n, size_t *forgotten, mn_error *err)
{
    mn_assert(n > 0 && n <= MN_WAL_FORGET_BATCH_MAX);
    *forgotten = 0;
    mn__pending p;
    mn__pending_init(&p, MN_WAL_OP_FORGET_BATCH, sp, true);
    p.entry.op.forget_batch.ids = (mn_id_t *)ids; /* borrowed: encoding only */
    p.entry.op.forget_batch.n = n;
    p.entry.op.forget_batch.mode = mode;
    p.entry.op.forget_batch.reason = MN_FORGET_REASON_CLIENT;
    p.entry.op.forget_batch.at_ms = mn__now(e);
    p.keep_accepted = true;
    mn_err rc = mn__commit_submit(e, &p);
    for (size_t i = 0; !rc && p.accepted && i < n; i++)
        *forgotten += p.accepted[i];
    free(p.accepted);
    if (rc == MN_ERR_GONE) return MN_OK; /* every one was gone by now */
    if (rc && err) *err = p.err;
    return rc;
}

/* The next chunk's size: the last one's rate (k ids in took_ns) times pace_ms, moved at
 * most by half or double per chunk (one slow fsync should not collapse it), within
 * [MN_FORGET_CHUNK_MIN, MN_FORGET_CHUNK]. */
static size_t next_chunk(size_t k, int64_t took_ns, uint32_t pace_ms)
{
    if (!pace_ms) return MN_FORGET_CHUNK;
    double want = took_ns > 0 ? (double)k * (double)pace_ms * 1e6 / (double)took_ns : 2.0 * k;
    if (want > 2.0 * k) want = 2.0 * k;
    if (want < 0.5 * k) want = 0.5 * k;
    size_t next = (size_t)want;
    if (next < MN_FORGET_CHUNK_MIN) next = MN_FORGET_CHUNK_MIN;
    if (next > MN_FORGET_CHUNK) next = MN_FORGET_CHUNK;
    return next;
}

mn_err mn_engine_forget_ids(mn_engine_t *e, const char *space, mn_forget_mode_t mode,
                            const mn_id_t *ids, size_t n, uint32_t pace_ms,
                            mn_forget_progress_fn fn, void *arg, mn_forget_progress_t *out,
                            mn_error *err)
{
    memset(out, 0, sizeof *out);
    out->total = n;
    mn_err rc = check_mode(mode, err);
    if (rc) return rc;
    mn__space *sp = space ? mn__registry_acquire(&e->reg, space) : NULL;
    if (!sp)
        return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", space ? space : "");
    if (mn__space_writable(sp, err)) {
        mn__space_unref(sp);
        return MN_ERR_UNAVAILABLE;
    }
    size_t chunk = pace_ms ? MN_FORGET_CHUNK_MIN * 2 : MN_FORGET_CHUNK; /* a pace starts low */
    while (out->done < n) {
        size_t k = n - out->done < chunk ? n - out->done : chunk;
        size_t forgotten;
        int64_t t0_ns = mn_time_mono_ns();
        if ((rc = forget_chunk(e, sp, mode, ids + out->done, k, &forgotten, err))) break;
        chunk = next_chunk(k, mn_time_mono_ns() - t0_ns, pace_ms);
        mn_assert(chunk >= 1 && chunk <= MN_FORGET_CHUNK);
        out->done += k;
        out->forgotten += forgotten;
        out->chunks++;
        mn_assert(out->forgotten <= out->done && out->done <= n);
        if (out->chunks % LOG_EVERY_CHUNKS == 0)
            mn_log_info("forget by filter in space %s: %zu of %zu done, %zu forgotten (chunks "
                        "of %zu now)",
                        sp->def.name, out->done, n, out->forgotten, chunk);
        if (fn && !fn(arg, out)) break;
    }
    mn__space_unref(sp);
    return rc;
}
