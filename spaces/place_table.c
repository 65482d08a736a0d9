/* The placement table and its step: how a space's holders change.
 *
 * The table is a pure function of its history: the previous table, the
 * membership view given to each step, and the events recorded between steps
 * (a catching-up copy caught up; an election or handover promoted a holder).
 * Nodes that apply the same history hold the same table, byte for byte.
 *
 * A space's holders change only by these transitions:
 *  - a new space takes its desired holders at once (it is empty);
 *  - a holder outside the view is marked down; a down primary flags a
 *    failover, which the replication core resolves by an election among the
 *    holders (mn_spaces_promoted records the result); while it is pending the
 *    down full replicas stay listed, because they are voters;
 *  - otherwise down holders are removed, and copies are added as catching up
 *    until the live copies reach min(factor, members) (repairs: unbounded);
 *  - balance: a space whose full copies meet the factor but differ from the
 *    desired ones gains a catching-up copy of a desired node, at most
 *    rebalance_concurrency spaces at a time; once it caught up, the surplus
 *    copy outside the desired set is removed; a primary that is not the
 *    desired one, when the desired one is a full live replica, is flagged for
 *    a handover (the replication core moves the role; it is never removed
 *    while it is the primary).
 * A draining member (mnemo admin drain) stays in the view but is given no
 * desired copy (placement.c): repairs never add a copy on it, and its copies
 * go by the balance rule above, which removes a copy only while the live full
 * copies exceed min(factor, members) counting the draining ones: so a drain
 * never takes a space below its factor, and a drain that would (fewer other
 * members than the factor) keeps the copies it cannot move.
 * A space with a holder record (MN_SPACES_RECORDED, mn_spaces_adopt) takes its
 * primary's holders: the step only marks them down and flags the space; its
 * primary moves them by publishing the next record (place_record.c). A new
 * space whose creator is known is led by it at epoch 1, and waits while the
 * creator is out of the view.
 * Invariant (checked): a copy is removed by the balance rule only while live
 * full copies exceed the target, so a move never takes a space below its
 * factor. */
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "placement.h"

void mn_spaces_opts_default(mn_spaces_opts_t *o)
{
    o->replication_factor = 3;
    o->rebalance_concurrency = 4;
    o->balance_slack = 0.05;
}

mn_err mn_spaces_opts_check(const mn_spaces_opts_t *o, mn_error *err)
{
    if (o->replication_factor < 1 || o->replication_factor > MN_SPACES_RF_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "replication_factor must be 1..%d",
                            MN_SPACES_RF_MAX);
    if (o->rebalance_concurrency < 1)
        return mn_error_set(err, MN_ERR_INVALID, "rebalance_concurrency must be >= 1");
    if (!(o->balance_slack >= 0.01 && o->balance_slack <= 1.0))
        return mn_error_set(err, MN_ERR_INVALID, "balance_slack must be 0.01..1");
    return MN_OK;
}

const char *mn_spaces_role_name(mn_spaces_role_t r)
{
    switch (r) {
    case MN_SPACES_PRIMARY:
        return "primary";
    case MN_SPACES_REPLICA:
        return "replica";
    case MN_SPACES_CATCHING_UP:
        return "catching_up";
    }
    return "unknown";
}

/* ---- the table ---- */

void mn_spaces_table_init(mn_spaces_table_t *t)
{
    memset(t, 0, sizeof *t);
}

void mn_spaces_table_free(mn_spaces_table_t *t)
{
    free(t->entries);
    memset(t, 0, sizeof *t);
}

static mn_err reserve(mn_spaces_table_t *t, size_t n)
{
    if (n <= t->cap) return MN_OK;
    size_t cap = t->cap ? t->cap : 16;
    while (cap < n)
        cap *= 2;
    mn_spaces_entry_t *ne = realloc(t->entries, cap * sizeof *ne);
    if (!ne) return MN_ERR_NOMEM;
    t->entries = ne;
    t->cap = cap;
    return MN_OK;
}

mn_err mn_spaces_table_copy(mn_spaces_table_t *dst, const mn_spaces_table_t *src)
{
    if (reserve(dst, src->n) != MN_OK) return MN_ERR_NOMEM;
    if (src->n) memcpy(dst->entries, src->entries, src->n * sizeof *src->entries);
    dst->n = src->n;
    dst->version = src->version;
    return MN_OK;
}

/* Index of the first entry whose name is >= space. */
static size_t lower_bound(const mn_spaces_table_t *t, const char *space)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(t->entries[mid].name, space) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static mn_spaces_entry_t *find_entry(const mn_spaces_table_t *t, const char *space)
{
    if (!space) return NULL;
    size_t i = lower_bound(t, space);
    return i < t->n && strcmp(t->entries[i].name, space) == 0 ? &t->entries[i] : NULL;
}

const mn_spaces_entry_t *mn_spaces_table_find(const mn_spaces_table_t *t, const char *space)
{
    return find_entry(t, space);
}

mn_err mn_spaces_table_add(mn_spaces_table_t *t, const char *space, mn_error *err)
{
    size_t len = space ? strnlen(space, MN_SPACE_NAME_MAX + 1) : 0;
    if (len == 0 || len > MN_SPACE_NAME_MAX || !mn_utf8_valid(space, len))
        return mn_error_set(err, MN_ERR_INVALID, "space: name must be 1..%d bytes of UTF-8",
                            MN_SPACE_NAME_MAX);
    size_t i = lower_bound(t, space);
    if (i < t->n && strcmp(t->entries[i].name, space) == 0)
        return mn_error_set(err, MN_ERR_EXISTS, "space '%s' is already placed", space);
    if (reserve(t, t->n + 1) != MN_OK) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    memmove(&t->entries[i + 1], &t->entries[i], (t->n - i) * sizeof *t->entries);
    mn_spaces_entry_t *e = &t->entries[i];
    memset(e, 0, sizeof *e);
    memcpy(e->name, space, len);
    t->n++;
    t->version++;
    e->changed = t->version;
    return MN_OK;
}

mn_err mn_spaces_table_set_creator(mn_spaces_table_t *t, const char *space, const char *creator,
                                   mn_error *err)
{
    mn_spaces_entry_t *e = space ? find_entry(t, space) : NULL;
    if (!e)
        return mn_error_set(err, MN_ERR_NOT_FOUND, "space '%s' is not placed", space ? space : "");
    const char *c = creator ? creator : "";
    size_t len = strnlen(c, MN_SPACES_NODE_MAX + 1);
    if (len > MN_SPACES_NODE_MAX || !mn_utf8_valid(c, len))
        return mn_error_set(err, MN_ERR_INVALID, "creator: bad node id");
    if (e->n_holders || strcmp(e->creator, c) == 0) return MN_OK;
    memcpy(e->creator, c, len + 1);
    t->version++;
    e->changed = t->version;
    return MN_OK;
}

mn_err mn_spaces_table_set_incarnation(mn_spaces_table_t *t, const char *space, uint64_t inc,
                                       mn_error *err)
{
    mn_spaces_entry_t *e = space ? find_entry(t, space) : NULL;
    if (!e)
        return mn_error_set(err, MN_ERR_NOT_FOUND, "space '%s' is not placed", space ? space : "");
    if (e->incarnation == inc) return MN_OK;
    e->incarnation = inc;
    t->version++;
    e->changed = t->version;
    return MN_OK;
}

mn_err mn_spaces_table_remove(mn_spaces_table_t *t, const char *space, mn_error *err)
{
    mn_spaces_entry_t *e = space ? find_entry(t, space) : NULL;
    if (!e)
        return mn_error_set(err, MN_ERR_NOT_FOUND, "space '%s' is not placed", space ? space : "");
    size_t i = (size_t)(e - t->entries);
    memmove(&t->entries[i], &t->entries[i + 1], (t->n - i - 1) * sizeof *t->entries);
    t->n--;
    t->version++;
    return MN_OK;
}

/* ---- holders ---- */

static int holder_at(const mn_spaces_entry_t *e, const char *node)
{
    for (int i = 0; i < e->n_holders; i++)
        if (strcmp(e->holders[i].node, node) == 0) return i;
    return -1;
}

static void holder_remove(mn_spaces_entry_t *e, int i)
{
    mn_assert(i > 0 && i < e->n_holders); /* never the primary's slot */
    memmove(&e->holders[i], &e->holders[i + 1],
            (size_t)(e->n_holders - i - 1) * sizeof *e->holders);
    e->n_holders--;
    memset(&e->holders[e->n_holders], 0, sizeof *e->holders);
}

static void holder_add(mn_spaces_entry_t *e, const char *node, mn_spaces_role_t role)
{
    mn_assert(e->n_holders < MN_SPACES_HOLDERS_MAX && holder_at(e, node) < 0);
    mn_spaces_holder_t *h = &e->holders[e->n_holders++];
    memset(h, 0, sizeof *h);
    strcpy(h->node, node); /* checked <= MN_SPACES_NODE_MAX by the view */
    h->role = (uint8_t)role;
}

static int count_live(const mn_spaces_entry_t *e, bool full_only)
{
    int c = 0;
    for (int i = 0; i < e->n_holders; i++)
        if (!e->holders[i].down && (!full_only || e->holders[i].role != MN_SPACES_CATCHING_UP)) c++;
    return c;
}

static bool has_catching_up(const mn_spaces_entry_t *e)
{
    for (int i = 0; i < e->n_holders; i++)
        if (e->holders[i].role == MN_SPACES_CATCHING_UP) return true;
    return false;
}

/* ---- the step ---- */

/* What the step knows about one space: its desired holders as node ids. */
typedef struct want {
    const char *node[MN_SPACES_RF_MAX];
    size_t n;
} want;

static bool wanted(const want *w, const char *node)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->node[i], node) == 0) return true;
    return false;
}

/* A new space: its creator (it alone has lsn 1) leads epoch 1, the desired nodes fill the
 * rest; without a known creator, the desired primary leads. */
static void place_new(mn_spaces_entry_t *e, const want *w)
{
    if (e->creator[0]) holder_add(e, e->creator, MN_SPACES_PRIMARY);
    for (size_t i = 0; i < w->n && e->n_holders < w->n; i++)
        if (holder_at(e, w->node[i]) < 0)
            holder_add(e, w->node[i], e->n_holders ? MN_SPACES_REPLICA : MN_SPACES_PRIMARY);
    if (e->epoch == 0) e->epoch = 1;
}

/* Down holders go, but not the primary (its slot waits for an election) and,
 * during a failover, not the full replicas (they vote). */
static void drop_down(mn_spaces_entry_t *e)
{
    bool failover = e->flags & MN_SPACES_FAILOVER;
    for (int i = e->n_holders - 1; i > 0; i--) {
        const mn_spaces_holder_t *h = &e->holders[i];
        if (h->down && (!failover || h->role == MN_SPACES_CATCHING_UP)) holder_remove(e, i);
    }
}

static void repair(mn_spaces_entry_t *e, const want *w, const mn__place_view *v, int target)
{
    int live = count_live(e, false);
    for (size_t i = 0; i < w->n && live < target && e->n_holders < MN_SPACES_HOLDERS_MAX; i++)
        if (holder_at(e, w->node[i]) < 0) {
            holder_add(e, w->node[i], MN_SPACES_CATCHING_UP);
            live++;
        }
    for (size_t i = 0; i < v->n && live < target && e->n_holders < MN_SPACES_HOLDERS_MAX; i++)
        if (mn__place_view_takes(v, i) && holder_at(e, v->m[i].id) < 0) {
            holder_add(e, v->m[i].id, MN_SPACES_CATCHING_UP);
            live++;
        }
}

/* A surplus full copy outside the desired set goes (the last one listed);
 * the primary never goes here: it is handed over first. */
static void trim_surplus(mn_spaces_entry_t *e, const want *w, int target)
{
    if (count_live(e, true) <= target) return;
    for (int i = e->n_holders - 1; i > 0; i--) {
        const mn_spaces_holder_t *h = &e->holders[i];
        if (h->role == MN_SPACES_REPLICA && !h->down && !wanted(w, h->node)) {
            holder_remove(e, i);
            mn_assert(count_live(e, true) >= target);
            return;
        }
    }
}

static void set_flags(mn_spaces_entry_t *e, const want *w, int factor)
{
    e->flags &= (uint8_t) ~(MN_SPACES_UNDER_REPLICATED | MN_SPACES_HANDOVER);
    if (count_live(e, true) < factor) e->flags |= MN_SPACES_UNDER_REPLICATED;
    if (e->flags & MN_SPACES_FAILOVER || w->n == 0) return;
    int d = holder_at(e, w->node[0]);
    if (d > 0 && !e->holders[d].down && e->holders[d].role == MN_SPACES_REPLICA)
        e->flags |= MN_SPACES_HANDOVER;
}

static void settle_entry(mn_spaces_entry_t *e, const want *w, const mn__place_view *v, int factor)
{
    int target = (int)w->n;
    /* the copies kept: draining members count (their copies go only once others have them) */
    int keep = factor < (int)v->n ? factor : (int)v->n;
    if (e->n_holders == 0) {
        /* a creator outside the view: nobody else has lsn 1, so the space waits for it */
        bool can = v->n && (!e->creator[0] || mn__place_view_find(v, e->creator) >= 0);
        e->flags = can ? 0 : MN_SPACES_UNAVAILABLE;
        if (can) place_new(e, w);
        set_flags(e, w, factor);
        return;
    }
    for (int i = 0; i < e->n_holders; i++)
        e->holders[i].down = mn__place_view_find(v, e->holders[i].node) < 0;
    if (count_live(e, false) == 0) {
        e->flags |= MN_SPACES_UNAVAILABLE;
        return;
    }
    e->flags &= (uint8_t)~MN_SPACES_UNAVAILABLE;
    if (e->holders[0].down)
        e->flags |= MN_SPACES_FAILOVER;
    else
        e->flags &= (uint8_t)~MN_SPACES_FAILOVER;
    if (e->flags & MN_SPACES_RECORDED) { /* the primary's record decides the holders */
        set_flags(e, w, factor);
        return;
    }
    drop_down(e);
    repair(e, w, v, target);
    if (!(e->flags & MN_SPACES_FAILOVER)) trim_surplus(e, w, keep > target ? keep : target);
    set_flags(e, w, factor);
}

/* A space ready for a balance move: settled, factor met, not desired as is. */
static bool wants_move(const mn_spaces_entry_t *e, const want *w)
{
    if (e->flags & (MN_SPACES_FAILOVER | MN_SPACES_UNAVAILABLE | MN_SPACES_RECORDED) ||
        has_catching_up(e))
        return false;
    if (count_live(e, true) != (int)w->n || e->n_holders >= MN_SPACES_HOLDERS_MAX) return false;
    for (size_t i = 0; i < w->n; i++)
        if (holder_at(e, w->node[i]) < 0) return true;
    return false;
}

static bool in_move(const mn_spaces_entry_t *e, const want *w)
{
    return has_catching_up(e) && count_live(e, true) >= (int)w->n;
}

static void want_of(const mn__place_plan *p, const mn__place_view *v, size_t i, want *w)
{
    w->n = p->count[i];
    for (size_t j = 0; j < w->n; j++)
        w->node[j] = v->m[p->nodes[i * MN_SPACES_RF_MAX + j]].id;
}

/* Starts balance moves, in hash order, while fewer than the concurrency run. */
static mn_err start_moves(mn_spaces_table_t *t, const mn__place_plan *p, const mn__place_view *v,
                          int concurrency)
{
    int running = 0;
    want w;
    for (size_t i = 0; i < t->n; i++) {
        want_of(p, v, i, &w);
        running += in_move(&t->entries[i], &w);
    }
    if (running >= concurrency) return MN_OK;
    size_t *order = mn__place_order(t);
    if (!order) return MN_ERR_NOMEM;
    for (size_t k = 0; k < t->n && running < concurrency; k++) {
        mn_spaces_entry_t *e = &t->entries[order[k]];
        want_of(p, v, order[k], &w);
        if (!wants_move(e, &w)) continue;
        for (size_t j = 0; j < w.n; j++)
            if (holder_at(e, w.node[j]) < 0) {
                holder_add(e, w.node[j], MN_SPACES_CATCHING_UP);
                break;
            }
        running++;
    }
    free(order);
    return MN_OK;
}

/* Stamps the entries that differ from prev and bumps the version if any. */
static void stamp(const mn_spaces_table_t *prev, mn_spaces_table_t *next)
{
    bool any = false;
    for (size_t i = 0; i < next->n; i++) {
        mn_spaces_entry_t *e = &next->entries[i];
        if (memcmp(e, &prev->entries[i], sizeof *e) == 0) continue;
        e->changed = prev->version + 1;
        any = true;
    }
    next->version = prev->version + (any ? 1 : 0);
}

mn_err mn_spaces_step(const mn_spaces_table_t *prev, const mn_spaces_member_t *view, size_t n_view,
                      const mn_spaces_opts_t *o, mn_spaces_table_t *next, mn_error *err)
{
    if (prev == next) return mn_error_set(err, MN_ERR_INVALID, "placement: next is prev");
    mn__place_view v;
    mn__place_plan p;
    mn_err rc = mn__place_prepare(prev, view, n_view, o, &v, &p, err);
    if (rc != MN_OK) return rc;
    if (mn_spaces_table_copy(next, prev) != MN_OK) {
        rc = mn_error_set(err, MN_ERR_NOMEM, "placement: out of memory");
        goto out;
    }
    want w;
    for (size_t i = 0; i < next->n; i++) {
        want_of(&p, &v, i, &w);
        settle_entry(&next->entries[i], &w, &v, o->replication_factor);
    }
    if (start_moves(next, &p, &v, o->rebalance_concurrency) != MN_OK) {
        rc = mn_error_set(err, MN_ERR_NOMEM, "placement: out of memory");
        goto out;
    }
    stamp(prev, next);
out:
    mn__place_plan_free(&p);
    mn__place_view_free(&v);
    return rc;
}

/* ---- events ---- */

static mn_spaces_entry_t *event_entry(mn_spaces_table_t *t, const char *space, const char *node,
                                      int *h, mn_error *err)
{
    mn_spaces_entry_t *e = find_entry(t, space);
    if (!e) {
        mn_error_set(err, MN_ERR_NOT_FOUND, "space '%s' is not placed", space ? space : "");
        return NULL;
    }
    *h = node ? holder_at(e, node) : -1;
    if (*h < 0 || e->holders[*h].down) {
        mn_error_set(err, MN_ERR_INVALID, "node '%s' is not a live holder of '%s'",
                     node ? node : "", space);
        return NULL;
    }
    return e;
}

static void changed(mn_spaces_table_t *t, mn_spaces_entry_t *e)
{
    t->version++;
    e->changed = t->version;
}

mn_err mn_spaces_caught_up(mn_spaces_table_t *t, const char *space, const char *node, mn_error *err)
{
    int h;
    mn_spaces_entry_t *e = event_entry(t, space, node, &h, err);
    if (!e) return err ? err->code : MN_ERR_INVALID;
    if (e->holders[h].role != MN_SPACES_CATCHING_UP)
        return mn_error_set(err, MN_ERR_INVALID, "node '%s' is not catching up on '%s'", node,
                            space);
    e->holders[h].role = MN_SPACES_REPLICA;
    changed(t, e);
    return MN_OK;
}

mn_err mn_spaces_promoted(mn_spaces_table_t *t, const char *space, const char *node, uint64_t epoch,
                          mn_error *err)
{
    int h;
    mn_spaces_entry_t *e = event_entry(t, space, node, &h, err);
    if (!e) return err ? err->code : MN_ERR_INVALID;
    if (e->holders[h].role == MN_SPACES_CATCHING_UP)
        return mn_error_set(err, MN_ERR_INVALID, "node '%s' has not caught up on '%s'", node,
                            space);
    if (epoch <= e->epoch)
        return mn_error_set(err, MN_ERR_INVALID, "epoch %llu is not above %llu",
                            (unsigned long long)epoch, (unsigned long long)e->epoch);
    mn_spaces_holder_t old = e->holders[0];
    e->holders[0] = e->holders[h];
    e->holders[h] = old;
    e->holders[0].role = MN_SPACES_PRIMARY;
    if (h > 0) e->holders[h].role = MN_SPACES_REPLICA;
    e->epoch = epoch;
    e->rec_version = 0; /* a record of the new epoch is newer than anything adopted */
    e->flags &= (uint8_t) ~(MN_SPACES_FAILOVER | MN_SPACES_HANDOVER);
    changed(t, e);
    return MN_OK;
}

mn_err mn_spaces_adopt(mn_spaces_table_t *t, const char *space, const mn_spaces_record_t *rec,
                       mn_error *err)
{
    mn_spaces_entry_t *e = find_entry(t, space);
    if (!e)
        return mn_error_set(err, MN_ERR_NOT_FOUND, "space '%s' is not placed", space ? space : "");
    mn_err rc = mn_spaces_record_check(rec, err);
    if (rc != MN_OK) return rc;
    if (e->flags & MN_SPACES_RECORDED) {
        if (rec->epoch < e->epoch) return MN_OK; /* this node's core is past it */
        if (rec->epoch == e->epoch && rec->version <= e->rec_version) return MN_OK;
    }
    for (int i = 0; i < rec->n_holders; i++) {
        e->holders[i] = rec->holders[i];
        e->holders[i].down = false; /* the next step marks them */
    }
    memset(&e->holders[rec->n_holders], 0,
           (size_t)(MN_SPACES_HOLDERS_MAX - rec->n_holders) * sizeof *e->holders);
    e->n_holders = rec->n_holders;
    e->epoch = rec->epoch;
    e->rec_version = rec->version;
    e->flags =
        (uint8_t)((e->flags & ~(MN_SPACES_FAILOVER | MN_SPACES_HANDOVER | MN_SPACES_UNAVAILABLE)) |
                  MN_SPACES_RECORDED);
    changed(t, e);
    return MN_OK;
}

/* ---- the desired holders of one space ---- */

mn_err mn_spaces_desired(const mn_spaces_table_t *t, const mn_spaces_member_t *view, size_t n_view,
                         const mn_spaces_opts_t *o, const char *space, size_t *out, size_t *n_out,
                         mn_error *err)
{
    const mn_spaces_entry_t *e = find_entry(t, space);
    if (!e) return mn_error_set(err, MN_ERR_NOT_FOUND, "space is not placed");
    mn__place_view v;
    mn__place_plan p;
    mn_err rc = mn__place_prepare(t, view, n_view, o, &v, &p, err);
    if (rc != MN_OK) return rc;
    size_t i = (size_t)(e - t->entries);
    *n_out = p.count[i];
    for (size_t j = 0; j < p.count[i]; j++) {
        /* view indexes of the caller's order */
        const char *id = v.m[p.nodes[i * MN_SPACES_RF_MAX + j]].id;
        for (size_t k = 0; k < n_view; k++)
            if (strcmp(view[k].id, id) == 0) out[j] = k;
    }
    mn__place_plan_free(&p);
    mn__place_view_free(&v);
    return MN_OK;
}
