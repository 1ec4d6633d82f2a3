/*
 * Extras of the real (libuv) env backend that env.h cannot declare because
 * the simulator has no equivalent: tests, tools and the node assembly use
 * them when they know they run on the real backend (typically: listen on
 * port 0 and then learn which port the OS picked, so tests never race for a
 * fixed port).
 */
#ifndef MP_ENV_ENV_UV_H
#define MP_ENV_ENV_UV_H

#include "moonpool/env.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The local port `l` is bound to (1..65535), or a negative mp_status:
 * MP_EINVAL if `l` is NULL or not a listener of the libuv backend, MP_EIO if
 * the OS cannot tell. */
int mp_listener_port(mp_listener *l);

/* Nonzero if `env` is a libuv-backend env (so the mp_env_uv_* calls and
 * mp_listener_port apply to it). */
int mp_env_is_uv(mp_env *env);

#ifdef __cplusplus
}
#endif
#endif
