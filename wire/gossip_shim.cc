// C shim over the FlatBuffers code flatc generates from gossip.fbs: encode
// gossip frames and decode them after verification. Nothing here throws
// (built with -fno-exceptions). Decode runs the Verifier (depth and table
// limits sized for one frame), then checks the shapes the core relies on:
// kind, node id and space name (printable UTF-8, bounded), node addresses
// within the tree, parallel vectors of agreeing lengths, 16-byte ids and
// digests, counts within limits, the major version; and last the CRC32C,
// which covers the content field by field (frame_crc), not the FlatBuffers
// layout, so any encoder of the same content writes the same value.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "gossip_generated.h"

extern "C" {
#include "mnemo/util.h"
#include "mnemo/wire_label.h"
#include "mnemo/wire_gossip.h"
}

namespace fb = flatbuffers;
namespace gw = mnemo::gossipwire;

struct mn_wire_gossip_enc {
    fb::FlatBufferBuilder b;
    mn_wire_gossip_enc() : b(4096) {}
};

namespace
{

bool node_ok(uint8_t level, uint16_t index)
{
    return level <= MN_WIRE_GOSSIP_DEPTH && (uint32_t)index < (1u << (4 * level));
}

bool record_ok(const mn_wire_gossip_record_t &r)
{
    return r.id && r.digest && r.n_support <= MN_WIRE_GOSSIP_MAX_IDS &&
           r.n_forgotten <= MN_WIRE_GOSSIP_MAX_IDS && (!r.n_support || r.support) &&
           (!r.n_forgotten || r.forgotten) && r.payload_len <= MN_WIRE_GOSSIP_PAYLOAD_MAX &&
           (!r.payload_len || r.payload);
}

bool frame_ok(const mn_wire_gossip_frame_t &f)
{
    if (f.kind < MN_WIRE_GOSSIP_NODES || f.kind > MN_WIRE_GOSSIP_KIND_MAX) return false;
    if (!mn_wire_label_ok(f.from, f.from_len, MN_WIRE_GOSSIP_ID_MAX, false)) return false;
    if (!mn_wire_label_ok(f.space, f.space_len, MN_WIRE_GOSSIP_SPACE_MAX, true)) return false;
    if (f.n_nodes > MN_WIRE_GOSSIP_MAX_NODES || (f.n_nodes && !f.nodes)) return false;
    for (size_t i = 0; i < f.n_nodes; i++)
        if (!node_ok(f.nodes[i].level, f.nodes[i].index)) return false;
    if (!node_ok(f.level, f.index)) return false;
    if (f.n_keys > MN_WIRE_GOSSIP_MAX_KEYS) return false;
    if (f.n_keys && !f.keys && !f.names) return false;
    if (f.names) {
        if (!f.name_lens) return false;
        for (size_t i = 0; i < f.n_keys; i++)
            if (!mn_wire_label_ok(f.names[i], f.name_lens[i], MN_WIRE_GOSSIP_SPACE_MAX, false))
                return false;
    }
    if (f.n_records > MN_WIRE_GOSSIP_MAX_RECORDS || (f.n_records && !f.records)) return false;
    for (size_t i = 0; i < f.n_records; i++)
        if (!record_ok(f.records[i])) return false;
    return true;
}

struct crc_acc {
    uint32_t c = 0;
    void bytes(const void *p, size_t n)
    {
        c = mn_crc32c(c, p, n);
    }
    void u64(uint64_t v)
    {
        uint8_t b[8];
        mn_put_be64(b, v);
        bytes(b, 8);
    }
    void str(const char *s, size_t n)
    {
        u64(n);
        if (n) bytes(s, n);
    }
};

void crc_record(crc_acc &a, const mn_wire_gossip_record_t &r)
{
    a.bytes(r.id, 16);
    a.bytes(r.digest, 16);
    uint32_t conf;
    memcpy(&conf, &r.confidence, sizeof conf);
    a.u64(conf);
    a.u64(r.epoch);
    a.u64(r.hlc);
    a.u64(r.support_n);
    a.u64(r.retired);
    a.u64(r.forgotten_hlc);
    a.u64(r.n_support);
    if (r.n_support) a.bytes(r.support, 16 * r.n_support);
    a.u64(r.n_forgotten);
    if (r.n_forgotten) a.bytes(r.forgotten, 16 * r.n_forgotten);
    a.u64(r.payload_len);
    if (r.payload_len) a.bytes(r.payload, r.payload_len);
}

uint32_t frame_crc(const mn_wire_gossip_frame_t &f)
{
    crc_acc a;
    a.u64(f.kind);
    a.str(f.from, f.from_len);
    a.str(f.space, f.space_len);
    a.u64(f.n_nodes);
    for (size_t i = 0; i < f.n_nodes; i++) {
        const mn_wire_gossip_node_t &n = f.nodes[i];
        a.u64(((uint64_t)n.level << 48) | ((uint64_t)n.index << 32) | n.count);
        a.bytes(n.digest, 16);
    }
    a.u64(((uint64_t)f.level << 16) | f.index);
    a.u64(f.n_keys);
    if (f.n_keys && f.keys) a.bytes(f.keys, 16 * f.n_keys);
    if (f.n_keys && f.digests) a.bytes(f.digests, 16 * f.n_keys);
    for (size_t i = 0; f.names && i < f.n_keys; i++)
        a.str(f.names[i], f.name_lens[i]);
    a.u64(f.n_records);
    for (size_t i = 0; i < f.n_records; i++)
        crc_record(a, f.records[i]);
    return a.c;
}

size_t frame_bytes(const mn_wire_gossip_frame_t &f)
{
    size_t n = 256 + f.n_nodes * 32 + f.n_keys * (32 + 8 + MN_WIRE_GOSSIP_SPACE_MAX);
    for (size_t i = 0; i < f.n_records; i++)
        n += 160 + 16 * (f.records[i].n_support + f.records[i].n_forgotten) +
             f.records[i].payload_len;
    return n;
}

fb::Offset<gw::Record> build_record(fb::FlatBufferBuilder &b, const mn_wire_gossip_record_t &r)
{
    auto id = b.CreateVector(r.id, 16);
    auto digest = b.CreateVector(r.digest, 16);
    fb::Offset<fb::Vector<uint8_t>> support, forgotten, payload;
    if (r.payload_len) payload = b.CreateVector(r.payload, r.payload_len);
    if (r.n_support) support = b.CreateVector(r.support, 16 * r.n_support);
    if (r.n_forgotten) forgotten = b.CreateVector(r.forgotten, 16 * r.n_forgotten);
    gw::RecordBuilder rb(b);
    rb.add_id(id);
    rb.add_digest(digest);
    rb.add_confidence(r.confidence);
    rb.add_epoch(r.epoch);
    rb.add_hlc(r.hlc);
    rb.add_support_n(r.support_n);
    rb.add_retired(r.retired);
    rb.add_forgotten_hlc(r.forgotten_hlc);
    if (!support.IsNull()) rb.add_support(support);
    if (!forgotten.IsNull()) rb.add_forgotten(forgotten);
    if (!payload.IsNull()) rb.add_payload(payload);
    return rb.Finish();
}

struct built {
    fb::Offset<fb::Vector<uint32_t>> addrs, counts;
    fb::Offset<fb::Vector<uint8_t>> ndig, keys, digests;
    fb::Offset<fb::Vector<fb::Offset<fb::String>>> names;
    fb::Offset<fb::Vector<fb::Offset<gw::Record>>> records;
};

bool build_nodes(fb::FlatBufferBuilder &b, const mn_wire_gossip_frame_t &f, built &o)
{
    uint32_t *addrs, *counts;
    uint8_t *dig;
    o.ndig = b.CreateUninitializedVector(16 * f.n_nodes, &dig);
    for (size_t i = 0; i < f.n_nodes; i++)
        memcpy(dig + 16 * i, f.nodes[i].digest, 16);
    o.counts = b.CreateUninitializedVector(f.n_nodes, &counts);
    for (size_t i = 0; i < f.n_nodes; i++)
        counts[i] = f.nodes[i].count;
    o.addrs = b.CreateUninitializedVector(f.n_nodes, &addrs);
    for (size_t i = 0; i < f.n_nodes; i++)
        addrs[i] = ((uint32_t)f.nodes[i].level << 16) | f.nodes[i].index;
    return true;
}

bool build_vectors(fb::FlatBufferBuilder &b, const mn_wire_gossip_frame_t &f, built &o)
{
    if (f.n_nodes) build_nodes(b, f, o);
    if (f.n_keys && f.keys) o.keys = b.CreateVector(f.keys, 16 * f.n_keys);
    if (f.n_keys && f.digests) o.digests = b.CreateVector(f.digests, 16 * f.n_keys);
    size_t n_offs = f.n_keys > f.n_records ? f.n_keys : f.n_records;
    if (!n_offs) return true;
    void *offs = malloc(n_offs * sizeof(fb::Offset<gw::Record>));
    if (!offs) return false;
    if (f.n_keys && f.names) {
        fb::Offset<fb::String> *names = static_cast<fb::Offset<fb::String> *>(offs);
        for (size_t i = 0; i < f.n_keys; i++)
            names[i] = b.CreateString(f.names[i], f.name_lens[i]);
        o.names = b.CreateVector(names, f.n_keys);
    }
    if (f.n_records) {
        fb::Offset<gw::Record> *recs = static_cast<fb::Offset<gw::Record> *>(offs);
        for (size_t i = 0; i < f.n_records; i++)
            recs[i] = build_record(b, f.records[i]);
        o.records = b.CreateVector(recs, f.n_records);
    }
    free(offs);
    return true;
}

// ---- decode ----

bool bytes16(const fb::Vector<uint8_t> *v)
{
    return v && v->size() == 16;
}

bool ids_vec(const fb::Vector<uint8_t> *v, const uint8_t **p, size_t *n)
{
    *p = nullptr;
    *n = 0;
    if (!v) return true;
    if (v->size() % 16 || v->size() / 16 > MN_WIRE_GOSSIP_MAX_IDS) return false;
    *n = v->size() / 16;
    *p = *n ? v->data() : nullptr;
    return true;
}

bool decode_record(const gw::Record *r, mn_wire_gossip_record_t &o)
{
    if (!r || !bytes16(r->id()) || !bytes16(r->digest())) return false;
    o.id = r->id()->data();
    o.digest = r->digest()->data();
    o.confidence = r->confidence();
    o.epoch = r->epoch();
    o.hlc = r->hlc();
    o.support_n = r->support_n();
    o.retired = r->retired();
    o.forgotten_hlc = r->forgotten_hlc();
    o.payload = nullptr;
    o.payload_len = 0;
    if (r->payload()) {
        if (r->payload()->size() > MN_WIRE_GOSSIP_PAYLOAD_MAX) return false;
        o.payload_len = r->payload()->size();
        o.payload = o.payload_len ? r->payload()->data() : nullptr;
    }
    return ids_vec(r->support(), &o.support, &o.n_support) &&
           ids_vec(r->forgotten(), &o.forgotten, &o.n_forgotten);
}

bool decode_nodes(const gw::Frame *p, mn_wire_gossip_frame_t *f, const mn_wire_gossip_storage_t *st)
{
    const fb::Vector<uint32_t> *addrs = p->node_addrs(), *counts = p->node_counts();
    const fb::Vector<uint8_t> *dig = p->node_digests();
    size_t n = addrs ? addrs->size() : 0;
    if ((counts ? counts->size() : 0) != n || (dig ? dig->size() : 0) != 16 * n) return false;
    if (n > st->nodes_cap || n > MN_WIRE_GOSSIP_MAX_NODES) return false;
    for (size_t i = 0; i < n; i++) {
        uint32_t a = addrs->Get((fb::uoffset_t)i);
        mn_wire_gossip_node_t &o = st->nodes[i];
        if (a >> 24 || !node_ok((uint8_t)(a >> 16), (uint16_t)a)) return false;
        o.level = (uint8_t)(a >> 16);
        o.index = (uint16_t)a;
        o.count = counts->Get((fb::uoffset_t)i);
        memcpy(o.digest, dig->data() + 16 * i, 16);
    }
    f->nodes = n ? st->nodes : nullptr;
    f->n_nodes = n;
    return true;
}

bool decode_keys(const gw::Frame *p, mn_wire_gossip_frame_t *f, const mn_wire_gossip_storage_t *st)
{
    const fb::Vector<uint8_t> *keys = p->keys(), *dig = p->digests();
    const fb::Vector<fb::Offset<fb::String>> *names = p->names();
    if (keys && names) return false;
    size_t n = keys ? keys->size() / 16 : names ? names->size() : 0;
    if (keys && keys->size() % 16) return false;
    if (dig && dig->size() != 16 * n) return false;
    if (n > MN_WIRE_GOSSIP_MAX_KEYS || (names && (n > st->names_cap || !dig))) return false;
    f->n_keys = n;
    f->keys = keys && n ? keys->data() : nullptr;
    f->digests = dig && n ? dig->data() : nullptr;
    if (!names) return true;
    for (size_t i = 0; i < n; i++) {
        const fb::String *s = names->Get((fb::uoffset_t)i);
        if (!s || !mn_wire_label_ok(s->c_str(), s->size(), MN_WIRE_GOSSIP_SPACE_MAX, false))
            return false;
        st->names[i] = s->c_str();
        st->name_lens[i] = s->size();
    }
    f->names = st->names;
    f->name_lens = st->name_lens;
    return true;
}

bool decode_records(const gw::Frame *p, mn_wire_gossip_frame_t *f,
                    const mn_wire_gossip_storage_t *st)
{
    size_t n = p->records() ? p->records()->size() : 0;
    if (n > st->records_cap || n > MN_WIRE_GOSSIP_MAX_RECORDS) return false;
    for (size_t i = 0; i < n; i++)
        if (!decode_record(p->records()->Get((fb::uoffset_t)i), st->records[i])) return false;
    f->records = n ? st->records : nullptr;
    f->n_records = n;
    return true;
}

} // namespace

extern "C" {

mn_wire_gossip_enc_t *mn_wire_gossip_enc_new(void)
{
    return new (std::nothrow) mn_wire_gossip_enc();
}

void mn_wire_gossip_enc_free(mn_wire_gossip_enc_t *e)
{
    delete e;
}

mn_err mn_wire_gossip_encode(mn_wire_gossip_enc_t *e, const mn_wire_gossip_frame_t *f,
                             const uint8_t **out, size_t *out_len)
{
    if (!e || !f || !out || !out_len || !frame_ok(*f)) return MN_ERR_INVALID;
    if (frame_bytes(*f) > MN_WIRE_GOSSIP_MAX_FRAME) return MN_ERR_TOO_LARGE;
    fb::FlatBufferBuilder &b = e->b;
    b.Clear();
    built v;
    if (!build_vectors(b, *f, v)) return MN_ERR_NOMEM;
    auto from = b.CreateString(f->from, f->from_len);
    fb::Offset<fb::String> space;
    if (f->space_len) space = b.CreateString(f->space, f->space_len);
    gw::FrameBuilder fr(b);
    fr.add_crc(frame_crc(*f));
    fr.add_from(from);
    if (!space.IsNull()) fr.add_space(space);
    if (!v.addrs.IsNull()) {
        fr.add_node_addrs(v.addrs);
        fr.add_node_counts(v.counts);
        fr.add_node_digests(v.ndig);
    }
    if (!v.keys.IsNull()) fr.add_keys(v.keys);
    if (!v.digests.IsNull()) fr.add_digests(v.digests);
    if (!v.names.IsNull()) fr.add_names(v.names);
    if (!v.records.IsNull()) fr.add_records(v.records);
    fr.add_version(MN_WIRE_GOSSIP_VERSION);
    fr.add_index(f->index);
    fr.add_kind(f->kind);
    fr.add_level(f->level);
    b.Finish(fr.Finish(), gw::FrameIdentifier());
    *out = b.GetBufferPointer();
    *out_len = b.GetSize();
    return MN_OK;
}

mn_err mn_wire_gossip_decode(const uint8_t *buf, size_t len, mn_wire_gossip_frame_t *f,
                             const mn_wire_gossip_storage_t *st)
{
    if (!buf || !f || !st || len < 8 || len > MN_WIRE_GOSSIP_MAX_FRAME || (uintptr_t)buf % 8 != 0)
        return MN_ERR_CORRUPT;
    fb::Verifier v(buf, len, 8, 4 * MN_WIRE_GOSSIP_MAX_KEYS + 4 * MN_WIRE_GOSSIP_MAX_RECORDS + 64);
    if (!gw::VerifyFrameBuffer(v)) return MN_ERR_CORRUPT;
    const gw::Frame *p = gw::GetFrame(buf);
    if (p->version() / 256 != MN_WIRE_GOSSIP_MAJOR) return MN_ERR_UNSUPPORTED;
    memset(f, 0, sizeof *f);
    f->version = p->version();
    f->kind = p->kind();
    if (!p->from()) return MN_ERR_CORRUPT;
    f->from = p->from()->c_str();
    f->from_len = p->from()->size();
    if (p->space()) {
        f->space = p->space()->c_str();
        f->space_len = p->space()->size();
    }
    f->level = p->level();
    f->index = p->index();
    if (!decode_nodes(p, f, st) || !decode_keys(p, f, st) || !decode_records(p, f, st))
        return MN_ERR_CORRUPT;
    if (!frame_ok(*f) || frame_crc(*f) != p->crc()) return MN_ERR_CORRUPT;
    return MN_OK;
}

} // extern "C"
