/* mnemo error values: every fallible function returns mn_err (0 = ok, negative
 * = one of the codes below) and may fill an optional mn_error with a message.
 * The API layers map codes to HTTP status / gRPC status. */
#ifndef MNEMO_ERR_H
#define MNEMO_ERR_H

#include <stddef.h>

typedef int mn_err;

enum {
    MN_OK = 0,
    MN_ERR_INVALID = -1,      /* bad input: wrong type, range, dimension (HTTP 422) */
    MN_ERR_PARSE = -2,        /* malformed document (HTTP 400) */
    MN_ERR_NOT_FOUND = -3,    /* unknown space or memory (HTTP 404) */
    MN_ERR_EXISTS = -4,       /* duplicate (HTTP 409) */
    MN_ERR_NOMEM = -5,        /* allocation failed (HTTP 503) */
    MN_ERR_IO = -6,           /* storage or OS failure (HTTP 500) */
    MN_ERR_CORRUPT = -7,      /* checksum or verifier failure on stored/received bytes */
    MN_ERR_TOO_LARGE = -8,    /* over a configured limit (HTTP 413) */
    MN_ERR_CLOSED = -9,       /* engine shutting down (HTTP 503) */
    MN_ERR_GONE = -10,        /* memory was forgotten (tombstone) (HTTP 404) */
    MN_ERR_UNSUPPORTED = -11, /* not implemented / unsupported media (HTTP 415) */
    MN_ERR_BUSY = -12,        /* overloaded, retry later (HTTP 503) */
    MN_ERR_INTERNAL = -13,    /* invariant broken; a bug (HTTP 500) */
    MN_ERR_LIMIT = -14,       /* a count cap of the store is reached, e.g. engine.max_spaces
                                 (HTTP 409, gRPC RESOURCE_EXHAUSTED) */
    MN_ERR_CONFLICT = -15,    /* a precondition on the current state failed, e.g. the version
                                 a correction expected is not the current one (HTTP 409,
                                 gRPC ABORTED) */
    MN_ERR_UNAVAILABLE = -16, /* cluster: a write did not reach its consistency level in time,
                                 or no holder of the space could be reached (HTTP 503, gRPC
                                 UNAVAILABLE); the message says how many copies it reached */
};

#define MN_ERROR_MSG_MAX 384 /* room for a list of accepted names (text_language) */

/* Optional error detail. Functions write it only on failure. */
typedef struct mn_error {
    mn_err code;
    char message[MN_ERROR_MSG_MAX];
} mn_error;

/* Short stable name of a code ("invalid", "not_found", ...). */
const char *mn_strerror(mn_err code);

/* Fills e (if not NULL) with code and a printf-style message; returns code. */
mn_err mn_error_set(mn_error *e, mn_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
