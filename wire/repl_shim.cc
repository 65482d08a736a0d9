// C shim over the FlatBuffers code flatc generates from repl.fbs: encode
// replication frames and decode them after verification. Nothing here throws
// (built with -fno-exceptions). Decode runs the Verifier (depth and table
// limits sized for one frame), then checks every value the core relies on:
// kind, ids and space name (printable UTF-8, bounded), entry count, the
// format's major version. Entry checksums are the core's to judge (a bad one
// is a gap to fetch again, not a malformed frame).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "repl_generated.h"

extern "C" {
#include "mnemo/util.h"
#include "mnemo/wire_label.h"
#include "mnemo/wire_repl.h"
}

namespace fb = flatbuffers;
namespace rw = mnemo::replwire;

struct mn_wire_repl_enc {
    fb::FlatBufferBuilder b;
    mn_wire_repl_enc() : b(4096) {}
};

namespace
{

bool fb_label_ok(const fb::String *s, size_t max, bool may_be_empty)
{
    if (!s) return may_be_empty;
    return mn_wire_label_ok(s->c_str(), s->size(), max, may_be_empty);
}

bool frame_ok(const mn_wire_repl_frame_t &f)
{
    if (f.kind < MN_WIRE_REPL_APPEND || f.kind > MN_WIRE_REPL_KIND_MAX) return false;
    if (!mn_wire_label_ok(f.space, f.space_len, MN_WIRE_REPL_SPACE_MAX, false)) return false;
    if (!mn_wire_label_ok(f.from, f.from_len, MN_WIRE_REPL_ID_MAX, false)) return false;
    if (!mn_wire_label_ok(f.leader, f.leader_len, MN_WIRE_REPL_ID_MAX, true)) return false;
    if (f.n_entries > MN_WIRE_REPL_MAX_ENTRIES || (f.n_entries && !f.entries)) return false;
    for (size_t i = 0; i < f.n_entries; i++)
        if (f.entries[i].len && !f.entries[i].data) return false;
    return true;
}

void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

} // namespace

extern "C" {

uint32_t mn_wire_repl_entry_crc(const char *space, size_t space_len, uint64_t epoch, uint64_t lsn,
                                const uint8_t *data, size_t len)
{
    uint8_t head[16];
    put_be64(head, epoch);
    put_be64(head + 8, lsn);
    uint32_t crc = mn_crc32c(0, space, space_len);
    crc = mn_crc32c(crc, head, sizeof head);
    return mn_crc32c(crc, data, len);
}

mn_wire_repl_enc_t *mn_wire_repl_enc_new(void)
{
    return new (std::nothrow) mn_wire_repl_enc();
}

void mn_wire_repl_enc_free(mn_wire_repl_enc_t *e)
{
    delete e;
}

mn_err mn_wire_repl_encode(mn_wire_repl_enc_t *e, const mn_wire_repl_frame_t *f,
                           const uint8_t **out, size_t *out_len)
{
    if (!e || !f || !out || !out_len || !frame_ok(*f)) return MN_ERR_INVALID;
    size_t bytes = 0;
    for (size_t i = 0; i < f->n_entries; i++)
        bytes += f->entries[i].len + 64;
    if (bytes + 512 > MN_WIRE_REPL_MAX_FRAME) return MN_ERR_TOO_LARGE;
    fb::FlatBufferBuilder &b = e->b;
    b.Clear();
    fb::Offset<fb::Vector<fb::Offset<rw::Entry>>> ev;
    if (f->n_entries) {
        fb::Offset<rw::Entry> *offs =
            static_cast<fb::Offset<rw::Entry> *>(malloc(f->n_entries * sizeof *offs));
        if (!offs) return MN_ERR_NOMEM;
        for (size_t i = 0; i < f->n_entries; i++) {
            const mn_wire_repl_entry_t &en = f->entries[i];
            auto data = b.CreateVector(en.data, en.len);
            offs[i] = rw::CreateEntry(b, en.epoch, en.lsn, en.crc, data);
        }
        ev = b.CreateVector(offs, f->n_entries);
        free(offs);
    }
    auto space = b.CreateString(f->space, f->space_len);
    auto from = b.CreateString(f->from, f->from_len);
    fb::Offset<fb::String> leader;
    if (f->leader_len) leader = b.CreateString(f->leader, f->leader_len);
    rw::FrameBuilder fr(b);
    fr.add_epoch(f->epoch);
    fr.add_lsn(f->lsn);
    fr.add_last_epoch(f->last_epoch);
    fr.add_rec_epoch(f->rec_epoch);
    fr.add_rec_version(f->rec_version);
    fr.add_echo_us(f->echo_us);
    fr.add_incarnation(f->incarnation);
    fr.add_space(space);
    fr.add_from(from);
    if (!leader.IsNull()) fr.add_leader(leader);
    if (!ev.IsNull()) fr.add_entries(ev);
    fr.add_version(MN_WIRE_REPL_VERSION);
    fr.add_kind(f->kind);
    fr.add_flags(f->flags);
    b.Finish(fr.Finish(), rw::FrameIdentifier());
    *out = b.GetBufferPointer();
    *out_len = b.GetSize();
    return MN_OK;
}

mn_err mn_wire_repl_decode(const uint8_t *buf, size_t len, mn_wire_repl_frame_t *f,
                           mn_wire_repl_entry_t *storage, size_t cap)
{
    if (!buf || !f || len < 8 || len > MN_WIRE_REPL_MAX_FRAME || (uintptr_t)buf % 8 != 0)
        return MN_ERR_CORRUPT;
    fb::Verifier v(buf, len, 8, 4 * MN_WIRE_REPL_MAX_ENTRIES + 16);
    if (!rw::VerifyFrameBuffer(v)) return MN_ERR_CORRUPT;
    const rw::Frame *p = rw::GetFrame(buf);
    if (p->version() / 256 != MN_WIRE_REPL_MAJOR) return MN_ERR_UNSUPPORTED;
    if (p->kind() < MN_WIRE_REPL_APPEND || p->kind() > MN_WIRE_REPL_KIND_MAX) return MN_ERR_CORRUPT;
    if (!fb_label_ok(p->space(), MN_WIRE_REPL_SPACE_MAX, false) ||
        !fb_label_ok(p->from(), MN_WIRE_REPL_ID_MAX, false) ||
        !fb_label_ok(p->leader(), MN_WIRE_REPL_ID_MAX, true))
        return MN_ERR_CORRUPT;
    size_t n = p->entries() ? p->entries()->size() : 0;
    if (n > cap || n > MN_WIRE_REPL_MAX_ENTRIES) return MN_ERR_CORRUPT;
    memset(f, 0, sizeof *f);
    f->version = p->version();
    f->kind = p->kind();
    f->space = p->space()->c_str();
    f->space_len = p->space()->size();
    f->from = p->from()->c_str();
    f->from_len = p->from()->size();
    if (p->leader()) {
        f->leader = p->leader()->c_str();
        f->leader_len = p->leader()->size();
    }
    f->epoch = p->epoch();
    f->lsn = p->lsn();
    f->last_epoch = p->last_epoch();
    f->rec_epoch = p->rec_epoch();
    f->rec_version = p->rec_version();
    f->echo_us = p->echo_us();
    f->incarnation = p->incarnation();
    f->flags = p->flags();
    for (size_t i = 0; i < n; i++) {
        const rw::Entry *en = p->entries()->Get((fb::uoffset_t)i);
        if (!en) return MN_ERR_CORRUPT;
        storage[i].epoch = en->epoch();
        storage[i].lsn = en->lsn();
        storage[i].crc = en->crc();
        storage[i].data = en->data() ? en->data()->data() : nullptr;
        storage[i].len = en->data() ? en->data()->size() : 0;
    }
    f->entries = n ? storage : nullptr;
    f->n_entries = n;
    return MN_OK;
}

} // extern "C"
