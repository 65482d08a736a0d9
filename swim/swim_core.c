/* SWIM core: creation, the probe cycle, dissemination, full-state sync, join
 * and leave. Sans-IO: driven by mn_swim_on_packet / mn_swim_on_tick with the
 * caller's time; sends through a callback (ARCHITECTURE.md rule 1).
 *
 * Probe cycle (SWIM, Das et al. 2002, §3-4; memberlist state.go probeNode):
 * every probe interval (times the Lifeguard health multiplier) the next member
 * in a shuffled round-robin order gets a ping; without an ack within the probe
 * timeout, the ping is sent once more; still without one after another
 * timeout, k random alive members get a ping-req and answer with the
 * forwarded ack or with a nack when the target stays silent, while we ping the
 * target directly a third time (memberlist's TCP ping); without any ack
 * by the end of the indirect phase (2 probe timeouts) the target is suspected.
 * Missing nacks blame our own health (Lifeguard LHA-Probe). A ping to a member
 * we suspect carries the suspicion (Lifeguard buddy system), so it can refute
 * at once. A suspicion heard from others is verified: the suspect becomes our
 * next probe target (direct pings only); see swim_members.c for how that
 * gates death notices and expired timers (recheck pings).
 *
 * Dissemination: queued updates ride on every ping, ack, ping-req and nack,
 * and a gossip packet goes to gossip_nodes random peers each gossip interval
 * while the queue holds anything (with gossip_transmits: while it holds an
 * update sent fewer times than that, i.e. only for its first fan-out; the
 * remaining sends ride on the probe traffic). Anti-entropy: every push_pull interval a
 * full-state sync (several datagrams when needed) with one random alive
 * member, which answers with its own state; now and then one with a dead
 * member, so split clusters find each other again (Serf's reconnect). Join =
 * a sync with each seed, retried while no peer is known. A datagram from an
 * unknown or dead-believed sender, or one whose sender's table is larger than
 * ours, triggers a sync with it at once (rate-limited).
 *
 * Invariants: at most one probe in flight; the self member is never removed,
 * never probed, and its state changes only by leave; incarnations of a member
 * only grow in this view. */
#include <stdlib.h>
#include <string.h>

#include "swim_internal.h"

static bool printable(const char *id, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c < 0x20 || c == 0x7f) return false;
    }
    return mn_utf8_valid(id, len);
}

static bool valid_id(const char *id, size_t len)
{
    return len > 0 && len <= MN_SWIM_ID_MAX && printable(id, len);
}

static bool valid_meta(const char *meta, size_t len)
{
    return len <= MN_SWIM_META_MAX && (len == 0 || (meta && printable(meta, len)));
}

mn_err mn_swim_new(const mn_swim_opts_t *o, int64_t now_us, mn_swim_t **out, mn_error *err)
{
    if (!o || !out) return mn_error_set(err, MN_ERR_INVALID, "swim: no options");
    *out = NULL;
    size_t id_len = o->node_id ? strlen(o->node_id) : 0;
    if (!valid_id(o->node_id, id_len))
        return mn_error_set(err, MN_ERR_INVALID,
                            "swim: node id must be 1..%d bytes of printable UTF-8", MN_SWIM_ID_MAX);
    if (o->addr.family != 4 && o->addr.family != 6)
        return mn_error_set(err, MN_ERR_INVALID, "swim: no address to advertise");
    if (!o->cb.send) return mn_error_set(err, MN_ERR_INVALID, "swim: no send callback");
    if (o->meta_len && !valid_meta(o->meta, o->meta_len))
        return mn_error_set(err, MN_ERR_INVALID,
                            "swim: metadata must be 0..%d bytes of printable UTF-8",
                            MN_SWIM_META_MAX);
    mn_err rc = mn_swim_config_check(&o->config, err);
    if (rc != MN_OK) return rc;

    mn_swim_t *s = calloc(1, sizeof *s);
    if (!s) return mn_error_set(err, MN_ERR_NOMEM, "swim: out of memory");
    s->cfg = o->config;
    s->cb = o->cb;
    mn_prng_seed(&s->prng, o->seed);
    s->enc = mn_wire_swim_enc_new();
    s->queue = calloc(SWIM_QUEUE_MAX, sizeof *s->queue);
    if (!s->enc || !s->queue) {
        mn_swim_free(s);
        return mn_error_set(err, MN_ERR_NOMEM, "swim: out of memory");
    }
    if (o->key && o->key_len) {
        rc = mn__swim_mac_init(s, o->key, o->key_len);
        if (rc != MN_OK) {
            mn_swim_free(s);
            return mn_error_set(err, rc, "swim: cannot set up HMAC-SHA256");
        }
    }
    s->self = mn__swim_add(s, o->node_id, id_len, now_us);
    if (!s->self) {
        mn_swim_free(s);
        return mn_error_set(err, MN_ERR_NOMEM, "swim: out of memory");
    }
    s->self->addr = o->addr;
    s->self->inc = o->incarnation;
    if (o->meta_len) memcpy(s->self->meta, o->meta, o->meta_len);
    s->self->meta_len = (uint8_t)o->meta_len;
    s->next_seq = (uint32_t)mn_prng_next(&s->prng);
    int64_t probe_interval_us = s->cfg.probe_interval_ms * SWIM_US_PER_MS;
    /* stagger the periodic work so nodes started together do not beat in step */
    s->next_probe_at_us = now_us + (int64_t)mn_prng_below(&s->prng, (uint64_t)probe_interval_us);
    s->next_gossip_at_us = now_us;
    int64_t push_pull_us = s->cfg.push_pull_interval_ms * SWIM_US_PER_MS;
    s->next_sync_at_us = push_pull_us ? now_us + push_pull_us / 2 +
                                            (int64_t)mn_prng_below(&s->prng, (uint64_t)push_pull_us)
                                      : 0;
    s->next_reclaim_at_us = now_us + 1000 * SWIM_US_PER_MS;
    *out = s;
    return MN_OK;
}

void mn_swim_free(mn_swim_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++)
        free(s->members[i]);
    free(s->members);
    free(s->tab);
    free(s->pick);
    free(s->suspects);
    free(s->queue);
    free(s->seeds);
    mn_wire_swim_enc_free(s->enc);
    mn__swim_mac_free(s);
    free(s);
}

/* ---- helpers ---- */

typedef bool (*member_filter)(const mn_swim_t *s, const swim_member *m, int64_t now_us,
                              const swim_member *except);

/* Up to k distinct random members passing f, written to s->pick[0..]. Tries
 * random slots first (cheap when most members qualify), then scans. */
static size_t pick_random(mn_swim_t *s, member_filter f, size_t k, int64_t now_us,
                          const swim_member *except)
{
    size_t got = 0;
    for (size_t tries = 0; got < k && s->n > 1 && tries < 4 * k + 8; tries++) {
        swim_member *m = s->members[mn_prng_below(&s->prng, s->n)];
        if (m == s->self || m == except || !f(s, m, now_us, except)) continue;
        bool dup = false;
        for (size_t j = 0; j < got; j++)
            dup |= s->pick[j] == m;
        if (!dup) s->pick[got++] = m;
    }
    if (got == k) return k;
    size_t c = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->members[i] != s->self && s->members[i] != except &&
            f(s, s->members[i], now_us, except))
            s->pick[c++] = s->members[i];
    if (k > c) k = c;
    for (size_t i = 0; i < k; i++) {
        size_t j = i + (size_t)mn_prng_below(&s->prng, c - i);
        swim_member *t = s->pick[i];
        s->pick[i] = s->pick[j];
        s->pick[j] = t;
    }
    return k;
}

static bool is_alive(const mn_swim_t *s, const swim_member *m, int64_t now_us, const swim_member *n)
{
    return m->state == MN_SWIM_ALIVE;
}

static bool is_dead(const mn_swim_t *s, const swim_member *m, int64_t now_us, const swim_member *n)
{
    return m->state == MN_SWIM_DEAD;
}

static bool gossip_target(const mn_swim_t *s, const swim_member *m, int64_t now_us,
                          const swim_member *n)
{
    if (m->state == MN_SWIM_ALIVE || m->state == MN_SWIM_SUSPECT) return true;
    return m->state == MN_SWIM_DEAD &&
           now_us - m->changed_us < s->cfg.gossip_to_dead_ms * SWIM_US_PER_MS;
}

static bool has_peers(const mn_swim_t *s)
{
    size_t live = mn__swim_live_count(s);
    bool self_live = s->self->state == MN_SWIM_ALIVE || s->self->state == MN_SWIM_SUSPECT;
    return live > (self_live ? 1u : 0u);
}

static void msg_init(mn_wire_swim_msg_t *m, uint8_t kind, uint32_t seq)
{
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->seq = seq;
}

static void send_simple(mn_swim_t *s, const mn_swim_addr_t *to, uint8_t kind, uint32_t seq)
{
    mn_wire_swim_msg_t m;
    msg_init(&m, kind, seq);
    mn__swim_send(s, to, &m, true);
}

/* kind to `to`, carrying first our entries for the members its packet had
 * stale news about (s->answer), then queued updates. */
static void send_answering(mn_swim_t *s, const mn_swim_addr_t *to, uint8_t kind, uint32_t seq)
{
    mn_wire_swim_msg_t m;
    mn_wire_swim_entry_t es[SWIM_MAX_ANSWER];
    msg_init(&m, kind, seq);
    for (size_t i = 0; i < s->n_answer; i++)
        mn__swim_entry_from_member(s->answer[i], &es[i]);
    m.updates = es;
    m.n_updates = s->n_answer;
    s->n_answer = 0;
    mn__swim_send(s, to, &m, true);
}

/* Our full member table to `to`, in as many datagrams as it takes. */
static void send_sync(mn_swim_t *s, const mn_swim_addr_t *to, uint32_t seq, bool want_reply)
{
    mn_wire_swim_entry_t *rows = malloc(s->n * sizeof *rows);
    if (!rows) return;
    size_t n = 0;
    mn__swim_entry_from_member(s->self, &rows[n++]);
    for (size_t i = 0; i < s->n; i++)
        if (s->members[i] != s->self) mn__swim_entry_from_member(s->members[i], &rows[n++]);
    size_t off = 0;
    for (uint16_t chunk = 0; off < n && chunk < UINT16_MAX; chunk++) {
        mn_wire_swim_msg_t m;
        msg_init(&m, MN_WIRE_SWIM_SYNC, seq);
        m.flags = want_reply ? MN_WIRE_SWIM_FLAG_REPLY : 0;
        m.chunk = chunk;
        m.state = rows + off;
        m.n_state = n - off;
        size_t used = mn__swim_send(s, to, &m, true);
        if (!want_reply) s->stats.sent_sync_reply++;
        if (used == 0) break; /* cannot happen with a valid config; never loop */
        off += used;
    }
    s->stats.syncs_sent++;
    free(rows);
}

/* ---- join / leave ---- */

static void contact_seeds(mn_swim_t *s, int64_t now_us)
{
    for (size_t i = 0; i < s->n_seeds; i++)
        send_sync(s, &s->seeds[i], s->next_seq++, true);
    s->next_join_at_us = now_us + s->cfg.join_retry_ms * SWIM_US_PER_MS;
}

mn_err mn_swim_join(mn_swim_t *s, int64_t now_us, const mn_swim_addr_t *seeds, size_t n)
{
    if (!s || (n && !seeds)) return MN_ERR_INVALID;
    mn_swim_addr_t *copy = n ? calloc(n, sizeof *copy) : NULL;
    if (n && !copy) return MN_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (seeds[i].family != 4 && seeds[i].family != 6) continue;
        if (mn_swim_addr_equal(&seeds[i], &s->self->addr)) continue;
        copy[k++] = seeds[i];
    }
    free(s->seeds);
    s->seeds = copy;
    s->n_seeds = k;
    if (k) contact_seeds(s, now_us);
    return MN_OK;
}

void mn_swim_leave(mn_swim_t *s, int64_t now_us)
{
    if (!s || s->leaving) return;
    s->leaving = true;
    s->probe_phase = PROBE_IDLE;
    mn__swim_set_state(s, s->self, MN_SWIM_LEFT, now_us);
    mn__swim_queue_member(s, s->self, s->self->id, s->self->id_len);
    s->next_gossip_at_us = now_us;
}

bool mn_swim_leave_done(const mn_swim_t *s)
{
    if (!s || !s->leaving) return false;
    return !has_peers(s) || !mn__swim_queue_has(s, s->self->id, s->self->id_len, MN_SWIM_LEFT);
}

/* ---- receiving ---- */

static swim_indirect *indirect_slot(mn_swim_t *s)
{
    swim_indirect *oldest = &s->indirect[0];
    for (size_t i = 0; i < SWIM_MAX_INDIRECT; i++) {
        if (!s->indirect[i].used) {
            mn_assert(s->n_indirect < SWIM_MAX_INDIRECT);
            s->n_indirect++;
            return &s->indirect[i];
        }
        if (s->indirect[i].deadline_us < oldest->deadline_us) oldest = &s->indirect[i];
    }
    return oldest; /* full: the oldest request loses */
}

static void on_ping_req(mn_swim_t *s, const mn_wire_swim_msg_t *m, const mn_swim_addr_t *from,
                        int64_t now_us)
{
    if (m->target_addr.family != 4 && m->target_addr.family != 6) return;
    swim_indirect *slot = indirect_slot(s);
    memset(slot, 0, sizeof *slot);
    slot->used = true;
    slot->want_nack = (m->flags & MN_WIRE_SWIM_FLAG_NACK) != 0;
    slot->their_seq = m->seq;
    slot->our_seq = s->next_seq++;
    slot->reply_to = *from;
    slot->deadline_us = now_us + s->cfg.probe_timeout_ms * SWIM_US_PER_MS;
    mn_wire_swim_msg_t p;
    msg_init(&p, MN_WIRE_SWIM_PING, slot->our_seq);
    p.target = m->target;
    p.target_len = m->target_len;
    mn_swim_addr_t to;
    memcpy(&to, &m->target_addr, sizeof to);
    mn__swim_send(s, &to, &p, true);
    s->stats.sent_ping_relay++;
}

static void on_ack(mn_swim_t *s, uint32_t seq, int64_t now_us)
{
    if (s->probe_phase != PROBE_IDLE && seq == s->probe_seq) {
        s->probe_phase = PROBE_IDLE;
        mn__swim_awareness(s, -1);
        return;
    }
    for (size_t i = 0; i < s->n_suspects; i++) {
        swim_member *m = s->suspects[i];
        if (m->susp_expired && m->check_pings && m->check_seq == seq) {
            /* it answered a recheck; a refutation on this ack has already made
             * it alive, else (it did not refute) look again an interval later */
            m->check_pings = 0;
            m->susp_deadline_us =
                now_us + mn__swim_scaled(s, s->cfg.probe_interval_ms * SWIM_US_PER_MS);
            return;
        }
    }
    for (size_t i = 0; s->n_indirect && i < SWIM_MAX_INDIRECT; i++) {
        swim_indirect *d = &s->indirect[i];
        if (d->used && d->our_seq == seq) {
            d->used = false;
            s->n_indirect--;
            send_simple(s, &d->reply_to, MN_WIRE_SWIM_ACK, d->their_seq);
            s->stats.sent_ack_relay++;
            return;
        }
    }
}

static bool sync_answered(mn_swim_t *s, const mn_wire_swim_msg_t *m)
{
    uint64_t key = ((uint64_t)mn__swim_hash(m->src, m->src_len) << 32) | m->seq;
    for (size_t i = 0; i < SWIM_SYNC_SEEN; i++)
        if (s->sync_seen[i] == key) return true;
    s->sync_seen[s->sync_seen_pos] = key;
    s->sync_seen_pos = (s->sync_seen_pos + 1) % SWIM_SYNC_SEEN;
    return false;
}

/* A sender we do not know, or believe dead, is talking to us, or its member
 * table is larger than ours: exchange state with it at once (rate-limited).
 * This closes the gaps that infection-style dissemination leaves (a missed
 * join) and lets a dead-declared node learn it must refute, without waiting
 * for the periodic push-pull. */
static void contact_sender(mn_swim_t *s, const mn_wire_swim_msg_t *m, const mn_swim_addr_t *from,
                           int64_t now_us)
{
    if (s->leaving || m->kind == MN_WIRE_SWIM_SYNC) return;
    const swim_member *sm = mn__swim_find(s, m->src, m->src_len);
    /* the sender knows more members than we do: we missed a join */
    bool behind = m->known > s->n;
    if (sm && sm->state != MN_SWIM_DEAD && !behind) return;
    if (behind && sm && sm->state != MN_SWIM_DEAD) {
        if (now_us < s->next_behind_sync_us) return;
        s->next_behind_sync_us = now_us + s->cfg.join_retry_ms * SWIM_US_PER_MS;
    }
    uint32_t h = mn__swim_hash(m->src, m->src_len);
    size_t slot = 0;
    for (size_t i = 0; i < SWIM_SYNC_SEEN; i++) {
        if (s->contact_hash[i] == h && s->contact_at_us[i] != 0) {
            if (now_us - s->contact_at_us[i] < s->cfg.join_retry_ms * SWIM_US_PER_MS) return;
            slot = i;
            break;
        }
        if (s->contact_at_us[i] < s->contact_at_us[slot]) slot = i;
    }
    s->contact_hash[slot] = h;
    s->contact_at_us[slot] = now_us ? now_us : 1;
    send_sync(s, from, s->next_seq++, true);
}

void mn_swim_on_packet(mn_swim_t *s, int64_t now_us, const mn_swim_addr_t *from, const uint8_t *buf,
                       size_t len)
{
    if (!s || !from) return;
    s->stats.packets_recv++;
    s->stats.bytes_recv += len;
    mn_wire_swim_msg_t m;
    if (mn__swim_receive(s, buf, len, &m) != MN_OK) return;
    s->stats.updates_recv += m.n_updates;
    s->n_answer = 0;
    /* updates first: a refutation they cause then rides on our answer */
    for (size_t i = 0; i < m.n_updates; i++)
        mn__swim_apply(s, &m.updates[i], m.src, m.src_len, false, now_us);
    contact_sender(s, &m, from, now_us);
    switch (m.kind) {
    case MN_WIRE_SWIM_PING:
        if (m.target_len &&
            (m.target_len != s->self->id_len || memcmp(m.target, s->self->id, m.target_len) != 0)) {
            s->stats.dropped_misdirected++;
            return;
        }
        send_answering(s, from, MN_WIRE_SWIM_ACK, m.seq);
        break;
    case MN_WIRE_SWIM_ACK:
        on_ack(s, m.seq, now_us);
        break;
    case MN_WIRE_SWIM_PING_REQ:
        on_ping_req(s, &m, from, now_us);
        break;
    case MN_WIRE_SWIM_NACK:
        if (s->probe_phase == PROBE_INDIRECT && m.seq == s->probe_seq) s->probe_nacks++;
        break;
    case MN_WIRE_SWIM_SYNC:
        s->stats.syncs_recv++;
        for (size_t i = 0; i < m.n_state; i++)
            mn__swim_apply(s, &m.state[i], m.src, m.src_len, true, now_us);
        if ((m.flags & MN_WIRE_SWIM_FLAG_REPLY) && !sync_answered(s, &m))
            send_sync(s, from, m.seq, false);
        break;
    default: /* gossip: nothing beyond the updates */
        break;
    }
    if (s->n_answer && !s->leaving) {
        send_answering(s, from, MN_WIRE_SWIM_GOSSIP, 0);
        s->stats.sent_gossip_answer++;
    }
}

/* ---- ticking ---- */

static swim_member *next_probe_target(mn_swim_t *s)
{
    for (size_t tries = 0; tries <= s->n; tries++) {
        if (s->probe_idx >= s->n) {
            /* a round is over: reshuffle (Fisher-Yates) */
            for (size_t i = s->n; i > 1; i--) {
                size_t j = (size_t)mn_prng_below(&s->prng, i);
                swim_member *t = s->members[i - 1];
                s->members[i - 1] = s->members[j];
                s->members[j] = t;
            }
            s->probe_idx = 0;
        }
        swim_member *m = s->members[s->probe_idx++];
        if (m != s->self && (m->state == MN_SWIM_ALIVE || m->state == MN_SWIM_SUSPECT)) return m;
    }
    return NULL;
}

static void send_ping(mn_swim_t *s, const swim_member *t, uint32_t seq)
{
    mn_wire_swim_msg_t m;
    msg_init(&m, MN_WIRE_SWIM_PING, seq);
    m.target = t->id;
    m.target_len = t->id_len;
    mn_wire_swim_entry_t buddy;
    if (t->state == MN_SWIM_SUSPECT && s->cfg.lifeguard) {
        /* buddy system: tell the suspect first, so it can refute now */
        mn__swim_entry_from_member(t, &buddy);
        buddy.from = s->self->id;
        buddy.from_len = s->self->id_len;
        m.updates = &buddy;
        m.n_updates = 1;
    }
    mn__swim_send(s, &t->addr, &m, true);
}

void mn__swim_recheck_ping(mn_swim_t *s, swim_member *m, int64_t now_us)
{
    m->check_seq = s->next_seq++;
    m->check_pings++;
    m->susp_deadline_us = now_us + mn__swim_scaled(s, s->cfg.probe_timeout_ms * SWIM_US_PER_MS);
    send_ping(s, m, m->check_seq);
    s->stats.sent_ping_recheck++;
}

static void probe_start(mn_swim_t *s, int64_t now_us)
{
    /* a suspicion we heard of is checked first (verify), then round-robin */
    swim_member *t = mn__swim_verify_pop(s);
    s->probe_verify = t != NULL;
    if (!t) t = next_probe_target(s);
    int64_t interval_us = mn__swim_scaled(s, s->cfg.probe_interval_ms * SWIM_US_PER_MS);
    s->next_probe_at_us = now_us + interval_us;
    if (!t) return;
    mn_assert(t != s->self && (t->state == MN_SWIM_ALIVE || t->state == MN_SWIM_SUSPECT));
    s->stats.probes++;
    memcpy(s->probe_id, t->id, t->id_len + 1u);
    s->probe_inc = t->inc;
    s->probe_seq = s->next_seq++;
    s->probe_start_us = now_us;
    s->probe_deadline_us = now_us + mn__swim_scaled(s, s->cfg.probe_timeout_ms * SWIM_US_PER_MS);
    s->probe_phase = PROBE_DIRECT;
    send_ping(s, t, s->probe_seq);
}

/* The member being probed; NULL, and the probe is over, when it is gone,
 * dead or left. */
static swim_member *probe_target(mn_swim_t *s)
{
    swim_member *t = mn__swim_find(s, s->probe_id, strlen(s->probe_id));
    if (t && t->state != MN_SWIM_DEAD && t->state != MN_SWIM_LEFT) return t;
    s->probe_phase = PROBE_IDLE;
    return NULL;
}

static void probe_indirect(mn_swim_t *s, int64_t now_us)
{
    swim_member *t = probe_target(s);
    if (!t) return;
    size_t k = pick_random(s, is_alive, (size_t)s->cfg.indirect_checks, now_us, t);
    if (k > SWIM_MAX_HELPERS) k = SWIM_MAX_HELPERS;
    swim_member *helpers[SWIM_MAX_HELPERS];
    memcpy(helpers, s->pick, k * sizeof helpers[0]);
    for (size_t i = 0; i < k; i++) {
        mn_wire_swim_msg_t m;
        msg_init(&m, MN_WIRE_SWIM_PING_REQ, s->probe_seq);
        m.target = t->id;
        m.target_len = t->id_len;
        memcpy(&m.target_addr, &t->addr, sizeof m.target_addr);
        m.flags = MN_WIRE_SWIM_FLAG_NACK;
        mn__swim_send(s, &helpers[i]->addr, &m, true);
    }
    s->stats.indirect_probes += k;
    /* and once more directly, alongside the helpers (memberlist's TCP ping) */
    send_ping(s, t, s->probe_seq);
    s->stats.sent_ping_again++;
    s->probe_expected_nacks = (int)k;
    s->probe_nacks = 0;
    s->probe_phase = PROBE_INDIRECT;
    int64_t timeout_us = mn__swim_scaled(s, s->cfg.probe_timeout_ms * SWIM_US_PER_MS);
    /* a helper waits one probe timeout before its nack: give it that plus ours */
    int64_t until_us =
        k ? now_us + 2 * timeout_us
          : s->probe_start_us + mn__swim_scaled(s, s->cfg.probe_interval_ms * SWIM_US_PER_MS);
    s->probe_deadline_us = until_us > now_us ? until_us : now_us;
}

/* No ack to the first ping: send it once more before bothering k helpers. A
 * single lost datagram then costs one more ping instead of 3 ping-reqs, 3
 * pings and 3 answers (memberlist falls back to a TCP ping here). */
static void probe_retry(mn_swim_t *s, int64_t now_us)
{
    swim_member *t = probe_target(s);
    if (!t) return;
    send_ping(s, t, s->probe_seq);
    s->stats.sent_ping_again++;
    s->probe_phase = PROBE_RETRY;
    s->probe_deadline_us = now_us + mn__swim_scaled(s, s->cfg.probe_timeout_ms * SWIM_US_PER_MS);
}

static void probe_failed(mn_swim_t *s, int64_t now_us)
{
    s->probe_phase = PROBE_IDLE;
    s->stats.probe_failures++;
    if (s->probe_verify) {
        /* no helpers asked, so no evidence about our own health either way */
        swim_member *t = mn__swim_find(s, s->probe_id, strlen(s->probe_id));
        if (t && t->state == MN_SWIM_SUSPECT) mn__swim_suspect_local(s, t, s->probe_inc, now_us);
        return;
    }
    s->stats.nacks_recv += (uint64_t)s->probe_nacks;
    if (s->probe_expected_nacks > 0) {
        if (s->probe_nacks < s->probe_expected_nacks)
            mn__swim_awareness(s, s->probe_expected_nacks - s->probe_nacks);
    } else {
        mn__swim_awareness(s, 1);
    }
    swim_member *t = mn__swim_find(s, s->probe_id, strlen(s->probe_id));
    if (t && (t->state == MN_SWIM_ALIVE || t->state == MN_SWIM_SUSPECT))
        mn__swim_suspect_local(s, t, s->probe_inc, now_us);
}

static void run_probe(mn_swim_t *s, int64_t now_us)
{
    if (s->probe_phase == PROBE_DIRECT && now_us >= s->probe_deadline_us) probe_retry(s, now_us);
    /* a verification (the member is already accused) confirms after the direct
     * pings; asking helpers too would multiply the load by the cluster size */
    if (s->probe_phase == PROBE_RETRY && now_us >= s->probe_deadline_us) {
        if (s->probe_verify)
            probe_failed(s, now_us);
        else
            probe_indirect(s, now_us);
    }
    if (s->probe_phase == PROBE_INDIRECT && now_us >= s->probe_deadline_us) probe_failed(s, now_us);
    if (s->probe_phase == PROBE_IDLE && !s->leaving && now_us >= s->next_probe_at_us)
        probe_start(s, now_us);
}

/* Something to send in a gossip datagram: any queued update, or with
 * gossip_transmits only one that has not had its first fan-out yet. A
 * leaving node sends no pings for the rest to ride on: it gossips all. */
static bool gossip_due(const mn_swim_t *s)
{
    if (s->cfg.gossip_transmits <= 0 || s->leaving) return s->n_queue > 0;
    return mn__swim_queue_fresh(s, s->cfg.gossip_transmits);
}

static void run_gossip(mn_swim_t *s, int64_t now_us)
{
    if (now_us < s->next_gossip_at_us || !gossip_due(s)) return;
    s->next_gossip_at_us = now_us + s->cfg.gossip_interval_ms * SWIM_US_PER_MS;
    size_t k = pick_random(s, gossip_target, (size_t)s->cfg.gossip_nodes, now_us, NULL);
    for (size_t i = 0; i < k && gossip_due(s); i++) {
        mn_wire_swim_msg_t m;
        msg_init(&m, MN_WIRE_SWIM_GOSSIP, 0);
        mn__swim_send(s, &s->pick[i]->addr, &m, true);
    }
}

static void run_sync(mn_swim_t *s, int64_t now_us)
{
    if (!s->cfg.push_pull_interval_ms || s->leaving || now_us < s->next_sync_at_us) return;
    s->next_sync_at_us = now_us + s->cfg.push_pull_interval_ms * SWIM_US_PER_MS;
    if (pick_random(s, is_alive, 1, now_us, NULL) == 1)
        send_sync(s, &s->pick[0]->addr, s->next_seq++, true);
    /* reconnect: the more of the table is dead, the likelier we knock on a dead door */
    size_t dead = s->n_state[MN_SWIM_DEAD];
    if (dead && mn_prng_double(&s->prng) * (double)(s->n_state[MN_SWIM_ALIVE] + dead) <
                    (double)dead + 1.0) {
        if (pick_random(s, is_dead, 1, now_us, NULL) == 1)
            send_sync(s, &s->pick[0]->addr, s->next_seq++, true);
    }
}

void mn_swim_on_tick(mn_swim_t *s, int64_t now_us)
{
    if (!s) return;
    mn__swim_check_suspicions(s, now_us);
    for (size_t i = 0; s->n_indirect && i < SWIM_MAX_INDIRECT; i++) {
        swim_indirect *d = &s->indirect[i];
        if (!d->used || d->deadline_us > now_us) continue;
        d->used = false;
        s->n_indirect--;
        if (d->want_nack) send_simple(s, &d->reply_to, MN_WIRE_SWIM_NACK, d->their_seq);
    }
    run_probe(s, now_us);
    run_gossip(s, now_us);
    run_sync(s, now_us);
    if (s->n_seeds && !s->leaving && !has_peers(s) && now_us >= s->next_join_at_us)
        contact_seeds(s, now_us);
    if (now_us >= s->next_reclaim_at_us) {
        mn__swim_reclaim(s, now_us);
        s->next_reclaim_at_us = now_us + 1000 * SWIM_US_PER_MS;
    }
}

/* Lowers *deadline_us to t_us if that is earlier. */
static void keep_earliest(int64_t *deadline_us, int64_t t_us)
{
    if (t_us < *deadline_us) *deadline_us = t_us;
}

int64_t mn_swim_next_deadline(const mn_swim_t *s)
{
    if (!s) return SWIM_NEVER;
    int64_t deadline_us = mn__swim_suspicion_deadline(s);
    for (size_t i = 0; s->n_indirect && i < SWIM_MAX_INDIRECT; i++)
        if (s->indirect[i].used) keep_earliest(&deadline_us, s->indirect[i].deadline_us);
    if (s->probe_phase != PROBE_IDLE)
        keep_earliest(&deadline_us, s->probe_deadline_us);
    else if (!s->leaving)
        keep_earliest(&deadline_us, s->next_probe_at_us);
    if (gossip_due(s)) keep_earliest(&deadline_us, s->next_gossip_at_us);
    if (s->cfg.push_pull_interval_ms && !s->leaving)
        keep_earliest(&deadline_us, s->next_sync_at_us);
    if (s->n_seeds && !s->leaving && !has_peers(s)) keep_earliest(&deadline_us, s->next_join_at_us);
    if (s->n_state[MN_SWIM_DEAD] + s->n_state[MN_SWIM_LEFT] > (s->leaving ? 1u : 0u))
        keep_earliest(&deadline_us, s->next_reclaim_at_us);
    return deadline_us;
}

/* ---- accessors ---- */

static void info_from(const mn_swim_t *s, const swim_member *m, mn_swim_member_info_t *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->id, m->id, m->id_len);
    out->addr = m->addr;
    out->state = (mn_swim_state_t)m->state;
    out->incarnation = m->inc;
    out->changed_us = m->changed_us;
    out->self = m == s->self;
    memcpy(out->meta, m->meta, m->meta_len);
    out->meta[m->meta_len] = 0;
    out->meta_len = m->meta_len;
}

size_t mn_swim_member_count(const mn_swim_t *s)
{
    return s ? s->n : 0;
}

bool mn_swim_member_get(const mn_swim_t *s, size_t i, mn_swim_member_info_t *out)
{
    if (!s || !out || i >= s->n) return false;
    info_from(s, s->members[i], out);
    return true;
}

bool mn_swim_member_find(const mn_swim_t *s, const char *id, mn_swim_member_info_t *out)
{
    if (!s || !id) return false;
    const swim_member *m = mn__swim_find(s, id, strlen(id));
    if (!m) return false;
    if (out) info_from(s, m, out);
    return true;
}

size_t mn_swim_count_state(const mn_swim_t *s, mn_swim_state_t st)
{
    return s && (unsigned)st < 4 ? s->n_state[st] : 0;
}

const char *mn_swim_self_id(const mn_swim_t *s)
{
    return s ? s->self->id : NULL;
}

uint64_t mn_swim_incarnation(const mn_swim_t *s)
{
    return s ? s->self->inc : 0;
}

mn_err mn_swim_set_meta(mn_swim_t *s, int64_t now_us, const char *meta, size_t len)
{
    if (!s || !valid_meta(meta, len)) return MN_ERR_INVALID;
    swim_member *me = s->self;
    if (me->inc == UINT64_MAX) return MN_ERR_INVALID; /* no higher incarnation to announce it */
    if (len) memcpy(me->meta, meta, len);
    me->meta_len = (uint8_t)len;
    me->inc++;
    mn__swim_queue_member(s, me, NULL, 0);
    (void)now_us;
    return MN_OK;
}

int mn_swim_health(const mn_swim_t *s)
{
    return s ? s->awareness : 0;
}

void mn_swim_stats_get(const mn_swim_t *s, mn_swim_stats_t *out)
{
    if (s && out) *out = s->stats;
}
