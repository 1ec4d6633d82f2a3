/*
 * `moonpool call --cluster FILE TYPE/KEY METHOD [JSON]`: call one actor
 * method from the shell and print the reply.
 *
 * The payload is checked to be JSON before anything is sent: a typo in a
 * shell quote should be a usage error (exit 2) here, not an MP_EINVAL from
 * some actor on some node. The reply is printed as the actor sent it (the
 * example types reply JSON objects) followed by a newline, so the output
 * pipes straight into jq. Errors print "moonpool call: MP_NAME: message" on
 * stderr with exit status 1.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_client.h"
#include "commands.h"
#include "moonpool/actor.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: moonpool call --cluster FILE [--secret-file PATH] [--timeout MS] [--key KEY] [-v]\n"
            "                     TYPE/KEY METHOD\n"
            "                     [JSON]\n"
            "\n"
            "Call METHOD on the actor TYPE/KEY of the cluster described by FILE (its\n"
            "[cluster] namespace and members) and print the reply. JSON defaults to {}.\n"
            "  --cluster FILE  a cluster config file (docs/config.md)\n"
            "  --secret-file PATH  the cluster secret (default: the file's [security]\n"
            "                  secret_file; docs/security.md)\n"
            "  --timeout MS    call timeout in milliseconds (default: the file's\n"
            "                  [timeouts] call, 30 s)\n"
            "  --key KEY       idempotency key: a call that failed \"may have executed\"\n"
            "                  can be retried with the same KEY and runs at most once\n"
            "                  (1..64 characters of [!-~])\n"
            "  -v              log the client's own connection events on stderr\n"
            "Example:\n"
            "  moonpool call --cluster cluster.conf BankAccount/alice deposit "
            "'{\"op\":\"a1\",\"amount\":50}'\n"
            "A failure says whether the call ran: \"not executed\" (safe to retry), \"may\n"
            "have executed\" (retry only with --key) or \"executed\" (the actor's error).\n"
            "Exit status: 0 success, 1 the call failed (message on stderr), 2 bad usage.\n");
}

static int parse_ms(const char *s, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || v == 0 || v > 86400000ull) return -1;
    *out = (uint64_t)v * 1000000ull;
    return 0;
}

int mp_cmd_call(int argc, char **argv)
{
    const char *cluster = NULL, *secret = NULL;
    const char *pos[3] = {NULL, NULL, NULL};
    int npos = 0;
    uint64_t timeout_ns = 0;
    const char *key_opt = NULL;
    mp_log_level lvl = MP_LOG_ERROR;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return MP_EXIT_OK;
        } else if (strcmp(a, "--cluster") == 0 && i + 1 < argc) {
            cluster = argv[++i];
        } else if (strncmp(a, "--cluster=", 10) == 0) {
            cluster = a + 10;
        } else if (strcmp(a, "--secret-file") == 0 && i + 1 < argc) {
            secret = argv[++i];
        } else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
            if (parse_ms(argv[++i], &timeout_ns) < 0) {
                fprintf(stderr, "moonpool call: --timeout wants milliseconds (1..86400000)\n");
                return MP_EXIT_USAGE;
            }
        } else if (strcmp(a, "--key") == 0 && i + 1 < argc) {
            key_opt = argv[++i];
        } else if (strcmp(a, "-v") == 0) {
            lvl = MP_LOG_INFO;
        } else if (a[0] == '-' && a[1] == '-' && npos == 0) {
            fprintf(stderr, "moonpool call: unknown option '%s'\n\n", a);
            usage(stderr);
            return MP_EXIT_USAGE;
        } else if (npos < 3) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "moonpool call: too many arguments\n\n");
            usage(stderr);
            return MP_EXIT_USAGE;
        }
    }
    if (!cluster || npos < 2) {
        fprintf(stderr, "moonpool call: --cluster FILE, TYPE/KEY and METHOD are required\n\n");
        usage(stderr);
        return MP_EXIT_USAGE;
    }
    char type[MP_ACTOR_PART_MAX + 1];
    const char *key = NULL;
    if (mp_cc_split_target(pos[0], type, sizeof type, &key) < 0) {
        fprintf(stderr, "moonpool call: '%s' is not TYPE/KEY\n", pos[0]);
        return MP_EXIT_USAGE;
    }
    const char *payload = pos[2] ? pos[2] : "{}";
    json_error_t jerr;
    json_t *j = json_loads(payload, JSON_DECODE_ANY, &jerr);
    if (!j) {
        fprintf(stderr, "moonpool call: the payload is not JSON: %s (column %d)\n", jerr.text,
                jerr.column);
        return MP_EXIT_USAGE;
    }
    json_decref(j);

    mp_cc cc;
    char err[300];
    int rc = mp_cc_open(&cc, cluster, secret, lvl, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "moonpool call: %s\n", err);
        return rc == MP_EINVAL ? MP_EXIT_USAGE : MP_EXIT_FAIL;
    }
    /* The ref is validated by the runtime (type characters, key length). */
    mp_ref probe;
    if (mp_ref_get(cc.node, type, key, &probe) < 0) {
        fprintf(stderr, "moonpool call: '%s' is not a valid actor TYPE/KEY\n", pos[0]);
        mp_cc_close(&cc);
        return MP_EXIT_USAGE;
    }
    char *reply = NULL;
    size_t len = 0;
    cc.idempotency_key = key_opt;
    rc = mp_cc_call(&cc, type, key, pos[1], payload, strlen(payload), timeout_ns, &reply, &len);
    int exit_status = MP_EXIT_OK;
    if (rc == 0) {
        fwrite(reply, 1, len, stdout);
        fputc('\n', stdout);
    } else {
        /* The runtime's text often repeats mp_strerror: print it once. */
        bool detail = reply && *reply && strcmp(reply, mp_strerror(rc)) != 0;
        fprintf(stderr, "moonpool call: %s/%s %s failed (%s): %s: %s%s%s\n", type, key, pos[1],
                mp_call_class_name(mp_call_status_class(rc, cc.at_once)), mp_status_name(rc),
                mp_strerror(rc), detail ? ": " : "", detail ? reply : "");
        exit_status = MP_EXIT_FAIL;
    }
    free(reply);
    mp_cc_close(&cc);
    return exit_status;
}
