/* SWIM member table and the per-member state machine.
 *
 * Members live in members[] (probe order, reshuffled each round: SWIM §4.3
 * "round-robin probe target selection") and in an open-addressing index by id.
 * A membership update is applied only if it is newer by the rules of SWIM §4.2
 * / memberlist: alive needs a strictly greater incarnation; suspect and dead
 * apply at an equal or greater one; dead and left are final for an
 * incarnation. News about ourselves is refuted by jumping our incarnation past
 * the accusation.
 *
 * Lifeguard (Dadgar et al. 2018, memberlist suspicion.go/awareness.go):
 * - a suspicion timer starts at max = suspicion_max_mult * min and shrinks
 *   toward min as k independent accusers confirm it:
 *   timeout = max - log(n+1)/log(k+1) * (max - min), never below min;
 *   min = suspicion_mult * max(1, log10 N) * probe_interval;
 * - the local health score (0..awareness_max-1) scales our probe interval and
 *   timeout; it rises on failed probes with missing nacks and on refutations,
 *   falls on successful probes.
 * Without Lifeguard the timer is fixed at min and the score stays 0.
 *
 * mnemo additions (config.verify): a death notice about a member we hold
 * alive, or suspect without our own probe having failed, only accuses it (one
 * more confirmation); our verification probe and the timer decide. When the
 * timer runs out and our own probe has not failed within the last min
 * timeout (never, or only long ago), the member is pinged up to
 * SWIM_RECHECK_PINGS times first, each ping carrying the suspicion: an
 * answer (with the refutation it triggers) keeps it, silence kills it. So no
 * node declares a member dead on hearsay, or on a failure that a refutation
 * it missed has since answered. News that is older than what we know about
 * ourselves, or about a member that left, is answered to its sender with our
 * entry (mn__swim_answer). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "swim_internal.h"

uint32_t mn__swim_hash(const char *id, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)id[i];
        h *= 16777619u;
    }
    return h;
}

static size_t tab_slot(const mn_swim_t *s, uint32_t h)
{
    return (size_t)h & (s->tab_cap - 1);
}

swim_member *mn__swim_find(const mn_swim_t *s, const char *id, size_t len)
{
    if (len == 0 || len > MN_SWIM_ID_MAX) return NULL;
    uint32_t h = mn__swim_hash(id, len);
    for (size_t i = tab_slot(s, h), probes = 0; probes < s->tab_cap;
         i = (i + 1) & (s->tab_cap - 1), probes++) {
        swim_member *m = s->tab[i];
        if (!m) return NULL;
        if (m->hash == h && m->id_len == len && memcmp(m->id, id, len) == 0) return m;
    }
    return NULL;
}

#ifndef NDEBUG
/* O(n): members[] and the index hold the same n members (each found by its
 * id), the per-state counts add up to n, and every member on the suspects
 * list is suspect. */
static bool table_consistent(const mn_swim_t *s)
{
    size_t in_tab = 0, by_state = 0;
    for (size_t i = 0; i < s->tab_cap; i++)
        in_tab += s->tab[i] != NULL;
    for (size_t st = 0; st < 4; st++)
        by_state += s->n_state[st];
    if (in_tab != s->n || by_state != s->n) return false;
    for (size_t i = 0; i < s->n; i++) {
        const swim_member *m = s->members[i];
        if (m->state > MN_SWIM_LEFT || mn__swim_find(s, m->id, m->id_len) != m) return false;
    }
    for (size_t i = 0; i < s->n_suspects; i++)
        if (s->suspects[i]->state != MN_SWIM_SUSPECT) return false;
    return true;
}
#endif

static void tab_insert(swim_member **tab, size_t cap, swim_member *m)
{
    size_t i = (size_t)m->hash & (cap - 1);
    while (tab[i])
        i = (i + 1) & (cap - 1);
    tab[i] = m;
}

static bool grow(mn_swim_t *s)
{
    if (s->n + 1 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        swim_member **nm = realloc(s->members, nc * sizeof *nm);
        if (!nm) return false;
        s->members = nm;
        swim_member **np = realloc(s->pick, nc * sizeof *np);
        if (!np) return false;
        s->pick = np;
        s->cap = nc;
    }
    if ((s->n + 1) * 2 > s->tab_cap) {
        size_t nc = s->tab_cap ? s->tab_cap * 2 : 32;
        swim_member **nt = calloc(nc, sizeof *nt);
        if (!nt) return false;
        for (size_t i = 0; i < s->tab_cap; i++)
            if (s->tab[i]) tab_insert(nt, nc, s->tab[i]);
        free(s->tab);
        s->tab = nt;
        s->tab_cap = nc;
    }
    return true;
}

swim_member *mn__swim_add(mn_swim_t *s, const char *id, size_t len, int64_t now_us)
{
    if (len == 0 || len > MN_SWIM_ID_MAX || !grow(s)) return NULL;
    swim_member *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    memcpy(m->id, id, len);
    m->id_len = (uint8_t)len;
    m->hash = mn__swim_hash(id, len);
    m->state = MN_SWIM_ALIVE;
    m->changed_us = now_us;
    tab_insert(s->tab, s->tab_cap, m);
    /* a newcomer takes a random place in the probe order (memberlist) */
    size_t pos = (size_t)mn_prng_below(&s->prng, s->n + 1);
    s->members[s->n] = s->members[pos];
    s->members[pos] = m;
    s->n++;
    s->n_state[MN_SWIM_ALIVE]++;
    mn_assert_debug(table_consistent(s));
    return m;
}

static void suspects_drop(mn_swim_t *s, swim_member *m)
{
    for (size_t i = 0; i < s->n_suspects; i++)
        if (s->suspects[i] == m) {
            s->suspects[i] = s->suspects[--s->n_suspects];
            return;
        }
}

static void suspects_add(mn_swim_t *s, swim_member *m)
{
    if (s->n_suspects == s->cap_suspects) {
        size_t nc = s->cap_suspects ? s->cap_suspects * 2 : 8;
        swim_member **ns = realloc(s->suspects, nc * sizeof *ns);
        if (!ns) return; /* no timer: the member stays suspect until news arrives */
        s->suspects = ns;
        s->cap_suspects = nc;
    }
    s->suspects[s->n_suspects++] = m;
}

void mn__swim_remove(mn_swim_t *s, swim_member *m)
{
    mn_assert(m != s->self);
    size_t idx = s->n;
    for (size_t i = 0; i < s->n; i++)
        if (s->members[i] == m) idx = i;
    mn_assert(idx < s->n);
    s->members[idx] = s->members[--s->n];
    if (s->probe_idx > s->n) s->probe_idx = s->n;
    /* backward-shift delete from the index */
    size_t i = tab_slot(s, m->hash);
    while (s->tab[i] != m)
        i = (i + 1) & (s->tab_cap - 1);
    size_t j = i;
    for (;;) {
        j = (j + 1) & (s->tab_cap - 1);
        if (!s->tab[j]) break;
        size_t home = tab_slot(s, s->tab[j]->hash);
        /* move tab[j] into the hole at i unless its home lies in (i, j] */
        bool between = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            s->tab[i] = s->tab[j];
            i = j;
        }
    }
    s->tab[i] = NULL;
    mn_assert(s->n_state[m->state] > 0);
    s->n_state[m->state]--;
    if (m->state == MN_SWIM_SUSPECT) suspects_drop(s, m);
    free(m);
    mn_assert_debug(table_consistent(s));
}

void mn__swim_set_state(mn_swim_t *s, swim_member *m, uint8_t st, int64_t now_us)
{
    mn_assert(st <= MN_SWIM_LEFT);
    mn_assert(m != s->self || st == MN_SWIM_LEFT); /* only a leave changes our own state */
    if (m->state == MN_SWIM_SUSPECT) suspects_drop(s, m);
    mn_assert(s->n_state[m->state] > 0);
    s->n_state[m->state]--;
    s->n_state[st]++;
    if (m->state != st) m->changed_us = now_us;
    m->state = st;
    if (st == MN_SWIM_SUSPECT) suspects_add(s, m);
    mn_assert_debug(table_consistent(s));
}

size_t mn__swim_live_count(const mn_swim_t *s)
{
    return s->n_state[MN_SWIM_ALIVE] + s->n_state[MN_SWIM_SUSPECT];
}

void mn__swim_reclaim(mn_swim_t *s, int64_t now_us)
{
    int64_t keep_us = s->cfg.dead_reclaim_ms * SWIM_US_PER_MS;
    for (size_t i = s->n; i-- > 0;) {
        swim_member *m = s->members[i];
        if (m == s->self) continue;
        if ((m->state == MN_SWIM_DEAD || m->state == MN_SWIM_LEFT) &&
            now_us - m->changed_us >= keep_us)
            mn__swim_remove(s, m);
    }
}

static void emit(mn_swim_t *s, const swim_member *m, uint8_t old, bool is_new, int64_t now_us)
{
    if (!s->cb.event) return;
    mn_swim_event_t ev = {
        .id = m->id,
        .addr = m->addr,
        .state = (mn_swim_state_t)m->state,
        .old_state = (mn_swim_state_t)old,
        .is_new = is_new,
        .incarnation = m->inc,
        .now_us = now_us,
    };
    s->cb.event(s->cb.user, &ev);
}

/* ---- Lifeguard ---- */

void mn__swim_awareness(mn_swim_t *s, int delta)
{
    if (!s->cfg.lifeguard) return;
    int a = s->awareness + delta;
    if (a < 0) a = 0;
    if (a > s->cfg.awareness_max - 1) a = s->cfg.awareness_max - 1;
    s->awareness = a;
}

int64_t mn__swim_scaled(const mn_swim_t *s, int64_t base_us)
{
    mn_assert(s->awareness >= 0 && s->awareness < s->cfg.awareness_max);
    return base_us * (s->awareness + 1);
}

static void suspicion_start(mn_swim_t *s, swim_member *m, uint32_t from_hash, int64_t now_us)
{
    size_t n = mn__swim_live_count(s);
    double scale = n > 10 ? log10((double)n) : 1.0;
    int64_t min_us = (int64_t)(s->cfg.suspicion_mult * scale * (double)s->cfg.probe_interval_ms *
                               SWIM_US_PER_MS);
    int k = s->cfg.suspicion_confirmations >= 0 ? s->cfg.suspicion_confirmations
                                                : s->cfg.suspicion_mult - 2;
    if (k > SWIM_MAX_CONFIRM) k = SWIM_MAX_CONFIRM;
    if ((int)n - 2 < k) k = 0;
    if (!s->cfg.lifeguard) k = 0;
    m->susp_min_us = min_us;
    m->susp_max_us = s->cfg.lifeguard ? min_us * s->cfg.suspicion_max_mult : min_us;
    m->susp_k = k;
    m->susp_n = 0;
    m->susp_from[0] = from_hash;
    m->susp_nfrom = 1;
    m->susp_start_us = now_us;
    m->susp_verified = false;
    m->susp_expired = false;
    mn_assert(m->susp_max_us >= m->susp_min_us);
    m->susp_deadline_us = now_us + (k < 1 ? m->susp_min_us : m->susp_max_us);
}

/* Counts an independent accuser; true if it was new (then re-gossip). */
static bool suspicion_confirm(swim_member *m, uint32_t from_hash)
{
    if (m->susp_k < 1 || m->susp_n >= m->susp_k) return false;
    for (int i = 0; i < m->susp_nfrom; i++)
        if (m->susp_from[i] == from_hash) return false;
    /* susp_n < susp_k <= SWIM_MAX_CONFIRM, and susp_nfrom = susp_n + 1 */
    mn_assert(m->susp_nfrom == m->susp_n + 1 && m->susp_nfrom <= SWIM_MAX_CONFIRM);
    m->susp_from[m->susp_nfrom++] = from_hash;
    m->susp_n++;
    double frac = log((double)m->susp_n + 1.0) / log((double)m->susp_k + 1.0);
    int64_t timeout_us =
        m->susp_max_us - (int64_t)(frac * (double)(m->susp_max_us - m->susp_min_us));
    if (timeout_us < m->susp_min_us) timeout_us = m->susp_min_us;
    m->susp_deadline_us = m->susp_start_us + timeout_us;
    return true;
}

int64_t mn__swim_suspicion_deadline(const mn_swim_t *s)
{
    int64_t deadline_us = SWIM_NEVER;
    for (size_t i = 0; i < s->n_suspects; i++)
        if (s->suspects[i]->susp_deadline_us < deadline_us)
            deadline_us = s->suspects[i]->susp_deadline_us;
    return deadline_us;
}

static void declare_dead(mn_swim_t *s, swim_member *m, int64_t now_us)
{
    mn__swim_set_state(s, m, MN_SWIM_DEAD, now_us);
    s->stats.dead_events++;
    mn__swim_queue_member(s, m, s->self->id, s->self->id_len);
    emit(s, m, MN_SWIM_SUSPECT, false, now_us);
}

void mn__swim_check_suspicions(mn_swim_t *s, int64_t now_us)
{
    for (size_t i = s->n_suspects; i-- > 0;) {
        if (i >= s->n_suspects) continue;
        swim_member *m = s->suspects[i];
        if (m->susp_deadline_us > now_us) continue;
        if (s->cfg.verify &&
            (!m->susp_verified || now_us - m->susp_failed_at_us > m->susp_min_us)) {
            /* mnemo: neither the accusers' word alone nor an old failure of
             * our own kills. We ping it ourselves, up to SWIM_RECHECK_PINGS
             * times one probe timeout apart (each ping carries the suspicion,
             * so its ack brings the refutation); dead if none is answered. */
            if (!m->susp_expired) {
                s->stats.suspicion_rechecks++;
                m->susp_expired = true;
                m->check_pings = 0;
            }
            if (m->check_pings < SWIM_RECHECK_PINGS) {
                mn__swim_recheck_ping(s, m, now_us);
                continue;
            }
            m->susp_verified = true;
            m->susp_failed_at_us = now_us;
        }
        declare_dead(s, m, now_us);
    }
}

/* ---- applying updates ---- */

void mn__swim_refute(mn_swim_t *s, uint64_t accused_inc, int64_t now_us)
{
    swim_member *me = s->self;
    /* nothing outranks the largest incarnation: a packet claiming it is
     * hostile (a restart takes wall-clock seconds), and wrapping to 0 would
     * move our incarnation back */
    if (accused_inc == UINT64_MAX) return;
    uint64_t old_inc = me->inc;
    me->inc = (accused_inc > me->inc ? accused_inc : me->inc) + 1;
    mn_assert(me->inc > old_inc && me->inc > accused_inc);
    s->stats.refutations++;
    mn__swim_awareness(s, 1);
    mn__swim_queue_member(s, me, NULL, 0);
    (void)now_us;
}

/* The only write of a known member's incarnation from gossip. The update
 * rules above let through only news at an equal or greater incarnation, so
 * it never moves back in this view. */
static void set_incarnation(swim_member *m, uint64_t inc)
{
    mn_assert(inc >= m->inc);
    m->inc = inc;
}

static bool is_self(const mn_swim_t *s, const mn_wire_swim_entry_t *e)
{
    return e->id_len == s->self->id_len && memcmp(e->id, s->self->id, e->id_len) == 0;
}

/* Someone says we are suspect, dead or left. At our incarnation or above:
 * refute. Below it: the sender missed our refutation; the packet handler
 * answers it with our current entry. */
static void self_accused(mn_swim_t *s, const mn_wire_swim_entry_t *e, int64_t now_us)
{
    if (s->leaving) return;
    if (e->incarnation >= s->self->inc)
        mn__swim_refute(s, e->incarnation, now_us);
    else
        mn__swim_answer(s, s->self);
}

void mn__swim_answer(mn_swim_t *s, swim_member *m)
{
    for (size_t i = 0; i < s->n_answer; i++)
        if (s->answer[i] == m) return;
    if (s->n_answer < SWIM_MAX_ANSWER) s->answer[s->n_answer++] = m;
}

/* Metadata is fixed per incarnation, so an entry at the member's incarnation
 * or above that carries any is the newest known. Gossip never clears it. */
static void take_meta(swim_member *m, const mn_wire_swim_entry_t *e)
{
    if (!e->meta_len || e->incarnation < m->inc) return;
    mn_assert(e->meta_len <= MN_SWIM_META_MAX);
    memcpy(m->meta, e->meta, e->meta_len);
    m->meta_len = (uint8_t)e->meta_len;
}

static void apply_alive(mn_swim_t *s, const mn_wire_swim_entry_t *e, int64_t now_us)
{
    if (is_self(s, e)) {
        /* a previous life of ours was known at a higher incarnation */
        if (!s->leaving && e->incarnation > s->self->inc)
            mn__swim_refute(s, e->incarnation, now_us);
        return;
    }
    if (e->addr.family != 4 && e->addr.family != 6) return; /* unreachable: ignore */
    swim_member *m = mn__swim_find(s, e->id, e->id_len);
    if (!m) {
        m = mn__swim_add(s, e->id, e->id_len, now_us);
        if (!m) return;
        memcpy(&m->addr, &e->addr, sizeof m->addr);
        m->inc = e->incarnation; /* new member: its first incarnation */
        take_meta(m, e);
        mn__swim_queue_member(s, m, NULL, 0);
        emit(s, m, MN_SWIM_ALIVE, true, now_us);
        return;
    }
    if (e->incarnation <= m->inc) return;
    uint8_t old = m->state;
    mn_swim_addr_t a;
    memcpy(&a, &e->addr, sizeof a);
    bool moved = !mn_swim_addr_equal(&a, &m->addr);
    set_incarnation(m, e->incarnation);
    take_meta(m, e); /* before the update is queued again: relays carry the new metadata */
    m->addr = a;
    if (old != MN_SWIM_ALIVE) mn__swim_set_state(s, m, MN_SWIM_ALIVE, now_us);
    mn__swim_queue_member(s, m, NULL, 0);
    if (old != MN_SWIM_ALIVE || moved) emit(s, m, old, false, now_us);
}

/* The member a suspect, dead or left update is about; NULL when it is about
 * us (refuted or answered here), about a member we do not know (only alive
 * news adds one), or older than what we know. */
static swim_member *accused(mn_swim_t *s, const mn_wire_swim_entry_t *e, int64_t now_us)
{
    if (is_self(s, e)) {
        self_accused(s, e, now_us);
        return NULL;
    }
    swim_member *m = mn__swim_find(s, e->id, e->id_len);
    return m && e->incarnation >= m->inc ? m : NULL;
}

static void apply_suspect(mn_swim_t *s, const mn_wire_swim_entry_t *e, const char *from,
                          size_t from_len, int64_t now_us)
{
    swim_member *m = accused(s, e, now_us);
    if (!m) return;
    if (m->state == MN_SWIM_LEFT) {
        mn__swim_answer(s, m); /* the sender missed the leave */
        return;
    }
    if (m->state == MN_SWIM_DEAD) return;
    uint32_t fh = mn__swim_hash(from, from_len);
    if (m->state == MN_SWIM_SUSPECT) {
        if (e->incarnation == m->inc) {
            if (suspicion_confirm(m, fh)) {
                s->stats.confirmations++;
                mn__swim_queue_member(s, m, from, from_len);
            }
            return;
        }
        set_incarnation(m, e->incarnation); /* a newer suspicion restarts the timer */
        suspicion_start(s, m, fh, now_us);
        mn__swim_queue_member(s, m, from, from_len);
        if (fh != s->self->hash) mn__swim_verify_push(s, m);
        return;
    }
    set_incarnation(m, e->incarnation);
    mn__swim_set_state(s, m, MN_SWIM_SUSPECT, now_us);
    suspicion_start(s, m, fh, now_us);
    if (fh != s->self->hash) mn__swim_verify_push(s, m);
    s->stats.suspect_events++;
    mn__swim_queue_member(s, m, from, from_len);
    emit(s, m, MN_SWIM_ALIVE, false, now_us);
}

static void apply_dead(mn_swim_t *s, const mn_wire_swim_entry_t *e, const char *from,
                       size_t from_len, int64_t now_us)
{
    bool left = e->state == MN_SWIM_LEFT;
    swim_member *m = accused(s, e, now_us);
    if (!m) return;
    if (!left && m->state == MN_SWIM_LEFT) {
        mn__swim_answer(s, m); /* the sender missed the leave */
        return;
    }
    if (!left && s->cfg.verify &&
        (m->state == MN_SWIM_ALIVE || (m->state == MN_SWIM_SUSPECT && !m->susp_verified))) {
        /* we have not seen it fail ourselves (a missed suspicion, or news from
         * across a healed partition): an accusation, or one more confirmation;
         * our own probe and the timer decide */
        apply_suspect(s, e, from, from_len, now_us);
        return;
    }
    if (m->state == MN_SWIM_LEFT) return;
    if (m->state == MN_SWIM_DEAD && !left) return;
    uint8_t old = m->state;
    set_incarnation(m, e->incarnation);
    mn__swim_set_state(s, m, left ? MN_SWIM_LEFT : MN_SWIM_DEAD, now_us);
    if (!left) s->stats.dead_events++;
    mn__swim_queue_member(s, m, from, from_len);
    emit(s, m, old, false, now_us);
}

void mn__swim_apply(mn_swim_t *s, const mn_wire_swim_entry_t *e, const char *sender,
                    size_t sender_len, bool from_sync, int64_t now_us)
{
    const char *from = e->from_len ? e->from : sender;
    size_t from_len = e->from_len ? e->from_len : sender_len;
    uint8_t st = e->state;
    if (from_sync) {
        /* a peer's table row: its "dead" only makes us suspect (memberlist mergeState) */
        from = sender;
        from_len = sender_len;
        if (st == MN_SWIM_DEAD) st = MN_SWIM_SUSPECT;
    }
    switch (st) {
    case MN_SWIM_ALIVE:
        apply_alive(s, e, now_us);
        break;
    case MN_SWIM_SUSPECT:
        apply_suspect(s, e, from, from_len, now_us);
        break;
    default:
        apply_dead(s, e, from, from_len, now_us);
        break;
    }
    swim_member *m = is_self(s, e) ? NULL : mn__swim_find(s, e->id, e->id_len);
    if (m) take_meta(m, e);
}

void mn__swim_verify_push(mn_swim_t *s, const swim_member *m)
{
    if (!s->cfg.verify) return;
    for (size_t i = 0; i < s->n_verify; i++)
        if (strcmp(s->verify[(s->verify_head + i) % SWIM_VERIFY_MAX], m->id) == 0) return;
    if (s->n_verify == SWIM_VERIFY_MAX) { /* full: the oldest gives way */
        s->verify_head = (s->verify_head + 1) % SWIM_VERIFY_MAX;
        s->n_verify--;
    }
    mn_assert(s->n_verify < SWIM_VERIFY_MAX);
    memcpy(s->verify[(s->verify_head + s->n_verify) % SWIM_VERIFY_MAX], m->id, m->id_len + 1u);
    s->n_verify++;
}

swim_member *mn__swim_verify_pop(mn_swim_t *s)
{
    while (s->n_verify) {
        const char *id = s->verify[s->verify_head];
        s->verify_head = (s->verify_head + 1) % SWIM_VERIFY_MAX;
        s->n_verify--;
        swim_member *m = mn__swim_find(s, id, strlen(id));
        if (m && m->state == MN_SWIM_SUSPECT && m != s->self) return m;
    }
    return NULL;
}

void mn__swim_suspect_local(mn_swim_t *s, swim_member *m, uint64_t inc, int64_t now_us)
{
    /* it refuted while we waited: our failure is about its former incarnation
     * (memberlist accuses with the incarnation captured at probe start) */
    if (m->inc > inc) return;
    if (m->state == MN_SWIM_ALIVE) s->stats.suspicions_raised++;
    mn_wire_swim_entry_t e;
    mn__swim_entry_from_member(m, &e);
    e.state = MN_SWIM_SUSPECT;
    e.from = s->self->id;
    e.from_len = s->self->id_len;
    apply_suspect(s, &e, s->self->id, s->self->id_len, now_us);
    if (m->state != MN_SWIM_SUSPECT) return;
    m->susp_verified = true;
    m->susp_failed_at_us = now_us;
    /* its timer ran out before we had seen it fail lately: now we have */
    if (m->susp_expired) declare_dead(s, m, now_us);
}
