/* engine events: a subscriber sees the changes of its space in order (remember,
 * forget, recall summaries), nothing of other spaces; a subscriber that falls
 * behind is dropped with a final event; dropping the space and closing the
 * engine end the stream; notify fires when the queue turns non-empty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/engine.h"
#include "testutil.h"

typedef mn_test_eng fx;

static int setup(void **state)
{
    return mn_test_eng_setup(state, "mnemo-events", false);
}

static void make_space(fx *f, const char *name)
{
    assert_int_equal(mn_test_space(f->e, name, 2, MN_METRIC_COSINE), MN_OK);
}

static mn_id_t remember(fx *f, const char *space, const char *content)
{
    float v[2] = {1, 0.5f};
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)content;
    m.content_len = strlen(content);
    m.embedding = v;
    m.dim = 2;
    mn_id_t id;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(f->e, space, &m, 1, &id, &err), MN_OK);
    return id;
}

static atomic_int notified;
static void on_notify(void *arg)
{
    (void)arg;
    atomic_fetch_add(&notified, 1);
}

static void test_events_of_a_space_in_order(void **state)
{
    fx *f = *state;
    make_space(f, "a");
    make_space(f, "b");
    mn_engine_sub_t *s = NULL;
    mn_error err = {0};
    assert_int_equal(mn_engine_subscribe(f->e, "nope", 0, NULL, NULL, &s, &err), MN_ERR_NOT_FOUND);
    assert_null(s);
    atomic_store(&notified, 0);
    assert_int_equal(mn_engine_subscribe(f->e, "a", 16, on_notify, NULL, &s, &err), MN_OK);

    mn_event_t ev[8];
    bool ended = true;
    assert_int_equal(mn_engine_sub_next(s, ev, 8, 0, &ended), 0); /* nothing yet, no wait */
    assert_false(ended);

    mn_id_t id1 = remember(f, "a", "first");
    remember(f, "b", "other space");
    mn_id_t id2 = remember(f, "a", "second");
    assert_int_equal(mn_engine_forget(f->e, "a", &id1, MN_FORGET_SUPPRESS, &err), MN_OK);
    float q[2] = {1, 0.5f};
    mn_recall_req_t rq = {.embedding = q, .dim = 2, .k = 5};
    mn_filter_init(&rq.filter);
    mn_recall_result_t rr;
    assert_int_equal(mn_engine_recall(f->e, "a", &rq, &rr, &err), MN_OK);
    mn_recall_result_clear(&rr);
    assert_true(atomic_load(&notified) >= 1);

    size_t n = mn_engine_sub_next(s, ev, 8, 1000, &ended);
    assert_int_equal(n, 4);
    assert_false(ended);
    assert_int_equal(ev[0].kind, MN_EVENT_REMEMBER);
    assert_memory_equal(&ev[0].id, &id1, sizeof id1);
    assert_int_equal(ev[1].kind, MN_EVENT_REMEMBER);
    assert_memory_equal(&ev[1].id, &id2, sizeof id2);
    assert_true(ev[1].lsn > ev[0].lsn);
    assert_int_equal(ev[2].kind, MN_EVENT_FORGET);
    assert_int_equal(ev[2].forget_mode, MN_FORGET_SUPPRESS);
    assert_int_equal(ev[3].kind, MN_EVENT_RECALL);
    assert_int_equal(ev[3].count, 1); /* the suppressed one is hidden */
    assert_string_equal(ev[3].path, "exact");
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ev[i].seq, i + 1);
    assert_string_equal(mn_event_kind_name(ev[2].kind), "forget");

    /* a wake returns without events */
    mn_engine_sub_wake(s);
    assert_int_equal(mn_engine_sub_next(s, ev, 8, -1, &ended), 0);

    /* dropping the space ends the stream */
    assert_int_equal(mn_engine_space_drop(f->e, "a", &err), MN_OK);
    n = mn_engine_sub_next(s, ev, 8, 1000, &ended);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].kind, MN_EVENT_SPACE_DROPPED);
    assert_true(ended);
    assert_int_equal(mn_engine_sub_next(s, ev, 8, 1000, &ended), 0);
    mn_engine_unsubscribe(s);
}

static void test_slow_subscriber_is_dropped_with_a_final_event(void **state)
{
    fx *f = *state;
    make_space(f, "a");
    mn_engine_sub_t *s = NULL, *fast = NULL;
    mn_error err = {0};
    assert_int_equal(mn_engine_subscribe(f->e, "a", 4, NULL, NULL, &s, &err), MN_OK);
    assert_int_equal(mn_engine_subscribe(f->e, "a", 64, NULL, NULL, &fast, &err), MN_OK);
    for (int i = 0; i < 10; i++)
        remember(f, "a", "x");
    mn_event_t ev[16];
    bool ended = false;
    size_t n = mn_engine_sub_next(s, ev, 16, 1000, &ended);
    assert_int_equal(n, 5); /* the 4 it could hold, then the end */
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(ev[i].kind, MN_EVENT_REMEMBER);
    assert_int_equal(ev[4].kind, MN_EVENT_DROPPED);
    assert_int_equal(ev[4].seq, 5);
    assert_true(ended);
    /* the other subscriber kept everything */
    n = mn_engine_sub_next(fast, ev, 16, 1000, &ended);
    assert_int_equal(n, 10);
    assert_false(ended);
    mn_engine_unsubscribe(s);

    /* closing the engine ends the rest */
    mn_engine_close(f->e);
    f->e = NULL;
    n = mn_engine_sub_next(fast, ev, 16, 1000, &ended);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].kind, MN_EVENT_CLOSED);
    assert_true(ended);
    mn_engine_unsubscribe(fast); /* still allowed after the close */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_events_of_a_space_in_order, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_slow_subscriber_is_dropped_with_a_final_event, setup,
                                        mn_test_eng_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
