// C shim over the FlatBuffers code flatc generates from swim.fbs: encode SWIM
// packet bodies into a bounded size and decode them after verification.
// Nothing here throws (built with -fno-exceptions). The encoder plans packets
// with a conservative per-entry cost so a body never exceeds the cap it was
// given (the UDP budget minus the swim framing); decode runs the Verifier,
// then checks every value the core relies on.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "swim_generated.h"

extern "C" {
#include "mnemo/util.h"
#include "mnemo/wire_label.h"
#include "mnemo/wire_swim.h"
}

namespace fb = flatbuffers;
namespace sw = mnemo::swimwire;

struct mn_wire_swim_enc {
    fb::FlatBufferBuilder b;
    mn_wire_swim_enc() : b(2048) {}
};

namespace
{

// Bytes the root table, both vectors, the root offset, the file identifier and
// the final alignment may add after the entries are written (measured bound
// is ~113; kept with margin).
constexpr size_t kTailReserve = 128;

sw::Addr to_fb(const mn_wire_swim_addr_t &a)
{
    return sw::Addr(fb::span<const uint8_t, 16>(a.ip, 16), a.port, a.family);
}

void from_fb(const sw::Addr *a, mn_wire_swim_addr_t *out)
{
    memset(out, 0, sizeof *out);
    if (!a) return;
    out->family = a->family();
    out->port = a->port();
    for (size_t i = 0; i < 16; i++)
        out->ip[i] = a->ip()->Get(i);
}

bool id_ok(const char *s, size_t n, bool may_be_empty)
{
    return mn_wire_label_ok(s, n, MN_WIRE_SWIM_ID_MAX, may_be_empty);
}

bool fb_id_ok(const fb::String *s, bool may_be_empty)
{
    if (!s) return may_be_empty;
    return id_ok(s->c_str(), s->size(), may_be_empty);
}

bool entry_ok(const mn_wire_swim_entry_t &en)
{
    return id_ok(en.id, en.id_len, false) && id_ok(en.from, en.from_len, true) &&
           mn_wire_label_ok(en.meta, en.meta_len, MN_WIRE_SWIM_META_MAX, true) && en.state <= 3 &&
           (en.addr.family == 0 || en.addr.family == 4 || en.addr.family == 6);
}

fb::Offset<sw::Entry> build_entry(fb::FlatBufferBuilder &b, const mn_wire_swim_entry_t &en)
{
    auto id = b.CreateString(en.id, en.id_len);
    fb::Offset<fb::String> from;
    if (en.from_len) from = b.CreateString(en.from, en.from_len);
    fb::Offset<fb::String> meta;
    if (en.meta_len) meta = b.CreateString(en.meta, en.meta_len);
    sw::Addr addr = to_fb(en.addr);
    sw::EntryBuilder eb(b);
    eb.add_incarnation(en.incarnation);
    eb.add_id(id);
    if (!from.IsNull()) eb.add_from(from);
    if (!meta.IsNull()) eb.add_meta(meta);
    eb.add_addr(&addr);
    eb.add_state(en.state);
    return eb.Finish();
}

bool decode_entry(const sw::Entry *e, mn_wire_swim_entry_t *out)
{
    if (!e || !fb_id_ok(e->id(), false) || !fb_id_ok(e->from(), true)) return false;
    if (e->state() > 3) return false;
    const fb::String *meta = e->meta();
    if (meta && !mn_wire_label_ok(meta->c_str(), meta->size(), MN_WIRE_SWIM_META_MAX, true))
        return false;
    out->meta = meta && meta->size() ? meta->c_str() : nullptr;
    out->meta_len = meta ? meta->size() : 0;
    out->id = e->id()->c_str();
    out->id_len = e->id()->size();
    out->from = e->from() ? e->from()->c_str() : nullptr;
    out->from_len = e->from() ? e->from()->size() : 0;
    from_fb(e->addr(), &out->addr);
    if (out->addr.family != 0 && out->addr.family != 4 && out->addr.family != 6) return false;
    out->incarnation = e->incarnation();
    out->state = e->state();
    return true;
}

} // namespace

extern "C" {

mn_wire_swim_enc_t *mn_wire_swim_enc_new(void)
{
    return new (std::nothrow) mn_wire_swim_enc();
}

void mn_wire_swim_enc_free(mn_wire_swim_enc_t *e)
{
    delete e;
}

size_t mn_wire_swim_entry_cost(const mn_wire_swim_entry_t *en)
{
    // vector slot 4 + table (soffset, 20-byte addr, u64, u8, two offsets, alignment) 48
    // + vtable 16 + id string (length prefix, NUL, padding) + from string, + margin 8.
    size_t c = 4 + 48 + 16 + 8 + (en->id_len + 8);
    if (en->from_len) c += en->from_len + 8;
    if (en->meta_len) c += en->meta_len + 8 + 4; // string + its vtable slot
    return c;
}

mn_err mn_wire_swim_encode(mn_wire_swim_enc_t *e, const mn_wire_swim_msg_t *m, size_t cap,
                           size_t *n_state_used, size_t *n_updates_used, const uint8_t **out,
                           size_t *out_len)
{
    if (!e || !m || !out || !out_len) return MN_ERR_INVALID;
    if (!id_ok(m->src, m->src_len, false) || !id_ok(m->target, m->target_len, true))
        return MN_ERR_INVALID;
    if (m->kind < MN_WIRE_SWIM_PING || m->kind > MN_WIRE_SWIM_SYNC) return MN_ERR_INVALID;
    // Longer lists are fine: only a prefix of at most MN_WIRE_SWIM_MAX_ENTRIES can go in.
    size_t n_state = m->n_state < MN_WIRE_SWIM_MAX_ENTRIES ? m->n_state : MN_WIRE_SWIM_MAX_ENTRIES;
    size_t n_updates =
        m->n_updates < MN_WIRE_SWIM_MAX_ENTRIES ? m->n_updates : MN_WIRE_SWIM_MAX_ENTRIES;
    if ((n_state && !m->state) || (n_updates && !m->updates)) return MN_ERR_INVALID;
    for (size_t i = 0; i < n_state; i++)
        if (!entry_ok(m->state[i])) return MN_ERR_INVALID;
    for (size_t i = 0; i < n_updates; i++)
        if (!entry_ok(m->updates[i])) return MN_ERR_INVALID;

    fb::FlatBufferBuilder &b = e->b;
    b.Clear();
    auto src = b.CreateString(m->src, m->src_len);
    fb::Offset<fb::String> target;
    if (m->target_len) target = b.CreateString(m->target, m->target_len);
    if (b.GetSize() + kTailReserve > cap) return MN_ERR_TOO_LARGE;

    fb::Offset<sw::Entry> st[MN_WIRE_SWIM_MAX_ENTRIES], up[MN_WIRE_SWIM_MAX_ENTRIES];
    size_t ns = 0, nu = 0;
    size_t total = 0;
    // Room check per entry: bytes so far + this entry's bound + the vector slots
    // of the entries already built (written later, with the vectors) + the tail.
    for (; ns < n_state && total < MN_WIRE_SWIM_MAX_ENTRIES; ns++, total++) {
        if (b.GetSize() + mn_wire_swim_entry_cost(&m->state[ns]) + 4 * total + kTailReserve > cap)
            break;
        st[ns] = build_entry(b, m->state[ns]);
    }
    for (; nu < n_updates && total < MN_WIRE_SWIM_MAX_ENTRIES; nu++, total++) {
        if (b.GetSize() + mn_wire_swim_entry_cost(&m->updates[nu]) + 4 * total + kTailReserve > cap)
            break;
        up[nu] = build_entry(b, m->updates[nu]);
    }
    fb::Offset<fb::Vector<fb::Offset<sw::Entry>>> sv, uv;
    if (ns) sv = b.CreateVector(st, ns);
    if (nu) uv = b.CreateVector(up, nu);
    sw::Addr taddr = to_fb(m->target_addr);
    sw::PacketBuilder pb(b);
    pb.add_seq(m->seq);
    pb.add_known(m->known);
    pb.add_src(src);
    if (!target.IsNull()) pb.add_target(target);
    if (m->target_addr.family) pb.add_target_addr(&taddr);
    if (!sv.IsNull()) pb.add_state(sv);
    if (!uv.IsNull()) pb.add_updates(uv);
    pb.add_chunk(m->chunk);
    pb.add_chunks(m->chunks);
    pb.add_kind(m->kind);
    pb.add_flags(m->flags);
    b.Finish(pb.Finish(), sw::PacketIdentifier());
    if (b.GetSize() > cap) return MN_ERR_TOO_LARGE; // the cost bounds are wrong: a bug
    if (n_state_used) *n_state_used = ns;
    if (n_updates_used) *n_updates_used = nu;
    *out = b.GetBufferPointer();
    *out_len = b.GetSize();
    return MN_OK;
}

mn_err mn_wire_swim_decode(const uint8_t *buf, size_t len, mn_wire_swim_msg_t *m,
                           mn_wire_swim_entry_t *storage, size_t cap)
{
    if (!buf || !m || len < 8 || (uintptr_t)buf % 8 != 0) return MN_ERR_CORRUPT;
    fb::Verifier v(buf, len, 16, 4096);
    if (!sw::VerifyPacketBuffer(v)) return MN_ERR_CORRUPT;
    const sw::Packet *p = sw::GetPacket(buf);
    if (p->kind() < MN_WIRE_SWIM_PING || p->kind() > MN_WIRE_SWIM_SYNC) return MN_ERR_CORRUPT;
    if (!fb_id_ok(p->src(), false) || !fb_id_ok(p->target(), true)) return MN_ERR_CORRUPT;
    size_t ns = p->state() ? p->state()->size() : 0;
    size_t nu = p->updates() ? p->updates()->size() : 0;
    if (ns + nu > cap || ns + nu > MN_WIRE_SWIM_MAX_ENTRIES) return MN_ERR_CORRUPT;
    memset(m, 0, sizeof *m);
    m->kind = p->kind();
    m->seq = p->seq();
    m->src = p->src()->c_str();
    m->src_len = p->src()->size();
    if (p->target()) {
        m->target = p->target()->c_str();
        m->target_len = p->target()->size();
    }
    from_fb(p->target_addr(), &m->target_addr);
    if (m->target_addr.family != 0 && m->target_addr.family != 4 && m->target_addr.family != 6)
        return MN_ERR_CORRUPT;
    m->flags = p->flags();
    m->chunk = p->chunk();
    m->chunks = p->chunks();
    m->known = p->known();
    for (size_t i = 0; i < ns; i++)
        if (!decode_entry(p->state()->Get((fb::uoffset_t)i), &storage[i])) return MN_ERR_CORRUPT;
    for (size_t i = 0; i < nu; i++)
        if (!decode_entry(p->updates()->Get((fb::uoffset_t)i), &storage[ns + i]))
            return MN_ERR_CORRUPT;
    m->state = ns ? storage : nullptr;
    m->n_state = ns;
    m->updates = nu ? storage + ns : nullptr;
    m->n_updates = nu;
    return MN_OK;
}

} // extern "C"
