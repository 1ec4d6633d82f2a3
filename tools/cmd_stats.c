/*
 * `moonpool stats --node ADDR --cluster FILE`: print one node's counters.
 *
 * The request is a SYSTEM frame over the normal transport, sent by a
 * client-only node, so it needs nothing but the port the node already
 * listens on, and it exercises the same path as every call. The JSON the
 * node sends is printed indented (jansson) for people, or as received with
 * --raw for scripts. --membership prints only the node's view of the
 * membership (the "membership" object, issue 13) as a table; a node that
 * sends no such object (an older version) is reported, not an error.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_client.h"
#include "commands.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: moonpool stats -c FILE -n ADDR|N [--secret-file PATH] [--raw|--membership]\n"
            "\n"
            "Print the counters of the node at ADDR (one of the members of FILE, or the\n"
            "N-th member counting from 1) as JSON:\n"
            "activations, calls in/out, forwards, timeouts, mailbox depths, storage\n"
            "latency, request-id windows, transport limits, ...\n"
            "  -c, --cluster FILE     a cluster config file (docs/config.md)\n"
            "  -n, --node ADDR|N      the member to ask\n"
            "      --secret-file PATH the cluster secret (default: the file's [security])\n"
            "  -r, --raw              the JSON on one line, as the node sent it\n"
            "  -m, --membership       only the node's view of the members: mode, whether\n"
            "                         it serves, its lease, each member it knows (live:\n"
            "                         it may serve; active in the table) and the counters\n"
            "Exit status: 0 success, 1 the node did not answer, 2 bad usage.\n");
}

/* --membership: the "membership" object of the stats JSON as a table. */
static int print_membership(const char *addr, const char *reply, size_t len)
{
    json_error_t jerr;
    json_t *j = json_loadb(reply, len, 0, &jerr);
    if (!j) {
        fprintf(stderr, "moonpool stats: %s sent stats that are not JSON: %s\n", addr, jerr.text);
        return MP_EXIT_FAIL;
    }
    json_t *m = json_object_get(j, "membership");
    const char *mode = json_string_value(json_object_get(m, "mode"));
    if (!json_is_object(m) || !mode) {
        printf("%s: no membership view in its stats (a node older than the membership "
               "table)\n", addr);
    } else if (strcmp(mode, "table") != 0) {
        printf("%s: membership %s (the member list of the config file, fixed)\n", addr, mode);
    } else {
        json_t *serving = json_object_get(m, "serving");
        printf("%s: membership table, %s, lease %" JSON_INTEGER_FORMAT " ms left\n", addr,
               json_is_true(serving) ? "serving" : "NOT serving",
               json_integer_value(json_object_get(m, "lease_left_ms")));
        printf("%-24s %5s  %-4s  %s\n", "ADDRESS", "INC", "LIVE", "ACTIVE");
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(m, "members"), i, e) {
            const char *a = json_string_value(json_object_get(e, "addr"));
            printf("%-24s %5" JSON_INTEGER_FORMAT "  %-4s  %s\n", a ? a : "?",
                   json_integer_value(json_object_get(e, "incarnation")),
                   json_is_true(json_object_get(e, "live")) ? "yes" : "no",
                   json_is_true(json_object_get(e, "active")) ? "yes" : "no");
        }
        /* Every counter the node sends, whatever its version adds. */
        const char *key;
        json_t *v;
        int n = 0;
        json_object_foreach(m, key, v) {
            if (!json_is_integer(v) || strcmp(key, "lease_left_ms") == 0) continue;
            printf("%s%s %" JSON_INTEGER_FORMAT, n++ % 4 ? "  " : "", key,
                   json_integer_value(v));
            if (n % 4 == 0) putchar('\n');
        }
        if (n % 4) putchar('\n');
    }
    json_decref(j);
    return MP_EXIT_OK;
}

int mp_cmd_stats(int argc, char **argv)
{
    const char *cluster = NULL, *addr = NULL, *secret = NULL;
    int raw = 0, membership = 0;
    enum { OPT_SECRET = 256 };
    static const struct option opts[] = {
        {"cluster", required_argument, NULL, 'c'},
        {"node", required_argument, NULL, 'n'},
        {"secret-file", required_argument, NULL, OPT_SECRET},
        {"raw", no_argument, NULL, 'r'},
        {"membership", no_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":c:n:rmh", opts, NULL)) != -1) {
        switch (o) {
        case 'c': cluster = optarg; break;
        case 'n': addr = optarg; break;
        case OPT_SECRET: secret = optarg; break;
        case 'r': raw = 1; break;
        case 'm': membership = 1; break;
        case 'h': usage(stdout); return MP_EXIT_OK;
        case ':':
            fprintf(stderr, "moonpool stats: %s needs a value\n\n", argv[optind - 1]);
            usage(stderr);
            return MP_EXIT_USAGE;
        default:
            fprintf(stderr, "moonpool stats: unknown option '%s'\n\n", argv[optind - 1]);
            usage(stderr);
            return MP_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moonpool stats: unexpected argument '%s'\n\n", argv[optind]);
        usage(stderr);
        return MP_EXIT_USAGE;
    }
    if (raw && membership) {
        fprintf(stderr, "moonpool stats: --raw and --membership exclude each other\n\n");
        usage(stderr);
        return MP_EXIT_USAGE;
    }
    if (!cluster || !addr) {
        fprintf(stderr, "moonpool stats: --cluster FILE and --node ADDR are required\n\n");
        usage(stderr);
        return MP_EXIT_USAGE;
    }
    mp_cc cc;
    char err[300];
    int rc = mp_cc_open(&cc, cluster, secret, MP_LOG_WARN, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "moonpool stats: %s\n", err);
        return rc == MP_EINVAL ? MP_EXIT_USAGE : MP_EXIT_FAIL;
    }
    /* --node N: the N-th member, as `moonpool node --id N`. */
    char *end = NULL;
    unsigned long idx = strtoul(addr, &end, 10);
    if (*addr >= '0' && *addr <= '9' && end && !*end && idx >= 1 && idx <= cc.cfg.member_count)
        addr = cc.cfg.members[idx - 1];
    bool member = false;
    for (size_t i = 0; i < cc.cfg.member_count; i++)
        if (strcmp(cc.cfg.members[i], addr) == 0) member = true;
    if (!member) {
        fprintf(stderr, "moonpool stats: %s is not a member of the cluster in %s\n", addr,
                cluster);
        mp_cc_close(&cc);
        return MP_EXIT_USAGE;
    }
    char *reply = NULL;
    size_t len = 0;
    rc = mp_cc_stats(&cc, addr, &reply, &len);
    int exit_status = MP_EXIT_OK;
    if (rc == 0 && membership) {
        exit_status = print_membership(addr, reply, len);
    } else if (rc == 0) {
        json_t *j = raw ? NULL : json_loadb(reply, len, 0, NULL);
        char *pretty = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (pretty) {
            printf("%s\n", pretty);
        } else {
            fwrite(reply, 1, len, stdout);
            fputc('\n', stdout);
        }
        free(pretty);
        json_decref(j);
    } else {
        /* The runtime's text often repeats mp_strerror: print it once. */
        bool detail = reply && *reply && strcmp(reply, mp_strerror(rc)) != 0;
        fprintf(stderr, "moonpool stats: %s did not answer: %s: %s%s%s\n", addr,
                mp_status_name(rc), mp_strerror(rc), detail ? ": " : "", detail ? reply : "");
        exit_status = MP_EXIT_FAIL;
    }
    free(reply);
    mp_cc_close(&cc);
    return exit_status;
}
