/*
 * `moonpool members --cluster FILE`: print the membership table.
 *
 * Why it reads the storage and not a node: the table lives in the cluster's
 * storage (src/membership/table.h, one record "<namespace>/__membership"),
 * so an operator can see it even when every node is down, which is when
 * they need it most. The command opens the storage named by the file's
 * [storage] section (SQLite or PostgreSQL), loads the one record, decodes
 * it with the same validating decoder the nodes use, and prints one line
 * per (address, incarnation). It never writes. A SQLite file that does not
 * exist is reported, not created.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "../src/membership/table.h" /* internal: the one decoder of the table */
#include "moonpool/config.h"
#include "moonpool/env_uv.h"
#include "moonpool/storage.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: moonpool members --cluster FILE [--raw]\n"
            "\n"
            "Print the membership table kept in the cluster's storage (the [storage]\n"
            "section of FILE, SQLite or PostgreSQL; the key is NAMESPACE/__membership):\n"
            "address, incarnation, status, since (the table version at which the status\n"
            "was set), heartbeat (bumped at every lease renewal), lease, actor types.\n"
            "--raw prints only the rows, without header and summary.\n"
            "Exit status: 0 success (also when no member joined yet), 1 the storage or\n"
            "the stored table is unusable, 2 bad usage or config.\n");
}

typedef struct load_state {
    bool done;
    int status;
    uint8_t *data;
    size_t len;
    uint64_t etag;
} load_state;

static void on_load(void *ud, int status, const void *data, size_t len, uint64_t etag)
{
    load_state *l = ud;
    l->done = true;
    l->status = status;
    l->etag = etag;
    if (status == 0 && len) {
        l->data = malloc(len);
        if (!l->data) {
            l->status = MP_ENOMEM;
            return;
        }
        memcpy(l->data, data, len);
        l->len = len;
    }
}

static bool closed_flag;
static void on_closed(void *ud)
{
    (void)ud;
    closed_flag = true;
}

int mp_cmd_members(int argc, char **argv)
{
    const char *cluster = NULL;
    bool raw = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return MP_EXIT_OK;
        } else if (strcmp(a, "--cluster") == 0 && i + 1 < argc) {
            cluster = argv[++i];
        } else if (strncmp(a, "--cluster=", 10) == 0) {
            cluster = a + 10;
        } else if (strcmp(a, "--raw") == 0) {
            raw = true;
        } else {
            fprintf(stderr, "moonpool members: unexpected argument '%s'\n\n", a);
            usage(stderr);
            return MP_EXIT_USAGE;
        }
    }
    if (!cluster || !*cluster) {
        fprintf(stderr, "moonpool members: --cluster FILE is required\n\n");
        usage(stderr);
        return MP_EXIT_USAGE;
    }
    mp_config cfg;
    mp_config_error cerr;
    if (mp_config_load(cluster, &cfg, &cerr) < 0) {
        fprintf(stderr, "moonpool members: %s\n", cerr.message);
        return MP_EXIT_USAGE;
    }
    char key[MP_ACTOR_PART_MAX + sizeof MP__MT_KEY_SUFFIX];
    int kl = mp__mtable_key(key, sizeof key, cfg.cluster_namespace);
    if (kl < 0) { /* the config loader validated the namespace already */
        fprintf(stderr, "moonpool members: %s: invalid namespace\n", cluster);
        mp_config_free(&cfg);
        return MP_EXIT_USAGE;
    }
    if (cfg.storage == MP_CONFIG_STORAGE_MEMORY) {
        fprintf(stderr,
                "moonpool members: %s: [storage] provider is memory: each node keeps its own "
                "volatile storage, there is no shared table to read\n",
                cluster);
        mp_config_free(&cfg);
        return MP_EXIT_USAGE;
    }
    if (cfg.storage == MP_CONFIG_STORAGE_SQLITE && access(cfg.storage_path, F_OK) != 0) {
        fprintf(stderr,
                "moonpool members: no SQLite database at '%s' (from %s): no node of this "
                "cluster has started there\n",
                cfg.storage_path, cluster);
        mp_config_free(&cfg);
        return MP_EXIT_FAIL;
    }
    mp_env *env = mp_env_uv_create(NULL, 0);
    if (!env) {
        fprintf(stderr, "moonpool members: out of memory\n");
        mp_config_free(&cfg);
        return MP_EXIT_FAIL;
    }
    env->log_level = MP_LOG_ERROR;
    env->name = "members";
    mp_storage *st = NULL;
    int rc;
    const char *where = cfg.storage == MP_CONFIG_STORAGE_POSTGRES ? "PostgreSQL" : cfg.storage_path;
    if (cfg.storage == MP_CONFIG_STORAGE_POSTGRES)
        rc = mp_storage_postgres_open(env, cfg.storage_conninfo, &st);
    else
        rc = mp_storage_sqlite_open(env, cfg.storage_path, &st);
    if (rc < 0) {
        fprintf(stderr, "moonpool members: cannot open the storage (%s): %s\n", where,
                mp_strerror(rc));
        mp_env_uv_destroy(env);
        mp_config_free(&cfg);
        return MP_EXIT_FAIL;
    }
    load_state l = {0};
    rc = mp_storage_load(st, key, (size_t)kl, on_load, &l);
    if (rc == 0)
        while (!l.done) mp_env_uv_run_once(env, 1);
    else
        l.status = rc;
    closed_flag = false;
    mp_storage_close(st, on_closed, NULL);
    while (!closed_flag) mp_env_uv_run_once(env, 1);
    mp_env_uv_destroy(env);

    int exit_status = MP_EXIT_OK;
    if (l.status != 0) {
        fprintf(stderr, "moonpool members: cannot read %s from %s: %s\n", key, where,
                mp_strerror(l.status));
        exit_status = MP_EXIT_FAIL;
    } else if (l.etag == 0) {
        if (!raw) printf("no membership table under %s in %s: no member has joined yet\n", key, where);
    } else {
        mp__mtable *t = malloc(sizeof *t);
        char why[256] = "";
        rc = t ? mp__mtable_decode(l.data, l.len, t, why, sizeof why) : MP_ENOMEM;
        if (rc != 0) {
            fprintf(stderr, "moonpool members: the table under %s in %s is unusable: %s: %s\n",
                    key, where, mp_strerror(rc), why);
            exit_status = MP_EXIT_FAIL;
        } else {
            if (!raw) printf("%s\n", MP__MROW_HEADER);
            char line[4096];
            unsigned counts[5] = {0};
            for (uint32_t i = 0; i < t->count; i++) {
                if (mp__mrow_format(&t->rows[i], line, sizeof line) >= 0) printf("%s\n", line);
                counts[t->rows[i].status]++;
            }
            if (!raw)
                printf("table version %llu: %u rows (%u active, %u joining, %u shutting_down, "
                       "%u dead)\n",
                       (unsigned long long)t->version, t->count, counts[MP__MEMBER_ACTIVE],
                       counts[MP__MEMBER_JOINING], counts[MP__MEMBER_SHUTTING_DOWN],
                       counts[MP__MEMBER_DEAD]);
        }
        free(t);
    }
    free(l.data);
    mp_config_free(&cfg);
    return exit_status;
}
