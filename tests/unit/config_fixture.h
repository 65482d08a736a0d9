/* The cmocka fixture of the tests that load a configuration file (test_config.c,
 * test_auth.c): a temporary directory and the path of mnemo.toml in it. */
#ifndef MN_TEST_CONFIG_FIXTURE_H
#define MN_TEST_CONFIG_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

typedef struct config_fixture {
    char *dir;
    char path[512];
} config_fixture;

static inline int config_fixture_setup(void **state)
{
    config_fixture *f = calloc(1, sizeof *f);
    if (!f || !(f->dir = mn_test_tmpdir("mn-config"))) return -1;
    snprintf(f->path, sizeof f->path, "%s/mnemo.toml", f->dir);
    *state = f;
    return 0;
}

static inline int config_fixture_teardown(void **state)
{
    config_fixture *f = *state;
    mn_test_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Writes text to the fixture's mnemo.toml; returns its path. */
static inline const char *config_fixture_write(void **state, const char *text)
{
    config_fixture *f = *state;
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return f->path;
}

#endif
