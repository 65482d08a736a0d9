/* Snapshot transfer over the peer bus (docs/replication.md, "Snapshots in the server").
 *
 * Frames on channel CREP_CH_SNAP: kind (u8), the space name's length (u8) and bytes, the
 * export's id (be64), a chunk sequence number (be32), a count or a code (be32), then for a
 * chunk its bytes (engine/snapshot.h: checksummed on their own).
 *   REQ   replica -> primary: id (0 = a new export), seq, count: "send chunks seq..seq+count-1"
 *   CHUNK primary -> replica: id, seq, the chunk
 *   ERR   primary -> replica: id, code (NOT_PRIMARY, GONE: no such export, BUSY: too many)
 *   DONE  replica -> primary: id: "installed, close the export" (a node of an older minor
 *         drops the kind, and its export waits out CSNAP_IDLE_US)
 *
 * The replica asks for CSNAP_WINDOW chunks and asks for the next window once it has
 * installed the last of one; a window that does not arrive within CSNAP_RETRY_US (a broken
 * connection, a chunk dropped by a full queue, a damaged one) is asked for again from the
 * first chunk it lacks, under the same id: the primary keeps each export (a RocksDB
 * snapshot) until it goes unasked for CSNAP_KEEP_US, and remakes any chunk from it. An
 * export gone (expired, the primary restarted) is answered GONE and the replica starts
 * over. Both sides are bounded: CSNAP_EXPORTS_MAX exports, CSNAP_INSTALLS_MAX installs, one
 * window per install in the bus queue. A request finding every export slot taken takes the
 * slot of one unasked for over CSNAP_IDLE_US (free_slot); BUSY only when none is. */
#include "cluster_snap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_repl_internal.h"
#include "mnemo/util.h"

typedef struct snap_out { /* an export this node serves */
    char space[MN_SPACE_NAME_MAX + 1];
    char to[MN_SPACES_NODE_MAX + 1];
    mn_snapshot_t *s;
    uint64_t id;
    int64_t used_us;
    bool ended;
} snap_out;

typedef struct snap_in { /* a snapshot this node fetches */
    char space[MN_SPACE_NAME_MAX + 1];
    char from[MN_SPACES_NODE_MAX + 1]; /* "" until active */
    mn_snapshot_install_t *in;
    uint32_t asked_to; /* the window asked for ends before this seq */
    int64_t asked_us, wait_until_us;
    uint64_t bytes;
    int64_t t0_us;
} snap_in;

struct crep_snap {
    snap_out out[CSNAP_EXPORTS_MAX];
    snap_in *ins;
    size_t n_ins, cap_ins;
    uint8_t *buf; /* a frame being built */
    size_t buf_cap;
    mn_metrics_family_t *m_snaps, *m_bytes;
    struct csnap_reapply *reap; /* cluster_snap_reapply.c */
};

static const char *const what_label[] = {"event"};
static const char *const dir_label[] = {"direction"};

static void count(mn_metrics_family_t *f, const char *v, uint64_t n)
{
    const char *vals[] = {v};
    if (f && n) mn_metrics_add(f, vals, n);
}

/* ---- frames ---- */

static bool frame_parse(const uint8_t *b, size_t len, csnap_frame *f)
{
    if (len < 2 || len < 2u + b[1] + 16u || !b[1] || b[1] > MN_SPACE_NAME_MAX) return false;
    f->kind = b[0];
    memcpy(f->space, b + 2, b[1]);
    f->space[b[1]] = 0;
    const uint8_t *p = b + 2 + b[1];
    f->id = mn_get_be64(p);
    f->seq = mn_get_be32(p + 8);
    f->arg = mn_get_be32(p + 12);
    f->data = p + 16;
    f->len = len - (size_t)(f->data - b);
    return f->kind >= K_REQ && f->kind <= K_DONE;
}

void mn__csnap_send(cl_repl *r, const char *to, uint8_t kind, const char *space, uint64_t id,
                    uint32_t seq, uint32_t arg, const uint8_t *data, size_t len)
{
    crep_snap *s = r->snap;
    size_t nl = strlen(space), need = 2 + nl + 16 + len;
    if (need > s->buf_cap) {
        uint8_t *nb = realloc(s->buf, need);
        if (!nb) return; /* out of memory: the other side asks again */
        s->buf = nb;
        s->buf_cap = need;
    }
    uint8_t *b = s->buf;
    b[0] = kind;
    b[1] = (uint8_t)nl;
    memcpy(b + 2, space, nl);
    mn_put_be64(b + 2 + nl, id);
    mn_put_be32(b + 10 + nl, seq);
    mn_put_be32(b + 14 + nl, arg);
    if (len) memcpy(b + 18 + nl, data, len);
    /* a refusal (queue full, no address) is healed by the receiver's retry */
    (void)cl_repl_send(r, to, CREP_CH_SNAP, b, need);
}

/* ---- the primary's side ---- */

static void out_close(snap_out *o)
{
    mn_engine_snapshot_close(o->s);
    memset(o, 0, sizeof *o);
}

static snap_out *out_find(crep_snap *s, const char *to, const char *space)
{
    for (size_t i = 0; i < CSNAP_EXPORTS_MAX; i++)
        if (s->out[i].s && !strcmp(s->out[i].to, to) && !strcmp(s->out[i].space, space))
            return &s->out[i];
    return NULL;
}

struct csnap_reapply *mn__csnap_reap(cl_repl *r)
{
    return r->snap ? r->snap->reap : NULL;
}

bool mn__csnap_leads(cl_repl *r, const char *space)
{
    mn_spaces_repl_status_t st;
    return mn_spaces_repl_status(r->core, mn__crep_now_us(), space, &st) == MN_OK &&
           st.role == MN_SPACES_REPL_PRIMARY;
}

/* A slot for a new export: a free one, else the one unasked for longest if that is over
 * CSNAP_IDLE_US (its replica installed it, or went away: one still fetching asks at least
 * every CSNAP_RETRY_US, and one asking again after this gets GONE and starts over); NULL
 * when every export is in use. Without this a finished export held its slot for
 * CSNAP_KEEP_US, and a primary owing snapshots of many spaces served four a minute. */
static snap_out *free_slot(crep_snap *s, int64_t now_us)
{
    snap_out *idle = NULL;
    for (size_t i = 0; i < CSNAP_EXPORTS_MAX; i++) {
        snap_out *o = &s->out[i];
        if (!o->s) return o;
        if (now_us - o->used_us > CSNAP_IDLE_US && (!idle || o->used_us < idle->used_us)) idle = o;
    }
    if (idle) out_close(idle);
    return idle;
}

/* A new export of space for node to, or an ERR. */
static snap_out *out_open(cl_repl *r, const char *to, const csnap_frame *f)
{
    crep_snap *s = r->snap;
    if (!mn__csnap_leads(r, f->space)) {
        mn__csnap_send(r, to, K_ERR, f->space, f->id, f->seq, E_NOT_PRIMARY, NULL, 0);
        return NULL;
    }
    snap_out *o = free_slot(s, mn__crep_now_us());
    mn_error err = {0};
    if (!o || mn_engine_snapshot_open(r->engine, f->space, 0, &o->s, &err)) {
        if (o) mn_log_warn("snap: cannot export %s for %s: %s", f->space, to, err.message);
        mn__csnap_send(r, to, K_ERR, f->space, f->id, f->seq, o ? E_NOT_PRIMARY : E_BUSY, NULL, 0);
        return NULL;
    }
    mn_snapshot_info_t info;
    mn_engine_snapshot_info(o->s, &info);
    o->id = info.id;
    snprintf(o->to, sizeof o->to, "%s", to);
    snprintf(o->space, sizeof o->space, "%s", f->space);
    mn_log_info("snap: exporting %s to %s at lsn %llu (epoch %llu)", f->space, to,
                (unsigned long long)info.last_lsn, (unsigned long long)info.last_epoch);
    return o;
}

static void on_req(cl_repl *r, const char *from, const csnap_frame *f)
{
    crep_snap *s = r->snap;
    snap_out *o = out_find(s, from, f->space);
    if (o && f->id != o->id) out_close(o); /* a new request replaces an old export */
    if (o && !o->s) o = NULL;
    if (!o && f->id) {
        mn__csnap_send(r, from, K_ERR, f->space, f->id, f->seq, E_GONE, NULL, 0);
        return;
    }
    if (!o && !(o = out_open(r, from, f))) return;
    o->used_us = mn__crep_now_us();
    uint32_t n = f->arg > CSNAP_WINDOW ? CSNAP_WINDOW : f->arg;
    bool last = false;
    for (uint32_t k = 0; k < n && !last; k++) {
        uint8_t *chunk;
        size_t len;
        mn_error err = {0};
        if (mn_engine_snapshot_chunk(o->s, f->seq + k, &chunk, &len, &last, &err)) {
            if (k == 0) mn__csnap_send(r, from, K_ERR, f->space, o->id, f->seq, E_GONE, NULL, 0);
            return;
        }
        mn__csnap_send(r, from, K_CHUNK, f->space, o->id, f->seq + k, 0, chunk, len);
        free(chunk);
        r->counts.snap_bytes_sent += len;
        count(s->m_bytes, "sent", len);
    }
    if (last && !o->ended) {
        o->ended = true; /* kept for resends until unused for CSNAP_KEEP_US */
        r->counts.snap_sent++;
        count(s->m_snaps, "sent", 1);
    }
}

/* The replica installed export f->id: its slot is free. */
static void on_done(cl_repl *r, const char *from, const csnap_frame *f)
{
    snap_out *o = out_find(r->snap, from, f->space);
    if (o && o->id == f->id) out_close(o);
}

/* ---- the replica's side ---- */

static snap_in *in_find(crep_snap *s, const char *space)
{
    for (size_t i = 0; i < s->n_ins; i++)
        if (!strcmp(s->ins[i].space, space)) return &s->ins[i];
    return NULL;
}

static void in_reset(snap_in *t)
{
    mn_engine_snapshot_install_abort(t->in);
    t->in = NULL;
    t->from[0] = 0;
    t->asked_to = 0;
    t->asked_us = 0;
    t->bytes = 0;
}

static void in_remove(crep_snap *s, snap_in *t)
{
    in_reset(t);
    size_t i = (size_t)(t - s->ins);
    memmove(t, t + 1, (s->n_ins - i - 1) * sizeof *t);
    s->n_ins--;
}

void mn__crep_snap_needed(cl_repl *r, const char *space)
{
    crep_snap *s = r->snap;
    if (!s || in_find(s, space)) return;
    if (s->n_ins == s->cap_ins) {
        size_t nc = s->cap_ins ? s->cap_ins * 2 : 4;
        snap_in *ni = realloc(s->ins, nc * sizeof *ni);
        if (!ni) return; /* the core says it again on its next fetch answer */
        s->ins = ni;
        s->cap_ins = nc;
    }
    snap_in *t = &s->ins[s->n_ins++];
    memset(t, 0, sizeof *t);
    snprintf(t->space, sizeof t->space, "%s", space);
}

void mn__crep_snap_cancel(cl_repl *r, const char *space)
{
    snap_in *t = r->snap ? in_find(r->snap, space) : NULL;
    if (t) in_remove(r->snap, t);
}

static void ask(cl_repl *r, snap_in *t, int64_t now)
{
    uint32_t next = t->in ? mn_engine_snapshot_install_next(t->in) : 0;
    uint64_t id = t->in ? mn_engine_snapshot_install_id(t->in) : 0;
    if (t->in && next == 0) { /* begun, nothing taken: start clean */
        mn_engine_snapshot_install_abort(t->in);
        t->in = NULL;
    }
    mn__csnap_send(r, t->from, K_REQ, t->space, id, next, CSNAP_WINDOW, NULL, 0);
    t->asked_to = next + CSNAP_WINDOW;
    t->asked_us = now;
}

static void installed(cl_repl *r, snap_in *t)
{
    crep_snap *s = r->snap;
    mn_snapshot_info_t info;
    mn_error err = {0};
    mn__crep_snap_reapply_sync(r); /* what the replaced log handed back outlives it */
    mn_err rc = mn_engine_snapshot_install_finish(t->in, &info, &err);
    t->in = NULL;
    if (rc) {
        r->counts.snap_failed++;
        count(s->m_snaps, "failed", 1);
        mn_log_warn("snap: %s from %s not installed: %s (asked again)", t->space, t->from,
                    err.message);
        t->wait_until_us = mn__crep_now_us() + CSNAP_RETRY_US;
        in_reset(t);
        return;
    }
    /* the export's slot on the primary is free at once (never waits for its idle time) */
    mn__csnap_send(r, t->from, K_DONE, t->space, info.id, 0, 0, NULL, 0);
    crep_space *sp = mn__crep_space(r, t->space);
    if (sp) { /* the ring and the hook's mark may be of the log replaced (a fork) */
        mn__crep_cache_clear(sp);
        sp->hooked_lsn = info.last_lsn;
        sp->diverged = false; /* the forked log is gone: store and acknowledge again */
    }
    rc = mn_spaces_repl_restored(r->core, mn__crep_now_us(), t->space, info.last_lsn,
                                 info.last_epoch, &err);
    double s_el = (double)(mn__crep_now_us() - t->t0_us) / 1e6;
    mn_log_info("snap: %s installed from %s at lsn %llu (epoch %llu): %.1f MB in %.2f s%s%s",
                t->space, t->from, (unsigned long long)info.last_lsn,
                (unsigned long long)info.last_epoch, (double)t->bytes / 1e6, s_el,
                rc ? "; the core refused it: " : "", rc ? err.message : "");
    r->counts.snap_installed++;
    count(s->m_snaps, "installed", 1);
    in_remove(s, t);
}

static void on_chunk(cl_repl *r, const char *from, const csnap_frame *f)
{
    crep_snap *s = r->snap;
    snap_in *t = in_find(s, f->space);
    if (!t || strcmp(t->from, from)) return; /* not asked, or from a former primary */
    uint64_t id = t->in ? mn_engine_snapshot_install_id(t->in) : 0;
    uint32_t next = t->in ? mn_engine_snapshot_install_next(t->in) : 0;
    if (f->seq != next || (next && f->id != id)) return; /* a duplicate or a stale window */
    mn_error err = {0};
    if (!t->in && mn_engine_snapshot_install_begin(r->engine, t->space, &t->in, &err)) {
        mn_log_warn("snap: cannot install %s: %s", t->space, err.message);
        t->wait_until_us = mn__crep_now_us() + CSNAP_RETRY_US;
        return;
    }
    if (!t->bytes) t->t0_us = mn__crep_now_us();
    mn_err rc = mn_engine_snapshot_install_chunk(t->in, f->data, f->len, &err);
    count(s->m_bytes, "received", f->len);
    r->counts.snap_bytes_received += f->len;
    if (rc) { /* damaged: asked again at the next tick, from this chunk */
        mn_log_warn("snap: %s chunk %u from %s refused: %s", t->space, f->seq, from, err.message);
        t->asked_us = 0;
        return;
    }
    t->bytes += f->len;
    t->asked_us = mn__crep_now_us();
    if (mn_engine_snapshot_install_complete(t->in))
        installed(r, t);
    else if (mn_engine_snapshot_install_next(t->in) >= t->asked_to)
        ask(r, t, mn__crep_now_us());
}

static void on_err(cl_repl *r, const char *from, const csnap_frame *f)
{
    snap_in *t = in_find(r->snap, f->space);
    if (!t || strcmp(t->from, from)) return;
    mn_log_info("snap: %s: %s answers %s", f->space, from,
                f->arg == E_GONE   ? "the export is gone: starting over"
                : f->arg == E_BUSY ? "busy"
                                   : "it is not the primary");
    in_reset(t);
    t->wait_until_us = mn__crep_now_us() + (f->arg == E_GONE ? 0 : CSNAP_RETRY_US);
}

/* ---- the channel ---- */

static void on_frame(void *arg, const char *from, const uint8_t *buf, size_t len)
{
    cl_repl *r = arg;
    csnap_frame f;
    if (!frame_parse(buf, len, &f)) return;
    if (f.kind == K_REQ) on_req(r, from, &f);
    if (f.kind == K_CHUNK) on_chunk(r, from, &f);
    if (f.kind == K_ERR) on_err(r, from, &f);
    if (f.kind == K_REAPPLY) mn__csnap_on_reapply(r, from, &f);
    if (f.kind == K_REAPPLIED) mn__csnap_on_reapplied(r, from, &f);
    if (f.kind == K_DONE) on_done(r, from, &f);
}

/* A fetch still wanted, from the primary the core follows now: the core needs it, or the
 * store found the local log forked where the core did not see it (mn__crep_flush's
 * `diverged`: the core then thinks the copy fine, and only a snapshot heals it). */
static bool tick_in(cl_repl *r, snap_in *t, int64_t now, size_t *active)
{
    mn_spaces_repl_status_t st;
    if (mn_spaces_repl_status(r->core, now, t->space, &st)) return false;
    const crep_space *sp = mn__crep_space(r, t->space);
    if (!st.snapshot_needed && !(sp && sp->diverged)) return false;
    if (t->from[0] && strcmp(t->from, st.primary)) in_reset(t); /* a new primary */
    if (!st.primary[0] || !strcmp(st.primary, r->self) || now < t->wait_until_us) return true;
    if (!t->from[0]) {
        if (*active >= CSNAP_INSTALLS_MAX) return true;
        snprintf(t->from, sizeof t->from, "%s", st.primary);
        ++*active;
        mn_log_info("snap: fetching %s from %s", t->space, t->from);
    }
    if (now - t->asked_us >= CSNAP_RETRY_US) ask(r, t, now);
    return true;
}

static void on_tick(void *arg, int64_t now_us)
{
    cl_repl *r = arg;
    crep_snap *s = r->snap;
    for (size_t i = 0; i < CSNAP_EXPORTS_MAX; i++)
        if (s->out[i].s && now_us - s->out[i].used_us > CSNAP_KEEP_US) out_close(&s->out[i]);
    mn__csnap_reapply_tick(r, now_us);
    size_t active = 0;
    for (size_t i = 0; i < s->n_ins; i++)
        active += s->ins[i].from[0] != 0;
    for (size_t i = 0; i < s->n_ins;) {
        if (tick_in(r, &s->ins[i], now_us, &active)) {
            i++;
        } else {
            active -= s->ins[i].from[0] != 0;
            in_remove(s, &s->ins[i]);
        }
    }
}

mn_err mn__crep_snap_start(cl_repl *r, mn_error *err)
{
    crep_snap *s = calloc(1, sizeof *s);
    if (!s) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    mn_metrics_t *m = mn_metrics_process();
    s->m_snaps = mn_metrics_counter(m, "mnemo_repl_snapshots_total",
                                    "Space snapshots: sent (the last chunk served), installed "
                                    "here, failed installs.",
                                    what_label, 1);
    s->m_bytes = mn_metrics_counter(m, "mnemo_repl_snapshot_bytes_total",
                                    "Bytes of snapshot chunks sent and received.", dir_label, 1);
    r->snap = s;
    if (!(s->reap = mn__csnap_reapply_new(r->dir, err)))
        return err && err->code ? err->code : mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    cl_repl_channel ch = {.channel = CREP_CH_SNAP,
                          .arg = r,
                          .on_frame = on_frame,
                          .on_tick = on_tick,
                          .tick_ms = CSNAP_TICK_MS};
    return cl_repl_attach(r, &ch, err);
}

void mn__crep_snap_free(cl_repl *r)
{
    crep_snap *s = r->snap;
    if (!s) return;
    for (size_t i = 0; i < CSNAP_EXPORTS_MAX; i++)
        if (s->out[i].s) out_close(&s->out[i]);
    for (size_t i = 0; i < s->n_ins; i++)
        in_reset(&s->ins[i]);
    mn__csnap_reapply_free(s->reap);
    free(s->ins);
    free(s->buf);
    free(s);
    r->snap = NULL;
}
