/* The peer bus handshake, pure: the hello and the proof of the cluster key.
 *
 * Channel 0 carries control frames; their first payload byte is a type:
 *   1 hello: major, minor, flags (bit 0: keyed), nonce[16], id length, id
 *   2 proof: HMAC-SHA256 tag (32 bytes)
 * A proof is HMAC-SHA256 (RFC 2104) with the cluster key over a fixed label,
 * the verifier's nonce, the prover's nonce and both ids (length-prefixed,
 * prover first). The verifier's fresh nonce makes a recorded proof useless on
 * another connection, and the ordered ids make a proof reflected back at its
 * sender fail. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "peer_internal.h"

#define PROOF_LABEL "mnemo-peer-proof-v1"

size_t mn_peer_hello_encode(const mn_peer_hello_t *h, uint8_t *buf, size_t cap)
{
    size_t id_len = strnlen(h->node, MN_PEER_NODE_MAX);
    size_t need = 4 + MN_PEER_NONCE_LEN + 1 + id_len;
    if (cap < need) return 0;
    buf[0] = PEER_CTL_HELLO;
    buf[1] = h->major;
    buf[2] = h->minor;
    buf[3] = h->keyed ? PEER_HELLO_KEYED : 0;
    memcpy(buf + 4, h->nonce, MN_PEER_NONCE_LEN);
    buf[4 + MN_PEER_NONCE_LEN] = (uint8_t)id_len;
    memcpy(buf + 5 + MN_PEER_NONCE_LEN, h->node, id_len);
    return need;
}

bool mn__peer_id_ok(const char *s, size_t n)
{
    if (n == 0 || n > MN_PEER_NODE_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f) return false;
    return true;
}

mn_err mn_peer_hello_decode(const uint8_t *buf, size_t len, mn_peer_hello_t *out)
{
    memset(out, 0, sizeof *out);
    if (len < 5 + MN_PEER_NONCE_LEN || buf[0] != PEER_CTL_HELLO) return MN_ERR_INVALID;
    size_t id_len = buf[4 + MN_PEER_NONCE_LEN];
    /* a newer minor may append fields after the id: they are skipped */
    if (len < 5 + MN_PEER_NONCE_LEN + id_len) return MN_ERR_INVALID;
    const char *id = (const char *)buf + 5 + MN_PEER_NONCE_LEN;
    if (!mn__peer_id_ok(id, id_len)) return MN_ERR_INVALID;
    out->major = buf[1];
    out->minor = buf[2];
    out->keyed = (buf[3] & PEER_HELLO_KEYED) != 0;
    memcpy(out->nonce, buf + 4, MN_PEER_NONCE_LEN);
    memcpy(out->node, id, id_len);
    out->node[id_len] = 0;
    return MN_OK;
}

mn_err mn_peer_proof(const char *key, const mn_peer_hello_t *prover,
                     const mn_peer_hello_t *verifier, uint8_t mac[MN_PEER_MAC_LEN])
{
    if (!key || !*key) return MN_ERR_INVALID;
    uint8_t msg[sizeof PROOF_LABEL + 2 * MN_PEER_NONCE_LEN + 2 * (MN_PEER_NODE_MAX + 1)];
    size_t n = 0;
    memcpy(msg, PROOF_LABEL, sizeof PROOF_LABEL - 1);
    n += sizeof PROOF_LABEL - 1;
    memcpy(msg + n, verifier->nonce, MN_PEER_NONCE_LEN);
    n += MN_PEER_NONCE_LEN;
    memcpy(msg + n, prover->nonce, MN_PEER_NONCE_LEN);
    n += MN_PEER_NONCE_LEN;
    const char *ids[2] = {prover->node, verifier->node};
    for (int i = 0; i < 2; i++) {
        size_t l = strnlen(ids[i], MN_PEER_NODE_MAX);
        msg[n++] = (uint8_t)l;
        memcpy(msg + n, ids[i], l);
        n += l;
    }
    unsigned int out_len = 0;
    if (!HMAC(EVP_sha256(), key, (int)strlen(key), msg, n, mac, &out_len) ||
        out_len != MN_PEER_MAC_LEN)
        return MN_ERR_INTERNAL;
    return MN_OK;
}
