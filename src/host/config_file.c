/*
 * mp_config_load: read a config file and hand it to mp_config_parse.
 *
 * It lives in src/host/, the process shell around a node (with mp_node_run),
 * not in the runtime proper: the runtime never opens files by itself (the
 * determinism lint forbids fopen outside src/env, src/storage and src/host).
 * Parsing stays in src/config/config.c, pure and fuzzable.
 *
 * The file is read whole, but never more than MP_CONFIG_MAX_SIZE + 1 bytes:
 * one byte past the limit is enough to know the file is too large, so a
 * config path pointing at a huge file or at /dev/zero cannot eat memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/config.h"

static int load_error(mp_config_error *err, const char *path, int status, const char *why)
{
    if (err) {
        err->line = 0;
        snprintf(err->message, sizeof err->message, "%s: %s", path, why);
    }
    return status;
}

int mp_config_load(const char *path, mp_config *out, mp_config_error *err)
{
    if (out) memset(out, 0, sizeof *out);
    if (!path || !out) return load_error(err, path ? path : "<config>", MP_EINVAL,
                                         "no path or no output");
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        char why[160];
        snprintf(why, sizeof why, "cannot open config file: %s", strerror(e));
        return load_error(err, path, e == ENOENT ? MP_ENOTFOUND : MP_EIO, why);
    }
    size_t cap = (size_t)MP_CONFIG_MAX_SIZE + 1;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return load_error(err, path, MP_ENOMEM, "out of memory");
    }
    size_t len = 0;
    while (len < cap) {
        size_t n = fread(buf + len, 1, cap - len, f);
        if (n == 0) break;
        len += n;
    }
    int bad = ferror(f);
    int e = errno;
    fclose(f);
    if (bad) {
        free(buf);
        char why[160];
        /* Reading a directory fails here (EISDIR) on Linux. */
        snprintf(why, sizeof why, "cannot read config file: %s", strerror(e));
        return load_error(err, path, MP_EIO, why);
    }
    if (len > MP_CONFIG_MAX_SIZE) {
        free(buf);
        return load_error(err, path, MP_ETOOBIG, "config file is larger than 1 MiB");
    }
    int rc = mp_config_parse(buf, len, path, out, err);
    free(buf);
    return rc;
}
