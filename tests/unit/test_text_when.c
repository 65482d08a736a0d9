/* Time expressions in recall cues (engine/text/when.c): what parses, to which
 * window, against which reference day; what must not parse; bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/text/when.h"
#include "mnemo/util.h"

#define DAY_MS 86400000LL

/* "2024-05-05" -> ms at 00:00 UTC. */
static int64_t day_ms(const char *ymd)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%sT00:00:00Z", ymd);
    int64_t ms = 0;
    assert_int_equal(mn_time_parse_rfc3339(buf, &ms), 0);
    return ms;
}

static void fmt_day(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    assert_non_null(gmtime_r(&t, &tm));
    strftime(out, 32, "%Y-%m-%d", &tm);
}

/* Parses text against the reference day ref (noon UTC) and checks the window
 * [from, to) ("" = open), the unit and the matched words. */
static void check(const char *text, const char *ref, const char *from, const char *to,
                  mn_text_when_unit_t unit, const char *matched)
{
    mn_text_when_t w;
    bool ok = mn_text_when_find(text, strlen(text), day_ms(ref) + DAY_MS / 2, &w);
    if (!ok) fail_msg("\"%s\" (ref %s): no time found", text, ref);
    char f[32] = "", t[32] = "";
    if (w.has_from) fmt_day(w.from_ms, f);
    if (w.has_to) fmt_day(w.to_ms, t);
    if (strcmp(f, from) || strcmp(t, to) || w.unit != unit)
        fail_msg("\"%s\" (ref %s): got [%s, %s) %s, want [%s, %s) %s", text, ref, f, t,
                 mn_text_when_unit_name(w.unit), from, to, mn_text_when_unit_name(unit));
    if (matched && (w.len != strlen(matched) || memcmp(text + w.start, matched, w.len)))
        fail_msg("\"%s\": matched \"%.*s\", want \"%s\"", text, (int)w.len, text + w.start,
                 matched);
}

static void none(const char *text)
{
    mn_text_when_t w;
    if (mn_text_when_find(text, strlen(text), day_ms("2024-02-10"), &w))
        fail_msg("\"%s\": parsed \"%.*s\" as a time, want none", text, (int)w.len, text + w.start);
}

#define D MN_TEXT_WHEN_DAY
#define W MN_TEXT_WHEN_WEEK
#define M MN_TEXT_WHEN_MONTH
#define Y MN_TEXT_WHEN_YEAR
#define R MN_TEXT_WHEN_RANGE

static void test_absolute_dates(void **state)
{
    (void)state;
    const char *r = "2024-02-10"; /* a Saturday */
    check("What did Elise buy on 7 Jan 2024?", r, "2024-01-07", "2024-01-08", D, "7 Jan 2024");
    check("What kind of pasta did Kate make on 29 Dec 2023?", r, "2023-12-29", "2023-12-30", D,
          "29 Dec 2023");
    check("What book is Emi reading on 21.01.2024?", r, "2024-01-21", "2024-01-22", D,
          "21.01.2024");
    check("naps on January 6 2024", r, "2024-01-06", "2024-01-07", D, "January 6 2024");
    check("on December 28th, 2023 we met", r, "2023-12-28", "2023-12-29", D, "December 28th, 2023");
    check("What happened on the 17th of January, 2024 with a cat", r, "2024-01-17", "2024-01-18", D,
          "the 17th of January, 2024");
    check("with his wife on the 31 of December 2023?", r, "2023-12-31", "2024-01-01", D,
          "the 31 of December 2023");
    check("on 2024-05-05", r, "2024-05-05", "2024-05-06", D, "2024-05-05");
    check("on 2024/5/5", r, "2024-05-05", "2024-05-06", D, "2024/5/5");
    check("on 25/12/2023", r, "2023-12-25", "2023-12-26", D, "25/12/2023");
    check("on 12/25/2023", r, "2023-12-25", "2023-12-26", D, "12/25/2023");
    check("Where is Paola going on the 10th of February 2024?", r, "2024-02-10", "2024-02-11", D,
          NULL);
    check("What did Elise play 5 Jan 2024?", r, "2024-01-05", "2024-01-06", D, "5 Jan 2024");
    check("in the library on 5 January 2024", r, "2024-01-05", "2024-01-06", D, NULL);
    check("Sept 3, 2021", r, "2021-09-03", "2021-09-04", D, NULL);
    check("29 February 2024", r, "2024-02-29", "2024-03-01", D, NULL);
}

static void test_yearless_dates_resolve_to_the_most_recent(void **state)
{
    (void)state;
    check("What did I do on May 5?", "2024-08-01", "2024-05-05", "2024-05-06", D, "May 5");
    check("What did I do on May 5?", "2024-03-01", "2023-05-05", "2023-05-06", D, "May 5");
    check("on May 5", "2024-05-05", "2024-05-05", "2024-05-06", D, NULL); /* today counts */
    check("on the 5th of May", "2024-08-01", "2024-05-05", "2024-05-06", D, "the 5th of May");
    check("5 May", "2024-08-01", "2024-05-05", "2024-05-06", D, "5 May");
    check("on 29 Feb", "2025-06-01", "2024-02-29", "2024-03-01", D, NULL); /* last leap year */
    check("December 28", "2024-01-10", "2023-12-28", "2023-12-29", D, NULL);
    check("on may 5th", "2024-08-01", "2024-05-05", "2024-05-06", D, "may 5th");
    check("New Year's Eve", "2024-02-10", "2023-12-31", "2024-01-01", D, "New Year's Eve");
    check("Where did Elise celebrate the New Year?", "2024-02-10", "2024-01-01", "2024-01-02", D,
          "New Year");
    check("new year\xe2\x80\x99s eve", "2024-02-10", "2023-12-31", "2024-01-01", D, NULL);
    check("celebrate New Year 2025", "2024-02-10", "2025-01-01", "2025-01-02", D, "New Year 2025");
    check("on Christmas Eve", "2024-02-10", "2023-12-24", "2023-12-25", D, "Christmas Eve");
}

static void test_months(void **state)
{
    (void)state;
    check("in May", "2024-08-01", "2024-05-01", "2024-06-01", M, "in May");
    check("in May", "2024-03-01", "2023-05-01", "2023-06-01", M, "in May");
    check("during May", "2024-05-20", "2024-05-01", "2024-06-01", M, NULL);
    check("last May", "2024-08-01", "2024-05-01", "2024-06-01", M, "last May");
    check("last May", "2024-05-20", "2023-05-01", "2023-06-01", M, "last May");
    check("last may", "2024-08-01", "2024-05-01", "2024-06-01", M, "last may");
    check("this May", "2024-03-01", "2024-05-01", "2024-06-01", M, "this May");
    check("Were they sick in January?", "2024-02-10", "2024-01-01", "2024-02-01", M, "in January");
    check("a hike in January 2024?", "2024-02-10", "2024-01-01", "2024-02-01", M,
          "in January 2024");
    check("January 2024 was cold", "2024-02-10", "2024-01-01", "2024-02-01", M, "January 2024");
    check("in february", "2024-02-10", "2024-02-01", "2024-03-01", M, NULL);
    check("in December", "2024-02-10", "2023-12-01", "2024-01-01", M, NULL);
    check("early May 2024", "2024-08-01", "2024-05-01", "2024-05-11", R, "early May 2024");
    check("late February", "2024-03-10", "2024-02-21", "2024-03-01", R, "late February");
}

static void test_relative_days_and_weeks(void **state)
{
    (void)state;
    const char *r = "2024-02-14"; /* a Wednesday */
    check("yesterday", r, "2024-02-13", "2024-02-14", D, "yesterday");
    check("What did we eat today?", r, "2024-02-14", "2024-02-15", D, "today");
    check("the day before yesterday", r, "2024-02-12", "2024-02-13", D, NULL);
    check("last night", r, "2024-02-13", "2024-02-14", D, "last night");
    check("on Tuesday", r, "2024-02-13", "2024-02-14", D, "Tuesday");
    check("Wednesday", r, "2024-02-14", "2024-02-15", D, NULL);
    check("last Wednesday", r, "2024-02-07", "2024-02-08", D, "last Wednesday");
    check("last Tuesday", r, "2024-02-13", "2024-02-14", D, "last Tuesday");
    check("last Friday", r, "2024-02-09", "2024-02-10", D, NULL);
    check("this Friday", r, "2024-02-16", "2024-02-17", D, NULL);
    check("Friday before last", r, "2024-02-02", "2024-02-03", D, "Friday before last");
    check("two weeks ago", r, "2024-01-28", "2024-02-04", W, "two weeks ago");
    check("3 days ago", r, "2024-02-11", "2024-02-12", D, "3 days ago");
    check("a week ago", r, "2024-02-04", "2024-02-11", W, "a week ago");
    check("a couple of days ago", r, "2024-02-12", "2024-02-13", D, NULL);
    check("last week", r, "2024-02-05", "2024-02-12", W, "last week");
    check("this week", r, "2024-02-12", "2024-02-19", W, NULL);
    check("the week before last", r, "2024-01-29", "2024-02-05", W, "the week before last");
    check("last month", r, "2024-01-01", "2024-02-01", M, NULL);
    check("last month", "2024-01-10", "2023-12-01", "2024-01-01", M, NULL);
    check("the month before last", "2024-01-10", "2023-11-01", "2023-12-01", M, NULL);
    check("two months ago", "2024-01-10", "2023-11-01", "2023-12-01", M, NULL);
    check("last year", r, "2023-01-01", "2024-01-01", Y, NULL);
    check("five years ago", r, "2019-01-01", "2020-01-01", Y, NULL);
}

static void test_anchored_and_ranges(void **state)
{
    (void)state;
    const char *r = "2024-02-10";
    check("What did Paola make on Friday before 10.01.2024?", r, "2024-01-05", "2024-01-06", D,
          "Friday before 10.01.2024");
    check("two weeks before May 5, 2023", r, "2023-04-18", "2023-04-25", W, NULL);
    check("3 days before 7 Jan 2024", r, "2024-01-04", "2024-01-05", D, NULL);
    check("a day after Christmas 2023", r, "2023-12-26", "2023-12-27", D, NULL);
    check("the day before 7 Jan 2024", r, "2024-01-06", "2024-01-07", D, NULL);
    check("the week before 7 Jan 2024", r, "2023-12-31", "2024-01-07", W, NULL);
    check("Did Vanessa take the test before December 23rd, 2023?", r, "", "2023-12-23", R,
          "before December 23rd, 2023");
    check("shortly before 7 Jan 2024", r, "", "2024-01-07", R, "before 7 Jan 2024");
    check("after May 5 2023", r, "2023-05-06", "", R, NULL);
    check("until 5 May 2023", r, "", "2023-05-06", R, NULL);
    check("since Monday", "2024-02-14", "2024-02-12", "2024-02-15", R, "since Monday");
    check("since last week", "2024-02-14", "2024-02-05", "2024-02-15", R, NULL);
    check("between May 3 and May 5 2023", r, "2023-05-03", "2023-05-06", R, NULL);
    check("from 3 Jan 2024 to 5 Jan 2024", r, "2024-01-03", "2024-01-06", R, NULL);
    check("before 2020", r, "", "2020-01-01", Y, NULL);
}

static void test_years(void **state)
{
    (void)state;
    check("What football match did Kevin watch in 2017?", "2024-02-10", "2017-01-01", "2018-01-01",
          Y, "in 2017");
    check("the spring break of 2024", "2024-02-10", "2024-01-01", "2025-01-01", Y, "of 2024");
}

static void test_what_must_not_parse(void **state)
{
    (void)state;
    none("May I ask you something?");
    none("you may be right");
    none("may");
    none("May");
    none("March on, soldiers");
    none("we march 5 miles a day");
    none("this may be wrong");
    none("in march formation");
    none("I have 3 cats and 12 dogs");
    none("It costs 60 dollars for 1 cup");
    none("When did Akib start to read \"11/22/63\" by Stephen King?");
    none("Did Fahim like the 2666 by Roberto Bolano?");
    none("version 2.0.1 and 1.5 hours");
    none("call 555-1234 at 5pm");
    none("on 01/02/2024"); /* day and month ambiguous */
    none("on 31.02.2024"); /* no such day */
    none("on 2024-13-01");
    none("In what geographical region was Akib a few years ago?");
    none("When was the last time Akib went ice fishing?");
    none("Team Fortress 2 with op 118 no. 2");
    none("the last week of the course"); /* "the last week" is not last week */
    none("Which country did Elise visit in winter 2021 - 2022?");
    none("Jan");
    none("the 5 of them");
    none("");
    none("1999999999999999999999999999999-12-12");
}

static void test_bad_input_and_long_text(void **state)
{
    (void)state;
    mn_text_when_t w;
    assert_false(mn_text_when_find(NULL, 0, 0, &w));
    /* arbitrary bytes, invalid UTF-8, NULs */
    unsigned char junk[4096];
    uint64_t x = 88172645463325252ull;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof junk; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            junk[i] = round % 2 ? (unsigned char)x
                                : (unsigned char)" 0123456789-./MayJanuary last ago"[x % 34];
        }
        (void)mn_text_when_find((const char *)junk, sizeof junk, (int64_t)x, &w);
        if (mn_text_when_find((const char *)junk, sizeof junk, (int64_t)(x >> 1), &w)) {
            assert_true(w.start + w.len <= sizeof junk);
            assert_true(!w.has_from || !w.has_to || w.from_ms < w.to_ms);
        }
    }
    /* extreme reference times are clamped, not overflowed */
    check("yesterday", "2024-01-01", "2023-12-31", "2024-01-01", D, NULL);
    assert_true(mn_text_when_find("yesterday", 9, INT64_MIN, &w));
    (void)mn_text_when_find("1000 years ago", 14, INT64_MAX, &w); /* no overflow (UBSan) */
    /* only the first MN_TEXT_WHEN_MAX_TOKENS words are read */
    size_t n = (MN_TEXT_WHEN_MAX_TOKENS + 10) * 4;
    char *s = malloc(n + 32);
    assert_non_null(s);
    for (size_t i = 0; i < n; i += 4)
        memcpy(s + i, "ab. ", 4);
    strcpy(s + n, "on 7 Jan 2024");
    assert_false(mn_text_when_find(s, strlen(s), day_ms("2024-02-10"), &w));
    memcpy(s, "yesterday.", 10);
    assert_true(mn_text_when_find(s, strlen(s), day_ms("2024-02-10"), &w));
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absolute_dates),
        cmocka_unit_test(test_yearless_dates_resolve_to_the_most_recent),
        cmocka_unit_test(test_months),
        cmocka_unit_test(test_relative_days_and_weeks),
        cmocka_unit_test(test_anchored_and_ranges),
        cmocka_unit_test(test_years),
        cmocka_unit_test(test_what_must_not_parse),
        cmocka_unit_test(test_bad_input_and_long_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
