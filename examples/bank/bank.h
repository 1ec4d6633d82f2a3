/*
 * The BankAccount actor: the example that proves the runtime, and the
 * subject of the `bank` simulation workload (workloads/bank.c).
 *
 * Type "BankAccount", key = account name. Payloads are JSON objects
 * (codec.h, the default JSON codec); every request is validated strictly
 * (unknown fields, wrong types, non-positive or huge amounts, malformed op
 * ids are refused with MP_EINVAL and a message).
 *
 *   deposit   {"op":"<id>","amount":N}            -> {"balance":B}
 *   withdraw  {"op":"<id>","amount":N}            -> {"balance":B}
 *             refused below zero: MP_EACTOR "insufficient funds"
 *   balance   {}                                  -> {"balance":B}
 *   transfer  {"op":"<id>","to":"<key>","amount":N} -> {"balance":B}
 *             withdraws here, then deposits N at `to` with op id "<id>.d",
 *             retrying that deposit until it succeeds, then replies.
 *             Refused: insufficient funds (MP_EACTOR), to == self (MP_EINVAL).
 *   op_status {"op":"<id>"}                       -> {"applied":true|false}
 *
 * Every mutating op carries a caller-chosen id; the account remembers the
 * ids it applied and answers a repeated id with success without applying it
 * again ({"balance":B,"dup":true}), so callers (and the transfer's deposit
 * leg) may retry an op whose outcome they did not learn. Only applied ops
 * are remembered: a refused op may be retried and succeed later.
 *
 * Op ids: 1..MP_BANK_OP_MAX bytes of [A-Za-z0-9_.:-]. Amounts: 1..
 * MP_BANK_AMOUNT_MAX. A transfer's deposit-leg id is the transfer id plus
 * ".d", so transfer ids must be at most MP_BANK_OP_MAX - 2 bytes.
 *
 * Persistence (state.h). On a node with a storage provider an account is
 * durable: its state {"balance":B,"ops":[applied op ids],"legs":[{"op",
 * "to","amount"}]} is loaded before activation and persisted after every
 * change, and a mutating op is answered only once its save reported back.
 * A failed save is answered with the storage error (MP_ESTORAGE,
 * MP_ECONFLICT: the op may or may not be stored, like a timeout) and the
 * account deactivates, so its next activation reloads what storage holds.
 * A transfer stores its withdrawal together with the deposit leg it owes;
 * the leg is removed once the destination accepted it, and that removal is
 * stored with the account's next save (so a transfer costs two saves: the
 * withdrawal here, the deposit there; a leg still stored as owed is driven
 * again by a later activation and answered as a duplicate). An
 * activation that loads owed legs (its predecessor died, or failed to
 * store the removal) sends itself "resume" and drives them before its later
 * messages are answered; the destination's op-id dedup makes that safe.
 * On a node without storage accounts live in memory only (a deactivated
 * account starts again at zero). Stored state is validated on load; an
 * invalid record fails the activation (MP_EACTIVATION).
 *
 *   resume    (internal, sent by the account to itself) {} -> no reply
 *
 * The type uses the node's idle timeout (the bank-durable workload sets
 * 2 s, so accounts deactivate and reload during its runs).
 *
 * Thread: the node's loop thread, like every actor.
 */
#ifndef MOONPOOL_EXAMPLES_BANK_H
#define MOONPOOL_EXAMPLES_BANK_H

#include <stdint.h>

#include "moonpool/actor.h"
#include "moonpool/node.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MP_BANK_TYPE "BankAccount"
#define MP_BANK_OP_MAX 64
#define MP_BANK_AMOUNT_MAX 1000000000000LL /* 1e12: sums stay far from int64 */

/* Time the transfer's deposit leg waits for each attempt, and the pause
 * before a retry (randomised up to twice that). */
#define MP_BANK_LEG_TIMEOUT_NS 1000000000ull /* 1 s */
#define MP_BANK_LEG_BACKOFF_NS 50000000ull   /* 50 ms */

/* The BankAccount type, to register on a node. */
const mp_actor_type *mp_bank_account_type(void);

/* Deprecated no-op: accounts are freed by the type's release hook, which
 * mp_node_free_now runs (actor.h). Kept so that older callers still build;
 * remove the calls. */
void mp_bank_release_node(mp_node *node);

/* Number of accounts (on all nodes of this thread) whose memory is live:
 * for leak checks in tests. */
uint64_t mp_bank_live_accounts(void);

/* Deposit legs owed by live accounts (on all nodes of this thread): those
 * of transfers in progress and those loaded from storage awaiting their
 * resume. The simulation workloads wait for 0 before their final checks. */
uint64_t mp_bank_transfers_in_flight(void);

/* ---- the `bank` simulation workload (workloads/bank.c) --------------------- */

/* What the last finished run of the bank workload saw (this thread), for
 * tests and reports: topology, traffic and the placement of activations
 * over the nodes at the end (S5). */
#define MP_BANK_REPORT_NODES 64
typedef struct mp_bank_report {
    int nodes, workers, accounts;
    uint64_t ops, ok, refused, unknown, resolved_applied;
    uint64_t final_calls, burst_calls;
    uint64_t per_node[MP_BANK_REPORT_NODES]; /* activations at the end */
    double max_dev; /* max |count - mean| / mean over the nodes */
} mp_bank_report;

void mp_bank_last_report(mp_bank_report *out);

#ifdef __cplusplus
}
#endif
#endif
