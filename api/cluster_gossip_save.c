/* The gossip store on disk (docs/gossip.md, "The store across restarts"): the core's records
 * (semantic memories and tombstones, with their payloads) in one file per node,
 * <data_dir>/gossip.store, so that a restarted node answers a partition recall before any
 * peer has pushed them again.
 *
 * The file is a log of blocks, written behind by the feeder thread at most every
 * CG_SAVE_EVERY_MS while the store changed. A save appends one block holding the records that
 * changed since the last one (each entry of the store is marked when the core's record
 * changes), then fdatasync: the I/O follows the changes, not the store's size. When the blocks
 * appended since the last rewrite outgrow max(CG_SAVE_REWRITE_MIN, the rewritten file), or
 * records left the store without a record of their own (a dropped space, collected
 * tombstones), or an append failed, the next save rewrites the file whole instead: every
 * record in one block, to gossip.store.tmp, fsync'd, renamed, the directory fsync'd. So the
 * file stays under its last rewrite plus max(CG_SAVE_REWRITE_MIN, that rewrite) plus one
 * block (asserted at each append), and each changed byte is written about twice (once
 * appended, once in the rewrite that follows).
 *
 * Read once at start, before the core runs: each record of each block is merged into the core
 * (mn_gossip_put). The merge is a join (commutative, associative, idempotent: docs/gossip.md,
 * "The merge rule"), so replaying the blocks gives the state of the last save, whatever the
 * versions in between; a record peers hold too changes nothing. The core collects no
 * tombstone before its first gc, so a tombstone in a later block still covers the live
 * version in an earlier one; records of a space the catalog says is dropped (or older than
 * its incarnation) are skipped. What a crash can leave:
 *   - a last block cut short (its length runs past the end): an append the crash
 *     interrupted. The blocks before it are loaded; the cut is logged, counted (store_torn)
 *     and the file rewritten at the first save. Its records come back from peers.
 *   - anything else that does not check out (magic, version, a header or block CRC32C, a
 *     record cut inside a whole block): logged, counted (store_corrupt), the file renamed
 *     gossip.store.corrupt and the store starts empty: peers bring the records back.
 * The whole file is checked before the core sees a record, so a corrupt file changes nothing.
 *
 * Format (little-endian). Version 2: "MNGOSSIP", u32 version, u32 CRC32C of those 12 bytes;
 * then blocks: u32 body length, u32 CRC32C of the body, the body: u32 records, the records.
 * Version 1 (read, rewritten as 2 at the first save): "MNGOSSIP", u32 version, u32 CRC32C of
 * the rest, then a body as above. A record: u8 space length, the space, id[16], digest[32],
 * f32 confidence, u64 epoch, u64 hlc, u32 support_n, u8 retired, u64 forgotten_hlc, u32 n + n
 * ids of support, u32 n + n ids of forgotten episodes, u32 length + the payload. */
#include "cluster_gossip_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster_file.h"
#include "mnemo/assert.h"
#include "mnemo/util.h"

#define SAVE_MAGIC "MNGOSSIP"
#define SAVE_V1 1u
#define SAVE_V2 2u
#define SAVE_HEAD 16 /* magic, version, a CRC32C */
#define BLOCK_HEAD 8 /* body length, CRC32C of the body */
#define SAVE_IDS_MAX 65536u

/* ---- encoding ---- */

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} buf;

static void put_bytes(buf *b, const void *src, size_t n)
{
    if (b->oom) return;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_le(buf *b, uint64_t v, size_t n)
{
    uint8_t x[8];
    for (size_t i = 0; i < n; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    put_bytes(b, x, n);
}

static void put_ids(buf *b, const mn_id_t *ids, size_t n)
{
    put_le(b, n, 4);
    for (size_t i = 0; i < n; i++)
        put_bytes(b, ids[i].b, sizeof ids[i].b);
}

static void put_record(buf *b, const char *space, const mn_gossip_record_t *r)
{
    uint32_t conf;
    memcpy(&conf, &r->confidence, sizeof conf);
    put_le(b, strlen(space), 1);
    put_bytes(b, space, strlen(space));
    put_bytes(b, r->id.b, sizeof r->id.b);
    put_bytes(b, r->digest, sizeof r->digest);
    put_le(b, conf, 4);
    put_le(b, r->epoch, 8);
    put_le(b, r->hlc, 8);
    put_le(b, r->support_n, 4);
    put_le(b, r->retired, 1);
    put_le(b, r->forgotten_hlc, 8);
    put_ids(b, r->support, r->n_support);
    put_ids(b, r->forgotten_eps, r->n_forgotten_eps);
    put_le(b, r->payload_len, 4);
    put_bytes(b, r->payload, r->payload_len);
}

static void patch_le32(uint8_t *p, uint32_t v)
{
    for (size_t i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* One block onto b: every record of the core (all), or those whose entry is marked changed.
 * The marks are cleared: the caller rewrites the file whole if this block does not reach it. */
static size_t put_block(buf *b, cl_gossip *g, bool all)
{
    size_t at = b->len, n = 0;
    put_le(b, 0, 4); /* the body's length, below */
    put_le(b, 0, 4); /* its CRC, below */
    put_le(b, 0, 4); /* the count, below */
    for (size_t i = 0; i < g->n_sp; i++)
        for (size_t j = 0; j < g->sp[i].n; j++) {
            cg_entry *e = &g->sp[i].e[j];
            if (!all && !e->changed) continue;
            e->changed = false;
            mn_gossip_record_t r;
            if (mn_gossip_get(g->g, g->sp[i].name, &e->id, &r) != MN_OK) continue;
            put_record(b, g->sp[i].name, &r);
            n++;
        }
    if (b->oom) return 0;
    mn_assert(b->len - at - BLOCK_HEAD <= UINT32_MAX);
    patch_le32(b->p + at + BLOCK_HEAD, (uint32_t)n);
    patch_le32(b->p + at, (uint32_t)(b->len - at - BLOCK_HEAD));
    patch_le32(b->p + at + 4, mn_crc32c(0, b->p + at + BLOCK_HEAD, b->len - at - BLOCK_HEAD));
    return n;
}

mn_err cg_save_encode(cl_gossip *g, bool all, uint8_t **out, size_t *len, size_t *records)
{
    buf b = {0};
    if (all) {
        put_bytes(&b, SAVE_MAGIC, 8);
        put_le(&b, SAVE_V2, 4);
        put_le(&b, 0, 4);
        if (!b.oom) patch_le32(b.p + 12, mn_crc32c(0, b.p, 12));
    }
    size_t n = put_block(&b, g, all);
    if (b.oom) {
        free(b.p);
        return MN_ERR_NOMEM;
    }
    *out = b.p;
    *len = b.len;
    *records = n;
    return MN_OK;
}

/* ---- decoding ---- */

typedef struct rd {
    const uint8_t *p;
    size_t len, at;
    bool bad;
} rd;

static const uint8_t *take(rd *r, size_t n)
{
    if (r->bad || r->len - r->at < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->at;
    r->at += n;
    return p;
}

static uint64_t get_le(rd *r, size_t n)
{
    const uint8_t *p = take(r, n);
    uint64_t v = 0;
    for (size_t i = 0; p && i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* n ids in place (unaligned bytes copied into ids, malloc'd; NULL when none). */
static mn_id_t *get_ids(rd *r, size_t *n)
{
    *n = (size_t)get_le(r, 4);
    if (*n > SAVE_IDS_MAX) r->bad = true;
    const uint8_t *p = take(r, *n * sizeof(mn_id_t));
    if (!p || !*n) return NULL;
    mn_id_t *ids = malloc(*n * sizeof *ids);
    if (!ids) {
        r->bad = true;
        return NULL;
    }
    memcpy(ids, p, *n * sizeof *ids);
    return ids;
}

/* One record into *out (its arrays malloc'd, freed by record_clear; its payload points into
 * the input) and its space into space; false when the bytes do not hold one. */
static bool get_record(rd *r, char space[MN_SPACE_NAME_MAX + 1], mn_gossip_record_t *out)
{
    memset(out, 0, sizeof *out);
    size_t sl = (size_t)get_le(r, 1);
    const uint8_t *s = take(r, sl);
    if (!s || sl == 0 || sl > MN_SPACE_NAME_MAX) return false;
    memcpy(space, s, sl);
    space[sl] = '\0';
    const uint8_t *id = take(r, sizeof out->id.b), *digest = take(r, sizeof out->digest);
    if (!id || !digest) return false;
    memcpy(out->id.b, id, sizeof out->id.b);
    memcpy(out->digest, digest, sizeof out->digest);
    uint32_t conf = (uint32_t)get_le(r, 4);
    memcpy(&out->confidence, &conf, sizeof conf);
    out->epoch = get_le(r, 8);
    out->hlc = get_le(r, 8);
    out->support_n = (uint32_t)get_le(r, 4);
    out->retired = get_le(r, 1) != 0;
    out->forgotten_hlc = get_le(r, 8);
    out->support = get_ids(r, &out->n_support);
    out->forgotten_eps = get_ids(r, &out->n_forgotten_eps);
    out->payload_len = (size_t)get_le(r, 4);
    out->payload = out->payload_len ? take(r, out->payload_len) : NULL;
    return !r->bad;
}

static void record_clear(mn_gossip_record_t *r)
{
    free((void *)r->support);
    free((void *)r->forgotten_eps);
}

/* The records of one body (u32 count, the records; exactly len bytes) to fn (NULL: only
 * checked). */
static mn_err walk_body(const uint8_t *p, size_t len, size_t block, cg_save_fn fn, void *arg,
                        mn_error *err)
{
    rd r = {.p = p, .len = len};
    size_t n = (size_t)get_le(&r, 4);
    for (size_t i = 0; i < n; i++) {
        char space[MN_SPACE_NAME_MAX + 1];
        mn_gossip_record_t rec;
        bool ok = get_record(&r, space, &rec);
        if (ok && fn) fn(arg, space, &rec);
        record_clear(&rec);
        if (!ok)
            return mn_error_set(err, MN_ERR_CORRUPT, "block %zu, record %zu of %zu: cut short",
                                block, i, n);
    }
    if (r.bad || r.at != len)
        return mn_error_set(err, MN_ERR_CORRUPT, "block %zu: bytes after its last record", block);
    return MN_OK;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Every record of the file to fn (NULL: only checked); info says where the good blocks end. */
static mn_err walk(const uint8_t *data, size_t len, cg_save_fn fn, void *arg, cg_save_info *info,
                   mn_error *err)
{
    memset(info, 0, sizeof *info);
    if (len < SAVE_HEAD || memcmp(data, SAVE_MAGIC, 8) != 0)
        return mn_error_set(err, MN_ERR_CORRUPT, "not a gossip store (magic)");
    info->version = le32(data + 8);
    if (info->version == SAVE_V1) { /* one CRC over the rest, one body */
        if (mn_crc32c(0, data + SAVE_HEAD, len - SAVE_HEAD) != le32(data + 12))
            return mn_error_set(err, MN_ERR_CORRUPT, "CRC32C mismatch (truncated or damaged)");
        info->blocks = 1;
        info->good_len = len;
        return walk_body(data + SAVE_HEAD, len - SAVE_HEAD, 0, fn, arg, err);
    }
    if (info->version != SAVE_V2)
        return mn_error_set(err, MN_ERR_CORRUPT, "version %u, this build reads %u and %u",
                            info->version, SAVE_V1, SAVE_V2);
    if (mn_crc32c(0, data, 12) != le32(data + 12))
        return mn_error_set(err, MN_ERR_CORRUPT, "header CRC32C mismatch");
    size_t at = SAVE_HEAD;
    while (at < len) {
        size_t left = len - at;
        if (left < BLOCK_HEAD || le32(data + at) > left - BLOCK_HEAD) {
            info->torn = true; /* an append a crash cut short: the blocks before it stand */
            break;
        }
        size_t blen = le32(data + at);
        const uint8_t *body = data + at + BLOCK_HEAD;
        if (mn_crc32c(0, body, blen) != le32(data + at + 4))
            return mn_error_set(err, MN_ERR_CORRUPT, "block %zu at byte %zu: CRC32C mismatch",
                                info->blocks, at);
        mn_err rc = walk_body(body, blen, info->blocks, fn, arg, err);
        if (rc != MN_OK) return rc;
        info->blocks++;
        at += BLOCK_HEAD + blen;
    }
    info->good_len = at;
    return MN_OK;
}

mn_err cg_save_decode(const uint8_t *data, size_t len, cg_save_fn fn, void *arg, cg_save_info *info,
                      mn_error *err)
{
    /* checked whole before fn sees a record: a bad file changes nothing */
    mn_err rc = walk(data, len, NULL, NULL, info, err);
    return rc ? rc : walk(data, len, fn, arg, info, err);
}

/* ---- the file ---- */

static mn_err write_durable(const char *path, const uint8_t *data, size_t len, mn_error *err)
{
    char tmp[4200], dir[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    return cl_file_replace(tmp, path, dir, data, len, err);
}

/* The file opened for appending (feeder thread; -1 when it cannot be). */
static void reopen(cl_gossip *g)
{
    if (g->save_fd >= 0) close(g->save_fd);
    g->save_fd = open(g->save_path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (g->save_fd < 0)
        mn_log_warn("gossip: cannot open %s to append (%s): each save rewrites it whole",
                    g->save_path, strerror(errno));
}

static size_t rewrite_after(const cl_gossip *g)
{
    return g->rewritten_bytes > CG_SAVE_REWRITE_MIN ? g->rewritten_bytes : CG_SAVE_REWRITE_MIN;
}

static mn_err append_durable(cl_gossip *g, const uint8_t *data, size_t len, mn_error *err)
{
    for (size_t off = 0; off < len;) {
        ssize_t w = write(g->save_fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return mn_error_set(err, MN_ERR_IO, "cannot append: %s", strerror(errno));
        off += (size_t)w;
    }
    if (fdatasync(g->save_fd) != 0)
        return mn_error_set(err, MN_ERR_IO, "cannot fdatasync: %s", strerror(errno));
    return MN_OK;
}

/* Records the core holds (what the file stands for once written), under mu. */
static size_t records_held(cl_gossip *g)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n_sp; i++) {
        uint8_t root[MN_GOSSIP_DIGEST_LEN];
        uint64_t count = 0;
        mn_gossip_root(g->g, g->sp[i].name, root, &count);
        n += (size_t)count;
    }
    return n;
}

void cg_save_maybe(cl_gossip *g, bool force)
{
    int64_t now = mn_time_now_ms();
    if (!force && now - g->last_save_ms < CG_SAVE_EVERY_MS) return;
    bool outgrown = g->file_bytes - g->rewritten_bytes > rewrite_after(g);
    uint8_t *data = NULL;
    size_t len = 0, n = 0, held = 0;
    pthread_mutex_lock(&g->mu);
    bool due = g->dirty || g->save_full;
    bool whole = g->save_full || g->save_fd < 0 || outgrown;
    mn_err rc = due ? cg_save_encode(g, whole, &data, &len, &n) : MN_OK;
    if (due) {
        g->dirty = false; /* the marks went with the block, or the file is rewritten next */
        g->save_full = rc != MN_OK;
        held = records_held(g);
    }
    pthread_mutex_unlock(&g->mu);
    if (!due) return;
    g->last_save_ms = now;
    mn_error err = {0};
    if (rc == MN_OK)
        rc = whole ? write_durable(g->save_path, data, len, &err)
                   : append_durable(g, data, len, &err);
    free(data);
    if (rc == MN_OK) {
        if (whole) {
            reopen(g);
            g->rewritten_bytes = g->file_bytes = len;
            atomic_fetch_add(&g->rewrites, 1);
        } else {
            g->file_bytes += len;
            /* the bound the header states: appended only while not outgrown */
            mn_assert(g->file_bytes - g->rewritten_bytes <= rewrite_after(g) + len);
            atomic_fetch_add(&g->appends, 1);
        }
        atomic_store(&g->saved, held);
        atomic_store(&g->saved_bytes, g->file_bytes);
        atomic_fetch_add(&g->saved_records, n);
        return;
    }
    mn_log_error("gossip: cannot save the store (the whole file is rewritten next): %s",
                 err.message[0] ? err.message : mn_strerror(rc));
    pthread_mutex_lock(&g->mu);
    g->save_full = true; /* a rewrite holds every record, whatever this save left behind */
    pthread_mutex_unlock(&g->mu);
}

/* A record of the file into the core and the store (unless its space no longer admits it). */
static void load_one(void *arg, const char *space, const mn_gossip_record_t *rec)
{
    cl_gossip *g = arg;
    if (mn_id_time_ms(&rec->id) < cl_catalog_stale_before(g->catalog, space)) return;
    mn_error err = {0};
    mn_gossip_record_t now;
    if (mn_gossip_put(g->g, space, rec, &err) != MN_OK ||
        mn_gossip_get(g->g, space, &rec->id, &now) != MN_OK)
        return; /* e.g. a record the core refuses: it stays out */
    cg_store_apply(g, space, &now);
    g->loaded++;
}

static mn_err read_all(const char *path, uint8_t **data, size_t *len, mn_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT
                   ? MN_ERR_NOT_FOUND
                   : mn_error_set(err, MN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    mn_err rc = MN_OK;
    *data = NULL;
    if (fstat(fileno(f), &st) != 0)
        rc = mn_error_set(err, MN_ERR_IO, "cannot stat %s", path);
    else if (!(*data = malloc(st.st_size ? (size_t)st.st_size : 1)))
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    else if (fread(*data, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        rc = mn_error_set(err, MN_ERR_IO, "cannot read %s", path);
    fclose(f);
    *len = rc ? 0 : (size_t)st.st_size;
    return rc;
}

void cg_save_load(cl_gossip *g)
{
    uint8_t *data = NULL;
    size_t len = 0;
    mn_error err = {0};
    cg_save_info info;
    memset(&info, 0, sizeof info);
    mn_err rc = read_all(g->save_path, &data, &len, &err);
    if (rc == MN_ERR_NOT_FOUND) return; /* the first start: the first save writes the file */
    pthread_mutex_lock(&g->mu);
    if (rc == MN_OK) rc = cg_save_decode(data, len, load_one, g, &info, &err);
    /* the marks the loading set: the file already holds those records */
    for (size_t i = 0; i < g->n_sp; i++)
        for (size_t j = 0; j < g->sp[i].n; j++)
            g->sp[i].e[j].changed = false;
    g->dirty = false;
    /* one clean block of this version is appended to as it is; anything else is rewritten */
    g->save_full = rc != MN_OK || info.version != SAVE_V2 || info.blocks != 1 || info.torn;
    pthread_mutex_unlock(&g->mu);
    free(data);
    if (rc == MN_OK) {
        g->file_bytes = info.good_len;
        g->rewritten_bytes = info.blocks == 1 ? info.good_len : 0;
        atomic_store(&g->saved_bytes, len);
        if (!g->save_full) reopen(g);
        if (info.torn) {
            g->torn++;
            mn_log_warn("gossip: %s: its last %zu byte(s) are an append cut short (a crash while "
                        "saving); the %zu block(s) before them are loaded, the file is "
                        "rewritten, peers bring the rest back",
                        g->save_path, len - info.good_len, info.blocks);
        }
        mn_log_info("gossip: %zu records loaded from %s (%zu block(s))", g->loaded, g->save_path,
                    info.blocks);
        return;
    }
    char aside[4200];
    snprintf(aside, sizeof aside, "%s.corrupt", g->save_path);
    bool moved = rename(g->save_path, aside) == 0;
    mn_log_error("gossip: %s cannot be read (%s): %s; the store starts empty (peers bring the "
                 "records back)",
                 g->save_path, err.message, moved ? "set aside as .corrupt" : "left in place");
    g->corrupt++;
}
