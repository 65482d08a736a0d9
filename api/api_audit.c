/* The audit log: JSON lines appended to one file (api_audit.h). Each record is built in
 * memory and written with a single write(2) on an O_APPEND descriptor, so lines from
 * concurrent requests never interleave; a failed write is logged, never fatal. */
#include "api_audit.h"

#include "api_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct api_audit {
    int fd;
    char path[1024];
};

int api_audit_open(const char *path, api_audit **out)
{
    *out = NULL;
    if (!path || !*path) return 0;
    api_audit *a = calloc(1, sizeof *a);
    if (!a) return ENOMEM;
    a->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (a->fd < 0) {
        int e = errno;
        free(a);
        return e;
    }
    snprintf(a->path, sizeof a->path, "%s", path);
    *out = a;
    return 0;
}

void api_audit_close(api_audit *a)
{
    if (!a) return;
    close(a->fd);
    free(a);
}

static void put_str(api_jw *w, const char *k, const char *v)
{
    if (!v) return;
    jw_key(w, k);
    jw_str(w, v);
}

static void put_int(api_jw *w, const char *k, int64_t v)
{
    if (v < 0) return;
    jw_key(w, k);
    jw_int(w, v);
}

void api_audit_write(api_audit *a, const api_audit_rec *r)
{
    if (!a) return;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "time");
    jw_time(&w, mn_time_now_ms());
    put_str(&w, "key", r->key ? r->key : "");
    put_str(&w, "door", r->door);
    put_str(&w, "space", r->space);
    put_str(&w, "op", r->op);
    if (r->filter) { /* JSON text already */
        jw_key(&w, "filter");
        jw_raw(&w, r->filter);
    }
    put_str(&w, "mode", r->mode);
    if (r->dry_run >= 0) {
        jw_key(&w, "dry_run");
        jw_bool(&w, r->dry_run != 0);
    }
    put_int(&w, "count", r->count);
    put_int(&w, "done", r->done);
    put_int(&w, "forgotten", r->forgotten);
    put_str(&w, "job", r->job);
    put_str(&w, "state", r->state);
    jw_obj_end(&w);
    if (!w.oom && w.len < w.cap) {
        w.buf[w.len++] = '\n';
        ssize_t n = write(a->fd, w.buf, w.len);
        if (n != (ssize_t)w.len)
            mn_log_error("audit log %s: write failed: %s", a->path,
                         n < 0 ? strerror(errno) : "short write");
    } else {
        mn_log_error("audit log %s: out of memory, a record is lost", a->path);
    }
    jw_free(&w);
}
