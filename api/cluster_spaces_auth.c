/* The primary as the authority for its spaces' holders (docs/replication.md, "Holder
 * records").
 *
 * Each node steps its placement table from its own view, so tables differ for a while; the
 * voters of a space must not, since the replication core counts its majorities over them.
 * So the node whose core leads a space publishes the space's holders as a record in the
 * space catalog (which every node syncs), and every node's driver adopts the newest record
 * (spaces/place_driver.c). Here, on the loop thread after each step:
 *  - a space the core leads at an epoch above the catalog's record gets the first record of
 *    that epoch: the holders the core knows (it was elected among those voters), this node
 *    primary; voters unchanged, so it needs no waiting;
 *  - a space led by its record gets the next record the driver proposes (a copy added or
 *    caught up, a down or surplus copy removed), at most one voter change from the current
 *    record, and a voter change only once a majority of the current record's voters holds it:
 *    their cores' replication frames name the record they count over (or, from a node of an
 *    older version whose frames do not, the catalog knows who merged it, and the change
 *    waits CL_AUTH_ADOPT_MS more, time for its loop thread to hand it to its core): so no two
 *    records in use differ by more than one voter, and any majority of one meets any
 *    majority of the other (Raft's single-server changes). */
#include "cluster_spaces_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/util.h"

#define CL_AUTH_ADOPT_MS 1000 /* a majority held the record this long: their cores have it */

/* Since when a majority of a space's current record's voters holds it (0 = not yet). */
typedef struct auth_held {
    char space[MN_SPACE_NAME_MAX + 1];
    uint64_t epoch, version;
    int64_t since_ms;
} auth_held;

/* A record to publish at the end of the tick. */
typedef struct auth_out {
    char space[MN_SPACE_NAME_MAX + 1];
    mn_spaces_record_t rec;
} auth_out;

struct cl_authority {
    cl_catalog *catalog;
    cl_repl *repl;
    char self[MN_SPACES_NODE_MAX + 1];
    auth_held *held;
    size_t n_held, cap_held;
    auth_held *fresh; /* during a tick: spaces led at an epoch their record is behind */
    size_t n_new, cap_new;
    auth_out *out; /* during a tick: records to publish */
    size_t n_out, cap_out;
    mn_spaces_driver_t *d; /* during a tick */
};

mn_err cl_authority_new(cl_catalog *catalog, cl_repl *repl, const char *self, cl_authority **out,
                        mn_error *err)
{
    cl_authority *a = calloc(1, sizeof *a);
    if (!a) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    a->catalog = catalog;
    a->repl = repl;
    snprintf(a->self, sizeof a->self, "%s", self);
    *out = a;
    return MN_OK;
}

void cl_authority_free(cl_authority *a)
{
    if (!a) return;
    free(a->held);
    free(a->fresh);
    free(a->out);
    free(a);
}

/* ---- caught-up copies ---- */

static void on_caught(void *arg, const char *space, const char *node, uint64_t epoch)
{
    mn_spaces_driver_t *d = arg;
    mn_error err = {0};
    if (mn_spaces_driver_caught_up(d, space, node, epoch, &err) != MN_OK)
        mn_log_debug("cluster: %s: %s caught up, not recorded: %s", space, node, err.message);
}

void cl_authority_take_caught_up(cl_authority *a, mn_spaces_driver_t *d)
{
    cl_repl_caught_up(a->repl, on_caught, d);
}

/* ---- publishing: queued during a tick, one catalog save and push at its end ---- */

static void publish(cl_authority *a, const char *space, const mn_spaces_record_t *r)
{
    if (a->n_out == a->cap_out) {
        size_t cap = a->cap_out ? a->cap_out * 2 : 16;
        auth_out *no = realloc(a->out, cap * sizeof *no);
        if (!no) return; /* the next tick proposes it again */
        a->out = no;
        a->cap_out = cap;
    }
    auth_out *o = &a->out[a->n_out++];
    snprintf(o->space, sizeof o->space, "%s", space);
    o->rec = *r;
    char list[MN_SPACES_HOLDERS_MAX * (MN_SPACES_NODE_MAX + 16)] = "";
    for (int i = 0; i < r->n_holders; i++) {
        size_t at = strlen(list);
        snprintf(list + at, sizeof list - at, "%s%s(%s)", i ? " " : "", r->holders[i].node,
                 mn_spaces_role_name(r->holders[i].role));
    }
    mn_log_info("cluster: %s: holder record epoch %llu v%llu: %s", space,
                (unsigned long long)r->epoch, (unsigned long long)r->version, list);
}

static void flush(cl_authority *a)
{
    if (!a->n_out) return;
    const char **spaces = malloc(a->n_out * sizeof *spaces);
    mn_spaces_record_t *recs = malloc(a->n_out * sizeof *recs);
    for (size_t i = 0; spaces && recs && i < a->n_out; i++) {
        spaces[i] = a->out[i].space;
        recs[i] = a->out[i].rec;
    }
    if (spaces && recs) cl_catalog_publish(a->catalog, spaces, recs, a->n_out);
    free(spaces);
    free(recs);
    a->n_out = 0;
}

/* The core's holders of space as the first record of its epoch (it leads it). */
static bool first_record(const mn_spaces_repl_status_t *st, const char *self, mn_spaces_record_t *r)
{
    memset(r, 0, sizeof *r);
    if (st->n_peers + 1 > MN_SPACES_HOLDERS_MAX) return false;
    r->epoch = st->epoch;
    r->version = 1;
    snprintf(r->holders[0].node, sizeof r->holders[0].node, "%s", self);
    r->holders[0].role = MN_SPACES_PRIMARY;
    r->n_holders = 1;
    for (size_t i = 0; i < st->n_peers; i++) {
        mn_spaces_holder_t *h = &r->holders[r->n_holders++];
        snprintf(h->node, sizeof h->node, "%s", st->peers[i].node);
        h->role = st->peers[i].voter ? MN_SPACES_REPLICA : MN_SPACES_CATCHING_UP;
    }
    return true;
}

/* Is the core's state of space (of incarnation inc, 0 = not known) about the space the
 * table places under that name? Not when the name was dropped, or created again since. */
static bool same_space(const cl_authority *a, const char *space, uint64_t inc)
{
    const mn_spaces_entry_t *e = mn_spaces_table_find(mn_spaces_driver_table(a->d), space);
    return e && !(inc && e->incarnation && inc != e->incarnation);
}

/* cl_repl_leaders asks for every space whose epoch is above this: all of them, for the
 * space the table places under the name (else none). */
static uint64_t none_known(void *arg, const char *space, uint64_t inc)
{
    return same_space(arg, space, inc) ? 0 : UINT64_MAX;
}

/* A space this node's core follows or leads (under the repl's lock: only noted here). */
static void on_leader(void *arg, const char *space, const char *primary, uint64_t epoch)
{
    cl_authority *a = arg;
    if (strcmp(primary, a->self) != 0) return;
    const mn_spaces_record_t *cur = mn_spaces_driver_record(a->d, space);
    if (cur && cur->epoch >= epoch) return;
    if (a->n_new == a->cap_new) {
        size_t cap = a->cap_new ? a->cap_new * 2 : 16;
        auth_held *nn = realloc(a->fresh, cap * sizeof *nn);
        if (!nn) return; /* the next tick tries again */
        a->fresh = nn;
        a->cap_new = cap;
    }
    auth_held *f = &a->fresh[a->n_new++];
    snprintf(f->space, sizeof f->space, "%s", space);
    f->epoch = epoch;
}

/* Publishes the first record of each space the core leads at an epoch the record is behind. */
static void first_records(cl_authority *a)
{
    a->n_new = 0;
    cl_repl_leaders(a->repl, none_known, on_leader, a);
    for (size_t i = 0; i < a->n_new; i++) {
        mn_spaces_repl_status_t st;
        mn_spaces_record_t r;
        if (cl_repl_status(a->repl, a->fresh[i].space, &st) && st.role == MN_SPACES_REPL_PRIMARY &&
            st.epoch == a->fresh[i].epoch && same_space(a, a->fresh[i].space, st.incarnation) &&
            first_record(&st, a->self, &r))
            publish(a, a->fresh[i].space, &r);
    }
}

/* ---- voter changes wait for the current record to be held ---- */

static auth_held *held_of(cl_authority *a, const char *space)
{
    for (size_t i = 0; i < a->n_held; i++)
        if (!strcmp(a->held[i].space, space)) return &a->held[i];
    if (a->n_held == a->cap_held) {
        size_t cap = a->cap_held ? a->cap_held * 2 : 16;
        auth_held *nh = realloc(a->held, cap * sizeof *nh);
        if (!nh) return NULL;
        a->held = nh;
        a->cap_held = cap;
    }
    auth_held *h = &a->held[a->n_held++];
    memset(h, 0, sizeof *h);
    snprintf(h->space, sizeof h->space, "%s", space);
    return h;
}

/* Does node hold cur? Its replication frames say which record its core counts over (the
 * peer's status, from this primary's core); a node whose frames say none (an older version)
 * is judged by the catalog's merge (*by_catalog set). */
static bool holds(cl_authority *a, const char *space, const char *node,
                  const mn_spaces_repl_status_t *st, const mn_spaces_record_t *cur,
                  bool *by_catalog)
{
    if (!strcmp(node, a->self)) return true;
    for (size_t i = 0; i < st->n_peers; i++) {
        const mn_spaces_repl_peer_status_t *p = &st->peers[i];
        if (strcmp(p->node, node) != 0 || !p->rec_said) continue;
        return p->rec_epoch > cur->epoch ||
               (p->rec_epoch == cur->epoch && p->rec_version >= cur->version);
    }
    bool held = cl_catalog_record_held(a->catalog, space, node, cur);
    *by_catalog |= held;
    return held;
}

/* Does a majority of cur's voters hold cur, as their cores' frames said (at once), or as
 * the catalog says for nodes whose frames cannot (then for CL_AUTH_ADOPT_MS, time for their
 * loop threads to hand it to their cores)? */
static bool committed(cl_authority *a, const char *space, const mn_spaces_repl_status_t *st,
                      const mn_spaces_record_t *cur)
{
    int voters = 0, holding = 0;
    bool by_catalog = false;
    for (int i = 0; i < cur->n_holders; i++) {
        if (cur->holders[i].role == MN_SPACES_CATCHING_UP) continue;
        voters++;
        holding += holds(a, space, cur->holders[i].node, st, cur, &by_catalog);
    }
    bool majority = 2 * holding > voters;
    if (majority && !by_catalog) return true;
    auth_held *h = held_of(a, space);
    if (!h) return false;
    if (h->epoch != cur->epoch || h->version != cur->version || !majority) {
        h->epoch = cur->epoch;
        h->version = cur->version;
        h->since_ms = 0;
    }
    if (!majority) return false;
    int64_t now = mn_time_mono_ns() / 1000000;
    if (!h->since_ms) h->since_ms = now;
    return now - h->since_ms >= CL_AUTH_ADOPT_MS;
}

static void on_proposal(void *arg, const char *space, const mn_spaces_record_t *next,
                        bool voter_change)
{
    cl_authority *a = arg;
    const mn_spaces_record_t *cur = mn_spaces_driver_record(a->d, space);
    mn_spaces_repl_status_t st;
    if (!cur || !cl_repl_status(a->repl, space, &st) || st.role != MN_SPACES_REPL_PRIMARY ||
        st.epoch != next->epoch || !same_space(a, space, st.incarnation))
        return; /* the core no longer leads it at this epoch (or leads a dropped one) */
    if (voter_change && !committed(a, space, &st, cur)) return;
    publish(a, space, next);
}

void cl_authority_tick(cl_authority *a, mn_spaces_driver_t *d, const mn_spaces_member_t *view,
                       size_t n_view)
{
    a->d = d;
    first_records(a);
    mn_error err = {0};
    if (mn_spaces_driver_proposals(d, view, n_view, on_proposal, a, &err) != MN_OK)
        mn_log_warn("cluster: holder records not proposed: %s", err.message);
    flush(a);
    a->d = NULL;
}
