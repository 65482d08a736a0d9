/* The process-wide logger: one line per event on stderr, either human text or
 * one JSON object per line (ts, level, msg, then any structured fields: request_id,
 * route, status, duration_ms, space, op ...). The level and format are the only
 * global state.
 *
 * One event is one line whatever it quotes: messages and fields carry client input (a
 * decoded path parameter can hold %0A), so control characters are always escaped, in
 * text as \n, \r, \t or \xNN and in JSON as JSON escapes; no caller needs to clean. */
#include "mnemo/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static mn_log_level_t g_level = MN_LOG_INFO;
static mn_log_format_t g_format = MN_LOG_FORMAT_TEXT;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

void mn_log_configure(mn_log_level_t level, mn_log_format_t format)
{
    g_level = level;
    g_format = format;
}

mn_err mn_log_level_parse(const char *s, mn_log_level_t *out)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (mn_log_level_t)i;
            return MN_OK;
        }
    return MN_ERR_INVALID;
}

/* A string that is not valid UTF-8 has its high bytes written as \u00XX, so every
 * line stays valid JSON. */
static void json_escape(FILE *f, const char *s)
{
    bool utf8 = mn_utf8_valid(s, strlen(s));
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c < 0x20 || (c >= 0x80 && !utf8)) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
}

static bool is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if (is_control((unsigned char)*s)) return true;
    return false;
}

/* Text format: s with its control characters escaped, so it never ends or forges a line. */
static void text_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!is_control(c)) fputc(c, f);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c == '\t') fputs("\\t", f);
        else fprintf(f, "\\x%02x", c);
    }
}

bool mn_log_enabled(mn_log_level_t level)
{
    return level >= g_level;
}

/* Text format: key=value, quoted (JSON escapes) when empty or holding a space, quote, '=' or
 * a control character. */
static void text_field(FILE *f, const mn_log_field_t *fl)
{
    if (!fl->str) {
        fprintf(f, " %s=%.15g", fl->key, fl->num);
        return;
    }
    bool quote = !*fl->str || strpbrk(fl->str, " \"=") != NULL || has_control(fl->str);
    fprintf(f, " %s=", fl->key);
    if (quote) fputc('"', f);
    if (quote) json_escape(f, fl->str);
    else fputs(fl->str, f);
    if (quote) fputc('"', f);
}

static void json_field(FILE *f, const mn_log_field_t *fl)
{
    fputs(",\"", f);
    json_escape(f, fl->key);
    fputs("\":", f);
    if (fl->str) {
        fputc('"', f);
        json_escape(f, fl->str);
        fputc('"', f);
    } else if (isfinite(fl->num)) {
        fprintf(f, "%.15g", fl->num);
    } else {
        fputs("null", f);
    }
}

static void vlog(mn_log_level_t level, const mn_log_field_t *fields, size_t n, const char *fmt,
                 va_list ap)
{
    if (level < g_level) return;
    static const char *names[] = {"debug", "info", "warn", "error"};
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    char ts[40];
    mn_time_format_rfc3339(mn_time_now_ms(), ts, sizeof ts);
    pthread_mutex_lock(&g_mu);
    if (g_format == MN_LOG_FORMAT_JSON) {
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts, names[level]);
        json_escape(stderr, msg);
        fputc('"', stderr);
        for (size_t i = 0; i < n; i++) json_field(stderr, &fields[i]);
        fputs("}\n", stderr);
    } else {
        fprintf(stderr, "%s %-5s ", ts, names[level]);
        text_escape(stderr, msg);
        for (size_t i = 0; i < n; i++)
            if (!fields[i].in_msg) text_field(stderr, &fields[i]);
        fputc('\n', stderr);
    }
    fflush(stderr);
    pthread_mutex_unlock(&g_mu);
}

void mn_log(mn_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, NULL, 0, fmt, ap);
    va_end(ap);
}

void mn_log_with(mn_log_level_t level, const mn_log_field_t *fields, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fields, n, fmt, ap);
    va_end(ap);
}
