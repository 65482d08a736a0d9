/* Durable file replacement (cluster_file.h): the write-temporary, fsync, rename, fsync-the-
 * folder sequence that makes a rename survive a crash on POSIX file systems (the folder's
 * entry is data too: ext4 and XFS need the directory fsync'd for the rename to persist). */
#include "cluster_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static bool write_all(int fd, const uint8_t *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        off += (size_t)w;
    }
    return true;
}

mn_err cl_file_replace(const char *tmp, const char *path, const char *dir, const uint8_t *data,
                       size_t len, mn_error *err)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return mn_error_set(err, MN_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    bool ok = write_all(fd, data, len) && fsync(fd) == 0;
    if (close(fd) != 0) ok = false;
    if (!ok || rename(tmp, path) != 0) {
        mn_error_set(err, MN_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return MN_ERR_IO;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ok = dfd >= 0 && fsync(dfd) == 0;
    if (dfd >= 0) close(dfd);
    return ok ? MN_OK : mn_error_set(err, MN_ERR_IO, "cannot sync %s: %s", dir, strerror(errno));
}
