/* Engine restart with a large HNSW index: how long a clean restart and a
 * restart after kill -9 take with N vectors (default 1M x 128) in one space.
 *
 *   mn_restart_bench --dir EMPTY_DIR [--n 1000000] [--dim 128] [--changes 10000]
 *                    [--backlog 100000] [--reuse 1]
 *
 * Each phase runs in its own process (the binary re-executes itself), so the
 * kill -9 is real and no RocksDB thread survives a fork:
 *   load    remembers N vectors (clustered Gaussian, seeded; batches of 1000,
 *           sync off, no semantic links), waits for the index, closes cleanly
 *           (which saves the graph)
 *   open    a clean restart: times mn_engine_open (memories, keyword lists and
 *           the saved graph) and the wait until the index has no pending work
 *   churn   opens, forgets changes/2 memories and remembers changes/2 new ones,
 *           waits for the index thread, reports, then waits to be killed
 *           (no save in between: engine.hnsw_save_interval_s is 0)
 *   open    after the kill: the saved graph is older than the space; the
 *           engine drops the forgotten nodes and adds the new ones in the
 *           background (its log says so)
 *   backlog remembers --backlog new vectors (default 100000) and closes at
 *           once, as SIGTERM does: the close does not apply the backlog of
 *           graph inserts, it saves the graph as it is
 *   open    after that close: the backlog is added in the background
 * --reuse 1 skips the load phase on a dir a previous run filled (same --n).
 * Prints one "name value unit" line per figure; the engine's log is on stderr. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mnemo/engine.h"

typedef struct cfg {
    const char *dir;
    uint32_t n, dim, changes, backlog;
    bool reuse;
} cfg;

static double now_s(void)
{
    return (double)mn_time_mono_ns() / 1e9;
}

static void options(const cfg *c, mn_engine_options_t *o)
{
    mn_engine_options_default(o);
    o->data_dir = c->dir;
    o->sync = false;
    o->link_max = 0;
    o->expiry_interval_ms = 0;
    o->consolidate_interval_ms = 0;
    o->hnsw_save_interval_ms = 0; /* only the clean close saves: the kill finds an older graph */
}

static mn_engine_t *open_engine(const cfg *c, double *secs)
{
    mn_engine_options_t o;
    options(c, &o);
    mn_engine_t *e = NULL;
    mn_error err = {0};
    double t0 = now_s();
    if (mn_engine_open(&o, &e, &err)) {
        fprintf(stderr, "open: %s\n", err.message);
        exit(1);
    }
    *secs = now_s() - t0;
    return e;
}

/* Clustered Gaussian rows: n / 100 centres N(0, 1), spread 1 (as bench/ann/run.py). */
static void fill(mn_prng_t *p, const float *centres, uint32_t n_centres, uint32_t dim, float *v)
{
    const float *c = centres + (size_t)mn_prng_below(p, n_centres) * dim;
    for (uint32_t i = 0; i < dim; i++) {
        double u = mn_prng_double(p), w = mn_prng_double(p);
        v[i] = c[i] + (float)(sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * w));
    }
}

static float *centres_of(const cfg *c, uint32_t *n_centres)
{
    *n_centres = c->n / 100 ? c->n / 100 : 1;
    mn_prng_t p;
    mn_prng_seed(&p, 1234);
    float *cs = malloc((size_t)*n_centres * c->dim * sizeof(float));
    for (size_t i = 0; i < (size_t)*n_centres * c->dim; i++) {
        double u = mn_prng_double(&p), w = mn_prng_double(&p);
        cs[i] = (float)(sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * w));
    }
    return cs;
}

static void remember_rows(mn_engine_t *e, const cfg *c, mn_prng_t *p, const float *centres,
                          uint32_t n_centres, uint32_t n, mn_id_t *ids_out)
{
    enum { B = 1000 };
    float *v = malloc((size_t)B * c->dim * sizeof(float));
    mn_memory_t ms[B];
    mn_id_t ids[B];
    for (uint32_t b = 0; b < n; b += B) {
        uint32_t m = n - b < B ? n - b : B;
        for (uint32_t i = 0; i < m; i++) {
            fill(p, centres, n_centres, c->dim, v + (size_t)i * c->dim);
            mn_memory_init(&ms[i]);
            ms[i].content = "a remembered vector";
            ms[i].content_len = 19;
            ms[i].embedding = v + (size_t)i * c->dim;
            ms[i].dim = c->dim;
        }
        mn_error err = {0};
        if (mn_engine_remember(e, "big", ms, m, ids, &err)) {
            fprintf(stderr, "remember: %s\n", err.message);
            exit(1);
        }
        if (ids_out) memcpy(ids_out + b, ids, m * sizeof *ids);
    }
    free(v);
}

static void print_index(mn_engine_t *e, const char *phase)
{
    mn_space_stats_t st;
    mn_error err = {0};
    if (mn_engine_space_get(e, "big", &st, &err)) return;
    printf("%s_memories %llu\n%s_index_nodes %llu\n%s_index_state %s\n", phase,
           (unsigned long long)st.memories, phase, (unsigned long long)st.index_nodes, phase,
           st.index_state);
}

static int phase_load(const cfg *c)
{
    double s;
    mn_engine_t *e = open_engine(c, &s);
    mn_space_def_t d = {.dim = c->dim, .metric = MN_METRIC_L2};
    snprintf(d.name, sizeof d.name, "big");
    mn_error err = {0};
    if (mn_engine_space_create(e, &d, NULL, &err)) {
        fprintf(stderr, "create: %s\n", err.message);
        return 1;
    }
    uint32_t nc;
    float *centres = centres_of(c, &nc);
    mn_prng_t p;
    mn_prng_seed(&p, 1);
    double t0 = now_s();
    remember_rows(e, c, &p, centres, nc, c->n, NULL);
    double t1 = now_s();
    mn_engine_wait_background(e); /* the index thread built the graph meanwhile */
    double t2 = now_s();
    printf("load_remember_s %.1f s\nload_index_done_after_s %.1f s\n", t1 - t0, t2 - t0);
    print_index(e, "load");
    t0 = now_s();
    mn_engine_close(e);
    printf("load_close_s %.2f s (saves the graph)\n", now_s() - t0);
    free(centres);
    return 0;
}

static int phase_open(const cfg *c, const char *name)
{
    double s;
    mn_engine_t *e = open_engine(c, &s);
    printf("%s_open_s %.2f s\n", name, s);
    print_index(e, name);
    /* a recall right away: the graph and the exactly ranked tail */
    uint32_t nc;
    float *centres = centres_of(c, &nc);
    mn_prng_t p;
    mn_prng_seed(&p, 99);
    float *q = malloc(c->dim * sizeof *q);
    fill(&p, centres, nc, c->dim, q);
    mn_recall_req_t req = {.embedding = q, .dim = c->dim, .k = 10};
    mn_filter_init(&req.filter);
    mn_recall_result_t r;
    mn_error err = {0};
    double t0 = now_s();
    if (!mn_engine_recall(e, "big", &req, &r, &err)) {
        printf("%s_first_recall_ms %.2f ms (path %s)\n", name, (now_s() - t0) * 1e3, r.path);
        mn_recall_result_clear(&r);
    }
    t0 = now_s();
    mn_engine_wait_background(e);
    printf("%s_index_pending_done_s %.2f s (after open)\n", name, now_s() - t0);
    print_index(e, name);
    t0 = now_s();
    mn_engine_close(e);
    printf("%s_close_s %.2f s\n", name, now_s() - t0);
    free(q);
    free(centres);
    return 0;
}

static int phase_churn(const cfg *c)
{
    double s;
    mn_engine_t *e = open_engine(c, &s);
    uint32_t nc;
    float *centres = centres_of(c, &nc);
    /* forget changes/2 of the memories (the first ones listed), remember as many new */
    mn_list_req_t lr = {.limit = 1000};
    mn_filter_init(&lr.filter);
    uint32_t forgotten = 0;
    mn_error err = {0};
    while (forgotten < c->changes / 2) {
        mn_list_result_t res;
        if (mn_engine_list(e, "big", &lr, &res, &err)) {
            fprintf(stderr, "list: %s\n", err.message);
            return 1;
        }
        for (size_t i = 0; i < res.n && forgotten < c->changes / 2; i++, forgotten++)
            mn_engine_forget(e, "big", &res.memories[i].id, MN_FORGET_DELETE, &err);
        mn_list_result_clear(&res);
    }
    mn_prng_t p;
    mn_prng_seed(&p, 2);
    remember_rows(e, c, &p, centres, nc, c->changes - forgotten, NULL);
    mn_engine_wait_background(e);
    print_index(e, "churn");
    printf("churn_applied %u forgotten, %u new\n", forgotten, c->changes - forgotten);
    fflush(stdout);
    free(centres);
    for (;;)
        pause(); /* killed here, with the graph on disk older than the space */
}

static int phase_backlog(const cfg *c)
{
    double s;
    mn_engine_t *e = open_engine(c, &s);
    uint32_t nc;
    float *centres = centres_of(c, &nc);
    mn_prng_t p;
    mn_prng_seed(&p, 3);
    double t0 = now_s();
    remember_rows(e, c, &p, centres, nc, c->backlog, NULL);
    printf("backlog_remember_s %.1f s (%u memories)\n", now_s() - t0, c->backlog);
    mn_space_stats_t st;
    mn_error err = {0};
    if (!mn_engine_space_get(e, "big", &st, &err))
        printf("backlog_index_pending_at_close %llu\n", (unsigned long long)st.index_pending);
    t0 = now_s();
    mn_engine_close(e);
    printf("backlog_close_s %.2f s (the graph saved, the backlog not applied)\n", now_s() - t0);
    free(centres);
    return 0;
}

static int run_child(const char *self, const cfg *c, const char *phase, bool kill_when_done)
{
    char n[16], dim[16], ch[16], bl[16];
    snprintf(n, sizeof n, "%u", c->n);
    snprintf(dim, sizeof dim, "%u", c->dim);
    snprintf(ch, sizeof ch, "%u", c->changes);
    snprintf(bl, sizeof bl, "%u", c->backlog);
    int fds[2];
    if (pipe(fds)) return 1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(self, self, "--dir", c->dir, "--n", n, "--dim", dim, "--changes", ch, "--backlog", bl,
              "--phase", phase, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *in = fdopen(fds[0], "r");
    char line[512];
    while (fgets(line, sizeof line, in)) {
        fputs(line, stdout);
        fflush(stdout);
        if (kill_when_done && !strncmp(line, "churn_applied", 13)) {
            kill(pid, SIGKILL);
            printf("churn_killed (SIGKILL)\n");
            break;
        }
    }
    fclose(in);
    int st = 0;
    waitpid(pid, &st, 0);
    return kill_when_done ? 0 : (WIFEXITED(st) ? WEXITSTATUS(st) : 1);
}

int main(int argc, char **argv)
{
    cfg c = {.n = 1000000, .dim = 128, .changes = 10000, .backlog = 100000};
    const char *phase = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir"))
            c.dir = argv[i + 1];
        else if (!strcmp(argv[i], "--n"))
            c.n = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dim"))
            c.dim = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--changes"))
            c.changes = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--phase"))
            phase = argv[i + 1];
        else if (!strcmp(argv[i], "--backlog"))
            c.backlog = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reuse"))
            c.reuse = atoi(argv[i + 1]) != 0;
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!c.dir || !c.n || !c.dim || c.changes > c.n) {
        fprintf(stderr, "usage: mn_restart_bench --dir EMPTY_DIR [--n 1000000] [--dim 128] "
                        "[--changes 10000]\n");
        return 2;
    }
    if (phase && !strcmp(phase, "load")) return phase_load(&c);
    if (phase && !strcmp(phase, "open")) return phase_open(&c, "restart");
    if (phase && !strcmp(phase, "churn")) return phase_churn(&c);
    if (phase && !strcmp(phase, "backlog")) return phase_backlog(&c);
    printf("restart_bench_n %u\nrestart_bench_dim %u\n", c.n, c.dim);
    const char *self = "/proc/self/exe";
    char exe[4096];
    ssize_t len = readlink(self, exe, sizeof exe - 1);
    if (len <= 0) return 1;
    exe[len] = 0;
    if (!c.reuse && run_child(exe, &c, "load", false)) return 1;
    printf("# clean restart\n");
    if (run_child(exe, &c, "open", false)) return 1;
    printf("# changes, then kill -9 (the saved graph is older than the space)\n");
    if (run_child(exe, &c, "churn", true)) return 1;
    printf("# restart after kill -9\n");
    if (run_child(exe, &c, "open", false)) return 1;
    if (!c.backlog) return 0;
    printf("# a backlog of inserts, then a close (what SIGTERM does)\n");
    if (run_child(exe, &c, "backlog", false)) return 1;
    printf("# restart after that close\n");
    return run_child(exe, &c, "open", false);
}
