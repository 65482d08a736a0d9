/* Planning a recall over many spaces: which spaces a request searches (docs/api.md, "Recall
 * over many spaces"). A leaf: it reads the request's names or prefix, the names the node
 * knows and a may_read check, nothing else.
 *
 * The order of the checks is part of the contract: a list is checked for shape, then for
 * the caller's right to read each space, and only then for whether each exists, so a key
 * learns nothing about spaces it may not read; a prefix never names a space it may not read.
 * The plan is sorted by name with no duplicates (checked by mn_assert_debug where it is
 * made), so the same request always scatters in the same order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "mnemo/query.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool is_known(const mn_query_plan_in_t *in, const char *name)
{
    for (size_t i = 0; i < in->n_known; i++)
        if (!strcmp(in->known[i], name)) return true;
    return false;
}

static bool may_read(const mn_query_plan_in_t *in, const char *name)
{
    return !in->may_read || in->may_read(in->may_read_arg, name);
}

static mn_err add(mn_query_plan_t *p, const char *name, mn_error *err)
{
    char *s = strdup(name);
    if (!s) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    p->spaces[p->n++] = s;
    return MN_OK;
}

/* Sorts the plan and drops repeated names. */
static void sort_unique(mn_query_plan_t *p)
{
    if (p->n) qsort(p->spaces, p->n, sizeof *p->spaces, cmp_str);
    size_t w = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (w && !strcmp(p->spaces[w - 1], p->spaces[i])) {
            free(p->spaces[i]);
            continue;
        }
        p->spaces[w++] = p->spaces[i];
    }
    p->n = w;
    for (size_t i = 1; i < p->n; i++)
        mn_assert_debug(strcmp(p->spaces[i - 1], p->spaces[i]) < 0);
}

static mn_err plan_names(const mn_query_plan_in_t *in, mn_query_plan_t *p, mn_error *err)
{
    if (in->n_names == 0)
        return mn_error_set(err, MN_ERR_INVALID, "spaces: must name at least one space");
    for (size_t i = 0; i < in->n_names; i++)
        if (!mn_space_name_valid(in->names[i]))
            return mn_error_set(err, MN_ERR_INVALID,
                                "spaces[%zu]: \"%.64s\" is not a space name (1-64 of "
                                "[A-Za-z0-9_-])",
                                i, in->names[i]);
    for (size_t i = 0; i < in->n_names; i++) {
        mn_err rc = add(p, in->names[i], err);
        if (rc) return rc;
    }
    sort_unique(p);
    if (p->n > MN_QUERY_SPACES_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "spaces: %zu spaces, at most %d in one recall",
                            p->n, MN_QUERY_SPACES_MAX);
    for (size_t i = 0; i < p->n; i++) /* once per distinct name: an auth check hashes the key */
        if (!may_read(in, p->spaces[i])) {
            snprintf(p->denied, sizeof p->denied, "%s", p->spaces[i]);
            return mn_error_set(err, MN_ERR_INVALID, "spaces: this key may not read space \"%s\"",
                                p->spaces[i]);
        }
    for (size_t i = 0; i < p->n; i++)
        if (!is_known(in, p->spaces[i]))
            return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%s\" not found", p->spaces[i]);
    return MN_OK;
}

static mn_err plan_prefix(const mn_query_plan_in_t *in, mn_query_plan_t *p, mn_error *err)
{
    size_t len = strlen(in->prefix);
    if (len == 0 || len > MN_SPACE_NAME_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "space_prefix: must be 1..%d bytes",
                            MN_SPACE_NAME_MAX);
    size_t matched = 0;
    for (size_t i = 0; i < in->n_known; i++) {
        const char *name = in->known[i];
        if (strncmp(name, in->prefix, len) || !may_read(in, name)) continue;
        if (++matched > MN_QUERY_SPACES_MAX) continue; /* counted for the message only */
        mn_err rc = add(p, name, err);
        if (rc) return rc;
    }
    if (matched > MN_QUERY_SPACES_MAX)
        return mn_error_set(err, MN_ERR_INVALID,
                            "space_prefix: \"%s\" matches %zu readable spaces, at most %d in one "
                            "recall (name them in \"spaces\" in parts, or use a longer prefix)",
                            in->prefix, matched, MN_QUERY_SPACES_MAX);
    sort_unique(p);
    return MN_OK;
}

mn_err mn_query_plan(const mn_query_plan_in_t *in, mn_query_plan_t *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    if ((in->names != NULL) == (in->prefix != NULL))
        return mn_error_set(err, MN_ERR_INVALID,
                            "spaces, space_prefix: give exactly one of them (a list of space "
                            "names, or a prefix of names)");
    size_t cap = in->names ? in->n_names : in->n_known;
    if (cap > MN_QUERY_SPACES_MAX) cap = in->names ? cap : MN_QUERY_SPACES_MAX;
    out->spaces = calloc(cap ? cap : 1, sizeof *out->spaces);
    if (!out->spaces) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    mn_err rc = in->names ? plan_names(in, out, err) : plan_prefix(in, out, err);
    if (rc) {
        char denied[sizeof out->denied];
        memcpy(denied, out->denied, sizeof denied);
        mn_query_plan_clear(out);
        memcpy(out->denied, denied, sizeof denied);
    }
    return rc;
}

void mn_query_plan_clear(mn_query_plan_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->spaces[i]);
    free(p->spaces);
    memset(p, 0, sizeof *p);
}
