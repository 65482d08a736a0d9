/* The catalog as JSON: one entry per space (the wire of /v1/cluster/catalog and
 * the file <data_dir>/cluster_catalog.json), its digest, and the file itself.
 *
 * An entry carries the stored definition exactly (quantize and lifecycle by
 * name, times in integer ms), so an entry read back compares equal
 * (cl_catalog_entry_cmp) to the one written. The digest hashes the
 * canonical text of the entries in name order: the builder below writes the
 * members in one fixed order, so equal sets give equal text on every node.
 *
 * The file is written whole: a temporary file, fsync, rename over the old
 * one, fsync of the folder, so a crash leaves the old catalog or the new,
 * never a mix. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_internal.h"
#include "cluster_catalog.h"

#define CATALOG_FORMAT 1
#define FILE_BYTES_MAX (256u << 20)

static const char *quantize_name(mn_quantize_t q)
{
    return q == MN_QUANTIZE_INT8 ? "int8" : q == MN_QUANTIZE_NONE ? "none" : "default";
}

static cJSON *record_json(const mn_spaces_record_t *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = o ? cJSON_CreateArray() : NULL;
    if (!arr) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddNumberToObject(o, "epoch", (double)r->epoch);
    cJSON_AddNumberToObject(o, "version", (double)r->version);
    for (int i = 0; i < r->n_holders; i++) {
        cJSON *h = cJSON_CreateObject();
        if (!h) break;
        cJSON_AddStringToObject(h, "node", r->holders[i].node);
        cJSON_AddStringToObject(h, "role", mn_spaces_role_name(r->holders[i].role));
        cJSON_AddItemToArray(arr, h);
    }
    cJSON_AddItemToObject(o, "holders", arr);
    return o;
}

/* TEST ONLY (cl_catalog_json_test_field): a field every entry written carries, as a newer
 * minor version's would; NULL = none. Set once at start (atomic: other threads may write
 * entries by then). */
static _Atomic(const char *) test_field;

void cl_catalog_json_test_field(const char *name)
{
    atomic_store(&test_field, name);
}

cJSON *cl_catalog_entry_json(const cl_catalog_entry *e)
{
    const mn_space_def_t *d = &e->def;
    cJSON *o = cJSON_CreateObject();
    cJSON *ix = o ? cJSON_CreateObject() : NULL;
    if (!ix) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddStringToObject(o, "name", d->name);
    cJSON_AddNumberToObject(o, "dim", d->dim);
    cJSON_AddStringToObject(o, "metric", mn_metric_name(d->metric));
    if (d->default_lifecycle)
        cJSON_AddStringToObject(o, "default_lifecycle", mn_lifecycle_name(d->default_lifecycle));
    else
        cJSON_AddNullToObject(o, "default_lifecycle");
    cJSON_AddStringToObject(o, "text_language", d->text_language);
    if (d->embedding_model_set)
        cJSON_AddStringToObject(o, "embedding_model", d->embedding_model);
    else
        cJSON_AddNullToObject(o, "embedding_model");
    cJSON_AddStringToObject(o, "dedup", mn_dedup_mode_name(d->dedup));
    if (d->dedup_threshold > 0)
        cJSON_AddNumberToObject(o, "dedup_threshold", d->dedup_threshold);
    else
        cJSON_AddNullToObject(o, "dedup_threshold");
    cJSON_AddNumberToObject(ix, "m", d->index.m);
    cJSON_AddNumberToObject(ix, "ef_construction", d->index.ef_construction);
    cJSON_AddNumberToObject(ix, "ef_search", d->index.ef_search);
    cJSON_AddStringToObject(ix, "quantize", quantize_name(d->index.quantize));
    cJSON_AddItemToObject(o, "index", ix);
    cJSON_AddNumberToObject(o, "created_at_ms", (double)d->created_at_ms);
    if (e->dropped_ms)
        cJSON_AddNumberToObject(o, "dropped_at_ms", (double)e->dropped_ms);
    else
        cJSON_AddNullToObject(o, "dropped_at_ms");
    if (e->creator[0])
        cJSON_AddStringToObject(o, "creator", e->creator);
    else
        cJSON_AddNullToObject(o, "creator");
    if (e->rec.epoch)
        cJSON_AddItemToObject(o, "record", record_json(&e->rec));
    else
        cJSON_AddNullToObject(o, "record");
    const char *extra = atomic_load(&test_field);
    if (extra) cJSON_AddStringToObject(o, extra, "a newer minor's field");
    return o;
}

/* ---- reading ---- */

/* Fields this build does not know are ignored, in entries and in the objects they hold: a
 * node one minor version ahead may add some, and its entries must still reach the older
 * nodes while a rolling upgrade mixes them (runbooks/cluster.md, "Rolling restart and
 * upgrade"). A field that changes what a known one means needs a new major version. The
 * known fields are checked as strictly as ever. */

/* A required integer in [lo, hi]. */
static mn_err int_field(const cJSON *o, const char *name, const char *pfx, int64_t lo, int64_t hi,
                        int64_t *out, mn_error *err)
{
    bool has = false;
    mn_err rc = api_get_int(o, name, pfx, &has, out, err);
    if (rc) return rc;
    if (!has) return mn_error_set(err, MN_ERR_INVALID, "%s%s: required", pfx, name);
    if (*out < lo || *out > hi)
        return mn_error_set(err, MN_ERR_INVALID, "%s%s: out of range", pfx, name);
    return MN_OK;
}

static mn_err string_field(const cJSON *o, const char *name, const char *pfx, char *out, size_t cap,
                           bool required, mn_error *err)
{
    const char *s = NULL;
    mn_err rc = api_get_string(o, name, pfx, &s, err);
    if (rc) return rc;
    if (!s && required) return mn_error_set(err, MN_ERR_INVALID, "%s%s: required", pfx, name);
    if (s && strlen(s) >= cap)
        return mn_error_set(err, MN_ERR_INVALID, "%s%s: too long", pfx, name);
    if (s) memcpy(out, s, strlen(s) + 1);
    return MN_OK;
}

static mn_err index_from_json(const cJSON *o, const char *pfx, mn_index_def_t *ix, mn_error *err)
{
    char p[96];
    snprintf(p, sizeof p, "%sindex.", pfx);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "index");
    if (!cJSON_IsObject(v))
        return mn_error_set(err, MN_ERR_INVALID, "%sindex: expected an object", pfx);
    mn_err rc = MN_OK;
    int64_t m = 0, efc = 0, efs = 0;
    if (!rc) rc = int_field(v, "m", p, 0, UINT32_MAX, &m, err);
    if (!rc) rc = int_field(v, "ef_construction", p, 0, UINT32_MAX, &efc, err);
    if (!rc) rc = int_field(v, "ef_search", p, 0, UINT32_MAX, &efs, err);
    char q[16] = "";
    if (!rc) rc = string_field(v, "quantize", p, q, sizeof q, true, err);
    if (rc) return rc;
    ix->m = (uint32_t)m;
    ix->ef_construction = (uint32_t)efc;
    ix->ef_search = (uint32_t)efs;
    if (!strcmp(q, "int8"))
        ix->quantize = MN_QUANTIZE_INT8;
    else if (!strcmp(q, "none"))
        ix->quantize = MN_QUANTIZE_NONE;
    else if (!strcmp(q, "default"))
        ix->quantize = MN_QUANTIZE_DEFAULT;
    else
        return mn_error_set(err, MN_ERR_INVALID, "%squantize: must be none, int8 or default", p);
    return MN_OK;
}

/* metric, default_lifecycle, dedup: names. */
static mn_err enums_from_json(const cJSON *o, const char *pfx, mn_space_def_t *d, mn_error *err)
{
    char metric[16] = "", life[16] = "", dedup[16] = "";
    mn_err rc = string_field(o, "metric", pfx, metric, sizeof metric, true, err);
    if (!rc) rc = string_field(o, "default_lifecycle", pfx, life, sizeof life, false, err);
    if (!rc) rc = string_field(o, "dedup", pfx, dedup, sizeof dedup, true, err);
    if (rc) return rc;
    if (mn_metric_parse(metric, &d->metric))
        return mn_error_set(err, MN_ERR_INVALID, "%smetric: must be cosine, l2 or dot", pfx);
    d->default_lifecycle = MN_LIFECYCLE_UNSET;
    if (life[0] && mn_lifecycle_parse(life, &d->default_lifecycle))
        return mn_error_set(err, MN_ERR_INVALID,
                            "%sdefault_lifecycle: must be ephemeral, session or persistent", pfx);
    if (mn_dedup_mode_parse(dedup, &d->dedup))
        return mn_error_set(err, MN_ERR_INVALID, "%sdedup: must be exact or off", pfx);
    return MN_OK;
}

/* embedding_model (null: none recorded) and dedup_threshold (null: 0). */
static mn_err optionals_from_json(const cJSON *o, const char *pfx, mn_space_def_t *d, mn_error *err)
{
    const char *model = NULL;
    mn_err rc = api_get_string(o, "embedding_model", pfx, &model, err);
    if (rc) return rc;
    if (model) {
        if ((rc = mn_engine_embedding_model_check(model, strlen(model), err))) return rc;
        memcpy(d->embedding_model, model, strlen(model) + 1);
        d->embedding_model_set = true;
    }
    bool has = false;
    if ((rc = api_get_float(o, "dedup_threshold", pfx, &has, &d->dedup_threshold, err))) return rc;
    if (has && !(d->dedup_threshold > 0 && d->dedup_threshold <= 1))
        return mn_error_set(err, MN_ERR_INVALID, "%sdedup_threshold: must be in (0, 1]", pfx);
    return MN_OK;
}

static mn_err holder_from_json(const cJSON *h, const char *pfx, mn_spaces_holder_t *out,
                               mn_error *err)
{
    if (!cJSON_IsObject(h)) return mn_error_set(err, MN_ERR_INVALID, "%s: expected an object", pfx);
    mn_err rc = MN_OK;
    char role[16] = "";
    if (!rc) rc = string_field(h, "node", pfx, out->node, sizeof out->node, true, err);
    if (!rc) rc = string_field(h, "role", pfx, role, sizeof role, true, err);
    if (rc) return rc;
    for (int r = MN_SPACES_PRIMARY; r <= MN_SPACES_CATCHING_UP; r++)
        if (!strcmp(role, mn_spaces_role_name((mn_spaces_role_t)r))) {
            out->role = (uint8_t)r;
            return MN_OK;
        }
    return mn_error_set(err, MN_ERR_INVALID, "%srole: must be primary, replica or catching_up",
                        pfx);
}

/* "record": null or {"epoch", "version", "holders": [...]} (absent in older catalogs). */
static mn_err record_from_json(const cJSON *o, const char *pfx, mn_spaces_record_t *r,
                               mn_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "record");
    if (!v || cJSON_IsNull(v)) return MN_OK;
    char p[96];
    snprintf(p, sizeof p, "%srecord.", pfx);
    if (!cJSON_IsObject(v))
        return mn_error_set(err, MN_ERR_INVALID, "%srecord: expected an object or null", pfx);
    mn_err rc = MN_OK;
    int64_t epoch = 0, version = 0;
    if (!rc) rc = int_field(v, "epoch", p, 1, INT64_MAX / 2, &epoch, err);
    if (!rc) rc = int_field(v, "version", p, 1, INT64_MAX / 2, &version, err);
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(v, "holders");
    if (!rc && (!cJSON_IsArray(hs) || cJSON_GetArraySize(hs) < 1 ||
                cJSON_GetArraySize(hs) > MN_SPACES_HOLDERS_MAX))
        rc = mn_error_set(err, MN_ERR_INVALID, "%sholders: expected an array of 1..%d", p,
                          MN_SPACES_HOLDERS_MAX);
    int i = 0;
    for (const cJSON *h = hs ? hs->child : NULL; !rc && h; h = h->next, i++) {
        char hp[128];
        snprintf(hp, sizeof hp, "%sholders[%d].", p, i);
        rc = holder_from_json(h, hp, &r->holders[i], err);
    }
    if (rc) return rc;
    r->epoch = (uint64_t)epoch;
    r->version = (uint64_t)version;
    r->n_holders = (uint8_t)i;
    mn_error why = {0};
    if (mn_spaces_record_check(r, &why) != MN_OK)
        return mn_error_set(err, MN_ERR_INVALID, "%s%s", pfx, why.message);
    return MN_OK;
}

mn_err cl_catalog_entry_from_json(const cJSON *o, const char *pfx, cl_catalog_entry *out,
                                  mn_error *err)
{
    memset(out, 0, sizeof *out);
    mn_space_def_t *d = &out->def;
    if (!cJSON_IsObject(o)) return mn_error_set(err, MN_ERR_INVALID, "%s: expected an object", pfx);
    mn_err rc = string_field(o, "name", pfx, d->name, sizeof d->name, true, err);
    if (!rc && !mn_space_name_valid(d->name))
        rc = mn_error_set(err, MN_ERR_INVALID, "%sname: must match [a-z0-9][a-z0-9_-]{0,63}", pfx);
    int64_t dim = 0, created = 0, dropped = 0;
    if (!rc) rc = int_field(o, "dim", pfx, 1, MN_DIM_MAX, &dim, err);
    if (!rc) rc = int_field(o, "created_at_ms", pfx, 0, INT64_MAX / 2, &created, err);
    bool has_dropped = false;
    if (!rc) rc = api_get_int(o, "dropped_at_ms", pfx, &has_dropped, &dropped, err);
    if (!rc && has_dropped && dropped <= 0)
        rc = mn_error_set(err, MN_ERR_INVALID, "%sdropped_at_ms: must be positive or null", pfx);
    if (!rc)
        rc = string_field(o, "text_language", pfx, d->text_language, sizeof d->text_language, true,
                          err);
    if (!rc) rc = enums_from_json(o, pfx, d, err);
    if (!rc) rc = optionals_from_json(o, pfx, d, err);
    if (!rc) rc = index_from_json(o, pfx, &d->index, err);
    if (!rc) rc = string_field(o, "creator", pfx, out->creator, sizeof out->creator, false, err);
    if (!rc) rc = record_from_json(o, pfx, &out->rec, err);
    d->dim = (uint32_t)dim;
    d->created_at_ms = created;
    out->dropped_ms = has_dropped ? dropped : 0;
    return rc;
}

mn_err cl_catalog_set_from_json(const cJSON *doc, cl_catalog_set *s, mn_error *err)
{
    const cJSON *arr = cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "spaces") : NULL;
    if (!cJSON_IsArray(arr)) return mn_error_set(err, MN_ERR_INVALID, "spaces: expected an array");
    size_t i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        char pfx[48];
        snprintf(pfx, sizeof pfx, "spaces[%zu].", i);
        cl_catalog_entry e;
        mn_err rc = cl_catalog_entry_from_json(it, pfx, &e, err);
        if (rc) return rc;
        if (cl_catalog_set_merge(s, &e, NULL) != MN_OK)
            return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    return MN_OK;
}

void cl_catalog_set_digest(const cl_catalog_set *s, char out[65])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char d[32] = {0};
    unsigned int dn = 0;
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < s->n; i++) {
        cJSON *o = cl_catalog_entry_json(&s->e[i]);
        char *text = o ? cJSON_PrintUnformatted(o) : NULL;
        ok = text && EVP_DigestUpdate(ctx, text, strlen(text) + 1) == 1;
        cJSON_free(text);
        cJSON_Delete(o);
    }
    ok = ok && EVP_DigestFinal_ex(ctx, d, &dn) == 1 && dn == sizeof d;
    EVP_MD_CTX_free(ctx);
    /* out of memory: a digest no set has (the next round compares again) */
    if (!ok) memset(d, 0xff, sizeof d);
    for (size_t i = 0; i < sizeof d; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ---- the file ---- */

char *cl_catalog_set_text(const cl_catalog_set *s, bool file)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = root ? cJSON_AddArrayToObject(root, "spaces") : NULL;
    bool ok = arr && (!file || cJSON_AddNumberToObject(root, "format", CATALOG_FORMAT));
    for (size_t i = 0; ok && i < s->n; i++) {
        cJSON *o = cl_catalog_entry_json(&s->e[i]);
        ok = o && cJSON_AddItemToArray(arr, o);
    }
    char *text = !ok ? NULL : file ? cJSON_Print(root) : cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool sync_dir_of(const char *path)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd < 0) return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

mn_err cl_catalog_save(const cl_catalog_set *s, const char *path, mn_error *err)
{
    char *text = cl_catalog_set_text(s, true);
    if (!text) return mn_error_set(err, MN_ERR_NOMEM, "catalog: out of memory");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write_all(fd, text, strlen(text)) && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0 && close(fd) != 0) ok = false;
    cJSON_free(text);
    if (ok && rename(tmp, path) != 0) {
        e = errno;
        ok = false;
    }
    if (ok && !sync_dir_of(path)) {
        e = errno;
        ok = false;
    }
    if (!ok) return mn_error_set(err, MN_ERR_IO, "cannot write %s: %s", path, strerror(e));
    return MN_OK;
}

static mn_err read_file(const char *path, char **out, size_t *len, mn_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return MN_OK;
        return mn_error_set(err, MN_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    mn_err rc = MN_OK;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = cap <= FILE_BYTES_MAX ? realloc(buf, cap) : NULL;
            if (!nb) {
                rc = mn_error_set(err, MN_ERR_CORRUPT, "%s: too large or out of memory", path);
                break;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    if (!rc && ferror(f)) rc = mn_error_set(err, MN_ERR_IO, "cannot read %s", path);
    fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return MN_OK;
}

mn_err cl_catalog_load(const char *path, cl_catalog_set *s, mn_error *err)
{
    char *text = NULL;
    size_t len = 0;
    mn_err rc = read_file(path, &text, &len, err);
    if (rc || !text) return rc;
    api_json_result res;
    cJSON *doc = api_json_parse(text, len, &res);
    free(text);
    if (!doc) return mn_error_set(err, MN_ERR_CORRUPT, "%s: not JSON (byte %zu)", path, res.offset);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(doc, "format");
    mn_error why = {0};
    if (!cJSON_IsNumber(fmt) || fmt->valuedouble != CATALOG_FORMAT)
        rc = mn_error_set(err, MN_ERR_CORRUPT, "%s: format %d expected", path, CATALOG_FORMAT);
    else if (cl_catalog_set_from_json(doc, s, &why) != MN_OK)
        rc = mn_error_set(err, MN_ERR_CORRUPT, "%s: %s", path, why.message);
    api_json_free(doc);
    return rc;
}
