/* mn_load: a closed-loop load generator for mnemo over HTTP, over gRPC, and
 * in-process (the same operations called on the engine directly), so the cost
 * of each protocol shows as a ratio against the engine itself.
 *
 *   mn_load --target http://127.0.0.1:7700 | grpc://127.0.0.1:7701 | inproc:DATA_DIR
 *           --op remember | batch | recall --space NAME [--create]
 *           [--conns 64] [--requests N] [--dim 768] [--batch 100] [--k 10] [--seed 1]
 *
 * `conns` threads each hold one connection (HTTP/1.1 keep-alive socket; gRPC
 * channel with its own subchannel, so its own HTTP/2 connection; in-process:
 * a thread) and send requests one after the other; thread t sends requests t,
 * t + conns, ... < N. Every request is encoded before the clock starts (JSON
 * for HTTP, protobuf for gRPC, engine structs in-process) from the same seeded
 * vectors, so the three targets do the same work and the client spends its CPU
 * on sending and reading only. Each request's latency is taken from the
 * monotonic clock; one JSON line reports throughput and p50/p99/p99.9.
 * Bounded: N requests, a 30 s timeout per request. */
#include <arpa/inet.h>
#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mnemo/engine.h"
#include "mnemo/v1/mnemo.pb-c.h"

typedef enum { T_HTTP, T_GRPC, T_INPROC } target_kind;
typedef enum { OP_REMEMBER, OP_BATCH, OP_RECALL } op_kind;

typedef struct cfg {
    target_kind target;
    char host[256];
    int port;
    const char *dir;
    op_kind op;
    const char *space;
    bool create;
    int conns, requests, dim, batch, k;
    uint64_t seed;
} cfg;

/* One pre-encoded request. */
typedef struct req {
    char *bytes; /* HTTP: the whole request; gRPC: packed message(s) */
    size_t len;
    size_t *parts; /* gRPC batch: lengths of the messages in bytes */
    size_t n_parts;
    float *vecs; /* in-process: batch x dim floats */
} req;

static cfg C;
static req *R;
static mn_engine_t *E;
static int64_t *LAT;
static int *FAILS;

static const char CONTENT[] = "the user said they prefer window seats on long flights";

static void vec(uint64_t seed, int64_t i, float *v, int dim)
{
    mn_prng_t p;
    mn_prng_seed(&p, seed * 1000003u + (uint64_t)i);
    for (int d = 0; d < dim; d++)
        v[d] = (float)(mn_prng_double(&p) * 2 - 1);
}

/* ---- encoding ---- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void putf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    put(b, tmp, (size_t)n);
}

static void json_vec(buf *b, const float *v, int dim)
{
    put(b, "[", 1);
    for (int d = 0; d < dim; d++)
        putf(b, d ? ",%.6g" : "%.6g", (double)v[d]);
    put(b, "]", 1);
}

static void encode_http(int64_t i, req *r, float *v)
{
    buf body = {0}, all = {0};
    const char *path = C.op == OP_RECALL ? "recall" : "memories";
    if (C.op == OP_RECALL) {
        vec(C.seed + 7, i, v, C.dim);
        put(&body, "{\"embedding\":", 13);
        json_vec(&body, v, C.dim);
        putf(&body, ",\"k\":%d}", C.k);
    } else {
        int n = C.op == OP_BATCH ? C.batch : 1;
        if (C.op == OP_BATCH) put(&body, "{\"memories\":[", 13);
        for (int j = 0; j < n; j++) {
            vec(C.seed, i * n + j, v, C.dim);
            putf(&body, "%s{\"content\":\"%s\",\"embedding\":", j ? "," : "", CONTENT);
            json_vec(&body, v, C.dim);
            put(&body, "}", 1);
        }
        if (C.op == OP_BATCH) put(&body, "]}", 2);
    }
    putf(&all,
         "POST /v1/spaces/%s/%s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
         "Content-Length: %zu\r\n\r\n",
         C.space, path, C.host, C.port, body.len);
    put(&all, body.p, body.len);
    free(body.p);
    r->bytes = all.p;
    r->len = all.len;
}

static void encode_grpc(int64_t i, req *r, float *v)
{
    buf all = {0};
    if (C.op == OP_RECALL) {
        vec(C.seed + 7, i, v, C.dim);
        Mnemo__V1__RecallRequest q = MNEMO__V1__RECALL_REQUEST__INIT;
        q.space = (char *)C.space;
        q.embedding = v;
        q.n_embedding = (size_t)C.dim;
        q.has_k = true;
        q.k = (uint32_t)C.k;
        size_t n = protobuf_c_message_get_packed_size(&q.base);
        all.p = malloc(n);
        all.len = protobuf_c_message_pack(&q.base, (uint8_t *)all.p);
    } else {
        int n = C.op == OP_BATCH ? C.batch : 1;
        r->parts = calloc((size_t)n, sizeof *r->parts);
        r->n_parts = (size_t)n;
        for (int j = 0; j < n; j++) {
            vec(C.seed, i * n + j, v, C.dim);
            Mnemo__V1__Memory m = MNEMO__V1__MEMORY__INIT;
            m.content = (char *)CONTENT;
            m.embedding = v;
            m.n_embedding = (size_t)C.dim;
            Mnemo__V1__RememberRequest q = MNEMO__V1__REMEMBER_REQUEST__INIT;
            q.space = (char *)C.space;
            q.memory = &m;
            size_t len = protobuf_c_message_get_packed_size(&q.base);
            char *tmp = malloc(len);
            protobuf_c_message_pack(&q.base, (uint8_t *)tmp);
            put(&all, tmp, len);
            free(tmp);
            r->parts[j] = len;
        }
    }
    r->bytes = all.p;
    r->len = all.len;
}

static void encode_inproc(int64_t i, req *r)
{
    int n = C.op == OP_BATCH ? C.batch : 1;
    r->vecs = malloc((size_t)n * (size_t)C.dim * sizeof(float));
    for (int j = 0; j < n; j++) {
        if (C.op == OP_RECALL)
            vec(C.seed + 7, i, r->vecs, C.dim);
        else
            vec(C.seed, i * n + j, r->vecs + (size_t)j * (size_t)C.dim, C.dim);
    }
}

/* ---- HTTP ---- */

static int http_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)C.port)};
    inet_pton(AF_INET, C.host, &a.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends one request and reads its response; the status code, or -1. */
static int http_roundtrip(int fd, const req *r, buf *in)
{
    size_t off = 0;
    while (off < r->len) {
        ssize_t n = send(fd, r->bytes + off, r->len - off, MSG_NOSIGNAL);
        if (n <= 0) return -1;
        off += (size_t)n;
    }
    in->len = 0;
    size_t head = 0, clen = 0;
    for (;;) {
        if (in->cap - in->len < 65536) {
            in->cap = in->cap * 2 + 65536;
            in->p = realloc(in->p, in->cap);
        }
        ssize_t n = recv(fd, in->p + in->len, in->cap - in->len - 1, 0);
        if (n <= 0) return -1;
        in->len += (size_t)n;
        in->p[in->len] = 0;
        if (!head) {
            char *e = strstr(in->p, "\r\n\r\n");
            if (!e) continue;
            head = (size_t)(e - in->p) + 4;
            for (char *h = in->p; h < e; h = strstr(h, "\r\n") + 2)
                if (!strncasecmp(h, "content-length:", 15)) clen = strtoul(h + 15, NULL, 10);
        }
        if (in->len >= head + clen) break;
    }
    return atoi(in->p + 9);
}

static void *http_worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    int fd = http_connect();
    buf in = {0};
    for (int i = t; i < C.requests; i += C.conns) {
        if (fd < 0) fd = http_connect();
        int64_t t0 = mn_time_mono_ns();
        int st = fd < 0 ? -1 : http_roundtrip(fd, &R[i], &in);
        LAT[i] = mn_time_mono_ns() - t0;
        if (st != 200 && st != 201) {
            FAILS[t]++;
            if (FAILS[t] <= 3) fprintf(stderr, "http: status %d: %.200s\n", st, in.p ? in.p : "");
            if (fd >= 0) close(fd);
            fd = -1;
        }
    }
    if (fd >= 0) close(fd);
    free(in.p);
    return NULL;
}

/* ---- gRPC ---- */

static grpc_channel *grpc_open(void)
{
    char target[300];
    snprintf(target, sizeof target, "%s:%d", C.host, C.port);
    grpc_arg a[2];
    a[0].type = GRPC_ARG_INTEGER;
    a[0].key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL; /* one HTTP/2 connection per channel */
    a[0].value.integer = 1;
    a[1].type = GRPC_ARG_INTEGER;
    a[1].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    a[1].value.integer = 64 << 20;
    grpc_channel_args args = {.num_args = 2, .args = a};
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(target, cr, &args);
    grpc_channel_credentials_release(cr);
    return ch;
}

static bool pluck(grpc_completion_queue *cq, void *tag)
{
    grpc_event ev = grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    return ev.type == GRPC_OP_COMPLETE && ev.success;
}

static grpc_byte_buffer *bb(const char *p, size_t n)
{
    grpc_slice s = grpc_slice_from_copied_buffer(p, n);
    grpc_byte_buffer *b = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return b;
}

/* One call; the gRPC status (0 = OK) or -1. */
static int grpc_call_once(grpc_channel *ch, grpc_completion_queue *cq, const req *r)
{
    const char *method = C.op == OP_RECALL  ? "/mnemo.v1.Mnemo/Recall"
                         : C.op == OP_BATCH ? "/mnemo.v1.Mnemo/RememberBatch"
                                            : "/mnemo.v1.Mnemo/Remember";
    grpc_slice m = grpc_slice_from_static_string(method);
    gpr_timespec dl =
        gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(30, GPR_TIMESPAN));
    grpc_call *call =
        grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL, dl, NULL);
    grpc_metadata_array init_md, trail_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_byte_buffer *resp = NULL;
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details;
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    size_t n = 0, parts = r->n_parts ? r->n_parts : 1;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    grpc_byte_buffer *first = bb(r->bytes, r->n_parts ? r->parts[0] : r->len);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = first;
    bool ok = grpc_call_start_batch(call, ops, n, (void *)1, NULL) == GRPC_CALL_OK &&
              pluck(cq, (void *)1);
    grpc_byte_buffer_destroy(first);
    size_t off = r->n_parts ? r->parts[0] : r->len;
    for (size_t j = 1; ok && j < parts; j++) { /* the rest of a client stream */
        grpc_byte_buffer *b = bb(r->bytes + off, r->parts[j]);
        off += r->parts[j];
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_SEND_MESSAGE;
        ops[0].data.send_message.send_message = b;
        ok = grpc_call_start_batch(call, ops, 1, (void *)2, NULL) == GRPC_CALL_OK &&
             pluck(cq, (void *)2);
        grpc_byte_buffer_destroy(b);
    }
    memset(ops, 0, sizeof ops);
    n = 0;
    ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n++].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &resp;
    ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[n].data.recv_status_on_client.trailing_metadata = &trail_md;
    ops[n].data.recv_status_on_client.status = &status;
    ops[n++].data.recv_status_on_client.status_details = &details;
    /* after a failed send the status still tells why */
    bool got = grpc_call_start_batch(call, ops, n, (void *)3, NULL) == GRPC_CALL_OK &&
               pluck(cq, (void *)3);
    if (got && status != GRPC_STATUS_OK) {
        char *d = grpc_slice_to_c_string(details);
        fprintf(stderr, "grpc: status %d: %s\n", (int)status, d);
        gpr_free(d);
    }
    if (got) grpc_slice_unref(details);
    if (resp) grpc_byte_buffer_destroy(resp);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trail_md);
    grpc_call_unref(call);
    return got ? (int)status : -1;
}

static void *grpc_worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    grpc_channel *ch = grpc_open();
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    for (int i = t; i < C.requests; i += C.conns) {
        int64_t t0 = mn_time_mono_ns();
        int st = grpc_call_once(ch, cq, &R[i]);
        LAT[i] = mn_time_mono_ns() - t0;
        if (st != 0) FAILS[t]++;
    }
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    grpc_channel_destroy(ch);
    return NULL;
}

/* ---- in-process ---- */

static void *inproc_worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    int n = C.op == OP_BATCH ? C.batch : 1;
    mn_memory_t *ms = calloc((size_t)n, sizeof *ms);
    mn_id_t *ids = calloc((size_t)n, sizeof *ids);
    for (int i = t; i < C.requests; i += C.conns) {
        mn_err rc;
        int64_t t0 = mn_time_mono_ns();
        if (C.op == OP_RECALL) {
            mn_recall_req_t q = {.embedding = R[i].vecs, .dim = (uint32_t)C.dim, .k = (uint32_t)C.k};
            mn_filter_init(&q.filter);
            mn_recall_result_t res;
            rc = mn_engine_recall(E, C.space, &q, &res, NULL);
            if (!rc) mn_recall_result_clear(&res);
        } else {
            for (int j = 0; j < n; j++) {
                mn_memory_init(&ms[j]);
                ms[j].content = (char *)CONTENT;
                ms[j].content_len = sizeof CONTENT - 1;
                ms[j].embedding = R[i].vecs + (size_t)j * (size_t)C.dim;
                ms[j].dim = (uint32_t)C.dim;
            }
            rc = mn_engine_remember(E, C.space, ms, (size_t)n, ids, NULL);
        }
        LAT[i] = mn_time_mono_ns() - t0;
        if (rc) FAILS[t]++;
    }
    free(ms);
    free(ids);
    return NULL;
}

/* ---- main ---- */

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const int64_t *v, size_t n, double q)
{
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

static int usage(void)
{
    fprintf(stderr, "usage: mn_load --target http://H:P|grpc://H:P|inproc:DIR --op "
                    "remember|batch|recall --space NAME [--create] [--conns 64] [--requests N] "
                    "[--dim 768] [--batch 100] [--k 10] [--seed 1]\n");
    return 2;
}

static bool parse_target(const char *s)
{
    const char *hp;
    if (!strncmp(s, "inproc:", 7)) {
        C.target = T_INPROC;
        C.dir = s + 7;
        return *C.dir;
    }
    if (!strncmp(s, "http://", 7))
        C.target = T_HTTP, hp = s + 7;
    else if (!strncmp(s, "grpc://", 7))
        C.target = T_GRPC, hp = s + 7;
    else
        return false;
    const char *colon = strrchr(hp, ':');
    if (!colon || (size_t)(colon - hp) >= sizeof C.host) return false;
    memcpy(C.host, hp, (size_t)(colon - hp));
    C.port = atoi(colon + 1);
    return C.port > 0;
}

int main(int argc, char **argv)
{
    C = (cfg){.conns = 64, .requests = 10000, .dim = 768, .batch = 100, .k = 10, .seed = 1};
    const char *target = NULL, *op = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--create")) {
            C.create = true;
            continue;
        }
        if (!v) return usage();
        i++;
        if (!strcmp(a, "--target"))
            target = v;
        else if (!strcmp(a, "--op"))
            op = v;
        else if (!strcmp(a, "--space"))
            C.space = v;
        else if (!strcmp(a, "--conns"))
            C.conns = atoi(v);
        else if (!strcmp(a, "--requests"))
            C.requests = atoi(v);
        else if (!strcmp(a, "--dim"))
            C.dim = atoi(v);
        else if (!strcmp(a, "--batch"))
            C.batch = atoi(v);
        else if (!strcmp(a, "--k"))
            C.k = atoi(v);
        else if (!strcmp(a, "--seed"))
            C.seed = strtoull(v, NULL, 10);
        else
            return usage();
    }
    if (!target || !op || !C.space || !parse_target(target)) return usage();
    if (!strcmp(op, "remember"))
        C.op = OP_REMEMBER;
    else if (!strcmp(op, "batch"))
        C.op = OP_BATCH;
    else if (!strcmp(op, "recall"))
        C.op = OP_RECALL;
    else
        return usage();
    if (C.conns < 1 || C.conns > 1024 || C.requests < 1 || C.dim < 1 || C.dim > 4096 ||
        C.batch < 1 || C.batch > 1000)
        return usage();

    mn_log_configure(MN_LOG_WARN, MN_LOG_FORMAT_TEXT);
    if (C.target == T_INPROC) {
        mn_engine_options_t o;
        mn_engine_options_default(&o);
        o.data_dir = C.dir;
        o.expiry_interval_ms = 0;
        o.consolidate_interval_ms = 0;
        mn_error err = {0};
        if (mn_engine_open(&o, &E, &err)) {
            fprintf(stderr, "mn_load: open %s: %s\n", C.dir, err.message);
            return 1;
        }
        if (C.create) {
            mn_space_def_t d = {.dim = (uint32_t)C.dim, .metric = MN_METRIC_COSINE};
            snprintf(d.name, sizeof d.name, "%s", C.space);
            if (mn_engine_space_create(E, &d, NULL, &err) && err.code != MN_ERR_EXISTS) {
                fprintf(stderr, "mn_load: space: %s\n", err.message);
                return 1;
            }
        }
        /* recall on a caught-up index, as over the network */
        mn_engine_wait_background(E);
    } else if (C.target == T_GRPC) {
        grpc_init();
    }

    R = calloc((size_t)C.requests, sizeof *R);
    LAT = calloc((size_t)C.requests, sizeof *LAT);
    FAILS = calloc((size_t)C.conns, sizeof *FAILS);
    float *v = malloc((size_t)C.dim * sizeof(float));
    for (int i = 0; i < C.requests; i++) {
        if (C.target == T_HTTP)
            encode_http(i, &R[i], v);
        else if (C.target == T_GRPC)
            encode_grpc(i, &R[i], v);
        else
            encode_inproc(i, &R[i]);
    }
    free(v);

    pthread_t *th = calloc((size_t)C.conns, sizeof *th);
    void *(*fn)(void *) = C.target == T_HTTP   ? http_worker
                          : C.target == T_GRPC ? grpc_worker
                                               : inproc_worker;
    int64_t t0 = mn_time_mono_ns();
    for (int t = 0; t < C.conns; t++)
        pthread_create(&th[t], NULL, fn, (void *)(intptr_t)t);
    for (int t = 0; t < C.conns; t++)
        pthread_join(th[t], NULL);
    double secs = (double)(mn_time_mono_ns() - t0) / 1e9;
    int fails = 0;
    for (int t = 0; t < C.conns; t++)
        fails += FAILS[t];
    qsort(LAT, (size_t)C.requests, sizeof *LAT, cmp64);
    int items = C.op == OP_BATCH ? C.batch : 1;
    const char *names[] = {"http", "grpc", "inproc"}, *ops[] = {"remember", "batch", "recall"};
    printf("{\"target\":\"%s\",\"op\":\"%s\",\"conns\":%d,\"requests\":%d,\"errors\":%d,"
           "\"seconds\":%.3f,\"requests_per_s\":%.1f,\"items_per_s\":%.1f,\"p50_ms\":%.3f,"
           "\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f}\n",
           names[C.target], ops[C.op], C.conns, C.requests, fails, secs, C.requests / secs,
           (double)C.requests * items / secs, pct(LAT, (size_t)C.requests, 0.50),
           pct(LAT, (size_t)C.requests, 0.99), pct(LAT, (size_t)C.requests, 0.999),
           (double)LAT[C.requests - 1] / 1e6);
    for (int i = 0; i < C.requests; i++) {
        free(R[i].bytes);
        free(R[i].parts);
        free(R[i].vecs);
    }
    free(R);
    free(LAT);
    free(FAILS);
    free(th);
    if (E) mn_engine_close(E);
    if (C.target == T_GRPC) grpc_shutdown();
    return fails ? 1 : 0;
}
