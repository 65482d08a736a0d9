/* engine write path: group commit shares one fsync between concurrent writers
 * (held committer, deterministic), ephemeral writes add no fsync; forgetting
 * erases content and vector from the WAL too (and replay keeps them erased);
 * dropping a space is a WAL entry applied like any other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/commit.h"
#include "engine/engine_internal.h"
#include "mnemo/engine.h"
#include "mnemo/wire.h"
#include "testutil.h"

typedef mn_test_eng fx;

static int setup(void **state)
{
    return mn_test_eng_setup(state, "mnemo-wal", true);
}

static void reopen(fx *f)
{
    mn_test_eng_reopen(f);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- group commit ---- */

typedef struct gc_writer {
    fx *f;
    mn_lifecycle_t lifecycle;
    mn_err rc;
} gc_writer;

static void *gc_write(void *arg)
{
    gc_writer *w = arg;
    float v[2] = {1, 2};
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = "queued";
    m.content_len = 6;
    m.embedding = v;
    m.dim = 2;
    m.lifecycle = w->lifecycle;
    mn_id_t id;
    w->rc = mn_engine_remember(w->f->e, "s", &m, 1, &id, NULL);
    return NULL;
}

/* Holds the committer while n writers of the given lifecycles queue, then
 * releases it; returns the engine figures before and after. */
static void held_group(fx *f, const mn_lifecycle_t *lc, int n, mn_engine_stats_t *before,
                       mn_engine_stats_t *after, mn_hist_snapshot_t *synced_before,
                       mn_hist_snapshot_t *synced_after)
{
    mn_engine_t *e = (mn_engine_t *)f->e;
    mn_engine_metrics_t m;
    mn_error err = {0};
    assert_int_equal(mn_engine_get_metrics(f->e, &m, &err), MN_OK);
    *before = m.stats;
    *synced_before = m.group_synced;
    mn_engine_metrics_clear(&m);
    mn__commit_hold(e, true);
    pthread_t th[16];
    gc_writer w[16];
    assert_true(n <= 16);
    for (int i = 0; i < n; i++) {
        w[i] = (gc_writer){f, lc[i], MN_ERR_INTERNAL};
        assert_int_equal(pthread_create(&th[i], NULL, gc_write, &w[i]), 0);
    }
    /* every writer is queued behind the held committer (10 s deadline) */
    for (int waited = 0; mn__commit_queued(e) < (size_t)n; waited++) {
        assert_true(waited < 10000);
        sleep_ms(1);
    }
    assert_int_equal(mn__commit_queued(e), n);
    mn__commit_hold(e, false);
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].rc, MN_OK);
    }
    assert_int_equal(mn_engine_get_metrics(f->e, &m, &err), MN_OK);
    *after = m.stats;
    *synced_after = m.group_synced;
    mn_engine_metrics_clear(&m);
}

static void test_concurrent_writers_share_one_fsync(void **state)
{
    fx *f = *state;
    assert_int_equal(mn_test_space(f->e, "s", 2, MN_METRIC_COSINE), MN_OK);
    enum { N = 8 };
    mn_lifecycle_t lc[N];
    for (int i = 0; i < N; i++)
        lc[i] = MN_LIFECYCLE_PERSISTENT;
    mn_engine_stats_t b, a;
    mn_hist_snapshot_t hb, ha;
    held_group(f, lc, N, &b, &a, &hb, &ha);
    /* the eight durable writes went out as one batch with one fsync */
    assert_int_equal(a.entries - b.entries, N);
    assert_int_equal(a.commits - b.commits, 1);
    assert_int_equal(a.synced_commits - b.synced_commits, 1);
    assert_true(a.synced_commits < a.entries);
    assert_int_equal(a.max_group, N);
    /* the fsynced-group histogram saw one group of N entries */
    assert_int_equal(ha.count - hb.count, 1);
    assert_int_equal(ha.sum - hb.sum, N);
    mn_space_stats_t st;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.memories, N);
    assert_int_equal(st.last_lsn, 1 + N); /* dense: create + N */
}

static void test_ephemeral_writes_add_no_fsync(void **state)
{
    fx *f = *state;
    assert_int_equal(mn_test_space(f->e, "s", 2, MN_METRIC_COSINE), MN_OK);
    enum { N = 6 };
    mn_lifecycle_t lc[N];
    for (int i = 0; i < N; i++)
        lc[i] = MN_LIFECYCLE_EPHEMERAL;
    mn_engine_stats_t b, a;
    mn_hist_snapshot_t hb, ha;
    held_group(f, lc, N, &b, &a, &hb, &ha);
    assert_int_equal(a.entries - b.entries, N);
    assert_int_equal(a.commits - b.commits, 1);
    assert_int_equal(a.synced_commits - b.synced_commits, 0);
    assert_int_equal(ha.count - hb.count, 0);
    /* one ephemeral write on its own: a commit, no fsync */
    gc_writer w = {f, MN_LIFECYCLE_EPHEMERAL, MN_ERR_INTERNAL};
    gc_write(&w);
    assert_int_equal(w.rc, MN_OK);
    mn_engine_stats_t c;
    mn_engine_get_stats(f->e, &c);
    assert_int_equal(c.commits - a.commits, 1);
    assert_int_equal(c.synced_commits - a.synced_commits, 0);
    /* a group mixing both classes needs (and shares) one fsync */
    mn_lifecycle_t mix[4] = {MN_LIFECYCLE_EPHEMERAL, MN_LIFECYCLE_PERSISTENT, MN_LIFECYCLE_EPHEMERAL,
                           MN_LIFECYCLE_SESSION};
    held_group(f, mix, 4, &b, &a, &hb, &ha);
    assert_int_equal(a.entries - b.entries, 4);
    assert_int_equal(a.commits - b.commits, 1);
    assert_int_equal(a.synced_commits - b.synced_commits, 1);
    assert_int_equal(ha.sum - hb.sum, 4);
    reopen(f);
    mn_space_stats_t st;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.memories, N + 1 + 4);
}

/* ---- erasure ---- */

/* Occurrences of needle in the keys and values of column family cf. */
static size_t count_in_cf(fx *f, int cf, const void *needle, size_t n)
{
    mn_engine_t *e = (mn_engine_t *)f->e;
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(e->store.db, e->store.ropts, e->store.cf[cf]);
    size_t hits = 0;
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
    return hits;
}

static size_t count_everywhere(fx *f, const void *needle, size_t n)
{
    size_t hits = 0;
    for (int cf = 0; cf < CF_COUNT; cf++)
        hits += count_in_cf(f, cf, needle, n);
    return hits;
}

static mn_memory_t mem(const char *content, float *v, uint32_t dim)
{
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)content;
    m.content_len = strlen(content);
    m.embedding = v;
    m.dim = dim;
    return m;
}

typedef struct wal_copy {
    uint8_t *bufs[64];
    size_t lens[64];
    uint64_t lsns[64];
    size_t n;
} wal_copy;

static int copy_entry(void *arg, uint64_t lsn, const uint8_t *bytes, size_t len)
{
    wal_copy *w = arg;
    if (w->n == 64) return 1;
    w->bufs[w->n] = malloc(len);
    memcpy(w->bufs[w->n], bytes, len);
    w->lens[w->n] = len;
    w->lsns[w->n++] = lsn;
    return 0;
}

static void wal_copy_free(wal_copy *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->bufs[i]);
    w->n = 0;
}

static void test_forget_erases_content_and_vector_from_the_wal(void **state)
{
    fx *f = *state;
    assert_int_equal(mn_test_space(f->e, "s", 4, MN_METRIC_COSINE), MN_OK);
    float va[4] = {0.111f, 0.222f, 0.333f, 0.444f}, vb[4] = {0.9f, 0.1f, 0.2f, 0.3f},
          vc[4] = {0.3f, 0.9f, 0.1f, 0.2f}, vd[4] = {0.571f, 0.333f, 0.777f, 0.123f};
    const char *ca = "alpha secret 1234", *cb = "beta keep", *cc = "gamma keep",
               *cd = "delta secret 5678";
    /* one entry carries three memories; the first will be forgotten */
    mn_memory_t batch[3] = {mem(ca, va, 4), mem(cb, vb, 4), mem(cc, vc, 4)};
    batch[0].idempotency_key = "turn-1";
    mn_id_t ids[3], d;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(f->e, "s", batch, 3, ids, &err), MN_OK);
    mn_memory_t md = mem(cd, vd, 4);
    md.ttl_seconds = 10; /* expires: the same path */
    assert_int_equal(mn_engine_remember(f->e, "s", &md, 1, &d, &err), MN_OK);
    assert_true(count_in_cf(f, CF_WAL, ca, strlen(ca)) > 0);
    assert_true(count_in_cf(f, CF_WAL, va, sizeof va) > 0);

    assert_int_equal(mn_engine_forget(f->e, "s", &ids[0], MN_FORGET_DELETE, &err), MN_OK);
    assert_int_equal(count_everywhere(f, ca, strlen(ca)), 0);
    assert_int_equal(count_everywhere(f, va, sizeof va), 0);
    assert_int_equal(count_everywhere(f, "alpha", 5), 0);
    /* the other memories of the entry keep their content, in the WAL too */
    assert_int_equal(count_in_cf(f, CF_WAL, cb, strlen(cb)), 1);
    assert_int_equal(count_in_cf(f, CF_WAL, vb, sizeof vb), 1);

    /* the entry is still lsn 2, epoch 1, with the memory marked erased */
    wal_copy w = {0};
    assert_int_equal(mn_engine_wal_read(f->e, "s", 2, 1, copy_entry, &w, &err), MN_OK);
    assert_int_equal(w.n, 1);
    mn_wal_entry_t en;
    assert_int_equal(mn_wire_wal_decode(w.bufs[0], w.lens[0], &en, &err), MN_OK);
    assert_int_equal(en.type, MN_WAL_OP_REMEMBER);
    assert_int_equal(en.lsn, 2);
    assert_int_equal(en.epoch, 1);
    assert_int_equal(en.op.remember.n, 3);
    assert_true(en.op.remember.mems[0].forgotten);
    assert_memory_equal(en.op.remember.mems[0].id.b, ids[0].b, 16);
    assert_int_equal(en.op.remember.mems[0].forgotten_at_ms, f->now);
    assert_null(en.op.remember.mems[0].content);
    assert_null(en.op.remember.mems[0].embedding);
    assert_false(en.op.remember.mems[1].forgotten);
    assert_string_equal(en.op.remember.mems[1].content, cb);
    mn_wal_entry_clear(&en);
    wal_copy_free(&w);

    /* expiry erases the same way */
    f->now += 11000;
    size_t n = 0;
    assert_int_equal(mn_engine_expire(f->e, &n, &err), MN_OK);
    assert_int_equal(n, 1);
    assert_int_equal(count_everywhere(f, cd, strlen(cd)), 0);
    assert_int_equal(count_everywhere(f, vd, sizeof vd), 0);

    /* restart: still tombstones */
    reopen(f);
    mn_memory_t out;
    assert_int_equal(mn_engine_get(f->e, "s", &ids[0], false, &out, &err), MN_ERR_GONE);
    assert_int_equal(mn_engine_get(f->e, "s", &d, false, &out, &err), MN_ERR_GONE);
    assert_int_equal(mn_engine_get(f->e, "s", &ids[1], false, &out, &err), MN_OK);
    mn_memory_clear(&out);
    /* a retry of the forgotten memory's idempotency key does not bring it back */
    mn_id_t again;
    assert_int_equal(mn_engine_remember(f->e, "s", &batch[0], 1, &again, &err), MN_OK);
    assert_memory_equal(again.b, ids[0].b, 16);
    assert_int_equal(mn_engine_get(f->e, "s", &ids[0], false, &out, &err), MN_ERR_GONE);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.memories, 2);
    assert_int_equal(st.tombstones, 2);

    /* replay: another engine fed this WAL gets tombstones, never the content */
    fx g = {.now = f->now};
    mn_test_eng_init(&g, "mnemo-wal-b");
    mn_test_eng_open(&g);
    assert_int_equal(mn_test_space(g.e, "s", 4, MN_METRIC_COSINE), MN_OK);
    assert_int_equal(mn_engine_wal_read(f->e, "s", 2, 0, copy_entry, &w, &err), MN_OK);
    for (size_t i = 0; i < w.n; i++) {
        mn_err rc = mn_engine_ingest(g.e, w.bufs[i], w.lens[i], &err);
        assert_true(rc == MN_OK || rc == MN_ERR_GONE); /* the forgets find tombstones */
    }
    wal_copy_free(&w);
    assert_int_equal(mn_engine_get(g.e, "s", &ids[0], false, &out, &err), MN_ERR_GONE);
    assert_int_equal(mn_engine_get(g.e, "s", &d, false, &out, &err), MN_ERR_GONE);
    assert_int_equal(mn_engine_get(g.e, "s", &ids[2], false, &out, &err), MN_OK);
    assert_string_equal(out.content, cc);
    mn_memory_clear(&out);
    assert_int_equal(mn_engine_space_get(g.e, "s", &st, &err), MN_OK);
    assert_int_equal(st.memories, 2);
    assert_int_equal(st.tombstones, 2);
    assert_int_equal(count_everywhere(&g, ca, strlen(ca)), 0);
    assert_int_equal(count_everywhere(&g, va, sizeof va), 0);
    /* an erased stub reaching an engine where the memory is live forgets it there */
    fx h = {.now = f->now};
    mn_test_eng_init(&h, "mnemo-wal-c");
    mn_test_eng_open(&h);
    assert_int_equal(mn_test_space(h.e, "s", 4, MN_METRIC_COSINE), MN_OK);
    mn_wal_entry_t live = {0};
    strcpy(live.space, "s");
    live.type = MN_WAL_OP_REMEMBER;
    mn_memory_t lm = mem(ca, va, 4);
    lm.id = ids[0];
    lm.when_ms = lm.created_at_ms = f->now;
    live.op.remember.mems = &lm;
    live.op.remember.n = 1;
    uint8_t *buf;
    size_t len;
    assert_int_equal(mn_wire_wal_encode(&live, &buf, &len), MN_OK);
    assert_int_equal(mn_engine_ingest(h.e, buf, len, &err), MN_OK);
    free(buf);
    assert_int_equal(mn_engine_get(h.e, "s", &ids[0], false, &out, &err), MN_OK);
    mn_memory_clear(&out);
    assert_int_equal(mn_engine_wal_read(f->e, "s", 2, 1, copy_entry, &w, &err), MN_OK);
    assert_int_equal(mn_engine_ingest(h.e, w.bufs[0], w.lens[0], &err), MN_OK);
    wal_copy_free(&w);
    assert_int_equal(mn_engine_get(h.e, "s", &ids[0], false, &out, &err), MN_ERR_GONE);
    assert_int_equal(count_everywhere(&h, ca, strlen(ca)), 0);
    assert_int_equal(count_everywhere(&h, va, sizeof va), 0);
    mn_test_eng_free(&h);
    mn_test_eng_free(&g);
}

static void test_forgetting_a_semantic_memory_erases_its_consolidate_entries(void **state)
{
    fx *f = *state;
    assert_int_equal(mn_test_space(f->e, "s", 4, MN_METRIC_COSINE), MN_OK);
    float v[4][4] = {
        {1, 0.1f, 0, 0}, {1, 0.12f, 0.01f, 0}, {1, 0.09f, 0, 0.02f}, {1, 0.11f, 0.02f, 0.01f}};
    const char *texts[4] = {"harbor ferry schedule", "ferry leaves the harbor",
                            "harbor ferry at noon", "the ferry and the harbor"};
    mn_error err = {0};
    mn_consolidate_opts_t opts = {.threshold = 0.9f, .min_support = 3};
    mn_consolidate_result_t r;
    for (int i = 0; i < 3; i++) {
        mn_memory_t m = mem(texts[i], v[i], 4);
        mn_id_t id;
        assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &id, &err), MN_OK);
    }
    assert_int_equal(mn_engine_consolidate(f->e, "s", &opts, &r, &err), MN_OK);
    assert_int_equal(r.created, 1);
    mn_id_t sem = r.ids[0];
    free(r.ids);
    /* a fourth episode: reconsolidation writes the semantic memory again */
    mn_memory_t m = mem(texts[3], v[3], 4);
    mn_id_t id;
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &id, &err), MN_OK);
    mn_memory_t before;
    assert_int_equal(mn_engine_get(f->e, "s", &sem, true, &before, &err), MN_OK);
    float centroid[4];
    memcpy(centroid, before.embedding, sizeof centroid);
    mn_memory_clear(&before);
    assert_int_equal(mn_engine_consolidate(f->e, "s", &opts, &r, &err), MN_OK);
    assert_int_equal(r.updated, 1);
    free(r.ids);
    mn_memory_t sm;
    assert_int_equal(mn_engine_get(f->e, "s", &sem, true, &sm, &err), MN_OK);
    char content[1024];
    snprintf(content, sizeof content, "%s", sm.content);
    float centroid2[4];
    memcpy(centroid2, sm.embedding, sizeof centroid2);
    mn_memory_clear(&sm);
    /* the WAL holds only the latest version: the first entry dropped it */
    assert_int_equal(count_everywhere(f, centroid, sizeof centroid), 0);
    assert_int_equal(count_in_cf(f, CF_WAL, centroid2, sizeof centroid2), 1);
    assert_int_equal(mn_engine_forget(f->e, "s", &sem, MN_FORGET_DELETE, &err), MN_OK);
    /* and the entry that carried it lost it too */
    assert_int_equal(count_everywhere(f, centroid, sizeof centroid), 0);
    assert_int_equal(count_everywhere(f, centroid2, sizeof centroid2), 0);
    assert_int_equal(count_everywhere(f, content, strlen(content)), 0);
    reopen(f);
    assert_int_equal(mn_engine_get(f->e, "s", &sem, false, &sm, &err), MN_ERR_GONE);
}

/* A store written before forgetting erased the WAL: reopening indexes the WAL
 * once and strips the memories forgotten meanwhile. */
static void test_old_wal_is_migrated_and_scrubbed_at_start(void **state)
{
    fx *f = *state;
    assert_int_equal(mn_test_space(f->e, "s", 2, MN_METRIC_COSINE), MN_OK);
    float va[2] = {0.625f, 0.375f}, vb[2] = {0.8125f, 0.1875f};
    const char *ca = "old forgotten words", *cb = "old kept words";
    mn_memory_t batch[2] = {mem(ca, va, 2), mem(cb, vb, 2)};
    mn_id_t ids[2];
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(f->e, "s", batch, 2, ids, &err), MN_OK);
    wal_copy w = {0};
    assert_int_equal(mn_engine_wal_read(f->e, "s", 2, 1, copy_entry, &w, &err), MN_OK);
    assert_int_equal(mn_engine_forget(f->e, "s", &ids[0], MN_FORGET_DELETE, &err), MN_OK);
    /* make it look like an old store: the entry as first written, no WAL index */
    mn_engine_t *e = (mn_engine_t *)f->e;
    uint32_t sid = mn_test_space_sid(f->e, "s");
    uint8_t wk[KEY_WAL_LEN], mk[KEY_SID_LEN + 1], rk[KEY_WALREF_LEN];
    mn__key_wal(wk, sid, 2);
    mn__key_sid(mk, sid);
    mk[KEY_SID_LEN] = 'W';
    mn__key_walref(rk, sid, &ids[1]);
    char *msg = NULL;
    rocksdb_put_cf(e->store.db, e->store.wsync, e->store.cf[CF_WAL], (const char *)wk, sizeof wk,
                   (const char *)w.bufs[0], w.lens[0], &msg);
    assert_null(msg);
    rocksdb_delete_cf(e->store.db, e->store.wsync, e->store.cf[CF_INDEX], (const char *)mk,
                      sizeof mk, &msg);
    assert_null(msg);
    rocksdb_delete_cf(e->store.db, e->store.wsync, e->store.cf[CF_INDEX], (const char *)rk,
                      sizeof rk, &msg);
    assert_null(msg);
    wal_copy_free(&w);
    assert_int_equal(count_in_cf(f, CF_WAL, ca, strlen(ca)), 1);
    reopen(f);
    assert_int_equal(count_everywhere(f, ca, strlen(ca)), 0);
    assert_int_equal(count_everywhere(f, va, sizeof va), 0);
    assert_int_equal(count_in_cf(f, CF_WAL, cb, strlen(cb)), 1);
    /* and the kept memory can now be erased from it too */
    assert_int_equal(mn_engine_forget(f->e, "s", &ids[1], MN_FORGET_DELETE, &err), MN_OK);
    assert_int_equal(count_everywhere(f, cb, strlen(cb)), 0);
    assert_int_equal(count_everywhere(f, vb, sizeof vb), 0);
}

/* ---- space drop ---- */

static size_t count_prefix(fx *f, int cf, uint32_t sid)
{
    mn_engine_t *e = (mn_engine_t *)f->e;
    uint8_t pre[4];
    mn__key_sid(pre, sid);
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(e->store.db, e->store.ropts, e->store.cf[cf]);
    size_t n = 0;
    for (rocksdb_iter_seek(it, (const char *)pre, 4); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t kl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (kl < 4 || memcmp(k, pre, 4)) break;
        n++;
    }
    rocksdb_iter_destroy(it);
    return n;
}

static bool meta_get(fx *f, const char *key, mn_wal_entry_t *out)
{
    mn_engine_t *e = (mn_engine_t *)f->e;
    char *v;
    size_t vl;
    assert_int_equal(mn__store_get(&e->store, CF_META, key, strlen(key), &v, &vl, NULL), MN_OK);
    if (!v) return false;
    assert_int_equal(mn_wire_wal_decode((const uint8_t *)v, vl, out, NULL), MN_OK);
    free(v);
    return true;
}

typedef struct drop_arg {
    fx *f;
    bool drop;
    mn_err rc;
} drop_arg;

static void *drop_or_write(void *arg)
{
    drop_arg *a = arg;
    mn_error err = {0};
    if (a->drop) {
        a->rc = mn_engine_space_drop(a->f->e, "a", &err);
    } else {
        float v[2] = {1, 0};
        mn_memory_t m = mem("in the same group", v, 2);
        mn_id_t id;
        a->rc = mn_engine_remember(a->f->e, "a", &m, 1, &id, &err);
    }
    return NULL;
}

static void test_space_drop_is_a_wal_entry_and_recreate_takes_the_next_epoch(void **state)
{
    fx *f = *state;
    assert_int_equal(mn_test_space(f->e, "a", 2, MN_METRIC_COSINE), MN_OK);
    assert_int_equal(mn_test_space(f->e, "b", 2, MN_METRIC_COSINE), MN_OK);
    float v[2] = {1, 0};
    mn_error err = {0};
    mn_id_t id, keep;
    mn_memory_t m = mem("dropped with its space", v, 2);
    assert_int_equal(mn_engine_remember(f->e, "a", &m, 1, &id, &err), MN_OK);
    assert_int_equal(mn_engine_remember(f->e, "a", &m, 1, &id, &err), MN_OK);
    m = mem("stays in b", v, 2);
    assert_int_equal(mn_engine_remember(f->e, "b", &m, 1, &keep, &err), MN_OK);
    uint32_t sa = mn_test_space_sid(f->e, "a");
    mn_engine_stats_t es0;
    mn_engine_get_stats(f->e, &es0);
    assert_int_equal(mn_engine_space_drop(f->e, "a", &err), MN_OK);
    assert_int_equal(mn_engine_space_drop(f->e, "a", &err), MN_ERR_NOT_FOUND);
    mn_engine_stats_t es1;
    mn_engine_get_stats(f->e, &es1);
    assert_int_equal(es1.entries - es0.entries, 1); /* the drop is one WAL entry */
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "a", &st, &err), MN_ERR_NOT_FOUND);
    /* what survives: the drop entry, last of the old WAL, and the name's marker */
    assert_int_equal(count_prefix(f, CF_MEMORIES, sa), 0);
    assert_int_equal(count_prefix(f, CF_VECTORS, sa), 0);
    assert_int_equal(count_prefix(f, CF_INDEX, sa), 0);
    assert_int_equal(count_prefix(f, CF_WAL, sa), 1);
    assert_int_equal(count_everywhere(f, "dropped with its space", 22), 0);
    mn_wal_entry_t d;
    assert_true(meta_get(f, "dropped/a", &d));
    assert_int_equal(d.type, MN_WAL_OP_SPACE_DROP);
    assert_string_equal(d.space, "a");
    assert_int_equal(d.epoch, 1);
    assert_int_equal(d.lsn, 4); /* create, two remembers, drop */
    assert_int_equal(d.op.space_drop.space_id, sa);
    assert_int_equal(d.op.space_drop.at_ms, f->now);
    mn_wal_entry_clear(&d);
    assert_false(meta_get(f, "space/a", &d));
    assert_int_equal(mn_engine_get(f->e, "b", &keep, false, &m, &err), MN_OK);
    mn_memory_clear(&m);
    reopen(f);
    assert_int_equal(mn_engine_space_get(f->e, "a", &st, &err), MN_ERR_NOT_FOUND);
    /* the name can be created again, empty, with the next epoch */
    assert_int_equal(mn_test_space(f->e, "a", 3, MN_METRIC_L2), MN_OK);
    assert_int_equal(mn_engine_space_get(f->e, "a", &st, &err), MN_OK);
    assert_int_equal(st.memories, 0);
    assert_int_equal(st.epoch, 2);
    assert_int_equal(st.last_lsn, 1);
    assert_int_equal(st.def.dim, 3);
    assert_false(meta_get(f, "dropped/a", &d));
    assert_int_equal(count_prefix(f, CF_WAL, sa), 0);
    reopen(f);
    assert_int_equal(mn_engine_space_get(f->e, "a", &st, &err), MN_OK);
    assert_int_equal(st.epoch, 2);
    assert_int_equal(mn_engine_space_drop(f->e, "a", &err), MN_OK);
    assert_int_equal(mn_test_space(f->e, "a", 2, MN_METRIC_COSINE), MN_OK);
    assert_int_equal(mn_engine_space_get(f->e, "a", &st, &err), MN_OK);
    assert_int_equal(st.epoch, 3);

    /* in one group: a write queued before the drop goes with the space, one
     * queued after it finds no space */
    mn_engine_t *e = (mn_engine_t *)f->e;
    mn__commit_hold(e, true);
    drop_arg args[3] = {
        {f, false, MN_ERR_INTERNAL}, {f, true, MN_ERR_INTERNAL}, {f, false, MN_ERR_INTERNAL}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, drop_or_write, &args[i]), 0);
        for (int waited = 0; mn__commit_queued(e) < (size_t)i + 1; waited++) {
            assert_true(waited < 10000);
            sleep_ms(1);
        }
    }
    mn__commit_hold(e, false);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(args[0].rc, MN_OK);
    assert_int_equal(args[1].rc, MN_OK);
    assert_int_equal(args[2].rc, MN_ERR_NOT_FOUND);
    assert_int_equal(mn_engine_space_get(f->e, "a", &st, &err), MN_ERR_NOT_FOUND);
    assert_int_equal(count_everywhere(f, "in the same group", 17), 0);
    assert_true(meta_get(f, "dropped/a", &d));
    assert_int_equal(d.epoch, 3);
    assert_int_equal(d.lsn, 3); /* create, the write before, the drop */
    mn_wal_entry_clear(&d);
    assert_int_equal(mn_engine_space_get(f->e, "b", &st, &err), MN_OK);
    assert_int_equal(st.memories, 1);
}

static void test_ingested_space_drop_drops_the_local_space(void **state)
{
    fx *f = *state;
    assert_int_equal(mn_test_space(f->e, "a", 2, MN_METRIC_COSINE), MN_OK);
    mn_wal_entry_t d = {0};
    strcpy(d.space, "a");
    d.epoch = 1;
    d.lsn = 9;
    d.type = MN_WAL_OP_SPACE_DROP;
    d.op.space_drop.space_id = 777; /* the writer's prefix: ours is used */
    d.op.space_drop.at_ms = f->now - 5;
    uint8_t *buf;
    size_t len;
    assert_int_equal(mn_wire_wal_encode(&d, &buf, &len), MN_OK);
    mn_error err = {0};
    uint32_t sa = mn_test_space_sid(f->e, "a");
    assert_int_equal(mn_engine_ingest(f->e, buf, len, &err), MN_OK);
    free(buf);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "a", &st, &err), MN_ERR_NOT_FOUND);
    assert_true(meta_get(f, "dropped/a", &d));
    assert_int_equal(d.op.space_drop.space_id, sa);
    assert_int_equal(d.op.space_drop.at_ms, f->now - 5);
    mn_wal_entry_clear(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_concurrent_writers_share_one_fsync, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_ephemeral_writes_add_no_fsync, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_forget_erases_content_and_vector_from_the_wal, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(
            test_forgetting_a_semantic_memory_erases_its_consolidate_entries, setup,
            mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_old_wal_is_migrated_and_scrubbed_at_start, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(
            test_space_drop_is_a_wal_entry_and_recreate_takes_the_next_epoch, setup,
            mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_ingested_space_drop_drops_the_local_space, setup,
                                        mn_test_eng_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
