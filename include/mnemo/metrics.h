/* Metrics: fixed-bucket histograms and counters updated with atomic adds (no
 * lock on the hot path), a registry of labelled families, and the Prometheus
 * text exposition format (version 0.0.4). The process has one registry
 * (mn_metrics_process); tests make their own. */
#ifndef MNEMO_METRICS_H
#define MNEMO_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- histograms ---- */
#define MN_HIST_BUCKETS_MAX 24

/* Observations are unsigned integers in a base unit (nanoseconds, items); the
 * bounds are inclusive upper bounds in that unit, ascending, in static storage.
 * Fields are updated with __atomic builtins only. */
typedef struct mn_histogram {
    const uint64_t *bounds;
    uint32_t n_bounds;                        /* <= MN_HIST_BUCKETS_MAX */
    uint64_t counts[MN_HIST_BUCKETS_MAX + 1]; /* per bucket, not cumulative; last: above all */
    uint64_t sum;
} mn_histogram_t;

/* A consistent-enough copy for exposition: cumulative counts, count = the last one. */
typedef struct mn_hist_snapshot {
    const uint64_t *bounds;
    uint32_t n_bounds;
    uint64_t cumulative[MN_HIST_BUCKETS_MAX + 1]; /* observations <= bounds[i]; last = count */
    uint64_t count;
    uint64_t sum;
} mn_hist_snapshot_t;

/* n is capped at MN_HIST_BUCKETS_MAX. */
void mn_histogram_init(mn_histogram_t *h, const uint64_t *bounds, uint32_t n);
void mn_histogram_observe(mn_histogram_t *h, uint64_t v);
void mn_histogram_snapshot(const mn_histogram_t *h, mn_hist_snapshot_t *out);

/* Latency buckets in nanoseconds, 100 us .. 10 s (exposed in seconds). */
extern const uint64_t mn_hist_latency_ns[];
#define MN_HIST_LATENCY_N 16
/* Sizes 1, 2, 4, .. 1024 (group commits, batches). */
extern const uint64_t mn_hist_pow2[];
#define MN_HIST_POW2_N 11

/* ---- exposition text ---- */
typedef struct mn_text {
    char *buf;
    size_t len, cap;
    bool oom; /* an append failed: the text is incomplete */
} mn_text_t;
void mn_text_init(mn_text_t *t);
void mn_text_free(mn_text_t *t);
void mn_text_printf(mn_text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct mn_prom_label {
    const char *name;
    const char *value; /* escaped on output: backslash, double quote, newline */
} mn_prom_label_t;

/* "# HELP name help\n# TYPE name type\n" (help escaped: backslash, newline). */
void mn_prom_family(mn_text_t *t, const char *name, const char *help, const char *type);
/* One sample line: name{labels} value (integers exact, others %.15g; NaN, +Inf). */
void mn_prom_sample(mn_text_t *t, const char *name, const mn_prom_label_t *labels, size_t n,
                    double value);
void mn_prom_sample_u64(mn_text_t *t, const char *name, const mn_prom_label_t *labels, size_t n,
                        uint64_t value);
/* The _bucket (le = bound x scale, then +Inf), _sum (x scale) and _count lines. */
void mn_prom_histogram(mn_text_t *t, const char *name, const mn_prom_label_t *labels, size_t n,
                       const mn_hist_snapshot_t *s, double scale);

/* ---- registry of labelled families ---- */
#define MN_METRICS_LABELS_MAX 4
#define MN_METRICS_FAMILIES_MAX 64
/* Distinct label sets a family keeps; observations with a new set beyond it are
 * counted in mn_metrics_dropped and otherwise ignored. */
#define MN_METRICS_SERIES_MAX 512

typedef struct mn_metrics mn_metrics_t;
typedef struct mn_metrics_family mn_metrics_family_t;

mn_metrics_t *mn_metrics_new(void);
void mn_metrics_free(mn_metrics_t *m);
/* The process-wide registry (created on first use, never freed). */
mn_metrics_t *mn_metrics_process(void);

/* Registers a family, or returns the one already registered under name (its
 * type and labels must match, else NULL). NULL also when the registry is full,
 * out of memory, or name/labels are not valid Prometheus names. */
mn_metrics_family_t *mn_metrics_counter(mn_metrics_t *m, const char *name, const char *help,
                                        const char *const *labels, size_t n_labels);
/* A gauge: mn_metrics_set replaces its value; rendered as value * scale (1e-3: ms -> s). */
mn_metrics_family_t *mn_metrics_gauge(mn_metrics_t *m, const char *name, const char *help,
                                      const char *const *labels, size_t n_labels, double scale);
/* bounds as for mn_histogram_t; scale converts the base unit for output (1e-9: ns -> s). */
mn_metrics_family_t *mn_metrics_histogram(mn_metrics_t *m, const char *name, const char *help,
                                          const char *const *labels, size_t n_labels,
                                          const uint64_t *bounds, uint32_t n_bounds, double scale);
/* values: one per label, in registration order (NULL is ""). Lock-free once the
 * label set has been seen; safe from any thread. */
void mn_metrics_add(mn_metrics_family_t *f, const char *const *values, uint64_t delta);
void mn_metrics_set(mn_metrics_family_t *f, const char *const *values, uint64_t v);
void mn_metrics_observe(mn_metrics_family_t *f, const char *const *values, uint64_t v);
/* Observations dropped because a family had no room for a new label set. */
uint64_t mn_metrics_dropped(const mn_metrics_t *m);
/* Appends every family, in registration order, series in first-seen order. */
void mn_metrics_render(mn_metrics_t *m, mn_text_t *out);

#endif
