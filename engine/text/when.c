/* Time expressions in a recall cue (when.h): a scanner that turns the text into
 * words, numbers and numeric dates, then a small hand-written grammar tried at
 * each token in order; the first expression found wins.
 *
 * Calendar arithmetic is on day numbers since 1970-01-01 (UTC) with the
 * days-from-civil / civil-from-days conversion of the proleptic Gregorian
 * calendar as H. Hinnant describes it ("chrono-Compatible Low-Level Date
 * Algorithms", howardhinnant.github.io/date_algorithms.html), written here. */
#include "when.h"

#include <string.h>

#define DAY_MS 86400000LL
#define YEAR_MIN 1000
#define YEAR_MAX 9999
#define BARE_YEAR_MIN 1900 /* "in 1850" is more likely a count than a year */
#define BARE_YEAR_MAX 2199

/* ---- calendar ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                                  /* [0, 399] */
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;          /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int n[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : n[m - 1];
}

/* Monday = 0 .. Sunday = 6; day 0 (1970-01-01) was a Thursday. */
static int weekday(int64_t day)
{
    return (int)(day - floor_div(day + 3, 7) * 7 + 3) % 7;
}

/* ---- tokens ---- */

typedef enum { TK_WORD, TK_NUM, TK_DATE, TK_OTHER } tk_kind;

typedef struct tok {
    uint8_t kind;
    bool cap;     /* a word that starts upper-case */
    bool ord;     /* a number written 1st, 2nd, 3rd, 5th */
    bool brk;     /* a sentence break (. ! ? ; : or a quote) lies before it */
    uint8_t ndig; /* digits of a number */
    int64_t num;  /* TK_NUM */
    int64_t y;    /* TK_DATE */
    int m, d;
    char w[16]; /* a word lower-cased; "" when longer or not ASCII */
    size_t start, end;
} tok;

typedef struct scan {
    tok t[MN_TEXT_WHEN_MAX_TOKENS];
    size_t n;
    int64_t ref; /* reference day */
    int64_t ry;
    int rm, rd, rwd;
} scan;

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static bool is_alnum(unsigned char c)
{
    return is_digit(c) || is_alpha(c);
}

/* Digits at s[*i..): their value (capped) and count. */
static int64_t digits(const char *s, size_t len, size_t *i, int *nd)
{
    int64_t v = 0;
    *nd = 0;
    while (*i < len && is_digit((unsigned char)s[*i])) {
        if (*nd < 12) v = v * 10 + (s[*i] - '0');
        (*nd)++;
        (*i)++;
    }
    return v;
}

static bool valid_ymd(int64_t y, int64_t m, int64_t d)
{
    return y >= YEAR_MIN && y <= YEAR_MAX && m >= 1 && m <= 12 && d >= 1 &&
           d <= days_in_month(y, (int)m);
}

/* A numeric date: 2024-05-05, 2024/05/05, 2024.05.05 (year first); 21.01.2024
 * (day first, with dots); 25/12/2024 or 12/25/2024 only when one part is over
 * 12 (otherwise day and month are ambiguous). Two-digit years are not dates
 * ("11/22/63" is a book). */
static bool numeric_date(int64_t a, int na, int64_t b, int nb, int64_t c, int nc, char sep, tok *k)
{
    if (na == 4 && nb <= 2 && nc <= 2 && valid_ymd(a, b, c)) {
        k->y = a, k->m = (int)b, k->d = (int)c;
        return true;
    }
    if (nc != 4 || na > 2 || nb > 2) return false;
    if (sep == '.' && valid_ymd(c, b, a)) {
        k->y = c, k->m = (int)b, k->d = (int)a;
        return true;
    }
    if (sep == '.') return false;
    if (a > 12 && valid_ymd(c, b, a)) {
        k->y = c, k->m = (int)b, k->d = (int)a;
        return true;
    }
    if (b > 12 && valid_ymd(c, a, b)) {
        k->y = c, k->m = (int)a, k->d = (int)b;
        return true;
    }
    return false;
}

static void scan_number(const char *s, size_t len, size_t *i, tok *k)
{
    int na, nb = 0, nc = 0;
    int64_t a = digits(s, len, i, &na), b = 0, c = 0;
    k->kind = TK_NUM;
    k->num = a;
    k->ndig = (uint8_t)(na > 99 ? 99 : na);
    char sep = *i + 1 < len ? s[*i] : 0;
    if ((sep == '-' || sep == '/' || sep == '.') && is_digit((unsigned char)s[*i + 1])) {
        (*i)++;
        b = digits(s, len, i, &nb);
        k->kind = TK_OTHER; /* 1.5, 10/20, 3-4: not a date */
        if (*i + 1 < len && s[*i] == sep && is_digit((unsigned char)s[*i + 1])) {
            (*i)++;
            c = digits(s, len, i, &nc);
            if (numeric_date(a, na, b, nb, c, nc, sep, k)) k->kind = TK_DATE;
        }
        if (*i < len && is_alnum((unsigned char)s[*i])) k->kind = TK_OTHER;
    } else if (*i < len && is_alpha((unsigned char)s[*i])) {
        size_t j = *i;
        while (j < len && is_alpha((unsigned char)s[j]))
            j++;
        char suf[3] = {0};
        if (j - *i == 2) {
            suf[0] = (char)(s[*i] | 0x20);
            suf[1] = (char)(s[*i + 1] | 0x20);
        }
        if (!strcmp(suf, "st") || !strcmp(suf, "nd") || !strcmp(suf, "rd") || !strcmp(suf, "th"))
            k->ord = true;
        else
            k->kind = TK_OTHER; /* 5pm, 60s, 3d */
        *i = j;
    }
    if (k->ndig > 9) k->kind = TK_OTHER;
    while (*i < len && is_alnum((unsigned char)s[*i])) /* 2024-05-05x */
        (*i)++, k->kind = TK_OTHER;
}

static void scan_word(const char *s, size_t len, size_t *i, tok *k)
{
    size_t n = 0;
    bool ascii = true;
    k->kind = TK_WORD;
    k->cap = s[*i] >= 'A' && s[*i] <= 'Z';
    while (*i < len) {
        unsigned char c = (unsigned char)s[*i];
        size_t step = 1;
        char out = 0;
        if (c == '\'' && *i + 1 < len && is_alpha((unsigned char)s[*i + 1])) {
            out = '\'';
        } else if (c == 0xE2 && *i + 3 < len && (unsigned char)s[*i + 1] == 0x80 &&
                   (unsigned char)s[*i + 2] == 0x99 && is_alpha((unsigned char)s[*i + 3])) {
            out = '\''; /* U+2019 RIGHT SINGLE QUOTATION MARK */
            step = 3;
        } else if (is_alpha(c)) {
            if (c >= 0x80) ascii = false;
            out = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
        } else {
            break;
        }
        if (n < sizeof k->w - 1) k->w[n] = out;
        n++;
        *i += step;
    }
    if (n >= sizeof k->w || !ascii) n = 0;
    k->w[n] = 0;
}

static void tokenize(const char *s, size_t len, scan *sc)
{
    size_t i = 0;
    bool brk = false;
    sc->n = 0;
    while (i < len && sc->n < MN_TEXT_WHEN_MAX_TOKENS) {
        unsigned char c = (unsigned char)s[i];
        if (!is_alnum(c)) {
            if (strchr(".!?;:\"()[]", c) && c) brk = true;
            i++;
            continue;
        }
        tok *k = &sc->t[sc->n++];
        memset(k, 0, sizeof *k);
        k->start = i;
        k->brk = brk;
        brk = false;
        if (is_digit(c))
            scan_number(s, len, &i, k);
        else
            scan_word(s, len, &i, k);
        k->end = i;
    }
}

/* ---- words ---- */

static bool is_w(const scan *sc, size_t i, const char *w)
{
    return i < sc->n && sc->t[i].kind == TK_WORD && !strcmp(sc->t[i].w, w);
}

/* Token i continues the expression: it exists and no sentence break precedes it. */
static bool joined(const scan *sc, size_t i)
{
    return i < sc->n && !sc->t[i].brk;
}

static const char *const month_names[12] = {"january",   "february", "march",    "april",
                                            "may",       "june",     "july",     "august",
                                            "september", "october",  "november", "december"};
static const char *const month_abbr[12] = {"jan", "feb", "mar", "apr", "",    "jun",
                                           "jul", "aug", "sep", "oct", "nov", "dec"};

/* 1..12 for a month name (full or abbreviated: *abbr), else 0. *ambiguous for
 * the ones that are also common words: "may", "march". */
static int month_of(const scan *sc, size_t i, bool *abbr, bool *ambiguous)
{
    if (i >= sc->n || sc->t[i].kind != TK_WORD) return 0;
    const char *w = sc->t[i].w;
    *abbr = false;
    *ambiguous = !strcmp(w, "may") || !strcmp(w, "march");
    for (int m = 0; m < 12; m++) {
        if (!strcmp(w, month_names[m])) return m + 1;
        if (month_abbr[m][0] && !strcmp(w, month_abbr[m])) {
            *abbr = true;
            return m + 1;
        }
    }
    if (!strcmp(w, "sept")) {
        *abbr = true;
        return 9;
    }
    return 0;
}

static int weekday_of(const scan *sc, size_t i)
{
    static const char *const names[7] = {"monday", "tuesday",  "wednesday", "thursday",
                                         "friday", "saturday", "sunday"};
    if (i >= sc->n || sc->t[i].kind != TK_WORD) return -1;
    for (int d = 0; d < 7; d++)
        if (!strcmp(sc->t[i].w, names[d])) return d;
    return -1;
}

/* A small count: digits 1..1000, or one..twelve, a / an, a couple (of). */
static size_t count_at(const scan *sc, size_t i, int64_t *v)
{
    static const char *const words[12] = {"one",   "two",   "three", "four", "five",   "six",
                                          "seven", "eight", "nine",  "ten",  "eleven", "twelve"};
    if (i >= sc->n) return 0;
    const tok *k = &sc->t[i];
    if (k->kind == TK_NUM && !k->ord && k->num >= 1 && k->num <= 1000) {
        *v = k->num;
        return 1;
    }
    if (k->kind != TK_WORD) return 0;
    for (int n = 0; n < 12; n++)
        if (!strcmp(k->w, words[n])) {
            *v = n + 1;
            return 1;
        }
    if (is_w(sc, i, "a") && is_w(sc, i + 1, "couple")) {
        *v = 2;
        return is_w(sc, i + 2, "of") ? 3 : 2;
    }
    if (is_w(sc, i, "a") || is_w(sc, i, "an")) {
        *v = 1;
        return 1;
    }
    return 0;
}

/* day, week, month, year (singular or plural): 1..4, else 0. */
static int unit_of(const scan *sc, size_t i)
{
    static const char *const u[8] = {"day",   "days",   "week", "weeks",
                                     "month", "months", "year", "years"};
    if (i >= sc->n || sc->t[i].kind != TK_WORD) return 0;
    for (int n = 0; n < 8; n++)
        if (!strcmp(sc->t[i].w, u[n])) return n / 2 + 1;
    return 0;
}

static bool day_num(const scan *sc, size_t i, int *d)
{
    if (i >= sc->n || sc->t[i].kind != TK_NUM || sc->t[i].ndig > 2) return false;
    if (sc->t[i].num < 1 || sc->t[i].num > 31) return false;
    *d = (int)sc->t[i].num;
    return true;
}

static bool year_num(const scan *sc, size_t i, int64_t lo, int64_t hi, int64_t *y)
{
    if (!joined(sc, i) || sc->t[i].kind != TK_NUM || sc->t[i].ord || sc->t[i].ndig != 4)
        return false;
    if (sc->t[i].num < lo || sc->t[i].num > hi) return false;
    *y = sc->t[i].num;
    return true;
}

/* ---- spans ---- */

typedef struct span {
    int64_t from, to; /* days, [from, to) */
    bool has_from, has_to;
    mn_text_when_unit_t unit;
} span;

static span days_span(int64_t from, int64_t to, mn_text_when_unit_t unit)
{
    return (span){.from = from, .to = to, .has_from = true, .has_to = true, .unit = unit};
}

static span month_span(int64_t y, int m)
{
    return days_span(days_from_civil(y, m, 1), days_from_civil(y, m, days_in_month(y, m)) + 1,
                     MN_TEXT_WHEN_MONTH);
}

static span year_span(int64_t y)
{
    return days_span(days_from_civil(y, 1, 1), days_from_civil(y + 1, 1, 1), MN_TEXT_WHEN_YEAR);
}

/* The day m/d in year y, or without a year the most recent not after the
 * reference day (29 February: the most recent leap year's). */
static bool resolve_day(const scan *sc, int64_t y, bool has_year, int m, int d, span *out)
{
    if (has_year) {
        if (!valid_ymd(y, m, d)) return false;
        *out = days_span(days_from_civil(y, m, d), days_from_civil(y, m, d) + 1, MN_TEXT_WHEN_DAY);
        return true;
    }
    for (int64_t yy = sc->ry; yy > sc->ry - 9; yy--) {
        if (!valid_ymd(yy, m, d)) continue;
        int64_t day = days_from_civil(yy, m, d);
        if (day > sc->ref) continue;
        *out = days_span(day, day + 1, MN_TEXT_WHEN_DAY);
        return true;
    }
    return false;
}

/* A month without a year: the most recent that has begun by the reference
 * day; with last: the most recent that has ended before the reference month. */
static span resolve_month(const scan *sc, int m, bool last)
{
    int64_t y = sc->ry;
    if (m > sc->rm || (last && m == sc->rm)) y--;
    return month_span(y, m);
}

/* A month name at i that stands for the month: *ambiguous words ("may",
 * "march") only upper-case or with a year after them. Returns the tokens used
 * (the name and an optional year). */
static size_t month_only(const scan *sc, size_t i, bool need_year, span *out)
{
    bool abbr, amb;
    int m = month_of(sc, i, &abbr, &amb);
    if (!m || abbr) return 0;
    int64_t y;
    if (year_num(sc, i + 1, YEAR_MIN, YEAR_MAX, &y)) {
        *out = month_span(y, m);
        return 2;
    }
    if (need_year || (amb && !sc->t[i].cap)) return 0;
    *out = resolve_month(sc, m, false);
    return 1;
}

/* "7 Jan 2024", "the 5th of May", "May 5", "December 28th, 2023", 21.01.2024,
 * holidays ("New Year's Eve", "Christmas"), "yesterday", "today". */
static size_t day_point(const scan *sc, size_t i, span *out)
{
    if (i >= sc->n) return 0;
    const tok *k = &sc->t[i];
    if (k->kind == TK_DATE) {
        *out = days_span(days_from_civil(k->y, k->m, k->d), days_from_civil(k->y, k->m, k->d) + 1,
                         MN_TEXT_WHEN_DAY);
        return 1;
    }
    bool abbr, amb;
    int d, m;
    int64_t y = 0;
    size_t j = i + (is_w(sc, i, "the") ? 1 : 0);
    if (day_num(sc, j, &d) && (j == i || sc->t[j].ord || is_w(sc, j + 1, "of")) && joined(sc, j) &&
        joined(sc, j + 1)) {
        /* [the] 5[th] [of] May [2024] */
        size_t mi = j + 1 + (is_w(sc, j + 1, "of") ? 1 : 0);
        if ((m = month_of(sc, mi, &abbr, &amb)) && joined(sc, mi)) {
            bool strong = sc->t[j].ord || mi > j + 1 || !amb || sc->t[mi].cap;
            bool has_y = year_num(sc, mi + 1, YEAR_MIN, YEAR_MAX, &y);
            if ((strong || has_y) && resolve_day(sc, y, has_y, m, d, out))
                return mi + 1 + has_y - i;
        }
    }
    if ((m = month_of(sc, i, &abbr, &amb)) && day_num(sc, i + 1, &d) && joined(sc, i + 1)) {
        /* May 5[th][,] [2024] */
        bool has_y = year_num(sc, i + 2, YEAR_MIN, YEAR_MAX, &y);
        bool strong = !amb || sc->t[i].cap || sc->t[i + 1].ord || has_y;
        if (strong && resolve_day(sc, y, has_y, m, d, out)) return 2 + has_y;
    }
    if (is_w(sc, i, "new") && joined(sc, i + 1) &&
        (is_w(sc, i + 1, "year") || is_w(sc, i + 1, "year's") || is_w(sc, i + 1, "years"))) {
        size_t n = 2;
        bool eve = false;
        if (joined(sc, i + 2) && is_w(sc, i + 2, "eve"))
            eve = true, n++;
        else if (joined(sc, i + 2) && is_w(sc, i + 2, "day"))
            n++;
        bool has_y = year_num(sc, i + n, YEAR_MIN, YEAR_MAX, &y);
        if (resolve_day(sc, y, has_y, eve ? 12 : 1, eve ? 31 : 1, out)) return n + has_y;
    }
    if (is_w(sc, i, "christmas")) {
        size_t n = 1;
        bool eve = joined(sc, i + 1) && is_w(sc, i + 1, "eve");
        if (eve) n++;
        bool has_y = year_num(sc, i + n, YEAR_MIN, YEAR_MAX, &y);
        if (resolve_day(sc, y, has_y, 12, eve ? 24 : 25, out)) return n + has_y;
    }
    if (is_w(sc, i, "today") || is_w(sc, i, "tonight")) {
        *out = days_span(sc->ref, sc->ref + 1, MN_TEXT_WHEN_DAY);
        return 1;
    }
    if (is_w(sc, i, "yesterday")) {
        *out = days_span(sc->ref - 1, sc->ref, MN_TEXT_WHEN_DAY);
        return 1;
    }
    if (is_w(sc, i, "the") && is_w(sc, i + 1, "day") && is_w(sc, i + 2, "before") &&
        is_w(sc, i + 3, "yesterday") && joined(sc, i + 3)) {
        *out = days_span(sc->ref - 2, sc->ref - 1, MN_TEXT_WHEN_DAY);
        return 4;
    }
    return 0;
}

/* A weekday relative to the reference day: "Tuesday" / "on Tuesday" (the most
 * recent, today included), "last Tuesday" (the most recent before today),
 * "this Tuesday" (this week's, weeks starting on Monday), "Tuesday before last". */
static size_t weekday_point(const scan *sc, size_t i, span *out)
{
    size_t j = i;
    bool last = false, this = false;
    if (is_w(sc, i, "last") || is_w(sc, i, "past") || is_w(sc, i, "previous"))
        last = true, j++;
    else if (is_w(sc, i, "this"))
        this = true, j++;
    int wd = weekday_of(sc, j);
    if (wd < 0 || (j > i && !joined(sc, j))) return 0;
    int64_t back = (sc->rwd - wd + 7) % 7;
    if (last && back == 0) back = 7;
    int64_t day = this ? sc->ref - sc->rwd + wd : sc->ref - back;
    size_t n = j + 1 - i;
    if (!this && is_w(sc, j + 1, "before") && is_w(sc, j + 2, "last") && joined(sc, j + 2)) {
        if (!last && back == 0) back = 7;
        day = sc->ref - back - 7;
        n += 2;
    }
    *out = days_span(day, day + 1, MN_TEXT_WHEN_DAY);
    return n;
}

/* Anything that names one stretch of time by itself (a day, or a month with a
 * year): the operand of "before", "since", "between ... and". */
static size_t point(const scan *sc, size_t i, span *out)
{
    size_t n;
    if ((n = day_point(sc, i, out))) return n;
    if ((n = weekday_point(sc, i, out))) return n;
    if ((n = month_only(sc, i, false, out))) return n;
    int64_t y;
    if (year_num(sc, i, BARE_YEAR_MIN, BARE_YEAR_MAX, &y)) {
        *out = year_span(y);
        return 1;
    }
    return 0;
}

/* "last week", "this month", "the year before last", "last night". */
static size_t last_this(const scan *sc, size_t i, span *out)
{
    size_t j = i;
    int back;
    if (is_w(sc, i, "the") && unit_of(sc, i + 1) >= 2 && is_w(sc, i + 2, "before") &&
        is_w(sc, i + 3, "last") && joined(sc, i + 3)) {
        back = 2;
        j = i + 1;
    } else if (is_w(sc, i, "last") || is_w(sc, i, "past") || is_w(sc, i, "previous")) {
        if (i > 0 && is_w(sc, i - 1, "the") && !sc->t[i].brk) return 0; /* "the last week of" */
        back = 1;
        j = i + 1;
        if (is_w(sc, j, "night") && joined(sc, j)) {
            *out = days_span(sc->ref - 1, sc->ref, MN_TEXT_WHEN_DAY);
            return 2;
        }
    } else if (is_w(sc, i, "this")) {
        back = 0;
        j = i + 1;
    } else {
        return 0;
    }
    if (!joined(sc, j)) return 0;
    int u = unit_of(sc, j);
    if (u < 2) { /* last May, this May ("this may" is a verb) */
        bool abbr, amb;
        int m = back <= 1 ? month_of(sc, j, &abbr, &amb) : 0;
        if (!m || abbr || (amb && !sc->t[j].cap && back == 0)) return 0;
        *out = back ? resolve_month(sc, m, true) : month_span(sc->ry, m);
        return 2;
    }
    size_t n = back == 2 ? 4 : 2;
    if (u == 2) {
        int64_t mon = sc->ref - sc->rwd - 7 * back;
        *out = days_span(mon, mon + 7, MN_TEXT_WHEN_WEEK);
    } else if (u == 3) {
        int64_t mi = sc->ry * 12 + (sc->rm - 1) - back;
        *out = month_span(floor_div(mi, 12), (int)(mi - floor_div(mi, 12) * 12) + 1);
    } else {
        *out = year_span(sc->ry - back);
    }
    return n;
}

/* The day `count` units before (sign -1) or after (+1) `day`; a week is a
 * 7-day window centred on it, a month or a year the calendar one. */
static span offset(int64_t day, int64_t count, int u, int sign)
{
    if (u == 1) {
        int64_t d = day + sign * count;
        return days_span(d, d + 1, MN_TEXT_WHEN_DAY);
    }
    if (u == 2) {
        int64_t d = day + sign * 7 * count;
        return days_span(d - 3, d + 4, MN_TEXT_WHEN_WEEK);
    }
    int64_t y;
    int m, dd;
    civil_from_days(day, &y, &m, &dd);
    if (u == 3) {
        int64_t mi = y * 12 + (m - 1) + sign * count;
        return month_span(floor_div(mi, 12), (int)(mi - floor_div(mi, 12) * 12) + 1);
    }
    return year_span(y + sign * count);
}

/* "two weeks ago", "3 days before May 5", "a week after Christmas". */
static size_t ago(const scan *sc, size_t i, span *out)
{
    int64_t v;
    size_t c = count_at(sc, i, &v);
    if (!c) return 0;
    int u = unit_of(sc, i + c);
    if (!u || !joined(sc, i + c) || !joined(sc, i + c + 1)) return 0;
    if (v > (u == 4 ? 500 : 1000)) return 0;
    if (is_w(sc, i + c + 1, "ago")) {
        *out = offset(sc->ref, v, u, -1);
        return c + 2;
    }
    bool before = is_w(sc, i + c + 1, "before"), after = is_w(sc, i + c + 1, "after");
    span p;
    size_t n;
    if ((before || after) && (n = point(sc, i + c + 2, &p)) && p.unit == MN_TEXT_WHEN_DAY) {
        *out = offset(before ? p.from : p.to - 1, v, u, before ? -1 : 1);
        return c + 2 + n;
    }
    return 0;
}

/* "the day before May 5", "the week before May 5", "Friday before 10.01.2024". */
static size_t before_anchor(const scan *sc, size_t i, span *out)
{
    size_t j = i + (is_w(sc, i, "the") ? 1 : 0);
    int u = unit_of(sc, j), wd = weekday_of(sc, j);
    if ((u != 1 && u != 2 && wd < 0) || !is_w(sc, j + 1, "before") || !joined(sc, j + 1)) return 0;
    if (u == 1 && is_w(sc, j + 2, "yesterday")) return 0; /* day_point's */
    span p;
    size_t n = point(sc, j + 2, &p);
    if (!n || p.unit != MN_TEXT_WHEN_DAY) return 0;
    if (wd >= 0) {
        int64_t back = (weekday(p.from) - wd + 7) % 7;
        int64_t d = p.from - (back ? back : 7);
        *out = days_span(d, d + 1, MN_TEXT_WHEN_DAY);
    } else {
        *out = u == 1 ? days_span(p.from - 1, p.from, MN_TEXT_WHEN_DAY)
                      : days_span(p.from - 7, p.from, MN_TEXT_WHEN_WEEK);
    }
    return j + 2 + n - i;
}

/* early / mid / late May: days 1-10, 11-20, 21-end. */
static size_t part_of_month(const scan *sc, size_t i, span *out)
{
    int part = is_w(sc, i, "early") ? 0 : is_w(sc, i, "mid") ? 1 : is_w(sc, i, "late") ? 2 : -1;
    if (part < 0) return 0;
    span m;
    size_t n = joined(sc, i + 1) ? month_only(sc, i + 1, false, &m) : 0;
    if (!n) return 0;
    int64_t a = m.from + 10 * part, b = part == 2 ? m.to : m.from + 10 * (part + 1);
    *out = days_span(a, b, MN_TEXT_WHEN_DAY);
    out->unit = MN_TEXT_WHEN_RANGE;
    return n + 1;
}

/* between X and Y, from X to Y: [X.from, Y.to). */
static size_t range(const scan *sc, size_t i, span *out)
{
    bool between = is_w(sc, i, "between");
    if (!between && !is_w(sc, i, "from")) return 0;
    span a, b;
    size_t na = point(sc, i + 1, &a);
    if (!na || !joined(sc, i + 1)) return 0;
    size_t k = i + 1 + na;
    if (!joined(sc, k)) return 0;
    bool ok = between ? is_w(sc, k, "and")
                      : (is_w(sc, k, "to") || is_w(sc, k, "until") || is_w(sc, k, "till") ||
                         is_w(sc, k, "through"));
    size_t nb;
    if (!ok || !joined(sc, k + 1) || !(nb = point(sc, k + 1, &b)) || b.to <= a.from) return 0;
    *out = days_span(a.from, b.to, MN_TEXT_WHEN_RANGE);
    return k + 1 + nb - i;
}

/* before X, until X, after X, since X: open ranges. A year as X keeps the
 * year unit (docs: years name when events happened, not when they were said). */
static size_t open_range(const scan *sc, size_t i, span *out)
{
    int kind = is_w(sc, i, "before")  ? 0
               : is_w(sc, i, "until") ? 1
               : is_w(sc, i, "till")  ? 1
               : is_w(sc, i, "after") ? 2
               : is_w(sc, i, "since") ? 3
                                      : -1;
    if (kind < 0 || !joined(sc, i + 1)) return 0;
    span p;
    size_t n = point(sc, i + 1, &p);
    if (!n) n = last_this(sc, i + 1, &p);
    if (!n) return 0;
    span r = {.unit = p.unit == MN_TEXT_WHEN_YEAR ? MN_TEXT_WHEN_YEAR : MN_TEXT_WHEN_RANGE};
    if (kind == 0) r.has_to = true, r.to = p.from;
    if (kind == 1) r.has_to = true, r.to = p.to;
    if (kind == 2) r.has_from = true, r.from = p.to;
    if (kind == 3) {
        r.has_from = r.has_to = true;
        r.from = p.from;
        r.to = sc->ref + 1;
        if (r.to <= r.from) return 0;
    }
    *out = r;
    return n + 1;
}

/* in / during / throughout / of May [2024]; in 2017. */
static size_t in_month_year(const scan *sc, size_t i, span *out)
{
    if (!is_w(sc, i, "in") && !is_w(sc, i, "during") && !is_w(sc, i, "throughout") &&
        !is_w(sc, i, "of"))
        return 0;
    if (!joined(sc, i + 1)) return 0;
    size_t n;
    if ((n = month_only(sc, i + 1, false, out))) return n + 1;
    int64_t y;
    if (year_num(sc, i + 1, BARE_YEAR_MIN, BARE_YEAR_MAX, &y)) {
        *out = year_span(y);
        return 2;
    }
    return 0;
}

/* The grammar at token i: the longest forms first. */
static size_t expr(const scan *sc, size_t i, span *out)
{
    size_t n;
    if ((n = range(sc, i, out))) return n;
    if ((n = open_range(sc, i, out))) return n;
    if ((n = ago(sc, i, out))) return n;
    if ((n = before_anchor(sc, i, out))) return n;
    if ((n = last_this(sc, i, out))) return n;
    if ((n = weekday_point(sc, i, out))) return n;
    if ((n = part_of_month(sc, i, out))) return n;
    if ((n = in_month_year(sc, i, out))) return n;
    if ((n = day_point(sc, i, out))) return n;
    /* a full month name with a year: "January 2024" */
    if ((n = month_only(sc, i, true, out))) return n;
    return 0;
}

bool mn_text_when_find(const char *text, size_t len, int64_t ref_ms, mn_text_when_t *out)
{
    static _Thread_local scan sc; /* ~40 KiB: not on the stack of a pool thread */
    memset(out, 0, sizeof *out);
    if (!text) return false;
    int64_t lo = days_from_civil(YEAR_MIN + 10, 1, 1), hi = days_from_civil(YEAR_MAX - 10, 1, 1);
    int64_t ref = floor_div(ref_ms, DAY_MS);
    if (ref < lo) ref = lo;
    if (ref > hi) ref = hi;
    sc.ref = ref;
    civil_from_days(ref, &sc.ry, &sc.rm, &sc.rd);
    sc.rwd = weekday(ref);
    tokenize(text, len, &sc);
    for (size_t i = 0; i < sc.n; i++) {
        span s;
        size_t n = expr(&sc, i, &s);
        if (!n) continue;
        if (i + n > sc.n) n = sc.n - i;
        out->has_from = s.has_from;
        out->has_to = s.has_to;
        out->from_ms = s.has_from ? s.from * DAY_MS : 0;
        out->to_ms = s.has_to ? s.to * DAY_MS : 0;
        out->unit = s.unit;
        out->start = sc.t[i].start;
        out->len = sc.t[i + n - 1].end - sc.t[i].start;
        return true;
    }
    return false;
}

const char *mn_text_when_unit_name(mn_text_when_unit_t u)
{
    switch (u) {
    case MN_TEXT_WHEN_DAY:
        return "day";
    case MN_TEXT_WHEN_WEEK:
        return "week";
    case MN_TEXT_WHEN_MONTH:
        return "month";
    case MN_TEXT_WHEN_YEAR:
        return "year";
    case MN_TEXT_WHEN_RANGE:
        return "range";
    }
    return "none";
}
