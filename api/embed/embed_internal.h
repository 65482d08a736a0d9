/* Private to api/embed: the HTTP client of the provider (embed_http.c). */
#ifndef MN_API_EMBED_INTERNAL_H
#define MN_API_EMBED_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"

/* An endpoint url taken apart. */
typedef struct mn__embed_url {
    bool tls;
    char host[256]; /* without the brackets of an IPv6 address */
    char port[8];
    char path[1024];     /* "/v1/embeddings" */
    char authority[300]; /* the Host header: host:port */
} mn__embed_url;

mn_err mn__embed_url_parse(const char *url, mn__embed_url *u, mn_error *err);
/* An OpenSSL client context verifying peers against ca_file ("" = the system's). */
mn_err mn__embed_tls_new(const char *ca_file, void **ctx, mn_error *err);
void mn__embed_tls_free(void *ctx);
/* POSTs body (JSON) to u within timeout_ms; the status and the body of the answer
 * (*resp malloc'd, NUL-terminated). MN_ERR_BUSY when the deadline passed, MN_ERR_IO when the
 * provider cannot be reached (or cancel_fd turned readable: the caller stops; -1 = none),
 * MN_ERR_PARSE for an answer that is not HTTP. bearer: the API key or NULL. tls_ctx: for an
 * https url. */
mn_err mn__embed_post(const mn__embed_url *u, void *tls_ctx, const char *bearer, const char *body,
                      size_t body_len, int64_t timeout_ms, int cancel_fd, int *status, char **resp,
                      size_t *resp_len, mn_error *err);

#endif
