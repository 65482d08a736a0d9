/* TEST ONLY: MNEMO_TEST_DROP_ACKED=N makes this process lose the Nth memory it
 * acknowledges: right after the remember that carried it is durable, the memory is
 * deleted through the ordinary forget path, as if the write had never been kept. It is
 * the deliberately broken build the chaos harness's checker must catch
 * (tests/cluster/README.md); never set it in production. Unset, zero or not a number,
 * nothing happens: one branch on a field that is 0. */
#include "test_drop.h"

#include <errno.h>
#include <stdlib.h>

#include "engine_internal.h"

void mn__test_drop_init(mn_engine_t *e)
{
    const char *s = getenv("MNEMO_TEST_DROP_ACKED");
    if (!s || !*s) return;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v == 0 || s[0] == '-') {
        mn_log_warn("TEST ONLY: MNEMO_TEST_DROP_ACKED=\"%s\" ignored: not an integer >= 1", s);
        return;
    }
    e->test_drop_nth = (uint64_t)v;
    mn_log_warn("TEST ONLY: MNEMO_TEST_DROP_ACKED=%llu: this process will DELETE acknowledged "
                "memory number %llu "
                "(a deliberately broken build for the chaos checker)",
                v, v);
}

void mn__test_drop_after_remember(mn_engine_t *e, const char *space, const mn_id_t *ids, size_t n)
{
    if (!e->test_drop_nth) return;
    uint64_t first = atomic_fetch_add(&e->test_acked, n) + 1; /* 1-based, this call's first */
    if (e->test_drop_nth < first || e->test_drop_nth >= first + n) return;
    const mn_id_t *id = &ids[e->test_drop_nth - first];
    char text[MN_ID_TEXT_LEN + 1];
    mn_id_format(id, text);
    mn_error err = {0};
    mn_err rc = mn_engine_forget(e, space, id, MN_FORGET_DELETE, &err);
    mn_log_warn("TEST ONLY: MNEMO_TEST_DROP_ACKED: dropped acknowledged memory %s of space %s "
                "(%s)",
                text, space, rc ? err.message : "deleted");
}
