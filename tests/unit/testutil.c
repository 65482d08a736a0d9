/* Helpers for unit tests that need a real RocksDB or files: temp dirs, engine
 * options, what the store holds, WAL copies, semantic memories as bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"

#include "engine/engine_internal.h"
#include "mnemo/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <math.h>
#include <unistd.h>

char *mn_test_tmpdir(const char *prefix)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    size_t n = strlen(base) + strlen(prefix) + 16;
    char *p = malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s/%s-XXXXXX", base, prefix);
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MN_TEST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MN_TEST_SANITIZED 1
#endif

void mn_test_unit_vec(float *v, uint32_t dim)
{
    double s = 0;
    for (uint32_t i = 0; i < dim; i++)
        s += (double)v[i] * v[i];
    float inv = (float)(1.0 / sqrt(s));
    for (uint32_t i = 0; i < dim; i++)
        v[i] *= inv;
}

bool mn_test_sanitized(void)
{
#ifdef MN_TEST_SANITIZED
    return true;
#else
    return false;
#endif
}

int mn_test_seeds(int n)
{
    return mn_test_sanitized() && n > 1 ? 1 : n;
}

void mn_test_rmrf(const char *path)
{
    if (path) nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void mn_test_engine_options(mn_engine_options_t *o, const char *dir)
{
    mn_engine_options_default(o);
    o->data_dir = dir;
    o->block_cache_bytes = 8u << 20;
    o->write_buffer_bytes = 4u << 20;
    o->expiry_interval_ms = 0;
    o->consolidate_interval_ms = 0;
    o->link_max = 0;
}

static int64_t fake_clock(void *arg)
{
    return __atomic_load_n(&((mn_test_eng *)arg)->now, __ATOMIC_SEQ_CST);
}

void mn_test_eng_defaults(mn_test_eng *t)
{
    mn_test_engine_options(&t->opts, t->dir);
    t->opts.clock = fake_clock;
    t->opts.clock_arg = t;
}

void mn_test_eng_init(mn_test_eng *t, const char *prefix)
{
    t->dir = mn_test_tmpdir(prefix);
    assert_non_null(t->dir);
    t->e = NULL;
    if (!t->now) t->now = 1700000000000;
    mn_test_eng_defaults(t);
}

void mn_test_eng_open(mn_test_eng *t)
{
    mn_error err = {0};
    if (mn_engine_open(&t->opts, &t->e, &err)) fail_msg("engine open: %s", err.message);
}

void mn_test_eng_reopen(mn_test_eng *t)
{
    mn_engine_close(t->e);
    t->e = NULL;
    mn_test_eng_open(t);
}

void mn_test_eng_free(mn_test_eng *t)
{
    mn_engine_close(t->e);
    mn_test_rmrf(t->dir);
    free(t->dir);
    t->dir = NULL;
    t->e = NULL;
}

int mn_test_eng_setup(void **state, const char *prefix, bool fake_clock)
{
    mn_test_eng *t = calloc(1, sizeof *t);
    assert_non_null(t);
    mn_test_eng_init(t, prefix);
    if (!fake_clock) t->opts.clock = NULL;
    mn_test_eng_open(t);
    *state = t;
    return 0;
}

int mn_test_eng_teardown(void **state)
{
    mn_test_eng_free(*state);
    free(*state);
    return 0;
}

uint32_t mn_test_space_sid(mn_engine_t *e, const char *name)
{
    mn__space *sp = mn__registry_acquire(&e->reg, name);
    assert_non_null(sp);
    uint32_t sid = sp->sid;
    mn__space_unref(sp);
    return sid;
}

mn_err mn_test_space(mn_engine_t *e, const char *name, uint32_t dim, mn_metric_t metric)
{
    mn_space_def_t d = {0};
    snprintf(d.name, sizeof d.name, "%s", name);
    d.dim = dim;
    d.metric = metric;
    /* the engine's tests write identical memories on purpose (counting writes,
     * groups, events): duplicates are test_engine_dedup.c's */
    d.dedup = MN_DEDUP_OFF;
    mn_error err = {0};
    return mn_engine_space_create(e, &d, NULL, &err);
}

size_t mn_test_count_stored(mn_engine_t *e, const void *needle, size_t n)
{
    mn_engine_t *en = e;
    size_t hits = 0;
    for (int cf = 0; cf < CF_COUNT; cf++) {
        rocksdb_iterator_t *it =
            rocksdb_create_iterator_cf(en->store.db, en->store.ropts, en->store.cf[cf]);
        for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t kl, vl;
            const char *k = rocksdb_iter_key(it, &kl);
            const char *v = rocksdb_iter_value(it, &vl);
            for (size_t i = 0; i + n <= kl; i++)
                hits += !memcmp(k + i, needle, n);
            for (size_t i = 0; i + n <= vl; i++)
                hits += !memcmp(v + i, needle, n);
        }
        rocksdb_iter_destroy(it);
    }
    return hits;
}

static int wal_collect(void *arg, uint64_t lsn, const uint8_t *bytes, size_t len)
{
    (void)lsn;
    mn_test_wal *w = arg;
    uint8_t **nb = realloc(w->bufs, (w->n + 1) * sizeof *nb);
    if (nb) w->bufs = nb;
    size_t *nl = realloc(w->lens, (w->n + 1) * sizeof *nl);
    if (nl) w->lens = nl;
    uint8_t *copy = malloc(len);
    if (!nb || !nl || !copy) {
        free(copy);
        return 1;
    }
    memcpy(copy, bytes, len);
    w->bufs[w->n] = copy;
    w->lens[w->n++] = len;
    return 0;
}

mn_err mn_test_wal_read(mn_engine_t *e, const char *space, uint64_t from, size_t max,
                        mn_test_wal *w)
{
    mn_error err = {0};
    return mn_engine_wal_read(e, space, from, max, wal_collect, w, &err);
}

void mn_test_wal_free(mn_test_wal *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->bufs[i]);
    free(w->bufs);
    free(w->lens);
    memset(w, 0, sizeof *w);
}

uint8_t *mn_test_semantic_bytes(mn_engine_t *e, const char *space, size_t *len, size_t *n)
{
    mn_list_req_t lr = {.limit = 1000, .include_embedding = true};
    mn_filter_init(&lr.filter);
    lr.filter.kind = MN_KIND_SEMANTIC;
    mn_list_result_t res;
    mn_error err = {0};
    *len = *n = 0;
    if (mn_engine_list(e, space, &lr, &res, &err)) return NULL;
    /* list is in (when, id) order; sort by id */
    for (size_t i = 1; i < res.n; i++)
        for (size_t j = i; j > 0 && mn_id_cmp(&res.memories[j - 1].id, &res.memories[j].id) > 0;
             j--) {
            mn_memory_t t = res.memories[j];
            res.memories[j] = res.memories[j - 1];
            res.memories[j - 1] = t;
        }
    uint8_t *all = NULL;
    for (size_t i = 0; i < res.n; i++) {
        mn_memory_record_t rec = {.mem = res.memories[i]};
        uint8_t *b, *na;
        size_t l;
        if (mn_wire_memory_encode(&rec, true, &b, &l)) continue;
        if ((na = realloc(all, *len + l))) {
            all = na;
            memcpy(all + *len, b, l);
            *len += l;
        }
        free(b);
    }
    *n = res.next ? SIZE_MAX : res.n; /* more than one page: a test bug */
    mn_list_result_clear(&res);
    return all;
}
