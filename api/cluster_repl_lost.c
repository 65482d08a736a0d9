/* Copies whose replication state this node lost (docs/replication.md, "Replication in the
 * server"; runbooks/cluster.md, "Replace a failed disk").
 *
 * A node keeps each space's durable state (epoch, vote, log history) in <data_dir>/repl,
 * whose first creation time it writes there once (born_ms). A space created well before
 * that (its incarnation, the creator's clock, CREP_BORN_MARGIN_MS earlier) whose holder
 * record names this node a voter (primary or replica), with no state here for it, was held
 * by an earlier life of this node id: its data dir was wiped or replaced and the node
 * started under the same id (cluster.node_id set). Its votes of past epochs are gone, so
 * it could vote twice in one; its log too, which a majority counted on. It must not hold
 * that copy: the space is not opened here, an error is logged once per space and counted
 * (mnemo_repl_events_total{reason="lost_state_refused"}). The primary sees the copy lag;
 * the operator brings the node back under a new id. (A space this node never held, whose
 * first record named it a voter before it opened it, was created after born_ms, or within
 * the margin of it: opened as usual.)
 *
 * Invariant: a name is listed at most once; the list only grows (a copy refused stays
 * refused: born_ms is durable, so a restart refuses it again). */
#include "cluster_repl_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_file.h"
#include "mnemo/util.h"

/* A space created this long before the repl folder (by the creator's clock; signed hops
 * allow clocks 30 s apart) is older than any life of this node that could have held it
 * without state here. */
#define CREP_BORN_MARGIN_MS (60 * 1000)

/* TEST ONLY: MNEMO_TEST_BORN_MARGIN_MS=<0..60000> replaces the margin (a test wipes a node
 * and starts it at once; docs/config.md). */
static int64_t born_margin_ms(void)
{
    const char *v = getenv("MNEMO_TEST_BORN_MARGIN_MS");
    if (!v) return CREP_BORN_MARGIN_MS;
    char *end;
    long long m = strtoll(v, &end, 10);
    if (end == v || *end || m < 0 || m > CREP_BORN_MARGIN_MS) {
        mn_log_warn("TEST ONLY: MNEMO_TEST_BORN_MARGIN_MS=%s is not 0..%d: ignored", v,
                    CREP_BORN_MARGIN_MS);
        return CREP_BORN_MARGIN_MS;
    }
    mn_log_warn("TEST ONLY: MNEMO_TEST_BORN_MARGIN_MS=%lld: a copy is refused as lost when its "
                "space was created %lld ms before this node's replication folder",
                m, m);
    return (int64_t)m;
}

mn_err mn__crep_born(cl_repl *r, mn_error *err)
{
    char path[sizeof r->dir + 16], tmp[sizeof r->dir + 24];
    snprintf(path, sizeof path, "%s/born_ms", r->dir);
    snprintf(tmp, sizeof tmp, "%s/born_ms.tmp", r->dir);
    r->born_margin_ms = born_margin_ms();
    FILE *f = fopen(path, "r");
    if (f) {
        int64_t v = 0;
        bool ok = fscanf(f, "%" SCNd64, &v) == 1 && v > 0;
        fclose(f);
        if (!ok) return mn_error_set(err, MN_ERR_CORRUPT, "%s: not a time in ms", path);
        r->born_ms = v;
        return MN_OK;
    }
    if (errno != ENOENT) return mn_error_set(err, MN_ERR_IO, "%s: %s", path, strerror(errno));
    char text[32];
    r->born_ms = mn_time_now_ms();
    int n = snprintf(text, sizeof text, "%" PRId64 "\n", r->born_ms);
    return cl_file_replace(tmp, path, r->dir, (const uint8_t *)text, (size_t)n, err);
}

/* Was e created well before this node's repl folder? */
static bool older_than_born(const cl_repl *r, const mn_spaces_entry_t *e)
{
    return e->incarnation && r->born_ms > 0 &&
           (int64_t)e->incarnation + r->born_margin_ms < r->born_ms;
}

/* This node's role in e (-1: not listed). */
static int self_role(const cl_repl *r, const mn_spaces_entry_t *e)
{
    for (int i = 0; i < e->n_holders; i++)
        if (strcmp(e->holders[i].node, r->self) == 0) return e->holders[i].role;
    return -1;
}

static bool listed(const cl_repl *r, const char *name)
{
    for (size_t i = 0; i < r->n_lost; i++)
        if (strcmp(r->lost[i], name) == 0) return true;
    return false;
}

bool mn__crep_lost_state(cl_repl *r, const mn_spaces_entry_t *e)
{
    if (!older_than_born(r, e)) return false;
    bool recorded = (e->flags & MN_SPACES_RECORDED) && e->rec_version;
    int role = self_role(r, e);
    /* a copy the record has catching up is a learner: it votes on nothing until it holds
     * the whole log, then has its own state */
    if (recorded && role == MN_SPACES_CATCHING_UP) return false;
    /* a table guessed before the space's record reached this node (a start): wait for it */
    if (!recorded || (role != MN_SPACES_PRIMARY && role != MN_SPACES_REPLICA)) return true;
    if (listed(r, e->name)) return true;
    if (r->n_lost == r->cap_lost) {
        size_t cap = r->cap_lost ? r->cap_lost * 2 : 8;
        char(*l)[MN_SPACE_NAME_MAX + 1] = realloc(r->lost, cap * sizeof *l);
        if (!l) return true; /* refused all the same; logged again at the next table */
        r->lost = l;
        r->cap_lost = cap;
    }
    memcpy(r->lost[r->n_lost], e->name, strlen(e->name) + 1);
    r->n_lost++;
    r->counts.lost_state_refused++;
    mn_log_error("repl: %s: its holder record (epoch %llu, version %llu) names this node (%s) a "
                 "voter, but this node has no replication state for it: its data dir was "
                 "wiped or replaced under the same id. This copy is not held here: stop the "
                 "node and start it with an empty data dir and a new cluster.node_id "
                 "(runbooks/cluster.md, \"Replace a failed disk\")",
                 e->name, (unsigned long long)e->epoch, (unsigned long long)e->rec_version,
                 r->self);
    return true;
}
