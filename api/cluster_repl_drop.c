/* Copies moved away (docs/replication.md, "Replication in the server", closing a copy):
 * once the newest holder record of a space this node knows no longer lists it, the
 * replication thread closes the space in its core and drops the engine's copy (its data
 * deleted from RocksDB, its indexes freed), so `held_here` turns false.
 *
 * Only a record counts (a table guessed from this node's own view never drops data), and
 * only one that lists another full copy (primary or replica): a record is made by the
 * space's primary, which drops a copy only once the copies it keeps make the factor
 * (docs/replication.md, "Holder records"). A copy this node leads is never dropped (the
 * core refuses: it must hand over first, or learn it was deposed); a copy listed again by
 * a later record leaves the list before it is dropped, or is opened afresh after it (the
 * core keeps its epoch and vote, the log comes by shipping or a snapshot). A restart finds
 * the data gone (the drop is a durable engine write); one that stopped between the core's
 * close and the engine's drop finds the engine copy and drops it then.
 *
 * Invariants: the list is rebuilt from each new table and touched only by the replication
 * thread; a name is on it only while its record does not list this node. */
#include "cluster_repl_internal.h"
#include "cluster_snap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"

/* Does e's record drop this node while it keeps another full copy? */
static bool moved_away(const cl_repl *r, const mn_spaces_entry_t *e)
{
    if (!(e->flags & MN_SPACES_RECORDED) || e->n_holders == 0) return false;
    bool full_elsewhere = false;
    for (int i = 0; i < e->n_holders; i++) {
        if (strcmp(e->holders[i].node, r->self) == 0) return false;
        full_elsewhere |= e->holders[i].role != MN_SPACES_CATCHING_UP;
    }
    return full_elsewhere;
}

static bool held(cl_repl *r, const char *space)
{
    uint64_t last = 0, epoch = 0;
    return mn__crep_space(r, space) ||
           mn_engine_space_position(r->engine, space, &last, &epoch, NULL) == MN_OK;
}

/* Keeps every live primary of t (sorted by space, as t is). */
static void primaries_update(cl_repl *r, const mn_spaces_table_t *t)
{
    if (t->n > r->cap_primaries) {
        crep_primary *p = realloc(r->primaries, t->n * sizeof *p);
        if (!p) return; /* out of memory: the last table's stay */
        r->primaries = p;
        r->cap_primaries = t->n;
    }
    r->n_primaries = 0;
    for (size_t i = 0; i < t->n; i++) {
        const mn_spaces_entry_t *e = &t->entries[i];
        if (!e->n_holders || e->holders[0].role != MN_SPACES_PRIMARY || e->holders[0].down)
            continue;
        crep_primary *p = &r->primaries[r->n_primaries++];
        snprintf(p->space, sizeof p->space, "%s", e->name);
        snprintf(p->node, sizeof p->node, "%s", e->holders[0].node);
    }
}

static int cmp_primary(const void *key, const void *elem)
{
    return strcmp(key, ((const crep_primary *)elem)->space);
}

const char *mn__crep_table_primary(const cl_repl *r, const char *space)
{
    const crep_primary *p = r->n_primaries ? bsearch(space, r->primaries, r->n_primaries,
                                                     sizeof *r->primaries, cmp_primary)
                                           : NULL;
    return p ? p->node : NULL;
}

void mn__crep_gone_update(cl_repl *r, const mn_spaces_table_t *t)
{
    primaries_update(r, t);
    r->n_gone = 0;
    for (size_t i = 0; i < t->n; i++) {
        const mn_spaces_entry_t *e = &t->entries[i];
        if (!moved_away(r, e) || !held(r, e->name)) continue;
        if (r->n_gone == r->cap_gone) {
            size_t cap = r->cap_gone ? r->cap_gone * 2 : 8;
            crep_gone *g = realloc(r->gone, cap * sizeof *g);
            if (!g) return; /* out of memory: the next table lists the rest */
            r->gone = g;
            r->cap_gone = cap;
        }
        crep_gone *g = &r->gone[r->n_gone++];
        snprintf(g->space, sizeof g->space, "%s", e->name);
        g->epoch = e->epoch;
        g->version = e->rec_version;
    }
}

/* Forgets what the thread kept of sp, closed in the core already. */
static void thread_forget(cl_repl *r, crep_space *sp)
{
    mn__crep_snap_cancel(r, sp->name);
    mn__crep_pub_forget(r, sp->name);
    size_t at = 0;
    while (at < r->n_spaces && r->spaces[at] != sp)
        at++;
    mn_assert(at < r->n_spaces);
    memmove(r->spaces + at, r->spaces + at + 1, (r->n_spaces - at - 1) * sizeof *r->spaces);
    r->n_spaces--;
    mn__crep_space_free(sp);
}

/* A copy the core does not have open (a restart found its record no longer listing this
 * node): if its state says it led an epoch and never reconciled with a later primary, the
 * entries of that epoch no majority may have are handed back first (re-applied through the
 * table's primary, kept on disk until then), as a close does (mn_spaces_repl_close). */
static void hand_back_closed(cl_repl *r, const char *space)
{
    mn_spaces_repl_durable_t d;
    bool found = false;
    if (mn__crep_load(r, space, &d, &found) != MN_OK || !found || !d.led_epoch) return;
    uint64_t last = 0, epoch = 0;
    if (mn_engine_space_position(r->engine, space, &last, &epoch, NULL) != MN_OK) return;
    size_t n = mn_spaces_repl_hand_back(r->core, space, &d, last);
    mn_log_info("repl: %s: this node led an epoch and never reconciled since: %zu entries "
                "handed back to the primary before its copy is dropped (epoch %llu, after lsn "
                "%llu)",
                space, n, (unsigned long long)d.led_epoch, (unsigned long long)d.led_acked);
}

/* Closes g's space in the core and forgets what the thread kept of it. false: not now. */
static bool close_core(cl_repl *r, const crep_gone *g)
{
    crep_space *sp = mn__crep_space(r, g->space);
    if (!sp) {
        hand_back_closed(r, g->space);
        return true;
    }
    mn_error err = {0};
    mn_spaces_repl_stats_t before, after;
    mn_spaces_repl_stats(r->core, &before);
    mn_err rc = mn_spaces_repl_close(r->core, g->space, &err);
    if (rc == MN_ERR_BUSY) return false; /* it leads: a handover or a fence comes first */
    mn_assert(rc == MN_OK || rc == MN_ERR_NOT_FOUND);
    mn_spaces_repl_stats(r->core, &after);
    if (after.reapplied > before.reapplied)
        mn_log_info("repl: %s: this node led an epoch and never reconciled since: %llu entries "
                    "handed back to the primary before its copy is dropped",
                    g->space, (unsigned long long)(after.reapplied - before.reapplied));
    thread_forget(r, sp);
    return true;
}

void mn__crep_forget(cl_repl *r, crep_space *sp, const char *why)
{
    mn__crep_flush(r); /* no batch may point at a space about to go */
    mn_error err = {0};
    mn_err rc = mn_spaces_repl_forget(r->core, sp->name, &err);
    mn_assert(rc == MN_OK || rc == MN_ERR_NOT_FOUND);
    mn_log_info("repl: %s: forgotten (%s)", sp->name, why);
    thread_forget(r, sp);
}

void mn__crep_forget_dropped(cl_repl *r, const mn_spaces_table_t *t)
{
    for (size_t i = r->n_spaces; i-- > 0;) /* backwards: forgetting removes spaces[i] */
        if (!mn_spaces_table_find(t, r->spaces[i]->name))
            mn__crep_forget(r, r->spaces[i], "the space was dropped");
}

void mn__crep_drop_gone(cl_repl *r)
{
    if (!r->n_gone) return;
    mn__crep_flush(r); /* no batch may point at a space about to go */
    size_t k = 0;
    for (size_t i = 0; i < r->n_gone; i++) {
        crep_gone *g = &r->gone[i];
        bool done = close_core(r, g);
        mn_error err = {0};
        mn_err rc = done ? mn_engine_space_discard(r->engine, g->space, &err) : MN_OK;
        if (done && rc == MN_OK) {
            r->counts.copies_dropped++;
            mn_log_info("repl: %s: this node's copy dropped (its record of epoch %llu, version "
                        "%llu, no longer lists this node)",
                        g->space, (unsigned long long)g->epoch, (unsigned long long)g->version);
        } else if (done && rc != MN_ERR_NOT_FOUND) {
            mn_log_warn("repl: %s: cannot drop this node's copy: %s (tried again)", g->space,
                        err.message);
            done = false;
        }
        if (!done) r->gone[k++] = *g;
    }
    r->n_gone = k;
}
