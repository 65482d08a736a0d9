/* TLS on the peer bus (peer/peer_tls.c): certificates made at test time with
 * the OpenSSL C API in a temp dir (two CAs, nodes signed by each). Two buses
 * with certificates of one CA exchange frames both ways with the cluster-key
 * handshake inside TLS, and a wrong key still fails that handshake; a
 * certificate of another CA is refused on both sides; a plaintext bus and a
 * TLS bus refuse each other (counted, no crash); a misconfiguration (a
 * missing file, a key of another certificate, one of the three paths unset)
 * is an error naming the key; the modes of a rolling switch (accept, prefer) take both
 * kinds of peer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer_fixture.h"
#include "testutil.h"

typedef struct pki {
    char *dir;
    char ca1[512], ca2[512]; /* CA certificates */
    char cert[4][512];       /* a, b, c: CA 1; x: CA 2 */
    char key[4][512];
} pki;

static pki g;

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(e);
    assert_int_equal(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
}

/* A certificate for key named cn, signed by issuer (NULL: self-signed CA). */
static X509 *cert_new(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key)
{
    static long serial = 1;
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    add_ext(x, issuer ? issuer : x, NID_basic_constraints,
            issuer ? "critical,CA:FALSE" : "critical,CA:TRUE");
    add_ext(x, issuer ? issuer : x, NID_key_usage,
            issuer ? "critical,digitalSignature" : "critical,keyCertSign,cRLSign");
    assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static void write_pem(const char *path, EVP_PKEY *key, X509 *x)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    if (key) assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    if (x) assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
}

/* Node i's key and certificate, signed by ca. */
static void make_node(int i, const char *cn, X509 *ca, EVP_PKEY *ca_key)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    X509 *x = cert_new(k, cn, ca, ca_key);
    snprintf(g.cert[i], sizeof g.cert[i], "%s/%s.crt", g.dir, cn);
    snprintf(g.key[i], sizeof g.key[i], "%s/%s.key", g.dir, cn);
    write_pem(g.cert[i], NULL, x);
    write_pem(g.key[i], k, NULL);
    X509_free(x);
    EVP_PKEY_free(k);
}

static int setup(void **state)
{
    (void)state;
    g.dir = mn_test_tmpdir("mn-peertls");
    if (!g.dir) return -1;
    EVP_PKEY *k1 = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
    X509 *ca1 = cert_new(k1, "mnemo test CA 1", NULL, NULL);
    X509 *ca2 = cert_new(k2, "mnemo test CA 2", NULL, NULL);
    snprintf(g.ca1, sizeof g.ca1, "%s/ca1.crt", g.dir);
    snprintf(g.ca2, sizeof g.ca2, "%s/ca2.crt", g.dir);
    write_pem(g.ca1, NULL, ca1);
    write_pem(g.ca2, NULL, ca2);
    make_node(0, "a", ca1, k1);
    make_node(1, "b", ca1, k1);
    make_node(2, "c", ca1, k1);
    make_node(3, "x", ca2, k2);
    X509_free(ca1);
    X509_free(ca2);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mn_test_rmrf(g.dir);
    free(g.dir);
    return 0;
}

/* A bus with cluster key key, node i's certificate and ca (NULL: plain TCP). */
static mn_peer_t *keyed_bus(uv_loop_t *loop, const char *id, const char *key, int i, const char *ca)
{
    mn_peer_config_t c;
    test_peer_config(&c, id, key, 0);
    c.queue_max_bytes = 1 << 16;
    if (ca) {
        c.tls_cert = g.cert[i];
        c.tls_key = g.key[i];
        c.tls_ca = ca;
    }
    return test_peer_new(loop, &c);
}

static mn_peer_t *tls_bus(uv_loop_t *loop, const char *id, int i, const char *ca)
{
    return keyed_bus(loop, id, "secret", i, ca);
}

static void test_peer_tls_pair_exchanges_frames_with_the_key_proven_inside(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mn_peer_t *p[2] = {tls_bus(&loop, "a", 0, g.ca1), tls_bus(&loop, "b", 1, g.ca1)};
    inbox in[2];
    memset(in, 0, sizeof in);
    mn_peer_on(p[0], MN_PEER_CH_REPL, on_frame, &in[0]);
    mn_peer_on(p[1], MN_PEER_CH_REPL, on_frame, &in[1]);
    link_to(p[0], "b", p[1]);
    link_to(p[1], "a", p[0]);
    /* queued before the handshakes, and large enough to span TLS records */
    static uint8_t big[1000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    for (int k = 0; k < 20; k++) {
        assert_int_equal(mn_peer_send(p[0], "b", MN_PEER_CH_REPL, big, sizeof big), MN_OK);
        assert_int_equal(mn_peer_send(p[1], "a", MN_PEER_CH_REPL, (const uint8_t *)"hi", 2), MN_OK);
    }
    want w0 = {&in[0], 20}, w1 = {&in[1], 20};
    assert_true(run_until(&loop, got, &w0));
    assert_true(run_until(&loop, got, &w1));
    assert_int_equal(in[1].bytes, 20 * sizeof big);
    assert_memory_equal(in[1].last, big, sizeof in[1].last);
    assert_string_equal(in[1].last_from, "a");
    assert_string_equal(in[0].last_from, "b");
    assert_true(mn_peer_connected(p[0], "b") && mn_peer_connected(p[1], "a"));
    for (int i = 0; i < 2; i++) {
        mn_peer_stats_t st;
        mn_peer_stats(p[i], &st);
        assert_int_equal(st.handshakes, 2); /* one dialled, one accepted */
        assert_int_equal(st.closed_tls + st.closed_auth + st.closed_hello, 0);
        /* counted as frames, not as TLS records */
        assert_int_equal(st.frames_received, 20);
        assert_int_equal(st.bytes_received, 20 * ((i ? sizeof big : 2) + 5));
    }
    finish(&loop, p, 2);
}

static void test_peer_tls_refuses_a_certificate_of_another_ca(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* x's certificate is signed by CA 2 and x trusts only CA 2: neither side accepts the other */
    mn_peer_t *a = tls_bus(&loop, "a", 0, g.ca1), *x = tls_bus(&loop, "x", 3, g.ca2);
    /* c trusts CA 2 but holds a CA 1 certificate: a accepts c's, c refuses a's */
    mn_peer_t *c = tls_bus(&loop, "c", 2, g.ca2);
    inbox in = {0};
    mn_peer_on(x, MN_PEER_CH_REPL, on_frame, &in);
    mn_peer_on(c, MN_PEER_CH_REPL, on_frame, &in);
    link_to(a, "x", x);
    link_to(a, "c", c);
    mn_peer_send(a, "x", MN_PEER_CH_REPL, (const uint8_t *)"1", 1);
    mn_peer_send(a, "c", MN_PEER_CH_REPL, (const uint8_t *)"1", 1);
    want_stat wx = STAT(x, closed_tls, 2), wc = STAT(c, closed_tls, 2), wa = STAT(a, closed_tls, 4);
    assert_true(run_until(&loop, stat_reached, &wx)); /* a redials: refused each time */
    assert_true(run_until(&loop, stat_reached, &wc));
    assert_true(run_until(&loop, stat_reached, &wa));
    assert_int_equal(in.frames, 0);
    assert_false(mn_peer_connected(a, "x") || mn_peer_connected(a, "c"));
    mn_peer_t *ps[3] = {a, x, c};
    for (int i = 0; i < 3; i++) {
        mn_peer_stats_t st;
        mn_peer_stats(ps[i], &st);
        assert_int_equal(st.handshakes, 0);
    }
    finish(&loop, ps, 3);
}

static void test_peer_plaintext_and_tls_refuse_each_other(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mn_peer_t *t = tls_bus(&loop, "a", 0, g.ca1), *plain = tls_bus(&loop, "b", 1, NULL);
    inbox in = {0};
    mn_peer_on(t, MN_PEER_CH_REPL, on_frame, &in);
    mn_peer_on(plain, MN_PEER_CH_REPL, on_frame, &in);
    link_to(plain, "a", t); /* a plaintext hello at a TLS listener */
    link_to(t, "b", plain); /* a TLS ClientHello at a plaintext listener */
    mn_peer_send(plain, "a", MN_PEER_CH_REPL, (const uint8_t *)"1", 1);
    mn_peer_send(t, "b", MN_PEER_CH_REPL, (const uint8_t *)"1", 1);
    /* the TLS side counts a plaintext hello as a failed handshake; the plaintext
     * side reads a TLS record header as an oversize frame length */
    want_stat wt = STAT(t, closed_tls, 2), wp = STAT(plain, closed_oversize, 2);
    assert_true(run_until(&loop, stat_reached, &wt));
    assert_true(run_until(&loop, stat_reached, &wp));
    assert_int_equal(in.frames, 0);
    assert_false(mn_peer_connected(t, "b") || mn_peer_connected(plain, "a"));
    /* and the TLS bus still works for a TLS peer */
    mn_peer_t *c = tls_bus(&loop, "c", 2, g.ca1);
    link_to(c, "a", t);
    mn_peer_send(c, "a", MN_PEER_CH_REPL, (const uint8_t *)"ok", 2);
    want w = {&in, 1};
    assert_true(run_until(&loop, got, &w));
    assert_string_equal(in.last_from, "c");
    mn_peer_t *ps[3] = {t, plain, c};
    finish(&loop, ps, 3);
}

static void test_peer_tls_still_requires_the_cluster_key_inside(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* certificates of one CA, but another cluster key: TLS opens, the proof fails */
    mn_peer_t *a = keyed_bus(&loop, "a", "secret", 0, g.ca1),
              *b = keyed_bus(&loop, "b", "other", 1, g.ca1);
    inbox in = {0};
    mn_peer_on(b, MN_PEER_CH_REPL, on_frame, &in);
    link_to(a, "b", b);
    mn_peer_send(a, "b", MN_PEER_CH_REPL, (const uint8_t *)"1", 1);
    want_stat wb = STAT(b, closed_auth, 2);
    assert_true(run_until(&loop, stat_reached, &wb));
    assert_int_equal(in.frames, 0);
    mn_peer_stats_t st;
    mn_peer_stats(b, &st);
    assert_int_equal(st.closed_tls + st.handshakes, 0);
    mn_peer_t *ps[2] = {a, b};
    finish(&loop, ps, 2);
}

static mn_peer_t *mode_bus(uv_loop_t *loop, const char *id, int i, mn_peer_tls_mode_t mode)
{
    mn_peer_config_t c;
    test_peer_config(&c, id, "secret", 0);
    c.queue_max_bytes = 1 << 16;
    c.tls_cert = g.cert[i];
    c.tls_key = g.key[i];
    c.tls_ca = g.ca1;
    c.tls_mode = mode;
    return test_peer_new(loop, &c);
}

/* The rolling switch to TLS (cluster.tls_mode): an ACCEPT bus takes a plaintext peer and a
 * TLS one (the first byte tells) and dials plaintext; a PREFER bus takes both and dials
 * TLS; a REQUIRE bus takes TLS only. Each step's pairs exchange frames both ways. */
static void test_peer_tls_modes_let_a_cluster_switch_without_stopping(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mn_peer_t *plain = tls_bus(&loop, "p", 1, NULL),
              *acc = mode_bus(&loop, "a", 0, MN_PEER_TLS_ACCEPT),
              *pre = mode_bus(&loop, "b", 2, MN_PEER_TLS_PREFER),
              *req = tls_bus(&loop, "r", 1, g.ca1);
    mn_peer_t *all[4] = {plain, acc, pre, req};
    inbox in[4];
    memset(in, 0, sizeof in);
    for (int i = 0; i < 4; i++)
        mn_peer_on(all[i], MN_PEER_CH_REPL, on_frame, &in[i]);
    /* step 1: plain <-> accept, both ways (accept dials plaintext) */
    link_to(plain, "a", acc);
    link_to(acc, "p", plain);
    /* step 2: prefer <-> accept (prefer dials TLS, accept dials plaintext) */
    link_to(pre, "a", acc);
    link_to(acc, "b", pre);
    /* step 3: require <-> prefer (both dial TLS) */
    link_to(req, "b", pre);
    link_to(pre, "r", req);
    const uint8_t m[2] = {'h', 'i'};
    mn_peer_send(plain, "a", MN_PEER_CH_REPL, m, 2);
    mn_peer_send(acc, "p", MN_PEER_CH_REPL, m, 2);
    mn_peer_send(pre, "a", MN_PEER_CH_REPL, m, 2);
    mn_peer_send(acc, "b", MN_PEER_CH_REPL, m, 2);
    mn_peer_send(req, "b", MN_PEER_CH_REPL, m, 2);
    mn_peer_send(pre, "r", MN_PEER_CH_REPL, m, 2);
    want w[4] = {{&in[0], 1}, {&in[1], 2}, {&in[2], 2}, {&in[3], 1}};
    for (int i = 0; i < 4; i++)
        assert_true(run_until(&loop, got, &w[i]));
    mn_peer_stats_t st;
    mn_peer_stats(acc, &st); /* from p in plaintext, from b in TLS */
    assert_true(st.accepted_plain == 1 && st.accepted_tls == 1);
    mn_peer_stats(pre, &st); /* from a in plaintext, from r in TLS */
    assert_true(st.accepted_plain == 1 && st.accepted_tls == 1);
    mn_peer_stats(req, &st); /* from b in TLS */
    assert_true(st.accepted_plain == 0 && st.accepted_tls == 1);
    for (int i = 0; i < 4; i++) {
        mn_peer_stats(all[i], &st);
        assert_int_equal(st.closed_tls + st.closed_auth + st.closed_hello + st.closed_oversize, 0);
    }
    finish(&loop, all, 4);
    /* accept or prefer without the certificate files is a clear error */
    uv_loop_init(&loop);
    mn_peer_config_t c;
    test_peer_config(&c, "x", "secret", 0);
    c.tls_mode = MN_PEER_TLS_PREFER;
    mn_peer_t *p = NULL;
    mn_error err = {0};
    assert_int_equal(mn_peer_new(&loop, &c, &p, &err), MN_ERR_INVALID);
    assert_null(p);
    assert_non_null(strstr(err.message, "cluster.tls_mode"));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* mn_peer_new with these files fails with MN_ERR_INVALID and a message holding says. */
static void refused(const char *cert, const char *key, const char *ca, const char *says)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    mn_peer_config_t c;
    test_peer_config(&c, "a", "secret", 0);
    c.tls_cert = cert;
    c.tls_key = key;
    c.tls_ca = ca;
    mn_peer_t *p = NULL;
    mn_error err = {0};
    assert_int_equal(mn_peer_new(&loop, &c, &p, &err), MN_ERR_INVALID);
    assert_null(p);
    if (!strstr(err.message, says)) fail_msg("\"%s\" does not say \"%s\"", err.message, says);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_peer_tls_misconfiguration_is_a_clear_error(void **state)
{
    (void)state;
    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope.crt", g.dir);
    refused(missing, g.key[0], g.ca1, "cluster.tls_cert: cannot load");
    refused(g.cert[0], missing, g.ca1, "cluster.tls_key: cannot load");
    refused(g.cert[0], g.key[1], g.ca1, "cluster.tls_key does not match");
    refused(g.cert[0], g.key[0], missing, "cluster.tls_ca: cannot load");
    refused(g.cert[0], g.key[0], "", "set all three or none");
    refused(NULL, NULL, g.ca1, "set all three or none");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peer_tls_pair_exchanges_frames_with_the_key_proven_inside),
        cmocka_unit_test(test_peer_tls_refuses_a_certificate_of_another_ca),
        cmocka_unit_test(test_peer_plaintext_and_tls_refuse_each_other),
        cmocka_unit_test(test_peer_tls_still_requires_the_cluster_key_inside),
        cmocka_unit_test(test_peer_tls_misconfiguration_is_a_clear_error),
        cmocka_unit_test(test_peer_tls_modes_let_a_cluster_switch_without_stopping),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
