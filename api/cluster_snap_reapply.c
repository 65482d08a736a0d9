/* Re-applying an old primary's forked entries through the new primary (docs/replication.md,
 * "Snapshots in the server", forks).
 *
 * The core hands each entry of this node past a fork to its reapply callback before it asks
 * to cut the log (and then, the cut refused, for a snapshot that replaces the copy). The
 * entries that carry episodes or tombstones — remember and forget — are kept here, in
 * memory (CSNAP_REAPPLY_MAX_BYTES at most), and sent (K_REAPPLY) to the primary the core
 * follows, every CSNAP_RETRY_US until it answers (K_REAPPLIED). The primary stores each with
 * mn_engine_ingest, which keeps the memories' ids, times and links and leaves anything it
 * holds already (the id) as it is: a resend, or an entry that reached it before the fork
 * was seen, changes nothing. Corrections, invalidations, unsuppresses, forgets by filter
 * (their ids were resolved when written), associations and computed vectors are re-applied
 * the same way, each checked against the new primary's state as any write is (a correction
 * of a version no longer the newest there is a conflict: logged, answered, dropped).
 * Consolidations and reinforcements are derived from a state the new history may not
 * share: dropped, counted as not re-applied. Each one held is also kept on disk
 * (cluster_snap_keep.c), durable before the local WAL can lose it, until the primary
 * answered: a node that stops first sends it again after its restart. A node that leads the space again by then (a restart
 * won it back) stores them itself, the same way. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_repl_internal.h"
#include "cluster_snap.h"
#include "cluster_snap_keep.h"
#include "mnemo/wire.h"

typedef struct reap_entry {
    char space[MN_SPACE_NAME_MAX + 1];
    uint32_t key; /* names it in the frames */
    uint8_t *data;
    size_t len;
    int64_t sent_us;
    bool kept; /* a record of it is on disk */
} reap_entry;

struct csnap_reapply {
    reap_entry *items;
    size_t n, cap, bytes;
    uint32_t next_key;
    csnap_keep keep;
    bool keep_open;
};

static reap_entry *hold(struct csnap_reapply *x, const char *space, const uint8_t *data,
                        size_t len);

static void loaded(void *arg, const char *space, const uint8_t *data, size_t len)
{
    reap_entry *it = hold(arg, space, data, len);
    if (it) it->kept = true;
}

struct csnap_reapply *mn__csnap_reapply_new(const char *repl_dir, mn_error *err)
{
    struct csnap_reapply *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    if (mn__csnap_keep_open(&x->keep, repl_dir, loaded, x) != MN_OK) {
        mn_error_set(err, MN_ERR_IO, "cannot open %s: %s", x->keep.dir, strerror(errno));
        mn__csnap_reapply_free(x);
        return NULL;
    }
    x->keep_open = true;
    return x;
}

void mn__csnap_reapply_free(struct csnap_reapply *x)
{
    if (!x) return;
    if (x->keep_open) mn__csnap_keep_close(&x->keep);
    for (size_t i = 0; i < x->n; i++)
        free(x->items[i].data);
    free(x->items);
    free(x);
}

/* Is the entry one to re-apply: a client's write of the space (an episode, a forget, a
 * forget by filter, a correction, an invalidation, an unsuppress, an association) or a
 * vector computed for a memory? Consolidations and reinforcements are derived from the
 * state: the new primary makes its own. */
static bool wanted(const char *space, const uint8_t *data, size_t len)
{
    mn_wal_entry_t en;
    if (mn_wire_wal_decode(data, len, &en, NULL)) return false;
    bool ok = en.type != MN_WAL_OP_CONSOLIDATE && en.type != MN_WAL_OP_REINFORCE &&
              en.type != MN_WAL_OP_SPACE_CREATE && en.type != MN_WAL_OP_SPACE_DROP &&
              en.type != MN_WAL_OP_NONE && strcmp(en.space, space) == 0;
    mn_wal_entry_clear(&en);
    return ok;
}

static reap_entry *hold(struct csnap_reapply *x, const char *space, const uint8_t *data, size_t len)
{
    if (x->bytes + len > CSNAP_REAPPLY_MAX_BYTES) return NULL;
    if (x->n == x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 16;
        reap_entry *ni = realloc(x->items, nc * sizeof *ni);
        if (!ni) return NULL;
        x->items = ni;
        x->cap = nc;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return NULL;
    memcpy(copy, data, len);
    reap_entry *it = &x->items[x->n++];
    memset(it, 0, sizeof *it);
    snprintf(it->space, sizeof it->space, "%s", space);
    it->key = ++x->next_key;
    it->data = copy;
    it->len = len;
    x->bytes += len;
    return it;
}

void mn__crep_snap_reapply(cl_repl *r, const char *space, uint64_t lsn, const uint8_t *data,
                           size_t len)
{
    struct csnap_reapply *x = mn__csnap_reap(r);
    reap_entry *it = x && wanted(space, data, len) ? hold(x, space, data, len) : NULL;
    if (!it) {
        /* a derived entry (a consolidation, a reinforcement) is expected and said at debug
         * level; a client's write over the bound is a loss: a warning */
        bool lost = x && wanted(space, data, len);
        r->counts.reapply_dropped++;
        mn_log(lost ? MN_LOG_WARN : MN_LOG_DEBUG,
               "repl: %s lsn %llu past a fork is not re-applied through the new primary (%s)",
               space, (unsigned long long)lsn,
               lost ? "over the bound" : "derived from the state, not a client's write");
        return;
    }
    it->kept = mn__csnap_keep_add(&x->keep, space, data, len) == MN_OK;
    if (!it->kept)
        mn_log_error("repl: %s lsn %llu past a fork: cannot keep it in %s (%s): held in memory "
                     "only",
                     space, (unsigned long long)lsn, x->keep.dir, strerror(errno));
    mn_log_debug("repl: %s lsn %llu past a fork: to re-apply through the new primary", space,
                 (unsigned long long)lsn);
}

void mn__crep_snap_reapply_sync(cl_repl *r)
{
    struct csnap_reapply *x = mn__csnap_reap(r);
    if (x && mn__csnap_keep_sync(&x->keep) != MN_OK)
        mn_log_error("repl: cannot make the entries to re-apply durable in %s: %s", x->keep.dir,
                     strerror(errno));
}

/* TEST ONLY: MNEMO_TEST_REAPPLY_HOLD=1 keeps the entries to re-apply and sends none (a test
 * stops the node while they wait on disk; docs/config.md). */
static bool test_hold(void)
{
    static int hold = -1;
    if (hold < 0) {
        const char *s = getenv("MNEMO_TEST_REAPPLY_HOLD");
        hold = s && !strcmp(s, "1");
        if (hold) mn_log_warn("TEST ONLY: MNEMO_TEST_REAPPLY_HOLD=1: nothing is re-applied");
    }
    return hold;
}

/* Stores a forked entry here, as its primary (whoever sent it: from, for the log). true
 * when it is settled (stored, already there, or not ours to store); false: try again. */
static bool ingest_here(cl_repl *r, const char *space, const uint8_t *data, size_t len,
                        const char *from)
{
    if (!wanted(space, data, len)) return true; /* not ours to store: answered, dropped */
    mn_error err = {0};
    mn_err rc = mn_engine_ingest(r->engine, data, len, &err);
    if (rc) mn_log_info("repl: %s: an entry re-applied for %s: %s", space, from, err.message);
    if (rc == MN_OK) r->counts.reapplied++;
    return rc == MN_OK || rc == MN_ERR_NOT_FOUND || rc == MN_ERR_GONE || rc == MN_ERR_EXISTS ||
           rc == MN_ERR_CONFLICT;
}

/* Item i is settled: out of memory and, once all of its space's are, off the disk. */
static void reap_remove(struct csnap_reapply *x, size_t i)
{
    if (x->items[i].kept) mn__csnap_keep_done(&x->keep, x->items[i].space);
    x->bytes -= x->items[i].len;
    free(x->items[i].data);
    x->items[i] = x->items[--x->n];
}

void mn__csnap_reapply_tick(cl_repl *r, int64_t now_us)
{
    struct csnap_reapply *x = mn__csnap_reap(r);
    if (test_hold()) return;
    for (size_t i = 0; x && i < x->n;) {
        reap_entry *it = &x->items[i];
        mn_spaces_repl_status_t st;
        if (now_us - it->sent_us < CSNAP_RETRY_US) {
            i++; /* not due */
            continue;
        }
        if (mn_spaces_repl_status(r->core, now_us, it->space, &st) != MN_OK) {
            /* no longer held here (its copy was dropped): the table's primary takes it */
            const char *p = mn__crep_table_primary(r, it->space);
            memset(&st, 0, sizeof st);
            if (p) snprintf(st.primary, sizeof st.primary, "%s", p);
        }
        if (!st.primary[0]) {
            i++; /* no primary to send it to yet */
            continue;
        }
        it->sent_us = now_us;
        if (strcmp(st.primary, r->self)) {
            mn__csnap_send(r, st.primary, K_REAPPLY, it->space, 0, it->key, 0, it->data, it->len);
            i++;
        } else if (st.role == MN_SPACES_REPL_PRIMARY &&
                   ingest_here(r, it->space, it->data, it->len, "this node")) {
            reap_remove(x, i); /* this node leads again (a restart won it back): stored here */
        } else {
            i++;
        }
    }
}

void mn__csnap_on_reapply(cl_repl *r, const char *from, const csnap_frame *f)
{
    if (!mn__csnap_leads(r, f->space)) {
        mn__csnap_send(r, from, K_REAPPLIED, f->space, 0, f->seq, E_NOT_PRIMARY, NULL, 0);
        return;
    }
    if (ingest_here(r, f->space, f->data, f->len, from)) /* else no answer: it comes again */
        mn__csnap_send(r, from, K_REAPPLIED, f->space, 0, f->seq, 0, NULL, 0);
}

void mn__csnap_on_reapplied(cl_repl *r, const char *from, const csnap_frame *f)
{
    struct csnap_reapply *x = mn__csnap_reap(r);
    (void)from;
    if (!x || f->arg) return; /* not the primary: sent again to the next one */
    for (size_t i = 0; i < x->n; i++)
        if (x->items[i].key == f->seq && !strcmp(x->items[i].space, f->space)) {
            reap_remove(x, i);
            return;
        }
}
