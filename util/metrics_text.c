/* Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/):
 *   # HELP name text      (help escapes backslash and newline)
 *   # TYPE name counter|gauge|histogram
 *   name{label="value",...} number
 * Label values escape backslash, double quote and newline. A histogram is
 * name_bucket{...,le="bound"} cumulative counts ending with le="+Inf", then
 * name_sum and name_count (= the +Inf bucket). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/metrics.h"

void mn_text_init(mn_text_t *t)
{
    memset(t, 0, sizeof *t);
}

void mn_text_free(mn_text_t *t)
{
    free(t->buf);
    memset(t, 0, sizeof *t);
}

static bool reserve(mn_text_t *t, size_t more)
{
    if (t->oom) return false;
    if (t->len + more + 1 <= t->cap) return true;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + more + 1)
        cap *= 2;
    char *b = realloc(t->buf, cap);
    if (!b) {
        t->oom = true;
        return false;
    }
    t->buf = b;
    t->cap = cap;
    return true;
}

void mn_text_printf(mn_text_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(t, (size_t)n)) return;
    if ((size_t)n < sizeof small) {
        memcpy(t->buf + t->len, small, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    t->len += (size_t)n;
}

static void putc_t(mn_text_t *t, char c)
{
    if (!reserve(t, 1)) return;
    t->buf[t->len++] = c;
    t->buf[t->len] = 0;
}

static void puts_t(mn_text_t *t, const char *s)
{
    size_t n = strlen(s);
    if (!reserve(t, n)) return;
    memcpy(t->buf + t->len, s, n + 1);
    t->len += n;
}

/* quote: also escape '"' (label values; HELP text leaves it alone). */
static void escaped(mn_text_t *t, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            puts_t(t, "\\\\");
        else if (*s == '\n')
            puts_t(t, "\\n");
        else if (quote && *s == '"')
            puts_t(t, "\\\"");
        else
            putc_t(t, *s);
    }
}

void mn_prom_family(mn_text_t *t, const char *name, const char *help, const char *type)
{
    mn_text_printf(t, "# HELP %s ", name);
    escaped(t, help ? help : "", false);
    mn_text_printf(t, "\n# TYPE %s %s\n", name, type);
}

static void labels_out(mn_text_t *t, const mn_prom_label_t *labels, size_t n, const char *le)
{
    if (!n && !le) return;
    putc_t(t, '{');
    for (size_t i = 0; i < n; i++) {
        if (i) putc_t(t, ',');
        puts_t(t, labels[i].name);
        puts_t(t, "=\"");
        escaped(t, labels[i].value ? labels[i].value : "", true);
        putc_t(t, '"');
    }
    if (le) {
        if (n) putc_t(t, ',');
        puts_t(t, "le=\"");
        puts_t(t, le);
        putc_t(t, '"');
    }
    putc_t(t, '}');
}

static void number_out(mn_text_t *t, double v)
{
    if (isnan(v))
        puts_t(t, "NaN");
    else if (isinf(v))
        puts_t(t, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        mn_text_printf(t, "%.0f", v);
    else
        mn_text_printf(t, "%.15g", v);
}

void mn_prom_sample(mn_text_t *t, const char *name, const mn_prom_label_t *labels, size_t n,
                    double value)
{
    puts_t(t, name);
    labels_out(t, labels, n, NULL);
    putc_t(t, ' ');
    number_out(t, value);
    putc_t(t, '\n');
}

void mn_prom_sample_u64(mn_text_t *t, const char *name, const mn_prom_label_t *labels, size_t n,
                        uint64_t value)
{
    puts_t(t, name);
    labels_out(t, labels, n, NULL);
    mn_text_printf(t, " %llu\n", (unsigned long long)value);
}

void mn_prom_histogram(mn_text_t *t, const char *name, const mn_prom_label_t *labels, size_t n,
                       const mn_hist_snapshot_t *s, double scale)
{
    for (uint32_t i = 0; i <= s->n_bounds; i++) {
        char le[40];
        if (i < s->n_bounds)
            snprintf(le, sizeof le, "%.9g", (double)s->bounds[i] * scale);
        else
            snprintf(le, sizeof le, "+Inf");
        mn_text_printf(t, "%s_bucket", name);
        labels_out(t, labels, n, le);
        mn_text_printf(t, " %llu\n", (unsigned long long)s->cumulative[i]);
    }
    mn_text_printf(t, "%s_sum", name);
    labels_out(t, labels, n, NULL);
    putc_t(t, ' ');
    number_out(t, (double)s->sum * scale);
    putc_t(t, '\n');
    mn_text_printf(t, "%s_count", name);
    labels_out(t, labels, n, NULL);
    mn_text_printf(t, " %llu\n", (unsigned long long)s->count);
}
