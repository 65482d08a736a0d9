/* TLS on the peer bus (optional): one OpenSSL session per connection, driven
 * on the bus's loop thread through two memory BIOs, so libuv keeps owning the
 * socket and nothing blocks.
 *
 *   socket --on_read--> BIO_write(rbio) --SSL_read--> c->rx (frames)
 *   frame --SSL_write--> wbio --BIO_read--> one uv_write --> socket
 *
 * Every call that may produce records (handshake, read, write) is followed by
 * a drain of wbio into one write; libuv writes a stream's requests in order,
 * so records leave in the order OpenSSL made them.
 *
 * Policy: TLS 1.3 only (every node runs this code), mutual: each side sends
 * its certificate and verifies the other's against tls_ca, and a handshake
 * without one fails. No hostname check: nodes dial numeric addresses learnt
 * from SWIM, and a node's identity is proven by the cluster-key handshake
 * that runs inside the session (peer_hello.c); the CA says "a node of this
 * cluster". No tickets, no session cache, no renegotiation, no compression.
 * A failed handshake (a plaintext peer, a certificate the CA did not sign)
 * closes the connection and counts it in closed_tls; it never stops the bus.
 * Protocol: RFC 8446 (TLS 1.3). */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "peer_internal.h"

#define TLS_READ_CHUNK 16384 /* one TLS record of plaintext at most */

/* The first OpenSSL error on this thread's queue, as text; clears the queue. */
static void ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "the peer closed or sent no TLS");
    ERR_clear_error();
}

static bool set(const char *s)
{
    return s && s[0];
}

/* Loads the three files into ctx; NULL, or which one failed. */
static const char *load_files(SSL_CTX *ctx, const mn_peer_config_t *c, const char **file)
{
    *file = c->tls_cert;
    if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1)
        return "cluster.tls_cert: cannot load the PEM certificate chain";
    *file = c->tls_key;
    BIO *in = BIO_new_file(c->tls_key, "r");
    EVP_PKEY *key = in ? PEM_read_bio_PrivateKey(in, NULL, NULL, NULL) : NULL;
    BIO_free(in);
    if (!key) return "cluster.tls_key: cannot load the PEM private key";
    int ok = SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(key);
    if (!ok) return "cluster.tls_key does not match the certificate of cluster.tls_cert";
    *file = c->tls_ca;
    if (SSL_CTX_load_verify_locations(ctx, c->tls_ca, NULL) != 1)
        return "cluster.tls_ca: cannot load the PEM CA certificates";
    return NULL;
}

mn_err mn__peer_tls_ctx_new(const mn_peer_config_t *c, struct ssl_ctx_st **out, mn_error *err)
{
    *out = NULL;
    int n = set(c->tls_cert) + set(c->tls_key) + set(c->tls_ca);
    if (n == 0) return MN_OK;
    if (n != 3)
        return mn_error_set(err, MN_ERR_INVALID,
                            "peer: TLS needs cluster.tls_cert, cluster.tls_key and "
                            "cluster.tls_ca (set all three or none)");
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (!ctx) return mn_error_set(err, MN_ERR_NOMEM, "peer: cannot create a TLS context");
    char why[256];
    const char *file = NULL, *what = NULL;
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION))
        what = "peer: cannot require TLS 1.3";
    else
        what = load_files(ctx, c, &file);
    if (what) {
        ssl_reason(why, sizeof why);
        SSL_CTX_free(ctx);
        return mn_error_set(err, MN_ERR_INVALID, "%s %s (%s)", what, file ? file : "", why);
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    *out = ctx;
    return MN_OK;
}

void mn__peer_tls_ctx_free(struct ssl_ctx_st *ctx)
{
    SSL_CTX_free(ctx);
}

void mn__peer_tls_free(peer_conn *c)
{
    SSL_free(c->ssl); /* and its BIOs */
    c->ssl = NULL;
}

/* What wbio holds, in a new wreq carrying node and frame_len; NULL: no memory. */
static peer_wreq *take_records(SSL *ssl, peer_node *node, size_t frame_len)
{
    BIO *wbio = SSL_get_wbio(ssl);
    size_t n = BIO_ctrl_pending(wbio);
    peer_wreq *w = malloc(sizeof *w + n);
    if (!w) return NULL;
    memset(w, 0, sizeof *w);
    w->node = node;
    w->frame_len = frame_len;
    w->len = n ? (size_t)BIO_read(wbio, w->data, (int)n) : 0;
    mn_assert(w->len == n); /* a memory BIO hands over all it holds */
    return w;
}

/* Moves every record OpenSSL made into one write; false: c is closed. */
static bool drain(peer_conn *c)
{
    if (BIO_ctrl_pending(SSL_get_wbio(c->ssl)) == 0) return true;
    peer_wreq *w = take_records(c->ssl, NULL, 0);
    if (!w) {
        mn__peer_conn_close(c, &c->bus->stats.closed_io);
        return false;
    }
    mn__peer_conn_write_raw(c, w);
    return c->state != CONN_CLOSING;
}

/* Closes c after an OpenSSL failure, saying why. */
static void failed(peer_conn *c, const char *during)
{
    char why[256], addr[64] = "?";
    ssl_reason(why, sizeof why);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, addr, sizeof addr);
        else
            uv_ip4_name((struct sockaddr_in *)&ss, addr, sizeof addr);
    }
    mn_log_warn("peer: TLS %s %s %s (%s) failed: %s", during, c->node ? "to" : "from",
                c->node ? c->node->id : "a peer", addr, why);
    /* the alert OpenSSL made tells the other side why; best effort, never blocks */
    BIO *wbio = SSL_get_wbio(c->ssl);
    char alert[256];
    int n = BIO_read(wbio, alert, sizeof alert);
    if (n > 0)
        uv_try_write((uv_stream_t *)&c->tcp, &(uv_buf_t){.base = alert, .len = (size_t)n}, 1);
    mn__peer_conn_close(c, &c->bus->stats.closed_tls);
}

bool mn__peer_tls_start(peer_conn *c)
{
    mn_peer_t *p = c->bus;
    mn_assert(p->tls && !c->ssl); /* one session per connection, only with TLS on */
    c->state = CONN_TLS;
    ERR_clear_error();
    c->ssl = SSL_new(p->tls);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    if (!c->ssl || !rbio || !wbio) {
        BIO_free(rbio);
        BIO_free(wbio);
        mn__peer_conn_close(c, &p->stats.closed_io);
        return false;
    }
    BIO_set_mem_eof_return(rbio, -1); /* empty = "want more", not end of stream */
    SSL_set_bio(c->ssl, rbio, wbio);
    if (c->node)
        SSL_set_connect_state(c->ssl);
    else
        SSL_set_accept_state(c->ssl);
    int r = SSL_do_handshake(c->ssl); /* the client's first flight */
    if (r != 1 && SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ) {
        failed(c, "handshake");
        return false;
    }
    return drain(c);
}

/* Decrypts what rbio holds into c->rx; false: c is closed. */
static bool read_plain(peer_conn *c)
{
    for (;;) {
        if (!mn__peer_rx_reserve(c, c->rx_len + TLS_READ_CHUNK)) {
            mn__peer_conn_close(c, &c->bus->stats.closed_io);
            return false;
        }
        int r = SSL_read(c->ssl, c->rx + c->rx_len, TLS_READ_CHUNK);
        if (r > 0) {
            c->rx_len += (size_t)r;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) return drain(c);
        if (e == SSL_ERROR_ZERO_RETURN) {
            mn__peer_conn_close(c, &c->bus->stats.closed_io); /* close_notify: a hang-up */
            return false;
        }
        failed(c, "session");
        return false;
    }
}

int mn__peer_tls_input(peer_conn *c, const uint8_t *buf, size_t len)
{
    ERR_clear_error();
    if (len && BIO_write(SSL_get_rbio(c->ssl), buf, (int)len) != (int)len) {
        mn__peer_conn_close(c, &c->bus->stats.closed_io);
        return -1;
    }
    if (SSL_is_init_finished(c->ssl)) return read_plain(c) ? 0 : -1;
    int r = SSL_do_handshake(c->ssl);
    if (r != 1 && SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ) {
        failed(c, "handshake");
        return -1;
    }
    if (!drain(c)) return -1;
    return r == 1 ? 1 : 0;
}

peer_wreq *mn__peer_tls_seal(peer_conn *c, peer_wreq *w)
{
    mn_assert(c->ssl && SSL_is_init_finished(c->ssl)); /* frames follow the handshake */
    ERR_clear_error();
    if (SSL_write(c->ssl, w->data, (int)w->len) != (int)w->len) return NULL;
    peer_wreq *s = take_records(c->ssl, w->node, w->frame_len);
    if (s) free(w);
    return s;
}
