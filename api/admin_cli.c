/* `mnemo admin status | drain NODE | rebalance`: reads and acts on a cluster
 * through one node's HTTP API (--url, default $MNEMO_URL or
 * http://127.0.0.1:7700, https:// verified against --cacert or the system's CAs;
 * --key, default $MNEMO_API_KEY, sent as a Bearer key). status joins GET /v1/cluster/members and
 * GET /v1/cluster/spaces into tables (or one JSON document with --json); drain posts
 * /v1/cluster/drain, which reaches the named node; rebalance reports the
 * balance of copies and the moves in flight: placement steps run by
 * themselves on every node (each membership change and every 250 ms), so
 * there is nothing to trigger. Exit codes: admin_cli.h. */
#include "admin_cli.h"

#include "cluster_client.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mnemo/util.h"

typedef struct admin_opts {
    const char *url;
    char addr[300]; /* HOST:PORT of url */
    bool https;
    const char *cacert; /* PEM CA certificates for https ("" = the system's) */
    void *tls;          /* the client context when https */
    const char *key;
    bool json, undo;
    int64_t timeout_ms, wait_s;
    const char *node; /* drain */
} admin_opts;

static void usage(FILE *f)
{
    fprintf(f, "usage:\n"
               "  mnemo admin status    [--url URL] [--key KEY] [--json]\n"
               "  mnemo admin drain NODE [--undo] [--wait SECONDS] [--url URL] [--key KEY]\n"
               "  mnemo admin rebalance [--url URL] [--key KEY] [--json]\n"
               "URL: any node's API, http://HOST:PORT or https://HOST:PORT (default $MNEMO_URL or "
               "http://127.0.0.1:7700);\n"
               "with https, --cacert FILE: PEM CA certificates that sign the node's (default "
               "$MNEMO_CACERT, else the system's);\n"
               "KEY: an admin API key (default $MNEMO_API_KEY). Also --timeout-ms N (5000).\n"
               "Exit: 0 done (status: healthy), 1 the node refused, 2 usage, 3 degraded\n"
               "(status) or not drained in time (drain --wait), 4 node unreachable.\n");
}

/* "http[s]://HOST:PORT[/]" into o->addr and o->https. */
static bool url_addr(admin_opts *o)
{
    const char *u = o->url;
    o->https = !strncmp(u, "https://", 8);
    if (strncmp(u, "http://", 7) != 0 && !o->https) {
        fprintf(stderr, "mnemo admin: --url %s: expected http://HOST:PORT or https://HOST:PORT\n",
                u);
        return false;
    }
    snprintf(o->addr, sizeof o->addr, "%s", u + (o->https ? 8 : 7));
    size_t n = strlen(o->addr);
    if (n && o->addr[n - 1] == '/') o->addr[--n] = 0;
    if (!n || strchr(o->addr, '/') || !strrchr(o->addr, ':')) {
        fprintf(stderr, "mnemo admin: --url %s: expected http[s]://HOST:PORT\n", u);
        return false;
    }
    mn_error err = {0};
    if (o->https && !(o->tls = cl_http_tls_new(o->cacert, "", &err))) {
        fprintf(stderr, "mnemo admin: --cacert: %s\n", err.message);
        return false;
    }
    return true;
}

static bool int_arg(const char *name, const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    char *end = NULL;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || x < lo || x > hi) {
        fprintf(stderr, "mnemo admin: %s needs an integer in %lld..%lld\n", name, (long long)lo,
                (long long)hi);
        return false;
    }
    *out = x;
    return true;
}

/* Options after the subcommand (argv[3...]); positional: NODE for drain. */
static bool parse(int argc, char **argv, bool drain, admin_opts *o)
{
    const char *env_url = getenv("MNEMO_URL"), *env_key = getenv("MNEMO_API_KEY");
    const char *env_ca = getenv("MNEMO_CACERT");
    *o = (admin_opts){.url = env_url && *env_url ? env_url : "http://127.0.0.1:7700",
                      .key = env_key && *env_key ? env_key : NULL,
                      .cacert = env_ca ? env_ca : "",
                      .timeout_ms = 5000};
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = !strcmp(a, "--url") || !strcmp(a, "--key") || !strcmp(a, "--timeout-ms") ||
                     !strcmp(a, "--cacert") || (drain && !strcmp(a, "--wait"));
        if (takes && !v) {
            fprintf(stderr, "mnemo admin: %s needs a value\n", a);
            return false;
        }
        if (!strcmp(a, "--url"))
            o->url = argv[++i];
        else if (!strcmp(a, "--key"))
            o->key = argv[++i];
        else if (!strcmp(a, "--cacert"))
            o->cacert = argv[++i];
        else if (!strcmp(a, "--timeout-ms")) {
            if (!int_arg(a, argv[++i], 100, 600000, &o->timeout_ms)) return false;
        } else if (drain && !strcmp(a, "--wait")) {
            if (!int_arg(a, argv[++i], 1, 86400, &o->wait_s)) return false;
        } else if (!drain && !strcmp(a, "--json"))
            o->json = true;
        else if (drain && !strcmp(a, "--undo"))
            o->undo = true;
        else if (drain && a[0] != '-' && !o->node)
            o->node = a;
        else {
            fprintf(stderr, "mnemo admin: unknown argument \"%s\"\n", a);
            return false;
        }
    }
    if (drain && !o->node) {
        fprintf(stderr, "mnemo admin drain: name the node (its id, from mnemo admin status)\n");
        return false;
    }
    return url_addr(o);
}

/* One request (Authorization: Bearer with --key); *out the parsed JSON answer
 * (cJSON_Delete). An exit code. */
static int call(const admin_opts *o, const char *method, const char *path, const char *body,
                cJSON **out)
{
    *out = NULL;
    char auth[600];
    cl_http_header h[1] = {{"Authorization", auth}};
    snprintf(auth, sizeof auth, "Bearer %s", o->key ? o->key : "");
    cl_http_req req = {.method = method,
                       .addr = o->addr,
                       .target = path,
                       .headers = h,
                       .n_headers = o->key ? 1 : 0,
                       .body = body,
                       .body_len = body ? strlen(body) : 0,
                       .tls = o->tls};
    cl_http_opts ho;
    cl_http_opts_default(&ho);
    ho.total_timeout_ms = ho.io_timeout_ms = o->timeout_ms;
    ho.connect_timeout_ms =
        o->timeout_ms < ho.connect_timeout_ms ? o->timeout_ms : ho.connect_timeout_ms;
    cl_http_resp r;
    mn_error err = {0};
    if (cl_http_do(&req, &ho, &r, &err) != CL_HTTP_OK) {
        fprintf(stderr, "mnemo admin: cannot reach %s: %s\n", o->url, err.message);
        return ADMIN_UNREACHABLE;
    }
    cJSON *doc = r.body ? cJSON_ParseWithLength(r.body, r.body_len) : NULL;
    int rc = ADMIN_OK;
    if (r.status != 200) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        fprintf(stderr, "mnemo admin: %s %s: HTTP %d: %s\n", method, path, r.status,
                cJSON_IsString(m) ? m->valuestring : "(no error message)");
        if (r.status == 404 && !strcmp(path, "/v1/cluster/members"))
            fprintf(stderr, "mnemo admin: is [cluster] enabled on that node?\n");
        rc = ADMIN_REFUSED;
    } else if (!doc) {
        fprintf(stderr, "mnemo admin: %s %s: the answer is not JSON\n", method, path);
        rc = ADMIN_REFUSED;
    }
    cl_http_resp_free(&r);
    if (rc)
        cJSON_Delete(doc);
    else
        *out = doc;
    return rc;
}

/* ---- reading the answers ---- */

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const cJSON *arr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsArray(v) ? v : NULL;
}

static bool has_flag(const cJSON *space, const char *flag)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, arr(space, "flags")) if (cJSON_IsString(f) &&
                                                   !strcmp(f->valuestring, flag)) return true;
    return false;
}

/* Copies (or primaries) the placement gives node. */
static int load_of(const cJSON *spaces, const char *node, bool primaries)
{
    int n = 0;
    const cJSON *s, *h;
    cJSON_ArrayForEach(s, arr(spaces, "spaces")) cJSON_ArrayForEach(h, arr(s, "holders"))
    {
        const char *id = str(h, "node"), *role = str(h, "role");
        if (id && !strcmp(id, node) && (!primaries || (role && !strcmp(role, "primary")))) n++;
    }
    return n;
}

static const cJSON *placement_member(const cJSON *spaces, const char *id)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, arr(spaces, "members")) if (str(m, "id") &&
                                                      !strcmp(str(m, "id"), id)) return m;
    return NULL;
}

/* A space's lag: the largest lag_entries of its holders, -1 when none is known. */
static double lag_of(const cJSON *space)
{
    double lag = -1;
    const cJSON *h;
    cJSON_ArrayForEach(h, arr(space, "holders"))
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, "lag_entries");
        if (cJSON_IsNumber(v) && v->valuedouble > lag) lag = v->valuedouble;
    }
    return lag;
}

static bool degraded(const cJSON *members, const cJSON *spaces)
{
    const cJSON *m, *s;
    cJSON_ArrayForEach(m,
                       arr(members, "members")) if (!str(m, "state") ||
                                                    (strcmp(str(m, "state"), "alive") &&
                                                     strcmp(str(m, "state"), "left"))) return true;
    cJSON_ArrayForEach(s, arr(spaces, "spaces")) if (has_flag(s, "under_replicated") ||
                                                     has_flag(s, "failover") ||
                                                     has_flag(s, "unavailable")) return true;
    return false;
}

/* ---- status ---- */

static void print_members(const cJSON *members, const cJSON *spaces)
{
    printf("%-38s %-8s %-12s %-22s %-5s %9s %6s\n", "MEMBER", "STATE", "ZONE", "API", "DRAIN",
           "PRIMARIES", "COPIES");
    const cJSON *m;
    cJSON_ArrayForEach(m, arr(members, "members"))
    {
        const char *id = str(m, "id");
        if (!id) continue;
        const cJSON *pm = placement_member(spaces, id);
        const char *zone = pm ? str(pm, "zone") : NULL, *api = pm ? str(pm, "api") : NULL;
        bool drain = pm && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pm, "draining"));
        printf("%-38s %-8s %-12s %-22s %-5s %9d %6d%s\n", id,
               str(m, "state") ? str(m, "state") : "?", zone ? zone : "-", api ? api : "-",
               drain ? "yes" : "no", load_of(spaces, id, true), load_of(spaces, id, false),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "self")) ? "  (this node)" : "");
    }
}

static void print_holders(const cJSON *space)
{
    bool first = true;
    const cJSON *h;
    cJSON_ArrayForEach(h, arr(space, "holders"))
    {
        const char *role = str(h, "role");
        if (!role || !strcmp(role, "primary")) continue;
        printf("%s%s%s%s", first ? "" : ",", str(h, "node") ? str(h, "node") : "?",
               !strcmp(role, "catching_up") ? "(catching up)" : "",
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "down")) ? "(down)" : "");
        first = false;
    }
    if (first) printf("-");
}

static void print_spaces(const cJSON *spaces)
{
    printf("\n%-24s %5s %-38s %6s %-20s %s\n", "SPACE", "EPOCH", "PRIMARY", "LAG", "FLAGS",
           "REPLICAS");
    const cJSON *s, *f;
    cJSON_ArrayForEach(s, arr(spaces, "spaces"))
    {
        double lag = lag_of(s);
        char lag_text[24], flags[80] = "";
        if (lag < 0)
            snprintf(lag_text, sizeof lag_text, "-");
        else
            snprintf(lag_text, sizeof lag_text, "%.0f", lag);
        cJSON_ArrayForEach(f, arr(s, "flags")) if (cJSON_IsString(f))
            snprintf(flags + strlen(flags), sizeof flags - strlen(flags), "%s%s",
                     flags[0] ? "," : "", f->valuestring);
        printf("%-24s %5.0f %-38s %6s %-20s ", str(s, "name") ? str(s, "name") : "?",
               num(s, "epoch"), str(s, "primary") ? str(s, "primary") : "(none)", lag_text,
               flags[0] ? flags : "-");
        print_holders(s);
        printf("\n");
    }
}

static void print_under(const cJSON *spaces)
{
    printf("\nunder-replicated:");
    int n = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, arr(spaces, "spaces")) if (has_flag(s, "under_replicated") ||
                                                     has_flag(s, "unavailable"))
    {
        printf("%s %s", n++ ? "," : "", str(s, "name") ? str(s, "name") : "?");
    }
    printf("%s\n", n ? "" : " none");
}

/* {"members": ..., "placement": ..., "under_replicated": [...], "healthy": bool} */
static void print_json(cJSON *members, cJSON *spaces, bool healthy)
{
    cJSON *root = cJSON_CreateObject(), *under = cJSON_CreateArray();
    const cJSON *s;
    cJSON_ArrayForEach(s,
                       arr(spaces, "spaces")) if (has_flag(s, "under_replicated") && str(s, "name"))
        cJSON_AddItemToArray(under, cJSON_CreateString(str(s, "name")));
    cJSON_AddItemReferenceToObject(root, "members", members);
    cJSON_AddItemReferenceToObject(root, "placement", spaces);
    cJSON_AddItemToObject(root, "under_replicated", under);
    cJSON_AddBoolToObject(root, "healthy", healthy);
    char *text = cJSON_Print(root);
    if (text) printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(root);
}

static int status(const admin_opts *o)
{
    cJSON *members = NULL, *spaces = NULL;
    int rc = call(o, "GET", "/v1/cluster/members", NULL, &members);
    if (!rc) rc = call(o, "GET", "/v1/cluster/spaces", NULL, &spaces);
    if (rc) goto out;
    bool bad = degraded(members, spaces);
    if (o->json) {
        print_json(members, spaces, !bad);
    } else {
        printf("cluster seen from %s (%s): %d members, replication factor %.0f, write "
               "consistency %s\n\n",
               str(members, "self") ? str(members, "self") : "?", o->url,
               cJSON_GetArraySize(arr(members, "members")), num(spaces, "replication_factor"),
               str(spaces, "write_consistency") ? str(spaces, "write_consistency") : "?");
        print_members(members, spaces);
        print_spaces(spaces);
        print_under(spaces);
        printf("%s\n", bad ? "status: DEGRADED" : "status: healthy");
    }
    rc = bad ? ADMIN_DEGRADED : ADMIN_OK;
out:
    cJSON_Delete(members);
    cJSON_Delete(spaces);
    return rc;
}

/* ---- drain ---- */

/* Polls the placement until node holds no copy (exit 0) or wait_s passed (exit 3). */
static int wait_drained(const admin_opts *o)
{
    int64_t end = mn_time_now_ms() + o->wait_s * 1000;
    for (;;) {
        cJSON *spaces = NULL;
        int rc = call(o, "GET", "/v1/cluster/spaces", NULL, &spaces);
        if (rc) return rc;
        int copies = load_of(spaces, o->node, false);
        cJSON_Delete(spaces);
        if (copies == 0) {
            printf("node %s holds no copy: it can be stopped\n", o->node);
            return ADMIN_OK;
        }
        if (mn_time_now_ms() >= end) {
            printf("node %s still holds %d copies after %llds\n", o->node, copies,
                   (long long)o->wait_s);
            return ADMIN_DEGRADED;
        }
        usleep(1000 * 1000);
    }
}

static int drain(const admin_opts *o)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "node", o->node);
    cJSON_AddBoolToObject(body, "drain", !o->undo);
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    cJSON *doc = NULL;
    int rc = text ? call(o, "POST", "/v1/cluster/drain", text, &doc) : ADMIN_REFUSED;
    cJSON_free(text);
    if (rc) return rc;
    bool on = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "draining"));
    cJSON_Delete(doc);
    if (!on) {
        printf("node %s: no longer draining (placement may give it copies again)\n", o->node);
        return ADMIN_OK;
    }
    printf("node %s: draining: placement gives it no copy; its primaries hand over and its "
           "replicas move once their new copies caught up (mnemo admin status shows its "
           "COPIES reach 0)\n",
           o->node);
    return o->wait_s ? wait_drained(o) : ADMIN_OK;
}

/* ---- rebalance ---- */

static int count_flag(const cJSON *spaces, const char *flag)
{
    int n = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, arr(spaces, "spaces")) n += has_flag(s, flag);
    return n;
}

/* Spaces with a copy catching up: balance moves and repairs in flight. */
static int moves_of(const cJSON *spaces)
{
    int n = 0;
    const cJSON *s, *h;
    cJSON_ArrayForEach(s, arr(spaces, "spaces"))
    {
        bool moving = false;
        cJSON_ArrayForEach(h, arr(s, "holders")) moving |=
            str(h, "role") && !strcmp(str(h, "role"), "catching_up");
        n += moving;
    }
    return n;
}

/* The load of the members that take copies (not draining): mean and largest. */
static void load_stats(const cJSON *spaces, bool primaries, cJSON *out, const char *name)
{
    double total = 0, max = 0;
    int n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, arr(spaces, "members"))
    {
        if (!str(m, "id") || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "draining")))
            continue;
        double l = load_of(spaces, str(m, "id"), primaries);
        total += l;
        max = l > max ? l : max;
        n++;
    }
    double mean = n ? total / n : 0;
    cJSON *o = cJSON_AddObjectToObject(out, name);
    cJSON_AddNumberToObject(o, "mean", mean);
    cJSON_AddNumberToObject(o, "max", max);
    cJSON_AddNumberToObject(o, "max_over_mean", mean > 0 ? max / mean : 0);
}

static int rebalance(const admin_opts *o)
{
    cJSON *spaces = NULL;
    int rc = call(o, "GET", "/v1/cluster/spaces", NULL, &spaces);
    if (rc) return rc;
    cJSON *r = cJSON_CreateObject();
    load_stats(spaces, false, r, "copies");
    load_stats(spaces, true, r, "primaries");
    cJSON_AddNumberToObject(r, "moves_in_flight", moves_of(spaces));
    cJSON_AddNumberToObject(r, "handovers_pending", count_flag(spaces, "handover"));
    cJSON_AddNumberToObject(r, "under_replicated", count_flag(spaces, "under_replicated"));
    cJSON_AddStringToObject(r, "note",
                            "placement steps run continuously on every node (each membership "
                            "change and every 250 ms): there is nothing to trigger");
    if (o->json) {
        char *text = cJSON_Print(r);
        if (text) printf("%s\n", text);
        cJSON_free(text);
    } else {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "copies");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "primaries");
        printf("%s.\n", str(r, "note"));
        printf("copies per member:    mean %.1f, max %.0f (max/mean %.2f)\n", num(c, "mean"),
               num(c, "max"), num(c, "max_over_mean"));
        printf("primaries per member: mean %.1f, max %.0f (max/mean %.2f)\n", num(p, "mean"),
               num(p, "max"), num(p, "max_over_mean"));
        printf("moves in flight: %.0f; handovers pending: %.0f; under-replicated: %.0f\n",
               num(r, "moves_in_flight"), num(r, "handovers_pending"), num(r, "under_replicated"));
    }
    cJSON_Delete(r);
    cJSON_Delete(spaces);
    return ADMIN_OK;
}

int mn_admin_main(int argc, char **argv)
{
    const char *sub = argc > 2 ? argv[2] : NULL;
    if (!sub || !strcmp(sub, "help") || !strcmp(sub, "--help")) {
        usage(sub ? stdout : stderr);
        return sub ? ADMIN_OK : ADMIN_USAGE;
    }
    bool is_drain = !strcmp(sub, "drain");
    if (!is_drain && strcmp(sub, "status") && strcmp(sub, "rebalance")) {
        fprintf(stderr, "mnemo admin: unknown subcommand \"%s\"\n", sub);
        usage(stderr);
        return ADMIN_USAGE;
    }
    admin_opts o;
    if (!parse(argc, argv, is_drain, &o)) return ADMIN_USAGE;
    int rc = is_drain ? drain(&o) : !strcmp(sub, "status") ? status(&o) : rebalance(&o);
    cl_http_tls_free(o.tls);
    return rc;
}
