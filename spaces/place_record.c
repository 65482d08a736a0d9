/* Holder records: the primary of a space is the authority for its holder set.
 *
 * Every node steps its own placement table from its own view, so tables may
 * differ; the holders of a space, and above all its voters, must not: the
 * replication core's majorities are counted over them. So the node that leads
 * a space at an epoch publishes the space's holders as a record (epoch,
 * version, holders with roles), every node adopts the highest (epoch, version)
 * it has seen (mn_spaces_adopt), and only that primary makes the next record,
 * from the last one, with at most one voter change (mn_spaces_record_next):
 * two consecutive voter sets differ by one node, so any majority of one meets
 * any majority of the other (Raft's single-server membership changes, Ongaro's
 * thesis §4.1). The server waits until a majority of the new voters has the
 * record before it makes the next voter change (api/cluster_spaces_auth.c).
 *
 * Invariants (checked): a record's primary is its first holder and never
 * changes within an epoch; next differs from cur in at most one voter. */
#include <string.h>

#include "mnemo/assert.h"
#include "placement.h"

static bool id_ok(const char *s)
{
    size_t n = strnlen(s, MN_SPACES_NODE_MAX + 1);
    return n > 0 && n <= MN_SPACES_NODE_MAX && mn_utf8_valid(s, n);
}

mn_err mn_spaces_record_check(const mn_spaces_record_t *r, mn_error *err)
{
    if (!r || r->epoch == 0 || r->version == 0)
        return mn_error_set(err, MN_ERR_INVALID, "record: epoch and version must be >= 1");
    if (r->n_holders == 0 || r->n_holders > MN_SPACES_HOLDERS_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "record: 1..%d holders", MN_SPACES_HOLDERS_MAX);
    for (int i = 0; i < r->n_holders; i++) {
        const mn_spaces_holder_t *h = &r->holders[i];
        if (!id_ok(h->node))
            return mn_error_set(err, MN_ERR_INVALID, "record: holder %d: bad node id", i);
        if ((h->role == MN_SPACES_PRIMARY) != (i == 0) || h->role > MN_SPACES_CATCHING_UP)
            return mn_error_set(err, MN_ERR_INVALID,
                                "record: holder %d: the first holder, and only it, is the primary",
                                i);
        for (int j = 0; j < i; j++)
            if (strcmp(r->holders[j].node, h->node) == 0)
                return mn_error_set(err, MN_ERR_INVALID, "record: holder %d: listed twice", i);
    }
    return MN_OK;
}

static int cmp_u64(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b;
}

int mn_spaces_record_cmp(const mn_spaces_record_t *a, const mn_spaces_record_t *b)
{
    int c = cmp_u64(a->epoch, b->epoch);
    if (!c) c = cmp_u64(a->version, b->version);
    if (!c) c = cmp_u64(a->n_holders, b->n_holders);
    for (int i = 0; !c && i < a->n_holders; i++) {
        c = strcmp(a->holders[i].node, b->holders[i].node);
        if (!c) c = cmp_u64(a->holders[i].role, b->holders[i].role);
    }
    return c;
}

int mn_spaces_record_voters(const mn_spaces_record_t *r)
{
    int n = 0;
    for (int i = 0; i < r->n_holders; i++)
        n += r->holders[i].role != MN_SPACES_CATCHING_UP;
    return n;
}

/* ---- the next record ---- */

static int rec_at(const mn_spaces_record_t *r, const char *node)
{
    for (int i = 0; i < r->n_holders; i++)
        if (strcmp(r->holders[i].node, node) == 0) return i;
    return -1;
}

static int entry_at(const mn_spaces_entry_t *e, const char *node)
{
    for (int i = 0; i < e->n_holders; i++)
        if (strcmp(e->holders[i].node, node) == 0) return i;
    return -1;
}

static void rec_remove(mn_spaces_record_t *r, int i)
{
    mn_assert(i > 0 && i < r->n_holders); /* never the primary */
    memmove(&r->holders[i], &r->holders[i + 1],
            (size_t)(r->n_holders - i - 1) * sizeof *r->holders);
    r->n_holders--;
    memset(&r->holders[r->n_holders], 0, sizeof *r->holders);
}

/* The one voter change of a step, if any: a caught-up copy becomes a replica, else a voter
 * want does not list goes. */
static bool one_voter_change(mn_spaces_record_t *r, const mn_spaces_entry_t *want)
{
    for (int i = 1; i < r->n_holders; i++) {
        int w = entry_at(want, r->holders[i].node);
        if (r->holders[i].role == MN_SPACES_CATCHING_UP && w > 0 &&
            want->holders[w].role == MN_SPACES_REPLICA) {
            r->holders[i].role = MN_SPACES_REPLICA;
            return true;
        }
    }
    for (int i = r->n_holders - 1; i > 0; i--)
        if (r->holders[i].role == MN_SPACES_REPLICA && entry_at(want, r->holders[i].node) < 0) {
            rec_remove(r, i);
            return true;
        }
    return false;
}

#ifndef NDEBUG
/* Voters of a missing from b, plus those of b missing from a. */
static int voter_distance(const mn_spaces_record_t *a, const mn_spaces_record_t *b)
{
    int d = 0;
    for (int i = 0; i < a->n_holders; i++) {
        int j = rec_at(b, a->holders[i].node);
        d += a->holders[i].role != MN_SPACES_CATCHING_UP &&
             (j < 0 || b->holders[j].role == MN_SPACES_CATCHING_UP);
    }
    for (int i = 0; i < b->n_holders; i++) {
        int j = rec_at(a, b->holders[i].node);
        d += b->holders[i].role != MN_SPACES_CATCHING_UP &&
             (j < 0 || a->holders[j].role == MN_SPACES_CATCHING_UP);
    }
    return d;
}
#endif

bool mn_spaces_record_next(const mn_spaces_record_t *cur, const mn_spaces_entry_t *want,
                           mn_spaces_record_t *next, bool *voter_change)
{
    *next = *cur;
    *voter_change = false;
    mn_assert(cur->n_holders > 0 && want->n_holders > 0 &&
              strcmp(cur->holders[0].node, want->holders[0].node) == 0);
    for (int i = next->n_holders - 1; i > 0; i--)
        if (next->holders[i].role == MN_SPACES_CATCHING_UP &&
            entry_at(want, next->holders[i].node) < 0)
            rec_remove(next, i);
    for (int i = 1; i < want->n_holders && next->n_holders < MN_SPACES_HOLDERS_MAX; i++)
        if (want->holders[i].role == MN_SPACES_CATCHING_UP &&
            rec_at(next, want->holders[i].node) < 0) {
            mn_spaces_holder_t *h = &next->holders[next->n_holders++];
            memset(h, 0, sizeof *h);
            memcpy(h->node, want->holders[i].node, sizeof h->node);
            h->role = MN_SPACES_CATCHING_UP;
        }
    *voter_change = one_voter_change(next, want);
    mn_assert_debug(voter_distance(cur, next) <= 1);
    next->version = cur->version;
    bool changed = mn_spaces_record_cmp(cur, next) != 0;
    if (changed) next->version = cur->version + 1;
    return changed;
}
