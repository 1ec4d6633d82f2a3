/*
 * moonpool's real environment: the libuv backend of mp_env (env.h).
 *
 * One env drives one libuv loop: its timers are uv timers, its streams TCP
 * sockets (TCP_NODELAY), its clock the monotonic clock, its randomness a
 * seeded generator. A process normally has one env per node; a program that
 * already runs a libuv loop can hand it to mp_env_uv_create and keep driving
 * it itself.
 *
 * Thread: an env and its loop belong to one thread. Every function here must
 * be called on that thread, and never from another env's callbacks.
 *
 * The abstract interface (timers, streams, randomness, logging, the listener
 * port) stays in env.h: code written against env.h runs unchanged in the
 * simulator (sim.h). Only the code that creates, runs and destroys the real
 * env needs this header.
 */
#ifndef MOONPOOL_ENV_UV_H
#define MOONPOOL_ENV_UV_H

#include <stdint.h>

#include "moonpool/env.h"

#ifdef __cplusplus
extern "C" {
#endif

struct uv_loop_s;

/* Create a real env on `loop` (NULL: a new loop owned by the env, closed by
 * mp_env_uv_destroy; otherwise the loop stays the caller's and must outlive
 * the env). `seed` seeds mp_env_random; 0 draws one from the OS. The env is
 * owned by the caller until mp_env_uv_destroy. Returns NULL on out-of-memory
 * (or if a new loop cannot be initialised). Thread: the loop's. */
mp_env *mp_env_uv_create(struct uv_loop_s *loop, uint64_t seed);

/* Run the loop (uv_run, UV_RUN_DEFAULT) until mp_env_uv_stop is called or
 * nothing is left to do. Not re-entrant: calling it from inside one of the
 * env's callbacks returns MP_EBUSY (and asserts in debug builds). Returns 0
 * otherwise. Thread: the loop's. */
int mp_env_uv_run(mp_env *env);

/* Ask mp_env_uv_run to return after the current loop turn (uv_stop). Safe
 * from inside the env's callbacks. Thread: the loop's. */
void mp_env_uv_stop(mp_env *env);

/* Run one turn of the loop, for tests and for programs that drive the loop
 * in steps: `wait` nonzero may block in the poll until something happens
 * (but returns soon after a turn that ran timers or deferred work), `wait`
 * 0 never blocks. Returns nonzero while handles or requests remain active,
 * 0 when nothing is left (or when called re-entrantly, which also asserts in
 * debug builds). Thread: the loop's. */
int mp_env_uv_run_once(mp_env *env, int wait);

/* The underlying loop, for code that embeds moonpool in its own libuv app
 * (owned by the env if the env created it). Thread: the loop's. */
struct uv_loop_s *mp_env_uv_loop(mp_env *env);

/* Destroy the env (NULL is a no-op returning 0). Every stream, listener,
 * timer, pending connect and queued defer must be gone first and every close
 * callback must have run; returns MP_EBUSY otherwise (and keeps the env),
 * also when called from inside one of the env's own callbacks or while
 * someone else's handle is open on an owned loop. An owned loop is closed
 * too. Returns 0 once the env is freed. Thread: the loop's. */
int mp_env_uv_destroy(mp_env *env);

/* Nonzero if `env` is a libuv-backend env (so the mp_env_uv_* calls apply to
 * it); 0 for NULL or any other backend (the simulator). Reads only the env's
 * ops pointer: any thread, as long as the env is alive. */
int mp_env_is_uv(mp_env *env);

#ifdef __cplusplus
}
#endif
#endif
