/*
 * The host side of cluster authentication (docs/security.md): read the
 * secret file, derive the cluster key, and refuse to run a node that would
 * be reachable from other machines without one ("protected mode", as
 * Redis does: a node started with defaults must not be an open door).
 *
 * Why the file is checked so strictly: the secret is the only thing that
 * keeps strangers out, so a file others can read is as good as no secret,
 * and one others can write lets them pick it. ssh refuses such key files
 * for the same reason. The key is SHA-256 of the secret (a fixed-size HMAC
 * key; the secret may be a long passphrase), and the secret's bytes are
 * wiped once the key exists.
 *
 * This file may use the OS: src/host/ is the process host (scripts/lint.sh).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "moonpool/host.h"
#include "moonpool/limits.h"

static int fail(char *err, size_t cap, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t cap, int status, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return status;
}

int mp_host_load_secret(const char *path, uint8_t key[MP_ENV_KEY_LEN], char *err,
                        size_t err_cap)
{
    if (!path || !*path || !key) return fail(err, err_cap, MP_EINVAL, "no secret file path");
    /* O_NOFOLLOW is not used: a symlink to a private file is fine; the
     * checks below are on the file actually opened (fstat), so nothing can
     * be swapped between the check and the read. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        return fail(err, err_cap, e == ENOENT ? MP_ENOTFOUND : MP_EIO,
                    "secret file '%s': cannot open: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fail(err, err_cap, MP_EIO, "secret file '%s': cannot stat: %s", path,
                    strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fail(err, err_cap, MP_EINVAL, "secret file '%s' is not a regular file", path);
    }
    if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
        close(fd);
        return fail(err, err_cap, MP_EINVAL,
                    "secret file '%s' has mode %04o: group or others may read or write it; "
                    "run: chmod 600 '%s'",
                    path, (unsigned)(st.st_mode & 07777), path);
    }
    if (st.st_size > (off_t)MP_SECRET_FILE_MAX) {
        close(fd);
        return fail(err, err_cap, MP_EINVAL,
                    "secret file '%s' is %lld bytes: at most %u are allowed", path,
                    (long long)st.st_size, (unsigned)MP_SECRET_FILE_MAX);
    }
    /* Read one byte more than allowed: a file that grew since fstat (or a
     * special file that lies about its size) is caught too. */
    unsigned char buf[MP_SECRET_FILE_MAX + 1];
    size_t len = 0;
    while (len < sizeof buf) {
        ssize_t n = read(fd, buf + len, sizeof buf - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            OPENSSL_cleanse(buf, sizeof buf);
            return fail(err, err_cap, MP_EIO, "secret file '%s': cannot read: %s", path,
                        strerror(e));
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    int rc = MP_OK;
    if (len > MP_SECRET_FILE_MAX) {
        rc = fail(err, err_cap, MP_EINVAL, "secret file '%s' is larger than %u bytes", path,
                  (unsigned)MP_SECRET_FILE_MAX);
    } else {
        if (len && buf[len - 1] == '\n') len--;
        if (len && buf[len - 1] == '\r') len--;
        if (len == 0)
            rc = fail(err, err_cap, MP_EINVAL, "secret file '%s' is empty", path);
        else if (!SHA256(buf, len, key))
            rc = fail(err, err_cap, MP_EIO, "secret file '%s': hashing failed", path);
    }
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

bool mp_host_addr_is_loopback(const char *addr)
{
    char host[64];
    uint16_t port;
    if (!addr || mp_addr_parse(addr, host, sizeof host, &port) != MP_OK) return false;
    if (strcmp(host, "localhost") == 0) return true;
    /* 127.0.0.0/8, dotted quad only (what the env accepts). */
    unsigned a, b, c, d;
    char extra;
    if (sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) != 4) return false;
    return a == 127 && b <= 255 && c <= 255 && d <= 255;
}

int mp_host_apply_security(const mp_config *c, const char *self_addr, mp_env *env, char *err,
                           size_t err_cap)
{
    if (!c || !env) return fail(err, err_cap, MP_EINVAL, "no config or no env");
    mp_env_net_policy pol;
    memset(&pol, 0, sizeof pol);
    pol.max_connections = (uint32_t)c->max_connections;
    pol.max_connections_per_ip = (uint32_t)c->max_connections_per_ip;
    if (c->secret_file) {
        int rc = mp_host_load_secret(c->secret_file, pol.key, err, err_cap);
        if (rc < 0) return rc;
        pol.has_key = 1;
    } else if (!c->tls_cert && self_addr && !mp_host_addr_is_loopback(self_addr)) {
        /* Mutual TLS against the cluster CA authenticates members too. */
        return fail(err, err_cap, MP_EINVAL,
                    "%s: address %s is not a loopback address and no [security] secret_file "
                    "is set: without a cluster secret any process that reaches the port could "
                    "join the cluster and call every actor, so a node without one listens on "
                    "127.0.0.1 only (protected mode); set secret_file (docs/security.md)",
                    c->origin, self_addr);
    }
    env->net = pol;
    OPENSSL_cleanse(&pol, sizeof pol);
    return MP_OK;
}
