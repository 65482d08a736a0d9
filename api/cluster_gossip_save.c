/* The gossip store on disk (docs/gossip.md, "The store across restarts"): the core's records
 * (semantic memories and tombstones, with their payloads) in one file per node,
 * <data_dir>/gossip.store, so that a restarted node answers a partition recall before any
 * peer has pushed them again.
 *
 * Written behind by the feeder thread, at most every CG_SAVE_EVERY_MS while the store changed:
 * encoded under g->mu (memory only), then written outside it to gossip.store.tmp, fsync'd,
 * renamed and the directory fsync'd, so the file is always a whole earlier state. Read once
 * at start, before the core runs: each record is merged into the core (mn_gossip_put; the
 * merge is idempotent, so a record peers hold too changes nothing) and the store follows;
 * records of a space the catalog says is dropped (or older than its incarnation) are skipped.
 * A file that fails its check (magic, version, CRC32C, bounds) is logged, counted, renamed
 * gossip.store.corrupt and the store starts empty: peers bring the records back.
 *
 * Format (little-endian): "MNGOSSIP", u32 version, u32 CRC32C of the rest, u32 records, then
 * per record: u8 space length, the space, id[16], digest[32], f32 confidence, u64 epoch,
 * u64 hlc, u32 support_n, u8 retired, u64 forgotten_hlc, u32 n + n ids of support, u32 n + n
 * ids of forgotten episodes, u32 length + the payload. */
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
#define SAVE_VERSION 1u
#define SAVE_HEAD 16 /* magic, version, crc */
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

mn_err cg_save_encode(cl_gossip *g, uint8_t **out, size_t *len, size_t *records)
{
    buf b = {0};
    put_bytes(&b, SAVE_MAGIC, 8);
    put_le(&b, SAVE_VERSION, 4);
    put_le(&b, 0, 4); /* the CRC, below */
    put_le(&b, 0, 4); /* the count, below */
    size_t n = 0;
    for (size_t i = 0; i < g->n_sp; i++)
        for (size_t j = 0; j < g->sp[i].n; j++) {
            mn_gossip_record_t r;
            if (mn_gossip_get(g->g, g->sp[i].name, &g->sp[i].e[j].id, &r) != MN_OK) continue;
            put_record(&b, g->sp[i].name, &r);
            n++;
        }
    if (b.oom) {
        free(b.p);
        return MN_ERR_NOMEM;
    }
    for (size_t i = 0; i < 4; i++)
        b.p[SAVE_HEAD + i] = (uint8_t)(n >> (8 * i));
    uint32_t crc = mn_crc32c(0, b.p + SAVE_HEAD, b.len - SAVE_HEAD);
    for (size_t i = 0; i < 4; i++)
        b.p[12 + i] = (uint8_t)(crc >> (8 * i));
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

/* Every record of the file to fn (NULL: only checked). */
static mn_err walk(const uint8_t *data, size_t len, cg_save_fn fn, void *arg, mn_error *err)
{
    if (len < SAVE_HEAD + 4 || memcmp(data, SAVE_MAGIC, 8) != 0)
        return mn_error_set(err, MN_ERR_CORRUPT, "not a gossip store (magic)");
    rd r = {.p = data, .len = len, .at = 8};
    uint32_t version = (uint32_t)get_le(&r, 4), crc = (uint32_t)get_le(&r, 4);
    if (version != SAVE_VERSION)
        return mn_error_set(err, MN_ERR_CORRUPT, "version %u, this build reads %u", version,
                            SAVE_VERSION);
    if (mn_crc32c(0, data + SAVE_HEAD, len - SAVE_HEAD) != crc)
        return mn_error_set(err, MN_ERR_CORRUPT, "CRC32C mismatch (truncated or damaged)");
    size_t n = (size_t)get_le(&r, 4);
    for (size_t i = 0; i < n; i++) {
        char space[MN_SPACE_NAME_MAX + 1];
        mn_gossip_record_t rec;
        bool ok = get_record(&r, space, &rec);
        if (ok && fn) fn(arg, space, &rec);
        record_clear(&rec);
        if (!ok) return mn_error_set(err, MN_ERR_CORRUPT, "record %zu of %zu: cut short", i, n);
    }
    if (r.at != len) return mn_error_set(err, MN_ERR_CORRUPT, "bytes after the last record");
    return MN_OK;
}

mn_err cg_save_decode(const uint8_t *data, size_t len, cg_save_fn fn, void *arg, mn_error *err)
{
    /* checked whole before fn sees a record: a bad file changes nothing */
    mn_err rc = walk(data, len, NULL, NULL, err);
    return rc ? rc : walk(data, len, fn, arg, err);
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

void cg_save_maybe(cl_gossip *g, bool force)
{
    int64_t now = mn_time_now_ms();
    if (!force && now - g->last_save_ms < CG_SAVE_EVERY_MS) return;
    uint8_t *data = NULL;
    size_t len = 0, n = 0;
    pthread_mutex_lock(&g->mu);
    bool dirty = g->dirty;
    mn_err rc = dirty ? cg_save_encode(g, &data, &len, &n) : MN_OK;
    if (dirty && rc == MN_OK) g->dirty = false;
    pthread_mutex_unlock(&g->mu);
    if (!dirty) return;
    g->last_save_ms = now;
    mn_error err = {0};
    if (rc == MN_OK) rc = write_durable(g->save_path, data, len, &err);
    free(data);
    if (rc == MN_OK) {
        atomic_store(&g->saved, n);
        return;
    }
    mn_log_error("gossip: cannot save the store (retried): %s",
                 err.message[0] ? err.message : mn_strerror(rc));
    pthread_mutex_lock(&g->mu);
    g->dirty = true; /* what changed is still to be written */
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
        return; /* e.g. a tombstone past the horizon: the core no longer takes it */
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
    mn_err rc = read_all(g->save_path, &data, &len, &err);
    if (rc == MN_ERR_NOT_FOUND) return; /* the first start */
    pthread_mutex_lock(&g->mu);
    if (rc == MN_OK) rc = cg_save_decode(data, len, load_one, g, &err);
    pthread_mutex_unlock(&g->mu);
    free(data);
    if (rc == MN_OK) {
        mn_log_info("gossip: %zu records loaded from %s", g->loaded, g->save_path);
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
