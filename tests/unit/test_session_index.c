/* engine/session_index.c: slots by session survive growth, removal keeps the
 * others, empty sessions are dropped at growth and come back when re-added. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "engine/session_index.h"

static int has(const uint32_t *s, size_t n, uint32_t v)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == v) return 1;
    return 0;
}

static void test_add_remove_and_growth(void **state)
{
    (void)state;
    mn__session_ix *x = mn__session_ix_new();
    assert_non_null(x);
    size_t n = 99;
    assert_null(mn__session_ix_slots(x, "none", &n));
    assert_int_equal(n, 0);
    char name[32];
    /* 500 sessions of 3 slots each: the table grows several times */
    for (uint32_t i = 0; i < 500; i++) {
        snprintf(name, sizeof name, "s%u", i);
        for (uint32_t j = 0; j < 3; j++)
            assert_int_equal(mn__session_ix_add(x, name, i * 3 + j), 0);
    }
    for (uint32_t i = 0; i < 500; i++) {
        snprintf(name, sizeof name, "s%u", i);
        const uint32_t *s = mn__session_ix_slots(x, name, &n);
        assert_int_equal(n, 3);
        for (uint32_t j = 0; j < 3; j++)
            assert_true(has(s, n, i * 3 + j));
    }
    /* removing one slot keeps the other two; removing an absent one changes nothing */
    mn__session_ix_remove(x, "s7", 22);
    mn__session_ix_remove(x, "s7", 9999);
    mn__session_ix_remove(x, "nope", 1);
    const uint32_t *s = mn__session_ix_slots(x, "s7", &n);
    assert_int_equal(n, 2);
    assert_true(has(s, n, 21) && has(s, n, 23) && !has(s, n, 22));
    /* empty the first 400 sessions, then grow: they go, the rest stay */
    for (uint32_t i = 0; i < 400; i++) {
        snprintf(name, sizeof name, "s%u", i);
        for (uint32_t j = 0; j < 3; j++)
            mn__session_ix_remove(x, name, i * 3 + j);
    }
    for (uint32_t i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "t%u", i);
        assert_int_equal(mn__session_ix_add(x, name, 100000 + i), 0);
    }
    assert_null(mn__session_ix_slots(x, "s3", &n));
    assert_non_null(mn__session_ix_slots(x, "s450", &n));
    assert_int_equal(n, 3);
    assert_int_equal(mn__session_ix_add(x, "s3", 5), 0);
    s = mn__session_ix_slots(x, "s3", &n);
    assert_int_equal(n, 1);
    assert_int_equal(s[0], 5);
    s = mn__session_ix_slots(x, "t1999", &n);
    assert_int_equal(n, 1);
    assert_int_equal(s[0], 101999);
    mn__session_ix_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_remove_and_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
