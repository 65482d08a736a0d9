/* The replication thread: its own libuv loop runs the peer bus and one
 * replication core for every space this node holds (docs/replication.md,
 * "Replication in the server").
 *
 * Inputs arrive under in_mu and a uv_async wake-up: the placement table and
 * the members from the loop thread (each SWIM snapshot), and (space, epoch,
 * lsn) from the engine's WAL hook on the commit thread, which must never
 * block: it appends to a vector and wakes the thread. The thread opens in the
 * core each space the table gives this node (with its durable state and the
 * engine's position), closes and drops the copies its records moved away
 * (cluster_repl_drop.c), passes holder changes and liveness on, feeds the
 * primary's durable entries to mn_spaces_repl_append, frames from the bus to
 * mn_spaces_repl_on_message, and keeps a timer at the core's next deadline.
 *
 * Invariants: the core, the bus and the space list are touched only by this
 * thread; the engine's hook is set before the thread starts and cleared
 * before it stops. */
#include "cluster_catalog.h"
#include "cluster_repl_internal.h"
#include "cluster_snap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mnemo/assert.h"
#include "mnemo/util.h"

#define REFRESH_MS 200 /* status publication and metrics; lease retries */

int64_t mn__crep_now_us(void)
{
    return mn_time_mono_ns() / 1000;
}

static int cmp_space(const void *key, const void *elem)
{
    return strcmp(key, (*(crep_space *const *)elem)->name);
}

crep_space *mn__crep_space(cl_repl *r, const char *name)
{
    crep_space **sp =
        r->n_spaces ? bsearch(name, r->spaces, r->n_spaces, sizeof *r->spaces, cmp_space) : NULL;
    return sp ? *sp : NULL;
}

static crep_space *space_add(cl_repl *r, const char *name)
{
    if (r->n_spaces == r->cap_spaces) {
        size_t cap = r->cap_spaces ? r->cap_spaces * 2 : 16;
        crep_space **s = realloc(r->spaces, cap * sizeof *s);
        if (!s) return NULL;
        r->spaces = s;
        r->cap_spaces = cap;
    }
    crep_space *sp = calloc(1, sizeof *sp);
    if (!sp) return NULL;
    snprintf(sp->name, sizeof sp->name, "%s", name);
    size_t at = 0;
    while (at < r->n_spaces && strcmp(r->spaces[at]->name, name) < 0)
        at++;
    memmove(r->spaces + at + 1, r->spaces + at, (r->n_spaces - at) * sizeof *r->spaces);
    r->spaces[at] = sp;
    r->n_spaces++;
    return sp;
}

/* ---- the table ---- */

static uint64_t holders_hash(const mn_spaces_repl_holder_t *h, size_t n)
{
    uint64_t x = n;
    for (size_t i = 0; i < n; i++)
        x = mn_spaces_score(x, mn_spaces_hash(h[i].node, strlen(h[i].node)) + h[i].voter);
    return x;
}

/* Whether the engine's copy of e's space (if any) is of e's incarnation. An older one (the
 * name was dropped and created again, and this node missed or outran the drop) is dropped:
 * the table gives this node a copy of the new space, and the old one's tombstone covers it.
 * A newer one means the table has not caught up with this node's catalog: not yet. */
static bool engine_copy_ready(cl_repl *r, const mn_spaces_entry_t *e)
{
    mn_space_stats_t st;
    mn_error err = {0};
    if (!e->incarnation || mn_engine_space_get(r->engine, e->name, &st, &err) != MN_OK) return true;
    uint64_t have = st.def.created_at_ms > 0 ? (uint64_t)st.def.created_at_ms : 0;
    if (have == e->incarnation || have == 0) return true;
    if (have > e->incarnation) return false;
    if (mn_engine_space_discard(r->engine, e->name, &err) != MN_OK) {
        mn_log_warn("repl: %s: cannot drop the copy of incarnation %llu: %s", e->name,
                    (unsigned long long)have, err.message);
        return false;
    }
    mn_log_warn("repl: %s: dropped this node's copy of incarnation %llu: the name now names "
                "incarnation %llu",
                e->name, (unsigned long long)have, (unsigned long long)e->incarnation);
    return true;
}

static void open_space(cl_repl *r, const mn_spaces_entry_t *e, const mn_spaces_repl_holder_t *h,
                       size_t n)
{
    mn_spaces_repl_durable_t d;
    bool found = false;
    mn_err rc = mn__crep_load(r, e->name, &d, &found);
    if (rc != MN_OK) {
        mn_log_error("repl: the durable state of %s in %s is unreadable (%s): not replicating it",
                     e->name, r->dir, mn_strerror(rc));
        return;
    }
    if (found && d.incarnation && e->incarnation && d.incarnation != e->incarnation) {
        /* the epoch, vote and history of a dropped space: not this one's (its frames carry
         * the incarnation, so no vote of the old one counts here) */
        mn_log_info("repl: %s: the state of incarnation %llu is forgotten: the name now names "
                    "incarnation %llu",
                    e->name, (unsigned long long)d.incarnation, (unsigned long long)e->incarnation);
        found = false;
    }
    if (!found && mn__crep_lost_state(r, e)) return; /* never held: cluster_repl_lost.c */
    if (!engine_copy_ready(r, e)) return; /* the next table opens it */
    uint64_t last_lsn = 0, epoch = 0;
    mn_error err = {0};
    if (mn_engine_space_position(r->engine, e->name, &last_lsn, &epoch, &err) != MN_OK)
        last_lsn = 0; /* not here yet: its first entries create it */
    crep_space *sp = space_add(r, e->name);
    if (!sp) return;
    sp->holders_hash = holders_hash(h, n);
    sp->hooked_lsn = last_lsn;
    sp->lease_us = INT64_MIN;
    sp->dirty = r->dirty = true;
    /* a new space led here starts at the epoch its engine copy wrote its first entries at */
    bool lead_new = !found && n && strcmp(h[0].node, r->self) == 0 && last_lsn && epoch > 1;
    if (lead_new)
        rc = mn_spaces_repl_open_new(r->core, mn__crep_now_us(), e->name, h, n, epoch, last_lsn,
                                     &err);
    else
        rc = mn_spaces_repl_open(r->core, mn__crep_now_us(), e->name, h, n, found ? &d : NULL,
                                 last_lsn, &err);
    if (rc != MN_OK) {
        mn_log_error("repl: cannot open %s: %s", e->name, err.message);
        return;
    }
    sp->incarnation = e->incarnation;
    if (e->incarnation &&
        mn_spaces_repl_set_incarnation(r->core, e->name, e->incarnation, &err) != MN_OK)
        mn_log_warn("repl: %s: %s", e->name, err.message);
    mn_spaces_repl_status_t st;
    if (mn_spaces_repl_status(r->core, mn__crep_now_us(), e->name, &st) == MN_OK &&
        st.role != MN_SPACES_REPL_PRIMARY &&
        mn_engine_space_set_role_of(r->engine, e->name, (int64_t)e->incarnation, MN_SPACE_REPLICA,
                                    0, &err) != MN_OK &&
        err.code != MN_ERR_NOT_FOUND)
        mn_log_warn("repl: %s: %s", e->name, err.message);
    mn_log_info("repl: %s open at lsn %llu (%s, epoch %llu)", e->name, (unsigned long long)last_lsn,
                found ? "restarted" : "new",
                (unsigned long long)(found      ? d.epoch
                                     : lead_new ? epoch
                                                : 1));
}

static bool listed(const mn_spaces_repl_holder_t *h, size_t n, const char *node)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(h[i].node, node) == 0) return true;
    return false;
}

static void remember_voters(crep_space *sp, const mn_spaces_repl_holder_t *h, size_t n)
{
    char v[MN_SPACES_HOLDERS_MAX][MN_SPACES_NODE_MAX + 1];
    size_t k = 0;
    for (size_t i = 0; i < n && k < MN_SPACES_HOLDERS_MAX; i++)
        if (h[i].voter) snprintf(v[k++], sizeof v[0], "%s", h[i].node);
    memcpy(sp->voters, v, k * sizeof v[0]);
    sp->n_voters = k;
}

/* The table's holders h (n of them, room for MN_SPACES_HOLDERS_MAX) plus every voter the
 * core counted before that the table no longer lists, still as a voter; then remembers the
 * voters. Returns the new count. */
static size_t keep_voters(crep_space *sp, mn_spaces_repl_holder_t *h, size_t n)
{
    char kept[MN_SPACES_HOLDERS_MAX][MN_SPACES_NODE_MAX + 1];
    size_t k = 0;
    for (size_t i = 0; i < sp->n_voters; i++)
        if (!listed(h, n, sp->voters[i]) && n + k < MN_SPACES_HOLDERS_MAX)
            snprintf(kept[k++], sizeof kept[0], "%s", sp->voters[i]);
    for (size_t i = 0; i < n; i++) /* a listed former voter catching up again still counts */
        for (size_t j = 0; j < sp->n_voters && !h[i].voter; j++)
            h[i].voter = strcmp(h[i].node, sp->voters[j]) == 0;
    /* kept ids outlive this call in sp->voters: copy them there after remembering */
    size_t m = n;
    for (size_t i = 0; i < k; i++)
        h[m++] = (mn_spaces_repl_holder_t){.node = kept[i], .voter = true};
    remember_voters(sp, h, m);
    for (size_t i = 0; i < k; i++) /* point the kept entries at the remembered copies */
        for (size_t j = 0; j < sp->n_voters; j++)
            if (strcmp(sp->voters[j], kept[i]) == 0) h[n + i].node = sp->voters[j];
    mn_assert(m <= MN_SPACES_HOLDERS_MAX);
    return m;
}

/* The core now counts voters over e's holder record (when it is one): its frames say so,
 * and its vote goes to no candidate of an older record (mn_spaces_repl_set_record). */
static void set_record(cl_repl *r, const mn_spaces_entry_t *e)
{
    if (!(e->flags & MN_SPACES_RECORDED) || !e->rec_version) return;
    mn_error err = {0};
    if (mn_spaces_repl_set_record(r->core, e->name, e->epoch, e->rec_version, &err) != MN_OK)
        mn_log_warn("repl: %s: record not set: %s", e->name, err.message);
}

static void apply_entry(cl_repl *r, const mn_spaces_entry_t *e)
{
    mn_spaces_repl_holder_t h[MN_SPACES_HOLDERS_MAX];
    size_t n = 0;
    bool mine = false;
    for (int i = 0; i < e->n_holders; i++) {
        h[n].node = e->holders[i].node;
        h[n].voter = e->holders[i].role != MN_SPACES_CATCHING_UP;
        mine |= strcmp(e->holders[i].node, r->self) == 0;
        n++;
    }
    if (!mine || n == 0) return; /* moved away: cluster_repl_drop.c closes it */
    crep_space *sp = mn__crep_space(r, e->name);
    if (sp && e->incarnation && sp->incarnation != e->incarnation) {
        mn_error err = {0};
        if (!sp->incarnation &&
            mn_spaces_repl_set_incarnation(r->core, e->name, e->incarnation, &err) == MN_OK) {
            sp->incarnation = e->incarnation; /* opened before the table knew it */
        } else {
            mn__crep_forget(r, sp, "the name was dropped and created again");
            sp = NULL;
        }
    }
    if (!sp) {
        open_space(r, e, h, n);
        sp = mn__crep_space(r, e->name);
        if (sp) remember_voters(sp, h, n);
        if (sp) set_record(r, e);
        return;
    }
    /* a space with a holder record takes its voters as recorded: only its primary removes
     * one, one change at a time (api/cluster_spaces_auth.c); without one, keep every voter */
    if (e->flags & MN_SPACES_RECORDED)
        remember_voters(sp, h, n);
    else
        n = keep_voters(sp, h, n);
    uint64_t hh = holders_hash(h, n);
    mn_error err = {0};
    if (hh == sp->holders_hash)
        set_record(r, e);
    else if (mn_spaces_repl_set_holders(r->core, mn__crep_now_us(), e->name, h, n, &err) == MN_OK) {
        sp->holders_hash = hh;
        set_record(r, e);
    } else
        mn_log_warn("repl: %s: new holders refused: %s", e->name, err.message);
}

/* ---- caught-up copies ---- */

void mn__crep_caught_up(cl_repl *r, const mn_spaces_repl_event_t *ev)
{
    pthread_mutex_lock(&r->pub_mu);
    if (r->n_caught == r->cap_caught) {
        size_t cap = r->cap_caught ? r->cap_caught * 2 : 16;
        crep_caught *c = realloc(r->caught, cap * sizeof *c);
        if (c) {
            r->caught = c;
            r->cap_caught = cap;
        }
    }
    if (r->n_caught < r->cap_caught) { /* out of memory: the copy stays catching up */
        crep_caught *c = &r->caught[r->n_caught++];
        snprintf(c->space, sizeof c->space, "%s", ev->space);
        snprintf(c->node, sizeof c->node, "%s", ev->node);
        c->epoch = ev->epoch;
    }
    pthread_mutex_unlock(&r->pub_mu);
    mn_log_info("repl: %s: %s caught up (epoch %llu, lsn %llu)", ev->space, ev->node,
                (unsigned long long)ev->epoch, (unsigned long long)ev->lsn);
}

void cl_repl_caught_up(cl_repl *r, cl_repl_caught_fn fn, void *arg)
{
    pthread_mutex_lock(&r->pub_mu);
    crep_caught *c = r->caught;
    size_t n = r->n_caught;
    r->caught = NULL;
    r->n_caught = r->cap_caught = 0;
    pthread_mutex_unlock(&r->pub_mu);
    for (size_t i = 0; i < n; i++)
        fn(arg, c[i].space, c[i].node, c[i].epoch);
    free(c);
}

/* ---- members ---- */

static const cl_repl_member *member_of(const cl_repl_member *m, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(m[i].id, id) == 0) return &m[i];
    return NULL;
}

static void apply_members(cl_repl *r, cl_repl_member *m, size_t n)
{
    int64_t now = mn__crep_now_us();
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].id, r->self) == 0) continue;
        const cl_repl_member *was = member_of(r->members, r->n_members, m[i].id);
        mn_error err = {0};
        if (m[i].peer_host[0] &&
            (!was || strcmp(was->peer_host, m[i].peer_host) || was->peer_port != m[i].peer_port) &&
            mn_peer_set_addr(r->bus, m[i].id, m[i].peer_host, m[i].peer_port, &err) != MN_OK)
            mn_log_warn("repl: member %s: %s", m[i].id, err.message);
        if (!was || was->alive != m[i].alive)
            mn_spaces_repl_member(r->core, now, m[i].id, m[i].alive);
        /* back from dead: a connection that carried data into the partition may sit in TCP's
         * retransmission backoff long after the heal (mn_peer_redial) */
        if (was && !was->alive && m[i].alive) mn_peer_redial(r->bus, m[i].id);
    }
    for (size_t i = 0; i < r->n_members; i++) /* gone from SWIM's list: dead */
        if (!member_of(m, n, r->members[i].id) && r->members[i].alive)
            mn_spaces_repl_member(r->core, now, r->members[i].id, false);
    free(r->members);
    r->members = m;
    r->n_members = n;
}

/* ---- handovers ---- */

static void apply_hooked(cl_repl *r, const crep_hooked *h, size_t n);

/* Before a handover the engine copy stops taking writes (a replica), and every entry it
 * wrote before that reaches the core: an entry the engine took and the core never appended
 * would be a fork the new primary does not have. false: not fenced (not tried now). */
static bool fence_engine(cl_repl *r, crep_space *sp)
{
    mn_error err = {0};
    if (mn_engine_space_set_role_of(r->engine, sp->name, (int64_t)sp->incarnation, MN_SPACE_REPLICA,
                                    0, &err) != MN_OK) {
        mn_log_warn("repl: %s: no handover: %s", sp->name, err.message);
        return false;
    }
    sp->handover_fenced = true;
    /* the commit thread hooked every entry written before the role changed: take them now */
    pthread_mutex_lock(&r->in_mu);
    crep_hooked *hooked = r->hooked;
    size_t n_hooked = r->n_hooked;
    r->hooked = NULL;
    r->n_hooked = r->cap_hooked = 0;
    pthread_mutex_unlock(&r->in_mu);
    apply_hooked(r, hooked, n_hooked);
    free(hooked);
    mn__crep_pump(r, sp);
    uint64_t last = 0, epoch = 0;
    mn_spaces_repl_status_t st;
    bool all = mn_engine_space_position(r->engine, sp->name, &last, &epoch, &err) == MN_OK &&
               mn_spaces_repl_status(r->core, mn__crep_now_us(), sp->name, &st) == MN_OK &&
               st.last_lsn == last;
    if (!all) mn_log_warn("repl: %s: no handover: the core is behind the engine", sp->name);
    return all; /* not all: unfence_engines makes it primary again */
}

/* Starts the handovers placement wants where this node leads and the target has every
 * entry (a lagging or forked target would only stop writes for two election timeouts). */
static void run_handovers(cl_repl *r)
{
    pthread_mutex_lock(&r->in_mu);
    if (r->in_handovers_new) {
        free(r->handovers);
        r->handovers = r->in_handovers;
        r->n_handovers = r->in_n_handovers;
        r->in_handovers = NULL;
        r->in_handovers_new = false;
    }
    pthread_mutex_unlock(&r->in_mu);
    int64_t now = mn__crep_now_us();
    for (size_t i = 0; i < r->n_handovers; i++) {
        const cl_repl_handover *h = &r->handovers[i];
        crep_space *sp = mn__crep_space(r, h->space);
        mn_spaces_repl_status_t st;
        if (!sp || now - sp->handover_us < CREP_HANDOVER_EVERY_MS * 1000 ||
            mn_spaces_repl_status(r->core, now, h->space, &st) != MN_OK ||
            st.role != MN_SPACES_REPL_PRIMARY)
            continue;
        bool ready = false;
        for (size_t k = 0; k < st.n_peers; k++)
            ready |= !strcmp(st.peers[k].node, h->target) && st.peers[k].alive &&
                     st.peers[k].voter && st.peers[k].applied_lsn >= st.last_lsn;
        if (!ready) continue;
        sp->handover_us = now;
        if (!fence_engine(r, sp)) continue;
        mn_error err = {0};
        if (mn_spaces_repl_handover(r->core, mn__crep_now_us(), h->space, h->target, &err) == MN_OK)
            mn_log_info("repl: handing %s over to %s (placement's primary)", h->space, h->target);
        else
            mn_log_warn("repl: %s: handover to %s refused: %s", h->space, h->target, err.message);
    }
}

/* A handover that gave no new primary (the core leads again and takes writes): the engine
 * copy takes writes again too. */
static void unfence_engines(cl_repl *r)
{
    int64_t now = mn__crep_now_us();
    for (size_t i = 0; i < r->n_spaces; i++) {
        crep_space *sp = r->spaces[i];
        uint64_t epoch = 0;
        mn_spaces_repl_status_t st;
        if (!sp->handover_fenced || mn_spaces_repl_status(r->core, now, sp->name, &st) != MN_OK)
            continue;
        if (st.role != MN_SPACES_REPL_PRIMARY) { /* demoted: the event made it a replica */
            sp->handover_fenced = false;
            continue;
        }
        if (!mn_spaces_repl_writable(r->core, now, sp->name, &epoch)) continue;
        mn_error err = {0};
        if (mn_engine_space_set_role_of(r->engine, sp->name, (int64_t)sp->incarnation,
                                        MN_SPACE_PRIMARY, epoch, &err) != MN_OK) {
            mn_log_warn("repl: %s: %s", sp->name, err.message);
            continue;
        }
        sp->handover_fenced = false;
        mn_log_info("repl: no handover of %s: this node takes its writes again", sp->name);
    }
}

/* ---- the WAL hook (commit thread) ---- */

static void on_wal(void *arg, const char *space, uint64_t epoch, uint64_t lsn)
{
    cl_repl *r = arg;
    pthread_mutex_lock(&r->in_mu);
    if (r->n_hooked == r->cap_hooked) {
        size_t cap = r->cap_hooked ? r->cap_hooked * 2 : 256;
        crep_hooked *h = realloc(r->hooked, cap * sizeof *h);
        if (h) {
            r->hooked = h;
            r->cap_hooked = cap;
        }
    }
    /* out of memory: this one is lost to the core until the next entry of the space, whose
     * pump reads the gap from the WAL */
    if (r->n_hooked < r->cap_hooked) {
        crep_hooked *h = &r->hooked[r->n_hooked++];
        snprintf(h->space, sizeof h->space, "%s", space);
        h->epoch = epoch;
        h->lsn = lsn;
    }
    pthread_mutex_unlock(&r->in_mu);
    uv_async_send(&r->wake);
}

/* Caches each run of consecutive entries of one space with one WAL read, then pumps. */
static void apply_hooked(cl_repl *r, const crep_hooked *h, size_t n)
{
    uint64_t epochs[256];
    for (size_t i = 0; i < n;) {
        crep_space *sp = mn__crep_space(r, h[i].space);
        size_t k = 1;
        while (i + k < n && k < 256 && h[i + k].lsn == h[i].lsn + k &&
               strcmp(h[i + k].space, h[i].space) == 0)
            k++;
        if (sp) {
            for (size_t j = 0; j < k; j++)
                epochs[j] = h[i + j].epoch;
            mn__crep_cache_fill(r, sp, h[i].lsn, epochs, k);
            if (h[i + k - 1].lsn > sp->hooked_lsn) sp->hooked_lsn = h[i + k - 1].lsn;
            sp->pump = r->pumps = true;
        }
        i += k;
    }
}

/* ---- the loop ---- */

static void on_tick(uv_timer_t *t);

static void after_core(cl_repl *r)
{
    mn__crep_flush(r);
    if (r->pumps) { /* spaces with hooked entries, or appends refused for want of a lease */
        r->pumps = false;
        for (size_t i = 0; i < r->n_spaces; i++)
            if (r->spaces[i]->pump) mn__crep_pump(r, r->spaces[i]);
        for (size_t i = 0; i < r->n_spaces; i++)
            r->pumps |= r->spaces[i]->pump;
    }
    mn__crep_flush(r);
    mn__crep_publish(r, false);
    int64_t now = mn__crep_now_us(), due = mn_spaces_repl_next_deadline(r->core);
    int64_t wait_ms = due <= now ? 0 : (due - now + 999) / 1000;
    if (wait_ms > REFRESH_MS) wait_ms = REFRESH_MS;
    uv_timer_start(&r->tick, on_tick, (uint64_t)wait_ms, 0);
}

static void on_tick(uv_timer_t *t)
{
    cl_repl *r = t->data;
    mn_spaces_repl_on_tick(r->core, mn__crep_now_us());
    after_core(r);
}

static void on_frame(void *arg, const char *from, const uint8_t *buf, size_t len)
{
    cl_repl *r = arg;
    (void)from; /* the frame names its sender; the bus authenticated the connection */
    mn_spaces_repl_on_message(r->core, mn__crep_now_us(), buf, len);
    after_core(r);
}

static void on_refresh(uv_timer_t *t)
{
    cl_repl *r = t->data;
    run_handovers(r);
    unfence_engines(r);
    mn__crep_drop_gone(r); /* what its primary's lead kept here at the last table */
    after_core(r);
    mn__crep_publish(r, true);
    mn__crep_metrics_export(r);
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

static void shut_down(cl_repl *r)
{
    mn__crep_chan_close(r);
    mn_peer_close(r->bus, NULL, NULL);
    r->bus = NULL;
    uv_close((uv_handle_t *)&r->wake, on_closed);
    uv_close((uv_handle_t *)&r->tick, on_closed);
    uv_close((uv_handle_t *)&r->refresh, on_closed);
}

static void on_wake(uv_async_t *a)
{
    cl_repl *r = a->data;
    pthread_mutex_lock(&r->in_mu);
    bool stop = r->stop, table_new = r->in_table_new, members_new = r->in_members_new;
    mn_spaces_table_t table = r->in_table;
    mn_spaces_table_init(&r->in_table);
    cl_repl_member *members = r->in_members;
    size_t n_members = r->in_n_members;
    r->in_members = NULL;
    r->in_table_new = r->in_members_new = false;
    crep_hooked *hooked = r->hooked;
    size_t n_hooked = r->n_hooked;
    r->hooked = NULL;
    r->n_hooked = r->cap_hooked = 0;
    pthread_mutex_unlock(&r->in_mu);
    if (stop) {
        mn_spaces_table_free(&table);
        free(members);
        free(hooked);
        shut_down(r);
        return;
    }
    if (members_new) {
        apply_members(r, members, n_members);
        mn__crep_chan_members(r);
    }
    if (table_new) {
        mn__crep_forget_dropped(r, &table);
        for (size_t i = 0; i < table.n; i++)
            apply_entry(r, &table.entries[i]);
        mn__crep_gone_update(r, &table);
        mn__crep_drop_gone(r);
    }
    mn_spaces_table_free(&table);
    apply_hooked(r, hooked, n_hooked);
    free(hooked);
    mn__crep_chan_wake(r);
    after_core(r);
}

static void *thread_main(void *arg)
{
    cl_repl *r = arg;
    uv_run(&r->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- public ---- */

static mn_err make_dir(cl_repl *r, const mn_config_t *c, mn_error *err)
{
    snprintf(r->dir, sizeof r->dir, "%s/repl", c->storage.data_dir);
    if (mkdir(r->dir, 0700) != 0 && errno != EEXIST)
        return mn_error_set(err, MN_ERR_IO, "cannot create %s: %s", r->dir, strerror(errno));
    return mn__crep_born(r, err);
}

/* TEST ONLY: MNEMO_TEST_PEER_MINOR=<0..255> makes the bus announce that minor
 * version instead of its own (rolling-upgrade tests, docs/config.md); above its own, the
 * catalog entries it writes also carry a field no build knows, as a newer minor's may. */
static uint8_t test_peer_minor(uint8_t minor)
{
    const char *s = getenv("MNEMO_TEST_PEER_MINOR");
    if (!s || !*s) return minor;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (*end || v < 0 || v > 255) {
        mn_log_warn("TEST ONLY: MNEMO_TEST_PEER_MINOR=\"%s\" ignored: not an integer 0..255", s);
        return minor;
    }
    mn_log_warn("TEST ONLY: MNEMO_TEST_PEER_MINOR=%ld: the peer bus announces version %d.%ld", v,
                MN_PEER_VERSION_MAJOR, v);
    if (v > minor) cl_catalog_json_test_field("test_newer_minor");
    return (uint8_t)v;
}

static mn_err start_bus(cl_repl *r, const mn_config_t *c, mn_error *err)
{
    mn_peer_config_t pc;
    mn_peer_config_default(&pc);
    pc.node_id = r->self;
    pc.bind = c->cluster.bind;
    pc.port = (int)c->cluster.peer_port;
    pc.key = c->cluster.key;
    pc.tls_cert = c->cluster.tls_cert;
    pc.tls_key = c->cluster.tls_key;
    pc.tls_ca = c->cluster.tls_ca;
    const char *mode = c->cluster.tls_mode ? c->cluster.tls_mode : "require";
    pc.tls_mode = !strcmp(mode, "accept")   ? MN_PEER_TLS_ACCEPT
                  : !strcmp(mode, "prefer") ? MN_PEER_TLS_PREFER
                                            : MN_PEER_TLS_REQUIRE;
    pc.minor = test_peer_minor(pc.minor);
    mn_err rc = mn_peer_new(&r->loop, &pc, &r->bus, err);
    if (rc != MN_OK) return rc;
    mn_peer_on(r->bus, MN_PEER_CH_REPL, on_frame, r);
    r->port = mn_peer_port(r->bus);
    return MN_OK;
}

static mn_err start_core(cl_repl *r, mn_error *err)
{
    mn_spaces_repl_config_t rc;
    mn_spaces_repl_config_default(&rc);
    /* the engine's grace past the lease is waited out by the voters too */
    mn_assert(rc.vote_hold_us >= rc.lease_us + CL_REPL_LEASE_GRACE_US);
    mn_spaces_repl_cb_t cb;
    mn__crep_callbacks(r, &cb);
    return mn_spaces_repl_new(r->self, &rc, &cb, mn_random_seed(), &r->core, err);
}

static void free_all(cl_repl *r)
{
    for (size_t i = 0; i < r->n_spaces; i++)
        mn__crep_space_free(r->spaces[i]);
    free(r->spaces);
    mn__crep_flush(r);
    free(r->batch.data);
    free(r->batch.lens);
    free(r->batch.epochs);
    free(r->members);
    free(r->in_members);
    free(r->handovers);
    free(r->in_handovers);
    free(r->gone);
    free(r->primaries);
    free(r->lost);
    free(r->hooked);
    free(r->read_buf);
    free(r->caught);
    mn__crep_snap_free(r);
    mn__crep_chan_free(r);
    mn_spaces_table_free(&r->in_table);
    mn__crep_pub_free(r);
    mn_spaces_repl_free(r->core);
    pthread_mutex_destroy(&r->in_mu);
    pthread_mutex_destroy(&r->pub_mu);
    pthread_cond_destroy(&r->pub_cv);
    free(r);
}

mn_err cl_repl_start(const mn_config_t *c, mn_engine_t *engine, const char *self, cl_repl **out,
                     mn_error *err)
{
    *out = NULL;
    cl_repl *r = calloc(1, sizeof *r);
    if (!r) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    r->engine = engine;
    snprintf(r->self, sizeof r->self, "%s", self);
    r->write_timeout_ms = c->cluster.write_timeout_ms;
    mn_spaces_level_t level = MN_SPACES_QUORUM;
    mn_spaces_level_parse(c->cluster.write_consistency, &level); /* the config checked it */
    r->default_level = (int)level;
    pthread_mutex_init(&r->in_mu, NULL);
    pthread_mutex_init(&r->pub_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->pub_cv, &ca);
    pthread_condattr_destroy(&ca);
    mn_spaces_table_init(&r->in_table);
    uv_loop_init(&r->loop);
    mn_err rc = make_dir(r, c, err);
    if (rc == MN_OK) rc = start_core(r, err);
    if (rc == MN_OK) rc = start_bus(r, c, err);
    uv_async_init(&r->loop, &r->wake, on_wake);
    uv_timer_init(&r->loop, &r->tick);
    uv_timer_init(&r->loop, &r->refresh);
    r->wake.data = r->tick.data = r->refresh.data = r;
    if (rc == MN_OK) {
        mn__crep_metrics_init(r);
        uv_timer_start(&r->refresh, on_refresh, REFRESH_MS, REFRESH_MS);
        mn_engine_set_wal_hook(engine, on_wal, r);
        if (pthread_create(&r->thread, NULL, thread_main, r) != 0) {
            mn_engine_set_wal_hook(engine, NULL, NULL);
            rc = mn_error_set(err, MN_ERR_INTERNAL, "cannot start the replication thread");
        }
    }
    if (rc != MN_OK) {
        shut_down(r);
        uv_run(&r->loop, UV_RUN_DEFAULT);
        uv_loop_close(&r->loop);
        free_all(r);
        return rc;
    }
    r->thread_started = true;
    if (mn__crep_snap_start(r, err)) { /* out of memory only */
        cl_repl_stop(r);
        return MN_ERR_NOMEM;
    }
    *out = r;
    return MN_OK;
}

int cl_repl_port(const cl_repl *r)
{
    return r->port; /* set before the thread started, never changed */
}

void cl_repl_stop(cl_repl *r)
{
    if (!r) return;
    mn_engine_set_wal_hook(r->engine, NULL, NULL);
    pthread_mutex_lock(&r->in_mu);
    r->stop = true;
    pthread_mutex_unlock(&r->in_mu);
    uv_async_send(&r->wake);
    pthread_join(r->thread, NULL);
    uv_loop_close(&r->loop);
    free_all(r);
}

void cl_repl_handovers(cl_repl *r, const cl_repl_handover *h, size_t n)
{
    cl_repl_handover *copy = n ? malloc(n * sizeof *copy) : NULL;
    if (n && !copy) return;
    if (n) memcpy(copy, h, n * sizeof *copy);
    pthread_mutex_lock(&r->in_mu);
    free(r->in_handovers);
    r->in_handovers = copy;
    r->in_n_handovers = n;
    r->in_handovers_new = true;
    pthread_mutex_unlock(&r->in_mu);
}

void cl_repl_update(cl_repl *r, const mn_spaces_table_t *t, const cl_repl_member *m, size_t n)
{
    mn_spaces_table_t copy;
    mn_spaces_table_init(&copy);
    cl_repl_member *mc = m ? malloc((n ? n : 1) * sizeof *mc) : NULL;
    if (mc) memcpy(mc, m, n * sizeof *mc);
    bool table_ok = t && mn_spaces_table_copy(&copy, t) == MN_OK;
    pthread_mutex_lock(&r->in_mu);
    if (table_ok) {
        mn_spaces_table_t old = r->in_table;
        r->in_table = copy;
        copy = old;
        r->in_table_new = true;
    }
    if (mc) {
        free(r->in_members);
        r->in_members = mc;
        r->in_n_members = n;
        r->in_members_new = true;
    }
    pthread_mutex_unlock(&r->in_mu);
    mn_spaces_table_free(&copy);
    if (table_ok || mc) uv_async_send(&r->wake);
}
