/* Wall and monotonic clocks, RFC 3339 formatting and parsing (UTC).
 *
 * TEST ONLY: MNEMO_TEST_CLOCK_OFFSET_MS=<integer> shifts the wall clock of the whole
 * process by that many ms (the chaos harness's clock skew, tests/cluster/README.md). It
 * is read once, at the first reading of the clock, and the server logs it as a warning at
 * start; unset (or not an integer within +-10 years) it changes nothing. The monotonic
 * clock is never shifted. */
#include "mnemo/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TEST_OFFSET_MAX_MS (10LL * 366 * 86400 * 1000)

static pthread_once_t test_offset_once = PTHREAD_ONCE_INIT;
static int64_t test_offset_ms; /* written once, under test_offset_once */

static void test_offset_read(void)
{
    const char *s = getenv("MNEMO_TEST_CLOCK_OFFSET_MS");
    if (!s || !*s) return;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < -TEST_OFFSET_MAX_MS || v > TEST_OFFSET_MAX_MS) return;
    test_offset_ms = (int64_t)v;
}

int64_t mn_time_test_offset_ms(void)
{
    pthread_once(&test_offset_once, test_offset_read);
    return test_offset_ms;
}

int64_t mn_time_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + mn_time_test_offset_ms() * 1000000LL;
}

int64_t mn_time_now_ms(void)
{
    return mn_time_now_ns() / 1000000LL;
}

int64_t mn_time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil algorithm, public domain description). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void mn_time_format_rfc3339(int64_t ms, char *buf, size_t len)
{
    int64_t secs = ms / 1000;
    int64_t rem = ms % 1000;
    if (rem < 0) {
        rem += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
}

static bool take_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

mn_err mn_time_parse_rfc3339(const char *s, int64_t *ms_out)
{
    const char *p = s;
    int y, mo, d, h, mi, se;
    if (!take_digits(&p, 4, &y) || *p++ != '-' || !take_digits(&p, 2, &mo) || *p++ != '-' ||
        !take_digits(&p, 2, &d))
        return MN_ERR_INVALID;
    if (*p != 'T' && *p != 't' && *p != ' ') return MN_ERR_INVALID;
    p++;
    if (!take_digits(&p, 2, &h) || *p++ != ':' || !take_digits(&p, 2, &mi) || *p++ != ':' ||
        !take_digits(&p, 2, &se))
        return MN_ERR_INVALID;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return MN_ERR_INVALID;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (d > mdays[mo - 1]) return MN_ERR_INVALID;
    int frac_ms = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        while (isdigit((unsigned char)*p)) {
            if (digits < 3) frac_ms = frac_ms * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (digits == 0) return MN_ERR_INVALID;
        for (int i = digits; i < 3; i++) frac_ms *= 10;
    }
    int64_t offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int oh, om;
        if (!take_digits(&p, 2, &oh) || *p++ != ':' || !take_digits(&p, 2, &om) || oh > 23 ||
            om > 59)
            return MN_ERR_INVALID;
        offset_s = sign * (oh * 3600 + om * 60);
    } else {
        return MN_ERR_INVALID;
    }
    if (*p != '\0') return MN_ERR_INVALID;
    if (se == 60) se = 59; /* leap second: clamp */
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - offset_s;
    *ms_out = secs * 1000 + frac_ms;
    return MN_OK;
}
