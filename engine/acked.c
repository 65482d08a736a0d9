/* The acknowledged-lsn watermark: <data_dir>/mnemo-acked.
 *
 * Why it exists: RocksDB replays its log in kTolerateCorruptedTailRecords mode
 * (store.c), which must accept a log that ends early, because a crash can tear
 * the last record. A log cut short by damage (a truncated file, a lost page)
 * looks the same, and would open with fewer memories than were acknowledged.
 * This file is the second witness: after each fsynced group the commit thread
 * writes, for every space the group touched, the group's last lsn of that space.
 * At start-up (damage.c) a space whose WAL ends below its watermark, or a space
 * with a watermark that the store does not have, lost acknowledged writes.
 *
 * Invariant: a record never claims more than the store holds. It is written
 * after the synced RocksDB write returns, so every lsn it names is durable in
 * RocksDB first; the commit thread checks that each lsn it notes moves its space's
 * watermark forward (commit.c, note_acked). It is not fsynced itself: after a process crash the page cache
 * still has it; after a power loss it may be older than the store, which only
 * weakens the check, never raises a false alarm.
 *
 * Layout: record sid at offset sid * 16: be32 sid, be64 lsn, be32 crc32c of the
 * first 12 bytes. A record that fails its checksum (a write torn by a power
 * loss) is skipped; an all-zero one is a space never seen (the file is sparse). */
#include "acked.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mnemo/util.h"

#define REC_LEN 16

struct mn__acked {
    int fd;         /* -1 when read-only */
    uint64_t *lsns; /* by sid */
    uint8_t *dirty; /* by sid: noted, not written yet */
    uint32_t cap;   /* entries of lsns and dirty */
    uint32_t *todo; /* the dirty sids */
    size_t n_todo;
    bool warned; /* a write failed once */
};

static bool grow(mn__acked *a, uint32_t sid)
{
    if (sid < a->cap) return true;
    uint32_t cap = a->cap ? a->cap : 64;
    while (cap <= sid)
        cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
    if (cap <= sid) return false;
    uint64_t *n = realloc(a->lsns, (size_t)cap * sizeof *n);
    if (n) a->lsns = n;
    uint8_t *d = n ? realloc(a->dirty, cap) : NULL;
    if (d) a->dirty = d;
    uint32_t *t = d ? realloc(a->todo, (size_t)cap * sizeof *t) : NULL;
    if (!t) return false;
    a->todo = t;
    memset(n + a->cap, 0, (size_t)(cap - a->cap) * sizeof *n);
    memset(d + a->cap, 0, cap - a->cap);
    a->cap = cap;
    return true;
}

/* The record on disk stays at an older lsn: the check is weaker, never wrong. */
static void write_failed(mn__acked *a, const char *why)
{
    if (a->warned) return;
    a->warned = true;
    mn_log_warn("%s: cannot record acknowledged lsns (%s): a start will not detect a log cut "
                "short",
                MN__ACKED_FILE, why);
}

static void encode(uint8_t rec[REC_LEN], uint32_t sid, uint64_t lsn)
{
    mn_put_be32(rec, sid);
    mn_put_be64(rec + 4, lsn);
    mn_put_be32(rec + 12, mn_crc32c(0, rec, 12));
}

/* The records of buf (len bytes) into a; counts the torn ones. */
static mn_err parse(mn__acked *a, const uint8_t *buf, size_t len, size_t *torn)
{
    static const uint8_t zero[REC_LEN];
    for (size_t off = 0; off + REC_LEN <= len; off += REC_LEN) {
        const uint8_t *r = buf + off;
        if (!memcmp(r, zero, REC_LEN)) continue;
        uint32_t sid = mn_get_be32(r);
        if (mn_get_be32(r + 12) != mn_crc32c(0, r, 12) || (uint64_t)sid * REC_LEN != off) {
            (*torn)++;
            continue;
        }
        if (!grow(a, sid)) return MN_ERR_NOMEM;
        a->lsns[sid] = mn_get_be64(r + 4);
    }
    return MN_OK;
}

static mn_err read_all(mn__acked *a, int fd, const char *path, size_t *torn, mn_error *err)
{
    struct stat st;
    if (fstat(fd, &st)) return mn_error_set(err, MN_ERR_IO, "%s: %s", path, strerror(errno));
    size_t len = (size_t)st.st_size;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return mn_error_set(err, MN_ERR_NOMEM, "%s: out of memory", path);
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    mn_err rc = MN_OK;
    if (got < len)
        rc = mn_error_set(err, MN_ERR_IO, "%s: short read", path);
    else if (parse(a, buf, len, torn))
        rc = mn_error_set(err, MN_ERR_NOMEM, "%s: out of memory", path);
    free(buf);
    return rc;
}

mn_err mn__acked_open(const char *data_dir, bool writable, mn__acked **out, size_t *torn,
                      mn_error *err)
{
    *out = NULL;
    size_t torn_n = 0;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", data_dir, MN__ACKED_FILE) >= (int)sizeof path)
        return mn_error_set(err, MN_ERR_INVALID, "data_dir: too long");
    mn__acked *a = calloc(1, sizeof *a);
    if (!a) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    a->fd = -1;
    int fd = writable ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)
                      : open(path, O_RDONLY | O_CLOEXEC);
    mn_err rc = MN_OK;
    if (fd < 0 && !(errno == ENOENT && !writable))
        rc = mn_error_set(err, MN_ERR_IO, "%s: %s", path, strerror(errno));
    if (!rc && fd >= 0) rc = read_all(a, fd, path, &torn_n, err);
    if (rc) {
        if (fd >= 0) close(fd);
        mn__acked_close(a);
        return rc;
    }
    if (writable)
        a->fd = fd;
    else if (fd >= 0)
        close(fd);
    if (torn) *torn = torn_n;
    *out = a;
    return MN_OK;
}

void mn__acked_close(mn__acked *a)
{
    if (!a) return;
    if (a->fd >= 0) close(a->fd);
    free(a->lsns);
    free(a->dirty);
    free(a->todo);
    free(a);
}

uint64_t mn__acked_get(const mn__acked *a, uint32_t sid)
{
    return a && sid < a->cap ? a->lsns[sid] : 0;
}

uint32_t mn__acked_max_sid(const mn__acked *a)
{
    uint32_t m = 0;
    for (uint32_t s = 0; a && s < a->cap; s++)
        if (a->lsns[s]) m = s;
    return m;
}

void mn__acked_note(mn__acked *a, uint32_t sid, uint64_t lsn)
{
    if (!a || a->fd < 0) return;
    if (!grow(a, sid)) {
        write_failed(a, "out of memory");
        return;
    }
    a->lsns[sid] = lsn;
    if (!a->dirty[sid]) {
        a->dirty[sid] = 1;
        a->todo[a->n_todo++] = sid;
    }
}

void mn__acked_write(mn__acked *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n_todo; i++) {
        uint32_t sid = a->todo[i];
        a->dirty[sid] = 0;
        uint8_t rec[REC_LEN];
        encode(rec, sid, a->lsns[sid]);
        if (pwrite(a->fd, rec, sizeof rec, (off_t)sid * REC_LEN) != (ssize_t)sizeof rec)
            write_failed(a, strerror(errno));
    }
    a->n_todo = 0;
}
