/* util: CRC32C check values, UUIDv7 ordering and text form, HLC monotonicity,
 * RFC 3339 round trips, UTF-8 validation, PRNG determinism, one log line per event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mnemo/assert.h"
#include "mnemo/util.h"

static void test_crc32c_matches_rfc3720_vectors(void **state)
{
    (void)state;
    uint8_t buf[48];
    memset(buf, 0, 32);
    assert_int_equal(mn_crc32c(0, buf, 32), 0x8A9136AA);
    memset(buf, 0xff, 32);
    assert_int_equal(mn_crc32c(0, buf, 32), 0x62A8AB43);
    for (int i = 0; i < 32; i++) buf[i] = (uint8_t)i;
    assert_int_equal(mn_crc32c(0, buf, 32), 0x46DD794E);
    assert_int_equal(mn_crc32c(0, "123456789", 9), 0xE3069283);
    /* incremental == one shot */
    uint32_t c = mn_crc32c(0, "1234", 4);
    assert_int_equal(mn_crc32c(c, "56789", 5), 0xE3069283);
}

static void test_id_is_v7_monotonic_and_round_trips(void **state)
{
    (void)state;
    mn_idgen_t g;
    mn_idgen_init(&g, 42);
    mn_id_t prev = mn_idgen_next(&g, 1700000000000);
    for (int i = 0; i < 10000; i++) {
        /* same ms many times, and a clock that steps back */
        int64_t now = 1700000000000 + (i % 7 == 0 ? -5 : i / 1000);
        mn_id_t id = mn_idgen_next(&g, now);
        assert_true(mn_id_cmp(&prev, &id) < 0);
        assert_int_equal(id.b[6] >> 4, 7);
        assert_int_equal(id.b[8] >> 6, 2);
        char txt[MN_ID_TEXT_LEN + 1];
        mn_id_format(&id, txt);
        assert_int_equal(strlen(txt), 36);
        mn_id_t back;
        assert_int_equal(mn_id_parse(txt, 36, &back), MN_OK);
        assert_memory_equal(back.b, id.b, 16);
        prev = id;
    }
    mn_id_t first = mn_idgen_next(&g, 1800000000000);
    assert_int_equal(mn_id_time_ms(&first), 1800000000000);
    mn_id_t bad;
    assert_int_equal(mn_id_parse("not-an-id", 9, &bad), MN_ERR_INVALID);
    assert_int_equal(mn_id_parse("0190a0b0-c0d0-7e0f-8a0b-0c0d0e0f10zz", 36, &bad), MN_ERR_INVALID);
    mn_idgen_destroy(&g);
}

static void test_hlc_is_monotonic_and_merges_remote(void **state)
{
    (void)state;
    mn_hlc_t h;
    mn_hlc_init(&h);
    mn_hlc_ts_t a = mn_hlc_now(&h, 1000);
    mn_hlc_ts_t b = mn_hlc_now(&h, 1000);
    mn_hlc_ts_t c = mn_hlc_now(&h, 999); /* clock went back */
    assert_true(a < b && b < c);
    assert_int_equal(mn_hlc_ms(a), 1000);
    mn_hlc_ts_t remote = mn_hlc_make(5000, 7);
    mn_hlc_ts_t d = mn_hlc_update(&h, remote, 1001);
    assert_true(d > remote);
    assert_int_equal(mn_hlc_ms(d), 5000);
    mn_hlc_ts_t e = mn_hlc_now(&h, 6000);
    assert_int_equal(mn_hlc_ms(e), 6000);
    assert_int_equal(mn_hlc_logical(e), 0);
    mn_hlc_destroy(&h);
}

static void test_rfc3339_round_trip_and_rejects_garbage(void **state)
{
    (void)state;
    char buf[40];
    int64_t ms;
    mn_time_format_rfc3339(1763879424123, buf, sizeof buf);
    assert_string_equal(buf, "2025-11-23T06:30:24.123Z");
    assert_int_equal(mn_time_parse_rfc3339(buf, &ms), MN_OK);
    assert_int_equal(ms, 1763879424123);
    assert_int_equal(mn_time_parse_rfc3339("2025-11-23T08:30:24.123+02:00", &ms), MN_OK);
    assert_int_equal(ms, 1763879424123);
    assert_int_equal(mn_time_parse_rfc3339("1970-01-01T00:00:00Z", &ms), MN_OK);
    assert_int_equal(ms, 0);
    assert_int_equal(mn_time_parse_rfc3339("2025-02-30T00:00:00Z", &ms), MN_ERR_INVALID);
    assert_int_equal(mn_time_parse_rfc3339("2025-11-23", &ms), MN_ERR_INVALID);
    assert_int_equal(mn_time_parse_rfc3339("2025-11-23T06:30:24", &ms), MN_ERR_INVALID);
    assert_int_equal(mn_time_parse_rfc3339("2025-11-23T06:30:24Zjunk", &ms), MN_ERR_INVALID);
}

static void test_utf8_validation(void **state)
{
    (void)state;
    assert_true(mn_utf8_valid("hello", 5));
    assert_true(mn_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    assert_false(mn_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(mn_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(mn_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(mn_utf8_valid("\xe2\x82", 2));         /* truncated */
    assert_false(mn_utf8_valid("\x80", 1));             /* stray continuation */
}

static void test_utf8_encode_round_trips_through_validation(void **state)
{
    (void)state;
    const uint32_t cps[] = {0x24, 0x7F, 0x80, 0xA2, 0x7FF, 0x800, 0x20AC, 0xFFFF, 0x10000, 0x10348,
                            0x10FFFF};
    const size_t lens[] = {1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        char buf[4];
        size_t n = mn_utf8_encode(cps[i], buf);
        assert_int_equal(n, lens[i]);
        assert_true(mn_utf8_valid(buf, n));
    }
    char euro[4];
    assert_int_equal(mn_utf8_encode(0x20AC, euro), 3);
    assert_memory_equal(euro, "\xe2\x82\xac", 3);
}

/* Runs fn in a child with stderr on a pipe; returns the child's wait status and what it
 * wrote to stderr (out, NUL-terminated). */
static int run_child(void (*fn)(void), char *out, size_t cap)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fds[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void assert_holds(void)
{
    int lsn = 4, last = 3;
    mn_assert(lsn == last + 1);
}

static void assert_breaks(void)
{
    signal(SIGABRT, SIG_DFL);
    int lsn = 6, last = 3;
    mn_assert(lsn == last + 1);
}

static void test_mn_assert_passes_silently_and_aborts_naming_the_check(void **state)
{
    (void)state;
    char out[512];
    int st = run_child(assert_holds, out, sizeof out);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_string_equal(out, "");

    st = run_child(assert_breaks, out, sizeof out);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    assert_non_null(strstr(out, "invariant failed"));
    assert_non_null(strstr(out, "test_util.c:"));
    assert_non_null(strstr(out, "assert_breaks"));
    assert_non_null(strstr(out, "lsn == last + 1"));
}

static void test_prng_is_deterministic_and_bounded(void **state)
{
    (void)state;
    mn_prng_t a, b;
    mn_prng_seed(&a, 7);
    mn_prng_seed(&b, 7);
    for (int i = 0; i < 1000; i++) assert_int_equal(mn_prng_next(&a), mn_prng_next(&b));
    for (int i = 0; i < 1000; i++) {
        assert_true(mn_prng_below(&a, 10) < 10);
        double d = mn_prng_double(&a);
        assert_true(d >= 0.0 && d < 1.0);
    }
}

/* ---- the logger ---- */

/* What one mn_log_with call writes to stderr, with the given format (at most len bytes). */
static void log_capture(mn_log_format_t format, const mn_log_field_t *f, size_t nf,
                        const char *msg, char *out, size_t len)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    mn_log_configure(MN_LOG_DEBUG, format);
    mn_log_with(MN_LOG_INFO, f, nf, "%s", msg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    mn_log_configure(MN_LOG_INFO, MN_LOG_FORMAT_TEXT);
    rewind(tmp);
    size_t n = fread(out, 1, len - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

/* Client input (a decoded path parameter holding %0A) must not end the line or forge
 * another: control characters in the message and in field values are escaped. */
static void test_log_text_lines_escape_control_characters(void **state)
{
    (void)state;
    char out[1024];
    mn_log_field_t f[] = {{.key = "space", .str = "x\n2026-01-01T00:00:00.000Z error forged"},
                          {.key = "id", .str = "a\rb\x1b[2Jc"},
                          {.key = "plain", .str = "abc"}};
    log_capture(MN_LOG_FORMAT_TEXT, f, 3, "got \"x\nfake line\" and\ttab\x7f", out, sizeof out);
    assert_int_equal(count_char(out, '\n'), 1);
    assert_int_equal(count_char(out, '\r'), 0);
    assert_null(strchr(out, 0x1b));
    assert_null(strchr(out, 0x7f));
    assert_null(strchr(out, '\t'));
    assert_non_null(strstr(out, " info  got \"x\\nfake line\" and\\ttab\\x7f "));
    assert_non_null(strstr(out, " space=\"x\\n2026-01-01T00:00:00.000Z error forged\""));
    /* a value with control characters only is quoted too */
    assert_non_null(strstr(out, " id=\"a\\u000db\\u001b[2Jc\""));
    assert_non_null(strstr(out, " plain=abc\n"));
}

static void test_log_json_lines_escape_control_characters(void **state)
{
    (void)state;
    char out[1024];
    mn_log_field_t f[] = {{.key = "space", .str = "x\ny\x01"}};
    log_capture(MN_LOG_FORMAT_JSON, f, 1, "a\nb", out, sizeof out);
    assert_int_equal(count_char(out, '\n'), 1);
    assert_non_null(strstr(out, "\"msg\":\"a\\nb\""));
    assert_non_null(strstr(out, "\"space\":\"x\\ny\\u0001\"}\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_matches_rfc3720_vectors),
        cmocka_unit_test(test_id_is_v7_monotonic_and_round_trips),
        cmocka_unit_test(test_hlc_is_monotonic_and_merges_remote),
        cmocka_unit_test(test_rfc3339_round_trip_and_rejects_garbage),
        cmocka_unit_test(test_utf8_validation),
        cmocka_unit_test(test_utf8_encode_round_trips_through_validation),
        cmocka_unit_test(test_mn_assert_passes_silently_and_aborts_naming_the_check),
        cmocka_unit_test(test_prng_is_deterministic_and_bounded),
        cmocka_unit_test(test_log_text_lines_escape_control_characters),
        cmocka_unit_test(test_log_json_lines_escape_control_characters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
