/*
 * The simulated network: connections with TCP semantics, latency, partitions,
 * clogs and resets.
 *
 * A connection is two streams and two directions. A write copies its bytes
 * into a chunk queued on the writer's direction with a delivery time of
 * max(now + latency, previous chunk's time), so one direction stays ordered
 * whatever latencies are drawn. The receiving stream has at most one pending
 * delivery event; when it fires it hands the reader a random-sized piece of
 * the bytes that are due (a piece may end inside a chunk or merge several
 * chunks), so decoders above see every kind of split. Pieces are copied into
 * a world scratch buffer before the callback: the callback may close the
 * stream (freeing its chunks) while still holding `data`.
 *
 * Choices where TCP leaves room (documented because tests rely on them):
 *  - Partitions and clogs hold bytes in flight; when they heal the held bytes
 *    are delivered (no reset). Errors (resets) and EOF are not held back by a
 *    partition: they model the local stack giving up, not a packet.
 *  - A connect into a partition fails with MP_ETIMEDOUT after a connect
 *    timeout; a connect nobody listens to, or hit by connect_fail_p, fails
 *    with MP_ECONNREFUSED one latency after the attempt.
 *  - A reset drops every undelivered byte in both directions; each open end
 *    gets MP_ECONNRESET on its reader (after a latency) and writes answer
 *    MP_ECONNRESET at once.
 *  - Closing an end sends EOF to the peer after the bytes already queued;
 *    bytes queued towards the closed end are dropped. Bytes written later to
 *    a closed peer vanish and the writer is answered with MP_ECONNRESET (as a
 *    TCP RST would), after the EOF it was owed.
 *  - Write completion is reported on the next event at the same time (the
 *    bytes are already copied). A close before it turns it into MP_ECANCELED
 *    (env.h), though the bytes still travel.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"

#define CONNECT_TIMEOUT_MIN_NS (50 * MP_NS_PER_MS)
#define CONNECT_TIMEOUT_SPAN_NS (450 * MP_NS_PER_MS)

static inline uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }
static inline uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static uint64_t after(mp_sim *sim, uint64_t delay)
{
    uint64_t t = sim->now + delay;
    return t < sim->now ? UINT64_MAX : t;
}

uint64_t sim_net_latency(mp_sim *sim)
{
    const mp_sim_faults *f = &sim->faults;
    uint64_t lo = f->latency_min_ns, hi = f->latency_max_ns;
    if (hi < lo) hi = lo;
    uint64_t lat = lo;
    if (hi > lo) lat += mp_prng_below(&sim->rng_net, hi - lo + 1);
    if (f->latency_tail_p > 0 && f->latency_tail_ns > lat &&
        mp_prng_chance(&sim->rng_net, f->latency_tail_p))
        lat += mp_prng_below(&sim->rng_net, f->latency_tail_ns - lat + 1);
    return lat;
}

/* ---- partitions and clogs --------------------------------------------------- */

/* Whether bytes from a to b are cut (two-way partitions in either order,
 * one-way ones only as a -> b). */
static bool partitioned(mp_sim *sim, int a, int b, uint64_t *until)
{
    bool hit = false;
    uint64_t u = 0;
    for (int i = 0; i < sim->nparts;) {
        sim_partition *p = &sim->parts[i];
        if (p->until <= sim->now) { /* expired: drop it */
            sim->parts[i] = sim->parts[--sim->nparts];
            continue;
        }
        if ((p->a == a && p->b == b) ||
            (!p->oneway && p->a == b && p->b == a)) {
            hit = true;
            u = max_u64(u, p->until);
        }
        i++;
    }
    if (until) *until = u;
    return hit;
}

static bool clogged(mp_sim *sim, int a, int b, uint64_t *until)
{
    uint64_t u = 0;
    sim_proc *pa = sim_proc_get(sim, a), *pb = sim_proc_get(sim, b);
    if (pa && pa->clog_until > sim->now) u = pa->clog_until;
    if (pb && pb->clog_until > sim->now) u = max_u64(u, pb->clog_until);
    if (until) *until = u;
    return u != 0;
}

int sim_partition_add(mp_sim *sim, int a, int b, bool oneway,
                      uint64_t duration_ns)
{
    if (sim->nparts == sim->parts_cap) {
        int cap = sim->parts_cap ? sim->parts_cap * 2 : 8;
        sim_partition *np = realloc(sim->parts, (size_t)cap * sizeof *np);
        if (!np) return MP_ENOMEM;
        sim->parts = np;
        sim->parts_cap = cap;
    }
    uint64_t until = UINT64_MAX;
    if (duration_ns) {
        until = after(sim, duration_ns);
    }
    sim->parts[sim->nparts++] = (sim_partition){a, b, oneway, until};
    return MP_OK;
}

bool sim_net_blocked(mp_sim *sim, int a, int b, uint64_t *until)
{
    uint64_t u1 = 0, u2 = 0;
    bool p = a != b && partitioned(sim, a, b, &u1);
    bool c = clogged(sim, a, b, &u2);
    if (until) *until = max_u64(u1, u2);
    return p || c;
}

/* ---- chunks, streams, connections -------------------------------------------- */

static void dir_clear(sim_dir *d)
{
    sim_chunk *c = d->head;
    while (c) {
        sim_chunk *n = c->next;
        free(c);
        c = n;
    }
    d->head = d->tail = NULL;
}

static void conn_free(mp_sim *sim, sim_conn *c)
{
    assert(!c->end[0] && !c->end[1]);
    dir_clear(&c->dir[0]);
    dir_clear(&c->dir[1]);
    sim_link_unlink(&c->wlink);
    free(c);
}

sim_stream *sim_stream_new(sim_env *env, sim_conn *c, int side,
                           const char *peer)
{
    sim_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->env = &env->base;
    s->senv = env;
    s->conn = c;
    s->side = side;
    sim_link_init(&s->evs);
    snprintf(s->peer, sizeof s->peer, "%s", peer);
    sim_link_append(&env->streams, &s->elink);
    c->end[side] = s;
    return s;
}

void sim_stream_drop_events(mp_sim *sim, sim_stream *s)
{
    if (s->deliver_ev) {
        sim_ev_free(sim, s->deliver_ev);
        s->deliver_ev = NULL;
    }
    while (!sim_link_empty(&s->evs)) {
        sim_event *ev = SIM_CONTAINER(s->evs.next, sim_event, olink);
        sim_ev_free(sim, ev); /* unlinks it */
    }
}

void sim_stream_free(mp_sim *sim, sim_stream *s)
{
    sim_stream_drop_events(sim, s);
    sim_conn *c = s->conn;
    assert(c->end[s->side] == s);
    c->end[s->side] = NULL;
    dir_clear(&c->dir[1 - s->side]); /* nobody will read these */
    sim_link_unlink(&s->elink);
    free(s);
    if (!c->end[0] && !c->end[1]) conn_free(sim, c);
}

void sim_stream_schedule(mp_sim *sim, sim_stream *s)
{
    if (s->senv->dead || s->ended || !s->reading) {
        if (s->deliver_ev) {
            sim_ev_free(sim, s->deliver_ev);
            s->deliver_ev = NULL;
        }
        return;
    }
    const sim_dir *d = &s->conn->dir[1 - s->side];
    uint64_t t = UINT64_MAX;
    if (s->err) t = s->err_at;
    if (d->head)
        t = min_u64(t, d->head->deliver_at);
    else if (d->fin)
        t = min_u64(t, d->fin_at);
    if (t == UINT64_MAX) {
        if (s->deliver_ev) {
            sim_ev_free(sim, s->deliver_ev);
            s->deliver_ev = NULL;
        }
        return;
    }
    t = max_u64(t, sim->now);
    if (s->deliver_ev) {
        if (s->deliver_ev->time <= t) return; /* it will look again */
        sim_ev_remove(sim, s->deliver_ev);
    } else {
        s->deliver_ev = sim_ev_alloc(sim, EV_DELIVER, s->senv->pid,
                                     s->senv->inc);
        if (!s->deliver_ev) {
            mp_sim_fail(sim, "simulator out of memory (delivery)");
            return;
        }
        s->deliver_ev->obj = s;
    }
    sim_ev_push(sim, s->deliver_ev, t);
}

/* How many due bytes to hand over: sometimes everything, sometimes a tiny
 * piece, usually a uniform cut, so every split position gets exercised. */
static size_t piece_size(mp_sim *sim, size_t due)
{
    assert(due > 0);
    size_t cap = due < sim->scratch_cap ? due : sim->scratch_cap;
    switch (mp_prng_below(&sim->rng_net, 4)) {
    case 0:
        return cap;
    case 1:
        return 1 + (size_t)mp_prng_below(&sim->rng_net, cap < 16 ? cap : 16);
    default:
        return 1 + (size_t)mp_prng_below(&sim->rng_net, cap);
    }
}

void sim_net_on_deliver(mp_sim *sim, sim_event *ev)
{
    sim_stream *s = ev->obj;
    assert(s->deliver_ev == ev);
    s->deliver_ev = NULL;
    if (s->ended || !s->reading) return;
    sim_conn *c = s->conn;
    sim_dir *d = &c->dir[1 - s->side];
    const uint64_t now = sim->now;

    if (s->err && s->err_at <= now) {
        int err = s->err;
        s->ended = true;
        sim->trace_extra = (uint64_t)(int64_t)err;
        s->read_cb(s->read_ud, (mp_stream *)(void *)s, NULL, 0, err);
        return;
    }
    if (d->head && d->head->deliver_at <= now) {
        uint64_t until;
        if (sim_net_blocked(sim, c->pid[1 - s->side], c->pid[s->side],
                            &until)) {
            /* Held in flight. A finite block retries when it ends; an
             * indefinite one waits for mp_sim_heal to kick every stream. A
             * pending reset is not held (see the top of the file). */
            if (s->err) until = min_u64(until, s->err_at);
            if (until != UINT64_MAX) {
                s->deliver_ev = ev;
                sim_ev_push(sim, ev, until);
            }
            return;
        }
        size_t due = 0;
        for (sim_chunk *k = d->head; k && k->deliver_at <= now; k = k->next) {
            due += k->len - k->off;
            if (due >= sim->scratch_cap) break;
        }
        size_t want = piece_size(sim, due);
        size_t got = 0;
        while (got < want) {
            sim_chunk *k = d->head;
            assert(k && k->deliver_at <= now);
            size_t n = k->len - k->off;
            if (n > want - got) n = want - got;
            memcpy(sim->scratch + got, k->data + k->off, n);
            k->off += n;
            got += n;
            if (k->off == k->len) {
                d->head = k->next;
                if (!d->head) d->tail = NULL;
                free(k);
            }
        }
        sim->stats.bytes_delivered += got;
        sim->trace_extra = mp_mix64(got, sim_hash_bytes(sim->scratch, got));
        /* Schedule what comes next before the callback: afterwards `s` may
         * be gone. */
        sim_stream_schedule(sim, s);
        s->read_cb(s->read_ud, (mp_stream *)(void *)s, sim->scratch, got, 0);
        return;
    }
    if (!d->head && d->fin && d->fin_at <= now) {
        s->ended = true;
        sim->trace_extra = (uint64_t)(int64_t)MP_EOF;
        s->read_cb(s->read_ud, (mp_stream *)(void *)s, NULL, 0, MP_EOF);
        return;
    }
    sim_stream_schedule(sim, s);
}

void sim_conn_reset(mp_sim *sim, sim_conn *c, uint64_t delay0,
                    uint64_t delay1)
{
    if (c->reset) return;
    c->reset = true;
    sim->stats.resets++;
    dir_clear(&c->dir[0]);
    dir_clear(&c->dir[1]);
    c->dir[0].fin = c->dir[1].fin = false;
    uint64_t delay[2] = {delay0, delay1};
    for (int side = 0; side < 2; side++) {
        sim_stream *s = c->end[side];
        if (!s || s->senv->dead || s->err) continue;
        s->err = MP_ECONNRESET;
        s->err_at = after(sim, delay[side]);
        sim_stream_schedule(sim, s);
    }
}

void sim_net_kick_all(mp_sim *sim)
{
    for (sim_link *l = sim->conns.next; l != &sim->conns; l = l->next) {
        sim_conn *c = SIM_CONTAINER(l, sim_conn, wlink);
        for (int side = 0; side < 2; side++)
            if (c->end[side]) sim_stream_schedule(sim, c->end[side]);
    }
}

sim_listener *sim_net_find_listener(mp_sim *sim, const char *addr)
{
    for (sim_link *l = sim->listeners.next; l != &sim->listeners;
         l = l->next) {
        sim_listener *li = SIM_CONTAINER(l, sim_listener, wlink);
        if (strcmp(li->addr, addr) == 0) return li;
    }
    return NULL;
}

void sim_net_free_all(mp_sim *sim)
{
    /* Every stream belongs to an env and is freed with it; what may remain
     * here are connections whose both ends are gone (none, normally). */
    while (!sim_link_empty(&sim->conns)) {
        sim_conn *c = SIM_CONTAINER(sim->conns.next, sim_conn, wlink);
        for (int side = 0; side < 2; side++) {
            if (c->end[side]) {
                sim_link_unlink(&c->end[side]->elink);
                free(c->end[side]);
                c->end[side] = NULL;
            }
        }
        conn_free(sim, c);
    }
}

/* ---- operations ------------------------------------------------------------------ */

int sim_net_write(sim_stream *s, const mp_iovec *iov, int iovcnt,
                  mp_write_cb cb, void *ud)
{
    sim_env *env = s->senv;
    mp_sim *sim = env->sim;
    if (iovcnt < 0 || (iovcnt > 0 && !iov)) return MP_EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].len && !iov[i].base) return MP_EINVAL;
        if (total + iov[i].len < total) return MP_EINVAL;
        total += iov[i].len;
    }
    if (env->dead) return MP_ECLOSED;
    sim_conn *c = s->conn;
    if (c->reset || s->err) return MP_ECONNRESET;

    sim_event *wev = NULL;
    if (cb) {
        wev = sim_ev_alloc(sim, EV_WRITE_DONE, env->pid, env->inc);
        if (!wev) return MP_ENOMEM;
    }
    sim_stream *peer = c->end[1 - s->side];
    if (total > 0 && peer) {
        sim_chunk *k = malloc(sizeof *k + total);
        if (!k) {
            if (wev) sim_ev_free(sim, wev);
            return MP_ENOMEM;
        }
        size_t off = 0;
        for (int i = 0; i < iovcnt; i++) {
            if (iov[i].len) memcpy(k->data + off, iov[i].base, iov[i].len);
            off += iov[i].len;
        }
        sim_dir *d = &c->dir[s->side];
        k->next = NULL;
        k->len = total;
        k->off = 0;
        k->deliver_at = max_u64(after(sim, sim_net_latency(sim)),
                                d->last_deliver_at);
        d->last_deliver_at = k->deliver_at;
        if (d->tail)
            d->tail->next = k;
        else
            d->head = k;
        d->tail = k;
        sim_stream_schedule(sim, peer);
        if (sim->faults.write_fail_p > 0 &&
            mp_prng_chance(&sim->rng_net, sim->faults.write_fail_p)) {
            /* Accepted, then failed (a RST right after a send): these
             * bytes and whatever else is on the way are lost, and the
             * writer hears of it through this write's callback too. */
            MP_SOMETIMES(true, "sim.fault.write_failed");
            sim_conn_reset(sim, c, 0, sim_net_latency(sim));
            if (wev) wev->status = MP_ECONNRESET;
            if (wev) {
                wev->fn.write = cb;
                wev->ud = ud;
                sim_link_append(&s->evs, &wev->olink);
                sim_ev_push(sim, wev, sim->now);
            }
            return MP_OK;
        }
    } else if (total > 0) {
        /* The peer closed: the bytes vanish and, as with a TCP RST, the
         * writer learns it, after the EOF it is owed. */
        uint64_t rtt = sim_net_latency(sim) + sim_net_latency(sim);
        const sim_dir *in = &c->dir[1 - s->side];
        s->err = MP_ECONNRESET;
        s->err_at = max_u64(after(sim, rtt), in->fin ? in->fin_at + 1 : 0);
        sim_stream_schedule(sim, s);
    }
    if (wev) {
        wev->fn.write = cb;
        wev->ud = ud;
        wev->status = MP_OK;
        sim_link_append(&s->evs, &wev->olink);
        sim_ev_push(sim, wev, sim->now);
    }
    return MP_OK;
}

void sim_net_close(sim_stream *s, mp_close_cb cb, void *ud)
{
    sim_env *env = s->senv;
    mp_sim *sim = env->sim;
    if (env->dead) {
        sim_stream_free(sim, s);
        return;
    }
    /* Pending write completions still run, as cancelled, before the close
     * callback (they were queued first); they no longer point at us. */
    while (!sim_link_empty(&s->evs)) {
        sim_event *ev = SIM_CONTAINER(s->evs.next, sim_event, olink);
        assert(ev->kind == EV_WRITE_DONE);
        ev->status = MP_ECANCELED;
        sim_link_unlink(&ev->olink);
    }
    sim_conn *c = s->conn;
    if (!c->reset) {
        sim_dir *d = &c->dir[s->side];
        d->fin = true;
        d->fin_at = max_u64(after(sim, sim_net_latency(sim)),
                            d->last_deliver_at);
    }
    sim_stream *peer = c->end[1 - s->side];
    sim_stream_free(sim, s);
    if (peer) sim_stream_schedule(sim, peer);
    if (!cb) return;
    sim_event *ev = sim_ev_alloc(sim, EV_CLOSE_DONE, env->pid, env->inc);
    if (!ev) {
        mp_sim_fail(sim, "simulator out of memory (stream close)");
        return;
    }
    ev->fn.close = cb;
    ev->ud = ud;
    sim_ev_push(sim, ev, sim->now);
}

int sim_net_connect(sim_env *env, const char *addr, mp_connect_cb cb, void *ud)
{
    mp_sim *sim = env->sim;
    if (!addr || !cb) return MP_EINVAL;
    char host[64];
    uint16_t port;
    if (mp_addr_parse(addr, host, sizeof host, &port) != MP_OK || port == 0)
        return MP_EADDR;
    if (env->dead) return MP_OK; /* accepted; no callback after a kill */
    sim_event *ev = sim_ev_alloc(sim, EV_CONNECT, env->pid, env->inc);
    if (!ev) return MP_ENOMEM;
    ev->obj = strdup(addr);
    if (!ev->obj) {
        sim_ev_free(sim, ev);
        return MP_ENOMEM;
    }
    ev->fn.connect = cb;
    ev->ud = ud;
    sim_ev_push(sim, ev, after(sim, sim_net_latency(sim)));
    return MP_OK;
}

/* Turn the connect event into its failure report, due at `t`. */
static void connect_fail_at(mp_sim *sim, sim_event *ev, int status, uint64_t t)
{
    free(ev->obj);
    ev->obj = NULL;
    ev->kind = EV_CONNECT_FAIL;
    ev->status = status;
    sim->stats.connect_failures++;
    sim_ev_push(sim, ev, t);
}

void sim_net_on_connect(mp_sim *sim, sim_event *ev)
{
    const char *addr = ev->obj;
    sim_proc *cp = sim->procs[ev->pid];
    sim_env *cenv = cp->env;
    assert(cenv && !cenv->dead);
    sim_listener *l = sim_net_find_listener(sim, addr);
    if (!l) {
        sim->stats.connect_failures++;
        ev->fn.connect(ev->ud, NULL, MP_ECONNREFUSED);
        return;
    }
    int lpid = l->senv->pid;
    uint64_t until = 0;
    if (lpid != ev->pid && (partitioned(sim, ev->pid, lpid, NULL) ||
                            partitioned(sim, lpid, ev->pid, NULL))) {
        uint64_t t = after(sim, CONNECT_TIMEOUT_MIN_NS +
                                    mp_prng_below(&sim->rng_net,
                                                  CONNECT_TIMEOUT_SPAN_NS));
        connect_fail_at(sim, ev, MP_ETIMEDOUT, t);
        return;
    }
    if (clogged(sim, ev->pid, lpid, &until)) {
        if (until != UINT64_MAX) {
            sim_ev_push(sim, ev, until); /* the SYN waits out the clog */
        } else {
            uint64_t t = after(sim, CONNECT_TIMEOUT_MIN_NS +
                                        mp_prng_below(&sim->rng_net,
                                                      CONNECT_TIMEOUT_SPAN_NS));
            connect_fail_at(sim, ev, MP_ETIMEDOUT, t);
        }
        return;
    }
    if (sim_proc_paused(sim, sim->procs[lpid])) {
        /* Nobody accepts while the listener is paused: the SYN waits. */
        sim_ev_push(sim, ev, sim->procs[lpid]->paused_until);
        return;
    }
    if (mp_prng_chance(&sim->rng_net, sim->faults.connect_fail_p)) {
        sim->stats.connect_failures++;
        ev->fn.connect(ev->ud, NULL, MP_ECONNREFUSED);
        return;
    }
    sim_conn *c = calloc(1, sizeof *c);
    if (!c) goto oom;
    c->serial = ++sim->conn_serial;
    c->pid[0] = ev->pid;
    c->pid[1] = lpid;
    sim_link_append(&sim->conns, &c->wlink);
    char peer[72];
    snprintf(peer, sizeof peer, "%s:%u", cp->host,
             (unsigned)(32768 + c->serial % 28000));
    sim_stream *s0 = sim_stream_new(cenv, c, 0, addr);
    sim_stream *s1 = s0 ? sim_stream_new(l->senv, c, 1, peer) : NULL;
    sim_event *done =
        s1 ? sim_ev_alloc(sim, EV_CONNECT_DONE, ev->pid, ev->inc) : NULL;
    if (!done) {
        if (s1) sim_stream_free(sim, s1);
        if (s0) sim_stream_free(sim, s0);
        if (!s0) sim_link_unlink(&c->wlink), free(c);
        goto oom;
    }
    done->obj = s0;
    done->fn.connect = ev->fn.connect;
    done->ud = ev->ud;
    sim_link_append(&s0->evs, &done->olink);
    sim_ev_push(sim, done, sim->now);
    sim->stats.connects++;
    l->cb(l->ud, (mp_stream *)(void *)s1, MP_OK);
    return;
oom:
    sim->stats.connect_failures++;
    ev->fn.connect(ev->ud, NULL, MP_ENOMEM);
}
