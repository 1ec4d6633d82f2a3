/*
 * A lost or restarted peer: what waits on it fails at once, and a
 * restarted directory owner gets our activations re-registered.
 *
 * Why: a request whose frame went to a peer that then died gets no reply;
 * waiting for its timeout (30 s by default) only hides a fact the transport
 * already knows. When the transport reports the peer down (its connection
 * broke, or a dial or handshake failed) or restarted, every call, relay and
 * directory request whose frame went to it or still waits in its queue ends
 * now: calls and relays with MP_EUNAVAIL ("may or may not have run": a
 * frame handed to TCP may have been processed, and a queued frame is still
 * delivered if the peer comes back), directory requests through their
 * normal retry paths (they are idempotent), and a refused handshake
 * (namespace or version mismatch) with its own status.
 *
 * "Down" means a dial or handshake failed (mp_transport_peer_unreachable),
 * not merely that an open connection broke: after a break the transport
 * redials at once, and a live peer answers on the new connection what it
 * received (its replies wait in its queue), so calls are failed only when
 * that redial fails, a few milliseconds after a crash. Requests lost in the
 * write that broke still end by timeout.
 *
 * Calls issued while the peer stays down are queued behind the transport's
 * reconnect attempts and fail at the next failed attempt, so they wait at
 * most one backoff step (transport backoff_max_ns, 2 s by default), never
 * their whole timeout; a peer that comes back in between serves them. No
 * "down" flag is kept, so no stale state can refuse calls after a heal.
 *
 * The waiting records are found by walking the calls table (rare event;
 * its heap order is deterministic) and completed in correlation-id order,
 * i.e. in send order. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"
#include "util/endian.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
/* Correlation ids, sorted for bsearch. */
typedef struct id_set {
    uint64_t *ids;
    size_t count, cap;
} id_set;

static void id_push(id_set *s, uint64_t id)
{
    if (s->count == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        uint64_t *g = realloc(s->ids, nc * sizeof *g);
        if (!g) return; /* that call ends as "may have run": still true */
        s->ids = g;
        s->cap = nc;
    }
    s->ids[s->count++] = id;
}

static bool id_has(const id_set *s, uint64_t id)
{
    return s->count && bsearch(&id, s->ids, s->count, sizeof id, cmp_u64);
}

static void on_dropped(void *ud, uint8_t kind, uint64_t corr)
{
    if (corr && (kind == MP_FRAME_REQUEST || kind == MP_FRAME_SYSTEM))
        id_push(ud, corr);
}

/* The requests queued for member that no connection took yet are dropped:
 * member never saw them, so their calls fail as not executed and nothing
 * of theirs can run after their callers were told (at most once). Their
 * ids go to unsent, sorted. */
static void drop_unsent(mp_node *n, uint16_t member, id_set *unsent)
{
    if (!n->transport) return;
    mp_transport_drop_queued(n->transport, mp_dir_addr(&n->dir, member),
                             on_dropped, unsent);
    if (unsent->count > 1)
        qsort(unsent->ids, unsent->count, sizeof *unsent->ids, cmp_u64);
}

typedef struct waiting_ids {
    int member;
    id_set set;
} waiting_ids;

static void collect_member(void *arg, mp_call_rec *r)
{
    waiting_ids *w = arg;
    if (r->peer == w->member) id_push(&w->set, r->corr); /* send.c, track_sent */
}

/* Complete every record waiting on member: those in unsent with
 * MP_EUNAVAIL and unsent_text (not executed), the others with status and
 * text. In correlation-id order, i.e. send order. Callbacks may send (and
 * add records) but never free the node. Returns how many. */
static size_t fail_waiting(mp_node *n, uint16_t member, int status,
                           const char *text, const id_set *unsent,
                           const char *unsent_text)
{
    assert(member < n->dir.n && member != n->dir.self);
    waiting_ids w = {member, {NULL, 0, 0}};
    mp_calls_foreach(&n->calls, collect_member, &w);
    uint64_t *ids = w.set.ids;
    size_t count = w.set.count;
    if (count > 1) qsort(ids, count, sizeof *ids, cmp_u64);
    size_t failed = 0, not_sent = 0;
    for (size_t i = 0; i < count; i++) {
        /* An earlier callback may have completed it meanwhile. */
        if (!mp_calls_find(&n->calls, ids[i])) continue;
        bool dropped = unsent && id_has(unsent, ids[i]);
        const char *t = dropped ? unsent_text : text;
        mp_calls_complete(&n->calls, ids[i], dropped ? MP_EUNAVAIL : status, t,
                          strlen(t));
        failed++;
        not_sent += dropped;
    }
    free(ids);
    if (failed)
        mp_env_log(n->env, MP_LOG_INFO,
                   "node: %zu request(s) to %s failed at once (%zu never sent): %s",
                   failed, mp_dir_addr(&n->dir, member), not_sent, text);
    return failed;
}

void mp__on_peer_restart(void *ud, const char *peer, uint32_t old_inc,
                            uint32_t new_inc)
{
    mp_node *n = ud;
    if (n->freed || !peer) return;
    int idx = mp_dir_member(&n->dir, peer, strlen(peer));
    if (idx < 0 || (size_t)idx == n->dir.self) return;
    mp__members_peer_restart(n, idx);
    if (old_inc != 0) {
        /* The old process is gone with whatever it was doing: nothing sent
         * to it will be answered. */
        char why[MP_ADDR_MAX + 96], unsent_why[MP_ADDR_MAX + 96];
        snprintf(why, sizeof why,
                 "%s restarted (incarnation %u -> %u); the call may or may not have run",
                 peer, (unsigned)old_inc, (unsigned)new_inc);
        snprintf(unsent_why, sizeof unsent_why,
                 "%s restarted (incarnation %u -> %u) before the request was sent",
                 peer, (unsigned)old_inc, (unsigned)new_inc);
        id_set unsent = {NULL, 0, 0};
        drop_unsent(n, (uint16_t)idx, &unsent);
        if (n->client_only)
            mp__client_peer_down(n, (uint16_t)idx, MP_EINDOUBT, why, unsent.ids,
                                 unsent.count);
        else
            fail_waiting(n, (uint16_t)idx, MP_EINDOUBT, why, &unsent, unsent_why);
        free(unsent.ids);
    }
    mp_dir_peer_restart(&n->dir, (uint16_t)idx, new_inc);
    if (n->client_only) return; /* no activations, no say in recovery */
    /* The peer lost its owner table: re-register our activations whose
     * owner it is, or a lookup there would place a second one. Then tell
     * it how many we sent (also when we had none, or never knew it), so it
     * can end its recovery early. */
    uint32_t sent = 0;
    if (old_inc != 0) {
        MP_SOMETIMES(true, "actor.owner_restarted");
        mp_list_node *ln, *tmp;
        MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
        {
            mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
            if ((a->state == MP_ACT_VALID || a->state == MP_ACT_ACTIVATING) &&
                mp_dir_owner_h(&n->dir, a->hash) == (size_t)idx &&
                mp__register(n, a, MP_CTX_REREGISTER) == MP_OK)
                sent++;
        }
    }
    uint8_t p[MP_SYS_COUNT_SIZE];
    mp_put_le32(p, sent);
    mp__send_system(n, (size_t)idx, MP_SYS_REREGISTERED, NULL, p, sizeof p, NULL, NULL);
}

/* A connection to a peer broke or could not be made: the ids cached there
 * may have moved (a shutdown unregistered them), so the next calls ask the
 * directory instead of queueing behind a dead peer. */
void mp__on_peer_down(void *ud, const char *peer, int status)
{
    mp_node *n = ud;
    if (n->freed || !peer) return;
    int idx = mp_dir_member(&n->dir, peer, strlen(peer));
    if (idx < 0 || (size_t)idx == n->dir.self) return;
    mp_dir_cache_drop_member(&n->dir, (uint16_t)idx);
    char why[MP_ADDR_MAX + 200], unsent_why[MP_ADDR_MAX + 200];
    id_set unsent = {NULL, 0, 0};
    if (mp__refusal_status(status)) {
        /* Not a lost connection: the peer is of another cluster or
         * protocol, and nothing sent to it ever ran. */
        mp__refusal_text(n, peer, status, why, sizeof why);
        drop_unsent(n, (uint16_t)idx, &unsent);
        if (n->client_only)
            mp__client_peer_down(n, (uint16_t)idx, status, why, NULL, 0);
        else
            fail_waiting(n, (uint16_t)idx, status, why, NULL, NULL);
        free(unsent.ids);
        return;
    }
    /* A connection that just broke is redialed at once: if the peer is
     * alive, what it received is answered on the next connection (its
     * replies wait in its queue), so the waiting calls wait too. The peer
     * is gone only when a dial or handshake fails. */
    if (n->transport && !mp_transport_peer_unreachable(n->transport, peer)) return;
    mp__members_suspect(n, idx);
    snprintf(why, sizeof why,
             "connection to %s lost (%s); the call may or may not have run", peer,
             mp_status_name(status));
    snprintf(unsent_why, sizeof unsent_why,
             "%s unreachable (%s); the request was not sent", peer,
             mp_status_name(status));
    drop_unsent(n, (uint16_t)idx, &unsent);
    if (n->client_only)
        mp__client_peer_down(n, (uint16_t)idx, MP_EINDOUBT, why, unsent.ids,
                             unsent.count);
    else
        fail_waiting(n, (uint16_t)idx, MP_EINDOUBT, why, &unsent, unsent_why);
    free(unsent.ids);
}
