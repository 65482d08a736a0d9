/* The metrics registry and fixed-bucket histograms.
 *
 * Hot path: an observation finds its series in an open-addressing table of
 * atomic pointers (FNV-1a over the label values) and does two relaxed atomic
 * adds. A new label set is published with a compare-and-swap on its empty
 * slot, so no lock is taken after registration; the loser of a race frees its
 * copy and uses the winner's. Series are never removed (label sets are few and
 * bounded: route patterns x status codes), which is what makes the lock-free
 * reads safe. Only registering a family takes the registry mutex.
 * Histogram reads are not atomic as a whole: a scrape racing an observation
 * may see it in the bucket and not yet in the sum, which Prometheus tolerates;
 * the count is derived from the buckets so it always equals the +Inf bucket. */
#include "mnemo/metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

const uint64_t mn_hist_latency_ns[MN_HIST_LATENCY_N] = {
    100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,   25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};
const uint64_t mn_hist_pow2[MN_HIST_POW2_N] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

void mn_histogram_init(mn_histogram_t *h, const uint64_t *bounds, uint32_t n)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->n_bounds = n > MN_HIST_BUCKETS_MAX ? MN_HIST_BUCKETS_MAX : n;
}

void mn_histogram_observe(mn_histogram_t *h, uint64_t v)
{
    /* bounds are few (<= 24): a linear scan beats a binary search's branches */
    uint32_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    __atomic_fetch_add(&h->counts[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->sum, v, __ATOMIC_RELAXED);
}

void mn_histogram_snapshot(const mn_histogram_t *h, mn_hist_snapshot_t *out)
{
    memset(out, 0, sizeof *out);
    out->bounds = h->bounds;
    out->n_bounds = h->n_bounds;
    uint64_t acc = 0;
    for (uint32_t i = 0; i <= h->n_bounds; i++) {
        acc += __atomic_load_n(&h->counts[i], __ATOMIC_RELAXED);
        out->cumulative[i] = acc;
    }
    out->count = acc;
    out->sum = __atomic_load_n(&h->sum, __ATOMIC_RELAXED);
}

/* ---- registry ---- */

#define TABLE_SLOTS (MN_METRICS_SERIES_MAX * 2) /* load factor <= 1/2 */

typedef struct series {
    uint64_t hash;
    char *values[MN_METRICS_LABELS_MAX];
    uint64_t counter;    /* counters; gauges (the value last set) */
    mn_histogram_t hist; /* histograms */
} series;

typedef enum { FAM_COUNTER, FAM_HISTOGRAM, FAM_GAUGE } fam_type;

struct mn_metrics_family {
    mn_metrics_t *reg;
    fam_type type;
    char *name, *help;
    char *labels[MN_METRICS_LABELS_MAX];
    size_t n_labels;
    const uint64_t *bounds;
    uint32_t n_bounds;
    double scale;
    series *table[TABLE_SLOTS];           /* atomic pointers */
    series *order[MN_METRICS_SERIES_MAX]; /* first-seen order for output */
    uint32_t n_series;                    /* atomic: order[] entries claimed */
};

struct mn_metrics {
    pthread_mutex_t mu; /* registration and rendering of the family list */
    mn_metrics_family_t *fams[MN_METRICS_FAMILIES_MAX];
    size_t n_fams;
    uint64_t dropped; /* atomic */
};

mn_metrics_t *mn_metrics_new(void)
{
    mn_metrics_t *m = calloc(1, sizeof *m);
    if (m) pthread_mutex_init(&m->mu, NULL);
    return m;
}

static void family_free(mn_metrics_family_t *f)
{
    for (size_t i = 0; i < TABLE_SLOTS; i++) {
        series *s = f->table[i];
        if (!s) continue;
        for (size_t j = 0; j < f->n_labels; j++)
            free(s->values[j]);
        free(s);
    }
    for (size_t j = 0; j < f->n_labels; j++)
        free(f->labels[j]);
    free(f->name);
    free(f->help);
    free(f);
}

void mn_metrics_free(mn_metrics_t *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n_fams; i++)
        family_free(m->fams[i]);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static mn_metrics_t *g_process;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void process_init(void)
{
    g_process = mn_metrics_new();
}

mn_metrics_t *mn_metrics_process(void)
{
    pthread_once(&g_once, process_init);
    return g_process;
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* (labels: no ':' and no leading "__"). */
static bool name_ok(const char *s, bool label)
{
    if (!s || !*s) return false;
    if (label && s[0] == '_' && s[1] == '_') return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        bool ok = alpha || (!label && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

static mn_metrics_family_t *family_register(mn_metrics_t *m, fam_type type, const char *name,
                                            const char *help, const char *const *labels,
                                            size_t n_labels, const uint64_t *bounds,
                                            uint32_t n_bounds, double scale)
{
    if (!m || !name_ok(name, false) || n_labels > MN_METRICS_LABELS_MAX) return NULL;
    for (size_t i = 0; i < n_labels; i++)
        if (!name_ok(labels[i], true) || (type == FAM_HISTOGRAM && !strcmp(labels[i], "le")))
            return NULL;
    pthread_mutex_lock(&m->mu);
    mn_metrics_family_t *f = NULL;
    for (size_t i = 0; i < m->n_fams; i++)
        if (!strcmp(m->fams[i]->name, name)) {
            f = m->fams[i];
            bool same = f->type == type && f->n_labels == n_labels;
            for (size_t j = 0; same && j < n_labels; j++)
                same = !strcmp(f->labels[j], labels[j]);
            pthread_mutex_unlock(&m->mu);
            return same ? f : NULL;
        }
    if (m->n_fams == MN_METRICS_FAMILIES_MAX || !(f = calloc(1, sizeof *f))) goto out;
    f->reg = m;
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->n_labels = n_labels;
    bool oom = !f->name || !f->help;
    for (size_t j = 0; j < n_labels; j++)
        oom |= !(f->labels[j] = strdup(labels[j]));
    f->bounds = bounds;
    f->n_bounds = n_bounds > MN_HIST_BUCKETS_MAX ? MN_HIST_BUCKETS_MAX : n_bounds;
    f->scale = scale;
    if (oom) {
        family_free(f);
        f = NULL;
        goto out;
    }
    m->fams[m->n_fams++] = f;
out:
    pthread_mutex_unlock(&m->mu);
    return f;
}

mn_metrics_family_t *mn_metrics_counter(mn_metrics_t *m, const char *name, const char *help,
                                        const char *const *labels, size_t n_labels)
{
    return family_register(m, FAM_COUNTER, name, help, labels, n_labels, NULL, 0, 1.0);
}

mn_metrics_family_t *mn_metrics_gauge(mn_metrics_t *m, const char *name, const char *help,
                                      const char *const *labels, size_t n_labels, double scale)
{
    return family_register(m, FAM_GAUGE, name, help, labels, n_labels, NULL, 0, scale);
}

mn_metrics_family_t *mn_metrics_histogram(mn_metrics_t *m, const char *name, const char *help,
                                          const char *const *labels, size_t n_labels,
                                          const uint64_t *bounds, uint32_t n_bounds, double scale)
{
    if (!bounds || !n_bounds) return NULL;
    return family_register(m, FAM_HISTOGRAM, name, help, labels, n_labels, bounds, n_bounds, scale);
}

static uint64_t hash_values(const mn_metrics_family_t *f, const char *const *values)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < f->n_labels; i++) {
        const char *v = values && values[i] ? values[i] : "";
        for (; *v; v++)
            h = (h ^ (unsigned char)*v) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull; /* separator: ("a","") != ("","a") */
    }
    return h;
}

static bool same_values(const mn_metrics_family_t *f, const series *s, const char *const *values)
{
    for (size_t i = 0; i < f->n_labels; i++)
        if (strcmp(s->values[i], values && values[i] ? values[i] : "")) return false;
    return true;
}

static series *series_new(const mn_metrics_family_t *f, uint64_t h, const char *const *values)
{
    series *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->hash = h;
    for (size_t i = 0; i < f->n_labels; i++)
        if (!(s->values[i] = strdup(values && values[i] ? values[i] : ""))) {
            for (size_t j = 0; j < i; j++)
                free(s->values[j]);
            free(s);
            return NULL;
        }
    if (f->type == FAM_HISTOGRAM) mn_histogram_init(&s->hist, f->bounds, f->n_bounds);
    return s;
}

static void series_free(const mn_metrics_family_t *f, series *s)
{
    for (size_t j = 0; j < f->n_labels; j++)
        free(s->values[j]);
    free(s);
}

/* The series of values, created on first sight; NULL when the family is full. */
static series *series_get(mn_metrics_family_t *f, const char *const *values)
{
    uint64_t h = hash_values(f, values);
    series *fresh = NULL;
    for (size_t probe = 0; probe < TABLE_SLOTS; probe++) {
        series **slot = &f->table[(h + probe) % TABLE_SLOTS];
        series *s = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
        if (!s) {
            if (__atomic_load_n(&f->n_series, __ATOMIC_RELAXED) >= MN_METRICS_SERIES_MAX) break;
            if (!fresh && !(fresh = series_new(f, h, values))) break;
            series *expected = NULL;
            if (__atomic_compare_exchange_n(slot, &expected, fresh, false, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE)) {
                uint32_t at = __atomic_fetch_add(&f->n_series, 1, __ATOMIC_ACQ_REL);
                if (at < MN_METRICS_SERIES_MAX)
                    __atomic_store_n(&f->order[at], fresh, __ATOMIC_RELEASE);
                return fresh;
            }
            s = expected; /* another thread filled the slot first */
        }
        if (s->hash == h && same_values(f, s, values)) {
            if (fresh) series_free(f, fresh);
            return s;
        }
    }
    if (fresh) series_free(f, fresh);
    __atomic_fetch_add(&f->reg->dropped, 1, __ATOMIC_RELAXED);
    return NULL;
}

void mn_metrics_add(mn_metrics_family_t *f, const char *const *values, uint64_t delta)
{
    if (!f || f->type != FAM_COUNTER) return;
    series *s = series_get(f, values);
    if (s) __atomic_fetch_add(&s->counter, delta, __ATOMIC_RELAXED);
}

void mn_metrics_set(mn_metrics_family_t *f, const char *const *values, uint64_t v)
{
    if (!f || f->type != FAM_GAUGE) return;
    series *s = series_get(f, values);
    if (s) __atomic_store_n(&s->counter, v, __ATOMIC_RELAXED);
}

void mn_metrics_observe(mn_metrics_family_t *f, const char *const *values, uint64_t v)
{
    if (!f || f->type != FAM_HISTOGRAM) return;
    series *s = series_get(f, values);
    if (s) mn_histogram_observe(&s->hist, v);
}

uint64_t mn_metrics_dropped(const mn_metrics_t *m)
{
    return __atomic_load_n(&m->dropped, __ATOMIC_RELAXED);
}

void mn_metrics_render(mn_metrics_t *m, mn_text_t *out)
{
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_fams; i++) {
        mn_metrics_family_t *f = m->fams[i];
        static const char *const type_name[] = {"counter", "histogram", "gauge"};
        mn_prom_family(out, f->name, f->help, type_name[f->type]);
        uint32_t n = __atomic_load_n(&f->n_series, __ATOMIC_ACQUIRE);
        if (n > MN_METRICS_SERIES_MAX) n = MN_METRICS_SERIES_MAX;
        for (uint32_t k = 0; k < n; k++) {
            series *s = __atomic_load_n(&f->order[k], __ATOMIC_ACQUIRE);
            if (!s) continue; /* claimed, not yet stored: next scrape */
            mn_prom_label_t lb[MN_METRICS_LABELS_MAX];
            for (size_t j = 0; j < f->n_labels; j++)
                lb[j] = (mn_prom_label_t){f->labels[j], s->values[j]};
            if (f->type == FAM_COUNTER) {
                mn_prom_sample_u64(out, f->name, lb, f->n_labels,
                                   __atomic_load_n(&s->counter, __ATOMIC_RELAXED));
            } else if (f->type == FAM_GAUGE) {
                mn_prom_sample(out, f->name, lb, f->n_labels,
                               (double)__atomic_load_n(&s->counter, __ATOMIC_RELAXED) * f->scale);
            } else {
                mn_hist_snapshot_t snap;
                mn_histogram_snapshot(&s->hist, &snap);
                mn_prom_histogram(out, f->name, lb, f->n_labels, &snap, f->scale);
            }
        }
    }
    pthread_mutex_unlock(&m->mu);
}
