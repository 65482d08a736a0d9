/* POST /v1/cluster/drain: sets or clears this node's drain flag, or carries the
 * request one hop to the node it names (a signed internal hop of this node,
 * cl_route_call, marked "forwarded" so it never travels further; the caller's
 * key was checked here, as an admin operation).
 *
 * The flag is a file, present while draining, created with fsync and
 * removed with an fsync of the folder: a restart keeps what was
 * acknowledged. The loop thread announces it (cluster_routes.c reads
 * `announce` on each snapshot), so every placement sees it within a SWIM
 * gossip round or two. */
#include "cluster_drain.h"

#include "api_internal.h"
#include "cluster_client.h"
#include "cluster_route.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define HOP_TIMEOUT_MS 5000

mn_err cl_drain_init(cl_drain *d, const char *data_dir, const char *self, mn_error *err)
{
    snprintf(d->path, sizeof d->path, "%s/cluster_drain", data_dir);
    snprintf(d->self, sizeof d->self, "%s", self);
    bool on = access(d->path, F_OK) == 0;
    if (!on && errno != ENOENT)
        return mn_error_set(err, MN_ERR_IO, "cannot read %s: %s", d->path, strerror(errno));
    atomic_init(&d->draining, on);
    atomic_init(&d->announce, false);
    if (on) mn_log_warn("cluster: this node is draining (%s exists): it takes no copies", d->path);
    return MN_OK;
}

static bool sync_dir(const char *path)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

static mn_err keep_flag(const cl_drain *d, bool on, mn_error *err)
{
    bool ok;
    if (on) {
        int fd = open(d->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ok = fd >= 0 && write(fd, "1\n", 2) == 2 && fsync(fd) == 0;
        if (fd >= 0 && close(fd) != 0) ok = false;
    } else {
        ok = unlink(d->path) == 0 || errno == ENOENT;
    }
    if (ok) ok = sync_dir(d->path);
    if (!ok)
        return mn_error_set(err, MN_ERR_IO, "cannot %s %s: %s", on ? "write" : "remove", d->path,
                            strerror(errno));
    return MN_OK;
}

static void answer(mn_http_response_t *resp, const char *node, bool on)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "node", node);
    cJSON_AddBoolToObject(o, "draining", on);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (body)
        mn_http_respond(resp, 200, NULL, body, strlen(body));
    else
        mn_http_respond_error(resp, 503, "unavailable", "out of memory", NULL);
    cJSON_free(body);
}

static void set_here(cl_drain *d, bool on, mn_http_response_t *resp)
{
    mn_error err = {0};
    if (keep_flag(d, on, &err) != MN_OK) {
        mn_http_respond_error(resp, 503, "unavailable", err.message, NULL);
        return;
    }
    bool was = atomic_exchange(&d->draining, on);
    atomic_store(&d->announce, true);
    if (was != on)
        mn_log_warn("cluster: this node %s",
                    on ? "drains: it takes no copies" : "no longer drains");
    answer(resp, d->self, on);
}

/* One hop to the member named node; its answer becomes ours. */
static void hop(cl_drain *d, const char *node, bool on, mn_http_response_t *resp)
{
    char body[160], msg[512];
    snprintf(body, sizeof body, "{\"node\":\"%s\",\"drain\":%s,\"forwarded\":true}", node,
             on ? "true" : "false");
    cl_http_resp r;
    mn_error err = {0};
    cl_http_fail f =
        cl_route_call(d->route, node, "POST", "/v1/cluster/drain", body, strlen(body), &r, &err);
    if (f == CL_HTTP_BAD_ADDR) {
        snprintf(msg, sizeof msg, "node: \"%.64s\" is not an alive member with an API address",
                 node);
        mn_http_respond_error(resp, 404, "node_not_found", msg,
                              "GET /v1/cluster/members lists the members and their ids");
    } else if (f != CL_HTTP_OK) {
        snprintf(msg, sizeof msg, "node %.64s did not answer: %.300s", node, err.message);
        mn_http_respond_error(resp, 503, "unavailable", msg, NULL);
    } else {
        mn_http_respond(resp, r.status, NULL, r.body ? r.body : "", r.body_len);
    }
    if (f == CL_HTTP_OK) cl_http_resp_free(&r);
}

static const char *const fields[] = {"node", "drain", "forwarded", NULL};

void cl_drain_handle(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    cl_drain *d = ctx;
    mn_error herr = {0};
    if (cl_hop_present(req) && cl_hop_verify_body(req, &herr) != MN_OK) {
        mn_http_respond_error(resp, 401, "unauthenticated", herr.message, NULL);
        return;
    }
    cJSON *doc = api_body_object(req, 0, resp); /* 415 / 400 / 413 in resp */
    if (!doc) return;
    const char *node = NULL;
    bool has = false, on = true, fwd = false;
    mn_error err = {0};
    mn_err rc = api_check_fields(doc, fields, "", &err);
    if (!rc) rc = api_get_string(doc, "node", "", &node, &err);
    if (!rc && (!node || !*node))
        rc = mn_error_set(&err, MN_ERR_INVALID, "node: required (a member id)");
    if (!rc) rc = api_get_bool(doc, "drain", "", &has, &on, &err);
    if (!rc) rc = api_get_bool(doc, "forwarded", "", &has, &fwd, &err);
    if (rc) {
        mn_http_respond_error(resp, 422, "invalid_argument", err.message, NULL);
    } else if (!strcmp(node, d->self)) {
        set_here(d, on, resp);
    } else if (fwd) {
        mn_http_respond_error(resp, 404, "node_not_found", "node: this node is not the one named",
                              NULL);
    } else {
        hop(d, node, on, resp);
    }
    api_json_free(doc);
}
