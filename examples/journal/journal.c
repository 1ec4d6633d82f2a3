/*
 * The Journal actor (see journal.h): appends every op id it is sent, never
 * deduplicates, and answers only once the append is stored.
 */
#include "journal.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/state.h"

typedef struct instance {
    mp_actor *self;
    mp_msg *pmsg; /* the append waiting for its save */
} instance;

static bool op_valid(const char *s, size_t len)
{
    if (len == 0 || len > MP_JOURNAL_OP_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == ':' || c == '-';
        if (!ok) return false;
    }
    return true;
}

/* The stored {"ops":[...]} array, created when nothing was stored yet;
 * NULL when the stored value has another shape or memory ran out. */
static json_t *ops_of(mp_actor *self)
{
    json_t *s = mp_state_get(self);
    if (!s) {
        s = json_pack("{s:[]}", "ops");
        if (!s) return NULL;
        mp_state_set(self, s);
    }
    json_t *ops = json_is_object(s) ? json_object_get(s, "ops") : NULL;
    return json_is_array(ops) ? ops : NULL;
}

static void reply_json(mp_msg *msg, json_t *v)
{
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!text) {
        mp_reply_error(msg, MP_ENOMEM, "out of memory");
        return;
    }
    mp_reply(msg, text, strlen(text));
    free(text);
}

static void saved(void *ud, int status)
{
    instance *inst = ud;
    mp_msg *msg = inst->pmsg;
    inst->pmsg = NULL;
    if (status != 0) {
        /* Memory may hold an entry storage does not: reload from storage. */
        char text[96];
        snprintf(text, sizeof text, "persist failed: %s", mp_strerror(status));
        mp_actor_deactivate(inst->self);
        mp_reply_error(msg, status, text);
        return;
    }
    json_t *ops = ops_of(inst->self);
    reply_json(msg, json_pack("{s:I}", "n", (json_int_t)(ops ? json_array_size(ops) : 0)));
}

static void h_append(mp_actor *self, void *inst_, mp_msg *msg, const void *payload, size_t len)
{
    instance *inst = inst_;
    const char *p = payload;
    if (len >= 2 && p[0] == '"' && p[len - 1] == '"') {
        p++;
        len -= 2;
    }
    if (!op_valid(p, len)) {
        mp_reply_error(msg, MP_EINVAL, "bad request: op id must be 1..64 bytes of [A-Za-z0-9_.:-]");
        return;
    }
    if (!mp_state_available(self)) {
        /* Memory only: nothing to wait for. */
        json_t *ops = ops_of(self);
        if (!ops || json_array_append_new(ops, json_stringn(p, len)) != 0) {
            mp_reply_error(msg, MP_ENOMEM, "out of memory");
            return;
        }
        reply_json(msg, json_pack("{s:I}", "n", (json_int_t)json_array_size(ops)));
        return;
    }
    json_t *ops = ops_of(self);
    if (!ops) {
        mp_reply_error(msg, MP_EINTERNAL, "stored journal is not {\"ops\":[...]}");
        return;
    }
    if (json_array_append_new(ops, json_stringn(p, len)) != 0) {
        mp_reply_error(msg, MP_ENOMEM, "out of memory");
        return;
    }
    inst->self = self;
    inst->pmsg = msg;
    int rc = mp_state_persist(self, saved, inst);
    if (rc != 0) {
        /* Not saved (cb never runs): drop the entry from memory too. */
        json_array_remove(ops, json_array_size(ops) - 1);
        inst->pmsg = NULL;
        mp_reply_error(msg, rc, "persist refused");
    }
}

static void h_list(mp_actor *self, void *inst_, mp_msg *msg, const void *payload, size_t len)
{
    (void)inst_;
    (void)payload;
    (void)len;
    json_t *ops = ops_of(self);
    reply_json(msg, ops ? json_pack("{s:O}", "ops", ops) : json_pack("{s:[]}", "ops"));
}

static int on_activate(mp_actor *self, void *inst_)
{
    instance *inst = inst_;
    inst->self = self;
    json_t *s = mp_state_get(self);
    if (s && !(json_is_object(s) && json_is_array(json_object_get(s, "ops")))) return MP_ECORRUPT;
    return 0;
}

static const mp_method_def methods[] = {
    {"append", h_append},
    {"list", h_list},
};

static const mp_state_type journal_state = {.codec = NULL}; /* JSON */

static const mp_actor_type journal_type = {
    .name = MP_JOURNAL_TYPE,
    .instance_size = sizeof(instance),
    .on_activate = on_activate,
    .methods = methods,
    .method_count = sizeof methods / sizeof methods[0],
    .placement = MP_PLACE_TWO_CHOICES,
    .state = &journal_state,
};

const mp_actor_type *mp_journal_type(void) { return &journal_type; }
