/* `mnemo check DATA_DIR`: an offline verification of a data dir.
 *
 * It opens the store read-only (nothing is written, not even the log's replay)
 * and reads every byte a start would trust: RocksDB's log (replayed in the
 * server's own recovery mode, so a damaged log is reported as the server would
 * refuse it) and every block of every column family (block checksums), then
 * each value for what it must be: space definitions and WAL entries decode
 * (their CRC32C frame included) and a space's WAL lsns are dense and reach its
 * acknowledged lsn (acked.c); memory records decode; vectors have their
 * space's size; term lists parse; associations and strengths have their sizes;
 * graph files pass their checksums and structural checks. Each problem is one
 * line on the report, and the summary counts what was read. A damaged log does
 * not end the check: the rest is read as a salvage start would see it. */
#include "acked.h"
#include "damage.h"
#include "engine_internal.h"
#include "hnsw/hnsw.h"
#include "mnemo/wire.h"
#include "text/keyword.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct cspace {
    uint32_t sid;
    mn_space_def_t def;
    uint64_t last_lsn; /* the WAL's newest entry (0: none) */
} cspace;

typedef struct checker {
    const char *dir;
    FILE *out;
    mn_engine_check_report_t *rep;
    mn__store st;
    mn__acked *acked;
    cspace *spaces;
    size_t n_spaces;
} checker;

static void problem(checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(checker *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("DAMAGED: ", c->out);
    vfprintf(c->out, fmt, ap);
    fputc('\n', c->out);
    va_end(ap);
    c->rep->problems++;
}

static cspace *space_of(checker *c, const uint8_t *key, size_t kl)
{
    if (kl < KEY_SID_LEN) return NULL;
    uint32_t sid = mn_get_be32(key);
    for (size_t i = 0; i < c->n_spaces; i++)
        if (c->spaces[i].sid == sid) return &c->spaces[i];
    return NULL;
}

/* A value of family cf (key k of space sp, NULL if no space has it). */
typedef void (*value_fn)(checker *c, cspace *sp, const uint8_t *k, size_t kl, const uint8_t *v,
                         size_t vl);

/* Reads every entry of family cf (its block checksums verified) into fn. */
static void walk(checker *c, int cf, value_fn fn)
{
    rocksdb_iterator_t *it = mn__store_iter(&c->st, cf);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
        fn(c, space_of(c, k, kl), k, kl, v, vl);
    }
    mn_error ierr = {0};
    if (mn__store_iter_status(it, mn__store_cf_names[cf], &ierr))
        problem(c, "%s (the rest of the family is unreadable)", ierr.message);
    rocksdb_iter_destroy(it);
}

static void on_meta(checker *c, cspace *sp, const uint8_t *k, size_t kl, const uint8_t *v,
                    size_t vl)
{
    (void)sp;
    if (kl < 6 || memcmp(k, "space/", 6)) return;
    mn_wal_entry_t en;
    mn_error derr = {0};
    if (mn_wire_wal_decode(v, vl, &en, &derr)) {
        problem(c, "meta: the definition of %.*s is unreadable: %s", (int)(kl > 70 ? 70 : kl),
                (const char *)k, derr.message);
        return;
    }
    cspace *n = en.type == MN_WAL_OP_SPACE_CREATE
                    ? realloc(c->spaces, (c->n_spaces + 1) * sizeof *n)
                    : NULL;
    if (n) {
        c->spaces = n;
        c->spaces[c->n_spaces++] =
            (cspace){.sid = en.op.space_create.space_id, .def = en.op.space_create.def};
        c->rep->spaces++;
    } else {
        problem(c, "meta: %.*s is not a space definition", (int)(kl > 70 ? 70 : kl),
                (const char *)k);
    }
    mn_wal_entry_clear(&en);
}

static void on_wal(checker *c, cspace *sp, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    if (!sp) return; /* a dropped space's last entry */
    uint64_t lsn = kl == KEY_WAL_LEN ? mn_get_be64(k + KEY_SID_LEN) : 0;
    mn_wal_entry_t en;
    mn_error derr = {0};
    if (!lsn) {
        problem(c, "space %s: wal: a key of %zu bytes", sp->def.name, kl);
        return;
    }
    if (sp->last_lsn && lsn != sp->last_lsn + 1)
        problem(c, "space %s: wal: lsns %llu to %llu are missing", sp->def.name,
                (unsigned long long)sp->last_lsn + 1, (unsigned long long)lsn - 1);
    sp->last_lsn = lsn;
    c->rep->wal_entries++;
    if (mn_wire_wal_decode(v, vl, &en, &derr)) {
        problem(c, "space %s: wal: entry %llu unreadable: %s", sp->def.name,
                (unsigned long long)lsn, derr.message);
        return;
    }
    if (en.lsn != lsn)
        problem(c, "space %s: wal: entry %llu says lsn %llu", sp->def.name, (unsigned long long)lsn,
                (unsigned long long)en.lsn);
    mn_wal_entry_clear(&en);
}

static void on_record(checker *c, cspace *sp, const uint8_t *k, size_t kl, const uint8_t *v,
                      size_t vl)
{
    (void)k;
    if (!sp) return;
    mn_memory_record_t rec;
    mn_error derr = {0};
    c->rep->records++;
    if (kl != KEY_MEM_LEN || mn_wire_memory_decode(v, vl, &rec, &derr)) {
        problem(c, "space %s: memories: record %llu unreadable: %s", sp->def.name,
                (unsigned long long)c->rep->records, kl != KEY_MEM_LEN ? "bad key" : derr.message);
        return;
    }
    mn_memory_clear(&rec.mem);
}

static void on_vector(checker *c, cspace *sp, const uint8_t *k, size_t kl, const uint8_t *v,
                      size_t vl)
{
    (void)k;
    (void)v;
    if (!sp) return;
    c->rep->vectors++;
    if (kl != KEY_MEM_LEN || vl != (size_t)sp->def.dim * sizeof(float))
        problem(c, "space %s: vectors: %zu bytes where %zu belong", sp->def.name, vl,
                (size_t)sp->def.dim * sizeof(float));
}

static void on_keywords(checker *c, cspace *sp, const uint8_t *k, size_t kl, const uint8_t *v,
                        size_t vl)
{
    (void)k;
    uint64_t cl;
    if (!sp || kl == KEY_SID_LEN) return; /* the space's header */
    c->rep->keyword_lists++;
    /* a list of an older format (a store not started by this version yet) is
     * rebuilt at start like every list of another tokenizer: not damage */
    if (kl == KEY_MEM_LEN && vl && v[0] >= 1 && v[0] < MN_KW_DOC_FORMAT) return;
    if (kl != KEY_MEM_LEN || mn_kw_doc_content_len(v, vl, &cl))
        problem(c, "space %s: keywords: a term list does not parse (rebuilt at start)",
                sp->def.name);
}

static void on_index(checker *c, cspace *sp, const uint8_t *k, size_t kl, const uint8_t *v,
                     size_t vl)
{
    (void)v;
    if (!sp || kl <= KEY_SID_LEN) return;
    if (k[KEY_SID_LEN] == 'a' && (kl != KEY_EDGE_LEN || vl != 5))
        problem(c, "space %s: index: an association of %zu/%zu bytes", sp->def.name, kl, vl);
    if (k[KEY_SID_LEN] == 's' && (kl != KEY_STRENGTH_LEN || vl != STRENGTH_VALUE_LEN))
        problem(c, "space %s: index: a strength of %zu/%zu bytes", sp->def.name, kl, vl);
    if ((k[KEY_SID_LEN] == 'd' || k[KEY_SID_LEN] == 'D') && (kl != KEY_DEDUP_LEN || vl != 16))
        problem(c, "space %s: index: a dedup key of %zu/%zu bytes", sp->def.name, kl, vl);
}

static void on_any(checker *c, cspace *sp, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    (void)c, (void)sp, (void)k, (void)kl, (void)v, (void)vl;
}

/* Each space's WAL reaches the lsn acknowledged to its clients. */
static void check_acked(checker *c)
{
    for (size_t i = 0; i < c->n_spaces; i++) {
        cspace *sp = &c->spaces[i];
        uint64_t acked = mn__acked_get(c->acked, sp->sid);
        if (acked > sp->last_lsn)
            problem(c, "space %s: wal ends at lsn %llu, writes up to lsn %llu were acknowledged",
                    sp->def.name, (unsigned long long)sp->last_lsn, (unsigned long long)acked);
    }
    uint32_t max = mn__acked_max_sid(c->acked);
    for (uint32_t sid = 1; sid && sid <= max; sid++) {
        uint8_t k[KEY_SID_LEN];
        mn_put_be32(k, sid);
        if (mn__acked_get(c->acked, sid) && !space_of(c, k, sizeof k) &&
            !mn__damage_dropped(&c->st, sid))
            problem(c, "space id %u is missing: writes to it up to lsn %llu were acknowledged", sid,
                    (unsigned long long)mn__acked_get(c->acked, sid));
    }
}

/* The saved graph of each space, if any: checksums and structure. */
static void check_graphs(checker *c)
{
    for (size_t i = 0; i < c->n_spaces; i++) {
        const cspace *sp = &c->spaces[i];
        char path[4200];
        snprintf(path, sizeof path, "%s/hnsw/%u.hnsw", c->dir, sp->sid);
        mn_hnsw_params_t p = {.dim = sp->def.dim,
                              .metric = sp->def.metric,
                              .M = sp->def.index.m,
                              .quantize = sp->def.index.quantize == MN_QUANTIZE_INT8};
        float *none = NULL;
        mn_hnsw_t *h = NULL;
        uint64_t lsn;
        mn_error herr = {0};
        mn_err rc = mn_hnsw_load(path, &p, &none, NULL, NULL, &lsn, &h, NULL, &herr);
        mn_hnsw_free(h);
        if (rc == MN_ERR_NOT_FOUND) continue;
        c->rep->graphs++;
        if (rc && !strstr(herr.message, "other parameters"))
            problem(c, "space %s: %s (rebuilt at start)", sp->def.name, herr.message);
    }
}

/* A server holds LOCK while it runs: checking under it would read a moving store. */
static bool in_use(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    bool locked = !fcntl(fd, F_GETLK, &fl) && fl.l_type != F_UNLCK;
    close(fd);
    return locked;
}

/* Opens the store as the server would; a damaged log is a problem, and the rest
 * is then read as replayed up to the damage. */
static mn_err open_store(checker *c, mn_error *err)
{
    char *damage = NULL;
    mn_err rc = mn__store_open_read_only(&c->st, c->dir, false, &damage, err);
    if (rc == MN_ERR_CORRUPT) {
        problem(c, "%s (the server refuses to start on it)", damage);
        free(damage);
        rc = mn__store_open_read_only(&c->st, c->dir, true, &damage, err);
        if (rc == MN_ERR_CORRUPT) {
            problem(c, "%s (nothing more can be read)", damage);
            free(damage);
        }
    }
    return rc;
}

mn_err mn_engine_check(const char *data_dir, FILE *out, mn_engine_check_report_t *rep,
                       mn_error *err)
{
    memset(rep, 0, sizeof *rep);
    checker c = {.dir = data_dir, .out = out, .rep = rep};
    struct stat st;
    char current[4200];
    snprintf(current, sizeof current, "%s/CURRENT", data_dir);
    if (stat(current, &st))
        return mn_error_set(err, MN_ERR_NOT_FOUND, "%s: not a data dir (no CURRENT file: %s)",
                            data_dir, strerror(errno));
    if (in_use(data_dir))
        return mn_error_set(err, MN_ERR_BUSY, "%s: a server runs on it (stop it first)", data_dir);
    size_t torn = 0;
    mn_err rc = mn__acked_open(data_dir, false, &c.acked, &torn, err);
    if (rc) return rc;
    if (torn) fprintf(out, "note: %s: %zu torn records skipped\n", MN__ACKED_FILE, torn);
    rc = open_store(&c, err);
    if (!rc) {
        walk(&c, CF_META, on_meta);
        walk(&c, CF_WAL, on_wal);
        walk(&c, CF_MEMORIES, on_record);
        walk(&c, CF_VECTORS, on_vector);
        walk(&c, CF_KEYWORDS, on_keywords);
        walk(&c, CF_INDEX, on_index);
        walk(&c, CF_DEFAULT, on_any);
        check_acked(&c);
        check_graphs(&c);
        mn__store_close(&c.st);
    }
    if (rc == MN_ERR_CORRUPT) rc = MN_OK; /* reported */
    if (!rc)
        fprintf(out,
                "%s: %llu spaces, %llu WAL entries, %llu memory records, %llu vectors, %llu "
                "term lists, %llu graph files read: %s (%llu problems)\n",
                data_dir, (unsigned long long)rep->spaces, (unsigned long long)rep->wal_entries,
                (unsigned long long)rep->records, (unsigned long long)rep->vectors,
                (unsigned long long)rep->keyword_lists, (unsigned long long)rep->graphs,
                rep->problems ? "DAMAGED" : "ok", (unsigned long long)rep->problems);
    mn__acked_close(c.acked);
    free(c.spaces);
    return rc;
}
