/* SWIM datagram framing and authentication.
 *
 * Datagram = header (8 bytes: 'M' 'S' version flags, 4 reserved) + FlatBuffers
 * body (wire/swim.fbs) + HMAC-SHA256 tag (32 bytes, RFC 2104) over header and
 * body when the cluster has a key (flags bit 0). A node with a key drops
 * untagged or wrongly tagged datagrams; a node without one drops tagged ones.
 * Every body then passes the FlatBuffers Verifier (in wire/) before use.
 * Datagrams never exceed cfg.max_packet (<= 1400 bytes): outgoing bodies are
 * planned to fit, piggybacking as many queued updates as the room allows. */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <string.h>

#include "swim_internal.h"

mn_err mn__swim_mac_init(mn_swim_t *s, const uint8_t *key, size_t len)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac) return MN_ERR_INTERNAL;
    s->mac = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context keeps its own reference */
    if (!s->mac) return MN_ERR_NOMEM;
    char digest[] = "SHA256";
    OSSL_PARAM params[2] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                            OSSL_PARAM_construct_end()};
    if (!EVP_MAC_init(s->mac, key, len, params)) return MN_ERR_INTERNAL;
    s->auth = true;
    return MN_OK;
}

void mn__swim_mac_free(mn_swim_t *s)
{
    EVP_MAC_CTX_free(s->mac);
    s->mac = NULL;
}

static bool mac_compute(mn_swim_t *s, const uint8_t *data, size_t len, uint8_t tag[SWIM_TAG_LEN])
{
    size_t out = 0;
    /* NULL key: restart with the key set at creation */
    return EVP_MAC_init(s->mac, NULL, 0, NULL) && EVP_MAC_update(s->mac, data, len) &&
           EVP_MAC_final(s->mac, tag, &out, SWIM_TAG_LEN) && out == SWIM_TAG_LEN;
}

size_t mn__swim_send(mn_swim_t *s, const mn_swim_addr_t *to, mn_wire_swim_msg_t *msg,
                     bool piggyback)
{
    size_t preset = msg->n_updates;
    if (preset > MN_WIRE_SWIM_MAX_ENTRIES) preset = MN_WIRE_SWIM_MAX_ENTRIES;
    if (msg->updates != s->scratch)
        for (size_t i = 0; i < preset; i++)
            s->scratch[i] = msg->updates[i];
    size_t queued = 0;
    size_t room = MN_WIRE_SWIM_MAX_ENTRIES - preset; /* the encoder cuts to the bytes left */
    if (piggyback) queued = mn__swim_queue_peek(s, s->scratch + preset, room);
    msg->updates = s->scratch;
    msg->n_updates = preset + queued;
    msg->src = s->self->id;
    msg->src_len = s->self->id_len;
    msg->known = (uint32_t)s->n;

    size_t cap = (size_t)s->cfg.max_packet - SWIM_HDR_LEN - (s->auth ? SWIM_TAG_LEN : 0);
    size_t used_state = 0, used_updates = 0, body_len = 0;
    const uint8_t *body = NULL;
    mn_err rc = mn_wire_swim_encode(s->enc, msg, cap, &used_state, &used_updates, &body, &body_len);
    if (rc != MN_OK) {
        mn_log_error("swim: cannot encode a kind %d packet: %s", msg->kind, mn_strerror(rc));
        return 0;
    }
    if (piggyback && used_updates > preset) {
        s->stats.updates_sent += used_updates - preset;
        mn__swim_queue_sent(s, used_updates - preset);
    }
    uint8_t *p = s->tx;
    p[0] = SWIM_MAGIC0;
    p[1] = SWIM_MAGIC1;
    p[2] = SWIM_VERSION;
    p[3] = s->auth ? SWIM_HDR_FLAG_AUTH : 0;
    memset(p + 4, 0, 4);
    memcpy(p + SWIM_HDR_LEN, body, body_len);
    size_t len = SWIM_HDR_LEN + body_len;
    if (s->auth) {
        if (!mac_compute(s, p, len, p + len)) {
            mn_log_error("swim: HMAC failed");
            return 0;
        }
        len += SWIM_TAG_LEN;
    }
    mn_assert(len <= (size_t)s->cfg.max_packet); /* the encoder kept to cap */
    s->stats.packets_sent++;
    s->stats.sent_kind[msg->kind & 7]++;
    s->stats.bytes_sent += len;
    s->cb.send(s->cb.user, to, p, len);
    return used_state;
}

mn_err mn__swim_receive(mn_swim_t *s, const uint8_t *buf, size_t len, mn_wire_swim_msg_t *msg)
{
    if (!buf || len < SWIM_HDR_LEN + 8 || len > MN_SWIM_MAX_PACKET || buf[0] != SWIM_MAGIC0 ||
        buf[1] != SWIM_MAGIC1 || buf[2] != SWIM_VERSION) {
        s->stats.dropped_verify++;
        return MN_ERR_CORRUPT;
    }
    bool tagged = (buf[3] & SWIM_HDR_FLAG_AUTH) != 0;
    size_t body_len = len - SWIM_HDR_LEN;
    if (tagged != s->auth) {
        s->stats.dropped_auth++;
        return MN_ERR_CORRUPT;
    }
    if (s->auth) {
        if (body_len < SWIM_TAG_LEN + 8) {
            s->stats.dropped_auth++;
            return MN_ERR_CORRUPT;
        }
        body_len -= SWIM_TAG_LEN;
        uint8_t tag[SWIM_TAG_LEN];
        if (!mac_compute(s, buf, SWIM_HDR_LEN + body_len, tag) ||
            CRYPTO_memcmp(tag, buf + SWIM_HDR_LEN + body_len, SWIM_TAG_LEN) != 0) {
            s->stats.dropped_auth++;
            return MN_ERR_CORRUPT;
        }
    }
    memcpy(s->rx_body, buf + SWIM_HDR_LEN, body_len);
    mn_err rc = mn_wire_swim_decode((const uint8_t *)s->rx_body, body_len, msg, s->rx_entries,
                                    MN_WIRE_SWIM_MAX_ENTRIES);
    if (rc != MN_OK) {
        s->stats.dropped_verify++;
        return rc;
    }
    return MN_OK;
}
