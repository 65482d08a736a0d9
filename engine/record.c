/* Reading memory records. A record is stored under sid|id in the memories
 * family (wire.h: a memory, or a tombstone with what is left of it); what the
 * API shows adds the consolidated mark (index 'c'), the strength (index 's',
 * or the initial one) and, on request, the vector (vectors family). */
#include "record.h"

#include "decay.h"

#include <stdlib.h>
#include <string.h>

/* The episode's consolidated mark: does a semantic memory list it? */
static mn_err read_mark(mn__store *st, const mn__space *sp, mn_memory_t *m, mn_error *err)
{
    uint8_t k[KEY_CONSOLIDATED_LEN];
    mn__key_consolidated(k, sp->sid, &m->id);
    char *v;
    size_t vl;
    mn_err rc = mn__store_get(st, CF_INDEX, k, sizeof k, &v, &vl, err);
    if (rc) return rc;
    m->consolidated = v != NULL;
    free(v);
    return MN_OK;
}

static mn_err read_strength(mn__store *st, float initial_days, const mn__space *sp, mn_memory_t *m,
                            mn_error *err)
{
    uint8_t k[KEY_STRENGTH_LEN];
    mn__key_strength(k, sp->sid, &m->id);
    char *v;
    size_t vl;
    mn_err rc = mn__store_get(st, CF_INDEX, k, sizeof k, &v, &vl, err);
    if (rc) return rc;
    if (v && vl == STRENGTH_VALUE_LEN) {
        memcpy(&m->stability_days, v, 4);
        memcpy(&m->last_access_ms, v + 4, 8);
        memcpy(&m->access_count, v + 12, 4);
    } else {
        m->stability_days = mn__initial_stability(initial_days, m->importance);
        m->last_access_ms = m->created_at_ms;
    }
    free(v);
    return MN_OK;
}

static mn_err read_vector(mn__store *st, const mn__space *sp, mn_memory_t *m, mn_error *err)
{
    uint8_t k[KEY_MEM_LEN];
    mn__key_mem(k, sp->sid, &m->id);
    char *v;
    size_t vl;
    mn_err rc = mn__store_get(st, CF_VECTORS, k, sizeof k, &v, &vl, err);
    if (rc) return rc;
    if (v && vl == (size_t)sp->def.dim * sizeof(float)) {
        m->embedding = (float *)v;
        m->dim = sp->def.dim;
    } else {
        free(v);
    }
    return MN_OK;
}

/* The stored bytes of id's record (*v malloc'd); MN_ERR_NOT_FOUND when there is none. */
static mn_err stored(mn__store *st, const mn__space *sp, const mn_id_t *id, char **v, size_t *vl,
                     mn_error *err)
{
    uint8_t k[KEY_MEM_LEN];
    mn__key_mem(k, sp->sid, id);
    mn_err rc = mn__store_get(st, CF_MEMORIES, k, sizeof k, v, vl, err);
    if (rc) return rc;
    if (!*v) return mn_error_set(err, MN_ERR_NOT_FOUND, "memory not found");
    return MN_OK;
}

mn_err mn__record_read(mn__store *st, float initial_days, const mn__space *sp, const mn_id_t *id,
                       bool with_embedding, mn_memory_t *out, mn_error *err)
{
    char *v;
    size_t vl;
    mn_err rc = stored(st, sp, id, &v, &vl, err);
    if (rc) return rc;
    mn_memory_record_t rec;
    rc = mn_wire_memory_decode((const uint8_t *)v, vl, &rec, err);
    free(v);
    if (rc) return rc;
    if (rec.tombstone) {
        rc = mn_error_set(err, MN_ERR_GONE, "memory was forgotten");
        goto out;
    }
    if (rec.mem.kind == MN_KIND_EPISODIC && (rc = read_mark(st, sp, &rec.mem, err))) goto out;
    if ((rc = read_strength(st, initial_days, sp, &rec.mem, err))) goto out;
    if (with_embedding && (rc = read_vector(st, sp, &rec.mem, err))) goto out;
    *out = rec.mem;
    return MN_OK;
out:
    mn_memory_clear(&rec.mem);
    return rc;
}

mn_err mn__record_kind(mn__store *st, const mn__space *sp, const mn_id_t *id, mn_kind_t *kind,
                       mn_error *err)
{
    char *v;
    size_t vl;
    mn_err rc = stored(st, sp, id, &v, &vl, err);
    if (rc) return rc;
    mn_memory_record_t rec; /* a tombstone keeps its kind */
    rc = mn_wire_memory_decode_meta((const uint8_t *)v, vl, &rec, err);
    free(v);
    if (rc) return rc;
    *kind = rec.mem.kind;
    mn_memory_clear(&rec.mem);
    return MN_OK;
}

mn_err mn__record_retired(mn__store *st, const mn__space *sp, const mn_id_t *id, bool *retired)
{
    uint8_t k[KEY_MEM_LEN];
    mn__key_mem(k, sp->sid, id);
    char *v;
    size_t vl;
    *retired = false;
    mn_err rc = mn__store_get(st, CF_MEMORIES, k, sizeof k, &v, &vl, NULL);
    if (rc || !v) return rc;
    mn_memory_record_t rec;
    if (!mn_wire_memory_decode_meta((const uint8_t *)v, vl, &rec, NULL)) {
        *retired = rec.tombstone && rec.mem.retired;
        mn_memory_clear(&rec.mem);
    }
    free(v);
    return MN_OK;
}

mn_err mn__record_get_wi(mn__store *st, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                         const mn_id_t *id, mn_memory_record_t *rec, bool *found, mn_error *err)
{
    uint8_t k[KEY_MEM_LEN];
    mn__key_mem(k, sp->sid, id);
    char *v;
    size_t vl;
    mn_err rc = mn__store_get_wi(st, b, CF_MEMORIES, k, sizeof k, &v, &vl, err);
    if (rc) return rc;
    *found = v != NULL;
    if (!v) return MN_OK;
    rc = mn_wire_memory_decode((const uint8_t *)v, vl, rec, err);
    free(v);
    return rc;
}

mn_err mn__record_state_wi(mn__store *st, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                           const mn_id_t *id, int *state, mn_error *err)
{
    uint8_t k[KEY_MEM_LEN];
    mn__key_mem(k, sp->sid, id);
    char *v;
    size_t vl;
    mn_err rc = mn__store_get_wi(st, b, CF_MEMORIES, k, sizeof k, &v, &vl, err);
    if (rc) return rc;
    *state = MN_MEM_ABSENT;
    if (!v) return MN_OK;
    /* decoded without the content */
    mn_memory_record_t rec;
    rc = mn_wire_memory_decode_meta((const uint8_t *)v, vl, &rec, err);
    free(v);
    if (rc) return rc;
    *state = rec.tombstone ? MN_MEM_GONE : MN_MEM_LIVE;
    mn_memory_clear(&rec.mem);
    return MN_OK;
}
