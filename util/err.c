/* Error codes and their stable names (used as API error codes and in logs). */
#include "mnemo/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *mn_strerror(mn_err code)
{
    switch (code) {
    case MN_OK: return "ok";
    case MN_ERR_INVALID: return "invalid";
    case MN_ERR_PARSE: return "parse_error";
    case MN_ERR_NOT_FOUND: return "not_found";
    case MN_ERR_EXISTS: return "already_exists";
    case MN_ERR_NOMEM: return "out_of_memory";
    case MN_ERR_IO: return "io_error";
    case MN_ERR_CORRUPT: return "corrupt";
    case MN_ERR_TOO_LARGE: return "too_large";
    case MN_ERR_CLOSED: return "closed";
    case MN_ERR_GONE: return "forgotten";
    case MN_ERR_UNSUPPORTED: return "unsupported";
    case MN_ERR_BUSY: return "busy";
    case MN_ERR_INTERNAL: return "internal";
    case MN_ERR_LIMIT: return "limit_reached";
    case MN_ERR_CONFLICT: return "conflict";
    case MN_ERR_UNAVAILABLE: return "unavailable";
    default: return "unknown_error";
    }
}

mn_err mn_error_set(mn_error *e, mn_err code, const char *fmt, ...)
{
    if (e) {
        e->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof e->message, fmt, ap);
        va_end(ap);
    }
    return code;
}
