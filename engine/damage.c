/* Damage found at start-up, and what a salvage start dropped.
 *
 * A start that finds damage (a bad block, a record that does not decode, a WAL
 * that ends before its acknowledged lsn) refuses: it logs what is damaged, in
 * which space or file, and what to do, and mn_engine_open fails with
 * MN_ERR_CORRUPT. Started with salvage (mnemo serve --salvage), the load goes on
 * with what is readable and each damage is kept here as a reason, per space (by
 * sid, so a space recreated under the same name is not marked) and for the node;
 * the API shows them in the space's stats and in /ready. The reasons are
 * written during the load, before any other thread runs, and only read after. */
#include "damage.h"

#include "acked.h"
#include "engine_internal.h"
#include "mnemo/wire.h"
#include "space.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_MAX 1024

typedef struct reason {
    uint32_t sid; /* 0: the node */
    char text[REASON_MAX];
} reason;

struct mn__damage {
    reason *r;
    size_t n;
    char node[REASON_MAX]; /* every reason, for mn_engine_salvaged */
};

/* What to do, for the log line of a refused start (%s: the data dir). */
#define ADVICE                                                                                     \
    "Acknowledged data may be missing, so mnemo will not start on it. Run `mnemo check %s` "       \
    "for a report, then restore the newest checkpoint (POST /v1/admin/checkpoint; in a "           \
    "cluster, re-sync this node from a replica) or start with `mnemo serve --salvage` to "         \
    "serve what is readable (runbooks/single-node.md, \"Damaged data directory\")"

/* Appends what to dst (REASON_MAX), "; " between reasons; cut with "..." when full. */
static void append(char *dst, const char *what)
{
    size_t n = strlen(dst);
    if (n + 4 >= REASON_MAX) return;
    int w = snprintf(dst + n, REASON_MAX - n, "%s%s", n ? "; " : "", what);
    if (w >= (int)(REASON_MAX - n)) memcpy(dst + REASON_MAX - 4, "...", 4);
}

static reason *find(struct mn__damage *d, uint32_t sid)
{
    for (size_t i = 0; d && i < d->n; i++)
        if (d->r[i].sid == sid) return &d->r[i];
    return NULL;
}

/* Adds what to the reasons of sid and of the node. */
static mn_err record(mn_engine_t *e, uint32_t sid, const char *what)
{
    if (!e->damage && !(e->damage = calloc(1, sizeof *e->damage))) return MN_ERR_NOMEM;
    struct mn__damage *d = e->damage;
    reason *r = find(d, sid);
    if (!r) {
        reason *n = realloc(d->r, (d->n + 1) * sizeof *n);
        if (!n) return MN_ERR_NOMEM;
        d->r = n;
        r = &d->r[d->n++];
        r->sid = sid;
        r->text[0] = '\0';
    }
    append(r->text, what);
    append(d->node, what);
    return MN_OK;
}

mn_err mn__damage(mn_engine_t *e, uint32_t sid, const char *name, mn_error *err, const char *fmt,
                  ...)
{
    char what[REASON_MAX], full[REASON_MAX + 80];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (name)
        snprintf(full, sizeof full, "space %s: %s", name, what);
    else
        snprintf(full, sizeof full, "%s", what);
    if (!e->opts.salvage) {
        mn_log_error("data dir %s is damaged: %s. " ADVICE, e->data_dir, full, e->data_dir);
        return mn_error_set(err, MN_ERR_CORRUPT, "damaged data dir: %.180s (see the log)", full);
    }
    mn_log_error("salvage: %s (dropped; the node runs salvaged)", full);
    if (record(e, sid, full)) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    return MN_OK;
}

/* A space that is loaded: its WAL must reach its acknowledged lsn. */
static mn_err check_space(mn_engine_t *e, mn__space *sp, mn_error *err)
{
    uint64_t acked = mn__acked_get(e->acked, sp->sid);
    if (acked <= sp->last_lsn) return MN_OK;
    return mn__damage(e, sp->sid, sp->def.name, err,
                      "its WAL ends at lsn %llu but writes up to lsn %llu were acknowledged "
                      "(%llu entries lost: RocksDB's log *.log was cut short or damaged)",
                      (unsigned long long)sp->last_lsn, (unsigned long long)acked,
                      (unsigned long long)(acked - sp->last_lsn));
}

bool mn__damage_dropped(mn__store *st, uint32_t sid)
{
    uint8_t k[KEY_SID_LEN];
    mn__key_sid(k, sid + 1);
    rocksdb_iterator_t *it = mn__store_iter(st, CF_WAL);
    rocksdb_iter_seek_for_prev(it, (const char *)k, sizeof k); /* the space's last entry */
    bool dropped = false;
    size_t kl, vl;
    if (rocksdb_iter_valid(it)) {
        const char *ik = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        mn_wal_entry_t en;
        if (kl == KEY_WAL_LEN && mn_get_be32((const uint8_t *)ik) == sid &&
            !mn_wire_wal_decode((const uint8_t *)v, vl, &en, NULL)) {
            dropped = en.type == MN_WAL_OP_SPACE_DROP;
            mn_wal_entry_clear(&en);
        }
    }
    rocksdb_iter_destroy(it);
    return dropped;
}

/* Space ids with an acknowledged lsn that no loaded space has, and that were
 * not dropped (a crash between a drop's write and its note leaves one). */
static mn_err check_missing(mn_engine_t *e, mn__space **spaces, size_t ns, mn_error *err)
{
    uint32_t max = mn__acked_max_sid(e->acked);
    mn_err rc = MN_OK;
    for (uint32_t sid = 1; !rc && sid <= max && sid; sid++) {
        uint64_t acked = mn__acked_get(e->acked, sid);
        bool loaded = false;
        for (size_t i = 0; i < ns && !loaded; i++)
            loaded = spaces[i]->sid == sid;
        if (acked && !loaded && !mn__damage_dropped(&e->store, sid))
            rc = mn__damage(e, sid, NULL, err,
                            "space id %u is missing: writes to it up to lsn %llu were "
                            "acknowledged (RocksDB's log *.log was cut short or damaged)",
                            sid, (unsigned long long)acked);
    }
    return rc;
}

mn_err mn__damage_check_acked(mn_engine_t *e, mn_error *err)
{
    size_t ns;
    mn__space **spaces = mn__registry_acquire_all(&e->reg, &ns);
    if (!spaces) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    mn_err rc = MN_OK;
    for (size_t i = 0; i < ns && !rc; i++)
        rc = check_space(e, spaces[i], err);
    if (!rc) rc = check_missing(e, spaces, ns, err);
    if (!rc && e->damage) {
        /* salvaged: the store as it is now is what later starts check against */
        uint32_t max = mn__acked_max_sid(e->acked);
        for (uint32_t sid = 1; sid <= max && sid; sid++)
            if (mn__acked_get(e->acked, sid)) mn__acked_note(e->acked, sid, 0);
        for (size_t i = 0; i < ns; i++)
            mn__acked_note(e->acked, spaces[i]->sid, spaces[i]->last_lsn);
        mn__acked_write(e->acked);
    }
    mn__registry_release_all(spaces, ns);
    return rc;
}

void mn__damage_free(mn_engine_t *e)
{
    if (!e->damage) return;
    free(e->damage->r);
    free(e->damage);
    e->damage = NULL;
}

const char *mn_engine_space_damage(mn_engine_t *e, const char *name)
{
    if (!e->damage) return NULL;
    mn__space *sp = mn__registry_acquire(&e->reg, name);
    if (!sp) return NULL;
    reason *r = find(e->damage, sp->sid);
    mn__space_unref(sp);
    return r ? r->text : NULL;
}

const char *mn_engine_salvaged(mn_engine_t *e)
{
    return e->damage ? e->damage->node : NULL;
}
