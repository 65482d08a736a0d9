/* HTTPS for the HTTP transport: one OpenSSL session per connection, driven on the loop thread
 * through two memory BIOs, so libuv keeps owning the socket.
 *
 *   socket --on_read--> BIO_write(rbio) --SSL_read--> http_conn_input (plaintext)
 *   http_conn_write --SSL_write--> wbio --BIO_read--> uv_write --> socket
 *
 * Every call that may produce records (handshake, read, write, shutdown) is followed by a
 * flush of wbio into one uv_write; libuv writes a stream's requests in order, so records
 * leave in the order OpenSSL made them.
 *
 * Policy: TLS 1.2 and 1.3 only, no renegotiation, no compression (OpenSSL defaults for the
 * cipher suites); ALPN picks "http/1.1" when offered. A failed or timed-out handshake closes
 * the connection and is counted in the server's stats; it is never fatal to the server.
 * Protocol: RFC 8446 (TLS 1.3), RFC 5246 (TLS 1.2), RFC 7301 (ALPN), RFC 9110 §4.3.4 (https). */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "mnemo/util.h"

#define TLS_READ_CHUNK 16384 /* one TLS record of plaintext at most */

struct http_tls_conn {
    SSL *ssl;
    BIO *rbio; /* ciphertext from the peer (owned by ssl) */
    BIO *wbio; /* ciphertext to the peer (owned by ssl) */
};

/* One uv_write of ciphertext; for a caller's write, cb(orig) runs when it completes. */
typedef struct tls_write {
    uv_write_t req;
    uv_write_t *orig;
    uv_write_cb cb;
    char data[];
} tls_write;

/* The first OpenSSL error on this thread's queue, as text; clears the queue. */
static void ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "unknown error");
    ERR_clear_error();
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char h11[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no ALPN in the answer: the client assumes http/1.1 */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

mn_err http_tls_ctx_new(const char *cert, const char *key, struct ssl_ctx_st **out, mn_error *err)
{
    *out = NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return mn_error_set(err, MN_ERR_NOMEM, "http: cannot create a TLS context");
    char why[256];
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        ssl_reason(why, sizeof why);
        SSL_CTX_free(ctx);
        return mn_error_set(err, MN_ERR_INTERNAL, "http: TLS 1.2 minimum: %s", why);
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    const char *what = NULL, *file = NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        what = "http.tls_cert: cannot load the PEM certificate chain";
        file = cert;
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        what = "http.tls_key: cannot load the PEM private key";
        file = key;
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        what = "http.tls_key does not match the certificate of http.tls_cert";
        file = key;
    }
    if (what) {
        ssl_reason(why, sizeof why);
        SSL_CTX_free(ctx);
        return mn_error_set(err, MN_ERR_INVALID, "%s %s (%s)", what, file, why);
    }
    *out = ctx;
    return MN_OK;
}

void http_tls_ctx_free(struct ssl_ctx_st *ctx)
{
    SSL_CTX_free(ctx);
}

bool http_tls_conn_new(http_conn *c)
{
    struct http_tls_conn *t = calloc(1, sizeof *t);
    if (!t) return false;
    t->ssl = SSL_new(c->s->tls_ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        free(t);
        return false;
    }
    BIO_set_mem_eof_return(t->rbio, -1); /* empty = "want more", not end of stream */
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_accept_state(t->ssl);
    c->tls = t;
    return true;
}

void http_tls_conn_free(http_conn *c)
{
    if (!c->tls) return;
    SSL_free(c->tls->ssl); /* frees both BIOs */
    free(c->tls);
    c->tls = NULL;
}

bool http_tls_handshaking(const http_conn *c)
{
    return c->tls && !SSL_is_init_finished(c->tls->ssl);
}

static void on_tls_written(uv_write_t *req, int status)
{
    tls_write *tw = (tls_write *)req;
    uv_write_t *orig = tw->orig;
    uv_write_cb cb = tw->cb;
    free(tw);
    if (cb) cb(orig, status);
}

/* Writes whatever ciphertext wbio holds; orig/cb (may be NULL) complete with that write. */
static int flush(http_conn *c, uv_write_t *orig, uv_write_cb cb)
{
    size_t n = BIO_ctrl_pending(c->tls->wbio);
    if (n == 0 && !cb) return 0;
    if (c->closing) return UV_ECANCELED;
    tls_write *tw = malloc(sizeof *tw + n);
    if (!tw) return UV_ENOMEM;
    if (n > 0 && BIO_read(c->tls->wbio, tw->data, (int)n) != (int)n) {
        free(tw);
        return UV_EPROTO;
    }
    tw->orig = orig;
    tw->cb = cb;
    uv_buf_t b = uv_buf_init(tw->data, (unsigned)n);
    int rc = uv_write(&tw->req, (uv_stream_t *)&c->tcp, &b, 1, on_tls_written);
    if (rc != 0) free(tw);
    return rc;
}

static void handshake_failed(http_conn *c, const char *why)
{
    uint64_t n = ++c->s->stats.tls_handshake_failures;
    /* scanners can make many: log the first ones, then every thousandth */
    if (n <= 10 || n % 1000 == 0)
        mn_log_info("http: TLS handshake failed (%llu so far): %s", (unsigned long long)n, why);
    (void)flush(c, NULL, NULL); /* the alert, best effort */
    http_conn_abort(c);
}

void http_tls_pump(http_conn *c)
{
    struct http_tls_conn *t = c->tls;
    char why[256];
    if (!SSL_is_init_finished(t->ssl)) {
        ERR_clear_error();
        int rc = SSL_do_handshake(t->ssl);
        if (rc != 1) {
            int e = SSL_get_error(t->ssl, rc);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                if (flush(c, NULL, NULL) != 0) http_conn_abort(c);
                return;
            }
            ssl_reason(why, sizeof why);
            handshake_failed(c, why);
            return;
        }
        http_conn_update_timer(c); /* from the handshake budget to idle */
    }
    char buf[TLS_READ_CHUNK];
    while (http_conn_wants_input(c)) {
        ERR_clear_error();
        int n = SSL_read(t->ssl, buf, sizeof buf);
        if (n > 0) {
            http_conn_input(c, buf, (size_t)n);
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_ZERO_RETURN) break; /* EOF follows */
        ssl_reason(why, sizeof why);
        mn_log_debug("http: TLS read failed: %s", why);
        http_conn_abort(c);
        return;
    }
    if (!c->closing && flush(c, NULL, NULL) != 0) http_conn_abort(c);
}

void http_tls_on_read(http_conn *c, const char *data, size_t len)
{
    if (BIO_write(c->tls->rbio, data, (int)len) != (int)len) {
        http_conn_abort(c);
        return;
    }
    http_tls_pump(c);
}

int http_tls_write(http_conn *c, uv_write_t *w, const uv_buf_t *bufs, unsigned n, uv_write_cb cb)
{
    for (unsigned i = 0; i < n; i++) {
        if (bufs[i].len == 0) continue;
        ERR_clear_error();
        if (SSL_write(c->tls->ssl, bufs[i].base, (int)bufs[i].len) != (int)bufs[i].len) {
            char why[256];
            ssl_reason(why, sizeof why);
            mn_log_debug("http: TLS write failed: %s", why);
            return UV_EPROTO;
        }
    }
    return flush(c, w, cb);
}

void http_tls_close_notify(http_conn *c)
{
    ERR_clear_error();
    if (SSL_is_init_finished(c->tls->ssl)) (void)SSL_shutdown(c->tls->ssl);
    (void)flush(c, NULL, NULL);
}
