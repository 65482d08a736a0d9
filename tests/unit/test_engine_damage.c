/* Damage is never silent (issue 14, 2): the acknowledged-lsn file (acked.c), a
 * start that refuses a store with less than it acknowledged, a salvage start
 * that reports and accepts the loss, and mnemo check's report. The damage of
 * RocksDB's own files is tested on the real binary (test_corruption.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/acked.h"
#include "mnemo/engine.h"
#include "testutil.h"

typedef mn_test_eng fx;

static int setup(void **state)
{
    return mn_test_eng_setup(state, "mnemo-damage", true);
}

/* n persistent (fsynced) remembers into space, one entry each. */
static void remember_n(mn_engine_t *e, const char *space, int n)
{
    for (int i = 0; i < n; i++) {
        float v[2] = {1, (float)i};
        mn_memory_t m;
        mn_memory_init(&m);
        m.content = "kept";
        m.content_len = 4;
        m.embedding = v;
        m.dim = 2;
        mn_id_t id;
        assert_int_equal(mn_engine_remember(e, space, &m, 1, &id, NULL), MN_OK);
    }
}

/* Space "s" (dim 2) with n memories; returns its store id. */
static uint32_t space_with(fx *f, int n)
{
    assert_int_equal(mn_test_space(f->e, "s", 2, MN_METRIC_L2), MN_OK);
    remember_n(f->e, "s", n);
    return mn_test_space_sid(f->e, "s");
}

/* Sets the acknowledged lsn of sid in dir's file, as a lost log tail would leave it. */
static void set_acked(const char *dir, uint32_t sid, uint64_t lsn)
{
    mn__acked *a;
    assert_int_equal(mn__acked_open(dir, true, &a, NULL, NULL), MN_OK);
    mn__acked_note(a, sid, lsn);
    mn__acked_write(a);
    mn__acked_close(a);
}

static uint64_t acked_of(const char *dir, uint32_t sid)
{
    mn__acked *a;
    assert_int_equal(mn__acked_open(dir, false, &a, NULL, NULL), MN_OK);
    uint64_t lsn = mn__acked_get(a, sid);
    mn__acked_close(a);
    return lsn;
}

static void test_acked_lsns_survive_reopen_and_torn_records_are_skipped(void **state)
{
    (void)state;
    char *dir = mn_test_tmpdir("mnemo-acked");
    mn__acked *a;
    assert_int_equal(mn__acked_open(dir, false, &a, NULL, NULL), MN_OK); /* absent: empty */
    assert_int_equal(mn__acked_max_sid(a), 0);
    mn__acked_close(a);
    set_acked(dir, 3, 41);
    set_acked(dir, 7, 9);
    assert_int_equal(acked_of(dir, 3), 41);
    assert_int_equal(acked_of(dir, 7), 9);
    assert_int_equal(acked_of(dir, 5), 0);
    /* a torn record (a power loss mid-write) is skipped, never trusted */
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, MN__ACKED_FILE);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 3 * 16 + 10, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    size_t torn = 0;
    assert_int_equal(mn__acked_open(dir, false, &a, &torn, NULL), MN_OK);
    assert_int_equal(torn, 1);
    assert_int_equal(mn__acked_get(a, 3), 0);
    assert_int_equal(mn__acked_get(a, 7), 9);
    assert_int_equal(mn__acked_max_sid(a), 7);
    mn__acked_close(a);
    mn_test_rmrf(dir);
    free(dir);
}

static void test_synced_writes_note_their_lsn_and_a_drop_forgets_it(void **state)
{
    fx *f = *state;
    uint32_t sid = space_with(f, 5);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, NULL), MN_OK);
    assert_int_equal(acked_of(f->dir, sid), st.last_lsn);
    assert_int_equal(mn_engine_space_drop(f->e, "s", NULL), MN_OK);
    assert_int_equal(acked_of(f->dir, sid), 0);
    mn_test_eng_reopen(f); /* no false alarm for the dropped space */
    assert_null(mn_engine_salvaged(f->e));
    /* nor when a crash came between the drop's write and its note */
    mn_engine_close(f->e);
    f->e = NULL;
    set_acked(f->dir, sid, st.last_lsn);
    mn_test_eng_open(f);
    assert_null(mn_engine_salvaged(f->e));
}

static void test_start_refuses_a_wal_that_ends_before_its_acknowledged_lsn(void **state)
{
    fx *f = *state;
    uint32_t sid = space_with(f, 3);
    mn_engine_close(f->e);
    f->e = NULL;
    set_acked(f->dir, sid, 100); /* 96 acknowledged entries the store lacks */
    mn_error err = {0};
    assert_int_equal(mn_engine_open(&f->opts, &f->e, &err), MN_ERR_CORRUPT);
    assert_null(f->e);
    assert_non_null(strstr(err.message, "space s"));
    assert_non_null(strstr(err.message, "acknowledged"));
    /* salvage: starts, says what is missing, and accepts it */
    f->opts.salvage = true;
    assert_int_equal(mn_engine_open(&f->opts, &f->e, &err), MN_OK);
    const char *why = mn_engine_space_damage(f->e, "s");
    assert_non_null(why);
    assert_non_null(strstr(why, "96 entries lost"));
    assert_non_null(mn_engine_salvaged(f->e));
    remember_n(f->e, "s", 1); /* writes go on after the last lsn the store has */
    f->opts.salvage = false;
    mn_test_eng_reopen(f);
    assert_null(mn_engine_salvaged(f->e));
    assert_null(mn_engine_space_damage(f->e, "s"));
}

static void test_start_refuses_a_missing_space_with_acknowledged_writes(void **state)
{
    fx *f = *state;
    mn_engine_close(f->e);
    f->e = NULL;
    set_acked(f->dir, 42, 7);
    mn_error err = {0};
    assert_int_equal(mn_engine_open(&f->opts, &f->e, &err), MN_ERR_CORRUPT);
    assert_non_null(strstr(err.message, "space id 42 is missing"));
    f->opts.salvage = true;
    assert_int_equal(mn_engine_open(&f->opts, &f->e, &err), MN_OK);
    assert_non_null(strstr(mn_engine_salvaged(f->e), "space id 42"));
    f->opts.salvage = false;
    mn_test_eng_reopen(f);
    assert_null(mn_engine_salvaged(f->e));
}

/* mn_engine_check's report into a string (malloc'd). */
static char *check(const char *dir, mn_engine_check_report_t *rep)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    assert_int_equal(mn_engine_check(dir, out, rep, NULL), MN_OK);
    fclose(out);
    return buf;
}

static void test_check_reports_a_whole_dir_and_a_lost_log_tail(void **state)
{
    fx *f = *state;
    uint32_t sid = space_with(f, 4);
    mn_engine_check_report_t rep;
    mn_error err = {0};
    mn_engine_close(f->e); /* (a server's lock is tested on the binary: test_corruption.py) */
    f->e = NULL;
    char *out = check(f->dir, &rep);
    assert_int_equal(rep.problems, 0);
    assert_int_equal(rep.spaces, 1);
    assert_int_equal(rep.records, 4);
    assert_int_equal(rep.vectors, 4);
    assert_int_equal(rep.wal_entries, 5); /* the create and four remembers */
    assert_non_null(strstr(out, "ok (0 problems)"));
    free(out);
    set_acked(f->dir, sid, 9);
    out = check(f->dir, &rep);
    assert_int_equal(rep.problems, 1);
    assert_non_null(strstr(out, "DAMAGED: space s: wal ends at lsn 5"));
    free(out);
    assert_int_equal(mn_engine_check("/nonexistent/mnemo", stdout, &rep, &err), MN_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acked_lsns_survive_reopen_and_torn_records_are_skipped),
        cmocka_unit_test_setup_teardown(test_synced_writes_note_their_lsn_and_a_drop_forgets_it,
                                        setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(
            test_start_refuses_a_wal_that_ends_before_its_acknowledged_lsn, setup,
            mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_start_refuses_a_missing_space_with_acknowledged_writes,
                                        setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_check_reports_a_whole_dir_and_a_lost_log_tail, setup,
                                        mn_test_eng_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
