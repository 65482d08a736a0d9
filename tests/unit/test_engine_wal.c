/* engine write path: group commit shares one fsync between concurrent writers
 * (held committer, deterministic), ephemeral writes add no fsync. */
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

#include "engine/engine_internal.h"
#include "mnemo/engine.h"
#include "mnemo/wire.h"
#include "testutil.h"

typedef struct fx {
    char *dir;
    mn_engine_t *e;
    int64_t now;
} fx;

static int64_t fake_clock(void *arg)
{
    return __atomic_load_n(&((fx *)arg)->now, __ATOMIC_SEQ_CST);
}

static void open_engine(fx *f)
{
    mn_engine_options o;
    mn_test_engine_options(&o, f->dir);
    o.clock = fake_clock;
    o.clock_arg = f;
    mn_error err = {0};
    assert_int_equal(mn_engine_open(&o, &f->e, &err), MN_OK);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->dir = mn_test_tmpdir("mnemo-wal");
    f->now = 1700000000000;
    open_engine(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    mn_engine_close(f->e);
    mn_test_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void reopen(fx *f)
{
    mn_engine_close(f->e);
    open_engine(f);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- group commit ---- */

typedef struct gc_writer {
    fx *f;
    mn_lifecycle lifecycle;
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
static void held_group(fx *f, const mn_lifecycle *lc, int n, mn_engine_stats *before,
                       mn_engine_stats *after, mn_hist_snapshot *synced_before,
                       mn_hist_snapshot *synced_after)
{
    mn_engine *e = (mn_engine *)f->e;
    mn_engine_metrics m;
    mn_error err = {0};
    assert_int_equal(mn_engine_get_metrics(f->e, &m, &err), MN_OK);
    *before = m.stats;
    *synced_before = m.group_synced;
    mn_engine_metrics_clear(&m);
    mn_commit_hold(e, true);
    pthread_t th[16];
    gc_writer w[16];
    assert_true(n <= 16);
    for (int i = 0; i < n; i++) {
        w[i] = (gc_writer){f, lc[i], MN_ERR_INTERNAL};
        assert_int_equal(pthread_create(&th[i], NULL, gc_write, &w[i]), 0);
    }
    /* every writer is queued behind the held committer (10 s deadline) */
    for (int waited = 0; mn_commit_queued(e) < (size_t)n; waited++) {
        assert_true(waited < 10000);
        sleep_ms(1);
    }
    assert_int_equal(mn_commit_queued(e), n);
    mn_commit_hold(e, false);
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
    mn_lifecycle lc[N];
    for (int i = 0; i < N; i++)
        lc[i] = MN_LIFECYCLE_PERSISTENT;
    mn_engine_stats b, a;
    mn_hist_snapshot hb, ha;
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
    mn_space_stats st;
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
    mn_lifecycle lc[N];
    for (int i = 0; i < N; i++)
        lc[i] = MN_LIFECYCLE_EPHEMERAL;
    mn_engine_stats b, a;
    mn_hist_snapshot hb, ha;
    held_group(f, lc, N, &b, &a, &hb, &ha);
    assert_int_equal(a.entries - b.entries, N);
    assert_int_equal(a.commits - b.commits, 1);
    assert_int_equal(a.synced_commits - b.synced_commits, 0);
    assert_int_equal(ha.count - hb.count, 0);
    /* one ephemeral write on its own: a commit, no fsync */
    gc_writer w = {f, MN_LIFECYCLE_EPHEMERAL, MN_ERR_INTERNAL};
    gc_write(&w);
    assert_int_equal(w.rc, MN_OK);
    mn_engine_stats c;
    mn_engine_get_stats(f->e, &c);
    assert_int_equal(c.commits - a.commits, 1);
    assert_int_equal(c.synced_commits - a.synced_commits, 0);
    /* a group mixing both classes needs (and shares) one fsync */
    mn_lifecycle mix[4] = {MN_LIFECYCLE_EPHEMERAL, MN_LIFECYCLE_PERSISTENT, MN_LIFECYCLE_EPHEMERAL,
                           MN_LIFECYCLE_SESSION};
    held_group(f, mix, 4, &b, &a, &hb, &ha);
    assert_int_equal(a.entries - b.entries, 4);
    assert_int_equal(a.commits - b.commits, 1);
    assert_int_equal(a.synced_commits - b.synced_commits, 1);
    assert_int_equal(ha.sum - hb.sum, 4);
    reopen(f);
    mn_space_stats st;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.memories, N + 1 + 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_concurrent_writers_share_one_fsync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ephemeral_writes_add_no_fsync, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
