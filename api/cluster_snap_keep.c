/* Entries to re-apply, kept on disk until the new primary answered that it stored them
 * (docs/replication.md, "Snapshots in the server", forks).
 *
 * <data_dir>/repl/reapply/<space>.log holds records: be32 length, be32 CRC32C of the
 * bytes, the bytes (a framed WAL entry). A record is appended when an entry is handed back;
 * the file is fsynced (and the directory, when the file is new) by mn__csnap_keep_sync,
 * which runs before the core's truncate answers, after a demoted primary's unshipped
 * entries were handed back, and before a snapshot install replaces the copy: so an entry
 * leaves the local WAL only once it is durable here. A space's file is deleted once every
 * record of it was answered; until then a restart loads it whole and sends every record
 * again (the primary's ingest leaves an id it holds as it is). A torn or damaged tail (a
 * crash mid-append, before its sync) is ignored: what it held is still in the WAL, whose
 * fork the core hands back again. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster_snap_keep.h"

#include "cluster_repl_internal.h"
#include "mnemo/assert.h"
#include "mnemo/util.h"

#define KEEP_SUFFIX ".log"
#define KEEP_RECORD_MAX (64u << 20) /* a framed WAL entry is far below */

static void keep_path(const csnap_keep *k, const char *space, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s%s", k->dir, space, KEEP_SUFFIX);
}

static csnap_keep_file *file_of(csnap_keep *k, const char *space)
{
    for (size_t i = 0; i < k->n; i++)
        if (!strcmp(k->files[i].space, space)) return &k->files[i];
    return NULL;
}

static csnap_keep_file *file_add(csnap_keep *k, const char *space, int fd, bool fresh)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 8;
        csnap_keep_file *f = realloc(k->files, cap * sizeof *f);
        if (!f) return NULL;
        k->files = f;
        k->cap = cap;
    }
    csnap_keep_file *f = &k->files[k->n++];
    memset(f, 0, sizeof *f);
    snprintf(f->space, sizeof f->space, "%s", space);
    f->fd = fd;
    f->fresh = fresh;
    return f;
}

mn_err mn__csnap_keep_add(csnap_keep *k, const char *space, const uint8_t *data, size_t len)
{
    if (len > KEEP_RECORD_MAX) return MN_ERR_LIMIT;
    csnap_keep_file *f = file_of(k, space);
    if (!f) {
        char path[4400];
        keep_path(k, space, path, sizeof path);
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0) return MN_ERR_IO;
        if (!(f = file_add(k, space, fd, true))) {
            close(fd);
            return MN_ERR_NOMEM;
        }
    }
    uint8_t head[8];
    mn_put_be32(head, (uint32_t)len);
    mn_put_be32(head + 4, mn_crc32c(0, data, len));
    if (!mn__crep_write_all(f->fd, head, sizeof head) || !mn__crep_write_all(f->fd, data, len))
        return MN_ERR_IO;
    f->held++;
    f->unsynced = true;
    return MN_OK;
}

mn_err mn__csnap_keep_sync(csnap_keep *k)
{
    bool dir = false, ok = true;
    for (size_t i = 0; i < k->n; i++) {
        csnap_keep_file *f = &k->files[i];
        if (f->unsynced && fsync(f->fd) != 0) ok = false;
        f->unsynced = f->unsynced && !ok;
        dir |= f->fresh;
        f->fresh = false;
    }
    if (dir) {
        int dfd = open(k->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ok = ok && dfd >= 0 && fsync(dfd) == 0;
        if (dfd >= 0) close(dfd);
    }
    return ok ? MN_OK : MN_ERR_IO;
}

void mn__csnap_keep_done(csnap_keep *k, const char *space)
{
    csnap_keep_file *f = file_of(k, space);
    if (!f) return;
    mn_assert(f->held > 0);
    if (--f->held) return;
    char path[4400];
    keep_path(k, space, path, sizeof path);
    close(f->fd);
    if (unlink(path) != 0) mn_log_warn("repl: cannot delete %s: %s", path, strerror(errno));
    *f = k->files[--k->n];
}

/* Reads one space's file, handing each whole record to fn; returns how many. */
static size_t load_file(const char *path, const char *space, csnap_keep_fn fn, void *arg)
{
    FILE *in = fopen(path, "rb");
    if (!in) return 0;
    size_t n = 0;
    uint8_t head[8];
    uint8_t *buf = NULL;
    while (fread(head, 1, sizeof head, in) == sizeof head) {
        uint32_t len = mn_get_be32(head);
        uint8_t *b = len <= KEEP_RECORD_MAX ? realloc(buf, len ? len : 1) : NULL;
        if (!b) break;
        buf = b;
        if (fread(buf, 1, len, in) != len || mn_crc32c(0, buf, len) != mn_get_be32(head + 4))
            break; /* a torn tail: its entry is still in the WAL */
        fn(arg, space, buf, len);
        n++;
    }
    free(buf);
    fclose(in);
    return n;
}

mn_err mn__csnap_keep_open(csnap_keep *k, const char *repl_dir, csnap_keep_fn fn, void *arg)
{
    memset(k, 0, sizeof *k);
    snprintf(k->dir, sizeof k->dir, "%s/reapply", repl_dir);
    if (mkdir(k->dir, 0700) != 0 && errno != EEXIST) return MN_ERR_IO;
    DIR *d = opendir(k->dir);
    if (!d) return MN_ERR_IO;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name), sl = strlen(KEEP_SUFFIX);
        if (nl <= sl || nl - sl > MN_SPACE_NAME_MAX || strcmp(de->d_name + nl - sl, KEEP_SUFFIX))
            continue;
        char space[MN_SPACE_NAME_MAX + 1], path[4400];
        snprintf(space, sizeof space, "%.*s", (int)(nl - sl), de->d_name);
        keep_path(k, space, path, sizeof path);
        size_t held = load_file(path, space, fn, arg);
        int fd = held ? open(path, O_WRONLY | O_APPEND | O_CLOEXEC) : -1;
        csnap_keep_file *f = fd >= 0 ? file_add(k, space, fd, false) : NULL;
        if (f)
            f->held = held;
        else if (fd >= 0)
            close(fd);
        if (!held) unlink(path);
        if (held)
            mn_log_info("repl: %zu entries of %s to re-apply through its primary, from %s", held,
                        space, path);
    }
    closedir(d);
    return MN_OK;
}

void mn__csnap_keep_close(csnap_keep *k)
{
    for (size_t i = 0; i < k->n; i++)
        close(k->files[i].fd);
    free(k->files);
    memset(k, 0, sizeof *k);
}
