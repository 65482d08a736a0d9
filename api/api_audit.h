/* The audit log (api_audit.c): one JSON line per bulk or destructive operation a client
 * asked for, appended to a file (docs/config.md, [audit]). Any door may write one. */
#ifndef MN_API_AUDIT_H
#define MN_API_AUDIT_H

#include <stdint.h>

typedef struct api_audit api_audit;

/* One record; NULL strings and negative numbers are left out of the line. */
typedef struct api_audit_rec {
    const char *key;  /* the API key's name ("" = auth off or an unnamed key) */
    const char *door; /* "http", "grpc", "mcp" */
    const char *space;
    const char *op;     /* "forget_where", ... */
    const char *filter; /* the request's filter as JSON text */
    const char *mode;   /* "delete" | "suppress" */
    int dry_run;        /* 0 / 1; -1 = not applicable */
    int64_t count;      /* memories selected */
    int64_t done;       /* memories gone through */
    int64_t forgotten;  /* memories changed */
    const char *job;    /* job id */
    const char *state;  /* "done", "started", "cancelled", "failed", ... */
} api_audit_rec;
/* A record with every optional field absent. */
#define API_AUDIT_REC_INIT                                                                         \
    {                                                                                              \
        .dry_run = -1, .count = -1, .done = -1, .forgotten = -1                                    \
    }

/* Opens (creating, appending) path; NULL path or "" = no audit log (*out NULL). */
int api_audit_open(const char *path, api_audit **out);
void api_audit_close(api_audit *a);
/* Appends r as one line {"time": RFC 3339, ...} with one write(2) (O_APPEND: lines of
 * concurrent writers never interleave). Not fsynced. a NULL: nothing. */
void api_audit_write(api_audit *a, const api_audit_rec *r);

#endif
