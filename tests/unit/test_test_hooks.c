/* The TEST ONLY hooks of the chaos harness (tests/cluster/README.md), each seen to act
 * and to be read from the environment: MNEMO_TEST_CLOCK_OFFSET_MS (util/time.c) and
 * MNEMO_TEST_DROP_ACKED (engine/test_drop.c). main sets both before anything reads a
 * clock or opens an engine, as a server start would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mnemo/engine.h"
#include "mnemo/util.h"
#include "testutil.h"

#define DAY_MS (86400LL * 1000)

static void test_clock_offset_shifts_the_wall_clock_only(void **state)
{
    (void)state;
    assert_int_equal(mn_time_test_offset_ms(), -DAY_MS);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t sys_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    /* a day back, give or take far more than two clock readings can be apart */
    int64_t diff_ms = mn_time_now_ms() - sys_ms;
    assert_true(diff_ms > -DAY_MS - 60000 && diff_ms < -DAY_MS + 60000);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t mono_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t mono_diff_ms = mn_time_mono_ns() / 1000000 - mono_ms;
    assert_true(mono_diff_ms > -60000 && mono_diff_ms < 60000);
}

static int setup(void **state)
{
    return mn_test_eng_setup(state, "mnemo-test-hooks", true);
}

static mn_memory_t memory(const char *content)
{
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)content;
    m.content_len = strlen(content);
    return m;
}

static mn_err get(mn_engine_t *e, const mn_id_t *id)
{
    mn_memory_t out;
    mn_error err = {0};
    mn_err rc = mn_engine_get(e, "s", id, false, &out, &err);
    mn_memory_clear(&out);
    return rc;
}

static void test_drop_acked_deletes_the_nth_acknowledged_memory_only(void **state)
{
    mn_test_eng *t = *state;
    mn_error err = {0};
    assert_int_equal(mn_test_space(t->e, "s", 2, MN_METRIC_COSINE), MN_OK);
    mn_memory_t one = memory("first"), two = memory("second");
    mn_memory_t batch[2] = {memory("third"), memory("fourth")};
    mn_id_t ids[4];
    assert_int_equal(mn_engine_remember(t->e, "s", &one, 1, &ids[0], &err), MN_OK);
    assert_int_equal(mn_engine_remember(t->e, "s", &two, 1, &ids[1], &err), MN_OK);
    /* the third is the first of a batch, acknowledged like the others */
    assert_int_equal(mn_engine_remember(t->e, "s", batch, 2, &ids[2], &err), MN_OK);
    assert_int_equal(get(t->e, &ids[0]), MN_OK);
    assert_int_equal(get(t->e, &ids[1]), MN_OK);
    assert_int_equal(get(t->e, &ids[2]), MN_ERR_GONE);
    assert_int_equal(get(t->e, &ids[3]), MN_OK);
    mn_test_eng_reopen(t); /* lost for good, the others kept */
    assert_int_equal(get(t->e, &ids[2]), MN_ERR_GONE);
    assert_int_equal(get(t->e, &ids[3]), MN_OK);
}

int main(void)
{
    setenv("MNEMO_TEST_CLOCK_OFFSET_MS", "-86400000", 1);
    setenv("MNEMO_TEST_DROP_ACKED", "3", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_offset_shifts_the_wall_clock_only),
        cmocka_unit_test_setup_teardown(test_drop_acked_deletes_the_nth_acknowledged_memory_only,
                                        setup, mn_test_eng_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
