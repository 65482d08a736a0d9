/* The replication core's callbacks that reach the engine and the disk
 * (replication thread only).
 *
 * - read: the entry at an lsn of the local log. Entries this node wrote or
 *   stored lately are in a per-space ring (their epoch known from the WAL
 *   hook or the frame); older ones come from mn_engine_wal_read, their epoch
 *   decoded from the entry.
 * - apply: verified entries of the primary are collected during one core
 *   call and stored after it with one mn_engine_replicate (one commit group,
 *   one fsync), then acknowledged with mn_spaces_repl_applied.
 * - persist: a space's durable state (epoch, vote, epoch history) in
 *   <data_dir>/repl/<space>.state, written to a temporary file, fsynced,
 *   renamed over the old one and the directory fsynced: durable before the
 *   callback returns, never half-written (a CRC32C guards it).
 * - truncate answers MN_ERR_UNSUPPORTED: the core then needs a snapshot, and
 *   cluster_snap.c replaces the forked copy with the primary's; reapply hands the
 *   episodes and tombstones past the fork to cluster_snap_reapply.c, which has the
 *   new primary store them with their ids.
 * - events: promoted / demoted set the engine's role of the space. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster_repl_internal.h"
#include "cluster_snap.h"
#include "mnemo/assert.h"
#include "mnemo/util.h"
#include "mnemo/wire.h"

#define STATE_MAGIC 0x4d4e5244u /* "MNRD" */
/* version 2 adds the incarnation after base_lsn; version 3 then the epoch this node led and
 * how far a majority had it (led_epoch, led_acked). Each is written only when it says more
 * than the one before (a state that led nothing unreconciled is version 2, one that knows
 * no incarnation either version 1), so an older binary reads what it can understand. */
#define STATE_VERSION 3u
#define STATE_MAX                                                                                  \
    (4 + 4 + 8 + 8 + 1 + MN_SPACES_NODE_MAX + 4 + 16 * MN_SPACES_REPL_HISTORY_MAX + 8 + 8 + 16 + 4)

/* ---- the entry cache ---- */

void mn__crep_cache_put(crep_space *sp, uint64_t lsn, uint64_t epoch, const uint8_t *data,
                        size_t len)
{
    if (!sp->cache && !(sp->cache = calloc(CREP_CACHE, sizeof *sp->cache))) return;
    crep_cached *c = &sp->cache[lsn % CREP_CACHE];
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return;
    memcpy(copy, data, len);
    free(c->data);
    *c = (crep_cached){.lsn = lsn, .epoch = epoch, .data = copy, .len = len};
}

static const crep_cached *cache_get(const crep_space *sp, uint64_t lsn)
{
    if (!sp || !sp->cache) return NULL;
    const crep_cached *c = &sp->cache[lsn % CREP_CACHE];
    return c->data && c->lsn == lsn ? c : NULL;
}

void mn__crep_cache_clear(crep_space *sp)
{
    for (size_t i = 0; sp->cache && i < CREP_CACHE; i++) {
        free(sp->cache[i].data);
        sp->cache[i] = (crep_cached){0};
    }
}

void mn__crep_space_free(crep_space *sp)
{
    if (!sp) return;
    mn__crep_cache_clear(sp);
    free(sp->cache);
    free(sp);
}

/* ---- read ---- */

typedef struct read_one {
    cl_repl *r;
    uint64_t want, got;
} read_one;

static int copy_entry(void *arg, uint64_t lsn, const uint8_t *bytes, size_t len)
{
    read_one *ro = arg;
    if (lsn != ro->want) return 1;
    cl_repl *r = ro->r;
    if (len > r->read_cap) {
        uint8_t *b = realloc(r->read_buf, len);
        if (!b) return 1;
        r->read_buf = b;
        r->read_cap = len;
    }
    memcpy(r->read_buf, bytes, len);
    ro->got = len ? len : 1; /* found (an empty entry cannot be valid anyway) */
    return 1;
}

/* The engine's entry at lsn into r->read_buf; its length, 0 = absent or trimmed. */
static size_t engine_read(cl_repl *r, const char *space, uint64_t lsn)
{
    read_one ro = {r, lsn, 0};
    mn_error err = {0};
    if (mn_engine_wal_read(r->engine, space, lsn, 1, copy_entry, &ro, &err) != MN_OK) return 0;
    return ro.got;
}

static mn_err cb_read(void *user, const char *space, uint64_t lsn, uint64_t *epoch,
                      const uint8_t **data, size_t *len)
{
    cl_repl *r = user;
    const crep_cached *c = cache_get(mn__crep_space(r, space), lsn);
    if (c) {
        *epoch = c->epoch;
        *data = c->data;
        *len = c->len;
        return MN_OK;
    }
    size_t n = engine_read(r, space, lsn);
    if (!n) return MN_ERR_NOT_FOUND;
    mn_wal_entry_t e;
    mn_error err = {0};
    if (mn_wire_wal_decode(r->read_buf, n, &e, &err) != MN_OK) {
        mn_log_error("repl: %s lsn %llu: %s", space, (unsigned long long)lsn, err.message);
        return MN_ERR_NOT_FOUND;
    }
    *epoch = e.epoch;
    mn_wal_entry_clear(&e);
    *data = r->read_buf;
    *len = n;
    return MN_OK;
}

/* ---- apply ---- */

static bool batch_grow(crep_batch *b)
{
    if (b->n < b->cap) return true;
    size_t cap = b->cap ? b->cap * 2 : 64;
    uint8_t **data = realloc(b->data, cap * sizeof *data);
    if (data) b->data = data;
    size_t *lens = realloc(b->lens, cap * sizeof *lens);
    if (lens) b->lens = lens;
    uint64_t *epochs = realloc(b->epochs, cap * sizeof *epochs);
    if (epochs) b->epochs = epochs;
    if (!data || !lens || !epochs) return false;
    b->cap = cap;
    return true;
}

static void batch_clear(crep_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->data[i]);
    b->n = 0;
    b->sp = NULL;
}

void mn__crep_flush(cl_repl *r)
{
    crep_batch *b = &r->batch;
    if (!b->n) return;
    mn_error err = {0};
    /* after a conflict the local log is not the core's: storing the next entries on top of
     * it and acknowledging them would count this copy for entries it does not have */
    mn_err rc = b->sp->diverged
                    ? mn_error_set(&err, MN_ERR_CONFLICT,
                                   "the local log diverged from the primary's earlier")
                    : mn_engine_replicate(r->engine, b->sp->name, b->first_lsn,
                                          (const uint8_t *const *)b->data, b->lens, b->n, &err);
    if (rc == MN_ERR_CONFLICT && !b->sp->diverged) {
        /* the local log forked from the primary's where the core did not see it (entries
         * the engine took after the core stopped leading): a snapshot of the primary's
         * space replaces this copy, then the core reconciles from its lsn */
        b->sp->diverged = true;
        mn__crep_snap_needed(r, b->sp->name);
    }
    if (rc == MN_OK) {
        for (size_t i = 0; i < b->n; i++)
            mn__crep_cache_put(b->sp, b->first_lsn + i, b->epochs[i], b->data[i], b->lens[i]);
        mn_spaces_repl_applied(r->core, b->sp->name, b->first_lsn + b->n - 1);
        b->sp->dirty = r->dirty = true;
    } else {
        /* the core's log goes back to what the engine holds, and fetches the rest again:
         * entries counted as this copy's log but missing from it would be led with after an
         * election (the engine behind its core for good) */
        r->counts.apply_failed++;
        mn_log_error("repl: cannot store %zu entries of %s from lsn %llu: %s", b->n, b->sp->name,
                     (unsigned long long)b->first_lsn, err.message);
        mn_spaces_repl_unapplied(r->core, b->sp->name);
    }
    batch_clear(b);
}

static void cb_apply(void *user, const char *space, uint64_t epoch, uint64_t lsn,
                     const uint8_t *data, size_t len)
{
    cl_repl *r = user;
    crep_batch *b = &r->batch;
    crep_space *sp = mn__crep_space(r, space);
    if (!sp) return; /* the core opens only what this thread opened */
    if (b->n && (b->sp != sp || b->first_lsn + b->n != lsn)) mn__crep_flush(r);
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy || !batch_grow(b)) {
        free(copy);
        mn__crep_flush(r); /* what was collected is stored; this one is fetched again */
        r->counts.apply_failed++;
        mn_spaces_repl_unapplied(r->core, space);
        return;
    }
    memcpy(copy, data, len);
    if (!b->n) {
        b->sp = sp;
        b->first_lsn = lsn;
    }
    b->data[b->n] = copy;
    b->lens[b->n] = len;
    b->epochs[b->n] = epoch;
    b->n++;
}

/* ---- the appends of a primary ---- */

typedef struct fill_ctx {
    crep_space *sp;
    uint64_t first;
    const uint64_t *epochs;
    size_t n;
} fill_ctx;

static int fill_one(void *arg, uint64_t lsn, const uint8_t *bytes, size_t len)
{
    fill_ctx *f = arg;
    if (lsn < f->first || lsn >= f->first + f->n) return 1;
    mn__crep_cache_put(f->sp, lsn, f->epochs[lsn - f->first], bytes, len);
    return 0;
}

void mn__crep_cache_fill(cl_repl *r, crep_space *sp, uint64_t first_lsn, const uint64_t *epochs,
                         size_t n)
{
    while (n && cache_get(sp, first_lsn)) { /* stored by apply already */
        first_lsn++;
        epochs++;
        n--;
    }
    if (!n) return;
    fill_ctx f = {sp, first_lsn, epochs, n};
    mn_error err = {0};
    if (mn_engine_wal_read(r->engine, sp->name, first_lsn, n, fill_one, &f, &err) != MN_OK)
        mn_log_warn("repl: %s: cannot read lsn %llu..: %s", sp->name, (unsigned long long)first_lsn,
                    err.message);
}

void mn__crep_pump(cl_repl *r, crep_space *sp)
{
    mn_spaces_repl_status_t st;
    if (mn_spaces_repl_status(r->core, mn__crep_now_us(), sp->name, &st) != MN_OK ||
        st.role != MN_SPACES_REPL_PRIMARY) {
        sp->pump = false; /* a follower's entries reach the core through apply */
        return;
    }
    for (uint64_t lsn = st.last_lsn + 1; lsn <= sp->hooked_lsn; lsn++) {
        uint64_t epoch;
        const uint8_t *data;
        size_t len;
        mn_error err = {0};
        mn_err rc = cb_read(r, sp->name, lsn, &epoch, &data, &len);
        if (rc == MN_OK)
            rc = mn_spaces_repl_append(r->core, mn__crep_now_us(), sp->name, lsn, data, len, &err);
        if (rc == MN_ERR_BUSY) return; /* no lease now: pump stays set, tried after each call */
        if (rc != MN_OK) {
            r->counts.append_failed++;
            mn_log_error("repl: %s: cannot ship lsn %llu: %s", sp->name, (unsigned long long)lsn,
                         rc == MN_ERR_NOT_FOUND ? "not in the WAL" : err.message);
            break;
        }
        sp->dirty = r->dirty = true;
    }
    sp->pump = false;
}

void mn__crep_lease(cl_repl *r, crep_space *sp)
{
    sp->lease_due = false;
    int64_t until = mn_spaces_repl_lease_until(r->core, sp->name);
    if (until == INT64_MIN || until == sp->lease_us) return; /* not leading: its role gates */
    int64_t grace = CREP_LEASE_GRACE_US;
    int64_t ns = until >= INT64_MAX / 1000 - grace ? 0 /* a voter alone: no bound */
                 : until + grace <= 0              ? 1 /* lapsed long ago */
                                                   : (until + grace) * 1000;
    mn_error err = {0};
    if (mn_engine_space_set_lease_of(r->engine, sp->name, (int64_t)sp->incarnation, ns, &err) ==
        MN_OK)
        sp->lease_us = until;
}

/* ---- durable state ---- */

static size_t state_encode(const mn_spaces_repl_durable_t *d, uint8_t *buf)
{
    uint8_t *p = buf;
    mn_put_be32(p, STATE_MAGIC);
    uint32_t version = d->led_epoch ? 3u : d->incarnation ? 2u : 1u;
    mn_put_be32(p + 4, version);
    mn_put_be64(p + 8, d->epoch);
    mn_put_be64(p + 16, d->voted_epoch);
    p += 24;
    size_t vl = strnlen(d->voted_for, MN_SPACES_NODE_MAX);
    *p++ = (uint8_t)vl;
    memcpy(p, d->voted_for, vl);
    p += vl;
    mn_put_be32(p, (uint32_t)d->n_history);
    p += 4;
    for (size_t i = 0; i < d->n_history; i++, p += 16) {
        mn_put_be64(p, d->history[i].epoch);
        mn_put_be64(p + 8, d->history[i].lsn);
    }
    mn_put_be64(p, d->base_lsn);
    p += 8;
    if (version >= 2) {
        mn_put_be64(p, d->incarnation);
        p += 8;
    }
    if (version >= 3) {
        mn_put_be64(p, d->led_epoch);
        mn_put_be64(p + 8, d->led_acked);
        p += 16;
    }
    mn_put_be32(p, mn_crc32c(0, buf, (size_t)(p - buf)));
    return (size_t)(p - buf) + 4;
}

static bool state_decode(const uint8_t *buf, size_t n, mn_spaces_repl_durable_t *d)
{
    memset(d, 0, sizeof *d);
    if (n < 4 + 4 + 16 + 1 + 4 + 8 + 4 || mn_get_be32(buf) != STATE_MAGIC) return false;
    uint32_t version = mn_get_be32(buf + 4);
    /* base_lsn, then (2) the incarnation, then (3) led_epoch and led_acked */
    size_t tail = version == 3 ? 8 + 8 + 16 : version == 2 ? 8 + 8 : 8;
    if (version < 1 || version > STATE_VERSION ||
        mn_get_be32(buf + n - 4) != mn_crc32c(0, buf, n - 4))
        return false;
    d->epoch = mn_get_be64(buf + 8);
    d->voted_epoch = mn_get_be64(buf + 16);
    const uint8_t *p = buf + 24, *end = buf + n - 4;
    size_t vl = *p++;
    if (vl > MN_SPACES_NODE_MAX || p + vl + 4 > end) return false;
    memcpy(d->voted_for, p, vl);
    p += vl;
    d->n_history = mn_get_be32(p);
    p += 4;
    if (d->n_history > MN_SPACES_REPL_HISTORY_MAX || p + 16 * d->n_history + tail != end)
        return false;
    for (size_t i = 0; i < d->n_history; i++, p += 16) {
        d->history[i].epoch = mn_get_be64(p);
        d->history[i].lsn = mn_get_be64(p + 8);
    }
    d->base_lsn = mn_get_be64(p);
    if (version >= 2) d->incarnation = mn_get_be64(p + 8);
    if (version >= 3) {
        d->led_epoch = mn_get_be64(p + 16);
        d->led_acked = mn_get_be64(p + 24);
    }
    return version == 1 || version == 3 || d->incarnation != 0;
}

static void state_path(const cl_repl *r, const char *space, const char *suffix, char *out,
                       size_t cap)
{
    snprintf(out, cap, "%s/%s.state%s", r->dir, space, suffix);
}

bool mn__crep_write_all(int fd, const uint8_t *buf, size_t n)
{
    while (n) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        buf += w;
        n -= (size_t)w;
    }
    return true;
}

static mn_err state_write(const cl_repl *r, const char *space, const mn_spaces_repl_durable_t *d)
{
    uint8_t buf[STATE_MAX];
    size_t n = state_encode(d, buf);
    mn_assert(n <= sizeof buf); /* the history is bounded */
    char path[4200], tmp[4210];
    state_path(r, space, "", path, sizeof path);
    state_path(r, space, ".tmp", tmp, sizeof tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && mn__crep_write_all(fd, buf, n) && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0) ok = false;
    ok = ok && rename(tmp, path) == 0;
    int dfd = ok ? open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    ok = ok && dfd >= 0 && fsync(dfd) == 0;
    if (dfd >= 0) close(dfd);
    return ok ? MN_OK : MN_ERR_IO;
}

mn_err mn__crep_load(cl_repl *r, const char *space, mn_spaces_repl_durable_t *d, bool *found)
{
    char path[4200];
    state_path(r, space, "", path, sizeof path);
    *found = false;
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? MN_OK : MN_ERR_IO;
    uint8_t buf[STATE_MAX + 1];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n > STATE_MAX || !state_decode(buf, n, d)) return MN_ERR_CORRUPT;
    *found = true;
    return MN_OK;
}

static void cb_persist(void *user, const char *space, const mn_spaces_repl_durable_t *d)
{
    cl_repl *r = user;
    if (state_write(r, space, d) == MN_OK) return;
    /* a vote or an epoch that is not durable must not be acted on: the core has no way
     * back from here, and going on could let this node vote twice in one epoch */
    r->counts.persist_failed++;
    mn_log_error("repl: cannot make the state of %s durable in %s: %s; stopping", space, r->dir,
                 strerror(errno));
    abort();
}

/* ---- the rest ---- */

static void cb_send(void *user, const char *to, const uint8_t *frame, size_t len)
{
    cl_repl *r = user;
    /* refusals are counted by the bus; the core retries what matters */
    (void)mn_peer_send(r->bus, to, MN_PEER_CH_REPL, frame, len);
}

/* A fork: the entries past after_lsn were handed to reapply; the local copy is then replaced
 * whole by a snapshot of the primary's (the core, told "unsupported", says "snapshot
 * needed", and cluster_snap.c fetches and installs it). Cutting the WAL in place would
 * also have to undo what the cut entries did to the state: a snapshot is that undo. */
static mn_err cb_truncate(void *user, const char *space, uint64_t after_lsn)
{
    cl_repl *r = user;
    r->counts.truncate_refused++;
    mn__crep_snap_reapply_sync(r); /* the cut entries were handed back just before */
    mn_log_warn("repl: %s forked from its primary after lsn %llu: this copy is replaced by a "
                "snapshot of the primary's",
                space, (unsigned long long)after_lsn);
    return MN_ERR_UNSUPPORTED;
}

static void cb_reapply(void *user, const char *space, uint64_t epoch, uint64_t lsn,
                       const uint8_t *data, size_t len)
{
    (void)epoch;
    mn__crep_snap_reapply(user, space, lsn, data, len);
}

static void set_role(cl_repl *r, const char *space, mn_space_role_t role, uint64_t epoch)
{
    mn_error err = {0};
    const crep_space *sp = mn__crep_space(r, space);
    int64_t inc = sp ? (int64_t)sp->incarnation : 0;
    mn_err rc = mn_engine_space_set_role_of(r->engine, space, inc, role, epoch, &err);
    if (rc != MN_OK && rc != MN_ERR_NOT_FOUND)
        mn_log_error("repl: cannot make this node %s of %s: %s",
                     role == MN_SPACE_PRIMARY ? "primary" : "a replica", space, err.message);
}

typedef struct unshipped {
    cl_repl *r;
    const char *space;
    size_t n;
} unshipped;

static int hand_back_one(void *arg, uint64_t lsn, const uint8_t *bytes, size_t len)
{
    unshipped *u = arg;
    mn__crep_snap_reapply(u->r, u->space, lsn, bytes, len);
    u->n++;
    return 0;
}

/* A primary just demoted (its engine now a replica, so its log ends where it is): every
 * entry its engine took after kept_lsn (the core's DEMOTED event: past what a majority
 * acknowledged, in the epoch it led) may be missing from the new primary's log — `one`
 * writes it acknowledged, and entries written between the last append and the demotion.
 * They are handed back like the core's forked entries, at once: re-applied through the new
 * primary, which keeps any it has already (the ids). Not waiting for the fork to be found
 * matters when the new primary's record drops this copy: it is closed and deleted before
 * it could reconcile (cluster_repl_drop.c). */
static void hand_back_unshipped(cl_repl *r, const char *space, uint64_t last_lsn)
{
    uint64_t end = 0, epoch = 0;
    mn_error err = {0};
    if (mn_engine_space_position(r->engine, space, &end, &epoch, &err) != MN_OK || end <= last_lsn)
        return;
    unshipped u = {r, space, 0};
    if (mn_engine_wal_read(r->engine, space, last_lsn + 1, end - last_lsn, hand_back_one, &u,
                           &err) != MN_OK)
        mn_log_error("repl: %s: cannot read lsn %llu.. to hand back: %s", space,
                     (unsigned long long)last_lsn + 1, err.message);
    mn__crep_snap_reapply_sync(r);
    mn_log_warn("repl: %s: %zu entries this node took after lsn %llu (not known to be on a "
                "majority) are handed back to the new primary",
                space, u.n, (unsigned long long)last_lsn);
}

static void cb_event(void *user, const mn_spaces_repl_event_t *ev)
{
    cl_repl *r = user;
    crep_space *sp = mn__crep_space(r, ev->space);
    if (sp) sp->dirty = r->dirty = true;
    switch (ev->type) {
    case MN_SPACES_REPL_PROMOTED:
        mn_log_info("repl: this node leads %s from epoch %llu (lsn %llu)", ev->space,
                    (unsigned long long)ev->epoch, (unsigned long long)ev->lsn);
        if (sp) {
            sp->lease_us = INT64_MIN;
            mn__crep_lease(r, sp); /* before the role: no write refused for a stale bound */
        }
        set_role(r, ev->space, MN_SPACE_PRIMARY, ev->epoch);
        if (sp) sp->pump = r->pumps = true; /* entries written since may wait */
        break;
    case MN_SPACES_REPL_DEMOTED:
        mn_log_info("repl: this node no longer leads %s (epoch %llu)", ev->space,
                    (unsigned long long)ev->epoch);
        set_role(r, ev->space, MN_SPACE_REPLICA, 0);
        hand_back_unshipped(r, ev->space, ev->kept_lsn);
        break;
    case MN_SPACES_REPL_CAUGHT_UP:
        mn__crep_caught_up(r, ev);
        break;
    case MN_SPACES_REPL_SNAPSHOT_NEEDED:
        r->counts.snapshot_needed++;
        mn_log_info("repl: %s needs a snapshot from its primary (from lsn %llu)", ev->space,
                    (unsigned long long)ev->lsn);
        mn__crep_snap_needed(r, ev->space);
        break;
    default:
        break;
    }
}

void mn__crep_callbacks(cl_repl *r, mn_spaces_repl_cb_t *cb)
{
    memset(cb, 0, sizeof *cb);
    cb->user = r;
    cb->send = cb_send;
    cb->apply = cb_apply;
    cb->read = cb_read;
    cb->truncate = cb_truncate;
    cb->reapply = cb_reapply;
    cb->persist = cb_persist;
    cb->event = cb_event;
}
