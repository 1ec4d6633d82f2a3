/*
 * The bank-durable workload: the bank (workloads/bank.c) with accounts that
 * persist every change, under kills.
 *
 * What differs from `bank`:
 *   - a never-killed "db" process owns one simulated disk; every node uses
 *     its provider (mp_storage_sim_create on the db process's disk slot),
 *     like a database server shared by the cluster. Its buggify sites fail
 *     reads and writes now and then (some failed writes land anyway), until
 *     heal;
 *   - accounts persist every deposit, withdrawal and transfer leg, the
 *     op-id dedup set and the legs they still owe included, and answer only
 *     once the save reported back; a failed save reaches the caller as an
 *     error (S12) and the account deactivates so its next activation
 *     reloads what storage holds;
 *   - nodes are killable (swarm seeds kill and restart them; their clients
 *     die with them, and their ops count as unknown);
 *   - the idle timeout is 2 s and the op rate lower, so accounts deactivate
 *     and reactivate (loading their state) during the run;
 *   - after heal every account is woken first (a transfer whose source died
 *     between its stored withdrawal and its deposit leg resumes the leg on
 *     activation), then the usual drain, resolve, final reads and burst,
 *     and finally every stored record is read back from the db and checked
 *     against the ledger: balance, applied op ids of both legs, legs still
 *     owed delivered (S11); between the burst and that check, the steady
 *     phase (every call succeeds on accounts re-activated after going idle;
 *     their stored records are checked with the rest).
 * Topologies (nodes x client workers) per seed: 1x1, 3x3, 5x5.
 */
#include <stddef.h>

#include "workloads.h"

static const char *const durable_coverage[] = {
    "bank.",
    "bank_durable.persist_failed_reported",
    "bank_durable.client_saw_persist_error",
    "bank_durable.legs_resumed",
    "bank_durable.stored_state_checked",
    "actor.idle_deactivation",
    "actor.persist_failed",
    "actor.owner_restarted",
    "actor.load_delayed",
    "actor.state_load_failed",
    "actor.persist_reload_applied",
    "actor.persist_reload_not_applied",
    "storage.sim.read_failed",
    "storage.sim.write_failed",
    "storage.sim.write_failed_but_applied",
    NULL,
};

const mp_sim_workload mp_workload_bank_durable = {
    .name = "bank-durable",
    .description = "BankAccount actors persisting every change in a shared "
                   "simulated database, nodes killed and restarted, 2 s idle "
                   "timeouts; ledger and stored records checked (S11, S12)",
    .required_coverage = durable_coverage,
    .chaos_ns = 12ull * MP_SIM_NS_PER_S,
    .heal_ns = 60ull * MP_SIM_NS_PER_S,
    .setup = mp_bank_wl_setup_durable,
    .on_heal = mp_bank_wl_on_heal,
    .quiescent = mp_bank_wl_quiescent,
    .check = mp_bank_wl_check,
    .destroy = mp_bank_wl_destroy,
};
