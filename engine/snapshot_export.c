/* A space exported at one RocksDB snapshot (docs/replication.md, "Snapshots"): the manifest
 * (name, position, definition), then the space's keys of the wal, memories, vectors, index
 * and keywords families in key order, without their space id, cut into chunks of at most
 * chunk_bytes of payload (a larger record travels alone), then an end record with the count.
 *
 * Every chunk's start (a family and the key it starts at) is kept once made, so any chunk up
 * to one past the last made can be made again from the same RocksDB snapshot: a transfer that
 * broke resumes at the chunk it lacks, not at zero. The keys are read, never copied whole:
 * memory is one chunk at a time plus the starts. */
#include "snapshot.h"

#include "engine_internal.h"
#include "mnemo/assert.h"

#include <stdlib.h>
#include <string.h>

static const int FAMS[] = {CF_WAL, CF_MEMORIES, CF_VECTORS, CF_INDEX, CF_KEYWORDS};
#define N_FAMS (sizeof FAMS / sizeof FAMS[0])

/* Where a chunk starts: family FAMS[fam] at key (NULL: its first key of the space). */
typedef struct snap_start {
    uint32_t fam;
    uint8_t *key;
    size_t klen;
    uint64_t records_before;
} snap_start;

struct mn_snapshot {
    mn_engine_t *e;
    char space[MN_SPACE_NAME_MAX + 1];
    uint32_t sid;
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ro;
    mn_snapshot_info_t info;
    uint8_t *def; /* the meta value: the space's creation entry */
    size_t def_len;
    size_t chunk_bytes;
    snap_start *starts; /* of chunks 0 .. n_starts-1 */
    uint32_t n_starts, cap_starts;
    bool ended; /* the last chunk was made: n_starts is the count */
};

static rocksdb_iterator_t *iter(mn_snapshot_t *s, int cf)
{
    return rocksdb_create_iterator_cf(s->e->store.db, s->ro, s->e->store.cf[cf]);
}

static bool of_space(rocksdb_iterator_t *it, uint32_t sid)
{
    if (!rocksdb_iter_valid(it)) return false;
    size_t kl;
    const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
    return kl >= KEY_SID_LEN && mn_get_be32(k) == sid;
}

static uint64_t wal_lsn(rocksdb_iterator_t *it)
{
    size_t kl;
    const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
    return kl == KEY_WAL_LEN ? mn_get_be64(k + KEY_SID_LEN) : 0;
}

/* The WAL's ends and the last entry's epoch, as the snapshot sees them. */
static mn_err position(mn_snapshot_t *s, uint64_t def_epoch, mn_error *err)
{
    rocksdb_iterator_t *it = iter(s, CF_WAL);
    uint8_t k[KEY_SID_LEN];
    mn__key_sid(k, s->sid + 1);
    rocksdb_iter_seek_for_prev(it, (const char *)k, sizeof k);
    s->info.last_epoch = def_epoch;
    if (of_space(it, s->sid)) {
        s->info.last_lsn = wal_lsn(it);
        size_t vl;
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
        mn_wal_entry_t en;
        if (!mn_wire_wal_decode(v, vl, &en, NULL)) {
            s->info.last_epoch = en.epoch;
            mn_wal_entry_clear(&en);
        }
    }
    mn__key_sid(k, s->sid);
    rocksdb_iter_seek(it, (const char *)k, sizeof k);
    s->info.first_lsn = of_space(it, s->sid) ? wal_lsn(it) : s->info.last_lsn + 1;
    mn_err rc = mn__store_iter_status(it, "wal", err);
    rocksdb_iter_destroy(it);
    return rc;
}

/* The space's definition in the snapshot, and its sid. */
static mn_err read_def(mn_snapshot_t *s, mn_error *err)
{
    char mk[16 + MN_SPACE_NAME_MAX];
    int ml = snprintf(mk, sizeof mk, "space/%s", s->space);
    char *msg = NULL;
    size_t vl = 0;
    char *v =
        rocksdb_get_cf(s->e->store.db, s->ro, s->e->store.cf[CF_META], mk, (size_t)ml, &vl, &msg);
    if (msg) {
        mn_err rc = mn_error_set(err, MN_ERR_IO, "space %s: %s", s->space, msg);
        free(msg);
        return rc;
    }
    if (!v) return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%s\" not found", s->space);
    mn_wal_entry_t en;
    mn_error derr = {0};
    mn_err rc = mn_wire_wal_decode((const uint8_t *)v, vl, &en, &derr);
    if (!rc && en.type != MN_WAL_OP_SPACE_CREATE) {
        mn_wal_entry_clear(&en);
        rc = mn_error_set(&derr, MN_ERR_CORRUPT, "not a space definition");
    }
    if (rc) {
        free(v);
        return mn_error_set(err, MN_ERR_CORRUPT, "space %s: its definition: %s", s->space,
                            derr.message);
    }
    s->sid = en.op.space_create.space_id;
    uint64_t epoch = en.epoch ? en.epoch : 1;
    mn_wal_entry_clear(&en);
    s->def = (uint8_t *)v;
    s->def_len = vl;
    return position(s, epoch, err);
}

mn_err mn_engine_snapshot_open(mn_engine_t *e, const char *space, size_t chunk_bytes,
                               mn_snapshot_t **out, mn_error *err)
{
    *out = NULL;
    if (!space || !space[0] || strlen(space) > MN_SPACE_NAME_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "space: missing or too long");
    if (chunk_bytes > MN_SNAPSHOT_CHUNK_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "chunk_bytes: at most %u", MN_SNAPSHOT_CHUNK_MAX);
    mn_snapshot_t *s = calloc(1, sizeof *s);
    if (!s) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    s->e = e;
    snprintf(s->space, sizeof s->space, "%s", space);
    s->chunk_bytes = chunk_bytes ? chunk_bytes : MN_SNAPSHOT_CHUNK_DEFAULT;
    s->snap = rocksdb_create_snapshot(e->store.db);
    s->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(s->ro, s->snap);
    rocksdb_readoptions_set_fill_cache(s->ro, false); /* a bulk read: leave the cache be */
    s->info.id = mn_random_seed() | 1;
    s->starts = calloc(8, sizeof *s->starts);
    s->cap_starts = 8;
    mn_err rc = s->starts ? read_def(s, err) : mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    if (rc) {
        mn_engine_snapshot_close(s);
        return rc;
    }
    s->n_starts = 1; /* chunk 0 starts at the manifest, then the first family */
    *out = s;
    return MN_OK;
}

void mn_engine_snapshot_info(const mn_snapshot_t *s, mn_snapshot_info_t *out)
{
    *out = s->info;
}

void mn_engine_snapshot_close(mn_snapshot_t *s)
{
    if (!s) return;
    for (uint32_t i = 0; i < s->n_starts; i++)
        free(s->starts[i].key);
    free(s->starts);
    free(s->def);
    if (s->ro) rocksdb_readoptions_destroy(s->ro);
    if (s->snap) rocksdb_release_snapshot(s->e->store.db, s->snap);
    free(s);
}

static mn_err add_manifest(mn_snapshot_t *s, mn__snap_buf *b)
{
    size_t vl = SNAP_MANIFEST_FIXED + s->def_len;
    uint8_t *v = malloc(vl);
    if (!v) return MN_ERR_NOMEM;
    mn_put_be64(v, s->info.last_lsn);
    mn_put_be64(v + 8, s->info.last_epoch);
    mn_put_be64(v + 16, s->info.first_lsn);
    memcpy(v + SNAP_MANIFEST_FIXED, s->def, s->def_len);
    mn_err rc = mn__snap_add(b, SNAP_REC_MANIFEST, s->space, strlen(s->space), v, vl);
    free(v);
    return rc;
}

/* Records the start of the chunk after the one being made (once). */
static mn_err note_start(mn_snapshot_t *s, uint32_t seq, uint32_t fam, const uint8_t *k, size_t kl,
                         uint64_t records)
{
    if (seq + 1 < s->n_starts) return MN_OK; /* made before: the same start */
    mn_assert(seq + 1 == s->n_starts);
    if (s->n_starts == s->cap_starts) {
        snap_start *ns = realloc(s->starts, 2 * s->cap_starts * sizeof *ns);
        if (!ns) return MN_ERR_NOMEM;
        s->starts = ns;
        s->cap_starts *= 2;
    }
    snap_start st = {.fam = fam, .klen = kl, .records_before = records};
    if (k && !(st.key = malloc(kl ? kl : 1))) return MN_ERR_NOMEM;
    if (k) memcpy(st.key, k, kl);
    s->starts[s->n_starts++] = st;
    return MN_OK;
}

/* Fills b from start st with family records until it holds chunk_bytes; *full says it
 * stopped for room (the next chunk's start noted), else every family is done. */
static mn_err fill(mn_snapshot_t *s, uint32_t seq, const snap_start *st, mn__snap_buf *b,
                   uint64_t *records, bool *full, mn_error *err)
{
    *full = false;
    for (uint32_t f = st->fam; f < N_FAMS && !*full; f++) {
        rocksdb_iterator_t *it = iter(s, FAMS[f]);
        uint8_t pre[KEY_SID_LEN];
        mn__key_sid(pre, s->sid);
        if (f == st->fam && st->key)
            rocksdb_iter_seek(it, (const char *)st->key, st->klen);
        else
            rocksdb_iter_seek(it, (const char *)pre, sizeof pre);
        mn_err rc = MN_OK;
        for (; !rc && of_space(it, s->sid); rocksdb_iter_next(it)) {
            size_t kl, vl;
            const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
            const char *v = rocksdb_iter_value(it, &vl);
            size_t rec = SNAP_REC_HEAD + kl - KEY_SID_LEN + vl;
            if (mn__snap_payload(b) && mn__snap_payload(b) + rec > s->chunk_bytes) {
                rc = note_start(s, seq, f, k, kl, *records);
                *full = true;
                break;
            }
            rc = mn__snap_add(b, (uint8_t)FAMS[f], k + KEY_SID_LEN, kl - KEY_SID_LEN, v, vl);
            ++*records;
        }
        if (!rc)
            rc = mn__store_iter_status(it, mn__store_cf_names[FAMS[f]], err);
        else
            mn_error_set(err, rc, "space %s: snapshot chunk %u: out of memory", s->space, seq);
        rocksdb_iter_destroy(it);
        if (rc) return rc;
    }
    return MN_OK;
}

mn_err mn_engine_snapshot_chunk(mn_snapshot_t *s, uint32_t seq, uint8_t **out, size_t *len,
                                bool *last, mn_error *err)
{
    *out = NULL;
    *len = 0;
    *last = false;
    if (seq >= s->n_starts)
        return mn_error_set(err, MN_ERR_INVALID, "snapshot of %s: chunk %u is past %s %u", s->space,
                            seq, s->ended ? "its end" : "the ones made,", s->n_starts);
    snap_start st = s->starts[seq];
    uint64_t records = st.records_before;
    mn__snap_buf b = {0};
    mn_err rc = mn__snap_begin(&b, s->info.id, seq);
    if (!rc && seq == 0) rc = add_manifest(s, &b);
    if (rc) {
        free(b.buf);
        return mn_error_set(err, rc, "out of memory");
    }
    bool full;
    rc = fill(s, seq, &st, &b, &records, &full, err);
    if (!rc && !full) {
        uint8_t v[8];
        mn_put_be64(v, records);
        if ((rc = mn__snap_add(&b, SNAP_REC_END, NULL, 0, v, sizeof v)))
            mn_error_set(err, rc, "out of memory");
        s->ended = true;
        mn_assert(seq + 1 == s->n_starts);
    }
    if (rc) {
        free(b.buf);
        return rc;
    }
    *last = !full;
    mn__snap_end(&b, *last, out, len);
    if (!*out) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    return MN_OK;
}
