/* The placement driver: one node's placement table, moved on by updates of
 * its inputs (the view and the space names), with failovers and handovers
 * settled the way every node settles them alike (include/mnemo/spaces.h).
 *
 * Until the server runs the replication core, the driver stands in for its
 * elections: it promotes the node the core would be expected to, at the next
 * epoch, but only when the core could (a majority of the space's voters is
 * live). When the core runs (mn_spaces_driver_external), its promotions
 * replace this settling for the spaces the node holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "placement.h"

#define DRIVER_ROUNDS 8

/* A space's record as the last update gave it. */
typedef struct drv_record {
    char name[MN_SPACE_NAME_MAX + 1];
    mn_spaces_record_t rec;
} drv_record;

/* A copy the primary's core reported caught up, not yet a replica in the space's record. */
typedef struct drv_caught {
    char space[MN_SPACE_NAME_MAX + 1];
    char node[MN_SPACES_NODE_MAX + 1];
    uint64_t epoch;
} drv_caught;

struct mn_spaces_driver {
    mn_spaces_opts_t opts;
    mn_spaces_table_t cur, next;
    uint64_t promotions;
    uint64_t settled_view;    /* the view hash of the last update that reached a fixed point */
    uint64_t settled_version; /* ... and the table version it left */
    bool settled;
    bool external;                     /* the core elects for the spaces self holds */
    char self[MN_SPACES_NODE_MAX + 1]; /* ... this node */
    drv_record *recs;                  /* sorted by name */
    size_t n_recs, cap_recs;
    drv_caught *caught;
    size_t n_caught, cap_caught;
};

mn_err mn_spaces_driver_new(const mn_spaces_opts_t *o, mn_spaces_driver_t **out, mn_error *err)
{
    *out = NULL;
    mn_err rc = mn_spaces_opts_check(o, err);
    if (rc != MN_OK) return rc;
    mn_spaces_driver_t *d = calloc(1, sizeof *d);
    if (!d) return mn_error_set(err, MN_ERR_NOMEM, "placement: out of memory");
    d->opts = *o;
    mn_spaces_table_init(&d->cur);
    mn_spaces_table_init(&d->next);
    *out = d;
    return MN_OK;
}

void mn_spaces_driver_free(mn_spaces_driver_t *d)
{
    if (!d) return;
    mn_spaces_table_free(&d->cur);
    mn_spaces_table_free(&d->next);
    free(d->recs);
    free(d->caught);
    free(d);
}

const mn_spaces_table_t *mn_spaces_driver_table(const mn_spaces_driver_t *d)
{
    return &d->cur;
}

uint64_t mn_spaces_driver_promotions(const mn_spaces_driver_t *d)
{
    return d->promotions;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The table's spaces become names: new ones added, missing ones removed. */
static mn_err sync_names(mn_spaces_table_t *t, const char *const *names, size_t n, mn_error *err)
{
    const char **sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted) return mn_error_set(err, MN_ERR_NOMEM, "placement: out of memory");
    if (n) memcpy(sorted, names, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_name);
    mn_err rc = MN_OK;
    for (size_t i = t->n; i-- > 0 && rc == MN_OK;)
        if (!bsearch(&(const char *){t->entries[i].name}, sorted, n, sizeof *sorted, cmp_name))
            rc = mn_spaces_table_remove(t, t->entries[i].name, err);
    for (size_t i = 0; i < n && rc == MN_OK; i++)
        if (!mn_spaces_table_find(t, sorted[i])) rc = mn_spaces_table_add(t, sorted[i], err);
    free(sorted);
    return rc;
}

void mn_spaces_driver_external(mn_spaces_driver_t *d, const char *self)
{
    d->external = self != NULL;
    snprintf(d->self, sizeof d->self, "%s", self ? self : "");
    d->settled = false;
}

mn_err mn_spaces_driver_promoted(mn_spaces_driver_t *d, const char *space, const char *node,
                                 uint64_t epoch, mn_error *err)
{
    /* a node the core elected has the log: a catching-up copy here is one this table added
     * while it did not know better (a restart), so it is caught up */
    const mn_spaces_entry_t *e = mn_spaces_table_find(&d->cur, space);
    for (int i = 0; e && i < e->n_holders; i++)
        if (strcmp(e->holders[i].node, node) == 0 && e->holders[i].role == MN_SPACES_CATCHING_UP &&
            mn_spaces_caught_up(&d->cur, space, node, err) != MN_OK)
            return err ? err->code : MN_ERR_INVALID;
    mn_err rc = mn_spaces_promoted(&d->cur, space, node, epoch, err);
    if (rc == MN_OK) d->settled = false; /* the next update steps from the new table */
    return rc;
}

static bool holds(const mn_spaces_entry_t *e, const char *node)
{
    for (int i = 0; i < e->n_holders; i++)
        if (strcmp(e->holders[i].node, node) == 0) return true;
    return false;
}

static bool live_full(const mn_spaces_holder_t *h)
{
    return !h->down && h->role != MN_SPACES_CATCHING_UP;
}

/* Voters are the primary and the full replicas, down ones included. */
static bool live_majority(const mn_spaces_entry_t *e)
{
    int voters = 0, live = 0;
    for (int i = 0; i < e->n_holders; i++)
        if (e->holders[i].role != MN_SPACES_CATCHING_UP) {
            voters++;
            if (!e->holders[i].down) live++;
        }
    return 2 * live > voters;
}

/* The node to promote: the desired primary if it is a live full replica,
 * else (a failover) the smallest id among them; NULL when there is none. */
static const char *successor(const mn_spaces_entry_t *e, const char *desired)
{
    const char *best = NULL;
    for (int i = 1; i < e->n_holders; i++) {
        const mn_spaces_holder_t *h = &e->holders[i];
        if (!live_full(h)) continue;
        if (desired && strcmp(h->node, desired) == 0) return h->node;
        if (!best || strcmp(h->node, best) < 0) best = h->node;
    }
    return (e->flags & MN_SPACES_FAILOVER) ? best : NULL;
}

/* Settles the flagged failovers and handovers of t; how many it promoted. */
static mn_err settle(mn_spaces_driver_t *d, const mn_spaces_member_t *view, size_t n_view,
                     size_t *promoted, mn_error *err)
{
    mn_spaces_table_t *t = &d->cur;
    *promoted = 0;
    mn__place_view v;
    mn__place_plan p;
    mn_err rc = mn__place_prepare(t, view, n_view, &d->opts, &v, &p, err);
    if (rc != MN_OK) return rc;
    for (size_t i = 0; i < t->n && rc == MN_OK; i++) {
        mn_spaces_entry_t *e = &t->entries[i];
        if (!(e->flags & (MN_SPACES_FAILOVER | MN_SPACES_HANDOVER)) || e->n_holders == 0) continue;
        if (e->flags & MN_SPACES_RECORDED) continue; /* the primary's next record decides */
        /* with the core running, a handover happens only when a core carries it out, and its
         * new primary's record tells every node: never guessed */
        if (d->external && !(e->flags & MN_SPACES_FAILOVER)) continue;
        if ((e->flags & MN_SPACES_FAILOVER) && !live_majority(e)) continue;
        if (d->external && holds(e, d->self)) continue; /* the core's election decides */
        const char *desired = p.count[i] ? v.m[p.nodes[i * MN_SPACES_RF_MAX]].id : NULL;
        const char *to = successor(e, desired);
        if (!to) continue;
        char node[MN_SPACES_NODE_MAX + 1];
        memcpy(node, to, strlen(to) + 1); /* the promotion moves holders around */
        rc = mn_spaces_promoted(t, e->name, node, e->epoch + 1, err);
        if (rc == MN_OK) (*promoted)++;
    }
    mn__place_plan_free(&p);
    mn__place_view_free(&v);
    return rc;
}

/* A hash of the view that does not depend on its order (a sum of per-member hashes); a
 * member's drain flag is part of it. */
static uint64_t view_hash(const mn_spaces_member_t *view, size_t n)
{
    uint64_t h = n;
    for (size_t i = 0; i < n; i++) {
        const char *z = view[i].zone ? view[i].zone : "";
        uint64_t id = mn_spaces_hash(view[i].id, strlen(view[i].id));
        if (view[i].draining) id = ~id;
        h += mn_spaces_score(id, mn_spaces_hash(z, strlen(z)));
    }
    return h;
}

/* Steps the table until nothing changes (at most DRIVER_ROUNDS), settling what the core
 * does not. */
static mn_err step_until_settled(mn_spaces_driver_t *d, const mn_spaces_member_t *view,
                                 size_t n_view, mn_err rc, mn_error *err)
{
    uint64_t vh = view_hash(view, n_view);
    /* the same inputs as an update that settled: stepping again would change nothing */
    if (rc == MN_OK && d->settled && vh == d->settled_view && d->cur.version == d->settled_version)
        return MN_OK;
    d->settled = false;
    for (int round = 0; rc == MN_OK && round < DRIVER_ROUNDS; round++) {
        rc = mn_spaces_step(&d->cur, view, n_view, &d->opts, &d->next, err);
        if (rc != MN_OK) break;
        bool stepped = d->next.version != d->cur.version;
        mn_spaces_table_t tmp = d->cur;
        d->cur = d->next;
        d->next = tmp;
        size_t promoted = 0;
        rc = settle(d, view, n_view, &promoted, err);
        d->promotions += promoted;
        if (!stepped && promoted == 0) {
            d->settled = true;
            d->settled_view = vh;
            d->settled_version = d->cur.version;
            break;
        }
    }
    return rc;
}

mn_err mn_spaces_driver_update(mn_spaces_driver_t *d, const mn_spaces_member_t *view, size_t n_view,
                               const char *const *names, size_t n_names, mn_error *err)
{
    mn_err rc = sync_names(&d->cur, names, n_names, err);
    rc = step_until_settled(d, view, n_view, rc, err);
    mn_assert(d->cur.n == n_names || rc != MN_OK);
    return rc;
}

/* ---- creators, records and caught-up copies ---- */

static int cmp_rec(const void *a, const void *b)
{
    return strcmp(((const drv_record *)a)->name, ((const drv_record *)b)->name);
}

const mn_spaces_record_t *mn_spaces_driver_record(const mn_spaces_driver_t *d, const char *space)
{
    drv_record key;
    snprintf(key.name, sizeof key.name, "%s", space);
    const drv_record *r =
        d->n_recs ? bsearch(&key, d->recs, d->n_recs, sizeof *d->recs, cmp_rec) : NULL;
    return r ? &r->rec : NULL;
}

/* Keeps a copy of the inputs' records, sorted by name. */
static mn_err keep_records(mn_spaces_driver_t *d, const mn_spaces_input_t *in, size_t n,
                           mn_error *err)
{
    d->n_recs = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in[i].record || in[i].record->epoch == 0) continue;
        if (d->n_recs == d->cap_recs) {
            size_t cap = d->cap_recs ? d->cap_recs * 2 : 16;
            drv_record *nr = realloc(d->recs, cap * sizeof *nr);
            if (!nr) return mn_error_set(err, MN_ERR_NOMEM, "placement: out of memory");
            d->recs = nr;
            d->cap_recs = cap;
        }
        drv_record *r = &d->recs[d->n_recs++];
        snprintf(r->name, sizeof r->name, "%s", in[i].name);
        r->rec = *in[i].record;
    }
    if (d->n_recs) qsort(d->recs, d->n_recs, sizeof *d->recs, cmp_rec);
    return MN_OK;
}

/* Forgets the caught-up copies of an older epoch or of gone spaces, and those a record made
 * replicas or no longer lists; a space without a record yet keeps them for its first. One of
 * a newer epoch than the table's is kept for when the table learns it: the core reports a
 * copy caught up once per epoch, and a new primary (a handover) may report it before its
 * promotion reached the table (test_cluster_drain saw such a move stall). */
static void prune_caught(mn_spaces_driver_t *d)
{
    size_t k = 0;
    for (size_t i = 0; i < d->n_caught; i++) {
        const drv_caught *c = &d->caught[i];
        const mn_spaces_entry_t *e = mn_spaces_table_find(&d->cur, c->space);
        bool keep = e && e->epoch <= c->epoch;
        if (keep && e->epoch == c->epoch && (e->flags & MN_SPACES_RECORDED)) {
            keep = false;
            for (int h = 0; h < e->n_holders; h++)
                if (strcmp(e->holders[h].node, c->node) == 0)
                    keep = e->holders[h].role == MN_SPACES_CATCHING_UP;
        }
        if (keep) d->caught[k++] = *c;
    }
    d->n_caught = k;
}

mn_err mn_spaces_driver_update_spaces(mn_spaces_driver_t *d, const mn_spaces_member_t *view,
                                      size_t n_view, const mn_spaces_input_t *in, size_t n,
                                      mn_error *err)
{
    const char **names = calloc(n ? n : 1, sizeof *names);
    if (!names) return mn_error_set(err, MN_ERR_NOMEM, "placement: out of memory");
    for (size_t i = 0; i < n; i++)
        names[i] = in[i].name;
    mn_err rc = sync_names(&d->cur, names, n, err);
    free(names);
    for (size_t i = 0; rc == MN_OK && i < n; i++) {
        /* a record never goes within an incarnation: a space that lost its record was
         * dropped and created again (between two updates), so it is placed anew */
        const mn_spaces_entry_t *e = mn_spaces_table_find(&d->cur, in[i].name);
        /* ... and so was one whose creator changed (one incarnation has one creator: the node
         * that wrote its lsn 1), even before its first record came out */
        bool recreated = e && e->creator[0] && in[i].creator && in[i].creator[0] &&
                         strcmp(e->creator, in[i].creator) != 0;
        /* ... or whose incarnation changed, whoever created it */
        recreated |=
            e && e->incarnation && in[i].incarnation && e->incarnation != in[i].incarnation;
        if (e && (recreated ||
                  ((e->flags & MN_SPACES_RECORDED) && (!in[i].record || !in[i].record->epoch)))) {
            rc = mn_spaces_table_remove(&d->cur, in[i].name, err);
            if (rc == MN_OK) rc = mn_spaces_table_add(&d->cur, in[i].name, err);
        }
        if (rc == MN_OK && in[i].creator && in[i].creator[0])
            rc = mn_spaces_table_set_creator(&d->cur, in[i].name, in[i].creator, err);
        if (rc == MN_OK && in[i].incarnation)
            rc = mn_spaces_table_set_incarnation(&d->cur, in[i].name, in[i].incarnation, err);
    }
    if (rc == MN_OK) rc = keep_records(d, in, n, err);
    for (size_t i = 0; rc == MN_OK && i < d->n_recs; i++) {
        mn_error aerr = {0}; /* a bad record is left out; the catalog checked it already */
        if (mn_spaces_adopt(&d->cur, d->recs[i].name, &d->recs[i].rec, &aerr) == MN_ERR_NOMEM)
            rc = mn_error_set(err, MN_ERR_NOMEM, "placement: out of memory");
    }
    prune_caught(d);
    rc = step_until_settled(d, view, n_view, rc, err);
    mn_assert(d->cur.n == n || rc != MN_OK);
    return rc;
}

mn_err mn_spaces_driver_caught_up(mn_spaces_driver_t *d, const char *space, const char *node,
                                  uint64_t epoch, mn_error *err)
{
    const mn_spaces_entry_t *e = mn_spaces_table_find(&d->cur, space);
    if (!e) return mn_error_set(err, MN_ERR_NOT_FOUND, "space '%s' is not placed", space);
    if (!(e->flags & MN_SPACES_RECORDED)) {
        /* the table's guess learns it now; it is also kept below, for the first record: an
         * event that came before the record must still make the copy a replica there (the
         * core reports a copy caught up once) */
        mn_error ignored = {0};
        if (mn_spaces_caught_up(&d->cur, space, node, &ignored) == MN_OK) d->settled = false;
    }
    for (size_t i = 0; i < d->n_caught; i++)
        if (!strcmp(d->caught[i].space, space) && !strcmp(d->caught[i].node, node)) {
            d->caught[i].epoch = epoch;
            return MN_OK;
        }
    if (d->n_caught == d->cap_caught) {
        size_t cap = d->cap_caught ? d->cap_caught * 2 : 8;
        drv_caught *nc = realloc(d->caught, cap * sizeof *nc);
        if (!nc) return mn_error_set(err, MN_ERR_NOMEM, "placement: out of memory");
        d->caught = nc;
        d->cap_caught = cap;
    }
    drv_caught *c = &d->caught[d->n_caught++];
    snprintf(c->space, sizeof c->space, "%s", space);
    snprintf(c->node, sizeof c->node, "%s", node);
    c->epoch = epoch;
    return MN_OK;
}

/* Does self lead e by its record (the table holds the record as it is)? */
static const mn_spaces_record_t *led_here(const mn_spaces_driver_t *d, const mn_spaces_entry_t *e)
{
    if (!(e->flags & MN_SPACES_RECORDED) || !e->n_holders || e->holders[0].down) return NULL;
    const mn_spaces_record_t *r = mn_spaces_driver_record(d, e->name);
    if (!r || r->epoch != e->epoch || r->version != e->rec_version ||
        strcmp(r->holders[0].node, d->self) != 0)
        return NULL;
    return r;
}

/* The entries self leads, freed to move as the step would move them, with the caught-up
 * copies as replicas; *any says whether there is one. */
static void free_led(mn_spaces_driver_t *d, mn_spaces_table_t *t, bool *any)
{
    *any = false;
    for (size_t i = 0; i < t->n; i++) {
        mn_spaces_entry_t *e = &t->entries[i];
        if (!led_here(d, e)) continue;
        *any = true;
        e->flags &= (uint8_t)~MN_SPACES_RECORDED;
        for (size_t c = 0; c < d->n_caught; c++)
            for (int h = 1; h < e->n_holders; h++)
                if (!strcmp(d->caught[c].space, e->name) && d->caught[c].epoch == e->epoch &&
                    !strcmp(d->caught[c].node, e->holders[h].node) &&
                    e->holders[h].role == MN_SPACES_CATCHING_UP)
                    e->holders[h].role = MN_SPACES_REPLICA;
    }
}

mn_err mn_spaces_driver_proposals(mn_spaces_driver_t *d, const mn_spaces_member_t *view,
                                  size_t n_view, mn_spaces_propose_fn fn, void *arg, mn_error *err)
{
    if (!d->external) return MN_OK;
    mn_spaces_table_t scratch, out;
    mn_spaces_table_init(&scratch);
    mn_spaces_table_init(&out);
    bool any = false;
    mn_err rc = mn_spaces_table_copy(&scratch, &d->cur) == MN_OK
                    ? MN_OK
                    : mn_error_set(err, MN_ERR_NOMEM, "placement: out of memory");
    if (rc == MN_OK) free_led(d, &scratch, &any);
    if (rc == MN_OK && any) rc = mn_spaces_step(&scratch, view, n_view, &d->opts, &out, err);
    for (size_t i = 0; rc == MN_OK && any && i < d->cur.n; i++) {
        const mn_spaces_record_t *r = led_here(d, &d->cur.entries[i]);
        const mn_spaces_entry_t *w = r ? &out.entries[i] : NULL;
        mn_spaces_record_t next;
        bool voter_change = false;
        if (w && w->n_holders && !strcmp(w->holders[0].node, d->self) &&
            mn_spaces_record_next(r, w, &next, &voter_change))
            fn(arg, w->name, &next, voter_change);
    }
    mn_spaces_table_free(&scratch);
    mn_spaces_table_free(&out);
    return rc;
}
