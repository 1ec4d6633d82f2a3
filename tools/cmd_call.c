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
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_client.h"
#include "commands.h"
#include "moonpool/actor.h"
#include "moonpool/config.h"
#include "moonpool/limits.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: moonpool call -c FILE [--secret-file PATH] [-t DURATION] [-k KEY]\n"
            "                     [-f FILE|-] [-v] TYPE/KEY METHOD [JSON]\n"
            "\n"
            "Call METHOD on the actor TYPE/KEY of the cluster described by FILE (its\n"
            "[cluster] namespace and members) and print the reply. JSON defaults to {}.\n"
            "  -c, --cluster FILE   a cluster config file (docs/config.md)\n"
            "      --secret-file PATH  the cluster secret (default: the file's\n"
            "                       [security] secret_file; docs/security.md)\n"
            "  -t, --timeout DURATION  call timeout with a unit as in config files\n"
            "                       (250ms, 2s, 1m; a bare number is milliseconds;\n"
            "                       default: the file's [timeouts] call, 30 s)\n"
            "  -k, --key KEY        idempotency key: a call that failed \"may have\n"
            "                       executed\" can be retried with the same KEY and runs\n"
            "                       at most once (1..64 characters of [!-~])\n"
            "  -f, --payload-file FILE  read the JSON payload from FILE ('-': stdin)\n"
            "                       instead of the command line (at most 64 MiB; the\n"
            "                       nodes refuse more than [limits] max_message)\n"
            "  -v, --verbose        log the client's own connection events on stderr\n"
            "Example:\n"
            "  moonpool call -c cluster.conf BankAccount/alice deposit "
            "'{\"op\":\"a1\",\"amount\":50}'\n"
            "A failure says whether the call ran: \"not executed\" (safe to retry), \"may\n"
            "have executed\" (retry only with --key) or \"executed\" (the actor's error).\n"
            "Exit status: 0 success, 1 the call failed (message on stderr), 2 bad usage.\n");
}

#define TIMEOUT_MAX_NS (24ull * 3600ull * 1000000000ull)
#define PAYLOAD_FILE_MAX (64u * 1024u * 1024u) /* the node refuses what is over its max_message */

/* A duration with a unit, or a bare number of milliseconds (what --timeout
 * took before units). */
static int parse_timeout(const char *s, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t ns;
    if (*s >= '0' && *s <= '9' && end && *end == '\0') {
        if (v > TIMEOUT_MAX_NS / 1000000ull) return -1;
        ns = (uint64_t)v * 1000000ull;
    } else if (mp_config_parse_duration(s, &ns) != 0) {
        return -1;
    }
    if (ns < 1000000ull || ns > TIMEOUT_MAX_NS) return -1;
    *out = ns;
    return 0;
}

/* The whole of FILE ('-': stdin), NUL-terminated, at most cap bytes. */
static char *read_payload(const char *path, size_t cap, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return NULL;
    size_t n = 0, have = 4096;
    char *buf = malloc(have + 1);
    while (buf) {
        if (n == have) {
            if (have > cap) break;
            char *g = realloc(buf, have * 2 + 1);
            if (!g) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = g;
            have *= 2;
        }
        size_t r = fread(buf + n, 1, have - n, f);
        n += r;
        if (r == 0) break;
    }
    bool bad = !buf || ferror(f) || n > cap;
    if (f != stdin) fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int mp_cmd_call(int argc, char **argv)
{
    const char *cluster = NULL, *secret = NULL, *payload_file = NULL;
    uint64_t timeout_ns = 0;
    const char *key_opt = NULL;
    mp_log_level lvl = MP_LOG_ERROR;
    enum { OPT_SECRET = 256 };
    static const struct option opts[] = {
        {"cluster", required_argument, NULL, 'c'},
        {"secret-file", required_argument, NULL, OPT_SECRET},
        {"timeout", required_argument, NULL, 't'},
        {"key", required_argument, NULL, 'k'},
        {"payload-file", required_argument, NULL, 'f'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int o;
    /* "+": options end at the first operand, so a JSON payload that starts
     * with '-' (a negative number) is not taken for one. */
    while ((o = getopt_long(argc, argv, "+:c:t:k:f:vh", opts, NULL)) != -1) {
        switch (o) {
        case 'c': cluster = optarg; break;
        case OPT_SECRET: secret = optarg; break;
        case 't':
            if (parse_timeout(optarg, &timeout_ns) < 0) {
                fprintf(stderr, "moonpool call: --timeout '%s': want a duration from 1ms to 24h "
                                "(250ms, 2s, 1m; a bare number is milliseconds)\n", optarg);
                return MP_EXIT_USAGE;
            }
            break;
        case 'k': key_opt = optarg; break;
        case 'f': payload_file = optarg; break;
        case 'v': lvl = MP_LOG_INFO; break;
        case 'h': usage(stdout); return MP_EXIT_OK;
        case ':':
            fprintf(stderr, "moonpool call: %s needs a value\n\n", argv[optind - 1]);
            usage(stderr);
            return MP_EXIT_USAGE;
        default:
            fprintf(stderr, "moonpool call: unknown option '%s'\n\n", argv[optind - 1]);
            usage(stderr);
            return MP_EXIT_USAGE;
        }
    }
    int npos = argc - optind;
    const char *const *pos = (const char *const *)argv + optind;
    if (!cluster || npos < 2) {
        fprintf(stderr, "moonpool call: --cluster FILE, TYPE/KEY and METHOD are required\n\n");
        usage(stderr);
        return MP_EXIT_USAGE;
    }
    if (npos > 3 || (npos == 3 && payload_file)) {
        fprintf(stderr, "moonpool call: %s\n\n",
                npos > 3 ? "too many arguments (quote the JSON payload)"
                         : "a JSON argument and --payload-file: give one");
        usage(stderr);
        return MP_EXIT_USAGE;
    }
    char type[MP_ACTOR_PART_MAX + 1];
    const char *key = NULL;
    if (mp_cc_split_target(pos[0], type, sizeof type, &key) < 0) {
        fprintf(stderr, "moonpool call: '%s' is not TYPE/KEY\n", pos[0]);
        return MP_EXIT_USAGE;
    }
    char *from_file = NULL;
    size_t from_len = 0;
    if (payload_file) {
        from_file = read_payload(payload_file, PAYLOAD_FILE_MAX, &from_len);
        if (!from_file) {
            fprintf(stderr, "moonpool call: cannot read the payload from %s (missing, unreadable "
                            "or over %u bytes)\n", payload_file, (unsigned)PAYLOAD_FILE_MAX);
            return MP_EXIT_USAGE;
        }
    }
    const char *payload = from_file ? from_file : npos == 3 ? pos[2] : "{}";
    json_error_t jerr;
    json_t *j = json_loads(payload, JSON_DECODE_ANY, &jerr);
    if (!j) {
        fprintf(stderr, "moonpool call: the payload is not JSON: %s (line %d, column %d)\n",
                jerr.text, jerr.line, jerr.column);
        free(from_file);
        return MP_EXIT_USAGE;
    }
    json_decref(j);

    mp_cc cc;
    char err[300];
    int rc = mp_cc_open(&cc, cluster, secret, lvl, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "moonpool call: %s\n", err);
        free(from_file);
        return rc == MP_EINVAL ? MP_EXIT_USAGE : MP_EXIT_FAIL;
    }
    /* The ref is validated by the runtime (type characters, key length). */
    mp_ref probe;
    if (mp_ref_get(cc.node, type, key, &probe) < 0) {
        fprintf(stderr, "moonpool call: '%s' is not a valid actor TYPE/KEY\n", pos[0]);
        mp_cc_close(&cc);
        free(from_file);
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
    free(from_file);
    mp_cc_close(&cc);
    return exit_status;
}
