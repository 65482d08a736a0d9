/* The Merkle tree of one space (or of the directory of spaces): 16-ary,
 * depth 3, over entries placed by a 64-bit bucket hash of their key (a
 * node at level L holds the entries whose bucket's top 4L bits are its
 * index; the 4096 leaves are the top 12 bits).
 *
 * A node's digest is the XOR of its entries' digests and it keeps their
 * count (Riak leveled's TicTac trees, docs/ANTI_ENTROPY.md): order-free, so
 * a change costs O(depth) XORs with no rescan and no hashing, and a
 * subtree's digest is the same whatever order its entries came in. The
 * digests are SHA-256 truncated to 128 bits, so two different sets of
 * honest entries collide with odds about 2^-128 per comparison; XOR
 * combination is not collision-resistant against an adversary who picks
 * entries (Wagner 2002), which is why frames only come from authenticated
 * peers (the transport's HMAC).
 *
 * Nodes are stored sparsely: an open-addressing map (linear probing,
 * backward-shift deletion, load at most 3/4) holds only the nodes with count > 0, so a space
 * of n records costs at most 1 + 16 + min(256, n) + min(4096, n) nodes.
 * Invariants: every stored node has count > 0; a node whose count reaches 0
 * has a zero digest and leaves the map; a parent's count is the sum of its
 * children's (mn__gossip_tree_equal against a rebuild checks it all). */
#include <stdlib.h>
#include <string.h>

#include "gossip_internal.h"

#define EMPTY_ADDR UINT32_MAX

static uint32_t addr_of(int level, uint32_t index)
{
    return ((uint32_t)level << 16) | index;
}

uint32_t mn__gossip_index_at(uint64_t bucket, int level)
{
    return level == 0 ? 0 : (uint32_t)(bucket >> (64 - 4 * level));
}

static size_t slot_of(uint32_t addr, size_t cap)
{
    return (size_t)(((uint64_t)addr * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

void mn__gossip_tree_init(mn__gossip_tree *t)
{
    memset(t, 0, sizeof *t);
}

void mn__gossip_tree_free(mn__gossip_tree *t)
{
    free(t->nodes);
    memset(t, 0, sizeof *t);
}

static mn__gossip_node *find(const mn__gossip_tree *t, uint32_t addr)
{
    if (!t->cap) return NULL;
    for (size_t i = slot_of(addr, t->cap);; i = (i + 1) & (t->cap - 1)) {
        mn__gossip_node *n = &t->nodes[i];
        if (n->addr == addr) return n;
        if (n->addr == EMPTY_ADDR) return NULL;
    }
}

static void put_slot(mn__gossip_node *nodes, size_t cap, const mn__gossip_node *n)
{
    size_t i = slot_of(n->addr, cap);
    while (nodes[i].addr != EMPTY_ADDR)
        i = (i + 1) & (cap - 1);
    nodes[i] = *n;
}

mn_err mn__gossip_tree_reserve(mn__gossip_tree *t, size_t more)
{
    if ((t->n + more) * 4 <= t->cap * 3) return MN_OK;
    size_t cap = t->cap ? t->cap : 16;
    while ((t->n + more) * 4 > cap * 3)
        cap *= 2;
    mn__gossip_node *nodes = malloc(cap * sizeof *nodes);
    if (!nodes) return MN_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++)
        nodes[i].addr = EMPTY_ADDR;
    for (size_t i = 0; i < t->cap; i++)
        if (t->nodes[i].addr != EMPTY_ADDR) put_slot(nodes, cap, &t->nodes[i]);
    free(t->nodes);
    t->nodes = nodes;
    t->cap = cap;
    return MN_OK;
}

/* Removes the node at slot i, shifting later members of its run back. */
static void remove_slot(mn__gossip_tree *t, size_t i)
{
    size_t mask = t->cap - 1;
    for (size_t j = (i + 1) & mask; t->nodes[j].addr != EMPTY_ADDR; j = (j + 1) & mask) {
        size_t home = slot_of(t->nodes[j].addr, t->cap);
        /* j's entry may move to i when its home is not cyclically in (i, j] */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->nodes[i] = t->nodes[j];
            i = j;
        }
    }
    t->nodes[i].addr = EMPTY_ADDR;
    t->n--;
}

static void xor_into(uint8_t *d, const uint8_t *s)
{
    for (int i = 0; i < MN_GOSSIP_DIGEST_LEN; i++)
        d[i] ^= s[i];
}

static bool is_zero(const uint8_t *d)
{
    for (int i = 0; i < MN_GOSSIP_DIGEST_LEN; i++)
        if (d[i]) return false;
    return true;
}

/* One node on the path: XOR delta in, count + dc. */
static void path_node(mn__gossip_tree *t, uint32_t addr, const uint8_t *delta, int dc)
{
    mn__gossip_node *n = find(t, addr);
    if (!n) {
        mn_assert(dc == 1); /* an absent node can only gain its first entry */
        mn__gossip_node fresh = {.addr = addr, .count = 0};
        put_slot(t->nodes, t->cap, &fresh);
        t->n++;
        n = find(t, addr);
    }
    xor_into(n->digest, delta);
    mn_assert(dc >= 0 || n->count > 0);
    n->count = (uint32_t)((int64_t)n->count + dc);
    if (n->count == 0) {
        mn_assert(is_zero(n->digest));
        remove_slot(t, (size_t)(n - t->nodes));
    }
}

mn_err mn__gossip_tree_apply(mn__gossip_tree *t, uint64_t bucket, const uint8_t *old_digest,
                             const uint8_t *new_digest)
{
    if (!old_digest && !new_digest) return MN_OK;
    if (new_digest && !old_digest && mn__gossip_tree_reserve(t, MN_GOSSIP_TREE_DEPTH + 1) != MN_OK)
        return MN_ERR_NOMEM;
    uint8_t delta[MN_GOSSIP_DIGEST_LEN] = {0};
    if (old_digest) xor_into(delta, old_digest);
    if (new_digest) xor_into(delta, new_digest);
    int dc = (new_digest ? 1 : 0) - (old_digest ? 1 : 0);
    for (int level = 0; level <= MN_GOSSIP_TREE_DEPTH; level++)
        path_node(t, addr_of(level, mn__gossip_index_at(bucket, level)), delta, dc);
    return MN_OK;
}

void mn__gossip_tree_node(const mn__gossip_tree *t, int level, uint32_t index,
                          uint8_t digest[MN_GOSSIP_DIGEST_LEN], uint32_t *count)
{
    const mn__gossip_node *n = find(t, addr_of(level, index));
    if (n) {
        memcpy(digest, n->digest, MN_GOSSIP_DIGEST_LEN);
        *count = n->count;
    } else {
        memset(digest, 0, MN_GOSSIP_DIGEST_LEN);
        *count = 0;
    }
}

bool mn__gossip_tree_equal(const mn__gossip_tree *a, const mn__gossip_tree *b)
{
    if (a->n != b->n) return false;
    for (size_t i = 0; i < a->cap; i++) {
        const mn__gossip_node *n = &a->nodes[i];
        if (n->addr == EMPTY_ADDR) continue;
        const mn__gossip_node *m = find(b, n->addr);
        if (!m || m->count != n->count || memcmp(m->digest, n->digest, MN_GOSSIP_DIGEST_LEN))
            return false;
    }
    return true;
}
