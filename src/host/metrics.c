/*
 * The node's operations endpoint: GET /metrics (Prometheus text format
 * 0.0.4), GET /healthz (liveness) and GET /readyz (readiness), over
 * minimal HTTP/1.0 on the node's own env and loop.
 *
 * Why on the node's loop and through the env: the counters live on that
 * loop (mp_node_get_stats is not thread-safe), so answering there needs no
 * lock and no thread, and a loop too stuck to answer a scrape is exactly
 * what a liveness probe must notice. Why hand-written HTTP/1.0: a scraper
 * and a probe send one small GET and read until close; a full HTTP server
 * would be far more code, and more surface, than the three answers need.
 *
 * Everything an outsider can fill is bounded: a request head is at most
 * MP__METRICS_MAX_REQUEST bytes (431 beyond), the whole exchange at most
 * MP__METRICS_TIMEOUT_NS (then the connection is closed), and at most
 * MP__METRICS_MAX_CONNS exchanges are open (a further connection is closed
 * at once). One request per connection; the answer carries Content-Length
 * and "Connection: close", and the server closes after writing it.
 */
#include "host/metrics.h"

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/version.h"

typedef struct mconn {
    mp__metrics *m;
    mp_stream *s;
    mp_timer_id timer;
    size_t len;
    bool answered, closing;
    bool draining; /* answered early (431): discard the rest until EOF */
    char *resp; /* the answer, malloc'd; freed on close */
    char req[MP__METRICS_MAX_REQUEST];
} mconn;

struct mp__metrics {
    mp_env *env;
    mp_listener *l;
    mp_node *node;
    const char *address, *ns;
    uint32_t incarnation;
    uint64_t start_ns;
    mp__ready ready;
    mconn *conns[MP__METRICS_MAX_CONNS];
    int open; /* listener + streams not yet closed */
    bool closing;
    mp_close_cb close_cb;
    void *close_ud;
};

/* ---- rendering ------------------------------------------------------------ */

typedef struct mbuf {
    char *p;
    size_t n, cap;
} mbuf;

static void put(mbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(mbuf *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->n < o->cap ? o->cap - o->n : 0;
    int k = vsnprintf(room ? o->p + o->n : NULL, room, fmt, ap);
    va_end(ap);
    if (k > 0) o->n += (size_t)k;
}

static void metric(mbuf *o, const char *name, const char *type, const char *help, uint64_t v)
{
    put(o, "# HELP moonpool_%s %s\n# TYPE moonpool_%s %s\nmoonpool_%s %llu\n", name, help, name,
        type, name, (unsigned long long)v);
}

/* A label value: backslash, quote and newline escaped (the format's rule);
 * other bytes outside printable ASCII replaced by '?'. */
static void put_label(mbuf *o, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\\' || c == '"') put(o, "\\%c", c);
        else if (c == '\n') put(o, "\\n");
        else if (c < 0x20 || c >= 0x7f) put(o, "?");
        else put(o, "%c", c);
    }
}

/* A histogram in seconds: cumulative buckets at the node's fixed bounds,
 * then +Inf, _sum and _count (the format's histogram type). */
static void histogram(mbuf *o, const char *name, const char *help, const mp_node_latency *h)
{
    put(o, "# HELP moonpool_%s %s\n# TYPE moonpool_%s histogram\n", name, help, name);
    for (size_t i = 0; i < MP_NODE_LATENCY_BOUNDS; i++)
        put(o, "moonpool_%s_bucket{le=\"%g\"} %llu\n", name,
            (double)mp_node_latency_bound_ns(i) / (double)MP_NS_PER_SEC,
            (unsigned long long)h->le[i]);
    put(o, "moonpool_%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
    put(o, "moonpool_%s_sum %.9f\n", name, (double)h->sum_ns / (double)MP_NS_PER_SEC);
    put(o, "moonpool_%s_count %llu\n", name, (unsigned long long)h->count);
}

/* One gauge per member, labelled by address. */
static void member_gauge(mbuf *o, const char *name, const char *help,
                         const mp__metrics_view *v, bool live)
{
    put(o, "# HELP moonpool_%s %s\n# TYPE moonpool_%s gauge\n", name, help, name);
    for (size_t i = 0; i < v->member_count; i++) {
        put(o, "moonpool_%s{address=\"", name);
        put_label(o, v->members[i].addr);
        put(o, "\",incarnation=\"%lu\"} %d\n", (unsigned long)v->members[i].incarnation,
            live ? v->members[i].live : v->members[i].active);
    }
}

size_t mp__metrics_render(char *buf, size_t cap, const mp__metrics_view *v)
{
    assert(v && v->stats);
    mbuf o = {buf, 0, cap};
    if (cap) buf[0] = '\0';
    const mp_node_stats *s = v->stats;
    put(&o, "# HELP moonpool_node_info The node's identity (value always 1).\n"
            "# TYPE moonpool_node_info gauge\nmoonpool_node_info{address=\"");
    put_label(&o, v->address);
    put(&o, "\",namespace=\"");
    put_label(&o, v->cluster_namespace);
    put(&o, "\",incarnation=\"%lu\"} 1\n", (unsigned long)v->incarnation);
    put(&o, "# HELP moonpool_uptime_seconds Seconds since the node started serving.\n"
            "# TYPE moonpool_uptime_seconds gauge\nmoonpool_uptime_seconds %.3f\n",
        (double)v->uptime_ns / (double)MP_NS_PER_SEC);
    put(&o, "# HELP moonpool_build_info The library version (value always 1).\n"
            "# TYPE moonpool_build_info gauge\nmoonpool_build_info{version=\"");
    put_label(&o, mp_version());
    put(&o, "\"} 1\n");
    metric(&o, "ready", "gauge", "1 while the node serves, 0 while starting or stopping.",
           v->ready == MP__READY_SERVING);
    metric(&o, "activations", "gauge", "Live activations.", s->activations);
    metric(&o, "activations_total", "counter", "Activations ever created.", s->activations_total);
    metric(&o, "deactivations_total", "counter", "Activations ended.", s->deactivations_total);
    metric(&o, "calls_out_total", "counter", "Calls sent by this node.", s->calls_out);
    metric(&o, "calls_in_total", "counter", "Calls received by this node.", s->calls_in);
    put(&o, "# HELP moonpool_calls_completed_total Calls this node made that completed, by "
            "outcome (failures: what the error says about the call's execution).\n"
            "# TYPE moonpool_calls_completed_total counter\n");
    static const char *const outcome[] = {"ok", "failed_executed", "not_executed",
                                          "may_have_executed"};
    const uint64_t by[] = {s->calls_ok, s->calls_failed_executed, s->calls_not_executed,
                           s->calls_may_have_run};
    for (size_t i = 0; i < 4; i++)
        put(&o, "moonpool_calls_completed_total{outcome=\"%s\"} %llu\n", outcome[i],
            (unsigned long long)by[i]);
    metric(&o, "replies_late_total", "counter", "Replies that came after their call ended.",
           s->replies_late);
    metric(&o, "call_timeouts_total", "counter", "Calls that timed out.", s->timeouts);
    metric(&o, "forwards_total", "counter", "Messages forwarded to another node.", s->forwards);
    metric(&o, "cache_updates_total", "counter", "Placement cache updates.", s->cache_updates);
    metric(&o, "errors_sent_total", "counter", "Error replies sent.", s->errors_sent);
    metric(&o, "mailbox_depth", "gauge", "Queued messages across activations.",
           s->mailbox_depth_total);
    metric(&o, "mailbox_depth_max", "gauge", "Deepest mailbox now.", s->mailbox_depth_max);
    metric(&o, "pending_calls", "gauge", "Calls awaiting a reply.", s->pending_calls);
    metric(&o, "directory_lookups_total", "counter", "Directory lookups started.", s->dir_lookups);
    metric(&o, "placements_total", "counter", "New activations placed by this node.",
           s->placements);
    metric(&o, "state_loads_total", "counter", "Persisted states loaded.", s->state_loads);
    metric(&o, "state_load_errors_total", "counter", "State loads that failed.",
           s->state_load_errors);
    metric(&o, "persists_total", "counter", "State persist completions.", s->persists);
    metric(&o, "persist_errors_total", "counter", "State persists that failed.",
           s->persist_errors);
    metric(&o, "activation_failures_total", "counter", "Load or on_activate failures.",
           s->activation_failures);
    metric(&o, "mailbox_rejected_total", "counter", "Calls refused by a full mailbox.",
           s->mailbox_rejected);
    if (v->call_latency)
        histogram(&o, "call_latency_seconds",
                  "Calls made on this node, from the call to its reply, error or timeout "
                  "(one call in 8 sampled).",
                  v->call_latency);
    if (v->persist_latency)
        histogram(&o, "persist_latency_seconds", "State persists, from the request to its end.",
                  v->persist_latency);
    if (v->member_count) {
        metric(&o, "serving", "gauge",
               "1 while the node may run turns (membership lease valid, not declared dead).",
               v->serving);
        member_gauge(&o, "member_live", "1 while the member may be serving (owns partitions).",
                     v, true);
        member_gauge(&o, "member_active", "1 while the member is active (gets new activations).",
                     v, false);
        put(&o, "# HELP moonpool_peer_connected 1 while a connection to the member is open.\n"
                "# TYPE moonpool_peer_connected gauge\n");
        for (size_t i = 0; i < v->member_count; i++) {
            if (strcmp(v->members[i].addr, v->address) == 0) continue; /* itself */
            put(&o, "moonpool_peer_connected{address=\"");
            put_label(&o, v->members[i].addr);
            put(&o, "\"} %d\n", v->members[i].connected);
        }
    }
    return o.n;
}

/* ---- connections ------------------------------------------------------------ */

static void maybe_done(mp__metrics *m)
{
    if (!m->closing || m->open > 0) return;
    mp_close_cb cb = m->close_cb;
    void *ud = m->close_ud;
    free(m);
    if (cb) cb(ud);
}

static void conn_closed(void *ud)
{
    mconn *c = ud;
    mp__metrics *m = c->m;
    for (int i = 0; i < MP__METRICS_MAX_CONNS; i++)
        if (m->conns[i] == c) m->conns[i] = NULL;
    free(c->resp);
    free(c);
    assert(m->open > 0);
    m->open--;
    maybe_done(m);
}

static void conn_close(mconn *c)
{
    if (c->closing) return;
    c->closing = true;
    if (c->timer) {
        mp_env_timer_cancel(c->m->env, c->timer);
        c->timer = 0;
    }
    mp_stream_close(c->s, conn_closed, c);
}

static void on_timeout(void *ud)
{
    mconn *c = ud;
    c->timer = 0;
    conn_close(c);
}

static void on_written(void *ud, int status)
{
    mconn *c = ud;
    /* A connection answered before its request was whole stays open,
     * discarding, until the client's EOF or the exchange's timeout:
     * closing with bytes still arriving would reset the connection, and
     * the client could lose the answer. */
    if (status == 0 && c->draining) return;
    conn_close(c);
}

static void answer(mconn *c, int code, const char *reason, const char *ctype, const char *body,
                   size_t blen)
{
    c->answered = true;
    if (!c->draining) mp_stream_read_stop(c->s);
    char head[256];
    int h = snprintf(head, sizeof head,
                     "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     code, reason, ctype, blen);
    assert(h > 0 && (size_t)h < sizeof head);
    c->resp = malloc((size_t)h + blen);
    if (!c->resp) {
        conn_close(c);
        return;
    }
    memcpy(c->resp, head, (size_t)h);
    memcpy(c->resp + h, body, blen);
    mp_iovec iov = {c->resp, (size_t)h + blen};
    if (mp_stream_write(c->s, &iov, 1, on_written, c) != 0) conn_close(c);
}

static void answer_text(mconn *c, int code, const char *reason, const char *body)
{
    answer(c, code, reason, "text/plain; charset=utf-8", body, strlen(body));
}

static void serve_metrics(mconn *c)
{
    mp__metrics *m = c->m;
    mp_node_stats st;
    mp_node_get_stats(m->node, &st);
    mp_node_latency call, persist;
    mp_node_get_latency(m->node, &call, &persist);
    size_t nm = mp_node_member_info_at(m->node, 0, NULL);
    mp_node_member_info *mem = nm ? calloc(nm, sizeof *mem) : NULL;
    for (size_t i = 0; mem && i < nm; i++) mp_node_member_info_at(m->node, i, &mem[i]);
    mp__metrics_view v = {&st, m->address, m->ns, m->incarnation,
                          mp_env_now(m->env) - m->start_ns, m->ready, &call, &persist,
                          mem, mem ? nm : 0, mp_node_serving(m->node)};
    size_t need = mp__metrics_render(NULL, 0, &v) + 1;
    char *body = malloc(need);
    if (!body) {
        answer_text(c, 500, "Internal Server Error", "out of memory\n");
        return;
    }
    size_t n = mp__metrics_render(body, need, &v);
    free(mem);
    assert(n < need);
    answer(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, n);
    free(body);
}

/* The request head is whole: route on its first line. */
static void handle(mconn *c)
{
    mp__metrics *m = c->m;
    char *eol = memchr(c->req, '\n', c->len);
    assert(eol);
    size_t n = (size_t)(eol - c->req);
    if (n && c->req[n - 1] == '\r') n--;
    char line[256];
    if (n >= sizeof line) {
        answer_text(c, 414, "URI Too Long", "request line too long\n");
        return;
    }
    memcpy(line, c->req, n);
    line[n] = '\0';
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        answer_text(c, 400, "Bad Request", "expected 'GET /path HTTP/1.x'\n");
        return;
    }
    *sp1 = *sp2 = '\0';
    const char *path = sp1 + 1;
    if (strcmp(line, "GET") != 0) {
        answer_text(c, 405, "Method Not Allowed", "only GET\n");
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        serve_metrics(c);
    } else if (strcmp(path, "/healthz") == 0) {
        answer_text(c, 200, "OK", "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        if (m->ready == MP__READY_SERVING)
            answer_text(c, 200, "OK", "ready\n");
        else
            answer_text(c, 503, "Service Unavailable",
                        m->ready == MP__READY_STARTING ? "starting\n" : "stopping\n");
    } else {
        answer_text(c, 404, "Not Found", "not found (try /metrics, /healthz, /readyz)\n");
    }
}

static bool head_complete(const mconn *c)
{
    for (size_t i = 0; i + 1 < c->len; i++) {
        if (c->req[i] == '\n' && c->req[i + 1] == '\n') return true;
        if (i + 3 < c->len && memcmp(c->req + i, "\r\n\r\n", 4) == 0) return true;
    }
    return false;
}

static void on_read(void *ud, mp_stream *s, const uint8_t *data, size_t len, int status)
{
    (void)s;
    mconn *c = ud;
    if (c->closing) return;
    if (status != 0) {
        conn_close(c);
        return;
    }
    if (c->answered) return; /* draining */
    size_t room = sizeof c->req - c->len;
    size_t take = len < room ? len : room;
    memcpy(c->req + c->len, data, take);
    c->len += take;
    if (head_complete(c)) {
        handle(c);
    } else if (take < len || c->len == sizeof c->req) {
        c->draining = true;
        answer_text(c, 431, "Request Header Fields Too Large", "request too large\n");
    }
}

static void on_accept(void *ud, mp_stream *s, int status)
{
    mp__metrics *m = ud;
    if (status != 0) return;
    int slot = -1;
    for (int i = 0; i < MP__METRICS_MAX_CONNS && slot < 0; i++)
        if (!m->conns[i]) slot = i;
    mconn *c = (slot >= 0 && !m->closing) ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        /* over the cap (or closing, or out of memory): refuse by closing */
        mp_stream_close(s, NULL, NULL);
        return;
    }
    c->m = m;
    c->s = s;
    m->conns[slot] = c;
    m->open++;
    c->timer = mp_env_timer_start(m->env, MP__METRICS_TIMEOUT_NS, on_timeout, c);
    if (!c->timer || mp_stream_read_start(s, on_read, c) != 0) conn_close(c);
}

/* ---- lifecycle ----------------------------------------------------------------- */

int mp__metrics_open(mp_env *env, const char *addr, mp_node *node, const char *address,
                     const char *cluster_namespace, uint32_t incarnation, mp__metrics **out)
{
    assert(env && addr && node && out);
    *out = NULL;
    mp__metrics *m = calloc(1, sizeof *m);
    if (!m) return MP_ENOMEM;
    m->env = env;
    m->node = node;
    m->address = address;
    m->ns = cluster_namespace;
    m->incarnation = incarnation;
    m->start_ns = mp_env_now(env);
    m->ready = MP__READY_STARTING;
    int rc = mp_env_listen(env, addr, on_accept, m, &m->l);
    if (rc != 0) {
        free(m);
        return rc;
    }
    m->open = 1;
    *out = m;
    return 0;
}

int mp__metrics_port(mp__metrics *m) { return mp_listener_port(m->l); }

void mp__metrics_set_ready(mp__metrics *m, mp__ready r)
{
    if (r == MP__READY_SERVING && m->ready != MP__READY_SERVING) m->start_ns = mp_env_now(m->env);
    m->ready = r;
}

static void listener_closed(void *ud)
{
    mp__metrics *m = ud;
    assert(m->open > 0);
    m->open--;
    maybe_done(m);
}

void mp__metrics_close(mp__metrics *m, mp_close_cb cb, void *ud)
{
    assert(!m->closing);
    m->closing = true;
    m->close_cb = cb;
    m->close_ud = ud;
    for (int i = 0; i < MP__METRICS_MAX_CONNS; i++)
        if (m->conns[i]) conn_close(m->conns[i]);
    mp_listener_close(m->l, listener_closed, m);
}
