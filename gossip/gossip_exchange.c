/* One exchange between two nodes, driven by the frames alone (no session
 * state on either side, so a lost frame only ends the exchange early and
 * the next round starts over):
 *
 *   NODES    the sender's digests of some nodes of one tree (the directory
 *            when space is empty). For each node that differs here: if it is
 *            a leaf, or either side holds at most summary_max entries under
 *            it, answer with a SUMMARY of ours; else answer NODES with our 16
 *            children of it. Each answer is one level deeper, so the
 *            ping-pong ends after at most depth + 1 frames per tree.
 *   SUMMARY  the sender's entries under one node: (id, digest) pairs of a
 *            space, or (name, digest) pairs of the directory. Walked against
 *            ours in (bucket, key) order: in a space, records only we hold or
 *            that differ are PUSHed and those only the peer holds or that
 *            differ are PULLed (batch_max each); in the directory, every
 *            differing space starts a descent of its tree (NODES with our
 *            root of it; at most spaces_max).
 *   PULL     ids: answered with a PUSH of the records we hold.
 *   PUSH     records: each is checked and merged; changes go to the
 *            changed callback.
 *
 * With per-space peer sets (cb.shares), each side sees only the spaces it
 * shares with the other: the directory's nodes and summaries are taken over
 * those, and a frame about another space is ignored.
 *
 * A peer's frames are untrusted beyond their shape (wire/ checked it):
 * values are checked here (mn_gossip_record_check), unknown spaces read as
 * empty trees, unsorted lists only cost extra transfers. */
#include <string.h>

#include "gossip_internal.h"

typedef struct exch {
    mn_gossip_t *g;
    const mn_wire_gossip_frame_t *in;
    mn__gossip_dir *dir;
    mn__gossip_space *sp; /* NULL: the directory, or a space we do not hold */
} exch;

static bool is_dir(const exch *x)
{
    return x->in->space_len == 0;
}

/* Does the space (len bytes) take part in the exchange with this frame's sender? */
static bool shared(const exch *x, const char *space, size_t len)
{
    return mn__gossip_shares(x->g, x->in->from, x->in->from_len, space, len);
}

static void node_of(const exch *x, int level, uint32_t index, uint8_t *digest, uint32_t *count)
{
    if (is_dir(x))
        mn__gossip_dir_node_for(x->g, x->in->from, x->in->from_len, level, index, digest, count);
    else if (x->sp)
        mn__gossip_tree_node(&x->sp->tree, level, index, digest, count);
    else {
        memset(digest, 0, MN_GOSSIP_DIGEST_LEN);
        *count = 0;
    }
}

static void reply(exch *x, mn_wire_gossip_frame_t *f)
{
    f->space = x->in->space;
    f->space_len = x->in->space_len;
    mn__gossip_send(x->g, x->in->from, x->in->from_len, f);
}

/* ---- SUMMARY out ---- */

static size_t list_space(exch *x, int level, uint32_t index)
{
    size_t first = 0, end = 0, n = 0;
    if (x->sp) mn__gossip_rec_range(x->sp, level, index, &first, &end);
    for (size_t i = first; i < end && n < MN_WIRE_GOSSIP_MAX_KEYS; i++, n++) {
        memcpy(x->g->out_keys + 16 * n, x->sp->recs[i]->r.id.b, 16);
        memcpy(x->g->out_digests + 16 * n, x->sp->recs[i]->hash, 16);
    }
    return n;
}

static size_t list_dir(exch *x, int level, uint32_t index)
{
    size_t first, end, n = 0;
    mn__gossip_dir_range(x->dir, level, index, &first, &end);
    for (size_t i = first; i < end && n < MN_WIRE_GOSSIP_MAX_KEYS; i++) {
        const mn__gossip_space *sp = x->dir->spaces[i];
        if (!sp->in_dir || !shared(x, sp->name, sp->name_len)) continue;
        x->g->out_names[n] = sp->name;
        x->g->out_name_lens[n] = sp->name_len;
        memcpy(x->g->out_digests + 16 * n, sp->dir_digest, 16);
        n++;
    }
    return n;
}

static void send_summary(exch *x, int level, uint32_t index)
{
    mn_wire_gossip_frame_t f = {.kind = MN_WIRE_GOSSIP_SUMMARY,
                                .level = (uint8_t)level,
                                .index = (uint16_t)index,
                                .digests = x->g->out_digests};
    if (is_dir(x)) {
        f.n_keys = list_dir(x, level, index);
        f.names = x->g->out_names;
        f.name_lens = x->g->out_name_lens;
    } else {
        f.n_keys = list_space(x, level, index);
        f.keys = x->g->out_keys;
    }
    if (!f.n_keys) { /* an empty list: no vectors at all */
        f.digests = f.keys = NULL;
        f.names = NULL;
        f.name_lens = NULL;
    }
    reply(x, &f);
}

/* ---- NODES in ---- */

static void on_nodes(exch *x)
{
    mn_gossip_t *g = x->g;
    size_t n_out = 0;
    for (size_t i = 0; i < x->in->n_nodes; i++) {
        const mn_wire_gossip_node_t *theirs = &x->in->nodes[i];
        uint8_t digest[MN_GOSSIP_DIGEST_LEN];
        uint32_t count;
        node_of(x, theirs->level, theirs->index, digest, &count);
        if (count == theirs->count && memcmp(digest, theirs->digest, sizeof digest) == 0) continue;
        if (is_dir(x) && theirs->level == 0) g->stats.peers_differing++;
        uint32_t most = count > theirs->count ? count : theirs->count;
        if (theirs->level == MN_GOSSIP_TREE_DEPTH || most <= g->cfg.summary_max) {
            send_summary(x, theirs->level, theirs->index);
            continue;
        }
        if (n_out + MN_GOSSIP_TREE_FANOUT > MN_WIRE_GOSSIP_MAX_NODES) continue; /* next round */
        for (uint32_t c = 0; c < MN_GOSSIP_TREE_FANOUT; c++) {
            mn_wire_gossip_node_t *o = &g->out_nodes[n_out++];
            o->level = (uint8_t)(theirs->level + 1);
            o->index = (uint16_t)(theirs->index * MN_GOSSIP_TREE_FANOUT + c);
            node_of(x, o->level, o->index, o->digest, &o->count);
        }
    }
    if (!n_out) return;
    mn_wire_gossip_frame_t f = {
        .kind = MN_WIRE_GOSSIP_NODES, .nodes = g->out_nodes, .n_nodes = n_out};
    reply(x, &f);
}

/* ---- SUMMARY in ---- */

typedef struct batch {
    exch *x;
    mn_wire_gossip_frame_t f;
    size_t bytes; /* payload bytes in f */
} batch;

static void batch_flush(batch *b)
{
    if (!b->f.n_keys && !b->f.n_records) return;
    if (b->f.kind == MN_WIRE_GOSSIP_PUSH) b->x->g->stats.entries_pushed += b->f.n_records;
    reply(b->x, &b->f);
    b->f.n_keys = b->f.n_records = 0;
    b->bytes = 0;
}

static void push_add(batch *b, const mn__gossip_rec *r)
{
    mn_wire_gossip_record_t *w = &b->x->g->out_recs[b->f.n_records++];
    const mn_gossip_record_t *s = &r->r;
    *w = (mn_wire_gossip_record_t){.id = s->id.b,
                                   .digest = s->digest,
                                   .confidence = s->confidence,
                                   .epoch = s->epoch,
                                   .hlc = s->hlc,
                                   .support_n = s->support_n,
                                   .retired = s->retired,
                                   .forgotten_hlc = s->forgotten_hlc,
                                   .support = s->n_support ? s->support[0].b : NULL,
                                   .n_support = s->n_support,
                                   .forgotten = s->n_forgotten_eps ? s->forgotten_eps[0].b : NULL,
                                   .n_forgotten = s->n_forgotten_eps,
                                   .payload = s->payload,
                                   .payload_len = s->payload_len};
    b->bytes += s->payload_len;
    if (b->f.n_records == b->x->g->cfg.batch_max || b->bytes >= MN_GOSSIP_PUSH_BYTES)
        batch_flush(b);
}

/* A pull batch's ids are copied to out_keys, free while a space's summary
 * is walked (the frame's own keys are read from the received buffer). */
static void pull_add(batch *b, const uint8_t *id)
{
    memcpy(b->x->g->out_keys + 16 * b->f.n_keys++, id, 16);
    if (b->f.n_keys == b->x->g->cfg.batch_max) batch_flush(b);
}

static int key_cmp(uint64_t ba, const mn_id_t *a, const mn__gossip_rec *r)
{
    if (ba != r->bucket) return ba < r->bucket ? -1 : 1;
    return mn_id_cmp(a, &r->r.id);
}

static void on_space_summary(exch *x)
{
    const mn_wire_gossip_frame_t *in = x->in;
    if (!in->keys && in->n_keys) return; /* a directory-shaped summary for a space */
    size_t first = 0, end = 0, j = 0;
    if (x->sp) mn__gossip_rec_range(x->sp, in->level, in->index, &first, &end);
    batch push = {.x = x, .f = {.kind = MN_WIRE_GOSSIP_PUSH, .records = x->g->out_recs}};
    batch pull = {.x = x, .f = {.kind = MN_WIRE_GOSSIP_PULL, .keys = x->g->out_keys}};
    uint32_t sent = 0, asked = 0, cap = x->g->cfg.batch_max;
    for (size_t i = first; (i < end || j < in->n_keys) && (sent < cap || asked < cap);) {
        mn_id_t id;
        uint64_t bk = 0;
        if (j < in->n_keys) {
            memcpy(id.b, in->keys + 16 * j, 16);
            bk = mn__gossip_id_bucket(&id);
        }
        int c = i == end ? 1 : j == in->n_keys ? -1 : -key_cmp(bk, &id, x->sp->recs[i]);
        bool differ = c == 0 && memcmp(x->sp->recs[i]->hash, in->digests + 16 * j, 16) != 0;
        if ((c < 0 || differ) && sent < cap) {
            push_add(&push, x->sp->recs[i]);
            sent++;
        }
        if ((c > 0 || differ) && asked < cap) {
            pull_add(&pull, in->keys + 16 * j);
            asked++;
        }
        i += c <= 0;
        j += c >= 0;
    }
    batch_flush(&push);
    batch_flush(&pull);
}

static int name_cmp(uint64_t ba, const char *a, size_t na, const mn__gossip_space *sp)
{
    if (ba != sp->bucket) return ba < sp->bucket ? -1 : 1;
    size_t m = na < sp->name_len ? na : sp->name_len;
    int c = memcmp(a, sp->name, m);
    return c ? c : na < sp->name_len ? -1 : na > sp->name_len;
}

/* Starts the descent of one space's tree with the peer: our root of it. */
static void descend_space(exch *x, const char *name, size_t len)
{
    const mn__gossip_space *sp = mn__gossip_space_find(x->dir, name, len);
    mn_wire_gossip_node_t root = {.level = 0, .index = 0};
    if (sp) mn__gossip_tree_node(&sp->tree, 0, 0, root.digest, &root.count);
    mn_wire_gossip_frame_t f = {.kind = MN_WIRE_GOSSIP_NODES,
                                .space = name,
                                .space_len = len,
                                .nodes = &root,
                                .n_nodes = 1};
    mn__gossip_send(x->g, x->in->from, x->in->from_len, &f);
}

static void on_dir_summary(exch *x)
{
    const mn_wire_gossip_frame_t *in = x->in;
    if (!in->names && in->n_keys) return; /* a space-shaped summary for the directory */
    size_t first, end, j = 0, started = 0;
    mn__gossip_dir_range(x->dir, in->level, in->index, &first, &end);
    for (size_t i = first; (i < end || j < in->n_keys) && started < x->g->cfg.spaces_max;) {
        const mn__gossip_space *mine = i < end ? x->dir->spaces[i] : NULL;
        if (mine && (!mine->in_dir || !shared(x, mine->name, mine->name_len))) {
            i++; /* no records (not in the directory), or not this peer's to see */
            continue;
        }
        uint64_t bk = j < in->n_keys ? mn__gossip_name_bucket(in->names[j], in->name_lens[j]) : 0;
        int c = !mine             ? 1
                : j == in->n_keys ? -1
                                  : -name_cmp(bk, in->names[j], in->name_lens[j], mine);
        bool differ = c == 0 && memcmp(mine->dir_digest, in->digests + 16 * j, 16) != 0;
        if (c > 0) { /* only the peer has it (and it is ours to share, or left alone) */
            if (shared(x, in->names[j], in->name_lens[j])) {
                descend_space(x, in->names[j], in->name_lens[j]);
                started++;
            }
        } else if (c < 0 || differ) { /* only we have it, or both and it differs */
            descend_space(x, mine->name, mine->name_len);
            started++;
        }
        i += c <= 0;
        j += c >= 0;
    }
}

/* ---- PULL and PUSH in ---- */

static void on_pull(exch *x)
{
    batch push = {.x = x, .f = {.kind = MN_WIRE_GOSSIP_PUSH, .records = x->g->out_recs}};
    for (size_t j = 0; x->sp && x->in->keys && j < x->in->n_keys && j < x->g->cfg.batch_max; j++) {
        mn_id_t id;
        memcpy(id.b, x->in->keys + 16 * j, 16);
        const mn__gossip_rec *r = mn__gossip_rec_find(x->sp, &id);
        if (r) push_add(&push, r);
    }
    batch_flush(&push);
}

static void wire_to_record(const mn_wire_gossip_record_t *w, mn_gossip_record_t *r, mn_id_t *sup,
                           mn_id_t *fgt)
{
    memset(r, 0, sizeof *r);
    memcpy(r->id.b, w->id, 16);
    memcpy(r->digest, w->digest, 16);
    r->confidence = w->confidence;
    r->epoch = w->epoch;
    r->hlc = w->hlc;
    r->support_n = w->support_n;
    r->retired = w->retired;
    r->forgotten_hlc = w->forgotten_hlc;
    for (size_t i = 0; i < w->n_support; i++)
        memcpy(sup[i].b, w->support + 16 * i, 16);
    for (size_t i = 0; i < w->n_forgotten; i++)
        memcpy(fgt[i].b, w->forgotten + 16 * i, 16);
    r->support = sup;
    r->n_support = w->n_support;
    r->forgotten_eps = fgt;
    r->n_forgotten_eps = w->n_forgotten;
    r->payload = w->payload;
    r->payload_len = w->payload_len;
}

static void on_push(exch *x)
{
    mn_gossip_t *g = x->g;
    mn_id_t sup[MN_WIRE_GOSSIP_MAX_IDS], fgt[MN_WIRE_GOSSIP_MAX_IDS];
    char space[MN_GOSSIP_SPACE_MAX + 1];
    memcpy(space, x->in->space, x->in->space_len);
    space[x->in->space_len] = '\0';
    for (size_t i = 0; i < x->in->n_records; i++) {
        mn_gossip_record_t r;
        wire_to_record(&x->in->records[i], &r, sup, fgt);
        g->stats.entries_pulled++;
        if (mn_gossip_record_check(&r, NULL) != MN_OK) {
            g->stats.frames_rejected++;
            continue;
        }
        if (r.forgotten_hlc && mn_hlc_ms(r.forgotten_hlc) < g->gc_before_ms) continue;
        if (g->cb.admit && !g->cb.admit(g->cb.user, space, &r.id)) {
            g->stats.entries_refused++;
            continue;
        }
        if (!x->sp) x->sp = mn__gossip_space_get(x->dir, x->in->space, x->in->space_len);
        bool changed;
        const mn__gossip_rec *now;
        if (!x->sp || mn__gossip_space_merge(x->dir, x->sp, &r, &changed, &now) != MN_OK) return;
        if (!changed) continue;
        g->stats.entries_changed++;
        if (g->cb.changed) g->cb.changed(g->cb.user, space, &now->r);
    }
}

void mn__gossip_handle(mn_gossip_t *g, const mn_wire_gossip_frame_t *f)
{
    exch x = {g, f, &g->dir, NULL};
    if (f->space_len && !shared(&x, f->space, f->space_len)) {
        /* a space this peer does not share with us: nothing of it is read or answered */
        if (f->kind == MN_WIRE_GOSSIP_PUSH) g->stats.entries_refused += f->n_records;
        return;
    }
    if (f->space_len) x.sp = mn__gossip_space_find(&g->dir, f->space, f->space_len);
    switch (f->kind) {
    case MN_WIRE_GOSSIP_NODES:
        on_nodes(&x);
        break;
    case MN_WIRE_GOSSIP_SUMMARY:
        if (is_dir(&x))
            on_dir_summary(&x);
        else
            on_space_summary(&x);
        break;
    case MN_WIRE_GOSSIP_PULL:
        if (!is_dir(&x)) on_pull(&x);
        break;
    case MN_WIRE_GOSSIP_PUSH:
        if (!is_dir(&x)) on_push(&x);
        break;
    default:
        break;
    }
}
