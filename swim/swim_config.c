/* SWIM timing profiles, their range checks, and the address text form.
 *
 * "lan" copies memberlist's DefaultLANConfig (config.go): 1 s probe interval,
 * 500 ms probe timeout, 3 indirect checks, suspicion mult 4 (max 6x), health
 * multiplier up to 8, gossip every 200 ms to 3 nodes, retransmit mult 4,
 * push-pull every 30 s. "fast" targets crash detection by all within 2 s
 * (p99) at 100 nodes on a LAN, up to 10 % loss, for at most 20 datagrams per
 * node per second, every datagram counted (tuned in simnet, see
 * docs/swim.md): 160 ms probe, 60 ms timeout, suspicion mult 2 with 2
 * confirmations (min 0.64 s, max 3.84 s at 100 nodes), gossip datagrams only
 * for an update's first fan-out (3 sends; the rest ride on pings and acks),
 * retransmit mult 3, push-pull every 30 s. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/swim.h"

const char *mn_swim_state_name(mn_swim_state_t s)
{
    switch (s) {
    case MN_SWIM_ALIVE:
        return "alive";
    case MN_SWIM_SUSPECT:
        return "suspect";
    case MN_SWIM_DEAD:
        return "dead";
    case MN_SWIM_LEFT:
        return "left";
    }
    return "unknown";
}

mn_err mn_swim_config_profile(const char *name, mn_swim_config_t *out)
{
    if (!name || !out) return MN_ERR_INVALID;
    mn_swim_config_t c = {
        .probe_interval_ms = 1000,
        .probe_timeout_ms = 500,
        .indirect_checks = 3,
        .suspicion_mult = 4,
        .suspicion_max_mult = 6,
        .suspicion_confirmations = -1,
        .awareness_max = 8,
        .gossip_interval_ms = 200,
        .gossip_nodes = 3,
        .retransmit_mult = 4,
        .push_pull_interval_ms = 30000,
        .gossip_to_dead_ms = 30000,
        .dead_reclaim_ms = 3600 * 1000,
        .join_retry_ms = 1000,
        .max_packet = MN_SWIM_MAX_PACKET,
        .lifeguard = true,
        .verify = true,
    };
    if (strcmp(name, "fast") == 0) {
        c.probe_interval_ms = 160;
        c.probe_timeout_ms = 60;
        c.suspicion_mult = 2;
        c.suspicion_confirmations = 2;
        c.gossip_transmits = 3;
        c.retransmit_mult = 3;
        c.push_pull_interval_ms = 30000;
        c.gossip_to_dead_ms = 15000;
        c.join_retry_ms = 500;
    } else if (strcmp(name, "lan") != 0) {
        return MN_ERR_INVALID;
    }
    *out = c;
    return MN_OK;
}

#define RANGE(field, lo, hi)                                                                       \
    do {                                                                                           \
        if ((int64_t)c->field < (int64_t)(lo) || (int64_t)c->field > (int64_t)(hi))                \
            return mn_error_set(err, MN_ERR_INVALID, "swim: %s = %lld is outside [%lld, %lld]",    \
                                #field, (long long)c->field, (long long)(lo), (long long)(hi));    \
    } while (0)

mn_err mn_swim_config_check(const mn_swim_config_t *c, mn_error *err)
{
    if (!c) return mn_error_set(err, MN_ERR_INVALID, "swim: no config");
    RANGE(probe_interval_ms, 10, 600000);
    RANGE(probe_timeout_ms, 1, c->probe_interval_ms);
    RANGE(indirect_checks, 0, 16);
    RANGE(suspicion_mult, 1, 100);
    RANGE(suspicion_max_mult, 1, 100);
    RANGE(suspicion_confirmations, -1, 16);
    RANGE(awareness_max, 1, 64);
    RANGE(gossip_interval_ms, 1, 600000);
    RANGE(gossip_nodes, 0, 64);
    RANGE(gossip_transmits, 0, 100);
    RANGE(retransmit_mult, 1, 100);
    RANGE(push_pull_interval_ms, 0, 86400000);
    RANGE(gossip_to_dead_ms, 0, 86400000);
    RANGE(dead_reclaim_ms, 1000, 30LL * 86400000);
    RANGE(join_retry_ms, 10, 3600000);
    RANGE(max_packet, MN_SWIM_MIN_PACKET, MN_SWIM_MAX_PACKET);
    return MN_OK;
}

mn_err mn_swim_addr_parse(const char *s, mn_swim_addr_t *out)
{
    if (!s || !out) return MN_ERR_INVALID;
    memset(out, 0, sizeof *out);
    char host[64];
    const char *port;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host) return MN_ERR_INVALID;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = 0;
        port = end + 2;
        if (inet_pton(AF_INET6, host, out->ip) != 1) return MN_ERR_INVALID;
        out->family = 6;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host) return MN_ERR_INVALID;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = 0;
        port = colon + 1;
        if (inet_pton(AF_INET, host, out->ip) != 1) return MN_ERR_INVALID;
        out->family = 4;
    }
    char *endp = NULL;
    long p = strtol(port, &endp, 10);
    if (!*port || *endp || p < 1 || p > 65535) return MN_ERR_INVALID;
    out->port = (uint16_t)p;
    return MN_OK;
}

void mn_swim_addr_format(const mn_swim_addr_t *a, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (a->family == 4) {
        inet_ntop(AF_INET, a->ip, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, a->port);
    } else if (a->family == 6) {
        inet_ntop(AF_INET6, a->ip, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, a->port);
    } else {
        snprintf(buf, len, "-");
    }
}

bool mn_swim_addr_equal(const mn_swim_addr_t *a, const mn_swim_addr_t *b)
{
    return a->family == b->family && a->port == b->port && memcmp(a->ip, b->ip, 16) == 0;
}
