/*
 * The storage identity record of a node: which cluster database it last
 * ran on (issue 12).
 *
 * Why: deleting the SQLite files under a cluster, or pointing a node at
 * another file, used to go unnoticed: SQLite creates an empty database at
 * the path, and the restarted node served empty state, every acknowledged
 * write gone, with no error. The database now carries a random cluster id
 * (src/storage/sqlite.c). The node records it in its data dir, in
 * "storage-id.<address>", and at every later start
 *   - the database must exist (it is opened with MP_SQLITE_NO_CREATE), and
 *   - its id must be the recorded one;
 * otherwise the node refuses to start and says what is wrong and how to go
 * on (mp_node_run). `moonpool node --new-storage` is the explicit way to
 * accept a new database: created if missing, its id recorded. A first
 * start (no record) adopts the database it finds or creates: a node
 * joining a cluster records the shared database's id.
 *
 * The record is one line, 16 lowercase hex digits; anything else is
 * refused (guessing could accept a database that is not ours). It is
 * written like the incarnation counter: temporary file, fsync, rename.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "host/host_int.h"
#include "moonpool/status.h"

int mp__host_storage_id_read(const char *dir, const char *addr, uint64_t *id, char *path,
                             size_t path_cap, char *err, size_t err_cap)
{
    *id = 0;
    if (mp__host_node_file(dir, "storage-id", addr, path, path_cap) < 0)
        return mp__host_set_err(err, err_cap, MP_EINVAL, "storage id: path too long");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        int e = errno;
        return mp__host_set_err(err, err_cap, MP_EIO, "cannot open '%s': %s", path, strerror(e));
    }
    char buf[40];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int e = errno;
    close(fd);
    if (n < 0) return mp__host_set_err(err, err_cap, MP_EIO, "cannot read '%s': %s", path, strerror(e));
    buf[n] = '\0';
    uint64_t v = 0;
    int i = 0;
    for (; i < 16; i++) {
        char c = buf[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) break;
        v = v << 4 | (uint64_t)d;
    }
    if (i != 16 || strcmp(buf + 16, "\n") != 0 || v == 0)
        return mp__host_set_err(err, err_cap, MP_ECORRUPT,
                                "'%s' does not hold a storage cluster id (16 hex digits); "
                                "delete it only if you know which database this node used",
                                path);
    *id = v;
    return 0;
}

int mp__host_storage_id_write(const char *dir, const char *path, uint64_t id, char *err,
                              size_t err_cap)
{
    char text[24];
    int len = snprintf(text, sizeof text, "%016" PRIx64 "\n", id);
    return mp__host_write_file(dir, path, text, (size_t)len, err, err_cap);
}
