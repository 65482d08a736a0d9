/* The client side of HTTPS between nodes (cluster_client.h): one SSL_CTX per process, made
 * from the configuration, shared by every exchange (OpenSSL's contexts are safe to share
 * across threads once set up). */
#include "cluster_client.h"
#include "cluster_client_pool.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

static void *refuse(SSL_CTX *ctx, const char *file, mn_error *err)
{
    unsigned long e = ERR_get_error();
    mn_error_set(err, MN_ERR_INVALID, "cannot load the certificates of %s: %s", file,
                 e ? ERR_reason_error_string(e) : "unreadable");
    SSL_CTX_free(ctx);
    return NULL;
}

void *cl_http_tls_new(const char *ca_file, const char *chain_file, mn_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        mn_error_set(err, MN_ERR_NOMEM, "TLS: cannot make a client context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* a peer that closes after its answer without close_notify: the body is framed anyway */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    const char *files[] = {ca_file, chain_file};
    bool any = false;
    for (size_t i = 0; i < 2; i++) {
        if (!files[i] || !*files[i]) continue;
        if (SSL_CTX_load_verify_locations(ctx, files[i], NULL) != 1)
            return refuse(ctx, files[i], err);
        any = true;
    }
    if (!any) SSL_CTX_set_default_verify_paths(ctx);
    return ctx;
}

void cl_http_tls_free(void *tls)
{
    if (tls) cl__pool_drop(tls); /* its kept connections must not outlive it in the pool */
    SSL_CTX_free(tls);
}
