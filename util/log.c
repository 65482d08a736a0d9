/* The process-wide logger: one line per event on stderr, either human text or
 * one JSON object per line. The level and format are the only global state. */
#include "mnemo/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static mn_log_level g_level = MN_LOG_INFO;
static mn_log_format g_format = MN_LOG_FORMAT_TEXT;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

void mn_log_configure(mn_log_level level, mn_log_format format)
{
    g_level = level;
    g_format = format;
}

mn_err mn_log_level_parse(const char *s, mn_log_level *out)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (mn_log_level)i;
            return MN_OK;
        }
    return MN_ERR_INVALID;
}

static void json_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
}

void mn_log(mn_log_level level, const char *fmt, ...)
{
    if (level < g_level) return;
    static const char *names[] = {"debug", "info", "warn", "error"};
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char ts[40];
    mn_time_format_rfc3339(mn_time_now_ms(), ts, sizeof ts);
    pthread_mutex_lock(&g_mu);
    if (g_format == MN_LOG_FORMAT_JSON) {
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts, names[level]);
        json_escape(stderr, msg);
        fputs("\"}\n", stderr);
    } else {
        fprintf(stderr, "%s %-5s %s\n", ts, names[level], msg);
    }
    fflush(stderr);
    pthread_mutex_unlock(&g_mu);
}
