/* The gossip core's size model (docs/gossip.md): frame bytes on the wire,
 * memory per record and per space, and the cost of a change.
 *
 *   mn_bench_gossip [--spaces 10000] [--records 10]
 *
 * Wire: the encoded size of each frame kind (a root, a level of 16
 * children, a summary of 32 entries, a push of one record with 0 / 3 / 16 /
 * 64 supporting ids and the marginal record in a batch of 64). Memory: the
 * heap a core holds (glibc mallinfo2) for one space of n records (n = 10 ..
 * 100000), and for `spaces` spaces of `records` each (a node keeping every
 * space's copy, gossip.scope = "cluster"). Time: mean microseconds per
 * mn_gossip_put of a new version (the digest, the O(depth) tree update and
 * the directory entry). Prints "name value unit" lines. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/gossip.h"
#include "mnemo/wire_gossip.h"

static void nosend(void *u, const char *to, const uint8_t *f, size_t n)
{
    (void)u, (void)to, (void)f, (void)n;
}

static mn_gossip_t *core(void)
{
    mn_gossip_cb_t cb = {.send = nosend};
    mn_gossip_t *g = NULL;
    if (mn_gossip_new("bench", NULL, &cb, 1, 0, &g, NULL) != MN_OK) exit(1);
    return g;
}

static mn_id_t SUP[64];
static uint8_t PAYLOAD[MN_GOSSIP_PAYLOAD_MAX];
static size_t PAYLOAD_LEN;

static mn_gossip_record_t rec(uint64_t k, uint64_t hlc, size_t n_support)
{
    mn_gossip_record_t r;
    memset(&r, 0, sizeof r);
    mn_put_be64(r.id.b, 0x0190000000000000ull + k);
    mn_put_be64(r.id.b + 8, 0x8000000000000000ull + k);
    r.epoch = 1;
    r.hlc = hlc;
    r.confidence = 0.5f;
    r.support_n = (uint32_t)n_support;
    r.support = SUP;
    r.n_support = n_support;
    if (PAYLOAD_LEN) {
        mn_put_be64(PAYLOAD, hlc); /* each version's bytes differ */
        r.payload = PAYLOAD;
        r.payload_len = PAYLOAD_LEN;
        mn_gossip_payload_digest(PAYLOAD, PAYLOAD_LEN, r.digest);
    }
    return r;
}

static size_t enc_size(mn_wire_gossip_enc_t *e, const mn_wire_gossip_frame_t *f)
{
    const uint8_t *out;
    size_t len = 0;
    if (mn_wire_gossip_encode(e, f, &out, &len) != MN_OK) exit(1);
    return len;
}

static size_t push_size(mn_wire_gossip_enc_t *e, size_t n_records, size_t n_support)
{
    static mn_wire_gossip_record_t w[64];
    static uint8_t id[16] = {1}, dig[16];
    for (size_t i = 0; i < n_records; i++)
        w[i] = (mn_wire_gossip_record_t){.id = id,
                                         .digest = dig,
                                         .confidence = 0.5f,
                                         .epoch = 1,
                                         .hlc = 1,
                                         .support = SUP[0].b,
                                         .n_support = n_support};
    mn_wire_gossip_frame_t f = {.kind = MN_WIRE_GOSSIP_PUSH,
                                .from = "0190e3c2-7b7e-7000-8000-000000000001",
                                .from_len = 36,
                                .space = "agent-0001",
                                .space_len = 10,
                                .records = w,
                                .n_records = n_records};
    return enc_size(e, &f);
}

static void wire_figures(void)
{
    mn_wire_gossip_enc_t *e = mn_wire_gossip_enc_new();
    mn_wire_gossip_node_t nodes[16] = {{0}};
    static uint8_t keys[32 * 16], digs[32 * 16];
    const char *from = "0190e3c2-7b7e-7000-8000-000000000001"; /* a UUIDv7 node id */
    mn_wire_gossip_frame_t f = {
        .kind = MN_WIRE_GOSSIP_NODES, .from = from, .from_len = 36, .nodes = nodes, .n_nodes = 1};
    printf("wire_root_frame %zu bytes\n", enc_size(e, &f));
    for (int i = 0; i < 16; i++)
        nodes[i] = (mn_wire_gossip_node_t){.level = 1, .index = (uint16_t)i};
    f.n_nodes = 16;
    printf("wire_children_frame %zu bytes\n", enc_size(e, &f));
    f = (mn_wire_gossip_frame_t){.kind = MN_WIRE_GOSSIP_SUMMARY,
                                 .from = from,
                                 .from_len = 36,
                                 .space = "agent-0001",
                                 .space_len = 10,
                                 .level = 1,
                                 .keys = keys,
                                 .digests = digs,
                                 .n_keys = 32};
    printf("wire_summary32_frame %zu bytes\n", enc_size(e, &f));
    size_t sup[] = {0, 3, 16, 64};
    for (size_t i = 0; i < 4; i++)
        printf("wire_push1_support%zu %zu bytes\n", sup[i], push_size(e, 1, sup[i]));
    printf("wire_push_marginal_record_support3 %.1f bytes\n",
           (double)(push_size(e, 64, 3) - push_size(e, 1, 3)) / 63.0);
    mn_wire_gossip_enc_free(e);
}

static size_t heap_now(void)
{
    return mallinfo2().uordblks;
}

static void memory_figures(int spaces, int records)
{
    mn_gossip_t *warm = core(); /* OpenSSL sets itself up at its first digest */
    mn_gossip_record_t w = rec(1, 1, 3);
    mn_gossip_put(warm, "warm-up", &w, NULL);
    mn_gossip_free(warm);
    int ns[] = {10, 100, 1000, 10000, 100000};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        mn_gossip_t *g = core();
        size_t h1 = heap_now();
        for (int k = 0; k < ns[i]; k++) {
            mn_gossip_record_t r = rec((uint64_t)k, 1, 3);
            mn_gossip_put(g, "agent-0001", &r, NULL);
        }
        printf("memory_per_record_space_of_%d %.0f bytes\n", ns[i],
               (double)(heap_now() - h1) / ns[i]);
        mn_gossip_free(g);
    }
    size_t h1 = heap_now();
    mn_gossip_t *g = core();
    size_t h2 = heap_now();
    char name[32];
    for (int s = 0; s < spaces; s++) {
        snprintf(name, sizeof name, "agent-%05d", s);
        for (int k = 0; k < records; k++) {
            mn_gossip_record_t r = rec((uint64_t)k, 1, 3);
            mn_gossip_put(g, name, &r, NULL);
        }
    }
    size_t h3 = heap_now();
    printf("core_fixed %.0f bytes\n", (double)(h2 - h1));
    printf("memory_node_%d_spaces_of_%d %.1f MiB\n", spaces, records,
           (double)(h3 - h2) / (1024.0 * 1024.0));
    printf("memory_per_space_of_%d %.0f bytes\n", records, (double)(h3 - h2) / spaces);
    mn_gossip_free(g);
}

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void time_figures(void)
{
    mn_gossip_t *g = core();
    for (int k = 0; k < 10000; k++) {
        mn_gossip_record_t r = rec((uint64_t)k, 1, 3);
        mn_gossip_put(g, "agent-0001", &r, NULL);
    }
    int n = 100000;
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        mn_gossip_record_t r = rec((uint64_t)(i % 10000), 2 + (uint64_t)i, 3);
        mn_gossip_put(g, "agent-0001", &r, NULL);
    }
    printf("put_new_version_space_of_10000 %.2f us\n", (now_us() - t0) / n);
    mn_gossip_free(g);
}

int main(int argc, char **argv)
{
    int spaces = 10000, records = 10, payload = 3584;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--spaces") == 0)
            spaces = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--records") == 0)
            records = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--payload") == 0)
            payload = atoi(argv[i + 1]);
    }
    if (spaces < 1 || records < 1 || payload < 8 || payload > (int)MN_GOSSIP_PAYLOAD_MAX) {
        fprintf(stderr, "usage: mn_bench_gossip [--spaces N] [--records N] [--payload 8..65536]\n");
        return 2;
    }
    for (int i = 0; i < 64; i++) {
        mn_put_be64(SUP[i].b, 0x0190000000000000ull + (uint64_t)i);
        mn_put_be64(SUP[i].b + 8, 1);
    }
    wire_figures();
    PAYLOAD_LEN = (size_t)payload;
    printf("payload %zu bytes\n", PAYLOAD_LEN);
    memory_figures(spaces, records);
    time_figures();
    return 0;
}
