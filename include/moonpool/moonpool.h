/*
 * moonpool: a distributed virtual-actor runtime (Orleans-style actors that
 * always exist, are activated on demand on one node of a cluster and called
 * by name), with persistent actor state and a deterministic simulator that
 * replays a whole multi-node run from one seed.
 *
 * This umbrella header includes every public header. Each can also be
 * included alone:
 *
 *   status.h        mp_status codes and mp_strerror
 *   env.h           the abstract environment: time, timers, streams,
 *                   listeners, randomness, logging (mp_env)
 *   env_uv.h        the real environment on a libuv loop (mp_env_uv_*)
 *   actor.h         actor types, references, calls and replies
 *   node.h          a node: one runtime instance on one env (mp_node_*)
 *   call_sync.h     mp_call_sync, a blocking call for loop-less programs
 *   codec.h         codecs between values and bytes (JSON codec)
 *   state.h         persistent actor state (mp_state_*)
 *   storage.h       storage providers: memory, SQLite, PostgreSQL, simulated
 *   config.h        the node configuration file: parse, validate, format
 *   host.h          mp_node_run: one node as a whole process
 *   sim.h           the deterministic simulator (mp_sim_*)
 *   sim_workload.h  simulation workloads and the seed runner
 *   buggify.h       buggify and simulation assertions
 *   version.h       MP_VERSION_* macros and mp_version()
 *
 * Everything under src/ is internal: programs build against include/ alone.
 */
#ifndef MOONPOOL_MOONPOOL_H
#define MOONPOOL_MOONPOOL_H

#include "moonpool/status.h"
#include "moonpool/env.h"
#include "moonpool/env_uv.h"
#include "moonpool/actor.h"
#include "moonpool/node.h"
#include "moonpool/call_sync.h"
#include "moonpool/codec.h"
#include "moonpool/state.h"
#include "moonpool/storage.h"
#include "moonpool/config.h"
#include "moonpool/host.h"
#include "moonpool/sim.h"
#include "moonpool/sim_workload.h"
#include "moonpool/buggify.h"
#include "moonpool/version.h"

#endif
