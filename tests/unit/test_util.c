/* util: CRC32C check values, UUIDv7 ordering and text form, HLC monotonicity,
 * RFC 3339 round trips, UTF-8 validation, PRNG determinism. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

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
    mn_hlc_ts a = mn_hlc_now(&h, 1000);
    mn_hlc_ts b = mn_hlc_now(&h, 1000);
    mn_hlc_ts c = mn_hlc_now(&h, 999); /* clock went back */
    assert_true(a < b && b < c);
    assert_int_equal(mn_hlc_ms(a), 1000);
    mn_hlc_ts remote = mn_hlc_make(5000, 7);
    mn_hlc_ts d = mn_hlc_update(&h, remote, 1001);
    assert_true(d > remote);
    assert_int_equal(mn_hlc_ms(d), 5000);
    mn_hlc_ts e = mn_hlc_now(&h, 6000);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_matches_rfc3720_vectors),
        cmocka_unit_test(test_id_is_v7_monotonic_and_round_trips),
        cmocka_unit_test(test_hlc_is_monotonic_and_merges_remote),
        cmocka_unit_test(test_rfc3339_round_trip_and_rejects_garbage),
        cmocka_unit_test(test_utf8_validation),
        cmocka_unit_test(test_prng_is_deterministic_and_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
