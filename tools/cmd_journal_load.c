/*
 * `moonpool journal-load` (hidden: a test driver, not a user command): the
 * load client of tests/cluster/test_cluster_at_most_once.sh.
 *
 *   moonpool journal-load --cluster FILE --out FILE [--seconds N]
 *                         [--concurrency C] [--keys K] [--timeout MS]
 *     Keeps C calls in flight, each `append` of a unique op id "o<seq>" to
 *     Journal/j<i> (i < K, chosen at random), for N seconds or until SIGINT
 *     or SIGTERM; then starts nothing new, waits for every outstanding call
 *     to end (each is bounded by its timeout) and exits 0. Writes one line
 *     per op to --out: "op_id key STATUS", plus " sync" when mp_call itself
 *     refused the call (it never left: MP_ECLOSED and MP_ENOMEM mean "not
 *     executed" only then; node.h). Never retries: a retry of a call that
 *     may have run is exactly what the test must not hide.
 *   moonpool journal-load --cluster FILE --list [--keys K]
 *     Prints "key op_id" for every entry stored by Journal/j0..j<K-1>, one
 *     line per stored entry (duplicates included). Retries a key whose list
 *     call fails, for up to 30 s in all; exit 1 if one stays unreadable.
 *
 * A client-only node (tools/cluster_client.c) with the runtime's own
 * gateway failover: what it cannot fail over without running a call twice
 * ends as MP_EINDOUBT.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_client.h"
#include "commands.h"
#include "proc.h"
#include "moonpool/actor.h"

#define JL_KEYS_MAX 1000
#define JL_CONC_MAX 1000

typedef struct jl jl;

typedef struct slot {
    jl *l;
    uint64_t seq;
    unsigned key;
    bool busy;
} slot;

struct jl {
    mp_cc cc;
    FILE *out;
    slot *slots;
    unsigned keys, concurrency;
    uint64_t timeout_ns, end_ns, next_seq, inflight, done, ok;
    bool stopping;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: moonpool journal-load --cluster FILE --out FILE [--seconds N]\n"
                 "                             [--concurrency C] [--keys K] [--timeout MS]\n"
                 "       moonpool journal-load --cluster FILE --list [--keys K]\n"
                 "A test driver for tests/cluster/test_cluster_at_most_once.sh (see the\n"
                 "comment of tools/cmd_journal_load.c).\n");
}

static void start(slot *s);

static void record(jl *l, const slot *s, int status, bool sync)
{
    fprintf(l->out, "o%" PRIu64 " j%u %s%s\n", s->seq, s->key, mp_status_name(status),
            sync ? " sync" : "");
    l->done++;
    if (status == 0) l->ok++;
}

static bool keep_going(jl *l)
{
    if (mp_proc_interrupted() || mp_proc_now_ns() >= l->end_ns) l->stopping = true;
    return !l->stopping;
}

static void on_reply(void *ud, int status, const void *data, size_t len)
{
    (void)data;
    (void)len;
    slot *s = ud;
    jl *l = s->l;
    s->busy = false;
    l->inflight--;
    record(l, s, status, false);
    if (keep_going(l)) start(s);
}

static void restart_timer(void *ud)
{
    slot *s = ud;
    if (keep_going(s->l)) start(s);
}

static void start(slot *s)
{
    jl *l = s->l;
    s->seq = l->next_seq++;
    s->key = (unsigned)(rand() % (int)l->keys);
    char key[32], op[32];
    snprintf(key, sizeof key, "j%u", s->key);
    int n = snprintf(op, sizeof op, "o%" PRIu64, s->seq);
    mp_ref ref;
    int rc = mp_ref_get(l->cc.node, "Journal", key, &ref);
    if (rc == 0) {
        mp_call_opts opts = {.timeout_ns = l->timeout_ns};
        rc = mp_call(l->cc.node, &ref, "append", op, (size_t)n, &opts, on_reply, s);
    }
    if (rc == 0) {
        s->busy = true;
        l->inflight++;
        return;
    }
    /* Refused at once: it never left. Record it and try the slot's next op
     * a little later (not in this stack, and not in a tight loop). */
    record(l, s, rc, true);
    if (mp_env_timer_start(l->cc.env, 20000000ull, restart_timer, s) == 0)
        fprintf(stderr, "moonpool journal-load: cannot start a timer\n");
}

static int parse_u(const char *s, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v == 0 || v > max) return -1;
    *out = v;
    return 0;
}

static int list_all(mp_cc *cc, unsigned keys)
{
    uint64_t give_up = mp_proc_now_ns() + 30000000000ull;
    for (unsigned k = 0; k < keys; k++) {
        char key[32];
        snprintf(key, sizeof key, "j%u", k);
        for (;;) {
            char *reply = NULL;
            size_t len = 0;
            int rc = mp_cc_call(cc, "Journal", key, "list", "{}", 2, 5000000000ull, &reply, &len);
            json_t *v = rc == 0 ? json_loadb(reply, len, 0, NULL) : NULL;
            json_t *ops = v ? json_object_get(v, "ops") : NULL;
            if (json_is_array(ops)) {
                size_t i;
                json_t *e;
                json_array_foreach(ops, i, e) printf("%s %s\n", key, json_string_value(e));
                json_decref(v);
                free(reply);
                break;
            }
            fprintf(stderr, "moonpool journal-load: list Journal/%s: %s%s%s\n", key,
                    rc ? mp_status_name(rc) : "bad reply", reply ? ": " : "", reply ? reply : "");
            json_decref(v);
            free(reply);
            if (mp_proc_now_ns() >= give_up) return MP_EXIT_FAIL;
            mp_proc_sleep_ms(200);
        }
    }
    return MP_EXIT_OK;
}

int mp_cmd_journal_load(int argc, char **argv)
{
    const char *cluster = NULL, *out = NULL;
    unsigned long seconds = 20, conc = 16, keys = 20, timeout_ms = 3000;
    bool list = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        int bad = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return MP_EXIT_OK;
        } else if (strcmp(a, "--cluster") == 0 && more) {
            cluster = argv[++i];
        } else if (strcmp(a, "--out") == 0 && more) {
            out = argv[++i];
        } else if (strcmp(a, "--list") == 0) {
            list = true;
        } else if (strcmp(a, "--seconds") == 0 && more) {
            bad = parse_u(argv[++i], 3600, &seconds);
        } else if (strcmp(a, "--concurrency") == 0 && more) {
            bad = parse_u(argv[++i], JL_CONC_MAX, &conc);
        } else if (strcmp(a, "--keys") == 0 && more) {
            bad = parse_u(argv[++i], JL_KEYS_MAX, &keys);
        } else if (strcmp(a, "--timeout") == 0 && more) {
            bad = parse_u(argv[++i], 86400000, &timeout_ms);
        } else {
            bad = -1;
        }
        if (bad) {
            fprintf(stderr, "moonpool journal-load: bad argument '%s'\n\n", a);
            usage(stderr);
            return MP_EXIT_USAGE;
        }
    }
    if (!cluster || (!list && !out)) {
        usage(stderr);
        return MP_EXIT_USAGE;
    }
    static jl l; /* zeroed */
    char err[300];
    int rc = mp_cc_open(&l.cc, cluster, NULL, MP_LOG_WARN, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "moonpool journal-load: %s\n", err);
        return rc == MP_EINVAL ? MP_EXIT_USAGE : MP_EXIT_FAIL;
    }
    if (list) {
        int st = list_all(&l.cc, (unsigned)keys);
        mp_cc_close(&l.cc);
        return st;
    }
    l.out = fopen(out, "w");
    l.slots = calloc(conc, sizeof *l.slots);
    if (!l.out || !l.slots) {
        fprintf(stderr, "moonpool journal-load: cannot open %s\n", out);
        if (l.out) fclose(l.out);
        free(l.slots);
        mp_cc_close(&l.cc);
        return MP_EXIT_FAIL;
    }
    setvbuf(l.out, NULL, _IOLBF, 0); /* the test watches it grow */
    mp_proc_catch_signals();
    srand((unsigned)mp_proc_now_ns());
    l.keys = (unsigned)keys;
    l.concurrency = (unsigned)conc;
    l.timeout_ns = (uint64_t)timeout_ms * 1000000ull;
    l.end_ns = mp_proc_now_ns() + (uint64_t)seconds * 1000000000ull;
    printf("journal-load: started, %lu calls in flight over %lu keys\n", conc, keys);
    fflush(stdout);
    for (unsigned i = 0; i < l.concurrency; i++) {
        l.slots[i].l = &l;
        start(&l.slots[i]);
    }
    /* Run until told to stop and every call ended; a slot whose restart
     * timer is pending starts nothing once stopping. */
    while (keep_going(&l) || l.inflight > 0) mp_cc_run_once(&l.cc, 1);
    fclose(l.out);
    printf("journal-load: stopped, %" PRIu64 " ops, %" PRIu64 " ok\n", l.done, l.ok);
    mp_cc_close(&l.cc);
    free(l.slots);
    return MP_EXIT_OK;
}
