/* The hint store (docs/gossip.md, "Partition mode"): remembers accepted while their space's
 * primary was unreachable, kept on this node until the primary has them.
 *
 * One file per hint in <data_dir>/hints: "<seq>.hint" (seq in 16 hex digits) holding the
 * remember as a framed WAL entry (mn_wire_wal_encode: CRC32C checked when read), its
 * memories stamped here with their ids and created_at. A hint is written to "<seq>.tmp",
 * fsync'd, renamed and the directory fsync'd before it is acknowledged, so a hint either is
 * whole on disk after kill -9 or was never acknowledged. Merged hints are deleted; rejected
 * ones (the primary refused them as invalid) renamed "<seq>.rejected" for the operator.
 *
 * In memory: an index of the pending hints (seq, space, count, the idempotency keys and
 * their ids), in seq order; the bodies stay on disk. Invariant: total is the sum of the
 * index's counts and never exceeds max (checked where hints are added and removed). */
#include "cluster_hints.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster_file.h"
#include "mnemo/assert.h"
#include "mnemo/util.h"
#include "mnemo/wire.h"

typedef struct idem {
    char *key;
    mn_id_t id;
} idem;

typedef struct hint {
    uint64_t seq;
    char space[MN_SPACE_NAME_MAX + 1];
    size_t n;
    int64_t made_ms; /* when it was taken here: its ids' wall clock */
    idem *keys;      /* the idempotency keys of its memories */
    size_t n_keys;
} hint;

struct cl_hints {
    char *dir;
    size_t max, total;
    uint64_t next_seq;
    pthread_mutex_t mu; /* guards everything below */
    hint *items;        /* ascending seq */
    size_t n, cap;
};

static void path_of(const cl_hints *h, uint64_t seq, const char *ext, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%016llx.%s", h->dir, (unsigned long long)seq, ext);
}

static void hint_free(hint *x)
{
    for (size_t i = 0; i < x->n_keys; i++)
        free(x->keys[i].key);
    free(x->keys);
}

/* The index entry of a decoded remember entry (keys copied). */
static mn_err index_entry(const mn_wal_entry_t *en, uint64_t seq, hint *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    out->seq = seq;
    snprintf(out->space, sizeof out->space, "%s", en->space);
    out->n = en->op.remember.n;
    out->made_ms = out->n ? mn_id_time_ms(&en->op.remember.mems[0].id) : 0;
    out->keys = calloc(out->n ? out->n : 1, sizeof *out->keys);
    if (!out->keys) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < out->n; i++) {
        const mn_memory_t *m = &en->op.remember.mems[i];
        if (!m->idempotency_key) continue;
        idem *k = &out->keys[out->n_keys];
        if (!(k->key = strdup(m->idempotency_key))) {
            hint_free(out);
            return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        }
        k->id = m->id;
        out->n_keys++;
    }
    return MN_OK;
}

static mn_err push(cl_hints *h, const hint *x, mn_error *err)
{
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 64;
        hint *ni = realloc(h->items, nc * sizeof *ni);
        if (!ni) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        h->items = ni;
        h->cap = nc;
    }
    mn_assert(!h->n || h->items[h->n - 1].seq < x->seq); /* the index stays in seq order */
    h->items[h->n++] = *x;
    h->total += x->n;
    return MN_OK;
}

/* ---- files ---- */

static mn_err read_file(const char *path, uint8_t **data, size_t *len, mn_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return mn_error_set(err, MN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    mn_err rc = MN_OK;
    *data = NULL;
    if (fstat(fileno(f), &st) || st.st_size <= 0)
        rc = mn_error_set(err, MN_ERR_CORRUPT, "%s: empty or unreadable", path);
    else if (!(*data = malloc((size_t)st.st_size)))
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    else if (fread(*data, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        rc = mn_error_set(err, MN_ERR_IO, "cannot read %s", path);
    fclose(f);
    if (rc) {
        free(*data);
        *data = NULL;
    }
    *len = rc ? 0 : (size_t)st.st_size;
    return rc;
}

/* data into the file of seq: written, fsync'd, renamed into place, the directory fsync'd. */
static mn_err write_durable(const cl_hints *h, uint64_t seq, const uint8_t *data, size_t len,
                            mn_error *err)
{
    char tmp[4200], final[4200];
    path_of(h, seq, "tmp", tmp, sizeof tmp);
    path_of(h, seq, "hint", final, sizeof final);
    return cl_file_replace(tmp, final, h->dir, data, len, err);
}

/* One file found at open: indexed, or set aside when it does not decode. */
static void load_one(cl_hints *h, const char *name, uint64_t seq, hint **found, size_t *n_found,
                     size_t *cap_found)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", h->dir, name);
    uint8_t *data = NULL;
    size_t len = 0;
    mn_error err = {0};
    mn_wal_entry_t en;
    memset(&en, 0, sizeof en);
    hint x;
    mn_err rc = read_file(path, &data, &len, &err);
    if (!rc) rc = mn_wire_wal_decode(data, len, &en, &err);
    if (!rc && en.type != MN_WAL_OP_REMEMBER)
        rc = mn_error_set(&err, MN_ERR_CORRUPT, "not a remember entry");
    if (!rc) rc = index_entry(&en, seq, &x, &err);
    if (!rc && *n_found == *cap_found) {
        size_t nc = *cap_found ? *cap_found * 2 : 64;
        hint *nf = realloc(*found, nc * sizeof *nf);
        if (!nf) {
            hint_free(&x);
            rc = mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
        } else {
            *found = nf;
            *cap_found = nc;
        }
    }
    if (!rc) (*found)[(*n_found)++] = x;
    if (rc) {
        char bad[4200];
        path_of(h, seq, "bad", bad, sizeof bad);
        mn_log_error("hints: %s cannot be read (%s): set aside as %s", path, err.message, bad);
        (void)rename(path, bad);
    }
    mn_wal_entry_clear(&en);
    free(data);
}

static int by_seq(const void *a, const void *b)
{
    uint64_t x = ((const hint *)a)->seq, y = ((const hint *)b)->seq;
    return x < y ? -1 : x > y;
}

/* The hints of h->dir into the index, in seq order; *.tmp files (never acknowledged) go. */
static mn_err load(cl_hints *h, mn_error *err)
{
    DIR *d = opendir(h->dir);
    if (!d) return mn_error_set(err, MN_ERR_IO, "cannot open %s: %s", h->dir, strerror(errno));
    hint *found = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned long long seq;
        char ext[16];
        if (sscanf(de->d_name, "%16llx.%15s", &seq, ext) != 2 || strlen(de->d_name) < 17) continue;
        if (seq >= h->next_seq) h->next_seq = seq + 1;
        if (!strcmp(ext, "tmp")) {
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", h->dir, de->d_name);
            unlink(path);
        } else if (!strcmp(ext, "hint")) {
            load_one(h, de->d_name, seq, &found, &n, &cap);
        }
    }
    closedir(d);
    if (n) qsort(found, n, sizeof *found, by_seq);
    mn_err rc = MN_OK;
    for (size_t i = 0; i < n; i++)
        if (rc || (rc = push(h, &found[i], err))) hint_free(&found[i]);
    free(found);
    return rc;
}

mn_err cl_hints_open(const char *dir, size_t max, cl_hints **out, mn_error *err)
{
    *out = NULL;
    if (mkdir(dir, 0700) && errno != EEXIST)
        return mn_error_set(err, MN_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    cl_hints *h = calloc(1, sizeof *h);
    if (!h || !(h->dir = strdup(dir))) {
        free(h);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    h->max = max;
    h->next_seq = 1;
    pthread_mutex_init(&h->mu, NULL);
    mn_err rc = load(h, err);
    if (rc) {
        cl_hints_close(h);
        return rc;
    }
    if (h->n) mn_log_info("hints: %zu memories in %zu hints pending in %s", h->total, h->n, h->dir);
    *out = h;
    return MN_OK;
}

void cl_hints_close(cl_hints *h)
{
    if (!h) return;
    for (size_t i = 0; i < h->n; i++)
        hint_free(&h->items[i]);
    free(h->items);
    pthread_mutex_destroy(&h->mu);
    free(h->dir);
    free(h);
}

/* ---- adding ---- */

/* The id a pending hint of space holds for idempotency key key, or NULL (under mu). */
static const mn_id_t *idem_find(const cl_hints *h, const char *space, const char *key)
{
    for (size_t i = 0; key && i < h->n; i++) {
        if (strcmp(h->items[i].space, space) != 0) continue;
        for (size_t k = 0; k < h->items[i].n_keys; k++)
            if (!strcmp(h->items[i].keys[k].key, key)) return &h->items[i].keys[k].id;
    }
    return NULL;
}

/* The memories of mems to keep (stamped into keep, *n_keep of them; ids_out filled), the
 * retries of pending keys answered from the index (under mu). */
static void stamp(cl_hints *h, const char *space, const mn_memory_t *mems, size_t n,
                  const mn_id_t *base, mn_memory_t *keep, size_t *n_keep, mn_id_t *ids_out)
{
    *n_keep = 0;
    for (size_t i = 0; i < n; i++) {
        const mn_id_t *was = idem_find(h, space, mems[i].idempotency_key);
        size_t j = 0;
        /* a key given twice in one request: its first memory's id, as the engine does */
        for (; !was && j < *n_keep; j++)
            if (mems[i].idempotency_key && keep[j].idempotency_key &&
                !strcmp(mems[i].idempotency_key, keep[j].idempotency_key))
                was = &keep[j].id;
        if (was) {
            ids_out[i] = *was;
            continue;
        }
        mn_memory_t *m = &keep[(*n_keep)++];
        *m = mems[i];
        m->id = ids_out[i] = api_hint_id(base, i);
        m->created_at_ms = mn_id_time_ms(base);
    }
}

mn_err cl_hints_add(cl_hints *h, const char *space, const mn_memory_t *mems, size_t n,
                    const mn_id_t *base, mn_id_t *ids_out, mn_error *err)
{
    mn_memory_t *keep = calloc(n ? n : 1, sizeof *keep);
    if (!keep) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    uint8_t *data = NULL;
    size_t len = 0, n_keep = 0;
    mn_err rc = MN_OK;
    /* under mu throughout: the key lookup and the write are one step, so a retry racing its
     * first try answers the same id */
    pthread_mutex_lock(&h->mu);
    stamp(h, space, mems, n, base, keep, &n_keep, ids_out);
    if (n_keep == 0) goto out; /* every memory was a retry */
    if (h->total + n_keep > h->max) {
        rc = mn_error_set(err, MN_ERR_LIMIT,
                          "this node holds %zu partition writes pending, "
                          "cluster.partition_writes_max is %zu",
                          h->total, h->max);
        goto out;
    }
    mn_wal_entry_t en;
    memset(&en, 0, sizeof en);
    snprintf(en.space, sizeof en.space, "%s", space);
    en.type = MN_WAL_OP_REMEMBER;
    en.op.remember.mems = keep;
    en.op.remember.n = n_keep;
    hint x;
    uint64_t seq = h->next_seq;
    if ((rc = mn_wire_wal_encode(&en, &data, &len)))
        rc = mn_error_set(err, rc, "cannot encode the hint");
    if (!rc) rc = write_durable(h, seq, data, len, err);
    if (!rc) rc = index_entry(&en, seq, &x, err);
    if (!rc && (rc = push(h, &x, err))) hint_free(&x);
    if (!rc) h->next_seq++;
    mn_assert(h->total <= h->max);
out:
    pthread_mutex_unlock(&h->mu);
    free(data);
    free(keep);
    return rc;
}

/* ---- draining ---- */

size_t cl_hints_peek(cl_hints *h, cl_hint_ref *out, size_t max)
{
    pthread_mutex_lock(&h->mu);
    size_t k = 0;
    for (; k < max && k < h->n; k++) {
        out[k].seq = h->items[k].seq;
        out[k].n = h->items[k].n;
        snprintf(out[k].space, sizeof out[k].space, "%s", h->items[k].space);
    }
    pthread_mutex_unlock(&h->mu);
    return k;
}

mn_err cl_hints_read(cl_hints *h, uint64_t seq, uint8_t **data, size_t *len, mn_error *err)
{
    char path[4200];
    path_of(h, seq, "hint", path, sizeof path);
    return read_file(path, data, len, err);
}

mn_err cl_hints_remove(cl_hints *h, uint64_t seq, bool rejected, mn_error *err)
{
    char path[4200], aside[4200];
    path_of(h, seq, "hint", path, sizeof path);
    path_of(h, seq, "rejected", aside, sizeof aside);
    pthread_mutex_lock(&h->mu);
    mn_err rc = MN_OK;
    size_t i = 0;
    while (i < h->n && h->items[i].seq != seq)
        i++;
    if (i == h->n) {
        rc = mn_error_set(err, MN_ERR_NOT_FOUND, "hint %016llx: not pending",
                          (unsigned long long)seq);
    } else if (rejected ? rename(path, aside) : unlink(path)) {
        rc = mn_error_set(err, MN_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    } else {
        mn_assert(h->total >= h->items[i].n);
        h->total -= h->items[i].n;
        hint_free(&h->items[i]);
        memmove(&h->items[i], &h->items[i + 1], (h->n - i - 1) * sizeof *h->items);
        h->n--;
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

size_t cl_hints_drop_stale(cl_hints *h, int64_t (*stale_before)(void *arg, const char *space),
                           void *arg)
{
    char path[4200];
    size_t dropped = 0, k = 0;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->n; i++) {
        hint *x = &h->items[i];
        bool stale = x->made_ms < stale_before(arg, x->space);
        path_of(h, x->seq, "hint", path, sizeof path);
        if (stale && unlink(path) == 0) {
            mn_log_info("hints: %s: a hint of %zu memories dropped with its space (the space "
                        "was dropped, or this hint predates its current incarnation)",
                        x->space, x->n);
            mn_assert(h->total >= x->n);
            h->total -= x->n;
            dropped += x->n;
            hint_free(x);
            continue;
        }
        if (stale) mn_log_error("hints: cannot remove %s: %s", path, strerror(errno));
        h->items[k++] = *x; /* kept: the index stays in seq order */
    }
    h->n = k;
    pthread_mutex_unlock(&h->mu);
    return dropped;
}

size_t cl_hints_pending(cl_hints *h, const char *space)
{
    pthread_mutex_lock(&h->mu);
    size_t n = space ? 0 : h->total;
    for (size_t i = 0; space && i < h->n; i++)
        if (!strcmp(h->items[i].space, space)) n += h->items[i].n;
    pthread_mutex_unlock(&h->mu);
    return n;
}

void cl_hints_each_space(cl_hints *h, void (*fn)(void *arg, const char *space, size_t n), void *arg)
{
    pthread_mutex_lock(&h->mu);
    /* the spaces in order of their first pending hint: O(hints x spaces) */
    size_t *first = malloc((h->n ? h->n : 1) * sizeof *first), *count = NULL;
    if (first) count = calloc(h->n ? h->n : 1, sizeof *count);
    size_t k = 0;
    for (size_t i = 0; count && i < h->n; i++) {
        size_t j = 0;
        while (j < k && strcmp(h->items[first[j]].space, h->items[i].space) != 0)
            j++;
        if (j == k) first[k++] = i;
        count[j] += h->items[i].n;
    }
    for (size_t j = 0; count && j < k; j++)
        fn(arg, h->items[first[j]].space, count[j]);
    pthread_mutex_unlock(&h->mu);
    free(first);
    free(count);
}
