/* Saving and loading an HNSW graph: one file per index, written to a temp
 * name, fsynced and renamed into place, so a crash leaves the old file or the
 * new one. Layout (native little-endian):
 *
 *   header  magic "MNHNSW\0\1", u32 version, u32 dim, metric, M, ef_c, ef_s,
 *           quantize, owned, u64 lsn, seed, draws, live, removed, u32 hwm,
 *           n_ublk, entry slot, entry level, u32 CRC32C of the header
 *   body    layer-0 blocks of slots [0, hwm) (seqlocks stored as 0),
 *           upper[hwm], each upper block (level, lists), labels[hwm][20]
 *           (version 1: [16]), own vectors [hwm][dim] if owned, code rows
 *           [hwm] if quantized
 *   trailer u32 CRC32C of the body
 *
 * A save holds inserts and removes off (h->writers) but not searches, so an
 * engine that saves from its single index-writing thread blocks nobody.
 *
 * Loading checks both checksums and then the structure itself (counts in
 * range, ids below hwm, upper-layer ids that live on that layer, a live entry),
 * so even a file with a valid checksum cannot make a search read out of
 * bounds. Any failure is MN_ERR_CORRUPT and the caller rebuilds. A loader
 * that renumbers (remap) may drop nodes, e.g. memories forgotten since the
 * save; their neighbours are repaired as a removal repairs them. */
#include "hnsw_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mnemo/util.h"

static const char MAGIC[8] = {'M', 'N', 'H', 'N', 'S', 'W', 0, 1};
#define VERSION 2u
#define V1_LABEL_LEN 16

typedef struct file_header {
    char magic[8];
    uint32_t version, dim, metric, M, ef_c, ef_s, quantize, owned;
    uint64_t lsn, seed, draws, live, removed;
    uint32_t hwm, n_ublk, entry_slot, entry_level;
    uint32_t crc;
} file_header;

typedef struct writer {
    FILE *f;
    uint32_t crc;
    bool bad;
} writer;

static void put(writer *w, const void *p, size_t n)
{
    if (w->bad || !n) return;
    w->crc = mn_crc32c(w->crc, p, n);
    if (fwrite(p, 1, n, w->f) != n) w->bad = true;
}

static mn_err fsync_dir_of(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return MN_ERR_IO;
    int rc = fsync(fd);
    close(fd);
    return rc ? MN_ERR_IO : MN_OK;
}

mn_err mn_hnsw_save(mn_hnsw_t *h, const char *path, uint64_t lsn, mn_hnsw_label_fn label, void *arg,
                    mn_error *err)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return mn_error_set(err, MN_ERR_INVALID, "hnsw: path too long");
    pthread_rwlock_wrlock(&h->writers);
    pthread_rwlock_rdlock(&h->grow);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        pthread_rwlock_unlock(&h->grow);
        pthread_rwlock_unlock(&h->writers);
        return mn_error_set(err, MN_ERR_IO, "hnsw: cannot create %s: %s", tmp, strerror(errno));
    }
    uint32_t hwm = atomic_load(&h->hwm);
    uint64_t e = atomic_load(&h->entry);
    file_header hd;
    memset(&hd, 0, sizeof hd);
    memcpy(hd.magic, MAGIC, 8);
    hd.version = VERSION;
    hd.dim = h->dim;
    hd.metric = (uint32_t)h->p.metric;
    hd.M = h->M;
    hd.ef_c = h->p.ef_construction;
    hd.ef_s = h->p.ef_search;
    hd.quantize = h->p.quantize;
    hd.owned = h->own != NULL;
    hd.lsn = lsn;
    hd.seed = h->p.seed;
    hd.draws = atomic_load(&h->draws);
    hd.live = atomic_load(&h->live);
    hd.removed = atomic_load(&h->removed);
    hd.hwm = hwm;
    hd.n_ublk = h->n_ublk;
    hd.entry_slot = e == HNSW_ENTRY_NONE ? UINT32_MAX : (uint32_t)e;
    hd.entry_level = e == HNSW_ENTRY_NONE ? 0 : (uint32_t)(e >> 32);
    hd.crc = mn_crc32c(0, &hd, offsetof(file_header, crc));
    writer w = {f, 0, fwrite(&hd, sizeof hd, 1, f) != 1};
    uint32_t *buf = malloc((size_t)h->l0w * sizeof *buf);
    if (!buf) w.bad = true;
    for (uint32_t s = 0; s < hwm && !w.bad; s++) {
        const _Atomic uint32_t *b = hnsw_l0(h, s);
        buf[0] = 0;
        for (uint32_t i = 1; i < h->l0w; i++)
            buf[i] = atomic_load_explicit(&b[i], memory_order_relaxed);
        put(&w, buf, (size_t)h->l0w * sizeof *buf);
    }
    free(buf);
    put(&w, h->upper, (size_t)hwm * sizeof *h->upper);
    for (uint32_t i = 1; i < h->n_ublk && !w.bad; i++) {
        uint32_t lv = atomic_load_explicit(&h->ublk[i][0], memory_order_relaxed);
        put(&w, (const void *)h->ublk[i], (1 + (size_t)lv * h->upw) * sizeof(uint32_t));
    }
    for (uint32_t s = 0; s < hwm && !w.bad; s++) {
        uint8_t lb[MN_HNSW_LABEL_LEN] = {0};
        if (label && (hnsw_flags(h, s) & (HNSW_LIVE | HNSW_REMOVED)) == HNSW_LIVE)
            label(arg, s, lb);
        put(&w, lb, sizeof lb);
    }
    if (h->own) put(&w, h->own, (size_t)hwm * h->dim * sizeof(float));
    if (h->codes) put(&w, h->codes, (size_t)hwm * h->code_stride);
    uint32_t crc = w.crc;
    if (!w.bad && fwrite(&crc, sizeof crc, 1, f) != 1) w.bad = true;
    if (!w.bad && (fflush(f) || fsync(fileno(f)))) w.bad = true;
    if (fclose(f)) w.bad = true;
    pthread_rwlock_unlock(&h->grow);
    pthread_rwlock_unlock(&h->writers);
    if (w.bad || rename(tmp, path) || fsync_dir_of(path)) {
        int en = errno;
        unlink(tmp);
        return mn_error_set(err, MN_ERR_IO, "hnsw: cannot write %s: %s", path, strerror(en));
    }
    return MN_OK;
}

typedef struct reader {
    FILE *f;
    uint32_t crc;
    bool bad;
} reader;

static void get(reader *r, void *p, size_t n)
{
    if (r->bad || !n) return;
    if (fread(p, 1, n, r->f) != n) {
        r->bad = true;
        return;
    }
    r->crc = mn_crc32c(r->crc, p, n);
}

/* Structural checks of a freshly read graph of hwm slots. */
static bool graph_valid(const mn_hnsw_t *h, uint32_t hwm, uint64_t entry)
{
    uint64_t live = 0;
    for (uint32_t s = 0; s < hwm; s++) {
        uint32_t w = atomic_load_explicit(hnsw_l0(h, s) + 1, memory_order_relaxed);
        if (w & ~(HNSW_COUNT_MASK | HNSW_LIVE | HNSW_REMOVED)) return false;
        if (!(w & HNSW_LIVE)) {
            if (w || h->upper[s]) return false;
            continue;
        }
        if ((w & HNSW_REMOVED) == 0) live++;
        if (h->upper[s] >= h->n_ublk) return false;
        uint32_t lv = hnsw_level(h, s);
        if (lv > HNSW_MAX_LEVEL || (h->upper[s] && lv == 0)) return false;
        for (uint32_t l = 0; l <= lv; l++) {
            const _Atomic uint32_t *lst = hnsw_list(h, s, l);
            uint32_t n = atomic_load_explicit(lst, memory_order_relaxed) & HNSW_COUNT_MASK;
            if (n > hnsw_max_links(h, l)) return false;
            for (uint32_t i = 0; i < n; i++) {
                uint32_t x = atomic_load_explicit(lst + 1 + i, memory_order_relaxed);
                if (x >= hwm || !(hnsw_flags(h, x) & HNSW_LIVE)) return false;
                if (l && hnsw_level(h, x) < l) return false;
            }
        }
    }
    /* each upper block belongs to at most one slot */
    uint8_t *seen = calloc(h->n_ublk ? h->n_ublk : 1, 1);
    if (!seen) return false;
    bool ok = true;
    for (uint32_t s = 0; s < hwm && ok; s++) {
        uint32_t u = h->upper[s];
        if (u && seen[u]++) ok = false;
    }
    free(seen);
    if (!ok || live != atomic_load(&h->live)) return false;
    if (entry == HNSW_ENTRY_NONE) return live == 0;
    uint32_t es = (uint32_t)entry;
    return es < hwm && (hnsw_flags(h, es) & HNSW_LIVE) &&
           hnsw_level(h, es) == (uint32_t)(entry >> 32);
}

/* Adds an upper block, growing the table (single-threaded: loading). */
static mn_err ublk_grow_or_add(mn_hnsw_t *h, uint32_t level, uint32_t *idx)
{
    mn_err rc = hnsw_ublk_add(h, level, idx);
    if (rc != MN_ERR_BUSY) return rc;
    if ((rc = hnsw_ublk_grow_locked(h))) return rc;
    return hnsw_ublk_add(h, level, idx);
}

/* Candidates gathered to repair one list at load (the kept links and the
 * links of the dropped ones). */
#define REPAIR_CANDS (8 * HNSW_MAX_M)

/* Slot s of src -> its new slot (UINT32_MAX: dropped) for every live node, through
 * remap. *max_new is the highest new slot, *any whether there is one. */
static void remap_slots(mn_hnsw_t *src, uint32_t hwm, const uint8_t *labels, mn_hnsw_remap_fn remap,
                        void *arg, uint32_t *map, uint64_t *max_new, bool *any,
                        uint64_t *n_dropped)
{
    *max_new = 0;
    *any = false;
    for (uint32_t s = 0; s < hwm; s++) {
        map[s] = UINT32_MAX;
        if ((hnsw_flags(src, s) & (HNSW_LIVE | HNSW_REMOVED)) != HNSW_LIVE) continue;
        uint32_t n = remap(arg, s, labels + (size_t)s * MN_HNSW_LABEL_LEN);
        if (n >= UINT32_MAX - 1) {
            (*n_dropped)++;
            continue;
        }
        map[s] = n;
        if (!*any || n > *max_new) *max_new = n;
        *any = true;
    }
}

/* The kept nodes of src in h at their new slots: level, flags, owned vector, codes.
 * A second node mapped to the same slot is dropped (the first is kept). *best is the
 * highest-level node, the entry point unless src's own entry survives. */
static mn_err copy_nodes(mn_hnsw_t *src, mn_hnsw_t *h, uint32_t hwm, uint32_t *map, uint64_t *best,
                         uint64_t *n_dropped)
{
    *best = HNSW_ENTRY_NONE;
    for (uint32_t s = 0; s < hwm; s++) {
        uint32_t t = map[s];
        if (t == UINT32_MAX) continue;
        if (atomic_load_explicit(hnsw_l0(h, t) + 1, memory_order_relaxed) & HNSW_LIVE) {
            map[s] = UINT32_MAX; /* a second node for the same slot: keep the first */
            (*n_dropped)++;
            continue;
        }
        uint32_t lv = hnsw_level(src, s);
        if (lv) {
            uint32_t idx;
            mn_err rc = ublk_grow_or_add(h, lv, &idx);
            if (rc) return rc;
            h->upper[t] = idx;
        }
        atomic_store_explicit(hnsw_l0(h, t) + 1, HNSW_LIVE, memory_order_relaxed);
        if (src->own)
            memcpy(h->own + (size_t)t * h->dim, src->own + (size_t)s * src->dim, h->dim * 4);
        if (src->codes)
            memcpy(h->codes + (size_t)t * h->code_stride, src->codes + (size_t)s * h->code_stride,
                   h->code_stride);
        if (*best == HNSW_ENTRY_NONE || lv > (uint32_t)(*best >> 32))
            *best = (uint64_t)lv << 32 | t;
        atomic_fetch_add(&h->live, 1);
    }
    return MN_OK;
}

/* Node s's list at level l, renumbered into h's slot t; a list that lost links to
 * dropped nodes gets them replaced from those nodes' kept links (subs, scratch:
 * REPAIR_CANDS each). */
static void copy_list(mn_hnsw_t *src, mn_hnsw_t *h, const uint32_t *map, uint32_t s, uint32_t t,
                      uint32_t l, uint32_t *subs, hnsw_cand *scratch)
{
    uint32_t ids[2 * HNSW_MAX_M], refilled[2 * HNSW_MAX_M];
    const _Atomic uint32_t *lst = hnsw_list(src, s, l);
    uint32_t n = atomic_load_explicit(lst, memory_order_relaxed) & HNSW_COUNT_MASK, m = 0;
    uint32_t ns = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t o = atomic_load_explicit(lst + 1 + i, memory_order_relaxed);
        if (map[o] != UINT32_MAX) {
            ids[m++] = map[o];
            continue;
        }
        /* o is dropped: its kept links are the substitutes */
        const _Atomic uint32_t *ol = hnsw_list(src, o, l);
        uint32_t on = atomic_load_explicit(ol, memory_order_relaxed) & HNSW_COUNT_MASK;
        for (uint32_t j = 0; j < on && ns < REPAIR_CANDS; j++) {
            uint32_t x = map[atomic_load_explicit(ol + 1 + j, memory_order_relaxed)];
            if (x != UINT32_MAX && x != t) subs[ns++] = x;
        }
    }
    if (m < n && ns) {
        m = hnsw_refill(h, hnsw_base(h), t, l, ids, m, subs, ns, n, refilled, scratch);
        hnsw_write_list(h, t, l, refilled, m);
    } else {
        hnsw_write_list(h, t, l, ids, m);
    }
}

/* Every kept node's lists, renumbered (copy_list). */
static mn_err copy_lists(mn_hnsw_t *src, mn_hnsw_t *h, uint32_t hwm, const uint32_t *map,
                         mn_error *err)
{
    uint32_t *subs = malloc(REPAIR_CANDS * sizeof *subs);
    hnsw_cand *scratch = malloc(REPAIR_CANDS * sizeof *scratch);
    mn_err rc = MN_OK;
    if (!subs || !scratch) {
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (uint32_t s = 0; s < hwm; s++) {
        uint32_t t = map[s];
        if (t == UINT32_MAX) continue;
        uint32_t lv = hnsw_level(src, s);
        for (uint32_t l = 0; l <= lv; l++) copy_list(src, h, map, s, t, l, subs, scratch);
    }
out:
    free(subs);
    free(scratch);
    return rc;
}

/* Renumbers a loaded graph through remap into a new index (ext as given):
 * nodes remap drops are left out and the lists that linked to them repaired. */
static mn_err remap_graph(mn_hnsw_t *src, uint32_t hwm, const uint8_t *labels, mn_hnsw_remap_fn remap,
                          void *arg, float *const *ext, mn_hnsw_t **out, uint64_t *dropped,
                          mn_error *err)
{
    uint32_t *map = malloc((size_t)(hwm ? hwm : 1) * sizeof *map);
    if (!map) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    uint64_t max_new, n_dropped = 0, best;
    bool any;
    remap_slots(src, hwm, labels, remap, arg, map, &max_new, &any, &n_dropped);
    mn_hnsw_t *h = NULL;
    mn_err rc = hnsw_alloc(&src->p, ext, &h, err);
    if (rc) goto out;
    if ((any && (rc = hnsw_grow_locked(h, (uint32_t)max_new + 1))) ||
        (rc = copy_nodes(src, h, hwm, map, &best, &n_dropped)) ||
        (rc = copy_lists(src, h, hwm, map, err)))
        goto out;
    uint64_t e = atomic_load(&src->entry);
    if (e != HNSW_ENTRY_NONE && map[(uint32_t)e] != UINT32_MAX)
        best = (e >> 32) << 32 | map[(uint32_t)e];
    atomic_store(&h->entry, best);
    atomic_store(&h->hwm, any ? (uint32_t)max_new + 1 : 0);
    atomic_store(&h->draws, atomic_load(&src->draws));
    if (dropped) *dropped = n_dropped;
out:
    free(map);
    if (rc)
        mn_hnsw_free(h);
    else
        *out = h;
    return rc;
}

/* The file's header, checked: magic, checksum, version, and the parameters the
 * caller opens with (a graph saved with others is refused). */
static mn_err read_header(FILE *f, const char *path, const mn_hnsw_params_t *p, float *const *ext,
                          file_header *hd, mn_error *err)
{
    if (fread(hd, sizeof *hd, 1, f) != 1 || memcmp(hd->magic, MAGIC, 8) ||
        hd->crc != mn_crc32c(0, hd, offsetof(file_header, crc)) ||
        (hd->version != VERSION && hd->version != 1))
        return mn_error_set(err, MN_ERR_CORRUPT, "hnsw: %s: bad header", path);
    uint32_t M = p->M ? p->M : 16;
    if (hd->dim != p->dim || hd->metric != (uint32_t)p->metric || hd->M != M ||
        hd->quantize != (uint32_t)p->quantize || hd->owned != (ext == NULL))
        return mn_error_set(err, MN_ERR_CORRUPT, "hnsw: %s: saved with other parameters", path);
    if (hd->n_ublk == 0 || hd->n_ublk > hd->hwm + 1)
        return mn_error_set(err, MN_ERR_CORRUPT, "hnsw: %s: bad block count", path);
    return MN_OK;
}

/* Layer 0's lists of hwm slots into h (a short read marks r bad). */
static mn_err read_layer0(reader *r, mn_hnsw_t *h, uint32_t hwm, mn_error *err)
{
    uint32_t *buf = malloc((size_t)h->l0w * sizeof *buf);
    if (!buf) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (uint32_t s = 0; s < hwm && !r->bad; s++) {
        get(r, buf, (size_t)h->l0w * sizeof *buf);
        _Atomic uint32_t *b = hnsw_l0(h, s);
        for (uint32_t i = 1; i < h->l0w; i++)
            atomic_store_explicit(&b[i], buf[i], memory_order_relaxed);
    }
    free(buf);
    return MN_OK;
}

/* The upper layers' blocks (block 0 is the allocator's empty one); a bad level marks
 * r bad. */
static mn_err read_upper(reader *r, mn_hnsw_t *h, uint32_t n_ublk, mn_error *err)
{
    for (uint32_t i = 1; i < n_ublk && !r->bad; i++) {
        uint32_t lv;
        get(r, &lv, sizeof lv);
        if (r->bad || lv == 0 || lv > HNSW_MAX_LEVEL) {
            r->bad = true;
            break;
        }
        uint32_t idx;
        mn_err rc = ublk_grow_or_add(h, lv, &idx);
        if (rc) return mn_error_set(err, rc, "out of memory");
        uint32_t *tmp = malloc((size_t)lv * h->upw * sizeof *tmp);
        if (!tmp) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        get(r, tmp, (size_t)lv * h->upw * sizeof *tmp);
        for (size_t j = 0; j < (size_t)lv * h->upw; j++)
            atomic_store_explicit(&h->ublk[idx][1 + j], tmp[j], memory_order_relaxed);
        free(tmp);
    }
    return MN_OK;
}

/* The slots' labels (version 1 files hold 16-byte ones: each is read into the front of
 * its slot); *labels is calloc'd. */
static mn_err read_labels(reader *r, const file_header *hd, uint8_t **labels, mn_error *err)
{
    *labels = calloc(hd->hwm ? hd->hwm : 1, MN_HNSW_LABEL_LEN);
    if (!*labels) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    if (hd->version == 1)
        for (uint32_t s = 0; s < hd->hwm && !r->bad; s++)
            get(r, *labels + (size_t)s * MN_HNSW_LABEL_LEN, V1_LABEL_LEN);
    else
        get(r, *labels, (size_t)hd->hwm * MN_HNSW_LABEL_LEN);
    return MN_OK;
}

/* The body after the header: lists, blocks, labels, vectors and codes, then the
 * body's checksum and the end of the file. */
static mn_err read_body(FILE *f, const char *path, const file_header *hd, mn_hnsw_t *h,
                        uint8_t **labels, mn_error *err)
{
    reader r = {f, 0, false};
    mn_err rc;
    if ((rc = read_layer0(&r, h, hd->hwm, err))) return rc;
    get(&r, h->upper, (size_t)hd->hwm * sizeof *h->upper);
    if ((rc = read_upper(&r, h, hd->n_ublk, err)) || (rc = read_labels(&r, hd, labels, err)))
        return rc;
    if (hd->owned) get(&r, h->own, (size_t)hd->hwm * h->dim * sizeof(float));
    if (hd->quantize) get(&r, h->codes, (size_t)hd->hwm * h->code_stride);
    uint32_t body_crc = r.crc, stored;
    if (r.bad || fread(&stored, sizeof stored, 1, f) != 1 || stored != body_crc ||
        fgetc(f) != EOF)
        return mn_error_set(err, MN_ERR_CORRUPT, "hnsw: %s: checksum mismatch or truncated",
                            path);
    return MN_OK;
}

mn_err mn_hnsw_load(const char *path, const mn_hnsw_params_t *p, float *const *ext,
                    mn_hnsw_remap_fn remap, void *arg, uint64_t *lsn, mn_hnsw_t **out,
                    uint64_t *dropped, mn_error *err)
{
    *out = NULL;
    if (dropped) *dropped = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return mn_error_set(err, MN_ERR_NOT_FOUND, "hnsw: no saved graph");
        return mn_error_set(err, MN_ERR_IO, "hnsw: cannot open %s: %s", path, strerror(errno));
    }
    file_header hd;
    mn_hnsw_t *h = NULL;
    uint8_t *labels = NULL;
    mn_err rc = read_header(f, path, p, ext, &hd, err);
    if (rc) goto out;
    mn_hnsw_params_t hp = *p;
    hp.M = p->M ? p->M : 16;
    hp.seed = hd.seed;
    /* With remap, the file is read into a staging index that computes no
     * distances: in ext mode it needs no vector array at all. */
    float *no_vectors = NULL;
    float *const *stage_ext = remap ? (ext ? &no_vectors : NULL) : ext;
    if ((rc = hnsw_alloc(&hp, stage_ext, &h, err))) goto out;
    if (hd.hwm && (rc = hnsw_grow_locked(h, hd.hwm))) {
        rc = mn_error_set(err, rc, "out of memory");
        goto out;
    }
    if ((rc = read_body(f, path, &hd, h, &labels, err))) goto out;
    uint64_t entry = hd.entry_slot == UINT32_MAX ? HNSW_ENTRY_NONE
                                                 : (uint64_t)hd.entry_level << 32 | hd.entry_slot;
    atomic_store(&h->live, hd.live);
    atomic_store(&h->removed, hd.removed);
    atomic_store(&h->draws, hd.draws);
    atomic_store(&h->hwm, hd.hwm);
    atomic_store(&h->entry, entry);
    if (!graph_valid(h, hd.hwm, entry)) {
        rc = mn_error_set(err, MN_ERR_CORRUPT, "hnsw: %s: inconsistent graph", path);
        goto out;
    }
    if (remap) {
        mn_hnsw_t *m = NULL;
        if ((rc = remap_graph(h, hd.hwm, labels, remap, arg, ext, &m, dropped, err))) goto out;
        mn_hnsw_free(h);
        h = m;
    }
    if (lsn) *lsn = hd.lsn;
out:
    fclose(f);
    free(labels);
    if (rc)
        mn_hnsw_free(h);
    else
        *out = h;
    return rc;
}
