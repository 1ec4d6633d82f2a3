/*
 * Internal helpers shared by the files of the process host (src/host/).
 */
#ifndef MP_HOST_INT_H
#define MP_HOST_INT_H

#include <stddef.h>
#include <stdint.h>

#define HOST_PATH_MAX 4096

/* Format into err (cap bytes; err may be NULL) and return status. */
int mp__host_set_err(char *err, size_t cap, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* DIR/PREFIX.ADDR with the address made of safe characters ("127.0.0.1:7001"
 * -> "127.0.0.1_7001"): one file per node, so nodes may share a data dir.
 * Returns 0, or MP_EINVAL when it does not fit in cap. */
int mp__host_node_file(const char *dir, const char *prefix, const char *addr, char *out,
                       size_t cap);

/* Replace the file at path (in directory dir) by text, crash-safely: a
 * temporary file written and fsync'ed, renamed over path, dir fsync'ed.
 * Returns 0 or MP_EIO/MP_EINVAL with a reason in err. */
int mp__host_write_file(const char *dir, const char *path, const char *text, size_t len,
                        char *err, size_t err_cap);

/* The storage identity record (storage_id.c). Read: 0 with *id the
 * recorded cluster id, or 0 with *id 0 when there is no record; MP_EIO or
 * MP_ECORRUPT with a reason in err. path receives the record's path. */
int mp__host_storage_id_read(const char *dir, const char *addr, uint64_t *id, char *path,
                             size_t path_cap, char *err, size_t err_cap);
/* Write the record at path (from mp__host_storage_id_read). */
int mp__host_storage_id_write(const char *dir, const char *path, uint64_t id, char *err,
                              size_t err_cap);

/* systemd's sd_notify protocol (sd_notify.c): send `state` ("READY=1",
 * "STOPPING=1") to $NOTIFY_SOCKET. Returns 1 sent, 0 no $NOTIFY_SOCKET,
 * MP_EADDR (not an absolute or '@' path) or MP_EIO. */
int mp__sd_notify(const char *state);

#endif
