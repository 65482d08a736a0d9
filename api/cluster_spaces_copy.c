/* GET /v1/cluster/spaces: the "copy" of a space held here, as this node's replication core
 * sees it (docs/api.md). It is what an operator needs to tell a copy that is catching up
 * from one that is stuck: whether its log was reconciled with its primary's this epoch,
 * where its log begins (a snapshot's base) and ends, when it last heard its primary, and,
 * on the primary, each other holder the core ships to. */
#include <cjson/cJSON.h>

#include "cluster_spaces.h"
#include "mnemo/spaces.h"

static const char *role_name(mn_spaces_repl_role_t r)
{
    return r == MN_SPACES_REPL_PRIMARY     ? "primary"
           : r == MN_SPACES_REPL_CANDIDATE ? "candidate"
                                           : "follower";
}

void cl_spaces_add_copy(cJSON *o, const mn_spaces_repl_status_t *st, int64_t now_us)
{
    cJSON *c = cJSON_AddObjectToObject(o, "copy");
    if (!c) return;
    bool leads = st->role == MN_SPACES_REPL_PRIMARY;
    cJSON_AddStringToObject(c, "role", role_name(st->role));
    cJSON_AddNumberToObject(c, "epoch", (double)st->epoch);
    if (st->primary[0])
        cJSON_AddStringToObject(c, "primary", st->primary);
    else
        cJSON_AddNullToObject(c, "primary");
    cJSON_AddNumberToObject(c, "last_lsn", (double)st->last_lsn);
    cJSON_AddNumberToObject(c, "last_epoch", (double)st->last_epoch);
    cJSON_AddNumberToObject(c, "base_lsn", (double)st->base_lsn);
    cJSON *h = cJSON_AddArrayToObject(c, "epochs");
    for (size_t i = 0; h && i < st->n_history; i++) {
        cJSON *e = cJSON_CreateObject();
        if (!e) break;
        cJSON_AddNumberToObject(e, "epoch", (double)st->history[i].epoch);
        cJSON_AddNumberToObject(e, "from_lsn", (double)st->history[i].lsn);
        cJSON_AddItemToArray(h, e);
    }
    if (!leads) {
        cJSON_AddBoolToObject(c, "reconciled", st->reconciled);
        cJSON_AddBoolToObject(c, "snapshot_needed", st->snapshot_needed);
        int64_t ago = now_us > st->heard_us ? (now_us - st->heard_us) / 1000 : 0;
        cJSON_AddNumberToObject(c, "heard_ms_ago", (double)ago);
    }
    cJSON *ps = cJSON_AddArrayToObject(c, "peers");
    for (size_t i = 0; ps && i < st->n_peers; i++) {
        const mn_spaces_repl_peer_status_t *p = &st->peers[i];
        cJSON *e = cJSON_CreateObject();
        if (!e) break;
        cJSON_AddStringToObject(e, "node", p->node);
        cJSON_AddBoolToObject(e, "voter", p->voter);
        cJSON_AddBoolToObject(e, "alive", p->alive);
        if (leads) cJSON_AddNumberToObject(e, "acked_lsn", (double)p->applied_lsn);
        cJSON_AddItemToArray(ps, e);
    }
}
