/* Internal hops: the signature a node puts on a request it forwards to another node, and its
 * check on arrival (cluster_client.h has the header list and the signed text).
 *
 * HMAC-SHA256 (RFC 2104) under cluster.key over the method, the path and query, the time,
 * the origin and the identity it vouches for, and the SHA-256 of the body, so none of them
 * can be changed on the way. The gate checks the head (the body is not read yet) against the
 * digest the hop claims; the handler's routing step then checks the body against that digest
 * (cl_hop_verify_body) before anything is served. A hop outside CL_HOP_SKEW_MS of the
 * receiver's clock is refused, and within that window the gate refuses a signature it saw
 * already (api/cluster_replay.c), so a captured hop cannot be replayed. */
#include "cluster_client.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "mnemo/util.h"

static const char *const ROLES[] = {"open", "read", "write", "admin"};

static void hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = 0;
}

bool cl_hop_encode_key(const char *name, char *out)
{
    if (!name || !*name) {
        memcpy(out, "-", 2); /* none: '-' itself is always encoded */
        return true;
    }
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("._~", *p);
        if (n + (plain ? 1 : 3) > CL_HOP_KEY_MAX) return false;
        if (plain) {
            out[n++] = (char)*p;
        } else {
            snprintf(out + n, 4, "%%%02X", *p);
            n += 3;
        }
    }
    out[n] = 0;
    return true;
}

static void body_digest(const char *body, size_t len, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)(body ? body : ""), body ? len : 0, d);
    hex(d, sizeof d, out);
}

/* The HMAC of the signed text, hex into out (65 bytes). stamp: "time\nnonce". */
static void mac(const char *key, const cl_hop_identity *id, const char *method, const char *path,
                const char *query, const char *stamp, const char *digest, char out[65])
{
    const char *q = query && *query ? query : "";
    size_t cap = 64 + strlen(method) + strlen(path) + strlen(q) + strlen(stamp) + strlen(id->node) +
                 strlen(id->role) + strlen(id->key) + strlen(id->spaces) + strlen(digest);
    char *text = malloc(cap);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    int n =
        text ? snprintf(text, cap, "mnemo-hop-v1\n%s\n%s%s%s\n%s\n%s\n%s\n%s\n%s\n%s", method, path,
                        *q ? "?" : "", q, stamp, id->node, id->role, id->key, id->spaces, digest)
             : -1;
    /* out of memory: a tag of zeros, which no verification accepts (it recomputes) */
    if (n < 0 ||
        !HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)text, (size_t)n, d, &dl))
        memset(d, 0, dl = SHA256_DIGEST_LENGTH);
    mn_assert(dl == SHA256_DIGEST_LENGTH);
    hex(d, dl, out);
    free(text);
}

void cl_hop_sign(const char *cluster_key, const cl_hop_identity *id, const char *method,
                 const char *path, const char *query, const char *body, size_t body_len,
                 int64_t now_ms, cl_hop_sig *s)
{
    unsigned char r[8] = {0}; /* RAND_bytes failing leaves zeros: a replay-like resend */
    RAND_bytes(r, sizeof r);
    hex(r, sizeof r, s->nonce);
    snprintf(s->time, sizeof s->time, "%lld", (long long)now_ms);
    char stamp[sizeof s->time + sizeof s->nonce + 1];
    snprintf(stamp, sizeof stamp, "%s\n%s", s->time, s->nonce);
    body_digest(body, body_len, s->body);
    mac(cluster_key ? cluster_key : "", id, method, path, query, stamp, s->body, s->sig);
    const cl_http_header h[CL_HOP_HEADERS] = {
        {"x-mnemo-hop-node", id->node},     {"x-mnemo-hop-time", s->time},
        {"x-mnemo-hop-role", id->role},     {"x-mnemo-hop-key", id->key},
        {"x-mnemo-hop-spaces", id->spaces}, {"x-mnemo-hop-body", s->body},
        {"x-mnemo-hop-sig", s->sig},        {"x-mnemo-hop-nonce", s->nonce},
    };
    memcpy(s->headers, h, sizeof h);
}

bool cl_hop_present(const mn_http_request_t *req)
{
    return mn_http_header_get(req, "x-mnemo-hop-node") != NULL;
}

/* Copies header name of req into out (cap bytes): false if absent or too long. */
static bool take(const mn_http_request_t *req, const char *name, char *out, size_t cap)
{
    const char *v = mn_http_header_get(req, name);
    if (!v || strlen(v) >= cap) return false;
    memcpy(out, v, strlen(v) + 1);
    return true;
}

static bool role_known(const char *r)
{
    for (size_t i = 0; i < sizeof ROLES / sizeof ROLES[0]; i++)
        if (!strcmp(r, ROLES[i])) return true;
    return false;
}

mn_err cl_hop_verify_head(const char *cluster_key, const mn_http_request_t *req, int64_t now_ms,
                          cl_hop_identity *id, mn_error *err)
{
    char time[24], nonce[17], digest[65], sig[65], want[65];
    memset(id, 0, sizeof *id);
    if (!take(req, "x-mnemo-hop-node", id->node, sizeof id->node) || !id->node[0] ||
        !take(req, "x-mnemo-hop-time", time, sizeof time) ||
        !take(req, "x-mnemo-hop-nonce", nonce, sizeof nonce) || strlen(nonce) != 16 ||
        !take(req, "x-mnemo-hop-role", id->role, sizeof id->role) ||
        !take(req, "x-mnemo-hop-key", id->key, sizeof id->key) ||
        !take(req, "x-mnemo-hop-spaces", id->spaces, sizeof id->spaces) ||
        !take(req, "x-mnemo-hop-body", digest, sizeof digest) || strlen(digest) != 64 ||
        !take(req, "x-mnemo-hop-sig", sig, sizeof sig) || strlen(sig) != 64)
        return mn_error_set(err, MN_ERR_INVALID, "internal hop: missing or malformed headers");
    char *stop = NULL;
    long long t = strtoll(time, &stop, 10);
    if (stop == time || *stop)
        return mn_error_set(err, MN_ERR_INVALID, "internal hop: bad x-mnemo-hop-time");
    char stamp[sizeof time + sizeof nonce + 1];
    snprintf(stamp, sizeof stamp, "%s\n%s", time, nonce);
    mac(cluster_key ? cluster_key : "", id, req->method, req->path, req->query, stamp, digest,
        want);
    if (CRYPTO_memcmp(want, sig, 64) != 0)
        return mn_error_set(err, MN_ERR_INVALID,
                            "internal hop: bad signature (is cluster.key the same on every node?)");
    if (t < now_ms - CL_HOP_SKEW_MS || t > now_ms + CL_HOP_SKEW_MS)
        return mn_error_set(err, MN_ERR_INVALID,
                            "internal hop: its time is %lld ms from this node's clock (at most "
                            "%d allowed)",
                            t - (long long)now_ms, CL_HOP_SKEW_MS);
    if (!role_known(id->role))
        return mn_error_set(err, MN_ERR_INVALID, "internal hop: unknown role");
    return MN_OK;
}

mn_err cl_hop_verify_body(const mn_http_request_t *req, mn_error *err)
{
    const char *claimed = mn_http_header_get(req, "x-mnemo-hop-body");
    char got[65];
    body_digest(req->body, req->body_len, got);
    if (!claimed || strlen(claimed) != 64 || CRYPTO_memcmp(claimed, got, 64) != 0)
        return mn_error_set(err, MN_ERR_INVALID,
                            "internal hop: the body is not the one it was signed with");
    return MN_OK;
}
