/* The placement hash and the rendezvous (HRW) score.
 *
 * HRW (Thaler and Ravishankar, "Using name-based mappings to increase hit
 * rates", IEEE/ACM ToN 1998): a space goes to the members with the highest
 * score(space, member). A member's arrival or departure only moves the spaces
 * whose top scores it enters or leaves: about k/N of them.
 *
 * The hash is FNV-1a 64 (Fowler, Noll, Vo: offset basis 0xcbf29ce484222325,
 * prime 0x100000001b3) over the bytes, which is simple and the same on every
 * platform, followed by the 64-bit finaliser of MurmurHash3 (Appleby), whose
 * two xor-shift-multiply rounds give every input bit an even chance to flip
 * every output bit; FNV alone mixes its last bytes poorly, which matters for
 * names like "agent-1", "agent-2". The score mixes the node's hash (itself
 * finalised with a constant, so a node hash equal to a space hash does not
 * cancel) into the space's and finalises again: for one space the scores of
 * distinct nodes behave as independent uniform draws, which is what HRW's
 * balance and minimal movement rest on (test_spaces_placement measures both).
 *
 * Leaf file: nothing here knows of tables or views. */
#include "mnemo/spaces.h"

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull
#define NODE_SALT 0x9e3779b97f4a7c15ull /* 2^64 / golden ratio */

static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

uint64_t mn_spaces_hash(const char *s, size_t len)
{
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= FNV_PRIME;
    }
    return fmix64(h);
}

uint64_t mn_spaces_score(uint64_t space_hash, uint64_t node_hash)
{
    return fmix64(space_hash ^ fmix64(node_hash ^ NODE_SALT));
}
