/* Temp dirs for unit tests that need a real RocksDB or files. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>

char *mn_test_tmpdir(const char *prefix)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    size_t n = strlen(base) + strlen(prefix) + 16;
    char *p = malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s/%s-XXXXXX", base, prefix);
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

void mn_test_rmrf(const char *path)
{
    if (path) nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void mn_test_engine_options(mn_engine_options *o, const char *dir)
{
    mn_engine_options_default(o);
    o->data_dir = dir;
    o->block_cache_bytes = 8u << 20;
    o->write_buffer_bytes = 4u << 20;
    o->expiry_interval_ms = 0;
    o->consolidate_interval_ms = 0;
    o->link_max = 0;
}

mn_err mn_test_space(mn_engine_t *e, const char *name, uint32_t dim, mn_metric metric)
{
    mn_space_def d = {0};
    snprintf(d.name, sizeof d.name, "%s", name);
    d.dim = dim;
    d.metric = metric;
    mn_error err = {0};
    return mn_engine_space_create(e, &d, NULL, &err);
}
