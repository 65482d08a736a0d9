// C shim over the FlatBuffers code flatc generates from wal.fbs: encode,
// verify and decode WAL entries and memory records. Nothing here throws
// (built with -fno-exceptions); every decode runs the Verifier first, so a
// corrupt or hostile buffer yields MN_ERR_CORRUPT, never a crash.
#include <cstdlib>
#include <cstring>
#include <new>

#include "wal_generated.h"

extern "C" {
#include "mnemo/util.h"
#include "mnemo/wire.h"
}

namespace fb = flatbuffers;
namespace w = mnemo::wire;

namespace {

fb::Offset<fb::String> str_or_null(fb::FlatBufferBuilder &b, const char *s)
{
    return s ? b.CreateString(s) : fb::Offset<fb::String>();
}

fb::Offset<fb::Vector<fb::Offset<fb::String>>> str_vec(fb::FlatBufferBuilder &b, char *const *v,
                                                       size_t n)
{
    if (!n) return 0;
    std::vector<fb::Offset<fb::String>> offs;
    offs.reserve(n);
    for (size_t i = 0; i < n; i++) offs.push_back(b.CreateString(v[i] ? v[i] : ""));
    return b.CreateVector(offs);
}

fb::Offset<fb::Vector<uint8_t>> id_or_null(fb::FlatBufferBuilder &b, const mn_id_t *id)
{
    return mn_id_is_zero(id) ? fb::Offset<fb::Vector<uint8_t>>() : b.CreateVector(id->b, 16);
}

// The version fields of a memory (absent in a first version that was never superseded).
struct version_offs {
    fb::Offset<fb::Vector<uint8_t>> lineage, supersedes, invalidated_by;
    fb::Offset<fb::String> changed_by, invalid_reason;
};

version_offs build_version_offs(fb::FlatBufferBuilder &b, const mn_memory_t *m)
{
    version_offs o;
    o.lineage = id_or_null(b, &m->lineage);
    o.supersedes = id_or_null(b, &m->supersedes);
    o.invalidated_by = id_or_null(b, &m->invalidated_by);
    o.changed_by = str_or_null(b, m->changed_by);
    o.invalid_reason = str_or_null(b, m->invalid_reason);
    return o;
}

void add_version(w::MemoryBuilder &mb, const mn_memory_t *m, const version_offs &o)
{
    if (!o.lineage.IsNull()) mb.add_lineage(o.lineage);
    if (m->version > 1) mb.add_version(m->version);
    if (!o.supersedes.IsNull()) mb.add_supersedes(o.supersedes);
    if (m->valid_from_ms) mb.add_valid_from_ms(m->valid_from_ms);
    if (m->valid_to_ms) mb.add_valid_to_ms(m->valid_to_ms);
    if (m->superseded) mb.add_superseded(true);
    if (m->changed) mb.add_changed(m->changed);
    if (!o.changed_by.IsNull()) mb.add_changed_by(o.changed_by);
    if (!o.invalidated_by.IsNull()) mb.add_invalidated_by(o.invalidated_by);
    if (!o.invalid_reason.IsNull()) mb.add_invalid_reason(o.invalid_reason);
}

fb::Offset<w::Memory> build_memory(fb::FlatBufferBuilder &b, const mn_memory_t *m,
                                   bool tombstone, int64_t forgotten_at, bool with_embedding)
{
    auto id = b.CreateVector(m->id.b, 16);
    fb::Offset<fb::String> content, where, session, idem;
    fb::Offset<fb::Vector<float>> emb;
    fb::Offset<fb::Vector<fb::Offset<fb::String>>> who, tags;
    fb::Offset<fb::Vector<fb::Offset<w::KV>>> meta;
    if (!tombstone) {
        content = b.CreateString(m->content ? m->content : "", m->content ? m->content_len : 0);
        if (with_embedding && m->embedding && m->dim) emb = b.CreateVector(m->embedding, m->dim);
        who = str_vec(b, m->who, m->n_who);
        where = str_or_null(b, m->where);
        session = str_or_null(b, m->session);
        tags = str_vec(b, m->tags, m->n_tags);
        if (m->n_metadata) {
            std::vector<fb::Offset<w::KV>> kvs;
            kvs.reserve(m->n_metadata);
            for (size_t i = 0; i < m->n_metadata; i++)
                kvs.push_back(w::CreateKV(b, b.CreateString(m->metadata[i].key),
                                          b.CreateString(m->metadata[i].value)));
            meta = b.CreateVector(kvs);
        }
        idem = str_or_null(b, m->idempotency_key);
    }
    fb::Offset<fb::Vector<uint8_t>> support;
    if (!tombstone && m->n_support)
        support = b.CreateVector((const uint8_t *)m->support, m->n_support * 16);
    version_offs vo;
    if (!tombstone) vo = build_version_offs(b, m);
    w::MemoryBuilder mb(b);
    mb.add_id(id);
    mb.add_kind((int8_t)m->kind);
    if (!tombstone) {
        mb.add_content(content);
        if (!emb.IsNull()) mb.add_embedding(emb);
        mb.add_confidence(m->confidence);
        mb.add_importance(m->importance);
        mb.add_valence(m->emotional_valence);
        if (!who.IsNull()) mb.add_who(who);
        if (!where.IsNull()) mb.add_where(where);
        if (!session.IsNull()) mb.add_session(session);
        if (!tags.IsNull()) mb.add_tags(tags);
        if (!meta.IsNull()) mb.add_metadata(meta);
        mb.add_lifecycle((int8_t)m->lifecycle);
        mb.add_expires_at_ms(m->expires_at_ms);
        mb.add_suppressed(m->suppressed);
        if (!idem.IsNull()) mb.add_idempotency_key(idem);
        if (!support.IsNull()) mb.add_support(support);
        mb.add_suppressed_at_ms(m->suppressed_at_ms);
        mb.add_unsuppressed_at_ms(m->unsuppressed_at_ms);
        add_version(mb, m, vo);
    }
    mb.add_when_ms(m->when_ms);
    mb.add_created_at_ms(m->created_at_ms);
    mb.add_tombstone(tombstone);
    mb.add_forgotten_at_ms(forgotten_at);
    if (tombstone && m->retired) mb.add_retired(true);
    return mb.Finish();
}

fb::Offset<fb::Vector<fb::Offset<w::Edge>>> build_edges(fb::FlatBufferBuilder &b,
                                                       const mn_edge_t *e, size_t n)
{
    if (!n) return 0;
    std::vector<fb::Offset<w::Edge>> v;
    v.reserve(n);
    for (size_t i = 0; i < n; i++)
        v.push_back(w::CreateEdge(b, b.CreateVector(e[i].from.b, 16), b.CreateVector(e[i].to.b, 16),
                                  (int8_t)e[i].kind, e[i].weight));
    return b.CreateVector(v);
}

mn_err frame(fb::FlatBufferBuilder &b, uint8_t **out, size_t *len)
{
    size_t n = b.GetSize();
    uint8_t *buf = (uint8_t *)malloc(n + MN_WIRE_FRAME_HEADER);
    if (!buf) return MN_ERR_NOMEM;
    memcpy(buf + MN_WIRE_FRAME_HEADER, b.GetBufferPointer(), n);
    uint32_t crc = mn_crc32c(0, buf + MN_WIRE_FRAME_HEADER, n);
    for (int i = 0; i < 4; i++) buf[i] = (uint8_t)(crc >> (8 * i));
    *out = buf;
    *len = n + MN_WIRE_FRAME_HEADER;
    return MN_OK;
}

mn_err unframe(const uint8_t *buf, size_t len, const uint8_t **body, size_t *body_len,
               mn_error *err)
{
    // Outputs are set on every path: gcc -O3 cannot see that mn_error_set returns nonzero,
    // and would otherwise judge the callers' body/blen maybe-uninitialized.
    *body = nullptr;
    *body_len = 0;
    if (!buf || len < MN_WIRE_FRAME_HEADER + 8)
        return mn_error_set(err, MN_ERR_CORRUPT, "record too short (%zu bytes)", len);
    uint32_t want = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 |
                    (uint32_t)buf[3] << 24;
    uint32_t got = mn_crc32c(0, buf + MN_WIRE_FRAME_HEADER, len - MN_WIRE_FRAME_HEADER);
    if (want != got)
        return mn_error_set(err, MN_ERR_CORRUPT, "crc32c mismatch (stored %08x, computed %08x)",
                            want, got);
    *body = buf + MN_WIRE_FRAME_HEADER;
    *body_len = len - MN_WIRE_FRAME_HEADER;
    return MN_OK;
}

// FlatBuffers reads scalars in place, so the buffer must be aligned; values
// handed out by RocksDB iterators often are not. Copies when needed.
struct aligned_body {
    const uint8_t *p;
    uint8_t *owned;
    aligned_body(const uint8_t *b, size_t n) : p(b), owned(nullptr)
    {
        if ((uintptr_t)b % 8 != 0) {
            owned = (uint8_t *)malloc(n ? n : 1);
            if (owned) memcpy(owned, b, n);
            p = owned;
        }
    }
    ~aligned_body() { free(owned); }
};

char *dup_str(const fb::String *s)
{
    if (!s) return nullptr;
    char *p = (char *)malloc(s->size() + 1);
    if (!p) return nullptr;
    memcpy(p, s->data(), s->size());
    p[s->size()] = '\0';
    return p;
}

bool dup_str_vec(const fb::Vector<fb::Offset<fb::String>> *v, char ***out, size_t *n)
{
    *out = nullptr;
    *n = 0;
    if (!v || v->size() == 0) return true;
    char **arr = (char **)calloc(v->size(), sizeof(char *));
    if (!arr) return false;
    *out = arr;
    for (fb::uoffset_t i = 0; i < v->size(); i++) {
        arr[i] = dup_str(v->Get(i));
        if (!arr[i]) return false;
        (*n)++;
    }
    return true;
}

bool copy_id(const fb::Vector<uint8_t> *v, mn_id_t *id)
{
    if (!v || v->size() != 16) return false;
    memcpy(id->b, v->data(), 16);
    return true;
}

// The version fields of a verified Memory table; false on a bad id or OOM.
bool decode_version(const w::Memory *src, mn_memory_t *m)
{
    if (src->lineage() && !copy_id(src->lineage(), &m->lineage)) return false;
    if (src->supersedes() && !copy_id(src->supersedes(), &m->supersedes)) return false;
    if (src->invalidated_by() && !copy_id(src->invalidated_by(), &m->invalidated_by)) return false;
    m->version = src->version() ? src->version() : 1;
    m->valid_from_ms = src->valid_from_ms();
    m->valid_to_ms = src->valid_to_ms();
    m->superseded = src->superseded();
    m->changed = src->changed();
    if (src->changed_by() && !(m->changed_by = dup_str(src->changed_by()))) return false;
    if (src->invalid_reason() && !(m->invalid_reason = dup_str(src->invalid_reason())))
        return false;
    return true;
}

// Copies a verified Memory table into m (zeroed by the caller). False on OOM or bad id.
// Without with_content, content stays NULL and content_len is its length.
bool decode_memory(const w::Memory *src, mn_memory_t *m, bool *tombstone, int64_t *forgotten_at,
                   bool with_content = true)
{
    mn_memory_init(m);
    if (!copy_id(src->id(), &m->id)) return false;
    m->kind = (mn_kind_t)src->kind();
    m->when_ms = src->when_ms();
    m->created_at_ms = src->created_at_ms();
    m->confidence = src->confidence();
    m->importance = src->importance();
    m->emotional_valence = src->valence();
    m->lifecycle = (mn_lifecycle_t)src->lifecycle();
    m->expires_at_ms = src->expires_at_ms();
    m->suppressed = src->suppressed();
    m->suppressed_at_ms = src->suppressed_at_ms();
    m->unsuppressed_at_ms = src->unsuppressed_at_ms();
    m->forgotten = src->tombstone();
    m->forgotten_at_ms = src->forgotten_at_ms();
    m->retired = src->tombstone() && src->retired();
    if (tombstone) *tombstone = src->tombstone();
    if (forgotten_at) *forgotten_at = src->forgotten_at_ms();
    if (src->content()) {
        m->content_len = src->content()->size();
        if (with_content && !(m->content = dup_str(src->content()))) return false;
    }
    if (src->embedding() && src->embedding()->size()) {
        uint32_t n = src->embedding()->size();
        m->embedding = (float *)malloc(sizeof(float) * n);
        if (!m->embedding) return false;
        for (uint32_t i = 0; i < n; i++) m->embedding[i] = src->embedding()->Get(i);
        m->dim = n;
    }
    if (!dup_str_vec(src->who(), &m->who, &m->n_who)) return false;
    if (src->where() && !(m->where = dup_str(src->where()))) return false;
    if (src->session() && !(m->session = dup_str(src->session()))) return false;
    if (!dup_str_vec(src->tags(), &m->tags, &m->n_tags)) return false;
    if (src->metadata() && src->metadata()->size()) {
        auto md = src->metadata();
        m->metadata = (mn_kv_t *)calloc(md->size(), sizeof(mn_kv_t));
        if (!m->metadata) return false;
        for (fb::uoffset_t i = 0; i < md->size(); i++) {
            auto kv = md->Get(i);
            m->metadata[i].key = dup_str(kv->key());
            m->metadata[i].value = dup_str(kv->value());
            m->n_metadata++;
            if (!m->metadata[i].key || !m->metadata[i].value) return false;
        }
    }
    if (src->idempotency_key() && !(m->idempotency_key = dup_str(src->idempotency_key())))
        return false;
    if (src->support() && src->support()->size()) {
        if (src->support()->size() % 16) return false;
        m->n_support = src->support()->size() / 16;
        m->support = (mn_id_t *)malloc(m->n_support * sizeof(mn_id_t));
        if (!m->support) return false;
        memcpy(m->support, src->support()->data(), m->n_support * 16);
    }
    return decode_version(src, m);
}

// Copies verified edges; false on a bad id or OOM.
bool decode_edges(const fb::Vector<fb::Offset<w::Edge>> *v, mn_edge_t **out, size_t *n)
{
    *out = nullptr;
    *n = 0;
    if (!v || !v->size()) return true;
    *out = (mn_edge_t *)calloc(v->size(), sizeof(mn_edge_t));
    if (!*out) return false;
    for (fb::uoffset_t i = 0; i < v->size(); i++) {
        auto e = v->Get(i);
        if (!copy_id(e->from(), &(*out)[i].from) || !copy_id(e->to(), &(*out)[i].to)) return false;
        (*out)[i].kind = (uint8_t)e->kind();
        (*out)[i].weight = e->weight();
        (*n)++;
    }
    return true;
}

} // namespace

static fb::Offset<void> build_space_create(fb::FlatBufferBuilder &b, const mn_wal_entry_t *e)
{
    const mn_space_def_t *d = &e->op.space_create.def;
    fb::Offset<fb::String> model = 0; /* absent: none recorded */
    if (d->embedding_model_set)
        model = b.CreateString(d->embedding_model,
                               strnlen(d->embedding_model, sizeof d->embedding_model));
    return w::CreateSpaceCreate(b, b.CreateString(d->name), d->dim, (int8_t)d->metric,
                                (int8_t)d->default_lifecycle, d->created_at_ms,
                                e->op.space_create.space_id, d->index.m, d->index.ef_construction,
                                d->index.ef_search, (int8_t)d->index.quantize,
                                d->text_language[0] ? b.CreateString(d->text_language) : 0, model,
                                (int8_t)d->dedup, d->dedup_threshold)
        .Union();
}

static fb::Offset<fb::Vector<fb::Offset<w::Memory>>> build_memories(fb::FlatBufferBuilder &b,
                                                                    const mn_memory_t *m, size_t n)
{
    std::vector<fb::Offset<w::Memory>> v;
    v.reserve(n);
    for (size_t i = 0; i < n; i++)
        v.push_back(build_memory(b, &m[i], m[i].forgotten, m[i].forgotten_at_ms, true));
    return b.CreateVector(v);
}

static fb::Offset<void> build_reinforce(fb::FlatBufferBuilder &b, const mn_wal_entry_t *e)
{
    std::vector<fb::Offset<w::Strength>> v;
    v.reserve(e->op.reinforce.n);
    for (size_t i = 0; i < e->op.reinforce.n; i++) {
        const mn_strength_t *st = &e->op.reinforce.items[i];
        v.push_back(w::CreateStrength(b, b.CreateVector(st->id.b, 16), st->stability_days,
                                      st->last_access_ms, st->access_count));
    }
    return w::CreateReinforce(b, b.CreateVector(v)).Union();
}

/* The ops that carry memory records, definitions or vectors. */
static fb::Offset<void> build_record_op(fb::FlatBufferBuilder &b, const mn_wal_entry_t *e,
                                        w::Op *type)
{
    switch (e->type) {
    case MN_WAL_OP_SPACE_CREATE:
        *type = w::Op_SpaceCreate;
        return build_space_create(b, e);
    case MN_WAL_OP_REMEMBER: {
        auto mv = build_memories(b, e->op.remember.mems, e->op.remember.n);
        auto ev = build_edges(b, e->op.remember.edges, e->op.remember.n_edges);
        *type = w::Op_Remember;
        return w::CreateRemember(b, mv, ev).Union();
    }
    case MN_WAL_OP_CONSOLIDATE:
        *type = w::Op_Consolidate;
        return w::CreateConsolidate(b,
                                    build_memories(b, e->op.consolidate.mems, e->op.consolidate.n))
            .Union();
    case MN_WAL_OP_REINFORCE:
        *type = w::Op_Reinforce;
        return build_reinforce(b, e);
    case MN_WAL_OP_EMBED: {
        fb::Offset<fb::Vector<float>> ev = 0;
        if (e->op.embed.embedding && e->op.embed.dim)
            ev = b.CreateVector(e->op.embed.embedding, e->op.embed.dim);
        *type = w::Op_Embed;
        return w::CreateEmbed(b, b.CreateVector(e->op.embed.id.b, 16), ev).Union();
    }
    case MN_WAL_OP_UPDATE: {
        const mn_memory_t *m = &e->op.update.mem;
        *type = w::Op_Update;
        return w::CreateUpdate(b, build_memory(b, m, m->forgotten, m->forgotten_at_ms, true))
            .Union();
    }
    default:
        *type = w::Op_NONE;
        return 0;
    }
}

/* The ops that name memories (or a space) by id and change their state. */
static fb::Offset<void> build_state_op(fb::FlatBufferBuilder &b, const mn_wal_entry_t *e,
                                       w::Op *type)
{
    switch (e->type) {
    case MN_WAL_OP_FORGET:
        *type = w::Op_Forget;
        return w::CreateForget(b, b.CreateVector(e->op.forget.id.b, 16), (int8_t)e->op.forget.mode,
                               (int8_t)e->op.forget.reason, e->op.forget.at_ms)
            .Union();
    case MN_WAL_OP_UNSUPPRESS:
        *type = w::Op_Unsuppress;
        return w::CreateUnsuppress(b, b.CreateVector(e->op.unsuppress.id.b, 16),
                                   e->op.unsuppress.at_ms)
            .Union();
    case MN_WAL_OP_ASSOCIATE:
        *type = w::Op_Associate;
        return w::CreateAssociate(b, build_edges(b, e->op.associate.edges, e->op.associate.n))
            .Union();
    case MN_WAL_OP_SPACE_DROP:
        *type = w::Op_SpaceDrop;
        return w::CreateSpaceDrop(b, b.CreateString(e->space), e->op.space_drop.space_id,
                                  e->op.space_drop.at_ms)
            .Union();
    case MN_WAL_OP_INVALIDATE:
        *type = w::Op_Invalidate;
        return w::CreateInvalidate(b, b.CreateVector(e->op.invalidate.id.b, 16),
                                   e->op.invalidate.at_ms, id_or_null(b, &e->op.invalidate.by),
                                   str_or_null(b, e->op.invalidate.reason))
            .Union();
    case MN_WAL_OP_FORGET_BATCH: {
        const auto *f = &e->op.forget_batch;
        auto ids = b.CreateVector(reinterpret_cast<const uint8_t *>(f->ids), f->n * 16);
        *type = w::Op_ForgetBatch;
        return w::CreateForgetBatch(b, ids, (int8_t)f->mode, (int8_t)f->reason, f->at_ms).Union();
    }
    default:
        *type = w::Op_NONE;
        return 0;
    }
}

extern "C" mn_err mn_wire_wal_encode(const mn_wal_entry_t *e, uint8_t **out, size_t *len)
{
    fb::FlatBufferBuilder b(1024);
    auto space = b.CreateString(e->space);
    w::Op op_type = w::Op_NONE;
    fb::Offset<void> op = build_record_op(b, e, &op_type);
    if (op_type == w::Op_NONE) op = build_state_op(b, e, &op_type);
    if (op_type == w::Op_NONE) return MN_ERR_INVALID;
    b.Finish(w::CreateEntry(b, space, e->epoch, e->lsn, e->hlc, op_type, op));
    return frame(b, out, len);
}

extern "C" void mn_wal_entry_clear(mn_wal_entry_t *e)
{
    if (e->type == MN_WAL_OP_REMEMBER) {
        for (size_t i = 0; e->op.remember.mems && i < e->op.remember.n; i++)
            mn_memory_clear(&e->op.remember.mems[i]);
        free(e->op.remember.mems);
        free(e->op.remember.edges);
    }
    if (e->type == MN_WAL_OP_ASSOCIATE) free(e->op.associate.edges);
    if (e->type == MN_WAL_OP_REINFORCE) free(e->op.reinforce.items);
    if (e->type == MN_WAL_OP_EMBED) free(e->op.embed.embedding);
    if (e->type == MN_WAL_OP_UPDATE) mn_memory_clear(&e->op.update.mem);
    if (e->type == MN_WAL_OP_INVALIDATE) free(e->op.invalidate.reason);
    if (e->type == MN_WAL_OP_FORGET_BATCH) free(e->op.forget_batch.ids);
    if (e->type == MN_WAL_OP_CONSOLIDATE) {
        for (size_t i = 0; e->op.consolidate.mems && i < e->op.consolidate.n; i++)
            mn_memory_clear(&e->op.consolidate.mems[i]);
        free(e->op.consolidate.mems);
    }
    memset(e, 0, sizeof *e);
}

// ---- decoding a WAL entry: one function per op; mn_wire_wal_decode keeps the switch.
// Each fills out (its type first, so mn_wal_entry_clear frees what was decoded) and, on
// failure, returns MN_ERR_CORRUPT naming the op; the caller clears out.

static mn_err decode_space_create(const w::Entry *en, mn_wal_entry_t *out, mn_error *err)
{
    auto sc = en->op_as_SpaceCreate();
    if (!sc->name() || sc->name()->size() > MN_SPACE_NAME_MAX)
        return mn_error_set(err, MN_ERR_CORRUPT, "space_create without a valid name");
    out->type = MN_WAL_OP_SPACE_CREATE;
    mn_space_def_t *d = &out->op.space_create.def;
    memcpy(d->name, sc->name()->data(), sc->name()->size());
    d->name[sc->name()->size()] = '\0';
    d->dim = sc->dim();
    d->metric = (mn_metric_t)sc->metric();
    d->default_lifecycle = (mn_lifecycle_t)sc->default_lifecycle();
    d->created_at_ms = sc->created_at_ms();
    d->index.m = sc->index_m();
    d->index.ef_construction = sc->index_ef_construction();
    d->index.ef_search = sc->index_ef_search();
    d->index.quantize =
        sc->index_quantize() >= MN_QUANTIZE_DEFAULT && sc->index_quantize() <= MN_QUANTIZE_INT8
            ? (mn_quantize_t)sc->index_quantize()
            : MN_QUANTIZE_DEFAULT;
    if (sc->text_language()) { /* a name too long for any stemmer is kept cut: load says so */
        size_t n = sc->text_language()->size();
        if (n > MN_TEXT_LANGUAGE_MAX) n = MN_TEXT_LANGUAGE_MAX;
        memcpy(d->text_language, sc->text_language()->data(), n);
        d->text_language[n] = '\0';
    }
    if (sc->embedding_model()) { /* longer than any create accepts: damage, refused */
        size_t n = sc->embedding_model()->size();
        if (n > MN_EMBEDDING_MODEL_MAX)
            return mn_error_set(err, MN_ERR_CORRUPT, "space create: embedding_model of %zu bytes",
                                n);
        memcpy(d->embedding_model, sc->embedding_model()->data(), n);
        d->embedding_model[n] = '\0';
        d->embedding_model_set = true;
    }
    /* an unknown mode (a later version's) is the default; a threshold out of
     * (0, 1] links nothing */
    d->dedup = sc->dedup() == MN_DEDUP_OFF ? MN_DEDUP_OFF : MN_DEDUP_EXACT;
    float thr = sc->dedup_threshold();
    d->dedup_threshold = thr > 0 && thr <= 1 ? thr : 0;
    out->op.space_create.space_id = sc->space_id();
    return MN_OK;
}

// The memories of a remember or consolidate entry into *mems (calloc'd); *n counts the
// ones decoded so far, so a failure leaves only those to free.
static mn_err decode_memories(const fb::Vector<fb::Offset<w::Memory>> *v, mn_memory_t **mems,
                              size_t *n, const char *what, mn_error *err)
{
    size_t count = v ? v->size() : 0;
    if (count) {
        *mems = (mn_memory_t *)calloc(count, sizeof(mn_memory_t));
        if (!*mems) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        *n = i + 1;
        if (!decode_memory(v->Get((fb::uoffset_t)i), &(*mems)[i], nullptr, nullptr))
            return mn_error_set(err, MN_ERR_CORRUPT, "%s entry: bad memory %zu", what, i);
    }
    return MN_OK;
}

static mn_err decode_remember(const w::Entry *en, mn_wal_entry_t *out, mn_error *err)
{
    auto r = en->op_as_Remember();
    out->type = MN_WAL_OP_REMEMBER;
    mn_err rc = decode_memories(r->memories(), &out->op.remember.mems, &out->op.remember.n,
                                "remember", err);
    if (rc) return rc;
    if (!decode_edges(r->edges(), &out->op.remember.edges, &out->op.remember.n_edges))
        return mn_error_set(err, MN_ERR_CORRUPT, "remember entry: bad edge");
    return MN_OK;
}

static mn_err decode_forget(const w::Entry *en, mn_wal_entry_t *out, mn_error *err)
{
    auto f = en->op_as_Forget();
    out->type = MN_WAL_OP_FORGET;
    if (!copy_id(f->id(), &out->op.forget.id))
        return mn_error_set(err, MN_ERR_CORRUPT, "forget entry: bad id");
    out->op.forget.mode = f->mode();
    out->op.forget.reason = f->reason();
    out->op.forget.at_ms = f->at_ms();
    return MN_OK;
}

static mn_err decode_unsuppress(const w::Entry *en, mn_wal_entry_t *out, mn_error *err)
{
    out->type = MN_WAL_OP_UNSUPPRESS;
    if (!copy_id(en->op_as_Unsuppress()->id(), &out->op.unsuppress.id))
        return mn_error_set(err, MN_ERR_CORRUPT, "unsuppress entry: bad id");
    out->op.unsuppress.at_ms = en->op_as_Unsuppress()->at_ms();
    return MN_OK;
}

static mn_err decode_associate(const w::Entry *en, mn_wal_entry_t *out, mn_error *err)
{
    out->type = MN_WAL_OP_ASSOCIATE;
    if (!decode_edges(en->op_as_Associate()->edges(), &out->op.associate.edges,
                      &out->op.associate.n))
        return mn_error_set(err, MN_ERR_CORRUPT, "associate entry: bad edge");
    return MN_OK;
}

static mn_err decode_consolidate(const w::Entry *en, mn_wal_entry_t *out, mn_error *err)
{
    out->type = MN_WAL_OP_CONSOLIDATE;
    return decode_memories(en->op_as_Consolidate()->memories(), &out->op.consolidate.mems,
                           &out->op.consolidate.n, "consolidate", err);
}

static mn_err decode_reinforce(const w::Entry *en, mn_wal_entry_t *out, mn_error *err)
{
    out->type = MN_WAL_OP_REINFORCE;
    auto items = en->op_as_Reinforce()->items();
    size_t n = items ? items->size() : 0;
    if (n) {
        out->op.reinforce.items = (mn_strength_t *)calloc(n, sizeof(mn_strength_t));
        if (!out->op.reinforce.items) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        auto st = items->Get((fb::uoffset_t)i);
        mn_strength_t *o = &out->op.reinforce.items[i];
        out->op.reinforce.n = i + 1;
        if (!copy_id(st->id(), &o->id))
            return mn_error_set(err, MN_ERR_CORRUPT, "reinforce entry: bad id");
        o->stability_days = st->stability_days();
        o->last_access_ms = st->last_access_ms();
        o->access_count = st->access_count();
    }
    return MN_OK;
}

static mn_err decode_space_drop(const w::Entry *en, mn_wal_entry_t *out, mn_error *err)
{
    auto d = en->op_as_SpaceDrop();
    if (!d->name() || d->name()->size() != en->space()->size() ||
        memcmp(d->name()->data(), en->space()->data(), d->name()->size()))
        return mn_error_set(err, MN_ERR_CORRUPT, "space_drop names another space");
    out->type = MN_WAL_OP_SPACE_DROP;
    out->op.space_drop.space_id = d->space_id();
    out->op.space_drop.at_ms = d->at_ms();
    return MN_OK;
}

static mn_err decode_embed(const w::Entry *en, mn_wal_entry_t *out, mn_error *err)
{
    auto d = en->op_as_Embed();
    out->type = MN_WAL_OP_EMBED;
    if (!copy_id(d->id(), &out->op.embed.id))
        return mn_error_set(err, MN_ERR_CORRUPT, "embed entry: bad id");
    auto v = d->embedding();
    if (!v || !v->size()) return MN_OK; /* stripped: the memory was forgotten */
    if (v->size() > MN_DIM_MAX)
        return mn_error_set(err, MN_ERR_CORRUPT, "embed entry: %u values", (unsigned)v->size());
    out->op.embed.embedding = (float *)malloc(v->size() * sizeof(float));
    if (!out->op.embed.embedding) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (fb::uoffset_t i = 0; i < v->size(); i++) out->op.embed.embedding[i] = v->Get(i);
    out->op.embed.dim = v->size();
    return MN_OK;
}

static mn_err decode_update(const w::Entry *en, mn_wal_entry_t *out, mn_error *err)
{
    out->type = MN_WAL_OP_UPDATE;
    auto m = en->op_as_Update()->memory();
    if (!m || !decode_memory(m, &out->op.update.mem, nullptr, nullptr))
        return mn_error_set(err, MN_ERR_CORRUPT, "update entry: bad memory");
    return MN_OK;
}

static mn_err decode_invalidate(const w::Entry *en, mn_wal_entry_t *out, mn_error *err)
{
    auto d = en->op_as_Invalidate();
    out->type = MN_WAL_OP_INVALIDATE;
    if (!copy_id(d->id(), &out->op.invalidate.id) ||
        (d->by() && !copy_id(d->by(), &out->op.invalidate.by)))
        return mn_error_set(err, MN_ERR_CORRUPT, "invalidate entry: bad id");
    out->op.invalidate.at_ms = d->at_ms();
    if (d->reason() && !(out->op.invalidate.reason = dup_str(d->reason())))
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    return MN_OK;
}

static mn_err decode_forget_batch(const w::Entry *en, mn_wal_entry_t *out, mn_error *err)
{
    auto f = en->op_as_ForgetBatch();
    out->type = MN_WAL_OP_FORGET_BATCH;
    auto v = f->ids();
    if (!v || v->size() % 16 || v->size() / 16 > MN_WAL_FORGET_BATCH_MAX)
        return mn_error_set(err, MN_ERR_CORRUPT, "forget batch entry: %u id bytes",
                            v ? (unsigned)v->size() : 0u);
    size_t n = v->size() / 16;
    out->op.forget_batch.ids = (mn_id_t *)malloc((n ? n : 1) * sizeof(mn_id_t));
    if (!out->op.forget_batch.ids) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) memcpy(out->op.forget_batch.ids[i].b, v->data() + i * 16, 16);
    out->op.forget_batch.n = n;
    out->op.forget_batch.mode = f->mode();
    out->op.forget_batch.reason = f->reason();
    out->op.forget_batch.at_ms = f->at_ms();
    return MN_OK;
}

static mn_err decode_op(const w::Entry *en, mn_wal_entry_t *out, mn_error *err)
{
    switch (en->op_type()) {
    case w::Op_SpaceCreate: return decode_space_create(en, out, err);
    case w::Op_Remember: return decode_remember(en, out, err);
    case w::Op_Forget: return decode_forget(en, out, err);
    case w::Op_Unsuppress: return decode_unsuppress(en, out, err);
    case w::Op_Associate: return decode_associate(en, out, err);
    case w::Op_Consolidate: return decode_consolidate(en, out, err);
    case w::Op_Reinforce: return decode_reinforce(en, out, err);
    case w::Op_SpaceDrop: return decode_space_drop(en, out, err);
    case w::Op_Embed: return decode_embed(en, out, err);
    case w::Op_Update: return decode_update(en, out, err);
    case w::Op_Invalidate: return decode_invalidate(en, out, err);
    case w::Op_ForgetBatch: return decode_forget_batch(en, out, err);
    default:
        return mn_error_set(err, MN_ERR_CORRUPT, "wal entry with unknown op %d",
                            (int)en->op_type());
    }
}

extern "C" mn_err mn_wire_wal_decode(const uint8_t *buf, size_t len, mn_wal_entry_t *out,
                                     mn_error *err)
{
    memset(out, 0, sizeof *out);
    const uint8_t *body = nullptr;
    size_t blen = 0;
    mn_err rc = unframe(buf, len, &body, &blen, err);
    if (rc) return rc;
    aligned_body ab(body, blen);
    if (!ab.p) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    body = ab.p;
    fb::Verifier v(body, blen);
    if (!w::VerifyEntryBuffer(v))
        return mn_error_set(err, MN_ERR_CORRUPT, "wal entry fails flatbuffers verification");
    const w::Entry *en = w::GetEntry(body);
    if (!en->space() || en->space()->size() > MN_SPACE_NAME_MAX)
        return mn_error_set(err, MN_ERR_CORRUPT, "wal entry has no valid space name");
    memcpy(out->space, en->space()->data(), en->space()->size());
    out->space[en->space()->size()] = '\0';
    out->epoch = en->epoch();
    out->lsn = en->lsn();
    out->hlc = en->hlc();
    rc = decode_op(en, out, err);
    if (rc) mn_wal_entry_clear(out); /* frees what the op's decoder had taken */
    return rc;
}

extern "C" mn_err mn_wire_memory_encode(const mn_memory_record_t *r, bool with_embedding,
                                        uint8_t **out, size_t *len)
{
    fb::FlatBufferBuilder b(512);
    b.Finish(build_memory(b, &r->mem, r->tombstone, r->forgotten_at_ms, with_embedding));
    return frame(b, out, len);
}

static mn_err memory_decode(const uint8_t *buf, size_t len, mn_memory_record_t *out,
                            bool with_content, mn_error *err)
{
    memset(out, 0, sizeof *out);
    const uint8_t *body = nullptr;
    size_t blen = 0;
    mn_err rc = unframe(buf, len, &body, &blen, err);
    if (rc) return rc;
    aligned_body ab(body, blen);
    if (!ab.p) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    body = ab.p;
    fb::Verifier v(body, blen);
    if (!v.VerifyBuffer<w::Memory>(nullptr))
        return mn_error_set(err, MN_ERR_CORRUPT, "memory record fails flatbuffers verification");
    if (!decode_memory(fb::GetRoot<w::Memory>(body), &out->mem, &out->tombstone,
                       &out->forgotten_at_ms, with_content)) {
        mn_memory_clear(&out->mem);
        return mn_error_set(err, MN_ERR_CORRUPT, "memory record: bad id or out of memory");
    }
    return MN_OK;
}

extern "C" mn_err mn_wire_memory_decode(const uint8_t *buf, size_t len, mn_memory_record_t *out,
                                        mn_error *err)
{
    return memory_decode(buf, len, out, true, err);
}

extern "C" mn_err mn_wire_memory_decode_meta(const uint8_t *buf, size_t len, mn_memory_record_t *out,
                                             mn_error *err)
{
    return memory_decode(buf, len, out, false, err);
}
