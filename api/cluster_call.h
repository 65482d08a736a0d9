/* One blocking HTTP/1.1 request to another node (or, from `mnemo admin`, to any node):
 * the catalog's pushes and pulls, the drain hop, the admin commands. Private to api/.
 * Plain TCP, Connection: close, a response with Content-Length or read to EOF.
 * Temporary: the branch `route` brings api/cluster_client.[ch] (keep-alive, TLS, signing);
 * the calls below move onto it once merged. */
#ifndef MN_API_CLUSTER_CALL_H
#define MN_API_CLUSTER_CALL_H

#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"

typedef struct cl_call_resp {
    int status;
    char *body; /* malloc'd, NUL-terminated (free()) */
    size_t len;
} cl_call_resp;

/* method path (with its query) to addr ("HOST:PORT" or "[V6]:PORT"), with body (NULL: none;
 * sent as application/json) and bearer (NULL: none) as "Authorization: Bearer". The whole
 * exchange within timeout_ms. MN_ERR_UNAVAILABLE: cannot connect, time out, or an answer
 * that is not HTTP (the message says which); any status is MN_OK with resp filled. */
mn_err cl_call(const char *addr, const char *method, const char *path, const char *body,
               const char *bearer, int64_t timeout_ms, cl_call_resp *resp, mn_error *err);
void cl_call_resp_free(cl_call_resp *r);

#endif
